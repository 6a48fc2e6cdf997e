#include "net/file_watch.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "support/temp_dir.h"

namespace meridian::net {
namespace {

// Due() until it is true, for at most `seconds` (it answers at most once a second).
bool DueWithin(FileWatch& watch, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (watch.Due()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// A file rewritten in place, with the same size, its modification time set back as it was (as
// `cp -p` or `rsync -t` leave it): only its change time says so, and that is enough.
TEST(FileWatchTest, AFileRewrittenInPlaceWithItsOldTimesIsDue) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/cert.pem";
  std::ofstream(path) << "AAAA";
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  // Old enough that the watch does not take it for one still being written.
  const timespec old_times[2] = {{before.st_atim.tv_sec - 60, 0}, {before.st_mtim.tv_sec - 60, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), old_times, 0), 0);
  FileWatch watch({path});
  watch.Noted();
  EXPECT_FALSE(DueWithin(watch, 2)) << "nothing changed";

  std::ofstream(path, std::ios::in | std::ios::out) << "BBBB";
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), old_times, 0), 0);
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  ASSERT_EQ(after.st_size, 4);
  ASSERT_EQ(after.st_mtim.tv_sec, old_times[1].tv_sec);
  EXPECT_TRUE(DueWithin(watch, 5));
  watch.Noted();
  EXPECT_FALSE(DueWithin(watch, 2)) << "noted again: nothing more to read";
}

// A file modified moments before it was read may be rewritten within the same clock tick: it is
// read once more at the next check.
TEST(FileWatchTest, AFileReadJustAfterItWasWrittenIsReadOnceMore) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/secret";
  std::ofstream(path) << "secret";
  FileWatch watch({path});
  watch.Noted();
  EXPECT_TRUE(DueWithin(watch, 5));
}

TEST(FileWatchTest, AMissingFileIsDueOnceWhenItGoesAndOnceWhenItComesBack) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/key.pem";
  std::ofstream(path) << "key";
  const timespec old_times[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), old_times, 0), 0);
  FileWatch watch({path});
  watch.Noted();
  ASSERT_EQ(::unlink(path.c_str()), 0);
  EXPECT_TRUE(DueWithin(watch, 5));
  watch.Noted();
  EXPECT_FALSE(DueWithin(watch, 2));
  std::ofstream(path) << "key";
  EXPECT_TRUE(DueWithin(watch, 5));
}

}  // namespace
}  // namespace meridian::net
