// The durable command path: group commit, refusals, conflict records, digests, recovery.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/document.h"
#include "meridian/event.pb.h"
#include "node/region.h"
#include "storage/memory_store.h"
#include "support/region_ops.h"

namespace meridian::node {
namespace {

using testing::Incr;
using testing::ManualClock;
using testing::Set;

// A store whose commits, or reads of one document, can be made to fail, wrapping a memory store.
class FlakyStore final : public storage::Store {
 public:
  bool fail = false;
  std::string unreadable;  // GetDocumentState of this key fails
  size_t state_scans = 0;  // calls of ScanDocumentStates
  Status Commit(const storage::CommitBatch& batch) override {
    if (fail) return Status(StatusCode::kUnavailable, "disk full");
    return inner_->Commit(batch);
  }
  Result<storage::RecoveredState> Recover() override { return inner_->Recover(); }
  Result<std::unique_ptr<storage::StoreSnapshot>> TakeSnapshot() override {
    return inner_->TakeSnapshot();
  }
  Status ClearDocuments() override { return inner_->ClearDocuments(); }
  Result<std::optional<std::string>> GetDocumentState(std::string_view key) override {
    if (!unreadable.empty() && key == unreadable) {
      return Status(StatusCode::kUnavailable, "read error");
    }
    return inner_->GetDocumentState(key);
  }
  Result<std::optional<std::string>> GetView(std::string_view key) override {
    return inner_->GetView(key);
  }
  Result<bool> ScanViews(
      std::string_view prefix, std::string_view after, size_t limit,
      const std::function<void(std::string_view, std::string_view)>& visit) override {
    return inner_->ScanViews(prefix, after, limit, visit);
  }
  Result<bool> ScanDocumentStates(
      std::string_view after, size_t limit,
      const std::function<void(std::string_view, std::string_view)>& visit) override {
    ++state_scans;
    return inner_->ScanDocumentStates(after, limit, visit);
  }
  Result<std::optional<uint64_t>> LsnOf(core::Dot dot) override { return inner_->LsnOf(dot); }
  Result<std::optional<storage::StoredDocument>> GetDocument(std::string_view key) override {
    return inner_->GetDocument(key);
  }
  Status ScanBucket(uint32_t bucket, const std::function<void(std::string_view)>& visit) override {
    return inner_->ScanBucket(bucket, visit);
  }
  Result<bool> Indexed(std::string_view key) override { return inner_->Indexed(key); }
  Result<storage::SavedTree> LoadTree() override { return inner_->LoadTree(); }
  Status SaveTree(std::span<const uint64_t> leaves, std::span<const uint32_t> chunks) override {
    return inner_->SaveTree(leaves, chunks);
  }
  Status ClearDigests() override { return inner_->ClearDigests(); }
  Status PutMembers(std::span<const std::string> keys) override { return inner_->PutMembers(keys); }
  Result<std::vector<storage::DamageMark>> DamageMarks(size_t limit) override {
    return inner_->DamageMarks(limit);
  }
  Result<std::vector<std::string>> RecentRepairs(size_t limit) override {
    return inner_->RecentRepairs(limit);
  }
  Result<uint64_t> RepairCount() override { return inner_->RepairCount(); }
  Status ReadChanges(uint64_t after, size_t limit,
                     const std::function<void(const storage::LoggedEvent&)>& visit) override {
    return inner_->ReadChanges(after, limit, visit);
  }
  Status ReadLogWhile(core::RegionId origin, uint64_t from_seq, size_t limit,
                      const std::function<bool(const storage::LoggedEvent&)>& visit) override {
    return inner_->ReadLogWhile(origin, from_seq, limit, visit);
  }
  Status TrimLog(core::RegionId origin, uint64_t through_seq) override {
    return inner_->TrimLog(origin, through_seq);
  }
  Result<uint64_t> LogBytes() override { return inner_->LogBytes(); }
  Status TrimChanges(uint64_t before_lsn) override { return inner_->TrimChanges(before_lsn); }
  Status TrimConflicts(uint64_t before_seq) override { return inner_->TrimConflicts(before_seq); }
  Result<storage::KeptLogs> Kept() override { return inner_->Kept(); }
  Result<std::vector<std::string>> RecentConflicts(size_t limit) override {
    return inner_->RecentConflicts(limit);
  }
  Result<uint64_t> ConflictCount() override { return inner_->ConflictCount(); }
  Result<uint64_t> DeadLetterCount() override { return inner_->DeadLetterCount(); }
  Result<std::optional<std::string>> GetDeadLetter(uint64_t id) override {
    return inner_->GetDeadLetter(id);
  }
  Result<bool> ScanDeadLetters(
      uint64_t after_id, size_t limit,
      const std::function<void(uint64_t, std::string_view)>& visit) override {
    return inner_->ScanDeadLetters(after_id, limit, visit);
  }
  Result<std::vector<std::pair<uint64_t, std::string>>> RecentDeadLetters(size_t limit) override {
    return inner_->RecentDeadLetters(limit);
  }
  Result<std::optional<storage::IdempotencyRecord>> GetIdempotency(std::string_view key) override {
    return inner_->GetIdempotency(key);
  }
  Result<std::vector<storage::IdempotencyRecord>> ExpiredIdempotency(uint64_t before_ms,
                                                                     size_t limit) override {
    return inner_->ExpiredIdempotency(before_ms, limit);
  }
  Result<uint64_t> IdempotencyCount() override { return inner_->IdempotencyCount(); }
  Result<uint64_t> IdReservation() override { return inner_->IdReservation(); }
  Status SaveIdReservation(uint64_t reservation) override {
    return inner_->SaveIdReservation(reservation);
  }

 private:
  std::unique_ptr<storage::Store> inner_ = storage::NewMemoryStore();
};

class RegionTest : public ::testing::Test {
 protected:
  RegionTest() : region_(1, {{1, "us"}, {2, "eu"}}, &store_, &clock_, core::Limits{}, 500) {
    EXPECT_TRUE(region_.Recover().ok());
  }

  std::vector<Result<Receipt>> Commit(std::vector<WriteRequest> writes,
                                      std::vector<Change>* changes = nullptr) {
    std::vector<Result<Receipt>> outcomes;
    std::vector<Change> ignored;
    region_.CommitLocalWrites(writes, &outcomes, changes ? changes : &ignored);
    return outcomes;
  }

