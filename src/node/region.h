// Region: the durable state machine of one region node. It turns groups of local writes into
// events and commits each group — log, documents, views, frontier, conflicts — as one atomic,
// durable Store batch (group commit: one fsync for the whole group).
//
// No threads or sockets here: the WriteQueue calls CommitLocalWrites from its single commit
// thread; frontier() may be called from any thread.
#pragma once

#include <atomic>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/causal_order.h"
#include "core/digest_tree.h"
#include "core/document.h"
#include "core/escrow.h"
#include "core/event.h"
#include "core/hlc.h"
#include "core/transaction.h"
#include "core/version_vector.h"
#include "meridian/status.h"
#include "node/dead_letter.h"
#include "node/homes.h"
#include "node/locks.h"
#include "node/view_cache.h"
#include "storage/store.h"

namespace meridian::node {

using core::Condition;
using core::KeyedOperation;
using core::Transaction;

struct WriteRequest {
  WriteRequest() = default;
  WriteRequest(std::string key, core::Operation op, std::string idempotency_key = {})
      : key(std::move(key)), op(std::move(op)), idempotency_key(std::move(idempotency_key)) {}

  std::string key;
  core::Operation op;
  // When not empty: a retry of a write already committed with this key (within the region's
  // idempotency window) is not applied again; it answers the original receipt. The API checks
  // its form (api::ValidIdempotencyKey).
  std::string idempotency_key;
  // If-Match / If-None-Match (its key is `key`): when it does not hold, the write is refused with
  // kPreconditionFailed and changes nothing.
  std::optional<Condition> condition;
  // When set, the request is this transaction (`key` and `op` are unused). Its `condition`, if
  // any, guards it: when it does not hold, kPreconditionFailed and nothing is written (a
  // two-phase commit's decision, refused once the transaction is decided).
  std::shared_ptr<const Transaction> txn;
  // consistency=strong (docs/semantics.md#home-regions): refused with kNotHome unless this region
  // is the home of the key (of every key of a transaction) when the write commits, atomically
  // with it. For a home record (`system`): a planned move, refused unless this region is the
  // home of the record's prefix.
  bool strong = false;
  // The receipt carries the rendered document just before and just after the write
  // (Receipt::document_before, Receipt::document): what an answer shows of the write's own effect
  // (the Redis port's INCR and HSET), whatever commits before or after it.
  bool want_document = false;
  // Written by the node itself: only such writes may touch keys under kSystemKeyPrefix.
  bool system = false;
  // The write's trace context (core/trace.h: 25 bytes, or empty), kept with its event (each event
  // of a transaction) and carried to every region (docs/operations.md#tracing).
  std::string trace = {};
  // A two-phase commit's prepare (docs/semantics.md#transactions-across-homes): a strong system
  // transaction of lock records, each refused unless this region is the home of the key it
  // locks and no other transaction holds it; a lock this transaction holds already is kept.
  std::string lock_txn = {};
};

// A move of a prefix's home (docs/semantics.md#moving-a-home) to `next` (its epoch one more):
// the home record's write. A planned move is strong, refused unless this region is the prefix's
// home when it commits; a forced one (next.forced) is not.
WriteRequest HomeMoveWrite(const HomeTable& homes, const Home& next);

// What a durable write returns to its client.
struct Receipt {
  core::Dot dot;  // a transaction's last event; {0, 0} when its branch wrote nothing
  core::HlcTimestamp hlc = 0;
  core::VersionVector frontier;  // the region's frontier just after the write (the session)
  bool replayed = false;         // the original receipt of an earlier write with the same key
  bool succeeded = true;         // a transaction: whether its conditions held
  std::vector<core::Dot> events = {};  // a transaction: its branch's events, in order
  // A single write: the document's version after it (core::DocumentVersion; empty when the
  // write left no document, and in a replayed receipt).
  std::string version = {};
  // With WriteRequest::want_document, a single write: the rendered document just after it, in the
  // order of its group (nullopt when the write left none).
  std::optional<std::string> document = {};
  // Likewise, the rendered document just before it (nullopt: there was none).
  std::optional<std::string> document_before = {};
};

// A committed change of one document, as watches see it.
struct Change {
  std::string key;
  std::optional<std::string> doc;  // rendered; nullopt when the document no longer exists
  // The event that made it; {0, 0} for a document a re-seed merged (no one event made it).
  core::Dot dot;
  bool merged() const { return dot.origin == 0; }
  core::HlcTimestamp hlc = 0;
  uint64_t lsn = 0;
  std::string trace = {};  // the event's trace context (core/trace.h); empty: not traced
};

// What ApplyRemoteEvents did with a batch of events from another region.
struct RemoteApply {
  size_t applied = 0;     // merged and durable
  size_t duplicates = 0;  // already applied here (or this region's own)
  size_t gaps = 0;        // ahead of a missing predecessor of their origin: not applied
  std::vector<core::HlcTimestamp> applied_hlcs;  // of the applied events, in order
  // Events parked as dead letters (docs/replication.md#dead-letters): durable, their dots covered
  // by the frontier, their documents left as they were.
  struct Parked {
    uint64_t id = 0;  // the dead letter's
    core::Dot dot;
    std::string key;  // empty: unreadable
    std::string reason;
  };
  std::vector<Parked> parked;
  // The readable keys of `parked`, each once: documents that now lack an event the frontier
  // covers (candidates for repair from a peer).
  std::vector<std::string> parked_keys;
};

// One batch of another region's events as the commit path takes it: the events that decoded and
// those the decoder parked (core::RemoteBatch), each in seq order per origin. Views: the caller
// keeps the events alive during the call.
struct RemoteEvents {
  RemoteEvents(std::span<const core::Event> events,  // NOLINT: implicit by design
               std::span<const core::ParkedEvent> parked = {})
      : events(events), parked(parked) {}
  RemoteEvents(const std::vector<core::Event>& events)  // NOLINT: implicit by design
      : events(events) {}
  RemoteEvents(const core::RemoteBatch& batch)  // NOLINT: implicit by design
      : events(batch.events), parked(batch.parked) {}
  std::span<const core::Event> events;
  std::span<const core::ParkedEvent> parked;
};

// What RetryDeadLetter did.
struct DeadLetterRetry {
  enum class Outcome {
    kApplied,      // merged into its document and durable; the record says `applied`
    kStillParked,  // it still does not decode: the record stays `parked`, with the new reason
    kNotParked,    // the record is not `parked` (applied or resolved before): nothing done
    kUnknown,      // no dead letter has this id
    kResolved,     // taken out of the queue without applying it (ResolveDeadLetter)
  };
  Outcome outcome = Outcome::kUnknown;
  DeadLetter letter;  // as it is now (not for kUnknown)
};

struct CommitStats {
  uint64_t commits = 0;
  uint64_t events = 0;         // local writes committed
  uint64_t remote_events = 0;  // events of other regions committed
  uint64_t conflicts = 0;
};

class Region {
 public:
  // names: region id -> name, for event ids and conflict records.
  // document_cache_max: how many recently written documents the commit path keeps decoded (and
  // rendered) in memory, sparing a read and a decode when they are written again. `views`, when
  // given, receives every committed view before the frontier covers it, so that a reader whose
  // session the frontier covers never finds an older view there.
  Region(core::RegionId id, std::map<core::RegionId, std::string> names, storage::Store* store,
         core::PhysicalClock* clock, core::Limits limits, uint64_t max_skew_ms,
         size_t document_cache_max = 65536, ViewCache* views = nullptr);

