#include "storage/rocksdb_store.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "core/check.h"
#include "core/digest_tree.h"
#include "core/document.h"
#include "storage/keys.h"

namespace meridian::storage {
namespace {

// The node's position after the last commit: hlc, last lsn, document count, digest (each 8 bytes,
// big-endian), then the frontier (compact version vector); then, when anything follows (records
// written before they existed end after the frontier), the fold bound (compact version vector) and
// the re-seed progress (the rest of the record).
constexpr const char* kMetaPosition = "position";
// Where the trimmed logs start (KeptLogs): the oldest lsn and the oldest conflict sequence number
// kept, each 8 bytes, big-endian. Absent until the first trim.
constexpr const char* kMetaKept = "kept";
// The unique-id reservation (Store::IdReservation): 8 bytes, big-endian. Absent until the first
// id is issued.
constexpr const char* kMetaIds = "ids";

std::string EncodeKept(const KeptLogs& kept) {
  std::string value;
  PutBigEndian64(&value, kept.oldest_lsn);
  PutBigEndian64(&value, kept.oldest_conflict);
  return value;
}

enum Family {
  kMeta = 0,
  kLog,
  kChanges,
  kDocs,
  kConflicts,
  kDeadLetters,
  kIdempotency,
  kDigests,
  kRepairs,
  kTree,
  kFamilies
};
const char* const kFamilyNames[kFamilies] = {"default",   "log",          "changes",     "docs",
                                             "conflicts", "dead_letters", "idempotency", "digests",
                                             "repairs",   "tree"};

// Damage marks live in the default family: "damaged/" + key -> the reason.
constexpr std::string_view kMarkPrefix = "damaged/";

// The digest tree's saved leaves, in the tree family: "l" + chunk (2 bytes, big-endian) ->
// Store::kTreeChunk leaves (8 bytes each, big-endian); and its journal: "t" + sequence (8 bytes,
// big-endian) -> the buckets one commit touched (2 bytes each, big-endian).
std::string TreeLeavesKey(uint32_t chunk) {
  std::string out = "l";
  PutBigEndian16(&out, chunk);
  return out;
}
std::string TreeTouchedKey(uint64_t sequence) {
  std::string out = "t";
  PutBigEndian64(&out, sequence);
  return out;
}

// The digest index: bucket (2 bytes, big-endian) + document key -> empty (a directory written
// before the digests moved into the records holds the digest here: ignored).
std::string BucketPrefix(uint32_t bucket) {
  std::string out;
  PutBigEndian16(&out, bucket);
  return out;
}
std::string DigestKey(std::string_view key) {
  std::string out = BucketPrefix(core::DigestTree::BucketOf(key));
  out += key;
  return out;
}

// The idempotency family holds two kinds of entries: 'k' + key -> time (8 bytes, big-endian) and
// the node's record; 't' + time + key -> empty, the index that expiry walks oldest first.
std::string IdempotencyKey(std::string_view key) {
  std::string out(1, 'k');
  out += key;
  return out;
}
std::string IdempotencyTimeKey(uint64_t time_ms, std::string_view key) {
  std::string out(1, 't');
  PutBigEndian64(&out, time_ms);
  out += key;
  return out;
}

// A document record (docs family): varint length of the state, the state, then, when the
// document exists, a byte 2, its digest (8 bytes, big-endian) and the rendered view, or else a
// byte 0. One record, one memtable insert. (A byte 1 and the view, with no digest, is how records
// were written before: the digest is then computed from the view.)
std::string EncodeDocument(const DocumentWrite& document) {
  std::string record;
  record.reserve(document.state.size() + (document.rendered ? document.rendered->size() : 0) + 16);
  core::PutVarint(&record, document.state.size());
  record += document.state;
  record.push_back(document.rendered ? 2 : 0);
  if (document.rendered) {
    PutBigEndian64(&record, document.digest);
    record += *document.rendered;
  }
  return record;
}

struct DocumentRecord {
  std::string_view state;
  std::optional<std::string_view> view;
  std::optional<uint64_t> digest;  // nullopt: a record of the older form (byte 1)
};

Status DecodePosition(std::string_view in, RecoveredState* state) {
  if (in.size() < 32) return Status(StatusCode::kCorruption, "meta position record is truncated");
  state->hlc = GetBigEndian64(in.substr(0, 8));
  state->last_lsn = GetBigEndian64(in.substr(8, 8));
  state->documents = GetBigEndian64(in.substr(16, 8));
  state->digest = GetBigEndian64(in.substr(24, 8));
  in.remove_prefix(32);
  auto frontier = core::VersionVector::DecodeFrom(&in);
  if (!frontier.ok()) return frontier.status();
  state->frontier = std::move(frontier).value();
  if (in.empty()) return Status::Ok();
  auto folded = core::VersionVector::DecodeFrom(&in);
  if (!folded.ok()) return folded.status();
  state->folded = std::move(folded).value();
  state->reseed = std::string(in);
  return Status::Ok();
}

bool DecodeDocument(std::string_view in, DocumentRecord* record) {
  uint64_t size = 0;
  if (!core::GetVarint(&in, &size) || size >= in.size()) return false;
  record->state = in.substr(0, size);
  in.remove_prefix(size);
  const char flag = in.front();
  in.remove_prefix(1);
  if (flag == 2) {
    if (in.size() < 8) return false;
    record->digest = GetBigEndian64(in.substr(0, 8));
    record->view = in.substr(8);
  } else if (flag == 1) {
    record->view = in;
  } else if (flag != 0 || !in.empty()) {
    return false;
  }
  return true;
}

Status FromRocks(const rocksdb::Status& status, const char* what) {
  if (status.ok()) return Status::Ok();
  if (status.IsCorruption()) return Corruption(std::string(what) + ": " + status.ToString());
  return Status(StatusCode::kUnavailable, std::string(what) + ": " + status.ToString());
}

// Visits up to `limit` document states after `after`, in key order, from `it` (over `docs`).
Result<bool> ScanStates(rocksdb::Iterator* it, std::string_view after, size_t limit,
                        const std::function<void(std::string_view, std::string_view)>& visit) {
  it->Seek(rocksdb::Slice(after.data(), after.size()));
  if (it->Valid() && it->key().ToStringView() == after) it->Next();
  size_t count = 0;
  for (; it->Valid(); it->Next()) {
    DocumentRecord record;
    if (!DecodeDocument(it->value().ToStringView(), &record))
      return Corruption("document record of " + std::string(it->key().ToStringView()));
    if (count == limit) return true;
    visit(it->key().ToStringView(), record.state);
    ++count;
  }
  if (Status status = FromRocks(it->status(), "scan states"); !status.ok()) return status;
  return false;
}

class Snapshot final : public StoreSnapshot {
 public:
  Snapshot(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* docs, rocksdb::ColumnFamilyHandle* meta)
      : db_(db), docs_(docs), meta_(meta), snapshot_(db->GetSnapshot()) {}
  ~Snapshot() override { db_->ReleaseSnapshot(snapshot_); }
  const rocksdb::Snapshot* handle() const { return snapshot_; }
  void Set(RecoveredState position) { position_ = std::move(position); }
  const RecoveredState& position() const override { return position_; }
  Result<bool> Damaged(std::string_view key) override {
    rocksdb::ReadOptions options;
    options.snapshot = snapshot_;
    std::string value;
    const std::string mark = std::string(kMarkPrefix) + std::string(key);
    rocksdb::Status status = db_->Get(options, meta_, mark, &value);
    if (status.IsNotFound()) return false;
    if (!status.ok()) return FromRocks(status, "snapshot mark");
    return true;
  }
  Result<bool> ScanDocumentStates(
      std::string_view after, size_t limit,
      const std::function<void(std::string_view, std::string_view)>& visit) override {
    rocksdb::ReadOptions options;
    options.snapshot = snapshot_;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options, docs_));
    return ScanStates(it.get(), after, limit, visit);
  }

