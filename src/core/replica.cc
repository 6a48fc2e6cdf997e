#include "core/replica.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "core/check.h"
#include "core/state_merge.h"

namespace meridian::core {

Replica::Replica(RegionId id, PhysicalClock* clock, Limits limits)
    : id_(id), clock_(clock), limits_(limits), order_(id) {
  MERIDIAN_CHECK(id <= kRegionIdMax);
}

namespace {

Status BoundedField(const std::string& field, const std::string& what) {
  return Status(StatusCode::kBoundedField, "field '" + field + "' is a bounded counter: " + what);
}

// A region decides its escrow events on its own account, which must then hold all its earlier
// ones: not while some of them wait in this copy for an earlier one (a copy taken from a peer
// that lacked one, until it is repaired).
Status CheckOwnChain(RegionId id, const DocumentState& doc, const std::string& field) {
  for (const auto& [name, waiting] : doc.escrow_waiting()) {
    if (name != field) continue;
    for (const EscrowWaiting& event : waiting) {
      if (event.dot.origin == id) {
        return Status(StatusCode::kUnavailable,
                      "field '" + field +
                          "': this region's copy lacks some of its own escrow events; it takes "
                          "writes of the field again once it is repaired from a peer");
      }
    }
  }
  return Status::Ok();
}

// The checks of docs/semantics.md#bounded-counters on a local write (see StampLocalWrite); fills
// in what the command path decides: escrow flags, a declaration's shares.
Status CheckBounds(RegionId id, Operation* op, const DocumentState* current,
                   std::span<const RegionId> regions) {
  static const DocumentState kNone;
  const DocumentState& doc = current != nullptr ? *current : kNone;
  switch (op->kind) {
    case OpKind::kIncrement:
      for (CounterDelta& counter : op->counters) {
        counter.escrow = doc.IsBounded(counter.name);
        counter.prev = 0;
        if (!counter.escrow) continue;
        const EscrowLedger& ledger = *doc.Ledger(counter.name);
        MERIDIAN_RETURN_IF_ERROR(CheckOwnChain(id, doc, counter.name));
        if (Status status = ledger.CheckIncrement(id, counter.delta); !status.ok()) {
          return Status(status.code(), "field '" + counter.name + "': " + status.message());
        }
        counter.prev = ledger.Account(id).seq;
      }
      return Status::Ok();
    case OpKind::kSet:
      for (const FieldValue& field : op->fields) {
        if (doc.IsBounded(field.name)) {
          return BoundedField(field.name, "it changes only by increments (POST .../incr)");
        }
      }
      return Status::Ok();
    case OpKind::kReplace:
    case OpKind::kDelete:
      for (const auto& [name, ledger] : doc.escrows()) {
        if (ledger.declared()) {
          return BoundedField(name, std::string("a ") +
                                        (op->kind == OpKind::kDelete ? "delete" : "replace") +
                                        " would remove it; it changes only by increments");
        }
      }
      return Status::Ok();
    case OpKind::kEscrow:
      break;
  }
  EscrowOp& escrow = op->escrow;
  const EscrowLedger* ledger = doc.Ledger(escrow.field);
  escrow.prev = 0;
  if (escrow.kind != EscrowOpKind::kDeclare) {
    if (ledger == nullptr || !ledger->declared()) {
      return InvalidArgument("field '" + escrow.field + "' is not a bounded counter here");
    }
    MERIDIAN_RETURN_IF_ERROR(CheckOwnChain(id, doc, escrow.field));
    escrow.prev = ledger->Account(id).seq;
    switch (escrow.kind) {
      case EscrowOpKind::kTransfer:
        return ledger->CheckTransfer(id, escrow.region, escrow.amount);
      case EscrowOpKind::kAccept:
        return ledger->CheckAccept(id, escrow.region, escrow.amount);
      default:
        return Status::Ok();  // a want: its level was checked with the operation
    }
  }
  if (ledger != nullptr && ledger->declared()) {
    return BoundedField(escrow.field, "it is bounded already, with min " +
                                          std::to_string(ledger->declaration()->min));
  }
  const bool waiting = std::any_of(doc.escrow_waiting().begin(), doc.escrow_waiting().end(),
                                   [&](const auto& entry) { return entry.first == escrow.field; });
  if (ledger != nullptr || waiting) {
    return BoundedField(escrow.field,
                        "other regions' escrow events of it arrived here before its declaration: "
                        "it was declared elsewhere");
  }
  const std::optional<std::string> rendered = doc.RenderField(escrow.field);
  int64_t value = 0;
  if (rendered) {
    const char* end = rendered->data() + rendered->size();
    auto [last, error] = std::from_chars(rendered->data(), end, value);
    if (error != std::errc() || last != end) {
      return Status(StatusCode::kTypeMismatch, "field '" + escrow.field + "' holds " + *rendered +
                                                   ", not an integer: it cannot be bounded");
    }
  }
  if (value < escrow.min) {
    return Status(StatusCode::kBoundExceeded, "field '" + escrow.field + "' is " +
                                                  std::to_string(value) + ", below the bound " +
                                                  std::to_string(escrow.min));
  }
  std::vector<RegionId> among(regions.begin(), regions.end());
  if (std::find(among.begin(), among.end(), id) == among.end()) among.push_back(id);
  // value >= min, both int64: the room fits in uint64, and in int64 unless min is far below 0.
  const __int128 room = static_cast<__int128>(value) - escrow.min;
  if (room > std::numeric_limits<int64_t>::max()) {
    return InvalidArgument("field '" + escrow.field + "': the room above the bound, " +
                           std::to_string(value) + " - " + std::to_string(escrow.min) +
                           ", does not fit in 64 bits");
  }
  escrow.shares = SplitRoom(static_cast<int64_t>(room), among, id);
  return Status::Ok();
}

}  // namespace

bool RepeatedDeclaration(const Operation& op, const DocumentState* current) {
  if (op.kind != OpKind::kEscrow || op.escrow.kind != EscrowOpKind::kDeclare ||
      current == nullptr) {
    return false;
  }
  const EscrowLedger* ledger = current->Ledger(op.escrow.field);
  return ledger != nullptr && ledger->declared() && ledger->declaration()->min == op.escrow.min;
}

Result<Event> StampLocalWrite(RegionId id, const std::string& key, Operation op,
                              const DocumentState* current, const VersionVector& frontier,
                              HybridLogicalClock* clock, const Limits& limits,
                              std::span<const RegionId> regions) {
  if (Status status = ValidateKey(key, limits); !status.ok()) return status;
  if (Status status = CheckCanonicalOperation(&op, limits); !status.ok()) return status;
  if (op.kind == OpKind::kIncrement && current != nullptr) {
    for (const CounterDelta& counter : op.counters) {
      if (current->FieldIsNonNumeric(counter.name)) {
        return Status(StatusCode::kTypeMismatch,
                      "field '" + counter.name + "' holds a non-number; it cannot be incremented");
      }
    }
  }
  if (Status status = CheckBounds(id, &op, current, regions); !status.ok()) return status;
  Event event;
  event.dot = Dot{id, frontier.Get(id) + 1};
  event.hlc = clock->Now();
  event.context = frontier;
  event.key = key;
  event.op = std::move(op);
  return event;
}

Result<Event> Replica::Write(const std::string& key, Operation op) {
  if (Status status = NormalizeOperation(&op, limits_); !status.ok()) return status;
  auto it = documents_.find(key);
  Result<Event> event =
      StampLocalWrite(id_, key, std::move(op), it == documents_.end() ? nullptr : &it->second,
                      order_.frontier(), &clock_, limits_);
  if (event.ok()) ApplyInOrder(*event);
  return event;
}

ReceiveOutcome Replica::Receive(const Event& event) {
  switch (order_.Classify(event.dot)) {
    case CausalOrder::Arrival::kDuplicate:
      return ReceiveOutcome::kDuplicate;
    case CausalOrder::Arrival::kAheadOfGap:
      pending_[event.dot.origin].emplace(event.dot.seq, event);
      return ReceiveOutcome::kBuffered;
    case CausalOrder::Arrival::kNext:
      break;
  }
  clock_.Observe(event.hlc);
  ApplyInOrder(event);
  ApplyBuffered(event.dot.origin);
  return ReceiveOutcome::kApplied;
}

void Replica::ApplyBuffered(RegionId origin) {
  auto pending = pending_.find(origin);
  if (pending == pending_.end()) return;
  auto& queue = pending->second;
  while (!queue.empty() &&
         order_.Classify(queue.begin()->second.dot) != CausalOrder::Arrival::kAheadOfGap) {
    Event next = std::move(queue.begin()->second);
    queue.erase(queue.begin());
    if (order_.Classify(next.dot) == CausalOrder::Arrival::kNext) {
      clock_.Observe(next.hlc);
      ApplyInOrder(next);
    }
  }
  if (queue.empty()) pending_.erase(pending);
}

void Replica::ApplyInOrder(const Event& event) {
  documents_[event.key].Apply(event, &conflicts_);
  order_.Advance(event.dot, event.context);  // checks that it was the next of its origin
  applied_.push_back(event);
}

void Replica::ObserveFrontier(RegionId origin, const VersionVector& frontier) {
  order_.ObserveFrontier(origin, frontier);
}

VersionVector Replica::StableFrontier(const std::vector<RegionId>& regions) const {
  return order_.StableFrontier(regions);
}

void Replica::Fold(const VersionVector& stable) {
  MERIDIAN_CHECK(order_.frontier().Dominates(stable));
  folded_.Merge(stable);
  for (auto it = documents_.begin(); it != documents_.end();) {
    it->second.Fold(stable);
    it = it->second.empty() ? documents_.erase(it) : std::next(it);
  }
}

Status Replica::MergeFrom(const Replica& peer) {
  // Every document either side holds; a document one side lacks is the empty state (never
  // written there, or deleted and folded away).
  const DocumentState none;
  std::map<std::string, DocumentState> merged;
  auto mine = documents_.begin();
  auto theirs = peer.documents_.begin();
  while (mine != documents_.end() || theirs != peer.documents_.end()) {
    const bool take_mine = theirs == peer.documents_.end() ||
                           (mine != documents_.end() && mine->first <= theirs->first);
    const bool take_theirs = mine == documents_.end() ||
                             (theirs != peer.documents_.end() && theirs->first <= mine->first);
    const std::string& key = take_mine ? mine->first : theirs->first;
    Result<DocumentState> state =
        MergeStates({take_mine ? mine->second : none, order_.frontier(), folded_},
                    {take_theirs ? theirs->second : none, peer.order_.frontier(), peer.folded_});
    if (!state.ok()) {
      return Status(state.status().code(), "document '" + key + "': " + state.status().message());
    }
    if (!state->empty()) merged.emplace(key, std::move(state).value());
    if (take_mine) ++mine;
    if (take_theirs) ++theirs;
  }

  documents_ = std::move(merged);
  order_.Join(peer.order_);  // frontiers and frontier reports
  folded_.Merge(peer.folded_);
  clock_.Observe(peer.clock_.last());
  std::vector<RegionId> origins;
  for (const auto& [origin, queue] : pending_) origins.push_back(origin);
  for (RegionId origin : origins) ApplyBuffered(origin);
  return Status::Ok();
}

size_t Replica::buffered() const {
  size_t total = 0;
  for (const auto& [origin, queue] : pending_) total += queue.size();
  return total;
}

std::optional<std::string> Replica::Render(const std::string& key) const {
  auto it = documents_.find(key);
  if (it == documents_.end()) return std::nullopt;
  return it->second.Render();
}

std::vector<Conflict> Replica::TakeConflicts() {
  std::vector<Conflict> taken;
  taken.swap(conflicts_);
  return taken;
}

}  // namespace meridian::core
