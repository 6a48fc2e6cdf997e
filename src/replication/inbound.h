// Inbound: the receiving side of replication across all of a region's peers, as a state machine
// with no I/O (docs/replication.md). It wraps Links (relays, backoff, silence) with the rules the
// transport applies around each stream: a stream counts as connected at its first message; a
// Subscribe goes again, on the next message, when the relays change what the link carries; an
// Ack goes after a heartbeat or an applied batch when the frontier moved since the stream's last
// Ack (or for a batch of duplicates, which the sender is waiting for); a batch that could not be
// applied or that showed a gap ends the stream, which redials after the backoff and subscribes
// from the frontier. The gRPC transport and the simulator both drive it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "core/version_vector.h"
#include "replication/links.h"

namespace meridian::replication {

class Inbound {
 public:
  Inbound(const std::vector<core::RegionId>& peers, LinkOptions options, uint64_t now_ms);

  // A new stream to the peer is being dialled: what its first Subscribe asks for.
  std::vector<core::RegionId> Dialing(core::RegionId peer, uint64_t now_ms);
  // The origins a Subscribe on the peer's stream asks for now; clears a pending resubscription.
  std::vector<core::RegionId> Subscription(core::RegionId peer);

  // A message arrived on the peer's stream; true when it is the stream's first (the link is up).
  bool Received(core::RegionId peer, uint64_t now_ms);
  // A batch arrived (before it is applied).
  void BatchReceived(core::RegionId peer, uint64_t now_ms);
  // A heartbeat arrived with the peer's frontier. Returns the Ack to send, if any: `applied`
  // (this region's frontier) when it moved since the stream's last Ack.
  std::optional<core::VersionVector> HeartbeatReceived(core::RegionId peer,
                                                       const core::VersionVector& frontier,
                                                       const core::VersionVector& applied,
                                                       uint64_t now_ms);
  // True when the peer's stream must send a new Subscribe (after handling a message).
  bool ResubscribeDue(core::RegionId peer) const;

  // One of the stream's batches was committed (or failed to be). `last` is false when more of
  // the stream's batches are already applied and waiting to be answered: one Ack covers them all.
  struct Applied {
    bool ok = true;         // false: the commit failed
    size_t gaps = 0;        // events past a missing predecessor: not applied
    size_t duplicates = 0;  // events already applied here
    bool last = true;
  };
  struct AfterApply {
    std::optional<core::VersionVector> ack;  // the Ack to send
    bool end = false;                        // end the stream (it redials and resubscribes)
  };
  AfterApply BatchApplied(core::RegionId peer, const Applied& applied,
                          const core::VersionVector& frontier, uint64_t now_ms);

  // The peer's stream ended, for any reason. Returns the delay before the next dial: `unit` is
  // uniform in [0, 1) from the caller's random source.
  uint64_t Ended(core::RegionId peer, uint64_t now_ms, double unit);

  // The periodic tick: recomputes relays for `applied`. Returns the peers whose streams must
  // subscribe again (their origin set changed; done on their next message) and the peers whose
  // streams, dialling or connected, went silent (to cancel; each then ends).
  struct Tick {
    std::vector<core::RegionId> changed;
    std::vector<core::RegionId> silent;
  };
  Tick OnTick(const core::VersionVector& applied, uint64_t now_ms);

  const Links& links() const { return links_; }

 private:
  struct Stream {
    bool active = false;  // between Dialing and Ended
    bool connected = false;
    bool resubscribe = false;
    core::VersionVector acked;  // the frontier of the stream's last Ack
  };
  std::optional<core::VersionVector> AckIfMoved(Stream& stream, const core::VersionVector& applied,
                                                bool always);

  Links links_;
  std::map<core::RegionId, Stream> streams_;
};

}  // namespace meridian::replication
