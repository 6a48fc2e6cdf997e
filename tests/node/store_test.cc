// The Store contract, run against both implementations.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>

#include "core/digest_tree.h"
#include "storage/memory_store.h"
#include "storage/rocksdb_store.h"
#include "support/temp_dir.h"

namespace meridian::storage {
namespace {

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    store_.reset();
    if (GetParam() == "memory") {
      if (!memory_) memory_ = NewMemoryStore();
      store_ptr_ = memory_.get();
    } else {
      auto opened = OpenRocksDbStore(RocksDbOptions{dir_.path() + "/db", /*sync=*/false, 8 << 20});
      ASSERT_TRUE(opened.ok()) << opened.status().ToString();
      store_ = std::move(opened).value();
      store_ptr_ = store_.get();
    }
  }

  Store& store() { return *store_ptr_; }

  static CommitBatch Batch(uint64_t lsn, const std::string& key,
                           std::optional<std::string> rendered) {
    CommitBatch batch;
    batch.events.push_back(
        LoggedEvent{core::Dot{1, lsn}, lsn, "event-" + std::to_string(lsn), rendered, key, lsn});
    batch.documents.push_back(DocumentWrite{key, rendered ? "state-of-" + key : "", rendered});
    batch.frontier = core::VersionVector{{1, lsn}};
    batch.hlc = core::MakeHlc(1000 + lsn, 0);
    batch.document_count = lsn;
    batch.digest = lsn * 7;
    return batch;
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> memory_;
  std::unique_ptr<Store> store_;
  Store* store_ptr_ = nullptr;
};

TEST_P(StoreTest, CommitThenReadBack) {
  ASSERT_TRUE(store().Commit(Batch(1, "a", R"({"x":1})")).ok());
  ASSERT_TRUE(store().Commit(Batch(2, "b", R"({"y":2})")).ok());
  EXPECT_EQ(*store().GetView("a").value(), R"({"x":1})");
  EXPECT_EQ(*store().GetDocumentState("b").value(), "state-of-b");
  EXPECT_FALSE(store().GetView("c").value().has_value());
  auto recovered = store().Recover();
  ASSERT_TRUE(recovered.ok());
  EXPECT_EQ(recovered->frontier, (core::VersionVector{{1, 2}}));
  EXPECT_EQ(recovered->last_lsn, 2u);
  EXPECT_EQ(recovered->hlc, core::MakeHlc(1002, 0));
  EXPECT_EQ(recovered->digest, 14u);
}

// The fold bound and a re-seed's progress are part of the position record: read back after a
// reopen, in a snapshot, and replaced by every commit.
TEST_P(StoreTest, TheFoldBoundAndReseedProgressComeBackWithThePosition) {
  CommitBatch batch = Batch(1, "a", R"({"x":1})");
  batch.folded = core::VersionVector{{1, 1}};
  batch.reseed = std::string("\x01layers\x00", 8);
  ASSERT_TRUE(store().Commit(batch).ok());
  Reopen();
  auto recovered = store().Recover();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_EQ(recovered->folded, (core::VersionVector{{1, 1}}));
  EXPECT_EQ(recovered->reseed, std::string("\x01layers\x00", 8));
  EXPECT_EQ(recovered->frontier, (core::VersionVector{{1, 1}}));
  auto snapshot = store().TakeSnapshot();
  ASSERT_TRUE(snapshot.ok());
  EXPECT_EQ((*snapshot)->position().folded, (core::VersionVector{{1, 1}}));
  ASSERT_TRUE(store().Commit(Batch(2, "b", R"({"y":2})")).ok());
  EXPECT_TRUE(store().Recover()->folded.empty());
  EXPECT_TRUE(store().Recover()->reseed.empty());
}

TEST_P(StoreTest, SurvivesReopen) {
  ASSERT_TRUE(store().Commit(Batch(1, "a", R"({"x":1})")).ok());
  Reopen();
  EXPECT_EQ(*store().GetView("a").value(), R"({"x":1})");
  EXPECT_EQ(store().Recover()->last_lsn, 1u);
  EXPECT_EQ(*store().LsnOf(core::Dot{1, 1}).value(), 1u);
}

TEST_P(StoreTest, DeleteRemovesViewAndState) {
  ASSERT_TRUE(store().Commit(Batch(1, "a", R"({"x":1})")).ok());
  ASSERT_TRUE(store().Commit(Batch(2, "a", std::nullopt)).ok());
  EXPECT_FALSE(store().GetView("a").value().has_value());
  EXPECT_FALSE(store().GetDocumentState("a").value().has_value());
  std::vector<std::optional<std::string>> docs;
  ASSERT_TRUE(
      store()
          .ReadChanges(0, 10, [&docs](const LoggedEvent& event) { docs.push_back(event.rendered); })
          .ok());
  EXPECT_EQ(docs, (std::vector<std::optional<std::string>>{R"({"x":1})", std::nullopt}));
}

TEST_P(StoreTest, ScanPagesInKeyOrderWithinThePrefix) {
  uint64_t lsn = 0;
  for (const char* key : {"b:2", "a:1", "b:1", "b:3", "c:1"}) {
    ASSERT_TRUE(store().Commit(Batch(++lsn, key, "{}")).ok());
  }
  std::vector<std::string> keys;
  auto visit = [&keys](std::string_view key, std::string_view) { keys.emplace_back(key); };
  auto more = store().ScanViews("b:", "", 2, visit);
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(*more);
  EXPECT_EQ(keys, (std::vector<std::string>{"b:1", "b:2"}));
  keys.clear();
  more = store().ScanViews("b:", "b:2", 2, visit);
  EXPECT_FALSE(*more);
  EXPECT_EQ(keys, (std::vector<std::string>{"b:3"}));
  keys.clear();
  more = store().ScanViews("", "", 100, visit);
  EXPECT_EQ(keys.size(), 5u);
}

TEST_P(StoreTest, ChangesAreReadInLsnOrderFromAnyPoint) {
  for (uint64_t lsn = 1; lsn <= 5; ++lsn) ASSERT_TRUE(store().Commit(Batch(lsn, "k", "{}")).ok());
  std::vector<uint64_t> seen;
  ASSERT_TRUE(store()
                  .ReadChanges(2, 2,
                               [&seen](const LoggedEvent& event) {
                                 seen.push_back(event.lsn);
                                 EXPECT_EQ(event.key, "k");
                                 EXPECT_EQ(event.hlc, event.lsn);
                                 EXPECT_EQ(event.dot, (core::Dot{1, event.lsn}));
                                 EXPECT_EQ(event.rendered,
                                           "{}");  // the document as the event left it
                               })
                  .ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{3, 4}));
  EXPECT_FALSE(store().LsnOf(core::Dot{2, 1}).value().has_value());
}

