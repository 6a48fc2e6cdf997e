// Property tests of the state merge (core/state_merge.h, Replica::MergeFrom).
//
// Each case runs the shared random workload (replica_cluster.h) among 3–5 regions and, mixed into
// it, three observer replicas A, B and C that only receive: batches of any region's log starting
// anywhere (duplicates and gaps included), frontier heartbeats, and folds at their own stable
// frontier. So the observers end with different per-origin-closed event sets, folded at
// different causally stable points. The checks:
//   - MergeStates of A and B equals, byte for byte, the state of a replica that applied the union
//     of their events (delivered in a random interleaving) folded with the join of their fold
//     bounds, and so renders what it renders;
//   - the merge is commutative, associative (with C) and idempotent;
//   - Replica::MergeFrom: the merged replica and one that received everything A and B received
//     render the same right after the merge and after every further step (writes in the regions
//     and in the merged replica itself, random batches delivered to both, folds at each one's
//     stable frontier, heartbeats), and finally what the oracle renders from all events.
// A second property narrows the workload to one counter with frequent folds and heartbeats, where
// increments folded in different groups on each side are common.
// RC_PARAMS=max_success=N sets the number of cases (CTest runs 1000).
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/document.h"
#include "core/event.h"
#include "core/replica.h"
#include "core/replica_cluster.h"
#include "core/state_merge.h"

namespace meridian::core {
namespace {

using workload::Cluster;
using workload::kFields;
using workload::kKeys;
using workload::ManualClock;
using workload::Oracle;
using workload::RawStep;

constexpr RegionId kFirstObserverId = 20;
constexpr RegionId kUnionId = 30;
constexpr size_t kObservers = 3;

// One replica's documents with its frontier and fold bound: what MergeStates takes.
struct Snapshot {
  std::map<std::string, DocumentState> documents;
  VersionVector applied;
  VersionVector folded;
};

Snapshot SnapshotOf(const Replica& replica) {
  return {replica.documents(), replica.frontier(), replica.folded()};
}

Snapshot Merge(const Snapshot& a, const Snapshot& b) {
  Snapshot merged{{}, a.applied, a.folded};
  merged.applied.Merge(b.applied);
  merged.folded.Merge(b.folded);
  const DocumentState none;
  for (const char* key : kKeys) {
    auto in_a = a.documents.find(key);
    auto in_b = b.documents.find(key);
    Result<DocumentState> state =
        MergeStates({in_a == a.documents.end() ? none : in_a->second, a.applied, a.folded},
                    {in_b == b.documents.end() ? none : in_b->second, b.applied, b.folded});
    if (!state.ok()) RC_FAIL(std::string(key) + ": " + state.status().ToString());
    if (!state->empty()) merged.documents.emplace(key, std::move(state).value());
  }
  return merged;
}

std::optional<std::string> RenderOf(const Snapshot& snapshot, const std::string& key) {
  auto it = snapshot.documents.find(key);
  return it == snapshot.documents.end() ? std::nullopt : it->second.Render();
}

void RequireSameRenders(const Snapshot& actual, const Snapshot& expected, const std::string& what) {
  for (const char* key : kKeys) {
    if (RenderOf(actual, key) != RenderOf(expected, key)) {
      RC_FAIL(what + ": " + key + " renders " + RenderOf(actual, key).value_or("absent") +
              ", expected " + RenderOf(expected, key).value_or("absent"));
    }
  }
}

void RequireSameStates(const Snapshot& actual, const Snapshot& expected, const std::string& what) {
  RequireSameRenders(actual, expected, what);
  RC_ASSERT(actual.applied == expected.applied);
  RC_ASSERT(actual.folded == expected.folded);
  RC_ASSERT(actual.documents.size() == expected.documents.size());
  for (const auto& [key, state] : expected.documents) {
    auto it = actual.documents.find(key);
    RC_ASSERT(it != actual.documents.end());
    if (it->second != state) RC_FAIL(what + ": " + key + " has another state than expected");
  }
}

// The reference: a fresh replica that receives `events` in order, folded with `folded`.
Snapshot UnionOf(const std::vector<Event>& events, const VersionVector& applied,
                 const VersionVector& folded) {
  ManualClock clock;
  Replica replica(kUnionId, &clock);
  for (const Event& event : events) replica.Receive(event);
  RC_ASSERT(replica.frontier() == applied);  // the union of per-origin prefixes is one
  RC_ASSERT(replica.buffered() == 0u);
  replica.Fold(folded);
  return SnapshotOf(replica);
}

// Two event lists in one interleaving chosen by `choices` (each list keeps its order).
std::vector<Event> Interleave(const std::vector<Event>& a, const std::vector<Event>& b,
                              const std::vector<bool>& choices) {
  std::vector<Event> out;
  size_t i = 0;
  size_t j = 0;
  for (size_t k = 0; i < a.size() || j < b.size(); ++k) {
    const bool from_a =
        j == b.size() || (i < a.size() && (k < choices.size() ? choices[k] : k % 2 == 0));
    out.push_back(from_a ? a[i++] : b[j++]);
  }
  return out;
}

// A write of any kind to the small key and field space, from raw choices.
Operation OperationOf(const RawStep& step) {
  const size_t field_index = static_cast<size_t>(step.c) % 3;
  const std::string value = step.d % 7 == 0 ? "\"text\"" : std::to_string(step.d % 200);
  Operation op;
  switch (static_cast<unsigned>(step.b) % 4) {
    case 0:
      op.kind = OpKind::kSet;
      op.fields = {{kFields[field_index], value}};
      break;
    case 1:
      op.kind = OpKind::kReplace;
      op.fields = {{kFields[field_index], value}};
      break;
    case 2:
      op.kind = OpKind::kIncrement;
      op.counters = {{kFields[field_index], step.d % 21 - 10}};
      break;
    case 3:
      op.kind = OpKind::kDelete;
      break;
  }
  return op;
}

// The cluster plus the observers that only receive.
class Harness {
 public:
  Harness(int regions, int keys, int fields) : cluster_(regions, keys, fields) {
    for (size_t o = 0; o < kObservers; ++o) {
      observers_.push_back(
          std::make_unique<Replica>(static_cast<RegionId>(kFirstObserverId + o), &observer_clock_));
      received_.emplace_back();
    }
  }

