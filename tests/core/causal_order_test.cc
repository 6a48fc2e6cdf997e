#include "core/causal_order.h"

#include <gtest/gtest.h>

#include <ostream>
#include <vector>

// Readable failure messages (gtest finds PrintTo by argument-dependent lookup).
namespace meridian::core {
inline void PrintTo(const VersionVector& vv, std::ostream* os) {
  *os << vv.ToString();
}
inline void PrintTo(CausalOrder::Arrival arrival, std::ostream* os) {
  switch (arrival) {
    case CausalOrder::Arrival::kNext:
      *os << "next";
      return;
    case CausalOrder::Arrival::kDuplicate:
      *os << "duplicate";
      return;
    case CausalOrder::Arrival::kAheadOfGap:
      *os << "ahead of a gap";
      return;
  }
  *os << "unknown";
}
}  // namespace meridian::core

namespace meridian::core {
namespace {

using Arrival = CausalOrder::Arrival;

constexpr RegionId kUs = 1;
constexpr RegionId kEu = 2;
constexpr RegionId kAsia = 3;
const std::vector<RegionId> kAll = {kUs, kEu, kAsia};

// --- Order -------------------------------------------------------------------------------------

TEST(CausalOrderClassifyTest, NextDuplicateOrAheadOfAGapPerOrigin) {
  CausalOrder us(kUs, VersionVector{{kEu, 2}});
  EXPECT_EQ(us.Classify(Dot{kEu, 3}), Arrival::kNext);
  EXPECT_EQ(us.Classify(Dot{kEu, 2}), Arrival::kDuplicate);
  EXPECT_EQ(us.Classify(Dot{kEu, 1}), Arrival::kDuplicate);
  EXPECT_EQ(us.Classify(Dot{kEu, 4}), Arrival::kAheadOfGap);
  // Another origin's events count from 1, whatever eu's stand at.
  EXPECT_EQ(us.Classify(Dot{kAsia, 1}), Arrival::kNext);
  EXPECT_EQ(us.Classify(Dot{kAsia, 2}), Arrival::kAheadOfGap);
  // This region's own events follow the same rule (they come back while it rebuilds).
  EXPECT_EQ(us.Classify(Dot{kUs, 1}), Arrival::kNext);
  // There is no seq 0: it is never next.
  EXPECT_EQ(us.Classify(Dot{kAsia, 0}), Arrival::kDuplicate);
}

TEST(CausalOrderAdvanceTest, MovesTheFrontierOneEventAtATime) {
  CausalOrder us(kUs);
  us.Advance(Dot{kUs, 1}, VersionVector{});
  us.Advance(Dot{kEu, 1}, VersionVector{});
  us.Advance(Dot{kUs, 2}, VersionVector{{kUs, 1}});
  EXPECT_EQ(us.frontier(), (VersionVector{{kUs, 2}, {kEu, 1}}));
  EXPECT_EQ(us.Classify(Dot{kEu, 1}), Arrival::kDuplicate);
  EXPECT_EQ(us.Classify(Dot{kEu, 2}), Arrival::kNext);
}

TEST(CausalOrderAdvanceDeathTest, AnEventThatIsNotNextStopsTheProcess) {
  CausalOrder us(kUs, VersionVector{{kEu, 1}});
  EXPECT_DEATH(us.Advance(Dot{kEu, 3}, VersionVector{}), "invariant violated");
  EXPECT_DEATH(us.Advance(Dot{kEu, 1}, VersionVector{}), "invariant violated");
}

// --- Known frontiers ---------------------------------------------------------------------------

TEST(CausalOrderKnownTest, AnAppliedEventShowsWhatItsOriginHadApplied) {
  CausalOrder us(kUs, VersionVector{{kUs, 3}, {kAsia, 1}});
  // eu wrote eu:1 having applied us:2 and asia:1.
  us.Advance(Dot{kEu, 1}, VersionVector{{kUs, 2}, {kAsia, 1}});
  ASSERT_EQ(us.known_frontiers().size(), 1u);
  EXPECT_EQ(us.known_frontiers().at(kEu), (VersionVector{{kUs, 2}, {kEu, 1}, {kAsia, 1}}));
  // A later event only raises it.
  us.Advance(Dot{kEu, 2}, VersionVector{{kUs, 2}, {kEu, 1}, {kAsia, 1}});
  EXPECT_EQ(us.known_frontiers().at(kEu), (VersionVector{{kUs, 2}, {kEu, 2}, {kAsia, 1}}));
}

TEST(CausalOrderKnownTest, OwnEventsTeachNothing) {
  CausalOrder us(kUs, VersionVector{{kEu, 4}});
  us.Advance(Dot{kUs, 1}, VersionVector{{kEu, 4}});
  EXPECT_TRUE(us.known_frontiers().empty());
}

TEST(CausalOrderKnownTest, AReportIsUsedOnlyOnceItsOriginsEventsUpToItAreApplied) {
  CausalOrder us(kUs, VersionVector{{kUs, 1}, {kEu, 1}});
  // eu reports {us:1, eu:2}: eu:2 is not applied here, and eu:2's context may not cover us:1.
  us.ObserveFrontier(kEu, VersionVector{{kUs, 1}, {kEu, 2}});
  EXPECT_TRUE(us.known_frontiers().empty()) << "ignored, not kept for later";
  us.Advance(Dot{kEu, 2}, VersionVector{{kEu, 1}});  // written before eu saw us:1
  EXPECT_EQ(us.known_frontiers().at(kEu), (VersionVector{{kEu, 2}}));
  us.ObserveFrontier(kEu, VersionVector{{kUs, 1}, {kEu, 2}});
  EXPECT_EQ(us.known_frontiers().at(kEu), (VersionVector{{kUs, 1}, {kEu, 2}}));
  // An older report lowers nothing.
  us.ObserveFrontier(kEu, VersionVector{{kEu, 1}});
  EXPECT_EQ(us.known_frontiers().at(kEu), (VersionVector{{kUs, 1}, {kEu, 2}}));
}

TEST(CausalOrderKnownTest, AReportOfARegionThatWroteNothingIsUsedAtOnce) {
  CausalOrder us(kUs, VersionVector{{kUs, 2}});
  us.ObserveFrontier(kAsia, VersionVector{{kUs, 1}});
  EXPECT_EQ(us.known_frontiers().at(kAsia), (VersionVector{{kUs, 1}}));
}

TEST(CausalOrderKnownTest, AReportAboutItselfIsIgnored) {
  CausalOrder us(kUs, VersionVector{{kUs, 2}});
  us.ObserveFrontier(kUs, VersionVector{{kUs, 2}});
  EXPECT_TRUE(us.known_frontiers().empty());
}

// --- Stability ---------------------------------------------------------------------------------

TEST(CausalOrderStableTest, IsEmptyUntilEveryOtherRegionIsKnown) {
  CausalOrder us(kUs, VersionVector{{kUs, 3}});
  EXPECT_EQ(us.StableFrontier(std::vector<RegionId>{kUs}), (VersionVector{{kUs, 3}}));
  EXPECT_EQ(us.StableFrontier(std::vector<RegionId>{}), (VersionVector{{kUs, 3}}));
  EXPECT_TRUE(us.StableFrontier(kAll).empty());
  us.ObserveFrontier(kEu, VersionVector{{kUs, 2}});
  EXPECT_TRUE(us.StableFrontier(kAll).empty()) << "asia is still unknown";
  us.ObserveFrontier(kAsia, VersionVector{{kUs, 3}});
  EXPECT_EQ(us.StableFrontier(kAll), (VersionVector{{kUs, 2}}));
  EXPECT_EQ(us.StableFrontier(std::vector<RegionId>{kUs, kAsia}), (VersionVector{{kUs, 3}}));
}

TEST(CausalOrderStableTest, IsTheMeetOfTheFrontierAndTheKnownFrontiers) {
  CausalOrder us(kUs, VersionVector{{kUs, 5}, {kEu, 2}, {kAsia, 4}});
  us.ObserveFrontier(kEu, VersionVector{{kUs, 4}, {kEu, 2}, {kAsia, 1}});
  us.ObserveFrontier(kAsia, VersionVector{{kUs, 3}, {kEu, 2}, {kAsia, 4}});
  EXPECT_EQ(us.StableFrontier(kAll), (VersionVector{{kUs, 3}, {kEu, 2}, {kAsia, 1}}));
}

TEST(CausalOrderStableTest, NeverExceedsTheLocalFrontier) {
  // eu and asia have applied us:1 and asia:1; us has not applied asia:1 yet.
  CausalOrder us(kUs, VersionVector{{kUs, 1}});
  const VersionVector everywhere_else = {{kUs, 1}, {kAsia, 1}};
  us.ObserveFrontier(kEu, everywhere_else);
  us.ObserveFrontier(kAsia, everywhere_else);  // ignored: asia:1 is not here
  EXPECT_TRUE(us.StableFrontier(kAll).empty());
  us.Advance(Dot{kAsia, 1}, VersionVector{});
  EXPECT_EQ(us.StableFrontier(kAll), (VersionVector{{kAsia, 1}}));
  us.ObserveFrontier(kAsia, everywhere_else);
  EXPECT_EQ(us.StableFrontier(kAll), everywhere_else);
  EXPECT_TRUE(us.frontier().Dominates(us.StableFrontier(kAll)));
}

// docs/semantics.md, "When an event is stable": every region has applied us:3, but eu:1, written
// before eu saw it, is still on its way to us. Stability must not reach us:3 before eu:1 is here.
TEST(CausalOrderStableTest, AnEventStillOnItsWayKeepsWhatItHasNotSeenUnstable) {
  CausalOrder us(kUs, VersionVector{{kUs, 3}});
  // eu wrote eu:1 with context {us:1}, then applied us:2 and us:3, and reports so.
  const VersionVector eu_reports = {{kUs, 3}, {kEu, 1}};
  us.ObserveFrontier(kEu, eu_reports);
  EXPECT_TRUE(us.StableFrontier(std::vector<RegionId>{kUs, kEu}).empty());
  us.Advance(Dot{kEu, 1}, VersionVector{{kUs, 1}});
  EXPECT_EQ(us.StableFrontier(std::vector<RegionId>{kUs, kEu}),
            (VersionVector{{kUs, 1}, {kEu, 1}}));
  us.ObserveFrontier(kEu, eu_reports);
  EXPECT_EQ(us.StableFrontier(std::vector<RegionId>{kUs, kEu}), eu_reports);
}

// docs/replication.md#rebuilding: us lost its data directory after writing us:1 (context
// {asia:1}) and us:2; eu holds both and has since applied asia:2..5. us starts over at nothing.
// Until us:1 is back here, no report naming it may count: us:1's context does not cover asia:5,
// and folding asia's metadata with asia:5 before us:1 arrives would misjudge what us:1 saw.
TEST(CausalOrderStableTest, OwnEventsStillToComeBackKeepReportsThatNameThemOut) {
  CausalOrder us(kUs, VersionVector{{kAsia, 5}});  // a re-seeded or rebuilding region
  const VersionVector eu_reports = {{kUs, 2}, {kAsia, 5}};
  us.ObserveFrontier(kEu, eu_reports);
  us.ObserveFrontier(kAsia, VersionVector{{kAsia, 5}});
  EXPECT_FALSE(us.known_frontiers().contains(kEu)) << "eu's report names us:1 and us:2";
  EXPECT_TRUE(us.StableFrontier(kAll).empty());
  // An event of eu whose context names us:2 teaches nothing yet either.
  us.Advance(Dot{kEu, 1}, VersionVector{{kUs, 2}, {kAsia, 5}});
  EXPECT_FALSE(us.known_frontiers().contains(kEu));
  us.Advance(Dot{kUs, 1}, VersionVector{{kAsia, 1}});
  us.Advance(Dot{kUs, 2}, VersionVector{{kAsia, 1}});
  us.ObserveFrontier(kEu, VersionVector{{kUs, 2}, {kEu, 1}, {kAsia, 5}});
  EXPECT_EQ(us.known_frontiers().at(kEu), (VersionVector{{kUs, 2}, {kEu, 1}, {kAsia, 5}}));
  EXPECT_EQ(us.StableFrontier(kAll), (VersionVector{{kAsia, 5}}));
}

// --- Growing the frontier otherwise, and joining -----------------------------------------------

TEST(CausalOrderMergeFrontierTest, JoinsTheFrontierAndKeepsWhatIsKnown) {
  CausalOrder us(kUs, VersionVector{{kUs, 2}, {kEu, 1}});
  us.Advance(Dot{kEu, 2}, VersionVector{{kUs, 1}, {kEu, 1}});
  us.MergeFrontier(VersionVector{{kEu, 5}, {kAsia, 2}});
  EXPECT_EQ(us.frontier(), (VersionVector{{kUs, 2}, {kEu, 5}, {kAsia, 2}}));
  EXPECT_EQ(us.Classify(Dot{kEu, 6}), Arrival::kNext);
  EXPECT_EQ(us.Classify(Dot{kAsia, 2}), Arrival::kDuplicate);
  EXPECT_EQ(us.known_frontiers().at(kEu), (VersionVector{{kUs, 1}, {kEu, 2}}));
  EXPECT_FALSE(us.known_frontiers().contains(kAsia)) << "a snapshot reports nothing";
}

TEST(CausalOrderJoinTest, JoinsFrontiersAndReportsAndLearnsThePeersOwnFrontier) {
  CausalOrder us(kUs, VersionVector{{kUs, 2}, {kEu, 1}});
  us.Advance(Dot{kEu, 2}, VersionVector{{kEu, 1}});
  CausalOrder asia(kAsia, VersionVector{{kUs, 1}, {kEu, 3}, {kAsia, 4}});
  asia.ObserveFrontier(kEu, VersionVector{{kUs, 1}, {kEu, 3}});
  asia.ObserveFrontier(kUs, VersionVector{{kUs, 1}, {kAsia, 2}});

  us.Join(asia);
  EXPECT_EQ(us.frontier(), (VersionVector{{kUs, 2}, {kEu, 3}, {kAsia, 4}}));
  EXPECT_EQ(us.known_frontiers().at(kEu), (VersionVector{{kUs, 1}, {kEu, 3}}));
  EXPECT_EQ(us.known_frontiers().at(kAsia), asia.frontier());
  EXPECT_FALSE(us.known_frontiers().contains(kUs)) << "what asia knew of us is nothing to us";
  EXPECT_EQ(us.StableFrontier(kAll), (VersionVector{{kUs, 1}, {kEu, 3}}));
}

TEST(CausalOrderJoinTest, ACopyThatWentAheadBringsItsEventsAndKeepsReportsObservedMeanwhile) {
  // As a region's commit group does: a copy at the frontier applies events; meanwhile the
  // original observes a report; the join keeps both.
  CausalOrder us(kUs, VersionVector{{kUs, 1}, {kAsia, 1}});
  CausalOrder group(kUs, us.frontier());
  group.Advance(Dot{kEu, 1}, VersionVector{{kUs, 1}});
  group.Advance(Dot{kUs, 2}, VersionVector{{kUs, 1}, {kEu, 1}, {kAsia, 1}});
  us.ObserveFrontier(kAsia, VersionVector{{kUs, 1}, {kAsia, 1}});

  us.Join(group);
  EXPECT_EQ(us.frontier(), (VersionVector{{kUs, 2}, {kEu, 1}, {kAsia, 1}}));
  EXPECT_EQ(us.known_frontiers().at(kEu), (VersionVector{{kUs, 1}, {kEu, 1}}));
  EXPECT_EQ(us.known_frontiers().at(kAsia), (VersionVector{{kUs, 1}, {kAsia, 1}}));
  EXPECT_FALSE(us.known_frontiers().contains(kUs));
  EXPECT_EQ(us.StableFrontier(kAll), (VersionVector{{kUs, 1}}));
}

}  // namespace
}  // namespace meridian::core
