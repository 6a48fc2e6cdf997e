// Outbound against arbitrary histories of subscriptions, commits, sends, acknowledgements and
// time: Ready answers exactly what Next would; an idle stream sends at once and a stream with a
// batch in flight lingers; WakeAtMs never lets the writer sleep past a due batch; and the rule the
// transport uses to let a commit pass without waking a sleeping stream writer never hides a batch
// that is due.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "replication/outbound.h"

namespace meridian::replication {
namespace {

constexpr core::RegionId kOrigins = 3;  // origins 1..3

SenderOptions GenOptions() {
  SenderOptions options;
  options.batch_events_max = *rc::gen::inRange<size_t>(1, 20);
  options.linger_ms = *rc::gen::inRange<uint64_t>(0, 15);
  options.window_batches = *rc::gen::inRange<size_t>(1, 5);
  options.heartbeat_ms = *rc::gen::inRange<uint64_t>(1, 120);
  return options;
}

// Heads at or after `from`: each origin grows by 0..span events.
core::VersionVector GenGrowth(const core::VersionVector& from, uint64_t span) {
  core::VersionVector heads = from;
  for (core::RegionId origin = 1; origin <= kOrigins; ++origin)
    heads.Set(origin, from.Get(origin) + *rc::gen::inRange<uint64_t>(0, span + 1));
  return heads;
}

// Drives `outbound` through a random history as the transport would, ending at (heads, now);
// `last_batch_ms`, when given, is set to when Next last answered a read.
void GenHistory(Outbound* outbound, core::VersionVector* heads, uint64_t* now,
                std::optional<uint64_t>* last_batch_ms = nullptr) {
  std::vector<core::RegionId> origins;
  for (core::RegionId origin = 1; origin <= kOrigins; ++origin) {
    if (*rc::gen::arbitrary<bool>()) origins.push_back(origin);
  }
  outbound->Subscribe(GenGrowth(core::VersionVector{}, 3), origins);
  const int steps = *rc::gen::inRange(0, 40);
  for (int step = 0; step < steps; ++step) {
    switch (*rc::gen::inRange(0, 5)) {
      case 0:  // commits
        *heads = GenGrowth(*heads, 30);
        break;
      case 1:  // time passes
        *now += *rc::gen::inRange<uint64_t>(0, 20);
        break;
      case 2:  // the writer sends what is due
        if (auto read = outbound->Next(*heads, *now)) {
          if (last_batch_ms) *last_batch_ms = *now;
          const uint64_t last = read->from_seq + *rc::gen::inRange<uint64_t>(0, read->limit);
          outbound->Sent(read->origin, last, 100);
        }
        break;
      case 3:  // an acknowledgement of something up to the heads
        outbound->Ack(GenGrowth(core::VersionVector{}, 60));
        break;
      default:  // a heartbeat
        if (outbound->HeartbeatDue(*now)) outbound->HeartbeatSent(*now);
        break;
    }
  }
}

RC_GTEST_PROP(OutboundProperty, ReadyAnswersExactlyWhatNextWould, ()) {
  Outbound outbound(GenOptions());
  core::VersionVector heads;
  uint64_t now = *rc::gen::inRange<uint64_t>(0, 1000);
  GenHistory(&outbound, &heads, &now);
  const bool ready = outbound.Ready(heads, now);
  Outbound copy = outbound;
  RC_ASSERT(copy.Next(heads, now).has_value() == ready);
}

// Nothing in flight (no unacknowledged batch): waiting events go at once, however recently the
// last batch went.
RC_GTEST_PROP(OutboundProperty, AnIdleStreamSendsWaitingEventsAtOnce, ()) {
  Outbound outbound(GenOptions());
  core::VersionVector heads;
  uint64_t now = *rc::gen::inRange<uint64_t>(0, 1000);
  GenHistory(&outbound, &heads, &now);
  // The writer sends what is due, the subscriber acknowledges everything, the region commits
  // more, and some time passes (less than a linger, or more).
  if (auto read = outbound.Next(heads, now)) {
    outbound.Sent(read->origin, read->from_seq + read->limit - 1, 100);
  }
  outbound.Ack(heads);
  RC_ASSERT(outbound.in_flight_batches() == 0u);
  heads = GenGrowth(heads, 30);
  now += *rc::gen::inRange<uint64_t>(0, 20);
  if (outbound.Backlog(heads) == 0) return;
  RC_ASSERT(outbound.Ready(heads, now));
  RC_ASSERT(outbound.WakeAtMs(heads, now) == now);
  Outbound copy = outbound;
  RC_ASSERT(copy.Next(heads, now).has_value());
}

// A batch in flight: less than a full batch waits until linger_ms after the last batch.
RC_GTEST_PROP(OutboundProperty, AStreamWithABatchInFlightLingers, ()) {
  const SenderOptions options = GenOptions();
  Outbound outbound(options);
  core::VersionVector heads;
  uint64_t now = *rc::gen::inRange<uint64_t>(0, 1000);
  std::optional<uint64_t> last_batch_ms;
  GenHistory(&outbound, &heads, &now, &last_batch_ms);
  // A full window sends nothing until an acknowledgement (which wakes the writer itself); with
  // nothing waiting there is nothing to linger for (the writer wakes for a heartbeat or a commit).
  if (outbound.in_flight_batches() == 0 || outbound.Backlog(heads) == 0 ||
      outbound.Backlog(heads) >= options.batch_events_max ||
      outbound.in_flight_batches() >= options.window_batches) {
    return;
  }
  RC_ASSERT(last_batch_ms.has_value());  // something in flight: a batch went
  const bool lingering = now < *last_batch_ms + options.linger_ms;
  if (lingering) RC_ASSERT(outbound.WakeAtMs(heads, now) <= *last_batch_ms + options.linger_ms);
  Outbound copy = outbound;
  RC_ASSERT(!(lingering && copy.Next(heads, now).has_value()));
}

// Only time passing: when the writer wakes at max(now + 1, WakeAtMs), a batch or a heartbeat is
// due, unless nothing waits or the window is full (an acknowledgement wakes it then).
RC_GTEST_PROP(OutboundProperty, TheWriterNeverSleepsPastADueBatch, ()) {
  const SenderOptions options = GenOptions();
  Outbound outbound(options);
  core::VersionVector heads;
  uint64_t now = *rc::gen::inRange<uint64_t>(0, 1000);
  GenHistory(&outbound, &heads, &now);
  const bool window_full = outbound.in_flight_batches() >= options.window_batches;
  if (outbound.Backlog(heads) == 0 || window_full) return;
  const uint64_t wake = std::max(now + 1, outbound.WakeAtMs(heads, now));
  RC_ASSERT(outbound.Ready(heads, wake) || outbound.HeartbeatDue(wake));
}

// The writer went to sleep at (heads0, now0) until max(now0 + 1, WakeAtMs). A commit at
// (heads1, now1) lets it sleep on when nothing is Ready and WakeAtMs is not earlier: then no batch
// may become due before the writer wakes by itself, unless another commit or an ack comes first.
RC_GTEST_PROP(OutboundProperty, ACommitThatDoesNotWakeTheWriterHidesNoDueBatch, ()) {
  Outbound outbound(GenOptions());
  core::VersionVector heads;
  uint64_t now = *rc::gen::inRange<uint64_t>(0, 1000);
  GenHistory(&outbound, &heads, &now);
  RC_PRE(!outbound.Ready(heads, now));  // the writer sleeps only when nothing is due
  const uint64_t asleep_until = std::max(now + 1, outbound.WakeAtMs(heads, now));
  const core::VersionVector heads1 = GenGrowth(heads, 30);
  const uint64_t now1 = now + *rc::gen::inRange<uint64_t>(0, asleep_until - now);
  const bool wake = outbound.Ready(heads1, now1) || outbound.WakeAtMs(heads1, now1) < asleep_until;
  if (wake) return;
  for (uint64_t t : {now1, asleep_until - 1, now1 + (asleep_until - 1 - now1) / 2}) {
    Outbound copy = outbound;
    RC_ASSERT(!copy.Next(heads1, t).has_value());
  }
}

}  // namespace
}  // namespace meridian::replication
