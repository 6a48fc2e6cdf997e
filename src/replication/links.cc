#include "replication/links.h"

#include <algorithm>
#include <set>

namespace meridian::replication {
namespace {

constexpr uint64_t kHealthyAfterMs = 1000;

}  // namespace

Links::Links(const std::vector<core::RegionId>& peers, LinkOptions options, uint64_t now_ms)
    : peers_(peers), options_(options) {
  for (core::RegionId peer : peers_) links_[peer].since_ms = now_ms;
}

void Links::Connected(core::RegionId peer, uint64_t now_ms, uint64_t answer_ms) {
  Link& link = links_.at(peer);
  if (!link.connected) {
    link.connected = true;
    link.since_ms = now_ms;
    ++link.connects;
  }
  link.suspect = false;
  link.fastest_answer_ms = std::min(link.fastest_answer_ms, answer_ms);
}

void Links::Failed(core::RegionId peer) {
  ++links_.at(peer).failures;
}

void Links::Disconnected(core::RegionId peer, uint64_t now_ms) {
  Link& link = links_.at(peer);
  if (link.connected) link.since_ms = now_ms;
  link.connected = false;
  link.suspect = false;
  ++link.failures;
}

void Links::Suspect(core::RegionId peer, uint64_t now_ms) {
  Link& link = links_.at(peer);
  if (!link.connected) return;
  link.connected = false;
  link.suspect = true;
  link.since_ms = now_ms;
}

void Links::Resumed(core::RegionId peer, uint64_t now_ms) {
  Link& link = links_.at(peer);
  if (!link.suspect) return;
  link.suspect = false;
  link.connected = true;
  link.since_ms = now_ms;
}

void Links::Heard(core::RegionId peer, const core::VersionVector* frontier, uint64_t now_ms) {
  Link& link = links_.at(peer);
  if (frontier != nullptr) link.frontier.Merge(*frontier);
  // The backoff starts over once a link has stayed up a while, not at its first message: a link
  // that fails right after connecting (a batch it cannot take) keeps backing off.
  if (link.connected && now_ms >= link.since_ms + kHealthyAfterMs) link.failures = 0;
}

void Links::Behind(core::RegionId peer, core::RegionId origin, uint64_t wanted_seq) {
  if (!links_.contains(peer)) return;
  uint64_t& wanted = behind_[{peer, origin}];
  wanted = std::max(wanted, wanted_seq);
}

bool Links::UpdateRelays(const core::VersionVector& applied, uint64_t now_ms, core::RegionId self) {
  bool changed = false;
  // Caught up past where a peer's log starts (through a relay): the peer carries it again.
  changed |= std::erase_if(behind_, [&](const auto& entry) {
               return applied.Get(entry.first.second) >= entry.second;
             }) > 0;
  // The origins to follow: every peer's, and those of regions no longer configured (removed)
  // that a peer holds more of than this region, which only a relay brings.
  std::set<core::RegionId> origins(peers_.begin(), peers_.end());
  for (const auto& [peer, link] : links_) {
    for (const auto& entry : link.frontier.entries()) {
      if (entry.origin != self && entry.seq > applied.Get(entry.origin)) {
        origins.insert(entry.origin);
      }
    }
  }
  for (core::RegionId origin : origins) {
    const bool configured = links_.contains(origin);
    auto current = relay_of_.find(origin);
    const bool gap = IsBehind(origin, origin);
    if (configured && !gap &&
        (links_.at(origin).connected ||
         now_ms < links_.at(origin).since_ms + options_.relay_after_ms)) {
      if (current != relay_of_.end()) {
        relay_of_.erase(current);
        changed = true;
      }
      continue;
    }
    if (current != relay_of_.end() && links_.at(current->second).connected &&
        !IsBehind(current->second, origin)) {
      continue;
    }
    // The connected peer most ahead of us for this origin, if any is ahead at all.
    std::optional<core::RegionId> best;
    uint64_t best_seq = applied.Get(origin);
    for (core::RegionId peer : peers_) {
      const Link& link = links_.at(peer);
      if (peer == origin || !link.connected || IsBehind(peer, origin)) continue;
      if (link.frontier.Get(origin) > best_seq) {
        best = peer;
        best_seq = link.frontier.Get(origin);
      }
    }
    if (current != relay_of_.end() && (!best || *best != current->second)) {
      relay_of_.erase(current);
      changed = true;
    }
    if (best) {
      relay_of_[origin] = *best;
      changed = true;
    }
  }
  // Stuck: some peer's log lacks what this region needs of an origin, and nothing carries it —
  // for another region's origin, neither its own link nor a relay; for this region's own events
  // (rebuilding), no connected peer that is ahead and not behind for them.
  std::set<core::RegionId> wanted;
  for (const auto& [entry, seq] : behind_) wanted.insert(entry.second);
  std::erase_if(stuck_since_, [&](const auto& entry) { return !wanted.contains(entry.first); });
  for (core::RegionId origin : wanted) {
    bool carried = false;
    if (origin == self) {
      for (const auto& [peer, link] : links_) {
        carried |= link.connected && !IsBehind(peer, origin) &&
                   link.frontier.Get(origin) > applied.Get(origin);
      }
    } else {
      carried =
          relay_of_.contains(origin) ||
          (links_.contains(origin) && links_.at(origin).connected && !IsBehind(origin, origin));
    }
    if (carried) {
      stuck_since_.erase(origin);
    } else {
      stuck_since_.emplace(origin, now_ms);
    }
  }
  return changed;
}

std::vector<core::RegionId> Links::ReseedSources(const core::VersionVector& applied) const {
  // Per peer: how many of the origins this region is stuck behind for it is ahead for, then how
  // much it holds in all, from its last heartbeat.
  std::vector<std::pair<std::pair<size_t, uint64_t>, core::RegionId>> ranked;
  for (core::RegionId peer : peers_) {
    const core::VersionVector& frontier = links_.at(peer).frontier;
    size_t ahead = 0;
    for (const auto& [origin, ms] : stuck_since_) {
      if (frontier.Get(origin) > applied.Get(origin)) ++ahead;
    }
    uint64_t total = 0;
    for (const auto& entry : frontier.entries()) total += entry.seq;
    ranked.push_back({{ahead, total}, peer});
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<core::RegionId> peers;
  for (const auto& [rank, peer] : ranked) peers.push_back(peer);
  return peers;
}

std::optional<uint64_t> Links::StuckSinceMs() const {
  std::optional<uint64_t> since;
  for (const auto& [origin, ms] : stuck_since_) since = std::min(since.value_or(ms), ms);
  return since;
}

std::vector<core::RegionId> Links::OriginsFor(core::RegionId peer) const {
  std::vector<core::RegionId> origins;
  if (!IsBehind(peer, peer)) origins.push_back(peer);
  for (const auto& [origin, relay] : relay_of_) {
    if (relay == peer) origins.push_back(origin);
  }
  return origins;
}

uint64_t Links::BackoffCeilingMs(core::RegionId peer) const {
  const uint64_t failures = links_.at(peer).failures;
  uint64_t ceiling = options_.backoff_initial_ms;
  for (uint64_t i = 1; i < failures && ceiling < options_.backoff_max_ms; ++i) ceiling *= 2;
  return std::min(ceiling, options_.backoff_max_ms);
}

uint64_t Links::BackoffMs(core::RegionId peer, double unit) const {
  const uint64_t ceiling = BackoffCeilingMs(peer);
  // Jitter over the upper half of the ceiling: dialers spread out without hammering.
  return ceiling / 2 + static_cast<uint64_t>(unit * static_cast<double>(ceiling - ceiling / 2));
}

uint64_t Links::FastestAnswerMs(core::RegionId peer) const {
  const uint64_t fastest = links_.at(peer).fastest_answer_ms;
  return fastest == UINT64_MAX ? 0 : fastest;
}

uint64_t Links::DialTimeoutMs(core::RegionId peer) const {
  return std::max(
      {options_.silence_timeout_ms, options_.dial_timeout_ms, 3 * FastestAnswerMs(peer)});
}

uint64_t Links::HedgeAfterMs(core::RegionId peer) const {
  return std::max(options_.hedge_after_ms, FastestAnswerMs(peer));
}

std::vector<Links::View> Links::Views() const {
  std::vector<View> views;
  for (core::RegionId peer : peers_) {
    const Link& link = links_.at(peer);
    View view{peer,          link.connected, link.since_ms, link.failures,
              link.connects, link.frontier,  std::nullopt,  {}};
    if (auto it = relay_of_.find(peer); it != relay_of_.end()) view.relayed_by = it->second;
    for (const auto& [origin, relay] : relay_of_) {
      if (relay == peer) view.relaying.push_back(origin);
    }
    views.push_back(std::move(view));
  }
  return views;
}

size_t Links::relays_active() const {
  return relay_of_.size();
}

}  // namespace meridian::replication