  // Loads the frontier, clock and log position from the store. Call once before anything else.
  // With a home table (SetHomes before), also the home records the store holds.
  Status Recover();

  // The home table strong writes are checked against and home records update (from the commit
  // path, once durable). Optional; call before Recover.
  void SetHomes(HomeTable* homes) { homes_ = homes; }
  HomeTable* homes() const { return homes_; }
  // Whether this region may answer a consistency=strong read of `key` now
  // (docs/semantics.md#home-regions): it is the key's home by its table, and its copy holds every
  // write it acknowledged as the home that any region still holds, so it is neither rebuilding
  // (its store was lost or restored from an older copy: what it acknowledged since may be back
  // only once its peers have sent it) nor re-seeding (kRebuilding), and the copy is not marked
  // damaged (an event of it parked as a dead letter, a damaged record: kUnavailable). Strong
  // writes are refused in the same cases (the write gate, and the commit path's check of the
  // home). kNotHome when it is not the home. Thread-safe.
  Status CheckStrongRead(std::string_view key) const;
  // The two-phase transactions' locks as this region has committed them (every region's).
  const LockTable& locks() const { return locks_; }

  // How long an idempotency key is remembered (default 24 h); 0 keeps records for ever. Expired
  // records are removed with later commits, a bounded number at a time. Call before commits.
  void SetIdempotencyWindow(uint64_t window_ms) { idempotency_window_ms_ = window_ms; }

  // How many of the newest changes the change log keeps (watch.changes_kept) and how many of the
  // newest records the conflict log keeps (storage.conflicts_kept); 0 keeps everything, the
  // default. TrimLogs enforces them. Call before commits.
  void SetLogBounds(uint64_t changes_kept, uint64_t conflicts_kept) {
    changes_kept_ = changes_kept;
    conflicts_kept_ = conflicts_kept;
  }
  // Trims the change log and the conflict log down to their bounds, each with one store trim
  // (one range deletion, however much it removes), so a pass is short however far behind it is.
  // Between passes the logs grow past their bounds by what was committed meanwhile. A watch
  // replaying the change log is not waited for: it finds the gap and ends (api::ReadBacklog).
  // Commit thread only.
  Status TrimLogs();

