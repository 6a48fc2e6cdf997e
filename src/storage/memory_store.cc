#include "storage/memory_store.h"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "core/digest_tree.h"
#include "storage/keys.h"

namespace meridian::storage {
namespace {

class MemoryStore final : public Store {
 public:
  Status Commit(const CommitBatch& batch) override {
    std::lock_guard lock(mutex_);
    for (const auto& [id, record] : batch.dead_letter_updates) {
      if (id == 0 || id > dead_letters_.size()) return UnknownDeadLetter(id);
    }
    for (const LoggedEvent& event : batch.parked) {
      log_[event.dot] = event;
      log_bytes_ += event.bytes.size();
    }
    for (const LoggedEvent& event : batch.events) {
      log_[event.dot] = event;
      log_bytes_ += event.bytes.size();
      changes_[event.lsn] = event;
      last_lsn_ = std::max(last_lsn_, event.lsn);
    }
    for (const LoggedEvent& change : batch.changes) {
      changes_[change.lsn] = change;
      last_lsn_ = std::max(last_lsn_, change.lsn);
    }
    for (const DocumentWrite& document : batch.documents) {
      if (document.state.empty()) {
        docs_.erase(document.key);
      } else {
        docs_[document.key] = document.state;
      }
      if (document.rendered) {
        views_[document.key] = *document.rendered;
        record_digests_[document.key] = document.digest;
      } else {
        views_.erase(document.key);
        record_digests_.erase(document.key);
      }
      if (document.reindex) {
        if (document.rendered) {
          members_.emplace(core::DigestTree::BucketOf(document.key), document.key);
        } else {
          members_.erase({core::DigestTree::BucketOf(document.key), document.key});
        }
      }
    }
    touched_.insert(batch.touched.begin(), batch.touched.end());
    for (const DamageMark& mark : batch.marks) {
      if (mark.reason.empty()) {
        marks_.erase(mark.key);
      } else {
        marks_[mark.key] = mark.reason;
      }
    }
    for (const std::string& record : batch.repairs) {
      repairs_.push_back(record);
      ++repair_count_;
      if (repairs_.size() > kRepairsKept) repairs_.pop_front();
    }
    conflicts_.insert(conflicts_.end(), batch.conflicts.begin(), batch.conflicts.end());
    dead_letters_.insert(dead_letters_.end(), batch.dead_letters.begin(), batch.dead_letters.end());
    for (const auto& [id, record] : batch.dead_letter_updates) dead_letters_[id - 1] = record;
    for (const IdempotencyRecord& expired : batch.idempotency_expired) {
      by_time_.erase({expired.time_ms, expired.key});
      auto it = idempotency_.find(expired.key);
      if (it != idempotency_.end() && it->second.time_ms == expired.time_ms) idempotency_.erase(it);
    }
    for (const IdempotencyRecord& record : batch.idempotency) {
      auto it = idempotency_.find(record.key);
      if (it != idempotency_.end()) by_time_.erase({it->second.time_ms, record.key});
      idempotency_[record.key] = record;
      by_time_.insert({record.time_ms, record.key});
    }
    frontier_ = batch.frontier;
    folded_ = batch.folded;
    reseed_ = batch.reseed;
    hlc_ = batch.hlc;
    digest_ = batch.digest;
    document_count_ = batch.document_count;
    return Status::Ok();
  }

  Result<RecoveredState> Recover() override {
    std::lock_guard lock(mutex_);
    // As recorded by the last commit (a document lost since is still counted, as on RocksDB).
    return RecoveredState{frontier_, folded_, reseed_, hlc_, last_lsn_, document_count_, digest_};
  }

  Result<std::optional<std::string>> GetDocumentState(std::string_view key) override {
    std::lock_guard lock(mutex_);
    return Find(docs_, key);
  }
  Result<std::optional<std::string>> GetView(std::string_view key) override {
    std::lock_guard lock(mutex_);
    return Find(views_, key);
  }

