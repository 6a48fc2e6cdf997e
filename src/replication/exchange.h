// Exchange: one region's side of replication with all of its peers, as one state machine with no
// I/O (docs/replication.md), in the shape of etcd-io/raft's `Ready`. Messages that arrive,
// batches the commit path applied, subscriptions, acknowledgements and ticks go in, each with the
// time; what to do comes out: messages to send, batches to submit, streams to cancel, dials to
// start, acknowledgements and refusals to report, how far log retention may trim, when to wake.
// The gRPC transport (src/replication/transport.cc) and the simulator (src/sim/simulation.cc) are
// two drivers of this one exchange: every rule of the protocol is written here, once, and the
// simulator runs exactly what ships.
//
// Two kinds of streams, each named by the driver's id:
//   - receiving streams: this region dialled a peer and subscribes to it (Inbound and Links
//     decide relays, hedges, silence, backoff and rebuilding);
//   - serving streams: a peer subscribed here; an Outbound per stream decides what to read from
//     the log and send, and when to send a heartbeat.
//
// Order the driver must follow with a Ready (each step only after the one before):
//   1. `fence`: stop committing anything the listed receiving streams queued (they were streams
//      of an earlier incarnation of their peer), and wait until the commit path can no longer
//      apply it; only then answer the subscription that caused it.
//   2. `submit`: queue the batch for the commit path (durably applied, then BatchApplied).
//   3. `observe`: hand the peer's frontier to the merge engine (core stability) — before an Ack
//      that depends on it is sent.
//   4. `rebuild`: close or open the region's write gate as it says (writes refused while
//      rebuilding), and record `rebuilt` in the data directory when it ends.
//   5. `sends` in order, per stream; `cancel` the listed streams (each then reports Ended).
//   6. `dials`: dial each peer after its delay (the driver calls Dialing when it does).
//   7. `reports`: status and metrics only; nothing depends on their order.
// Not thread-safe: the transport holds one mutex around every call.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/event.h"
#include "core/version_vector.h"
#include "meridian/replication.pb.h"
#include "replication/inbound.h"
#include "replication/outbound.h"