  // Decided by kind's tens, which the cluster's own steps ignore (they read kind % 10).
  static bool ForCluster(const RawStep& step) { return step.kind / 10 % 8 < 4; }

  // Half the steps are the cluster's own (writes, random deliveries, folds, heartbeats). The rest
  // help frontiers travel, so that folds happen: a region or an observer catches up on part of a
  // region's log and hears that region's heartbeat, or an observer or a region folds at its
  // stable frontier.
  void Step(const RawStep& step) {
    if (ForCluster(step)) {
      cluster_.Step(step);
      return;
    }
    const size_t regions = cluster_.replicas().size();
    const size_t from = static_cast<size_t>(step.b) % regions;
    const size_t observer = static_cast<size_t>(step.a) % (kObservers + 1);  // kObservers: a region
    switch (step.kind / 10 % 8) {
      case 4:
        if (step.d % 4 == 0) {  // a gossip round: every region receives every log
          for (size_t to = 0; to < regions; ++to) {
            for (size_t origin = 0; origin < regions; ++origin) {
              CatchUp(origin, cluster_.replicas()[to].get(), nullptr, 0, SIZE_MAX);
            }
          }
        } else {
          CatchUp(from, step, cluster_.replicas()[static_cast<size_t>(step.a) % regions].get(),
                  nullptr);
        }
        break;
      case 5:
      case 6:
        if (observer < kObservers)
          CatchUp(from, step, observers_[observer].get(), &received_[observer]);
        break;
      case 7: {
        Replica& replica =
            observer < kObservers ? *observers_[observer] : *cluster_.replicas()[from];
        const VersionVector stable = replica.StableFrontier(cluster_.RegionIds());
        RC_ASSERT(cluster_.AppliedEverywhere().Dominates(stable));
        // Anything below a stable vector is stable too: folding at points below it now and then
        // makes the groups of folded increments differ more between replicas.
        VersionVector lower;
        for (const VersionVector::Entry& entry : stable.entries()) {
          lower.Set(entry.origin,
                    entry.seq * static_cast<uint64_t>((step.d + entry.origin) % 4) / 3);
        }
        replica.Fold(step.c % 2 == 0 ? stable : lower);
        break;
      }
    }
  }

