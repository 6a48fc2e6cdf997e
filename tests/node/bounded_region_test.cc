// Bounded counters in the durable region: declarations and escrowed writes through the commit
// path, transactions, and rebalancing rounds (Region::EscrowRound) moving rights between regions
// as ordinary events (docs/semantics.md#bounded-counters).
#include <gtest/gtest.h>

#include <memory>

#include "core/document.h"
#include "node/region.h"
#include "storage/memory_store.h"
#include "support/region_ops.h"

namespace meridian {
inline void PrintTo(StatusCode code, std::ostream* os) {
  *os << StatusCodeName(code);
}
}  // namespace meridian

namespace meridian::node {
namespace {

using testing::ManualClock;

constexpr core::RegionId kUs = 1;
constexpr core::RegionId kEu = 2;
constexpr core::RegionId kAsia = 3;

core::Operation Set(std::string field, std::string json) {
  return core::Operation{core::OpKind::kSet, {{std::move(field), std::move(json)}}, {}};
}
core::Operation Incr(std::string field, int64_t delta) {
  return core::Operation{core::OpKind::kIncrement, {}, {{std::move(field), delta}}};
}
core::Operation Declare(std::string field, int64_t min) {
  core::Operation op;
  op.kind = core::OpKind::kEscrow;
  op.escrow.kind = core::EscrowOpKind::kDeclare;
  op.escrow.field = std::move(field);
  op.escrow.min = min;
  return op;
}

class BoundedRegionTest : public ::testing::Test {
 protected:
  BoundedRegionTest() {
    const std::map<core::RegionId, std::string> names{{kUs, "us"}, {kEu, "eu"}, {kAsia, "asia"}};
    for (core::RegionId id : {kUs, kEu, kAsia}) {
      stores_[id] = storage::NewMemoryStore();
      regions_[id] =
          std::make_unique<Region>(id, names, stores_[id].get(), &clock_, core::Limits{}, 500);
      EXPECT_TRUE(regions_[id]->Recover().ok());
      regions_[id]->SetEscrow(core::EscrowPolicy{0, 0, 50}, 100);
    }
  }

  Region& R(core::RegionId id) { return *regions_[id]; }

  std::vector<Result<Receipt>> Commit(core::RegionId id, std::vector<WriteRequest> writes) {
    std::vector<Result<Receipt>> outcomes;
    std::vector<Change> changes;
    R(id).CommitLocalWrites(writes, &outcomes, &changes);
    return outcomes;
  }

  // Every event of `origin` that `to` lacks, from the origin's own log, applied at `to`.
  void Ship(core::RegionId origin, core::RegionId to) {
    const std::vector<core::Event> events =
        testing::LoggedEvents(*stores_[origin], origin, R(to).frontier().Get(origin) + 1, SIZE_MAX);
    std::vector<Change> changes;
    auto applied = R(to).ApplyRemoteEvents(events, &changes);
    ASSERT_TRUE(applied.ok()) << applied.status().ToString();
    EXPECT_EQ(applied->gaps, 0u);
  }
  void ShipAll() {
    for (core::RegionId origin : {kUs, kEu, kAsia}) {
      for (core::RegionId to : {kUs, kEu, kAsia}) {
        if (origin != to) Ship(origin, to);
      }
    }
  }

  // One round of `id`, committed; the writes it decided.
  std::vector<WriteRequest> Round(core::RegionId id) {
    std::vector<WriteRequest> writes = R(id).EscrowRound(16);
    auto outcomes = Commit(id, writes);
    for (const auto& outcome : outcomes) EXPECT_TRUE(outcome.ok()) << outcome.status().ToString();
    return writes;
  }

  std::optional<std::string> View(core::RegionId id, const std::string& key) {
    auto view = stores_[id]->GetView(key);
    EXPECT_TRUE(view.ok());
    return view.ok() ? *view : std::nullopt;
  }

  core::EscrowLedger Ledger(core::RegionId id, const std::string& key, const std::string& field) {
    auto bytes = stores_[id]->GetDocumentState(key);
    EXPECT_TRUE(bytes.ok() && bytes->has_value());
    auto state = core::DocumentState::Decode(**bytes);
    EXPECT_TRUE(state.ok());
    const core::EscrowLedger* ledger = state->Ledger(field);
    return ledger != nullptr ? *ledger : core::EscrowLedger{};
  }

