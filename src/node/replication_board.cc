#include "node/replication_board.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>

namespace meridian::node {
namespace {

uint64_t SteadyMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

void ReplicationBoard::LatencyWindow::Add(uint64_t now_ms, uint64_t latency_ms) {
  const uint64_t second = now_ms / 1000;
  Slot& slot = slots_[second % kSlots];
  if (slot.second != second || slot.buckets.empty()) {
    slot.second = second;
    slot.count = 0;
    slot.buckets.assign(kBuckets, 0);
  }
  ++slot.buckets[std::min<uint64_t>(latency_ms, kBuckets - 1)];
  ++slot.count;
}

ReplicationBoard::LatencyWindow::Summary ReplicationBoard::LatencyWindow::Summarize(
    uint64_t now_ms) const {
  const uint64_t second = now_ms / 1000;
  std::vector<uint64_t> merged(kBuckets, 0);
  Summary summary;
  for (const Slot& slot : slots_) {
    if (slot.buckets.empty() || slot.second + kSlots <= second || slot.second > second) continue;
    for (size_t i = 0; i < kBuckets; ++i) merged[i] += slot.buckets[i];
    summary.count += slot.count;
  }
  const auto quantile = [&](double q) -> uint64_t {
    const uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(summary.count));
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += merged[i];
      if (seen > rank) return i;
    }
    return kBuckets - 1;
  };
  if (summary.count > 0) {
    summary.p50 = quantile(0.5);
    summary.p99 = quantile(0.99);
  }
  return summary;
}

ReplicationBoard::ReplicationBoard(core::RegionId self, std::map<core::RegionId, std::string> names,
                                   Metrics* metrics)
    : self_(self), names_(std::move(names)), metrics_(metrics) {
  for (const auto& [id, name] : names_) {
    if (id == self_) continue;
    peers_[id].link.peer = id;
  }
}

std::string ReplicationBoard::NameOf(core::RegionId id) const {
  return core::RegionName(names_, id);
}

void ReplicationBoard::NoteCommitted(std::span<const Change> changes) {
  std::lock_guard lock(mutex_);
  for (const Change& change : changes) {
    Origin& origin = origins_[change.dot.origin];
    origin.applied_hlc = std::max(origin.applied_hlc, change.hlc);
    if (change.dot.seq >= origin.head_seq) {
      origin.head_seq = change.dot.seq;
      origin.head_hlc = std::max(origin.head_hlc, change.hlc);
    }
  }
}

std::vector<OriginHead> ReplicationBoard::Heads(const core::VersionVector& frontier) const {
  std::lock_guard lock(mutex_);
  std::vector<OriginHead> heads;
  for (const auto& entry : frontier.entries()) {
    auto it = origins_.find(entry.origin);
    heads.push_back({entry.origin, entry.seq, it == origins_.end() ? 0 : it->second.applied_hlc});
  }
  return heads;
}

void ReplicationBoard::SubscriberAttached(core::RegionId peer, uint64_t incarnation) {
  std::lock_guard lock(mutex_);
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  it->second.incarnation = incarnation;
  ++it->second.subscriptions;
  it->second.subscriber_behind.clear();
}

void ReplicationBoard::SubscriberDetached(core::RegionId peer) {
  std::lock_guard lock(mutex_);
  if (auto it = peers_.find(peer); it != peers_.end() && it->second.subscriptions > 0) {
    --it->second.subscriptions;
  }
}

void ReplicationBoard::Acked(core::RegionId peer, const core::VersionVector& applied) {
  std::lock_guard lock(mutex_);
  if (auto it = peers_.find(peer); it != peers_.end()) it->second.acked.Merge(applied);
}

void ReplicationBoard::SetReleased(std::vector<core::RegionId> released) {
  std::lock_guard lock(mutex_);
  released_ = std::move(released);
}

void ReplicationBoard::SetRetention(uint64_t log_bytes,
                                    const core::VersionVector& trimmed_through) {
  std::lock_guard lock(mutex_);
  log_bytes_ = log_bytes;
  trimmed_through_ = trimmed_through;
}

size_t ReplicationBoard::RegionsHolding(core::Dot dot) const {
  std::lock_guard lock(mutex_);
  size_t count = 0;
  for (const auto& [id, peer] : peers_) {
    if (id == dot.origin || peer.acked.Get(dot.origin) >= dot.seq) ++count;
  }
  return count;
}

void ReplicationBoard::BatchSent(core::RegionId peer, size_t events, size_t wire_bytes,
                                 size_t raw_bytes) {
  std::lock_guard lock(mutex_);
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  ++it->second.sent_batches;
  it->second.sent_events += events;
  it->second.sent_wire += wire_bytes;
  it->second.sent_raw += raw_bytes;
}