  // Applies the writes in order and commits them as one durable batch. Each write's operation
  // must hold canonical JSON values (api::ParseRequest or core::NormalizeOperation made it). On
  // return (*outcomes)[i] is writes[i]'s receipt or the error that refused it (a refused write
  // changes nothing; the others still commit). When the commit itself fails, every write fails with
  // kUnavailable and the region's state is as before. Appends the committed changes to *changes.
  void CommitLocalWrites(std::span<const WriteRequest> writes,
                         std::vector<Result<Receipt>>* outcomes, std::vector<Change>* changes);

  // Merges events that other regions wrote and commits them as one durable batch, with the new
  // frontier (the replication receive path). Events of one origin must come in seq order: a
  // duplicate is skipped, an event ahead of a gap is counted and left to the caller. Remote events
  // are merged whatever their size (refusing one would stop convergence); their HLCs advance the
  // clock (and count as skew when far ahead). kUnavailable when the commit fails; the region's
  // state is then as before. Appends the committed changes to *changes.
  //
  // Events the decoder parked (RemoteEvents::parked) follow the same order, duplicate and gap
  // rules by their dots, and a parked event that is next advances the frontier like an applied
  // one, so its origin does not stall behind it; but it is not merged. It becomes a dead letter
  // in the same commit (a record with its raw bytes, docs/replication.md#dead-letters) and goes
  // into the event log as its dot (so that this region relays it), its document is not folded
  // while the dead letter is pending, and RemoteApply::parked says what was parked.
  Result<RemoteApply> ApplyRemoteEvents(const RemoteEvents& events, std::vector<Change>* changes);

  // Both of the above as one durable batch (one fsync): the remote batches first, in order, then
  // the local writes. (*remote_outcomes)[i] answers remote[i]. When the commit fails, every
  // accepted write and every remote batch fails with kUnavailable and nothing changed.
  void Commit(std::span<const WriteRequest> writes, std::vector<Result<Receipt>>* outcomes,
              std::span<const RemoteEvents> remote,
              std::vector<Result<RemoteApply>>* remote_outcomes, std::vector<Change>* changes);

  // --- dead letters (docs/replication.md#dead-letters) ---
  // The newest event schema version the region reads when it applies a dead letter: always
  // core::kEventSchemaVersion in a node; tests raise it to model a build that reads a newer
  // version. Call before RecoverDeadLetters.
  void SetSchemaVersionMax(uint32_t version) { schema_version_max_ = version; }
  uint32_t schema_version_max() const { return schema_version_max_; }
  // After Recover, before any commit: rebuilds the set of documents with a pending (parked) dead
  // letter from the store, then applies every parked dead letter that was parked for its schema
  // version only and now decodes (an upgraded build), as RetryDeadLetter does, appending each
  // one applied to *applied. Commit thread (or before it starts).
  Status RecoverDeadLetters(std::vector<DeadLetter>* applied, std::vector<Change>* changes);
  // Applies the parked dead letter `id` again, through the commit path: decoded with this
  // region's reading, merged into its document like a remote event (its dot is already covered
  // by the frontier: no ordering, no frontier change), with a change-log entry (appended to
  // *changes) and, while the event log still holds its dot, the log entry's lsn moved to that
  // change, so a watch resuming from its id resumes after it. The record becomes `applied` in
  // the same commit. A store failure is the error. Commit thread only.
  Result<DeadLetterRetry> RetryDeadLetter(uint64_t id, std::vector<Change>* changes);
  // Takes the parked dead letter `id` out of the queue without applying it (`resolved`): its
  // document was brought in line otherwise (repaired from a peer). Answers kResolved, kNotParked
  // or kUnknown.
  // Commit thread only.
  Result<DeadLetterRetry> ResolveDeadLetter(uint64_t id, std::vector<Change>* changes);
  // How many documents have a pending dead letter; thread-safe.
  size_t documents_with_dead_letters() const { return pending_documents_.load(); }

  // Folding causally stable metadata (DocumentState::Fold): without it every increment and every
  // overwritten value's dot stays in its document for ever. A vector is stable once every region
  // is known to have applied it, learnt from the contexts of the events applied here and from
  // the frontiers peers report (ObserveFrontier): every event still to come then has a context
  // covering it (the rules are core::CausalOrder's). The commit path folds each document it
  // writes; FoldSweep folds the others.

  // Region `origin` reported that it has applied `frontier` (a replication heartbeat). Used only
  // once this region has applied every event `origin` had written by then. Thread-safe.
  void ObserveFrontier(core::RegionId origin, const core::VersionVector& frontier);
  // The causally stable vector: the meet of this region's frontier and what every other region is
  // known to have applied; empty until every region has been heard from since this process
  // started. Thread-safe.
  core::VersionVector StableFrontier() const;
  // Folds up to `limit` stored documents (from where the last sweep stopped, wrapping around) that
  // hold metadata the stable vector makes unreachable, and commits them; deleted documents with
  // nothing left are removed. Renders do not change. A pass over every document starts only when
  // the stable vector has moved since the last one. Commit thread only. *folded: documents
  // rewritten.
  Status FoldSweep(size_t limit, size_t* folded);

