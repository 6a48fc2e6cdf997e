// Inbound: the receiving side's rules around each stream — connection, acknowledgements after a
// heartbeat or an applied batch, a gap ending the stream, resubscription when relays change,
// silence, hedges beside slow streams, backoff.
#include "replication/inbound.h"

#include <gtest/gtest.h>

namespace meridian::replication {
namespace {

using Origins = std::vector<core::RegionId>;
using Streams = std::vector<uint64_t>;
using core::VersionVector;

LinkOptions Options() {
  LinkOptions options;
  options.relay_after_ms = 1000;
  options.backoff_initial_ms = 100;
  options.backoff_max_ms = 1000;
  options.silence_timeout_ms = 500;
  options.dial_timeout_ms = 1000;
  options.hedge_after_ms = 300;
  return options;
}

bool Connected(const Inbound& inbound, core::RegionId peer) {
  for (const Links::View& view : inbound.links().Views()) {
    if (view.peer == peer) return view.connected;
  }
  return false;
}

// This region is 1; peers 2 and 3.
TEST(Inbound, AStreamIsConnectedAtItsFirstMessage) {
  Inbound inbound({2, 3}, Options(), 0);
  const Inbound::Dial dial = inbound.Dialing(2, 0);
  EXPECT_EQ(dial.origins, Origins({2}));
  EXPECT_FALSE(Connected(inbound, 2));
  EXPECT_TRUE(inbound.Received(dial.stream, 10).first);
  EXPECT_FALSE(inbound.Received(dial.stream, 20).first);
  EXPECT_TRUE(Connected(inbound, 2));
  EXPECT_EQ(inbound.PeerOf(dial.stream), 2u);
  EXPECT_EQ(inbound.StreamsOf(2), 1u);
}

TEST(Inbound, AHeartbeatIsAcknowledgedOnlyWhenTheFrontierMoved) {
  Inbound inbound({2, 3}, Options(), 0);
  const uint64_t stream = inbound.Dialing(2, 0).stream;
  inbound.Received(stream, 10);
  const VersionVector peer{{2, 5}};
  EXPECT_EQ(inbound.HeartbeatReceived(stream, peer, VersionVector{{3, 1}}, 10),
            VersionVector({{3, 1}}));
  EXPECT_EQ(inbound.HeartbeatReceived(stream, peer, VersionVector{{3, 1}}, 20), std::nullopt);
  EXPECT_EQ(inbound.HeartbeatReceived(stream, peer, VersionVector{{3, 2}}, 30),
            VersionVector({{3, 2}}));
  // A new stream starts with nothing acknowledged.
  EXPECT_TRUE(inbound.Ended(stream, 40, 0.0).has_value());
  const uint64_t next = inbound.Dialing(2, 100).stream;
  EXPECT_NE(next, stream);
  inbound.Received(next, 110);
  EXPECT_EQ(inbound.HeartbeatReceived(next, peer, VersionVector{{3, 2}}, 110),
            VersionVector({{3, 2}}));
}

TEST(Inbound, AnAppliedBatchIsAcknowledgedOnceForEveryBatchAlreadyApplied) {
  Inbound inbound({2, 3}, Options(), 0);
  const uint64_t stream = inbound.Dialing(2, 0).stream;
  inbound.Received(stream, 10);
  Inbound::Applied applied;
  applied.last = false;
  auto after = inbound.BatchApplied(stream, applied, VersionVector{{2, 3}}, 20);
  EXPECT_FALSE(after.end);
  EXPECT_EQ(after.ack, std::nullopt);  // the next one answers for both
  applied.last = true;
  after = inbound.BatchApplied(stream, applied, VersionVector{{2, 6}}, 20);
  EXPECT_EQ(after.ack, VersionVector({{2, 6}}));
  // A batch of duplicates is acknowledged though the frontier did not move.
  applied.duplicates = 3;
  after = inbound.BatchApplied(stream, applied, VersionVector{{2, 6}}, 30);
  EXPECT_EQ(after.ack, VersionVector({{2, 6}}));
  applied.duplicates = 0;
  after = inbound.BatchApplied(stream, applied, VersionVector{{2, 6}}, 40);
  EXPECT_EQ(after.ack, std::nullopt);
}

TEST(Inbound, AGapOrAFailedApplyEndsTheStreamWithoutAnAck) {
  Inbound inbound({2, 3}, Options(), 0);
  const uint64_t stream = inbound.Dialing(2, 0).stream;
  inbound.Received(stream, 10);
  Inbound::Applied gap;
  gap.gaps = 1;
  auto after = inbound.BatchApplied(stream, gap, VersionVector{{2, 6}}, 20);
  EXPECT_TRUE(after.end);
  EXPECT_EQ(after.ack, std::nullopt);
  Inbound::Applied failed;
  failed.ok = false;
  after = inbound.BatchApplied(stream, failed, VersionVector{{2, 6}}, 20);
  EXPECT_TRUE(after.end);
  EXPECT_EQ(after.ack, std::nullopt);
}

TEST(Inbound, ARelayChangeResubscribesThePeersWhoseOriginsChanged) {
  Inbound inbound({2, 3}, Options(), 0);
  const uint64_t to_two = inbound.Dialing(2, 0).stream;
  ASSERT_TRUE(inbound.Ended(to_two, 0, 0.0).has_value());  // 2 is down
  const uint64_t to_three = inbound.Dialing(3, 0).stream;
  inbound.Received(to_three, 10);
  const VersionVector ahead{{2, 8}, {3, 1}};
  inbound.HeartbeatReceived(to_three, ahead, VersionVector{}, 10);
  // The link to 2 never came up; after relay_after_ms, 3 (ahead for 2) relays it.
  Inbound::Tick tick = inbound.OnTick(VersionVector{}, 1000);
  EXPECT_EQ(tick.changed, Origins({3}));
  EXPECT_TRUE(inbound.ResubscribeDue(to_three));
  EXPECT_EQ(inbound.Subscription(to_three), Origins({3, 2}));
  EXPECT_FALSE(inbound.ResubscribeDue(to_three));
  inbound.Received(to_three, 1040);
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 1050).changed.empty());
}

