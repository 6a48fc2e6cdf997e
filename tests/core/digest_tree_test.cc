// The digest tree: every node is the XOR of its children, updates commute, and a tree built by
// updates equals one assigned from the same leaves.
#include "core/digest_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace meridian::core {
namespace {

TEST(DigestTree, EveryNodeIsTheXorOfItsChildren) {
  DigestTree tree;
  std::mt19937_64 random(7);
  for (int i = 0; i < 2000; ++i) tree.Update("key:" + std::to_string(i), 0, random() | 1);
  for (uint32_t level = 0; level < DigestTree::kLeafLevel; ++level) {
    const uint32_t width = DigestTree::Width(level);
    for (uint32_t node = 0; node < width; node += std::max<uint32_t>(1, width / 64)) {
      std::vector<uint64_t> children;
      tree.Children(level, node, &children);
      ASSERT_EQ(children.size(), DigestTree::kFanout);
      uint64_t xor_of_children = 0;
      for (uint32_t c = 0; c < DigestTree::kFanout; ++c) {
        EXPECT_EQ(children[c], tree.Node(level + 1, node * DigestTree::kFanout + c));
        xor_of_children ^= children[c];
      }
      EXPECT_EQ(tree.Node(level, node), xor_of_children) << level << "/" << node;
    }
  }
}

TEST(DigestTree, UpdatesCommuteAndUndo) {
  std::vector<std::pair<std::string, uint64_t>> documents;
  std::mt19937_64 random(11);
  for (int i = 0; i < 500; ++i) documents.emplace_back("doc/" + std::to_string(i), random() | 1);
  DigestTree forward;
  DigestTree backward;
  uint64_t all = 0;
  for (const auto& [key, digest] : documents) {
    forward.Update(key, 0, digest);
    all ^= digest;
  }
  for (auto it = documents.rbegin(); it != documents.rend(); ++it) {
    backward.Update(it->first, 0, it->second);
  }
  EXPECT_EQ(forward.Root(), all);
  EXPECT_TRUE(
      std::equal(forward.Leaves().begin(), forward.Leaves().end(), backward.Leaves().begin()));
  // A document changing digest, then going away, leaves the tree as if it never existed.
  const uint64_t before = forward.Root();
  forward.Update("extra", 0, 42);
  EXPECT_NE(forward.Root(), before);
  forward.Update("extra", 42, 43);
  forward.Update("extra", 43, 0);
  EXPECT_EQ(forward.Root(), before);
}

TEST(DigestTree, AssignedLeavesGiveTheSameTree) {
  DigestTree updated;
  std::vector<uint64_t> leaves(DigestTree::kBuckets, 0);
  std::mt19937_64 random(3);
  for (int i = 0; i < 1000; ++i) {
    const std::string key = "k" + std::to_string(random());
    const uint64_t digest = random() | 1;
    updated.Update(key, 0, digest);
    leaves[DigestTree::BucketOf(key)] ^= digest;
  }
  DigestTree assigned;
  assigned.Assign(leaves);
  for (uint32_t level = 0; level <= DigestTree::kLeafLevel; ++level) {
    for (uint32_t node = 0; node < DigestTree::Width(level); ++node) {
      ASSERT_EQ(assigned.Node(level, node), updated.Node(level, node)) << level << "/" << node;
    }
  }
  assigned.Clear();
  EXPECT_EQ(assigned.Root(), 0u);
}

// Keys spread over the buckets: a thousand keys land in hundreds of different buckets.
TEST(DigestTree, KeysSpreadOverBuckets) {
  std::vector<uint32_t> buckets;
  for (int i = 0; i < 1000; ++i)
    buckets.push_back(DigestTree::BucketOf("item:" + std::to_string(i)));
  std::sort(buckets.begin(), buckets.end());
  const size_t distinct = std::unique(buckets.begin(), buckets.end()) - buckets.begin();
  EXPECT_GT(distinct, 950u);
  for (uint32_t bucket : buckets) EXPECT_LT(bucket, DigestTree::kBuckets);
  EXPECT_EQ(DigestTree::BucketOf("item:1"), DigestTree::BucketOf(std::string("item:1")));
}

}  // namespace
}  // namespace meridian::core
