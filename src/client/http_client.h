// A small synchronous HTTP/1.1 client for tools and tests: one keep-alive connection to one
// loopback address, reconnected when the server closed it. Not thread-safe: one per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace meridian::client {

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
  HttpClient(std::string host, uint16_t port,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

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

// Percent-encodes a key for a path segment.
std::string EncodeKey(const std::string& key);

}  // namespace meridian::client
