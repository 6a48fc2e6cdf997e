// WatchHub: a watcher's buffer is bounded in changes and in bytes; a watcher over either bound is
// marked overflowed (once) and receives nothing more.
#include "node/watch_hub.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace meridian::node {
namespace {

Change MakeChange(uint64_t lsn, const std::string& key, size_t doc_bytes) {
  Change change;
  change.key = key;
  change.doc = std::string(doc_bytes, 'd');
  change.lsn = lsn;
  return change;
}

TEST(WatchHubTest, ABufferIsBoundedInBytes) {
  WatchHub hub(10, /*buffer_bytes_max=*/100'000);
  uint64_t lsn = 0;
  int notified = 0;
  auto watcher = hub.Subscribe(
      "k", /*buffer_max=*/1000, [&] { ++notified; }, &lsn);
  ASSERT_NE(watcher, nullptr);
  // Two changes of 40 KB fit; the third would take the buffer over 100 KB.
  hub.Publish({MakeChange(1, "k1", 40'000), MakeChange(2, "k2", 40'000)});
  EXPECT_EQ(hub.overflows(), 0u);
  hub.Publish({MakeChange(3, "k3", 40'000)});
  EXPECT_EQ(hub.overflows(), 1u);
  hub.Publish({MakeChange(4, "k4", 10)});
  EXPECT_EQ(hub.overflows(), 1u) << "an overflowed watcher is counted once";
  bool overflowed = false;
  const std::vector<Change> taken = watcher->Take(&overflowed);
  EXPECT_TRUE(overflowed);
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[1].lsn, 2u);
}

TEST(WatchHubTest, TakingEmptiesTheByteCount) {
  WatchHub hub(10, 100'000);
  uint64_t lsn = 0;
  auto watcher = hub.Subscribe(
      "", 1000, [] {}, &lsn);
  for (uint64_t i = 1; i <= 20; ++i) {
    hub.Publish({MakeChange(i, "k", 40'000)});
    bool overflowed = false;
    EXPECT_EQ(watcher->Take(&overflowed).size(), 1u);
    EXPECT_FALSE(overflowed) << "a watcher that keeps up never overflows";
  }
}

TEST(WatchHubTest, OneChangeLargerThanTheBoundStillFitsAnEmptyBuffer) {
  WatchHub hub(10, 100'000);
  uint64_t lsn = 0;
  auto watcher = hub.Subscribe(
      "", 1000, [] {}, &lsn);
  hub.Publish({MakeChange(1, "big", 500'000)});
  bool overflowed = false;
  EXPECT_EQ(watcher->Take(&overflowed).size(), 1u);
  EXPECT_FALSE(overflowed);
}

TEST(WatchHubTest, ABufferIsStillBoundedInChanges) {
  WatchHub hub(10, 100'000'000);
  uint64_t lsn = 0;
  auto watcher = hub.Subscribe(
      "", 3, [] {}, &lsn);
  hub.Publish(
      {MakeChange(1, "a", 1), MakeChange(2, "b", 1), MakeChange(3, "c", 1), MakeChange(4, "d", 1)});
  bool overflowed = false;
  EXPECT_EQ(watcher->Take(&overflowed).size(), 3u);
  EXPECT_TRUE(overflowed);
}

}  // namespace
}  // namespace meridian::node
