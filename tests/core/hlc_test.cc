#include "core/hlc.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace meridian::core {
namespace {

// A physical clock whose time the test sets.
class FakeClock : public PhysicalClock {
 public:
  explicit FakeClock(uint64_t now_ms) : now_ms_(now_ms) {}
  uint64_t NowMs() override { return now_ms_; }
  void Set(uint64_t now_ms) { now_ms_ = now_ms; }
  void Advance(uint64_t ms) { now_ms_ += ms; }

 private:
  uint64_t now_ms_;
};

TEST(HlcPackingTest, MakeAndSplitRoundTrip) {
  const HlcTimestamp t = MakeHlc(1732233600123, 7);
  EXPECT_EQ(HlcPhysicalMs(t), 1732233600123u);
  EXPECT_EQ(HlcLogical(t), 7u);
  EXPECT_EQ(MakeHlc(kHlcPhysicalMax, kHlcLogicalMask), UINT64_MAX);
}

TEST(HlcPackingTest, TimestampsCompareByPhysicalThenLogical) {
  EXPECT_LT(MakeHlc(100, 5), MakeHlc(100, 6));
  EXPECT_LT(MakeHlc(100, kHlcLogicalMask), MakeHlc(101, 0));
}

TEST(HybridLogicalClockTest, NowFollowsThePhysicalClock) {
  FakeClock clock(1000);
  HybridLogicalClock hlc(&clock);
  EXPECT_EQ(hlc.Now(), MakeHlc(1000, 0));
  clock.Set(2000);
  EXPECT_EQ(hlc.Now(), MakeHlc(2000, 0));
  EXPECT_EQ(hlc.last(), MakeHlc(2000, 0));
}

TEST(HybridLogicalClockTest, LogicalCounterIncrementsWithinOneMillisecond) {
  FakeClock clock(1000);
  HybridLogicalClock hlc(&clock);
  EXPECT_EQ(hlc.Now(), MakeHlc(1000, 0));
  EXPECT_EQ(hlc.Now(), MakeHlc(1000, 1));
  EXPECT_EQ(hlc.Now(), MakeHlc(1000, 2));
  clock.Advance(1);
  EXPECT_EQ(hlc.Now(), MakeHlc(1001, 0));
}

TEST(HybridLogicalClockTest, MonotonicWhenThePhysicalClockStalls) {
  FakeClock clock(5000);
  HybridLogicalClock hlc(&clock);
  HlcTimestamp previous = hlc.Now();
  for (int i = 0; i < 100; ++i) {
    const HlcTimestamp next = hlc.Now();
    EXPECT_GT(next, previous);
    EXPECT_EQ(HlcPhysicalMs(next), 5000u);
    previous = next;
  }
}

TEST(HybridLogicalClockTest, MonotonicWhenThePhysicalClockGoesBackwards) {
  FakeClock clock(5000);
  HybridLogicalClock hlc(&clock);
  const HlcTimestamp before = hlc.Now();
  clock.Set(4000);
  const HlcTimestamp after_jump = hlc.Now();
  EXPECT_GT(after_jump, before);
  EXPECT_EQ(after_jump, MakeHlc(5000, 1));
  clock.Set(1);
  EXPECT_GT(hlc.Now(), after_jump);
  // Once the physical clock passes the last timestamp again, it takes over.
  clock.Set(6000);
  EXPECT_EQ(hlc.Now(), MakeHlc(6000, 0));
}

TEST(HybridLogicalClockTest, ObserveMakesTheNextNowGreaterThanTheRemoteTimestamp) {
  FakeClock clock(1000);
  HybridLogicalClock hlc(&clock);
  EXPECT_EQ(hlc.Now(), MakeHlc(1000, 0));
  const HlcTimestamp remote = MakeHlc(1200, 42);
  hlc.Observe(remote);
  EXPECT_EQ(hlc.last(), remote);
  const HlcTimestamp next = hlc.Now();
  EXPECT_GT(next, remote);
  EXPECT_EQ(next, MakeHlc(1200, 43));
}

TEST(HybridLogicalClockTest, ObserveOfAnOlderTimestampKeepsTheClock) {
  FakeClock clock(1000);
  HybridLogicalClock hlc(&clock);
  const HlcTimestamp first = hlc.Now();
  hlc.Observe(MakeHlc(10, 0));
  EXPECT_EQ(hlc.last(), first);
  EXPECT_GT(hlc.Now(), first);
}

TEST(HybridLogicalClockTest, ObserveOfAnEqualPhysicalTimeStillAdvances) {
  FakeClock clock(1000);
  HybridLogicalClock hlc(&clock);
  hlc.Observe(MakeHlc(1000, 0));
  EXPECT_EQ(hlc.Now(), MakeHlc(1000, 1));
}

TEST(HybridLogicalClockTest, SkewWithinTheLimitIsNotCounted) {
  FakeClock clock(10'000);
  HybridLogicalClock hlc(&clock, /*max_skew_ms=*/500);
  EXPECT_EQ(hlc.max_skew_ms(), 500u);
  hlc.Observe(MakeHlc(10'000 + 500, kHlcLogicalMask));  // exactly the limit: not "more than"
  hlc.Observe(MakeHlc(9'000, 0));                       // behind the local clock
  EXPECT_EQ(hlc.skew_count(), 0u);
}

TEST(HybridLogicalClockTest, SkewBeyondTheLimitIsCountedButAccepted) {
  FakeClock clock(10'000);
  HybridLogicalClock hlc(&clock, /*max_skew_ms=*/500);
  const HlcTimestamp far_ahead = MakeHlc(10'000 + 501, 0);
  hlc.Observe(far_ahead);
  EXPECT_EQ(hlc.skew_count(), 1u);
  EXPECT_EQ(hlc.last(), far_ahead);  // still accepted
  EXPECT_GT(hlc.Now(), far_ahead);
  hlc.Observe(MakeHlc(60'000, 0));
  EXPECT_EQ(hlc.skew_count(), 2u);
}

TEST(HybridLogicalClockTest, SkewIsMeasuredAgainstTheCurrentPhysicalClock) {
  FakeClock clock(10'000);
  HybridLogicalClock hlc(&clock, /*max_skew_ms=*/100);
  const HlcTimestamp remote = MakeHlc(10'200, 0);
  clock.Set(10'150);
  hlc.Observe(remote);
  EXPECT_EQ(hlc.skew_count(), 0u);
  clock.Set(10'000);
  hlc.Observe(remote);
  EXPECT_EQ(hlc.skew_count(), 1u);
}

TEST(HybridLogicalClockTest, RestoreNeverMovesBackwards) {
  FakeClock clock(1000);
  HybridLogicalClock hlc(&clock);
  hlc.Restore(MakeHlc(5000, 3));
  EXPECT_EQ(hlc.last(), MakeHlc(5000, 3));
  EXPECT_EQ(hlc.Now(), MakeHlc(5000, 4));
  hlc.Restore(MakeHlc(2000, 0));  // older than what the clock produced: ignored
  EXPECT_EQ(hlc.last(), MakeHlc(5000, 4));
  EXPECT_EQ(hlc.Now(), MakeHlc(5000, 5));
}

TEST(HybridLogicalClockTest, RestoreDoesNotCountSkew) {
  FakeClock clock(1000);
  HybridLogicalClock hlc(&clock, /*max_skew_ms=*/10);
  hlc.Restore(MakeHlc(900'000, 0));
  EXPECT_EQ(hlc.skew_count(), 0u);
}

TEST(HybridLogicalClockTest, LogicalOverflowCarriesIntoTheMillisecond) {
  FakeClock clock(1000);
  HybridLogicalClock hlc(&clock);
  hlc.Restore(MakeHlc(1000, kHlcLogicalMask - 1));
  EXPECT_EQ(hlc.Now(), MakeHlc(1000, kHlcLogicalMask));
  const HlcTimestamp carried = hlc.Now();
  EXPECT_EQ(carried, MakeHlc(1001, 0));
  EXPECT_EQ(hlc.Now(), MakeHlc(1001, 1));
}

TEST(HybridLogicalClockTest, ManyEventsInOneMillisecondStayStrictlyIncreasing) {
  FakeClock clock(1000);
  HybridLogicalClock hlc(&clock);
  HlcTimestamp previous = 0;
  for (uint64_t i = 0; i < kHlcLogicalMask + 10; ++i) {
    const HlcTimestamp next = hlc.Now();
    ASSERT_GT(next, previous) << "at step " << i;
    previous = next;
  }
  EXPECT_EQ(HlcPhysicalMs(previous), 1001u);
}

// "Timestamps never go backwards, whatever the physical clock does": not even when a remote
// timestamp (DecodeEvent accepts any hlc with a physical part) sits at the very end of the range.
TEST(HybridLogicalClockTest, NeverWrapsAroundAtTheEndOfTheRange) {
  FakeClock clock(1000);
  HybridLogicalClock hlc(&clock, /*max_skew_ms=*/500);
  const HlcTimestamp end_of_range = MakeHlc(kHlcPhysicalMax, kHlcLogicalMask);
  hlc.Observe(end_of_range);
  EXPECT_EQ(hlc.skew_count(), 1u);
  const HlcTimestamp next = hlc.Now();
  EXPECT_GE(next, end_of_range) << "Now() wrapped around to " << FormatHlc(next);
  EXPECT_NE(HlcPhysicalMs(next), 0u) << "a timestamp with no physical part is invalid";
}

TEST(FormatHlcTest, FormatsPhysicalDotLogical) {
  EXPECT_EQ(FormatHlc(MakeHlc(1732233600123, 7)), "1732233600123.7");
  EXPECT_EQ(FormatHlc(0), "0.0");
  EXPECT_EQ(FormatHlc(UINT64_MAX), std::to_string(kHlcPhysicalMax) + ".65535");
}

TEST(ParseHlcTest, RoundTripsFormatHlc) {
  for (const HlcTimestamp t :
       {HlcTimestamp{0}, MakeHlc(1, 0), MakeHlc(1732233600123, 7), MakeHlc(1000, kHlcLogicalMask),
        MakeHlc(kHlcPhysicalMax, 0), HlcTimestamp{UINT64_MAX}}) {
    HlcTimestamp parsed = 12345;
    ASSERT_TRUE(ParseHlc(FormatHlc(t), &parsed)) << FormatHlc(t);
    EXPECT_EQ(parsed, t);
  }
}

TEST(ParseHlcTest, RejectsMalformedText) {
  const std::string physical_too_big = std::to_string(kHlcPhysicalMax + 1) + ".0";
  for (const std::string& text :
       {std::string(""), std::string("."), std::string("1"), std::string("1."), std::string(".1"),
        std::string("1.2.3"), std::string("a.1"), std::string("1.b"), std::string("-1.0"),
        std::string("1.-1"), std::string("+1.0"), std::string(" 1.0"), std::string("1.0 "),
        std::string("1,0"), std::string("1.65536"), std::string("99999999999999999999999.0"),
        physical_too_big}) {
    HlcTimestamp parsed = 777;
    EXPECT_FALSE(ParseHlc(text, &parsed)) << '"' << text << '"';
    EXPECT_EQ(parsed, 777u) << "output written on failure for \"" << text << '"';
  }
}

// The contract: "Parses FormatHlc's output; false on anything else." FormatHlc never writes
// leading zeros, so "007.1" is not something it produces.
TEST(ParseHlcTest, RejectsLeadingZerosFormatHlcNeverWrites) {
  HlcTimestamp parsed = 0;
  EXPECT_FALSE(ParseHlc("0100.1", &parsed));
  EXPECT_FALSE(ParseHlc("100.01", &parsed));
}

}  // namespace
}  // namespace meridian::core