  Cluster& cluster() { return cluster_; }
  const Replica& observer(size_t o) const { return *observers_[o]; }
  // Every event delivered to observer o, duplicates and events still buffered included.
  const std::vector<Event>& received(size_t o) const { return received_[o]; }

 private:
  // `count` events of region `from`'s log from `offset` events before or after the next one `to`
  // needs (duplicates, or a gap to buffer), then `from`'s heartbeat.
  void CatchUp(size_t from, Replica* to, std::vector<Event>* received, int offset, size_t count) {
    const Replica& origin = *cluster_.replicas()[from];
    const auto& log = cluster_.logs()[from];
    const int64_t next = static_cast<int64_t>(to->frontier().Get(origin.id()));
    const size_t first = static_cast<size_t>(std::max<int64_t>(0, next + offset));
    for (size_t i = first; i < log.size() && i < first + count; ++i) {
      to->Receive(log[i]);
      if (received != nullptr) received->push_back(log[i]);
    }
    to->ObserveFrontier(origin.id(), origin.frontier());
  }

  // A catch-up as the raw step says: mostly in order, now and then everything there is.
  void CatchUp(size_t from, const RawStep& step, Replica* to, std::vector<Event>* received) {
    const size_t count = step.c % 8 == 7 ? SIZE_MAX : static_cast<size_t>(step.d % 16) + 1;
    CatchUp(from, to, received, step.c % 4 - 2, count);
  }

  Cluster cluster_;
  ManualClock observer_clock_;
  std::vector<std::unique_ptr<Replica>> observers_;
  std::vector<std::vector<Event>> received_;
};

// The merge laws over three replicas' snapshots.
void CheckMergeLaws(const Replica& a, const Replica& b, const Replica& c,
                    const std::vector<bool>& choices) {
  const Snapshot sa = SnapshotOf(a);
  const Snapshot sb = SnapshotOf(b);
  const Snapshot sc = SnapshotOf(c);

  // The merge is the union's state, folded with the join of the fold bounds.
  const Snapshot ab = Merge(sa, sb);
  RequireSameStates(ab,
                    UnionOf(Interleave(a.applied(), b.applied(), choices), ab.applied, ab.folded),
                    "merge of A and B against the union of their events");
  RequireSameStates(Merge(sb, sa), ab, "merge of B and A against merge of A and B");
  RequireSameRenders(Merge(sa, sa), sa, "merge of A with itself against A");
  RequireSameStates(Merge(ab, ab), ab, "merge of a merge with itself");

  const Snapshot bc = Merge(sb, sc);
  const Snapshot abc = Merge(ab, sc);
  RequireSameStates(Merge(sa, bc), abc, "A with (B with C) against (A with B) with C");
  RequireSameStates(
      abc,
      UnionOf(Interleave(Interleave(a.applied(), b.applied(), choices), c.applied(), choices),
              abc.applied, abc.folded),
      "merge of A, B and C against the union of their events");
}

void RequireSameRenders(const Replica& merged, const Replica& reference, const std::string& what) {
  RC_ASSERT(merged.frontier() == reference.frontier());
  RC_ASSERT(merged.buffered() == reference.buffered());
  for (const char* key : kKeys) {
    if (merged.Render(key) != reference.Render(key)) {
      RC_FAIL(what + ": " + key + " renders " + merged.Render(key).value_or("absent") +
              " in the merged replica, " + reference.Render(key).value_or("absent") +
              " in the reference");
    }
  }
}

// The merged replica against one that received everything A and B did, under further events.
void CheckContinuation(Harness& harness, const std::vector<RawStep>& further) {
  Replica merged = harness.observer(0);
  RC_ASSERT(merged.MergeFrom(harness.observer(1)).ok());
  ManualClock clock;
  Replica reference(kUnionId, &clock);
  for (const Event& event : harness.received(0)) reference.Receive(event);
  for (const Event& event : harness.observer(1).applied()) reference.Receive(event);
  RequireSameRenders(merged, reference, "right after the merge");

  Cluster& cluster = harness.cluster();
  std::vector<RegionId> regions = cluster.RegionIds();
  regions.push_back(merged.id());  // the merged replica writes too
  std::vector<Event> merged_log;
  for (const RawStep& step : further) {
    const size_t region = static_cast<size_t>(step.a) % cluster.replicas().size();
    switch (step.kind % 5) {
      case 0:
      case 1:
        cluster.Step(step);
        break;
      case 2: {  // a write in the merged replica, which the reference receives at once
        Result<Event> event =
            merged.Write(kKeys[static_cast<size_t>(step.c) % 3], OperationOf(step));
        if (!event.ok()) {
          RC_ASSERT(event.status().code() == StatusCode::kTypeMismatch);
          break;
        }
        RC_ASSERT(reference.Receive(*event) == ReceiveOutcome::kApplied);
        merged_log.push_back(*event);
        break;
      }
      case 3: {  // the same batch of a region's log to both
        const auto& log = cluster.logs()[region];
        if (log.empty()) break;
        const size_t first = static_cast<size_t>(step.c) % log.size();
        const size_t count = static_cast<size_t>(step.d % 8) + 1;
        for (size_t i = first; i < log.size() && i < first + count; ++i) {
          merged.Receive(log[i]);
          reference.Receive(log[i]);
        }
        break;
      }
      case 4: {  // a heartbeat, or a fold at the stable frontier, of one of the two
        Replica& target = step.b % 2 == 0 ? merged : reference;
        if (step.c % 2 == 0) {
          target.ObserveFrontier(cluster.replicas()[region]->id(),
                                 cluster.replicas()[region]->frontier());
        } else {
          target.Fold(target.StableFrontier(regions));
        }
        break;
      }
    }
    RequireSameRenders(merged, reference, "after a further step");
  }

  for (const auto& log : cluster.logs()) {
    for (const Event& event : log) {
      merged.Receive(event);
      reference.Receive(event);
    }
  }
  RequireSameRenders(merged, reference, "after everything");
  RC_ASSERT(merged.buffered() == 0u);
  std::vector<Event> all = cluster.AllEvents();
  all.insert(all.end(), merged_log.begin(), merged_log.end());
  const Oracle oracle(all);
  for (const char* key : kKeys) RC_ASSERT(merged.Render(key) == oracle.Render(key));
}

// Up to about 400 steps: the observers need many to learn every region's frontier and fold.
rc::Gen<std::vector<RawStep>> Steps() {
  return rc::gen::scale(
      6, rc::gen::container<std::vector<RawStep>>(rc::gen::construct<RawStep>(
             rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000),
             rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000))));
}

