#include "core/version_vector.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

// Readable failure messages (gtest finds PrintTo by argument-dependent lookup).
namespace meridian {
inline void PrintTo(StatusCode code, std::ostream* os) {
  *os << StatusCodeName(code);
}

namespace core {
inline void PrintTo(const Dot& dot, std::ostream* os) {
  *os << dot.ToString();
}
inline void PrintTo(const VersionVector& vv, std::ostream* os) {
  *os << vv.ToString();
}
inline void PrintTo(Ordering ordering, std::ostream* os) {
  *os << OrderingName(ordering);
}
}  // namespace core
}  // namespace meridian

namespace meridian::core {
namespace {

using Entry = VersionVector::Entry;

std::string Bytes(std::initializer_list<int> values) {
  std::string out;
  for (int value : values) out.push_back(static_cast<char>(value));
  return out;
}

TEST(DotTest, ToStringAndOrdering) {
  EXPECT_EQ((Dot{3, 42}).ToString(), "3:42");
  EXPECT_LT((Dot{1, 9}), (Dot{2, 1}));
  EXPECT_LT((Dot{2, 1}), (Dot{2, 2}));
  EXPECT_EQ((Dot{2, 2}), (Dot{2, 2}));
}

TEST(VersionVectorTest, EmptyVector) {
  const VersionVector vv;
  EXPECT_TRUE(vv.empty());
  EXPECT_EQ(vv.size(), 0u);
  EXPECT_EQ(vv.Get(0), 0u);
  EXPECT_EQ(vv.Get(31), 0u);
  EXPECT_EQ(vv.ToString(), "{}");
}

TEST(VersionVectorTest, SetAndGet) {
  VersionVector vv;
  vv.Set(2, 17);
  vv.Set(1, 42);
  EXPECT_EQ(vv.Get(1), 42u);
  EXPECT_EQ(vv.Get(2), 17u);
  EXPECT_EQ(vv.Get(3), 0u);
  EXPECT_EQ(vv.size(), 2u);
  EXPECT_EQ(vv.ToString(), "{1:42, 2:17}");
  vv.Set(1, 7);  // Set overwrites, even downwards
  EXPECT_EQ(vv.Get(1), 7u);
}

TEST(VersionVectorTest, EntriesStaySortedByOrigin) {
  VersionVector vv;
  vv.Set(31, 1);
  vv.Set(0, 2);
  vv.Set(7, 3);
  EXPECT_EQ(vv.entries(), (std::vector<Entry>{{0, 2}, {7, 3}, {31, 1}}));
}

TEST(VersionVectorTest, SetZeroRemovesTheEntry) {
  VersionVector vv{{1, 5}, {2, 6}};
  vv.Set(1, 0);
  EXPECT_EQ(vv.Get(1), 0u);
  EXPECT_EQ(vv.entries(), (std::vector<Entry>{{2, 6}}));
  vv.Set(9, 0);  // absent: stays absent, no zero entry
  EXPECT_EQ(vv.size(), 1u);
  vv.Set(2, 0);
  EXPECT_TRUE(vv.empty());
  EXPECT_EQ(vv, VersionVector());
}

TEST(VersionVectorTest, InitializerListKeepsTheMaximumAndDropsZeros) {
  const VersionVector vv{{3, 1}, {1, 4}, {3, 9}, {3, 2}, {5, 0}};
  EXPECT_EQ(vv.entries(), (std::vector<Entry>{{1, 4}, {3, 9}}));
}

TEST(VersionVectorTest, EqualVectorsHaveEqualRepresentations) {
  VersionVector a;
  a.Set(4, 1);
  a.Set(2, 3);
  a.Set(6, 8);
  a.Set(6, 0);
  const VersionVector b{{2, 3}, {4, 1}};
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.Encode(), b.Encode());
}

TEST(VersionVectorTest, Covers) {
  const VersionVector vv{{1, 5}};
  EXPECT_TRUE(vv.Covers(Dot{1, 1}));
  EXPECT_TRUE(vv.Covers(Dot{1, 5}));
  EXPECT_FALSE(vv.Covers(Dot{1, 6}));
  EXPECT_FALSE(vv.Covers(Dot{2, 1}));
  EXPECT_FALSE(vv.Covers(Dot{1, 0}));  // seq 0 names no event
  EXPECT_FALSE(VersionVector().Covers(Dot{0, 0}));
}

TEST(VersionVectorTest, Dominates) {
  const VersionVector a{{1, 5}, {2, 3}};
  EXPECT_TRUE(a.Dominates(a));
  EXPECT_TRUE(a.Dominates(VersionVector()));
  EXPECT_TRUE(a.Dominates(VersionVector{{1, 5}}));
  EXPECT_TRUE(a.Dominates(VersionVector{{1, 4}, {2, 3}}));
  EXPECT_FALSE(a.Dominates(VersionVector{{1, 6}}));
  EXPECT_FALSE(a.Dominates(VersionVector{{3, 1}}));
  EXPECT_FALSE(a.Dominates(VersionVector{{0, 1}, {1, 1}}));
  EXPECT_FALSE(VersionVector().Dominates(a));
  EXPECT_TRUE(VersionVector().Dominates(VersionVector()));
}

TEST(VersionVectorTest, CompareEqual) {
  EXPECT_EQ(VersionVector().Compare(VersionVector()), Ordering::kEqual);
  EXPECT_EQ((VersionVector{{1, 2}, {3, 4}}).Compare(VersionVector{{1, 2}, {3, 4}}),
            Ordering::kEqual);
}

TEST(VersionVectorTest, CompareBeforeAndAfter) {
  const VersionVector small{{1, 2}};
  const VersionVector big{{1, 3}, {2, 1}};
  EXPECT_EQ(small.Compare(big), Ordering::kBefore);
  EXPECT_EQ(big.Compare(small), Ordering::kAfter);
  EXPECT_EQ(VersionVector().Compare(small), Ordering::kBefore);
  EXPECT_EQ(small.Compare(VersionVector()), Ordering::kAfter);
}

TEST(VersionVectorTest, CompareConcurrent) {
  const VersionVector a{{1, 3}, {2, 1}};
  const VersionVector b{{1, 2}, {2, 2}};
  EXPECT_EQ(a.Compare(b), Ordering::kConcurrent);
  EXPECT_EQ(b.Compare(a), Ordering::kConcurrent);
  EXPECT_EQ((VersionVector{{1, 1}}).Compare(VersionVector{{2, 1}}), Ordering::kConcurrent);
}

TEST(VersionVectorTest, OrderingNames) {
  EXPECT_EQ(OrderingName(Ordering::kEqual), "equal");
  EXPECT_EQ(OrderingName(Ordering::kBefore), "before");
  EXPECT_EQ(OrderingName(Ordering::kAfter), "after");
  EXPECT_EQ(OrderingName(Ordering::kConcurrent), "concurrent");
}

TEST(VersionVectorTest, MergeIsThePointwiseMaximum) {
  VersionVector a{{0, 1}, {1, 5}, {3, 2}};
  const VersionVector b{{1, 3}, {2, 7}, {3, 4}, {31, 1}};
  a.Merge(b);
  EXPECT_EQ(a, (VersionVector{{0, 1}, {1, 5}, {2, 7}, {3, 4}, {31, 1}}));
  EXPECT_EQ(a.entries().size(), 5u);
  EXPECT_TRUE(a.Dominates(b));
}

TEST(VersionVectorTest, MergeWithEmptyAndIntoEmpty) {
  VersionVector a{{2, 2}};
  a.Merge(VersionVector());
  EXPECT_EQ(a, (VersionVector{{2, 2}}));
  VersionVector empty;
  empty.Merge(a);
  EXPECT_EQ(empty, a);
}

TEST(VersionVectorTest, MergeIsCommutativeAndIdempotent) {
  const VersionVector a{{1, 3}, {4, 1}};
  const VersionVector b{{1, 2}, {2, 9}};
  VersionVector ab = a;
  ab.Merge(b);
  VersionVector ba = b;
  ba.Merge(a);
  EXPECT_EQ(ab, ba);
  VersionVector twice = ab;
  twice.Merge(b);
  EXPECT_EQ(twice, ab);
}

TEST(VersionVectorTest, MeetIsThePointwiseMinimum) {
  const VersionVector a{{0, 4}, {1, 5}, {3, 2}};
  const VersionVector b{{1, 3}, {2, 7}, {3, 4}};
  const VersionVector meet = VersionVector::Meet(a, b);
  EXPECT_EQ(meet, (VersionVector{{1, 3}, {3, 2}}));
  EXPECT_EQ(VersionVector::Meet(b, a), meet);
  EXPECT_TRUE(a.Dominates(meet));
  EXPECT_TRUE(b.Dominates(meet));
  EXPECT_TRUE(VersionVector::Meet(a, VersionVector()).empty());
  EXPECT_EQ(VersionVector::Meet(a, a), a);
}

TEST(VersionVectorTest, EraseCoveredByDropsEntriesTheOtherCovers) {
  VersionVector vv{{1, 5}, {2, 3}, {3, 7}, {4, 1}};
  vv.EraseCoveredBy(VersionVector{{1, 5}, {2, 2}, {3, 9}});
  // 1:5 covered (equal), 2:3 not (2 < 3), 3:7 covered (9 >= 7), 4:1 not (absent).
  EXPECT_EQ(vv, (VersionVector{{2, 3}, {4, 1}}));
  vv.EraseCoveredBy(VersionVector());
  EXPECT_EQ(vv, (VersionVector{{2, 3}, {4, 1}}));
  vv.EraseCoveredBy(VersionVector{{2, 3}, {4, 1}});
  EXPECT_TRUE(vv.empty());
}

TEST(VersionVectorEncodingTest, EmptyVectorEncodesAsACountOfZero) {
  EXPECT_EQ(VersionVector().Encode(), Bytes({0}));
  auto decoded = VersionVector::Decode(Bytes({0}));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_TRUE(decoded->empty());
}

TEST(VersionVectorEncodingTest, EncodingIsCountThenOriginByteAndVarintSeq) {
  const VersionVector vv{{1, 5}, {31, 300}};
  EXPECT_EQ(vv.Encode(), Bytes({2, 1, 5, 31, 0xAC, 0x02}));
}

TEST(VersionVectorEncodingTest, RoundTrip) {
  VersionVector full;
  for (RegionId origin = 0; origin <= kRegionIdMax; ++origin) full.Set(origin, origin * 1000 + 1);
  for (const VersionVector& vv :
       {VersionVector(), VersionVector{{0, 1}}, VersionVector{{1, 127}, {2, 128}, {3, 16384}},
        VersionVector{{31, UINT64_MAX}}, full}) {
    auto decoded = VersionVector::Decode(vv.Encode());
    ASSERT_TRUE(decoded.ok()) << vv.ToString() << ": " << decoded.status().ToString();
    EXPECT_EQ(*decoded, vv);
  }
}

TEST(VersionVectorEncodingTest, DecodeFromConsumesOnlyTheVector) {
  std::string bytes;
  const VersionVector first{{1, 2}};
  const VersionVector second{{3, 400}};
  first.EncodeTo(&bytes);
  second.EncodeTo(&bytes);
  bytes += "tail";
  std::string_view in = bytes;
  auto a = VersionVector::DecodeFrom(&in);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, first);
  auto b = VersionVector::DecodeFrom(&in);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, second);
  EXPECT_EQ(in, "tail");
}