  Result<bool> ScanViews(
      std::string_view prefix, std::string_view after, size_t limit,
      const std::function<void(std::string_view, std::string_view)>& visit) override {
    std::lock_guard lock(mutex_);
    auto it = (!after.empty() && after >= prefix) ? views_.upper_bound(std::string(after))
                                                  : views_.lower_bound(std::string(prefix));
    size_t count = 0;
    for (; it != views_.end() && it->first.starts_with(prefix); ++it) {
      if (count == limit) return true;
      visit(it->first, it->second);
      ++count;
    }
    return false;
  }

  Result<std::unique_ptr<StoreSnapshot>> TakeSnapshot() override;

  Status ClearDocuments() override {
    std::lock_guard lock(mutex_);
    docs_.clear();
    views_.clear();
    record_digests_.clear();
    members_.clear();
    saved_leaves_.clear();
    touched_.clear();
    document_count_ = 0;
    return Status::Ok();
  }

  Result<bool> ScanDocumentStates(
      std::string_view after, size_t limit,
      const std::function<void(std::string_view, std::string_view)>& visit) override {
    std::vector<std::pair<std::string, std::string>> states;
    bool more = false;
    {
      std::lock_guard lock(mutex_);
      for (auto it = docs_.upper_bound(after); it != docs_.end(); ++it) {
        if (states.size() == limit) {
          more = true;
          break;
        }
        states.emplace_back(it->first, it->second);
      }
    }
    for (const auto& [key, state] : states) visit(key, state);
    return more;
  }

  Result<std::optional<uint64_t>> LsnOf(core::Dot dot) override {
    std::lock_guard lock(mutex_);
    auto it = log_.find(dot);
    if (it == log_.end()) return std::optional<uint64_t>();
    return std::optional<uint64_t>(it->second.lsn);
  }

  Status ReadChanges(uint64_t after_lsn, size_t limit,
                     const std::function<void(const LoggedEvent&)>& visit) override {
    std::vector<LoggedEvent> events;
    {
      std::lock_guard lock(mutex_);
      for (auto it = changes_.upper_bound(after_lsn); it != changes_.end() && events.size() < limit;
           ++it) {
        events.push_back(it->second);
        events.back().bytes.clear();
      }
    }
    for (const LoggedEvent& event : events) visit(event);
    return Status::Ok();
  }

  Status TrimChanges(uint64_t before_lsn) override {
    std::lock_guard lock(mutex_);
    if (before_lsn > last_lsn_ + 1) return TrimPastTheEnd("change", before_lsn, last_lsn_);
    if (before_lsn <= oldest_lsn_) return Status::Ok();
    changes_.erase(changes_.begin(), changes_.lower_bound(before_lsn));
    oldest_lsn_ = before_lsn;
    return Status::Ok();
  }

  Status TrimConflicts(uint64_t before_seq) override {
    std::lock_guard lock(mutex_);
    const uint64_t last = conflicts_trimmed_ + conflicts_.size();
    if (before_seq > last + 1) return TrimPastTheEnd("conflict", before_seq, last);
    while (conflicts_trimmed_ + 1 < before_seq) {
      conflicts_.pop_front();
      ++conflicts_trimmed_;
    }
    return Status::Ok();
  }

  Result<KeptLogs> Kept() override {
    std::lock_guard lock(mutex_);
    return KeptLogs{oldest_lsn_, conflicts_trimmed_ + 1};
  }

  Status ReadLogWhile(core::RegionId origin, uint64_t from_seq, size_t limit,
                      const std::function<bool(const LoggedEvent&)>& visit) override {
    std::vector<LoggedEvent> events;
    {
      std::lock_guard lock(mutex_);
      for (auto it = log_.lower_bound(core::Dot{origin, from_seq});
           it != log_.end() && it->first.origin == origin && events.size() < limit; ++it) {
        events.push_back(it->second);
      }
    }
    for (const LoggedEvent& event : events) {
      if (!visit(event)) break;
    }
    return Status::Ok();
  }

  Status TrimLog(core::RegionId origin, uint64_t through_seq) override {
    std::lock_guard lock(mutex_);
    auto it = log_.lower_bound(core::Dot{origin, 0});
    while (it != log_.end() && it->first.origin == origin && it->first.seq <= through_seq) {
      log_bytes_ -= it->second.bytes.size();
      it = log_.erase(it);
    }
    return Status::Ok();
  }