  ManualClock clock_;
  FlakyStore store_;
  Region region_;
};

TEST_F(RegionTest, GroupCommitAppliesInOrderAsOneBatch) {
  std::vector<Change> changes;
  auto outcomes =
      Commit({{"k", Set("stock", "10")}, {"k", Incr("stock", -1)}, {"j", Incr("n", 2)}}, &changes);
  ASSERT_EQ(outcomes.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(outcomes[i].ok());
    EXPECT_EQ(outcomes[i]->dot, (core::Dot{1, i + 1}));
    EXPECT_EQ(outcomes[i]->frontier, (core::VersionVector{{1, 3}}));  // the whole batch is durable
  }
  EXPECT_EQ(*store_.GetView("k").value(), R"({"stock":9})");
  EXPECT_EQ(*store_.GetView("j").value(), R"({"n":2})");
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[1].doc, R"({"stock":9})");
  EXPECT_EQ(changes[2].lsn, 3u);
  EXPECT_EQ(region_.frontier(), (core::VersionVector{{1, 3}}));
  EXPECT_EQ(region_.stats().commits, 1u);
  EXPECT_EQ(region_.documents(), 2u);
}

TEST_F(RegionTest, ARetryWithTheSameIdempotencyKeyAnswersTheOriginalReceiptAndAppliesOnce) {
  auto first = Commit({{"c", Incr("n", 5), "key-1"}});
  ASSERT_TRUE(first[0].ok());
  EXPECT_FALSE(first[0]->replayed);
  Commit({{"other", Set("x", "1")}});
  auto retry = Commit({{"c", Incr("n", 5), "key-1"}});
  ASSERT_TRUE(retry[0].ok());
  EXPECT_TRUE(retry[0]->replayed);
  EXPECT_EQ(retry[0]->dot, first[0]->dot);
  EXPECT_EQ(retry[0]->hlc, first[0]->hlc);
  EXPECT_EQ(retry[0]->frontier, first[0]->frontier);
  EXPECT_EQ(*store_.GetView("c").value(), R"({"n":5})");
  EXPECT_EQ(region_.frontier(), (core::VersionVector{{1, 2}}));  // no event for the retry

  // The same key on another document or operation is refused, not applied.
  auto reused = Commit({{"c", Incr("n", 6), "key-1"}, {"d", Incr("n", 5), "key-1"}});
  EXPECT_EQ(reused[0].status().code(), StatusCode::kIdempotencyKeyReused);
  EXPECT_EQ(reused[1].status().code(), StatusCode::kIdempotencyKeyReused);
  EXPECT_EQ(*store_.GetView("c").value(), R"({"n":5})");

  // Twice in one group: applied once, both answered with its receipt.
  auto twice = Commit({{"c", Incr("n", 1), "key-2"}, {"c", Incr("n", 1), "key-2"}});
  ASSERT_TRUE(twice[0].ok() && twice[1].ok());
  EXPECT_EQ(twice[1]->dot, twice[0]->dot);
  EXPECT_TRUE(twice[1]->replayed);
  EXPECT_EQ(twice[1]->frontier, twice[0]->frontier);
  EXPECT_EQ(*store_.GetView("c").value(), R"({"n":6})");

  // Writes without a key are never deduplicated.
  Commit({{"c", Incr("n", 1)}});
  Commit({{"c", Incr("n", 1)}});
  EXPECT_EQ(*store_.GetView("c").value(), R"({"n":8})");
}

TEST_F(RegionTest, IdempotencyOutlivesARestartAndEndsWithItsWindow) {
  region_.SetIdempotencyWindow(60'000);
  auto first = Commit({{"c", Incr("n", 1), "retry-me"}});
  {
    Region restarted(1, {{1, "us"}, {2, "eu"}}, &store_, &clock_, core::Limits{}, 500);
    ASSERT_TRUE(restarted.Recover().ok());
    restarted.SetIdempotencyWindow(60'000);
    std::vector<Result<Receipt>> outcomes;
    std::vector<Change> changes;
    restarted.CommitLocalWrites(std::vector<WriteRequest>{{"c", Incr("n", 1), "retry-me"}},
                                &outcomes, &changes);
    ASSERT_TRUE(outcomes[0].ok());
    EXPECT_TRUE(outcomes[0]->replayed);
    EXPECT_EQ(outcomes[0]->dot, first[0]->dot);
    EXPECT_TRUE(changes.empty());
  }
  EXPECT_EQ(*store_.GetView("c").value(), R"({"n":1})");

  // Past the window the key is free again: the same request is a new write. Its commit also
  // removes the expired record of another key.
  Commit({{"d", Incr("n", 1), "other"}});
  EXPECT_EQ(store_.IdempotencyCount().value(), 2u);
  clock_.now_ms += 60'001;
  auto later = Commit({{"c", Incr("n", 1), "retry-me"}});
  ASSERT_TRUE(later[0].ok());
  EXPECT_FALSE(later[0]->replayed);
  EXPECT_EQ(*store_.GetView("c").value(), R"({"n":2})");
  EXPECT_FALSE(store_.GetIdempotency("other").value().has_value());
  EXPECT_EQ(store_.IdempotencyCount().value(), 1u);
}

TEST_F(RegionTest, ARefusedWriteChangesNothingAndTheOthersCommit) {
  Commit({{"k", Set("name", "\"teapot\"")}});
  auto outcomes = Commit({{"k", Incr("name", 1)}, {"", Set("a", "1")}, {"k", Set("price", "3")}});
  EXPECT_EQ(outcomes[0].status().code(), StatusCode::kTypeMismatch);
  EXPECT_EQ(outcomes[1].status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(outcomes[2].ok());
  EXPECT_EQ(outcomes[2]->dot.seq, 2u);  // refused writes take no seq
  EXPECT_EQ(*store_.GetView("k").value(), R"({"name":"teapot","price":3})");
}

TEST_F(RegionTest, AWriteThatWouldRenderTooLargeIsRefused) {
  const std::string big = "\"" + std::string(60 * 1024, 'x') + "\"";
  std::vector<WriteRequest> writes;
  for (int i = 0; i < 20; ++i) writes.push_back({"k", Set("f" + std::to_string(i), big)});
  auto outcomes = Commit(writes);
  EXPECT_TRUE(outcomes[0].ok());
  EXPECT_EQ(outcomes[19].status().code(), StatusCode::kTooLarge);
  EXPECT_LE(store_.GetView("k").value()->size(), core::Limits{}.document_bytes_max);
}

TEST_F(RegionTest, AFailedCommitFailsEveryWriteAndLeavesNoTrace) {
  Commit({{"k", Set("a", "1")}});
  const uint64_t digest = region_.digest();
  store_.fail = true;
  auto outcomes = Commit({{"k", Set("a", "2")}, {"j", Set("b", "1")}});
  for (const auto& outcome : outcomes) EXPECT_EQ(outcome.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(region_.frontier(), (core::VersionVector{{1, 1}}));
  EXPECT_EQ(region_.digest(), digest);
  store_.fail = false;
  auto retried = Commit({{"k", Set("a", "3")}});
  ASSERT_TRUE(retried[0].ok());
  EXPECT_EQ(retried[0]->dot.seq, 2u);  // no gap left by the failed batch
  EXPECT_EQ(*store_.GetView("k").value(), R"({"a":3})");
}

TEST_F(RegionTest, DigestTracksWhatIsShownWhateverTheHistory) {
  Commit({{"a", Set("x", "1")}, {"b", Set("y", "2")}});
  const uint64_t with_both = region_.digest();
  Commit({{"c", Set("z", "3")}});
  EXPECT_NE(region_.digest(), with_both);
  Commit({{"c", core::Operation{core::OpKind::kDelete, {}, {}}}});
  EXPECT_EQ(region_.digest(), with_both);  // the same documents shown, the same digest
  EXPECT_EQ(region_.documents(), 2u);
}

TEST_F(RegionTest, RecoversFrontierClockAndCounts) {
  Commit({{"a", Set("x", "1")}, {"b", Set("y", "2")}});
  const core::HlcTimestamp last = region_.hlc();
  Region restarted(1, {{1, "us"}}, &store_, &clock_, core::Limits{}, 500);
  clock_.now_ms -= 10'000;  // the wall clock went backwards across the restart
  ASSERT_TRUE(restarted.Recover().ok());
  EXPECT_EQ(restarted.frontier(), region_.frontier());
  EXPECT_EQ(restarted.documents(), 2u);
  EXPECT_EQ(restarted.digest(), region_.digest());
  std::vector<Result<Receipt>> outcomes;
  std::vector<Change> changes;
  std::vector<WriteRequest> writes = {{"a", Set("x", "5")}};
  restarted.CommitLocalWrites(writes, &outcomes, &changes);
  ASSERT_TRUE(outcomes[0].ok());
  EXPECT_GT(outcomes[0]->hlc, last);  // never backwards
  EXPECT_EQ(outcomes[0]->dot.seq, 3u);
}

TEST_F(RegionTest, EventIds) {
  EXPECT_EQ(region_.EventId(core::Dot{2, 17}), "eu:17");
  core::Dot dot;
  EXPECT_TRUE(region_.ParseEventId("eu:17", &dot));
  EXPECT_EQ(dot, (core::Dot{2, 17}));
  EXPECT_FALSE(region_.ParseEventId("mars:1", &dot));
  EXPECT_FALSE(region_.ParseEventId("eu:0", &dot));
  EXPECT_FALSE(region_.ParseEventId("eu:x", &dot));
  EXPECT_FALSE(region_.ParseEventId("eu", &dot));
}

}  // namespace
}  // namespace meridian::node

namespace meridian::node {
namespace {

// A committed view is in the view cache before the frontier covers it, so a reader holding a
// session the frontier covers finds it (or the store's equal value), never an older one.
TEST(RegionViewCacheTest, CommittedViewsReachTheCacheBeforeTheFrontierMoves) {
  ManualClock clock;
  FlakyStore store;
  ViewCache views(16);
  Region region(1, {{1, "us"}}, &store, &clock, core::Limits{}, 500, 16, &views);
  ASSERT_TRUE(region.Recover().ok());
  std::vector<Result<Receipt>> outcomes;
  std::vector<Change> changes;
  std::vector<WriteRequest> writes = {{"k", Set("a", "1")},
                                      {"k", Set("a", "2")},
                                      {"gone", Set("b", "1")},
                                      {"gone", core::Operation{core::OpKind::kDelete, {}, {}}}};
  region.CommitLocalWrites(writes, &outcomes, &changes);
  std::string doc;
  EXPECT_EQ(views.Find("k", &doc), ViewCache::Lookup::kFound);
  EXPECT_EQ(doc, R"({"a":2})");
  EXPECT_EQ(views.Find("gone", &doc), ViewCache::Lookup::kAbsent);
  EXPECT_EQ(views.Find("never", &doc), ViewCache::Lookup::kMiss);

  // A failed commit leaves the cache as it was.
  store.fail = true;
  writes = {{"k", Set("a", "3")}};
  region.CommitLocalWrites(writes, &outcomes, &changes);
  EXPECT_EQ(views.Find("k", &doc), ViewCache::Lookup::kFound);
  EXPECT_EQ(doc, R"({"a":2})");
}

TEST(ViewCacheTest, ForgetsTheLeastRecentlyWrittenWhenFull) {
  ViewCache views(16);  // one entry per shard
  for (int i = 0; i < 1000; ++i) views.Put("k" + std::to_string(i), "{}");
  int found = 0;
  std::string doc;
  for (int i = 0; i < 1000; ++i)
    found += views.Find("k" + std::to_string(i), &doc) == ViewCache::Lookup::kFound;
  EXPECT_LE(found, 16);
  EXPECT_EQ(views.Find("k999", &doc), ViewCache::Lookup::kFound);  // the latest always stays
}

}  // namespace
}  // namespace meridian::node

namespace meridian::node {
namespace {

// The replication receive path: events of another region merge durably, in order, exactly once.
class RemoteApplyTest : public ::testing::Test {
 protected:
  RemoteApplyTest()
      : us_(1, {{1, "us"}, {2, "eu"}}, &us_store_, &clock_, core::Limits{}, 500),
        eu_(2, {{1, "us"}, {2, "eu"}}, &eu_store_, &clock_, core::Limits{}, 500) {
    EXPECT_TRUE(us_.Recover().ok());
    EXPECT_TRUE(eu_.Recover().ok());
  }

  // Up to `limit` events of `origin` from seq `from` on, as `store` logged them.
  static std::vector<core::Event> Logged(storage::Store& store, core::RegionId origin,
                                         uint64_t from, size_t limit) {
    return testing::LoggedEvents(store, origin, from, limit);
  }

  // eu increments "c" by 1, then by 5; us applies the first and parks the second as a dead letter
  // (a newer schema). eu's two events.
  std::vector<core::Event> ParkTheSecondOfTwoIncrements(std::vector<Change>* changes);

  // Writes at eu and returns the events as eu logged them.
  std::vector<core::Event> WriteAtEu(std::vector<WriteRequest> writes) {
    std::vector<Result<Receipt>> outcomes;
    std::vector<Change> changes;
    eu_.CommitLocalWrites(writes, &outcomes, &changes);
    std::vector<core::Event> events;
    for (const Change& change : changes) {
      for (core::Event& event : Logged(eu_store_, change.dot.origin, change.dot.seq, 1)) {
        events.push_back(std::move(event));
      }
    }
    return events;
  }

  ManualClock clock_;
  FlakyStore us_store_;
  FlakyStore eu_store_;
  FlakyStore behind_store_;
  Region us_;
  Region eu_;
};

size_t MetadataOf(storage::Store& store, const std::string& key) {
  auto bytes = store.GetDocumentState(key);
  if (!bytes.ok() || !bytes->has_value()) return 0;
  auto state = core::DocumentState::Decode(**bytes);
  return state.ok() ? state->MetadataEntries() : 0;
}

TEST_F(RemoteApplyTest, StableMetadataIsFoldedByWritesAndBySweeps) {
  std::vector<Result<Receipt>> outcomes;
  std::vector<Change> changes;
  std::vector<WriteRequest> writes;
  for (int i = 0; i < 5; ++i) writes.push_back({"c", Incr("n", 1)});
  writes.push_back({"d", Set("a", "1")});
  writes.push_back({"d", Set("a", "2")});
  writes.push_back({"gone", Set("b", "1")});
  writes.push_back({"gone", core::Operation{core::OpKind::kDelete, {}, {}}});
  us_.CommitLocalWrites(writes, &outcomes, &changes);
  // eu applies all of us's events, then writes: its event's context shows it holds us:9.
  const std::vector<core::Event> from_us = Logged(us_store_, 1, 1, 100);
  ASSERT_TRUE(eu_.ApplyRemoteEvents(from_us, &changes).ok());
  const auto from_eu = WriteAtEu({{"e", Set("x", "1")}});
  EXPECT_TRUE(us_.StableFrontier().empty()) << "nothing is known of eu yet";
  ASSERT_TRUE(us_.ApplyRemoteEvents(from_eu, &changes).ok());
  EXPECT_EQ(us_.StableFrontier(), (core::VersionVector{{1, 9}, {2, 1}}));

  const size_t counter_before = MetadataOf(us_store_, "c");
  const size_t sets_before = MetadataOf(us_store_, "d");
  ASSERT_TRUE(us_store_.GetDocumentState("gone").value().has_value());

  // A write folds the document it touches.
  us_.CommitLocalWrites(std::vector<WriteRequest>{{"c", Incr("n", 1)}}, &outcomes, &changes);
  EXPECT_EQ(*us_store_.GetView("c").value(), R"({"n":6})");
  EXPECT_LT(MetadataOf(us_store_, "c"), counter_before);
  const uint64_t digest = us_.digest();
  const uint64_t documents = us_.documents();

  // A sweep folds the documents no write touched and removes what is left of a deleted one.
  size_t folded = 0;
  ASSERT_TRUE(us_.FoldSweep(100, &folded).ok());
  EXPECT_GE(folded, 2u);  // d and gone (and eu's e)
  EXPECT_LT(MetadataOf(us_store_, "d"), sets_before);
  EXPECT_EQ(*us_store_.GetView("d").value(), R"({"a":2})");
  EXPECT_FALSE(us_store_.GetDocumentState("gone").value().has_value());
  const size_t scans = us_store_.state_scans;
  ASSERT_TRUE(us_.FoldSweep(100, &folded).ok());
  EXPECT_EQ(folded, 0u) << "nothing left to fold";
  EXPECT_EQ(us_store_.state_scans, scans) << "nothing became stable since the last pass";
  EXPECT_EQ(us_.digest(), digest) << "folding changes no render";
  EXPECT_EQ(us_.documents(), documents);
  EXPECT_EQ(*us_store_.GetView("e").value(), R"({"x":1})");
  ASSERT_TRUE(us_.ApplyRemoteEvents(WriteAtEu({{"e", Set("x", "2")}}), &changes).ok());
  ASSERT_TRUE(us_.FoldSweep(100, &folded).ok());
  EXPECT_EQ(us_store_.state_scans, scans + 1) << "eu:2 became stable: a new pass";
}

// The event as a newer build would send it: the same fields, a newer schema version, as the
// receive path's decoder parks it.
core::ParkedEvent ParkedAs(const core::Event& event, uint32_t schema_version) {
  wire::Event message;
  EXPECT_TRUE(message.ParseFromString(core::EncodeEvent(event)));
  message.set_schema_version(schema_version);
  auto received = core::DecodeOrPark(message.SerializeAsString(), core::Limits{});
  EXPECT_TRUE(received.ok() && received->parked.has_value());
  return *received->parked;
}

std::vector<core::Event> RemoteApplyTest::ParkTheSecondOfTwoIncrements(
    std::vector<Change>* changes) {
  const auto events = WriteAtEu({{"c", Incr("n", 1)}, {"c", Incr("n", 5)}});
  EXPECT_TRUE(
      us_.ApplyRemoteEvents(
             core::RemoteBatch({events[0]}, {ParkedAs(events[1], core::kEventSchemaVersion + 1)}),
             changes)
          .ok());
  return events;
}

DeadLetter LetterOf(storage::Store& store, uint64_t id) {
  auto record = store.GetDeadLetter(id);
  EXPECT_TRUE(record.ok() && record->has_value());
  return DeadLetter::Decode(id, record->value_or("")).value();
}

// A parked event advances the frontier (its origin goes on past it), is logged as it came, and
// becomes a durable dead letter; its document is not folded while the letter is pending, and a
// retry applies it exactly once, through the commit path, once the region reads it.
TEST_F(RemoteApplyTest, AnEventThatCannotBeReadIsParkedThenAppliedOnceByARetry) {
  const auto events = WriteAtEu({{"p", Incr("n", 1)},
                                 {"r", Incr("n", 1)},
                                 {"p", Incr("n", 5)},  // eu:3, sent as a newer version
                                 {"p", Incr("n", 1)},
                                 {"r", Incr("n", 1)}});
  const core::ParkedEvent newer = ParkedAs(events[2], core::kEventSchemaVersion + 1);
  std::vector<Change> changes;
  auto first = us_.ApplyRemoteEvents(core::RemoteBatch({events[0], events[1]}, {newer}), &changes);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->applied, 2u);
  ASSERT_EQ(first->parked.size(), 1u);
  EXPECT_EQ(first->parked[0].id, 1u);
  EXPECT_EQ(first->parked[0].dot, events[2].dot);
  EXPECT_EQ(first->parked_keys, std::vector<std::string>{"p"});
  EXPECT_EQ(us_.frontier(), (core::VersionVector{{2, 3}})) << "eu does not stall on eu:3";
  EXPECT_EQ(changes.size(), 2u) << "the parked event changed nothing";
  EXPECT_EQ(us_.documents_with_dead_letters(), 1u);

  const DeadLetter parked = LetterOf(us_store_, 1);
  EXPECT_EQ(parked.event, "eu:3");
  EXPECT_EQ(parked.key, "p");
  EXPECT_EQ(parked.schema_version, core::kEventSchemaVersion + 1);
  EXPECT_EQ(parked.reason, "schema version " + std::to_string(core::kEventSchemaVersion + 1) +
                               " is newer than this node reads (" +
                               std::to_string(core::kEventSchemaVersion) + ")");
  EXPECT_EQ(parked.state, DeadLetter::State::kParked);
  EXPECT_EQ(parked.parked_ms, clock_.now_ms);
  EXPECT_EQ(parked.bytes, newer.bytes);
  std::vector<std::string> logged;
  ASSERT_TRUE(
      us_store_
          .ReadLog(2, 3, 1,
                   [&](const storage::LoggedEvent& event) { logged.push_back(event.bytes); })
          .ok());
  EXPECT_EQ(logged, std::vector<std::string>{newer.bytes}) << "relayed as it came";

  // The rest of eu's events go on; everything is stable once eu's own events say so.
  ASSERT_TRUE(us_.ApplyRemoteEvents(std::vector<core::Event>{events[3], events[4]}, &changes).ok());
  EXPECT_EQ(*us_store_.GetView("p").value(), R"({"n":2})");
  EXPECT_EQ(us_.StableFrontier(), (core::VersionVector{{2, 5}}));
  const size_t p_before = MetadataOf(us_store_, "p");
  const size_t r_before = MetadataOf(us_store_, "r");
  size_t folded = 0;
  ASSERT_TRUE(us_.FoldSweep(100, &folded).ok());
  EXPECT_LT(MetadataOf(us_store_, "r"), r_before);
  EXPECT_EQ(MetadataOf(us_store_, "p"), p_before) << "not folded while eu:3 is pending";

  // This build still cannot read it: the record stays parked, with the reason of the attempt.
  changes.clear();
  auto retry = us_.RetryDeadLetter(1, &changes);
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->outcome, DeadLetterRetry::Outcome::kStillParked);
  EXPECT_EQ(LetterOf(us_store_, 1).retries, 1u);
  EXPECT_EQ(LetterOf(us_store_, 1).state, DeadLetter::State::kParked);
  EXPECT_TRUE(changes.empty());

  // A build that reads version 2 applies it, once.
  us_.SetSchemaVersionMax(core::kEventSchemaVersion + 1);
  const core::VersionVector frontier = us_.frontier();
  retry = us_.RetryDeadLetter(1, &changes);
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->outcome, DeadLetterRetry::Outcome::kApplied);
  EXPECT_EQ(retry->letter.state, DeadLetter::State::kApplied);
  EXPECT_EQ(LetterOf(us_store_, 1).state, DeadLetter::State::kApplied);
  EXPECT_EQ(*us_store_.GetView("p").value(), R"({"n":7})");
  ASSERT_EQ(changes.size(), 1u) << "watches see it";
  EXPECT_EQ(changes[0].dot, events[2].dot);
  EXPECT_EQ(changes[0].doc, std::optional<std::string>(R"({"n":7})"));
  EXPECT_EQ(us_store_.LsnOf(events[2].dot).value(), std::optional<uint64_t>(changes[0].lsn));
  EXPECT_EQ(us_.frontier(), frontier);
  EXPECT_EQ(us_.documents_with_dead_letters(), 0u);
  EXPECT_EQ(us_.RetryDeadLetter(1, &changes)->outcome, DeadLetterRetry::Outcome::kNotParked);
  EXPECT_EQ(*us_store_.GetView("p").value(), R"({"n":7})") << "not applied twice";
  EXPECT_EQ(us_.RetryDeadLetter(2, &changes)->outcome, DeadLetterRetry::Outcome::kUnknown);
  ASSERT_TRUE(us_.FoldSweep(100, &folded).ok());
  EXPECT_LT(MetadataOf(us_store_, "p"), p_before) << "folded once applied";
  // A duplicate of a parked dot is a duplicate like any other.
  auto again = us_.ApplyRemoteEvents(core::RemoteBatch({}, {newer}), &changes);
  EXPECT_EQ(again->duplicates, 1u);
  EXPECT_EQ(us_store_.DeadLetterCount().value(), 1u);
}

// At start, a dead letter parked for its schema version only is applied once the build reads that
// version (an upgrade), and the documents waiting for the others are known again.
TEST_F(RemoteApplyTest, AnUpgradedRegionAppliesWhatItParkedForItsSchemaAtStart) {
  const auto events = WriteAtEu({{"p", Set("x", "1")}, {"q", Set("y", "1")}});
  core::Event poison = events[1];
  wire::Event message;
  ASSERT_TRUE(message.ParseFromString(core::EncodeEvent(poison)));
  message.mutable_operation()->mutable_fields(0)->set_value(" 1");  // not canonical JSON
  auto bad = core::DecodeOrPark(message.SerializeAsString(), core::Limits{});
  ASSERT_TRUE(bad.ok() && bad->parked);
  std::vector<Change> changes;
  ASSERT_TRUE(us_.ApplyRemoteEvents(
                     core::RemoteBatch(
                         {}, {ParkedAs(events[0], core::kEventSchemaVersion + 1), *bad->parked}),
                     &changes)
                  .ok());
  EXPECT_EQ(us_store_.DeadLetterCount().value(), 2u);

  {  // Restarted with the same build: nothing applied, both documents still wait.
    Region same(1, {{1, "us"}, {2, "eu"}}, &us_store_, &clock_, core::Limits{}, 500);
    ASSERT_TRUE(same.Recover().ok());
    std::vector<DeadLetter> applied;
    ASSERT_TRUE(same.RecoverDeadLetters(&applied, &changes).ok());
    EXPECT_TRUE(applied.empty());
    EXPECT_EQ(same.documents_with_dead_letters(), 2u);
  }
  Region upgraded(1, {{1, "us"}, {2, "eu"}}, &us_store_, &clock_, core::Limits{}, 500);
  upgraded.SetSchemaVersionMax(core::kEventSchemaVersion + 1);
  ASSERT_TRUE(upgraded.Recover().ok());
  std::vector<DeadLetter> applied;
  changes.clear();
  ASSERT_TRUE(upgraded.RecoverDeadLetters(&applied, &changes).ok());
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].event, "eu:1");
  EXPECT_EQ(applied[0].state, DeadLetter::State::kApplied);
  EXPECT_EQ(*us_store_.GetView("p").value(), R"({"x":1})");
  EXPECT_EQ(changes.size(), 1u);
  EXPECT_EQ(LetterOf(us_store_, 2).state, DeadLetter::State::kParked) << "not a schema matter";
  EXPECT_EQ(upgraded.documents_with_dead_letters(), 1u);
  // Resolved otherwise (repaired): out of the queue, not applied.
  auto resolved = upgraded.ResolveDeadLetter(2, &changes);
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->outcome, DeadLetterRetry::Outcome::kResolved);
  EXPECT_EQ(LetterOf(us_store_, 2).state, DeadLetter::State::kResolved);
  EXPECT_EQ(upgraded.documents_with_dead_letters(), 0u);
  EXPECT_FALSE(us_store_.GetView("q").value().has_value());
}