TEST_P(StoreTest, LogIsReadPerOriginInSeqOrder) {
  CommitBatch batch;
  uint64_t lsn = 0;
  for (core::RegionId origin : {2u, 1u, 3u}) {
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      batch.events.push_back(LoggedEvent{core::Dot{origin, seq}, ++lsn,
                                         "e" + std::to_string(origin) + "." + std::to_string(seq),
                                         std::nullopt, "k", seq});
    }
  }
  ASSERT_TRUE(store().Commit(batch).ok());
  std::vector<std::string> seen;
  ASSERT_TRUE(
      store()
          .ReadLog(1, 2, 10, [&seen](const LoggedEvent& event) { seen.push_back(event.bytes); })
          .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"e1.2", "e1.3"}));  // never another origin's
  seen.clear();
  ASSERT_TRUE(
      store()
          .ReadLog(2, 1, 2, [&seen](const LoggedEvent& event) { seen.push_back(event.bytes); })
          .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"e2.1", "e2.2"}));
  seen.clear();
  ASSERT_TRUE(store()
                  .ReadLogWhile(3, 1, 10,
                                [&seen](const LoggedEvent& event) {
                                  seen.push_back(event.bytes);
                                  return seen.size() < 2;  // stop after the second
                                })
                  .ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"e3.1", "e3.2"}));
  seen.clear();
  ASSERT_TRUE(
      store()
          .ReadLog(4, 1, 10, [&seen](const LoggedEvent& event) { seen.push_back(event.bytes); })
          .ok());
  EXPECT_TRUE(seen.empty());
}

