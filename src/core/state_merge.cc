#include "core/state_merge.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/check.h"

namespace meridian::core {

namespace {

const FieldState kNoField;

// What one side says about one field: its entries and everything its removed vectors cover.
struct FieldSide {
  const FieldState& field;
  VersionVector removed;  // the field's removed vector joined with the document's
  const VersionVector& folded;
};

// True unless the side that does not hold `dot` rules it out: it has folded it (its fold bound
// covers the dot, so it applied the event and then removed it or folded it away as a loser), or
// it records a removal of it.
bool Survives(const Dot& dot, const FieldSide& other) {
  return !other.folded.Covers(dot) && !other.removed.Covers(dot);
}

Status Inconsistent(const char* side, const std::string& what) {
  return InvalidArgument("state merge: side " + std::string(side) + ": " + what);
}

// The checkable part of a side's preconditions (see the header).
Status CheckSide(const char* side, const StateToMerge& in) {
  if (!in.applied.Dominates(in.folded)) {
    return Inconsistent(side, "fold bound " + in.folded.ToString() +
                                  " is not within the applied frontier " + in.applied.ToString());
  }
  const DocumentState& state = in.state;
  for (const VersionVector::Entry& entry : state.presence().entries()) {
    const Dot dot{entry.origin, entry.seq};
    if (!in.applied.Covers(dot) || state.removed().Covers(dot)) {
      return Inconsistent(side,
                          "presence entry " + dot.ToString() + " is not applied or is removed");
    }
  }
  for (const auto& [name, field] : state.fields()) {
    VersionVector removed = field.removed;
    removed.Merge(state.removed());
    const std::string& field_name = name;  // a lambda may not capture a structured binding
    auto check = [&](const Dot& dot) -> Status {
      if (!in.applied.Covers(dot) || removed.Covers(dot)) {
        return Inconsistent(side, "field '" + field_name + "' holds " + dot.ToString() +
                                      ", which is not applied or is removed");
      }
      return Status::Ok();
    };
    for (const Sibling& sibling : field.siblings) {
      if (Status status = check(sibling.dot); !status.ok()) return status;
    }
    for (const Increment& increment : field.increments) {
      if (Status status = check(increment.dot); !status.ok()) return status;
    }
  }
  return Status::Ok();
}

__int128 Sum(const std::vector<Increment>& increments) {
  __int128 total = 0;
  for (const Increment& increment : increments) total += increment.delta;
  return total;
}

// The increments of one origin that a side holds, split at the merge's fold line for that origin.
struct OriginIncrements {
  std::vector<Increment> folded;    // seq <= the larger of the two fold bounds' entries
  std::vector<Increment> unfolded;  // above it: single increments on both sides
};

OriginIncrements Split(std::vector<Increment>::const_iterator begin,
                       std::vector<Increment>::const_iterator end, uint64_t line) {
  OriginIncrements split;
  for (auto it = begin; it != end; ++it) {
    (it->dot.seq <= line ? split.folded : split.unfolded).push_back(*it);
  }
  return split;
}

// Merges the increments of one origin (entries sorted by dot) into *out.
Status MergeOriginIncrements(RegionId origin, const FieldSide& a, const OriginIncrements& from_a,
                             const FieldSide& b, const OriginIncrements& from_b,
                             std::vector<Increment>* out) {
  const uint64_t a_line = a.folded.Get(origin);
  const uint64_t b_line = b.folded.Get(origin);
  // Up to the line, the side whose fold bound reaches further has applied every increment there
  // and decides which survive, in its own grouping; the other side can only have removed all of
  // them, with a record it kept (see the header).
  if (a_line != b_line) {
    const bool a_decides = a_line > b_line;
    const std::vector<Increment>& decided = a_decides ? from_a.folded : from_b.folded;
    const FieldSide& other = a_decides ? b : a;
    for (const Increment& increment : decided) {
      if (!other.removed.Covers(increment.dot)) out->push_back(increment);
    }
  } else if (!from_a.folded.empty() && !from_b.folded.empty()) {
    // Both applied every increment up to the line, and a removal only one side made took all of
    // them there: when both hold some, both hold the same ones. Keep one grouping, chosen the
    // same way whichever side is a.
    if (Sum(from_a.folded) != Sum(from_b.folded)) {
      return InvalidArgument("state merge: the sides fold increments of origin " +
                             std::to_string(origin) + " up to the same seq to different sums");
    }
    const auto key = [](const std::vector<Increment>& increments) {
      std::vector<std::pair<uint64_t, int64_t>> entries;
      for (const Increment& increment : increments) {
        entries.emplace_back(increment.dot.seq, increment.delta);
      }
      return std::make_pair(increments.size(), entries);
    };
    const bool keep_a = key(from_a.folded) <= key(from_b.folded);
    const std::vector<Increment>& kept = keep_a ? from_a.folded : from_b.folded;
    for (const Increment& increment : kept) {
      if ((keep_a ? b : a).removed.Covers(increment.dot)) {
        return InvalidArgument("state merge: side " + std::string(keep_a ? "b" : "a") +
                               " records the removal of increment " + increment.dot.ToString() +
                               ", which the other side holds up to the same fold bound");
      }
    }
    out->insert(out->end(), kept.begin(), kept.end());
  }
  // Above the line nothing is folded: a union by dot, less what the side without it rules out.
  auto it_a = from_a.unfolded.begin();
  auto it_b = from_b.unfolded.begin();
  while (it_a != from_a.unfolded.end() || it_b != from_b.unfolded.end()) {
    if (it_b == from_b.unfolded.end() || (it_a != from_a.unfolded.end() && it_a->dot < it_b->dot)) {
      if (Survives(it_a->dot, b)) out->push_back(*it_a);
      ++it_a;
    } else if (it_a == from_a.unfolded.end() || it_b->dot < it_a->dot) {
      if (Survives(it_b->dot, a)) out->push_back(*it_b);
      ++it_b;
    } else {
      if (it_a->delta != it_b->delta) {
        return InvalidArgument("state merge: the sides hold increment " + it_a->dot.ToString() +
                               " with different deltas");
      }
      out->push_back(*it_a);
      ++it_a;
      ++it_b;
    }
  }
  return Status::Ok();
}

Result<FieldState> MergeField(const std::string& name, const FieldSide& a, const FieldSide& b) {
  FieldState merged;
  merged.removed = a.field.removed;
  merged.removed.Merge(b.field.removed);

  const auto& sa = a.field.siblings;
  const auto& sb = b.field.siblings;
  auto it_a = sa.begin();
  auto it_b = sb.begin();
  while (it_a != sa.end() || it_b != sb.end()) {
    if (it_b == sb.end() || (it_a != sa.end() && it_a->dot < it_b->dot)) {
      if (Survives(it_a->dot, b)) merged.siblings.push_back(*it_a);
      ++it_a;
    } else if (it_a == sa.end() || it_b->dot < it_a->dot) {
      if (Survives(it_b->dot, a)) merged.siblings.push_back(*it_b);
      ++it_b;
    } else {
      if (*it_a != *it_b) {
        return InvalidArgument("state merge: the sides hold sibling " + it_a->dot.ToString() +
                               " of field '" + name + "' with different values");
      }
      merged.siblings.push_back(*it_a);
      ++it_a;
      ++it_b;
    }
  }

  // Increments are sorted by dot, so each origin's form one run on each side.
  const auto& ia = a.field.increments;
  const auto& ib = b.field.increments;
  auto run_a = ia.begin();
  auto run_b = ib.begin();
  while (run_a != ia.end() || run_b != ib.end()) {
    RegionId origin = 0;
    if (run_b == ib.end() || (run_a != ia.end() && run_a->dot.origin < run_b->dot.origin)) {
      origin = run_a->dot.origin;
    } else {
      origin = run_b->dot.origin;
    }
    const auto of_origin = [origin](const Increment& i) { return i.dot.origin == origin; };
    const auto end_a = std::find_if_not(run_a, ia.end(), of_origin);
    const auto end_b = std::find_if_not(run_b, ib.end(), of_origin);
    const uint64_t line = std::max(a.folded.Get(origin), b.folded.Get(origin));
    if (Status status = MergeOriginIncrements(origin, a, Split(run_a, end_a, line), b,
                                              Split(run_b, end_b, line), &merged.increments);
        !status.ok()) {
      return status;
    }
    run_a = end_a;
    run_b = end_b;
  }
  return merged;
}

}  // namespace

Result<DocumentState> MergeStates(const StateToMerge& a, const StateToMerge& b) {
  if (Status status = CheckSide("a", a); !status.ok()) return status;
  if (Status status = CheckSide("b", b); !status.ok()) return status;
  const DocumentState& state_a = a.state;
  const DocumentState& state_b = b.state;

  DocumentState merged;
  merged.removed_ = state_a.removed_;
  merged.removed_.Merge(state_b.removed_);

  // Presence: per origin, the latest write other than a delete that is alive. Where both hold
  // one, both have the later one alive or not applied, so it survives; where one side holds
  // none, it has either removed everything of that origin it applied or applied nothing.
  VersionVector origins = state_a.presence_;
  origins.Merge(state_b.presence_);
  for (const VersionVector::Entry& entry : origins.entries()) {
    const uint64_t seq_a = state_a.presence_.Get(entry.origin);
    const uint64_t seq_b = state_b.presence_.Get(entry.origin);
    uint64_t seq = 0;
    if (seq_a != 0 && seq_b != 0) {
      seq = std::max(seq_a, seq_b);
    } else {
      const bool held_by_a = seq_a != 0;
      const StateToMerge& other = held_by_a ? b : a;
      const Dot dot{entry.origin, held_by_a ? seq_a : seq_b};
      if (!other.folded.Covers(dot) && !other.state.removed_.Covers(dot)) seq = dot.seq;
    }
    merged.presence_.Set(entry.origin, seq);
  }

  auto field_a = state_a.fields_.begin();
  auto field_b = state_b.fields_.begin();
  while (field_a != state_a.fields_.end() || field_b != state_b.fields_.end()) {
    const bool take_a = field_b == state_b.fields_.end() ||
                        (field_a != state_a.fields_.end() && field_a->first <= field_b->first);
    const bool take_b = field_a == state_a.fields_.end() ||
                        (field_b != state_b.fields_.end() && field_b->first <= field_a->first);
    const std::string& name = take_a ? field_a->first : field_b->first;
    FieldSide side_a{take_a ? field_a->second : kNoField, state_a.removed_, a.folded};
    side_a.removed.Merge(side_a.field.removed);
    FieldSide side_b{take_b ? field_b->second : kNoField, state_b.removed_, b.folded};
    side_b.removed.Merge(side_b.field.removed);
    Result<FieldState> field = MergeField(name, side_a, side_b);
    if (!field.ok()) return field.status();
    merged.fields_.emplace_back(name, std::move(field).value());
    if (take_a) ++field_a;
    if (take_b) ++field_b;
  }

  // Ledgers are written only by escrow events, each account by its origin's alone, and no
  // removal or fold touches them: their join is the union replica's (EscrowLedger::Join).
  merged.escrows_ = state_a.escrows_;
  for (const auto& [name, ledger] : state_b.escrows_) merged.LedgerFor(name).Join(ledger);
  // Events either side holds waiting for an earlier one: the union, then what chains now.
  merged.waiting_ = state_a.waiting_;
  for (const auto& [name, waiting] : state_b.waiting_) {
    for (const EscrowWaiting& event : waiting) merged.ApplyChained(name, event);
  }
  for (const auto& [name, waiting] : state_a.waiting_) merged.DrainWaiting(name);
  merged.DropEmptyEscrows();

  // What the merge kept, nothing it knows of removes: the state invariant of document.h.
  for (const VersionVector::Entry& entry : merged.presence_.entries()) {
    MERIDIAN_CHECK(!merged.removed_.Covers(Dot{entry.origin, entry.seq}));
  }
  for (const auto& [name, field] : merged.fields_) {
    for (const Sibling& sibling : field.siblings) {
      MERIDIAN_CHECK(!merged.IsRemoved(field, sibling.dot));
    }
    for (const Increment& increment : field.increments) {
      MERIDIAN_CHECK(!merged.IsRemoved(field, increment.dot));
    }
  }

  // The union replica has applied both fold bounds, and the join of two vectors stable at the
  // sides is stable at it (an event neither applied covers both), so it may fold with the join.
  VersionVector folded = a.folded;
  folded.Merge(b.folded);
  merged.Fold(folded);  // also drops the fields left empty
  return merged;
}

}  // namespace meridian::core