TEST_F(RemoteApplyTest, AFrontierReportCountsOnlyOnceItsOriginsEventsAreHere) {
  us_.ObserveFrontier(2, core::VersionVector{{2, 1}});  // eu:1 is not applied here
  EXPECT_TRUE(us_.StableFrontier().empty());
  const auto from_eu = WriteAtEu({{"e", Set("x", "1")}});
  std::vector<Change> changes;
  ASSERT_TRUE(us_.ApplyRemoteEvents(from_eu, &changes).ok());
  EXPECT_EQ(us_.StableFrontier(), (core::VersionVector{{2, 1}}));
  us_.ObserveFrontier(2, core::VersionVector{{1, 0}, {2, 1}});
  us_.ObserveFrontier(9, core::VersionVector{{2, 1}});  // not a configured region: ignored
  EXPECT_EQ(us_.StableFrontier(), (core::VersionVector{{2, 1}}));
}

TEST_F(RemoteApplyTest, MergesInOrderOnceAndDurably) {
  std::vector<Result<Receipt>> outcomes;
  std::vector<Change> changes;
  us_.CommitLocalWrites(std::vector<WriteRequest>{{"sku", Set("stock", "100")}}, &outcomes,
                        &changes);
  const auto events =
      WriteAtEu({{"sku", Incr("stock", -1)}, {"sku", Incr("stock", -2)}, {"other", Set("x", "1")}});
  ASSERT_EQ(events.size(), 3u);

  changes.clear();
  auto first = us_.ApplyRemoteEvents(std::vector<core::Event>{events[0], events[2]}, &changes);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->applied, 1u);
  EXPECT_EQ(first->gaps, 1u);  // eu:3 waits for eu:2
  EXPECT_EQ(us_.frontier(), (core::VersionVector{{1, 1}, {2, 1}}));
  auto second = us_.ApplyRemoteEvents(events, &changes);  // eu:1 again, then eu:2, eu:3
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->duplicates, 1u);
  EXPECT_EQ(second->applied, 2u);
  EXPECT_EQ(*us_store_.GetView("sku").value(), R"({"stock":97})");  // the restock and both sales
  EXPECT_EQ(*us_store_.GetView("other").value(), R"({"x":1})");
  EXPECT_EQ(us_.frontier(), (core::VersionVector{{1, 1}, {2, 3}}));
  EXPECT_EQ(us_.stats().remote_events, 3u);
  EXPECT_EQ(changes.size(), 3u);
  EXPECT_EQ(us_.EventId(changes.back().dot), "eu:3");
  // The remote events are in us's log under their own dots, for watches and relaying.
  EXPECT_TRUE(us_store_.LsnOf(core::Dot{2, 2}).value().has_value());

  // Restarted, us remembers everything it applied.
  Region restarted(1, {{1, "us"}, {2, "eu"}}, &us_store_, &clock_, core::Limits{}, 500);
  ASSERT_TRUE(restarted.Recover().ok());
  EXPECT_EQ(restarted.frontier(), us_.frontier());
  EXPECT_EQ(restarted.digest(), us_.digest());
}

