#include "node/watch_hub.h"

#include <algorithm>

namespace meridian::node {

namespace {

// What a buffered change costs: its strings, and the rest of it, about.
size_t ChangeBytes(const Change& change) {
  return sizeof(Change) + change.key.size() + (change.doc ? change.doc->size() : 0);
}

}  // namespace

std::vector<Change> Watcher::Take(bool* overflowed) {
  std::lock_guard lock(mutex_);
  std::vector<Change> taken(std::make_move_iterator(buffer_.begin()),
                            std::make_move_iterator(buffer_.end()));
  buffer_.clear();
  buffer_bytes_ = 0;
  *overflowed = overflowed_;
  return taken;
}

Watcher::Offered Watcher::Offer(const Change& change) {
  Offered offered = Offered::kBuffered;
  {
    std::lock_guard lock(mutex_);
    if (overflowed_) return Offered::kAlreadyOverflowed;
    const size_t bytes = ChangeBytes(change);
    if (buffer_.size() >= buffer_max_ ||
        (!buffer_.empty() && buffer_bytes_ + bytes > buffer_bytes_max_)) {
      overflowed_ = true;
      offered = Offered::kOverflowedNow;
    } else {
      buffer_.push_back(change);
      buffer_bytes_ += bytes;
    }
  }
  notify_();
  return offered;
}

std::shared_ptr<Watcher> WatchHub::Subscribe(std::string prefix, size_t buffer_max,
                                             std::function<void()> notify,
                                             uint64_t* published_lsn) {
  std::lock_guard lock(mutex_);
  if (watchers_.size() >= watchers_max_) return nullptr;
  auto watcher = std::make_shared<Watcher>(std::move(prefix), buffer_max, buffer_bytes_max_,
                                           std::move(notify));
  watchers_.push_back(watcher);
  *published_lsn = published_lsn_;
  return watcher;
}

void WatchHub::Unsubscribe(const std::shared_ptr<Watcher>& watcher) {
  std::lock_guard lock(mutex_);
  watchers_.remove(watcher);
}

void WatchHub::Publish(const std::vector<Change>& changes) {
  std::lock_guard lock(mutex_);
  for (const Change& change : changes) {
    for (const auto& watcher : watchers_) {
      if (!change.key.starts_with(watcher->prefix())) continue;
      if (watcher->Offer(change) == Watcher::Offered::kOverflowedNow) ++overflows_;
    }
    published_lsn_ = std::max(published_lsn_, change.lsn);
  }
}

void WatchHub::SetPublishedLsn(uint64_t lsn) {
  std::lock_guard lock(mutex_);
  published_lsn_ = lsn;
}

size_t WatchHub::watchers() const {
  std::lock_guard lock(mutex_);
  return watchers_.size();
}

uint64_t WatchHub::overflows() const {
  std::lock_guard lock(mutex_);
  return overflows_;
}

}  // namespace meridian::node
