// WatchHub: fans committed changes out to watchers. Each watcher has a prefix and a bounded
// buffer (in changes and in bytes: every change is copied into each buffer, so a count alone
// would let a few watchers of large documents hold gigabytes); a watcher whose buffer fills is
// marked overflowed and receives nothing more (its
// session closes it with a reason and the client resumes from its last event id).
//
// Thread-safe. Publish is called by the commit thread; watchers are drained by their sessions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "node/region.h"

namespace meridian::node {

class Watcher {
 public:
  Watcher(std::string prefix, size_t buffer_max, size_t buffer_bytes_max,
          std::function<void()> notify)
      : prefix_(std::move(prefix)),
        buffer_max_(buffer_max),
        buffer_bytes_max_(buffer_bytes_max),
        notify_(std::move(notify)) {}

  // Moves out what is buffered. *overflowed is set once the buffer has overflowed.
  std::vector<Change> Take(bool* overflowed);
  const std::string& prefix() const { return prefix_; }

 private:
  friend class WatchHub;
  enum class Offered { kBuffered, kOverflowedNow, kAlreadyOverflowed };
  Offered Offer(const Change& change);

  const std::string prefix_;
  const size_t buffer_max_;
  const size_t buffer_bytes_max_;
  const std::function<void()> notify_;
  std::mutex mutex_;
  std::deque<Change> buffer_;
  size_t buffer_bytes_ = 0;  // of the changes in buffer_ (ChangeBytes)
  bool overflowed_ = false;
};

class WatchHub {
 public:
  // buffer_bytes_max bounds each watcher's buffer in bytes; a single change larger than it is
  // still taken into an empty buffer.
  WatchHub(size_t watchers_max, size_t buffer_bytes_max)
      : watchers_max_(watchers_max), buffer_bytes_max_(buffer_bytes_max) {}

  // Registers a watcher. *published_lsn is the lsn of the last change published before the
  // registration: the watcher receives every change after it. nullptr when watchers_max are
  // already registered.
  std::shared_ptr<Watcher> Subscribe(std::string prefix, size_t buffer_max,
                                     std::function<void()> notify, uint64_t* published_lsn);
  void Unsubscribe(const std::shared_ptr<Watcher>& watcher);

  void Publish(const std::vector<Change>& changes);
  // Sets the lsn before any Publish (after recovery).
  void SetPublishedLsn(uint64_t lsn);
  size_t watchers() const;
  // Watchers closed for falling behind (each counted once).
  uint64_t overflows() const;

 private:
  const size_t watchers_max_;
  const size_t buffer_bytes_max_;
  mutable std::mutex mutex_;
  std::list<std::shared_ptr<Watcher>> watchers_;
  uint64_t published_lsn_ = 0;
  uint64_t overflows_ = 0;
};

}  // namespace meridian::node
