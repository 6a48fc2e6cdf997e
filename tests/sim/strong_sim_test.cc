// Strong operations and transactions in the simulator (docs/testing.md, "Strong operations and
// transactions"): their checkers report what they look for, and what the simulator found about
// home regions stays fixed.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "sim/simulation.h"
#include "sim_support.h"

namespace meridian::sim {
namespace {

// The regions' own log lines (every home table noting every move) would drown the tests' output;
// the simulator's trace says what happened.
class QuietLogs : public testing::Environment {
 public:
  void SetUp() override { spdlog::set_level(spdlog::level::warn); }
};
testing::Environment* const kQuietLogs = testing::AddGlobalTestEnvironment(new QuietLogs);

using test_support::Mentions;
using test_support::Scripted;

core::Operation Set(const std::string& field, const std::string& value) {
  core::Operation op;
  op.kind = core::OpKind::kSet;
  op.fields.push_back({field, value});
  return op;
}

// A client's request and its answer, once it came.
struct Asked {
  std::optional<Result<node::Receipt>> receipt;
  std::vector<node::Change> changes;
  Simulation::Answer answer() {
    return [this](const Result<node::Receipt>& got, std::vector<node::Change> made) {
      receipt = got;
      changes = std::move(made);
    };
  }
};

// A transaction setting k/1 and k/2.
node::WriteRequest TwoKeyTransaction() {
  node::WriteRequest write;
  core::Transaction txn;
  txn.then_ops = {{"k/1", Set("a", "1")}, {"k/2", Set("a", "2")}};
  write.txn = std::make_shared<const core::Transaction>(txn);
  return write;
}

// A transaction applied in its region only: the checker reports every region that lacks it, and
// none once they converged.
TEST(SimTransactions, TheCheckerReportsARegionLackingATransaction) {
  Simulation sim({"us", "eu", "asia"}, Scripted(), nullptr);
  sim.RunFor(1000);
  sim.Cut(0, 1, true);
  sim.Cut(0, 2, true);
  const node::WriteRequest write = TwoKeyTransaction();
  Asked asked;
  sim.Request(0, write, asked.answer());
  sim.RunFor(500);
  ASSERT_TRUE(asked.receipt.has_value());
  ASSERT_TRUE(asked.receipt->ok()) << asked.receipt->status().message();
  EXPECT_EQ(asked.receipt->value().events.size(), 2u);
  EXPECT_EQ(asked.changes.size(), 2u);  // the changes of its own events
  EXPECT_EQ(sim.transactions(), 1u);
  const std::vector<std::string> failures = sim.Check(false);
  EXPECT_TRUE(Mentions(failures, "eu lacks transaction us:1..us:2 (k/1, k/2)")) << failures.front();
  EXPECT_TRUE(Mentions(failures, "asia lacks transaction us:1..us:2 (k/1, k/2)"));
  sim.HealAll();
  ASSERT_TRUE(sim.RunUntilConverged(60'000).has_value());
  EXPECT_EQ(sim.Check(false), std::vector<std::string>());
  EXPECT_EQ(sim.Get(2, "k/2"), "{\"a\":2}");
}

// A request queued for a group commit when its region crashes is lost: its client hears that
// the region went away, and nothing was applied.
TEST(SimTransactions, ARequestQueuedWhenItsRegionCrashesIsAnsweredUnavailable) {
  Simulation sim({"us", "eu", "asia"}, Scripted(), nullptr);
  sim.RunFor(1000);
  const node::WriteRequest write = TwoKeyTransaction();
  Asked asked;
  sim.Request(0, write, asked.answer());
  sim.Crash(0);
  ASSERT_TRUE(asked.receipt.has_value());
  EXPECT_EQ(asked.receipt->status().code(), StatusCode::kUnavailable);
  sim.Restart(0);
  ASSERT_TRUE(sim.RunUntilConverged(60'000).has_value());
  EXPECT_EQ(sim.transactions(), 0u);
  EXPECT_EQ(sim.Get(1, "k/1"), std::nullopt);
  EXPECT_EQ(sim.Check(false), std::vector<std::string>());
}

// Found by the simulator: us, the configured home of h/, moved it to eu, then lost its data
// directory. It restarts with the configured table (us is the home), re-seeds from a peer's
// snapshot, which holds the move, and must follow it: it used to keep the configured home until a
// restart read the record back, and to take strong writes on h/ while eu did too. Meanwhile, as
// it rebuilds, it answers no strong read.
TEST(SimStrong, ARegionThatLostItsStoreFollowsTheHomeRecordItReseeds) {
  Options options = Scripted();
  options.homes = {node::Home{"h/", 1, 0, false}};
  Simulation sim({"us", "eu", "asia"}, options, nullptr);
  sim.RunFor(1000);
  const node::WriteRequest move = node::HomeMoveWrite(*sim.homes(0), node::Home{"h/", 2, 1, false});
  Asked moved;
  sim.Request(0, move, moved.answer());
  ASSERT_TRUE(sim.RunUntilConverged(60'000).has_value());
  ASSERT_TRUE(moved.receipt.has_value() && moved.receipt->ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(sim.homes(i)->HomeOf("h/a")->region, 2u) << i;

  sim.LoseDisk(0);
  sim.Restart(0);
  EXPECT_EQ(sim.homes(0)->HomeOf("h/a")->region, 1u);  // the configuration's
  EXPECT_EQ(sim.region(0)->CheckStrongRead("h/a").code(), StatusCode::kRebuilding);
  ASSERT_TRUE(sim.RunUntilConverged(60'000).has_value());
  EXPECT_EQ(sim.homes(0)->HomeOf("h/a")->region, 2u);
  EXPECT_EQ(sim.region(0)->CheckStrongRead("h/a").code(), StatusCode::kNotHome);
  node::WriteRequest put{"h/a", Set("v", "1")};
  put.strong = true;
  Asked refused;
  sim.Request(0, put, refused.answer());
  Asked accepted;
  sim.Request(1, put, accepted.answer());
  sim.RunFor(10);
  ASSERT_TRUE(refused.receipt.has_value() && accepted.receipt.has_value());
  EXPECT_EQ(refused.receipt->status().code(), StatusCode::kNotHome);
  EXPECT_TRUE(accepted.receipt->ok());
  ASSERT_TRUE(sim.RunUntilConverged(60'000).has_value());
  EXPECT_EQ(sim.Check(false), std::vector<std::string>());
}

// Store faults ten times the default rate. A strong write acknowledged by its home alone is lost
// when the home's store is lost or restored from an older copy before any other region has it,
// and the linearizability checker sees the reads that follow miss it; with durability=regions:1,
// the simulator's default, the same seed passes.
TEST(SimStrong, TheCheckerSeesAStrongWriteLostWithItsHomesStore) {
  Options options;
  ApplyProfile("default", &options);
  options.seed = 145;  // a seed whose schedule loses a home's store under a strong write
  options.duration_ms = 5000;
  options.strong_per_s = 8;
  options.faults.restores_per_min = 20;
  options.faults.disk_losses_per_min = 10;
  options.strong_durability = 0;
  const Report lost = sim::Run(options);
  EXPECT_TRUE(Mentions(lost.failures, "are not linearizable")) << lost.Summary();
  EXPECT_GT(lost.lost_with_store, 0u);
  options.strong_durability = 1;
  const Report durable = sim::Run(options);
  EXPECT_TRUE(durable.ok) << durable.Summary() << "\n  replay: " << ReplayCommand(options);
}

}  // namespace
}  // namespace meridian::sim