// eu lost its data: a new, empty eu rebuilds. It refuses local writes meanwhile, takes its own
// events back from a peer in seq order like any origin's, and then writes after them.
TEST_F(RemoteApplyTest, ARebuildingRegionTakesItsOwnEventsBackBeforeWriting) {
  const auto events = WriteAtEu({{"sku", Set("stock", "5")}, {"sku", Incr("stock", 2)}});
  std::vector<Change> changes;
  ASSERT_TRUE(us_.ApplyRemoteEvents(events, &changes).ok());

  FlakyStore empty_store;
  Region rebuilt(2, {{1, "us"}, {2, "eu"}}, &empty_store, &clock_, core::Limits{}, 500);
  ASSERT_TRUE(rebuilt.Recover().ok());
  rebuilt.SetRebuilding(true);
  std::vector<Result<Receipt>> outcomes;
  rebuilt.CommitLocalWrites(std::vector<WriteRequest>{{"sku", Incr("stock", 1)}}, &outcomes,
                            &changes);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].status().code(), StatusCode::kRebuilding);
  EXPECT_EQ(rebuilt.frontier(), core::VersionVector());

  // Its own second event first is a gap; then both in order; then again, duplicates.
  auto gap = rebuilt.ApplyRemoteEvents(std::vector<core::Event>{events[1]}, &changes);
  ASSERT_TRUE(gap.ok());
  EXPECT_EQ(gap->gaps, 1u);
  auto applied = rebuilt.ApplyRemoteEvents(events, &changes);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->applied, 2u);
  EXPECT_EQ(rebuilt.ApplyRemoteEvents(events, &changes)->duplicates, 2u);
  EXPECT_EQ(rebuilt.frontier(), (core::VersionVector{{2, 2}}));

  rebuilt.SetRebuilding(false);
  outcomes.clear();
  rebuilt.CommitLocalWrites(std::vector<WriteRequest>{{"sku", Incr("stock", 1)}}, &outcomes,
                            &changes);
  ASSERT_TRUE(outcomes[0].ok());
  EXPECT_EQ(outcomes[0]->dot, (core::Dot{2, 3}));  // after what it got back: no id reused
  EXPECT_EQ(*empty_store.GetView("sku").value(), R"({"stock":8})");
}