TEST_P(StoreTest, TrimmedLogStartsLaterAndChangesStay) {
  CommitBatch batch;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    batch.events.push_back(LoggedEvent{core::Dot{1, seq}, seq, "e" + std::to_string(seq),
                                       std::nullopt, "k" + std::to_string(seq), seq});
    batch.events.push_back(
        LoggedEvent{core::Dot{2, seq}, 5 + seq, "f" + std::to_string(seq), std::nullopt, "j", seq});
  }
  ASSERT_TRUE(store().Commit(batch).ok());
  ASSERT_TRUE(store().TrimLog(1, 3).ok());
  std::vector<std::string> seen;
  const auto collect = [&seen](const LoggedEvent& event) { seen.push_back(event.bytes); };
  ASSERT_TRUE(store().ReadLog(1, 1, 10, collect).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"e4", "e5"}));
  seen.clear();
  ASSERT_TRUE(store().ReadLog(2, 1, 10, collect).ok());  // another origin: untouched
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_FALSE(store().LsnOf(core::Dot{1, 3}).value().has_value());
  // Watches still resume over the trimmed events: the change order keeps key and HLC.
  std::vector<std::string> keys;
  ASSERT_TRUE(
      store()
          .ReadChanges(0, 3, [&keys](const LoggedEvent& event) { keys.push_back(event.key); })
          .ok());
  EXPECT_EQ(keys, (std::vector<std::string>{"k1", "k2", "k3"}));
  EXPECT_TRUE(store().LogBytes().ok());
}

TEST_P(StoreTest, ConflictLogNewestFirst) {
  CommitBatch batch = Batch(1, "k", "{}");
  batch.conflicts = {"c1", "c2"};
  ASSERT_TRUE(store().Commit(batch).ok());
  batch = Batch(2, "k", "{}");
  batch.conflicts = {"c3"};
  batch.dead_letters = {"d1"};
  ASSERT_TRUE(store().Commit(batch).ok());
  EXPECT_EQ(store().RecentConflicts(2).value(), (std::vector<std::string>{"c3", "c2"}));
  EXPECT_EQ(store().ConflictCount().value(), 3u);
  EXPECT_EQ(store().DeadLetterCount().value(), 1u);
  Reopen();
  EXPECT_EQ(store().ConflictCount().value(), 3u);
}

// The lsns ReadChanges visits from the start.
std::vector<uint64_t> ChangeLsns(Store& store) {
  std::vector<uint64_t> lsns;
  EXPECT_TRUE(
      store.ReadChanges(0, 1000, [&lsns](const LoggedEvent& event) { lsns.push_back(event.lsn); })
          .ok());
  return lsns;
}

