// CausalOrder: the order in which one region applies events, and what it knows to be causally
// stable. The in-memory core::Replica and the durable node::Region both decide by it, so each
// rule below is written once.
//
// Order. Each origin numbers its events 1, 2, 3 ... with no gaps, and a region applies every
// origin's events in that order, so its frontier (per origin, the highest seq applied) names
// exactly the set of events it holds. Classify tells where an incoming dot stands against it:
//   - kNext:       seq == frontier[origin] + 1. Apply the event, then Advance.
//   - kDuplicate:  seq <= frontier[origin]. Already applied: drop it.
//   - kAheadOfGap: seq >  frontier[origin] + 1. Earlier events of its origin are missing; it
//                  cannot be applied yet. What happens to it is the caller's: Replica buffers it
//                  until the gap fills, Region leaves it to the replication stream (which
//                  resubscribes from the frontier).
// An event's own region applies it as it writes it, stamped with dot {self, frontier[self] + 1}
// and context = frontier (StampLocalWrite): always kNext.
//
// Known frontiers. For every other region r, K[r]: a vector r is known to have applied while this
// region holds every event of r up to K[r][r]. Two sources raise it:
//   - each applied event of r: r had applied its context when it wrote it, and this region now
//     holds r's events up to the event itself (K[r] joins context + {r: seq});
//   - a frontier r reports (a replication heartbeat, ObserveFrontier): used only once this region
//     has applied r's events up to what r reports of itself (frontier[r] >= report[r]); an
//     earlier report is ignored, not kept for later (the next report or event supersedes it).
//
// Stability. StableFrontier(regions) is S = the meet of this region's frontier and K[r] for every
// other r in `regions`; empty while some r has no K[r]. It is safe to fold with (DocumentState::
// Fold): every event still to arrive here has a context that covers S. Why: such an event e comes
// from some r with e.seq > frontier[r] >= K[r][r]. Each vector joined into K[r] was one r had
// applied by the time it had written seq K[r][r] or fewer of its own events, so r wrote e later,
// when its frontier, e's context, already covered that vector; hence e.context covers K[r],
// which covers S. Without the "every event of r up to it" condition this fails: r may have
// applied an event that an older event of r, still on its way here, did not see (docs/
// semantics.md, "When an event is stable"). This region's own events are all applied here as
// they are written, so none is still to arrive — except after it lost them (a new data directory,
// docs/replication.md#rebuilding): then its own earlier events come back from its peers, and one
// of them may have a context that does not cover a peer's report. So no vector naming more of
// the region's own events than it holds joins K[r] (it is dropped, not kept): every event of its
// own still to arrive is held by some peer r, whose every vector then names it, so K[r] waits
// until it is back (the fence keeps the earlier process's last batches from landing later).
// While the region holds everything it wrote, this changes nothing.
//
// Join merges another instance into this one, as merging a peer's whole state does
// (Replica::MergeFrom): afterwards this region holds every event either held, so every frontier
// report usable there is usable here, and the peer's frontier is a report of the peer itself.
//
// Pure and small: no I/O, no clock. Not thread-safe (node::Region guards its instance with its
// mutex).
#pragma once

#include <map>
#include <span>

#include "core/version_vector.h"

namespace meridian::core {

class CausalOrder {
 public:
  enum class Arrival { kNext, kDuplicate, kAheadOfGap };

  // The order of region `self`, which holds the events `frontier` covers and knows nothing of the
  // other regions yet.
  explicit CausalOrder(RegionId self, VersionVector frontier = {});

  // Where `dot` stands against the frontier (see above).
  Arrival Classify(const Dot& dot) const;

  // Records that the event `dot`, written with `context`, has been applied here. It must have
  // been kNext (checked: anything else stops the process). An event of another region raises
  // that region's known frontier.
  void Advance(const Dot& dot, const VersionVector& context);

  // Records that the events `applied` covers are held here by other means than one by one (a
  // peer's snapshot installed): the frontier becomes the join. Known frontiers stay as they are.
  void MergeFrontier(const VersionVector& applied);

  // Region `origin` reported that it had applied `frontier`. Used (joined into K[origin]) only
  // when this region has applied origin's events up to frontier[origin]; a report of self is
  // ignored.
  void ObserveFrontier(RegionId origin, const VersionVector& frontier);

  // The causally stable vector over `regions` (this one among them or not: its frontier always
  // counts): the meet of the frontier and K[r] of every other region; empty while some region in
  // `regions` has no known frontier. Always within frontier().
  VersionVector StableFrontier(std::span<const RegionId> regions) const;

  // Joins `other` (another region's order, or a copy of this one that went ahead): the frontiers
  // and the known frontiers of regions other than self merge, and when `other` is another
  // region, its frontier becomes known as its own.
  void Join(const CausalOrder& other);

  RegionId self() const { return self_; }
  // Per origin, the highest seq applied (contiguous from 1).
  const VersionVector& frontier() const { return frontier_; }
  // K[r] for every region r heard from (never self).
  const std::map<RegionId, VersionVector>& known_frontiers() const { return known_; }

 private:
  // Joins `report` into K[origin], unless it names own events this region does not hold.
  void Know(RegionId origin, const VersionVector& report);
  RegionId self_;
  VersionVector frontier_;
  std::map<RegionId, VersionVector> known_;
};

}  // namespace meridian::core