  Result<uint64_t> LogBytes() override {
    std::lock_guard lock(mutex_);
    return log_bytes_;
  }

  Result<std::vector<std::string>> RecentConflicts(size_t limit) override {
    std::lock_guard lock(mutex_);
    std::vector<std::string> records;
    for (auto it = conflicts_.rbegin(); it != conflicts_.rend() && records.size() < limit; ++it) {
      records.push_back(*it);
    }
    return records;
  }
  Result<uint64_t> ConflictCount() override {
    std::lock_guard lock(mutex_);
    return conflicts_trimmed_ + conflicts_.size();
  }
  Result<uint64_t> DeadLetterCount() override {
    std::lock_guard lock(mutex_);
    return static_cast<uint64_t>(dead_letters_.size());
  }
  Result<std::optional<std::string>> GetDeadLetter(uint64_t id) override {
    std::lock_guard lock(mutex_);
    if (id == 0 || id > dead_letters_.size()) return std::optional<std::string>();
    return std::optional<std::string>(dead_letters_[id - 1]);
  }
  Result<bool> ScanDeadLetters(
      uint64_t after_id, size_t limit,
      const std::function<void(uint64_t, std::string_view)>& visit) override {
    std::lock_guard lock(mutex_);
    size_t count = 0;
    for (uint64_t id = after_id + 1; id <= dead_letters_.size(); ++id) {
      if (count == limit) return true;
      visit(id, dead_letters_[id - 1]);
      ++count;
    }
    return false;
  }
  Result<std::vector<std::pair<uint64_t, std::string>>> RecentDeadLetters(size_t limit) override {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<uint64_t, std::string>> records;
    for (uint64_t id = dead_letters_.size(); id > 0 && records.size() < limit; --id) {
      records.emplace_back(id, dead_letters_[id - 1]);
    }
    return records;
  }

  Result<std::optional<StoredDocument>> GetDocument(std::string_view key) override {
    std::lock_guard lock(mutex_);
    auto state = docs_.find(key);
    if (state == docs_.end()) return std::optional<StoredDocument>();
    StoredDocument document;
    document.state = state->second;
    if (auto view = views_.find(key); view != views_.end()) {
      document.view = view->second;
      document.digest = record_digests_.find(key)->second;
    }
    return std::optional<StoredDocument>(std::move(document));
  }
  Status ScanBucket(uint32_t bucket, const std::function<void(std::string_view)>& visit) override {
    std::vector<std::string> keys;
    {
      std::lock_guard lock(mutex_);
      for (auto it = members_.lower_bound({bucket, std::string()});
           it != members_.end() && it->first == bucket; ++it) {
        keys.push_back(it->second);
      }
    }
    for (const std::string& key : keys) visit(key);
    return Status::Ok();
  }
  Result<bool> Indexed(std::string_view key) override {
    std::lock_guard lock(mutex_);
    return members_.contains({core::DigestTree::BucketOf(key), std::string(key)});
  }
  Result<SavedTree> LoadTree() override {
    std::lock_guard lock(mutex_);
    SavedTree tree;
    tree.leaves = saved_leaves_;
    tree.leaves.resize(core::DigestTree::kBuckets, 0);
    tree.stale.assign(touched_.begin(), touched_.end());
    return tree;
  }
  Status SaveTree(std::span<const uint64_t> leaves, std::span<const uint32_t> chunks) override {
    if (leaves.size() != core::DigestTree::kBuckets) {
      return Status(StatusCode::kInvalidArgument, "SaveTree takes every leaf");
    }
    std::lock_guard lock(mutex_);
    saved_leaves_.resize(core::DigestTree::kBuckets, 0);
    for (uint32_t chunk : chunks) {
      if (chunk >= core::DigestTree::kBuckets / kTreeChunk) {
        return Status(StatusCode::kInvalidArgument, "no chunk " + std::to_string(chunk));
      }
      std::copy_n(leaves.begin() + chunk * kTreeChunk, kTreeChunk,
                  saved_leaves_.begin() + chunk * kTreeChunk);
    }
    touched_.clear();
    return Status::Ok();
  }
  Status ClearDigests() override {
    std::lock_guard lock(mutex_);
    members_.clear();
    saved_leaves_.clear();
    touched_.clear();
    return Status::Ok();
  }
  Status PutMembers(std::span<const std::string> keys) override {
    std::lock_guard lock(mutex_);
    for (const std::string& key : keys) members_.emplace(core::DigestTree::BucketOf(key), key);
    return Status::Ok();
  }
  Result<std::vector<DamageMark>> DamageMarks(size_t limit) override {
    std::lock_guard lock(mutex_);
    std::vector<DamageMark> marks;
    for (auto it = marks_.begin(); it != marks_.end() && marks.size() < limit; ++it) {
      marks.push_back(DamageMark{it->first, it->second});
    }
    return marks;
  }
  Result<std::vector<std::string>> RecentRepairs(size_t limit) override {
    std::lock_guard lock(mutex_);
    std::vector<std::string> records;
    for (auto it = repairs_.rbegin(); it != repairs_.rend() && records.size() < limit; ++it) {
      records.push_back(*it);
    }
    return records;
  }
  Result<uint64_t> RepairCount() override {
    std::lock_guard lock(mutex_);
    return repair_count_;
  }

