// Fuzz target for the replication exchange (replication/exchange.h) as a hostile peer sees it:
// the input is a sequence of operations — subscriptions built from the bytes, Acks with arbitrary
// frontiers, heartbeats and batches on receiving streams with arbitrary origins, seqs and HLCs,
// stream ends, ticks as time advances, snapshot and verification requests, local writes and
// commits — against one region (us) of three. The harness plays the driver as the simulator does:
// it applies each Ready (cancels end streams, fences drop what they queued, Subscribes sent widen
// what a stream may carry), sends what Next asks for, and commits queued batches in order. After
// every step it checks what a peer must never achieve (docs/replication.md#what-a-peer-may-do):
//   - no subscriber is believed to hold more of any origin than this region holds, nor more of
//     this region's own events than was sent to it or it held when it subscribed;
//   - a durability wait never counts a peer for a write not yet sent to it;
//   - retention never trims beyond what every peer still holding the log was truly sent;
//   - no batch of an origin the stream was not asked for is submitted, and no event with an HLC
//     beyond the clock bound reaches the commit path (nor a parked event's HLC);
//   - the apply queue stays within its bounds.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/hlc.h"
#include "replication/exchange.h"

namespace {

using namespace meridian;
using replication::Exchange;
using replication::Ready;

constexpr core::RegionId kSelf = 1;  // us; peers eu (2) and asia (3)
constexpr uint64_t kEpochMs = 1'732'233'600'000;
constexpr uint64_t kAheadMaxMs = 60'000;
constexpr size_t kQueueMax = 3;

const std::map<core::RegionId, std::string> kNames = {{1, "us"}, {2, "eu"}, {3, "asia"}};

struct Harness {
  explicit Harness(FuzzedDataProvider* in) : in(*in), exchange(Options(), 0) {}

  static replication::ExchangeOptions Options() {
    replication::ExchangeOptions options;
    options.deployment = "fuzz";
    options.self = kSelf;
    options.incarnation = 0x11;
    options.names = kNames;
    options.apply_queue_max = kQueueMax;
    options.apply_queue_bytes_max = 4096;
    options.hlc_ahead_max_ms = kAheadMaxMs;
    options.retention_hold_ms = 5'000;
    options.reseed_after_ms = 20'000;
    return options;
  }

  // --- the bytes --------------------------------------------------------------------------
  core::RegionId Peer() { return in.ConsumeBool() ? 2 : 3; }
  core::RegionId AnyOrigin() {
    // Mostly the deployment's regions, sometimes one it does not have.
    const uint8_t byte = in.ConsumeIntegral<uint8_t>();
    return byte < 240 ? static_cast<core::RegionId>(1 + byte % 3) : byte % 32;
  }
  uint64_t Seq() {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
      case 0:
        return in.ConsumeIntegralInRange<uint64_t>(0, 4);
      case 1:
        return in.ConsumeIntegralInRange<uint64_t>(0, 40);
      case 2:
        return in.ConsumeIntegral<uint64_t>() >> in.ConsumeIntegralInRange<int>(0, 63);
      default:
        return in.ConsumeIntegral<uint64_t>();
    }
  }
  core::VersionVector Vector() {
    core::VersionVector vector;
    const int entries = in.ConsumeIntegralInRange<int>(0, 4);
    for (int i = 0; i < entries; ++i) {
      const core::RegionId origin = AnyOrigin();
      if (origin > core::kRegionIdMax) continue;
      vector.Set(origin, Seq());
    }
    return vector;
  }
  // Mostly near what this region holds (the interesting edge: just sent, not sent yet), else
  // anything.
  core::VersionVector NearVector() {
    core::VersionVector vector;
    for (const auto& [origin, name] : kNames) {
      if (in.ConsumeIntegralInRange<int>(0, 3) == 0) continue;
      const int64_t seq =
          static_cast<int64_t>(heads.Get(origin)) + in.ConsumeIntegralInRange<int64_t>(-3, 3);
      if (seq > 0) vector.Set(origin, static_cast<uint64_t>(seq));
    }
    return vector;
  }
  std::string Frontier() {
    switch (in.ConsumeIntegralInRange<int>(0, 15)) {
      case 0:
        return in.ConsumeRandomLengthString(16);  // not a version vector at all
      case 1:
      case 2:
      case 3:
      case 4:
        return Vector().Encode();
      default:
        return NearVector().Encode();
    }
  }
  uint64_t Incarnation() {
    return in.ConsumeIntegralInRange<uint64_t>(0, 3) == 0
               ? 0
               : 0x20 + in.ConsumeIntegralInRange<uint64_t>(0, 2);
  }
  core::HlcTimestamp Hlc() {
    const uint64_t wall = Wall();
    switch (in.ConsumeIntegralInRange<int>(0, 4)) {
      case 0:
        return 0;
      case 1:
        return core::MakeHlc(wall - std::min<uint64_t>(wall, in.ConsumeIntegral<uint16_t>()), 0);
      case 2:
        return core::MakeHlc(wall + in.ConsumeIntegralInRange<uint64_t>(0, 2 * kAheadMaxMs),
                             in.ConsumeIntegral<uint16_t>());
      case 3:
        return core::MakeHlc(std::min(core::kHlcPhysicalMax, wall + kAheadMaxMs + 1), 0);
      default:
        return in.ConsumeIntegral<uint64_t>();
    }
  }

