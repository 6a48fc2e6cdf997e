// Outbound: what a region sends one subscriber — cursors from the subscription, batching by count
// and linger (at once on an idle stream), the acknowledgement window, heartbeats.
#include "replication/outbound.h"

#include <gtest/gtest.h>

namespace meridian::replication {
namespace {

SenderOptions Options() {
  SenderOptions options;
  options.batch_events_max = 10;
  options.linger_ms = 5;
  options.window_batches = 2;
  options.heartbeat_ms = 100;
  return options;
}

TEST(Outbound, StreamsEachOriginAfterTheSubscribedFrontier) {
  Outbound outbound(Options());
  outbound.Subscribe(core::VersionVector{{1, 3}, {2, 7}}, {1});
  // Nothing beyond the subscriber's frontier yet.
  EXPECT_FALSE(outbound.Next(core::VersionVector{{1, 3}}, 0));
  // A full batch goes at once; its read starts right after the frontier.
  auto read = outbound.Next(core::VersionVector{{1, 20}}, 0);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->origin, 1u);
  EXPECT_EQ(read->from_seq, 4u);
  EXPECT_EQ(read->limit, 10u);
  outbound.Sent(1, 13, 1000);
  // The remaining 7 are less than a batch: they go 5 ms after the previous batch.
  EXPECT_FALSE(outbound.Next(core::VersionVector{{1, 20}}, 4));
  read = outbound.Next(core::VersionVector{{1, 20}}, 5);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->from_seq, 14u);
  EXPECT_EQ(read->limit, 7u);
}

TEST(Outbound, QuietStreamSendsAtOnceBusyStreamEveryLinger) {
  Outbound outbound(Options());
  outbound.Subscribe(core::VersionVector{}, {1});
  outbound.HeartbeatSent(100);
  auto read = outbound.Next(core::VersionVector{{1, 1}}, 100);  // nothing sent lately: at once
  ASSERT_TRUE(read);
  outbound.Sent(1, 1, 10);
  // Busy: what arrives within 5 ms of that batch waits for the next one.
  EXPECT_FALSE(outbound.Next(core::VersionVector{{1, 2}}, 101));
  EXPECT_FALSE(outbound.Next(core::VersionVector{{1, 3}}, 104));
  EXPECT_EQ(outbound.WakeAtMs(core::VersionVector{{1, 3}}, 104), 105u);
  read = outbound.Next(core::VersionVector{{1, 3}}, 105);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->from_seq, 2u);
  EXPECT_EQ(read->limit, 2u);
}

TEST(Outbound, IdleStreamSendsALoneWriteAtOnceEvenWithinTheLinger) {
  Outbound outbound(Options());
  outbound.Subscribe(core::VersionVector{}, {1});
  outbound.HeartbeatSent(100);
  ASSERT_TRUE(outbound.Next(core::VersionVector{{1, 1}}, 100));
  outbound.Sent(1, 1, 10);
  outbound.Ack(core::VersionVector{{1, 1}});  // acknowledged 1 ms later: nothing in flight
  EXPECT_EQ(outbound.in_flight_batches(), 0u);
  // A write 2 ms after the last batch, well within its 5 ms linger, goes at once.
  const auto heads = core::VersionVector{{1, 2}};
  EXPECT_EQ(outbound.WakeAtMs(heads, 102), 102u);
  EXPECT_TRUE(outbound.Ready(heads, 102));
  auto read = outbound.Next(heads, 102);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->from_seq, 2u);
  EXPECT_EQ(read->limit, 1u);
}

TEST(Outbound, WhileABatchIsInFlightAWriteWaitsForTheLinger) {
  Outbound outbound(Options());
  outbound.Subscribe(core::VersionVector{}, {1});
  outbound.HeartbeatSent(100);
  ASSERT_TRUE(outbound.Next(core::VersionVector{{1, 1}}, 100));
  outbound.Sent(1, 1, 10);
  ASSERT_TRUE(outbound.Next(core::VersionVector{{1, 2}}, 105));
  outbound.Sent(1, 2, 10);
  // An acknowledgement of the first batch leaves the second in flight: the linger still holds.
  outbound.Ack(core::VersionVector{{1, 1}});
  EXPECT_EQ(outbound.in_flight_batches(), 1u);
  const auto heads = core::VersionVector{{1, 3}};
  EXPECT_FALSE(outbound.Ready(heads, 107));
  EXPECT_FALSE(outbound.Next(heads, 107));
  EXPECT_EQ(outbound.WakeAtMs(heads, 107), 110u);
  // Once the second is acknowledged too, the waiting write goes before the linger ends.
  outbound.Ack(core::VersionVector{{1, 2}});
  EXPECT_TRUE(outbound.Ready(heads, 108));
  auto read = outbound.Next(heads, 108);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->from_seq, 3u);
}

