// Store: the durable state of one region node, behind an interface so that the same node logic
// runs on RocksDB (RocksDbStore) and, in tests and the simulator, in memory (MemoryStore).
//
// What a store holds (docs/storage.md has the key layouts):
//   - the event log: every event applied here, by dot (origin, seq), with its local position;
//   - the change order: local position (lsn: 1, 2, 3, ... in apply order) -> dot and the document
//     as that event left it, which resumed watches replay;
//   - documents: key -> canonical DocumentState encoding (core/document.h) and, when the document
//     exists, its rendered JSON (the read model) and digest;
//   - the digest index (which documents exist, by key-hash bucket) and the digest tree's saved
//     leaves with a journal of the buckets changed since (docs/verification.md);
//   - node metadata: the applied frontier, the last HLC, the last lsn;
//   - the conflict log and the dead-letter store (JSON records by sequence);
//   - where the change order and the conflict log start: both are trimmed from their oldest end
//     (TrimChanges, TrimConflicts), so that they stay bounded;
//   - idempotency records: an idempotency key -> the receipt of the write that first used it,
//     with the time it was written, so that a retried write answers the original receipt;
//   - the unique-id reservation (one number: node/id_generator.h).
//
// Every step of the node is one Commit: all of a batch becomes durable at once or not at all.
// Implementations are thread-safe: reads may run concurrently with one Commit at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/hlc.h"
#include "core/version_vector.h"
#include "meridian/status.h"

namespace meridian::storage {

struct DocumentWrite {
  std::string key;
  std::string state;                    // DocumentState::Encode(); empty: erase the document
  std::optional<std::string> rendered;  // the view; nullopt: the document does not exist
  // core::RenderedDigest of the view (0: the document does not exist), kept in the record.
  uint64_t digest = 0;
  // The document enters the digest index (core/digest_tree.h: which documents exist, by bucket)
  // when `rendered` is set, or leaves it when not. Set only when that changes: a document that
  // only changes rewrites its record alone.
  bool reindex = false;
};

// A document's record as stored (Store::GetDocument).
struct StoredDocument {
  std::string state;                // DocumentState::Encode()
  std::optional<std::string> view;  // nullopt: the document does not exist (metadata kept)
  uint64_t digest = 0;              // the digest recorded with the view (DocumentWrite::digest)
};

// The digest tree's leaves as last saved (Store::SaveTree), and the buckets that commits changed
// since (CommitBatch::touched), whose saved leaves may be stale.
struct SavedTree {
  std::vector<uint64_t> leaves;  // core::DigestTree::kBuckets of them (zeros: never saved)
  std::vector<uint32_t> stale;   // sorted, no repeats
};

// A document found damaged (its record lost or unreadable, or holding less than the region
// applied), kept until a repair restores it: docs/verification.md.
struct DamageMark {
  std::string key;
  std::string reason;  // empty in CommitBatch::marks: the mark is removed (repaired)
};

struct LoggedEvent {
  core::Dot dot;
  uint64_t lsn = 0;
  std::string bytes;                    // core::EncodeEvent (empty from ReadChanges)
  std::optional<std::string> rendered;  // the document just after this event; nullopt: absent
  std::string key;                      // the event's document key
  core::HlcTimestamp hlc = 0;           // the event's HLC
  // The event's trace context (core/trace.h), in memory only (the log holds it in `bytes`): what
  // a commit hands its watchers. Empty from ReadChanges.
  std::string trace = {};
};

// An idempotency record: the node encodes the receipt; the store keeps it by key and by time.
struct IdempotencyRecord {
  std::string key;
  uint64_t time_ms = 0;  // when it was written (physical clock of the region)
  std::string record;    // empty in ExpiredIdempotency's answer
};

// One atomic step.
struct CommitBatch {
  std::vector<LoggedEvent> events;
  // Change-log entries that are no event of the log (bytes unused): documents a re-seed merged.
  std::vector<LoggedEvent> changes;
  std::vector<DocumentWrite> documents;
  core::VersionVector frontier;  // the frontier after this batch
  // The fold bound after this batch (core/state_merge.h): covers every vector a stored document
  // was folded with.
  core::VersionVector folded;
  // A re-seed's progress as the node encodes it (node::Region); empty: no re-seed under way.
  std::string reseed;
  core::HlcTimestamp hlc = 0;             // the clock after this batch
  uint64_t document_count = 0;            // how many documents exist after this batch
  uint64_t digest = 0;                    // XOR of RenderedDigest over every existing document
  std::vector<std::string> conflicts;     // JSON records, appended to the conflict log
  std::vector<std::string> dead_letters;  // JSON records, appended to the dead-letter store
  // Records that replace dead letters already stored (by id: 1 .. DeadLetterCount()).
  std::vector<std::pair<uint64_t, std::string>> dead_letter_updates;
  // Events written to the event log only, with no change-log entry: events parked as dead letters
  // (docs/replication.md#dead-letters), logged so that this region still relays them. Their lsn
  // is the last change before them (they changed nothing); `rendered` is unused.
  std::vector<LoggedEvent> parked;
  std::vector<DamageMark> marks;  // damage marks to set (or, reason empty, remove)
  // The buckets whose tree leaves this batch changes: journaled (one record) until the next
  // SaveTree, so that a restart recomputes those leaves from the documents.
  std::vector<uint32_t> touched;
  std::vector<std::string> repairs;            // JSON records, appended to the repair log
  std::vector<IdempotencyRecord> idempotency;  // records to add (or replace)
  // Records past their window (from ExpiredIdempotency), removed before `idempotency` is added.
  // A record is removed only when it is still the one written at that time.
  std::vector<IdempotencyRecord> idempotency_expired;
};

// Where the trimmed logs start: the change order holds every change from oldest_lsn to the last
// lsn, the conflict log every record from oldest_conflict to ConflictCount().
struct KeptLogs {
  uint64_t oldest_lsn = 1;       // 1: nothing trimmed
  uint64_t oldest_conflict = 1;  // 1: nothing trimmed
};

// What a node needs to resume after a restart.
struct RecoveredState {
  core::VersionVector frontier;
  core::VersionVector folded;  // CommitBatch::folded
  std::string reseed;          // CommitBatch::reseed
  core::HlcTimestamp hlc = 0;
  uint64_t last_lsn = 0;
  uint64_t documents = 0;
  uint64_t digest = 0;
};

// A consistent, read-only view of a store's documents and frontier at one moment: what a peer
// streams to a region it re-seeds (docs/replication.md#re-seeding). It keeps the store's state as
// of then readable while it lives (on RocksDB, a snapshot: keep it short-lived). Not thread-safe.
class StoreSnapshot {
 public:
  virtual ~StoreSnapshot() = default;
  // The position record as of the snapshot: the frontier the documents reflect (every document
  // holds every event it covers), the fold bound they were folded within, the clock (at or above
  // the HLC of every event the frontier covers), the number of documents that exist.
  virtual const RecoveredState& position() const = 0;
  // Whether the document `key` was marked damaged (CommitBatch::marks) at the snapshot.
  virtual Result<bool> Damaged(std::string_view key) = 0;
  // As Store::ScanDocumentStates, at the snapshot.
  virtual Result<bool> ScanDocumentStates(
      std::string_view after, size_t limit,
      const std::function<void(std::string_view, std::string_view)>& visit) = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // Makes the batch durable (fsync when the store is configured to sync) before returning.
  virtual Status Commit(const CommitBatch& batch) = 0;

