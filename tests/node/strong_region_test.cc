// Conditional writes and transactions in the commit path: conditions checked atomically with what
// they guard, a transaction applied whole or not at all, here and in a region its events reach.
#include <gtest/gtest.h>

#include <memory>

#include "core/document.h"
#include "node/region.h"
#include "replication/event_log.h"
#include "storage/memory_store.h"
#include "support/region_ops.h"

namespace meridian::node {
namespace {

using testing::Incr;
using testing::ManualClock;
using testing::Set;

std::string VersionOf(const std::string& key, const std::string& rendered) {
  return core::DocumentVersion(core::RenderedDigest(key, rendered));
}

class StrongRegionTest : public ::testing::Test {
 protected:
  StrongRegionTest()
      : us_store_(storage::NewMemoryStore()),
        eu_store_(storage::NewMemoryStore()),
        us_(1, {{1, "us"}, {2, "eu"}}, us_store_.get(), &clock_, core::Limits{}, 500),
        eu_(2, {{1, "us"}, {2, "eu"}}, eu_store_.get(), &clock_, core::Limits{}, 500) {
    EXPECT_TRUE(us_.Recover().ok());
    EXPECT_TRUE(eu_.Recover().ok());
  }

  std::vector<Result<Receipt>> Commit(std::vector<WriteRequest> writes,
                                      std::vector<Change>* changes = nullptr) {
    std::vector<Result<Receipt>> outcomes;
    std::vector<Change> ignored;
    us_.CommitLocalWrites(writes, &outcomes, changes ? changes : &ignored);
    return outcomes;
  }

  static WriteRequest Txn(Transaction txn, std::string idempotency_key = {}) {
    WriteRequest write;
    write.txn = std::make_shared<Transaction>(std::move(txn));
    write.idempotency_key = std::move(idempotency_key);
    return write;
  }

  static WriteRequest If(WriteRequest write, core::Condition condition) {
    condition.key = write.key;
    write.condition = std::move(condition);
    return write;
  }

  std::optional<std::string> View(storage::Store& store, const std::string& key) {
    auto view = store.GetView(key);
    EXPECT_TRUE(view.ok());
    return view.ok() ? *view : std::nullopt;
  }

  // us's logged events of origin 1 from `from` on, decoded.
  std::vector<core::Event> Logged(uint64_t from, size_t limit) {
    return testing::LoggedEvents(*us_store_, 1, from, limit);
  }