TEST(VersionVectorEncodingTest, DecodeRejectsEveryTruncation) {
  const std::string bytes = VersionVector{{1, 5}, {2, 300}, {31, UINT64_MAX}}.Encode();
  for (size_t length = 0; length < bytes.size(); ++length) {
    auto decoded = VersionVector::Decode(std::string_view(bytes).substr(0, length));
    EXPECT_FALSE(decoded.ok()) << "prefix of " << length << " bytes decoded";
    EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption);
  }
}

TEST(VersionVectorEncodingTest, DecodeRejectsTrailingBytes) {
  std::string bytes = VersionVector{{1, 5}}.Encode();
  bytes.push_back('\0');
  auto decoded = VersionVector::Decode(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption);
}

TEST(VersionVectorEncodingTest, DecodeRejectsOriginsAbove31) {
  EXPECT_TRUE(VersionVector::Decode(Bytes({1, 31, 1})).ok());
  for (int origin : {32, 100, 255}) {
    auto decoded = VersionVector::Decode(Bytes({1, origin, 1}));
    EXPECT_FALSE(decoded.ok()) << "origin " << origin;
    EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption);
  }
}

TEST(VersionVectorEncodingTest, DecodeRejectsZeroSeqs) {
  auto decoded = VersionVector::Decode(Bytes({2, 1, 3, 2, 0}));
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption);
}

