// Inbound: the receiving side of replication across all of a region's peers, as a state machine
// with no I/O (docs/replication.md). It wraps Links (relays, backoff) with the rules the transport
// applies around each stream: a stream counts as connected at its first message; a Subscribe goes
// again, on the next message, when the relays change what the link carries; an Ack goes after a
// heartbeat or an applied batch when the frontier moved since the stream's last Ack (or for a
// batch of duplicates, which the sender is waiting for); a batch that could not be applied or that
// showed a gap ends the stream, which redials after the backoff and subscribes from the frontier.
//
// Hedging: a peer may have up to three streams at once. A dial not answered within the link's
// hedge time, or a connected stream silent for silence_timeout_ms (quiet: its link counts as down
// from then on, so relays start as before), gets another dial beside it; the first of them to
// deliver a message keeps the link and the others are cancelled. On a lossy path, where a dial's
// answer or a stream's next message can be held up for seconds behind a lost packet, the link
// waits for the fastest of them instead of for a timeout. A connected stream silent for twice the
// silence timeout, or a dial unanswered for its dial timeout, is cancelled. Only when a peer's
// last stream ends does the link back off before the next dial.
//
// The gRPC transport and the simulator both drive it.
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

  // A new stream to the peer is being dialled: its id and what its first Subscribe asks for.
  struct Dial {
    uint64_t stream = 0;
    std::vector<core::RegionId> origins;
  };
  Dial Dialing(core::RegionId peer, uint64_t now_ms);
  // The origins a Subscribe on the stream asks for now; clears a pending resubscription.
  std::vector<core::RegionId> Subscription(uint64_t stream);

  // A message arrived on the stream.
  struct Arrival {
    bool first = false;            // the stream's first message: it is the peer's link now
    bool stale = false;            // the stream lost to another and is being cancelled: ignore it
    std::vector<uint64_t> cancel;  // other streams of the peer to cancel (they lost)
  };
  Arrival Received(uint64_t stream, uint64_t now_ms);
  // A batch arrived (before it is applied).
  void BatchReceived(uint64_t stream, uint64_t now_ms);
  // A heartbeat arrived with the peer's frontier. Returns the Ack to send, if any: `applied`
  // (this region's frontier) when it moved since the stream's last Ack.
  std::optional<core::VersionVector> HeartbeatReceived(uint64_t stream,
                                                       const core::VersionVector& frontier,
                                                       const core::VersionVector& applied,
                                                       uint64_t now_ms);
  // The stream's peer cannot serve `origin`'s events from `wanted_seq` on (Links::Behind).
  void BehindRetention(uint64_t stream, core::RegionId origin, uint64_t wanted_seq);
  // True when the stream must send a new Subscribe (after handling a message).
  bool ResubscribeDue(uint64_t stream) const;

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
  AfterApply BatchApplied(uint64_t stream, const Applied& applied,
                          const core::VersionVector& frontier, uint64_t now_ms);

  // The stream ended, for any reason. Returns the delay before the peer's next dial, or nullopt
  // when another stream of the peer is still open (its end redials). `unit` is uniform in
  // [0, 1) from the caller's random source.
  std::optional<uint64_t> Ended(uint64_t stream, uint64_t now_ms, double unit);

  // The periodic tick: recomputes relays for `applied`. Returns the peers whose streams must
  // subscribe again (their origin set changed; done on their next message), the streams that
  // went silent (to cancel; each then ends), the connected streams that just went quiet (kept,
  // but their link counts as down) and the peers to dial now beside a stream that is slow to
  // answer (hedges).
  struct Tick {
    std::vector<core::RegionId> changed;
    std::vector<uint64_t> silent;
    std::vector<uint64_t> quiet;
    std::vector<core::RegionId> hedge;
  };
  Tick OnTick(const core::VersionVector& applied, uint64_t now_ms);

  // --- rebuilding (docs/replication.md#rebuilding) ---
  // Follows this region's own origin, `self`. Every heartbeat's frontier then tells how much of
  // it the peer holds. With `confirm` (the data directory started empty or as a copy), the region
  // is rebuilding until every peer has told; and whenever a peer holds more of `self` than this
  // region has applied, it is rebuilding until it has it back. Meanwhile every Subscribe asks for
  // `self` too (streams resubscribe when that changes). Call once, before the first dial.
  void FollowOwnOrigin(core::RegionId self, bool confirm, uint64_t own_seq);
  struct Rebuild {
    bool rebuilding = false;
    bool confirming = false;              // still waiting to hear from some peer
    uint64_t applied = 0;                 // this region's own seq applied here
    uint64_t target = 0;                  // the highest own seq any peer said it holds
    std::vector<core::RegionId> heard;    // peers that told (since the start)
    std::vector<core::RegionId> waiting;  // peers not heard from yet (while confirming)
    std::optional<core::RegionId> ahead;  // a peer that holds `target`
    bool operator==(const Rebuild&) const = default;
  };
  Rebuild Rebuilding() const;
  bool rebuilding() const;

  // The peer a stream belongs to; 0 when the stream is unknown (ended).
  core::RegionId PeerOf(uint64_t stream) const;
  // How long the stream had to be silent to be cut (for logs).
  uint64_t TimeoutMs(uint64_t stream) const;
  // True when another stream of the peer answered first and this one is being cancelled.
  bool GaveWay(uint64_t stream) const;
  // Streams open to the peer (dialling or connected).
  size_t StreamsOf(core::RegionId peer) const;
  const Links& links() const { return links_; }

 private:
  struct Stream {
    core::RegionId peer = 0;
    uint64_t started_ms = 0;
    uint64_t heard_ms = 0;   // the last message, or the dial
    bool connected = false;  // it has delivered a message
    bool quiet = false;      // connected, then silent for silence_timeout_ms
    bool lost = false;       // another stream of the peer won the link: being cancelled
    bool cut = false;        // silent too long: being cancelled
    bool resubscribe = false;
    bool live() const { return !lost && !cut; }
    core::VersionVector acked;  // the frontier of the stream's last Ack
  };
  std::optional<core::VersionVector> AckIfMoved(Stream& stream, const core::VersionVector& applied,
                                                bool always);
  Stream* Find(uint64_t stream);
  const Stream* Find(uint64_t stream) const;
  // Marks every other live stream of `peer` cancelled and lists them in `out`.
  void CancelOthers(core::RegionId peer, uint64_t keep, std::vector<uint64_t>* out);

  // The origins a Subscribe to `peer` asks for: the relays, and this region's own while
  // rebuilding.
  std::vector<core::RegionId> OriginsFor(core::RegionId peer) const;
  // Following with confirmation, and some peer has not told yet.
  bool Confirming() const {
    return following_ && confirm_ && own_held_.size() < links_.peers().size();
  }
  // Notes this region's own applied seq (and a peer's holding of it); marks every live stream to
  // resubscribe when rebuilding starts or ends.
  void NoteOwn(const core::VersionVector& applied, std::optional<core::RegionId> peer,
               const core::VersionVector* peer_frontier);

  Links links_;
  core::RegionId self_ = 0;
  bool following_ = false;  // FollowOwnOrigin was called
  bool confirm_ = false;
  uint64_t own_applied_ = 0;
  std::map<core::RegionId, uint64_t> own_held_;  // per peer heard: its seq of self
  std::map<uint64_t, Stream> streams_;           // by id: every stream between Dialing and Ended
  std::map<core::RegionId, uint64_t> last_dial_ms_;
  uint64_t next_stream_ = 1;
};

}  // namespace meridian::replication
