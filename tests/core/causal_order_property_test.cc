// Property tests of core::CausalOrder over random multi-region histories.
//
// Each case runs 2–5 regions that only order events (no documents): a region writes (dot
// {self, frontier[self] + 1}, context = its frontier, as StampLocalWrite stamps), receives runs of
// another region's log starting anywhere (duplicates and gaps included; an event ahead of a gap
// is dropped, as node::Region drops it), hears other regions' frontier reports, and now and then
// takes over another region's whole order (Join, as Replica::MergeFrom does). The checks:
//   - any order and duplication of a set of events, redelivered until everything is applied,
//     gives the frontier, known frontiers and stable frontiers of delivery in seq order;
//   - a region's stable frontier is covered by the context of every event it had not applied
//     then, including the events written after (what makes folding with it safe), and never
//     exceeds its frontier;
//   - once everything is delivered everywhere and every region has reported, everything is
//     stable everywhere.
// RC_PARAMS=max_success=N sets the number of cases (CTest runs 1000).
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <ostream>
#include <span>
#include <utility>
#include <vector>

#include "core/causal_order.h"

namespace meridian::core {
namespace {

using Arrival = CausalOrder::Arrival;

struct Written {
  Dot dot;
  VersionVector context;
};

// A frontier one region reported (it had applied it).
struct Report {
  RegionId origin;
  VersionVector frontier;
};

// One raw choice of the history (see History::Step); raw integers shrink well.
struct RawStep {
  int kind;
  int a;
  int b;
  int c;
};

inline void showValue(const RawStep& step, std::ostream& os) {
  os << "{" << step.kind << "," << step.a << "," << step.b << "," << step.c << "}";
}

// What a region knew at one moment: it had applied `frontier`, and had `stable` as stable.
struct Snapshot {
  size_t region;
  VersionVector frontier;
  VersionVector stable;
};

class History {
 public:
  explicit History(int regions) : logs_(static_cast<size_t>(regions)) {
    // Region ids 1..regions.
    for (int r = 0; r < regions; ++r) {
      orders_.emplace_back(static_cast<RegionId>(r + 1));
      ids_.push_back(static_cast<RegionId>(r + 1));
    }
  }

  void Step(const RawStep& step) {
    const size_t n = orders_.size();
    const size_t region = static_cast<size_t>(step.a) % n;
    const size_t other = static_cast<size_t>(step.b) % n;
    switch (step.kind % 8) {
      case 0:
      case 1:
        Write(region);
        break;
      case 2:
      case 3:
      case 4:
        Deliver(region, other, static_cast<size_t>(step.c % 16),
                static_cast<size_t>(step.c / 16 % 6 + 1));
        break;
      case 5:
      case 6:
        Heartbeat(other, region);
        break;
      case 7:
        // As if `region` merged `other`'s whole state (it then holds every event other held).
        if (other != region) orders_[region].Join(orders_[other]);
        break;
    }
    for (size_t r = 0; r < n; ++r) {
      snapshots_.push_back(
          Snapshot{r, orders_[r].frontier(), orders_[r].StableFrontier(ids_)});
    }
  }

  // Every region receives every log, then hears every region's frontier.
  void DeliverEverything() {
    for (size_t to = 0; to < orders_.size(); ++to) {
      for (size_t origin = 0; origin < orders_.size(); ++origin) {
        Deliver(to, origin, 0, logs_[origin].size());
      }
    }
    for (size_t from = 0; from < orders_.size(); ++from) {
      for (size_t to = 0; to < orders_.size(); ++to) Heartbeat(from, to);
    }
  }

  std::vector<Written> AllEvents() const {
    std::vector<Written> all;
    for (const auto& log : logs_) all.insert(all.end(), log.begin(), log.end());
    return all;
  }

  const std::vector<CausalOrder>& orders() const { return orders_; }
  const std::vector<RegionId>& ids() const { return ids_; }
  const std::vector<Report>& reports() const { return reports_; }
  const std::vector<Snapshot>& snapshots() const { return snapshots_; }

 private:
  void Write(size_t region) {
    CausalOrder& order = orders_[region];
    const Written event{Dot{order.self(), order.frontier().Get(order.self()) + 1},
                        order.frontier()};
    RC_ASSERT(order.Classify(event.dot) == Arrival::kNext);
    order.Advance(event.dot, event.context);
    logs_[region].push_back(event);
  }

  // `count` events of origin's log from position `start` (before to's frontier: duplicates,
  // after it: a gap, dropped as the durable region drops it).
  void Deliver(size_t to, size_t origin, size_t start, size_t count) {
    const auto& log = logs_[origin];
    if (to == origin) return;
    for (size_t i = start; i < log.size() && i < start + count; ++i) {
      if (orders_[to].Classify(log[i].dot) == Arrival::kNext) {
        orders_[to].Advance(log[i].dot, log[i].context);
      }
    }
  }

  void Heartbeat(size_t from, size_t to) {
    reports_.push_back(Report{orders_[from].self(), orders_[from].frontier()});
    if (from != to) orders_[to].ObserveFrontier(orders_[from].self(), orders_[from].frontier());
  }