// Re-seeding helpers: a store's document states, and one page of a snapshot of it.
std::vector<std::pair<std::string, std::string>> StatesOf(storage::Store& store) {
  std::vector<std::pair<std::string, std::string>> states;
  EXPECT_TRUE(store
                  .ScanDocumentStates("", 1000,
                                      [&](std::string_view key, std::string_view state) {
                                        states.emplace_back(key, state);
                                      })
                  .ok());
  return states;
}

Region::SnapshotPage PageOf(std::span<const std::pair<std::string, std::string>> states,
                            std::string after, std::optional<std::string> through,
                            storage::Store& source) {
  auto position = source.Recover();
  EXPECT_TRUE(position.ok());
  return Region::SnapshotPage{
      states,           std::move(after), std::move(through), position->frontier,
      position->folded, position->hlc};
}

// Every document's view in a store, by key.
std::map<std::string, std::string> ViewsOf(storage::Store& store) {
  std::map<std::string, std::string> views;
  EXPECT_TRUE(
      store
          .ScanViews("", "", 1000,
                     [&](std::string_view key, std::string_view view) { views.emplace(key, view); })
          .ok());
  return views;
}

// Re-seeding: eu's states merged into an empty region render the same, count and digest the
// same, carry the snapshot's frontier once the last page is in, and events after it apply on top.
TEST_F(RemoteApplyTest, SnapshotStatesMergedIntoAnEmptyRegionMatchTheSource) {
  std::vector<Change> merged;
  const auto events = WriteAtEu({{"sku", Set("stock", "5")},
                                 {"sku", Incr("stock", 2)},
                                 {"gone", Set("x", "1")},
                                 {"gone", core::Operation{core::OpKind::kDelete, {}, {}}}});
  const auto states = StatesOf(eu_store_);
  ASSERT_EQ(states.size(), 2u);  // "gone" is kept as a removal until it is folded away
  FlakyStore empty_store;
  Region joined(3, {{1, "us"}, {2, "eu"}, {3, "asia"}}, &empty_store, &clock_, core::Limits{}, 500);
  ASSERT_TRUE(joined.Recover().ok());
  const std::span<const std::pair<std::string, std::string>> all(states);
  ASSERT_TRUE(
      joined.MergeSnapshotPage(PageOf(all.first(1), "", states[0].first, eu_store_), &merged).ok());
  EXPECT_EQ(joined.frontier(), core::VersionVector());  // not before the last page
  EXPECT_TRUE(joined.merging());
  ASSERT_TRUE(joined
                  .MergeSnapshotPage(
                      PageOf(all.subspan(1), states[0].first, std::nullopt, eu_store_), &merged)
                  .ok());
  EXPECT_FALSE(joined.merging());
  EXPECT_EQ(joined.frontier(), eu_.frontier());
  EXPECT_EQ(joined.documents(), eu_.documents());
  EXPECT_EQ(joined.digest(), eu_.digest());
  EXPECT_EQ(*empty_store.GetView("sku").value(), R"({"stock":7})");
  // eu writes on: its next event applies on top; the merged ones are duplicates.
  const auto more = WriteAtEu({{"sku", Incr("stock", 1)}});
  std::vector<Change> changes;
  auto applied = joined.ApplyRemoteEvents(more, &changes);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->applied, 1u);
  EXPECT_EQ(joined.ApplyRemoteEvents(events, &changes)->duplicates, events.size());
  EXPECT_EQ(*empty_store.GetView("sku").value(), R"({"stock":8})");
  // Started over: nothing is left.
  ASSERT_TRUE(joined.ClearDocuments().ok());
  EXPECT_EQ(joined.documents(), 0u);
  EXPECT_EQ(joined.digest(), 0u);
  EXPECT_FALSE(empty_store.GetView("sku").value().has_value());
  auto bad = std::vector<std::pair<std::string, std::string>>{{"k", "not a state"}};
  EXPECT_EQ(joined.MergeSnapshotPage(PageOf(bad, "", std::nullopt, eu_store_), &merged).code(),
            StatusCode::kCorruption);
}