// The digest index lists the documents by bucket, written when they are created or removed; the
// records keep their digests; the journal of touched buckets lasts until the tree is saved, and
// the saved leaves come back; all of it survives a reopen and is cleared with the documents.
// Damage marks and the repair log likewise.
TEST_P(StoreTest, TheDigestIndexTreeMarksAndRepairLogComeBack) {
  const uint32_t bucket_a = core::DigestTree::BucketOf("a");
  const uint32_t bucket_b = core::DigestTree::BucketOf("b");
  CommitBatch batch = Batch(1, "a", R"({"x":1})");
  batch.documents[0].reindex = true;
  batch.documents[0].digest = 0x1111;
  batch.documents.push_back(DocumentWrite{"b", "state-of-b", R"({"y":2})", 0x2222, true});
  batch.touched = {std::min(bucket_a, bucket_b), std::max(bucket_a, bucket_b)};
  batch.marks.push_back(DamageMark{"b", "its record is missing"});
  batch.repairs = {R"({"key":"b","n":1})", R"({"key":"b","n":2})"};
  ASSERT_TRUE(store().Commit(batch).ok());
  Reopen();
  EXPECT_TRUE(store().Indexed("a").value());
  EXPECT_FALSE(store().Indexed("c").value());
  auto a = store().GetDocument("a").value();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->state, "state-of-a");
  EXPECT_EQ(a->view, std::optional<std::string>(R"({"x":1})"));
  EXPECT_EQ(a->digest, 0x1111u);
  EXPECT_FALSE(store().GetDocument("c").value().has_value());
  std::vector<std::string> members;
  ASSERT_TRUE(
      store().ScanBucket(bucket_b, [&](std::string_view key) { members.emplace_back(key); }).ok());
  EXPECT_NE(std::find(members.begin(), members.end(), "b"), members.end());
  SavedTree tree = store().LoadTree().value();
  ASSERT_EQ(tree.leaves.size(), core::DigestTree::kBuckets);
  EXPECT_EQ(std::count(tree.leaves.begin(), tree.leaves.end(), 0u),
            static_cast<long>(core::DigestTree::kBuckets));  // never saved
  EXPECT_EQ(tree.stale, batch.touched);

  // Saved: the journal empties and the leaves come back.
  std::vector<uint64_t> leaves(core::DigestTree::kBuckets, 0);
  leaves[bucket_a] ^= 0x1111;
  leaves[bucket_b] ^= 0x2222;
  const uint32_t chunks[] = {bucket_a / Store::kTreeChunk, bucket_b / Store::kTreeChunk};
  ASSERT_TRUE(store().SaveTree(leaves, chunks).ok());
  Reopen();
  tree = store().LoadTree().value();
  EXPECT_EQ(tree.leaves, leaves);
  EXPECT_TRUE(tree.stale.empty());
  const auto marks = store().DamageMarks(10).value();
  ASSERT_EQ(marks.size(), 1u);
  EXPECT_EQ(marks[0].key, "b");
  EXPECT_EQ(marks[0].reason, "its record is missing");
  EXPECT_EQ(store().RecentRepairs(1).value(), std::vector<std::string>{R"({"key":"b","n":2})"});
  EXPECT_EQ(store().RepairCount().value(), 2u);

  // A document that only changes rewrites its record (and digest), not the index; a removal
  // leaves the index; an empty reason removes a mark; the next journal record is read back.
  CommitBatch next = Batch(2, "b", R"({"y":3})");
  next.documents[0].digest = 0x3333;
  next.documents.push_back(DocumentWrite{"a", "", std::nullopt, 0, true});
  next.touched = {bucket_a};
  next.marks.push_back(DamageMark{"b", ""});
  ASSERT_TRUE(store().Commit(next).ok());
  Reopen();
  EXPECT_FALSE(store().Indexed("a").value());
  EXPECT_TRUE(store().Indexed("b").value());
  EXPECT_EQ(store().GetDocument("b").value()->digest, 0x3333u);
  EXPECT_EQ(store().LoadTree().value().stale, std::vector<uint32_t>{bucket_a});
  EXPECT_TRUE(store().DamageMarks(10).value().empty());
  ASSERT_TRUE(store().ClearDocuments().ok());
  EXPECT_FALSE(store().Indexed("b").value());
  tree = store().LoadTree().value();
  EXPECT_EQ(std::count(tree.leaves.begin(), tree.leaves.end(), 0u),
            static_cast<long>(core::DigestTree::kBuckets));
  EXPECT_TRUE(tree.stale.empty());
  // PutMembers (a rebuild of the index) adds entries outside a commit.
  const std::string rebuilt[] = {"z"};
  ASSERT_TRUE(store().PutMembers(rebuilt).ok());
  EXPECT_TRUE(store().Indexed("z").value());
  ASSERT_TRUE(store().ClearDigests().ok());
  EXPECT_FALSE(store().Indexed("z").value());
}

// The repair log keeps its newest records only.
TEST_P(StoreTest, TheRepairLogIsBounded) {
  const uint64_t total = Store::kRepairsKept + 5;
  CommitBatch batch = Batch(1, "a", R"({"x":1})");
  for (uint64_t i = 1; i <= total; ++i) batch.repairs.push_back(std::to_string(i));
  ASSERT_TRUE(store().Commit(batch).ok());
  Reopen();
  EXPECT_EQ(store().RepairCount().value(), total);
  const auto kept = store().RecentRepairs(Store::kRepairsKept + 100).value();
  ASSERT_EQ(kept.size(), Store::kRepairsKept);
  EXPECT_EQ(kept.front(), std::to_string(total));
  EXPECT_EQ(kept.back(), std::to_string(total - Store::kRepairsKept + 1));
}