RC_GTEST_PROP(StateMergeProperty, MergedStatesAreTheUnionsState, ()) {
  Harness harness(*rc::gen::inRange(3, 6), *rc::gen::inRange(1, 4), *rc::gen::inRange(1, 4));
  for (const RawStep& step : *Steps()) harness.Step(step);
  const auto choices = *rc::gen::arbitrary<std::vector<bool>>();
  CheckMergeLaws(harness.observer(0), harness.observer(1), harness.observer(2), choices);
  auto& regions = harness.cluster().replicas();  // the regions' own states, folded as they go
  CheckMergeLaws(*regions[0], *regions[1], *regions[2], choices);
  CheckContinuation(harness, *Steps());
}

// One counter, only sets and increments, frequent folds and heartbeats: the observers fold
// increments of one origin in different groups, the case a union by dot counts twice.
RC_GTEST_PROP(StateMergeProperty, FoldedCountersMergeExactly, ()) {
  Harness harness(3, 1, 1);
  for (RawStep step : *Steps()) {
    if (Harness::ForCluster(step) && step.kind % 10 < 5) {
      // Cluster::Step's writes: kind % 5 is 0 for a set, 2 for an increment. Mostly increments,
      // so that runs of them live long enough to be folded; numbers only.
      step.kind += (step.d % 32 == 0 ? 0 : 2) - step.kind % 10;
      step.d = step.d - step.d % 7 + 1;
    }
    if (Harness::ForCluster(step) && step.kind % 10 == 8) step.c |= 1;  // a fold, not a clock step
    harness.Step(step);
  }
  const auto choices = *rc::gen::arbitrary<std::vector<bool>>();
  CheckMergeLaws(harness.observer(0), harness.observer(1), harness.observer(2), choices);
  auto& regions = harness.cluster().replicas();  // the regions' own states, folded as they go
  CheckMergeLaws(*regions[0], *regions[1], *regions[2], choices);
  CheckContinuation(harness, *Steps());
}

}  // namespace
}  // namespace meridian::core