  virtual Result<RecoveredState> Recover() = 0;

  // A consistent view of the documents and the frontier as of now.
  virtual Result<std::unique_ptr<StoreSnapshot>> TakeSnapshot() = 0;
  // Removes every document (states and views; not the logs): a re-seed that starts from nothing.
  // The next Commit records the document count and digest the caller then holds.
  virtual Status ClearDocuments() = 0;

  virtual Result<std::optional<std::string>> GetDocumentState(std::string_view key) = 0;
  virtual Result<std::optional<std::string>> GetView(std::string_view key) = 0;

  // Calls visit(key, rendered) for up to `limit` existing documents whose key starts with
  // `prefix` and is greater than `after`, in key order. Returns whether more remain.
  virtual Result<bool> ScanViews(
      std::string_view prefix, std::string_view after, size_t limit,
      const std::function<void(std::string_view, std::string_view)>& visit) = 0;

  // Calls visit(key, state) for up to `limit` stored document states (DocumentState::Encode; of
  // deleted documents too, until their metadata is folded away) with keys greater than `after`,
  // in key order. Returns whether more remain.
  virtual Result<bool> ScanDocumentStates(
      std::string_view after, size_t limit,
      const std::function<void(std::string_view, std::string_view)>& visit) = 0;

  // The local position of an applied event, or nullopt when it is not in the log.
  virtual Result<std::optional<uint64_t>> LsnOf(core::Dot dot) = 0;
  // Calls visit for up to `limit` changes with lsn > after_lsn, in lsn order: dot, lsn, key, hlc
  // and rendered document (not the event's bytes). The change order outlives log retention; it
  // starts at Kept().oldest_lsn, so a read from below that skips what was trimmed.
  virtual Status ReadChanges(uint64_t after_lsn, size_t limit,
                             const std::function<void(const LoggedEvent&)>& visit) = 0;

  // Change-order trimming: removes every change with lsn < before_lsn, in one atomic write that
  // also records the new start (Kept().oldest_lsn = before_lsn, also after a reopen). A
  // before_lsn at or below the current start changes nothing; one beyond the last committed lsn
  // + 1 is kInvalidArgument. The event log is not touched. Runs one at a time with Commit.
  virtual Status TrimChanges(uint64_t before_lsn) = 0;
  // The same for the conflict log: removes the records with sequence numbers below before_seq
  // (at most ConflictCount() + 1). ConflictCount() still counts them.
  virtual Status TrimConflicts(uint64_t before_seq) = 0;
  // Where the change order and the conflict log start now.
  virtual Result<KeptLogs> Kept() = 0;