// Dead letters: appended with the next ids, replaced by id (a status change), listed newest
// first, scanned in id order, all durable; a replacement of an id never appended refuses the
// whole commit.
TEST_P(StoreTest, DeadLettersAreAppendedReplacedAndReadBack) {
  CommitBatch batch = Batch(1, "k", "{}");
  batch.dead_letters = {"d1", "d2"};
  ASSERT_TRUE(store().Commit(batch).ok());
  batch = Batch(2, "k", "{}");
  batch.dead_letters = {"d3"};
  batch.dead_letter_updates = {{1, "d1 applied"}};
  ASSERT_TRUE(store().Commit(batch).ok());
  EXPECT_EQ(store().DeadLetterCount().value(), 3u);
  EXPECT_EQ(store().GetDeadLetter(1).value(), std::optional<std::string>("d1 applied"));
  EXPECT_EQ(store().GetDeadLetter(3).value(), std::optional<std::string>("d3"));
  EXPECT_FALSE(store().GetDeadLetter(4).value().has_value());
  EXPECT_FALSE(store().GetDeadLetter(0).value().has_value());
  using Records = std::vector<std::pair<uint64_t, std::string>>;
  EXPECT_EQ(store().RecentDeadLetters(2).value(), (Records{{3, "d3"}, {2, "d2"}}));

  batch = Batch(3, "k", "{}");
  batch.dead_letter_updates = {{4, "never appended"}};
  EXPECT_EQ(store().Commit(batch).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store().Recover()->last_lsn, 2u);  // nothing of the refused batch

  Reopen();
  EXPECT_EQ(store().DeadLetterCount().value(), 3u);
  Records scanned;
  const auto collect = [&scanned](uint64_t id, std::string_view record) {
    scanned.emplace_back(id, std::string(record));
  };
  EXPECT_TRUE(store().ScanDeadLetters(0, 2, collect).value());  // more remain
  EXPECT_EQ(scanned, (Records{{1, "d1 applied"}, {2, "d2"}}));
  scanned.clear();
  EXPECT_FALSE(store().ScanDeadLetters(2, 10, collect).value());
  EXPECT_EQ(scanned, (Records{{3, "d3"}}));
  EXPECT_EQ(store().RecentDeadLetters(10)->size(), 3u);
}

// A parked event goes into the event log (relayed from there) with the lsn it is given, and
// adds no change.
TEST_P(StoreTest, ParkedEventsAreLoggedWithoutAChange) {
  CommitBatch batch = Batch(1, "k", "{}");
  batch.parked.push_back(LoggedEvent{core::Dot{2, 7}, 1, "raw", std::nullopt, "k", 5});
  ASSERT_TRUE(store().Commit(batch).ok());
  std::vector<std::string> logged;
  ASSERT_TRUE(
      store()
          .ReadLog(2, 1, 10, [&logged](const LoggedEvent& event) { logged.push_back(event.bytes); })
          .ok());
  EXPECT_EQ(logged, (std::vector<std::string>{"raw"}));
  EXPECT_EQ(store().LsnOf(core::Dot{2, 7}).value(), std::optional<uint64_t>(1));
  EXPECT_EQ(ChangeLsns(store()), (std::vector<uint64_t>{1}));  // only the event's
  EXPECT_EQ(store().Recover()->last_lsn, 1u);
}

TEST_P(StoreTest, TrimmedChangesAreGoneAndTheNewStartIsDurable) {
  EXPECT_EQ(store().Kept()->oldest_lsn, 1u);
  for (uint64_t lsn = 1; lsn <= 6; ++lsn) ASSERT_TRUE(store().Commit(Batch(lsn, "k", "{}")).ok());
  ASSERT_TRUE(store().TrimChanges(4).ok());
  EXPECT_EQ(ChangeLsns(store()), (std::vector<uint64_t>{4, 5, 6}));
  EXPECT_EQ(store().Kept()->oldest_lsn, 4u);
  EXPECT_EQ(store().LsnOf(core::Dot{1, 2}).value(), 2u) << "the event log is not trimmed";
  ASSERT_TRUE(store().TrimChanges(2).ok()) << "below the start: nothing to do";
  EXPECT_EQ(store().Kept()->oldest_lsn, 4u);
  const Status past_the_end = store().TrimChanges(8);
  EXPECT_EQ(past_the_end.code(), StatusCode::kInvalidArgument) << past_the_end.ToString();
  EXPECT_EQ(store().Kept()->oldest_lsn, 4u);

  // Commits and trims interleave (in RocksDB, in one memtable, where a range deletion inserted
  // with the commits' insert hint aborts the process): each read sees exactly the changes from
  // the start on.
  for (uint64_t lsn = 7; lsn <= 9; ++lsn) ASSERT_TRUE(store().Commit(Batch(lsn, "k", "{}")).ok());
  ASSERT_TRUE(store().TrimChanges(6).ok());
  ASSERT_TRUE(store().Commit(Batch(10, "k", "{}")).ok());
  EXPECT_EQ(ChangeLsns(store()), (std::vector<uint64_t>{6, 7, 8, 9, 10}));
  Reopen();
  EXPECT_EQ(store().Kept()->oldest_lsn, 6u);
  EXPECT_EQ(ChangeLsns(store()), (std::vector<uint64_t>{6, 7, 8, 9, 10}));
  ASSERT_TRUE(store().TrimChanges(11).ok()) << "up to the last lsn + 1: every change";
  EXPECT_TRUE(ChangeLsns(store()).empty());
  ASSERT_TRUE(store().Commit(Batch(11, "k", "{}")).ok());
  EXPECT_EQ(ChangeLsns(store()), (std::vector<uint64_t>{11}));
  EXPECT_EQ(store().Recover()->last_lsn, 11u);
}