  ManualClock clock_;
  std::unique_ptr<storage::Store> us_store_;
  std::unique_ptr<storage::Store> eu_store_;
  Region us_;
  Region eu_;
};

TEST_F(StrongRegionTest, IfMatchWritesOnlyOverTheVersionItNames) {
  auto first = Commit({{"acct", Set("balance", "10")}});
  ASSERT_TRUE(first[0].ok());
  const std::string v1 = first[0]->version;
  EXPECT_EQ(v1, VersionOf("acct", R"({"balance":10})"));

  // Two writers read v1; in one group, the first wins and the second finds a new version.
  auto both = Commit({If({"acct", Set("balance", "7")}, {.version = v1}),
                      If({"acct", Set("balance", "8")}, {.version = v1})});
  ASSERT_TRUE(both[0].ok());
  EXPECT_EQ(both[1].status().code(), StatusCode::kPreconditionFailed);
  EXPECT_NE(both[1].status().message().find("is not at version " + v1), std::string::npos);
  EXPECT_EQ(*View(*us_store_, "acct"), R"({"balance":7})");
  EXPECT_EQ(us_.frontier(), (core::VersionVector{{1, 2}}));  // the refused write took no seq

  // If-Match: * needs the document; If-None-Match: * needs it absent.
  auto absent = Commit({If({"new", Set("x", "1")}, {.exists = true})});
  EXPECT_EQ(absent[0].status().code(), StatusCode::kPreconditionFailed);
  auto create = Commit({If({"new", Set("x", "1")}, {.exists = false}),
                        If({"new", Set("x", "2")}, {.exists = false})});
  ASSERT_TRUE(create[0].ok());
  EXPECT_EQ(create[1].status().code(), StatusCode::kPreconditionFailed);
  EXPECT_EQ(*View(*us_store_, "new"), R"({"x":1})");
  // A version that once was the document's holds again when it renders the same again.
  auto back = Commit({If({"acct", Set("balance", "10")}, {.version = both[0]->version})});
  ASSERT_TRUE(back[0].ok());
  EXPECT_EQ(back[0]->version, v1);
}

TEST_F(StrongRegionTest, ATransactionAppliesItsBranchAsConsecutiveEventsInOneCommit) {
  Commit({{"a", Set("n", "1")}});
  const std::string va = VersionOf("a", R"({"n":1})");
  Transaction txn;
  txn.conditions = {{"a", va, std::nullopt}, {"b", std::nullopt, false}};
  txn.then_ops = {{"a", Incr("n", 1)}, {"b", Set("n", "2")}, {"c", Set("from", "\"txn\"")}};
  txn.else_ops = {{"log", Set("failed", "true")}};
  std::vector<Change> changes;
  auto outcome = Commit({Txn(txn)}, &changes);
  ASSERT_TRUE(outcome[0].ok()) << outcome[0].status().ToString();
  EXPECT_TRUE(outcome[0]->succeeded);
  EXPECT_EQ(outcome[0]->events,
            (std::vector<core::Dot>{core::Dot{1, 2}, core::Dot{1, 3}, core::Dot{1, 4}}));
  EXPECT_EQ(outcome[0]->dot, (core::Dot{1, 4}));
  EXPECT_EQ(outcome[0]->frontier, (core::VersionVector{{1, 4}}));
  EXPECT_EQ(*View(*us_store_, "a"), R"({"n":2})");
  EXPECT_EQ(*View(*us_store_, "b"), R"({"n":2})");
  EXPECT_EQ(changes.size(), 3u);
  // Each event names how many of the transaction follow it.
  const std::vector<core::Event> logged = Logged(2, 3);
  ASSERT_EQ(logged.size(), 3u);
  EXPECT_EQ(logged[0].txn_rest, 2u);
  EXPECT_EQ(logged[1].txn_rest, 1u);
  EXPECT_EQ(logged[2].txn_rest, 0u);

  // The same conditions fail now: the else branch runs.
  auto second = Commit({Txn(txn)});
  ASSERT_TRUE(second[0].ok());
  EXPECT_FALSE(second[0]->succeeded);
  EXPECT_EQ(second[0]->events, (std::vector<core::Dot>{core::Dot{1, 5}}));
  EXPECT_EQ(*View(*us_store_, "log"), R"({"failed":true})");
  EXPECT_EQ(*View(*us_store_, "a"), R"({"n":2})");

  // A branch with nothing in it writes nothing and still answers.
  Transaction empty;
  empty.conditions = {{"nothing", std::nullopt, true}};
  empty.then_ops = {{"x", Set("y", "1")}};
  auto none = Commit({Txn(empty)});
  ASSERT_TRUE(none[0].ok());
  EXPECT_FALSE(none[0]->succeeded);
  EXPECT_TRUE(none[0]->events.empty());
  EXPECT_EQ(none[0]->dot.seq, 0u);
  EXPECT_EQ(us_.frontier(), (core::VersionVector{{1, 5}}));
}

TEST_F(StrongRegionTest, ATransactionWithOneRefusedOperationChangesNothing) {
  Commit({{"k", Set("name", "\"teapot\"")}, {"j", Set("n", "1")}});
  Transaction txn;
  txn.then_ops = {{"j", Incr("n", 5)}, {"k", Incr("name", 1)}, {"z", Set("a", "1")}};
  std::vector<Change> changes;
  auto outcomes = Commit({Txn(txn), {"j", Incr("n", 1)}}, &changes);
  EXPECT_EQ(outcomes[0].status().code(), StatusCode::kTypeMismatch);
  EXPECT_NE(outcomes[0].status().message().find("operation 2 of the transaction ('k')"),
            std::string::npos);
  // The write after it in the group commits; the transaction's first operation did not.
  ASSERT_TRUE(outcomes[1].ok());
  EXPECT_EQ(outcomes[1]->dot, (core::Dot{1, 3}));
  EXPECT_EQ(*View(*us_store_, "j"), R"({"n":2})");
  EXPECT_FALSE(View(*us_store_, "z").has_value());
  EXPECT_EQ(changes.size(), 1u);
}

TEST_F(StrongRegionTest, ATransactionRetriedWithItsIdempotencyKeyAnswersItsOutcome) {
  Transaction txn;
  txn.conditions = {{"seat", std::nullopt, false}};
  txn.then_ops = {{"seat", Set("holder", "\"ann\"")}, {"ann", Incr("seats", 1)}};
  auto first = Commit({Txn(txn, "book-1")});
  ASSERT_TRUE(first[0].ok());
  auto retry = Commit({Txn(txn, "book-1")});
  ASSERT_TRUE(retry[0].ok());
  EXPECT_TRUE(retry[0]->replayed);
  EXPECT_TRUE(retry[0]->succeeded);
  EXPECT_EQ(retry[0]->events, first[0]->events);
  EXPECT_EQ(*View(*us_store_, "ann"), R"({"seats":1})");
  // The same key with another transaction is refused.
  txn.then_ops.pop_back();
  EXPECT_EQ(Commit({Txn(txn, "book-1")})[0].status().code(), StatusCode::kIdempotencyKeyReused);
}

TEST_F(StrongRegionTest, AReceiverAppliesATransactionWholeOrNotAtAll) {
  Transaction txn;
  txn.then_ops = {{"a", Set("n", "1")}, {"b", Set("n", "1")}, {"c", Set("n", "1")}};
  ASSERT_TRUE(Commit({Txn(txn)})[0].ok());
  const std::vector<core::Event> events = Logged(1, 3);
  ASSERT_EQ(events.size(), 3u);

  // A batch holding part of it applies none of it.
  std::vector<Change> changes;
  auto part = eu_.ApplyRemoteEvents(std::vector<core::Event>{events[0], events[1]}, &changes);
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(part->applied, 0u);
  EXPECT_EQ(part->gaps, 2u);
  EXPECT_TRUE(changes.empty());
  EXPECT_EQ(eu_.frontier(), core::VersionVector());
  EXPECT_FALSE(View(*eu_store_, "a").has_value());

  // The whole of it applies in one commit.
  auto whole = eu_.ApplyRemoteEvents(events, &changes);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->applied, 3u);
  EXPECT_EQ(eu_.frontier(), (core::VersionVector{{1, 3}}));
  EXPECT_EQ(eu_.stats().commits, 1u);
  EXPECT_EQ(*View(*eu_store_, "c"), R"({"n":1})");
}

TEST_F(StrongRegionTest, ASenderKeepsATransactionWholeInOneBatch) {
  ASSERT_TRUE(Commit({{"before", Set("n", "1")}})[0].ok());
  Transaction txn;
  for (int i = 0; i < 5; ++i) txn.then_ops.push_back({"k" + std::to_string(i), Set("n", "1")});
  ASSERT_TRUE(Commit({Txn(txn)})[0].ok());
  ASSERT_TRUE(Commit({{"after", Set("n", "1")}})[0].ok());

  // A read of 2 events that ends inside the transaction takes the rest of it.
  replication::LogRead read;
  ASSERT_TRUE(replication::ReadForSend(*us_store_, {1, 1, 2, 1 << 20}, &read).ok());
  EXPECT_EQ(read.first_seq, 1u);
  EXPECT_EQ(read.last_seq, 6u);
  EXPECT_EQ(read.events.size(), 6u);
  // One that ends at its last event, or before it, takes nothing more.
  ASSERT_TRUE(replication::ReadForSend(*us_store_, {1, 1, 1, 1 << 20}, &read).ok());
  EXPECT_EQ(read.last_seq, 1u);
  ASSERT_TRUE(replication::ReadForSend(*us_store_, {1, 2, 5, 1 << 20}, &read).ok());
  EXPECT_EQ(read.last_seq, 6u);
  // A byte bound ends a batch inside it just the same.
  ASSERT_TRUE(replication::ReadForSend(*us_store_, {1, 3, 100, 1}, &read).ok());
  EXPECT_EQ(read.first_seq, 3u);
  EXPECT_EQ(read.last_seq, 6u);
}

}  // namespace
}  // namespace meridian::node