  // Re-seeding (docs/replication.md#re-seeding) merges a peer's snapshot into this region as
  // state (core::MergeStates), page by page, so that nothing this region held is lost. One page:
  // the snapshot's document states with keys in (after, through], ascending; every document this
  // region stores in that range is merged too (with the empty state when the page lacks it: the
  // peer never had it, or removed it and folded it away). `through` nullopt: to the end of the
  // key space (the snapshot's last page); then the region's frontier becomes the join with the
  // snapshot's, the fold bound the join with the snapshot's, and the merge is over.
  //
  // Until then a page merged leaves documents holding events the frontier does not cover, so the
  // region is *merging*: what has been merged with which snapshot is recorded with every commit
  // (a node restarted midway goes on), local writes and remote batches are refused, and the
  // driver goes on with the same snapshot or, from its first page, with a newer one (a snapshot
  // whose frontier does not cover one already merged is refused, kUnavailable). A document
  // whose rendering the merge changed gets a change-log entry (appended to *changes) with no
  // event (Change::merged). Commit thread only.
  struct SnapshotPage {
    std::span<const std::pair<std::string, std::string>> states;
    std::string after;
    std::optional<std::string> through;
    core::VersionVector applied;  // the snapshot's frontier
    core::VersionVector folded;   // the snapshot's fold bound
    // The serving region's clock at the snapshot, at or above every covered event's HLC: the
    // clock observes it, so that a write here after the merge is ordered after all of them (the
    // states hold no HLC of an increment).
    core::HlcTimestamp hlc = 0;
    // The page's documents marked damaged at the serving region: marked here too (a comparison
    // then restores them from a region that holds them whole).
    std::span<const std::string> damaged = {};
  };
  Status MergeSnapshotPage(const SnapshotPage& page, std::vector<Change>* changes);
  // A re-seed's merge is under way (see MergeSnapshotPage). Thread-safe.
  bool merging() const;
  // Whether a start re-seeds before following the live streams: the region holds nothing and
  // must rebuild (`rebuild`: not the first start of a new deployment), or a merge is under way.
  bool ReseedsAtStart(bool rebuild) const { return (rebuild && frontier().empty()) || merging(); }
  // Removes every document and any merge under way (a re-seed of a region that held nothing,
  // when no region holds a copy). Commit thread only.
  Status ClearDocuments();

  // While rebuilding (docs/replication.md#rebuilding) local writes are refused with kRebuilding:
  // this region may be behind what its peers hold of its own events, and a write now could
  // reuse an event id. Its own events then arrive from its peers like any other region's, in seq
  // order. Thread-safe.
  void SetRebuilding(bool rebuilding) { rebuilding_.store(rebuilding); }
  bool rebuilding() const { return rebuilding_.load(); }

  core::VersionVector frontier() const;
  // The lsn of the last committed change (0: none). Thread-safe.
  uint64_t last_lsn() const;
  core::RegionId id() const { return id_; }
  std::string NameOf(core::RegionId id) const;
  // "us:42"
  std::string EventId(core::Dot dot) const;
  // Parses "us:42" back; false when the region name is unknown or the seq malformed.
  bool ParseEventId(std::string_view text, core::Dot* dot) const;
  uint64_t skew_count() const;
  CommitStats stats() const;
  uint64_t documents() const;
  // XOR of core::RenderedDigest over every existing document: equal in two regions that show
  // the same data. The root of the digest tree.
  uint64_t digest() const;

  // --- Verification and repair (docs/verification.md) ---------------------------------------
  // The digest tree over key-hash buckets (core/digest_tree.h), kept by every commit; the store's
  // digest index lists each bucket's documents, whose records hold their digests. Commits journal
  // the buckets they touch and the leaves are saved now and then (Store::SaveTree); Recover loads
  // the saved leaves, recomputes the journaled ones from the documents, and rebuilds the index
  // from the documents when the tree does not match them (index_rebuilt() then says so).
  // Thread-safe: the hashes of the children of each node of `nodes` at `level`, in order.
  std::vector<uint64_t> TreeChildren(uint32_t level, std::span<const uint32_t> nodes) const;
  // Calls visit(key, digest) for each document the index lists in `bucket`, in key order, with
  // the digest its record holds (0: the record is missing or does not decode). Any thread.
  Status BucketEntries(uint32_t bucket,
                       const std::function<void(std::string_view, uint64_t)>& visit) const;
  bool index_rebuilt() const { return index_rebuilt_; }
  // Off: commits keep neither the tree nor its journal, and documents lost or damaged do not
  // leave the digest (only to measure what keeping the tree costs, bench/verify_bench.cc; the
  // digest index and the documents' digests are kept either way); verification is then
  // meaningless. Before any commit.
  void SetDigestTree(bool on) { tree_on_ = on; }