 private:
  rocksdb::DB* const db_;
  rocksdb::ColumnFamilyHandle* const docs_;
  rocksdb::ColumnFamilyHandle* const meta_;
  const rocksdb::Snapshot* const snapshot_;
  RecoveredState position_;
};

class RocksDbStore final : public Store {
 public:
  RocksDbStore(std::unique_ptr<rocksdb::DB> db, std::vector<rocksdb::ColumnFamilyHandle*> families,
               bool sync)
      : db_(std::move(db)), families_(std::move(families)) {
    write_options_.sync = sync;
  }

  ~RocksDbStore() override {
    for (rocksdb::ColumnFamilyHandle* family : families_) {
      (void)db_->DestroyColumnFamilyHandle(family);
    }
    (void)db_->Close();
  }

  Status Init() {
    auto kept = Get(kMeta, kMetaKept);
    if (!kept.ok()) return kept.status();
    if (kept->has_value()) {
      if ((*kept)->size() != 16) return Corruption("meta kept record is not 16 bytes");
      kept_.oldest_lsn = GetBigEndian64(**kept);
      kept_.oldest_conflict = GetBigEndian64(std::string_view(**kept).substr(8));
    }
    for (Family family : {kConflicts, kDeadLetters, kRepairs}) {
      std::unique_ptr<rocksdb::Iterator> it(
          db_->NewIterator(rocksdb::ReadOptions(), families_[family]));
      it->SeekToLast();
      uint64_t last = it->Valid() ? GetBigEndian64(it->key().ToStringView()) : 0;
      if (family == kConflicts) last = std::max(last, kept_.oldest_conflict - 1);
      (family == kConflicts     ? conflict_seq_
       : family == kDeadLetters ? dead_letter_seq_
                                : repair_seq_)
          .store(last);
      if (Status status = FromRocks(it->status(), "scan"); !status.ok()) return status;
    }
    {
      std::unique_ptr<rocksdb::Iterator> it(
          db_->NewIterator(rocksdb::ReadOptions(), families_[kTree]));
      it->SeekForPrev(TreeTouchedKey(~uint64_t{0}));
      if (it->Valid() && it->key().starts_with("t") && it->key().size() == 9) {
        tree_seq_ = GetBigEndian64(it->key().ToStringView().substr(1));
      }
      if (Status status = FromRocks(it->status(), "scan"); !status.ok()) return status;
    }
    // The last lsn bounds TrimChanges before the node asks for it.
    auto recovered = Recover();
    return recovered.ok() ? Status::Ok() : recovered.status();
  }

