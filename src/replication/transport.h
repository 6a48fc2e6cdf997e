// The replication transport: the thin gRPC layer around the protocol's state machine,
// replication::Exchange (docs/replication.md specifies the protocol). It is one of the exchange's
// two drivers (the simulator is the other), and reaches the node only through
// replication::Host.
//
//   - Server: serves `Replication.Stream` on this region's replication address. Each stream is
//     one subscriber; the exchange decides what to read from the log and send, the handler thread
//     reads the log, encodes batches and writes them (gRPC's flow control blocks it when the
//     subscriber is slow; the region's own writes never wait on it). `Replication.Snapshot`
//     serves re-seeding regions (replication::SnapshotServer).
//   - Links: a thread per dial connects to a peer, subscribes with this region's frontier,
//     applies each batch through the node's commit thread (durable, with the frontier, in one
//     store batch), then acknowledges it as the exchange says; when the stream ends, the
//     exchange says when to dial again. A ticker thread runs the exchange's tick (relays,
//     silence, hedges) and log retention.
#pragma once

#include <memory>

#include "meridian/status.h"
#include "replication/host.h"

namespace meridian::replication {

class Replicator {
 public:
  // `host`: the region node (node::ReplicationHost); it outlives the Replicator.
  explicit Replicator(Host* host);
  ~Replicator();
  Replicator(const Replicator&) = delete;
  Replicator& operator=(const Replicator&) = delete;

  // Listens on this region's replication address and starts dialling every peer.
  Status Start();
  // Closes every stream and joins every thread. Idempotent.
  void Stop();
  uint16_t port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::replication