  // Calls visit for up to `limit` logged events of `origin` with seq >= from_seq, in seq order
  // (what a region sends a peer that has applied up to from_seq - 1).
  Status ReadLog(core::RegionId origin, uint64_t from_seq, size_t limit,
                 const std::function<void(const LoggedEvent&)>& visit) {
    return ReadLogWhile(origin, from_seq, limit, [&visit](const LoggedEvent& event) {
      visit(event);
      return true;
    });
  }
  // The same, stopping early (before reading further) once visit returns false.
  virtual Status ReadLogWhile(core::RegionId origin, uint64_t from_seq, size_t limit,
                              const std::function<bool(const LoggedEvent&)>& visit) = 0;

  // Log retention: removes the logged events of `origin` with seq <= through_seq (the change
  // order and documents stay). Afterwards ReadLog starts past them and LsnOf does not find them.
  virtual Status TrimLog(core::RegionId origin, uint64_t through_seq) = 0;
  // About how many bytes the event log holds.
  virtual Result<uint64_t> LogBytes() = 0;

  // The newest `limit` conflict records kept, newest first.
  virtual Result<std::vector<std::string>> RecentConflicts(size_t limit) = 0;
  // How many conflict records were ever appended (trimmed ones included): the last sequence
  // number.
  virtual Result<uint64_t> ConflictCount() = 0;
  // How many dead letters were ever appended: the last id.
  virtual Result<uint64_t> DeadLetterCount() = 0;
  // The dead letter `id` (its JSON record as last written), or nullopt when there is none.
  virtual Result<std::optional<std::string>> GetDeadLetter(uint64_t id) = 0;
  // Calls visit(id, record) for up to `limit` dead letters with ids > after_id, in id order.
  // Returns whether more remain.
  virtual Result<bool> ScanDeadLetters(
      uint64_t after_id, size_t limit,
      const std::function<void(uint64_t, std::string_view)>& visit) = 0;
  // The newest `limit` dead letters, newest first, each with its id.
  virtual Result<std::vector<std::pair<uint64_t, std::string>>> RecentDeadLetters(size_t limit) = 0;

  // The document record of `key`: state, view and recorded digest (nullopt: no record).
  // kCorruption when the record does not decode.
  virtual Result<std::optional<StoredDocument>> GetDocument(std::string_view key) = 0;

  // The digest index (docs/storage.md): the keys of the existing documents by bucket, kept by
  // Commit from DocumentWrite::reindex. Calls visit(key) for each document of `bucket`, in key
  // order.
  virtual Status ScanBucket(uint32_t bucket,
                            const std::function<void(std::string_view)>& visit) = 0;
  // Whether the index lists `key`.
  virtual Result<bool> Indexed(std::string_view key) = 0;
  // The tree's leaves as last saved and the buckets touched since (SavedTree).
  virtual Result<SavedTree> LoadTree() = 0;
  // Saves the leaves (core::DigestTree::kBuckets of them) of the chunks listed (chunk c: leaves
  // c * kTreeChunk .. + kTreeChunk - 1; the others are saved as they are) and empties the journal
  // of touched buckets, in one atomic write. Runs one at a time with Commit; need not be synced
  // (a save lost with the journal it empties leaves both as they were).
  static constexpr uint32_t kTreeChunk = 256;
  virtual Status SaveTree(std::span<const uint64_t> leaves, std::span<const uint32_t> chunks) = 0;
  // Rebuilding the index from the documents (once, when it does not match them): removes every
  // entry, the saved leaves and the journal, then adds entries page by page. Not atomic: run
  // before the node commits anything.
  virtual Status ClearDigests() = 0;
  virtual Status PutMembers(std::span<const std::string> keys) = 0;
  // The damage marks set (CommitBatch::marks), in key order, up to `limit`.
  virtual Result<std::vector<DamageMark>> DamageMarks(size_t limit) = 0;
  // The newest `limit` repair records kept, newest first, and how many were ever appended. The
  // repair log keeps the newest kRepairsKept records.
  static constexpr uint64_t kRepairsKept = 10'000;
  virtual Result<std::vector<std::string>> RecentRepairs(size_t limit) = 0;
  virtual Result<uint64_t> RepairCount() = 0;

  // The idempotency record of `key` and the time it was written, or nullopt.
  virtual Result<std::optional<IdempotencyRecord>> GetIdempotency(std::string_view key) = 0;
  // Up to `limit` records written before `before_ms`, oldest first (key and time only).
  virtual Result<std::vector<IdempotencyRecord>> ExpiredIdempotency(uint64_t before_ms,
                                                                    size_t limit) = 0;
  // About how many idempotency records the store holds (for status and metrics).
  virtual Result<uint64_t> IdempotencyCount() = 0;

  // The unique-id reservation (node/id_generator.h): a millisecond of the ids' clock that every
  // id this region has issued lies below; 0 when none was ever saved. One record.
  virtual Result<uint64_t> IdReservation() = 0;
  // Replaces it, durably before returning: synced whatever the store's sync setting, because the
  // ids issued after a restart rely on it. Runs one at a time with Commit.
  virtual Status SaveIdReservation(uint64_t reservation) = 0;
};

}  // namespace meridian::storage
