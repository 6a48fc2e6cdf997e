// Links: relays while a direct link is down, their end when it is back, backoff, silence.
#include "replication/links.h"

#include <gtest/gtest.h>

namespace meridian::replication {
namespace {

using Origins = std::vector<core::RegionId>;

LinkOptions Options() {
  LinkOptions options;
  options.relay_after_ms = 1000;
  options.backoff_initial_ms = 100;
  options.backoff_max_ms = 1000;
  options.silence_timeout_ms = 500;
  options.dial_timeout_ms = 2000;
  return options;
}

// This region is 1; peers 2 and 3.
TEST(Links, EachLinkCarriesItsPeersOwnEvents) {
  Links links({2, 3}, Options(), 0);
  EXPECT_EQ(links.OriginsFor(2), Origins({2}));
  EXPECT_EQ(links.OriginsFor(3), Origins({3}));
  EXPECT_EQ(links.relays_active(), 0u);
}

TEST(Links, DirectLinkDownPastTheThresholdRelaysThroughAPeerThatIsAhead) {
  Links links({2, 3}, Options(), 0);
  links.Connected(3, 10);
  links.Heard(3, nullptr, 10);
  const auto applied = core::VersionVector{{2, 5}};
  // 3 holds nothing of 2's beyond us: no relay, however long 2 is down.
  const auto behind = core::VersionVector{{2, 5}, {3, 9}};
  links.Heard(3, &behind, 20);
  EXPECT_FALSE(links.UpdateRelays(applied, 5000));
  EXPECT_EQ(links.OriginsFor(3), Origins({3}));
  // 3 is ahead for 2, and the link to 2 has been down since the start.
  const auto ahead = core::VersionVector{{2, 8}, {3, 9}};
  links.Heard(3, &ahead, 5000);
  EXPECT_TRUE(links.UpdateRelays(applied, 5000));
  EXPECT_EQ(links.OriginsFor(3), Origins({3, 2}));
  EXPECT_EQ(links.relays_active(), 1u);
  EXPECT_FALSE(links.UpdateRelays(applied, 5100));  // stable
  // The direct link is back: the relay ends at once.
  links.Connected(2, 5200);
  EXPECT_TRUE(links.UpdateRelays(applied, 5200));
  EXPECT_EQ(links.OriginsFor(3), Origins({3}));
}

TEST(Links, NoRelayBeforeTheThreshold) {
  Links links({2, 3}, Options(), 0);
  links.Connected(2, 0);
  links.Connected(3, 0);
  const auto ahead = core::VersionVector{{2, 8}};
  links.Heard(3, &ahead, 0);
  links.Disconnected(2, 100);
  EXPECT_FALSE(links.UpdateRelays(core::VersionVector{}, 1099));
  EXPECT_TRUE(links.UpdateRelays(core::VersionVector{}, 1100));
  EXPECT_EQ(links.OriginsFor(3), Origins({3, 2}));
}

TEST(Links, RelayMovesWhenTheRelayingPeerIsLost) {
  Links links({2, 3, 4}, Options(), 0);
  links.Connected(3, 0);
  links.Connected(4, 0);
  const auto three = core::VersionVector{{2, 10}};
  const auto four = core::VersionVector{{2, 7}};
  links.Heard(3, &three, 0);
  links.Heard(4, &four, 0);
  EXPECT_TRUE(links.UpdateRelays(core::VersionVector{{2, 1}}, 2000));
  EXPECT_EQ(links.OriginsFor(3), Origins({3, 2}));  // the most ahead
  links.Disconnected(3, 2100);
  EXPECT_TRUE(links.UpdateRelays(core::VersionVector{{2, 1}}, 2100));
  EXPECT_EQ(links.OriginsFor(4), Origins({4, 2}));
}

TEST(Links, BackoffGrowsWithFailuresUpToTheCeilingWithJitter) {
  Links links({2}, Options(), 0);
  links.Disconnected(2, 0);
  EXPECT_EQ(links.BackoffMs(2, 0.0), 50u);
  EXPECT_EQ(links.BackoffMs(2, 0.999), 99u);
  for (int i = 0; i < 10; ++i) links.Disconnected(2, 0);
  EXPECT_GE(links.BackoffMs(2, 0.0), 500u);
  EXPECT_LE(links.BackoffMs(2, 0.999), 1000u);
  links.Connected(2, 0);
  links.Disconnected(2, 10);  // failed right after connecting: still backing off
  EXPECT_GE(links.BackoffMs(2, 0.0), 500u);
  links.Connected(2, 20);
  links.Heard(2, nullptr, 1020);  // up for a second: the count starts over
  links.Disconnected(2, 1030);
  EXPECT_LE(links.BackoffMs(2, 0.999), 100u);
}

TEST(Links, ConnectedButSilentIsDetected) {
  Links links({2}, Options(), 0);
  links.Dialing(2, 10'000);
  EXPECT_EQ(links.TimeoutMs(2), 2000u);
  EXPECT_FALSE(links.Silent(2, 10'501));  // a dial has longer than a connected link
  EXPECT_FALSE(links.Silent(2, 12'000));
  EXPECT_TRUE(links.Silent(2, 12'001));  // the dial never answered
  EXPECT_EQ(links.TimeoutMs(2), 2000u);
  links.Connected(2, 0);
  EXPECT_EQ(links.TimeoutMs(2), 500u);
  EXPECT_FALSE(links.Silent(2, 500));
  EXPECT_TRUE(links.Silent(2, 501));
  links.Heard(2, nullptr, 600);
  EXPECT_FALSE(links.Silent(2, 700));
}

TEST(Links, ADialHasItsOwnTimeoutLongerForASlowLink) {
  Links links({2, 3}, Options(), 0);
  // A dial gets dial_timeout_ms (2000 here), longer than the 500 ms silence timeout: the first
  // dial of a slow link answers after 800 ms.
  links.Dialing(2, 0);
  EXPECT_EQ(links.TimeoutMs(2), 2000u);
  EXPECT_FALSE(links.Silent(2, 800));
  links.Connected(2, 800);
  EXPECT_EQ(links.TimeoutMs(2), 500u);  // connected: the silence timeout
  links.Disconnected(2, 900);
  // Later dials: four times the slowest answer seen when that is longer.
  links.Dialing(2, 1000);
  EXPECT_EQ(links.TimeoutMs(2), 3200u);
  // A fast link's dials keep dial_timeout_ms.
  links.Dialing(3, 0);
  links.Connected(3, 50);
  links.Disconnected(3, 100);
  links.Dialing(3, 200);
  EXPECT_EQ(links.TimeoutMs(3), 2000u);
  EXPECT_TRUE(links.Silent(3, 2201));
}

}  // namespace
}  // namespace meridian::replication
