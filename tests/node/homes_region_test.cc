// Home regions in the commit path (docs/semantics.md#home-regions): a region answers strong reads
// only while it is the home and holds what it acknowledged, and its home table follows the home
// records however they reach its store (found by the simulator, docs/testing.md).
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "node/region.h"
#include "storage/memory_store.h"
#include "support/region_ops.h"

namespace meridian::node {
namespace {

using testing::ManualClock;

const std::map<core::RegionId, std::string> kNames = {{1, "us"}, {2, "eu"}};

// One region as a node runs it: its store, its home table (h/ homed in us), the region.
struct Node {
  explicit Node(core::RegionId id, core::PhysicalClock* clock)
      : store(storage::NewMemoryStore()),
        homes({Home{"h/", 1, 0, false}}, kNames),
        region(id, kNames, store.get(), clock, core::Limits{}, 500) {
    region.SetHomes(&homes);
    EXPECT_TRUE(region.Recover().ok());
  }

  Result<Receipt> Write(WriteRequest write) {
    std::vector<Result<Receipt>> outcomes;
    std::vector<Change> changes;
    region.CommitLocalWrites({&write, 1}, &outcomes, &changes);
    return std::move(outcomes.at(0));
  }

  std::unique_ptr<storage::Store> store;
  HomeTable homes;
  Region region;
};

WriteRequest StrongPut(const std::string& key, const std::string& value) {
  WriteRequest write{key, core::Operation{core::OpKind::kReplace, {{"v", value}}, {}}};
  write.strong = true;
  return write;
}

// A planned move of h/ to `to`.
WriteRequest MoveTo(const std::string& to, uint64_t epoch) {
  const HomeTable names({}, kNames);
  return HomeMoveWrite(names, Home{"h/", *names.IdOf(to), epoch, false});
}

TEST(HomeRegionTest, AStrongReadIsAnsweredByTheHomeOnlyWhileItIsNotRebuilding) {
  ManualClock clock;
  Node us(1, &clock);
  Node eu(2, &clock);
  EXPECT_TRUE(us.region.CheckStrongRead("h/a").ok());
  EXPECT_EQ(eu.region.CheckStrongRead("h/a").code(), StatusCode::kNotHome);
  EXPECT_EQ(us.region.CheckStrongRead("x/a").code(), StatusCode::kNotHome);  // no home

  // A store lost or restored from an older copy: what it acknowledged since may be only in its
  // peers until they send it back, so a read now could miss a strong write it acknowledged.
  us.region.SetRebuilding(true);
  const Status refused = us.region.CheckStrongRead("h/a");
  EXPECT_EQ(refused.code(), StatusCode::kRebuilding);
  EXPECT_NE(refused.message().find("rebuilding"), std::string::npos) << refused.message();
  us.region.SetRebuilding(false);
  EXPECT_TRUE(us.region.CheckStrongRead("h/a").ok());

  // Moved away: refused from the move's commit on.
  ASSERT_TRUE(us.Write(MoveTo("eu", 1)).ok());
  EXPECT_EQ(us.region.CheckStrongRead("h/a").code(), StatusCode::kNotHome);
}

// The home parked an event of the document (a dead letter: it could not read it): its copy lacks
// that write until a comparison restores it. Found by the simulator's poison fault at a home.
TEST(HomeRegionTest, AHomeWhoseCopyLacksAParkedEventRefusesStrongOperationsOnIt) {
  ManualClock clock;
  Node us(1, &clock);
  Node eu(2, &clock);
  WriteRequest eventual{"h/a", core::Operation{core::OpKind::kReplace, {{"v", "1"}}, {}}};
  ASSERT_TRUE(eu.Write(eventual).ok());
  const std::vector<core::Event> events = testing::LoggedEvents(*eu.store, 2, 1, 10);
  core::RemoteBatch batch(events);
  batch.Park([](const core::Event&) { return true; }, "unreadable here");
  std::vector<Change> changes;
  auto applied = us.region.ApplyRemoteEvents(batch, &changes);
  ASSERT_TRUE(applied.ok());
  ASSERT_EQ(applied->parked.size(), 1u);

  EXPECT_EQ(us.region.CheckStrongRead("h/a").code(), StatusCode::kUnavailable);
  EXPECT_EQ(us.Write(StrongPut("h/a", "2")).status().code(), StatusCode::kUnavailable);
  WriteRequest conditional = StrongPut("h/b", "2");  // a condition on it is refused too
  Transaction txn;
  txn.conditions.push_back(core::Condition{"h/a", std::nullopt, true});
  txn.then_ops.push_back({"h/b", conditional.op});
  WriteRequest strong_txn;
  strong_txn.txn = std::make_shared<Transaction>(txn);
  strong_txn.strong = true;
  EXPECT_EQ(us.Write(strong_txn).status().code(), StatusCode::kUnavailable);
  // Other documents are not concerned.
  EXPECT_TRUE(us.region.CheckStrongRead("h/b").ok());
  EXPECT_TRUE(us.Write(StrongPut("h/b", "3")).ok());
}

// us, the configured home of h/, moved it to eu and then lost its store: it starts with the
// configured table (us), re-seeds from eu's snapshot, which holds the move, and must follow it. It
// used to keep the configured home until a restart read the record back: after its rebuild it took
// strong writes on h/ while eu did too.
TEST(HomeRegionTest, ARegionReseededFromASnapshotFollowsTheHomeRecordsInIt) {
  ManualClock clock;
  Node us(1, &clock);
  Node eu(2, &clock);
  ASSERT_TRUE(us.Write(StrongPut("h/a", "1")).ok());
  ASSERT_TRUE(us.Write(MoveTo("eu", 1)).ok());
  EXPECT_EQ(us.homes.HomeOf("h/a")->region, 2u);
  // eu applies us's events: it is the home now.
  const std::vector<core::Event> events = testing::LoggedEvents(*us.store, 1, 1, 10);
  std::vector<Change> changes;
  ASSERT_TRUE(eu.region.ApplyRemoteEvents(events, &changes).ok());
  EXPECT_EQ(eu.homes.HomeOf("h/a")->region, 2u);
  ASSERT_TRUE(eu.Write(StrongPut("h/a", "2")).ok());

  // us loses its data directory: a new process, an empty store, the configured homes.
  Node again(1, &clock);
  EXPECT_EQ(again.homes.HomeOf("h/a")->region, 1u);
  std::vector<std::pair<std::string, std::string>> states;
  ASSERT_TRUE(eu.store
                  ->ScanDocumentStates("", 100,
                                       [&](std::string_view key, std::string_view state) {
                                         states.emplace_back(key, state);
                                       })
                  .ok());
  Region::SnapshotPage page;
  page.states = states;
  page.applied = eu.region.frontier();
  page.hlc = eu.region.hlc();
  ASSERT_TRUE(again.region.MergeSnapshotPage(page, &changes).ok());

  EXPECT_EQ(again.homes.HomeOf("h/a")->region, 2u);
  EXPECT_EQ(again.homes.HomeOf("h/a")->epoch, 1u);
  EXPECT_EQ(again.region.CheckStrongRead("h/a").code(), StatusCode::kNotHome);
  EXPECT_EQ(again.Write(StrongPut("h/a", "3")).status().code(), StatusCode::kNotHome);
}

// Two-phase commit's writes (docs/semantics.md#transactions-across-homes), shaped as
// src/api/two_phase.cc shapes them: a prepare (lock records) and a decision.
WriteRequest Prepare(const std::string& txn, const std::vector<std::string>& keys) {
  auto prepare = std::make_shared<core::Transaction>();
  for (const std::string& key : keys) {
    prepare->then_ops.push_back(core::KeyedOperation{
        LockTable::KeyOf(key), LockTable::RecordOp(Lock{txn, "eu", 1'000'000})});
  }
  WriteRequest write;
  write.txn = std::move(prepare);
  write.system = true;
  write.strong = true;
  write.lock_txn = txn;
  return write;
}

WriteRequest Decide(const std::string& txn, const std::vector<std::string>& locked,
                    const std::string& value, const std::string& idempotency_key) {
  auto commit = std::make_shared<core::Transaction>();
  commit->then_ops.push_back(
      core::KeyedOperation{"h/a", core::Operation{core::OpKind::kReplace, {{"v", value}}, {}}});
  for (const std::string& key : locked) {
    commit->then_ops.push_back(core::KeyedOperation{
        LockTable::KeyOf(key), core::Operation{core::OpKind::kDelete, {}, {}}});
  }
  commit->then_ops.push_back(
      core::KeyedOperation{DecisionKeyOf(txn), DecisionOp(Decision::kCommitted, "eu")});
  WriteRequest write;
  write.txn = std::move(commit);
  write.condition = core::Condition{DecisionKeyOf(txn), std::nullopt, false};
  write.system = true;
  write.idempotency_key = idempotency_key;
  return write;
}

TEST(TwoPhaseRegionTest, APreparedLockHoldsStrongOperationsUntilItsReleaseCommits) {
  ManualClock clock;
  Node us(1, &clock);
  Node eu(2, &clock);
  ASSERT_TRUE(us.Write(Prepare("t1", {"h/a"})).ok());
  EXPECT_EQ(us.region.locks().LockOf("h/a")->txn, "t1");
  EXPECT_EQ(us.Write(StrongPut("h/a", "\"x\"")).status().code(), StatusCode::kLocked);
  EXPECT_EQ(us.region.CheckStrongRead("h/a").code(), StatusCode::kLocked);
  EXPECT_TRUE(us.region.CheckStrongRead("h/b").ok());  // other keys go on
  // Another transaction's prepare is refused; the same one's again is kept.
  EXPECT_EQ(us.Write(Prepare("t2", {"h/b", "h/a"})).status().code(), StatusCode::kLocked);
  EXPECT_FALSE(us.region.locks().LockOf("h/b").has_value());  // refused whole
  EXPECT_TRUE(us.Write(Prepare("t1", {"h/a"})).ok());
  // Eventual writes are not held; a prepare outside the home is refused.
  WriteRequest eventual = StrongPut("h/a", "\"e\"");
  eventual.strong = false;
  EXPECT_TRUE(us.Write(eventual).ok());
  EXPECT_EQ(eu.Write(Prepare("t3", {"h/c"})).status().code(), StatusCode::kNotHome);

  // The decision with the release, in one transaction: the lock goes with it.
  ASSERT_TRUE(us.Write(Decide("t1", {"h/a"}, "\"t1\"", "")).ok());
  EXPECT_FALSE(us.region.locks().LockOf("h/a").has_value());
  EXPECT_TRUE(us.Write(StrongPut("h/a", "\"after\"")).ok());
}

TEST(TwoPhaseRegionTest, ALockSurvivesARestartOfItsHome) {
  ManualClock clock;
  Node us(1, &clock);
  ASSERT_TRUE(us.Write(Prepare("t1", {"h/a"})).ok());
  Region restarted(1, kNames, us.store.get(), &clock, core::Limits{}, 500);
  restarted.SetHomes(&us.homes);
  ASSERT_TRUE(restarted.Recover().ok());
  EXPECT_EQ(restarted.CheckStrongRead("h/a").code(), StatusCode::kLocked);
  EXPECT_EQ(restarted.locks().LockOf("h/a")->coordinator, "eu");
}

TEST(TwoPhaseRegionTest, ADecisionIsGuardedAndARetryReplaysWhateverItsOwnRecords) {
  ManualClock clock;
  Node us(1, &clock);
  // Aborted first (a home asked after its lock expired): the commit is refused, writing nothing.
  WriteRequest abort{DecisionKeyOf("t1"), DecisionOp(Decision::kAborted, "eu")};
  abort.condition = core::Condition{DecisionKeyOf("t1"), std::nullopt, false};
  abort.system = true;
  ASSERT_TRUE(us.Write(abort).ok());
  EXPECT_EQ(us.Write(abort).status().code(), StatusCode::kPreconditionFailed);  // decided once
  EXPECT_EQ(us.Write(Decide("t1", {}, "\"t1\"", "")).status().code(),
            StatusCode::kPreconditionFailed);

  // The same client transaction retried (a new id, new records): the first receipt answers.
  Result<Receipt> first = us.Write(Decide("t2", {}, "\"once\"", "k1"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Result<Receipt> again = us.Write(Decide("t3", {}, "\"once\"", "k1"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->events, first->events);
}

}  // namespace
}  // namespace meridian::node
