// ReplicationBoard: what a node knows about replication, shared between the replication transport
// (which writes it) and the HTTP server (which reads it for /v1/status, /metrics, /readyz and
// durability=regions:N waits). Thread-safe; every method takes one short lock.
//
// Two directions per peer:
//   - outbound (this region serves the peer's subscription): what the peer has acknowledged as
//     durably applied — the basis of durability=regions:N and of log retention;
//   - inbound (this region subscribes to the peer): link state and relays (replication::Links),
//     what the peer's heartbeats say it holds, and per-origin visibility latency here.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/event.h"
#include "core/hlc.h"
#include "core/version_vector.h"
#include "node/metrics.h"
#include "node/region.h"
#include "replication/exchange.h"
#include "replication/host.h"
#include "replication/links.h"

namespace meridian::node {

using OriginHead = replication::OriginHead;

class ReplicationBoard final : public replication::StatusBoard {
 public:
  ReplicationBoard(core::RegionId self, std::map<core::RegionId, std::string> names,
                   Metrics* metrics);

  std::string NameOf(core::RegionId id) const;

  // --- this region's own commits (the commit listener) ---
  // Events committed here, local or remote: remembers each origin's newest HLC (for heartbeats).
  void NoteCommitted(std::span<const Change> changes);
  // The heads this region holds, for a heartbeat.
  std::vector<OriginHead> Heads(const core::VersionVector& frontier) const override;

  // --- outbound: streams this region serves ---
  // The replication exchange (replication::Exchange) accepted, or ended, a subscription of
  // `peer`'s data directory incarnation `incarnation`; it decides, this shows.
  void SubscriberAttached(core::RegionId peer, uint64_t incarnation) override;
  void SubscriberDetached(core::RegionId peer) override;
  void Acked(core::RegionId peer, const core::VersionVector& applied) override;
  // The peers log retention no longer waits for (Exchange::released).
  void SetReleased(std::vector<core::RegionId> released) override;
  // The log's size and how far retention has trimmed each origin, for /v1/status.
  void SetRetention(uint64_t log_bytes, const core::VersionVector& trimmed_through) override;
  // How many other regions have acknowledged `dot` as durably applied.
  size_t RegionsHolding(core::Dot dot) const;
  void BatchSent(core::RegionId peer, size_t events, size_t wire_bytes, size_t raw_bytes) override;
  void SubscriberBehindRetention(core::RegionId peer, core::RegionId origin, uint64_t wanted,
                                 uint64_t oldest) override;

  // --- inbound: streams this region subscribes to ---
  void LinksChanged(std::vector<replication::Links::View> views, size_t relays_active) override;
  void Reconnecting(core::RegionId peer) override;
  // A second dial of the peer started beside a slow or quiet stream (replication::Inbound).
  void Hedged(core::RegionId peer) override;
  void HeadsHeard(std::span<const OriginHead> heads) override;
  void BatchReceived(core::RegionId peer, size_t events, size_t wire_bytes,
                     size_t raw_bytes) override;
  // Events of `origin` became readable here at now_ms: their visibility latency.
  void Visible(core::RegionId origin, std::span<const core::HlcTimestamp> hlcs,
               uint64_t now_ms) override;
  // Events of `origin` arrived here (their batch decoded) at now_ms, before they were applied.
  void Arrived(core::RegionId origin, std::span<const core::HlcTimestamp> hlcs,
               uint64_t now_ms) override;
  void BehindRetention(core::RegionId peer, core::RegionId origin, uint64_t wanted,
                       uint64_t oldest) override;
  // A stream to or from the peer was refused (another deployment or region, two incarnations at
  // once): shown in /v1/status and /readyz until a stream of the peer is accepted.
  void Refused(core::RegionId peer, std::string reason) override;
  void Accepted(core::RegionId peer) override;

  // --- rebuilding (replication::Inbound::Rebuilding) ---
  // `status` is shown as /v1/status "rebuild"; while `rebuilding`, /readyz names `problem`.
  void SetRebuild(nlohmann::json status, std::string problem) override;
  // The re-seed's progress (/v1/status "reseed"); `problem`, when not empty, is a /readyz reason.
  void SetReseed(nlohmann::json status, std::string problem) override;
  // `peer` starts over as a new incarnation: what it acknowledged before stops counting at once.
  void ForgetAcknowledgements(core::RegionId peer) override;