  ManualClock clock_;
  std::map<core::RegionId, std::unique_ptr<storage::Store>> stores_;
  std::map<core::RegionId, std::unique_ptr<Region>> regions_;
};

TEST_F(BoundedRegionTest, ADeclarationSplitsTheRoomOverTheConfiguredRegionsOnce) {
  ASSERT_TRUE(Commit(kUs, {{"item", Set("stock", "100")}})[0].ok());
  EXPECT_EQ(Commit(kUs, {{"item", Declare("stock", 101)}})[0].status().code(),
            StatusCode::kBoundExceeded);
  auto declared = Commit(kUs, {{"item", Declare("stock", 0)}});
  ASSERT_TRUE(declared[0].ok()) << declared[0].status().ToString();
  EXPECT_EQ(declared[0]->dot, (core::Dot{kUs, 2}));
  const core::EscrowLedger ledger = Ledger(kUs, "item", "stock");
  EXPECT_EQ(ledger.declaration()->shares,
            (std::map<core::RegionId, int64_t>{{kUs, 34}, {kEu, 33}, {kAsia, 33}}));
  EXPECT_EQ(R(kUs).escrow_stats().declarations, 1u);

  // The same declaration again writes nothing; another min, a set or a delete is refused.
  auto again = Commit(kUs, {{"item", Declare("stock", 0)}});
  ASSERT_TRUE(again[0].ok());
  EXPECT_EQ(again[0]->dot, (core::Dot{0, 0}));
  EXPECT_EQ(again[0]->version, declared[0]->version);
  EXPECT_EQ(R(kUs).frontier(), (core::VersionVector{{kUs, 2}}));
  EXPECT_EQ(Commit(kUs, {{"item", Declare("stock", 5)}})[0].status().code(),
            StatusCode::kBoundedField);
  EXPECT_EQ(Commit(kUs, {{"item", Set("stock", "1")}})[0].status().code(),
            StatusCode::kBoundedField);
  EXPECT_EQ(
      Commit(kUs, {{"item", core::Operation{core::OpKind::kDelete, {}, {}}}})[0].status().code(),
      StatusCode::kBoundedField);
  EXPECT_EQ(*View(kUs, "item"), R"({"stock":100})");
}

TEST_F(BoundedRegionTest, ARefusedDecrementMovesRightsThroughRoundsOfEscrowEvents) {
  ASSERT_TRUE(Commit(kUs, {{"item", Set("stock", "30")}, {"item", Declare("stock", 0)}})[0].ok());
  ShipAll();
  ASSERT_TRUE(Commit(kEu, {{"item", Incr("stock", -10)}})[0].ok());
  auto refused = Commit(kEu, {{"item", Incr("stock", -4)}});
  EXPECT_EQ(refused[0].status().code(), StatusCode::kBoundExceeded);
  EXPECT_EQ(R(kEu).escrow_stats().refusals, 1u);
  ASSERT_TRUE(R(kEu).escrow_due());

  // eu asks for what it needed; us and asia, seeing the ask, give; eu accepts and withdraws.
  std::vector<WriteRequest> asked = Round(kEu);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].op.escrow.kind, core::EscrowOpKind::kWant);
  EXPECT_EQ(asked[0].op.escrow.amount, 4);
  EXPECT_FALSE(R(kEu).escrow_due());
  ShipAll();
  ASSERT_TRUE(R(kUs).escrow_due()) << "another region's want arrived";
  std::vector<WriteRequest> given = Round(kUs);
  ASSERT_EQ(given.size(), 1u);
  EXPECT_EQ(given[0].op.escrow.kind, core::EscrowOpKind::kTransfer);
  EXPECT_EQ(given[0].op.escrow.region, kEu);
  EXPECT_EQ(given[0].op.escrow.amount, 4);
  Ship(kUs, kEu);
  EXPECT_EQ(*View(kEu, "item"), R"({"stock":20})") << "given, not accepted: the value holds";
  ASSERT_TRUE(R(kEu).escrow_due());
  std::vector<WriteRequest> accepted = Round(kEu);
  ASSERT_EQ(accepted.size(), 2u);
  EXPECT_EQ(accepted[0].op.escrow.kind, core::EscrowOpKind::kAccept);
  EXPECT_EQ(accepted[1].op.escrow.kind, core::EscrowOpKind::kWant);
  EXPECT_EQ(accepted[1].op.escrow.amount, 0);
  ASSERT_TRUE(Commit(kEu, {{"item", Incr("stock", -4)}})[0].ok());
  EXPECT_EQ(R(kEu).escrow_stats().accepts, 1u);
  EXPECT_EQ(R(kEu).escrow_stats().wants, 2u);
  EXPECT_EQ(R(kUs).escrow_stats().transfers, 1u);

  // asia's round found the want met already (us's transfer shown): nothing more moves.
  ShipAll();
  for (core::RegionId id : {kUs, kEu, kAsia}) {
    if (R(id).escrow_due()) {
      for (const WriteRequest& write : Round(id)) {
        EXPECT_NE(write.op.escrow.kind, core::EscrowOpKind::kTransfer) << int(id);
      }
    }
  }
  ShipAll();
  for (core::RegionId id : {kUs, kEu, kAsia}) {
    EXPECT_EQ(*View(id, "item"), R"({"stock":16})") << int(id);
    EXPECT_GE(Ledger(id, "item", "stock").Rights(id), 0);
  }
}

