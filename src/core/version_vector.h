// Version vectors over region ids (0..31), and dots.
//
// A dot {origin, seq} names one event: seq counts the events of its origin region from 1 with no
// gaps. A version vector maps each origin to the highest seq seen; since the seqs of an origin are
// contiguous and applied in order, "vv covers dot" means "the event is in the set vv describes".
//
// Representation: a small vector of (origin, seq) sorted by origin, with no zero entries, so that
// equal vectors have equal representations and encodings.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "meridian/status.h"

namespace meridian::core {

using RegionId = uint32_t;
constexpr RegionId kRegionIdMax = 31;

// A region's name from `names`, or "#<id>" for an id not there (a region removed from the
// deployment, whose events stay in every frontier).
std::string RegionName(const std::map<RegionId, std::string>& names, RegionId id);

struct Dot {
  RegionId origin = 0;
  uint64_t seq = 0;
  auto operator<=>(const Dot&) const = default;
  // "3:42" (origin id and seq); the API layer prints region names instead.
  std::string ToString() const;
};

enum class Ordering { kEqual, kBefore, kAfter, kConcurrent };
std::string_view OrderingName(Ordering ordering);

class VersionVector {
 public:
  struct Entry {
    RegionId origin;
    uint64_t seq;
    bool operator==(const Entry&) const = default;
  };

  VersionVector() = default;
  VersionVector(std::initializer_list<Entry> entries);

  uint64_t Get(RegionId origin) const;
  // Sets origin's entry (0 removes it).
  void Set(RegionId origin, uint64_t seq);
  bool Covers(const Dot& dot) const { return dot.seq != 0 && Get(dot.origin) >= dot.seq; }
  // True when every entry of other is <= the matching entry here.
  bool Dominates(const VersionVector& other) const;
  // Pointwise maximum.
  void Merge(const VersionVector& other);
  // Drops every entry that `other` covers (other's entry for the origin is >= it).
  void EraseCoveredBy(const VersionVector& other);
  // Pointwise minimum (the causally stable part of several frontiers).
  static VersionVector Meet(const VersionVector& a, const VersionVector& b);
  Ordering Compare(const VersionVector& other) const;

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  const std::vector<Entry>& entries() const { return entries_; }
  bool operator==(const VersionVector&) const = default;

  // Compact binary form: varint count, then per entry a byte origin and a varint seq.
  void EncodeTo(std::string* out) const;
  // Decodes from the front of *in and advances it.
  static Result<VersionVector> DecodeFrom(std::string_view* in);
  std::string Encode() const;
  static Result<VersionVector> Decode(std::string_view bytes);

  // "{1:42, 2:17}"
  std::string ToString() const;

 private:
  std::vector<Entry> entries_;
};

// Varint helpers shared by the compact encodings of core.
void PutVarint(std::string* out, uint64_t value);
bool GetVarint(std::string_view* in, uint64_t* value);
// Signed integers as small unsigned ones (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...) for varints.
inline uint64_t ZigZag(int64_t value) {
  return (static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63);
}
inline int64_t UnZigZag(uint64_t value) {
  return static_cast<int64_t>(value >> 1) ^ -static_cast<int64_t>(value & 1);
}

}  // namespace meridian::core