  Status Commit(const CommitBatch& batch) override {
    std::lock_guard lock(commit_mutex_);
    for (const auto& [id, record] : batch.dead_letter_updates) {
      if (id == 0 || id > dead_letter_seq_.load()) return UnknownDeadLetter(id);
    }
    rocksdb::WriteBatch write;
    uint64_t last_lsn = last_lsn_;
    const auto put_change = [&](const LoggedEvent& event) {
      std::string change(1, static_cast<char>(event.dot.origin));
      core::PutVarint(&change, event.dot.seq);
      core::PutVarint(&change, event.hlc);
      core::PutVarint(&change, event.key.size());
      change += event.key;
      change.push_back(event.rendered ? 1 : 0);
      if (event.rendered) change += *event.rendered;
      write.Put(families_[kChanges], SequenceKey(event.lsn), change);
      last_lsn = std::max(last_lsn, event.lsn);
    };
    for (const LoggedEvent& event : batch.events) {
      std::string value;
      core::PutVarint(&value, event.lsn);
      value += event.bytes;
      write.Put(families_[kLog], LogKey(event.dot), value);
      put_change(event);
    }
    for (const LoggedEvent& change : batch.changes) put_change(change);
    for (const LoggedEvent& event : batch.parked) {
      std::string value;
      core::PutVarint(&value, event.lsn);
      value += event.bytes;
      write.Put(families_[kLog], LogKey(event.dot), value);
    }
    for (const DocumentWrite& document : batch.documents) {
      if (document.state.empty()) {
        write.Delete(families_[kDocs], document.key);
      } else {
        write.Put(families_[kDocs], document.key, EncodeDocument(document));
      }
      if (document.reindex) {
        if (document.rendered) {
          write.Put(families_[kDigests], DigestKey(document.key), "");
        } else {
          write.Delete(families_[kDigests], DigestKey(document.key));
        }
      }
    }
    uint64_t tree_seq = tree_seq_;
    if (!batch.touched.empty()) {
      std::string buckets;
      buckets.reserve(2 * batch.touched.size());
      for (uint32_t bucket : batch.touched) PutBigEndian16(&buckets, bucket);
      write.Put(families_[kTree], TreeTouchedKey(++tree_seq), buckets);
    }
    for (const DamageMark& mark : batch.marks) {
      const std::string key = std::string(kMarkPrefix) + mark.key;
      if (mark.reason.empty()) {
        write.Delete(families_[kMeta], key);
      } else {
        write.Put(families_[kMeta], key, mark.reason);
      }
    }
    uint64_t repair_seq = repair_seq_.load();
    for (const std::string& record : batch.repairs) {
      write.Put(families_[kRepairs], SequenceKey(++repair_seq), record);
    }
    if (repair_seq > kRepairsKept && repair_seq != repair_seq_.load()) {
      write.DeleteRange(families_[kRepairs], "", SequenceKey(repair_seq - kRepairsKept + 1));
    }
    uint64_t conflict_seq = conflict_seq_.load();
    for (const std::string& record : batch.conflicts) {
      write.Put(families_[kConflicts], SequenceKey(++conflict_seq), record);
    }
    uint64_t dead_letter_seq = dead_letter_seq_.load();
    for (const std::string& record : batch.dead_letters) {
      write.Put(families_[kDeadLetters], SequenceKey(++dead_letter_seq), record);
    }
    for (const auto& [id, record] : batch.dead_letter_updates) {
      write.Put(families_[kDeadLetters], SequenceKey(id), record);
    }
    for (const IdempotencyRecord& expired : batch.idempotency_expired) {
      write.Delete(families_[kIdempotency], IdempotencyTimeKey(expired.time_ms, expired.key));
      auto current = GetIdempotency(expired.key);
      if (!current.ok()) return current.status();
      if (current->has_value() && (*current)->time_ms == expired.time_ms) {
        write.Delete(families_[kIdempotency], IdempotencyKey(expired.key));
      }
    }
    for (const IdempotencyRecord& record : batch.idempotency) {
      std::string value;
      PutBigEndian64(&value, record.time_ms);
      value += record.record;
      write.Put(families_[kIdempotency], IdempotencyKey(record.key), value);
      write.Put(families_[kIdempotency], IdempotencyTimeKey(record.time_ms, record.key), "");
    }
    // One record for the node's position: one memtable insert per commit.
    std::string meta;
    PutBigEndian64(&meta, batch.hlc);
    PutBigEndian64(&meta, last_lsn);
    PutBigEndian64(&meta, batch.document_count);
    PutBigEndian64(&meta, batch.digest);
    batch.frontier.EncodeTo(&meta);
    batch.folded.EncodeTo(&meta);
    meta += batch.reseed;
    write.Put(families_[kMeta], kMetaPosition, meta);
    Status status = FromRocks(db_->Write(write_options_, &write), "commit");
    if (status.ok()) {
      last_lsn_ = last_lsn;
      conflict_seq_.store(conflict_seq);
      dead_letter_seq_.store(dead_letter_seq);
      repair_seq_.store(repair_seq);
      tree_seq_ = tree_seq;
    }
    return status;
  }

