#include "replication/transport.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "core/thread_name.h"
#include "meridian/event.pb.h"
#include "meridian/replication.grpc.pb.h"
#include "replication/batch_codec.h"
#include "replication/inbound.h"
#include "replication/outbound.h"
#include "replication/snapshot_codec.h"

namespace meridian::replication {
namespace {

constexpr uint32_t kProtocolVersion = 1;
constexpr int kMessageBytesMax = 64 << 20;
constexpr uint64_t kRetentionIntervalMs = 1000;
// Batches of one stream queued for the commit thread at once.
constexpr size_t kApplyQueueMax = 16;
constexpr int kKeepaliveMs = 5000;
// HTTP/2 flow-control window to start from: a WAN round trip of batches may be in flight without
// waiting. (BDP probing, gRPC's default, must stay on: it is what grows the window past 64 KiB;
// without it a 100 ms round trip caps a stream at about 1.4 MB/s.)
constexpr int kLookaheadBytes = 16 << 20;
constexpr core::Limits kRemoteLimits{.key_bytes_max = 64 * 1024,
                                     .field_name_bytes_max = 64 * 1024,
                                     .value_bytes_max = 256 << 20,
                                     .document_bytes_max = 256 << 20,
                                     .fields_max = 1'000'000};
constexpr size_t kRetentionPage = 10'000;
// Re-seeding: pages of a snapshot, how long an unused snapshot is kept for a resume, and how many
// at once.
constexpr size_t kSnapshotPageBytes = 1 << 20;
constexpr size_t kSnapshotPageDocuments = 8192;
constexpr uint64_t kSnapshotKeepMs = 10 * 60 * 1000;
constexpr size_t kSnapshotsMax = 4;

uint64_t SteadyMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint64_t WallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Result<core::VersionVector> DecodeFrontier(const std::string& bytes) {
  return core::VersionVector::Decode(bytes);
}

// The gRPC settings both ends of a stream share: message size, the HTTP/2 window to start from,
// and keepalive pings, which find a peer that vanished without closing (a half-open connection
// would otherwise hold a handler blocked in a write, or a reader, until shutdown).
void ForEachStreamArgument(const std::function<void(const char*, int)>& set) {
  set(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, kMessageBytesMax);
  set(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, kMessageBytesMax);
  set(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kLookaheadBytes);
  set(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveMs);
  set(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveMs);
}

SenderOptions SenderOptionsOf(const node::NodeConfig& config) {
  SenderOptions options;
  options.linger_ms = config.replication.linger_ms;
  options.batch_events_max = config.replication.batch_events_max;
  options.batch_bytes_max = config.replication.batch_bytes_max;
  options.window_batches = config.replication.window_batches;
  options.heartbeat_ms = config.replication.heartbeat_ms;
  return options;
}

LinkOptions LinkOptionsOf(const node::NodeConfig& config) {
  LinkOptions options;
  options.relay_after_ms = config.replication.relay_after_ms;
  options.backoff_initial_ms = config.replication.backoff_initial_ms;
  options.backoff_max_ms = config.replication.backoff_max_ms;
  options.silence_timeout_ms = config.replication.silence_timeout_ms;
  options.dial_timeout_ms = config.replication.dial_timeout_ms;
  options.hedge_after_ms = config.replication.hedge_after_ms;
  return options;
}

std::string OriginNames(const node::ReplicationBoard& board,
                        const std::vector<core::RegionId>& origins) {
  std::string names;
  for (core::RegionId origin : origins) names += (names.empty() ? "" : ",") + board.NameOf(origin);
  return names;
}

}  // namespace

class Replicator::Impl final : public wire::Replication::Service {
 public:
  explicit Impl(node::Node* node)
      : node_(node),
        config_(node->config()),
        board_(node->replication()),
        inbound_(board_.peers(), LinkOptionsOf(config_), SteadyMs()) {}

  ~Impl() override { Stop(); }

