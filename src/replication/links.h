// Links: the receiving side of replication across all of a region's peers, as a state machine
// with no I/O (docs/replication.md). One link per peer: this region dials the peer and subscribes
// to the peer's own events. The transport reports connections, disconnections and what it hears;
// Links answers which origins each link should carry (relays), how long to back off before
// redialling, and how long a dial may take before it is hedged or given up (Inbound applies them
// to each stream).
//
// Relay: when the direct link to an origin has been down for relay_after_ms, the origin is also
// requested from a connected peer whose frontier is ahead of ours for it (the most ahead); the
// relay stays with that peer while it is connected and ends as soon as the direct link is back.
// Duplicates the overlap may bring are dropped by the apply path (by dot).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "core/version_vector.h"

namespace meridian::replication {

struct LinkOptions {
  uint64_t relay_after_ms = 1000;      // direct link down this long: relay its origin
  uint64_t backoff_initial_ms = 50;    // first redial delay (before jitter)
  uint64_t backoff_max_ms = 2000;      // redial delay ceiling
  uint64_t silence_timeout_ms = 3000;  // connected but silent this long: suspected (see Inbound)
  // A dial that has not delivered its first message this long is given up: the longest of
  // silence_timeout_ms, dial_timeout_ms and three times the fastest first answer a dial of the
  // peer has had. The first message needs the connection set up and the Subscribe answered, a
  // few round trips, which on a slow link can exceed a silence timeout sized to the heartbeat.
  uint64_t dial_timeout_ms = 3000;
  // A dial not answered this long gets a second dial beside it (a hedge; see Inbound): the
  // longer of this and the fastest first answer a dial of the peer has had.
  uint64_t hedge_after_ms = 1000;
};

class Links {
 public:
  Links(const std::vector<core::RegionId>& peers, LinkOptions options, uint64_t now_ms);

  // The backoff's failure count starts over only once a connected link has been heard from for a
  // second (see Heard). `answer_ms`: how long the dial that connected took to its first message.
  void Connected(core::RegionId peer, uint64_t now_ms, uint64_t answer_ms);
  void Disconnected(core::RegionId peer, uint64_t now_ms);
  // A dial failed (refused, timed out) while the link was not up: one more failure for the
  // backoff, nothing else changes.
  void Failed(core::RegionId peer);
  // The connected link went silent (its stream is kept, a hedge dials beside it): it counts as
  // down from now, for relays and views, until Resumed or a new stream connects. Not a failure.
  void Suspect(core::RegionId peer, uint64_t now_ms);
  void Resumed(core::RegionId peer, uint64_t now_ms);
  // Something arrived from the peer: a batch (frontier nullptr) or a heartbeat with its frontier.
  void Heard(core::RegionId peer, const core::VersionVector* frontier, uint64_t now_ms);

  // The peer's log no longer holds `origin`'s events from `wanted_seq` on (BehindRetention:
  // trimmed by retention, or never logged because the peer was re-seeded). Until this region has
  // applied them up to wanted_seq, the peer carries none of them: the peer's own are relayed
  // through another connected peer that is ahead, as if the direct link were down, and no relay
  // of `origin` goes through the peer.
  void Behind(core::RegionId peer, core::RegionId origin, uint64_t wanted_seq);

  // Recomputes the relays for our applied frontier; true when some link's origin set changed.
  // Besides the peers' own origins, those of regions no longer configured that a connected peer
  // holds more of are relayed (`self`: this region, never relayed).
  bool UpdateRelays(const core::VersionVector& applied, uint64_t now_ms, core::RegionId self = 0);
  // Since when this region has been stuck behind for some origin (as of the last UpdateRelays):
  // a peer's log no longer holds what it needs of the origin (Behind), and neither the origin's
  // own link nor a relay carries it. Only a re-seed ends that for good. nullopt: not stuck.
  std::optional<uint64_t> StuckSinceMs() const;
  // Every peer, the best to re-seed from first: those ahead of `applied` for more of the origins
  // this region is stuck behind for, then those that hold more in all.
  std::vector<core::RegionId> ReseedSources(const core::VersionVector& applied) const;
  // The origins the peer's stream should carry: the peer's own (unless it is behind for them),
  // then any relayed through it.
  std::vector<core::RegionId> OriginsFor(core::RegionId peer) const;

  // How long to wait before the next dial of `peer`: exponential in its consecutive failures,
  // capped, jittered over the upper half (`unit` uniform in [0, 1) from the caller's source).
  uint64_t BackoffMs(core::RegionId peer, double unit) const;
  // The ceiling BackoffMs jitters under: backoff_initial_ms doubled per failure after the first,
  // at most backoff_max_ms. Inbound spaces hedges by half of it.
  uint64_t BackoffCeilingMs(core::RegionId peer) const;
  // How long a dial of the peer may go unanswered before it is given up (see dial_timeout_ms),
  // and before another dial hedges it (see hedge_after_ms).
  uint64_t DialTimeoutMs(core::RegionId peer) const;
  uint64_t HedgeAfterMs(core::RegionId peer) const;
  uint64_t FastestAnswerMs(core::RegionId peer) const;  // 0: no dial answered yet
  uint64_t silence_timeout_ms() const { return options_.silence_timeout_ms; }

  struct View {
    core::RegionId peer = 0;
    bool connected = false;
    uint64_t since_ms = 0;  // connected or down since
    uint64_t failures = 0;  // consecutive failed or lost connections
    uint64_t connects = 0;
    core::VersionVector frontier;              // the peer's, from its last heartbeat
    std::optional<core::RegionId> relayed_by;  // who relays this peer's events to us
    std::vector<core::RegionId> relaying;      // origins this peer relays to us
  };
  std::vector<View> Views() const;
  size_t relays_active() const;
  const std::vector<core::RegionId>& peers() const { return peers_; }

 private:
  struct Link {
    bool connected = false;
    bool suspect = false;  // connected, then silent: down until it speaks (Suspect)
    uint64_t since_ms = 0;
    uint64_t failures = 0;
    uint64_t connects = 0;
    core::VersionVector frontier;
    // The fastest first answer of the peer's dials: the link's own round trips, without losses.
    uint64_t fastest_answer_ms = UINT64_MAX;  // none yet
  };

  const std::vector<core::RegionId> peers_;
  const LinkOptions options_;
  std::map<core::RegionId, Link> links_;
  std::map<core::RegionId, core::RegionId> relay_of_;  // origin -> the peer relaying it
  // (peer, origin) -> the seq of origin the peer cannot serve (see Behind).
  std::map<std::pair<core::RegionId, core::RegionId>, uint64_t> behind_;
  std::map<core::RegionId, uint64_t> stuck_since_;  // origin -> since when (StuckSinceMs)
  bool IsBehind(core::RegionId peer, core::RegionId origin) const {
    return behind_.contains({peer, origin});
  }
};

}  // namespace meridian::replication
