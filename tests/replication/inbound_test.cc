// Inbound: the receiving side's rules around each stream — connection, acknowledgements after a
// heartbeat or an applied batch, a gap ending the stream, resubscription when relays change,
// silence, backoff.
#include "replication/inbound.h"

#include <gtest/gtest.h>

namespace meridian::replication {
namespace {

using Origins = std::vector<core::RegionId>;
using core::VersionVector;

LinkOptions Options() {
  LinkOptions options;
  options.relay_after_ms = 1000;
  options.backoff_initial_ms = 100;
  options.backoff_max_ms = 1000;
  options.silence_timeout_ms = 500;
  options.dial_timeout_ms = 1000;
  return options;
}

// This region is 1; peers 2 and 3.
TEST(Inbound, AStreamIsConnectedAtItsFirstMessage) {
  Inbound inbound({2, 3}, Options(), 0);
  EXPECT_EQ(inbound.Dialing(2, 0), Origins({2}));
  EXPECT_FALSE(inbound.links().Views()[0].connected);
  EXPECT_TRUE(inbound.Received(2, 10));
  EXPECT_FALSE(inbound.Received(2, 20));
  EXPECT_TRUE(inbound.links().Views()[0].connected);
}

TEST(Inbound, AHeartbeatIsAcknowledgedOnlyWhenTheFrontierMoved) {
  Inbound inbound({2, 3}, Options(), 0);
  inbound.Dialing(2, 0);
  inbound.Received(2, 10);
  const VersionVector peer{{2, 5}};
  EXPECT_EQ(inbound.HeartbeatReceived(2, peer, VersionVector{{3, 1}}, 10), VersionVector({{3, 1}}));
  EXPECT_EQ(inbound.HeartbeatReceived(2, peer, VersionVector{{3, 1}}, 20), std::nullopt);
  EXPECT_EQ(inbound.HeartbeatReceived(2, peer, VersionVector{{3, 2}}, 30), VersionVector({{3, 2}}));
  // A new stream starts with nothing acknowledged.
  inbound.Ended(2, 40, 0.0);
  inbound.Dialing(2, 100);
  inbound.Received(2, 110);
  EXPECT_EQ(inbound.HeartbeatReceived(2, peer, VersionVector{{3, 2}}, 110),
            VersionVector({{3, 2}}));
}

TEST(Inbound, AnAppliedBatchIsAcknowledgedOnceForEveryBatchAlreadyApplied) {
  Inbound inbound({2, 3}, Options(), 0);
  inbound.Dialing(2, 0);
  inbound.Received(2, 10);
  Inbound::Applied applied;
  applied.last = false;
  auto after = inbound.BatchApplied(2, applied, VersionVector{{2, 3}}, 20);
  EXPECT_FALSE(after.end);
  EXPECT_EQ(after.ack, std::nullopt);  // the next one answers for both
  applied.last = true;
  after = inbound.BatchApplied(2, applied, VersionVector{{2, 6}}, 20);
  EXPECT_EQ(after.ack, VersionVector({{2, 6}}));
  // A batch of duplicates is acknowledged though the frontier did not move.
  applied.duplicates = 3;
  after = inbound.BatchApplied(2, applied, VersionVector{{2, 6}}, 30);
  EXPECT_EQ(after.ack, VersionVector({{2, 6}}));
  applied.duplicates = 0;
  after = inbound.BatchApplied(2, applied, VersionVector{{2, 6}}, 40);
  EXPECT_EQ(after.ack, std::nullopt);
}

TEST(Inbound, AGapOrAFailedApplyEndsTheStreamWithoutAnAck) {
  Inbound inbound({2, 3}, Options(), 0);
  inbound.Dialing(2, 0);
  inbound.Received(2, 10);
  Inbound::Applied gap;
  gap.gaps = 1;
  auto after = inbound.BatchApplied(2, gap, VersionVector{{2, 6}}, 20);
  EXPECT_TRUE(after.end);
  EXPECT_EQ(after.ack, std::nullopt);
  Inbound::Applied failed;
  failed.ok = false;
  after = inbound.BatchApplied(2, failed, VersionVector{{2, 6}}, 20);
  EXPECT_TRUE(after.end);
  EXPECT_EQ(after.ack, std::nullopt);
}

TEST(Inbound, ARelayChangeResubscribesThePeersWhoseOriginsChanged) {
  Inbound inbound({2, 3}, Options(), 0);
  inbound.Dialing(3, 0);
  inbound.Received(3, 10);
  const VersionVector ahead{{2, 8}, {3, 1}};
  inbound.HeartbeatReceived(3, ahead, VersionVector{}, 10);
  // The link to 2 never came up; after relay_after_ms, 3 (ahead for 2) relays it.
  Inbound::Tick tick = inbound.OnTick(VersionVector{}, 1000);
  EXPECT_EQ(tick.changed, Origins({3}));
  EXPECT_TRUE(inbound.ResubscribeDue(3));
  EXPECT_FALSE(inbound.ResubscribeDue(2));
  EXPECT_EQ(inbound.Subscription(3), Origins({3, 2}));
  EXPECT_FALSE(inbound.ResubscribeDue(3));
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 1050).changed.empty());
}

TEST(Inbound, OnlyAStreamThatIsDiallingOrConnectedIsCutForSilence) {
  Inbound inbound({2, 3}, Options(), 0);
  inbound.Dialing(2, 0);
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 1000).silent.empty());  // a dial's own timeout
  EXPECT_EQ(inbound.OnTick(VersionVector{}, 1001).silent, Origins({2}));
  // Ended and backing off: nothing to cut.
  inbound.Ended(2, 1001, 0.0);
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 2000).silent.empty());
  // Heard from: not silent.
  inbound.Dialing(2, 2000);
  inbound.Received(2, 2400);
  inbound.BatchReceived(2, 2400);
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 2800).silent.empty());
}

TEST(Inbound, EachEndedStreamBacksOffLonger) {
  Inbound inbound({2, 3}, Options(), 0);
  inbound.Dialing(2, 0);
  EXPECT_EQ(inbound.Ended(2, 10, 0.0), 50u);  // ceiling 100: half of it at least
  inbound.Dialing(2, 100);
  EXPECT_EQ(inbound.Ended(2, 110, 0.0), 100u);
  inbound.Dialing(2, 300);
  EXPECT_EQ(inbound.Ended(2, 310, 0.999), 399u);
}

}  // namespace
}  // namespace meridian::replication
