// WriteQueue: group commit. Any thread submits writes; whoever leads takes everything pending (up
// to batch_max) and commits it through Region::Commit as one durable batch, so concurrent writers
// share an fsync and throughput rises with concurrency.
//
// Run to completion: a front end's I/O thread that submits with a `defer` commits the group
// itself, at the end of its event loop's turn (as redis fsyncs once per turn, and RocksDB's write
// group leaders do): no hand-off to another thread, and no wake-up to answer its own clients. The
// commit thread leads everything else: batches of other regions' events (replication), tasks,
// writes submitted without a `defer` (blocking callers), and the periodic sweeps. One leader at a
// time (leader_active_, under mutex_): every change of the region's state has one writer.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "node/region.h"

namespace meridian::node {

class WriteQueue {
 public:
  // Runs on the leader's thread once per write, after its batch is durable (or refused).
  using Callback = std::function<void(Result<Receipt>)>;
  // Runs `lead` on the submitting thread once it has handled what it is handling now (an I/O
  // thread: asio::post to its own executor).
  using Defer = std::function<void(std::function<void()> lead)>;
  // Runs on the leader's thread after each successful commit, before the callbacks.
  using CommitListener = std::function<void(std::vector<Change>&&, size_t batch_size)>;

  WriteQueue(Region* region, size_t batch_max, size_t queue_max, CommitListener listener);
  ~WriteQueue();

  // Runs on the commit thread once the remote events are durable (or refused).
  using RemoteCallback = std::function<void(Result<RemoteApply>)>;

  // Queues events of other regions for the commit thread; they commit in the same durable batch
  // as the local writes pending with them (Region::Commit). Not bounded here: each replication
  // stream bounds the batches it has queued. False only when stopping. When `dropped` is set by
  // the time the commit thread takes the batch, it is not applied: the callback gets kRebuilding
  // (replication fences the streams of an origin's earlier incarnation this way).
  bool SubmitRemote(core::RemoteBatch events, RemoteCallback callback,
                    std::shared_ptr<const std::atomic<bool>> dropped = nullptr);

  // Queues a write. False when queue_max writes are already waiting (the caller answers 429) or
  // the queue is stopping; the callback is then never called. With `defer`, this thread leads
  // the group (through `defer`) unless another leader takes it first; without, the commit thread
  // does.
  bool Submit(WriteRequest request, Callback callback, const Defer& defer = nullptr);

  // Runs `task` on the commit thread before the next group commit (re-seeding installs states
  // this way). False when stopping.
  bool SubmitTask(std::function<void()> task);

  // How many documents the scrub checks per second (Region::Scrub; 0: none). Before writes.
  void SetScrubRate(size_t documents_per_second) { scrub_per_second_ = documents_per_second; }
  // Bounded counters' rebalancing ([escrow]): after every commit, a round of up to
  // `keys_per_round` due keys (Region::EscrowRound), committed at once as local writes; every
  // `interval_ms` (0: never) a tick (Region::EscrowTick) and a round. Before writes.
  void SetEscrowRebalance(uint64_t interval_ms, size_t keys_per_round) {
    escrow_interval_ms_ = interval_ms;
    escrow_keys_per_round_ = keys_per_round;
  }
  // Refuses new writes, commits everything already queued, and joins the commit thread.
  void Stop();
  size_t depth() const;

 private:
  void Run();
  // An I/O thread's turn to lead: one group of local writes, when no other leader is active;
  // `defer`s itself again when more is pending.
  void Lead(const Defer& defer);
  // Schedules Lead on this thread through `defer`, once per thread until it runs.
  void ScheduleLead(const Defer& defer);
  // Whether an I/O thread may lead now (mutex_ held): no other leader, a lone write pending after
  // a lone write committed, and neither other regions' events nor tasks waiting.
  bool QuietForInline() const;
  // Waits until no one leads, then leads (commit thread, for the sweeps); Release ends it.
  void AcquireLeadership();
  void ReleaseLeadership();
  // Commits a group as one durable batch and answers it (the leader, whoever it is).
  struct Remote;
  void CommitGroup(std::vector<WriteRequest>& requests, std::vector<Callback>& callbacks,
                   std::vector<Remote>& remote);
  // One rebalancing round, when keys are due, committed and published (commit thread).
  void RebalanceEscrow();

  Region* const region_;
  const size_t batch_max_;
  const size_t queue_max_;
  const CommitListener listener_;
  std::atomic<size_t> scrub_per_second_{0};
  std::atomic<uint64_t> escrow_interval_ms_{0};
  std::atomic<size_t> escrow_keys_per_round_{256};
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<WriteRequest, Callback>> pending_;
  struct Remote {
    core::RemoteBatch events;
    RemoteCallback callback;
    std::shared_ptr<const std::atomic<bool>> dropped;
  };
  std::deque<Remote> remote_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  // Someone commits or sweeps now (mutex_); the commit thread waits for leadership as
  // leader_waiters_, and a leader that ends wakes it only then (or when work waits for it).
  bool leader_active_ = false;
  // Pending writes are the commit thread's to take (mutex_): submitted without a defer, or handed
  // over by an I/O thread's turn (a group, or the commit thread had work of its own).
  bool handed_over_ = false;
  // Local writes in the last group committed (mutex_): a lone write is led by its I/O thread only
  // while the groups before it were lone too (a quiet queue), not in a lull of a busy one.
  size_t last_group_ = 0;
  size_t leader_waiters_ = 0;
  std::thread thread_;
};

}  // namespace meridian::node
