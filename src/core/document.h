// The state of one document and its merge: an operation-based CRDT whose rules are specified
// for users in docs/semantics.md.
//
// Per top-level field the state holds
//   - siblings:   the values set and not yet causally overwritten, each (dot, hlc, value);
//   - increments: the increments not yet removed, each (dot, delta);
//   - removed:    a version vector; nothing it covers is kept or, arriving later, added.
// The document itself holds `presence` (per origin, the latest write other than a delete that is
// still alive) and a document-wide `removed` vector written by delete and replace.
//
// A bounded field (docs/semantics.md#bounded-counters) also has an EscrowLedger (core/escrow.h),
// fed by the escrow events (OpKind::kEscrow) and the escrowed increments (CounterDelta::escrow)
// of that field, and by nothing else. Once the ledger holds the declaration the field renders its
// Value(), whatever its siblings and plain increments hold: writes of regions that did not know
// the bound yet are kept as metadata but never rendered, so that no view goes below the bound.
// Removals (set, replace, delete) never touch a ledger. Ledgers join like states (Join).
//
// A ledger sums each origin's events, so it must see them as a prefix: each escrow event names
// its origin's previous escrow event of the field (`prev`), and one that arrives before it (the
// earlier one parked as a dead letter, or lost with a damaged copy) waits, in the state, until
// that one is applied or a merge brings the origin's account past it. Every copy's ledger is
// then a join of per-origin prefixes, which is what the ledger's bound and its Join rest on.
//
// An operation with context C removes from the fields it touches everything C covers
// (observed-remove): set removes older siblings and the increments it has seen, then adds itself;
// replace and delete do that for every field; increment only adds. The rendered value of a field
// is its greatest sibling by (hlc, origin id), plus the sum of surviving increments (0 as base).
//
// Invariants (checked by the property tests): the state after applying a set of events does not
// depend on order, duplication or batching; stored entries are never covered by a removed vector;
// Fold never changes what Render returns.
//
// Pure: no I/O, no clock. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/escrow.h"
#include "core/event.h"
#include "core/version_vector.h"
#include "meridian/status.h"

namespace meridian::core {

struct Sibling {
  Dot dot;
  HlcTimestamp hlc = 0;
  std::string value;  // canonical JSON
  bool operator==(const Sibling&) const = default;
};

struct Increment {
  Dot dot;
  int64_t delta = 0;
  bool operator==(const Increment&) const = default;
};

struct FieldState {
  std::vector<Sibling> siblings;      // sorted by dot
  std::vector<Increment> increments;  // sorted by dot
  VersionVector removed;
  bool operator==(const FieldState&) const = default;
};

enum class ConflictKind : uint8_t {
  kConcurrentSet = 1,        // two or more concurrent sets of one field survive
  kNonNumericIncrement = 2,  // increments survive on a field whose value is not a number
};
std::string_view ConflictKindName(ConflictKind kind);

// What a merge observed and resolved; the node stores these in its conflict log.
struct Conflict {
  ConflictKind kind = ConflictKind::kConcurrentSet;
  std::string key;
  std::string field;
  Sibling winner;                     // the value the field renders
  std::vector<Sibling> losers;        // kConcurrentSet: the other surviving siblings
  std::vector<Increment> increments;  // kNonNumericIncrement: the increments not rendered
  Dot cause;                          // the event whose merge found the conflict
};

// True when a is rendered in preference to b: the greater (hlc, origin id).
inline bool WinsOver(const Sibling& a, const Sibling& b) {
  if (a.hlc != b.hlc) return a.hlc > b.hlc;
  return a.dot.origin > b.dot.origin;
}

// An escrow event of one field waiting for its origin's previous one (`prev`) to be applied.
struct EscrowWaiting {
  Dot dot;
  uint64_t prev = 0;
  bool increment = true;                    // an escrowed increment (amount: its delta)...
  EscrowOpKind kind = EscrowOpKind::kWant;  // ...or this escrow operation
  RegionId region = 0;
  int64_t amount = 0;
  bool operator==(const EscrowWaiting&) const = default;
};

struct StateToMerge;

class DocumentState {
 public:
  // Merges one event into the document (event.key must be this document's key; the caller
  // routes). Idempotent while no Fold has dropped what recognizes the event; callers apply each
  // dot once anyway (their frontier) and must never re-apply a dot covered by a Fold's stable
  // vector. Appends any conflicts the merge found to *conflicts when it is not null.
  void Apply(const Event& event, std::vector<Conflict>* conflicts);

  // True when some write other than a delete is alive.
  bool exists() const { return !presence_.empty(); }
  // The document as canonical JSON (fields sorted by name), or nullopt when it does not exist.
  std::optional<std::string> Render() const;
  // The rendered value of one field, or nullopt when the field is absent.
  std::optional<std::string> RenderField(std::string_view name) const;
  // True when the field renders a value that is not a number: the write path refuses to
  // increment such a field (HTTP 409).
  bool FieldIsNonNumeric(std::string_view name) const;