void ReplicationBoard::SubscriberBehindRetention(core::RegionId peer, core::RegionId origin,
                                                 uint64_t wanted, uint64_t oldest) {
  std::lock_guard lock(mutex_);
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  it->second.subscriber_behind = NameOf(peer) + " wants " + NameOf(origin) + ":" +
                                 std::to_string(wanted) + " but the log here starts at " +
                                 NameOf(origin) + ":" + std::to_string(oldest);
}

void ReplicationBoard::LinksChanged(std::vector<replication::Links::View> views,
                                    size_t relays_active) {
  std::lock_guard lock(mutex_);
  for (replication::Links::View& view : views) {
    auto it = peers_.find(view.peer);
    if (it != peers_.end()) it->second.link = std::move(view);
  }
  relays_active_ = relays_active;
}

void ReplicationBoard::Reconnecting(core::RegionId peer) {
  std::lock_guard lock(mutex_);
  if (auto it = peers_.find(peer); it != peers_.end()) ++it->second.reconnects;
}

void ReplicationBoard::Hedged(core::RegionId peer) {
  std::lock_guard lock(mutex_);
  if (auto it = peers_.find(peer); it != peers_.end()) ++it->second.hedges;
}

void ReplicationBoard::HeadsHeard(std::span<const OriginHead> heads) {
  std::lock_guard lock(mutex_);
  for (const OriginHead& head : heads) {
    Origin& origin = origins_[head.origin];
    if (head.seq > origin.head_seq) {
      origin.head_seq = head.seq;
      origin.head_hlc = head.hlc;
    } else if (head.seq == origin.head_seq) {
      origin.head_hlc = std::max(origin.head_hlc, head.hlc);
    }
  }
}

void ReplicationBoard::BatchReceived(core::RegionId peer, size_t events, size_t wire_bytes,
                                     size_t raw_bytes) {
  std::lock_guard lock(mutex_);
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  ++it->second.received_batches;
  it->second.received_events += events;
  it->second.received_wire += wire_bytes;
  it->second.received_raw += raw_bytes;
  it->second.behind.clear();
}

void ReplicationBoard::ObserveLatencies(Metrics::Latency latency, core::RegionId origin,
                                        std::span<const core::HlcTimestamp> hlcs, uint64_t now_ms) {
  if (hlcs.empty()) return;
  std::vector<double> latencies;
  latencies.reserve(hlcs.size());
  {
    std::lock_guard lock(mutex_);
    Origin& state = origins_[origin];
    LatencyWindow& window =
        latency == Metrics::Latency::kArrival ? state.arrival : state.visibility;
    for (core::HlcTimestamp hlc : hlcs) {
      const uint64_t physical = core::HlcPhysicalMs(hlc);
      // A clock ahead of ours shows as zero, not as a negative latency.
      const uint64_t ms = now_ms > physical ? now_ms - physical : 0;
      window.Add(now_ms, ms);
      latencies.push_back(static_cast<double>(ms));
    }
  }
  metrics_->ObserveLatency(latency, NameOf(origin), latencies);
}

void ReplicationBoard::Visible(core::RegionId origin, std::span<const core::HlcTimestamp> hlcs,
                               uint64_t now_ms) {
  ObserveLatencies(Metrics::Latency::kVisibility, origin, hlcs, now_ms);
}

void ReplicationBoard::Arrived(core::RegionId origin, std::span<const core::HlcTimestamp> hlcs,
                               uint64_t now_ms) {
  ObserveLatencies(Metrics::Latency::kArrival, origin, hlcs, now_ms);
}

void ReplicationBoard::BehindRetention(core::RegionId peer, core::RegionId origin, uint64_t wanted,
                                       uint64_t oldest) {
  std::lock_guard lock(mutex_);
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  it->second.behind_wanted = core::Dot{origin, wanted};
  it->second.behind = "this region needs " + NameOf(origin) + ":" + std::to_string(wanted) +
                      " but " + NameOf(peer) + "'s log starts at " + NameOf(origin) + ":" +
                      std::to_string(oldest) + "; re-seed this region";
}

std::pair<uint64_t, uint64_t> ReplicationBoard::LagOf(core::RegionId origin, const Origin& state,
                                                      const core::VersionVector& applied) const {
  const uint64_t have = applied.Get(origin);
  uint64_t head = state.head_seq;
  for (const auto& [id, peer] : peers_) head = std::max(head, peer.link.frontier.Get(origin));
  if (head <= have) return {0, 0};
  uint64_t lag_ms = 0;
  if (state.head_hlc != 0 && state.applied_hlc != 0) {
    const uint64_t newest = core::HlcPhysicalMs(state.head_hlc);
    const uint64_t applied_ms = core::HlcPhysicalMs(state.applied_hlc);
    lag_ms = newest > applied_ms ? newest - applied_ms : 0;
  }
  return {head - have, lag_ms};
}