TEST(Inbound, ADialIsGivenUpAfterItsTimeoutAndAConnectedStreamAfterTwiceTheSilence) {
  Inbound inbound({2, 3}, Options(), 0);
  const uint64_t dial = inbound.Dialing(2, 0).stream;
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 1000).silent.empty());  // the dial's own timeout
  EXPECT_EQ(inbound.OnTick(VersionVector{}, 1001).silent, Streams({dial}));
  EXPECT_EQ(inbound.TimeoutMs(dial), 1000u);
  // Cut: not reported again, and backing off once it ended.
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 1002).silent.empty());
  EXPECT_TRUE(inbound.Ended(dial, 1002, 0.0).has_value());
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 2000).silent.empty());
  // Heard from: not silent.
  const uint64_t stream = inbound.Dialing(2, 2000).stream;
  inbound.Received(stream, 2400);
  inbound.BatchReceived(stream, 2400);
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 2900).quiet.empty());
  EXPECT_TRUE(Connected(inbound, 2));
  // Silent for the silence timeout: quiet, kept, but the link counts as down.
  const Inbound::Tick quiet = inbound.OnTick(VersionVector{}, 2901);
  EXPECT_EQ(quiet.quiet, Streams({stream}));
  EXPECT_TRUE(quiet.silent.empty());
  EXPECT_FALSE(Connected(inbound, 2));
  EXPECT_EQ(inbound.TimeoutMs(stream), 1000u);  // twice the 500 ms silence timeout
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 3400).silent.empty());
  EXPECT_EQ(inbound.OnTick(VersionVector{}, 3401).silent, Streams({stream}));
  EXPECT_TRUE(inbound.Ended(stream, 3401, 0.0).has_value());
  EXPECT_FALSE(Connected(inbound, 2));
}