  Result<RecoveredState> Recover() override {
    RecoveredState state;
    std::string value;
    rocksdb::Status status =
        db_->Get(rocksdb::ReadOptions(), families_[kMeta], kMetaPosition, &value);
    if (status.IsNotFound()) return state;  // a store that never committed
    if (!status.ok()) return FromRocks(status, "recover");
    if (Status decoded = DecodePosition(value, &state); !decoded.ok()) return decoded;
    last_lsn_ = state.last_lsn;
    return state;
  }

  Result<std::unique_ptr<StoreSnapshot>> TakeSnapshot() override {
    auto snapshot = std::make_unique<Snapshot>(db_.get(), families_[kDocs], families_[kMeta]);
    rocksdb::ReadOptions options;
    options.snapshot = snapshot->handle();
    std::string value;
    rocksdb::Status status = db_->Get(options, families_[kMeta], kMetaPosition, &value);
    if (status.IsNotFound()) return std::unique_ptr<StoreSnapshot>(std::move(snapshot));
    if (!status.ok()) return FromRocks(status, "snapshot");
    RecoveredState position;
    if (Status decoded = DecodePosition(value, &position); !decoded.ok()) return decoded;
    snapshot->Set(std::move(position));
    return std::unique_ptr<StoreSnapshot>(std::move(snapshot));
  }

  Status ClearDocuments() override {
    // Keys are UTF-8, which never holds the byte 0xff: the range covers every key.
    if (Status status = FromRocks(db_->DeleteRange(write_options_, families_[kDocs], "", "\xff"),
                                  "clear documents");
        !status.ok()) {
      return status;
    }
    return ClearDigests();
  }

  Result<std::optional<std::string>> GetDocumentState(std::string_view key) override {
    return GetDocumentPart(key, /*view=*/false);
  }
  Result<std::optional<std::string>> GetView(std::string_view key) override {
    return GetDocumentPart(key, /*view=*/true);
  }

