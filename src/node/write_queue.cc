#include "node/write_queue.h"

#include <optional>

namespace meridian::node {

WriteQueue::WriteQueue(Region* region, size_t batch_max, size_t queue_max, CommitListener listener)
    : region_(region),
      batch_max_(batch_max),
      queue_max_(queue_max),
      listener_(std::move(listener)) {
  thread_ = std::thread([this] { Run(); });
}

WriteQueue::~WriteQueue() {
  Stop();
}

bool WriteQueue::Submit(WriteRequest request, Callback callback) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || pending_.size() >= queue_max_) return false;
    pending_.emplace_back(std::move(request), std::move(callback));
  }
  wake_.notify_one();
  return true;
}

bool WriteQueue::SubmitRemote(std::vector<core::Event> events, RemoteCallback callback) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return false;
    remote_.emplace_back(std::move(events), std::move(callback));
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
  std::vector<Result<Receipt>> outcomes;
  std::vector<Change> changes;
  std::optional<std::pair<std::vector<core::Event>, RemoteCallback>> remote;
  for (;;) {
    requests.clear();
    callbacks.clear();
    remote.reset();
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !pending_.empty() || !remote_.empty(); });
      if (pending_.empty() && remote_.empty()) return;  // stopping, and everything is committed
      while (!pending_.empty() && requests.size() < batch_max_) {
        requests.push_back(std::move(pending_.front().first));
        callbacks.push_back(std::move(pending_.front().second));
        pending_.pop_front();
      }
      if (!remote_.empty()) {
        remote.emplace(std::move(remote_.front()));
        remote_.pop_front();
      }
    }
    if (!requests.empty()) {
      changes.clear();
      region_->CommitLocalWrites(requests, &outcomes, &changes);
      if (!changes.empty() && listener_) listener_(std::move(changes), requests.size());
      for (size_t i = 0; i < callbacks.size(); ++i) callbacks[i](std::move(outcomes[i]));
    }
    if (remote) {
      changes.clear();
      Result<RemoteApply> applied = region_->ApplyRemoteEvents(remote->first, &changes);
      if (!changes.empty() && listener_) listener_(std::move(changes), 0);
      remote->second(std::move(applied));
    }
  }
}

}  // namespace meridian::node