  // Scrubbing: checks up to `limit` documents of the digest index, in at most
  // max(kScrubBucketsPerStep, limit) buckets, bucket after bucket from where the last step stopped
  // (wrapping around), against their records: a record that is missing, does not decode, or whose
  // state, view and digest disagree is damaged. A damaged document is marked (durably; its record
  // erased: it holds nothing trustworthy), leaves the tree, and is listed in the repair log; a
  // repair then restores it from a peer. Appends the changes (the erased documents) to *changes.
  // Commit thread only.
  struct ScrubStep {
    size_t checked = 0;
    size_t damaged = 0;
    bool pass_done = false;  // the step reached the last bucket
  };
  Result<ScrubStep> Scrub(size_t limit, std::vector<Change>* changes);
  // A bucket is one store seek even when empty: without this bound a small store's step sought
  // all 65,536 buckets at once, tens of milliseconds that held up the commits behind it.
  static constexpr uint32_t kScrubBucketsPerStep = 4096;

  // Rebuilding damaged documents from this region's own event log, which needs no peer: up to
  // `limit` documents marked damaged, none of whose events waits as a parked dead letter, each
  // take the state of applying again, in their local order, the logged events of that key. Only
  // while the log holds every event the frontier covers (never trimmed by retention, nothing
  // taken from a re-seed's snapshot, no re-seed under way); once it does not, it never will
  // again, and later calls return at once. Appends the changes (the restored documents) to
  // *changes; returns how many were restored. Commit thread only.
  Result<size_t> RebuildFromLog(size_t limit, std::vector<Change>* changes);
  static constexpr size_t kRebuildDocuments = 64;  // what the commit thread's sweep asks for
  // Not while the event log holds more than this many bytes (Store::LogBytes); 0: never.
  void SetRebuildLogBytesMax(uint64_t bytes) { rebuild_log_bytes_max_ = bytes; }

  // Documents marked damaged (by the scrub, by a read of their record, or because an event of
  // theirs was parked as a dead letter), until repaired. Thread-safe.
  size_t damaged_count() const;
  std::vector<std::string> DamagedKeys(size_t limit) const;
  bool IsDamaged(const std::string& key) const;

  // A repair compares documents that both regions hold as of the same events. The comparison
  // registers the keys (Watch) before it asks the peer for their states; every event merged into
  // a watched document is noted, so that Repair can tell a document changed since (by an event the
  // peer had not applied) from one the two regions disagree about. Thread-safe.
  void Watch(std::span<const std::string> keys);
  void Unwatch(std::span<const std::string> keys);

  // One region's states of some documents, consistent with its frontier and fold bound (read on
  // its commit thread): what a peer sends a region repairing.
  struct States {
    struct Entry {
      std::string key;
      std::optional<std::string> state;  // DocumentState encoding; nullopt: not held
      bool damaged = false;              // marked damaged there: not a source of repair
      bool indexed = false;              // its digest index lists it (it exists there)
    };
    std::vector<Entry> entries;
    core::VersionVector applied;
    core::VersionVector folded;
    core::HlcTimestamp hlc = 0;
  };
  // Commit thread only.
  Result<States> ReadStates(std::span<const std::string> keys);

  // Repairs this region's copies of the documents `peer` sent (ReadStates), which this region
  // watched from before it asked for them. Requires this region's frontier to cover the peer's
  // (else every document is deferred): then, for each document not changed here since it was
  // watched by an event the peer lacks, both copies reflect the same events and must render the
  // same. When they do not, the damaged copy is the one marked damaged or missing, and it takes
  // the other's state (merged: core::MergeStates with the empty side); a copy here that holds more
  // is kept (the peer repairs its own copy when it compares). Each difference found is appended
  // to the repair log; the documents restored get change-log entries with no event
  // (Change::merged), appended to *changes. Commit thread only.
  struct RepairOutcome {
    size_t equal = 0;     // the same (a difference found by the tree was in flight)
    size_t repaired = 0;  // this region's copy was restored from the peer's
    size_t theirs = 0;    // the peer's copy is the damaged one (it repairs itself)
    size_t deferred = 0;  // changed meanwhile, or not comparable now: compared again later
    std::vector<std::string> repaired_keys;
  };
  Result<RepairOutcome> Repair(core::RegionId peer, const States& states,
                               std::vector<Change>* changes);
  core::HlcTimestamp hlc() const;

