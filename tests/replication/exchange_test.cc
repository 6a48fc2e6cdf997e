// Exchange: the protocol's rules in one state machine — identity checks on both ends, one
// incarnation of a region at a time, the fence of an earlier incarnation, nothing applied from a
// sender that has not said who it is, the apply-queue bound, acknowledgements, late copies of a
// Subscribe, retention's floor. Each test hands it a message sequence, hostile ones included, and
// reads the Ready.
#include "replication/exchange.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace meridian::replication {
namespace {

using core::VersionVector;

// This region is us (1); peers eu (2) and asia (3).
ExchangeOptions Options(core::RegionId self = 1, uint64_t incarnation = 0x11) {
  ExchangeOptions options;
  options.deployment = "prod";
  options.self = self;
  options.incarnation = incarnation;
  options.names = {{1, "us"}, {2, "eu"}, {3, "asia"}};
  options.apply_queue_max = 2;
  options.retention_hold_ms = 10'000;
  return options;
}

VersionVector Vector(std::initializer_list<std::pair<core::RegionId, uint64_t>> entries) {
  VersionVector vector;
  for (const auto& [origin, seq] : entries) vector.Set(origin, seq);
  return vector;
}

wire::Subscribe SubscribeFrom(core::RegionId peer, const std::string& name, uint64_t incarnation,
                              const VersionVector& frontier = {}) {
  wire::Subscribe subscribe;
  subscribe.set_protocol_version(kProtocolVersion);
  subscribe.set_region_id(peer);
  subscribe.set_region_name(name);
  subscribe.set_deployment("prod");
  subscribe.set_incarnation(incarnation);
  subscribe.set_frontier(frontier.Encode());
  subscribe.add_origins(1);
  return subscribe;
}

wire::ToReceiver Heartbeat(core::RegionId region, const std::string& name, uint64_t incarnation,
                           const VersionVector& frontier = {}) {
  wire::ToReceiver message;
  wire::Heartbeat* beat = message.mutable_heartbeat();
  beat->set_deployment("prod");
  beat->set_region_id(region);
  beat->set_region_name(name);
  beat->set_incarnation(incarnation);
  beat->set_frontier(frontier.Encode());
  return message;
}

wire::ToReceiver Batch(core::RegionId origin) {
  wire::ToReceiver message;
  message.mutable_batch()->set_origin(origin);
  return message;
}

core::Event EventOf(core::RegionId origin, uint64_t seq) {
  core::Event event;
  event.dot = {origin, seq};
  event.key = "k";
  return event;
}

// The wall clock the tests' events are decoded at: their HLCs (0) are far behind it.
constexpr uint64_t kWallMs = 1'700'000'000'000;

Ready DecodedNow(Exchange& exchange, uint64_t stream, core::RegionId origin,
                 core::RemoteBatch batch, uint64_t wall_ms = kWallMs) {
  Result<core::RemoteBatch> events(std::move(batch));
  return exchange.Decoded(stream, origin, &events, wall_ms);
}

bool Cancels(const Ready& ready, uint64_t stream, const std::string& why_part = "") {
  return std::any_of(ready.cancel.begin(), ready.cancel.end(), [&](const Ready::Cancel& cancel) {
    return cancel.stream == stream && cancel.why.find(why_part) != std::string::npos;
  });
}

TEST(Exchange, StartFollowsTheOwnOriginAndDialsEveryPeer) {
  Exchange exchange(Options(), 0);
  const Ready ready = exchange.Start({}, /*confirm=*/true);
  ASSERT_EQ(ready.dials.size(), 2u);
  EXPECT_EQ(ready.dials[0].peer, 2u);
  EXPECT_EQ(ready.dials[1].peer, 3u);
  ASSERT_TRUE(ready.rebuild.has_value());
  EXPECT_TRUE(ready.rebuild->rebuilding);  // a new data directory: confirming with every peer
  const Exchange::Dialed dialed = exchange.Dialing(2, {}, 0);
  ASSERT_TRUE(dialed.subscribe.has_subscribe());
  const wire::Subscribe& subscribe = dialed.subscribe.subscribe();
  EXPECT_EQ(subscribe.deployment(), "prod");
  EXPECT_EQ(subscribe.region_name(), "us");
  EXPECT_EQ(subscribe.incarnation(), 0x11u);
  // While rebuilding, the region asks for its own origin too.
  EXPECT_NE(std::find(subscribe.origins().begin(), subscribe.origins().end(), 1u),
            subscribe.origins().end());
}

TEST(Exchange, ASubscriberOfAnotherDeploymentOrNameIsRefusedAndReported) {
  Exchange exchange(Options(), 0);
  wire::Subscribe other = SubscribeFrom(2, "eu", 0x22);
  other.set_deployment("staging");
  Exchange::Served served = exchange.Subscribed(1, other, std::nullopt, 0);
  ASSERT_TRUE(served.refusal.has_value());
  EXPECT_EQ(served.refusal->code, Refusal::Code::kFailedPrecondition);
  EXPECT_TRUE(served.refusal->identity);
  ASSERT_EQ(served.ready.refused.size(), 1u);
  EXPECT_EQ(served.ready.refused[0].peer, 2u);

  served = exchange.Subscribed(2, SubscribeFrom(2, "asia", 0x22), std::nullopt, 0);
  ASSERT_TRUE(served.refusal.has_value());
  EXPECT_NE(served.refusal->message.find("knows as 'eu'"), std::string::npos);

  served = exchange.Subscribed(3, SubscribeFrom(9, "nine", 0x22), std::nullopt, 0);
  ASSERT_TRUE(served.refusal.has_value());
  EXPECT_EQ(served.refusal->code, Refusal::Code::kPermissionDenied);

  served = exchange.Subscribed(4, SubscribeFrom(1, "us", 0x22), std::nullopt, 0);  // its own id
  ASSERT_TRUE(served.refusal.has_value());
  EXPECT_EQ(served.refusal->code, Refusal::Code::kPermissionDenied);

  wire::Subscribe old_protocol = SubscribeFrom(2, "eu", 0x22);
  old_protocol.set_protocol_version(kProtocolVersion + 1);
  EXPECT_TRUE(exchange.Subscribed(5, old_protocol, std::nullopt, 0).refusal.has_value());
  EXPECT_EQ(exchange.SubscriberOf(5), 0u);  // nothing refused is served
}

// Mutual TLS names the peer's region; a subscription, re-seed or verification that claims another
// is refused whatever else it says, and reported against the region the certificate names.
TEST(Exchange, AMessageClaimingAnotherRegionThanItsCertificateIsRefused) {
  Exchange exchange(Options(), 0);
  Exchange::Served served = exchange.Subscribed(1, SubscribeFrom(3, "asia", 0x33), 2, 0);
  ASSERT_TRUE(served.refusal.has_value());
  EXPECT_EQ(served.refusal->code, Refusal::Code::kPermissionDenied);
  EXPECT_EQ(served.refusal->message, "certificate names region 'eu', not 'asia'");
  EXPECT_TRUE(served.refusal->identity);
  ASSERT_EQ(served.ready.refused.size(), 1u);
  EXPECT_EQ(served.ready.refused[0].peer, 2u);
  EXPECT_EQ(exchange.SubscriberOf(1), 0u);
  // An id the deployment does not know is refused for the certificate too.
  served = exchange.Subscribed(2, SubscribeFrom(9, "nine", 0x33), 2, 0);
  ASSERT_TRUE(served.refusal.has_value());
  EXPECT_EQ(served.refusal->message, "certificate names region 'eu', not '#9'");

  wire::SnapshotRequest snapshot;
  snapshot.set_deployment("prod");
  snapshot.set_region_id(3);
  snapshot.set_region_name("asia");
  snapshot.set_incarnation(0x33);
  Ready ready;
  std::optional<Refusal> refusal = exchange.SnapshotRequested(snapshot, 2, &ready);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_EQ(refusal->message, "certificate names region 'eu', not 'asia'");
  EXPECT_TRUE(ready.forgotten.empty()) << "a refused request changes nothing";

  wire::VerifyRequest verify;
  verify.set_deployment("prod");
  verify.set_region_id(3);
  verify.set_region_name("asia");
  verify.set_incarnation(0x33);
  refusal = exchange.VerifyRequested(verify, 2);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_EQ(refusal->message, "certificate names region 'eu', not 'asia'");

  // The region its certificate names, or no TLS at all, is served as before.
  EXPECT_FALSE(exchange.VerifyRequested(verify, 3).has_value());
  EXPECT_FALSE(exchange.VerifyRequested(verify, std::nullopt).has_value());
  EXPECT_FALSE(exchange.SnapshotRequested(snapshot, 3, &ready).has_value());
  served = exchange.Subscribed(3, SubscribeFrom(3, "asia", 0x33), 3, 0);
  EXPECT_FALSE(served.refusal.has_value());
  EXPECT_EQ(exchange.SubscriberOf(3), 3u);
}

TEST(Exchange, OneIncarnationOfARegionAtATimeAndTheEarlierOneIsFenced) {
  Exchange exchange(Options(), 0);
  (void)exchange.Start({}, false);
  // us receives from eu's first incarnation, which also subscribes here.
  const Exchange::Dialed from_eu = exchange.Dialing(2, {}, 0);
  bool decode = false;
  (void)exchange.Received(from_eu.stream, Heartbeat(2, "eu", 0x22), {}, 10, &decode);
  Exchange::Served first = exchange.Subscribed(100, SubscribeFrom(2, "eu", 0x22), std::nullopt, 10);
  ASSERT_FALSE(first.refusal.has_value());
  (void)exchange.Next(100, Vector({{1, 5}}), 15);
  exchange.Sent(100, 1, 5, 100);
  Ready acked;
  wire::ToSender ack;
  ack.mutable_ack()->set_frontier(Vector({{1, 5}}).Encode());
  ASSERT_TRUE(exchange.FromSubscriber(100, ack, 20, &acked));
  EXPECT_EQ(exchange.RegionsHolding({1, 5}), 1u);

  // A second process claiming eu while the first is subscribed: refused.
  Exchange::Served second =
      exchange.Subscribed(101, SubscribeFrom(2, "eu", 0x33), std::nullopt, 30);
  ASSERT_TRUE(second.refusal.has_value());
  EXPECT_EQ(second.refusal->code, Refusal::Code::kAlreadyExists);
  EXPECT_TRUE(second.ready.fence.empty());

  // The first one's stream ends: the new incarnation is taken, what the earlier one acknowledged
  // stops counting, and the stream from the earlier one is fenced and cancelled.
  exchange.ServingEnded(100);
  Exchange::Served third = exchange.Subscribed(102, SubscribeFrom(2, "eu", 0x33), std::nullopt, 40);
  ASSERT_FALSE(third.refusal.has_value());
  EXPECT_EQ(third.ready.fence, std::vector<uint64_t>({from_eu.stream}));
  EXPECT_TRUE(Cancels(third.ready, from_eu.stream, "new incarnation"));
  EXPECT_EQ(third.ready.forgotten, std::vector<core::RegionId>({2}));
  EXPECT_EQ(exchange.RegionsHolding({1, 5}), 0u);
  EXPECT_EQ(exchange.IncarnationOf(2), 0x33u);
}

TEST(Exchange, AStreamBelongsToOneRegionAndOneIncarnation) {
  Exchange exchange(Options(), 0);
  ASSERT_FALSE(
      exchange.Subscribed(100, SubscribeFrom(2, "eu", 0x22), std::nullopt, 0).refusal.has_value());
  Ready ready;
  wire::ToSender resubscribe;
  *resubscribe.mutable_subscribe() = SubscribeFrom(3, "asia", 0x44);
  EXPECT_FALSE(exchange.FromSubscriber(100, resubscribe, 10, &ready));
  *resubscribe.mutable_subscribe() = SubscribeFrom(2, "eu", 0x23);
  EXPECT_FALSE(exchange.FromSubscriber(100, resubscribe, 10, &ready));
  wire::ToSender empty;
  EXPECT_FALSE(exchange.FromSubscriber(100, empty, 10, &ready));
  wire::ToSender bad_ack;
  bad_ack.mutable_ack()->set_frontier("\xff\xff\xff");
  EXPECT_FALSE(exchange.FromSubscriber(100, bad_ack, 10, &ready));
}

// A copy of a stream's earlier Subscribe that reaches the sender after a later one (the simulator
// duplicates and holds back messages) is ignored: it used to bring its origin set back, so the
// sender stopped streaming an origin the subscriber counted on, and nothing ever changed that
// (simulator retention seed 120: me subscribed to sa for nothing while sa's events came through a
// relay, then for sa again; a copy of the first arrived last, and me never got sa's events again).
TEST(Exchange, ALateCopyOfAnEarlierSubscribeDoesNotReplaceTheLaterOne) {
  ExchangeOptions options = Options();
  options.links.relay_after_ms = 0;  // asia is not connected: relayed at once
  Exchange us(options, 0);
  Exchange eu(Options(2, 0x22), 0);
  (void)us.Start({}, false);
  const Exchange::Dialed dialed = us.Dialing(2, {}, 0);
  ASSERT_FALSE(
      eu.Subscribed(100, dialed.subscribe.subscribe(), std::nullopt, 10).refusal.has_value());

  // eu holds asia's events: us relays asia through eu and resubscribes for eu and asia.
  bool decode = false;
  (void)us.Received(dialed.stream, Heartbeat(2, "eu", 0x22, Vector({{3, 5}})), {}, 20, &decode);
  const Ready tick = us.Tick({}, 50);
  ASSERT_EQ(tick.links_changed, true);
  Ready ready =
      us.Received(dialed.stream, Heartbeat(2, "eu", 0x22, Vector({{3, 5}})), {}, 60, &decode);
  ASSERT_EQ(ready.sends.size(), 1u);
  ASSERT_TRUE(ready.sends[0].message.has_subscribe());
  const wire::Subscribe& later = ready.sends[0].message.subscribe();
  ASSERT_EQ(std::vector<uint32_t>(later.origins().begin(), later.origins().end()),
            std::vector<uint32_t>({2, 3}));

  Ready served;
  ASSERT_TRUE(eu.FromSubscriber(100, ready.sends[0].message, 70, &served));
  EXPECT_EQ(eu.Backlog(100, Vector({{2, 1}, {3, 5}})), 6u);
  // The first Subscribe again (for eu only), late: eu still streams asia's events.
  ASSERT_TRUE(eu.FromSubscriber(100, dialed.subscribe, 80, &served));
  EXPECT_EQ(eu.Backlog(100, Vector({{2, 1}, {3, 5}})), 6u);
  (void)eu.Next(100, Vector({{2, 1}, {3, 5}}), 90);  // the answering heartbeat, and eu:1
  eu.Sent(100, 2, 1, 10);
  const Exchange::Outgoing next = eu.Next(100, Vector({{2, 1}, {3, 5}}), 200);
  ASSERT_TRUE(next.read.has_value());
  EXPECT_EQ(next.read->origin, 3u);
  EXPECT_EQ(next.read->from_seq, 1u);
}

TEST(Exchange, NothingIsAppliedBeforeTheSenderSaysWhoItIs) {
  Exchange exchange(Options(), 0);
  (void)exchange.Start({}, false);
  const Exchange::Dialed dialed = exchange.Dialing(2, {}, 0);
  bool decode = false;
  Ready ready = exchange.Received(dialed.stream, Batch(2), {}, 10, &decode);
  EXPECT_FALSE(decode);
  EXPECT_TRUE(Cancels(ready, dialed.stream, "before the sender's first heartbeat"));

  // A sender that is not the region dialled: refused, reported, cancelled.
  const Exchange::Dialed again = exchange.Dialing(2, {}, 20);
  ready = exchange.Received(again.stream, Heartbeat(3, "asia", 0x44), {}, 30, &decode);
  EXPECT_TRUE(Cancels(ready, again.stream, "refused: "));
  ASSERT_EQ(ready.refused.size(), 1u);
  EXPECT_EQ(ready.refused[0].peer, 2u);

  // The right one, then a heartbeat of another incarnation on the same stream.
  const Exchange::Dialed third = exchange.Dialing(2, {}, 40);
  ready =
      exchange.Received(third.stream, Heartbeat(2, "eu", 0x22, Vector({{2, 3}})), {}, 50, &decode);
  EXPECT_FALSE(Cancels(ready, third.stream));  // the earlier dials gave way to it
  EXPECT_TRUE(Cancels(ready, again.stream, "answered first"));
  EXPECT_EQ(ready.accepted, std::vector<core::RegionId>({2}));
  ASSERT_TRUE(ready.observe.has_value());
  EXPECT_EQ(ready.observe->frontier, Vector({{2, 3}}));
  ready = exchange.Received(third.stream, Batch(2), {}, 60, &decode);
  EXPECT_TRUE(decode);
  ready = exchange.Received(third.stream, Heartbeat(2, "eu", 0x99), {}, 70, &decode);
  EXPECT_TRUE(Cancels(ready, third.stream, "incarnation changed"));
}

TEST(Exchange, ABatchOfAnotherOriginEndsTheStreamAndTheApplyQueueIsBounded) {
  Exchange exchange(Options(), 0);
  (void)exchange.Start({}, false);
  const Exchange::Dialed dialed = exchange.Dialing(2, {}, 0);
  bool decode = false;
  (void)exchange.Received(dialed.stream, Heartbeat(2, "eu", 0x22), {}, 10, &decode);

  const std::vector<core::Event> mixed = {EventOf(2, 1), EventOf(3, 1)};
  Ready ready = DecodedNow(exchange, dialed.stream, 2, core::RemoteBatch(mixed));
  EXPECT_FALSE(ready.submit.has_value());
  EXPECT_TRUE(Cancels(ready, dialed.stream, "another origin"));

  const Exchange::Dialed next = exchange.Dialing(2, {}, 30);
  (void)exchange.Received(next.stream, Heartbeat(2, "eu", 0x22), {}, 40, &decode);
  EXPECT_TRUE(exchange.Room(next.stream));
  EXPECT_TRUE(DecodedNow(exchange, next.stream, 2, core::RemoteBatch({EventOf(2, 1)})).submit);
  EXPECT_TRUE(DecodedNow(exchange, next.stream, 2, core::RemoteBatch({EventOf(2, 2)})).submit);
  EXPECT_FALSE(exchange.Room(next.stream));  // apply_queue_max = 2

  // Two applied at once: one acknowledgement covers both.
  Inbound::Applied applied;
  applied.last = false;
  ready = exchange.BatchApplied(next.stream, 2, applied, "", Vector({{2, 1}}), 60);
  EXPECT_TRUE(ready.sends.empty());
  EXPECT_TRUE(exchange.Room(next.stream));
  applied.last = true;
  ready = exchange.BatchApplied(next.stream, 2, applied, "", Vector({{2, 2}}), 60);
  ASSERT_EQ(ready.sends.size(), 1u);
  ASSERT_TRUE(ready.sends[0].message.has_ack());
  EXPECT_EQ(*VersionVector::Decode(ready.sends[0].message.ack().frontier()), Vector({{2, 2}}));

  // A gap ends the stream, without an acknowledgement.
  EXPECT_TRUE(DecodedNow(exchange, next.stream, 2, core::RemoteBatch({EventOf(2, 9)})).submit);
  applied.gaps = 1;
  ready = exchange.BatchApplied(next.stream, 2, applied, "", Vector({{2, 2}}), 80);
  EXPECT_TRUE(ready.sends.empty());
  EXPECT_TRUE(Cancels(ready, next.stream, "a gap in eu's events"));
}

// A peer sends only the origins this region asked it for: events of an origin nobody asked it to
// relay are refused (whoever answers at a peer's address cannot inject another region's events),
// and an origin asked for once on the stream stays allowed after a resubscription dropped it.
TEST(Exchange, ABatchOfAnOriginNotAskedForIsRefused) {
  Exchange exchange(Options(), 0);
  (void)exchange.Start({}, false);
  const Exchange::Dialed dialed = exchange.Dialing(2, {}, 0);
  ASSERT_TRUE(dialed.subscribe.has_subscribe());
  const auto& asked = dialed.subscribe.subscribe().origins();
  ASSERT_EQ(std::count(asked.begin(), asked.end(), 3u), 0) << "asia is not relayed through eu";
  bool decode = false;
  (void)exchange.Received(dialed.stream, Heartbeat(2, "eu", 0x22), {}, 10, &decode);
  EXPECT_TRUE(DecodedNow(exchange, dialed.stream, 2, core::RemoteBatch({EventOf(2, 1)})).submit);
  Ready ready = DecodedNow(exchange, dialed.stream, 3, core::RemoteBatch({EventOf(3, 1)}));
  EXPECT_FALSE(ready.submit.has_value());
  EXPECT_TRUE(Cancels(ready, dialed.stream, "refused: eu sent events of asia"));
}

// A batch with an event that cannot be read in the middle (parked by the decoder) is submitted
// whole and acknowledged once applied: the stream goes on. Only a parked event of another origin
// ends it, like any other.
TEST(Exchange, ABatchWithAParkedEventIsAppliedAroundItAndTheStreamGoesOn) {
  Exchange exchange(Options(), 0);
  (void)exchange.Start({}, false);
  const Exchange::Dialed dialed = exchange.Dialing(2, {}, 0);
  bool decode = false;
  (void)exchange.Received(dialed.stream, Heartbeat(2, "eu", 0x22), {}, 10, &decode);
  const auto parked = [](core::RegionId origin, uint64_t seq) {
    core::ParkedEvent event;
    event.dot = core::Dot{origin, seq};
    event.reason = "schema version 2 is newer than this node reads (1)";
    return event;
  };

  Ready ready = DecodedNow(exchange, dialed.stream, 2,
                           core::RemoteBatch({EventOf(2, 1), EventOf(2, 3)}, {parked(2, 2)}));
  ASSERT_TRUE(ready.submit.has_value());
  EXPECT_TRUE(ready.cancel.empty());
  Inbound::Applied applied;  // the commit path parked eu:2: no gap, the frontier is at eu:3
  ready = exchange.BatchApplied(dialed.stream, 2, applied, "", Vector({{2, 3}}), 20);
  EXPECT_TRUE(ready.cancel.empty());
  ASSERT_EQ(ready.sends.size(), 1u);
  ASSERT_TRUE(ready.sends[0].message.has_ack());
  EXPECT_EQ(*VersionVector::Decode(ready.sends[0].message.ack().frontier()), Vector({{2, 3}}));

  // Only parked events: submitted too (their dots move the frontier).
  EXPECT_TRUE(DecodedNow(exchange, dialed.stream, 2, core::RemoteBatch({}, {parked(2, 4)})).submit);
  ready = exchange.Received(dialed.stream, Batch(2), {}, 30, &decode);
  EXPECT_TRUE(decode);
  EXPECT_TRUE(ready.cancel.empty());

  ready =
      DecodedNow(exchange, dialed.stream, 2, core::RemoteBatch({EventOf(2, 5)}, {parked(3, 1)}));
  EXPECT_FALSE(ready.submit.has_value());
  EXPECT_TRUE(Cancels(ready, dialed.stream, "another origin"));
}

TEST(Exchange, AStreamThatEndsRedialsAfterTheBackoffAndAPeersRefusalIsReported) {
  Exchange exchange(Options(), 0);
  (void)exchange.Start({}, false);
  const Exchange::Dialed dialed = exchange.Dialing(3, {}, 0);
  Ready ready = exchange.Ended(dialed.stream, "refused: region us is already subscribed", 10, 0.5);
  ASSERT_EQ(ready.refused.size(), 1u);
  EXPECT_EQ(ready.refused[0].peer, 3u);
  ASSERT_EQ(ready.dials.size(), 1u);
  EXPECT_EQ(ready.dials[0].peer, 3u);
  EXPECT_GT(ready.dials[0].delay_ms, 0u);
  // A stream that ended once reports nothing more.
  ready = exchange.Ended(dialed.stream, "again", 20, 0.5);
  EXPECT_TRUE(ready.dials.empty());
}

// Both peers' logs lack what us needs of eu, and nothing relays it: after reseed_after_ms the
// exchange asks for a re-seed from the peer that is ahead, cancels its receiving streams and dials
// no one (a stream that ends is not redialled) until the re-seed is over.
TEST(Exchange, StuckBehindEveryLogItAsksForAReseedAndDialsNoOneUntilItIsOver) {
  ExchangeOptions options = Options();
  options.reseed_after_ms = 1000;
  options.links.relay_after_ms = 0;
  Exchange exchange(options, 0);
  (void)exchange.Start({}, false);
  const VersionVector applied = Vector({{2, 5}});
  const Exchange::Dialed eu = exchange.Dialing(2, applied, 0);
  const Exchange::Dialed asia = exchange.Dialing(3, applied, 0);
  bool decode = false;
  (void)exchange.Received(eu.stream, Heartbeat(2, "eu", 0x22, Vector({{2, 50}})), applied, 10,
                          &decode);
  (void)exchange.Received(asia.stream, Heartbeat(3, "asia", 0x33, Vector({{2, 5}, {3, 9}})),
                          applied, 10, &decode);
  wire::ToReceiver behind;
  behind.mutable_behind_retention()->set_origin(2);
  behind.mutable_behind_retention()->set_wanted_seq(6);
  behind.mutable_behind_retention()->set_oldest_seq(40);
  (void)exchange.Received(eu.stream, behind, applied, 20, &decode);
  Ready ready = exchange.Tick(applied, 100);
  EXPECT_FALSE(ready.reseed);
  ready = exchange.Tick(applied, 1200);
  ASSERT_TRUE(ready.reseed);
  EXPECT_EQ(ready.reseed_from, (std::vector<core::RegionId>{2, 3}));  // eu holds eu's events
  EXPECT_TRUE(Cancels(ready, eu.stream, "re-seeding"));
  EXPECT_TRUE(Cancels(ready, asia.stream, "re-seeding"));
  EXPECT_TRUE(exchange.paused());
  ready = exchange.Ended(eu.stream, "re-seeding", 1210, 0.5);
  EXPECT_TRUE(ready.dials.empty());
  EXPECT_FALSE(exchange.Tick(applied, 5000).reseed);  // once
  ready = exchange.Reseeded(Vector({{2, 50}}), false);
  EXPECT_FALSE(exchange.paused());
  ASSERT_EQ(ready.dials.size(), 2u);
}

TEST(Exchange, RetentionWaitsForEveryPeerUntilOneIsReleasedAfterTheHold) {
  Exchange exchange(Options(), 0);
  Ready ready;
  // Nobody acknowledged anything: nothing may be trimmed.
  EXPECT_EQ(exchange.RetentionFloor(Vector({{1, 9}}), 100, &ready), VersionVector());
  ASSERT_FALSE(exchange.Subscribed(100, SubscribeFrom(2, "eu", 0x22), std::nullopt, 100).refusal);
  ASSERT_FALSE(exchange.Subscribed(101, SubscribeFrom(3, "asia", 0x33), std::nullopt, 100).refusal);
  (void)exchange.Next(100, Vector({{1, 9}}), 150);
  exchange.Sent(100, 1, 7, 100);
  exchange.Sent(101, 1, 4, 100);
  wire::ToSender ack;
  ack.mutable_ack()->set_frontier(Vector({{1, 7}}).Encode());
  ASSERT_TRUE(exchange.FromSubscriber(100, ack, 200, &ready));
  ack.mutable_ack()->set_frontier(Vector({{1, 4}}).Encode());
  ASSERT_TRUE(exchange.FromSubscriber(101, ack, 200, &ready));
  EXPECT_EQ(exchange.RetentionFloor(Vector({{1, 9}}), 300, &ready), Vector({{1, 4}}));

  // asia goes away: it holds the log back for the hold, then is released (and reported).
  exchange.ServingEnded(101);
  EXPECT_EQ(exchange.RetentionFloor(Vector({{1, 9}}), 5'000, &ready), Vector({{1, 4}}));
  Ready released;
  EXPECT_EQ(exchange.RetentionFloor(Vector({{1, 9}}), 10'201, &released), Vector({{1, 7}}));
  EXPECT_EQ(exchange.released(), std::vector<core::RegionId>({3}));
  ASSERT_EQ(released.notes.size(), 1u);
  EXPECT_NE(released.notes[0].text.find("asia"), std::string::npos);
  // A peer with a stream open is never released, however long it is quiet.
  EXPECT_EQ(exchange.RetentionFloor(Vector({{1, 9}}), 1'000'000, &ready), Vector({{1, 7}}));
  EXPECT_EQ(exchange.released(), std::vector<core::RegionId>({3}));
}

TEST(Exchange, TheSenderAbandonsAnOriginItsLogNoLongerHolds) {
  Exchange exchange(Options(), 0);
  ASSERT_FALSE(exchange.Subscribed(100, SubscribeFrom(2, "eu", 0x22), std::nullopt, 0).refusal);
  Exchange::Outgoing out = exchange.Next(100, Vector({{1, 5}}), 0);
  EXPECT_TRUE(out.heartbeat);  // first, before any batch
  ASSERT_TRUE(out.read.has_value());
  EXPECT_EQ(out.read->origin, 1u);
  EXPECT_EQ(out.read->from_seq, 1u);
  Ready ready;
  const wire::ToReceiver behind = exchange.Missing(100, *out.read, 3, &ready);
  ASSERT_TRUE(behind.has_behind_retention());
  EXPECT_EQ(behind.behind_retention().wanted_seq(), 1u);
  EXPECT_EQ(behind.behind_retention().oldest_seq(), 3u);
  exchange.HeartbeatSent(100, 0);
  EXPECT_FALSE(exchange.Next(100, Vector({{1, 5}}), 1).read.has_value());
  EXPECT_EQ(exchange.Backlog(100, Vector({{1, 5}})), 0u);
}

// --- what a peer may do (docs/replication.md#what-a-peer-may-do) -------------------------------

wire::ToSender AckOf(const VersionVector& frontier) {
  wire::ToSender ack;
  ack.mutable_ack()->set_frontier(frontier.Encode());
  return ack;
}

bool Notes(const Ready& ready, Ready::Note::Level level, const std::string& part) {
  return std::any_of(ready.notes.begin(), ready.notes.end(), [&](const Ready::Note& note) {
    return note.level == level && note.text.find(part) != std::string::npos;
  });
}

// An Ack claiming events the stream never sent is believed only as far as the stream sent them:
// it does not make a durability wait count the peer as holding a write it was never sent
// (durability=regions:1 answered 200 while the peer was dead), nor let retention trim it.
TEST(Exchange, AForgedAckBeyondWhatTheStreamSentIsNotBelieved) {
  Exchange exchange(Options(), 0);
  (void)exchange.Start({}, false);
  ASSERT_FALSE(exchange.Subscribed(100, SubscribeFrom(2, "eu", 0x22), std::nullopt, 0).refusal);
  ASSERT_FALSE(exchange.Subscribed(101, SubscribeFrom(3, "asia", 0x33), std::nullopt, 0).refusal);
  (void)exchange.Next(100, Vector({{1, 3}}), 10);
  exchange.Sent(100, 1, 3, 100);
  exchange.Sent(101, 1, 3, 100);

  // eu claims us:1000 while us has written 3: believed up to what was sent, counted, logged.
  Ready ready;
  ASSERT_TRUE(exchange.FromSubscriber(100, AckOf(Vector({{1, 1000}})), 20, &ready));
  ASSERT_EQ(ready.acked.size(), 1u);
  EXPECT_EQ(ready.acked[0].frontier, Vector({{1, 3}}));  // what the durability waits see
  EXPECT_EQ(exchange.Acked(2), Vector({{1, 3}}));
  EXPECT_EQ(exchange.Overclaims(2), 1u);
  EXPECT_TRUE(Notes(ready, Ready::Note::Level::kWarn, "more of us's events than this region"));

  // us writes 4..10 and sends none of them to eu yet: an Ack for them still counts for nothing.
  (void)exchange.Next(100, Vector({{1, 10}}), 30);
  ready = Ready();
  ASSERT_TRUE(exchange.FromSubscriber(100, AckOf(Vector({{1, 10}})), 40, &ready));
  EXPECT_EQ(ready.acked[0].frontier, Vector({{1, 3}}));
  EXPECT_EQ(exchange.Overclaims(2), 1u);           // not more than us wrote: only not sent yet
  EXPECT_EQ(exchange.RegionsHolding({1, 4}), 0u);  // no other region: no durability wait answers
  EXPECT_EQ(exchange.RegionsHolding({1, 3}), 1u);

  // Retention: nothing beyond what each peer was sent and acknowledged is trimmed.
  ASSERT_TRUE(exchange.FromSubscriber(101, AckOf(Vector({{1, 3}})), 40, &ready));
  exchange.Sent(101, 1, 10, 100);
  ASSERT_TRUE(exchange.FromSubscriber(101, AckOf(Vector({{1, 10}})), 50, &ready));
  EXPECT_EQ(exchange.RetentionFloor(Vector({{1, 10}}), 60, &ready), Vector({{1, 3}}));

  // Once sent, eu's acknowledgement counts.
  exchange.Sent(100, 1, 10, 100);
  ready = Ready();
  ASSERT_TRUE(exchange.FromSubscriber(100, AckOf(Vector({{1, 10}})), 70, &ready));
  EXPECT_EQ(ready.acked[0].frontier, Vector({{1, 10}}));
  EXPECT_EQ(exchange.RegionsHolding({1, 10}), 2u);
  EXPECT_EQ(exchange.RetentionFloor(Vector({{1, 10}}), 80, &ready), Vector({{1, 10}}));
}

// A subscription's frontier says what the subscriber holds: believed only within what this region
// holds, so a forged Subscribe cannot claim this region's future writes either.
TEST(Exchange, ASubscriptionFrontierIsBelievedOnlyWithinWhatThisRegionHolds) {
  Exchange exchange(Options(), 0);
  (void)exchange.Start(Vector({{1, 5}, {3, 20}}), false);
  Exchange::Served served = exchange.Subscribed(
      100, SubscribeFrom(2, "eu", 0x22, Vector({{1, 1000}, {3, 50}})), std::nullopt, 0);
  ASSERT_FALSE(served.refusal);
  ASSERT_EQ(served.ready.acked.size(), 1u);
  EXPECT_EQ(served.ready.acked[0].frontier, Vector({{1, 5}, {3, 20}}));
  EXPECT_EQ(exchange.RegionsHolding({1, 5}), 1u);
  EXPECT_EQ(exchange.RegionsHolding({1, 6}), 0u);

  // asia's events (not carried by this stream) reach eu from elsewhere: an Ack is believed for
  // them up to what this region holds, which is all retention can use.
  Ready ready;
  (void)exchange.Tick(Vector({{1, 5}, {3, 40}}), 10);
  ASSERT_TRUE(exchange.FromSubscriber(100, AckOf(Vector({{1, 5}, {3, 60}})), 20, &ready));
  EXPECT_EQ(exchange.Acked(2), Vector({{1, 5}, {3, 40}}));
}

// An event whose HLC is far ahead of this region's clock is parked (with the reason), not applied,
// and its HLC never reaches the commit path's clock; one within the bound is applied as usual.
TEST(Exchange, EventsFromTheFarFutureAreParkedWithTheReason) {
  ExchangeOptions options = Options();
  options.hlc_ahead_max_ms = 60'000;
  Exchange exchange(options, 0);
  (void)exchange.Start({}, false);
  const Exchange::Dialed dialed = exchange.Dialing(2, {}, 0);
  bool decode = false;
  (void)exchange.Received(dialed.stream, Heartbeat(2, "eu", 0x22), {}, 10, &decode);

  core::Event near = EventOf(2, 1);
  near.hlc = core::MakeHlc(kWallMs + 59'000, 0);
  core::Event far = EventOf(2, 2);
  far.hlc = core::MakeHlc(kWallMs + 61'000, 3);
  core::ParkedEvent poison;  // did not decode, and says it is from year 10000
  poison.dot = core::Dot{2, 3};
  poison.hlc = core::MakeHlc(253'402'300'800'000, 0);
  poison.reason = "event: no key";
  Result<core::RemoteBatch> events(core::RemoteBatch({near, far}, {poison}));
  Ready ready = exchange.Decoded(dialed.stream, 2, &events, kWallMs);
  ASSERT_TRUE(ready.submit.has_value());  // the stream goes on; the commit path parks them
  EXPECT_TRUE(ready.cancel.empty());
  ASSERT_EQ(events->events.size(), 1u);
  EXPECT_EQ(events->events[0].dot, (core::Dot{2, 1}));
  ASSERT_EQ(events->parked.size(), 2u);
  EXPECT_EQ(events->parked[0].dot, (core::Dot{2, 2}));
  EXPECT_EQ(events->parked[0].hlc, 0u);
  EXPECT_NE(events->parked[0].reason.find("more than 60000 ms ahead"), std::string::npos);
  EXPECT_EQ(events->parked[0].bytes, core::EncodeEvent(far));  // kept as it came, to retry
  EXPECT_EQ(events->parked[1].dot, (core::Dot{2, 3}));
  EXPECT_EQ(events->parked[1].hlc, 0u);
  EXPECT_NE(events->parked[1].reason.find("event: no key; its HLC time"), std::string::npos);
  EXPECT_TRUE(Notes(ready, Ready::Note::Level::kWarn, "parked as dead letters"));
}

// A Subscribe's origins are region ids, each once: anything else is refused before the stream is
// served, and ends a stream already served.
TEST(Exchange, AnOversizedOrMalformedSubscribeIsRefused) {
  Exchange exchange(Options(), 0);
  wire::Subscribe many = SubscribeFrom(2, "eu", 0x22);
  for (int i = 0; i < 100'000; ++i) many.add_origins(1);
  Exchange::Served served = exchange.Subscribed(100, many, std::nullopt, 0);
  ASSERT_TRUE(served.refusal.has_value());
  EXPECT_EQ(served.refusal->code, Refusal::Code::kInvalidArgument);
  EXPECT_NE(served.refusal->message.find("asks for 100001 origins; region ids go up to 31"),
            std::string::npos);

  wire::Subscribe twice = SubscribeFrom(2, "eu", 0x22);
  twice.add_origins(1);
  served = exchange.Subscribed(101, twice, std::nullopt, 0);
  ASSERT_TRUE(served.refusal.has_value());
  EXPECT_NE(served.refusal->message.find("origin us twice"), std::string::npos);

  wire::Subscribe stranger = SubscribeFrom(2, "eu", 0x22);
  stranger.add_origins(32);
  served = exchange.Subscribed(102, stranger, std::nullopt, 0);
  ASSERT_TRUE(served.refusal.has_value());
  EXPECT_NE(served.refusal->message.find("origin 32, not a region id"), std::string::npos);
  EXPECT_EQ(exchange.SubscriberOf(102), 0u);

  // A later Subscribe on a served stream: ends it, with the reason logged.
  ASSERT_FALSE(exchange.Subscribed(103, SubscribeFrom(2, "eu", 0x22), std::nullopt, 0).refusal);
  wire::ToSender later;
  *later.mutable_subscribe() = stranger;
  later.mutable_subscribe()->set_subscription(2);
  Ready ready;
  EXPECT_FALSE(exchange.FromSubscriber(103, later, 10, &ready));
  EXPECT_TRUE(Notes(ready, Ready::Note::Level::kWarn, "not a region id"));
  wire::ToSender garbage;
  garbage.mutable_ack()->set_frontier("\xff\xff\xff");
  ready = Ready();
  EXPECT_FALSE(exchange.FromSubscriber(103, garbage, 10, &ready));
  EXPECT_TRUE(Notes(ready, Ready::Note::Level::kWarn, "malformed frontier in Ack"));
}

// The apply queue holds a bounded number of bytes too: a peer sending large batches stops being
// read until the commit path catches up; a single batch always passes.
TEST(Exchange, TheApplyQueueIsBoundedInBytes) {
  ExchangeOptions options = Options();
  options.apply_queue_max = 16;
  options.apply_queue_bytes_max = 4096;
  Exchange exchange(options, 0);
  (void)exchange.Start({}, false);
  const Exchange::Dialed dialed = exchange.Dialing(2, {}, 0);
  bool decode = false;
  (void)exchange.Received(dialed.stream, Heartbeat(2, "eu", 0x22), {}, 10, &decode);
  core::Event big = EventOf(2, 1);
  big.op.fields.push_back({"f", std::string(10'000, 'x')});
  EXPECT_TRUE(exchange.Room(dialed.stream));
  EXPECT_TRUE(DecodedNow(exchange, dialed.stream, 2, core::RemoteBatch({big})).submit);
  EXPECT_FALSE(exchange.Room(dialed.stream));
  (void)exchange.BatchApplied(dialed.stream, 2, Inbound::Applied{}, "", Vector({{2, 1}}), 20);
  EXPECT_TRUE(exchange.Room(dialed.stream));
  EXPECT_TRUE(DecodedNow(exchange, dialed.stream, 2, core::RemoteBatch({EventOf(2, 2)})).submit);
  EXPECT_TRUE(exchange.Room(dialed.stream));  // small batches: the batch bound applies
}

TEST(Exchange, AnOversizedVerificationRequestIsRefused) {
  Exchange exchange(Options(), 0);
  wire::VerifyRequest request;
  request.set_deployment("prod");
  request.set_region_id(2);
  request.set_region_name("eu");
  request.set_incarnation(0x22);
  request.add_keys("k");
  EXPECT_FALSE(exchange.VerifyRequested(request, std::nullopt).has_value());
  for (size_t i = 0; i < kVerifyKeysMax; ++i) request.add_keys("k");
  std::optional<Refusal> refusal = exchange.VerifyRequested(request, std::nullopt);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_EQ(refusal->code, Refusal::Code::kInvalidArgument);
  EXPECT_NE(refusal->message.find("asks for 4097 documents"), std::string::npos);
  request.clear_keys();
  request.add_keys(std::string(kRemoteLimits.key_bytes_max + 1, 'k'));
  ASSERT_TRUE(exchange.VerifyRequested(request, std::nullopt).has_value());
  request.clear_keys();
  for (size_t i = 0; i <= kVerifyNodesMax; ++i) request.add_nodes(0);
  ASSERT_TRUE(exchange.VerifyRequested(request, std::nullopt).has_value());
}

}  // namespace
}  // namespace meridian::replication
