// DigestTree: a hash tree over key-hash buckets of per-document digests, which anti-entropy
// compares between regions (docs/verification.md).
//
// Every key falls in one of kBuckets leaf buckets by a hash of the key alone (BucketOf). A leaf
// holds the XOR of the digests of the documents in its bucket (core::RenderedDigest of each
// existing document; a document that does not exist contributes nothing); every inner node the
// XOR of its kFanout children, up to one root, which is then the XOR of every document's digest.
// XOR makes an update O(depth): a document's digest changing from `before` to `after` XORs
// before ^ after into its leaf and each ancestor, whatever order the updates come in.
//
// Two regions holding the same documents have equal trees. Two that differ in a few documents
// differ in those documents' buckets and their ancestors only: a comparison walks down from the
// root, asking for the children of the nodes that differ, and ends at the differing buckets'
// entries (kLevels round trips of at most kFanout hashes per differing node).
//
// Pure: no I/O. Not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace meridian::core {

class DigestTree {
 public:
  static constexpr uint32_t kFanout = 16;
  static constexpr uint32_t kLeafLevel = 4;       // levels 0 (the root) .. 4 (the buckets)
  static constexpr uint32_t kBuckets = 1u << 16;  // kFanout ^ kLeafLevel

  DigestTree();

  // The bucket of a key: the high 16 bits of xxh3-64 of the key with a fixed seed.
  static uint32_t BucketOf(std::string_view key);
  // How many nodes a level has: kFanout ^ level.
  static uint32_t Width(uint32_t level);

  // A document's digest changed from `before` to `after` (0: it did not exist).
  void Update(std::string_view key, uint64_t before, uint64_t after) {
    Toggle(BucketOf(key), before ^ after);
  }
  void Toggle(uint32_t bucket, uint64_t delta);
  // Sets every node from the given leaves (kBuckets of them).
  void Assign(std::span<const uint64_t> leaves);
  void Clear();

  uint64_t Root() const { return levels_[0][0]; }
  // The hash of node `index` of `level` (0 <= index < Width(level)).
  uint64_t Node(uint32_t level, uint32_t index) const;
  // The hashes of the kFanout children of node `index` of `level` (< kLeafLevel), appended.
  void Children(uint32_t level, uint32_t index, std::vector<uint64_t>* out) const;
  std::span<const uint64_t> Leaves() const { return levels_[kLeafLevel]; }

 private:
  std::array<std::vector<uint64_t>, kLeafLevel + 1> levels_;
};

}  // namespace meridian::core