TEST(Inbound, ASlowDialIsHedgedAndTheFirstToAnswerWins) {
  Inbound inbound({2, 3}, Options(), 0);
  const uint64_t first = inbound.Dialing(2, 0).stream;
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 299).hedge.empty());
  EXPECT_EQ(inbound.OnTick(VersionVector{}, 300).hedge, Origins({2}));
  const uint64_t second = inbound.Dialing(2, 300).stream;
  EXPECT_EQ(inbound.StreamsOf(2), 2u);
  // The second is still young: no hedge for it yet; then a third, and no more than three.
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 599).hedge.empty());
  EXPECT_EQ(inbound.OnTick(VersionVector{}, 600).hedge, Origins({2}));
  const uint64_t third = inbound.Dialing(2, 600).stream;
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 950).hedge.empty());
  // The second answers first: it is the link, the others are cancelled.
  const Inbound::Arrival arrival = inbound.Received(second, 700 + 250);
  EXPECT_TRUE(arrival.first);
  EXPECT_EQ(arrival.cancel, Streams({first, third}));
  EXPECT_TRUE(inbound.GaveWay(first));
  EXPECT_TRUE(inbound.GaveWay(third));
  EXPECT_FALSE(inbound.GaveWay(second));
  EXPECT_TRUE(Connected(inbound, 2));
  EXPECT_EQ(inbound.StreamsOf(2), 1u);
  // A message still arriving on a cancelled one is ignored.
  EXPECT_TRUE(inbound.Received(first, 960).stale);
  // Their ends change nothing: no backoff, no redial from them, the link stays up.
  EXPECT_EQ(inbound.Ended(first, 970, 0.0), std::nullopt);
  EXPECT_EQ(inbound.Ended(third, 970, 0.0), std::nullopt);
  EXPECT_TRUE(Connected(inbound, 2));
  EXPECT_EQ(inbound.links().Views()[0].failures, 0u);
  // The link's fastest answer (650 ms) is its hedge time from now on.
  EXPECT_EQ(inbound.links().HedgeAfterMs(2), 650u);
}

TEST(Inbound, ASilentConnectedStreamIsHedgedAndKeepsTheLinkIfItSpeaksFirst) {
  Inbound inbound({2, 3}, Options(), 0);
  const uint64_t old = inbound.Dialing(2, 0).stream;
  inbound.Received(old, 100);
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 600).hedge.empty());
  EXPECT_EQ(inbound.OnTick(VersionVector{}, 601).hedge, Origins({2}));  // silent 500 ms
  const uint64_t hedge = inbound.Dialing(2, 601).stream;
  EXPECT_FALSE(Connected(inbound, 2));  // quiet
  // The old stream speaks again first: the hedge is cancelled, the link is back.
  const Inbound::Arrival arrival = inbound.Received(old, 800);
  EXPECT_FALSE(arrival.first);
  EXPECT_EQ(arrival.cancel, Streams({hedge}));
  EXPECT_EQ(inbound.Ended(hedge, 810, 0.0), std::nullopt);
  EXPECT_TRUE(Connected(inbound, 2));
  EXPECT_EQ(inbound.links().Views()[0].connects, 1u);
  EXPECT_EQ(inbound.links().Views()[0].failures, 0u);
  // Silent again; this time the hedge answers first and takes the link over.
  EXPECT_EQ(inbound.OnTick(VersionVector{}, 1301).hedge, Origins({2}));
  const uint64_t next = inbound.Dialing(2, 1301).stream;
  const Inbound::Arrival taken = inbound.Received(next, 1500);
  EXPECT_TRUE(taken.first);
  EXPECT_EQ(taken.cancel, Streams({old}));
  EXPECT_EQ(inbound.Ended(old, 1510, 0.0), std::nullopt);
  EXPECT_TRUE(Connected(inbound, 2));
  EXPECT_EQ(inbound.links().Views()[0].connects, 2u);  // down while quiet, up with the hedge
  EXPECT_EQ(inbound.links().Views()[0].failures, 0u);
}

TEST(Inbound, HedgesBesideAQuietStreamThatFailAtOnceAreSpacedByTheHedgeTime) {
  Inbound inbound({2, 3}, Options(), 0);
  const uint64_t old = inbound.Dialing(2, 0).stream;
  inbound.Received(old, 10);
  ASSERT_EQ(inbound.OnTick(VersionVector{}, 511).hedge, Origins({2}));  // quiet
  // The hedge is refused at once; the quiet stream is still open, so no backoff applies.
  EXPECT_EQ(inbound.Ended(inbound.Dialing(2, 511).stream, 515, 0.0), std::nullopt);
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 560).hedge.empty());
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 810).hedge.empty());
  EXPECT_EQ(inbound.OnTick(VersionVector{}, 811).hedge, Origins({2}));  // 300 ms later
}

