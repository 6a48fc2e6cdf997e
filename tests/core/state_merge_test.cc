#include "core/state_merge.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "core/replica.h"

namespace meridian::core {
namespace {

constexpr RegionId kUs = 1;
constexpr RegionId kEu = 2;
constexpr char kKey[] = "item:42";

Operation Set(const std::string& field, const std::string& value) {
  Operation op;
  op.kind = OpKind::kSet;
  op.fields = {{field, value}};
  return op;
}

Operation Incr(const std::string& field, int64_t delta) {
  Operation op;
  op.kind = OpKind::kIncrement;
  op.counters = {{field, delta}};
  return op;
}

Operation Delete() {
  Operation op;
  op.kind = OpKind::kDelete;
  return op;
}

// An event of `origin`, numbered `seq`, at physical time `ms`, having seen `context` (its own
// origin's entry is filled in as seq - 1).
Event Ev(RegionId origin, uint64_t seq, uint64_t ms, VersionVector context, Operation op) {
  Event event;
  event.dot = Dot{origin, seq};
  event.hlc = MakeHlc(ms, 0);
  context.Set(origin, seq - 1);
  event.context = std::move(context);
  event.key = kKey;
  event.op = std::move(op);
  EXPECT_TRUE(ValidateEvent(event, Limits{}).ok());
  return event;
}

// One replica's copy: the events it applied (per origin in seq order), folded with `folded`.
struct Side {
  DocumentState state;
  VersionVector applied;
  VersionVector folded;

