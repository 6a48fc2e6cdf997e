#include "replication/inbound.h"

#include <algorithm>

namespace meridian::replication {
namespace {

// Streams open to one peer at once: the link's stream and hedges beside it.
constexpr size_t kStreamsPerPeer = 3;

}  // namespace

Inbound::Inbound(const std::vector<core::RegionId>& peers, LinkOptions options, uint64_t now_ms)
    : links_(peers, options, now_ms) {}

Inbound::Stream* Inbound::Find(uint64_t stream) {
  auto it = streams_.find(stream);
  return it == streams_.end() ? nullptr : &it->second;
}

const Inbound::Stream* Inbound::Find(uint64_t stream) const {
  auto it = streams_.find(stream);
  return it == streams_.end() ? nullptr : &it->second;
}

Inbound::Dial Inbound::Dialing(core::RegionId peer, uint64_t now_ms) {
  const uint64_t id = next_stream_++;
  Stream& stream = streams_[id];
  stream.peer = peer;
  stream.started_ms = stream.heard_ms = now_ms;
  last_dial_ms_[peer] = now_ms;
  return {id, OriginsFor(peer)};
}

std::vector<core::RegionId> Inbound::OriginsFor(core::RegionId peer) const {
  std::vector<core::RegionId> origins = links_.OriginsFor(peer);
  if (rebuilding()) origins.push_back(self_);
  return origins;
}

void Inbound::FollowOwnOrigin(core::RegionId self, bool confirm, uint64_t own_seq) {
  self_ = self;
  following_ = true;
  confirm_ = confirm;
  own_applied_ = own_seq;
}

bool Inbound::rebuilding() const {
  if (!following_) return false;
  if (Confirming()) return true;
  for (const auto& [peer, held] : own_held_) {
    if (held > own_applied_) return true;
  }
  return false;
}

Inbound::Rebuild Inbound::Rebuilding() const {
  Rebuild view;
  view.rebuilding = rebuilding();
  view.applied = own_applied_;
  view.confirming = Confirming();
  for (core::RegionId peer : links_.peers()) {
    auto it = own_held_.find(peer);
    if (it == own_held_.end()) {
      if (view.confirming) view.waiting.push_back(peer);
      continue;
    }
    view.heard.push_back(peer);
    if (it->second > view.target) {
      view.target = it->second;
      view.ahead = peer;
    }
  }
  return view;
}

void Inbound::NoteOwn(const core::VersionVector& applied, std::optional<core::RegionId> peer,
                      const core::VersionVector* peer_frontier) {
  if (!following_) return;
  const bool before = rebuilding();
  own_applied_ = std::max(own_applied_, applied.Get(self_));
  if (peer && peer_frontier != nullptr) {
    uint64_t& held = own_held_[*peer];
    held = std::max(held, peer_frontier->Get(self_));
  }
  if (rebuilding() == before) return;
  for (auto& [id, s] : streams_) {
    if (s.live()) s.resubscribe = true;
  }
}

std::vector<core::RegionId> Inbound::Subscription(uint64_t stream) {
  Stream* s = Find(stream);
  if (s == nullptr) return {};
  s->resubscribe = false;
  return OriginsFor(s->peer);
}

void Inbound::CancelOthers(core::RegionId peer, uint64_t keep, std::vector<uint64_t>* out) {
  for (auto& [id, other] : streams_) {
    if (id == keep || other.peer != peer || !other.live()) continue;
    other.lost = true;
    out->push_back(id);
  }
}

Inbound::Arrival Inbound::Received(uint64_t stream, uint64_t now_ms) {
  Arrival arrival;
  Stream* s = Find(stream);
  if (s == nullptr || !s->live()) {
    arrival.stale = true;
    return arrival;
  }
  s->heard_ms = now_ms;
  if (s->quiet) {
    s->quiet = false;
    links_.Resumed(s->peer, now_ms);
  }
  if (!s->connected) {
    s->connected = true;
    arrival.first = true;
    links_.Connected(s->peer, now_ms, now_ms - s->started_ms);
  }
  // Whichever stream speaks first keeps the link: a hedge that has not answered yet is not
  // needed any more, and a silent stream that a hedge has overtaken is given up.
  CancelOthers(s->peer, stream, &arrival.cancel);
  return arrival;
}

void Inbound::BatchReceived(uint64_t stream, uint64_t now_ms) {
  Stream* s = Find(stream);
  if (s == nullptr) return;
  s->heard_ms = now_ms;
  links_.Heard(s->peer, nullptr, now_ms);
}

std::optional<core::VersionVector> Inbound::HeartbeatReceived(uint64_t stream,
                                                              const core::VersionVector& frontier,
                                                              const core::VersionVector& applied,
                                                              uint64_t now_ms) {
  Stream* s = Find(stream);
  if (s == nullptr) return std::nullopt;
  s->heard_ms = now_ms;
  links_.Heard(s->peer, &frontier, now_ms);
  NoteOwn(applied, s->peer, &frontier);
  // The peer learns what this region holds, events it got from other regions too: its
  // durability waits and its log retention depend on it.
  return AckIfMoved(*s, applied, false);
}

void Inbound::BehindRetention(uint64_t stream, core::RegionId origin, uint64_t wanted_seq) {
  Stream* s = Find(stream);
  if (s == nullptr) return;
  links_.Behind(s->peer, origin, wanted_seq);
}

bool Inbound::ResubscribeDue(uint64_t stream) const {
  const Stream* s = Find(stream);
  return s != nullptr && s->resubscribe;
}

Inbound::AfterApply Inbound::BatchApplied(uint64_t stream, const Applied& applied,
                                          const core::VersionVector& frontier, uint64_t now_ms) {
  AfterApply after;
  Stream* s = Find(stream);
  if (s == nullptr) return after;
  s->heard_ms = now_ms;  // a long apply is not silence
  links_.Heard(s->peer, nullptr, now_ms);
  NoteOwn(frontier, std::nullopt, nullptr);
  if (!applied.ok || applied.gaps > 0) {
    // A gap: events arrived ahead of a missing predecessor. Subscribing again from the frontier
    // brings them in order.
    after.end = true;
    return after;
  }
  // One Ack covers every batch already applied; a batch of duplicates is acknowledged too (the
  // frontier did not move, but the sender waits for it).
  if (applied.last) after.ack = AckIfMoved(*s, frontier, applied.duplicates > 0);
  return after;
}

std::optional<uint64_t> Inbound::Ended(uint64_t stream, uint64_t now_ms, double unit) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return std::nullopt;
  const core::RegionId peer = it->second.peer;
  // A stream that lost to another never held the link and is no failure; one that was cut for
  // silence held it. A dial that ends without an answer is one failure.
  const bool lost = it->second.lost;
  const bool held_link = it->second.connected && !lost;
  streams_.erase(it);
  bool others = false;
  bool other_connected = false;
  for (const auto& [id, other] : streams_) {
    if (other.peer != peer) continue;
    others = true;
    other_connected = other_connected || (other.live() && other.connected);
  }
  if (held_link) {
    if (!other_connected) links_.Disconnected(peer, now_ms);
  } else if (!lost) {
    links_.Failed(peer);
  }
  if (others) return std::nullopt;
  return links_.BackoffMs(peer, unit);
}

