// Replica: one region's merge state held in memory — the pure heart of a region.
//
// It turns local writes into events (dot, HLC, context) and applies events from every origin in
// per-origin seq order, buffering any that arrive ahead of a gap and dropping duplicates, so that
// the order, duplication and batching of delivery never change the result. The order, the known
// frontiers and the stable frontier are core::CausalOrder's (causal_order.h), which the region
// node shares around durable storage; the buffering is this class's own. The merge demo and the
// property tests run it as is.
//
// Pure: the physical clock is injected, there is no I/O. Not thread-safe.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/causal_order.h"
#include "core/document.h"
#include "core/event.h"
#include "core/hlc.h"
#include "core/version_vector.h"
#include "meridian/status.h"

namespace meridian::core {

enum class ReceiveOutcome { kApplied, kDuplicate, kBuffered };

// The command path of every region, in memory or durable: checks a local write against the
// current state of its document (nullptr when there is none) and stamps it as the next event of
// region `id`: dot {id, frontier[id] + 1}, a fresh HLC, context = frontier. The operation's values
// must be canonical JSON (NormalizeOperation, or a parser that writes canonical JSON); its limits
// are checked here. Errors are kInvalidArgument and kTooLarge for bad input, kTypeMismatch for an
// increment of a field that holds a non-number. Does not apply the event.
//
// Bounded counters (docs/semantics.md#bounded-counters), decided on `current` alone, which holds
// every earlier event of region `id`:
//   - an increment of a bounded field is escrowed (CounterDelta::escrow) and needs the ledger's
//     CheckIncrement: a decrement beyond this region's rights is kBoundExceeded;
//   - a set of a bounded field, and a replace or delete of a document with one, is kBoundedField;
//   - a declaration (EscrowOpKind::kDeclare) splits the room, the field's value (absent: 0) less
//     min, over `regions` (the deployment's; empty: `id` alone) with SplitRoom. kBoundedField when
//     the field is bounded already (see RepeatedDeclaration) or this region holds escrow events
//     of it from others (declared elsewhere, the declaration not here yet); kTypeMismatch when
//     the value is not an integer; kBoundExceeded when it is below min;
//   - a transfer, accept or want needs the field bounded and passes the ledger's checks
//     (CheckTransfer, CheckAccept).
Result<Event> StampLocalWrite(RegionId id, const std::string& key, Operation op,
                              const DocumentState* current, const VersionVector& frontier,
                              HybridLogicalClock* clock, const Limits& limits,
                              std::span<const RegionId> regions = {});

// True when `op` declares a bound that `current` already holds for that field with the same min:
// the write changes nothing, and the region answers it without writing an event.
bool RepeatedDeclaration(const Operation& op, const DocumentState* current);

class Replica {
 public:
  Replica(RegionId id, PhysicalClock* clock, Limits limits = {});

  // Accepts a local write: normalizes and checks the operation (kInvalidArgument, kTooLarge;
  // kTypeMismatch for an increment of a field that holds a non-number), stamps it and applies it.
  // Returns the event to log and replicate.
  Result<Event> Write(const std::string& key, Operation op);

  // Merges an event from another region (or a redelivery of one's own). Applies it and any
  // buffered successors when it is the next of its origin; buffers it when earlier events of its
  // origin are missing; drops it when already applied.
  ReceiveOutcome Receive(const Event& event);

  // Records that region `origin` had applied `frontier` (a heartbeat). Ignored unless this
  // replica has applied every event `origin` had written by then (frontier[origin]): only then
  // does every event still to come from `origin` have a context covering `frontier`.
  void ObserveFrontier(RegionId origin, const VersionVector& frontier);

  // The causally stable vector over `regions` (which must include this one): the meet of this
  // replica's frontier and, for every other region, the latest frontier known to have been applied
  // there with all of that region's earlier events applied here (learnt from each received
  // event's context and from ObserveFrontier). Every event this replica has still to receive has
  // a context covering it, so it is safe to Fold with.
  VersionVector StableFrontier(const std::vector<RegionId>& regions) const;

  // Folds every document's metadata that `stable` makes unreachable (see DocumentState::Fold),
  // and forgets documents nothing is left of. `stable` must be causally stable at this replica
  // (StableFrontier): covered by frontier(), and covered by the context of every event still to
  // arrive.
  void Fold(const VersionVector& stable);

  // Merges a peer replica's whole state into this one, as re-seeding a region from a snapshot
  // and anti-entropy repair do: every document pair goes through MergeStates (state_merge.h)
  // with each replica's frontier and fold bound. Afterwards this replica renders what one that
  // applied both replicas' events would, and behaves as it under every further event. The
  // frontiers, fold bounds and frontier reports are joined, the peer's clock is observed (a later
  // local write has a greater HLC than every merged event), buffered events the new frontier
  // covers are dropped and those it makes next are applied. The peer's buffered events are not
  // taken over, merged events are not added to applied(), and merging reports no conflicts.
  // On kInvalidArgument (an inconsistent document pair, see MergeStates) nothing changes.
  Status MergeFrom(const Replica& peer);

  RegionId id() const { return id_; }
  // Per origin, the highest seq applied (contiguous from 1).
  const VersionVector& frontier() const { return order_.frontier(); }
  // The join of every vector this replica has folded with: its fold bound (state_merge.h),
  // causally stable here and within frontier().
  const VersionVector& folded() const { return folded_; }
  const HybridLogicalClock& clock() const { return clock_; }
  // The events applied here, in the order they were applied.
  const std::vector<Event>& applied() const { return applied_; }
  size_t buffered() const;
  const std::map<std::string, DocumentState>& documents() const { return documents_; }
  std::optional<std::string> Render(const std::string& key) const;
  // Conflicts found since the last call.
  std::vector<Conflict> TakeConflicts();

 private:
  void ApplyInOrder(const Event& event);
  // Applies origin's buffered events that are next in seq order; drops those already applied.
  void ApplyBuffered(RegionId origin);

  RegionId id_;
  HybridLogicalClock clock_;
  Limits limits_;
  CausalOrder order_;  // the frontier and the known frontiers (see StableFrontier)
  VersionVector folded_;
  std::map<std::string, DocumentState> documents_;
  std::map<RegionId, std::map<uint64_t, Event>> pending_;  // origin -> seq -> event
  std::vector<Event> applied_;
  std::vector<Conflict> conflicts_;
};

}  // namespace meridian::core
