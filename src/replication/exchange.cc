#include "replication/exchange.h"

#include <algorithm>
#include <cstdio>

#include "core/check.h"

namespace meridian::replication {
namespace {

std::string Hex(uint64_t value) {
  char text[20];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

using Level = Ready::Note::Level;

// About what a decoded batch holds in memory: the apply queue's bound in bytes.
size_t DecodedBytes(const core::RemoteBatch& batch) {
  size_t bytes = 0;
  for (const core::Event& event : batch.events) {
    bytes += sizeof event + event.key.size() + event.context.entries().size() * 16;
    for (const core::FieldValue& field : event.op.fields) {
      bytes += sizeof field + field.name.size() + field.value.size();
    }
    for (const core::CounterDelta& counter : event.op.counters) {
      bytes += sizeof counter + counter.name.size();
    }
  }
  for (const core::ParkedEvent& parked : batch.parked) {
    bytes += sizeof parked + parked.bytes.size() + parked.key.size() + parked.reason.size();
  }
  return bytes;
}

}  // namespace

Exchange::Exchange(ExchangeOptions options, uint64_t now_ms)
    : options_(std::move(options)),
      inbound_(
          [this] {
            std::vector<core::RegionId> peers;
            for (const auto& [id, name] : options_.names) {
              if (id != options_.self) peers.push_back(id);
            }
            return peers;
          }(),
          options_.links, now_ms) {
  for (core::RegionId peer : inbound_.links().peers()) subscribers_[peer].heard_ms = now_ms;
}

std::string Exchange::NameOf(core::RegionId id) const {
  return core::RegionName(options_.names, id);
}

std::string Exchange::Origins(const std::vector<core::RegionId>& origins) const {
  std::string names;
  for (core::RegionId origin : origins) names += (names.empty() ? "" : ",") + NameOf(origin);
  return names;
}

Exchange::Receiving* Exchange::FindReceiving(uint64_t stream) {
  auto it = receiving_.find(stream);
  return it == receiving_.end() ? nullptr : &it->second;
}

Exchange::Serving* Exchange::FindServing(uint64_t serving) {
  auto it = serving_.find(serving);
  return it == serving_.end() ? nullptr : &it->second;
}

const Exchange::Serving* Exchange::FindServing(uint64_t serving) const {
  auto it = serving_.find(serving);
  return it == serving_.end() ? nullptr : &it->second;
}

// --- starting -------------------------------------------------------------------------------

Ready Exchange::Follow(const core::VersionVector& applied, bool confirm) {
  Ready ready;
  NoteHeads(applied);
  inbound_.FollowOwnOrigin(options_.self, confirm, applied.Get(options_.self));
  SyncRebuild(&ready);
  return ready;
}

Ready Exchange::Start(const core::VersionVector& applied, bool confirm) {
  Ready ready = Follow(applied, confirm);
  for (core::RegionId peer : peers()) ready.dials.push_back({peer, 0, false});
  return ready;
}

Ready Exchange::Reseeded(const core::VersionVector& applied, bool confirm) {
  if (!paused_) return Start(applied, confirm);
  Ready ready;
  paused_ = false;
  for (core::RegionId peer : peers()) ready.dials.push_back({peer, 0, false});
  ready.links_changed = true;
  return ready;
}

// --- messages -------------------------------------------------------------------------------

wire::ToSender Exchange::SubscribeMessage(const std::vector<core::RegionId>& origins,
                                          const core::VersionVector& applied,
                                          uint64_t subscription) const {
  wire::ToSender message;
  wire::Subscribe* subscribe = message.mutable_subscribe();
  subscribe->set_protocol_version(kProtocolVersion);
  subscribe->set_region_id(options_.self);
  subscribe->set_frontier(applied.Encode());
  for (core::RegionId origin : origins) subscribe->add_origins(origin);
  subscribe->set_streamed_batches(true);
  subscribe->set_deployment(options_.deployment);
  subscribe->set_region_name(NameOf(options_.self));
  subscribe->set_incarnation(options_.incarnation);
  subscribe->set_subscription(subscription);
  return message;
}

wire::ToSender Exchange::AckMessage(const core::VersionVector& frontier) const {
  wire::ToSender ack;
  ack.mutable_ack()->set_frontier(frontier.Encode());
  return ack;
}

wire::ToReceiver Exchange::HeartbeatMessage(const core::VersionVector& heads,
                                            core::HlcTimestamp hlc,
                                            const std::vector<OriginHead>& origin_heads) const {
  wire::ToReceiver message;
  wire::Heartbeat* beat = message.mutable_heartbeat();
  beat->set_frontier(heads.Encode());
  beat->set_hlc(hlc);
  beat->set_deployment(options_.deployment);
  beat->set_region_id(options_.self);
  beat->set_region_name(NameOf(options_.self));
  beat->set_incarnation(options_.incarnation);
  beat->set_rebuilding(inbound_.rebuilding());
  for (const OriginHead& head : origin_heads) {
    wire::OriginHead* out = beat->add_heads();
    out->set_origin(head.origin);
    out->set_seq(head.seq);
    out->set_hlc(head.hlc);
  }
  return message;
}

wire::SnapshotRequest Exchange::SnapshotRequestMessage() const {
  wire::SnapshotRequest request;
  request.set_deployment(options_.deployment);
  request.set_region_id(options_.self);
  request.set_region_name(NameOf(options_.self));
  request.set_incarnation(options_.incarnation);
  return request;
}

template <typename Message>
std::optional<Refusal> Exchange::CheckSubscriber(const Message& message) const {
  const core::RegionId peer = message.region_id();
  if (peer == options_.self || !options_.names.contains(peer)) {
    return Refusal{Refusal::Code::kPermissionDenied,
                   "region id " + std::to_string(peer) + " is not a peer of this region", false};
  }
  if (message.deployment() != options_.deployment) {
    return Refusal{Refusal::Code::kFailedPrecondition,
                   "the subscriber is of deployment '" + message.deployment() + "', this region (" +
                       NameOf(options_.self) + ") of '" + options_.deployment + "'",
                   true};
  }
  const std::string& known = NameOf(peer);
  if (message.region_name() != known) {
    return Refusal{Refusal::Code::kFailedPrecondition,
                   "the subscriber calls itself '" + message.region_name() + "' with region id " +
                       std::to_string(peer) + ", which this region knows as '" + known + "'",
                   true};
  }
  if (message.incarnation() == 0) {
    return Refusal{Refusal::Code::kFailedPrecondition, "the subscriber sent no incarnation", true};
  }
  return std::nullopt;
}

std::optional<std::string> Exchange::CheckSender(core::RegionId peer,
                                                 const wire::Heartbeat& beat) const {
  if (beat.deployment() != options_.deployment) {
    return "the region dialled as " + NameOf(peer) + " is of deployment '" + beat.deployment() +
           "', this region of '" + options_.deployment + "'";
  }
  if (beat.region_id() != peer || beat.region_name() != NameOf(peer)) {
    return "the region dialled as '" + NameOf(peer) + "' (id " + std::to_string(peer) + ") is '" +
           beat.region_name() + "' (id " + std::to_string(beat.region_id()) + ")";
  }
  if (beat.incarnation() == 0) return std::string("the sender sent no incarnation");
  return std::nullopt;
}

// --- receiving streams ------------------------------------------------------------------------

Exchange::Dialed Exchange::Dialing(core::RegionId peer, const core::VersionVector& applied,
                                   uint64_t now_ms) {
  NoteHeads(applied);
  Inbound::Dial dial = inbound_.Dialing(peer, now_ms);
  receiving_[dial.stream] =
      Receiving{.peer = peer, .subscribes = 1, .asked = {dial.origins.begin(), dial.origins.end()}};
  return {dial.stream, SubscribeMessage(dial.origins, applied, 1)};
}

void Exchange::Cancel(uint64_t stream, std::string why, Ready* ready) {
  ready->cancel.push_back({stream, std::move(why)});
}

void Exchange::Resubscribe(uint64_t stream, const core::VersionVector& applied, Ready* ready) {
  if (!inbound_.ResubscribeDue(stream)) return;
  for (const Ready::Cancel& cancel : ready->cancel) {
    if (cancel.stream == stream) return;  // ending: its redial subscribes anew
  }
  Receiving* receiving = FindReceiving(stream);
  if (receiving == nullptr) return;
  const std::vector<core::RegionId> origins = inbound_.Subscription(stream);
  receiving->asked.insert(origins.begin(), origins.end());
  ready->sends.push_back({stream, SubscribeMessage(origins, applied, ++receiving->subscribes)});
}

Ready Exchange::Received(uint64_t stream, const wire::ToReceiver& message,
                         const core::VersionVector& applied, uint64_t now_ms, bool* decode) {
  Ready ready;
  *decode = false;
  NoteHeads(applied);
  Receiving* receiving = FindReceiving(stream);
  if (receiving == nullptr) return ready;  // ended
  const core::RegionId peer = receiving->peer;
  const Inbound::Arrival arrival = inbound_.Received(stream, now_ms);
  if (arrival.stale) return ready;  // another stream won; this one is being cancelled
  for (uint64_t lost : arrival.cancel) {
    Cancel(lost, "#" + std::to_string(stream) + " answered first", &ready);
  }
  if (arrival.first) {
    receiving->connected = true;
    ready.links_changed = true;
    ready.Log(Level::kInfo, "subscribed to " + NameOf(peer) + " for " +
                                Origins(inbound_.links().OriginsFor(peer)));
  }
  switch (message.message_case()) {
    case wire::ToReceiver::kBatch:
      if (receiving->incarnation == 0) {
        // The sender's first heartbeat goes before its first batch: nothing is applied from a
        // stream whose sender has not said who it is.
        Cancel(stream, "a batch before the sender's first heartbeat", &ready);
        break;
      }
      inbound_.BatchReceived(stream, now_ms);
      *decode = true;
      break;
    case wire::ToReceiver::kHeartbeat: {
      const wire::Heartbeat& beat = message.heartbeat();
      if (receiving->incarnation == 0) {
        if (std::optional<std::string> refusal = CheckSender(peer, beat)) {
          ready.Log(Level::kError, "refusing the stream to " + NameOf(peer) + ": " + *refusal);
          ready.refused.push_back({peer, *refusal});
          Cancel(stream, "refused: " + *refusal, &ready);
          return ready;
        }
        receiving->incarnation = beat.incarnation();
        ready.accepted.push_back(peer);
      } else if (beat.incarnation() != receiving->incarnation) {
        Cancel(stream, "the sender's incarnation changed within a stream", &ready);
        return ready;
      }
      auto frontier = core::VersionVector::Decode(beat.frontier());
      if (!frontier.ok()) {
        Cancel(stream, "bad heartbeat", &ready);
        return ready;
      }
      for (const wire::OriginHead& head : beat.heads()) {
        if (head.origin() == 0 || head.origin() > core::kRegionIdMax) {
          Cancel(stream, "bad heartbeat", &ready);
          return ready;
        }
        ready.heads_heard.push_back(
            {static_cast<core::RegionId>(head.origin()), head.seq(), head.hlc()});
      }
      // Tell the peer what this region holds (events it got from others count too): the peer's
      // durability waits and retention depend on it.
      if (auto ack = inbound_.HeartbeatReceived(stream, *frontier, applied, now_ms)) {
        ready.sends.push_back({stream, AckMessage(*ack)});
      }
      // A rebuilding sender's frontier names fewer of its own events than it wrote: one it wrote
      // before it lost them may still arrive with a context that does not cover the frontier
      // (core/causal_order.h), so it is not a report stability may use.
      if (!beat.rebuilding()) ready.observe = Ready::Observe{peer, std::move(frontier).value()};
      SyncRebuild(&ready);
      break;
    }
    case wire::ToReceiver::kBehindRetention: {
      const wire::BehindRetention& behind = message.behind_retention();
      // Relayed from a peer that holds them, from the next tick on.
      inbound_.BehindRetention(stream, static_cast<core::RegionId>(behind.origin()),
                               behind.wanted_seq());
      ready.behind = Ready::Behind{peer, static_cast<core::RegionId>(behind.origin()),
                                   behind.wanted_seq(), behind.oldest_seq()};
      ready.Log(Level::kError, "this region is behind " + NameOf(peer) + "'s log retention for " +
                                   NameOf(static_cast<core::RegionId>(behind.origin())) +
                                   " (needs " + std::to_string(behind.wanted_seq()) +
                                   ", the log starts at " + std::to_string(behind.oldest_seq()) +
                                   "); they are relayed from a peer that holds them, if one "
                                   "does; else this region needs re-seeding");
      break;
    }
    case wire::ToReceiver::MESSAGE_NOT_SET:
      Cancel(stream, "an empty message", &ready);
      return ready;
  }
  Resubscribe(stream, applied, &ready);
  return ready;
}

Ready Exchange::Decoded(uint64_t stream, core::RegionId origin, Result<core::RemoteBatch>* decoded,
                        uint64_t wall_ms) {
  Ready ready;
  Receiving* receiving = FindReceiving(stream);
  if (receiving == nullptr) return ready;
  if (!decoded->ok()) {
    // Broken framing or compression, or an event whose dot cannot be read.
    Cancel(stream, "bad batch: " + decoded->status().message(), &ready);
    return ready;
  }
  core::RemoteBatch* events = &decoded->value();
  if (!receiving->asked.contains(origin)) {
    // Only the origins this region asked the peer for: whoever answers at a peer's address
    // cannot inject events of any origin it likes.
    Cancel(stream,
           "refused: " + NameOf(receiving->peer) + " sent events of " + NameOf(origin) +
               ", which this region did not ask it for",
           &ready);
    return ready;
  }
  const auto other = [origin](const auto& event) { return event.dot.origin != origin; };
  if (std::any_of(events->events.begin(), events->events.end(), other) ||
      std::any_of(events->parked.begin(), events->parked.end(), other)) {
    Cancel(stream, "a batch holds an event of another origin", &ready);
    return ready;
  }
  // An HLC far ahead of this region's clock is not observed: applied, it would drag this clock
  // (and every region's after it) into the future, and every later write would carry it. The
  // event is parked, like one that does not decode: its dot advances the frontier, and it can be
  // applied later (POST /v1/dead-letters/{id}/retry) once the clocks agree.
  const uint64_t ahead_max = options_.hlc_ahead_max_ms;
  const auto too_far = [wall_ms, ahead_max](core::HlcTimestamp hlc) {
    return core::HlcPhysicalMs(hlc) > wall_ms + ahead_max;
  };
  const std::string reason = "its HLC time is more than " + std::to_string(ahead_max) +
                             " ms ahead of this region's clock (" + std::to_string(wall_ms) +
                             "): not applied until the clocks agree";
  events->Park([&too_far](const core::Event& event) { return too_far(event.hlc); }, reason);
  size_t ahead = 0;
  for (core::ParkedEvent& parked : events->parked) {
    if (!too_far(parked.hlc)) continue;
    // Parked by the decoder already: its reason stands, with this one added.
    if (parked.reason != reason) parked.reason += "; " + reason;
    parked.hlc = 0;  // the commit path's clock must not observe it
    ++ahead;
  }
  if (ahead > 0) {
    ready.Log(Level::kWarn, NameOf(receiving->peer) + " sent " + std::to_string(ahead) +
                                " event(s) of " + NameOf(origin) + " with an HLC more than " +
                                std::to_string(ahead_max) +
                                " ms ahead of this region's clock: parked as dead letters");
  }
  // A parked event is applied as a dead letter: it moves the frontier like any other, so a batch
  // of parked events only is submitted too.
  if (events->empty()) return ready;
  const size_t bytes = DecodedBytes(*events);
  receiving->queued_bytes.push_back(bytes);
  receiving->queued_bytes_total += bytes;
  ready.submit = Ready::Submit{stream, origin};
  return ready;
}

bool Exchange::Room(uint64_t stream) const {
  auto it = receiving_.find(stream);
  if (it == receiving_.end()) return true;
  const Receiving& receiving = it->second;
  // One batch always fits, however large (the decoder bounds it): the stream never stalls.
  const size_t queued = receiving.queued_bytes.size();
  return queued == 0 || (queued < options_.apply_queue_max &&
                         receiving.queued_bytes_total < options_.apply_queue_bytes_max);
}

Ready Exchange::BatchApplied(uint64_t stream, core::RegionId origin,
                             const Inbound::Applied& applied, const std::string& error,
                             const core::VersionVector& frontier, uint64_t now_ms) {
  Ready ready;
  if (Receiving* receiving = FindReceiving(stream);
      receiving != nullptr && !receiving->queued_bytes.empty()) {
    // A stream's batches apply in the order queued.
    receiving->queued_bytes_total -= receiving->queued_bytes.front();
    receiving->queued_bytes.pop_front();
  }
  const Inbound::AfterApply after = inbound_.BatchApplied(stream, applied, frontier, now_ms);
  SyncRebuild(&ready);
  if (after.end) {
    // Events arrived ahead of a missing predecessor: resubscribe from the frontier.
    Cancel(stream,
           applied.ok ? "a gap in " + NameOf(origin) + "'s events; resubscribing"
                      : "applying a batch failed: " + error,
           &ready);
  } else if (after.ack) {
    ready.sends.push_back({stream, AckMessage(*after.ack)});
  }
  return ready;
}

Ready Exchange::Ended(uint64_t stream, const std::string& why, uint64_t now_ms, double unit) {
  Ready ready;
  auto it = receiving_.find(stream);
  if (it == receiving_.end()) return ready;
  const Receiving receiving = it->second;
  receiving_.erase(it);
  const core::RegionId peer = receiving.peer;
  const bool gave_way = inbound_.GaveWay(stream);
  const std::optional<uint64_t> delay = inbound_.Ended(stream, now_ms, unit);
  ready.links_changed = true;
  if (receiving.connected && !gave_way) ready.reconnecting.push_back(peer);
  if (why.rfind("refused: ", 0) == 0) {
    // Refused by either end (another deployment, a name it does not know, another process of
    // the region subscribed): an operator must look.
    ready.refused.push_back({peer, why.substr(9)});
    ready.Log(Level::kError, "link to " + NameOf(peer) + " " + why);
  } else if (gave_way) {
    ready.Log(Level::kDebug,
              "#" + std::to_string(stream) + " to " + NameOf(peer) + " gave way: " + why);
  } else if (receiving.connected) {
    ready.Log(Level::kWarn, "link to " + NameOf(peer) + " lost: " + why);
  } else {
    ready.Log(Level::kDebug, "link to " + NameOf(peer) + " not up: " + why);
  }
  if (delay && !paused_) ready.dials.push_back({peer, *delay, false});
  return ready;
}

void Exchange::SyncRebuild(Ready* ready) {
  Inbound::Rebuild rebuild = inbound_.Rebuilding();
  if (published_rebuild_ == rebuild) return;
  const bool was = published_rebuild_ ? published_rebuild_->rebuilding : false;
  if (rebuild.rebuilding != was) {
    if (rebuild.rebuilding && rebuild.confirming) {
      ready->Log(Level::kWarn,
                 "rebuilding: the data directory is new; writes wait until every "
                 "peer has told what it holds of " +
                     NameOf(options_.self) + "'s events and they are back");
    } else if (rebuild.rebuilding) {
      ready->Log(Level::kWarn,
                 "rebuilding: " + (rebuild.ahead ? NameOf(*rebuild.ahead) : "a peer") + " holds " +
                     NameOf(options_.self) + "'s events up to " + std::to_string(rebuild.target) +
                     ", this region up to " + std::to_string(rebuild.applied) +
                     "; writes wait until they are back");
    } else {
      ready->Log(Level::kInfo, "rebuilt: every peer has told what it holds of " +
                                   NameOf(options_.self) + " (up to " +
                                   std::to_string(rebuild.target) +
                                   "), and this region has it all; writes resume");
      ready->rebuilt = published_rebuild_.has_value();
    }
  }
  published_rebuild_ = rebuild;
  ready->rebuild = std::move(rebuild);
}

// --- serving streams --------------------------------------------------------------------------

// Mutual TLS authenticates the peer as a region; the region a message claims must be that one, or
// any region holding a certificate could subscribe, re-seed or verify as another.
std::optional<Refusal> Exchange::CheckCertificate(std::optional<core::RegionId> authenticated,
                                                  core::RegionId claimed) const {
  if (!authenticated || *authenticated == claimed) return std::nullopt;
  return Refusal{
      Refusal::Code::kPermissionDenied,
      "certificate names region '" + NameOf(*authenticated) + "', not '" + NameOf(claimed) + "'",
      true};
}

Exchange::Served Exchange::Subscribed(uint64_t serving, const wire::Subscribe& subscribe,
                                      std::optional<core::RegionId> authenticated,
                                      uint64_t now_ms) {
  Served served;
  Ready& ready = served.ready;
  if (std::optional<Refusal> refusal =
          CheckCertificate(authenticated, static_cast<core::RegionId>(subscribe.region_id()))) {
    ready.refused.push_back({*authenticated, refusal->message});
    ready.Log(Level::kError, "refused a subscription: " + refusal->message);
    served.refusal = std::move(refusal);
    return served;
  }
  if (subscribe.protocol_version() != kProtocolVersion) {
    served.refusal = Refusal{Refusal::Code::kFailedPrecondition,
                             "protocol version " + std::to_string(subscribe.protocol_version()) +
                                 " is not supported (this region speaks " +
                                 std::to_string(kProtocolVersion) + ")",
                             false};
    return served;
  }
  if (std::optional<Refusal> refusal = CheckSubscriber(subscribe)) {
    if (refusal->identity) {
      ready.refused.push_back(
          {static_cast<core::RegionId>(subscribe.region_id()), refusal->message});
      ready.Log(Level::kError, "refused a subscription from " +
                                   NameOf(static_cast<core::RegionId>(subscribe.region_id())) +
                                   ": " + refusal->message);
    }
    served.refusal = std::move(refusal);
    return served;
  }
  const core::RegionId peer = subscribe.region_id();
  auto frontier = core::VersionVector::Decode(subscribe.frontier());
  if (!frontier.ok()) {
    served.refusal = Refusal{Refusal::Code::kInvalidArgument, "malformed frontier in Subscribe"};
    return served;
  }
  if (std::optional<std::string> why = CheckOrigins(subscribe)) {
    served.refusal = Refusal{Refusal::Code::kInvalidArgument, *why};
    return served;
  }
  Subscriber& subscriber = subscribers_[peer];
  const uint64_t incarnation = subscribe.incarnation();
  if (subscriber.incarnation != 0 && subscriber.incarnation != incarnation) {
    if (subscriber.streams > 0) {
      const std::string why = "region " + NameOf(peer) +
                              " is already subscribed from another process (data directory "
                              "incarnation " +
                              Hex(subscriber.incarnation) + "); one region is served by one node";
      ready.refused.push_back({peer, why});
      ready.Log(Level::kError, "refused a subscription from " + NameOf(peer) + ": " + why);
      served.refusal = Refusal{Refusal::Code::kAlreadyExists, why, true};
      return served;
    }
    // A new data directory: what the old one acknowledged may be gone with it.
    ready.Log(Level::kWarn, NameOf(peer) + " is a new incarnation (" + Hex(incarnation) + ", was " +
                                Hex(subscriber.incarnation) +
                                "); its earlier acknowledgements no longer count");
    subscriber.acked = core::VersionVector();
    ready.forgotten.push_back(peer);
  }
  ready.accepted.push_back(peer);
  // `peer` subscribed with `incarnation`. Its events that streams to an earlier incarnation have
  // queued (the old process's last batches, still in flight when it stopped) must never commit
  // after this region tells the new one what it holds of its origin: they could carry event ids
  // the new incarnation reissues. Those streams are dropped (the driver waits for the commit
  // path before the first heartbeat).
  for (const auto& [id, receiving] : receiving_) {
    if (receiving.peer == peer && receiving.incarnation != 0 &&
        receiving.incarnation != incarnation) {
      ready.fence.push_back(id);
      Cancel(id, "the peer has a new incarnation; this stream was of an earlier one", &ready);
    }
  }
  if (!ready.fence.empty()) {
    ready.Log(Level::kWarn, NameOf(peer) + " has a new incarnation; dropped " +
                                std::to_string(ready.fence.size()) +
                                " stream(s) to its earlier one and whatever they had not applied");
  }
  subscriber.incarnation = incarnation;
  subscriber.heard_ms = now_ms;
  ++subscriber.streams;
  auto [it, inserted] = serving_.try_emplace(serving, options_.sender);
  MERIDIAN_CHECK(inserted);
  it->second.peer = peer;
  // It holds everything it subscribed after (as far as it is believed: FromSubscriber).
  FromSubscriber(
      serving,
      [&] {
        wire::ToSender message;
        *message.mutable_subscribe() = subscribe;
        return message;
      }(),
      now_ms, &ready);
  return served;
}

bool Exchange::FromSubscriber(uint64_t serving, const wire::ToSender& message, uint64_t now_ms,
                              Ready* ready) {
  Serving* s = FindServing(serving);
  if (s == nullptr) return false;
  Subscriber& subscriber = subscribers_[s->peer];
  switch (message.message_case()) {
    case wire::ToSender::kSubscribe: {
      const wire::Subscribe& subscribe = message.subscribe();
      if (subscribe.region_id() != s->peer || subscribe.incarnation() != subscriber.incarnation) {
        return false;  // a stream belongs to one region and one incarnation
      }
      auto frontier = core::VersionVector::Decode(subscribe.frontier());
      if (!frontier.ok()) {
        ready->Log(Level::kWarn,
                   "ending " + NameOf(s->peer) + "'s stream: malformed frontier in Subscribe");
        return false;
      }
      if (std::optional<std::string> why = CheckOrigins(subscribe)) {
        ready->Log(Level::kWarn, "ending " + NameOf(s->peer) + "'s stream: " + *why);
        return false;
      }
      // A copy of an earlier Subscribe that arrives after a later one (delivered twice or held
      // back on the way) must not bring back the origins it asked for: the subscriber counts on
      // the later set, and nothing would ever tell it that this sender streams another.
      if (subscribe.subscription() != 0) {
        if (subscribe.subscription() <= s->subscription) {
          ready->Log(Level::kDebug, "ignored a late copy of " + NameOf(s->peer) + "'s Subscribe " +
                                        std::to_string(subscribe.subscription()) + " (Subscribe " +
                                        std::to_string(s->subscription) + " came before it)");
          return true;
        }
        s->subscription = subscribe.subscription();
      }
      // The subscriber's own id among them only while it rebuilds
      // (docs/replication.md#rebuilding).
      std::vector<core::RegionId> origins(subscribe.origins().begin(), subscribe.origins().end());
      s->outbound.Subscribe(*frontier, origins);
      s->origins = std::set<core::RegionId>(origins.begin(), origins.end());
      // The stream goes on from the frontier: of what this region held, the subscriber is
      // believed to hold that much (what this region does not hold, it cannot count on).
      s->sendable.Merge(core::VersionVector::Meet(*frontier, heads_));
      Believe(*s, *frontier, now_ms, ready);
      ready->Log(Level::kDebug, NameOf(s->peer) + " subscribed to " + Origins(origins) + " from " +
                                    frontier->ToString());
      return true;
    }
    case wire::ToSender::kAck: {
      auto applied = core::VersionVector::Decode(message.ack().frontier());
      if (!applied.ok()) {
        ready->Log(Level::kWarn,
                   "ending " + NameOf(s->peer) + "'s stream: malformed frontier in Ack");
        return false;
      }
      // The window frees only what the stream sent: an Ack beyond it opens nothing more.
      s->outbound.Ack(Believe(*s, *applied, now_ms, ready));
      return true;
    }
    case wire::ToSender::MESSAGE_NOT_SET:
      return false;
  }
  return false;
}

std::optional<std::string> Exchange::CheckOrigins(const wire::Subscribe& subscribe) const {
  // Region ids, each once. Not only the configured regions: a region removed from the deployment
  // for good may still have events to relay (docs/operations.md#adding-and-removing-regions).
  if (static_cast<size_t>(subscribe.origins_size()) > core::kRegionIdMax) {
    return "a Subscribe asks for " + std::to_string(subscribe.origins_size()) +
           " origins; region ids go up to " + std::to_string(core::kRegionIdMax);
  }
  std::set<uint32_t> seen;
  for (uint32_t origin : subscribe.origins()) {
    if (origin == 0 || origin > core::kRegionIdMax) {
      return "a Subscribe asks for origin " + std::to_string(origin) + ", not a region id (1 to " +
             std::to_string(core::kRegionIdMax) + ")";
    }
    if (!seen.insert(origin).second) {
      return "a Subscribe asks for origin " + NameOf(static_cast<core::RegionId>(origin)) +
             " twice";
    }
  }
  return std::nullopt;
}

core::VersionVector Exchange::Believe(Serving& s, const core::VersionVector& claim, uint64_t now_ms,
                                      Ready* ready) {
  Subscriber& subscriber = subscribers_[s.peer];
  core::VersionVector believed;
  bool clamped = false;
  bool overclaim = false;
  for (const core::VersionVector::Entry& entry : claim.entries()) {
    // This region's own events, and the origins the stream carries, reach the subscriber on this
    // stream: it holds no more of them than the stream sent it (or it held when it subscribed).
    // Another origin's it may get elsewhere; this region can use no more of it than it holds.
    // A forged Ack thus never makes a durability wait answer, nor retention trim, for events the
    // subscriber was never sent.
    const bool carried = entry.origin == options_.self || s.origins.contains(entry.origin);
    const uint64_t bound = carried ? s.sendable.Get(entry.origin) : heads_.Get(entry.origin);
    const uint64_t seq = std::min(entry.seq, bound);
    if (seq < entry.seq) clamped = true;
    // More of this region's own events than it wrote: no honest subscriber claims that, unless
    // this region lost them (it is then rebuilding, and it checks that claim itself).
    if (entry.origin == options_.self && entry.seq > heads_.Get(options_.self) &&
        !inbound_.rebuilding()) {
      overclaim = true;
    }
    if (seq != 0) believed.Set(entry.origin, seq);
  }
  if (overclaim) {
    if (subscriber.overclaims++ == 0) {
      ready->Log(Level::kWarn, NameOf(s.peer) + " acknowledged " + claim.ToString() + ", more of " +
                                   NameOf(options_.self) + "'s events than this region wrote (" +
                                   heads_.ToString() + "); believed only " + believed.ToString() +
                                   " (further such acknowledgements are counted, not logged)");
    }
  } else if (clamped && !s.clamped) {
    // A subscriber that got some events elsewhere (a relay, an earlier stream) acknowledges them
    // here too: harmless, and believed once this stream has sent them.
    ready->Log(Level::kDebug, NameOf(s.peer) + " acknowledged " + claim.ToString() +
                                  " on a stream that sent it up to " + s.sendable.ToString() +
                                  "; believed " + believed.ToString());
  }
  s.clamped = s.clamped || clamped;
  subscriber.acked.Merge(believed);
  subscriber.heard_ms = now_ms;
  ready->acked.push_back({s.peer, believed});
  return believed;
}

void Exchange::ServingEnded(uint64_t serving) {
  auto it = serving_.find(serving);
  if (it == serving_.end()) return;
  Subscriber& subscriber = subscribers_[it->second.peer];
  if (subscriber.streams > 0) --subscriber.streams;
  serving_.erase(it);
}

core::RegionId Exchange::SubscriberOf(uint64_t serving) const {
  const Serving* s = FindServing(serving);
  return s == nullptr ? 0 : s->peer;
}

uint64_t Exchange::Backlog(uint64_t serving, const core::VersionVector& heads) const {
  const Serving* s = FindServing(serving);
  return s == nullptr ? 0 : s->outbound.Backlog(heads);
}

Exchange::Outgoing Exchange::Next(uint64_t serving, const core::VersionVector& heads,
                                  uint64_t now_ms) {
  Outgoing out;
  NoteHeads(heads);
  Serving* s = FindServing(serving);
  if (s == nullptr) return out;
  out.heartbeat = s->outbound.HeartbeatDue(now_ms);
  out.read = s->outbound.Next(heads, now_ms);
  return out;
}

bool Exchange::Due(uint64_t serving, const core::VersionVector& heads, uint64_t now_ms) const {
  const Serving* s = FindServing(serving);
  return s != nullptr && (s->outbound.Ready(heads, now_ms) || s->outbound.HeartbeatDue(now_ms));
}

uint64_t Exchange::WakeAtMs(uint64_t serving, const core::VersionVector& heads,
                            uint64_t now_ms) const {
  const Serving* s = FindServing(serving);
  return s == nullptr ? UINT64_MAX : s->outbound.WakeAtMs(heads, now_ms);
}

void Exchange::Sent(uint64_t serving, core::RegionId origin, uint64_t last_seq, size_t raw_bytes) {
  Serving* s = FindServing(serving);
  if (s == nullptr) return;
  s->outbound.Sent(origin, last_seq, raw_bytes);
  // From now on the subscriber may acknowledge it.
  if (last_seq > s->sendable.Get(origin)) s->sendable.Set(origin, last_seq);
}

wire::ToReceiver Exchange::Missing(uint64_t serving, const Outbound::Read& read,
                                   uint64_t oldest_seq, Ready* ready) {
  wire::ToReceiver message;
  wire::BehindRetention* behind = message.mutable_behind_retention();
  behind->set_origin(read.origin);
  behind->set_wanted_seq(read.from_seq);
  behind->set_oldest_seq(oldest_seq);
  Serving* s = FindServing(serving);
  if (s == nullptr) return message;
  s->outbound.Abandon(read.origin);
  ready->Log(Level::kError, NameOf(s->peer) + " is behind this region's log retention for " +
                                NameOf(read.origin) + " (wants " + std::to_string(read.from_seq) +
                                ", the log starts at " + std::to_string(oldest_seq) + ")");
  return message;
}

void Exchange::HeartbeatSent(uint64_t serving, uint64_t now_ms) {
  if (Serving* s = FindServing(serving)) s->outbound.HeartbeatSent(now_ms);
}

// --- re-seeding ---------------------------------------------------------------------------

std::optional<Refusal> Exchange::SnapshotRequested(const wire::SnapshotRequest& request,
                                                   std::optional<core::RegionId> authenticated,
                                                   Ready* ready) {
  if (std::optional<Refusal> refusal =
          CheckCertificate(authenticated, static_cast<core::RegionId>(request.region_id()))) {
    ready->refused.push_back({*authenticated, refusal->message});
    return refusal;
  }
  if (std::optional<Refusal> refusal = CheckSubscriber(request)) return refusal;
  // The region starts over: what its earlier incarnation acknowledged no longer holds the log
  // back, nor counts (and nothing it now needs is trimmed meanwhile).
  Subscriber& subscriber = subscribers_[request.region_id()];
  if (subscriber.incarnation != request.incarnation()) {
    subscriber.acked = core::VersionVector();
    ready->forgotten.push_back(static_cast<core::RegionId>(request.region_id()));
    if (subscriber.streams == 0) subscriber.incarnation = request.incarnation();
  }
  return std::nullopt;
}

std::optional<Refusal> Exchange::VerifyRequested(
    const wire::VerifyRequest& request, std::optional<core::RegionId> authenticated) const {
  if (std::optional<Refusal> refusal =
          CheckCertificate(authenticated, static_cast<core::RegionId>(request.region_id()))) {
    return refusal;
  }
  if (std::optional<Refusal> refusal = CheckSubscriber(request)) return refusal;
  // Bounded before anything is read for it: a request asks for at most these many tree nodes,
  // buckets and documents (the Verifier asks for far fewer), each within what it can name.
  const auto too_many = [](const char* what, int count, size_t max) {
    return Refusal{Refusal::Code::kInvalidArgument,
                   "a verification request asks for " + std::to_string(count) + " " + what +
                       "; at most " + std::to_string(max) + " are answered"};
  };
  if (static_cast<size_t>(request.nodes_size()) > kVerifyNodesMax) {
    return too_many("tree nodes", request.nodes_size(), kVerifyNodesMax);
  }
  if (static_cast<size_t>(request.buckets_size()) > kVerifyBucketsMax) {
    return too_many("buckets", request.buckets_size(), kVerifyBucketsMax);
  }
  if (static_cast<size_t>(request.keys_size()) > kVerifyKeysMax) {
    return too_many("documents", request.keys_size(), kVerifyKeysMax);
  }
  for (const std::string& key : request.keys()) {
    if (key.empty() || key.size() > kRemoteLimits.key_bytes_max) {
      return Refusal{Refusal::Code::kInvalidArgument,
                     "a verification request names a key of " + std::to_string(key.size()) +
                         " bytes (1 to " + std::to_string(kRemoteLimits.key_bytes_max) + ")"};
    }
  }
  return std::nullopt;
}

void Exchange::Identify(wire::VerifyRequest* request) const {
  request->set_deployment(options_.deployment);
  request->set_region_id(options_.self);
  request->set_region_name(NameOf(options_.self));
  request->set_incarnation(options_.incarnation);
}

// --- time ---------------------------------------------------------------------------------

Ready Exchange::Tick(const core::VersionVector& applied, uint64_t now_ms) {
  Ready ready;
  NoteHeads(applied);
  const Inbound::Tick tick = inbound_.OnTick(applied, now_ms);
  SyncRebuild(&ready);
  for (core::RegionId peer : tick.changed) {
    ready.Log(Level::kInfo,
              NameOf(peer) + " now carries " + Origins(inbound_.links().OriginsFor(peer)));
  }
  for (uint64_t stream : tick.quiet) {
    ready.Log(Level::kWarn, "link to " + NameOf(inbound_.PeerOf(stream)) + " quiet for " +
                                std::to_string(inbound_.links().silence_timeout_ms()) + " ms");
  }
  for (uint64_t stream : tick.silent) {
    Cancel(stream, "silent for " + std::to_string(inbound_.TimeoutMs(stream)) + " ms", &ready);
  }
  if (!paused_) {
    for (core::RegionId peer : tick.hedge) {
      ready.dials.push_back({peer, 0, true});
      ready.hedged.push_back(peer);
    }
  }
  // Stuck behind the peers' retention for a while: only a peer's snapshot brings this region
  // the events no log holds any more (docs/replication.md#re-seeding).
  const std::optional<uint64_t> stuck = inbound_.links().StuckSinceMs();
  if (!paused_ && options_.reseed_after_ms != 0 && stuck &&
      now_ms >= *stuck + options_.reseed_after_ms) {
    paused_ = true;
    ready.reseed = true;
    ready.reseed_from = inbound_.links().ReseedSources(applied);
    for (const auto& [stream, receiving] : receiving_) Cancel(stream, "re-seeding", &ready);
    ready.Log(Level::kWarn, "behind the peers' log retention for " +
                                std::to_string((now_ms - *stuck) / 1000) +
                                " s with no peer to relay what is missing: re-seeding from a "
                                "peer's snapshot, merged with what this region holds");
  }
  ready.links_changed = true;
  return ready;
}

core::VersionVector Exchange::RetentionFloor(const core::VersionVector& applied, uint64_t now_ms,
                                             Ready* ready) {
  NoteHeads(applied);
  std::vector<core::RegionId> released;
  std::optional<core::VersionVector> meet;
  for (const auto& [peer, subscriber] : subscribers_) {
    if (subscriber.streams == 0 && now_ms > subscriber.heard_ms + options_.retention_hold_ms) {
      released.push_back(peer);
      continue;
    }
    meet = meet ? core::VersionVector::Meet(*meet, subscriber.acked) : subscriber.acked;
  }
  for (core::RegionId peer : released) {
    if (std::find(released_.begin(), released_.end(), peer) == released_.end()) {
      ready->Log(Level::kWarn, NameOf(peer) + " has acknowledged nothing for " +
                                   std::to_string(options_.retention_hold_ms / 1000) +
                                   " s; the log no longer waits for it (it re-seeds when it "
                                   "returns)");
    }
  }
  released_ = std::move(released);
  return meet.value_or(applied);
}

size_t Exchange::RegionsHolding(core::Dot dot) const {
  size_t count = 0;
  for (const auto& [peer, subscriber] : subscribers_) {
    if (peer == dot.origin || subscriber.acked.Get(dot.origin) >= dot.seq) ++count;
  }
  return count;
}

core::VersionVector Exchange::Acked(core::RegionId peer) const {
  auto it = subscribers_.find(peer);
  return it == subscribers_.end() ? core::VersionVector() : it->second.acked;
}

uint64_t Exchange::Overclaims(core::RegionId peer) const {
  auto it = subscribers_.find(peer);
  return it == subscribers_.end() ? 0 : it->second.overclaims;
}

uint64_t Exchange::IncarnationOf(core::RegionId peer) const {
  auto it = subscribers_.find(peer);
  return it == subscribers_.end() ? 0 : it->second.incarnation;
}

}  // namespace meridian::replication