// A region that holds data (us, which eu's log no longer serves, say) merges eu's snapshot as
// state: what us wrote that eu never saw survives, what eu deleted stays deleted, increments add
// up exactly, and the result is what replaying us's events at eu gives.
TEST_F(RemoteApplyTest, MergingASnapshotIntoARegionThatHoldsDataLosesNothingAndResurrectsNothing) {
  std::vector<Change> merged;
  const auto first = WriteAtEu({{"gone", Set("x", "1")}, {"sku", Set("stock", "5")}});
  std::vector<Change> changes;
  ASSERT_TRUE(us_.ApplyRemoteEvents(first, &changes).ok());
  // us writes while cut off from eu.
  std::vector<Result<Receipt>> outcomes;
  us_.CommitLocalWrites(
      std::vector<WriteRequest>{
          {"mine", Set("a", "1")}, {"sku", Incr("stock", 1)}, {"zz-last", Set("b", "2")}},
      &outcomes, &changes);
  for (const auto& outcome : outcomes) ASSERT_TRUE(outcome.ok());
  // eu deletes "gone", sells 2 and adds a document, none of which us receives.
  WriteAtEu({{"gone", core::Operation{core::OpKind::kDelete, {}, {}}},
             {"new", Set("c", "3")},
             {"sku", Incr("stock", -2)}});

  const auto states = StatesOf(eu_store_);
  const std::span<const std::pair<std::string, std::string>> all(states);
  // The first page ends at "gone"; us's "mine" and "zz-last" lie beyond it, "mine" before "new".
  ASSERT_EQ(states[0].first, "gone");
  ASSERT_TRUE(us_.MergeSnapshotPage(PageOf(all.first(1), "", "gone", eu_store_), &merged).ok());
  // Nothing is applied beside a merge under way.
  EXPECT_EQ(us_.ApplyRemoteEvents(first, &changes).status().code(), StatusCode::kRebuilding);
  outcomes.clear();
  us_.CommitLocalWrites(std::vector<WriteRequest>{{"mine", Set("a", "9")}}, &outcomes, &changes);
  EXPECT_EQ(outcomes[0].status().code(), StatusCode::kRebuilding);
  // The snapshot's clock is ahead of every state's newest sibling (an increment was eu's last).
  Region::SnapshotPage last = PageOf(all.subspan(1), "gone", std::nullopt, eu_store_);
  last.hlc += core::HlcTimestamp{1000} << 16;
  ASSERT_TRUE(us_.MergeSnapshotPage(last, &merged).ok());
  EXPECT_FALSE(us_.merging());

  const auto views = ViewsOf(us_store_);
  EXPECT_FALSE(views.contains("gone"));
  EXPECT_EQ(views.at("mine"), R"({"a":1})");
  EXPECT_EQ(views.at("zz-last"), R"({"b":2})");
  EXPECT_EQ(views.at("new"), R"({"c":3})");
  EXPECT_EQ(views.at("sku"), R"({"stock":4})");
  core::VersionVector joined = eu_.frontier();
  joined.Merge(core::VersionVector{{1, 3}});
  EXPECT_EQ(us_.frontier(), joined);
  EXPECT_EQ(us_.documents(), 4u);
  // The clock is past every event merged, an increment's too (states hold no HLC of one): a
  // write here now is ordered after them.
  EXPECT_GE(us_.hlc(), last.hlc);
  // Watches see what the merge changed, in one lsn order after the region's own changes.
  std::map<std::string, std::optional<std::string>> seen;
  uint64_t lsn = 0;
  for (const Change& change : merged) {
    EXPECT_GT(change.lsn, lsn);
    lsn = change.lsn;
    seen[change.key] = change.doc;
  }
  EXPECT_EQ(seen, (std::map<std::string, std::optional<std::string>>{
                      {"gone", std::nullopt}, {"new", R"({"c":3})"}, {"sku", R"({"stock":4})"}}));

  // eu applies us's three writes: the two regions then show the same.
  const std::vector<core::Event> ours = Logged(us_store_, 1, 1, 10);
  ASSERT_EQ(ours.size(), 3u);
  ASSERT_TRUE(eu_.ApplyRemoteEvents(ours, &changes).ok());
  EXPECT_EQ(ViewsOf(eu_store_), views);
  EXPECT_EQ(eu_.digest(), us_.digest());
}

