// HttpServer: the node's HTTP/JSON API (docs/http-api.md) on Boost.Beast — asynchronous,
// keep-alive, one io_context run by one thread per core; watches over SSE and WebSocket.
//
// With [tls] every connection speaks TLS only (HTTPS, and WSS for WebSocket watches); the
// certificate is loaded again when its files change and on SIGHUP (docs/security.md).
//
// Run() blocks until SIGTERM or SIGINT (or RequestStop()): it then stops accepting, lets every
// request in flight finish, closes watches, commits every queued write and returns.
#pragma once

#include <functional>
#include <memory>

#include "meridian/status.h"
#include "node/node.h"

namespace meridian::api {

class HttpServer {
 public:
  explicit HttpServer(node::Node* node);
  ~HttpServer();

  // Loads the TLS files (with [tls]) and binds the node's http address. Errors when a TLS file
  // cannot be loaded, or the address is in use or malformed.
  Status Listen();
  // Serves until a stop signal; returns after a graceful shutdown.
  void Run();
  // Asks Run() to stop, as SIGTERM does; callable from any thread.
  void RequestStop();
  // Runs after the HTTP connections are closed and before the node's write queue stops, on the
  // way out of Run(): the other front ends finish the commands they already read (the Redis
  // port's drain). Set before Run().
  void SetBeforeNodeStop(std::function<void()> hook);
  uint16_t port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::api
