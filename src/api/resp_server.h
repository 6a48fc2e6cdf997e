// RespServer: the node's Redis protocol port (docs/redis.md). Redis clients in any language speak
// RESP2 or RESP3 to it: strings and hashes are documents and their fields, INCRBY and HINCRBY are
// counter increments that merge across regions, WAIT waits for other regions to hold the
// connection's writes, and SUBSCRIBE delivers keyspace notifications from the node's watches.
//
// Every write is a durable write through the same write queue and commit path as the HTTP and
// gRPC APIs; every refusal comes from the same checks ([auth] with the same tokens and rules,
// limits, the commit path's own). With [tls] the port speaks TLS only.
//
// Asio coroutines on their own threads (as many as the HTTP server's); Start() returns once the
// port listens, Stop() closes every connection and joins the threads.
#pragma once

#include <cstdint>
#include <memory>

#include "meridian/status.h"
#include "node/node.h"

namespace meridian::api {

class RespServer {
 public:
  // Serves the node's own region's `resp` address.
  explicit RespServer(node::Node* node);
  ~RespServer();

  // Loads the TLS files (with [tls]), binds and starts serving. Errors when a file cannot be
  // loaded or the address is in use or malformed.
  Status Start();
  // Stops accepting and reads no further command; returns once every connection has answered
  // the commands it had read and closed (at most 10 s), with the write queue still running.
  // SIGTERM and SIGINT start the same drain. Idempotent.
  void Drain();
  // Stops accepting, closes every connection and joins the threads. Idempotent.
  void Stop();
  uint16_t port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::api
