#include "replication/inbound.h"

namespace meridian::replication {

Inbound::Inbound(const std::vector<core::RegionId>& peers, LinkOptions options, uint64_t now_ms)
    : links_(peers, options, now_ms) {
  for (core::RegionId peer : peers) streams_[peer] = Stream{};
}

std::vector<core::RegionId> Inbound::Dialing(core::RegionId peer, uint64_t now_ms) {
  Stream& stream = streams_.at(peer);
  stream = Stream{};
  stream.active = true;
  links_.Dialing(peer, now_ms);
  return Subscription(peer);
}

std::vector<core::RegionId> Inbound::Subscription(core::RegionId peer) {
  streams_.at(peer).resubscribe = false;
  return links_.OriginsFor(peer);
}

bool Inbound::Received(core::RegionId peer, uint64_t now_ms) {
  Stream& stream = streams_.at(peer);
  if (stream.connected) return false;
  stream.connected = true;
  links_.Connected(peer, now_ms);
  return true;
}

void Inbound::BatchReceived(core::RegionId peer, uint64_t now_ms) {
  links_.Heard(peer, nullptr, now_ms);
}

std::optional<core::VersionVector> Inbound::HeartbeatReceived(core::RegionId peer,
                                                              const core::VersionVector& frontier,
                                                              const core::VersionVector& applied,
                                                              uint64_t now_ms) {
  links_.Heard(peer, &frontier, now_ms);
  // The peer learns what this region holds, events it got from other regions too: its
  // durability waits and its log retention depend on it.
  return AckIfMoved(streams_.at(peer), applied, false);
}

bool Inbound::ResubscribeDue(core::RegionId peer) const {
  return streams_.at(peer).resubscribe;
}

Inbound::AfterApply Inbound::BatchApplied(core::RegionId peer, const Applied& applied,
                                          const core::VersionVector& frontier, uint64_t now_ms) {
  links_.Heard(peer, nullptr, now_ms);  // a long apply is not silence
  AfterApply after;
  if (!applied.ok || applied.gaps > 0) {
    // A gap: events arrived ahead of a missing predecessor. Subscribing again from the frontier
    // brings them in order.
    after.end = true;
    return after;
  }
  // One Ack covers every batch already applied; a batch of duplicates is acknowledged too (the
  // frontier did not move, but the sender waits for it).
  if (applied.last) after.ack = AckIfMoved(streams_.at(peer), frontier, applied.duplicates > 0);
  return after;
}

uint64_t Inbound::Ended(core::RegionId peer, uint64_t now_ms, double unit) {
  Stream& stream = streams_.at(peer);
  stream.active = false;
  stream.connected = false;
  links_.Disconnected(peer, now_ms);
  return links_.BackoffMs(peer, unit);
}

Inbound::Tick Inbound::OnTick(const core::VersionVector& applied, uint64_t now_ms) {
  Tick tick;
  std::map<core::RegionId, std::vector<core::RegionId>> before;
  for (core::RegionId peer : links_.peers()) before[peer] = links_.OriginsFor(peer);
  if (links_.UpdateRelays(applied, now_ms)) {
    for (core::RegionId peer : links_.peers()) {
      if (links_.OriginsFor(peer) != before[peer]) {
        streams_.at(peer).resubscribe = true;
        tick.changed.push_back(peer);
      }
    }
  }
  for (core::RegionId peer : links_.peers()) {
    if (streams_.at(peer).active && links_.Silent(peer, now_ms)) tick.silent.push_back(peer);
  }
  return tick;
}

std::optional<core::VersionVector> Inbound::AckIfMoved(Stream& stream,
                                                       const core::VersionVector& applied,
                                                       bool always) {
  if (applied == stream.acked && !always) return std::nullopt;
  stream.acked = applied;
  return applied;
}

}  // namespace meridian::replication