TEST(VersionVectorEncodingTest, DecodeRejectsUnsortedOrDuplicateOrigins) {
  EXPECT_TRUE(VersionVector::Decode(Bytes({2, 1, 1, 2, 1})).ok());
  auto unsorted = VersionVector::Decode(Bytes({2, 2, 1, 1, 1}));
  EXPECT_FALSE(unsorted.ok());
  EXPECT_EQ(unsorted.status().code(), StatusCode::kCorruption);
  auto duplicate = VersionVector::Decode(Bytes({2, 1, 1, 1, 2}));
  EXPECT_FALSE(duplicate.ok());
  EXPECT_EQ(duplicate.status().code(), StatusCode::kCorruption);
}

TEST(VersionVectorEncodingTest, DecodeRejectsMoreEntriesThanRegions) {
  // A count of 33 can never be valid, whatever follows.
  std::string bytes = Bytes({33});
  for (int origin = 0; origin < 33; ++origin) bytes += Bytes({origin, 1});
  EXPECT_FALSE(VersionVector::Decode(bytes).ok());
  // A huge count must fail without trying to allocate for it.
  std::string huge;
  PutVarint(&huge, UINT64_MAX);
  EXPECT_FALSE(VersionVector::Decode(huge).ok());
}

TEST(VersionVectorEncodingTest, DecodeRejectsAnOverlongSeqVarint) {
  std::string bytes = Bytes({1, 4});
  bytes += std::string(10, static_cast<char>(0xFF));
  bytes.push_back(0x01);
  EXPECT_FALSE(VersionVector::Decode(bytes).ok());
}