TEST_F(BoundedRegionTest, ATransactionsIncrementsAreEscrowedAndCheckedTogether) {
  ASSERT_TRUE(Commit(kUs, {{"item", Set("stock", "9")}, {"item", Declare("stock", 0)}})[0].ok());
  // us holds 3: two decrements of 2 in one transaction need 4, and neither applies.
  Transaction txn;
  txn.then_ops = {
      {"item", Incr("stock", -2)}, {"log", Set("sold", "2")}, {"item", Incr("stock", -2)}};
  WriteRequest write;
  write.txn = std::make_shared<Transaction>(txn);
  auto refused = Commit(kUs, {write});
  EXPECT_EQ(refused[0].status().code(), StatusCode::kBoundExceeded);
  EXPECT_EQ(View(kUs, "log"), std::nullopt);
  EXPECT_TRUE(R(kUs).escrow_due());
  txn.then_ops.pop_back();
  write.txn = std::make_shared<Transaction>(txn);
  ASSERT_TRUE(Commit(kUs, {write})[0].ok());
  EXPECT_EQ(*View(kUs, "item"), R"({"stock":7})");
  EXPECT_EQ(Ledger(kUs, "item", "stock").Rights(kUs), 1);
}

TEST_F(BoundedRegionTest, TheKeysWaitingForARoundAreBounded) {
  R(kUs).SetEscrow(core::EscrowPolicy{0, 0, 50}, 1);
  for (const char* key : {"a", "b"}) {
    ASSERT_TRUE(Commit(kUs, {{key, Declare("n", 0)}})[0].ok());
    EXPECT_EQ(Commit(kUs, {{key, Incr("n", -1)}})[0].status().code(), StatusCode::kBoundExceeded);
  }
  EXPECT_EQ(R(kUs).escrow_stats().dropped, 1u);
  std::vector<WriteRequest> round = R(kUs).EscrowRound(16);
  ASSERT_EQ(round.size(), 1u);
  EXPECT_EQ(round[0].key, "a");
  EXPECT_FALSE(R(kUs).escrow_due());
}

TEST_F(BoundedRegionTest, ABelowLowWaterDecrementAsksBeforeAnyRefusal) {
  R(kEu).SetEscrow(core::EscrowPolicy{5, 20, 50}, 100);
  ASSERT_TRUE(Commit(kUs, {{"item", Set("stock", "30")}, {"item", Declare("stock", 0)}})[0].ok());
  Ship(kUs, kEu);
  EXPECT_TRUE(Round(kEu).empty()) << "the declaration came: 10 rights, nothing to ask";
  ASSERT_TRUE(Commit(kEu, {{"item", Incr("stock", -4)}})[0].ok());
  EXPECT_FALSE(R(kEu).escrow_due()) << "6 left, not below 5";
  ASSERT_TRUE(Commit(kEu, {{"item", Incr("stock", -2)}})[0].ok());
  ASSERT_TRUE(R(kEu).escrow_due());
  std::vector<WriteRequest> asked = Round(kEu);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0].op.escrow.kind, core::EscrowOpKind::kWant);
  EXPECT_EQ(asked[0].op.escrow.amount, 20);
}

TEST_F(BoundedRegionTest, ACopyMissingAnEscrowEventIsMarkedAndTakesNoEscrowWrites) {
  ASSERT_TRUE(Commit(kUs, {{"item", Set("stock", "30")}, {"item", Declare("stock", 0)}})[0].ok());
  ASSERT_TRUE(Commit(kUs, {{"item", Incr("stock", -1)}})[0].ok());
  ASSERT_TRUE(Commit(kUs, {{"item", Incr("stock", -2)}})[0].ok());
  const std::vector<core::Event> events = testing::LoggedEvents(*stores_[kUs], kUs, 1, SIZE_MAX);
  ASSERT_EQ(events.size(), 4u);
  // eu parks us:3 (it does not read it, say): us:4 waits for it, and eu's copy is marked.
  const core::ParkedEvent parked{
      events[2].dot, core::EncodeEvent(events[2]), "item", 2, events[2].hlc, false, "unreadable"};
  std::vector<Change> changes;
  auto applied = R(kEu).ApplyRemoteEvents(
      core::RemoteBatch({events[0], events[1], events[3]}, {parked}), &changes);
  ASSERT_TRUE(applied.ok());
  EXPECT_TRUE(R(kEu).IsDamaged("item"));
  EXPECT_EQ(*View(kEu, "item"), R"({"stock":30})") << "us:4 waits for us:3";
  EXPECT_EQ(Commit(kEu, {{"item", Incr("stock", -1)}})[0].status().code(),
            StatusCode::kUnavailable);
  EXPECT_TRUE(Commit(kEu, {{"item", Set("note", "1")}})[0].ok()) << "other fields still write";
}

}  // namespace
}  // namespace meridian::node