  // --- verification (docs/verification.md) ---
  void Verified(const replication::VerifyResult& result) override;
  std::optional<core::RegionId> TakeVerifyRequest() override;
  // An operator asks for comparisons now with `peer` (0: every peer).
  void RequestVerify(core::RegionId peer);
  // GET /v1/verify's "peers": the latest comparison with each peer (now_ms: wall clock, for ages).
  nlohmann::json VerifyJson() const;

  // --- views ---
  // {"peers": [...], "origins": {...}, "relays_active": N}, merged into /v1/status.
  nlohmann::json StatusJson(const core::VersionVector& applied, uint64_t now_ms) const;
  // Why replication is not healthy (for /readyz); empty when it is.
  // `applied`: this region's frontier (a peer's "behind retention" stops counting once this
  // region holds what it wanted, through any other peer).
  std::vector<std::string> Problems(const core::VersionVector& applied) const;
  // Brings the replication gauges up to date before a scrape.
  void UpdateGauges(const core::VersionVector& applied) const;

 private:
  struct Peer {
    // outbound
    int subscriptions = 0;  // its streams this region serves (an old one may still be closing)
    core::VersionVector acked;
    uint64_t sent_batches = 0, sent_events = 0, sent_wire = 0, sent_raw = 0;
    std::string subscriber_behind;  // non-empty: why we cannot serve it
    uint64_t incarnation = 0;       // of its latest subscription (0: none yet)
    std::string refused;            // non-empty: why its streams were refused
    // inbound
    replication::Links::View link;
    uint64_t received_batches = 0, received_events = 0, received_wire = 0, received_raw = 0;
    uint64_t reconnects = 0;
    uint64_t hedges = 0;
    std::string behind;       // non-empty: we fell behind the peer's retention
    core::Dot behind_wanted;  // the event it could not serve: moot once this region applied it
  };
  // Latencies of the last kSlots seconds at 1 ms resolution (4 s and more share the last
  // bucket): constant memory and time per sample, quantiles without sorting.
  class LatencyWindow {
   public:
    void Add(uint64_t now_ms, uint64_t latency_ms);
    struct Summary {
      uint64_t p50 = 0, p99 = 0, count = 0;
    };
    Summary Summarize(uint64_t now_ms) const;

   private:
    static constexpr size_t kSlots = 10;  // seconds
    static constexpr size_t kBuckets = 4096;
    struct Slot {
      uint64_t second = 0;
      uint64_t count = 0;
      std::vector<uint32_t> buckets;
    };
    std::array<Slot, kSlots> slots_;
  };
  struct Origin {
    uint64_t head_seq = 0;               // newest known anywhere (heartbeats, own commits)
    core::HlcTimestamp head_hlc = 0;     // its HLC, when known
    core::HlcTimestamp applied_hlc = 0;  // newest applied here
    LatencyWindow visibility;            // the last ten seconds
    LatencyWindow arrival;               // the same, when the batch arrived
  };
  // Adds the latencies of `hlcs` at now_ms to `origin`'s window and histogram of that kind.
  void ObserveLatencies(Metrics::Latency latency, core::RegionId origin,
                        std::span<const core::HlcTimestamp> hlcs, uint64_t now_ms);
  // Lag of an origin here: events and milliseconds behind the newest known event.
  std::pair<uint64_t, uint64_t> LagOf(core::RegionId origin, const Origin& state,
                                      const core::VersionVector& applied) const;

  const core::RegionId self_;
  const std::map<core::RegionId, std::string> names_;
  Metrics* const metrics_;
  mutable std::mutex mutex_;
  std::map<core::RegionId, Peer> peers_;
  std::map<core::RegionId, replication::VerifyResult> verified_;  // the latest, per peer
  std::map<core::RegionId, uint64_t> verified_at_ms_;             // when (wall clock)
  std::optional<core::RegionId> verify_asked_;
  std::map<core::RegionId, Origin> origins_;
  size_t relays_active_ = 0;
  nlohmann::json rebuild_ = nlohmann::json::object();
  std::string rebuild_problem_;
  nlohmann::json reseed_ = nlohmann::json::object();
  std::string reseed_problem_;
  uint64_t log_bytes_ = 0;
  std::vector<core::RegionId> released_;  // as of the last SetReleased
  core::VersionVector trimmed_through_;
};

}  // namespace meridian::node