TEST(VarintTest, RoundTripsBoundaryValues) {
  for (const uint64_t value :
       {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{16383}, uint64_t{16384},
        uint64_t{UINT32_MAX}, uint64_t{1} << 63, UINT64_MAX - 1, UINT64_MAX}) {
    std::string bytes;
    PutVarint(&bytes, value);
    std::string_view in = bytes;
    uint64_t decoded = 0;
    ASSERT_TRUE(GetVarint(&in, &decoded)) << value;
    EXPECT_EQ(decoded, value);
    EXPECT_TRUE(in.empty()) << value;
  }
}

TEST(VarintTest, EncodedLengths) {
  const auto length = [](uint64_t value) {
    std::string bytes;
    PutVarint(&bytes, value);
    return bytes.size();
  };
  EXPECT_EQ(length(0), 1u);
  EXPECT_EQ(length(127), 1u);
  EXPECT_EQ(length(128), 2u);
  EXPECT_EQ(length(16383), 2u);
  EXPECT_EQ(length(16384), 3u);
  EXPECT_EQ(length(UINT64_MAX), 10u);
}

TEST(VarintTest, KnownEncodings) {
  std::string bytes;
  PutVarint(&bytes, 0);
  PutVarint(&bytes, 127);
  PutVarint(&bytes, 128);
  PutVarint(&bytes, 300);
  EXPECT_EQ(bytes, Bytes({0x00, 0x7F, 0x80, 0x01, 0xAC, 0x02}));
  std::string max;
  PutVarint(&max, UINT64_MAX);
  EXPECT_EQ(max, std::string(9, static_cast<char>(0xFF)) + Bytes({0x01}));
}

TEST(VarintTest, ReadsConsecutiveValuesAndLeavesTheRest) {
  std::string bytes;
  PutVarint(&bytes, 300);
  PutVarint(&bytes, 5);
  bytes += "x";
  std::string_view in = bytes;
  uint64_t value = 0;
  ASSERT_TRUE(GetVarint(&in, &value));
  EXPECT_EQ(value, 300u);
  ASSERT_TRUE(GetVarint(&in, &value));
  EXPECT_EQ(value, 5u);
  EXPECT_EQ(in, "x");
}

TEST(VarintTest, RejectsTruncatedInput) {
  uint64_t value = 0;
  std::string_view empty;
  EXPECT_FALSE(GetVarint(&empty, &value));
  const std::string continuation = Bytes({0x80});
  std::string_view in = continuation;
  EXPECT_FALSE(GetVarint(&in, &value));
  std::string max;
  PutVarint(&max, UINT64_MAX);
  std::string_view cut = std::string_view(max).substr(0, max.size() - 1);
  EXPECT_FALSE(GetVarint(&cut, &value));
}

TEST(VarintTest, RejectsVarintsBeyond64Bits) {
  uint64_t value = 0;
  // Ten bytes whose last one carries more than the 64th bit.
  const std::string too_big = std::string(9, static_cast<char>(0xFF)) + Bytes({0x02});
  std::string_view in = too_big;
  EXPECT_FALSE(GetVarint(&in, &value));
  // Eleven bytes: no uint64 needs that many.
  const std::string eleven = std::string(10, static_cast<char>(0x80)) + Bytes({0x00});
  in = eleven;
  EXPECT_FALSE(GetVarint(&in, &value));
  const std::string endless(20, static_cast<char>(0xFF));
  in = endless;
  EXPECT_FALSE(GetVarint(&in, &value));
}

}  // namespace
}  // namespace meridian::core