  uint64_t Wall() const { return kEpochMs + now; }

  // --- the driver -------------------------------------------------------------------------
  struct Receiving {
    core::RegionId peer = 0;
    std::set<core::RegionId> asked;  // every origin a Subscribe on the stream asked for
    std::deque<core::RemoteBatch> queued;
    std::deque<core::RegionId> queued_origins;
  };
  struct Serving {
    core::RegionId peer = 0;
  };

  // What the harness itself knows a peer may hold of this region's own events: the most it was
  // sent on any stream, or what it claimed when subscribing within what this region held then.
  uint64_t Credible(core::RegionId peer) const {
    auto it = credible_self.find(peer);
    return it == credible_self.end() ? 0 : it->second;
  }
  void Raise(core::RegionId peer, uint64_t seq) {
    uint64_t& credible = credible_self[peer];
    credible = std::max(credible, seq);
  }

  void Carry(Ready ready) {
    for (uint64_t stream : ready.fence) {
      if (auto it = receiving.find(stream); it != receiving.end()) {
        it->second.queued.clear();
        it->second.queued_origins.clear();
        fenced.insert(stream);
      }
    }
    if (ready.submit) {
      auto it = receiving.find(ready.submit->stream);
      MERIDIAN_CHECK(it != receiving.end());
      // Only origins this region asked that peer for, on that stream.
      MERIDIAN_CHECK(it->second.asked.contains(ready.submit->origin));
    }
    for (const Ready::ToSender& send : ready.sends) {
      auto it = receiving.find(send.stream);
      MERIDIAN_CHECK(it != receiving.end());
      if (send.message.has_subscribe()) {
        for (uint32_t origin : send.message.subscribe().origins()) it->second.asked.insert(origin);
      }
    }
    for (const Ready::Note& note : ready.notes) {
      if (trace) std::fprintf(stderr, "  note: %s\n", note.text.c_str());
    }
    for (const Ready::Acked& acked : ready.acked) {
      if (trace) {
        std::fprintf(stderr, "  acked %u %s credible %llu\n", acked.peer,
                     acked.frontier.ToString().c_str(),
                     static_cast<unsigned long long>(Credible(acked.peer)));
      }
      // A durability wait is told no more than this region holds, nor more of its own events
      // than the peer was sent.
      MERIDIAN_CHECK(heads.Dominates(acked.frontier));
      MERIDIAN_CHECK(acked.frontier.Get(kSelf) <= Credible(acked.peer));
    }
    for (const Ready::Cancel& cancel : ready.cancel) ending.push_back({cancel.stream, cancel.why});
    while (!ending.empty()) {
      const auto [stream, why] = ending.front();
      ending.pop_front();
      if (!receiving.contains(stream)) continue;
      Ready ended = exchange.Ended(stream, why, now, 0.5);
      receiving.erase(stream);
      Carry(std::move(ended));
    }
  }

