#include "net/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ssl/error.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "net/host_port.h"

namespace meridian::net {

namespace ssl = boost::asio::ssl;

namespace {

// Mozilla's "intermediate" TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 suites are
// OpenSSL's defaults.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// OpenSSL's reason for the error, without its library's name in parentheses.
std::string Reason(const boost::system::error_code& error) {
  if (error.category() == boost::asio::error::get_ssl_category()) {
    if (const char* reason = ERR_reason_error_string(static_cast<unsigned long>(error.value()))) {
      return reason;
    }
  }
  return error.message();
}

// A missing or unreadable file is said so plainly, before OpenSSL's "no start line".
Status CheckReadable(const std::string& what, const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    return InvalidArgument("tls: cannot read the " + what + " '" + path +
                           "': " + std::strerror(errno));
  }
  return Status::Ok();
}

Status CheckSsl(const boost::system::error_code& error, const std::string& what,
                const std::string& path) {
  if (!error) return Status::Ok();
  return InvalidArgument("tls: cannot load the " + what + " from '" + path + "': " + Reason(error));
}

void Harden(SslContext& context) {
  SSL_CTX* native = context.native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(native, kTls12Ciphers);
  context.set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                      ssl::context::single_dh_use);
}

}  // namespace

Result<std::shared_ptr<SslContext>> LoadServerContext(const TlsFiles& files) {
  MERIDIAN_RETURN_IF_ERROR(CheckReadable("certificate file", files.cert_file));
  MERIDIAN_RETURN_IF_ERROR(CheckReadable("key file", files.key_file));
  MERIDIAN_RETURN_IF_ERROR(CheckReadable("CA file", files.ca_file));
  auto context = std::make_shared<SslContext>(ssl::context::tls_server);
  Harden(*context);
  SSL_CTX_set_options(context->native_handle(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  boost::system::error_code error;
  context->use_certificate_chain_file(files.cert_file, error);
  MERIDIAN_RETURN_IF_ERROR(CheckSsl(error, "certificate chain", files.cert_file));
  context->use_private_key_file(files.key_file, ssl::context::pem, error);
  const bool mismatch =
      error && error.category() == boost::asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(error.value())) == X509_R_KEY_VALUES_MISMATCH;
  if (!mismatch) MERIDIAN_RETURN_IF_ERROR(CheckSsl(error, "private key", files.key_file));
  if (mismatch || SSL_CTX_check_private_key(context->native_handle()) != 1) {
    ERR_clear_error();
    return InvalidArgument("tls: the key in '" + files.key_file +
                           "' does not match the certificate in '" + files.cert_file + "'");
  }
  context->load_verify_file(files.ca_file, error);
  MERIDIAN_RETURN_IF_ERROR(CheckSsl(error, "CA certificates", files.ca_file));
  context->set_verify_mode(ssl::verify_none);
  return context;
}

Result<std::shared_ptr<SslContext>> LoadClientContext(const std::string& ca_file) {
  auto context = std::make_shared<SslContext>(ssl::context::tls_client);
  Harden(*context);
  boost::system::error_code error;
  if (ca_file.empty()) {
    context->set_default_verify_paths(error);
    if (error)
      return InvalidArgument("tls: cannot load the system's CA certificates: " + Reason(error));
  } else {
    MERIDIAN_RETURN_IF_ERROR(CheckReadable("CA file", ca_file));
    context->load_verify_file(ca_file, error);
    MERIDIAN_RETURN_IF_ERROR(CheckSsl(error, "CA certificates", ca_file));
  }
  context->set_verify_mode(ssl::verify_peer);
  return context;
}

bool PrepareClientConnection(SSL* ssl, const std::string& host) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (IsIpAddress(host)) return X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
  // SNI carries names only, never addresses (RFC 6066).
  return X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) == 1 &&
         SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
}

std::string HandshakeFailure(SSL* ssl, const boost::system::error_code& error) {
  std::string why = Reason(error);
  if (error == boost::asio::ssl::error::stream_truncated || error == boost::asio::error::eof ||
      error == boost::asio::error::connection_reset) {
    why += " (the other side closed the connection: it may not speak TLS, or refused us)";
  }
  const long verify = ssl != nullptr ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (verify != X509_V_OK) why += std::string(": ") + X509_verify_cert_error_string(verify);
  return why;
}

Result<std::unique_ptr<TlsContextHolder>> TlsContextHolder::Create(TlsFiles files) {
  std::unique_ptr<TlsContextHolder> holder(new TlsContextHolder(std::move(files)));
  std::lock_guard lock(holder->mutex_);
  holder->watch_.Noted();
  auto context = LoadServerContext(holder->files_);
  if (!context.ok()) return context.status();
  holder->current_ = std::move(context).value();
  holder->generation_ = 1;
  return holder;
}

std::shared_ptr<SslContext> TlsContextHolder::Current() {
  std::lock_guard lock(mutex_);
  if (watch_.Due()) (void)LoadLocked("its files changed");
  return current_;
}

Status TlsContextHolder::Reload(const std::string& why) {
  std::lock_guard lock(mutex_);
  return LoadLocked(why);
}

Status TlsContextHolder::LoadLocked(const std::string& why) {
  watch_.Noted();  // tried: a failure is not tried again until the files change
  auto context = LoadServerContext(files_);
  if (!context.ok()) {
    spdlog::error("tls: reloading the certificate ({}) failed; still serving the previous one: {}",
                  why, context.status().message());
    return context.status();
  }
  current_ = std::move(context).value();
  ++generation_;
  spdlog::info("tls: reloaded the certificate from {} ({})", files_.cert_file, why);
  return Status::Ok();
}

uint64_t TlsContextHolder::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

}  // namespace meridian::net
