#include "net/file_watch.h"

#include <sys/stat.h>
#include <time.h>

namespace meridian::net {
namespace {

constexpr auto kCheckInterval = std::chrono::seconds(1);
constexpr int64_t kRacyNs = 2'000'000'000;

int64_t Nanoseconds(const struct timespec& time) {
  return static_cast<int64_t>(time.tv_sec) * 1'000'000'000 + time.tv_nsec;
}

}  // namespace

std::vector<FileWatch::Signature> FileWatch::Look() const {
  std::vector<Signature> signatures(paths_.size());
  for (size_t i = 0; i < paths_.size(); ++i) {
    struct stat info {};
    if (::stat(paths_[i].c_str(), &info) != 0) continue;  // missing: all zero
    signatures[i] =
        Signature{info.st_ino, info.st_size, Nanoseconds(info.st_mtim), Nanoseconds(info.st_ctim)};
  }
  return signatures;
}

void FileWatch::Noted() {
  noted_ = Look();
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  for (Signature& signature : noted_) {
    // Modified this recently: it may change again without its times showing it. Read again at
    // the next check.
    if (Nanoseconds(now) - signature.mtime_ns < kRacyNs) signature.mtime_ns = -1;
  }
  checked_ = std::chrono::steady_clock::now();
}

bool FileWatch::Due() {
  const auto now = std::chrono::steady_clock::now();
  if (now - checked_ < kCheckInterval) return false;
  checked_ = now;
  return Look() != noted_;
}

}  // namespace meridian::net