  // --- Bounded counters (docs/semantics.md#bounded-counters) ---------------------------------
  // The command path checks every local write against the ledgers (core::StampLocalWrite, with
  // this region's configured regions for a declaration's split); a declaration the document
  // already holds with the same min is answered without an event (Receipt::dot {0, 0}).
  //
  // Rebalancing: a key is *due* for a round after a commit that applied another region's escrow
  // operations (a transfer to accept, a want to serve), after a local decrement was refused for
  // lack of rights (with the rights it needed), and after a local decrement left this region
  // below low_water; EscrowTick makes due again the keys whose last round moved rights or left
  // another region's want unmet (a round gives at most give_percent). EscrowRound decides, for up
  // to `keys_max` due keys, the events core::Rebalance says on each key's committed state, as
  // local writes for Commit, whose checks they pass again (or are refused, harmlessly, when a
  // write between changed the rights). The node's commit thread (WriteQueue) and the simulator
  // both drive it. Memory: the due keys and the keys kept for the tick are each at most
  // `keys_max` (SetEscrow); a key noted beyond that is dropped (counted) and is due again at its
  // next trigger. Rights given to this region while it was down are accepted at the next round
  // of that key (a transfer, want or refusal of it).
  void SetEscrow(const core::EscrowPolicy& policy, size_t keys_max);
  const core::EscrowPolicy& escrow_policy() const { return escrow_policy_; }
  // Commit thread only.
  bool escrow_due() const { return !escrow_due_.empty(); }
  void EscrowTick();
  std::vector<WriteRequest> EscrowRound(size_t keys_max);
  // Counters since the start; thread-safe.
  struct EscrowStats {
    uint64_t refusals = 0;      // decrements refused with bound_exceeded
    uint64_t declarations = 0;  // bounds declared here
    uint64_t transfers = 0;     // transfers this region wrote
    uint64_t accepts = 0;       // accepts this region wrote
    uint64_t wants = 0;         // wants this region wrote
    uint64_t rounds = 0;        // keys rebalanced (EscrowRound)
    uint64_t dropped = 0;       // keys not noted: the due set was full
  };
  EscrowStats escrow_stats() const;
  // The deployment's region ids (a declaration's split).
  const std::vector<core::RegionId>& regions() const { return regions_; }

 private:
  // A document as the commit path works on it.
  struct Loaded {
    core::DocumentState state;
    std::optional<std::string> rendered_before;  // as committed
    std::optional<std::string> rendered;         // after the writes applied so far
    std::string encoded = {};  // when not empty: state's encoding as it came (not encoded again)
    // Its record is damaged (missing while the index lists it, or unreadable) or not trusted: its
    // digest is unknown, so its bucket's leaf is recomputed from the bucket's other documents.
    bool lost = false;
    bool indexed = false;     // when lost: whether the index lists it (it then leaves the index)
    std::string damage = {};  // when not empty: found damaged now, why (marked with the commit)
  };
  // A missing record the index knows, or one that does not decode, is damaged: loaded as an
  // empty document, to be marked with the group's commit.
  Result<Loaded> Load(const std::string& key);

  // One commit being assembled (commit thread only): working copies of the region's position and
  // of every document it touches, and the batch for the store.
  struct Group {
    // Starts at the committed frontier with no known frontiers: it classifies and advances by the
    // group's events and learns what the remote ones show their origins had applied (see
    // ObserveFrontier). Joined into order_ once the group is durable.
    explicit Group(core::CausalOrder order) : order(std::move(order)) {}
    core::CausalOrder order;
    uint64_t lsn = 0;
    std::unordered_map<std::string, Loaded> dirty;
    storage::CommitBatch batch;
    std::vector<core::Conflict> conflicts;
    // Idempotency keys of this group's accepted writes -> (request fingerprint, outcome index).
    std::unordered_map<std::string, std::pair<uint64_t, size_t>> idempotent;
    core::VersionVector stable;  // every document staged is folded with it
    core::VersionVector folded;  // the fold bound after this group (covers folded_ and stable)
    bool cache = true;           // keep its documents in the document cache (not a re-seed's)
    std::vector<std::string> repaired;  // damaged documents this group restores (marks go)
    uint64_t dead_letters = 0;          // the store's dead-letter count before the group's
    // Keys of the dead letters this group parks, with how many each: not folded from then on.
    std::unordered_map<std::string, uint32_t> parked_keys;
    bool atomic = false;  // holds a transaction of several events: published as one (Finish)
    // Home records this group changed (prefix -> home): strong writes staged after them see them.
    std::map<std::string, Home, std::less<>> homes;
    // Lock records this group changed (locked key -> lock, nullopt: released), the same way.
    std::map<std::string, std::optional<Lock>, std::less<>> locks;
  };
  // A local write's keys: kInvalidArgument for a client's write under kSystemKeyPrefix; for a
  // strong write, kNotHome unless this region is the home of each (CheckHome).
  Status CheckWriteKeys(const Group& group, const WriteRequest& write) const;
  // Whether this region is the home of `key` as the group sees it (kNotHome when not).
  Status CheckHome(const Group& group, std::string_view key) const;
  // kNotHome unless `home` (the home of `key`) is this region.
  Status IsHome(const std::optional<Home>& home, std::string_view key) const;
  // For a strong operation: kUnavailable when this region's copy of `key` is marked damaged (or
  // `parked_now`: the group parks one of its events), so it may lack a write it should show.
  Status CheckWhole(std::string_view key, bool parked_now) const;
  // kLocked when a two-phase transaction other than `txn` holds `key`, as the group sees it.
  Status CheckUnlocked(const Group* group, std::string_view key, std::string_view txn) const;
  // After an event of a record under kSystemKeyPrefix (a home or a lock) merged into the group:
  // the group's view of it.
  void NoteSystemRecord(Group& group, const std::string& key,
                        const std::optional<std::string>& doc);
  Group BeginGroup();
  // The group's working copy of a document, loaded on first use.
  Result<Loaded*> Stage(Group& group, const std::string& key);
  // Merges an event into its document's working copy and into the batch; returns the rendered
  // document. With enforce_size, refuses (kTooLarge, nothing changed) a document that would
  // render larger than limits.document_bytes_max. With advance (all but a dead letter applied
  // again), the event must be next of its origin and advances the group's frontier.
  Result<std::optional<std::string>> Merge(Group& group, Loaded& loaded, const core::Event& event,
                                           bool enforce_size, bool advance = true);
  // Stages a transaction in the group: its conditions, then its branch's operations as
  // consecutive events (each saying how many follow), or nothing at all when one of them is
  // refused (its error, naming the operation).
  Result<Receipt> StageTransaction(Group& group, const Transaction& txn, const std::string& trace);
  // Parks `parked` (next of its origin) in the group: frontier, event log, dead-letter record.
  Status Park(Group& group, const core::ParkedEvent& parked, RemoteApply* outcome);
  // Whether the document has a pending dead letter (committed, or parked by the group): it is
  // not folded.
  bool Pending(const Group& group, const std::string& key) const;
  // After a group committed: its parked keys become pending.
  void NotePending(const Group& group);
  void NoteNoLongerPending(const std::string& key);
  // Commits the group; on success publishes its position and caches, and appends its changes.
  Status Finish(Group& group, size_t local_events, size_t remote_events,
                std::vector<Change>* changes);
  void Remember(const std::string& key, core::DocumentState state,
                std::optional<std::string> rendered);
  std::string ConflictJson(const core::Conflict& conflict) const;
  // The receipt recorded for `write.idempotency_key` within the window (replayed), nullopt when
  // there is none, kIdempotencyKeyReused when it was recorded for a different request.
  Result<std::optional<Receipt>> FindReplay(const WriteRequest& write, uint64_t fingerprint,
                                            uint64_t now_ms);