TEST_P(StoreTest, TrimmedConflictsAreGoneButStillCounted) {
  EXPECT_EQ(store().Kept()->oldest_conflict, 1u);
  CommitBatch batch = Batch(1, "k", "{}");
  batch.conflicts = {"c1", "c2", "c3", "c4"};
  ASSERT_TRUE(store().Commit(batch).ok());
  ASSERT_TRUE(store().TrimConflicts(3).ok());
  EXPECT_EQ(store().RecentConflicts(10).value(), (std::vector<std::string>{"c4", "c3"}));
  EXPECT_EQ(store().ConflictCount().value(), 4u);
  EXPECT_EQ(store().Kept()->oldest_conflict, 3u);
  EXPECT_EQ(store().TrimConflicts(6).code(), StatusCode::kInvalidArgument);
  batch = Batch(2, "k", "{}");
  batch.conflicts = {"c5"};
  ASSERT_TRUE(store().Commit(batch).ok());
  Reopen();
  EXPECT_EQ(store().Kept()->oldest_conflict, 3u);
  EXPECT_EQ(store().RecentConflicts(10).value(), (std::vector<std::string>{"c5", "c4", "c3"}));
  // Every record trimmed: the count, and the sequence of the next record, go on after a reopen.
  ASSERT_TRUE(store().TrimConflicts(6).ok());
  EXPECT_TRUE(store().RecentConflicts(10).value().empty());
  Reopen();
  EXPECT_EQ(store().ConflictCount().value(), 5u);
  EXPECT_EQ(store().Kept()->oldest_conflict, 6u);
  batch = Batch(3, "k", "{}");
  batch.conflicts = {"c6"};
  ASSERT_TRUE(store().Commit(batch).ok());
  EXPECT_EQ(store().RecentConflicts(10).value(), (std::vector<std::string>{"c6"}));
  EXPECT_EQ(store().ConflictCount().value(), 6u);
}

TEST_P(StoreTest, DocumentStatesAreScannedInKeyOrderIncludingDeletedOnes) {
  ASSERT_TRUE(store().Commit(Batch(1, "b", R"({"x":1})")).ok());
  ASSERT_TRUE(store().Commit(Batch(2, "a", std::nullopt)).ok());  // nothing stored
  CommitBatch deleted = Batch(3, "c", std::nullopt);
  deleted.documents[0].state = "state-of-deleted-c";  // a tombstone: state, no view
  ASSERT_TRUE(store().Commit(deleted).ok());
  ASSERT_TRUE(store().Commit(Batch(4, "d", R"({"y":2})")).ok());
  std::vector<std::pair<std::string, std::string>> seen;
  auto visit = [&](std::string_view key, std::string_view state) { seen.emplace_back(key, state); };
  auto more = store().ScanDocumentStates("", 2, visit);
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(*more);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], (std::pair<std::string, std::string>{"b", "state-of-b"}));
  EXPECT_EQ(seen[1], (std::pair<std::string, std::string>{"c", "state-of-deleted-c"}));
  seen.clear();
  more = store().ScanDocumentStates("c", 10, visit);
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(*more);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first, "d");
}

