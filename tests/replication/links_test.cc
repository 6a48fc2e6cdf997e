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
  links.Connected(3, 10, 0);
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
  links.Connected(2, 5200, 0);
  EXPECT_TRUE(links.UpdateRelays(applied, 5200));
  EXPECT_EQ(links.OriginsFor(3), Origins({3}));
}

// 2's log starts after what this region needs of 2 (2 was re-seeded, or trimmed): 2's events
// come through 3, which holds them, while 2's link stays up; once they are here, 2's link carries
// them again. A relay never goes through a peer that said it lacks them.
TEST(Links, APeerBehindForAnOriginIsRelayedAroundUntilCaughtUp) {
  Links links({2, 3}, Options(), 0);
  links.Connected(2, 10, 0);
  links.Connected(3, 10, 0);
  const auto ahead = core::VersionVector{{2, 40}, {3, 9}};
  links.Heard(3, &ahead, 20);
  links.Behind(2, 2, 21);  // 2 cannot send 2:21 onwards
  EXPECT_EQ(links.OriginsFor(2), Origins());
  EXPECT_TRUE(links.UpdateRelays(core::VersionVector{{2, 20}}, 30));
  EXPECT_EQ(links.OriginsFor(3), Origins({3, 2}));
  // 3 says it lacks them too: no relay through it, and none is left.
  links.Behind(3, 2, 21);
  EXPECT_TRUE(links.UpdateRelays(core::VersionVector{{2, 20}}, 40));
  EXPECT_EQ(links.OriginsFor(3), Origins({3}));
  EXPECT_EQ(links.OriginsFor(2), Origins());
  // They arrived after all (through the relay, before 3 said so): both carry what they did.
  EXPECT_TRUE(links.UpdateRelays(core::VersionVector{{2, 21}}, 50));
  EXPECT_EQ(links.OriginsFor(2), Origins({2}));
  EXPECT_EQ(links.OriginsFor(3), Origins({3}));
}

// Region 4 was removed from the deployment: no link carries its events, so what this region
// lacks of them comes through a peer that holds more (a region restored from an older copy).
TEST(Links, ARemovedRegionsEventsAreRelayedByAPeerThatHoldsThem) {
  Links links({2, 3}, Options(), 0);
  links.Connected(2, 10, 0);
  links.Connected(3, 10, 0);
  const auto two = core::VersionVector{{1, 7}, {2, 5}, {4, 30}};
  const auto three = core::VersionVector{{3, 9}, {4, 12}};
  links.Heard(2, &two, 20);
  links.Heard(3, &three, 20);
  const auto applied = core::VersionVector{{4, 12}};
  EXPECT_TRUE(links.UpdateRelays(applied, 30, /*self=*/1));
  EXPECT_EQ(links.OriginsFor(2), Origins({2, 4}));  // never this region's own (1)
  EXPECT_EQ(links.OriginsFor(3), Origins({3}));
}

// Stuck: a peer's log lacks what this region needs of an origin and nothing carries it. Only
// then, and from then on, does StuckSinceMs answer; a relay that appears ends it.
TEST(Links, StuckOnlyWhileNothingCarriesWhatAPeersLogLacks) {
  Links links({2, 3}, Options(), 0);
  links.Connected(2, 10, 0);
  links.Connected(3, 10, 0);
  const auto applied = core::VersionVector{{2, 5}};
  links.Behind(2, 2, 6);  // 2's own log starts past 6
  EXPECT_FALSE(links.StuckSinceMs());
  links.UpdateRelays(applied, 100, 1);
  EXPECT_EQ(links.StuckSinceMs(), 100u);
  links.UpdateRelays(applied, 900, 1);
  EXPECT_EQ(links.StuckSinceMs(), 100u);  // since when, not when last seen
  // 3 turns out to hold 2's events: relayed, not stuck.
  const auto ahead = core::VersionVector{{2, 40}, {3, 9}};
  links.Heard(3, &ahead, 1000);
  links.UpdateRelays(applied, 1000, 1);
  EXPECT_EQ(links.OriginsFor(3), Origins({3, 2}));
  EXPECT_FALSE(links.StuckSinceMs());
  // This region's own events (rebuilding): stuck while no connected peer that is ahead logs them.
  const auto own = core::VersionVector{{1, 9}};
  links.Heard(2, &own, 1500);
  links.Behind(3, 1, 4);
  links.Behind(2, 1, 4);
  links.UpdateRelays(applied, 2000, 1);
  EXPECT_EQ(links.StuckSinceMs(), 2000u);
  // To re-seed from: first the peer ahead for what this region is stuck behind for (2 holds its
  // own events up to 9), then the one that holds more in all.
  EXPECT_EQ(links.ReseedSources(applied), Origins({2, 3}));
  // Caught up past what was wanted: nothing is wanted any more.
  links.UpdateRelays(core::VersionVector{{1, 4}, {2, 40}}, 2100, 1);
  EXPECT_FALSE(links.StuckSinceMs());
}

