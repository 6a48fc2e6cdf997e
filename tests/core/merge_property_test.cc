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

namespace meridian::core {
namespace {

struct ManualClock : PhysicalClock {
  uint64_t now_ms = 1'700'000'000'000;
  uint64_t NowMs() override { return now_ms; }
};

const char* const kKeys[] = {"item:1", "item:2", "item:3"};
const char* const kFields[] = {"stock", "price", "name"};

// One raw choice of the workload; its meaning depends on `kind` (see Cluster::Step). Raw
// integers keep rapidcheck's shrinking effective.
struct RawStep {
  int kind;
  int a;
  int b;
  int c;
  int d;
};

void showValue(const RawStep& step, std::ostream& os) {
  os << "{" << step.kind << "," << step.a << "," << step.b << "," << step.c << "," << step.d << "}";
}

class Cluster {
 public:
  // Writes use the first `keys` keys and `fields` fields: small spaces make collisions common.
  Cluster(int regions, int keys, int fields) : keys_(keys), fields_(fields) {
    for (int r = 0; r < regions; ++r) {
      clocks_.push_back(std::make_unique<ManualClock>());
      // Region ids 1..regions; clocks start skewed by up to a few ms.
      clocks_.back()->now_ms += static_cast<uint64_t>(r * 3);
      replicas_.push_back(
          std::make_unique<Replica>(static_cast<RegionId>(r + 1), clocks_.back().get()));
      logs_.emplace_back();
    }
  }

  void Step(const RawStep& step) {
    const size_t regions = replicas_.size();
    const size_t region = static_cast<size_t>(step.a) % regions;
    switch (step.kind % 10) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
        Write(region, step);
        break;
      case 5:
      case 6:
      case 7:
        Deliver(region, static_cast<size_t>(step.b) % regions, step.c, step.d);
        break;
      case 8:
        if (step.c % 2 == 0) {
          clocks_[region]->now_ms += static_cast<uint64_t>(step.b % 50);  // time passes unevenly
        } else {
          FoldStable(region);
        }
        break;
      case 9:
        if (step.c % 2 == 0) {
          FoldStable(region);
        } else {
          Heartbeat(static_cast<size_t>(step.b) % regions, region);
        }
        break;
    }
  }

  // Every region tells every other what it has applied (the heartbeats of the real protocol).
  void HeartbeatEverywhere() {
    for (size_t from = 0; from < replicas_.size(); ++from) {
      for (size_t to = 0; to < replicas_.size(); ++to) Heartbeat(from, to);
    }
  }

  std::vector<RegionId> RegionIds() const {
    std::vector<RegionId> ids;
    for (const auto& replica : replicas_) ids.push_back(replica->id());
    return ids;
  }

  void DeliverEverything() {
    // Every origin's whole log to every region, twice over, in a rotated order: duplicates and
    // interleavings of origins differ by region.
    for (int round = 0; round < 2; ++round) {
      for (size_t dst = 0; dst < replicas_.size(); ++dst) {
        for (size_t i = 0; i < replicas_.size(); ++i) {
          const size_t origin = (dst + i + static_cast<size_t>(round)) % replicas_.size();
          for (const Event& event : logs_[origin]) replicas_[dst]->Receive(event);
        }
      }
    }
  }

  // What every region has applied. Not by itself safe to fold with (see StableFrontier).
  VersionVector AppliedEverywhere() const {
    VersionVector applied = replicas_[0]->frontier();
    for (const auto& replica : replicas_)
      applied = VersionVector::Meet(applied, replica->frontier());
    return applied;
  }

  std::vector<Event> AllEvents() const {
    std::vector<Event> all;
    for (const auto& log : logs_) all.insert(all.end(), log.begin(), log.end());
    return all;
  }

  std::vector<std::unique_ptr<Replica>>& replicas() { return replicas_; }
  // Conflicts each region reported, by (key, field).
  const std::set<std::pair<std::string, std::string>>& concurrent_sets(size_t region) const {
    return concurrent_sets_[region];
  }
  void CollectConflicts() {
    concurrent_sets_.resize(replicas_.size());
    for (size_t r = 0; r < replicas_.size(); ++r) {
      for (const Conflict& conflict : replicas_[r]->TakeConflicts()) {
        if (conflict.kind == ConflictKind::kConcurrentSet) {
          RC_ASSERT(!conflict.losers.empty());
          for (const Sibling& loser : conflict.losers) RC_ASSERT(WinsOver(conflict.winner, loser));
          concurrent_sets_[r].emplace(conflict.key, conflict.field);
        }
      }
    }
  }

 private:
  void Write(size_t region, const RawStep& step) {
    const std::string key = kKeys[static_cast<size_t>(step.b) % keys_];
    const size_t field_index = static_cast<size_t>(step.c) % fields_;
    const std::string field = kFields[field_index];
    const std::string other = kFields[(field_index + 1) % 3];
    // Mostly numbers, sometimes a string, so increments meet non-numbers now and then.
    const std::string value = step.d % 7 == 0 ? "\"text" + std::to_string(step.d % 3) + "\""
                                              : std::to_string(step.d % 200);
    Operation op;
    switch (static_cast<unsigned>(step.kind) % 5) {
      case 0:
        op.kind = OpKind::kSet;
        op.fields = {{field, value}};
        break;
      case 1:
        op.kind = OpKind::kReplace;
        op.fields = {{field, value}, {other, std::to_string(step.d % 11)}};
        break;
      case 2:
      case 3:
        op.kind = OpKind::kIncrement;
        op.counters = {{field, step.d % 21 - 10}};
        break;
      case 4:
        op.kind = OpKind::kDelete;
        break;
    }
    clocks_[region]->now_ms += static_cast<uint64_t>(step.d % 3);
    Result<Event> event = replicas_[region]->Write(key, op);
    if (!event.ok()) {
      RC_ASSERT(event.status().code() == StatusCode::kTypeMismatch);
      return;
    }
    logs_[region].push_back(*event);
  }