  // The escrow ledger of a field (nullptr when no escrow event of it was applied), and whether it
  // holds the declaration: then the field is bounded and renders the ledger's Value().
  const EscrowLedger* Ledger(std::string_view field) const;
  bool IsBounded(std::string_view field) const;
  // Every field's ledger, sorted by name; none is empty.
  const std::vector<std::pair<std::string, EscrowLedger>>& escrows() const { return escrows_; }
  // Every field's escrow events waiting for their origin's previous one, sorted by name, each
  // list by dot; none is empty.
  const std::vector<std::pair<std::string, std::vector<EscrowWaiting>>>& escrow_waiting() const {
    return waiting_;
  }

  // Drops metadata no future event can need, given `stable`: a causally stable vector, i.e. one
  // this replica has applied and that the context of every event still to arrive covers. (That
  // every region has applied it is not enough: an event written before its origin applied it may
  // still be on its way. CausalOrder::StableFrontier computes a safe vector.)
  // Keeps only the winning stable sibling, folds stable increments per origin into one entry and
  // forgets removed-vector entries that stable covers. Ledgers are kept as they are (they are
  // already one account per origin). Never changes Render().
  void Fold(const VersionVector& stable);
  // True when nothing is left: a document deleted and folded away; storage may drop it.
  bool empty() const {
    return fields_.empty() && presence_.empty() && removed_.empty() && escrows_.empty() &&
           waiting_.empty();
  }

  // How many siblings, increments and version-vector entries the state holds (bounded-growth
  // checks and metrics).
  size_t MetadataEntries() const;

  // The canonical binary encoding of the whole state (docs/formats.md): equal states encode to
  // equal bytes. Decode validates and never crashes on arbitrary bytes.
  std::string Encode() const;
  static Result<DocumentState> Decode(std::string_view bytes);
  // xxh3-64 of Encode(): equal states, equal digests.
  uint64_t Digest() const;

  const std::vector<std::pair<std::string, FieldState>>& fields() const { return fields_; }
  const VersionVector& presence() const { return presence_; }
  const VersionVector& removed() const { return removed_; }
  bool operator==(const DocumentState&) const = default;

 private:
  FieldState& FieldFor(const std::string& name);
  const FieldState* FindField(std::string_view name) const;
  EscrowLedger& LedgerFor(const std::string& name);
  // Applies one escrow event or escrowed increment of `field` in its origin's chain: at once
  // when its `prev` is the origin's account's last event (what the ledger refuses changes
  // nothing), then the waiting ones it lets through; it waits when an earlier one is missing; a
  // duplicate is dropped. Leaves no empty ledger or waiting list.
  void ApplyChained(const std::string& field, const EscrowWaiting& event);
  // Applies the waiting events of `field` that chain now, drops those the ledger is past.
  void DrainWaiting(const std::string& field);
  void DropEmptyEscrows();
  // The rendered value of a field from its state and ledger (either may be null).
  static std::optional<std::string> RenderWith(const FieldState* field, const EscrowLedger* ledger);
  // Removes from every field and from presence what `context` covers; records it document-wide.
  void RemoveEverywhere(const VersionVector& context);
  bool IsRemoved(const FieldState& field, const Dot& dot) const {
    return removed_.Covers(dot) || field.removed.Covers(dot);
  }
  void DropEmptyFields();

  // Builds a state from two others' parts (state_merge.h).
  friend Result<DocumentState> MergeStates(const StateToMerge& a, const StateToMerge& b);

  std::vector<std::pair<std::string, FieldState>> fields_;     // sorted by name
  std::vector<std::pair<std::string, EscrowLedger>> escrows_;  // sorted by name, none empty
  std::vector<std::pair<std::string, std::vector<EscrowWaiting>>> waiting_;  // likewise
  VersionVector presence_;
  VersionVector removed_;
};

// xxh3-64 of the key and the rendered document (or of the key alone when it does not exist):
// what two regions compare to prove they show the same data, whatever metadata each has folded.
uint64_t RenderedDigest(std::string_view key, const std::optional<std::string>& rendered);

// A document's version, as ETag and If-Match carry it (docs/semantics.md#conditional-writes): 16
// hex digits of its RenderedDigest. Two copies of a document have the same version exactly when
// they render the same (xxh3-64 collisions aside), in any region, whatever their metadata.
std::string DocumentVersion(uint64_t rendered_digest);

// Appends `text` (valid UTF-8) as a JSON string, escaped exactly as nlohmann::json::dump does:
// the renderer uses it for field names.
void AppendJsonString(std::string_view text, std::string* out);

}  // namespace meridian::core
