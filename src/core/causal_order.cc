#include "core/causal_order.h"

#include <utility>

#include "core/check.h"

namespace meridian::core {

CausalOrder::CausalOrder(RegionId self, VersionVector frontier)
    : self_(self), frontier_(std::move(frontier)) {}

CausalOrder::Arrival CausalOrder::Classify(const Dot& dot) const {
  const uint64_t applied = frontier_.Get(dot.origin);
  if (dot.seq <= applied) return Arrival::kDuplicate;
  if (dot.seq > applied + 1) return Arrival::kAheadOfGap;
  return Arrival::kNext;
}

void CausalOrder::Advance(const Dot& dot, const VersionVector& context) {
  MERIDIAN_CHECK(Classify(dot) == Arrival::kNext);
  frontier_.Set(dot.origin, dot.seq);
  if (dot.origin == self_) return;
  // The origin had applied the context, and this region now holds all the origin's events up to
  // this one: a frontier report that is safe to use (unless it names own events not back yet).
  VersionVector known = context;
  known.Set(dot.origin, dot.seq);
  Know(dot.origin, known);
}

void CausalOrder::Know(RegionId origin, const VersionVector& report) {
  // A report that names more of this region's own events than it holds: this region lost them
  // (a new data directory) and they are still to come back, with contexts that may not cover
  // the report. Always false while the region holds every event it wrote.
  if (report.Get(self_) > frontier_.Get(self_)) return;
  known_[origin].Merge(report);
}

void CausalOrder::MergeFrontier(const VersionVector& applied) {
  frontier_.Merge(applied);
}

void CausalOrder::ObserveFrontier(RegionId origin, const VersionVector& frontier) {
  // Only when every event `origin` had written by then is applied here: the events still to come
  // from it then all have contexts covering `frontier`.
  if (origin == self_ || frontier_.Get(origin) < frontier.Get(origin)) return;
  Know(origin, frontier);
}

VersionVector CausalOrder::StableFrontier(std::span<const RegionId> regions) const {
  VersionVector stable = frontier_;
  for (RegionId region : regions) {
    if (region == self_) continue;
    auto it = known_.find(region);
    if (it == known_.end()) return VersionVector();
    stable = VersionVector::Meet(stable, it->second);
  }
  return stable;
}

void CausalOrder::Join(const CausalOrder& other) {
  frontier_.Merge(other.frontier_);
  // A frontier report `other` could use is usable here too: this region now holds everything
  // `other` held. Another region's own frontier is one: its later events have contexts covering
  // it.
  for (const auto& [origin, known] : other.known_) {
    if (origin != self_) known_[origin].Merge(known);
  }
  if (other.self_ != self_) known_[other.self_].Merge(other.frontier_);
}

}  // namespace meridian::core