uint64_t Inbound::TimeoutMs(uint64_t stream) const {
  const Stream* s = Find(stream);
  if (s == nullptr) return 0;
  return s->connected ? 2 * links_.silence_timeout_ms() : links_.DialTimeoutMs(s->peer);
}

Inbound::Tick Inbound::OnTick(const core::VersionVector& applied, uint64_t now_ms) {
  Tick tick;
  NoteOwn(applied, std::nullopt, nullptr);
  std::map<core::RegionId, std::vector<core::RegionId>> before;
  for (core::RegionId peer : links_.peers()) before[peer] = links_.OriginsFor(peer);
  if (links_.UpdateRelays(applied, now_ms, self_)) {
    for (core::RegionId peer : links_.peers()) {
      if (links_.OriginsFor(peer) == before[peer]) continue;
      for (auto& [id, s] : streams_) {
        if (s.peer == peer && s.live()) s.resubscribe = true;
      }
      tick.changed.push_back(peer);
    }
  }
  // Silence: a dial unanswered for its timeout, a connected stream silent for twice the silence
  // timeout. Cut streams no longer count; each ends when its caller cancels it. A connected
  // stream silent for the silence timeout is quiet: kept, but its link is down.
  for (auto& [id, s] : streams_) {
    if (!s.live()) continue;
    if (s.connected && !s.quiet && now_ms > s.heard_ms + links_.silence_timeout_ms()) {
      s.quiet = true;
      links_.Suspect(s.peer, now_ms);
      tick.quiet.push_back(id);
    }
    const uint64_t deadline = s.connected ? s.heard_ms + 2 * links_.silence_timeout_ms()
                                          : s.started_ms + links_.DialTimeoutMs(s.peer);
    if (now_ms > deadline) {
      s.cut = true;
      tick.silent.push_back(id);
    }
  }
  // Hedges: the peer's newest live stream is a dial slow to answer, or a quiet connected stream.
  // Never more often than the hedge time, nor than the shortest delay a redial would wait (half
  // the backoff ceiling): dials that fail, at once (refused beside a half-open stream) or by
  // timing out (a partition), count as failures and space the hedges out like redials.
  for (core::RegionId peer : links_.peers()) {
    const Stream* newest = nullptr;
    size_t open = 0;
    for (const auto& [id, s] : streams_) {
      if (s.peer != peer) continue;
      ++open;                     // cut or lost streams still hold their connection until they end
      if (s.live()) newest = &s;  // ids grow: the last one is the newest
    }
    if (newest == nullptr || open >= kStreamsPerPeer) continue;
    if (newest->connected && !newest->quiet) continue;
    const uint64_t spacing = std::max(links_.HedgeAfterMs(peer), links_.BackoffCeilingMs(peer) / 2);
    if (now_ms >= last_dial_ms_[peer] + spacing) tick.hedge.push_back(peer);
  }
  return tick;
}

core::RegionId Inbound::PeerOf(uint64_t stream) const {
  const Stream* s = Find(stream);
  return s == nullptr ? 0 : s->peer;
}

bool Inbound::GaveWay(uint64_t stream) const {
  const Stream* s = Find(stream);
  return s != nullptr && s->lost;
}

size_t Inbound::StreamsOf(core::RegionId peer) const {
  size_t n = 0;
  for (const auto& [id, s] : streams_) n += s.peer == peer && s.live() ? 1 : 0;
  return n;
}

std::optional<core::VersionVector> Inbound::AckIfMoved(Stream& stream,
                                                       const core::VersionVector& applied,
                                                       bool always) {
  if (applied == stream.acked && !always) return std::nullopt;
  stream.acked = applied;
  return applied;
}

}  // namespace meridian::replication