nlohmann::json ReplicationBoard::StatusJson(const core::VersionVector& applied,
                                            uint64_t now_ms) const {
  std::lock_guard lock(mutex_);
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& [id, peer] : peers_) {
    auto origin = origins_.find(id);
    const auto [lag_events, lag_ms] =
        LagOf(id, origin == origins_.end() ? Origin{} : origin->second, applied);
    nlohmann::json relaying = nlohmann::json::array();
    for (core::RegionId relayed : peer.link.relaying) relaying.push_back(NameOf(relayed));
    nlohmann::json acked = nlohmann::json::object();
    for (const auto& entry : peer.acked.entries()) acked[NameOf(entry.origin)] = entry.seq;
    nlohmann::json entry = {
        {"name", NameOf(id)},
        {"id", id},
        {"connected", peer.link.connected},
        {"state_for_ms", SteadyMs() - std::min(SteadyMs(), peer.link.since_ms)},
        {"applied", applied.Get(id)},
        {"lag_events", lag_events},
        {"lag_ms", lag_ms},
        {"relaying", relaying},
        {"relayed_by",
         peer.link.relayed_by ? nlohmann::json(NameOf(*peer.link.relayed_by)) : nlohmann::json()},
        {"reconnects", peer.reconnects},
        {"hedges", peer.hedges},
        {"subscribed_to_us", peer.subscriptions > 0},
        {"acked", acked},
        {"sent",
         {{"batches", peer.sent_batches},
          {"events", peer.sent_events},
          {"wire_bytes", peer.sent_wire},
          {"raw_bytes", peer.sent_raw}}},
        {"received",
         {{"batches", peer.received_batches},
          {"events", peer.received_events},
          {"wire_bytes", peer.received_wire},
          {"raw_bytes", peer.received_raw}}}};
    if (!peer.behind.empty()) entry["behind_retention"] = peer.behind;
    if (!peer.subscriber_behind.empty())
      entry["subscriber_behind_retention"] = peer.subscriber_behind;
    if (!peer.refused.empty()) entry["refused"] = peer.refused;
    if (peer.incarnation != 0) entry["incarnation"] = fmt::format("{:016x}", peer.incarnation);
    peers.push_back(std::move(entry));
  }
  nlohmann::json origins = nlohmann::json::object();
  for (const auto& [id, state] : origins_) {
    if (id == self_) continue;
    const auto [lag_events, lag_ms] = LagOf(id, state, applied);
    const LatencyWindow::Summary visibility = state.visibility.Summarize(now_ms);
    const LatencyWindow::Summary arrival = state.arrival.Summarize(now_ms);
    origins[NameOf(id)] = {
        {"applied", applied.Get(id)},
        {"lag_events", lag_events},
        {"lag_ms", lag_ms},
        {"visibility_ms",
         {{"p50", visibility.p50}, {"p99", visibility.p99}, {"count", visibility.count}}},
        {"arrival_ms", {{"p50", arrival.p50}, {"p99", arrival.p99}, {"count", arrival.count}}}};
  }
  nlohmann::json trimmed = nlohmann::json::object();
  for (const auto& entry : trimmed_through_.entries()) trimmed[NameOf(entry.origin)] = entry.seq;
  nlohmann::json released = nlohmann::json::array();
  for (core::RegionId id : released_) released.push_back(NameOf(id));
  nlohmann::json held_by = nlohmann::json::array();
  for (const auto& [id, peer] : peers_) {
    // Peers that have not acknowledged everything held here keep it in the log.
    if (!peer.acked.Dominates(applied)) held_by.push_back(NameOf(id));
  }
  return {{"peers", peers},
          {"origins", origins},
          {"relays_active", relays_active_},
          {"rebuild", rebuild_},
          {"reseed", reseed_},
          {"retention",
           {{"log_bytes", log_bytes_},
            {"trimmed_through", trimmed},
            {"held_by", held_by},
            {"released", released}}}};
}

std::vector<std::string> ReplicationBoard::Problems(const core::VersionVector& applied) const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> problems;
  if (!reseed_problem_.empty()) {
    problems.push_back(reseed_problem_);
  } else if (!rebuild_problem_.empty()) {
    problems.push_back(rebuild_problem_);
  }
  for (const auto& [id, peer] : peers_) {
    if (!peer.behind.empty() && !applied.Covers(peer.behind_wanted)) {
      problems.push_back("replication: " + peer.behind);
    }
    if (!peer.refused.empty()) {
      problems.push_back("replication: " + NameOf(id) + " refused: " + peer.refused);
    }
  }
  return problems;
}

