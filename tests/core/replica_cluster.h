// The random multi-region workload the core property tests share: 3–5 in-memory regions
// (core::Replica) over a small key and field space, driven by raw random steps (writes of every
// kind, deliveries of batches of an origin's log starting anywhere, clock steps, folds at each
// region's stable frontier, frontier heartbeats), and the oracle that renders a document from the
// set of events alone (the specification of docs/semantics.md).
#pragma once

#include <rapidcheck.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/document.h"
#include "core/event.h"
#include "core/replica.h"

namespace meridian::core::workload {

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

inline void showValue(const RawStep& step, std::ostream& os) {
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
  // Per region, the events it wrote, in seq order.
  const std::vector<std::vector<Event>>& logs() const { return logs_; }
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

}  // namespace meridian::core::workload