// A copy marked for a parked event holds all but that event; a re-seed merges a marked copy as
// nothing, so what only it held (us's own increment here) is gone from it. Applying the dead
// letter afterwards must not declare that copy whole: it stays marked until a region that holds
// the document whole restores it.
TEST_F(RemoteApplyTest, ACopyAReseedMergedAsNothingIsNotWholeOnceItsDeadLetterIsApplied) {
  std::vector<Change> changes;
  const auto events = ParkTheSecondOfTwoIncrements(&changes);
  ASSERT_TRUE(us_.IsDamaged("c"));
  std::vector<Result<Receipt>> outcomes;
  us_.CommitLocalWrites(std::vector<WriteRequest>{{"c", Incr("n", 10)}}, &outcomes, &changes);
  ASSERT_TRUE(outcomes[0].ok());
  EXPECT_EQ(*us_store_.GetView("c").value(), R"({"n":11})");

  // us re-seeds from eu, which has not applied us:1.
  const auto states = StatesOf(eu_store_);
  ASSERT_TRUE(us_.MergeSnapshotPage(PageOf(states, "", std::nullopt, eu_store_), &changes).ok());
  EXPECT_TRUE(us_.IsDamaged("c"));

  // The build now reads eu:2: its dead letter is applied, and the copy still lacks us:1.
  us_.SetSchemaVersionMax(core::kEventSchemaVersion + 1);
  auto retry = us_.RetryDeadLetter(1, &changes);
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->outcome, DeadLetterRetry::Outcome::kApplied);
  EXPECT_TRUE(us_.IsDamaged("c")) << "whole again only if the re-seed had kept it";

  // eu applies us:1; comparing with eu restores the copy, with every increment.
  const std::vector<core::Event> ours = Logged(us_store_, 1, 1, 10);
  ASSERT_TRUE(eu_.ApplyRemoteEvents(ours, &changes).ok());
  EXPECT_EQ(*eu_store_.GetView("c").value(), R"({"n":16})");
  const std::vector<std::string> keys{"c"};
  us_.Watch(keys);
  auto theirs = eu_.ReadStates(keys);
  ASSERT_TRUE(theirs.ok());
  auto repaired = us_.Repair(2, *theirs, &changes);
  us_.Unwatch(keys);
  ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
  EXPECT_EQ(repaired->repaired, 1u);
  EXPECT_FALSE(us_.IsDamaged("c"));
  EXPECT_EQ(*us_store_.GetView("c").value(), R"({"n":16})");
  EXPECT_EQ(us_.digest(), eu_.digest());
}

// A comparison watching a document must not restore it from a peer's copy that lacks what a
// re-seed merged into it meanwhile: the merge names no event, so nothing tells the two copies
// apart by their events, and the older copy would replace the newer one for good (the simulator's
// retention seed 179: two regions never converged).
TEST_F(RemoteApplyTest, ARepairOfADocumentAReseedChangedWhileWatchedIsDeferred) {
  std::vector<Change> changes;
  const auto events = ParkTheSecondOfTwoIncrements(&changes);
  ASSERT_TRUE(us_.IsDamaged("c"));
  // A copy of the document as a region that applied eu:1 alone holds it (eu:2 reverted).
  Region behind(3, {{1, "us"}, {2, "eu"}, {3, "asia"}}, &behind_store_, &clock_, core::Limits{},
                500);
  ASSERT_TRUE(behind.Recover().ok());
  ASSERT_TRUE(behind.ApplyRemoteEvents(core::RemoteBatch({events[0]}, {}), &changes).ok());
  const std::vector<std::string> keys{"c"};
  auto theirs = behind.ReadStates(keys);
  ASSERT_TRUE(theirs.ok());

  // us starts comparing "c" with that region; meanwhile it re-seeds from eu, which has eu:2.
  us_.Watch(keys);
  ASSERT_TRUE(
      us_.MergeSnapshotPage(PageOf(StatesOf(eu_store_), "", std::nullopt, eu_store_), &changes)
          .ok());
  ASSERT_EQ(*us_store_.GetView("c").value(), R"({"n":6})");
  auto repaired = us_.Repair(3, *theirs, &changes);
  us_.Unwatch(keys);
  ASSERT_TRUE(repaired.ok()) << repaired.status().ToString();
  EXPECT_EQ(repaired->repaired, 0u);
  EXPECT_EQ(repaired->deferred, 1u);
  EXPECT_EQ(*us_store_.GetView("c").value(), R"({"n":6})");
}