TEST(Outbound, ReadyAnswersAsNextWouldWithoutChangingIt) {
  Outbound outbound(Options());
  outbound.Subscribe(core::VersionVector{}, {1});
  outbound.HeartbeatSent(100);
  EXPECT_FALSE(outbound.Ready(core::VersionVector{}, 100));  // nothing waiting
  EXPECT_TRUE(outbound.Ready(core::VersionVector{{1, 1}}, 100));
  EXPECT_TRUE(outbound.Ready(core::VersionVector{{1, 1}}, 100));  // asking changed nothing
  ASSERT_TRUE(outbound.Next(core::VersionVector{{1, 1}}, 100));
  outbound.Sent(1, 1, 10);
  // Lingering: a commit that adds less than a batch changes nothing before the linger ends...
  EXPECT_FALSE(outbound.Ready(core::VersionVector{{1, 5}}, 102));
  EXPECT_FALSE(outbound.Next(core::VersionVector{{1, 5}}, 102));
  // ...a full batch is due at once, and so is anything once the linger is over.
  EXPECT_TRUE(outbound.Ready(core::VersionVector{{1, 11}}, 102));
  EXPECT_TRUE(outbound.Ready(core::VersionVector{{1, 5}}, 105));
  // Other origins than the subscribed ones are never due.
  EXPECT_FALSE(outbound.Ready(core::VersionVector{{2, 50}}, 105));
}

TEST(Outbound, ReadyIsFalseWhileTheWindowIsFull) {
  Outbound outbound(Options());
  outbound.Subscribe(core::VersionVector{}, {1});
  const auto heads = core::VersionVector{{1, 100}};
  for (uint64_t last : {10, 20}) {
    ASSERT_TRUE(outbound.Next(heads, 0));
    outbound.Sent(1, last, 100);
  }
  EXPECT_FALSE(outbound.Ready(heads, 50));
  outbound.Ack(core::VersionVector{{1, 10}});
  EXPECT_TRUE(outbound.Ready(heads, 50));
}

TEST(Outbound, WindowStopsSendingUntilAcknowledged) {
  Outbound outbound(Options());
  outbound.Subscribe(core::VersionVector{}, {1});
  const auto heads = core::VersionVector{{1, 100}};
  for (uint64_t last : {10, 20}) {
    auto read = outbound.Next(heads, 0);
    ASSERT_TRUE(read);
    outbound.Sent(1, last, 500);
  }
  EXPECT_EQ(outbound.in_flight_batches(), 2u);
  EXPECT_FALSE(outbound.Next(heads, 0));  // window of 2 batches is full
  EXPECT_EQ(outbound.Backlog(heads), 80u);
  outbound.Ack(core::VersionVector{{1, 10}});
  EXPECT_EQ(outbound.in_flight_batches(), 1u);
  EXPECT_EQ(outbound.in_flight_bytes(), 500u);
  auto read = outbound.Next(heads, 0);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->from_seq, 21u);
}

TEST(Outbound, ResubscribingRestartsFromTheNewFrontierAndOrigins) {
  Outbound outbound(Options());
  outbound.Subscribe(core::VersionVector{}, {1});
  outbound.Sent(1, 10, 100);
  outbound.Subscribe(core::VersionVector{{1, 4}, {3, 2}}, {1, 3});  // a relay of origin 3 added
  EXPECT_EQ(outbound.in_flight_batches(), 0u);
  const auto heads = core::VersionVector{{1, 50}, {3, 50}};
  auto first = outbound.Next(heads, 0);
  ASSERT_TRUE(first);
  outbound.Sent(first->origin, first->from_seq + first->limit - 1, 10);
  auto second = outbound.Next(heads, 0);
  ASSERT_TRUE(second);
  EXPECT_NE(first->origin, second->origin);
  EXPECT_EQ((first->origin == 1 ? first : second)->from_seq, 5u);
  EXPECT_EQ((first->origin == 3 ? first : second)->from_seq, 3u);
}

TEST(Outbound, NothingAlreadyAcknowledgedIsResentOrHoldsTheWindow) {
  Outbound outbound(Options());
  outbound.Subscribe(core::VersionVector{}, {1});
  outbound.Ack(core::VersionVector{{1, 60}});  // overtook the (older) subscription below
  outbound.Subscribe(core::VersionVector{{1, 40}}, {1});
  auto read = outbound.Next(core::VersionVector{{1, 100}}, 0);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->from_seq, 61u);
  // A batch the subscriber already acknowledged (a read taken before the acknowledgement) does
  // not count against the window: only an acknowledgement could free it, and none will come.
  outbound.Sent(1, 60, 100);
  EXPECT_EQ(outbound.in_flight_batches(), 0u);
}

TEST(Outbound, AbandonedOriginIsNoLongerStreamed) {
  Outbound outbound(Options());
  outbound.Subscribe(core::VersionVector{}, {1});
  outbound.Abandon(1);
  EXPECT_FALSE(outbound.Next(core::VersionVector{{1, 100}}, 1000));
}

TEST(Outbound, HeartbeatAtOnceThenEveryInterval) {
  Outbound outbound(Options());
  EXPECT_FALSE(outbound.HeartbeatDue(0));  // not subscribed
  outbound.Subscribe(core::VersionVector{}, {1});
  EXPECT_TRUE(outbound.HeartbeatDue(0));
  outbound.HeartbeatSent(0);
  EXPECT_FALSE(outbound.HeartbeatDue(99));
  EXPECT_EQ(outbound.WakeAtMs(core::VersionVector{}, 10), 100u);
  EXPECT_TRUE(outbound.HeartbeatDue(100));
}

}  // namespace
}  // namespace meridian::replication
