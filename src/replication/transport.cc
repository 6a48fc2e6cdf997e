#include "replication/transport.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "auth/grpc_tls.h"
#include "core/check.h"
#include "core/thread_name.h"
#include "meridian/event.pb.h"
#include "meridian/replication.grpc.pb.h"
#include "replication/batch_codec.h"
#include "replication/event_log.h"
#include "replication/exchange.h"
#include "replication/reseed.h"
#include "replication/snapshot_codec.h"
#include "replication/verify.h"

namespace meridian::replication {
namespace {

constexpr int kMessageBytesMax = 64 << 20;
// Serving streams a peer may hold here at once. A region dials each peer once, a hedge adds a
// second beside a slow stream, and a stream being replaced may still be closing; relays ride on
// those streams' subscriptions and open none. Beyond this a peer (or whoever holds its
// certificate) is tying up threads, not replicating.
constexpr int kServingStreamsPerPeerMax = 4;
// gRPC server threads: each serving stream, snapshot and verification call holds one while it
// runs. Enough for every peer's streams at their bound and its unary calls, with room for gRPC's
// pollers; beyond it a new call is answered RESOURCE_EXHAUSTED instead of starting a thread.
int ServerThreadsMax(size_t peers) {
  return static_cast<int>(peers) * (kServingStreamsPerPeerMax + 2) + 8;
}
constexpr int kKeepaliveMs = 5000;
// HTTP/2 flow-control window to start from: a WAN round trip of batches may be in flight without
// waiting. (BDP probing, gRPC's default, must stay on: it is what grows the window past 64 KiB;
// without it a 100 ms round trip caps a stream at about 1.4 MB/s.)
constexpr int kLookaheadBytes = 16 << 20;

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

grpc::Status StatusOf(const Refusal& refusal) {
  grpc::StatusCode code = grpc::StatusCode::INVALID_ARGUMENT;
  switch (refusal.code) {
    case Refusal::Code::kInvalidArgument:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case Refusal::Code::kPermissionDenied:
      code = grpc::StatusCode::PERMISSION_DENIED;
      break;
    case Refusal::Code::kFailedPrecondition:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case Refusal::Code::kAlreadyExists:
      code = grpc::StatusCode::ALREADY_EXISTS;
      break;
  }
  // "refused: " tells the subscriber's Ended to report it (docs/replication.md#region-identity).
  return {code, (refusal.identity ? "refused: " : "") + refusal.message};
}

// Fault injection for tests (docs/testing.md): with MERIDIAN_FAULT_POISON_KEY set, every event of
// that document this region receives is parked as if it did not decode, so that a real region
// holds a dead letter its peers do not.
void PoisonForTests(core::RemoteBatch* batch) {
  static const std::string poison = [] {
    const char* value = std::getenv("MERIDIAN_FAULT_POISON_KEY");
    return value != nullptr ? std::string(value) : std::string();
  }();
  if (poison.empty()) return;
  batch->Park([](const core::Event& event) { return event.key == poison; },
              "poisoned for a test (MERIDIAN_FAULT_POISON_KEY)");
}

}  // namespace

class Replicator::Impl final : public wire::Replication::Service {
 public:
  explicit Impl(Host* host)
      : host_(host),
        config_(host->Config()),
        board_(host->status()),
        exchange_(config_.exchange, SteadyMs()),
        retention_(config_.retention) {}

  ~Impl() override { Stop(); }