namespace meridian::replication {

inline constexpr uint32_t kProtocolVersion = 1;

// What a peer's requests may hold at most (docs/replication.md#what-a-peer-may-do): a request
// over them ends the stream or is refused, before anything is allocated for it.
inline constexpr size_t kVerifyNodesMax = 4096;    // tree nodes asked in one VerifyRequest
inline constexpr size_t kVerifyBucketsMax = 4096;  // buckets asked in one VerifyRequest
inline constexpr size_t kVerifyKeysMax = 4096;     // documents asked in one VerifyRequest

// Another region's events are checked for form, not against this region's [limits]: regions
// configured differently must still converge.
inline constexpr core::Limits kRemoteLimits{.key_bytes_max = 64 * 1024,
                                            .field_name_bytes_max = 64 * 1024,
                                            .value_bytes_max = 256 << 20,
                                            .document_bytes_max = 256 << 20,
                                            .fields_max = 1'000'000};

struct ExchangeOptions {
  std::string deployment;
  core::RegionId self = 0;
  uint64_t incarnation = 0;                     // this region's data directory incarnation
  std::map<core::RegionId, std::string> names;  // every region of the deployment, self included
  SenderOptions sender;
  LinkOptions links;
  // Batches of one receiving stream queued for the commit path at once: decoding the next
  // overlaps the commit, and a fast sender cannot queue without bound.
  size_t apply_queue_max = 16;
  // And their decoded bytes (about): a peer sending large batches cannot make a stream hold more
  // than this for the commit path (one batch is always let through, whatever its size).
  size_t apply_queue_bytes_max = 64 << 20;
  // An event whose HLC time is further ahead of this region's clock than this is not applied: it
  // is parked as a dead letter (docs/replication.md#what-a-peer-may-do), so that one region's
  // broken clock, or a hostile peer, cannot drag every region's clock into the future.
  uint64_t hlc_ahead_max_ms = 60'000;
  // A peer with no stream here and no acknowledgement for this long stops holding the log
  // (it re-seeds when it returns).
  uint64_t retention_hold_ms = 14ull * 24 * 3600 * 1000;
  uint64_t tick_ms = 50;  // how often the driver calls Tick
  // Stuck behind a peer's log retention this long (Links::StuckSinceMs), the region re-seeds
  // from a peer's snapshot, merged as state (docs/replication.md#re-seeding). 0: never.
  uint64_t reseed_after_ms = 30'000;
};

// The newest event of an origin a region holds (a heartbeat carries them: lag and visibility).
struct OriginHead {
  core::RegionId origin = 0;
  uint64_t seq = 0;
  core::HlcTimestamp hlc = 0;  // 0: unknown (the holder restarted since)
};

// Why a subscription is refused: the gRPC status the transport answers with.
struct Refusal {
  enum class Code { kInvalidArgument, kPermissionDenied, kFailedPrecondition, kAlreadyExists };
  Code code = Code::kInvalidArgument;
  std::string message;
  bool identity = false;  // a mismatch of deployment, region or incarnation: reported as refused
};

struct Ready {
  std::vector<uint64_t> fence;  // receiving streams: drop what they queued (step 1)
  struct Submit {
    uint64_t stream = 0;
    core::RegionId origin = 0;
  };
  std::optional<Submit> submit;  // the batch just decoded (step 2)
  struct Observe {
    core::RegionId peer = 0;
    core::VersionVector frontier;
  };
  std::optional<Observe> observe;           // step 3
  std::optional<Inbound::Rebuild> rebuild;  // changed (step 4)
  bool rebuilt = false;                     // rebuilding just ended (record it)
  struct ToSender {
    uint64_t stream = 0;  // a receiving stream
    wire::ToSender message;
  };
  std::vector<ToSender> sends;  // step 5
  struct Cancel {
    uint64_t stream = 0;  // a receiving stream
    std::string why;
  };
  std::vector<Cancel> cancel;
  struct Dial {
    core::RegionId peer = 0;
    uint64_t delay_ms = 0;
    bool hedge = false;  // beside a slow stream of the peer
  };
  std::vector<Dial> dials;  // step 6

  // --- reports (step 7) ---
  bool links_changed = false;  // Links::Views changed
  struct Acked {
    core::RegionId peer = 0;
    core::VersionVector frontier;
  };
  std::vector<Acked> acked;  // a subscriber acknowledged (durability waits)
  // A subscriber is a new incarnation: what it acknowledged before no longer counts.
  std::vector<core::RegionId> forgotten;
  std::vector<OriginHead> heads_heard;
  struct Refused {
    core::RegionId peer = 0;
    std::string why;
  };
  std::vector<Refused> refused;
  std::vector<core::RegionId> accepted;      // a stream of the peer passed the identity checks
  std::vector<core::RegionId> reconnecting;  // the link to the peer was lost
  std::vector<core::RegionId> hedged;        // a second dial of the peer started
  struct Behind {
    core::RegionId peer = 0;
    core::RegionId origin = 0;
    uint64_t wanted = 0;
    uint64_t oldest = 0;
  };
  std::optional<Behind> behind;  // this region is behind the peer's retention
  // Re-seed now (the driver runs a replication::Reseeding, then calls Exchange::Reseeded): the
  // region is stuck behind its peers' retention. Every receiving stream is cancelled (in
  // `cancel`) and none is dialled until Reseeded; serving streams go on. `reseed_from`: the peers
  // to ask, best first (Links::ReseedSources).
  bool reseed = false;
  std::vector<core::RegionId> reseed_from;
  struct Note {
    enum class Level { kDebug, kInfo, kWarn, kError };
    Level level = Level::kInfo;
    std::string text;
  };
  std::vector<Note> notes;  // the transport logs them, the simulator traces them

  void Log(Note::Level level, std::string text) { notes.push_back({level, std::move(text)}); }
};

class Exchange {
 public:
  Exchange(ExchangeOptions options, uint64_t now_ms);

