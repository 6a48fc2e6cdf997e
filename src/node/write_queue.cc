#include "node/write_queue.h"

#include <algorithm>
#include <chrono>

#include "core/check.h"
#include "core/thread_name.h"

namespace meridian::node {

namespace {

constexpr auto kFoldSweepInterval = std::chrono::seconds(1);
constexpr size_t kFoldSweepDocuments = 256;
// The largest group an I/O thread commits itself (WriteQueue::Lead).
constexpr size_t kInlineGroupMax = 1;

}  // namespace

WriteQueue::WriteQueue(Region* region, size_t batch_max, size_t queue_max, CommitListener listener)
    : region_(region),
      batch_max_(batch_max),
      queue_max_(queue_max),
      listener_(std::move(listener)) {
  thread_ = std::thread([this] {
    core::NameThisThread("commit");
    Run();
  });
}

WriteQueue::~WriteQueue() {
  Stop();
}

bool WriteQueue::Submit(WriteRequest request, Callback callback, const Defer& defer) {
  bool lead_here = false;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || pending_.size() >= queue_max_) return false;
    pending_.emplace_back(std::move(request), std::move(callback));
    // Anything but a lone write on a quiet queue is the commit thread's at once, so that it starts
    // while this thread reads on.
    lead_here = defer && QuietForInline();
    if (!lead_here) handed_over_ = true;
  }
  if (lead_here) {
    ScheduleLead(defer);
  } else {
    wake_.notify_one();
  }
  return true;
}

namespace {
// The queue whose Lead this thread has scheduled and not yet run: one per turn is enough, as a
// Lead takes everything pending.
thread_local const WriteQueue* lead_scheduled = nullptr;
}  // namespace

void WriteQueue::ScheduleLead(const Defer& defer) {
  if (lead_scheduled == this) return;
  lead_scheduled = this;
  defer([this, defer] {
    lead_scheduled = nullptr;
    Lead(defer);
  });
}

void WriteQueue::Lead(const Defer& defer) {
  std::vector<WriteRequest> requests;
  std::vector<Callback> callbacks;
  std::vector<Remote> no_remote;
  {
    std::unique_lock lock(mutex_);
    if (pending_.empty()) return;
    if (!QuietForInline()) {
      // Another leader is at work (it hands over what is pending when it ends), or the queue is
      // busy: the commit thread takes the writes.
      handed_over_ = true;
      lock.unlock();
      wake_.notify_all();
      return;
    }
    leader_active_ = true;
    while (!pending_.empty() && requests.size() < batch_max_) {
      requests.push_back(std::move(pending_.front().first));
      callbacks.push_back(std::move(pending_.front().second));
      pending_.pop_front();
    }
    last_group_ = requests.size();
  }
  CommitGroup(requests, callbacks, no_remote);
  RebalanceEscrow();
  bool more = false;
  bool wanted = false;  // the commit thread waits for leadership, or has work of its own
  {
    std::lock_guard lock(mutex_);
    MERIDIAN_CHECK(leader_active_);
    leader_active_ = false;
    more = !pending_.empty() && !handed_over_;
    wanted =
        leader_waiters_ > 0 || stopping_ || handed_over_ || !remote_.empty() || !tasks_.empty();
  }
  if (wanted) wake_.notify_all();
  // What was submitted meanwhile (here or by threads that found this one leading): the next turn
  // of this thread, after its own answers went out.
  if (more) ScheduleLead(defer);
}

bool WriteQueue::QuietForInline() const {
  // Under load the commit thread leads: the submitting thread goes on reading and answering while
  // the group's fsync runs, and the wake-up is shared by the whole group. So it does when it has
  // work of its own (other regions' events, tasks): the write joins that commit rather than
  // delay it by a commit of its own.
  return !leader_active_ && pending_.size() <= kInlineGroupMax &&
         last_group_ <= kInlineGroupMax && remote_.empty() && tasks_.empty();
}

void WriteQueue::AcquireLeadership() {
  std::unique_lock lock(mutex_);
  ++leader_waiters_;
  wake_.wait(lock, [this] { return !leader_active_; });
  --leader_waiters_;
  leader_active_ = true;
}

void WriteQueue::ReleaseLeadership() {
  std::lock_guard lock(mutex_);
  MERIDIAN_CHECK(leader_active_);
  leader_active_ = false;
}

bool WriteQueue::SubmitRemote(core::RemoteBatch events, RemoteCallback callback,
                              std::shared_ptr<const std::atomic<bool>> dropped) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    remote_.push_back({std::move(events), std::move(callback), std::move(dropped)});
  }
  wake_.notify_one();
  return true;
}

bool WriteQueue::SubmitTask(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    tasks_.push_back(std::move(task));
  }
  wake_.notify_one();
  return true;
}

void WriteQueue::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

size_t WriteQueue::depth() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