  Status Start() {
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (config_.tls.enabled()) {
      auto watched = auth::WatchTlsFiles(config_.tls);
      if (!watched.ok()) return watched.status();
      tls_ = std::move(watched).value();
      std::set<std::string> regions;
      for (const auto& [id, name] : config_.exchange.names) {
        if (id != config_.exchange.self) regions.insert(name);
      }
      credentials = auth::MutualTlsServerCredentials(tls_, std::move(regions));
    }
    grpc::ServerBuilder builder;
    builder.AddListeningPort(config_.listen, credentials, &port_);
    builder.RegisterService(this);
    ForEachStreamArgument(
        [&](const char* name, int value) { builder.AddChannelArgument(name, value); });
    // The builder's own message limits would override the channel arguments' when set: the same
    // bound both ways, stated where the server reads it.
    builder.SetMaxReceiveMessageSize(kMessageBytesMax);
    builder.SetMaxSendMessageSize(kMessageBytesMax);
    // One completion queue with at most two idle pollers (gRPC's defaults, stated because the
    // thread bound must leave room for them: gRPC aborts when the bound is below its pollers).
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
    builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
    grpc::ResourceQuota quota("replication");
    quota.SetMaxThreads(ServerThreadsMax(config_.addresses.size()));
    builder.SetResourceQuota(quota);
    // Clients may ping: that is how a half-open connection is found from their side.
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 500);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    // One process per replication address: without this gRPC sets SO_REUSEPORT and a second
    // node claiming the region could bind it too and take half of its peers' streams.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      return Status(StatusCode::kUnavailable, "cannot listen for replication on " + config_.listen +
                                                  " (in use or not a local address?)");
    }
    spdlog::info("replication listening on {}{}", config_.listen, tls_ ? " (mutual TLS)" : "");
    if (host_->NeedsReseed()) {
      // The live streams start once the snapshot is in (RunReseed); the region stays gated
      // meanwhile (the node starts it rebuilding).
      host_->SetReseeding(true);
      Ready ready;
      {
        std::lock_guard lock(mutex_);
        ready = exchange_.Follow(host_->Applied(), host_->ConfirmOwnEvents());
      }
      Carry(std::move(ready), nullptr);
      std::lock_guard lock(mutex_);
      threads_.emplace_back([this] {
        core::NameThisThread("repl-reseed");
        RunReseed();
      });
    } else {
      StartLinks();
    }
    std::lock_guard lock(mutex_);
    threads_.emplace_back([this] {
      core::NameThisThread("repl-ticker");
      RunTicker();
    });
    threads_.emplace_back([this] {
      core::NameThisThread("repl-verify");
      RunVerifier();
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
    host_->Notify();  // wakes serving streams
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      threads.swap(threads_);
    }
    for (std::thread& thread : threads) thread.join();
    {
      // Verification calls still out are cancelled; their callbacks run before this returns.
      std::unique_lock lock(verify_mutex_);
      for (const auto& call : verify_calls_) call->context.TryCancel();
      verify_wake_.wait(lock, [this] { return verify_calls_.empty(); });
    }
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
    const core::RegionId peer = subscribe.region_id();
    std::optional<core::RegionId> authenticated;
    if (grpc::Status denied = Authenticate(*context, &authenticated); !denied.ok()) return denied;
    Exchange::Served served;
    uint64_t serving = 0;
    {
      std::lock_guard lock(mutex_);
      // Counted per claimed region: with TLS the exchange refuses any other than the
      // certificate's; without, the count is all there is. Only accepted streams have entries.
      if (auto it = serving_streams_.find(peer);
          it != serving_streams_.end() && it->second >= kServingStreamsPerPeerMax) {
        return {grpc::StatusCode::RESOURCE_EXHAUSTED,
                exchange_.NameOf(peer) + " already has " +
                    std::to_string(kServingStreamsPerPeerMax) + " streams here"};
      }
      serving = next_serving_++;
      served = exchange_.Subscribed(serving, subscribe, authenticated, SteadyMs());
      if (!served.refusal) ++serving_streams_[peer];
    }
    if (served.refusal) {
      Carry(std::move(served.ready), nullptr);
      return StatusOf(*served.refusal);
    }
    board_.SubscriberAttached(peer, subscribe.incarnation());
    // Detached on every return from here on.
    struct Detach {
      Impl* impl;
      core::RegionId peer;
      uint64_t serving;
      ~Detach() {
        {
          std::lock_guard lock(impl->mutex_);
          impl->exchange_.ServingEnded(serving);
          --impl->serving_streams_[peer];
        }
        impl->board_.SubscriberDetached(peer);
      }
    } detach{this, peer, serving};
    // The fence, when the peer is a new incarnation, runs here: before the first heartbeat.
    Carry(std::move(served.ready), nullptr);

    struct Waiter {
      std::condition_variable wake;  // with mutex_
      bool done = false;
      // While the writer sleeps: when it will wake by itself (a linger or the heartbeat).
      std::optional<uint64_t> asleep_until_ms;
    } waiter;
    // A commit wakes the writer only when it changes what the writer would do: a batch due now,
    // or a linger ending before the writer's own wake-up. A busy stream that lingers is not woken
    // by every commit of the region (each a context switch) only to sleep again. Under the lock:
    // a commit between the writer's look at the frontier and its wait must not be lost.
    auto handle = host_->OnCommit([&waiter, serving, this] {
      std::lock_guard lock(mutex_);
      if (!waiter.asleep_until_ms) return;  // awake: it reads the frontier before sleeping again
      const core::VersionVector heads = host_->Applied();
      const uint64_t now = SteadyMs();
      if (stopping_ || exchange_.Due(serving, heads, now) ||
          exchange_.WakeAtMs(serving, heads, now) < *waiter.asleep_until_ms) {
        waiter.wake.notify_one();
      }
    });

    std::thread reader([&] {
      core::NameThisThread("repl-acks");
      wire::ToSender message;
      while (stream->Read(&message)) {
        Ready ready;
        bool ok = false;
        {
          std::lock_guard lock(mutex_);
          ok = exchange_.FromSubscriber(serving, message, SteadyMs(), &ready);
          // The window may have opened, or nothing is in flight any more: waiting events are
          // then due at once, without a linger.
          waiter.wake.notify_one();
        }
        Carry(std::move(ready), nullptr);
        if (!ok) break;
      }
      std::lock_guard lock(mutex_);
      waiter.done = true;
      waiter.wake.notify_one();
    });

    // One zstd stream for the whole subscription when the subscriber reads it.
    std::optional<BatchStreamEncoder> encoder;
    if (subscribe.streamed_batches()) encoder.emplace();
    LogRead log;
    for (;;) {
      Exchange::Outgoing out;
      core::VersionVector heads;
      {
        std::unique_lock lock(mutex_);
        for (;;) {
          if (waiter.done || stopping_ || context->IsCancelled()) break;
          heads = host_->Applied();
          const uint64_t now = SteadyMs();
          out = exchange_.Next(serving, heads, now);
          if (out.read || out.heartbeat) break;
          const uint64_t wake_at = std::max(now + 1, exchange_.WakeAtMs(serving, heads, now));
          waiter.asleep_until_ms = wake_at;
          waiter.wake.wait_for(lock, std::chrono::milliseconds(wake_at - now));
          waiter.asleep_until_ms.reset();
        }
        if (!out.read && !out.heartbeat) break;
      }
      if (out.heartbeat) {
        // Before any batch: the subscriber applies nothing until it knows who sends.
        const wire::ToReceiver beat =
            exchange_.HeartbeatMessage(heads, host_->Clock(), board_.Heads(heads));
        if (!stream->Write(beat)) break;
        std::lock_guard lock(mutex_);
        exchange_.HeartbeatSent(serving, SteadyMs());
      }
      if (out.read &&
          !SendBatch(peer, serving, *out.read, stream, encoder ? &*encoder : nullptr, &log)) {
        break;
      }
    }
    context->TryCancel();
    reader.join();
    host_->RemoveOnCommit(handle);
    spdlog::info("replication: {}'s subscription ended", exchange_.NameOf(peer));
    return grpc::Status::OK;
  }

  // --- verification (docs/verification.md) -----------------------------------------------------
  grpc::Status Verify(grpc::ServerContext* context, const wire::VerifyRequest* request,
                      wire::VerifyReply* reply) override {
    std::optional<core::RegionId> authenticated;
    if (grpc::Status denied = Authenticate(*context, &authenticated); !denied.ok()) return denied;
    std::optional<Refusal> refusal;
    {
      std::lock_guard lock(mutex_);
      refusal = exchange_.VerifyRequested(*request, authenticated);
    }
    if (refusal) return StatusOf(*refusal);
    auto answer = host_->AnswerVerify(*request);
    if (!answer.ok()) {
      return {answer.status().code() == StatusCode::kInvalidArgument
                  ? grpc::StatusCode::INVALID_ARGUMENT
                  : grpc::StatusCode::UNAVAILABLE,
              answer.status().message()};
    }
    *reply = std::move(answer).value();
    return grpc::Status::OK;
  }

  struct VerifyCall {
    core::RegionId peer = 0;
    grpc::ClientContext context;
    wire::VerifyRequest request;
    wire::VerifyReply reply;
    grpc::Status status;
  };

  wire::Replication::Stub* VerifyStub(core::RegionId peer) {
    auto it = verify_stubs_.find(peer);
    if (it != verify_stubs_.end()) return it->second.get();
    grpc::ChannelArguments arguments;
    ForEachStreamArgument([&](const char* name, int value) { arguments.SetInt(name, value); });
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // Redials as the streams do (gRPC's own ceiling is two minutes): a peer back from a restart
    // is compared again within the links' backoff ceiling, not minutes later.
    const LinkOptions& links = config_.exchange.links;
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                     static_cast<int>(links.backoff_initial_ms));
    arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, static_cast<int>(links.backoff_initial_ms));
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(links.backoff_max_ms));
    return verify_stubs_.emplace(peer, wire::Replication::NewStub(ChannelTo(peer, &arguments)))
        .first->second.get();
  }

  // Sends a request; its answer is queued for the verifier thread. Requires verify_mutex_.
  void SendVerify(Verifier::Ready::Request request) {
    auto call = std::make_shared<VerifyCall>();
    call->peer = request.peer;
    call->request = std::move(request.message);
    {
      std::lock_guard lock(mutex_);
      exchange_.Identify(&call->request);
    }
    call->context.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::milliseconds(config_.verify_timeout_ms));
    // A peer restarted since the last comparison leaves the channel backing off: without this
    // the call would fail at once with the old connection's error instead of connecting.
    call->context.set_wait_for_ready(true);
    verify_calls_.insert(call);
    VerifyStub(call->peer)
        ->async()
        ->Verify(&call->context, &call->request, &call->reply, [this, call](grpc::Status status) {
          std::lock_guard lock(verify_mutex_);
          call->status = std::move(status);
          verify_answers_.push_back(call);
          verify_calls_.erase(call);
          verify_wake_.notify_all();
        });
  }

  // Carries out what the verifier said (verifier thread only; takes verify_mutex_ as needed).
  void CarryVerify(Verifier::Ready ready) {
    while (true) {
      if (!ready.watch.empty()) host_->Watch(ready.watch);
      {
        std::lock_guard lock(verify_mutex_);
        for (Verifier::Ready::Request& request : ready.requests) SendVerify(std::move(request));
      }
      for (const VerifyResult& result : ready.finished) {
        const std::string peer = exchange_.NameOf(result.peer);
        if (result.state == VerifyResult::State::kUnknown) {
          spdlog::warn("verify: with {}: unknown: {}", peer, result.error);
        } else if (result.state == VerifyResult::State::kDiffering) {
          spdlog::warn(
              "verify: with {}: differing: {} documents restored here, {} to restore there{}", peer,
              result.repaired, result.theirs, result.truncated ? " (more to compare)" : "");
        } else {
          spdlog::debug("verify: with {}: identical ({} round trips, {} bytes)", peer,
                        result.round_trips, result.bytes);
        }
        board_.Verified(result);
      }
      Verifier::Ready next;
      for (Verifier::Ready::Repair& repair : ready.repairs) {
        const Result<RepairCounts> counts = host_->Repair(repair.peer, repair.states);
        if (!counts.ok()) {
          spdlog::error("verify: repairing from {}: {}", exchange_.NameOf(repair.peer),
                        counts.status().message());
        }
        std::lock_guard lock(verify_mutex_);
        next.Join(verifier_.Repaired(repair.peer, counts, host_->Applied(), SteadyMs()));
      }
      if (!ready.unwatch.empty()) host_->Unwatch(ready.unwatch);
      if (next.watch.empty() && next.requests.empty() && next.repairs.empty() &&
          next.unwatch.empty() && next.finished.empty()) {
        return;
      }
      ready = std::move(next);
    }
  }

  void RunVerifier() {
    const uint64_t tick_ms = exchange_.options().tick_ms;
    while (!stopping_) {
      std::vector<std::shared_ptr<VerifyCall>> answers;
      {
        std::unique_lock lock(verify_mutex_);
        verify_wake_.wait_for(lock, std::chrono::milliseconds(tick_ms),
                              [this] { return stopping_.load() || !verify_answers_.empty(); });
        answers.swap(verify_answers_);
      }
      if (stopping_) return;
      for (const auto& call : answers) {
        const uint64_t now = SteadyMs();
        Verifier::Ready ready;
        {
          std::lock_guard lock(verify_mutex_);
          if (call->status.ok()) {
            ready = verifier_.Answered(call->peer, call->reply,
                                       call->request.ByteSizeLong() + call->reply.ByteSizeLong(),
                                       host_->verify_local(), host_->Applied(), now);
          } else {
            ready = verifier_.Failed(call->peer, call->status.error_message(), now);
          }
        }
        CarryVerify(std::move(ready));
      }
      Verifier::Ready ready;
      {
        const std::optional<core::RegionId> asked = board_.TakeVerifyRequest();
        std::lock_guard lock(verify_mutex_);
        if (asked) ready = verifier_.Start(*asked, SteadyMs());
        ready.Join(verifier_.Tick(SteadyMs(), host_->Applied()));
      }
      CarryVerify(std::move(ready));
    }
  }

  // --- serving a re-seed (docs/replication.md#re-seeding) ---------------------------------------
  grpc::Status Snapshot(grpc::ServerContext* context, const wire::SnapshotRequest* request,
                        grpc::ServerWriter<wire::SnapshotChunk>* writer) override {
    const core::RegionId peer = request->region_id();
    std::optional<core::RegionId> authenticated;
    if (grpc::Status denied = Authenticate(*context, &authenticated); !denied.ok()) return denied;
    if (RefusesSnapshots(host_->Reseeding(), host_->Merging(), host_->Applied())) {
      return {grpc::StatusCode::UNAVAILABLE, kReseedingItself};
    }
    // The region starts over: what its earlier incarnation acknowledged no longer holds the log
    // back, nor counts (and nothing it now needs is trimmed meanwhile).
    Ready ready;
    std::optional<Refusal> refusal;
    {
      std::lock_guard lock(mutex_);
      refusal = exchange_.SnapshotRequested(*request, authenticated, &ready);
    }
    Carry(std::move(ready), nullptr);
    if (refusal) {
      spdlog::error("replication: refused a re-seed of region id {}: {}", peer, refusal->message);
      return StatusOf(*refusal);
    }
    auto call = snapshots_.Open(*request, host_->store(), SteadyMs());
    if (!call.ok()) {
      return {call.status().code() == StatusCode::kOverloaded ? grpc::StatusCode::RESOURCE_EXHAUSTED
                                                              : grpc::StatusCode::UNAVAILABLE,
              call.status().message()};
    }
    if ((*call)->fresh()) {
      spdlog::info("replication: re-seeding {} from a snapshot at {} ({} documents)",
                   exchange_.NameOf(peer), (*call)->snapshot().position().frontier.ToString(),
                   (*call)->snapshot().position().documents);
    }
    // Fault injection for tests (docs/testing.md): end each call after this many pages, as a
    // broken connection would, so that the region must resume.
    static const uint64_t pages_per_call = [] {
      const char* value = std::getenv("MERIDIAN_FAULT_SNAPSHOT_PAGES_PER_CALL");
      return value != nullptr ? std::strtoull(value, nullptr, 10) : 0;
    }();
    for (uint64_t pages = 1;; ++pages) {
      if (context->IsCancelled() || stopping_) return {grpc::StatusCode::CANCELLED, "stopping"};
      auto chunk = (*call)->Next(SteadyMs());
      if (!chunk.ok()) return {grpc::StatusCode::UNAVAILABLE, chunk.status().message()};
      if (!writer->Write(*chunk)) {
        return {grpc::StatusCode::CANCELLED, "the re-seeding region left"};
      }
      if (chunk->done()) break;
      if (pages_per_call != 0 && pages == pages_per_call) {
        return {grpc::StatusCode::UNAVAILABLE, "fault injection: the call ends here"};
      }
    }
    spdlog::info("replication: re-seeded {}", exchange_.NameOf(peer));
    return grpc::Status::OK;
  }

 private:
  // Reads the batch from the log, sends it; false when the stream is gone.
  bool SendBatch(core::RegionId peer, uint64_t serving, const Outbound::Read& read,
                 grpc::ServerReaderWriter<wire::ToReceiver, wire::ToSender>* stream,
                 BatchStreamEncoder* encoder, LogRead* log) {
    if (Status status = ReadForSend(host_->store(), read, log); !status.ok()) {
      spdlog::error("replication: reading the log for {}: {}", exchange_.NameOf(peer),
                    status.message());
      return false;
    }
    if (!log->complete(read)) {
      // The log does not hold what the subscriber needs next: retention trimmed it.
      const uint64_t oldest = log->events.empty() ? 0 : log->first_seq;
      Ready ready;
      wire::ToReceiver message;
      {
        std::lock_guard lock(mutex_);
        message = exchange_.Missing(serving, read, oldest, &ready);
      }
      board_.SubscriberBehindRetention(peer, read.origin, read.from_seq, oldest);
      Carry(std::move(ready), nullptr);
      return stream->Write(message);
    }
    const EncodedBatch batch =
        encoder != nullptr ? encoder->Encode(log->events) : EncodeBatchOfEncoded(log->events);
    wire::ToReceiver message;
    wire::Batch* out = message.mutable_batch();
    out->set_origin(read.origin);
    out->set_first_seq(log->first_seq);
    out->set_last_seq(log->last_seq);
    out->set_events(batch.bytes);
    out->set_raw_bytes(batch.raw_bytes);
    out->set_sent_us(core::WallNs() / 1000);
    {
      // Counted as in flight before it leaves, so an acknowledgement cannot overtake it.
      std::lock_guard lock(mutex_);
      exchange_.Sent(serving, read.origin, log->last_seq, batch.raw_bytes);
    }
    if (!stream->Write(message)) return false;
    board_.BatchSent(peer, log->events.size(), batch.bytes.size(), batch.raw_bytes);
    return true;
  }

  // A traced event of a received batch: its send, wire and apply spans (the last ended once
  // applied), recorded only if that batch is what applied it (docs/operations.md#tracing).
  struct TracedEvent {
    core::Dot dot;
    std::vector<core::Span> spans;
  };

  class PeerStream;

  // Carries out a Ready in the order its header gives (replication/exchange.h). mutex_ not held.
  // `own`: the receiving stream whose thread made the call; every send of a Ready is for it.
  void Carry(Ready ready, PeerStream* own) {
    for (const Ready::Note& note : ready.notes) {
      switch (note.level) {
        case Ready::Note::Level::kDebug:
          spdlog::debug("replication: {}", note.text);
          break;
        case Ready::Note::Level::kInfo:
          spdlog::info("replication: {}", note.text);
          break;
        case Ready::Note::Level::kWarn:
          spdlog::warn("replication: {}", note.text);
          break;
        case Ready::Note::Level::kError:
          spdlog::error("replication: {}", note.text);
          break;
      }
    }
    // 1. The fence: nothing the streams of the peer's earlier incarnation queued may commit after
    // this region tells the new one what it holds; wait until the commit thread is past it.
    if (!ready.fence.empty()) {
      {
        std::lock_guard lock(mutex_);
        for (uint64_t stream : ready.fence) {
          if (auto it = receiving_.find(stream); it != receiving_.end()) it->second->Drop();
        }
      }
      std::promise<void> passed;
      if (host_->SubmitRemote(
              {}, [&passed](Result<RemoteApplied>) { passed.set_value(); }, nullptr)) {
        passed.get_future().wait();
      }
    }
    // 2. Submits are carried by the caller, which holds the events. 3. Observe.
    if (ready.observe) {
      host_->ObserveFrontier(ready.observe->peer, ready.observe->frontier);
    }
    // 4. The write gate.
    if (ready.rebuild) PublishRebuild(*ready.rebuild, ready.rebuilt);
    // 5. Sends, then cancels.
    for (const Ready::ToSender& send : ready.sends) {
      MERIDIAN_CHECK(own != nullptr && own->id() == send.stream);
      if (!own->Write(send.message)) own->Fail("the stream closed");
    }
    if (!ready.cancel.empty()) {
      std::lock_guard lock(mutex_);
      for (const Ready::Cancel& cancel : ready.cancel) {
        if (auto it = receiving_.find(cancel.stream); it != receiving_.end()) {
          it->second->Fail(cancel.why);
        } else if (auto context = contexts_.find(cancel.stream); context != contexts_.end()) {
          context->second->TryCancel();
        }
      }
    }
    // Re-seed (the exchange cancelled every receiving stream and dials none until Reseeded).
    if (ready.reseed) {
      host_->SetReseeding(true);
      std::lock_guard lock(mutex_);
      if (!stopping_) {
        threads_.emplace_back([this, peers = ready.reseed_from] {
          core::NameThisThread("repl-reseed");
          RunReseed(peers);
        });
      }
    }
    // 6. Dials.
    if (!ready.dials.empty()) {
      std::lock_guard lock(mutex_);
      for (const Ready::Dial& dial : ready.dials) SpawnLink(dial.peer, dial.delay_ms, dial.hedge);
    }
    // 7. Reports.
    for (core::RegionId peer : ready.forgotten) board_.ForgetAcknowledgements(peer);
    for (const Ready::Acked& acked : ready.acked) board_.Acked(acked.peer, acked.frontier);
    if (!ready.acked.empty()) host_->Notify();  // durability waits
    if (!ready.heads_heard.empty()) board_.HeadsHeard(ready.heads_heard);
    for (const Ready::Refused& refused : ready.refused) board_.Refused(refused.peer, refused.why);
    for (core::RegionId peer : ready.accepted) board_.Accepted(peer);
    for (core::RegionId peer : ready.reconnecting) board_.Reconnecting(peer);
    for (core::RegionId peer : ready.hedged) board_.Hedged(peer);
    if (ready.behind) {
      board_.BehindRetention(ready.behind->peer, ready.behind->origin, ready.behind->wanted,
                             ready.behind->oldest);
    }
    if (ready.links_changed) {
      std::lock_guard lock(mutex_);
      board_.LinksChanged(exchange_.inbound().links().Views(),
                          exchange_.inbound().links().relays_active());
    }
  }

  // Brings the region's write gate, its data directory and the board up to date with a rebuild
  // view that changed.
  void PublishRebuild(const Inbound::Rebuild& rebuild, bool rebuilt) {
    if (rebuilt) host_->Rebuilt();
    host_->SetRebuilding(rebuild.rebuilding);
    nlohmann::json waiting = nlohmann::json::array();
    for (core::RegionId peer : rebuild.waiting) waiting.push_back(exchange_.NameOf(peer));
    nlohmann::json heard = nlohmann::json::array();
    for (core::RegionId peer : rebuild.heard) heard.push_back(exchange_.NameOf(peer));
    nlohmann::json status = {
        {"rebuilding", rebuild.rebuilding},
        {"data_start", host_->DataStart()},
        {"own_applied", rebuild.applied},
        {"own_target", rebuild.target},
        {"waiting_for", waiting},
        {"heard_from", heard},
        {"source",
         rebuild.ahead ? nlohmann::json(exchange_.NameOf(*rebuild.ahead)) : nlohmann::json()}};
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
  void PublishReseed(const Reseeding& reseed) {
    board_.SetReseed(reseed.Status(config_.exchange.names, SteadyMs()),
                     reseed.Problem(config_.exchange.names));
  }

  // One call to `peer`, as `reseed` says. Returns why it failed, empty when the snapshot is in.
  std::string ReseedFrom(core::RegionId peer, const wire::SnapshotRequest& request,
                         Reseeding* reseed) {
    grpc::ChannelArguments arguments;
    ForEachStreamArgument([&](const char* name, int value) { arguments.SetInt(name, value); });
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = wire::Replication::NewStub(ChannelTo(peer, &arguments));
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
    auto reader = stub->Snapshot(&context, request);
    // Every way out finishes the call (cancelled first when it is still going).
    const auto end = [&](std::string why) {
      context.TryCancel();
      (void)reader->Finish();
      return why;
    };
    wire::SnapshotChunk chunk;
    while (reader->Read(&chunk)) {
      const Reseeding::Step step = reseed->Chunk(chunk);
      if (!step.error.empty()) return end(step.error);
      if (step.fresh) {
        spdlog::info("replication: re-seeding from {}'s snapshot at {} ({} documents)",
                     exchange_.NameOf(peer), reseed->frontier().ToString(), chunk.documents());
      }
      if (Status merged = host_->MergeSnapshotPage(step); !merged.ok()) {
        return end("merging: " + merged.message());
      }
      reseed->Installed(step);
      PublishReseed(*reseed);
      if (reseed->done()) {
        (void)reader->Finish();  // the peer ends the call right after its last chunk
        return {};
      }
    }
    const grpc::Status finished = reader->Finish();
    return finished.ok() ? "the snapshot ended early" : finished.error_message();
  }

  // Re-seeds this region from a peer's snapshot (the first that serves one; a broken transfer
  // resumes on the same snapshot), merged with what it holds, then starts the live streams from
  // its frontier.
  // `peers`: whom to ask, best first; empty: every peer, the first at random.
  void RunReseed(std::vector<core::RegionId> peers = {}) {
    const uint64_t started_ms = SteadyMs();
    std::mt19937_64 random(std::random_device{}());
    const double unit =
        peers.empty() ? std::uniform_real_distribution<double>(0.0, 1.0)(random) : 0.0;
    Reseeding reseed(peers.empty() ? exchange_.peers() : std::move(peers), started_ms, unit);
    PublishReseed(reseed);
    while (!reseed.done()) {
      if (stopping_) return;
      core::RegionId peer = 0;
      const wire::SnapshotRequest request = reseed.Ask(exchange_.SnapshotRequestMessage(), &peer);
      const std::string why = ReseedFrom(peer, request, &reseed);
      if (why.empty()) break;
      const uint64_t delay = reseed.Failed(why, why.find(kReseedingItself) != std::string::npos);
      spdlog::warn("replication: re-seeding from {}: {}", exchange_.NameOf(peer), why);
      PublishReseed(reseed);
      if (reseed.Hopeless() && host_->Applied().empty()) {
        // No region holds a copy: start from nothing, as every other region does.
        if (Status cleared = host_->ClearDocuments(); !cleared.ok()) {
          spdlog::error("replication: re-seeding: clearing the documents: {}", cleared.message());
          if (!Pause(delay)) return;
          continue;
        }
        spdlog::error(
            "replication: every peer is being re-seeded itself: no region holds a copy of the "
            "data; this region starts from nothing");
        break;
      }
      if (!Pause(delay)) return;
    }
    if (reseed.done()) {
      spdlog::info(
          "replication: re-seeded {} documents from {} in {} ms; following the live "
          "streams from {}",
          reseed.installed(), exchange_.NameOf(reseed.source()), SteadyMs() - started_ms,
          reseed.frontier().ToString());
    }
    host_->SetReseeding(false);
    PublishReseed(reseed);
    StartLinks();
  }

  std::string AddressOf(core::RegionId peer) const {
    auto it = config_.addresses.find(peer);
    return it == config_.addresses.end() ? std::string() : it->second;
  }

  // A channel to the peer: with [tls], mutual TLS that accepts only a certificate naming it.
  std::shared_ptr<grpc::Channel> ChannelTo(core::RegionId peer, grpc::ChannelArguments* arguments) {
    if (!tls_) {
      return grpc::CreateCustomChannel(AddressOf(peer), grpc::InsecureChannelCredentials(),
                                       *arguments);
    }
    const std::string name = exchange_.NameOf(peer);
    arguments->SetSslTargetNameOverride(name);  // the handshake asks for the region
    return grpc::CreateCustomChannel(AddressOf(peer), auth::MutualTlsChannelCredentials(tls_, name),
                                     *arguments);
  }

  // The region the caller's certificate names (mutual TLS), into *authenticated; nullopt without
  // [tls]. A certificate naming no region of the deployment does not get past the handshake, so
  // a refusal here means the handshake and the configuration disagree.
  grpc::Status Authenticate(const grpc::ServerContext& context,
                            std::optional<core::RegionId>* authenticated) const {
    authenticated->reset();
    if (!tls_) return grpc::Status::OK;
    const std::optional<std::string> name = auth::PeerCommonName(context);
    if (name) {
      for (const auto& [id, known] : config_.exchange.names) {
        if (known == *name && id != config_.exchange.self) {
          *authenticated = id;
          return grpc::Status::OK;
        }
      }
    }
    return {grpc::StatusCode::PERMISSION_DENIED,
            "refused: the certificate names no peer region of this deployment" +
                (name ? " ('" + *name + "')" : std::string())};
  }

  // Waits for `ms` unless stopping; false when stopping.
  bool Pause(uint64_t ms) {
    std::unique_lock lock(mutex_);
    return !wake_.wait_for(lock, std::chrono::milliseconds(ms),
                           [this] { return stopping_.load(); });
  }

  // --- subscribing to peers --------------------------------------------------------------------
  // Starts following the peers (again, after a re-seed the exchange asked for): the exchange
  // says whom to dial.
  void StartLinks() {
    Ready ready;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      ready = exchange_.Reseeded(host_->Applied(), host_->ConfirmOwnEvents());
    }
    Carry(std::move(ready), nullptr);
  }

  // Starts a thread that dials the peer after `delay_ms` and reads the stream until it ends.
  // mutex_ held.
  void SpawnLink(core::RegionId peer, uint64_t delay_ms, bool hedge) {
    if (stopping_) return;
    if (hedge)
      spdlog::debug("replication: dialling {} beside a slow stream", exchange_.NameOf(peer));
    auto done = std::make_shared<std::atomic<bool>>(false);
    link_threads_.push_back({std::thread([this, peer, delay_ms, done] {
                               core::NameThisThread("repl-link");
                               RunLink(peer, delay_ms);
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

  // One dial of the peer: reads its stream until it ends, then tells the exchange (whose Ready
  // may start the next dial).
  void RunLink(core::RegionId peer, uint64_t delay_ms) {
    if (delay_ms > 0 && !Pause(delay_ms)) return;
    Exchange::Dialed dialed;
    auto context = std::make_shared<grpc::ClientContext>();
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      dialed = exchange_.Dialing(peer, host_->Applied(), SteadyMs());
      contexts_[dialed.stream] = context;
    }
    thread_local std::mt19937_64 random(std::random_device{}());
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    grpc::ChannelArguments arguments;
    ForEachStreamArgument([&](const char* name, int value) { arguments.SetInt(name, value); });
    arguments.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // A fresh channel per dial: the exchange's backoff governs redials, not the channel's, and a
    // hedge does not share the connection of the stream it hedges.
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = wire::Replication::NewStub(ChannelTo(peer, &arguments));
    std::string why;
    {
      auto stream = stub->Stream(context.get());
      try {
        why = Serve(peer, dialed, *stream, context.get());
      } catch (const std::exception& error) {  // e.g. memory for a hostile batch: drop the link
        why = std::string("error: ") + error.what();
      }
      stream->WritesDone();
      context->TryCancel();
      const grpc::Status finished = stream->Finish();
      if (finished.error_message().rfind("refused: ", 0) == 0) {
        why = finished.error_message();  // the peer refused this region
      } else if (!finished.ok()) {
        why += " (" + finished.error_message() + ")";
      }
    }
    Ready ready;
    {
      std::lock_guard lock(mutex_);
      contexts_.erase(dialed.stream);
      ready = exchange_.Ended(dialed.stream, why, SteadyMs(), unit(random));
    }
    Carry(std::move(ready), nullptr);
  }

  // The receiving side of one stream: batches are queued for the commit thread as they arrive
  // (up to the exchange's apply_queue_max at once, so decoding and reading overlap the commit),
  // and an acknowledging thread waits for each in order and hands the outcome to the exchange,
  // which says what to acknowledge.
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

    uint64_t id() const { return id_; }

    // Queues a batch; false when the node is stopping.
    bool Submit(core::RegionId origin, core::RemoteBatch events,
                std::vector<TracedEvent> traced = {}) {
      const size_t queue_max = impl_->exchange_.options().apply_queue_max;
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return pending_.size() < queue_max || !error_.empty(); });
      if (!error_.empty()) return true;  // the stream is being cancelled; Read will end
      lock.unlock();
      auto promise = std::make_shared<std::promise<Result<RemoteApplied>>>();
      std::future<Result<RemoteApplied>> done = promise->get_future();
      if (!impl_->host_->SubmitRemote(
              std::move(events),
              [promise](Result<RemoteApplied> outcome) { promise->set_value(std::move(outcome)); },
              dropped_)) {
        return false;
      }
      lock.lock();
      pending_.push_back({origin, std::move(done), std::move(traced)});
      changed_.notify_all();
      return true;
    }

    // Writes to the stream (acknowledgements and subscriptions come from two threads).
    bool Write(const wire::ToSender& message) {
      std::lock_guard lock(write_mutex_);
      return stream_.Write(message);
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
    // Ends the stream for `why` (the first reason given is kept).
    void Fail(std::string why) {
      {
        std::lock_guard lock(mutex_);
        if (error_.empty()) error_ = std::move(why);
      }
      changed_.notify_all();
      context_->TryCancel();
    }

   private:
    struct Pending {
      core::RegionId origin;
      std::future<Result<RemoteApplied>> done;
      std::vector<TracedEvent> traced = {};
    };

    void Acknowledge() {
      for (;;) {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [this] { return closing_ || !pending_.empty(); });
        if (pending_.empty()) return;  // closing, and every queued batch was answered
        Pending next = std::move(pending_.front());
        lock.unlock();
        Result<RemoteApplied> applied = next.done.get();
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
          impl_->board_.Visible(next.origin, applied->applied_hlcs, WallMs());
          if (!next.traced.empty()) {
            // What the batch applied is now in the frontier; an event it skipped (ahead of a
            // missing predecessor) is not, and is traced when a later batch applies it.
            const core::VersionVector applied_now = impl_->host_->Applied();
            const uint64_t now_ns = core::WallNs();
            std::vector<core::Span> spans;
            for (TracedEvent& event : next.traced) {
              if (!applied_now.Covers(event.dot)) continue;
              event.spans.back().end_ns = std::max(event.spans.back().start_ns, now_ns);
              for (core::Span& span : event.spans) spans.push_back(std::move(span));
            }
            if (!spans.empty()) impl_->host_->RecordSpans(std::move(spans));
          }
        }
        outcome.last = !more;  // one acknowledgement covers every batch already applied
        const core::VersionVector frontier = impl_->host_->Applied();
        Ready ready;
        {
          std::lock_guard links_lock(impl_->mutex_);
          ready = impl_->exchange_.BatchApplied(id_, next.origin, outcome,
                                                applied.ok() ? "" : applied.status().message(),
                                                frontier, SteadyMs());
        }
        impl_->Carry(std::move(ready), this);
      }
    }

    Impl* const impl_;
    const uint64_t id_;  // the exchange's stream id
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

  // Traced events of a batch that arrived from `peer`, which sent it at `sent_us` (0: unknown)
  // (docs/operations.md#tracing): each one's send span (from its write in its origin, by the
  // origin's clock, to the batch leaving `peer`), wire span (to now) and apply span (ended when
  // the batch is applied). Events applied here already (a relayed or hedged copy) are left out.
  std::vector<TracedEvent> TraceArrivals(core::RegionId peer,
                                         const std::vector<core::Event>& events, uint64_t sent_us) {
    std::vector<TracedEvent> traced;
    const uint64_t now_ns = core::WallNs();
    std::optional<core::VersionVector> applied;
    std::string region, origin, via;  // a batch holds the events of one origin
    for (const core::Event& event : events) {
      if (event.trace.empty()) continue;
      if (!applied) {
        applied = host_->Applied();
        std::lock_guard lock(mutex_);
        region = exchange_.NameOf(exchange_.options().self);
        origin = exchange_.NameOf(event.dot.origin);
        via = exchange_.NameOf(peer);
      }
      if (applied->Covers(event.dot)) continue;
      core::Span span;
      span.trace_id = std::string(core::TraceId(event.trace));
      span.parent_span_id = std::string(core::TraceSpanId(event.trace));
      span.region = region;
      span.attributes = {{"meridian.event", origin + ":" + std::to_string(event.dot.seq)},
                         {"meridian.key", event.key},
                         {"meridian.origin", origin},
                         {"meridian.via", via}};
      // Each step starts where the one before ended (clocks of different hosts: never earlier).
      const auto step = [&](const char* name, uint64_t start_ns, uint64_t end_ns) {
        core::Span part = span;
        part.span_id = core::NewSpanId();
        part.name = name;
        part.start_ns = start_ns;
        part.end_ns = std::max(start_ns, end_ns);
        return part;
      };
      const uint64_t written_ns = core::HlcPhysicalMs(event.hlc) * 1'000'000;
      TracedEvent entry{event.dot, {}};
      uint64_t wire_from = written_ns;
      if (sent_us != 0) {
        entry.spans.push_back(step("meridian.send", written_ns, sent_us * 1000));
        wire_from = entry.spans.back().end_ns;
      }
      entry.spans.push_back(step("meridian.wire", wire_from, now_ns));
      entry.spans.push_back(step("meridian.apply", entry.spans.back().end_ns, 0));
      traced.push_back(std::move(entry));
    }
    return traced;
  }

  // Reads the peer's stream until it ends; returns why it ended.
  std::string Serve(core::RegionId peer, const Exchange::Dialed& dialed,
                    grpc::ClientReaderWriter<wire::ToSender, wire::ToReceiver>& stream,
                    grpc::ClientContext* context) {
    const BatchLimits batch_limits;
    const uint64_t id = dialed.stream;
    PeerStream inbound(this, id, stream, context);
    {
      std::lock_guard lock(mutex_);
      receiving_[id] = &inbound;
    }
    struct Unregister {  // before `inbound` goes
      Impl* impl;
      uint64_t id;
      ~Unregister() {
        std::lock_guard lock(impl->mutex_);
        impl->receiving_.erase(id);
      }
    } unregister{this, id};
    if (!inbound.Write(dialed.subscribe)) return "cannot reach the peer";
    BatchStreamDecoder decoder;  // this stream's batches, in order
    wire::ToReceiver message;
    while (stream.Read(&message)) {
      const uint64_t now = SteadyMs();
      const core::VersionVector applied = host_->Applied();
      bool decode = false;
      Ready ready;
      {
        std::lock_guard lock(mutex_);
        ready = exchange_.Received(id, message, applied, now, &decode);
      }
      Carry(std::move(ready), &inbound);
      if (decode) {
        const wire::Batch& batch = message.batch();
        const core::RegionId origin = static_cast<core::RegionId>(batch.origin());
        auto events = decoder.DecodeRemote(batch.events(), batch_limits, kRemoteLimits);
        if (events.ok()) PoisonForTests(&events.value());
        Ready decoded;
        {
          std::lock_guard lock(mutex_);
          decoded = exchange_.Decoded(id, origin, &events, WallMs());
        }
        if (decoded.submit) {
          board_.BatchReceived(peer, events->size(), batch.events().size(), batch.raw_bytes());
          std::vector<core::HlcTimestamp> hlcs;
          hlcs.reserve(events->events.size());
          for (const core::Event& event : events->events) hlcs.push_back(event.hlc);
          board_.Arrived(origin, hlcs, WallMs());
          std::vector<TracedEvent> traced = TraceArrivals(peer, events->events, batch.sent_us());
          if (!inbound.Submit(origin, std::move(events).value(), std::move(traced))) {
            return "the node is stopping";
          }
        }
        Carry(std::move(decoded), &inbound);
      }
      if (!inbound.error().empty()) break;
    }
    const std::string error = inbound.error();
    return error.empty() ? "the stream closed" : error;
  }

  // The periodic tick: the exchange's (relays, silence, hedges, rebuilding), log retention, and
  // joining the link threads that finished.
  void RunTicker() {
    while (Pause(exchange_.options().tick_ms)) {
      ReapLinks();
      const core::VersionVector applied = host_->Applied();
      const uint64_t now = SteadyMs();
      Ready ready;
      core::VersionVector floor;
      bool retain = false;
      {
        std::lock_guard lock(mutex_);
        ready = exchange_.Tick(applied, now);
        if (retention_.Due(now)) {
          retain = true;
          floor = exchange_.RetentionFloor(applied, now, &ready);
          board_.SetReleased(exchange_.released());
        }
      }
      if (retain) {
        retention_.Run(host_->store(), exchange_, floor, applied, WallMs(), &ready);
        board_.SetRetention(retention_.log_bytes(), retention_.trimmed_through());
      }
      Carry(std::move(ready), nullptr);
    }
  }

  Host* const host_;
  const TransportConfig config_;
  StatusBoard& board_;
  // [tls]: the watched certificate files every credential uses (null without [tls]).
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> tls_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;

  std::mutex mutex_;  // guards the members below
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;
  Exchange exchange_;
  uint64_t next_serving_ = 1;
  std::map<core::RegionId, int> serving_streams_;  // serving streams per subscriber
  std::map<uint64_t, std::shared_ptr<grpc::ClientContext>> contexts_;  // by stream id, dialling
  std::map<uint64_t, PeerStream*> receiving_;                          // by stream id, reading
  grpc::ClientContext* reseed_context_ = nullptr;  // the re-seed's call, while one runs
  struct LinkThread {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<LinkThread> link_threads_;  // dialling and reading streams (SpawnLink)
  // Snapshots served to re-seeding regions.
  SnapshotServer snapshots_{SnapshotServer::Options{}, (WallMs() << 16) | 1};
  std::vector<std::thread> threads_;  // the ticker, the verifier and the re-seed
  Retention retention_;               // ticker thread only

  // Verification: the verifier, its calls out and their answers (guarded by verify_mutex_).
  std::mutex verify_mutex_;
  std::condition_variable verify_wake_;
  Verifier verifier_{config_.verify, exchange_.peers(), SteadyMs()};
  std::set<std::shared_ptr<VerifyCall>> verify_calls_;
  std::vector<std::shared_ptr<VerifyCall>> verify_answers_;
  std::map<core::RegionId, std::unique_ptr<wire::Replication::Stub>> verify_stubs_;
};

Replicator::Replicator(Host* host) : impl_(std::make_unique<Impl>(host)) {}
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
