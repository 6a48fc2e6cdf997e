#include "core/digest_tree.h"

#include <xxhash.h>

#include <algorithm>

#include "core/check.h"

namespace meridian::core {

namespace {
constexpr uint64_t kBucketSeed = 0x6d65726964696e31ull;  // "meridin1": fixed on every host
}  // namespace

DigestTree::DigestTree() {
  for (uint32_t level = 0; level <= kLeafLevel; ++level) levels_[level].assign(Width(level), 0);
}

uint32_t DigestTree::BucketOf(std::string_view key) {
  return static_cast<uint32_t>(XXH3_64bits_withSeed(key.data(), key.size(), kBucketSeed) >> 48);
}

uint32_t DigestTree::Width(uint32_t level) {
  MERIDIAN_CHECK(level <= kLeafLevel);
  return 1u << (4 * level);
}

void DigestTree::Toggle(uint32_t bucket, uint64_t delta) {
  MERIDIAN_CHECK(bucket < kBuckets);
  if (delta == 0) return;
  uint32_t index = bucket;
  for (uint32_t level = kLeafLevel + 1; level-- > 0;) {
    levels_[level][index] ^= delta;
    index /= kFanout;
  }
}

void DigestTree::Assign(std::span<const uint64_t> leaves) {
  MERIDIAN_CHECK(leaves.size() == kBuckets);
  levels_[kLeafLevel].assign(leaves.begin(), leaves.end());
  for (uint32_t level = kLeafLevel; level-- > 0;) {
    std::vector<uint64_t>& nodes = levels_[level];
    const std::vector<uint64_t>& children = levels_[level + 1];
    for (uint32_t i = 0; i < nodes.size(); ++i) {
      uint64_t hash = 0;
      for (uint32_t c = 0; c < kFanout; ++c) hash ^= children[i * kFanout + c];
      nodes[i] = hash;
    }
  }
}

void DigestTree::Clear() {
  for (std::vector<uint64_t>& level : levels_) std::fill(level.begin(), level.end(), 0);
}

uint64_t DigestTree::Node(uint32_t level, uint32_t index) const {
  MERIDIAN_CHECK(level <= kLeafLevel && index < Width(level));
  return levels_[level][index];
}

void DigestTree::Children(uint32_t level, uint32_t index, std::vector<uint64_t>* out) const {
  MERIDIAN_CHECK(level < kLeafLevel && index < Width(level));
  const std::vector<uint64_t>& children = levels_[level + 1];
  out->insert(out->end(), children.begin() + index * kFanout,
              children.begin() + (index + 1) * kFanout);
}

}  // namespace meridian::core