void ReplicationBoard::Refused(core::RegionId peer, std::string reason) {
  std::lock_guard lock(mutex_);
  if (auto it = peers_.find(peer); it != peers_.end()) it->second.refused = std::move(reason);
}

void ReplicationBoard::Accepted(core::RegionId peer) {
  std::lock_guard lock(mutex_);
  if (auto it = peers_.find(peer); it != peers_.end()) it->second.refused.clear();
}

void ReplicationBoard::SetRebuild(nlohmann::json status, std::string problem) {
  std::lock_guard lock(mutex_);
  rebuild_ = std::move(status);
  rebuild_problem_ = std::move(problem);
}

void ReplicationBoard::SetReseed(nlohmann::json status, std::string problem) {
  std::lock_guard lock(mutex_);
  reseed_ = std::move(status);
  reseed_problem_ = std::move(problem);
}

void ReplicationBoard::ForgetAcknowledgements(core::RegionId peer) {
  std::lock_guard lock(mutex_);
  if (auto it = peers_.find(peer); it != peers_.end()) it->second.acked = core::VersionVector();
}

void ReplicationBoard::UpdateGauges(const core::VersionVector& applied) const {
  std::vector<Metrics::PeerTotals> totals;
  std::vector<Metrics::OriginLag> lags;
  size_t relays = 0;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, peer] : peers_) {
      totals.push_back({NameOf(id), peer.link.connected, peer.sent_batches, peer.sent_events,
                        peer.sent_wire, peer.sent_raw, peer.received_batches, peer.received_events,
                        peer.received_wire, peer.received_raw, peer.reconnects, peer.hedges,
                        !peer.behind.empty()});
      auto origin = origins_.find(id);
      const auto [lag_events, lag_ms] =
          LagOf(id, origin == origins_.end() ? Origin{} : origin->second, applied);
      lags.push_back({NameOf(id), lag_events, lag_ms});
    }
    relays = relays_active_;
  }
  metrics_->SetReplication(totals, lags, relays);
  std::lock_guard lock(mutex_);
  metrics_->SetRebuild(!rebuild_problem_.empty(), reseed_.value("state", "") == "running",
                       reseed_.value("installed", uint64_t{0}),
                       reseed_.value("documents", uint64_t{0}));
}

void ReplicationBoard::Verified(const replication::VerifyResult& result) {
  const uint64_t differing = result.repaired + result.theirs;
  if (metrics_ != nullptr) {
    metrics_->VerifyFinished(NameOf(result.peer), replication::VerifyStateName(result.state),
                             differing, result.repaired);
  }
  const uint64_t now_ms =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  std::lock_guard lock(mutex_);
  verified_[result.peer] = result;
  verified_at_ms_[result.peer] = now_ms;
}

std::optional<core::RegionId> ReplicationBoard::TakeVerifyRequest() {
  std::lock_guard lock(mutex_);
  std::optional<core::RegionId> asked = verify_asked_;
  verify_asked_.reset();
  return asked;
}

void ReplicationBoard::RequestVerify(core::RegionId peer) {
  std::lock_guard lock(mutex_);
  // Two requests before the verifier takes one: the wider one.
  verify_asked_ = verify_asked_ && *verify_asked_ != peer ? 0 : peer;
}

nlohmann::json ReplicationBoard::VerifyJson() const {
  std::lock_guard lock(mutex_);
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& [id, name] : names_) {
    if (id == self_) continue;
    auto it = verified_.find(id);
    if (it == verified_.end()) {
      peers.push_back({{"peer", name}, {"state", "unknown"}, {"compared", false}});
      continue;
    }
    const replication::VerifyResult& result = it->second;
    nlohmann::json entry = {{"peer", name},
                            {"state", replication::VerifyStateName(result.state)},
                            {"compared", true},
                            {"at_ms", verified_at_ms_.at(id)},
                            {"duration_ms", result.finished_ms - result.started_ms},
                            {"round_trips", result.round_trips},
                            {"bytes", result.bytes},
                            {"buckets_differing", result.buckets_differing},
                            {"candidates", result.candidates},
                            {"in_flight", result.in_flight},
                            {"differing", result.repaired + result.theirs},
                            {"repaired_here", result.repaired},
                            {"repaired_there", result.theirs},
                            {"truncated", result.truncated}};
    if (!result.error.empty()) entry["error"] = result.error;
    peers.push_back(std::move(entry));
  }
  return peers;
}

}  // namespace meridian::node
