// FileWatch: whether files a node holds in memory (its [tls] certificates, its [auth] secrets)
// changed on disk, so that they are read again without a restart. Checked with stat at most once
// a second; a file is taken as changed when its inode, size, modification or change time differ
// from when it was last read — or when it was modified less than two seconds before that read,
// since file times come from a coarse clock and a file rewritten in place within the same tick
// keeps them. Not thread-safe: its owner holds a lock.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace meridian::net {

class FileWatch {
 public:
  explicit FileWatch(std::vector<std::string> paths) : paths_(std::move(paths)) {}

  // Notes the files as they are now: call just before reading them.
  void Noted();
  // True when a second has passed since the last Noted or Due, and the files differ from what
  // Noted saw (a missing file counts as changed, once).
  bool Due();

 private:
  struct Signature {
    ino_t inode = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    bool operator==(const Signature&) const = default;
  };
  std::vector<Signature> Look() const;

  const std::vector<std::string> paths_;
  std::vector<Signature> noted_;
  std::chrono::steady_clock::time_point checked_{};
};

}  // namespace meridian::net
