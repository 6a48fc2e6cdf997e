// Node: one region's process, wired — store, region state machine, group-commit queue, watch hub,
// commit signal for session waits, metrics. The HTTP server (api/http_server.h) is its face.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "auth/secret_file.h"
#include "core/hlc.h"
#include "node/config.h"
#include "node/id_generator.h"
#include "node/identity.h"
#include "node/metrics.h"
#include "node/region.h"
#include "node/replication_board.h"
#include "node/trace_log.h"
#include "node/view_cache.h"
#include "node/watch_hub.h"
#include "node/write_queue.h"
#include "storage/store.h"

namespace meridian::node {

// Calls every registered listener after each commit (from the commit thread) and whenever a peer
// acknowledges events. Used by requests that wait for the frontier to cover a session token or for
// other regions to hold a write, and by replication streams that tail the log.
class CommitSignal {
 public:
  using Handle = std::list<std::function<void()>>::iterator;
  Handle Register(std::function<void()> listener);
  void Unregister(Handle handle);
  void Notify();

 private:
  std::mutex mutex_;
  std::list<std::function<void()>> listeners_;
};

class SystemClock final : public core::PhysicalClock {
 public:
  uint64_t NowMs() override;
};

class Node {
 public:
  // Opens the store under config.data_dir (RocksDB), or uses `store` when given (tests).
  static Result<std::unique_ptr<Node>> Open(const NodeConfig& config,
                                            std::unique_ptr<storage::Store> store = nullptr);
  ~Node();

  // Queues a local write; false when the queue is full (429) or the node is stopping. With
  // `defer`, the calling I/O thread commits the group itself (WriteQueue::Submit).
  bool SubmitWrite(WriteRequest request, WriteQueue::Callback callback,
                   const WriteQueue::Defer& defer = nullptr);
  // SubmitWrite, then waits for the outcome (kOverloaded when the queue is full). Blocking: not
  // on the commit thread or an I/O loop. The commit thread answers every queued write, also when
  // stopping.
  Result<Receipt> Write(WriteRequest request);
  // Queues a batch of other regions' events for the commit thread (replication); false when
  // stopping.
  // `dropped`: see WriteQueue::SubmitRemote.
  bool SubmitRemote(core::RemoteBatch events, WriteQueue::RemoteCallback callback,
                    std::shared_ptr<const std::atomic<bool>> dropped = nullptr);
  // The committed rendered document of `key` (nullopt: it does not exist), from memory when it
  // was written recently, else from the store. Thread-safe.
  Result<std::optional<std::string>> ReadView(std::string_view key);

  // Applies the parked dead letter `id` again on the commit thread (Region::RetryDeadLetter),
  // publishes its change to watches, then calls `done` there. False when stopping.
  bool SubmitDeadLetterRetry(uint64_t id, std::function<void(Result<DeadLetterRetry>)> done);

  // Runs `task` on the commit thread and waits for it (re-seeding: Region::MergeSnapshotPage,
  // Region::ClearDocuments). kUnavailable when the node is stopping.
  Status RunOnCommitThread(const std::function<Status()>& task);

  // Commits everything queued and refuses more. Idempotent.
  void Stop();

  const NodeConfig& config() const { return config_; }
  // The data directory's deployment, region and incarnation (an in-memory one for a store
  // handed to Open), and how it was found.
  const DataIdentity& identity() const { return identity_; }
  DataStart data_start() const { return data_start_; }
  // True when this start must hear from every peer what it holds of this region's own events
  // before writing: the directory started empty (without --bootstrap) or as a copy.
  bool confirm_own_events() const { return confirm_own_events_; }
  // True when this start must re-seed from a peer's snapshot before following the live streams:
  // it rebuilds and holds no events at all (an empty directory, or one whose re-seed was cut
  // short). docs/replication.md#re-seeding.
  bool needs_reseed() const { return needs_reseed_; }
  // While a re-seed installs a snapshot: this region serves none itself (its documents do not
  // match its frontier until the last page). Thread-safe.
  bool reseeding() const { return reseeding_.load(); }
  void set_reseeding(bool on) { reseeding_.store(on); }
  // The rebuild is done: recorded in the data directory, so the next start writes at once.
  // Thread-safe.
  void MarkRebuilt();
  Region& region() { return *region_; }
  HomeTable& homes() { return *homes_; }
  storage::Store& store() { return *store_; }
  WatchHub& watches() { return watches_; }
  CommitSignal& commits() { return commits_; }
  Metrics& metrics() { return metrics_; }
  ReplicationBoard& replication() { return replication_; }
  // The spans of traced writes recorded here (docs/operations.md#tracing).
  TraceLog& traces() { return traces_; }
  // This region's unique ids (POST /v1/ids). Thread-safe.
  IdGenerator& ids() { return *ids_; }
  size_t write_queue_depth() const { return queue_->depth(); }
  // [auth]: the secrets tokens are verified with (re-read when the file changes); null without
  // [auth], when every request is allowed.
  auth::SecretFile* secrets() { return secrets_.get(); }
  bool storage_failed() const;
  void ReportStorageFailure(const Status& status);
  double uptime_s() const;

 private:
  Node(NodeConfig config, std::unique_ptr<storage::Store> store);

  NodeConfig config_;
  std::unique_ptr<DataDirectory> directory_;  // held (locked) while the node runs
  std::unique_ptr<auth::SecretFile> secrets_;
  DataIdentity identity_;
  DataStart data_start_ = DataStart::kIntact;
  bool confirm_own_events_ = false;
  bool needs_reseed_ = false;
  std::atomic<bool> reseeding_{false};
  SystemClock clock_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<HomeTable> homes_;  // [[homes]] and the home records (docs/semantics.md)
  std::unique_ptr<Region> region_;
  WatchHub watches_;
  CommitSignal commits_;
  ViewCache views_;
  Metrics metrics_;
  ReplicationBoard replication_;
  TraceLog traces_;
  std::unique_ptr<WriteQueue> queue_;
  std::unique_ptr<IdGenerator> ids_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  mutable std::mutex failure_mutex_;
  bool storage_failed_ = false;
};

}  // namespace meridian::node