  const core::RegionId id_;
  const std::map<core::RegionId, std::string> names_;
  const std::vector<core::RegionId> regions_;  // names_'s ids: the regions stability is over
  storage::Store* const store_;
  core::PhysicalClock* const physical_clock_;
  const core::Limits limits_;
  uint64_t idempotency_window_ms_ = 24 * 3600 * 1000;
  uint64_t idempotency_purged_ms_ = 0;  // commit thread only: when expiry last ran
  uint64_t changes_kept_ = 0;           // 0: no bound
  uint64_t conflicts_kept_ = 0;         // 0: no bound
  std::atomic<bool> rebuilding_{false};

  mutable std::mutex mutex_;  // guards the members below for readers on other threads
  core::HybridLogicalClock clock_;
  core::CausalOrder order_;  // the frontier and what other regions are known to have applied
  // The fold bound (core/state_merge.h): covers every vector a stored document was folded with;
  // recorded with every commit, since the stable vector starts empty after a restart.
  core::VersionVector folded_;
  // A re-seed's merge under way (MergeSnapshotPage), ascending by `through`: documents with keys
  // up to a layer's `through` (and above the previous layer's) hold what `applied` covers and
  // were folded within `folded`; documents above the last layer hold what the frontier covers.
  // Empty: no merge under way. Recorded with every commit.
  struct Layer {
    std::string through;
    core::VersionVector applied;
    core::VersionVector folded;
  };
  std::vector<Layer> layers_;
  static std::string EncodeLayers(const std::vector<Layer>& layers);
  static Result<std::vector<Layer>> DecodeLayers(std::string_view in);
  uint64_t last_lsn_ = 0;
  uint64_t documents_ = 0;
  uint64_t digest_ = 0;
  CommitStats stats_;
  // Commit thread only: where the next FoldSweep starts, the stable vector the current pass
  // began with, and the one the last complete pass folded with.
  std::string fold_cursor_;
  core::VersionVector pass_stable_;
  core::VersionVector swept_stable_;