  Result<bool> ScanViews(
      std::string_view prefix, std::string_view after, size_t limit,
      const std::function<void(std::string_view, std::string_view)>& visit) override {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kDocs]));
    if (!after.empty() && after >= prefix) {
      it->Seek(rocksdb::Slice(after.data(), after.size()));
      if (it->Valid() && it->key().ToStringView() == after) it->Next();
    } else {
      it->Seek(rocksdb::Slice(prefix.data(), prefix.size()));
    }
    size_t count = 0;
    for (; it->Valid(); it->Next()) {
      const std::string_view key = it->key().ToStringView();
      if (!key.starts_with(prefix)) break;
      DocumentRecord record;
      if (!DecodeDocument(it->value().ToStringView(), &record))
        return Corruption("document record of " + std::string(key));
      if (!record.view) continue;  // deleted, metadata not yet folded away
      if (count == limit) return true;
      visit(key, *record.view);
      ++count;
    }
    if (Status status = FromRocks(it->status(), "scan"); !status.ok()) return status;
    return false;
  }

  Result<bool> ScanDocumentStates(
      std::string_view after, size_t limit,
      const std::function<void(std::string_view, std::string_view)>& visit) override {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kDocs]));
    return ScanStates(it.get(), after, limit, visit);
  }

  Result<std::optional<uint64_t>> LsnOf(core::Dot dot) override {
    auto value = Get(kLog, LogKey(dot));
    if (!value.ok()) return value.status();
    if (!value->has_value()) return std::optional<uint64_t>();
    std::string_view bytes = **value;
    uint64_t lsn = 0;
    if (!core::GetVarint(&bytes, &lsn)) return Corruption("log record without lsn");
    return std::optional<uint64_t>(lsn);
  }

  Status ReadChanges(uint64_t after_lsn, size_t limit,
                     const std::function<void(const LoggedEvent&)>& visit) override {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kChanges]));
    size_t count = 0;
    for (it->Seek(SequenceKey(after_lsn + 1)); it->Valid() && count < limit; it->Next(), ++count) {
      std::string_view change = it->value().ToStringView();
      LoggedEvent event;
      event.lsn = GetBigEndian64(it->key().ToStringView());
      if (change.empty()) return Corruption("empty change record");
      event.dot.origin = static_cast<uint8_t>(change.front());
      change.remove_prefix(1);
      uint64_t key_size = 0;
      if (!core::GetVarint(&change, &event.dot.seq) || !core::GetVarint(&change, &event.hlc) ||
          !core::GetVarint(&change, &key_size) || key_size >= change.size())
        return Corruption("bad change record");
      event.key.assign(change.substr(0, key_size));
      change.remove_prefix(key_size);
      if (change.front() == 1) event.rendered.emplace(change.substr(1));
      visit(event);
    }
    return FromRocks(it->status(), "read changes");
  }

  Status TrimChanges(uint64_t before_lsn) override {
    std::lock_guard lock(commit_mutex_);
    if (before_lsn > last_lsn_ + 1) return TrimPastTheEnd("change", before_lsn, last_lsn_);
    if (before_lsn <= kept_.oldest_lsn) return Status::Ok();
    KeptLogs kept = kept_;
    kept.oldest_lsn = before_lsn;
    return TrimBelow(kChanges, before_lsn, kept);
  }

  Status TrimConflicts(uint64_t before_seq) override {
    std::lock_guard lock(commit_mutex_);
    const uint64_t last = conflict_seq_.load();
    if (before_seq > last + 1) return TrimPastTheEnd("conflict", before_seq, last);
    if (before_seq <= kept_.oldest_conflict) return Status::Ok();
    KeptLogs kept = kept_;
    kept.oldest_conflict = before_seq;
    return TrimBelow(kConflicts, before_seq, kept);
  }

  Result<KeptLogs> Kept() override {
    std::lock_guard lock(kept_mutex_);
    return kept_;
  }

  Status ReadLogWhile(core::RegionId origin, uint64_t from_seq, size_t limit,
                      const std::function<bool(const LoggedEvent&)>& visit) override {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kLog]));
    size_t count = 0;
    for (it->Seek(LogKey(core::Dot{origin, from_seq})); it->Valid() && count < limit;
         it->Next(), ++count) {
      const std::string_view key = it->key().ToStringView();
      if (key.size() != 9 || static_cast<uint8_t>(key.front()) != origin) break;
      LoggedEvent event;
      event.dot = core::Dot{origin, GetBigEndian64(key.substr(1))};
      std::string_view value = it->value().ToStringView();
      if (!core::GetVarint(&value, &event.lsn)) return Corruption("log record without lsn");
      event.bytes.assign(value);
      if (!visit(event)) break;
    }
    return FromRocks(it->status(), "read log");
  }

  Status TrimLog(core::RegionId origin, uint64_t through_seq) override {
    if (through_seq == 0) return Status::Ok();
    // Point deletes, not DeleteRange: range tombstones do not mix with the memtable insert hints
    // of the log family. Logged events never change, so the keys are gathered without the commit
    // lock, which is held only for the write.
    rocksdb::WriteBatch write;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kLog]));
    for (it->Seek(LogKey(core::Dot{origin, 0})); it->Valid(); it->Next()) {
      const std::string_view key = it->key().ToStringView();
      if (key.size() != 9 || static_cast<uint8_t>(key.front()) != origin ||
          GetBigEndian64(key.substr(1)) > through_seq) {
        break;
      }
      write.Delete(families_[kLog], it->key());
    }
    if (Status status = FromRocks(it->status(), "trim the log"); !status.ok()) return status;
    if (write.Count() == 0) return Status::Ok();
    std::lock_guard lock(commit_mutex_);
    return FromRocks(db_->Write(write_options_, &write), "trim the log");
  }

  Result<uint64_t> LogBytes() override {
    uint64_t bytes = 0;
    if (!db_->GetIntProperty(families_[kLog], "rocksdb.estimate-live-data-size", &bytes)) {
      bytes = 0;
    }
    uint64_t memtable = 0;
    if (db_->GetIntProperty(families_[kLog], "rocksdb.cur-size-all-mem-tables", &memtable)) {
      bytes += memtable;
    }
    return bytes;
  }

  Result<std::vector<std::string>> RecentConflicts(size_t limit) override {
    std::vector<std::string> records;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kConflicts]));
    for (it->SeekToLast(); it->Valid() && records.size() < limit; it->Prev()) {
      records.emplace_back(it->value().ToStringView());
    }
    if (Status status = FromRocks(it->status(), "read conflicts"); !status.ok()) return status;
    return records;
  }

  Result<uint64_t> ConflictCount() override { return conflict_seq_.load(); }
  Result<uint64_t> DeadLetterCount() override { return dead_letter_seq_.load(); }

  Result<std::optional<StoredDocument>> GetDocument(std::string_view key) override {
    rocksdb::PinnableSlice value;
    rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), families_[kDocs],
                                      rocksdb::Slice(key.data(), key.size()), &value);
    if (status.IsNotFound()) return std::optional<StoredDocument>();
    if (!status.ok()) return FromRocks(status, "read");
    DocumentRecord record;
    if (!DecodeDocument(value.ToStringView(), &record))
      return Corruption("document record of " + std::string(key));
    StoredDocument document;
    document.state = record.state;
    if (record.view) {
      document.view.emplace(*record.view);
      document.digest = record.digest ? *record.digest : core::RenderedDigest(key, document.view);
    }
    return std::optional<StoredDocument>(std::move(document));
  }

  Status ScanBucket(uint32_t bucket, const std::function<void(std::string_view)>& visit) override {
    const std::string prefix = BucketPrefix(bucket);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kDigests]));
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      const std::string_view key = it->key().ToStringView();
      if (!key.starts_with(prefix)) break;
      visit(key.substr(2));
    }
    return FromRocks(it->status(), "scan digests");
  }

  Result<bool> Indexed(std::string_view key) override {
    auto value = Get(kDigests, DigestKey(key));
    if (!value.ok()) return value.status();
    return value->has_value();
  }

  Result<SavedTree> LoadTree() override {
    SavedTree tree;
    tree.leaves.assign(core::DigestTree::kBuckets, 0);
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kTree]));
    for (it->Seek("l"); it->Valid() && it->key().starts_with("l"); it->Next()) {
      const std::string_view key = it->key().ToStringView().substr(1);
      const std::string_view value = it->value().ToStringView();
      if (key.size() != 2 || GetBigEndian16(key) >= core::DigestTree::kBuckets / kTreeChunk ||
          value.size() != 8 * kTreeChunk) {
        return Corruption("saved digest tree leaves");
      }
      const uint32_t chunk = GetBigEndian16(key);
      for (uint32_t i = 0; i < kTreeChunk; ++i) {
        tree.leaves[chunk * kTreeChunk + i] = GetBigEndian64(value.substr(8 * i, 8));
      }
    }
    for (it->Seek("t"); it->Valid() && it->key().starts_with("t"); it->Next()) {
      const std::string_view value = it->value().ToStringView();
      if (value.size() % 2 != 0) return Corruption("digest tree journal record");
      for (size_t i = 0; i < value.size(); i += 2) {
        tree.stale.push_back(GetBigEndian16(value.substr(i, 2)));
      }
    }
    if (Status status = FromRocks(it->status(), "load digest tree"); !status.ok()) return status;
    std::sort(tree.stale.begin(), tree.stale.end());
    tree.stale.erase(std::unique(tree.stale.begin(), tree.stale.end()), tree.stale.end());
    return tree;
  }

  Status SaveTree(std::span<const uint64_t> leaves, std::span<const uint32_t> chunks) override {
    if (leaves.size() != core::DigestTree::kBuckets) {
      return Status(StatusCode::kInvalidArgument, "SaveTree takes every leaf");
    }
    std::lock_guard lock(commit_mutex_);
    rocksdb::WriteBatch write;
    for (uint32_t chunk : chunks) {
      if (chunk >= core::DigestTree::kBuckets / kTreeChunk) {
        return Status(StatusCode::kInvalidArgument, "no chunk " + std::to_string(chunk));
      }
      std::string value;
      value.reserve(8 * kTreeChunk);
      for (uint32_t i = 0; i < kTreeChunk; ++i)
        PutBigEndian64(&value, leaves[chunk * kTreeChunk + i]);
      write.Put(families_[kTree], TreeLeavesKey(chunk), value);
    }
    write.DeleteRange(families_[kTree], TreeTouchedKey(0), TreeTouchedKey(tree_seq_ + 1));
    rocksdb::WriteOptions options;  // not synced: see store.h
    return FromRocks(db_->Write(options, &write), "save digest tree");
  }

  Status ClearDigests() override {
    rocksdb::WriteBatch write;
    // Bucket prefixes are two bytes: the range covers every entry.
    write.DeleteRange(families_[kDigests], "", "\xff\xff\xff");
    write.DeleteRange(families_[kTree], "", "\xff");
    return FromRocks(db_->Write(write_options_, &write), "clear digests");
  }

  Status PutMembers(std::span<const std::string> keys) override {
    rocksdb::WriteBatch write;
    for (const std::string& key : keys) write.Put(families_[kDigests], DigestKey(key), "");
    return FromRocks(db_->Write(write_options_, &write), "index documents");
  }

  Result<std::vector<DamageMark>> DamageMarks(size_t limit) override {
    std::vector<DamageMark> marks;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kMeta]));
    for (it->Seek(rocksdb::Slice(kMarkPrefix.data(), kMarkPrefix.size()));
         it->Valid() && marks.size() < limit; it->Next()) {
      const std::string_view key = it->key().ToStringView();
      if (!key.starts_with(kMarkPrefix)) break;
      marks.push_back(DamageMark{std::string(key.substr(kMarkPrefix.size())),
                                 std::string(it->value().ToStringView())});
    }
    if (Status status = FromRocks(it->status(), "read marks"); !status.ok()) return status;
    return marks;
  }

  Result<std::vector<std::string>> RecentRepairs(size_t limit) override {
    std::vector<std::string> records;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kRepairs]));
    for (it->SeekToLast(); it->Valid() && records.size() < limit; it->Prev()) {
      records.emplace_back(it->value().ToStringView());
    }
    if (Status status = FromRocks(it->status(), "read repairs"); !status.ok()) return status;
    return records;
  }

  Result<uint64_t> RepairCount() override { return repair_seq_.load(); }

  Result<std::optional<std::string>> GetDeadLetter(uint64_t id) override {
    return Get(kDeadLetters, SequenceKey(id));
  }

  Result<bool> ScanDeadLetters(
      uint64_t after_id, size_t limit,
      const std::function<void(uint64_t, std::string_view)>& visit) override {
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kDeadLetters]));
    size_t count = 0;
    for (it->Seek(SequenceKey(after_id + 1)); it->Valid(); it->Next()) {
      if (count == limit) return true;
      visit(GetBigEndian64(it->key().ToStringView()), it->value().ToStringView());
      ++count;
    }
    if (Status status = FromRocks(it->status(), "scan dead letters"); !status.ok()) return status;
    return false;
  }

  Result<std::vector<std::pair<uint64_t, std::string>>> RecentDeadLetters(size_t limit) override {
    std::vector<std::pair<uint64_t, std::string>> records;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kDeadLetters]));
    for (it->SeekToLast(); it->Valid() && records.size() < limit; it->Prev()) {
      records.emplace_back(GetBigEndian64(it->key().ToStringView()), it->value().ToStringView());
    }
    if (Status status = FromRocks(it->status(), "read dead letters"); !status.ok()) return status;
    return records;
  }

  Result<std::optional<IdempotencyRecord>> GetIdempotency(std::string_view key) override {
    auto value = Get(kIdempotency, IdempotencyKey(key));
    if (!value.ok()) return value.status();
    if (!value->has_value()) return std::optional<IdempotencyRecord>();
    if ((*value)->size() < 8) return Corruption("idempotency record is truncated");
    IdempotencyRecord record;
    record.key = std::string(key);
    record.time_ms = GetBigEndian64(**value);
    record.record = (*value)->substr(8);
    return std::optional<IdempotencyRecord>(std::move(record));
  }

  Result<std::vector<IdempotencyRecord>> ExpiredIdempotency(uint64_t before_ms,
                                                            size_t limit) override {
    std::vector<IdempotencyRecord> expired;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), families_[kIdempotency]));
    for (it->Seek("t"); it->Valid() && expired.size() < limit; it->Next()) {
      const std::string_view key = it->key().ToStringView();
      if (key.size() < 9 || key.front() != 't') break;
      const uint64_t time_ms = GetBigEndian64(key.substr(1, 8));
      if (time_ms >= before_ms) break;
      expired.push_back(IdempotencyRecord{std::string(key.substr(9)), time_ms, {}});
    }
    if (Status status = FromRocks(it->status(), "scan idempotency"); !status.ok()) return status;
    return expired;
  }

  Result<uint64_t> IdempotencyCount() override {
    uint64_t keys = 0;
    if (!db_->GetIntProperty(families_[kIdempotency], "rocksdb.estimate-num-keys", &keys)) keys = 0;
    return keys / 2;  // two entries per record
  }

  Result<uint64_t> IdReservation() override {
    auto value = Get(kMeta, kMetaIds);
    if (!value.ok()) return value.status();
    if (!value->has_value()) return uint64_t{0};
    if ((*value)->size() != 8) return Corruption("meta ids record is not 8 bytes");
    return GetBigEndian64(**value);
  }

  Status SaveIdReservation(uint64_t reservation) override {
    std::string value;
    PutBigEndian64(&value, reservation);
    rocksdb::WriteOptions options;
    options.sync = true;  // always: see store.h
    std::lock_guard lock(commit_mutex_);
    return FromRocks(db_->Put(options, families_[kMeta], kMetaIds, value), "save id reservation");
  }

 private:
  Result<std::optional<std::string>> GetDocumentPart(std::string_view key, bool view) {
    rocksdb::PinnableSlice value;
    rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), families_[kDocs],
                                      rocksdb::Slice(key.data(), key.size()), &value);
    if (status.IsNotFound()) return std::optional<std::string>();
    if (!status.ok()) return FromRocks(status, "read");
    DocumentRecord record;
    if (!DecodeDocument(value.ToStringView(), &record))
      return Corruption("document record of " + std::string(key));
    if (!view) return std::optional<std::string>(std::string(record.state));
    if (!record.view) return std::optional<std::string>();
    return std::optional<std::string>(std::string(*record.view));
  }

  // One range deletion of every key of `family` below `before` (whatever it covers, one entry),
  // written with the new start in one batch. Requires commit_mutex_.
  //
  // The range starts at the empty key, not at the old start: the memtable inserts a range
  // tombstone with the insert hint of its begin key's prefix, a hint into the memtable's other
  // skip list (of point entries) when that prefix is one the family's keys use. The empty key is
  // outside the domain of the families' fixed 4-byte hint prefix, so the tombstone is inserted
  // without a hint.
  Status TrimBelow(Family family, uint64_t before, const KeptLogs& kept) {
    rocksdb::WriteBatch write;
    const std::string end = SequenceKey(before);
    if (Status status = FromRocks(write.DeleteRange(families_[family], "", end), "trim");
        !status.ok()) {
      return status;
    }
    write.Put(families_[kMeta], kMetaKept, EncodeKept(kept));
    Status status = FromRocks(db_->Write(write_options_, &write), "trim");
    if (status.ok()) {
      std::lock_guard kept_lock(kept_mutex_);
      kept_ = kept;
    }
    return status;
  }

  Result<std::optional<std::string>> Get(Family family, std::string_view key) {
    std::string value;
    rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), families_[family],
                                      rocksdb::Slice(key.data(), key.size()), &value);
    if (status.IsNotFound()) return std::optional<std::string>();
    if (!status.ok()) return FromRocks(status, "read");
    return std::optional<std::string>(std::move(value));
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> families_;
  rocksdb::WriteOptions write_options_;
  std::mutex commit_mutex_;
  uint64_t last_lsn_ = 0;  // guarded by commit_mutex_
  // Written under both mutexes, so either guards reads: Kept() takes only kept_mutex_ and never
  // waits for a commit.
  std::mutex kept_mutex_;
  KeptLogs kept_;
  std::atomic<uint64_t> conflict_seq_{0};
  std::atomic<uint64_t> dead_letter_seq_{0};
  std::atomic<uint64_t> repair_seq_{0};
  uint64_t tree_seq_ = 0;  // the last journal record of touched buckets; guarded by commit_mutex_
};

}  // namespace

