#include "replication/outbound.h"

#include <algorithm>
#include <limits>

namespace meridian::replication {

void Outbound::Subscribe(const core::VersionVector& frontier,
                         const std::vector<core::RegionId>& origins) {
  subscribed_ = true;
  cursors_.clear();
  acked_.Merge(frontier);
  // From what the subscriber holds: its frontier, or what it acknowledged if an acknowledgement
  // overtook this (older) subscription — never re-sending what it has already applied.
  for (core::RegionId origin : origins) cursors_[origin].next_seq = acked_.Get(origin) + 1;
  in_flight_.clear();
  in_flight_bytes_ = 0;
  heartbeat_sent_ = false;  // answer a subscription with a heartbeat at once
}

void Outbound::Ack(const core::VersionVector& applied) {
  acked_.Merge(applied);
  auto covered = [this](const InFlight& batch) {
    return acked_.Get(batch.origin) >= batch.last_seq;
  };
  for (const InFlight& batch : in_flight_) {
    if (covered(batch)) in_flight_bytes_ -= batch.raw_bytes;
  }
  std::erase_if(in_flight_, covered);
}

bool Outbound::WindowOpen() const {
  return in_flight_.size() < options_.window_batches && in_flight_bytes_ < options_.window_bytes;
}

std::optional<Outbound::Read> Outbound::Next(const core::VersionVector& heads, uint64_t now_ms) {
  // The origin seen waiting longest goes first (since the writer first found its events waiting:
  // it does not look during a linger); among equals, the one served least recently.
  std::optional<Read> best;
  std::pair<uint64_t, uint64_t> best_rank = {std::numeric_limits<uint64_t>::max(), 0};
  for (auto& [origin, cursor] : cursors_) {
    const uint64_t head = heads.Get(origin);
    if (head < cursor.next_seq) {
      cursor.waiting_since_ms.reset();
      continue;
    }
    if (!cursor.waiting_since_ms) cursor.waiting_since_ms = now_ms;
    const uint64_t waiting = head - cursor.next_seq + 1;
    if (!Due(waiting, now_ms)) continue;
    const std::pair<uint64_t, uint64_t> rank = {*cursor.waiting_since_ms, cursor.last_sent};
    if (!best || rank < best_rank) {
      best_rank = rank;
      best = Read{origin, cursor.next_seq,
                  static_cast<size_t>(std::min<uint64_t>(waiting, options_.batch_events_max)),
                  options_.batch_bytes_max};
    }
  }
  if (!best || !WindowOpen()) return std::nullopt;
  last_batch_ms_ = now_ms;
  return best;
}

bool Outbound::Ready(const core::VersionVector& heads, uint64_t now_ms) const {
  if (!WindowOpen()) return false;
  for (const auto& [origin, cursor] : cursors_) {
    const uint64_t head = heads.Get(origin);
    if (head >= cursor.next_seq && Due(head - cursor.next_seq + 1, now_ms)) return true;
  }
  return false;
}

void Outbound::Sent(core::RegionId origin, uint64_t last_seq, size_t raw_bytes) {
  auto it = cursors_.find(origin);
  if (it == cursors_.end()) return;
  it->second.next_seq = std::max(it->second.next_seq, last_seq + 1);
  it->second.waiting_since_ms.reset();
  it->second.last_sent = ++batches_sent_;
  if (acked_.Get(origin) >= last_seq) return;  // already acknowledged: nothing to wait for
  in_flight_.push_back({origin, last_seq, raw_bytes});
  in_flight_bytes_ += raw_bytes;
}

void Outbound::Abandon(core::RegionId origin) {
  cursors_.erase(origin);
}

bool Outbound::HeartbeatDue(uint64_t now_ms) const {
  return subscribed_ && (!heartbeat_sent_ || now_ms >= last_heartbeat_ms_ + options_.heartbeat_ms);
}

uint64_t Outbound::WakeAtMs(const core::VersionVector& heads, uint64_t now_ms) const {
  uint64_t wake = heartbeat_sent_ ? last_heartbeat_ms_ + options_.heartbeat_ms : now_ms;
  if (!WindowOpen()) return std::max(wake, now_ms);
  for (const auto& [origin, cursor] : cursors_) {
    if (heads.Get(origin) >= cursor.next_seq) {
      wake = std::min(wake, LingerEndsMs(now_ms));
    }
  }
  return std::max(wake, now_ms);
}

uint64_t Outbound::Backlog(const core::VersionVector& heads) const {
  uint64_t backlog = 0;
  for (const auto& [origin, cursor] : cursors_) {
    const uint64_t head = heads.Get(origin);
    if (head >= cursor.next_seq) backlog += head - cursor.next_seq + 1;
  }
  return backlog;
}

}  // namespace meridian::replication