void WriteQueue::Run() {
  std::vector<WriteRequest> requests;
  std::vector<Callback> callbacks;
  std::vector<Remote> remote;
  auto last_sweep = std::chrono::steady_clock::now();
  auto last_escrow_tick = last_sweep;
  for (;;) {
    requests.clear();
    callbacks.clear();
    remote.clear();
    const auto escrow_interval = std::chrono::milliseconds(escrow_interval_ms_.load());
    if (escrow_interval.count() > 0 &&
        std::chrono::steady_clock::now() - last_escrow_tick >= escrow_interval) {
      // Bounded counters whose last round gave rights look again (Region::EscrowTick).
      AcquireLeadership();
      region_->EscrowTick();
      RebalanceEscrow();
      ReleaseLeadership();
      last_escrow_tick = std::chrono::steady_clock::now();
    }
    if (std::chrono::steady_clock::now() - last_sweep >= kFoldSweepInterval) {
      AcquireLeadership();
      // Documents no write touches keep their stable metadata until a sweep folds it: a few at a
      // time, at most once per interval, by the leader (the region's only writer).
      size_t folded = 0;
      (void)region_->FoldSweep(kFoldSweepDocuments, &folded);  // a failure is retried next time
      // The change and conflict logs are trimmed to their bounds at the same pace: a trim is one
      // short store write, whatever it removes.
      (void)region_->TrimLogs();  // likewise
      if (scrub_per_second_ > 0) {
        // The scrub checks documents against the digest index at its pace (docs/verification.md).
        std::vector<Change> erased;
        auto scrubbed = region_->Scrub(scrub_per_second_, &erased);
        if (scrubbed.ok() && !erased.empty()) listener_(std::move(erased), 0);
      }
      // Damaged documents this region's own event log can rebuild, without a peer (a failure is
      // retried at the next damage found).
      std::vector<Change> rebuilt;
      (void)region_->RebuildFromLog(Region::kRebuildDocuments, &rebuilt);
      if (!rebuilt.empty()) listener_(std::move(rebuilt), 0);
      ReleaseLeadership();
      last_sweep = std::chrono::steady_clock::now();
    }
    {
      std::unique_lock lock(mutex_);
      const auto wait =
          escrow_interval.count() > 0
              ? std::min<std::chrono::steady_clock::duration>(kFoldSweepInterval, escrow_interval)
              : std::chrono::steady_clock::duration(kFoldSweepInterval);
      const bool woken = wake_.wait_for(lock, wait, [this] {
        return !leader_active_ &&
               (stopping_ || handed_over_ || !remote_.empty() || !tasks_.empty());
      });
      // Writes submitted with a defer are their I/O thread's to commit; one whose turn never
      // came (its event loop stopped) is taken here after a sweep interval.
      if (!woken && (leader_active_ || pending_.empty())) continue;  // idle: time for a sweep
      leader_active_ = true;
      if (!tasks_.empty()) {
        std::deque<std::function<void()>> tasks;
        tasks.swap(tasks_);
        lock.unlock();
        for (auto& task : tasks) task();
        ReleaseLeadership();
        continue;
      }
      if (pending_.empty() && remote_.empty()) {
        // Nothing to commit: an I/O thread took the writes handed over, or the queue stops with
        // everything committed.
        handed_over_ = false;
        leader_active_ = false;
        if (stopping_) return;
        continue;
      }

      while (!pending_.empty() && requests.size() < batch_max_) {
        requests.push_back(std::move(pending_.front().first));
        callbacks.push_back(std::move(pending_.front().second));
        pending_.pop_front();
      }
      while (!remote_.empty()) {
        remote.push_back(std::move(remote_.front()));
        remote_.pop_front();
      }
      // Taken up to batch_max: what remains is still this thread's to take, next.
      handed_over_ = !pending_.empty();
      last_group_ = requests.size();
    }
    CommitGroup(requests, callbacks, remote);
    // Rights to accept, wants to serve, refusals to ask for: decided on what just committed.
    RebalanceEscrow();
    ReleaseLeadership();
  }
}

void WriteQueue::CommitGroup(std::vector<WriteRequest>& requests, std::vector<Callback>& callbacks,
                             std::vector<Remote>& remote) {
  // Dropped batches are answered without being applied. The flag is read here, after the
  // batch was taken: whoever sets it and then waits for a later batch's callback knows that
  // no dropped batch commits after that.
  std::erase_if(remote, [](Remote& item) {
    if (item.dropped == nullptr || !item.dropped->load()) return false;
    item.callback(Status(StatusCode::kRebuilding,
                         "dropped: the events came from an earlier incarnation of their origin"));
    return true;
  });
  std::vector<RemoteEvents> remote_events;
  remote_events.reserve(remote.size());
  for (const Remote& item : remote) remote_events.emplace_back(item.events);
  std::vector<Result<Receipt>> outcomes;
  std::vector<Result<RemoteApply>> remote_outcomes;
  std::vector<Change> changes;
  // Everything taken commits as one durable batch: one fsync for local writes and replication.
  region_->Commit(requests, &outcomes, remote_events, &remote_outcomes, &changes);
  MERIDIAN_CHECK(outcomes.size() == callbacks.size() && remote_outcomes.size() == remote.size());
  if (!changes.empty() && listener_) listener_(std::move(changes), requests.size());
  for (size_t i = 0; i < callbacks.size(); ++i) callbacks[i](std::move(outcomes[i]));
  for (size_t i = 0; i < remote.size(); ++i) remote[i].callback(std::move(remote_outcomes[i]));
}

void WriteQueue::RebalanceEscrow() {
  if (!region_->escrow_due()) return;
  std::vector<WriteRequest> writes = region_->EscrowRound(escrow_keys_per_round_.load());
  if (writes.empty()) return;
  std::vector<Result<Receipt>> outcomes;  // a refused one changes nothing: nothing to answer
  std::vector<Result<RemoteApply>> no_remote;
  std::vector<Change> changes;
  region_->Commit(writes, &outcomes, {}, &no_remote, &changes);
  if (!changes.empty() && listener_) listener_(std::move(changes), 0);
}

}  // namespace meridian::node