  // Fault injection (DamageMemoryStore).
  void Damage(std::string_view key, bool lose) {
    std::lock_guard lock(mutex_);
    auto it = docs_.find(key);
    if (it == docs_.end()) return;
    if (lose) {
      docs_.erase(it);
      views_.erase(std::string(key));
      record_digests_.erase(std::string(key));
    } else {
      it->second = "\xff\xfe not a document state";
    }
  }

  Result<std::optional<IdempotencyRecord>> GetIdempotency(std::string_view key) override {
    std::lock_guard lock(mutex_);
    auto it = idempotency_.find(key);
    if (it == idempotency_.end()) return std::optional<IdempotencyRecord>();
    return std::optional<IdempotencyRecord>(it->second);
  }
  Result<std::vector<IdempotencyRecord>> ExpiredIdempotency(uint64_t before_ms,
                                                            size_t limit) override {
    std::lock_guard lock(mutex_);
    std::vector<IdempotencyRecord> expired;
    for (auto it = by_time_.begin();
         it != by_time_.end() && it->first < before_ms && expired.size() < limit; ++it) {
      expired.push_back(IdempotencyRecord{it->second, it->first, {}});
    }
    return expired;
  }
  Result<uint64_t> IdempotencyCount() override {
    std::lock_guard lock(mutex_);
    return static_cast<uint64_t>(idempotency_.size());
  }
  Result<uint64_t> IdReservation() override {
    std::lock_guard lock(mutex_);
    return id_reservation_;
  }
  Status SaveIdReservation(uint64_t reservation) override {
    std::lock_guard lock(mutex_);
    id_reservation_ = reservation;
    return Status::Ok();
  }

 private:
  static std::optional<std::string> Find(const std::map<std::string, std::string, std::less<>>& map,
                                         std::string_view key) {
    auto it = map.find(key);
    if (it == map.end()) return std::nullopt;
    return it->second;
  }

  friend std::unique_ptr<Store> storage::CopyMemoryStore(Store& store);

