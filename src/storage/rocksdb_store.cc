#include "storage/rocksdb_store.h"

#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "core/check.h"
#include "storage/keys.h"

namespace meridian::storage {
namespace {

constexpr const char* kMetaFrontier = "frontier";
constexpr const char* kMetaHlc = "hlc";
constexpr const char* kMetaLsn = "lsn";
constexpr const char* kMetaDocuments = "documents";
constexpr const char* kMetaDigest = "digest";

enum Family { kMeta = 0, kLog, kChanges, kDocs, kViews, kConflicts, kDeadLetters, kFamilies };
const char* const kFamilyNames[kFamilies] = {"default",
                                             "log", "changes", "docs", "views", "conflicts",
                                             "dead_letters"};

Status FromRocks(const rocksdb::Status& status, const char* what) {
  if (status.ok()) return Status::Ok();
  if (status.IsCorruption()) return Corruption(std::string(what) + ": " + status.ToString());
  return Status(StatusCode::kUnavailable, std::string(what) + ": " + status.ToString());
}

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
    for (Family family : {kConflicts, kDeadLetters}) {
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), families_[family]));
      it->SeekToLast();
      uint64_t last = it->Valid() ? GetBigEndian64(it->key().ToStringView()) : 0;
      (family == kConflicts ? conflict_seq_ : dead_letter_seq_).store(last);
      if (Status status = FromRocks(it->status(), "scan"); !status.ok()) return status;
    }
    return Status::Ok();
  }

  Status Commit(const CommitBatch& batch) override {
    std::lock_guard lock(commit_mutex_);
    rocksdb::WriteBatch write;
    uint64_t last_lsn = last_lsn_;
    for (const LoggedEvent& event : batch.events) {
      std::string value;
      core::PutVarint(&value, event.lsn);
      value += event.bytes;
      std::string change(1, static_cast<char>(event.dot.origin));
      core::PutVarint(&change, event.dot.seq);
      change.push_back(event.rendered ? 1 : 0);
      if (event.rendered) change += *event.rendered;
      write.Put(families_[kLog], LogKey(event.dot), value);
      write.Put(families_[kChanges], SequenceKey(event.lsn), change);
      last_lsn = std::max(last_lsn, event.lsn);
    }
    for (const DocumentWrite& document : batch.documents) {
      if (document.state.empty()) {
        write.Delete(families_[kDocs], document.key);
      } else {
        write.Put(families_[kDocs], document.key, document.state);
      }
      if (document.rendered) {
        write.Put(families_[kViews], document.key, *document.rendered);
      } else {
        write.Delete(families_[kViews], document.key);
      }
    }
    uint64_t conflict_seq = conflict_seq_.load();
    for (const std::string& record : batch.conflicts) {
      write.Put(families_[kConflicts], SequenceKey(++conflict_seq), record);
    }
    uint64_t dead_letter_seq = dead_letter_seq_.load();
    for (const std::string& record : batch.dead_letters) {
      write.Put(families_[kDeadLetters], SequenceKey(++dead_letter_seq), record);
    }
    write.Put(families_[kMeta], kMetaFrontier, batch.frontier.Encode());
    write.Put(families_[kMeta], kMetaHlc, SequenceKey(batch.hlc));
    write.Put(families_[kMeta], kMetaLsn, SequenceKey(last_lsn));
    write.Put(families_[kMeta], kMetaDocuments, SequenceKey(batch.document_count));
    write.Put(families_[kMeta], kMetaDigest, SequenceKey(batch.digest));
    Status status = FromRocks(db_->Write(write_options_, &write), "commit");
    if (status.ok()) {
      last_lsn_ = last_lsn;
      conflict_seq_.store(conflict_seq);
      dead_letter_seq_.store(dead_letter_seq);
    }
    return status;
  }

  Result<RecoveredState> Recover() override {
    RecoveredState state;
    std::string value;
    rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), families_[kMeta], kMetaFrontier, &value);
    if (status.ok()) {
      auto frontier = core::VersionVector::Decode(value);
      if (!frontier.ok()) return frontier.status();
      state.frontier = std::move(frontier).value();
    } else if (!status.IsNotFound()) {
      return FromRocks(status, "recover frontier");
    }
    // Each is absent only in a store that never committed; any other failure stops recovery.
    for (auto [name, out] : {std::pair{kMetaHlc, &state.hlc}, std::pair{kMetaLsn, &state.last_lsn},
                             std::pair{kMetaDocuments, &state.documents}, std::pair{kMetaDigest, &state.digest}}) {
      status = db_->Get(rocksdb::ReadOptions(), families_[kMeta], name, &value);
      if (status.ok() && value.size() != 8) return Corruption(std::string("meta ") + name + " is not 8 bytes");
      if (status.ok()) {
        *out = GetBigEndian64(value);
      } else if (!status.IsNotFound()) {
        return FromRocks(status, "recover");
      }
    }
    last_lsn_ = state.last_lsn;
    return state;
  }

  Result<std::optional<std::string>> GetDocumentState(std::string_view key) override {
    return Get(kDocs, key);
  }
  Result<std::optional<std::string>> GetView(std::string_view key) override { return Get(kViews, key); }

  Result<bool> ScanViews(std::string_view prefix, std::string_view after, size_t limit,
                         const std::function<void(std::string_view, std::string_view)>& visit) override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), families_[kViews]));
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
      if (count == limit) return true;
      visit(key, it->value().ToStringView());
      ++count;
    }
    if (Status status = FromRocks(it->status(), "scan"); !status.ok()) return status;
    return false;
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
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), families_[kChanges]));
    size_t count = 0;
    for (it->Seek(SequenceKey(after_lsn + 1)); it->Valid() && count < limit; it->Next(), ++count) {
      std::string_view change = it->value().ToStringView();
      LoggedEvent event;
      event.lsn = GetBigEndian64(it->key().ToStringView());
      if (change.empty()) return Corruption("empty change record");
      event.dot.origin = static_cast<uint8_t>(change.front());
      change.remove_prefix(1);
      if (!core::GetVarint(&change, &event.dot.seq) || change.empty()) return Corruption("bad change record");
      if (change.front() == 1) event.rendered.emplace(change.substr(1));
      change.remove_prefix(1);
      auto logged = Get(kLog, LogKey(event.dot));
      if (!logged.ok()) return logged.status();
      if (!logged->has_value()) return Corruption("change without a logged event");
      std::string_view bytes = **logged;
      uint64_t lsn = 0;
      if (!core::GetVarint(&bytes, &lsn)) return Corruption("log record without lsn");
      event.bytes.assign(bytes);
      visit(event);
    }
    return FromRocks(it->status(), "read changes");
  }

  Result<std::vector<std::string>> RecentConflicts(size_t limit) override {
    std::vector<std::string> records;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), families_[kConflicts]));
    for (it->SeekToLast(); it->Valid() && records.size() < limit; it->Prev()) {
      records.emplace_back(it->value().ToStringView());
    }
    if (Status status = FromRocks(it->status(), "read conflicts"); !status.ok()) return status;
    return records;
  }

  Result<uint64_t> ConflictCount() override { return conflict_seq_.load(); }
  Result<uint64_t> DeadLetterCount() override { return dead_letter_seq_.load(); }

 private:
  Result<std::optional<std::string>> Get(Family family, std::string_view key) {
    std::string value;
    rocksdb::Status status =
        db_->Get(rocksdb::ReadOptions(), families_[family], rocksdb::Slice(key.data(), key.size()), &value);
    if (status.IsNotFound()) return std::optional<std::string>();
    if (!status.ok()) return FromRocks(status, "read");
    return std::optional<std::string>(std::move(value));
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> families_;
  rocksdb::WriteOptions write_options_;
  std::mutex commit_mutex_;
  uint64_t last_lsn_ = 0;  // guarded by commit_mutex_
  std::atomic<uint64_t> conflict_seq_{0};
  std::atomic<uint64_t> dead_letter_seq_{0};
};

}  // namespace

Result<std::unique_ptr<Store>> OpenRocksDbStore(const RocksDbOptions& options) {
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.max_open_files = 512;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions family_options;
  family_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name : kFamilyNames) descriptors.emplace_back(name, family_options);
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