  void CheckInvariants() {
    for (const auto& [peer, name] : kNames) {
      if (peer == kSelf) continue;
      const core::VersionVector acked = exchange.Acked(peer);
      MERIDIAN_CHECK(heads.Dominates(acked));
      MERIDIAN_CHECK(acked.Get(kSelf) <= Credible(peer));
    }
    // A write not yet sent anywhere is held by no other region.
    MERIDIAN_CHECK(exchange.RegionsHolding({kSelf, heads.Get(kSelf) + 1}) == 0);
    uint64_t most_sent = 0;
    for (const auto& [peer, seq] : credible_self) most_sent = std::max(most_sent, seq);
    if (heads.Get(kSelf) > most_sent) {
      MERIDIAN_CHECK(exchange.RegionsHolding({kSelf, most_sent + 1}) == 0);
    }
    // Retention trims nothing a peer still holding the log was not truly sent.
    Ready ready;
    const core::VersionVector floor = exchange.RetentionFloor(heads, now, &ready);
    MERIDIAN_CHECK(heads.Dominates(floor));
    const std::vector<core::RegionId>& released = exchange.released();
    for (const auto& [peer, name] : kNames) {
      if (peer == kSelf || std::find(released.begin(), released.end(), peer) != released.end()) {
        continue;
      }
      MERIDIAN_CHECK(floor.Get(kSelf) <= Credible(peer));
      MERIDIAN_CHECK(exchange.Acked(peer).Dominates(floor));
    }
    for (const auto& [stream, r] : receiving) {
      MERIDIAN_CHECK(r.queued.size() <= kQueueMax);
    }
    Carry(std::move(ready));
  }

  wire::Subscribe MakeSubscribe(core::RegionId peer, uint64_t incarnation) {
    wire::Subscribe subscribe;
    subscribe.set_protocol_version(
        in.ConsumeIntegralInRange<int>(0, 15) == 0 ? 2 : replication::kProtocolVersion);
    subscribe.set_region_id(in.ConsumeIntegralInRange<int>(0, 15) == 0 ? AnyOrigin() : peer);
    subscribe.set_region_name(
        kNames.contains(subscribe.region_id()) ? kNames.at(subscribe.region_id()) : "nowhere");
    subscribe.set_deployment(in.ConsumeIntegralInRange<int>(0, 15) == 0 ? "other" : "fuzz");
    subscribe.set_incarnation(incarnation);
    subscribe.set_frontier(Frontier());
    // Mostly the sender's own origin first, as a subscriber asks; then anything.
    if (in.ConsumeIntegralInRange<int>(0, 3) != 0) subscribe.add_origins(kSelf);
    const int origins = in.ConsumeIntegralInRange<int>(0, 3);
    for (int i = 0; i < origins; ++i) subscribe.add_origins(AnyOrigin());
    subscribe.set_subscription(in.ConsumeIntegralInRange<uint64_t>(0, 6));
    return subscribe;
  }

  // What the exchange may credit for a subscription frontier: what this region holds of it.
  void NoteSubscribed(core::RegionId peer, const std::string& frontier) {
    auto vector = core::VersionVector::Decode(frontier);
    if (vector.ok()) Raise(peer, std::min(vector->Get(kSelf), heads.Get(kSelf)));
  }