  std::mutex mutex_;
  std::map<core::Dot, LoggedEvent> log_;
  std::map<uint64_t, LoggedEvent> changes_;  // by lsn, from oldest_lsn_
  uint64_t oldest_lsn_ = 1;
  uint64_t log_bytes_ = 0;
  std::map<std::string, std::string, std::less<>> docs_;
  std::map<std::string, std::string, std::less<>> views_;
  std::deque<std::string> conflicts_;  // sequence numbers conflicts_trimmed_ + 1, + 2, ...
  uint64_t conflicts_trimmed_ = 0;
  std::vector<std::string> dead_letters_;  // id i at i - 1
  std::map<std::string, IdempotencyRecord, std::less<>> idempotency_;
  std::set<std::pair<uint64_t, std::string>> by_time_;  // (time_ms, key) of every record
  core::VersionVector frontier_;
  core::VersionVector folded_;
  std::string reseed_;
  core::HlcTimestamp hlc_ = 0;
  uint64_t last_lsn_ = 0;
  uint64_t digest_ = 0;
  uint64_t document_count_ = 0;
  std::map<std::string, uint64_t, std::less<>> record_digests_;  // of the documents in views_
  std::set<std::pair<uint32_t, std::string>> members_;           // the digest index: bucket, key
  std::vector<uint64_t> saved_leaves_;                           // SaveTree (empty: none)
  std::set<uint32_t> touched_;                                   // since the last SaveTree
  std::map<std::string, std::string, std::less<>> marks_;
  std::deque<std::string> repairs_;
  uint64_t repair_count_ = 0;
  uint64_t id_reservation_ = 0;
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore() {
  return std::make_unique<MemoryStore>();
}

namespace {

// A snapshot of a MemoryStore: a copy of it.
class MemorySnapshot final : public StoreSnapshot {
 public:
  explicit MemorySnapshot(std::unique_ptr<Store> copy) : copy_(std::move(copy)) {
    auto recovered = copy_->Recover();
    if (recovered.ok()) position_ = std::move(recovered).value();
    auto marks = copy_->DamageMarks(SIZE_MAX);
    if (marks.ok()) {
      for (DamageMark& mark : *marks) marked_.insert(std::move(mark.key));
    }
  }
  const RecoveredState& position() const override { return position_; }
  Result<bool> Damaged(std::string_view key) override { return marked_.contains(key); }
  Result<bool> ScanDocumentStates(
      std::string_view after, size_t limit,
      const std::function<void(std::string_view, std::string_view)>& visit) override {
    return copy_->ScanDocumentStates(after, limit, visit);
  }

 private:
  std::unique_ptr<Store> copy_;
  RecoveredState position_;
  std::set<std::string, std::less<>> marked_;  // the damage marks of the copy
};

Result<std::unique_ptr<StoreSnapshot>> MemoryStore::TakeSnapshot() {
  return std::unique_ptr<StoreSnapshot>(std::make_unique<MemorySnapshot>(CopyMemoryStore(*this)));
}

}  // namespace

std::unique_ptr<Store> CopyMemoryStore(Store& store) {
  auto& from = dynamic_cast<MemoryStore&>(store);
  auto copy = std::make_unique<MemoryStore>();
  std::lock_guard lock(from.mutex_);
  copy->log_ = from.log_;
  copy->changes_ = from.changes_;
  copy->oldest_lsn_ = from.oldest_lsn_;
  copy->log_bytes_ = from.log_bytes_;
  copy->docs_ = from.docs_;
  copy->views_ = from.views_;
  copy->conflicts_ = from.conflicts_;
  copy->conflicts_trimmed_ = from.conflicts_trimmed_;
  copy->dead_letters_ = from.dead_letters_;
  copy->idempotency_ = from.idempotency_;
  copy->by_time_ = from.by_time_;
  copy->frontier_ = from.frontier_;
  copy->folded_ = from.folded_;
  copy->reseed_ = from.reseed_;
  copy->hlc_ = from.hlc_;
  copy->last_lsn_ = from.last_lsn_;
  copy->digest_ = from.digest_;
  copy->document_count_ = from.document_count_;
  copy->record_digests_ = from.record_digests_;
  copy->members_ = from.members_;
  copy->saved_leaves_ = from.saved_leaves_;
  copy->touched_ = from.touched_;
  copy->marks_ = from.marks_;
  copy->repairs_ = from.repairs_;
  copy->repair_count_ = from.repair_count_;
  copy->id_reservation_ = from.id_reservation_;
  return copy;
}

void DamageMemoryStore(Store& store, std::string_view key, bool lose) {
  dynamic_cast<MemoryStore&>(store).Damage(key, lose);
}

}  // namespace meridian::storage
