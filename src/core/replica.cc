#include "core/replica.h"

#include "core/check.h"
#include "core/state_merge.h"

namespace meridian::core {

Replica::Replica(RegionId id, PhysicalClock* clock, Limits limits)
    : id_(id), clock_(clock), limits_(limits) {
  MERIDIAN_CHECK(id <= kRegionIdMax);
}

Result<Event> StampLocalWrite(RegionId id, const std::string& key, Operation op,
                              const DocumentState* current, const VersionVector& frontier,
                              HybridLogicalClock* clock, const Limits& limits) {
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
                      frontier_, &clock_, limits_);
  if (event.ok()) ApplyInOrder(*event);
  return event;
}

ReceiveOutcome Replica::Receive(const Event& event) {
  const uint64_t applied = frontier_.Get(event.dot.origin);
  if (event.dot.seq <= applied) return ReceiveOutcome::kDuplicate;
  if (event.dot.seq > applied + 1) {
    pending_[event.dot.origin].emplace(event.dot.seq, event);
    return ReceiveOutcome::kBuffered;
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
  while (!queue.empty() && queue.begin()->first <= frontier_.Get(origin) + 1) {
    Event next = std::move(queue.begin()->second);
    queue.erase(queue.begin());
    if (next.dot.seq == frontier_.Get(origin) + 1) {
      clock_.Observe(next.hlc);
      ApplyInOrder(next);
    }
  }
  if (queue.empty()) pending_.erase(pending);
}

void Replica::ApplyInOrder(const Event& event) {
  MERIDIAN_CHECK(event.dot.seq == frontier_.Get(event.dot.origin) + 1);
  documents_[event.key].Apply(event, &conflicts_);
  frontier_.Set(event.dot.origin, event.dot.seq);
  if (event.dot.origin != id_) {
    // The origin had applied the context, and this replica now has all the origin's events up to
    // this one: a frontier report that is safe to use.
    VersionVector known = event.context;
    known.Set(event.dot.origin, event.dot.seq);
    known_frontiers_[event.dot.origin].Merge(known);
  }
  applied_.push_back(event);
}

void Replica::ObserveFrontier(RegionId origin, const VersionVector& frontier) {
  if (origin == id_ || frontier_.Get(origin) < frontier.Get(origin)) return;
  known_frontiers_[origin].Merge(frontier);
}

VersionVector Replica::StableFrontier(const std::vector<RegionId>& regions) const {
  VersionVector stable = frontier_;
  for (RegionId region : regions) {
    if (region == id_) continue;
    auto it = known_frontiers_.find(region);
    if (it == known_frontiers_.end()) return VersionVector();
    stable = VersionVector::Meet(stable, it->second);
  }
  return stable;
}

void Replica::Fold(const VersionVector& stable) {
  MERIDIAN_CHECK(frontier_.Dominates(stable));
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
        MergeStates({take_mine ? mine->second : none, frontier_, folded_},
                    {take_theirs ? theirs->second : none, peer.frontier_, peer.folded_});
    if (!state.ok()) {
      return Status(state.status().code(), "document '" + key + "': " + state.status().message());
    }
    if (!state->empty()) merged.emplace(key, std::move(state).value());
    if (take_mine) ++mine;
    if (take_theirs) ++theirs;
  }

  documents_ = std::move(merged);
  frontier_.Merge(peer.frontier_);
  folded_.Merge(peer.folded_);
  clock_.Observe(peer.clock_.last());
  // A frontier report the peer could use is usable here too: this replica now holds everything
  // the peer held. The peer's own frontier is one: its later events have contexts covering it.
  for (const auto& [origin, known] : peer.known_frontiers_) {
    if (origin != id_) known_frontiers_[origin].Merge(known);
  }
  if (peer.id_ != id_) known_frontiers_[peer.id_].Merge(peer.frontier_);
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
