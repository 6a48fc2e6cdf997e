// HttpServer: the node's HTTP/JSON API (docs/http-api.md) on Boost.Beast — asynchronous,
// keep-alive, one io_context run by one thread per core; watches over SSE and WebSocket.
//
// Run() blocks until SIGTERM or SIGINT (or RequestStop()): it then stops accepting, lets every
// request in flight finish, closes watches, commits every queued write and returns.
#pragma once

#include <memory>

#include "meridian/status.h"
#include "node/node.h"

namespace meridian::api {

class HttpServer {
 public:
  explicit HttpServer(node::Node* node);
  ~HttpServer();

  // Binds the node's http address. Errors when the address is in use or malformed.
  Status Listen();
  // Serves until a stop signal; returns after a graceful shutdown.
  void Run();
  // Asks Run() to stop, as SIGTERM does; callable from any thread.
  void RequestStop();
  uint16_t port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::api
