// A small synchronous HTTP/1.1 client for tools and tests: one keep-alive connection to one
// address, reconnected when the server closed it; HTTPS when given a TLS context. Not
// thread-safe: one per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace meridian::client {

// A client's TLS context (net::LoadClientContext): the CAs that verify servers. Shared by every
// connection made with it; the server's certificate must also name the host connected to.
using TlsContext = std::shared_ptr<boost::asio::ssl::context>;

struct HttpResponse {
  int status = 0;  // 0: no answer (connection refused, reset, timed out)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string error;                           // why status is 0
  // Whether the whole request was handed to the connection: when status is 0 and this is false,
  // the server cannot have acted on it; when true, it may have.
  bool sent = false;
  std::string Header(const std::string& name) const;
};

class HttpClient {
 public:
  // `tls` null: plaintext HTTP.
  HttpClient(std::string host, uint16_t port,
             std::chrono::milliseconds timeout = std::chrono::seconds(10),
             TlsContext tls = nullptr);
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  // Sends `Authorization: Bearer <token>` with every request that sets no Authorization itself.
  void SetBearerToken(std::string token);
  // Bounds each step (connect, handshake, write, read) of the requests from now on.
  void SetTimeout(std::chrono::milliseconds timeout);

  HttpResponse Request(const std::string& method, const std::string& target,
                       const std::string& body = "",
                       const std::map<std::string, std::string>& headers = {});
  HttpResponse Get(const std::string& target) { return Request("GET", target); }
  // A JSON write (content-type application/json).
  HttpResponse Send(const std::string& method, const std::string& target, const std::string& json);
  // Sends raw bytes on a fresh connection and returns whatever the server answers before closing
  // (or until the timeout).
  std::string Raw(const std::string& bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One connection for an answer that streams (a watch): the request is written as given, and the
// answer read as it arrives. Plaintext or TLS, like HttpClient. Not thread-safe.
class StreamConnection {
 public:
  StreamConnection(std::string host, uint16_t port, std::chrono::milliseconds timeout,
                   TlsContext tls = nullptr);
  ~StreamConnection();
  StreamConnection(StreamConnection&&) noexcept;
  StreamConnection& operator=(StreamConnection&&) noexcept;

  // Connects (and makes the TLS handshake) and writes `request`, each step bounded by the
  // timeout; false with *error set when that failed.
  bool Open(const std::string& request, std::string* error);
  // Waits at most `wait` for bytes and appends what arrived to *out: true when some did. False
  // with *error empty when none came in time, with *error set when the connection ended (the
  // server closed it, or it failed).
  bool Read(std::string* out, std::chrono::milliseconds wait, std::string* error);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Percent-encodes a key for a path segment.
std::string EncodeKey(const std::string& key);

}  // namespace meridian::client