TEST(Inbound, DialsThatNeverAnswerSpaceTheirHedgesOutLikeRedials) {
  // A partition: every dial of 2 hangs until its timeout (1000 ms). Ticks every 10 ms, hedges
  // and redials as a transport would make them.
  LinkOptions options = Options();
  options.backoff_max_ms = 4000;
  Inbound inbound({2, 3}, options, 0);
  std::vector<uint64_t> dials = {0};
  inbound.Dialing(2, 0);
  constexpr uint64_t kNone = UINT64_MAX;
  uint64_t redial_at = kNone;  // after the backoff, once every stream ended
  for (uint64_t now = 10; now <= 30'000; now += 10) {
    if (redial_at != kNone && now >= redial_at) {
      inbound.Dialing(2, now);
      dials.push_back(now);
      redial_at = kNone;
    }
    const Inbound::Tick tick = inbound.OnTick(VersionVector{}, now);
    for (uint64_t stream : tick.silent) {
      if (const auto delay = inbound.Ended(stream, now, 0.5)) redial_at = now + *delay;
    }
    for (core::RegionId peer : tick.hedge) {
      ASSERT_EQ(peer, 2u);
      inbound.Dialing(peer, now);
      dials.push_back(now);
    }
    ASSERT_LE(inbound.StreamsOf(2), 3u);
  }
  // Each unanswered dial is a failure, and the dials slow to redials' pace: a hedge no sooner than
  // half the backoff ceiling (2000 ms here, the shortest a redial waits), so a dial that times out
  // alone is redialled after the backoff — instead of one dial every hedge time (300 ms).
  EXPECT_GE(inbound.links().Views()[0].failures, 10u);
  size_t last_ten_seconds = 0;
  for (uint64_t at : dials) last_ten_seconds += at > 20'000 ? 1 : 0;
  EXPECT_LE(last_ten_seconds, 6u);
  EXPECT_GE(last_ten_seconds, 2u);
}

TEST(Inbound, ALinkIsDownOnlyWhenItsLastStreamEnds) {
  Inbound inbound({2, 3}, Options(), 0);
  const uint64_t old = inbound.Dialing(2, 0).stream;
  inbound.Received(old, 10);
  ASSERT_EQ(inbound.OnTick(VersionVector{}, 511).hedge, Origins({2}));
  const uint64_t hedge = inbound.Dialing(2, 511).stream;
  // The old stream is cut for silence while the hedge still dials: the link is down (relays may
  // start), but the hedge's end is the one that backs off and redials.
  EXPECT_EQ(inbound.OnTick(VersionVector{}, 1011).silent, Streams({old}));
  EXPECT_EQ(inbound.Ended(old, 1011, 0.0), std::nullopt);
  EXPECT_FALSE(Connected(inbound, 2));
  EXPECT_EQ(inbound.Ended(hedge, 1100, 0.0), std::optional<uint64_t>(100));
}

TEST(Inbound, EachEndedStreamBacksOffLonger) {
  Inbound inbound({2, 3}, Options(), 0);
  uint64_t stream = inbound.Dialing(2, 0).stream;
  EXPECT_EQ(inbound.Ended(stream, 10, 0.0), std::optional<uint64_t>(50));  // ceiling 100
  stream = inbound.Dialing(2, 100).stream;
  EXPECT_EQ(inbound.Ended(stream, 110, 0.0), std::optional<uint64_t>(100));
  stream = inbound.Dialing(2, 300).stream;
  EXPECT_EQ(inbound.Ended(stream, 310, 0.999), std::optional<uint64_t>(399));
  // No stream open while backing off: nothing to hedge.
  EXPECT_TRUE(inbound.OnTick(VersionVector{}, 5000).hedge.empty());
}

