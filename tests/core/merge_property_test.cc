// Property tests of the merge laws over random multi-region workloads.
//
// Each case runs 3–5 in-memory regions (core::Replica) over a small key and field space, so that
// concurrent writes to the same field are frequent. Writes are interleaved with deliveries of
// batches of an origin's events (in that origin's order, starting anywhere: duplicates and gaps
// included) and with folds of causally stable metadata. At the end every region receives
// everything, and the checks are:
//   - every region renders every document identically, with identical state and digests;
//   - each render equals an independent oracle computed from the set of events alone (the
//     specification of docs/semantics.md): counters are the sum of the surviving increments, a
//     delete or set removes only what its context had seen, the winner is the greatest
//     (hlc, origin id) among surviving sets;
//   - folds use Replica::StableFrontier, which never exceeds what every region has applied;
//   - every field left with concurrent values was reported as a conflict in every region;
//   - folding never changes a render, and once everything is stable the metadata is bounded and
//     deleted documents are gone.
// RC_PARAMS=max_success=N sets the number of cases (CTest runs 1000).
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "core/document.h"
#include "core/event.h"
#include "core/replica.h"
#include "core/replica_cluster.h"

namespace meridian::core {
namespace {

using workload::Cluster;
using workload::kKeys;
using workload::Oracle;
using workload::RawStep;

void CheckConverged(Cluster& cluster, const char* stage) {
  auto& replicas = cluster.replicas();
  for (size_t r = 1; r < replicas.size(); ++r) {
    RC_ASSERT(replicas[r]->frontier() == replicas[0]->frontier());
    RC_ASSERT(replicas[r]->buffered() == 0u);
    for (const char* key : kKeys) {
      if (replicas[r]->Render(key) != replicas[0]->Render(key)) {
        RC_FAIL(std::string(stage) + ": regions render " + key +
                " differently: " + replicas[0]->Render(key).value_or("absent") + " and " +
                replicas[r]->Render(key).value_or("absent"));
      }
      RC_ASSERT(RenderedDigest(key, replicas[r]->Render(key)) ==
                RenderedDigest(key, replicas[0]->Render(key)));
    }
  }
}

void CheckStatesIdentical(Cluster& cluster) {
  auto& replicas = cluster.replicas();
  for (size_t r = 1; r < replicas.size(); ++r) {
    const auto& mine = replicas[r]->documents();
    const auto& first = replicas[0]->documents();
    RC_ASSERT(mine.size() == first.size());
    for (const auto& [key, state] : first) {
      auto it = mine.find(key);
      RC_ASSERT(it != mine.end());
      RC_ASSERT(it->second.Encode() == state.Encode());
      RC_ASSERT(it->second.Digest() == state.Digest());
    }
  }
}

std::map<std::string, std::optional<std::string>> RenderAll(Replica& replica) {
  std::map<std::string, std::optional<std::string>> renders;
  for (const char* key : kKeys) renders[key] = replica.Render(key);
  return renders;
}

RC_GTEST_PROP(MergeProperty, RegionsConvergeToTheSpecification, ()) {
  const int regions = *rc::gen::inRange(3, 6);
  const auto steps = *rc::gen::container<std::vector<RawStep>>(rc::gen::construct<RawStep>(
      rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000),
      rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000)));
  Cluster cluster(regions, *rc::gen::inRange(1, 4), *rc::gen::inRange(1, 4));
  for (const RawStep& step : steps) cluster.Step(step);
  cluster.DeliverEverything();
  cluster.CollectConflicts();

  // Same events, same documents, whatever the order, duplication, batching and folding.
  CheckConverged(cluster, "after delivery");
  const Oracle oracle(cluster.AllEvents());
  for (auto& replica : cluster.replicas()) {
    for (const char* key : kKeys) {
      const std::optional<std::string> rendered = replica->Render(key);
      const std::optional<std::string> expected = oracle.Render(key);
      RC_ASSERT(rendered == expected);
    }
  }
  // Every surviving concurrent set was reported by every region.
  const auto expected_conflicts = oracle.ConcurrentSets();
  for (size_t r = 0; r < cluster.replicas().size(); ++r) {
    for (const auto& conflict : expected_conflicts) {
      RC_ASSERT(cluster.concurrent_sets(r).count(conflict) == 1u);
    }
  }

  // Folding everything stable changes no render, leaves identical states, bounds metadata.
  cluster.HeartbeatEverywhere();
  for (auto& replica : cluster.replicas()) {
    const VersionVector stable = replica->StableFrontier(cluster.RegionIds());
    RC_ASSERT(stable == replica->frontier());
    const auto before = RenderAll(*replica);
    replica->Fold(stable);
    RC_ASSERT(RenderAll(*replica) == before);
    for (const auto& [key, state] : replica->documents()) {
      RC_ASSERT(state.exists());  // a deleted document folds away entirely
      RC_ASSERT(state.removed().empty());
      for (const auto& [name, field] : state.fields()) {
        RC_ASSERT(field.siblings.size() <= 1u);
        RC_ASSERT(field.increments.size() <= static_cast<size_t>(regions));
        RC_ASSERT(field.removed.empty());
      }
      auto decoded = DocumentState::Decode(state.Encode());
      RC_ASSERT(decoded.ok());
      RC_ASSERT(*decoded == state);
    }
  }
  CheckStatesIdentical(cluster);
  CheckConverged(cluster, "after folding");
}

// Applying the same events in any per-origin-preserving interleaving, in any batching, gives
// byte-identical states before any folding (the state, not only the render, is a function of the
// set of events).
RC_GTEST_PROP(MergeProperty, StateIsIndependentOfDeliveryOrder, ()) {
  const int regions = *rc::gen::inRange(3, 6);
  const auto steps = *rc::gen::container<std::vector<RawStep>>(rc::gen::construct<RawStep>(
      rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000),
      rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000)));
  Cluster cluster(regions, *rc::gen::inRange(1, 4), *rc::gen::inRange(1, 4));
  for (RawStep step : steps) {
    if (step.kind % 10 >= 8) {  // no folding in this property: only clock advances
      step.kind -= step.kind % 10 - 8;
      step.c -= step.c % 2;
    }
    cluster.Step(step);
  }
  cluster.DeliverEverything();
  CheckConverged(cluster, "after delivery");
  CheckStatesIdentical(cluster);
}

// Folding under pressure: three regions, one counter, only sets and increments, folds and
// heartbeats often. A fold with anything but a causally stable vector shows up here as a counter
// that differs between regions or from the oracle.
RC_GTEST_PROP(MergeProperty, FoldingKeepsCountersExact, ()) {
  const auto steps = *rc::gen::container<std::vector<RawStep>>(rc::gen::construct<RawStep>(
      rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000),
      rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000)));
  Cluster cluster(3, 1, 1);
  for (RawStep step : steps) {
    if (step.kind % 10 < 5) {
      const int op = step.kind % 5;  // set, replace, incr, incr, delete -> set or incr only
      if (op == 1) step.kind += 1;  // replace -> increment
      if (op == 4) step.kind -= 1;  // delete -> increment
      step.d = step.d - step.d % 7 + 1;  // numbers only
    }
    if (step.kind % 10 == 8) step.c |= 1;  // a fold, not a clock step
    cluster.Step(step);
  }
  cluster.DeliverEverything();
  CheckConverged(cluster, "after delivery");
  const Oracle oracle(cluster.AllEvents());
  for (auto& replica : cluster.replicas())
    RC_ASSERT(replica->Render(kKeys[0]) == oracle.Render(kKeys[0]));
}

}  // namespace
}  // namespace meridian::core
