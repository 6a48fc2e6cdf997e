#include "core/replica.h"

#include "core/check.h"

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
  auto pending = pending_.find(event.dot.origin);
  if (pending == pending_.end()) return ReceiveOutcome::kApplied;
  auto& queue = pending->second;
  while (!queue.empty() && queue.begin()->first <= frontier_.Get(event.dot.origin) + 1) {
    Event next = std::move(queue.begin()->second);
    queue.erase(queue.begin());
    if (next.dot.seq == frontier_.Get(next.dot.origin) + 1) {
      clock_.Observe(next.hlc);
      ApplyInOrder(next);
    }
  }
  if (queue.empty()) pending_.erase(pending);
  return ReceiveOutcome::kApplied;
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
  for (auto it = documents_.begin(); it != documents_.end();) {
    it->second.Fold(stable);
    it = it->second.empty() ? documents_.erase(it) : std::next(it);
  }
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