  // Delivers `count` events of origin's log to dst starting at position `start` (anywhere:
  // before dst's frontier gives duplicates, after it a gap that dst must buffer).
  void Deliver(size_t dst, size_t origin, int start, int count) {
    const auto& log = logs_[origin];
    if (log.empty() || dst == origin) return;
    const size_t first = static_cast<size_t>(start) % log.size();
    const size_t n = static_cast<size_t>(count % 8) + 1;
    for (size_t i = first; i < log.size() && i < first + n; ++i) replicas_[dst]->Receive(log[i]);
  }

  void FoldStable(size_t region) {
    const VersionVector stable = replicas_[region]->StableFrontier(RegionIds());
    RC_ASSERT(AppliedEverywhere().Dominates(stable));
    replicas_[region]->Fold(stable);
  }

  void Heartbeat(size_t from, size_t to) {
    if (from != to)
      replicas_[to]->ObserveFrontier(replicas_[from]->id(), replicas_[from]->frontier());
  }

  size_t keys_;
  size_t fields_;
  std::vector<std::unique_ptr<ManualClock>> clocks_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::vector<std::vector<Event>> logs_;  // per origin, its own events in seq order
  std::vector<std::set<std::pair<std::string, std::string>>> concurrent_sets_;
};

// The specification, computed from the set of events alone.
class Oracle {
 public:
  explicit Oracle(std::vector<Event> events) : events_(std::move(events)) {}

  std::optional<std::string> Render(const std::string& key) const {
    bool exists = false;
    for (const Event& e : events_) {
      if (e.key == key && e.op.kind != OpKind::kDelete && !RemovedByDocument(key, e.dot))
        exists = true;
    }
    if (!exists) return std::nullopt;
    nlohmann::json doc = nlohmann::json::object();
    for (const char* field : kFields) {
      std::optional<nlohmann::json> value = RenderField(key, field);
      if (value) doc[field] = *value;
    }
    return doc.dump();
  }

  // Fields with two or more surviving concurrent sets.
  std::set<std::pair<std::string, std::string>> ConcurrentSets() const {
    std::set<std::pair<std::string, std::string>> result;
    for (const char* key : kKeys) {
      for (const char* field : kFields) {
        if (SurvivingSets(key, field).size() > 1) result.emplace(key, field);
      }
    }
    return result;
  }

 private:
  // Does a replace or delete of the document cover dot?
  bool RemovedByDocument(const std::string& key, const Dot& dot) const {
    for (const Event& e : events_) {
      if (e.key == key && (e.op.kind == OpKind::kDelete || e.op.kind == OpKind::kReplace) &&
          e.context.Covers(dot)) {
        return true;
      }
    }
    return false;
  }

  bool RemovedInField(const std::string& key, const std::string& field, const Dot& dot) const {
    if (RemovedByDocument(key, dot)) return true;
    for (const Event& e : events_) {
      if (e.key != key || e.op.kind != OpKind::kSet || !e.context.Covers(dot)) continue;
      for (const FieldValue& value : e.op.fields) {
        if (value.name == field) return true;
      }
    }
    return false;
  }

  std::vector<Sibling> SurvivingSets(const std::string& key, const std::string& field) const {
    std::vector<Sibling> sets;
    for (const Event& e : events_) {
      if (e.key != key || RemovedInField(key, field, e.dot)) continue;
      for (const FieldValue& value : e.op.fields) {
        if (value.name == field) sets.push_back(Sibling{e.dot, e.hlc, value.value});
      }
    }
    return sets;
  }

  std::optional<nlohmann::json> RenderField(const std::string& key,
                                            const std::string& field) const {
    std::vector<Sibling> sets = SurvivingSets(key, field);
    const Sibling* winner = nullptr;
    for (const Sibling& s : sets) {
      if (winner == nullptr || s.hlc > winner->hlc ||
          (s.hlc == winner->hlc && s.dot.origin > winner->dot.origin)) {
        winner = &s;
      }
    }
    bool any_increment = false;
    int64_t total = 0;
    for (const Event& e : events_) {
      if (e.key != key || e.op.kind != OpKind::kIncrement || RemovedInField(key, field, e.dot))
        continue;
      for (const CounterDelta& counter : e.op.counters) {
        if (counter.name == field) {
          any_increment = true;
          total += counter.delta;
        }
      }
    }
    if (winner == nullptr) {
      if (!any_increment) return std::nullopt;
      return nlohmann::json(total);
    }
    nlohmann::json value = nlohmann::json::parse(winner->value);
    if (any_increment && value.is_number_integer())
      return nlohmann::json(value.get<int64_t>() + total);
    return value;
  }

  std::vector<Event> events_;
};

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