Result<std::unique_ptr<Store>> OpenRocksDbStore(const RocksDbOptions& options) {
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  // Flushes and compactions run at a low CPU priority (nice 19): on a small machine a memtable
  // flush otherwise takes a core from the HTTP and commit threads while writes wait for them.
  // With 32 clients the write p99 fell from 3.2-3.8 ms to 2.2-2.3 ms; under overload (128
  // clients) throughput and p99 were unchanged and RocksDB reported no write stall
  // (docs/storage.md#rocksdb-options).
  for (auto pool : {rocksdb::Env::Priority::HIGH, rocksdb::Env::Priority::LOW})
    (void)rocksdb::Env::Default()->LowerThreadPoolCPUPriority(pool, rocksdb::CpuPriority::kLow);
  db_options.max_open_files = 512;
  // A WAL file is deleted only once every family holding writes in it has flushed them, and the
  // default family (the `position` record, rewritten by every commit) fills its memtable slowly:
  // without a cap the live WAL grew to 1.1 GiB in 40 s of writes (RocksDB's own cap is 4x all
  // memtables, ~1.8 GiB here), all of it replayed after a crash. Over this cap RocksDB flushes the
  // families holding the oldest WAL (docs/storage.md#rocksdb-options).
  db_options.max_total_wal_size = 128 << 20;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions family_options;
  family_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Smaller memtables keep the skip lists shallow (the commit path inserts into them for every
  // event); the bloom filter answers point reads of absent keys without walking them.
  family_options.write_buffer_size = 16 << 20;
  family_options.max_write_buffer_number = 4;
  family_options.memtable_whole_key_filtering = true;
  family_options.memtable_prefix_bloom_size_ratio = 0.05;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (int family = 0; family < kFamilies; ++family) {
    rocksdb::ColumnFamilyOptions options_for_family = family_options;
    // Append-only families insert at the end of a key range: a per-prefix hint turns each
    // memtable insert into O(1) (log: one range per origin; changes and the sequenced logs: one
    // range per 2^32 records; meta: the same key again). The sequenced families take a fixed
    // prefix, which a key shorter than 4 bytes does not have: the empty begin key of their range
    // deletions (TrimBelow) gets no hint.
    if (family == kLog || family == kMeta) {
      options_for_family.memtable_insert_with_hint_prefix_extractor.reset(
          rocksdb::NewCappedPrefixTransform(family == kLog ? 1 : 8));
    }
    if (family == kChanges || family == kConflicts || family == kDeadLetters ||
        family == kRepairs) {
      options_for_family.memtable_insert_with_hint_prefix_extractor.reset(
          rocksdb::NewFixedPrefixTransform(4));
    }
    descriptors.emplace_back(kFamilyNames[family], options_for_family);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(db_options, options.path, descriptors, &handles, &raw);
  if (!status.ok()) return FromRocks(status, ("open " + options.path).c_str());
  auto store = std::make_unique<RocksDbStore>(std::unique_ptr<rocksdb::DB>(raw), std::move(handles),
                                              options.sync);
  if (Status init = store->Init(); !init.ok()) return init;
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace meridian::storage
