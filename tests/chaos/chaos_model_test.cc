// The chaos checkers' rules on small, hand-made histories, and the fault schedule's promises
// (chaos_model.h). These run in a moment, before the chaos run itself.
#include <gtest/gtest.h>

#include "chaos/chaos_model.h"

namespace meridian::chaos {
namespace {

using nlohmann::json;

constexpr Micros kSecond = 1'000'000;
constexpr Micros kT0 = 1'800'000'000LL * kSecond;  // some wall-clock time

// An acknowledged write sent at `at`, answered 1 ms later, with HLC = the answer's millisecond.
Write Acked(const std::string& region, int region_id, WriteKind kind, const std::string& value,
            Micros at, uint64_t seq) {
  Write write;
  write.region = region;
  write.region_id = region_id;
  write.kind = kind;
  write.key = "k/doc/0";
  write.value = value;
  write.sent = at;
  write.ended = at + 1000;
  write.status = 200;
  write.outcome = Outcome::kAcked;
  write.event = region + ":" + std::to_string(seq);
  write.hlc_ms = static_cast<uint64_t>((at + 500) / 1000);
  return write;
}

Write Unknown(const std::string& region, WriteKind kind, const std::string& value, Micros at,
              Micros latest_commit) {
  Write write;
  write.region = region;
  write.region_id = region == "us" ? 1 : region == "eu" ? 2 : 3;
  write.kind = kind;
  write.key = "k/doc/0";
  write.value = value;
  write.sent = at;
  write.ended = at + 5000;
  write.outcome = Outcome::kUnknown;
  write.latest_commit = latest_commit;
  return write;
}

std::vector<const Write*> Pointers(const std::vector<Write>& writes) {
  std::vector<const Write*> out;
  for (const Write& write : writes) out.push_back(&write);
  return out;
}

std::optional<json> Doc(const std::string& v) {
  return json{{"v", v}};
}

TEST(ChaosModel, TheLastAcknowledgedValueMustWinWhenNothingIsUncertain) {
  const std::vector<Write> writes = {
      Acked("us", 1, WriteKind::kPut, "a", kT0, 1),
      Acked("eu", 2, WriteKind::kPatch, "b", kT0 + kSecond, 1),
  };
  EXPECT_TRUE(CheckUniqueValueKey("k", Doc("b"), Pointers(writes)).empty());
  EXPECT_FALSE(CheckUniqueValueKey("k", Doc("a"), Pointers(writes)).empty());
  EXPECT_FALSE(CheckUniqueValueKey("k", std::nullopt, Pointers(writes)).empty());
  EXPECT_FALSE(CheckUniqueValueKey("k", Doc("never"), Pointers(writes)).empty());
}

TEST(ChaosModel, EqualHlcsAreOrderedByRegionId) {
  std::vector<Write> writes = {
      Acked("us", 1, WriteKind::kPatch, "a", kT0, 1),
      Acked("eu", 2, WriteKind::kPatch, "b", kT0, 1),
  };
  EXPECT_TRUE(CheckUniqueValueKey("k", Doc("b"), Pointers(writes)).empty());
  EXPECT_FALSE(CheckUniqueValueKey("k", Doc("a"), Pointers(writes)).empty());
}

TEST(ChaosModel, AfterADeleteAConcurrentValueMaySurviveButNotOneTheDeleteHadSeen) {
  const std::vector<Write> writes = {
      Acked("us", 1, WriteKind::kPut, "seen", kT0, 1),
      Acked("eu", 2, WriteKind::kPatch, "concurrent", kT0 + kSecond, 1),
      Acked("us", 1, WriteKind::kDelete, "", kT0 + 2 * kSecond, 2),
  };
  EXPECT_TRUE(CheckUniqueValueKey("k", std::nullopt, Pointers(writes)).empty());
  EXPECT_TRUE(CheckUniqueValueKey("k", Doc("concurrent"), Pointers(writes)).empty());
  // "seen" was acknowledged in us before the delete was sent to us.
  EXPECT_FALSE(CheckUniqueValueKey("k", Doc("seen"), Pointers(writes)).empty());
}

TEST(ChaosModel, AnUnknownWriteThatMayComeLaterLoosensTheRule) {
  std::vector<Write> writes = {
      Acked("us", 1, WriteKind::kPut, "a", kT0, 1),
      Unknown("eu", WriteKind::kDelete, "", kT0 + kSecond, kNever),
  };
  EXPECT_TRUE(CheckUniqueValueKey("k", std::nullopt, Pointers(writes)).empty());
  EXPECT_TRUE(CheckUniqueValueKey("k", Doc("a"), Pointers(writes)).empty());
  // The same unknown write, but its process was reaped before the acknowledged one was sent:
  // it cannot have removed it.
  writes[1].sent = kT0 - 2 * kSecond;
  writes[1].latest_commit = kT0 - kSecond;
  EXPECT_FALSE(CheckUniqueValueKey("k", std::nullopt, Pointers(writes)).empty());
  EXPECT_TRUE(CheckUniqueValueKey("k", Doc("a"), Pointers(writes)).empty());
  // An unknown PATCH can explain another value only while it may be later.
  writes[1].kind = WriteKind::kPatch;
  writes[1].value = "u";
  EXPECT_FALSE(CheckUniqueValueKey("k", Doc("u"), Pointers(writes)).empty());
  writes[1].latest_commit = kNever;
  EXPECT_TRUE(CheckUniqueValueKey("k", Doc("u"), Pointers(writes)).empty());
  // A rejected write never explains anything.
  writes[1].outcome = Outcome::kRejected;
  EXPECT_FALSE(CheckUniqueValueKey("k", Doc("u"), Pointers(writes)).empty());
}

TEST(ChaosModel, ClassifyBoundsUnknownWritesByTheRegionsProcesses) {
  std::vector<Write> writes(3);
  for (Write& write : writes) write.region = "us";
  writes[0].status = 200;
  writes[1].sent = 10;  // answered nothing while the first process ran: maybe committed by 20
  writes[1].ended = 30;
  writes[2].sent = 40;  // while no process ran: not sent
  writes[2].ended = 45;
  Classify(&writes, {{"us", {Life{0, 20}, Life{50, kNever}}}});
  EXPECT_EQ(writes[0].outcome, Outcome::kAcked);
  EXPECT_EQ(writes[1].outcome, Outcome::kUnknown);
  EXPECT_EQ(writes[1].latest_commit, 20);
  EXPECT_EQ(writes[2].outcome, Outcome::kNotSent);
}

TEST(ChaosModel, CountersAreBoundedByAcknowledgedAndUnknownIncrements) {
  std::vector<Write> writes(3);
  for (Write& write : writes) {
    write.kind = WriteKind::kIncr;
    write.outcome = Outcome::kAcked;
  }
  writes[0].delta = 2;
  writes[1].delta = 3;
  writes[2].delta = 4;
  writes[2].outcome = Outcome::kUnknown;
  const auto check = [&](int64_t n, int64_t m) {
    return CheckCounterKey("c", json{{"n", n}, {"m", m}}, Pointers(writes));
  };
  EXPECT_TRUE(check(5, -5).empty());
  EXPECT_TRUE(check(9, -9).empty());
  EXPECT_FALSE(check(4, -4).empty());
  EXPECT_FALSE(check(10, -10).empty());
  EXPECT_FALSE(check(5, -9).empty());
}

TEST(ChaosModel, WatchOrderCatchesRepeatsAndReordering) {
  const std::vector<Change> good = {
      {"us:1", "k/a", nullptr}, {"eu:1", "k/b", nullptr}, {"us:3", "k/a", nullptr}};
  EXPECT_TRUE(CheckWatchOrder("us", "k/", good).empty());
  std::vector<Change> repeated = good;
  repeated.push_back({"eu:1", "k/b", nullptr});
  EXPECT_FALSE(CheckWatchOrder("us", "k/", repeated).empty());
  std::vector<Change> backwards = good;
  backwards.push_back({"us:2", "k/b", nullptr});
  EXPECT_FALSE(CheckWatchOrder("us", "k/", backwards).empty());
  std::vector<Change> outside = good;
  outside.push_back({"us:4", "z/b", nullptr});
  EXPECT_FALSE(CheckWatchOrder("us", "k/", outside).empty());
}

TEST(ChaosModel, TheFaultScheduleIsAFunctionOfTheSeed) {
  const std::vector<std::string> regions = {"us", "eu", "asia"};
  const FaultPlan a = PlanFaults(42, 60'000, regions);
  const FaultPlan b = PlanFaults(42, 60'000, regions);
  ASSERT_EQ(a.process.size(), b.process.size());
  ASSERT_EQ(a.network.size(), b.network.size());
  for (size_t i = 0; i < a.network.size(); ++i) {
    EXPECT_EQ(Describe(a.network[i]), Describe(b.network[i]));
    EXPECT_EQ(a.network[i].start_ms, b.network[i].start_ms);
  }
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    const FaultPlan plan = PlanFaults(seed, 60'000, regions);
    // Never two nodes down at once: each process fault ends before the next starts.
    for (size_t i = 1; i < plan.process.size(); ++i) {
      EXPECT_GE(plan.process[i].start_ms, plan.process[i - 1].end_ms) << seed;
    }
    EXPECT_GE(plan.process.size(), 5u) << seed;
    EXPECT_GE(plan.network.size(), 8u) << seed;
    EXPECT_GE(FaultCoverage(plan, 60'000), 0.7) << seed;
  }
}

}  // namespace
}  // namespace meridian::chaos