  // The document cache: only the commit thread touches it. Holds committed state only.
  struct Cached {
    core::DocumentState state;
    std::optional<std::string> rendered;
    std::list<std::string>::iterator position;  // in lru_
    bool valid = true;  // false while a group has it checked out (state moved out)
  };
  // Verification: the tree (guarded by mutex_), damaged documents (mutex_), watched documents
  // (mutex_; a commit notes its events in them when it advances the frontier), where the scrub
  // goes on.
  core::DigestTree tree_;
  std::map<std::string, std::string, std::less<>> damaged_;  // key -> why it is marked
  static constexpr std::string_view kParkedReason = "an event of it was parked as a dead letter";
  // Marked, and only because events of it were parked: it holds all but them. Thread-safe.
  bool MarkedOnlyForParked(const std::string& key) const;
  struct Watched {
    int watchers = 0;
    std::vector<core::Dot> dots;  // covered by the frontier since the first watcher came (at most
                                  // kWatchDots)
    bool overflow = false;        // more than that: every repair of it is deferred
  };
  static constexpr size_t kWatchDots = 64;
  std::unordered_map<std::string, Watched> watched_;
  uint32_t scrub_bucket_ = 0;
  bool log_incomplete_ = false;  // RebuildFromLog found an event of the frontier not logged
  uint64_t marks_made_ = 0;      // commits that marked documents damaged (mutex_)
  uint64_t marks_tried_ = 0;     // marks_made_ when RebuildFromLog last looked (mutex_)
  uint64_t rebuild_log_bytes_max_ = 64 << 20;
  bool index_rebuilt_ = false;
  bool tree_on_ = true;
  // Leaves changed since the tree was last saved (commit thread only), and how many commits
  // journaled their buckets meanwhile: the tree is saved once either bound is reached, which
  // bounds the journal and the work of the next Recover.
  static constexpr uint32_t kSaveTreeBuckets = 16'384;
  static constexpr uint32_t kSaveTreeCommits = 4'096;
  std::vector<bool> unsaved_ = std::vector<bool>(core::DigestTree::kBuckets, false);
  uint32_t unsaved_buckets_ = 0;
  uint32_t unsaved_commits_ = 0;
  // The dead letter `id` as stored: kUnknown when there is none, else kNotParked with the record
  // (whatever its state: the caller acts on a parked one).
  Result<DeadLetterRetry> ParkedDeadLetter(uint64_t id);
  // What ParkedDeadLetter found is a parked dead letter (else the caller answers it as it is).
  static bool IsParked(const Result<DeadLetterRetry>& found);
  Status RebuildIndex();
  // The XOR of the recorded digests of the documents the index lists in `bucket`, leaving out
  // those whose records are damaged and the keys in `lost`; sets *unreadable when one listed
  // document has no readable record.
  Result<uint64_t> BucketLeaf(uint32_t bucket, const std::function<bool(std::string_view)>& lost,
                              bool* unreadable = nullptr);
  // Journaling, then saving, the leaves a commit changed (commit thread, after the commit).
  void NoteTreeSaved(std::span<const uint32_t> touched);
  // A watched document (Watch) changed by the event `dot` (mutex_ held).
  void NoteWatched(const std::string& key, core::Dot dot);
  std::string RepairJson(std::string_view key, core::RegionId peer, std::string_view problem,
                         std::string_view action, const std::optional<std::string>& before,
                         const std::optional<std::string>& after) const;

  HomeTable* homes_ = nullptr;
  LockTable locks_;
  // Bounded counters (commit thread only, but for the atomic counters).
  // Notes that `key` needs a round; `needs`: per field, the rights a refused decrement needed.
  void NoteEscrowDue(const std::string& key, const std::map<std::string, int64_t>& needs = {});
  // After a local write was refused with kBoundExceeded: the key is due with what it needed.
  void NoteEscrowRefusal(const std::string& key, const core::Operation& op);
  // A copy holding escrow events that wait for an earlier one of their origin lacks that one
  // (parked, or lost with a damaged copy or a peer's): it is marked damaged with the group, so
  // that it is repaired from a peer and is no source of repair itself. In a copy that applied
  // every event in order, nothing waits.
  static constexpr std::string_view kEscrowGapReason =
      "escrow events of it wait for an earlier one of their origin";
  void NoteEscrowGap(Loaded& loaded, const std::string& key);
  // A region decides escrow writes on its own account, which a damaged copy may hold only in
  // part (one of its own events parked, or lost with the copy): kUnavailable for an escrow
  // operation or an increment of a bounded field of a document marked damaged.
  Status EscrowWritable(const Loaded& loaded, const std::string& key, const core::Operation& op);
  // The committed state of a document without checking it out of the cache (nullopt: none, or
  // it does not read).
  std::optional<core::DocumentState> CommittedState(const std::string& key);
  core::EscrowPolicy escrow_policy_{};
  size_t escrow_keys_max_ = 10'000;
  std::unordered_map<std::string, std::map<std::string, int64_t>> escrow_due_;
  std::deque<std::string> escrow_due_order_;
  std::set<std::string> escrow_unsettled_;  // due again at the next tick
  struct EscrowCounters {
    std::atomic<uint64_t> refusals{0}, declarations{0}, transfers{0}, accepts{0}, wants{0},
        rounds{0}, dropped{0};
  } escrow_counters_;

  const size_t document_cache_max_;
  ViewCache* const views_;
  std::unordered_map<std::string, Cached> cache_;
  std::list<std::string> lru_;  // most recently written first

  // Dead letters. Commit thread only: the documents with a pending (parked) dead letter, with how
  // many each has. Neither the commit path nor FoldSweep folds them: Fold would drop metadata the
  // parked event needs when it is applied later. Memory: one entry per such document (its key and
  // a count, about 64 bytes beyond the key), bounded by the parked dead letters, which only an
  // event the region cannot read adds and a retry removes; rebuilt from the store at start.
  uint32_t schema_version_max_ = core::kEventSchemaVersion;
  std::unordered_map<std::string, uint32_t> pending_keys_;
  std::atomic<size_t> pending_documents_{0};
};

}  // namespace meridian::node