// Rebuilding: this region (1) started from an empty directory. It is rebuilding until both peers
// have told (by heartbeat) what they hold of its own events, and then while a peer holds more of
// them than it has applied; meanwhile every Subscribe asks for its own origin too.
TEST(Inbound, AnEmptyRegionRebuildsUntilEveryPeerToldAndItHasItsOwnEventsBack) {
  Inbound inbound({2, 3}, Options(), 0);
  inbound.FollowOwnOrigin(1, /*confirm=*/true, 0);
  EXPECT_TRUE(inbound.rebuilding());
  const Inbound::Dial to2 = inbound.Dialing(2, 0);
  const Inbound::Dial to3 = inbound.Dialing(3, 0);
  EXPECT_EQ(to2.origins, Origins({2, 1}));
  inbound.Received(to2.stream, 10);
  inbound.Received(to3.stream, 10);
  inbound.HeartbeatReceived(to2.stream, VersionVector{{1, 40}, {2, 9}}, VersionVector{}, 10);
  Inbound::Rebuild view = inbound.Rebuilding();
  EXPECT_TRUE(view.confirming);
  EXPECT_EQ(view.waiting, Origins({3}));
  EXPECT_EQ(view.target, 40u);
  EXPECT_EQ(view.ahead, std::optional<core::RegionId>(2));
  inbound.HeartbeatReceived(to3.stream, VersionVector{{1, 35}}, VersionVector{}, 20);
  view = inbound.Rebuilding();
  EXPECT_FALSE(view.confirming);
  EXPECT_TRUE(view.rebuilding);  // 2 holds up to 40, this region nothing
  inbound.BatchApplied(to2.stream, {}, VersionVector{{1, 39}}, 30);
  EXPECT_TRUE(inbound.rebuilding());
  EXPECT_FALSE(inbound.ResubscribeDue(to2.stream));
  inbound.BatchApplied(to2.stream, {}, VersionVector{{1, 40}}, 40);
  EXPECT_FALSE(inbound.rebuilding());
  // Done: every stream subscribes again without this region's own origin.
  EXPECT_TRUE(inbound.ResubscribeDue(to2.stream));
  EXPECT_TRUE(inbound.ResubscribeDue(to3.stream));
  EXPECT_EQ(inbound.Subscription(to2.stream), Origins({2}));
  EXPECT_EQ(inbound.Subscription(to3.stream), Origins({3}));
}

// An intact directory writes at once; should a peer ever show more of this region's own events
// than it has (it lost acknowledged writes, say a restore the directory did not reveal), it stops
// writing until it has them back.
TEST(Inbound, AnIntactRegionRebuildsOnlyWhenAPeerHoldsMoreOfItsOwnEvents) {
  Inbound inbound({2, 3}, Options(), 0);
  inbound.FollowOwnOrigin(1, /*confirm=*/false, 7);
  EXPECT_FALSE(inbound.rebuilding());
  const Inbound::Dial to2 = inbound.Dialing(2, 0);
  EXPECT_EQ(to2.origins, Origins({2}));
  inbound.Received(to2.stream, 10);
  inbound.HeartbeatReceived(to2.stream, VersionVector{{1, 7}}, VersionVector{{1, 7}}, 10);
  EXPECT_FALSE(inbound.rebuilding());
  inbound.HeartbeatReceived(to2.stream, VersionVector{{1, 9}}, VersionVector{{1, 7}}, 20);
  EXPECT_TRUE(inbound.rebuilding());
  EXPECT_TRUE(inbound.ResubscribeDue(to2.stream));
  EXPECT_EQ(inbound.Subscription(to2.stream), Origins({2, 1}));
  inbound.OnTick(VersionVector{{1, 9}}, 30);
  EXPECT_FALSE(inbound.rebuilding());
}

// Without FollowOwnOrigin (the simulator's regions, a single region) nothing is ever rebuilt.
TEST(Inbound, NothingRebuildsWhenNotFollowingTheOwnOrigin) {
  Inbound inbound({2}, Options(), 0);
  const Inbound::Dial dial = inbound.Dialing(2, 0);
  inbound.Received(dial.stream, 10);
  inbound.HeartbeatReceived(dial.stream, VersionVector{{1, 9}}, VersionVector{}, 20);
  EXPECT_FALSE(inbound.rebuilding());
  EXPECT_EQ(inbound.Subscription(dial.stream), Origins({2}));
}

}  // namespace
}  // namespace meridian::replication