  std::string NameOf(core::RegionId id) const;
  std::vector<core::RegionId> peers() const { return inbound_.links().peers(); }
  const ExchangeOptions& options() const { return options_; }

  // --- starting ---------------------------------------------------------------------------
  // Starts following the peers from `applied` (docs/replication.md#rebuilding: with `confirm`,
  // the data directory started empty or as a copy). Dials every peer at once.
  Ready Start(const core::VersionVector& applied, bool confirm);
  // Start without the dials: the region follows its own origin (and is gated while rebuilding)
  // but dials no peer yet, as while it is re-seeded; Start follows.
  Ready Follow(const core::VersionVector& applied, bool confirm);
  // A re-seed is over (one at start, before Start, or one Tick asked for, Ready::reseed): starts
  // following the peers, or dials every peer again.
  Ready Reseeded(const core::VersionVector& applied, bool confirm);
  bool paused() const { return paused_; }

  // --- receiving streams ------------------------------------------------------------------
  // The driver dials `peer` now: the stream's id and its first message (a Subscribe).
  struct Dialed {
    uint64_t stream = 0;
    wire::ToSender subscribe;
  };
  Dialed Dialing(core::RegionId peer, const core::VersionVector& applied, uint64_t now_ms);
  // A message arrived on a receiving stream. For a batch, `decode` comes back true: the driver
  // decodes it with the stream's decoder and calls Decoded.
  Ready Received(uint64_t stream, const wire::ToReceiver& message,
                 const core::VersionVector& applied, uint64_t now_ms, bool* decode);
  // A batch of `origin` decoded (or failed to; DecodeRemoteBatch): submit it, or cancel the
  // stream. Events the decoder parked (docs/replication.md#dead-letters) do not end the stream:
  // they are submitted with the others, and the commit path parks them as dead letters. Events
  // whose HLC time is more than options().hlc_ahead_max_ms ahead of `wall_ms` (this region's
  // physical clock) are parked here the same way, and a parked event's HLC that far ahead is
  // cleared, so that the commit path's clock never observes it.
  Ready Decoded(uint64_t stream, core::RegionId origin, Result<core::RemoteBatch>* events,
                uint64_t wall_ms);
  // Whether the stream may queue another batch for the commit path now (the apply-queue bounds,
  // in batches and bytes); the driver reads no further from the stream while it may not.
  bool Room(uint64_t stream) const;
  // One of the stream's batches was committed (or failed to be). `last` is false when more of
  // the stream's batches are already applied and waiting to be answered: one Ack covers them.
  // `error`: why the commit failed (applied.ok false).
  Ready BatchApplied(uint64_t stream, core::RegionId origin, const Inbound::Applied& applied,
                     const std::string& error, const core::VersionVector& frontier,
                     uint64_t now_ms);
  // The stream ended, for any reason: `why` ("refused: ..." when the peer refused this region).
  Ready Ended(uint64_t stream, const std::string& why, uint64_t now_ms, double unit);

  // --- serving streams --------------------------------------------------------------------
  // A peer's first message on a new serving stream: a Refusal ends the stream (the driver
  // answers with it), else the stream is served and reported by ServingEnded when it ends.
  // `authenticated`: the region the peer's certificate names (mutual TLS, docs/security.md), or
  // nullopt when the deployment runs without TLS; a message claiming another region is refused.
  // The same holds for SnapshotRequested and VerifyRequested.
  struct Served {
    std::optional<Refusal> refusal;
    Ready ready;
  };
  Served Subscribed(uint64_t serving, const wire::Subscribe& subscribe,
                    std::optional<core::RegionId> authenticated, uint64_t now_ms);
  // A later message of the subscriber (a new Subscribe, or an Ack). False: malformed, end it
  // (the reason is in `ready`'s notes). An Ack is believed only as far as the subscriber can
  // hold (docs/replication.md#what-a-peer-may-do): of this region's own events and of the origins
  // the stream carries, what the stream sent or the subscriber held when it subscribed; of any
  // origin, what this region holds.
  bool FromSubscriber(uint64_t serving, const wire::ToSender& message, uint64_t now_ms,
                      Ready* ready);
  // The serving stream ended.
  void ServingEnded(uint64_t serving);