  void Step() {
    // Serving-side steps (subscriptions, acks, sends, writes) come more often than the others.
    static constexpr int kOps[] = {0,  1,  1,  2,  3,  3,  4,  5, 5, 6, 7, 8, 9,
                                   10, 11, 11, 12, 13, 14, 15, 1, 3, 5, 0, 7, 9};
    const int op = kOps[in.ConsumeIntegralInRange<size_t>(0, std::size(kOps) - 1)];
    if (trace) std::fprintf(stderr, "op %d heads %s\n", op, heads.ToString().c_str());
    switch (op) {
      case 0: {  // a peer opens a serving stream
        const core::RegionId peer = Peer();
        const wire::Subscribe subscribe = MakeSubscribe(peer, Incarnation());
        const uint64_t id = next_serving++;
        // Without TLS no region is authenticated; with it, mostly the region it claims to be.
        std::optional<core::RegionId> authenticated;
        if (in.ConsumeBool())
          authenticated = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? Peer() : peer;
        Exchange::Served served = exchange.Subscribed(id, subscribe, authenticated, now);
        if (!served.refusal) {
          // The region it says it is (the identity checks are the transport's and the exchange's).
          const core::RegionId as = static_cast<core::RegionId>(subscribe.region_id());
          NoteSubscribed(as, subscribe.frontier());
          serving[id] = Serving{as};
        }
        Carry(std::move(served.ready));
        break;
      }
      case 1:
      case 2: {  // an Ack, or a later Subscribe, on a serving stream
        if (serving.empty()) break;
        auto it =
            std::next(serving.begin(), in.ConsumeIntegralInRange<size_t>(0, serving.size() - 1));
        wire::ToSender message;
        if (in.ConsumeIntegralInRange<int>(0, 3) == 0) {
          *message.mutable_subscribe() =
              MakeSubscribe(it->second.peer, exchange.IncarnationOf(it->second.peer));
          NoteSubscribed(it->second.peer, message.subscribe().frontier());
        } else if (in.ConsumeIntegralInRange<int>(0, 31) != 0) {
          message.mutable_ack()->set_frontier(Frontier());
        }
        Ready ready;
        if (!exchange.FromSubscriber(it->first, message, now, &ready)) {
          exchange.ServingEnded(it->first);
          serving.erase(it);
        }
        Carry(std::move(ready));
        break;
      }
      case 3: {  // the serving streams send what they ought to
        for (const auto& [id, s] : serving) {
          const Exchange::Outgoing out = exchange.Next(id, heads, now);
          if (out.heartbeat) exchange.HeartbeatSent(id, now);
          if (!out.read) continue;
          const uint64_t held = heads.Get(out.read->origin);
          MERIDIAN_CHECK(out.read->from_seq <= held);
          if (in.ConsumeIntegralInRange<int>(0, 7) == 0) {  // retention trimmed it
            Ready ready;
            (void)exchange.Missing(id, *out.read, held, &ready);
            Carry(std::move(ready));
            continue;
          }
          const uint64_t last = std::min<uint64_t>(
              held, out.read->from_seq + std::max<size_t>(1, out.read->limit) - 1);
          exchange.Sent(id, out.read->origin, last, 100);
          if (out.read->origin == kSelf) Raise(s.peer, last);
        }
        break;
      }
      case 4: {  // a serving stream ends
        if (serving.empty()) break;
        auto it =
            std::next(serving.begin(), in.ConsumeIntegralInRange<size_t>(0, serving.size() - 1));
        exchange.ServingEnded(it->first);
        serving.erase(it);
        break;
      }
      case 5: {  // local writes
        heads.Set(kSelf, heads.Get(kSelf) + in.ConsumeIntegralInRange<uint64_t>(1, 5));
        break;
      }
      case 6: {  // dial a peer
        const core::RegionId peer = Peer();
        const Exchange::Dialed dialed = exchange.Dialing(peer, heads, now);
        MERIDIAN_CHECK(!receiving.contains(dialed.stream));
        Receiving& r = receiving[dialed.stream];
        r.peer = peer;
        for (uint32_t origin : dialed.subscribe.subscribe().origins()) r.asked.insert(origin);
        break;
      }
      case 7:
      case 8: {  // a heartbeat on a receiving stream
        if (receiving.empty()) break;
        auto it = std::next(receiving.begin(),
                            in.ConsumeIntegralInRange<size_t>(0, receiving.size() - 1));
        const uint64_t stream = it->first;
        wire::ToReceiver message;
        wire::Heartbeat* beat = message.mutable_heartbeat();
        const core::RegionId peer =
            in.ConsumeIntegralInRange<int>(0, 15) == 0 ? AnyOrigin() : it->second.peer;
        beat->set_region_id(peer);
        beat->set_region_name(kNames.contains(peer) ? kNames.at(peer) : "nowhere");
        beat->set_deployment("fuzz");
        beat->set_incarnation(in.ConsumeIntegralInRange<int>(0, 7) == 0 ? Incarnation() : 0x20);
        beat->set_frontier(Frontier());
        beat->set_hlc(Hlc());
        beat->set_rebuilding(in.ConsumeIntegralInRange<int>(0, 7) == 0);
        const int count = in.ConsumeIntegralInRange<int>(0, 3);
        for (int i = 0; i < count; ++i) {
          wire::OriginHead* head = beat->add_heads();
          head->set_origin(AnyOrigin());
          head->set_seq(Seq());
          head->set_hlc(Hlc());
        }
        bool decode = false;
        Ready ready = exchange.Received(stream, message, heads, now, &decode);
        MERIDIAN_CHECK(!decode);
        Carry(std::move(ready));
        break;
      }
      case 9:
      case 10: {  // a batch on a receiving stream
        if (receiving.empty()) break;
        auto it = std::next(receiving.begin(),
                            in.ConsumeIntegralInRange<size_t>(0, receiving.size() - 1));
        const uint64_t stream = it->first;
        if (!exchange.Room(stream)) break;  // the driver reads no further
        wire::ToReceiver message;
        const core::RegionId origin = AnyOrigin();
        message.mutable_batch()->set_origin(origin);
        bool decode = false;
        Ready ready = exchange.Received(stream, message, heads, now, &decode);
        Carry(std::move(ready));
        if (!decode || !receiving.contains(stream)) break;
        core::RemoteBatch batch;
        uint64_t seq = in.ConsumeIntegralInRange<uint64_t>(1, 8) + heads.Get(origin) -
                       std::min<uint64_t>(heads.Get(origin), 4);
        const int events = in.ConsumeIntegralInRange<int>(0, 4);
        for (int i = 0; i < events; ++i) {
          // Mostly the batch's origin; sometimes another (which must end the stream).
          const core::RegionId of =
              in.ConsumeIntegralInRange<int>(0, 15) == 0 ? AnyOrigin() : origin;
          if (in.ConsumeIntegralInRange<int>(0, 5) == 0) {
            core::ParkedEvent parked;
            parked.dot = {of, seq++};
            parked.hlc = Hlc();
            parked.reason = "does not decode";
            batch.parked.push_back(parked);
          } else {
            core::Event event;
            event.dot = {of, seq++};
            event.hlc = Hlc();
            event.key = "k";
            event.op.fields.push_back(
                {"f", std::string(in.ConsumeIntegralInRange<size_t>(0, 3000), 'x')});
            batch.events.push_back(std::move(event));
          }
        }
        Result<core::RemoteBatch> decoded =
            in.ConsumeIntegralInRange<int>(0, 15) == 0
                ? Result<core::RemoteBatch>(Corruption("fuzzed framing"))
                : Result<core::RemoteBatch>(std::move(batch));
        const uint64_t wall = Wall();
        Ready decoded_ready = exchange.Decoded(stream, origin, &decoded, wall);
        if (decoded_ready.submit) {
          MERIDIAN_CHECK(decoded.ok());
          for (const core::Event& event : decoded->events) {
            MERIDIAN_CHECK(event.dot.origin == origin);
            MERIDIAN_CHECK(core::HlcPhysicalMs(event.hlc) <= wall + kAheadMaxMs);
          }
          for (const core::ParkedEvent& parked : decoded->parked) {
            MERIDIAN_CHECK(parked.dot.origin == origin);
            MERIDIAN_CHECK(core::HlcPhysicalMs(parked.hlc) <= wall + kAheadMaxMs);
          }
          Receiving& r = receiving.at(stream);
          r.queued.push_back(std::move(decoded).value());
          r.queued_origins.push_back(origin);
          MERIDIAN_CHECK(r.queued.size() <= kQueueMax);
        }
        Carry(std::move(decoded_ready));
        break;
      }
      case 11: {  // the commit path applies a stream's oldest batch
        if (receiving.empty()) break;
        auto it = std::next(receiving.begin(),
                            in.ConsumeIntegralInRange<size_t>(0, receiving.size() - 1));
        Receiving& r = it->second;
        if (r.queued.empty()) break;
        const core::RemoteBatch batch = std::move(r.queued.front());
        const core::RegionId origin = r.queued_origins.front();
        r.queued.pop_front();
        r.queued_origins.pop_front();
        replication::Inbound::Applied applied;
        std::vector<core::Dot> dots;
        for (const core::Event& event : batch.events) dots.push_back(event.dot);
        for (const core::ParkedEvent& parked : batch.parked) dots.push_back(parked.dot);
        std::sort(dots.begin(), dots.end());
        for (const core::Dot& dot : dots) {
          if (dot.seq <= heads.Get(dot.origin)) {
            ++applied.duplicates;
          } else if (dot.seq == heads.Get(dot.origin) + 1) {
            heads.Set(dot.origin, dot.seq);
          } else {
            ++applied.gaps;
          }
        }
        applied.ok = in.ConsumeIntegralInRange<int>(0, 31) != 0;
        applied.last = r.queued.empty() || in.ConsumeBool();
        Carry(exchange.BatchApplied(it->first, origin, applied, applied.ok ? "" : "disk full",
                                    heads, now));
        break;
      }
      case 12: {  // a receiving stream ends
        if (receiving.empty()) break;
        auto it = std::next(receiving.begin(),
                            in.ConsumeIntegralInRange<size_t>(0, receiving.size() - 1));
        ending.push_back({it->first, in.ConsumeBool() ? "refused: fuzz" : "the stream closed"});
        Carry(Ready());
        break;
      }
      case 13: {  // time passes
        now += in.ConsumeIntegralInRange<uint64_t>(0, 3'000);
        Ready ready = exchange.Tick(heads, now);
        if (ready.reseed) (void)0;  // the harness does not re-seed: Reseeded at once
        const bool reseed = ready.reseed;
        Carry(std::move(ready));
        if (reseed) Carry(exchange.Reseeded(heads, false));
        break;
      }
      case 14: {  // a snapshot request
        wire::SnapshotRequest request;
        const core::RegionId peer =
            in.ConsumeIntegralInRange<int>(0, 7) == 0 ? AnyOrigin() : Peer();
        request.set_region_id(peer);
        request.set_region_name(kNames.contains(peer) ? kNames.at(peer) : "nowhere");
        request.set_deployment("fuzz");
        request.set_incarnation(Incarnation());
        Ready ready;
        (void)exchange.SnapshotRequested(request, std::nullopt, &ready);
        Carry(std::move(ready));
        break;
      }
      case 15: {  // a verification request
        wire::VerifyRequest request;
        exchange.Identify(&request);
        const core::RegionId peer = Peer();
        request.set_region_id(peer);
        request.set_region_name(kNames.at(peer));
        request.set_incarnation(Incarnation());
        const size_t keys = in.ConsumeIntegralInRange<size_t>(0, replication::kVerifyKeysMax + 2);
        for (size_t i = 0; i < keys; ++i) request.add_keys("k");
        const bool refused = exchange.VerifyRequested(request, std::nullopt).has_value();
        if (keys > replication::kVerifyKeysMax) MERIDIAN_CHECK(refused);
        break;
      }
    }
  }

  FuzzedDataProvider& in;
  const bool trace = std::getenv("EXCHANGE_FUZZ_TRACE") != nullptr;
  Exchange exchange;
  uint64_t now = 0;
  core::VersionVector heads;
  std::map<uint64_t, Receiving> receiving;
  std::map<uint64_t, Serving> serving;
  std::map<core::RegionId, uint64_t> credible_self;
  std::set<uint64_t> fenced;
  std::deque<std::pair<uint64_t, std::string>> ending;
  uint64_t next_serving = 1'000'000;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  Harness harness(&in);
  harness.Carry(harness.exchange.Start({}, in.ConsumeBool()));
  for (int step = 0; step < 400 && in.remaining_bytes() > 0; ++step) {
    harness.Step();
    harness.CheckInvariants();
  }
  return 0;
}