// A node restarted midway goes on with the merge it recorded, and refuses a snapshot that does
// not cover what it merged already.
TEST_F(RemoteApplyTest, AMergeUnderWaySurvivesARestartAndRefusesAnOlderSnapshot) {
  std::vector<Change> merged;
  WriteAtEu({{"a", Set("x", "1")}, {"b", Set("x", "2")}});
  // An older copy of eu's documents: what eu held after its first two writes.
  const auto old_states = StatesOf(eu_store_);
  const auto old_position = eu_store_.Recover();
  ASSERT_TRUE(old_position.ok());
  WriteAtEu({{"b", Incr("y", 5)}, {"c", Set("x", "3")}});
  const auto states = StatesOf(eu_store_);
  const std::span<const std::pair<std::string, std::string>> all(states);

  FlakyStore store;
  {
    Region region(1, {{1, "us"}, {2, "eu"}}, &store, &clock_, core::Limits{}, 500);
    ASSERT_TRUE(region.Recover().ok());
    ASSERT_TRUE(region.MergeSnapshotPage(PageOf(all.first(2), "", "b", eu_store_), &merged).ok());
  }
  Region region(1, {{1, "us"}, {2, "eu"}}, &store, &clock_, core::Limits{}, 500);
  ASSERT_TRUE(region.Recover().ok());
  EXPECT_TRUE(region.merging());
  EXPECT_TRUE(region.ReseedsAtStart(false));
  // The older snapshot does not hold what "a" and "b" already do.
  const Region::SnapshotPage stale{old_states, "", std::nullopt, old_position->frontier,
                                   old_position->folded};
  EXPECT_EQ(region.MergeSnapshotPage(stale, &merged).code(), StatusCode::kUnavailable);
  // The same snapshot again from its start (a new call), to the end.
  ASSERT_TRUE(region.MergeSnapshotPage(PageOf(all, "", std::nullopt, eu_store_), &merged).ok());
  EXPECT_FALSE(region.merging());
  EXPECT_EQ(ViewsOf(store), ViewsOf(eu_store_));
  EXPECT_EQ(region.frontier(), eu_.frontier());
}

TEST_F(RemoteApplyTest, AFailedCommitAppliesNothing) {
  const auto events = WriteAtEu({{"k", Set("a", "1")}});
  us_store_.fail = true;
  std::vector<Change> changes;
  auto outcome = us_.ApplyRemoteEvents(events, &changes);
  EXPECT_EQ(outcome.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(us_.frontier().empty());
  EXPECT_TRUE(changes.empty());
  us_store_.fail = false;
  ASSERT_TRUE(us_.ApplyRemoteEvents(events, &changes).ok());
  EXPECT_EQ(*us_store_.GetView("k").value(), R"({"a":1})");
}

TEST_F(RemoteApplyTest, ARemoteBatchThatCannotBeReadFailsAloneNotTheLocalWrites) {
  const auto events = WriteAtEu({{"ok", Set("a", "1")}, {"bad", Set("b", "2")}});
  us_store_.unreadable = "bad";
  const RemoteEvents batches[] = {events};
  std::vector<Result<Receipt>> outcomes;
  std::vector<Result<RemoteApply>> remote;
  std::vector<Change> changes;
  us_.Commit(std::vector<WriteRequest>{{"mine", Set("c", "3")}}, &outcomes, batches, &remote,
             &changes);
  ASSERT_EQ(remote.size(), 1u);
  EXPECT_EQ(remote[0].status().code(), StatusCode::kUnavailable);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_TRUE(outcomes[0].ok()) << outcomes[0].status().ToString();
  EXPECT_EQ(us_.frontier(), (core::VersionVector{{1, 1}}));  // none of eu's batch
  EXPECT_FALSE(us_store_.GetView("ok").value().has_value());
  // Readable again: the batch applies whole.
  us_store_.unreadable.clear();
  auto again = us_.ApplyRemoteEvents(events, &changes);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->applied, 2u);
  EXPECT_EQ(*us_store_.GetView("ok").value(), R"({"a":1})");
}

TEST_F(RemoteApplyTest, ConcurrentSetsAreRecordedAsConflicts) {
  std::vector<Result<Receipt>> outcomes;
  std::vector<Change> changes;
  us_.CommitLocalWrites(std::vector<WriteRequest>{{"k", Set("price", "30")}}, &outcomes, &changes);
  clock_.now_ms += 5;  // eu writes later: its value wins everywhere
  const auto events = WriteAtEu({{"k", Set("price", "32")}});
  ASSERT_TRUE(us_.ApplyRemoteEvents(events, &changes).ok());
  EXPECT_EQ(*us_store_.GetView("k").value(), R"({"price":32})");
  const auto records = us_store_.RecentConflicts(10).value();
  ASSERT_EQ(records.size(), 1u);
  const auto record = nlohmann::json::parse(records[0]);
  EXPECT_EQ(record["kind"], "concurrent_set");
  EXPECT_EQ(record["winner"]["event"], "eu:1");
  EXPECT_EQ(record["losers"][0]["event"], "us:1");
}

TEST_F(RemoteApplyTest, TrimmingKeepsTheNewestChangesAndConflictRecords) {
  us_.SetLogBounds(/*changes_kept=*/3, /*conflicts_kept=*/2);
  std::vector<Result<Receipt>> outcomes;
  std::vector<Change> changes;
  for (int i = 0; i < 4; ++i) {  // one conflict each: 8 changes, 4 conflict records at us
    const std::string key = "k" + std::to_string(i);
    us_.CommitLocalWrites(std::vector<WriteRequest>{{key, Set("price", "30")}}, &outcomes,
                          &changes);
    clock_.now_ms += 5;
    ASSERT_TRUE(us_.ApplyRemoteEvents(WriteAtEu({{key, Set("price", "32")}}), &changes).ok());
  }
  ASSERT_EQ(us_store_.ConflictCount().value(), 4u);
  ASSERT_TRUE(us_.TrimLogs().ok());
  EXPECT_EQ(us_store_.Kept()->oldest_lsn, 6u);
  EXPECT_EQ(us_store_.Kept()->oldest_conflict, 3u);
  std::vector<uint64_t> lsns;
  ASSERT_TRUE(
      us_store_
          .ReadChanges(0, 100,
                       [&lsns](const storage::LoggedEvent& change) { lsns.push_back(change.lsn); })
          .ok());
  EXPECT_EQ(lsns, (std::vector<uint64_t>{6, 7, 8}));
  const auto records = us_store_.RecentConflicts(10).value();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(records[1])["key"], "k2");
  // Within the bounds, another pass trims nothing; a region without bounds keeps everything.
  ASSERT_TRUE(us_.TrimLogs().ok());
  EXPECT_EQ(us_store_.Kept()->oldest_lsn, 6u);
  ASSERT_TRUE(eu_.TrimLogs().ok());
  EXPECT_EQ(eu_store_.Kept()->oldest_lsn, 1u);
}

}  // namespace
}  // namespace meridian::node