  // What the serving stream should send now, for the sender's applied frontier `heads`.
  struct Outgoing {
    std::optional<Outbound::Read> read;  // read these events from the log, then Sent or Missing
    bool heartbeat = false;              // send HeartbeatMessage, then HeartbeatSent
  };
  Outgoing Next(uint64_t serving, const core::VersionVector& heads, uint64_t now_ms);
  // Whether Next would answer something now, and when it may next without any input.
  bool Due(uint64_t serving, const core::VersionVector& heads, uint64_t now_ms) const;
  uint64_t WakeAtMs(uint64_t serving, const core::VersionVector& heads, uint64_t now_ms) const;
  // The batch read for `read` went out (counted before it leaves: an Ack cannot overtake it).
  void Sent(uint64_t serving, core::RegionId origin, uint64_t last_seq, size_t raw_bytes);
  // The log no longer holds what `read` asked for (retention trimmed it): the message to send.
  wire::ToReceiver Missing(uint64_t serving, const Outbound::Read& read, uint64_t oldest_seq,
                           Ready* ready);
  wire::ToReceiver HeartbeatMessage(const core::VersionVector& heads, core::HlcTimestamp hlc,
                                    const std::vector<OriginHead>& origin_heads) const;
  void HeartbeatSent(uint64_t serving, uint64_t now_ms);
  core::RegionId SubscriberOf(uint64_t serving) const;
  // Events of the stream's subscribed origins the sender holds and has not sent yet.
  uint64_t Backlog(uint64_t serving, const core::VersionVector& heads) const;

  // --- re-seeding -------------------------------------------------------------------------
  // Why a peer's snapshot request is refused, if it is; else what its earlier incarnation
  // acknowledged stops counting (it starts over).
  std::optional<Refusal> SnapshotRequested(const wire::SnapshotRequest& request,
                                           std::optional<core::RegionId> authenticated,
                                           Ready* ready);
  wire::SnapshotRequest SnapshotRequestMessage() const;

  // --- verification (replication/verify.h) -------------------------------------------------
  // Why a peer's verification request is refused, if it is: the identity checks of a
  // subscription.
  std::optional<Refusal> VerifyRequested(const wire::VerifyRequest& request,
                                         std::optional<core::RegionId> authenticated) const;
  // Adds this region's identity to a verification request it sends.
  void Identify(wire::VerifyRequest* request) const;

  // --- time -------------------------------------------------------------------------------
  // The periodic tick (every options().tick_ms): relays, silence, hedges, rebuilding.
  Ready Tick(const core::VersionVector& applied, uint64_t now_ms);

  // Log retention: what every peer that still holds the log back has acknowledged (the log may
  // be trimmed below it), or `applied` when none does. Reports peers newly released or back.
  core::VersionVector RetentionFloor(const core::VersionVector& applied, uint64_t now_ms,
                                     Ready* ready);

  // --- views ------------------------------------------------------------------------------
  const Inbound& inbound() const { return inbound_; }
  Inbound::Rebuild Rebuilding() const { return inbound_.Rebuilding(); }
  bool rebuilding() const { return inbound_.rebuilding(); }
  // How many other regions have acknowledged `dot` as durably applied.
  size_t RegionsHolding(core::Dot dot) const;
  // What the peer's acknowledgements are believed to say it holds (durability, retention).
  core::VersionVector Acked(core::RegionId peer) const;
  // Acknowledgements of the peer that claimed more of this region's own events than this region
  // had written: not believed, and counted here.
  uint64_t Overclaims(core::RegionId peer) const;
  // This region's applied frontier as the driver last told it (Start, Received, Next, Tick, ...).
  const core::VersionVector& heads() const { return heads_; }
  const std::vector<core::RegionId>& released() const { return released_; }
  uint64_t IncarnationOf(core::RegionId peer) const;