  Status Start() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(config_.self().replication, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    ForEachStreamArgument(
        [&](const char* name, int value) { builder.AddChannelArgument(name, value); });
    // Clients may ping: that is how a half-open connection is found from their side.
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 500);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    // One process per replication address: without this gRPC sets SO_REUSEPORT and a second
    // node claiming the region could bind it too and take half of its peers' streams.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      return Status(StatusCode::kUnavailable, "cannot listen for replication on " +
                                                  config_.self().replication +
                                                  " (in use or not a local address?)");
    }
    spdlog::info("replication listening on {}", config_.self().replication);
    {
      std::lock_guard lock(mutex_);
      const core::RegionId self = config_.self().id;
      inbound_.FollowOwnOrigin(self, node_->confirm_own_events(),
                               node_->region().frontier().Get(self));
      SyncRebuild();
      if (node_->needs_reseed()) {
        // The live streams start once the snapshot is in (RunReseed).
        node_->set_reseeding(true);
        threads_.emplace_back([this] {
          core::NameThisThread("repl-reseed");
          RunReseed();
        });
      } else {
        for (core::RegionId peer : board_.peers()) SpawnLink(peer, /*hedge=*/false);
      }
    }
    threads_.emplace_back([this] {
      core::NameThisThread("repl-ticker");
      RunTicker();
    });
    return Status::Ok();
  }

  void Stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopped_ = stopping_ = true;
      for (auto& [stream, context] : contexts_) context->TryCancel();
      if (reseed_context_ != nullptr) reseed_context_->TryCancel();
    }
    wake_.notify_all();
    node_->commits().Notify();  // wakes serving streams
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
    // The ticker is gone: no new link thread starts.
    std::list<LinkThread> links;
    {
      std::lock_guard lock(mutex_);
      links.swap(link_threads_);
    }
    for (LinkThread& link : links) link.thread.join();
  }

  uint16_t port() const { return static_cast<uint16_t>(port_); }

  // --- serving one subscriber ------------------------------------------------------------------
  grpc::Status Stream(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<wire::ToReceiver, wire::ToSender>* stream) override {
    wire::ToSender first;
    if (!stream->Read(&first) || !first.has_subscribe()) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "a stream starts with a Subscribe"};
    }
    const wire::Subscribe& subscribe = first.subscribe();
    if (subscribe.protocol_version() != kProtocolVersion) {
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "protocol version " + std::to_string(subscribe.protocol_version()) +
                  " is not supported (this region speaks " + std::to_string(kProtocolVersion) +
                  ")"};
    }
    const core::RegionId peer = subscribe.region_id();
    const std::vector<core::RegionId> peers = board_.peers();
    if (std::find(peers.begin(), peers.end(), peer) == peers.end()) {
      return {grpc::StatusCode::PERMISSION_DENIED,
              "region id " + std::to_string(peer) + " is not a peer of this region"};
    }
    if (std::optional<std::string> refusal = CheckSubscriber(subscribe)) {
      spdlog::error("replication: refused a subscription from {}: {}", board_.NameOf(peer),
                    *refusal);
      board_.Refused(peer, *refusal);
      return {grpc::StatusCode::FAILED_PRECONDITION, "refused: " + *refusal};
    }
    if (std::optional<std::string> refusal =
            board_.SubscriberAttached(peer, subscribe.incarnation())) {
      spdlog::error("replication: refused a subscription from {}: {}", board_.NameOf(peer),
                    *refusal);
      return {grpc::StatusCode::ALREADY_EXISTS, "refused: " + *refusal};
    }
    board_.Accepted(peer);
    FenceEarlierIncarnations(peer, subscribe.incarnation());
    // Detached on every return from here on.
    struct Detach {
      node::ReplicationBoard& board;
      core::RegionId peer;
      ~Detach() { board.SubscriberDetached(peer); }
    } detach{board_, peer};

    struct Shared {
      explicit Shared(SenderOptions options) : outbound(options) {}
      std::mutex mutex;
      std::condition_variable wake;
      Outbound outbound;
      bool done = false;
      // While the writer sleeps: when it will wake by itself (a linger or the heartbeat).
      std::optional<uint64_t> asleep_until_ms;
    } shared(SenderOptionsOf(config_));
    const auto apply_subscribe = [&](const wire::Subscribe& message) -> bool {
      auto frontier = DecodeFrontier(message.frontier());
      if (!frontier.ok()) return false;
      // The subscriber's own id among them only while it rebuilds (docs/replication.md#rebuilding).
      std::vector<core::RegionId> origins(message.origins().begin(), message.origins().end());
      std::lock_guard lock(shared.mutex);
      shared.outbound.Subscribe(*frontier, origins);
      shared.wake.notify_one();  // the heartbeat and the new origins are due at once
      spdlog::info("replication: {} subscribed to {} from {}", board_.NameOf(peer),
                   OriginNames(board_, origins), frontier->ToString());
      return true;
    };
    if (!apply_subscribe(subscribe)) {
      return {grpc::StatusCode::INVALID_ARGUMENT, "malformed frontier in Subscribe"};
    }
    if (auto frontier = DecodeFrontier(subscribe.frontier()); frontier.ok()) {
      board_.Acked(peer, *frontier);  // it holds everything it subscribed after
    }
    // Under the lock: a commit between the writer's look at the frontier and its wait must not be
    // lost (it would sleep until the next heartbeat).
    // A commit wakes the writer only when it changes what the writer would do: a batch due now,
    // or a linger ending before the writer's own wake-up. A busy stream that lingers is not woken
    // by every commit of the region (each a context switch) only to sleep again.
    auto handle = node_->commits().Register([&shared, this] {
      std::lock_guard lock(shared.mutex);
      if (!shared.asleep_until_ms) return;  // awake: it reads the frontier before sleeping again
      const core::VersionVector heads = node_->region().frontier();
      const uint64_t now = SteadyMs();
      if (stopping_ || shared.outbound.Ready(heads, now) ||
          shared.outbound.WakeAtMs(heads, now) < *shared.asleep_until_ms) {
        shared.wake.notify_one();
      }
    });

    std::thread reader([&] {
      core::NameThisThread("repl-acks");
      wire::ToSender message;
      while (stream->Read(&message)) {
        if (message.has_subscribe()) {
          if (!apply_subscribe(message.subscribe())) break;
        } else if (message.has_ack()) {
          auto applied = DecodeFrontier(message.ack().frontier());
          if (!applied.ok()) break;
          {
            std::lock_guard lock(shared.mutex);
            shared.outbound.Ack(*applied);
            // The window may have opened, or nothing is in flight any more: waiting events are
            // then due at once, without a linger.
            shared.wake.notify_one();
          }
          board_.Acked(peer, *applied);
          node_->commits().Notify();  // durability waits
        }
      }
      std::lock_guard lock(shared.mutex);
      shared.done = true;
      shared.wake.notify_one();
    });

    std::vector<std::string> encoded;
    // One zstd stream for the whole subscription when the subscriber reads it.
    std::optional<BatchStreamEncoder> encoder;
    if (subscribe.streamed_batches()) encoder.emplace();
    for (;;) {
      std::optional<Outbound::Read> read;
      bool heartbeat = false;
      core::VersionVector heads;
      {
        std::unique_lock lock(shared.mutex);
        for (;;) {
          if (shared.done || stopping_ || context->IsCancelled()) break;
          heads = node_->region().frontier();
          const uint64_t now = SteadyMs();
          read = shared.outbound.Next(heads, now);
          heartbeat = shared.outbound.HeartbeatDue(now);
          if (read || heartbeat) break;
          const uint64_t wake_at = std::max(now + 1, shared.outbound.WakeAtMs(heads, now));
          shared.asleep_until_ms = wake_at;
          shared.wake.wait_for(lock, std::chrono::milliseconds(wake_at - now));
          shared.asleep_until_ms.reset();
        }
        if (!read && !heartbeat) break;
      }
      if (read && !SendBatch(peer, *read, stream, shared.mutex, shared.outbound,
                             encoder ? &*encoder : nullptr, &encoded)) {
        break;
      }
      if (heartbeat) {
        wire::ToReceiver message;
        wire::Heartbeat* beat = message.mutable_heartbeat();
        beat->set_frontier(heads.Encode());
        beat->set_hlc(node_->region().hlc());
        beat->set_deployment(config_.deployment);
        beat->set_region_id(config_.self().id);
        beat->set_region_name(config_.region);
        beat->set_incarnation(node_->identity().incarnation);
        for (const node::OriginHead& head : board_.Heads(heads)) {
          wire::OriginHead* out = beat->add_heads();
          out->set_origin(head.origin);
          out->set_seq(head.seq);
          out->set_hlc(head.hlc);
        }
        if (!stream->Write(message)) break;
        std::lock_guard lock(shared.mutex);
        shared.outbound.HeartbeatSent(SteadyMs());
      }
    }
    context->TryCancel();
    reader.join();
    node_->commits().Unregister(handle);
    spdlog::info("replication: {}'s subscription ended", board_.NameOf(peer));
    return grpc::Status::OK;
  }

  // --- serving a re-seed (docs/replication.md#re-seeding) ---------------------------------------
  grpc::Status Snapshot(grpc::ServerContext* context, const wire::SnapshotRequest* request,
                        grpc::ServerWriter<wire::SnapshotChunk>* writer) override {
    const core::RegionId peer = request->region_id();
    const std::vector<core::RegionId> peers = board_.peers();
    if (std::find(peers.begin(), peers.end(), peer) == peers.end()) {
      return {grpc::StatusCode::PERMISSION_DENIED,
              "region id " + std::to_string(peer) + " is not a peer of this region"};
    }
    if (std::optional<std::string> refusal = CheckSubscriber(*request)) {
      spdlog::error("replication: refused a re-seed of {}: {}", board_.NameOf(peer), *refusal);
      return {grpc::StatusCode::FAILED_PRECONDITION, "refused: " + *refusal};
    }
    if (node_->reseeding()) {
      return {grpc::StatusCode::UNAVAILABLE,
              "this region is itself being re-seeded; ask another region"};
    }
    // The region starts over: what its earlier incarnation acknowledged no longer holds the log
    // back, nor counts (and nothing it now needs is trimmed meanwhile).
    board_.ForgetAcknowledgements(peer, request->incarnation());
    std::shared_ptr<SnapshotLease> lease;
    {
      std::lock_guard lock(snapshots_mutex_);
      const uint64_t now = SteadyMs();
      std::erase_if(snapshots_, [now](const auto& entry) {
        return entry.second.use_count() == 1 && now > entry.second->used_ms + kSnapshotKeepMs;
      });
      if (auto it = snapshots_.find(request->snapshot_id());
          request->snapshot_id() != 0 && it != snapshots_.end() && it->second->peer == peer &&
          it->second.use_count() == 1) {
        lease = it->second;
      } else {
        if (snapshots_.size() >= kSnapshotsMax) {
          return {grpc::StatusCode::RESOURCE_EXHAUSTED, "too many re-seeds at once; retry later"};
        }
        auto taken = node_->store().TakeSnapshot();
        if (!taken.ok()) {
          return {grpc::StatusCode::UNAVAILABLE, "snapshot: " + taken.status().message()};
        }
        lease = std::make_shared<SnapshotLease>();
        lease->snapshot = std::move(taken).value();
        lease->peer = peer;
        lease->id = next_snapshot_id_++;
        snapshots_[lease->id] = lease;
        spdlog::info("replication: re-seeding {} from a snapshot at {} ({} documents)",
                     board_.NameOf(peer), lease->snapshot->frontier().ToString(),
                     lease->snapshot->documents());
      }
      lease->used_ms = now;
    }
    std::string after = lease->id == request->snapshot_id() ? request->after_key() : std::string();
    // Fault injection for tests (docs/testing.md): end each call after this many pages, as a
    // broken connection would, so that the region must resume.
    static const uint64_t pages_per_call = [] {
      const char* value = std::getenv("MERIDIAN_FAULT_SNAPSHOT_PAGES_PER_CALL");
      return value != nullptr ? std::strtoull(value, nullptr, 10) : 0;
    }();
    uint64_t pages = 0;
    const std::string frontier = lease->snapshot->frontier().Encode();
    StatePage page;
    for (;;) {
      if (context->IsCancelled() || stopping_) return {grpc::StatusCode::CANCELLED, "stopping"};
      page.clear();
      size_t bytes = 0;
      bool more = true;
      while (more && bytes < kSnapshotPageBytes && page.size() < kSnapshotPageDocuments) {
        // As many as should fit, by the page's average so far (one to start: documents may be
        // large), so that a page stays near its byte bound.
        size_t limit = 1;
        if (!page.empty()) {
          const size_t average = std::max<size_t>(1, bytes / page.size());
          limit = std::clamp<size_t>((kSnapshotPageBytes - bytes) / average + 1, 1,
                                     kSnapshotPageDocuments - page.size());
          limit = std::min<size_t>(limit, 1024);
        }
        auto scanned = lease->snapshot->ScanDocumentStates(
            page.empty() ? after : page.back().first, limit,
            [&](std::string_view key, std::string_view state) {
              bytes += key.size() + state.size();
              page.emplace_back(std::string(key), std::string(state));
            });
        if (!scanned.ok()) {
          return {grpc::StatusCode::UNAVAILABLE, "snapshot: " + scanned.status().message()};
        }
        more = *scanned;
      }
      wire::SnapshotChunk chunk;
      chunk.set_snapshot_id(lease->id);
      chunk.set_frontier(frontier);
      chunk.set_documents(lease->snapshot->documents());
      if (!page.empty()) {
        EncodedPage encoded = EncodeStatePage(page);
        chunk.set_states(std::move(encoded.bytes));
        chunk.set_raw_bytes(encoded.raw_bytes);
        chunk.set_count(static_cast<uint32_t>(page.size()));
        chunk.set_last_key(page.back().first);
        after = page.back().first;
      }
      chunk.set_done(!more);
      if (!writer->Write(chunk)) return {grpc::StatusCode::CANCELLED, "the re-seeding region left"};
      if (more && pages_per_call != 0 && ++pages == pages_per_call) {
        return {grpc::StatusCode::UNAVAILABLE, "fault injection: the call ends here"};
      }
      {
        std::lock_guard lock(snapshots_mutex_);
        lease->used_ms = SteadyMs();
      }
      if (!more) break;
    }
    std::lock_guard lock(snapshots_mutex_);
    snapshots_.erase(lease->id);
    spdlog::info("replication: re-seeded {}", board_.NameOf(peer));
    return grpc::Status::OK;
  }

 private:
  struct SnapshotLease {
    std::unique_ptr<storage::StoreSnapshot> snapshot;
    core::RegionId peer = 0;
    uint64_t id = 0;
    uint64_t used_ms = 0;
  };

  // Reads the batch from the log, sends it; false when the stream is gone.
  bool SendBatch(core::RegionId peer, const Outbound::Read& read,
                 grpc::ServerReaderWriter<wire::ToReceiver, wire::ToSender>* stream,
                 std::mutex& mutex, Outbound& outbound, BatchStreamEncoder* encoder,
                 std::vector<std::string>* encoded) {
    encoded->clear();
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;
    size_t bytes = 0;
    const Status status = node_->store().ReadLogWhile(
        read.origin, read.from_seq, read.limit, [&](const storage::LoggedEvent& event) {
          if (!encoded->empty() && event.dot.seq != last_seq + 1) return false;  // never skip
          if (encoded->empty()) first_seq = event.dot.seq;
          last_seq = event.dot.seq;
          bytes += event.bytes.size();
          encoded->push_back(event.bytes);
          return bytes < read.bytes_max;  // full: read no further
        });
    if (!status.ok()) {
      spdlog::error("replication: reading the log for {}: {}", board_.NameOf(peer),
                    status.message());
      return false;
    }
    if (encoded->empty() || first_seq != read.from_seq) {
      // The log does not hold what the subscriber needs next: retention trimmed it.
      wire::ToReceiver message;
      wire::BehindRetention* behind = message.mutable_behind_retention();
      behind->set_origin(read.origin);
      behind->set_wanted_seq(read.from_seq);
      behind->set_oldest_seq(encoded->empty() ? 0 : first_seq);
      board_.SubscriberBehindRetention(peer, read.origin, read.from_seq, behind->oldest_seq());
      spdlog::error("replication: {} is behind this region's log retention for {}",
                    board_.NameOf(peer), board_.NameOf(read.origin));
      {
        std::lock_guard lock(mutex);
        outbound.Abandon(read.origin);
      }
      return stream->Write(message);
    }
    const EncodedBatch batch =
        encoder != nullptr ? encoder->Encode(*encoded) : EncodeBatchOfEncoded(*encoded);
    wire::ToReceiver message;
    wire::Batch* out = message.mutable_batch();
    out->set_origin(read.origin);
    out->set_first_seq(first_seq);
    out->set_last_seq(last_seq);
    out->set_events(batch.bytes);
    out->set_raw_bytes(batch.raw_bytes);
    {
      // Counted as in flight before it leaves, so an acknowledgement cannot overtake it.
      std::lock_guard lock(mutex);
      outbound.Sent(read.origin, last_seq, batch.raw_bytes);
    }
    if (!stream->Write(message)) return false;
    board_.BatchSent(peer, encoded->size(), batch.bytes.size(), batch.raw_bytes);
    return true;
  }

  // Why a subscriber is refused, if it is: another deployment, or a name that is not the one this
  // region knows for its id (two deployments' configs mixed up).
  template <typename Message>  // wire::Subscribe, wire::SnapshotRequest
  std::optional<std::string> CheckSubscriber(const Message& subscribe) const {
    if (subscribe.deployment() != config_.deployment) {
      return "the subscriber is of deployment '" + subscribe.deployment() + "', this region (" +
             config_.region + ") of '" + config_.deployment + "'";
    }
    const std::string& known = board_.NameOf(subscribe.region_id());
    if (subscribe.region_name() != known) {
      return "the subscriber calls itself '" + subscribe.region_name() + "' with region id " +
             std::to_string(subscribe.region_id()) + ", which this region knows as '" + known + "'";
    }
    if (subscribe.incarnation() == 0) return std::string("the subscriber sent no incarnation");
    return std::nullopt;
  }

  // Why a sender's heartbeat shows it is not the region dialled, if it is not.
  std::optional<std::string> CheckSender(core::RegionId peer, const wire::Heartbeat& beat) const {
    if (beat.deployment() != config_.deployment) {
      return "the region at " + AddressOf(peer) + " is of deployment '" + beat.deployment() +
             "', this region of '" + config_.deployment + "'";
    }
    if (beat.region_id() != peer || beat.region_name() != board_.NameOf(peer)) {
      return "the region at " + AddressOf(peer) + " is '" + beat.region_name() + "' (id " +
             std::to_string(beat.region_id()) + "), not '" + board_.NameOf(peer) + "' (id " +
             std::to_string(peer) + ")";
    }
    return std::nullopt;
  }

  // Brings the region's write gate and the board up to date with Inbound's rebuild.
  // mutex_ held.
  void SyncRebuild() {
    // Called after every heartbeat and applied batch: nothing to do unless the view moved.
    Inbound::Rebuild rebuild = inbound_.Rebuilding();
    if (published_rebuild_ == rebuild) return;
    published_rebuild_ = rebuild;
    const bool was = node_->region().rebuilding();
    if (rebuild.rebuilding != was) {
      if (rebuild.rebuilding) {
        spdlog::warn(
            "replication: rebuilding: {} holds {}'s events up to {}, this region up to "
            "{}; writes wait until they are back",
            rebuild.ahead ? board_.NameOf(*rebuild.ahead) : "a peer", config_.region,
            rebuild.target, rebuild.applied);
      } else {
        spdlog::info(
            "replication: rebuilt: every peer has told what it holds of {} (up to {}), "
            "and this region has it all; writes resume",
            config_.region, rebuild.target);
        node_->MarkRebuilt();
      }
      node_->region().SetRebuilding(rebuild.rebuilding);
    }
    nlohmann::json waiting = nlohmann::json::array();
    for (core::RegionId peer : rebuild.waiting) waiting.push_back(board_.NameOf(peer));
    nlohmann::json heard = nlohmann::json::array();
    for (core::RegionId peer : rebuild.heard) heard.push_back(board_.NameOf(peer));
    nlohmann::json status = {
        {"rebuilding", rebuild.rebuilding},
        {"data_start", std::string(node::DataStartName(node_->data_start()))},
        {"own_applied", rebuild.applied},
        {"own_target", rebuild.target},
        {"waiting_for", waiting},
        {"heard_from", heard},
        {"source",
         rebuild.ahead ? nlohmann::json(board_.NameOf(*rebuild.ahead)) : nlohmann::json()}};
    std::string problem;
    if (rebuild.rebuilding) {
      problem = rebuild.confirming ? "rebuilding: waiting to hear from " + waiting.dump() +
                                         " what they hold of this region's own events"
                                   : "rebuilding: getting this region's own events back (" +
                                         std::to_string(rebuild.applied) + " of " +
                                         std::to_string(rebuild.target) + ")";
    }
    board_.SetRebuild(std::move(status), std::move(problem));
  }

  // --- re-seeding this region (docs/replication.md#re-seeding) ----------------------------------
  struct Reseed {
    uint64_t snapshot_id = 0;
    std::string after;  // the last key installed
    core::VersionVector frontier;
    core::RegionId source = 0;
    uint64_t documents = 0;  // in the snapshot
    uint64_t installed = 0;
    uint64_t bytes = 0;  // received, compressed
    uint64_t started_ms = 0;
    uint64_t resumes = 0;  // calls that went on with the same snapshot
    std::string last_error;
  };

  void PublishReseed(const Reseed& reseed, const char* state) {
    nlohmann::json status = {
        {"state", state},
        {"source", reseed.source ? nlohmann::json(board_.NameOf(reseed.source)) : nlohmann::json()},
        {"documents", reseed.documents},
        {"installed", reseed.installed},
        {"wire_bytes", reseed.bytes},
        {"elapsed_ms", SteadyMs() - reseed.started_ms},
        {"frontier", reseed.frontier.ToString()},
        {"resumes", reseed.resumes}};
    if (!reseed.last_error.empty()) status["last_error"] = reseed.last_error;
    const bool running = std::string_view(state) == "running";
    board_.SetReseed(std::move(status),
                     running ? "rebuilding: re-seeding from " +
                                   (reseed.source ? board_.NameOf(reseed.source) : "a peer") +
                                   " (" + std::to_string(reseed.installed) + " of " +
                                   std::to_string(reseed.documents) + " documents)"
                             : std::string());
  }

  // One attempt to re-seed from `peer`, resuming `reseed` when the peer still has its snapshot.
  // Returns why it failed, empty when the snapshot is installed.
  std::string ReseedFrom(core::RegionId peer, Reseed* reseed) {
    grpc::ChannelArguments arguments;
    ForEachStreamArgument([&](const char* name, int value) { arguments.SetInt(name, value); });
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel =
        grpc::CreateCustomChannel(AddressOf(peer), grpc::InsecureChannelCredentials(), arguments);
    auto stub = wire::Replication::NewStub(channel);
    grpc::ClientContext context;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return "stopping";
      reseed_context_ = &context;
    }
    struct Forget {
      Impl* impl;
      ~Forget() {
        std::lock_guard lock(impl->mutex_);
        impl->reseed_context_ = nullptr;
      }
    } forget{this};
    wire::SnapshotRequest request;
    request.set_deployment(config_.deployment);
    request.set_region_id(config_.self().id);
    request.set_region_name(config_.region);
    request.set_incarnation(node_->identity().incarnation);
    bool resuming = reseed->source == peer;
    if (resuming) {
      request.set_snapshot_id(reseed->snapshot_id);
      request.set_after_key(reseed->after);
    }
    auto reader = stub->Snapshot(&context, request);
    // Every way out finishes the call (cancelled first when it is still going).
    const auto end = [&](std::string why) {
      context.TryCancel();
      (void)reader->Finish();
      return why;
    };
    node::Region& region = node_->region();
    wire::SnapshotChunk chunk;
    while (reader->Read(&chunk)) {
      if (chunk.snapshot_id() != reseed->snapshot_id || reseed->source != peer) {
        // A new snapshot: whatever an earlier one installed goes first.
        auto frontier = core::VersionVector::Decode(chunk.frontier());
        if (!frontier.ok()) return end("bad snapshot frontier");
        if (Status cleared = node_->RunOnCommitThread([&] { return region.ClearDocuments(); });
            !cleared.ok()) {
          return end("clearing the documents: " + cleared.message());
        }
        reseed->snapshot_id = chunk.snapshot_id();
        reseed->source = peer;
        reseed->after.clear();
        reseed->installed = 0;
        reseed->frontier = std::move(frontier).value();
        spdlog::info("replication: re-seeding from {}'s snapshot at {} ({} documents)",
                     board_.NameOf(peer), reseed->frontier.ToString(), chunk.documents());
      } else if (resuming) {
        resuming = false;
        ++reseed->resumes;
      }
      reseed->documents = chunk.documents();
      reseed->bytes += chunk.states().size();
      StatePage page;
      if (!chunk.states().empty()) {
        auto decoded = DecodeStatePage(chunk.states(), reseed->after);
        if (!decoded.ok()) return end(decoded.status().message());
        page = std::move(decoded).value();
      }
      // The last page also brings the snapshot's frontier: every document installed holds
      // every event it covers.
      const core::VersionVector* frontier = chunk.done() ? &reseed->frontier : nullptr;
      if (Status installed =
              node_->RunOnCommitThread([&] { return region.InstallStates(page, frontier); });
          !installed.ok()) {
        return end("installing: " + installed.message());
      }
      if (!page.empty()) reseed->after = page.back().first;
      reseed->installed += page.size();
      PublishReseed(*reseed, "running");
      if (chunk.done()) {
        (void)reader->Finish();  // the peer ends the call right after its last chunk
        return {};
      }
    }
    const grpc::Status finished = reader->Finish();
    return finished.ok() ? "the snapshot ended early" : finished.error_message();
  }

  // Re-seeds this empty region from a peer's snapshot (the first that serves one; a broken
  // transfer resumes on the same snapshot), then starts the live streams from its frontier.
  void RunReseed() {
    Reseed reseed;
    reseed.started_ms = SteadyMs();
    PublishReseed(reseed, "running");
    const std::vector<core::RegionId> peers = board_.peers();
    std::mt19937_64 random(std::random_device{}());
    size_t next = random() % peers.size();
    int failures = 0;
    for (;;) {
      if (stopping_) return;
      const core::RegionId peer =
          reseed.source != 0 && failures % 3 != 2 ? reseed.source : peers[next++ % peers.size()];
      const uint64_t installed = reseed.installed;
      const uint64_t resumes = reseed.resumes;
      const std::string why = ReseedFrom(peer, &reseed);
      if (why.empty()) break;
      // Another peer (and so a new snapshot) only after failures that made no progress.
      const bool progressed = reseed.installed > installed || reseed.resumes > resumes;
      failures = progressed ? 1 : failures + 1;
      reseed.last_error = board_.NameOf(peer) + ": " + why;
      spdlog::warn("replication: re-seeding from {}: {}", board_.NameOf(peer), why);
      PublishReseed(reseed, "running");
      if (!Pause(std::min<uint64_t>(2000, 100u << std::min(failures, 5)))) return;
    }
    spdlog::info(
        "replication: re-seeded {} documents from {} in {} ms; following the live "
        "streams from {}",
        reseed.installed, board_.NameOf(reseed.source), SteadyMs() - reseed.started_ms,
        reseed.frontier.ToString());
    node_->set_reseeding(false);
    PublishReseed(reseed, "done");
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    inbound_.FollowOwnOrigin(config_.self().id, node_->confirm_own_events(),
                             node_->region().frontier().Get(config_.self().id));
    SyncRebuild();
    for (core::RegionId peer : board_.peers()) SpawnLink(peer, /*hedge=*/false);
  }

  // --- subscribing to one peer -----------------------------------------------------------------
  void PublishLinks() {  // mutex_ held
    board_.LinksChanged(inbound_.links().Views(), inbound_.links().relays_active());
  }

  wire::ToSender SubscribeMessage(const std::vector<core::RegionId>& origins) {
    wire::ToSender message;
    wire::Subscribe* subscribe = message.mutable_subscribe();
    subscribe->set_protocol_version(kProtocolVersion);
    subscribe->set_region_id(config_.self().id);
    subscribe->set_frontier(node_->region().frontier().Encode());
    for (core::RegionId origin : origins) subscribe->add_origins(origin);
    subscribe->set_streamed_batches(true);
    subscribe->set_deployment(config_.deployment);
    subscribe->set_region_name(config_.region);
    subscribe->set_incarnation(node_->identity().incarnation);
    return message;
  }

  std::string AddressOf(core::RegionId peer) const {
    for (const node::RegionAddress& address : config_.regions) {
      if (address.id == peer) return address.replication;
    }
    return {};
  }

  // Waits for `ms` unless stopping; false when stopping.
  bool Pause(uint64_t ms) {
    std::unique_lock lock(mutex_);
    return !wake_.wait_for(lock, std::chrono::milliseconds(ms),
                           [this] { return stopping_.load(); });
  }

  // One dial: Inbound's stream and the call's context, registered together under mutex_.
  struct Attempt {
    Inbound::Dial dial;
    std::shared_ptr<grpc::ClientContext> context;
  };
  Attempt BeginDial(core::RegionId peer) {  // mutex_ held
    Attempt attempt{inbound_.Dialing(peer, SteadyMs()), std::make_shared<grpc::ClientContext>()};
    contexts_[attempt.dial.stream] = attempt.context;
    return attempt;
  }

  // Starts a thread that dials the peer now: the peer's first, or a hedge beside a slow stream
  // (replication::Inbound). The dial is registered before this returns, so the next tick counts
  // it. The thread redials after each end until another stream of the peer carries on.
  // mutex_ held.
  void SpawnLink(core::RegionId peer, bool hedge) {
    if (stopping_) return;
    if (hedge) {
      board_.Hedged(peer);
      spdlog::debug("replication: dialling {} beside a slow stream", board_.NameOf(peer));
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    link_threads_.push_back({std::thread([this, peer, attempt = BeginDial(peer), done]() mutable {
                               core::NameThisThread("repl-link");
                               RunLink(peer, std::move(attempt));
                               done->store(true);
                             }),
                             done});
  }

  // Joins the link threads that have finished. mutex_ not held.
  void ReapLinks() {
    std::list<LinkThread> finished;
    {
      std::lock_guard lock(mutex_);
      for (auto it = link_threads_.begin(); it != link_threads_.end();) {
        auto next = std::next(it);
        if (it->done->load()) finished.splice(finished.end(), link_threads_, it);
        it = next;
      }
    }
    for (LinkThread& link : finished) link.thread.join();
  }

  void RunLink(core::RegionId peer, Attempt attempt) {
    std::mt19937_64 random(std::random_device{}() ^ peer);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    grpc::ChannelArguments arguments;
    ForEachStreamArgument([&](const char* name, int value) { arguments.SetInt(name, value); });
    arguments.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // A fresh channel per attempt: our own backoff governs redials, not the channel's, and a
    // hedge does not share the connection of the stream it hedges.
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    for (;;) {
      const std::optional<uint64_t> next = RunAttempt(peer, attempt, arguments, unit(random));
      if (!next) break;  // another stream of the peer is open: its end redials
      if (!Pause(*next)) break;
      std::lock_guard lock(mutex_);
      if (stopping_) break;
      attempt = BeginDial(peer);
    }
  }

  // One dial: reads its stream until it ends. Returns the delay before the next dial, or nullopt
  // when another stream of the peer goes on. The call's objects are gone when it returns, before
  // the attempt's context is replaced.
  std::optional<uint64_t> RunAttempt(core::RegionId peer, const Attempt& attempt,
                                     const grpc::ChannelArguments& arguments, double unit) {
    const std::string& name = board_.NameOf(peer);
    const Inbound::Dial& dial = attempt.dial;
    const std::shared_ptr<grpc::ClientContext>& context = attempt.context;
    auto channel =
        grpc::CreateCustomChannel(AddressOf(peer), grpc::InsecureChannelCredentials(), arguments);
    auto stub = wire::Replication::NewStub(channel);
    auto stream = stub->Stream(context.get());
    bool connected = false;
    std::string why;
    try {
      why = Serve(peer, dial.stream, dial.origins, *stream, context.get(), &connected);
    } catch (const std::exception& error) {  // e.g. memory for a hostile batch: drop the link
      why = std::string("error: ") + error.what();
    }
    stream->WritesDone();
    context->TryCancel();
    const grpc::Status finished = stream->Finish();
    std::optional<uint64_t> next;
    bool replaced = false;
    {
      std::lock_guard lock(mutex_);
      contexts_.erase(dial.stream);
      replaced = inbound_.GaveWay(dial.stream);
      next = inbound_.Ended(dial.stream, SteadyMs(), unit);
      PublishLinks();
    }
    if (connected && !replaced) board_.Reconnecting(peer);
    if (finished.error_message().rfind("refused: ", 0) == 0) {
      // The peer refused this region (another deployment, a name it does not know, or another
      // process of this region subscribed): an operator must look.
      spdlog::error("replication: {} refused this region: {}", name,
                    finished.error_message().substr(9));
      board_.Refused(peer, finished.error_message().substr(9));
      return next;
    }
    if (replaced) {
      spdlog::debug("replication: a stream to {} gave way to one that answered first", name);
    } else if (connected || !finished.ok()) {
      const std::string detail = finished.ok() ? why : why + " (" + finished.error_message() + ")";
      if (connected) {
        spdlog::warn("replication: link to {} lost: {}", name, detail);
      } else {
        spdlog::debug("replication: link to {} not up: {}", name, detail);
      }
    }
    return next;
  }

  // The receiving side of one stream: batches are queued for the commit thread as they arrive
  // (up to kApplyQueueMax at once, so decoding and reading overlap the commit), and an
  // acknowledging thread waits for each in order and tells the sender what is now durable
  // (the rules are replication::Inbound's).
  class PeerStream {
   public:
    PeerStream(Impl* impl, uint64_t id,
               grpc::ClientReaderWriter<wire::ToSender, wire::ToReceiver>& stream,
               grpc::ClientContext* context)
        : impl_(impl), id_(id), stream_(stream), context_(context) {
      acker_ = std::thread([this] {
        core::NameThisThread("repl-acker");
        Acknowledge();
      });
    }
    // The stream is over (Serve returns only then): cancel it so that no write can block, and
    // wait for the queued batches, which the commit thread applies all the same.
    ~PeerStream() {
      context_->TryCancel();
      {
        std::lock_guard lock(mutex_);
        closing_ = true;
      }
      changed_.notify_all();
      acker_.join();
    }

    // Queues a batch; false when the node is stopping.
    bool Submit(core::RegionId origin, std::vector<core::Event> events) {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return pending_.size() < kApplyQueueMax || !error_.empty(); });
      if (!error_.empty()) return true;  // the stream is being cancelled; Read will end
      lock.unlock();
      auto promise = std::make_shared<std::promise<Result<node::RemoteApply>>>();
      std::future<Result<node::RemoteApply>> done = promise->get_future();
      if (!impl_->node_->SubmitRemote(
              std::move(events),
              [promise](Result<node::RemoteApply> outcome) {
                promise->set_value(std::move(outcome));
              },
              dropped_)) {
        return false;
      }
      lock.lock();
      pending_.push_back({origin, std::move(done)});
      changed_.notify_all();
      return true;
    }

    // Writes to the stream (acknowledgements and subscriptions come from two threads).
    bool Write(const wire::ToSender& message) {
      std::lock_guard lock(write_mutex_);
      return stream_.Write(message);
    }
    // Acknowledges `frontier`, everything this region holds durably.
    bool WriteAck(const core::VersionVector& frontier) {
      wire::ToSender ack;
      ack.mutable_ack()->set_frontier(frontier.Encode());
      return Write(ack);
    }
    std::string error() {
      std::lock_guard lock(mutex_);
      return error_;
    }
    // The peer subscribed with a new incarnation: nothing this stream (of an earlier one) has
    // queued may commit any more, and the stream ends.
    void Drop() {
      dropped_->store(true);
      Fail("the peer has a new incarnation; this stream was of an earlier one");
    }

   private:
    struct Pending {
      core::RegionId origin;
      std::future<Result<node::RemoteApply>> done;
    };

    void Fail(std::string why) {
      {
        std::lock_guard lock(mutex_);
        if (error_.empty()) error_ = std::move(why);
      }
      changed_.notify_all();
      context_->TryCancel();
    }

    void Acknowledge() {
      for (;;) {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return closing_ || !pending_.empty(); });
        if (pending_.empty()) return;  // closing, and every queued batch was answered
        Pending next = std::move(pending_.front());
        lock.unlock();
        Result<node::RemoteApply> applied = next.done.get();
        lock.lock();
        pending_.pop_front();
        const bool more =
            !pending_.empty() &&
            pending_.front().done.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
        lock.unlock();
        changed_.notify_all();
        Inbound::Applied outcome;
        outcome.ok = applied.ok();
        if (applied.ok()) {
          outcome.gaps = applied->gaps;
          outcome.duplicates = applied->duplicates;
        }
        outcome.last = !more;  // one acknowledgement covers every batch already applied
        const core::VersionVector frontier = impl_->node_->region().frontier();
        Inbound::AfterApply after;
        {
          std::lock_guard links_lock(impl_->mutex_);
          after = impl_->inbound_.BatchApplied(id_, outcome, frontier, SteadyMs());
          impl_->SyncRebuild();
        }
        if (!applied.ok()) {
          Fail("applying a batch failed: " + applied.status().message());
          continue;
        }
        impl_->board_.Visible(next.origin, applied->applied_hlcs, WallMs());
        if (after.end) {
          // Events arrived ahead of a missing predecessor: resubscribe from our frontier.
          Fail("a gap in " + impl_->board_.NameOf(next.origin) + "'s events; resubscribing");
          continue;
        }
        if (after.ack && !WriteAck(*after.ack)) Fail("the stream closed");
      }
    }

    Impl* const impl_;
    const uint64_t id_;  // Inbound's stream id
    grpc::ClientReaderWriter<wire::ToSender, wire::ToReceiver>& stream_;
    grpc::ClientContext* const context_;
    std::mutex write_mutex_;
    std::mutex mutex_;  // guards the members below
    std::condition_variable changed_;
    std::deque<Pending> pending_;
    std::string error_;
    bool closing_ = false;
    const std::shared_ptr<std::atomic<bool>> dropped_ = std::make_shared<std::atomic<bool>>(false);
    std::thread acker_;
  };

  // The receiving streams (by Inbound id) and the incarnation of the region each was opened to
  // (0 until its first heartbeat named it). mutex_ held.
  struct Receiving {
    core::RegionId peer = 0;
    uint64_t incarnation = 0;
    PeerStream* stream = nullptr;
  };

  // `peer` subscribed with `incarnation`. Its events that streams to an earlier incarnation have
  // queued (the old process's last batches, still in flight when it stopped) must never commit
  // after this region tells the new one what it holds of its origin: they could carry event ids
  // the new incarnation reissues. Those streams are dropped, and this waits until the commit
  // thread can no longer apply anything they queued. Before the first heartbeat.
  void FenceEarlierIncarnations(core::RegionId peer, uint64_t incarnation) {
    size_t dropped = 0;
    {
      std::lock_guard lock(mutex_);
      for (auto& [id, receiving] : receiving_) {
        if (receiving.peer != peer || receiving.incarnation == 0 ||
            receiving.incarnation == incarnation) {
          continue;
        }
        receiving.stream->Drop();
        ++dropped;
      }
    }
    if (dropped == 0) return;
    std::promise<void> passed;
    if (node_->SubmitRemote({}, [&passed](Result<node::RemoteApply>) { passed.set_value(); })) {
      passed.get_future().wait();
    }
    spdlog::warn(
        "replication: {} has a new incarnation; dropped {} stream(s) to its earlier one "
        "and whatever they had not applied",
        board_.NameOf(peer), dropped);
  }

  // Reads the peer's stream until it ends; returns why it ended.
  std::string Serve(core::RegionId peer, uint64_t id, const std::vector<core::RegionId>& origins,
                    grpc::ClientReaderWriter<wire::ToSender, wire::ToReceiver>& stream,
                    grpc::ClientContext* context, bool* connected) {
    const BatchLimits batch_limits;
    PeerStream inbound(this, id, stream, context);
    {
      std::lock_guard lock(mutex_);
      receiving_[id] = Receiving{peer, 0, &inbound};
    }
    struct Unregister {  // before `inbound` goes
      Impl* impl;
      uint64_t id;
      ~Unregister() {
        std::lock_guard lock(impl->mutex_);
        impl->receiving_.erase(id);
      }
    } unregister{this, id};
    if (!inbound.Write(SubscribeMessage(origins))) return "cannot reach the peer";
    BatchStreamDecoder decoder;  // this stream's batches, in order
    bool identified = false;     // the sender's first heartbeat named the region dialled
    wire::ToReceiver message;
    while (stream.Read(&message)) {
      const uint64_t now = SteadyMs();
      {
        std::lock_guard lock(mutex_);
        const Inbound::Arrival arrival = inbound_.Received(id, now);
        if (arrival.stale) continue;  // another stream won; this one is being cancelled
        for (uint64_t lost : arrival.cancel) {
          if (auto it = contexts_.find(lost); it != contexts_.end()) it->second->TryCancel();
        }
        if (arrival.first) {
          *connected = true;
          PublishLinks();
          spdlog::info("replication: subscribed to {}", board_.NameOf(peer));
        }
      }
      if (message.has_batch()) {
        const wire::Batch& batch = message.batch();
        {
          std::lock_guard lock(mutex_);
          inbound_.BatchReceived(id, now);
        }
        // Another region's events are checked for form, not against this region's [limits]:
        // regions configured differently must still converge.
        auto events = decoder.Decode(batch.events(), batch_limits, kRemoteLimits);
        if (!events.ok()) return "bad batch: " + events.status().message();
        board_.BatchReceived(peer, events->size(), batch.events().size(), batch.raw_bytes());
        std::vector<core::HlcTimestamp> hlcs;
        hlcs.reserve(events->size());
        for (const core::Event& event : *events) {
          if (event.dot.origin != batch.origin()) return "batch holds an event of another origin";
          hlcs.push_back(event.hlc);
        }
        board_.Arrived(batch.origin(), hlcs, WallMs());
        if (!inbound.Submit(batch.origin(), std::move(events).value())) {
          return "the node is stopping";
        }
      } else if (message.has_heartbeat()) {
        const wire::Heartbeat& beat = message.heartbeat();
        if (!identified) {
          if (std::optional<std::string> refusal = CheckSender(peer, beat)) {
            spdlog::error("replication: refusing the stream to {}: {}", board_.NameOf(peer),
                          *refusal);
            board_.Refused(peer, *refusal);
            return "refused: " + *refusal;
          }
          identified = true;
          board_.Accepted(peer);
          std::lock_guard lock(mutex_);
          receiving_[id].incarnation = beat.incarnation();
        }
        auto frontier = DecodeFrontier(beat.frontier());
        if (!frontier.ok()) return "bad heartbeat";
        std::vector<node::OriginHead> heads;
        for (const wire::OriginHead& head : beat.heads()) {
          if (head.origin() > core::kRegionIdMax) return "bad heartbeat";
          heads.push_back({head.origin(), head.seq(), head.hlc()});
        }
        board_.HeadsHeard(heads);
        // Tell the peer what this region holds (events it got from others count too): the peer's
        // durability waits and retention depend on it.
        const core::VersionVector applied = node_->region().frontier();
        node_->region().ObserveFrontier(peer, *frontier);  // for folding stable metadata
        std::optional<core::VersionVector> ack;
        {
          std::lock_guard lock(mutex_);
          ack = inbound_.HeartbeatReceived(id, *frontier, applied, now);
          SyncRebuild();
        }
        if (ack && !inbound.WriteAck(*ack)) return "the stream closed";
      } else if (message.has_behind_retention()) {
        const wire::BehindRetention& behind = message.behind_retention();
        board_.BehindRetention(peer, behind.origin(), behind.wanted_seq(), behind.oldest_seq());
        spdlog::error(
            "replication: this region is behind {}'s log retention for {} (needs {}, "
            "the log starts at {}); it needs re-seeding",
            board_.NameOf(peer), board_.NameOf(behind.origin()), behind.wanted_seq(),
            behind.oldest_seq());
      }
      std::optional<std::vector<core::RegionId>> resubscribe;
      {
        std::lock_guard lock(mutex_);
        if (inbound_.ResubscribeDue(id)) resubscribe = inbound_.Subscription(id);
      }
      if (resubscribe && !inbound.Write(SubscribeMessage(*resubscribe))) {
        return "the stream closed";
      }
    }
    const std::string error = inbound.error();
    return error.empty() ? "the stream closed" : error;
  }

  // Log retention: trims each origin's logged events that every peer has acknowledged and that
  // are older than retention_age_s — or all of them while the log is over retention_bytes. Never
  // anything a peer still needs.
  void ApplyRetention() {
    std::vector<core::RegionId> released;
    const core::VersionVector acked =
        board_.AckedByAll(SteadyMs(), config_.replication.retention_hold_s * 1000,
                          node_->region().frontier(), &released);
    if (released != released_) {
      for (core::RegionId peer : released) {
        if (std::find(released_.begin(), released_.end(), peer) == released_.end()) {
          spdlog::warn(
              "replication: {} has acknowledged nothing for {} s; the log no longer "
              "waits for it (it re-seeds when it returns)",
              board_.NameOf(peer), config_.replication.retention_hold_s);
        }
      }
      released_ = released;
    }
    auto log_bytes = node_->store().LogBytes();
    if (!log_bytes.ok()) return;
    const bool over_bytes = *log_bytes > config_.replication.retention_bytes;
    const uint64_t age_ms = config_.replication.retention_age_s * 1000;
    const uint64_t now_ms = WallMs();
    const uint64_t cutoff_ms = now_ms > age_ms ? now_ms - age_ms : 0;
    const core::VersionVector applied = node_->region().frontier();
    for (const auto& entry : acked.entries()) {
      if (!retention_known_.contains(entry.origin)) {
        // After a restart: where an earlier run trimmed this origin's log to.
        std::optional<uint64_t> oldest;
        const Status status = node_->store().ReadLog(
            entry.origin, 1, 1,
            [&](const storage::LoggedEvent& logged) { oldest = logged.dot.seq; });
        if (!status.ok()) return;
        trimmed_through_.Set(entry.origin, oldest ? *oldest - 1 : applied.Get(entry.origin));
        retention_known_.insert(entry.origin);
      }
      const uint64_t trimmed = trimmed_through_.Get(entry.origin);
      if (entry.seq <= trimmed) continue;
      uint64_t through = trimmed;
      if (over_bytes) {
        // Never past what this region holds (later events are trimmed by age), and a bounded
        // page per pass: one batch of deletes, not the whole backlog at once.
        through = std::min({entry.seq, applied.Get(entry.origin), trimmed + kRetentionPage});
      } else {
        // The oldest events first, a bounded page per pass.
        wire::Event message;
        const Status status = node_->store().ReadLogWhile(
            entry.origin, trimmed + 1, kRetentionPage, [&](const storage::LoggedEvent& logged) {
              if (through != logged.dot.seq - 1 || logged.dot.seq > entry.seq) return false;
              // Only the clock is needed: parsed, not decoded and checked.
              if (!message.ParseFromString(logged.bytes) ||
                  core::HlcPhysicalMs(message.hlc()) >= cutoff_ms) {
                return false;
              }
              through = logged.dot.seq;
              return true;
            });
        if (!status.ok()) return;
      }
      if (through <= trimmed) continue;
      if (Status status = node_->store().TrimLog(entry.origin, through); !status.ok()) {
        spdlog::error("replication: log retention: {}", status.message());
        return;
      }
      trimmed_through_.Set(entry.origin, through);
      spdlog::info("replication: log retention trimmed {} through {}", board_.NameOf(entry.origin),
                   through);
    }
    auto after = node_->store().LogBytes();
    board_.SetRetention(after.ok() ? *after : *log_bytes, trimmed_through_);
  }

  // Recomputes relays, asks links whose origin set changed to resubscribe, cancels streams that
  // went silent, starts hedges beside slow ones and joins the link threads that finished.
  void RunTicker() {
    const uint64_t tick_ms = std::max<uint64_t>(10, config_.replication.heartbeat_ms / 2);
    uint64_t next_trim_ms = 0;
    while (Pause(tick_ms)) {
      if (SteadyMs() >= next_trim_ms) {
        ApplyRetention();
        next_trim_ms = SteadyMs() + kRetentionIntervalMs;
      }
      ReapLinks();
      const core::VersionVector applied = node_->region().frontier();
      std::lock_guard lock(mutex_);
      const Inbound::Tick tick = inbound_.OnTick(applied, SteadyMs());
      SyncRebuild();
      for (core::RegionId peer : tick.changed) {
        spdlog::info("replication: {} now carries {}", board_.NameOf(peer),
                     OriginNames(board_, inbound_.links().OriginsFor(peer)));
      }
      for (uint64_t stream : tick.quiet) {
        spdlog::warn(
            "replication: {} silent for {} ms; the link counts as down while another dial tries",
            board_.NameOf(inbound_.PeerOf(stream)), inbound_.links().silence_timeout_ms());
      }
      for (uint64_t stream : tick.silent) {
        if (auto it = contexts_.find(stream); it != contexts_.end()) {
          spdlog::warn("replication: {} silent for {} ms; redialling",
                       board_.NameOf(inbound_.PeerOf(stream)), inbound_.TimeoutMs(stream));
          it->second->TryCancel();
        }
      }
      for (core::RegionId peer : tick.hedge) SpawnLink(peer, /*hedge=*/true);
      PublishLinks();
    }
  }

  node::Node* const node_;
  const node::NodeConfig& config_;
  node::ReplicationBoard& board_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;

  std::mutex mutex_;  // guards the members below
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;
  Inbound inbound_;
  std::map<uint64_t, std::shared_ptr<grpc::ClientContext>> contexts_;  // by Inbound stream id
  std::map<uint64_t, Receiving> receiving_;                            // by Inbound stream id
  std::optional<Inbound::Rebuild> published_rebuild_;                  // SyncRebuild's last view
  grpc::ClientContext* reseed_context_ = nullptr;  // the re-seed's call, while one runs
  struct LinkThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<LinkThread> link_threads_;  // dialling and reading streams (SpawnLink)
  // Snapshots served to re-seeding regions, by id; kept kSnapshotKeepMs after their last use so
  // that a broken transfer resumes on the same one.
  std::mutex snapshots_mutex_;
  std::map<uint64_t, std::shared_ptr<SnapshotLease>> snapshots_;
  uint64_t next_snapshot_id_ = (WallMs() << 16) | 1;
  std::vector<std::thread> threads_;      // the ticker
  core::VersionVector trimmed_through_;   // ticker thread only
  std::vector<core::RegionId> released_;  // ticker thread only: peers the log no longer waits for
  std::set<core::RegionId> retention_known_;
};

Replicator::Replicator(node::Node* node) : impl_(std::make_unique<Impl>(node)) {}
Replicator::~Replicator() = default;
Status Replicator::Start() {
  return impl_->Start();
}
void Replicator::Stop() {
  impl_->Stop();
}
uint16_t Replicator::port() const {
  return impl_->port();
}

}  // namespace meridian::replication
