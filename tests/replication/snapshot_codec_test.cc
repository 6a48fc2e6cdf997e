// The pages of a re-seeding snapshot: round trip, and damaged or hostile pages refused before
// anything large is allocated.
#include "replication/snapshot_codec.h"

#include <gtest/gtest.h>

namespace meridian::replication {
namespace {

TEST(SnapshotCodec, APageRoundTrips) {
  const StatePage page = {{"a", std::string("\0\1state", 7)}, {"b", ""}, {"c/é", "x"}};
  const EncodedPage encoded = EncodeStatePage(page);
  EXPECT_GT(encoded.raw_bytes, 0u);
  auto decoded = DecodeStatePage(encoded.bytes, "");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, page);
  // After the previous page's last key only.
  auto resumed = DecodeStatePage(encoded.bytes, "0");
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(DecodeStatePage(encoded.bytes, "a").status().code(), StatusCode::kCorruption);
  EXPECT_TRUE(DecodeStatePage(EncodeStatePage({}).bytes, "").value().empty());
}

TEST(SnapshotCodec, DamagedOrHostilePagesAreRefused) {
  const EncodedPage encoded = EncodeStatePage({{"a", "1"}, {"b", "2"}});
  EXPECT_FALSE(DecodeStatePage("not zstd", "").ok());
  std::string truncated = encoded.bytes.substr(0, encoded.bytes.size() - 2);
  EXPECT_FALSE(DecodeStatePage(truncated, "").ok());
  EXPECT_FALSE(DecodeStatePage(EncodeStatePage({{"b", "1"}, {"a", "2"}}).bytes, "").ok());
  EXPECT_FALSE(DecodeStatePage(EncodeStatePage({{"a", "1"}, {"a", "2"}}).bytes, "").ok());
  EXPECT_FALSE(DecodeStatePage(EncodeStatePage({{"", "1"}}).bytes, "").ok());
  // Over the bounds: refused from the frame's header, before decompressing.
  StatePageLimits small;
  small.raw_bytes_max = 4;
  EXPECT_FALSE(DecodeStatePage(encoded.bytes, "", small).ok());
  small = StatePageLimits{};
  small.documents_max = 1;
  EXPECT_FALSE(DecodeStatePage(encoded.bytes, "", small).ok());
}

}  // namespace
}  // namespace meridian::replication