 private:
  // A receiving stream, beside Inbound's view of it.
  struct Receiving {
    core::RegionId peer = 0;
    uint64_t incarnation = 0;  // the peer's, from its first heartbeat (0: not yet)
    bool connected = false;
    // Batches submitted and not yet applied: about the decoded size of each, oldest first.
    std::deque<size_t> queued_bytes{};
    size_t queued_bytes_total = 0;
    uint64_t subscribes = 0;  // Subscribes sent on the stream (each carries its number)
    // Every origin a Subscribe on the stream asked for: the peer may send only those (a batch of
    // one asked for earlier may still be on its way after a resubscription).
    std::set<core::RegionId> asked;
  };
  // A peer as a subscriber of this region: what it acknowledged, for durability and retention.
  struct Subscriber {
    int streams = 0;           // its serving streams (an old one may still be closing)
    uint64_t incarnation = 0;  // of its latest subscription (0: none yet)
    uint64_t heard_ms = 0;     // its last subscription or acknowledgement
    core::VersionVector acked;
    uint64_t overclaims = 0;  // acknowledgements of own events beyond what this region wrote
  };
  struct Serving {
    explicit Serving(SenderOptions options) : outbound(options) {}
    core::RegionId peer = 0;
    uint64_t subscription = 0;  // the number of the last Subscribe taken (0: none numbered)
    Outbound outbound;
    // The most of each origin an Ack on the stream is believed for: the subscription frontiers
    // (within what this region held then) and every batch sent. Own origin and `origins` only.
    core::VersionVector sendable;
    std::set<core::RegionId> origins;  // the origins of the last Subscribe
    bool clamped = false;              // an Ack was clamped (noted once per stream)
  };

  template <typename Message>  // wire::Subscribe, wire::SnapshotRequest
  std::optional<Refusal> CheckSubscriber(const Message& message) const;
  // A message that claims `claimed` from a peer whose certificate names `authenticated`.
  std::optional<Refusal> CheckCertificate(std::optional<core::RegionId> authenticated,
                                          core::RegionId claimed) const;
  std::optional<std::string> CheckSender(core::RegionId peer, const wire::Heartbeat& beat) const;
  wire::ToSender SubscribeMessage(const std::vector<core::RegionId>& origins,
                                  const core::VersionVector& applied, uint64_t subscription) const;
  wire::ToSender AckMessage(const core::VersionVector& frontier) const;
  // Brings `ready` up to date with Inbound's rebuild, when it moved.
  void SyncRebuild(Ready* ready);
  // After handling a message of the stream: a Subscribe when the relays changed what it carries.
  void Resubscribe(uint64_t stream, const core::VersionVector& applied, Ready* ready);
  void Cancel(uint64_t stream, std::string why, Ready* ready);
  std::string Origins(const std::vector<core::RegionId>& origins) const;
  // Why a Subscribe cannot be taken as it is, if it cannot (an origin that is not a region id,
  // or one asked for twice).
  std::optional<std::string> CheckOrigins(const wire::Subscribe& subscribe) const;
  // What of `claim` (a subscription frontier or an Ack of the serving stream) is believed; credits
  // it to the subscriber and reports it.
  core::VersionVector Believe(Serving& serving, const core::VersionVector& claim, uint64_t now_ms,
                              Ready* ready);
  void NoteHeads(const core::VersionVector& heads) { heads_.Merge(heads); }
  Receiving* FindReceiving(uint64_t stream);
  Serving* FindServing(uint64_t serving);
  const Serving* FindServing(uint64_t serving) const;

  const ExchangeOptions options_;
  Inbound inbound_;
  std::map<uint64_t, Receiving> receiving_;
  std::map<uint64_t, Serving> serving_;
  std::map<core::RegionId, Subscriber> subscribers_;
  std::optional<Inbound::Rebuild> published_rebuild_;
  std::vector<core::RegionId> released_;
  // This region's applied frontier as far as the driver told it: nothing a peer acknowledges
  // beyond it is believed.
  core::VersionVector heads_;
  bool paused_ = false;  // re-seeding: no receiving stream, no dial (Ready::reseed)
};

}  // namespace meridian::replication
