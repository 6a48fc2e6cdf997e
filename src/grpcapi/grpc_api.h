// GrpcApiServer: the node's client API over gRPC (proto/meridian/api.proto, docs/grpc-api.md). It
// mirrors the HTTP API call for call — the same validation, the same waits, the same answers —
// with errors as gRPC status codes and the HTTP error code in the `meridian-error` trailer.
//
// Synchronous gRPC: each call holds a server thread while it waits (a session wait, a commit, a
// durability wait) or streams (a watch).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "meridian/status.h"
#include "node/node.h"

namespace meridian::grpcapi {

class GrpcApiServer {
 public:
  // Serves `node` on `address` (ip:port; port 0 picks a free port, see port()).
  GrpcApiServer(node::Node* node, std::string address);
  ~GrpcApiServer();
  GrpcApiServer(const GrpcApiServer&) = delete;
  GrpcApiServer& operator=(const GrpcApiServer&) = delete;

  // Binds the address and starts serving. Unavailable when the address is in use or not local.
  Status Start();
  // Ends every wait and open watch at once (watches end with UNAVAILABLE), lets calls in flight
  // answer (bounded), and stops listening. Idempotent; also run by the destructor.
  void Stop();
  // The bound port (after Start).
  uint16_t port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::grpcapi