  Side(const std::vector<Event>& events, VersionVector fold) : folded(std::move(fold)) {
    for (const Event& event : events) {
      state.Apply(event, nullptr);
      applied.Set(event.dot.origin, event.dot.seq);
    }
    state.Fold(folded);
  }
  StateToMerge view() const { return {state, applied, folded}; }
};

DocumentState Merge(const Side& a, const Side& b) {
  Result<DocumentState> merged = MergeStates(a.view(), b.view());
  EXPECT_TRUE(merged.ok()) << merged.status().ToString();
  return merged.ok() ? *merged : DocumentState();
}

// The state of a replica that applied `events` and folded with `folded`.
DocumentState Union(const std::vector<Event>& events, const VersionVector& folded) {
  return Side(events, folded).state;
}

TEST(StateMergeTest, AFoldedIncrementGroupIsNotCountedTwice) {
  const Event one = Ev(kUs, 1, 1000, {}, Incr("stock", 1));
  const Event two = Ev(kUs, 2, 1001, {}, Incr("stock", 2));
  const Event three = Ev(kUs, 3, 1002, {}, Incr("stock", 4));
  const Side folded({one, two, three}, {{kUs, 3}});  // one entry: us:3, +7
  const Side unfolded({one, two}, {});
  ASSERT_EQ(folded.state.fields()[0].second.increments.size(), 1u);
  // A union by dot would count us:1 and us:2 beside the group that already holds them: 10.
  const DocumentState merged = Merge(folded, unfolded);
  EXPECT_EQ(merged.Render(), R"({"stock":7})");
  EXPECT_EQ(merged, Union({one, two, three}, {{kUs, 3}}));
  EXPECT_EQ(Merge(unfolded, folded), merged);
}

TEST(StateMergeTest, SidesThatFoldedOneOriginUpToDifferentSeqs) {
  const Event one = Ev(kUs, 1, 1000, {}, Incr("stock", 1));
  const Event two = Ev(kUs, 2, 1001, {}, Incr("stock", 2));
  const Event three = Ev(kUs, 3, 1002, {}, Incr("stock", 4));
  const Side up_to_two({one, two, three}, {{kUs, 2}});    // us:2 +3, us:3 +4
  const Side up_to_three({one, two, three}, {{kUs, 3}});  // us:3 +7: the same dot, another sum
  const DocumentState merged = Merge(up_to_two, up_to_three);
  EXPECT_EQ(merged.Render(), R"({"stock":7})");
  EXPECT_EQ(merged, Union({one, two, three}, {{kUs, 3}}));
  EXPECT_EQ(Merge(up_to_three, up_to_two), merged);
}

TEST(StateMergeTest, ARemovalOneSideFoldedAwayStillRemoves) {
  const Event sale = Ev(kUs, 1, 1000, {}, Incr("stock", 5));
  const Event restock = Ev(kEu, 1, 1001, {{kUs, 1}}, Set("stock", "100"));  // saw the sale
  // Folded with both, the first side keeps only the restock: nothing records that it removed
  // us:1, which the second side still holds.
  const Side both({sale, restock}, {{kUs, 1}, {kEu, 1}});
  const Side sale_only({sale}, {});
  EXPECT_TRUE(both.state.fields()[0].second.removed.empty());
  const DocumentState merged = Merge(both, sale_only);
  EXPECT_EQ(merged.Render(), R"({"stock":100})");
  EXPECT_EQ(merged, Union({sale, restock}, {{kUs, 1}, {kEu, 1}}));
  EXPECT_EQ(Merge(sale_only, both), merged);
}

TEST(StateMergeTest, AFoldedAwayLoserStaysAway) {
  // Concurrent sets; eu's wins. Folded, the first side forgets us:1, which the second still holds.
  const Event us = Ev(kUs, 1, 1000, {}, Set("price", "12"));
  const Event eu = Ev(kEu, 1, 2000, {}, Set("price", "11"));
  const Event later = Ev(kUs, 2, 3000, {{kEu, 1}}, Incr("price", 1));
  const Side both({us, eu, later}, {{kUs, 1}, {kEu, 1}});
  const Side us_only({us}, {});
  const DocumentState merged = Merge(both, us_only);
  EXPECT_EQ(merged.Render(), R"({"price":12})");  // 11 + 1
  EXPECT_EQ(merged.fields()[0].second.siblings.size(), 1u);
  EXPECT_EQ(merged, Union({us, eu, later}, {{kUs, 1}, {kEu, 1}}));
}

TEST(StateMergeTest, ADeleteOneSideFoldedAwayKeepsTheDocumentDeleted) {
  const Event put = Ev(kUs, 1, 1000, {}, Set("name", R"("lamp")"));
  const Event del = Ev(kEu, 1, 1001, {{kUs, 1}}, Delete());
  const Side both({put, del}, {{kUs, 1}, {kEu, 1}});
  EXPECT_TRUE(both.state.empty());  // deleted and folded away
  const Side put_only({put}, {});
  const DocumentState merged = Merge(both, put_only);
  EXPECT_FALSE(merged.exists());
  EXPECT_TRUE(merged.empty());
  EXPECT_EQ(Merge(put_only, both), merged);
}

TEST(StateMergeTest, WhatOnlyOneSideHasAppliedSurvives) {
  const Event base = Ev(kUs, 1, 1000, {}, Set("stock", "10"));
  const Event sale = Ev(kEu, 1, 1001, {{kUs, 1}}, Incr("stock", -1));
  const Event restock = Ev(kUs, 2, 1002, {{kUs, 1}}, Set("stock", "100"));  // concurrent
  const Side us({base, restock}, {{kUs, 1}});
  const Side eu({base, sale}, {{kUs, 1}});
  const DocumentState merged = Merge(us, eu);
  EXPECT_EQ(merged.Render(), R"({"stock":99})");
  EXPECT_EQ(merged, Union({base, sale, restock}, {{kUs, 1}}));
}

TEST(StateMergeTest, ReseedingAnEmptyReplicaGivesThePeersState) {
  const Event one = Ev(kUs, 1, 1000, {}, Incr("stock", 3));
  const Event two = Ev(kEu, 1, 1001, {{kUs, 1}}, Set("name", R"("lamp")"));
  const Side peer({one, two}, {{kUs, 1}, {kEu, 1}});
  const Side empty({}, {});
  EXPECT_EQ(Merge(empty, peer), peer.state);
  EXPECT_EQ(Merge(peer, empty), peer.state);
}

// The fold bound must be causally stable at its side. The applied frontier is not: merged with
// it in place of the bound, a removal the other side folded away is lost.
TEST(StateMergeTest, TheAppliedFrontierCannotStandInForTheFoldBound) {
  const Event first = Ev(kUs, 1, 1000, {}, Incr("stock", 2));
  const Event set = Ev(kEu, 1, 1001, {{kUs, 1}}, Set("stock", "9"));    // removes us:1
  const Event second = Ev(kUs, 2, 1002, {{kEu, 1}}, Incr("stock", 3));  // saw the set
  // eu folds us:1 and eu:1: stable there, since us:2, the one event it lacks, has seen both.
  const Side eu({first, set}, {{kUs, 1}, {kEu, 1}});
  const Side us({first, second}, {});                    // has not applied eu:1; never folded
  EXPECT_EQ(Merge(us, eu).Render(), R"({"stock":12})");  // 9 + 3
  EXPECT_EQ(Merge(us, eu), Union({first, set, second}, {{kUs, 1}, {kEu, 1}}));
  // {us:2} is within us's frontier but not stable there (eu:1 has not seen us:2).
  Result<DocumentState> wrong = MergeStates({us.state, us.applied, us.applied}, eu.view());
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->Render(), R"({"stock":14})");
}

TEST(StateMergeTest, InconsistentSidesAreRefused) {
  const Event one = Ev(kUs, 1, 1000, {}, Incr("stock", 1));
  const Event other = Ev(kUs, 1, 1000, {}, Incr("stock", 5));  // same dot, another delta
  const Side a({one}, {});
  const Side b({other}, {});
  EXPECT_EQ(MergeStates(a.view(), b.view()).status().code(), StatusCode::kInvalidArgument);
  const VersionVector beyond{{kUs, 2}};
  EXPECT_EQ(MergeStates({a.state, a.applied, beyond}, a.view()).status().code(),
            StatusCode::kInvalidArgument);  // fold bound beyond the frontier
  const VersionVector nothing;
  EXPECT_EQ(MergeStates({a.state, nothing, nothing}, a.view()).status().code(),
            StatusCode::kInvalidArgument);  // holds an event it has not applied
  const Side folded_a({one}, {{kUs, 1}});
  const Side folded_b({other}, {{kUs, 1}});
  EXPECT_EQ(MergeStates(folded_a.view(), folded_b.view()).status().code(),
            StatusCode::kInvalidArgument);  // same bound, different folded sums
}

struct ManualClock : PhysicalClock {
  uint64_t now_ms = 1'700'000'000'000;
  uint64_t NowMs() override { return now_ms; }
};

TEST(ReplicaMergeFromTest, TakesOverThePeersStateFrontierAndClock) {
  ManualClock us_clock;
  ManualClock eu_clock;
  eu_clock.now_ms += 5000;  // eu runs ahead
  Replica us(kUs, &us_clock);
  Replica eu(kEu, &eu_clock);
  ASSERT_TRUE(eu.Write(kKey, Set("name", R"("lamp")")).ok());
  Result<Event> sale = eu.Write(kKey, Incr("stock", -1));
  ASSERT_TRUE(sale.ok());
  eu.Fold(eu.frontier());  // nothing else exists: everything is stable
  ASSERT_TRUE(us.MergeFrom(eu).ok());
  EXPECT_EQ(us.frontier(), eu.frontier());
  EXPECT_EQ(us.folded(), eu.folded());
  EXPECT_EQ(us.Render(kKey), eu.Render(kKey));
  EXPECT_TRUE(us.applied().empty());
  Result<Event> next = us.Write(kKey, Set("name", R"("desk")"));
  ASSERT_TRUE(next.ok());
  EXPECT_GT(next->hlc, sale->hlc);  // it has seen the sale
  EXPECT_EQ(next->context, eu.frontier());
  EXPECT_EQ(us.Render(kKey), R"({"name":"desk","stock":-1})");
}

TEST(ReplicaMergeFromTest, AppliesBufferedEventsTheMergeMakesNext) {
  ManualClock clock;
  Replica us(kUs, &clock);
  Replica eu(kEu, &clock);
  Replica asia(3, &clock);
  std::vector<Event> log;
  for (int i = 0; i < 3; ++i) {
    Result<Event> event = us.Write(kKey, Incr("stock", 1));
    ASSERT_TRUE(event.ok());
    log.push_back(*event);
  }
  EXPECT_EQ(eu.Receive(log[2]), ReceiveOutcome::kBuffered);  // waits for us:1 and us:2
  EXPECT_EQ(asia.Receive(log[0]), ReceiveOutcome::kApplied);
  EXPECT_EQ(asia.Receive(log[1]), ReceiveOutcome::kApplied);
  ASSERT_TRUE(eu.MergeFrom(asia).ok());
  EXPECT_EQ(eu.buffered(), 0u);
  EXPECT_EQ(eu.frontier(), us.frontier());
  EXPECT_EQ(eu.Render(kKey), R"({"stock":3})");
}

TEST(ReplicaMergeFromTest, RefusesAnInconsistentPeerAndChangesNothing) {
  ManualClock clock;
  Replica us(kUs, &clock);
  Replica impostor(kUs, &clock);  // another replica claiming to be us
  ASSERT_TRUE(us.Write(kKey, Incr("stock", 1)).ok());
  ASSERT_TRUE(impostor.Write(kKey, Incr("stock", 2)).ok());
  const std::optional<std::string> before = us.Render(kKey);
  const Status status = us.MergeFrom(impostor);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find(kKey), std::string::npos);
  EXPECT_EQ(us.Render(kKey), before);
}

}  // namespace
}  // namespace meridian::core
