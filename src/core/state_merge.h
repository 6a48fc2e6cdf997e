// Merging two whole states of one document: re-seeding a region from a peer's snapshot and
// anti-entropy repair merge states instead of replaying events. The rule is specified for users
// in docs/semantics.md ("Merging two states").
//
// A state alone does not say what its replica has folded away (document.h, Fold): a folded
// increment group looks like one increment, a folded-away loser looks like a sibling never
// applied, and a removal is forgotten once the fold vector covers it. So each side comes with two
// vectors of its replica:
//   - applied: the replica's frontier (per origin, the highest seq applied, contiguous from 1);
//   - folded:  its fold bound, a vector that
//       (1) is causally stable at that replica: every event it has not applied has a context
//           covering the vector (Replica::StableFrontier gives such vectors);
//       (2) is within `applied`;
//       (3) covers every vector the state was ever folded with.
//     A state never folded may pass the empty vector. The applied frontier cannot stand in for
//     it: it meets (2) and (3) but not (1) (tests/core/state_merge_test.cc shows a wrong sum).
//     Replica::folded() is such a vector; a node must persist one per region, since its stable
//     frontier starts empty again after a restart.
//
// Why that suffices, per origin o: an event covered by folded[o] has been applied by that side,
// and anything the other side did to it without that side's knowing came from an event the
// first side has not applied, whose context covers the whole fold bound (1). Such a removal takes
// all of the side's folded entries of a field at once, and the other side keeps its record
// (it is above that side's own fold bound). So, per field:
//   - a sibling or increment held by one side survives unless the other side has folded it
//     (covered by that side's fold bound but not held: removed, or a loser folded away) or
//     records its removal (its field or document removed vector covers the dot);
//   - increments of origin o up to max(a.folded[o], b.folded[o]) are taken from the side whose
//     fold bound reaches further, grouped as that side holds them, less those the other side's
//     removed vectors cover; with equal bounds, they survive only if both sides hold some (then
//     both hold the same increments: their sums agree);
//   - a document-wide presence entry held by both survives at the higher seq; held by one, it
//     survives unless the other side has folded it or records its removal;
//   - removed vectors are joined.
// The result is then folded with a.folded ⊔ b.folded.
//
// Guarantee, when both sides meet the conditions above and hold the same document: for replicas
// that applied event sets Ea and Eb (each a per-origin prefix), the result equals, byte for byte
// (an increment group whose sum would overflow aside), the state of a replica that applied
// Ea ∪ Eb and folded it with a.folded ⊔ b.folded. Hence it renders what that replica renders, and
// with applied = a.applied ⊔ b.applied and folded = a.folded ⊔ b.folded it is again a valid side
// for this function and behaves as that replica under every further event; MergeStates is
// commutative, associative and idempotent in what it renders (and byte for byte on its own
// results). Checked by tests/core/state_merge_property_test.cc.
//
// Pure: no I/O, no clock. Conflicts among the merged siblings are not reported here.
#pragma once

#include "core/document.h"
#include "core/version_vector.h"
#include "meridian/status.h"

namespace meridian::core {

// One replica's copy of a document, with its replica's applied frontier and fold bound (see
// above). The referenced objects must outlive the call.
struct StateToMerge {
  const DocumentState& state;
  const VersionVector& applied;
  const VersionVector& folded;
};

// Merges two replicas' states of one document (the caller routes by key); the result is folded
// with a.folded ⊔ b.folded. Returns kInvalidArgument, and nothing else, when a side is visibly
// inconsistent: a fold bound beyond its applied frontier; an entry or a presence entry whose dot
// its applied frontier does not cover, or that its own removed vectors cover; or the two sides
// disagreeing about one event (a sibling or increment with the same dot and a different value,
// or equal fold bounds with different folded sums). Conditions (1) and (3) above cannot be
// checked here: they are the caller's promise.
Result<DocumentState> MergeStates(const StateToMerge& a, const StateToMerge& b);

}  // namespace meridian::core