  std::vector<CausalOrder> orders_;
  std::vector<RegionId> ids_;
  std::vector<std::vector<Written>> logs_;  // per region, the events it wrote, in seq order
  std::vector<Report> reports_;             // every frontier any region reported
  std::vector<Snapshot> snapshots_;         // every region after every step
};

History RandomHistory() {
  const auto steps = *rc::gen::container<std::vector<RawStep>>(
      rc::gen::construct<RawStep>(rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000),
                                  rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000)));
  History history(*rc::gen::inRange(2, 6));
  for (const RawStep& step : steps) history.Step(step);
  return history;
}

// Delivers `events` in the given order to `order`, again and again, dropping what is ahead of a
// gap each time (as the durable region does; its stream resends), until nothing is left.
// Returns how many events were applied.
size_t DeliverUntilApplied(CausalOrder* order, std::vector<Written> events) {
  size_t applied = 0;
  const size_t passes_max = events.size();  // each pass applies the next of some origin at least
  for (size_t pass = 0; !events.empty(); ++pass) {
    RC_ASSERT(pass < passes_max);
    std::vector<Written> again;
    for (const Written& event : events) {
      switch (order->Classify(event.dot)) {
        case Arrival::kNext:
          order->Advance(event.dot, event.context);
          ++applied;
          break;
        case Arrival::kDuplicate:
          break;
        case Arrival::kAheadOfGap:
          again.push_back(event);
          break;
      }
    }
    events = std::move(again);
  }
  return applied;
}

// Every event delivered 1–3 times, in a random order.
std::vector<Written> Scrambled(const std::vector<Written>& events) {
  std::vector<Written> copies;
  const auto times =
      *rc::gen::container<std::vector<int>>(events.size(), rc::gen::inRange(1, 4));
  for (size_t i = 0; i < events.size(); ++i) {
    copies.insert(copies.end(), static_cast<size_t>(times[i]), events[i]);
  }
  const auto keys =
      *rc::gen::container<std::vector<uint32_t>>(copies.size(), rc::gen::arbitrary<uint32_t>());
  std::vector<size_t> positions(copies.size());
  std::iota(positions.begin(), positions.end(), 0);
  std::stable_sort(positions.begin(), positions.end(),
                   [&](size_t x, size_t y) { return keys[x] < keys[y]; });
  std::vector<Written> scrambled;
  for (size_t position : positions) scrambled.push_back(copies[position]);
  return scrambled;
}

RC_GTEST_PROP(CausalOrderProperty, AnyDeliveryOrderGivesTheInOrderResult, ()) {
  const History history = RandomHistory();
  const std::vector<Written> events = history.AllEvents();
  // An observer region (id 0, writing nothing) receives the events, then every report.
  std::vector<RegionId> regions = history.ids();
  regions.push_back(0);

  CausalOrder in_order(0);
  for (const Written& event : events) {  // each origin's log in seq order, one after another
    RC_ASSERT(in_order.Classify(event.dot) == Arrival::kNext);
    in_order.Advance(event.dot, event.context);
  }
  CausalOrder scrambled(0);
  RC_ASSERT(DeliverUntilApplied(&scrambled, Scrambled(events)) == events.size());

  VersionVector heads;
  for (const Written& event : events) heads.Merge(VersionVector{{event.dot.origin, event.dot.seq}});
  RC_ASSERT(in_order.frontier() == heads);
  RC_ASSERT(scrambled.frontier() == heads);
  RC_ASSERT(scrambled.known_frontiers() == in_order.known_frontiers());
  for (const Report& report : history.reports()) {
    in_order.ObserveFrontier(report.origin, report.frontier);
    scrambled.ObserveFrontier(report.origin, report.frontier);
  }
  RC_ASSERT(scrambled.known_frontiers() == in_order.known_frontiers());
  for (size_t count = 0; count <= regions.size(); ++count) {
    const std::span<const RegionId> some(regions.data(), count);
    RC_ASSERT(scrambled.StableFrontier(some) == in_order.StableFrontier(some));
  }
}

RC_GTEST_PROP(CausalOrderProperty, StableFrontiersAreCoveredByEveryEventStillToCome, ()) {
  History history = RandomHistory();
  history.DeliverEverything();
  const std::vector<Written> events = history.AllEvents();
  for (const Snapshot& snapshot : history.snapshots()) {
    RC_ASSERT(snapshot.frontier.Dominates(snapshot.stable));
    for (const Written& event : events) {
      if (snapshot.frontier.Covers(event.dot)) continue;  // applied there already
      RC_ASSERT(event.context.Dominates(snapshot.stable));
    }
  }
  // Everything delivered and reported everywhere: everything is stable everywhere.
  const VersionVector all = history.orders().front().frontier();
  for (const CausalOrder& order : history.orders()) {
    RC_ASSERT(order.frontier() == all);
    RC_ASSERT(order.StableFrontier(history.ids()) == all);
  }
}

}  // namespace
}  // namespace meridian::core