// A snapshot keeps showing the documents and the frontier of its moment while commits go on, and
// ClearDocuments removes every document but not the logs.
TEST_P(StoreTest, ASnapshotIsConsistentAndClearDocumentsRemovesOnlyDocuments) {
  ASSERT_TRUE(store().Commit(Batch(1, "a", R"({"x":1})")).ok());
  ASSERT_TRUE(store().Commit(Batch(2, "b", R"({"y":2})")).ok());
  auto snapshot = store().TakeSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status().ToString();
  CommitBatch later = Batch(3, "c", R"({"z":3})");
  later.documents.push_back(DocumentWrite{"a", "", std::nullopt});  // a removed
  ASSERT_TRUE(store().Commit(later).ok());
  EXPECT_EQ((*snapshot)->position().frontier, (core::VersionVector{{1, 2}}));
  EXPECT_EQ((*snapshot)->position().hlc, core::MakeHlc(1002, 0));
  EXPECT_EQ((*snapshot)->position().documents, 2u);
  std::vector<std::string> keys;
  auto more = (*snapshot)->ScanDocumentStates(
      "", 10, [&](std::string_view key, std::string_view) { keys.emplace_back(key); });
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(*more);
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b"}));
  snapshot->reset();

  ASSERT_TRUE(store().ClearDocuments().ok());
  EXPECT_FALSE(store().GetView("b").value().has_value());
  EXPECT_FALSE(store().GetDocumentState("c").value().has_value());
  keys.clear();
  ASSERT_TRUE(
      store()
          .ScanDocumentStates(
              "", 10, [&](std::string_view key, std::string_view) { keys.emplace_back(key); })
          .ok());
  EXPECT_TRUE(keys.empty());
  EXPECT_TRUE(store().LsnOf(core::Dot{1, 3}).value().has_value());  // the log stays
}

TEST_P(StoreTest, IdempotencyRecordsByKeyAndExpiryByTime) {
  CommitBatch batch = Batch(1, "k", "{}");
  batch.idempotency = {{"late", 300, "r-late"}, {"early", 100, "r-early"}, {"mid", 200, "r-mid"}};
  ASSERT_TRUE(store().Commit(batch).ok());
  auto found = store().GetIdempotency("mid").value();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->time_ms, 200u);
  EXPECT_EQ(found->record, "r-mid");
  EXPECT_FALSE(store().GetIdempotency("other").value().has_value());
  Reopen();
  ASSERT_TRUE(store().GetIdempotency("late").value().has_value());
  // Oldest first, only those written before the bound.
  auto expired = store().ExpiredIdempotency(250, 10).value();
  ASSERT_EQ(expired.size(), 2u);
  EXPECT_EQ(expired[0].key, "early");
  EXPECT_EQ(expired[1].key, "mid");
  EXPECT_EQ(store().ExpiredIdempotency(250, 1).value().size(), 1u);
  // "mid" is written again (a new write after its record expired) in the batch that expires the
  // old entries: the new record stays, the old one of "early" goes.
  batch = Batch(2, "k", "{}");
  batch.idempotency_expired = expired;
  batch.idempotency = {{"mid", 400, "r-mid-2"}};
  ASSERT_TRUE(store().Commit(batch).ok());
  EXPECT_FALSE(store().GetIdempotency("early").value().has_value());
  EXPECT_EQ(store().GetIdempotency("mid").value()->record, "r-mid-2");
  auto left = store().ExpiredIdempotency(1000, 10).value();
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].key, "late");
  EXPECT_EQ(left[1].key, "mid");
  EXPECT_EQ(left[1].time_ms, 400u);
  // An expiry that lost the race with a newer record of its key leaves the newer record.
  batch = Batch(3, "k", "{}");
  batch.idempotency_expired = {{"mid", 200, ""}};
  ASSERT_TRUE(store().Commit(batch).ok());
  EXPECT_EQ(store().GetIdempotency("mid").value()->record, "r-mid-2");
}

// The unique-id reservation: none at first, then the last one saved, after a reopen too, and
// untouched by commits (which rewrite the position record beside it).
TEST_P(StoreTest, TheIdReservationIsTheLastSavedAndSurvivesReopen) {
  EXPECT_EQ(store().IdReservation().value(), 0u);
  ASSERT_TRUE(store().SaveIdReservation(5'000).ok());
  ASSERT_TRUE(store().SaveIdReservation(12'345'678'901).ok());
  ASSERT_TRUE(store().Commit(Batch(1, "a", "{}")).ok());
  EXPECT_EQ(store().IdReservation().value(), 12'345'678'901u);
  Reopen();
  EXPECT_EQ(store().IdReservation().value(), 12'345'678'901u);
  if (GetParam() == "memory") {  // a copy (a backup) holds it too
    EXPECT_EQ(CopyMemoryStore(store())->IdReservation().value(), 12'345'678'901u);
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, ::testing::Values("memory", "rocksdb"));

TEST(RocksDbStoreTest, ReportsAnUnopenablePath) {
  auto opened = OpenRocksDbStore(RocksDbOptions{"/proc/meridian-cannot-be-here", true, 1 << 20});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace meridian::storage
