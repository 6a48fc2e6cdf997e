// TLS contexts from PEM files ([tls] of a node's config, --ca-file of a client): loading with
// errors that name the file at fault, and a holder that serves the current server context and
// loads it again when its files change (certificate rotation without a restart).
//
// Every context speaks TLS 1.2 at least (1.3 preferred, as OpenSSL negotiates by default).
#pragma once

// g++ 12 needs <utility> before Asio.
#include <utility>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "meridian/status.h"
#include "net/file_watch.h"
#include "net/tls_files.h"

namespace meridian::net {

using SslContext = boost::asio::ssl::context;

// A server's context from the files. No client certificate is asked for (HTTP clients
// authenticate with tokens; gRPC does its own mutual TLS), but the CA file is loaded too, so that
// every [tls] file a node names is checked by this one function. kInvalidArgument naming the file
// when one cannot be read or parsed, or when the key does not match the certificate.
Result<std::shared_ptr<SslContext>> LoadServerContext(const TlsFiles& files);

// A client's context: the server's certificate must chain to `ca_file` (the system's trust store
// when empty). The name to verify is set per connection (PrepareClientConnection).
Result<std::shared_ptr<SslContext>> LoadClientContext(const std::string& ca_file);

// Before a client's handshake on `ssl`: the server's certificate must name `host` (a DNS name or
// an IP address, as a subject alternative name); a DNS name is also sent as SNI. False when
// OpenSSL refuses the name.
bool PrepareClientConnection(SSL* ssl, const std::string& host);

// Why a handshake failed, for humans: "certificate verify failed: unable to get local issuer
// certificate", "wrong version number" (the other side does not speak TLS), ...
std::string HandshakeFailure(SSL* ssl, const boost::system::error_code& error);

// The server context of a node, reloaded when its files change: Current() looks at them at most
// once a second (net::FileWatch), Reload() at once (SIGHUP). A reload that fails keeps the
// context in use and logs an error; the same files are not tried again until they change once
// more. New connections take the current context; connections made earlier keep the one they were
// made with (they hold a reference). Thread-safe.
class TlsContextHolder {
 public:
  // Loads the files once (LoadServerContext); its error when that fails.
  static Result<std::unique_ptr<TlsContextHolder>> Create(TlsFiles files);

  std::shared_ptr<SslContext> Current();
  // Loads the files now, whether they changed or not. `why` names the cause in the log.
  Status Reload(const std::string& why);
  // How many contexts were loaded (1 after Create): for tests and logs.
  uint64_t generation() const;

 private:
  explicit TlsContextHolder(TlsFiles files)
      : files_(std::move(files)), watch_({files_.cert_file, files_.key_file, files_.ca_file}) {}
  Status LoadLocked(const std::string& why);

  const TlsFiles files_;
  mutable std::mutex mutex_;
  FileWatch watch_;  // mutex_
  std::shared_ptr<SslContext> current_;
  uint64_t generation_ = 0;
};

}  // namespace meridian::net