TEST(Links, NoRelayBeforeTheThreshold) {
  Links links({2, 3}, Options(), 0);
  links.Connected(2, 0, 0);
  links.Connected(3, 0, 0);
  const auto ahead = core::VersionVector{{2, 8}};
  links.Heard(3, &ahead, 0);
  links.Disconnected(2, 100);
  EXPECT_FALSE(links.UpdateRelays(core::VersionVector{}, 1099));
  EXPECT_TRUE(links.UpdateRelays(core::VersionVector{}, 1100));
  EXPECT_EQ(links.OriginsFor(3), Origins({3, 2}));
}

TEST(Links, ASuspectLinkIsRelayedLikeADownOneUntilItResumes) {
  Links links({2, 3}, Options(), 0);
  links.Connected(2, 0, 0);
  links.Connected(3, 0, 0);
  const auto ahead = core::VersionVector{{2, 8}};
  links.Heard(3, &ahead, 0);
  links.Suspect(2, 500);  // its stream went quiet
  EXPECT_FALSE(links.Views()[0].connected);
  EXPECT_FALSE(links.UpdateRelays(core::VersionVector{}, 1499));
  EXPECT_TRUE(links.UpdateRelays(core::VersionVector{}, 1500));
  EXPECT_EQ(links.OriginsFor(3), Origins({3, 2}));
  links.Resumed(2, 1600);  // it spoke again
  EXPECT_TRUE(links.Views()[0].connected);
  EXPECT_EQ(links.Views()[0].failures, 0u);
  EXPECT_EQ(links.Views()[0].connects, 1u);
  EXPECT_TRUE(links.UpdateRelays(core::VersionVector{}, 1600));
  EXPECT_EQ(links.OriginsFor(3), Origins({3}));
}

TEST(Links, RelayMovesWhenTheRelayingPeerIsLost) {
  Links links({2, 3, 4}, Options(), 0);
  links.Connected(3, 0, 0);
  links.Connected(4, 0, 0);
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
  links.Connected(2, 0, 0);
  links.Disconnected(2, 10);  // failed right after connecting: still backing off
  EXPECT_GE(links.BackoffMs(2, 0.0), 500u);
  links.Connected(2, 20, 0);
  links.Heard(2, nullptr, 1020);  // up for a second: the count starts over
  links.Disconnected(2, 1030);
  EXPECT_LE(links.BackoffMs(2, 0.999), 100u);
}

TEST(Links, ADialHasItsOwnTimeoutLongerForASlowLink) {
  Links links({2, 3}, Options(), 0);
  // A dial gets dial_timeout_ms (2000 here), longer than the 500 ms silence timeout.
  EXPECT_EQ(links.DialTimeoutMs(2), 2000u);
  EXPECT_EQ(links.silence_timeout_ms(), 500u);
  // A slow link: its fastest answer took 800 ms; three times that is longer.
  links.Connected(2, 800, 800);
  links.Disconnected(2, 900);
  EXPECT_EQ(links.DialTimeoutMs(2), 2400u);
  // A slower answer later does not raise it (the fastest is the link's round trips; the slower
  // ones are losses that a hedge covers).
  links.Connected(2, 5000, 2500);
  EXPECT_EQ(links.DialTimeoutMs(2), 2400u);
  // A fast link's dials keep dial_timeout_ms.
  links.Connected(3, 50, 50);
  EXPECT_EQ(links.DialTimeoutMs(3), 2000u);
}

TEST(Links, ADialIsHedgedAfterTheFloorOrTheFastestAnswer) {
  LinkOptions options = Options();
  options.hedge_after_ms = 300;
  Links links({2, 3}, options, 0);
  EXPECT_EQ(links.HedgeAfterMs(2), 300u);  // no answer yet: the floor
  links.Connected(2, 1000, 1000);
  links.Connected(2, 3000, 1700);
  EXPECT_EQ(links.HedgeAfterMs(2), 1000u);  // the fastest answer
  links.Connected(3, 40, 40);
  EXPECT_EQ(links.HedgeAfterMs(3), 300u);
}

}  // namespace
}  // namespace meridian::replication
