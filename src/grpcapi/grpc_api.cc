#include "grpcapi/grpc_api.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "api/forward.h"
#include "api/request.h"
#include "api/service.h"
#include "api/session_token.h"
#include "api/two_phase.h"
#include "auth/grpc_tls.h"
#include "core/hlc.h"
#include "meridian/api.grpc.pb.h"

namespace meridian::grpcapi {
namespace {

namespace v1 = meridian::api::v1;
using api::ApiError;
using Clock = std::chrono::steady_clock;

// A parked call re-checks the client (cancelled, deadline passed) at least this often.
constexpr auto kPollInterval = std::chrono::milliseconds(200);
// How long Stop lets calls in flight answer before cancelling them.
constexpr auto kShutdownGrace = std::chrono::seconds(2);
constexpr uint64_t kDefaultWaitMs = 1000;
constexpr uint64_t kDefaultDurabilityTimeoutMs = 5000;
constexpr uint32_t kDefaultLimit = 100;
constexpr uint32_t kDurabilityRegionsMax = 31;
constexpr int kKeepaliveMs = 5000;
// A scan page stays under what a gRPC client receives by default (4 MiB), with room for the
// message around its items, whatever [http] scan_page_bytes_max allows HTTP pages.
constexpr size_t kScanPageBytesMax = (4 << 20) - (64 << 10);

// The gRPC code of an API error; the error's own code travels in the `meridian-error` trailer
// (docs/grpc-api.md, "Errors").
grpc::StatusCode CodeOf(const ApiError& error) {
  if (error.code == "slow_consumer") return grpc::StatusCode::ABORTED;
  switch (error.status) {
    case 400:
    case 413:  // too_large: the request can never succeed as sent
      return grpc::StatusCode::INVALID_ARGUMENT;
    case 401:  // unauthenticated: no token, or one that does not verify
      return grpc::StatusCode::UNAUTHENTICATED;
    case 403:  // forbidden: outside the token's claims
      return grpc::StatusCode::PERMISSION_DENIED;
    case 404:
      return grpc::StatusCode::NOT_FOUND;
    case 409:  // not_a_number, bound_exceeded
    case 412:  // precondition_failed
    case 422:  // idempotency_key_reused
      return grpc::StatusCode::FAILED_PRECONDITION;
    case 410:  // resume_point_trimmed: before the range of changes kept
      return grpc::StatusCode::OUT_OF_RANGE;
    case 429:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 423:  // locked: a two-phase transaction holds the key; retrying helps
    case 503:
      return grpc::StatusCode::UNAVAILABLE;
    case 504:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    default:
      return grpc::StatusCode::INTERNAL;
  }
}

grpc::Status Fail(grpc::ServerContext* context, const ApiError& error) {
  context->AddTrailingMetadata("meridian-error", error.code);
  if (!error.oldest.empty()) context->AddTrailingMetadata("meridian-oldest", error.oldest);
  return grpc::Status(CodeOf(error), error.code + ": " + error.message);
}

ApiError BadParameter(std::string message) {
  return ApiError{400, "bad_parameter", std::move(message), {}};
}

// Wakes a call parked in a wait or a watch: commits, acknowledgements, new changes and Stop all
// bump the count. A waiter reads the count before checking its condition, so a wake between the
// check and the wait is not lost.
class Waiter {
 public:
  void Wake() {
    {
      std::lock_guard lock(mutex_);
      ++wakes_;
    }
    cv_.notify_all();
  }
  uint64_t wakes() {
    std::lock_guard lock(mutex_);
    return wakes_;
  }
  void WaitPast(uint64_t seen, Clock::time_point until) {
    std::unique_lock lock(mutex_);
    cv_.wait_until(lock, until, [&] { return wakes_ != seen; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t wakes_ = 0;
};

// The session token and wait bound every call may carry.
struct Waits {
  std::optional<core::VersionVector> session;
  uint64_t wait_ms = kDefaultWaitMs;
};

std::optional<ApiError> ParseWaits(const std::string& session, const std::optional<uint64_t>& wait,
                                   Waits* out) {
  if (!session.empty()) {
    auto vv = api::DecodeSessionToken(session);
    if (!vv.ok()) return ApiError{400, "bad_session", vv.status().message(), {}};
    out->session = std::move(vv).value();
  }
  if (wait) {
    if (*wait > api::kWaitMsMax) {
      return BadParameter("wait_ms must be an integer from 0 to " +
                          std::to_string(api::kWaitMsMax));
    }
    out->wait_ms = *wait;
  }
  return std::nullopt;
}

std::optional<ApiError> ParseReadOptions(const v1::ReadOptions& options, Waits* out) {
  return ParseWaits(
      options.session(),
      options.has_wait_ms() ? std::optional<uint64_t>(options.wait_ms()) : std::nullopt, out);
}

std::optional<ApiError> ParseLimit(bool has_limit, uint32_t limit, size_t* out) {
  if (!has_limit) {
    *out = kDefaultLimit;
    return std::nullopt;
  }
  if (limit == 0 || limit > api::kScanLimitMax) {
    return BadParameter("limit must be an integer from 1 to " + std::to_string(api::kScanLimitMax));
  }
  *out = limit;
  return std::nullopt;
}

std::optional<ApiError> CheckPrefixAndAfter(const std::string& prefix, const std::string& after,
                                            const core::Limits& limits) {
  if (prefix.size() > limits.key_bytes_max || after.size() > limits.key_bytes_max) {
    return ApiError{
        413,
        "too_large",
        "prefix and after are keys: at most " + std::to_string(limits.key_bytes_max) + " bytes",
        {}};
  }
  return std::nullopt;
}

// A write as the API checked it: what node::WriteRequest needs plus the waits around it.
struct WriteCall {
  std::string key;
  core::Operation op;
  Waits waits;
  uint32_t durability_regions = 0;
  uint64_t durability_timeout_ms = kDefaultDurabilityTimeoutMs;
  std::string idempotency_key;
  std::optional<core::Condition> condition;
};

std::optional<ApiError> ParseWriteOptions(const v1::WriteOptions& options, WriteCall* call) {
  if (options.durability_regions() > kDurabilityRegionsMax) {
    return BadParameter("durability_regions must be from 0 to " +
                        std::to_string(kDurabilityRegionsMax));
  }
  call->durability_regions = options.durability_regions();
  if (options.has_durability_timeout_ms()) {
    if (options.durability_timeout_ms() > api::kWaitMsMax) {
      return BadParameter("durability_timeout_ms must be an integer from 0 to " +
                          std::to_string(api::kWaitMsMax));
    }
    call->durability_timeout_ms = options.durability_timeout_ms();
  }
  if (!options.idempotency_key().empty()) {
    if (!api::ValidIdempotencyKey(options.idempotency_key())) {
      return BadParameter("idempotency_key must be 1 to " +
                          std::to_string(api::kIdempotencyKeyBytesMax) +
                          " visible ASCII characters");
    }
    call->idempotency_key = options.idempotency_key();
  }
  auto condition = api::ParseCondition(call->key, options.if_match(), options.if_none_match());
  if (auto* error = std::get_if<ApiError>(&condition)) return *error;
  call->condition = std::get<std::optional<core::Condition>>(std::move(condition));
  return std::nullopt;
}

// A write's receipt as the HTTP API answers it (api::ReceiptJson, here or the home's) as the
// gRPC reply; confirmed_regions is the caller's.
void ReplyFromReceipt(const nlohmann::json& body, v1::WriteReceipt* reply) {
  const auto text = [&](const char* name) {
    auto it = body.find(name);
    return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  reply->set_event(text("event"));
  reply->set_hlc(text("hlc"));
  reply->set_session(text("session"));
  reply->set_version(text("version"));
  reply->set_replayed(body.value("replayed", false));
  reply->set_succeeded(body.value("succeeded", true));
  for (const nlohmann::json& event : body.value("events", nlohmann::json::array())) {
    if (event.is_string()) reply->add_events(event.get<std::string>());
  }
  reply->set_confirmed_regions(body.value("confirmed_regions", 0u));
}

}  // namespace

class GrpcApiServer::Impl final : public v1::Meridian::Service {
 public:
  Impl(node::Node* node, std::string address) : node_(node), address_(std::move(address)) {}
  ~Impl() override { Stop(); }

  meridian::Status Start() {
    // [tls]: TLS only, with the node's certificate (reloaded when its files change); clients
    // are not asked for certificates: they authenticate with tokens ([auth]).
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (const net::TlsFiles& tls = node_->config().tls; tls.enabled()) {
      auto watched = auth::WatchTlsFiles(tls);
      if (!watched.ok()) return watched.status();
      tls_ = std::move(watched).value();
      credentials = auth::TlsServerCredentials(tls_);
    }
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address_, credentials, &port_);
    builder.RegisterService(this);
    // A write carries a document of up to limits.document_bytes_max and a key besides.
    const core::Limits& limits = node_->config().limits;
    const size_t request_max = limits.document_bytes_max + limits.key_bytes_max + (64 << 10);
    builder.SetMaxReceiveMessageSize(static_cast<int>(std::max<size_t>(request_max, 4 << 20)));
    // Without this a second server could bind the same port (SO_REUSEPORT) and split the clients.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    // Keepalive pings find a client that vanished without closing, which would otherwise hold a
    // watch's thread in a blocked write until shutdown.
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveMs);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveMs);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 500);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0) {
      server_.reset();
      return meridian::Status(
          StatusCode::kUnavailable,
          "cannot listen for the gRPC API on " + address_ + " (in use or not a local address?)");
    }
    spdlog::info("region {} serving the gRPC API on {}{}", node_->config().region, address_,
                 tls_ ? " (TLS)" : "");
    return meridian::Status::Ok();
  }

  void Stop() {
    {
      std::lock_guard lock(waiters_mutex_);
      if (stopped_) return;
      stopped_ = true;
      stopping_ = true;
      for (const auto& waiter : waiters_) waiter->Wake();
    }
    if (server_) {
      server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
      server_->Wait();
    }
  }

  uint16_t port() const { return static_cast<uint16_t>(port_); }

  // --- writes ------------------------------------------------------------------------------------
  grpc::Status Put(grpc::ServerContext* context, const v1::PutRequest* request,
                   v1::WriteReceipt* reply) override {
    return Write(
        context, api::Route::kPutDocument, request->key(), request->options(),
        [&](core::Operation* op) {
          return api::ParseWriteBody(api::Route::kPutDocument, request->doc(),
                                     node_->config().limits, op);
        },
        reply, nullptr, request->doc());
  }

  grpc::Status Patch(grpc::ServerContext* context, const v1::PatchRequest* request,
                     v1::WriteReceipt* reply) override {
    return Write(
        context, api::Route::kPatchDocument, request->key(), request->options(),
        [&](core::Operation* op) {
          return api::ParseWriteBody(api::Route::kPatchDocument, request->doc(),
                                     node_->config().limits, op);
        },
        reply, nullptr, request->doc());
  }

  grpc::Status Increment(grpc::ServerContext* context, const v1::IncrementRequest* request,
                         v1::WriteReceipt* reply) override {
    return Write(
        context, api::Route::kIncrementDocument, request->key(), request->options(),
        [&](core::Operation* op) -> std::optional<ApiError> {
          op->kind = core::OpKind::kIncrement;
          for (const auto& entry : request->deltas()) {
            op->counters.push_back(core::CounterDelta{entry.first, entry.second});
          }
          // Sorts the counters and checks names and limits, as for an HTTP body.
          meridian::Status status = core::CheckCanonicalOperation(op, node_->config().limits);
          if (!status.ok()) return api::ErrorFromStatus(status);
          return std::nullopt;
        },
        reply, nullptr,
        [&] {
          nlohmann::json deltas = nlohmann::json::object();
          for (const auto& [field, delta] : request->deltas()) deltas[field] = delta;
          return deltas.dump();
        }());
  }

  grpc::Status Delete(grpc::ServerContext* context, const v1::DeleteRequest* request,
                      v1::WriteReceipt* reply) override {
    return Write(
        context, api::Route::kDeleteDocument, request->key(), request->options(),
        [](core::Operation* op) -> std::optional<ApiError> {
          op->kind = core::OpKind::kDelete;
          return std::nullopt;
        },
        reply);
  }

  grpc::Status Txn(grpc::ServerContext* context, const v1::TxnRequest* request,
                   v1::WriteReceipt* reply) override {
    auto txn = std::make_shared<core::Transaction>();
    std::optional<ApiError> parsed =
        api::ParseTransaction(request->body(), node_->config().limits, txn.get());
    if (parsed) txn = std::make_shared<core::Transaction>();  // the token is checked first
    return Write(
        context, api::Route::kTransaction, std::string(), request->options(),
        [&](core::Operation*) { return parsed; }, reply, txn, request->body());
  }

  grpc::Status PutBounds(grpc::ServerContext* context, const v1::PutBoundsRequest* request,
                         v1::WriteReceipt* reply) override {
    return Write(
        context, api::Route::kPutBounds, request->key(), request->options(),
        [&](core::Operation* op) {
          return api::ParseBoundsBody(request->body(), node_->config().limits, op);
        },
        reply);
  }

  // --- reads -------------------------------------------------------------------------------------
  grpc::Status GetBounds(grpc::ServerContext* context, const v1::GetBoundsRequest* request,
                         v1::GetBoundsResponse* reply) override {
    const auto started = Clock::now();
    Waits waits;
    std::optional<ApiError> error = CheckToken(context, api::Route::kGetBounds, request->key());
    if (!error) error = api::CheckKey(request->key(), node_->config().limits);
    if (!error) error = ParseReadOptions(request->options(), &waits);
    if (!error) error = WaitForSession(context, waits);
    if (!error) {
      auto bounds = api::BoundsJson(*node_, request->key());
      if (auto* refused = std::get_if<ApiError>(&bounds)) {
        error = *refused;
      } else {
        reply->set_json(std::get<nlohmann::json>(bounds).dump());
      }
    }
    return Answer(context, api::Route::kGetBounds, started, error);
  }

  grpc::Status Get(grpc::ServerContext* context, const v1::GetRequest* request,
                   v1::GetResponse* reply) override {
    const auto started = Clock::now();
    Waits waits;
    std::optional<ApiError> error = CheckToken(context, api::Route::kGetDocument, request->key());
    if (!error) error = api::CheckKey(request->key(), node_->config().limits);
    if (!error) error = ParseReadOptions(request->options(), &waits);
    std::optional<api::StrongRoute> strong;
    if (!error) {
      error = ParseConsistency(request->options().consistency(), &strong, api::Route::kGetDocument,
                               request->key(), nullptr);
    }
    if (!error && strong && !strong->here) {
      const uint64_t timeout_ms =
          request->options().has_timeout_ms() ? request->options().timeout_ms() : 5000;
      api::ForwardRequest forward =
          api::HttpFormOf(api::Route::kGetDocument, request->key(), "", 0, timeout_ms);
      api::AddForwardHeaders(
          *node_,
          {.authorization = Authorization(context), .session = request->options().session()},
          /*write=*/false, &forward);
      const api::Forwarded forwarded =
          api::Forward(*node_, strong->home, forward, std::chrono::milliseconds(timeout_ms));
      if (forwarded.status == 404 &&
          nlohmann::json::parse(forwarded.body, nullptr, false).value("error", "") == "not_found") {
        return Answer(context, api::Route::kGetDocument, started, std::nullopt);
      }
      error = api::ForwardedError(*strong, forwarded, /*write=*/false, "");
      if (!error) {
        reply->set_found(true);
        auto etag = forwarded.headers.find("etag");
        if (etag != forwarded.headers.end() && etag->second.size() >= 2) {
          reply->set_version(etag->second.substr(1, etag->second.size() - 2));
        }
        reply->set_doc(forwarded.body);
      }
      return Answer(context, api::Route::kGetDocument, started, error);
    }
    if (!error && strong) {
      // The home: not while rebuilding, when it may lack strong writes it acknowledged.
      node::Region& region = node_->region();
      meridian::Status readable = region.CheckStrongRead(request->key());
      if (readable.code() == StatusCode::kLocked) {
        // Held by a two-phase transaction: it commits or aborts within about a round trip.
        const uint64_t timeout_ms =
            request->options().has_timeout_ms() ? request->options().timeout_ms() : 5000;
        WaitUntil(context, Clock::now() + std::chrono::milliseconds(timeout_ms), [&] {
          return region.CheckStrongRead(request->key()).code() != StatusCode::kLocked;
        });
        readable = region.CheckStrongRead(request->key());
      }
      if (!readable.ok()) error = api::ErrorFromStatus(readable);
    }
    if (!error) error = WaitForSession(context, waits);
    if (!error) {
      auto view = node_->ReadView(request->key());
      if (!view.ok()) {
        error = api::ErrorFromStatus(view.status());
      } else if (view->has_value()) {
        reply->set_found(true);
        reply->set_version(core::DocumentVersion(core::RenderedDigest(request->key(), **view)));
        reply->set_doc(std::move(**view));
      }
    }
    return Answer(context, api::Route::kGetDocument, started, error);
  }

  grpc::Status Scan(grpc::ServerContext* context, const v1::ScanRequest* request,
                    v1::ScanResponse* reply) override {
    const auto started = Clock::now();
    Waits waits;
    size_t limit = kDefaultLimit;
    std::optional<ApiError> error = CheckToken(context, api::Route::kScan, {}, request->prefix());
    if (!error) error = ParseReadOptions(request->options(), &waits);
    if (!error) error = ParseLimit(request->has_limit(), request->limit(), &limit);
    if (!error) {
      error = CheckPrefixAndAfter(request->prefix(), request->after(), node_->config().limits);
    }
    if (!error) error = WaitForSession(context, waits);
    if (!error) {
      std::string last;
      auto more = api::ScanPage(node_->store(), request->prefix(), request->after(), limit,
                                std::min(node_->config().scan_page_bytes_max, kScanPageBytesMax),
                                [&](std::string_view key, std::string_view doc) {
                                  v1::ScanItem* item = reply->add_items();
                                  item->set_key(std::string(key));
                                  item->set_doc(std::string(doc));
                                  last = key;
                                });
      if (!more.ok()) {
        error = api::ErrorFromStatus(more.status());
        reply->Clear();
      } else if (*more) {
        reply->set_next(last);
      }
    }
    return Answer(context, api::Route::kScan, started, error);
  }

  grpc::Status Conflicts(grpc::ServerContext* context, const v1::ConflictsRequest* request,
                         v1::ConflictsResponse* reply) override {
    const auto started = Clock::now();
    Waits waits;
    size_t limit = kDefaultLimit;
    std::optional<ApiError> error = CheckToken(context, api::Route::kConflicts);
    if (!error) error = ParseReadOptions(request->options(), &waits);
    if (!error) error = ParseLimit(request->has_limit(), request->limit(), &limit);
    if (!error) error = WaitForSession(context, waits);
    if (!error) {
      auto records = node_->store().RecentConflicts(limit);
      if (!records.ok()) {
        error = api::ErrorFromStatus(records.status());
      } else {
        for (std::string& record : *records) reply->add_conflicts(std::move(record));
        auto total = node_->store().ConflictCount();
        reply->set_total(total.ok() ? *total : 0);
      }
    }
    return Answer(context, api::Route::kConflicts, started, error);
  }

  grpc::Status Verify(grpc::ServerContext* context, const v1::VerifyRequest* request,
                      v1::VerifyResponse* reply) override {
    const auto started = Clock::now();
    std::optional<ApiError> error =
        CheckToken(context, request->now() ? api::Route::kVerifyNow : api::Route::kVerify);
    if (!error && request->now()) {
      error = api::VerifyNow(*node_, request->peer());
      if (!error) reply->set_json(R"({"started":true})");
    } else if (!error) {
      reply->set_json(api::VerifyJson(*node_).dump());
    }
    return Answer(context, request->now() ? api::Route::kVerifyNow : api::Route::kVerify, started,
                  error);
  }

  grpc::Status Repairs(grpc::ServerContext* context, const v1::RepairsRequest* request,
                       v1::RepairsResponse* reply) override {
    return ListJson(context, *request, reply, api::Route::kRepairs,
                    [this](size_t limit) { return api::RepairsJson(*node_, limit); });
  }

  grpc::Status DeadLetters(grpc::ServerContext* context, const v1::DeadLettersRequest* request,
                           v1::DeadLettersResponse* reply) override {
    return ListJson(context, *request, reply, api::Route::kDeadLetters,
                    [this](size_t limit) { return api::DeadLettersJson(*node_, limit); });
  }

  // A list of JSON records (repairs, dead letters): the limit and read options every read takes,
  // then `list` answers {"items": [...], "total": N} as it does for HTTP.
  template <typename Request, typename Response>
  grpc::Status ListJson(grpc::ServerContext* context, const Request& request, Response* reply,
                        api::Route route,
                        const std::function<std::variant<nlohmann::json, ApiError>(size_t)>& list) {
    const auto started = Clock::now();
    Waits waits;
    size_t limit = kDefaultLimit;
    std::optional<ApiError> error = CheckToken(context, route);
    if (!error) error = ParseReadOptions(request.options(), &waits);
    if (!error) error = ParseLimit(request.has_limit(), request.limit(), &limit);
    if (!error) error = WaitForSession(context, waits);
    if (!error) {
      auto answer = list(limit);
      if (auto* refused = std::get_if<ApiError>(&answer)) {
        error = *refused;
      } else {
        const nlohmann::json& json = std::get<nlohmann::json>(answer);
        for (const nlohmann::json& item : json["items"]) reply->add_items(item.dump());
        reply->set_total(json["total"].get<uint64_t>());
      }
    }
    return Answer(context, route, started, error);
  }

  grpc::Status RetryDeadLetter(grpc::ServerContext* context,
                               const v1::RetryDeadLetterRequest* request,
                               v1::RetryDeadLetterResponse* reply) override {
    const auto started = Clock::now();
    std::optional<ApiError> error = CheckToken(context, api::Route::kRetryDeadLetter);
    if (!error && request->id() == 0) {
      error = ApiError{400, "bad_parameter", "id must be a dead letter id (an integer from 1)", {}};
    } else if (!error) {
      auto done = std::make_shared<std::promise<Result<node::DeadLetterRetry>>>();
      std::future<Result<node::DeadLetterRetry>> outcome = done->get_future();
      if (!node_->SubmitDeadLetterRetry(request->id(), [done](Result<node::DeadLetterRetry> r) {
            done->set_value(std::move(r));
          })) {
        error = ApiError{503, "unavailable", "the node is stopping", {}};
      } else {
        auto answer = api::DeadLetterRetryAnswer(request->id(), outcome.get());
        if (auto* refused = std::get_if<ApiError>(&answer)) {
          error = *refused;
        } else {
          reply->set_json(std::get<nlohmann::json>(answer).dump());
        }
      }
    }
    return Answer(context, api::Route::kRetryDeadLetter, started, error);
  }

  grpc::Status Ids(grpc::ServerContext* context, const v1::IdsRequest* request,
                   v1::IdsResponse* reply) override {
    const auto started = Clock::now();
    const uint64_t count = request->has_count() ? request->count() : 1;
    std::optional<ApiError> error = CheckToken(context, api::Route::kIds);
    if (!error) error = api::CheckIdCount(count);
    if (!error) {
      auto ids = api::IssueIds(*node_, static_cast<uint32_t>(count));
      if (auto* refused = std::get_if<ApiError>(&ids)) {
        error = *refused;
      } else {
        const auto& issued = std::get<std::vector<uint64_t>>(ids);
        reply->mutable_ids()->Reserve(static_cast<int>(issued.size()));
        for (uint64_t id : issued) reply->add_ids(id);
      }
    }
    return Answer(context, api::Route::kIds, started, error);
  }

  grpc::Status Status(grpc::ServerContext* context, const v1::StatusRequest* request,
                      v1::StatusResponse* reply) override {
    const auto started = Clock::now();
    Waits waits;
    std::optional<ApiError> error = CheckToken(context, api::Route::kStatus);
    if (!error) error = ParseReadOptions(request->options(), &waits);
    if (!error) error = WaitForSession(context, waits);
    if (!error) {
      const nlohmann::json status = api::StatusJson(*node_);
      reply->set_json(status.dump());
      reply->set_region(status["region"].get<std::string>());
      reply->set_digest(status["digest"].get<std::string>());
      reply->set_documents(status["documents"].get<uint64_t>());
    }
    return Answer(context, api::Route::kStatus, started, error);
  }

  // --- watch -------------------------------------------------------------------------------------
  // As GET /v1/watch: the changes logged after the resume point (each with the document as that
  // change left it), then live changes, each once and in commit order.
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::Change>* writer) override {
    node::Region& region = node_->region();
    const node::NodeConfig& config = node_->config();
    Waits waits;
    std::optional<ApiError> error = CheckToken(context, api::Route::kWatch, {}, request->prefix());
    if (!error) error = ParseReadOptions(request->options(), &waits);
    if (!error) error = CheckPrefixAndAfter(request->prefix(), "", config.limits);
    if (error) return Fail(context, *error);

    uint64_t resume_lsn = 0;
    const bool resuming = !request->resume_from().empty();
    if (resuming) {
      auto lsn = api::ResumeLsn(*node_, request->resume_from());
      if (auto* refused = std::get_if<ApiError>(&lsn)) return Fail(context, *refused);
      resume_lsn = std::get<uint64_t>(lsn);
    }
    core::VersionVector seen;  // since: changes of these events are not sent again
    if (!request->since().empty()) {
      if (resuming) {
        return Fail(context, ApiError{400,
                                      "bad_parameter",
                                      "a watch resumes either from resume_from or after since, "
                                      "not both",
                                      {}});
      }
      auto parsed = api::ParseSince(*node_, request->since());
      if (auto* refused = std::get_if<ApiError>(&parsed)) return Fail(context, *refused);
      seen = std::get<core::VersionVector>(parsed);
    }
    // Like any read, a watch with a session token starts once this region covers it.
    if (auto refused = WaitForSession(context, waits)) return Fail(context, *refused);

    auto waiter = Enroll();
    uint64_t subscribed_lsn = 0;
    std::shared_ptr<node::Watcher> watcher = node_->watches().Subscribe(
        request->prefix(), config.watch_buffer_max, [waiter] { waiter->Wake(); }, &subscribed_lsn);
    if (!watcher) {
      Withdraw(waiter);
      return Fail(context, api::TooManyWatches());
    }
    // A `since` watch's replay starts where the subscription leaves off: found before the stream
    // starts, so that a resume point the change log no longer covers is refused like
    // resume_from's.
    bool replay = resuming;
    if (!request->since().empty()) {
      auto lsn = api::SinceLsn(*node_, seen, subscribed_lsn);
      if (auto* refused = std::get_if<ApiError>(&lsn)) {
        node_->watches().Unsubscribe(watcher);
        Withdraw(waiter);
        return Fail(context, *refused);
      }
      resume_lsn = std::get<uint64_t>(lsn);
      replay = true;
    }
    // Every change committed from here on reaches this watch: tell the client it is registered.
    writer->SendInitialMetadata();

    std::string last_event = request->resume_from();
    v1::Change message;
    const auto send = [&](const node::Change& change) {
      if (!api::WatchSends(region, change, request->prefix(), seen, &last_event)) return true;
      message.Clear();
      message.set_key(change.key);
      if (change.doc) message.set_doc(*change.doc);
      if (change.merged()) {
        message.set_merged(true);
      } else {
        message.set_event(last_event);
      }
      message.set_hlc(core::FormatHlc(change.hlc));
      return writer->Write(message);
    };

    grpc::Status outcome = grpc::Status::OK;
    bool open = true;
    uint64_t sent_lsn = replay ? resume_lsn : subscribed_lsn;
    std::vector<node::Change> page;
    while (replay && open && sent_lsn < subscribed_lsn) {
      if (auto error = api::ReadBacklog(*node_, sent_lsn, subscribed_lsn, last_event, &page)) {
        // Never skip silently to later changes: that would leave a gap.
        outcome = Fail(context, *error);
        open = false;
        break;
      }
      if (page.empty()) break;
      for (const node::Change& change : page) {
        sent_lsn = change.lsn;
        if (!send(change)) {
          open = false;
          break;
        }
      }
    }
    sent_lsn = std::max(sent_lsn, subscribed_lsn);

    while (open) {
      const uint64_t seen = waiter->wakes();
      bool overflowed = false;
      std::vector<node::Change> changes = watcher->Take(&overflowed);
      for (const node::Change& change : changes) {
        if (change.lsn <= sent_lsn) continue;
        sent_lsn = change.lsn;
        if (!send(change)) {
          open = false;
          break;
        }
      }
      if (!open) break;
      if (overflowed) {
        context->AddTrailingMetadata("meridian-resume-from", last_event);
        outcome = Fail(context, api::SlowConsumer(config.watch_buffer_max, last_event));
        break;
      }
      if (!changes.empty()) continue;
      if (stopping_) {
        context->AddTrailingMetadata("meridian-resume-from", last_event);
        outcome = Fail(context, ApiError{503,
                                         "unavailable",
                                         "the region is shutting down; resume from event " +
                                             (last_event.empty() ? "(none yet)" : last_event),
                                         {}});
        break;
      }
      if (context->IsCancelled()) break;
      waiter->WaitPast(seen, Clock::now() + kPollInterval);
    }
    node_->watches().Unsubscribe(watcher);
    Withdraw(waiter);
    return outcome;
  }

 private:
  // The write path shared by Put, Patch, Increment and Delete, in the order HTTP checks and
  // answers: key, session and wait, body, durability and idempotency options; then the session
  // wait, the write, the durability wait.
  grpc::Status Write(grpc::ServerContext* context, api::Route route, const std::string& key,
                     const v1::WriteOptions& options,
                     const std::function<std::optional<ApiError>(core::Operation*)>& build,
                     v1::WriteReceipt* reply, std::shared_ptr<core::Transaction> txn = nullptr,
                     const std::string& http_body = "") {
    const auto started = Clock::now();
    WriteCall call;
    call.key = key;
    // The token first; the idempotency key it scopes is checked with the other options.
    api::ApiCall access;
    access.route = route;
    access.key = key;
    access.idempotency_key = options.idempotency_key();
    access.txn = txn;
    std::optional<ApiError> error = CheckToken(context, &access);
    if (!error && !txn) error = api::CheckKey(key, node_->config().limits);
    if (!error) {
      error = ParseWaits(
          options.session(),
          options.has_wait_ms() ? std::optional<uint64_t>(options.wait_ms()) : std::nullopt,
          &call.waits);
    }
    if (!error) error = build(&call.op);
    if (!error) error = ParseWriteOptions(options, &call);
    if (!error && txn && call.condition) {
      error = ApiError{400,
                       "bad_parameter",
                       "a transaction states its conditions in its body, not in if_match or "
                       "if_none_match",
                       {}};
    }
    if (!error && !call.idempotency_key.empty()) call.idempotency_key = access.idempotency_key;
    // consistency=strong: in the key's home, forwarded there from here (api::RouteStrong).
    std::optional<api::StrongRoute> strong;
    if (!error) error = ParseConsistency(options.consistency(), &strong, route, key, txn);
    if (!error && strong && !strong->here) {
      return ForwardWrite(context, route, key, http_body, options, call, *strong, reply, started);
    }
    if (!error) error = WaitForSession(context, call.waits);
    if (!error) error = api::CheckDurabilityRegions(node_->config(), call.durability_regions);
    if (error) return Answer(context, route, started, error);

    Result<node::Receipt> receipt = meridian::Status(StatusCode::kInternal, "not run");
    if (strong && strong->across()) {
      // Keys in different homes: two-phase commit, coordinated here.
      api::CoordinateRequest coordinate;
      coordinate.txn = txn;
      coordinate.body = http_body;
      coordinate.authorization = std::string(Authorization(context));
      coordinate.idempotency_key = call.idempotency_key;
      coordinate.timeout_ms = call.durability_timeout_ms;
      auto coordinated = api::Coordinate(*node_, *strong, coordinate);
      if (auto* refused = std::get_if<ApiError>(&coordinated)) {
        return Answer(context, route, started, *refused);
      }
      receipt = std::move(std::get<api::Coordinated>(coordinated).receipt);
    } else {
      if (strong && api::HeldByTransaction(node_->region(), key, txn.get())) {
        WaitUntil(context, Clock::now() + std::chrono::milliseconds(call.durability_timeout_ms),
                  [&] { return !api::HeldByTransaction(node_->region(), key, txn.get()); });
      }
      node::WriteRequest write{key, std::move(call.op), std::move(call.idempotency_key)};
      write.condition = std::move(call.condition);
      write.txn = txn;
      write.strong = strong.has_value();
      receipt = node_->Write(std::move(write));
    }
    if (!receipt.ok() && receipt.status().code() == StatusCode::kNotHome && strong) {
      // The home moved away between the routing and the commit: to where it is now.
      std::optional<api::StrongRoute> now;
      if (!ParseConsistency("strong", &now, route, key, txn) && now && !now->here) {
        return ForwardWrite(context, route, key, http_body, options, call, *now, reply, started);
      }
    }
    if (!receipt.ok()) {
      return Answer(context, route, started, api::ErrorFromStatus(receipt.status()));
    }
    core::VersionVector session = receipt->frontier;
    if (call.waits.session) session.Merge(*call.waits.session);
    node::Region& region = node_->region();
    const nlohmann::json body =
        api::ReceiptJson(region, *receipt, api::EncodeSessionToken(session));
    ReplyFromReceipt(body, reply);
    if (call.durability_regions > 0 && receipt->dot.seq != 0) {
      // Other regions confirm by acknowledging the write over replication.
      const core::Dot dot = receipt->dot;
      const size_t wanted = call.durability_regions;
      const bool confirmed =
          WaitUntil(context, Clock::now() + std::chrono::milliseconds(call.durability_timeout_ms),
                    [&] { return api::DurabilityConfirmed(*node_, dot, wanted); });
      reply->set_confirmed_regions(static_cast<uint32_t>(node_->replication().RegionsHolding(dot)));
      if (!confirmed) {
        // The write is committed: the client needs its receipt even though the call failed.
        context->AddTrailingMetadata("meridian-event", reply->event());
        context->AddTrailingMetadata("meridian-hlc", reply->hlc());
        context->AddTrailingMetadata("meridian-session", reply->session());
        context->AddTrailingMetadata("meridian-confirmed-regions",
                                     std::to_string(reply->confirmed_regions()));
        return Answer(context, route, started,
                      ApiError{504,
                               "durability_timeout",
                               api::DurabilityTimeoutMessage(call.durability_regions,
                                                             call.durability_timeout_ms),
                               {}});
      }
    }
    return Answer(context, route, started, std::nullopt);
  }

  // consistency: "" or "eventual" (nothing), "strong" (where it runs: *route), else 400.
  std::optional<ApiError> ParseConsistency(const std::string& consistency,
                                           std::optional<api::StrongRoute>* route,
                                           api::Route call_route, const std::string& key,
                                           const std::shared_ptr<core::Transaction>& txn) {
    if (consistency.empty() || consistency == "eventual") return std::nullopt;
    if (consistency != "strong") {
      return ApiError{400, "bad_parameter", "consistency must be strong or eventual", {}};
    }
    api::ApiCall call;
    call.route = call_route;
    call.key = key;
    call.txn = txn;
    auto routed = api::RouteStrong(*node_, call);
    if (auto* error = std::get_if<ApiError>(&routed)) return *error;
    *route = std::get<api::StrongRoute>(routed);
    return std::nullopt;
  }

  // The `authorization` metadata of the call ("" when absent).
  static std::string_view Authorization(grpc::ServerContext* context) {
    const auto& metadata = context->client_metadata();
    auto it = metadata.find("authorization");
    return it == metadata.end() ? std::string_view()
                                : std::string_view(it->second.data(), it->second.size());
  }

  // A strong write of a region that is not its home, sent to the home over its HTTP API (as the
  // HTTP server forwards): the home's answer is the answer.
  grpc::Status ForwardWrite(grpc::ServerContext* context, api::Route route, const std::string& key,
                            const std::string& http_body, const v1::WriteOptions& options,
                            const WriteCall& call, const api::StrongRoute& home,
                            v1::WriteReceipt* reply, Clock::time_point started) {
    const uint64_t timeout_ms = call.durability_timeout_ms;
    api::ForwardRequest forward =
        api::HttpFormOf(route, key, http_body, call.durability_regions, timeout_ms);
    const std::string idempotency_key =
        api::AddForwardHeaders(*node_,
                               {.authorization = Authorization(context),
                                .session = options.session(),
                                .if_match = options.if_match(),
                                .if_none_match = options.if_none_match(),
                                .idempotency_key = options.idempotency_key()},
                               /*write=*/true, &forward);
    const api::Forwarded forwarded =
        api::Forward(*node_, home.home, forward, std::chrono::milliseconds(timeout_ms));
    if (auto error = api::ForwardedError(home, forwarded, /*write=*/true, idempotency_key)) {
      return Answer(context, route, started, error);
    }
    const nlohmann::json body = nlohmann::json::parse(forwarded.body, nullptr, false);
    if (!body.is_object()) {
      return Answer(context, route, started,
                    ApiError{502, "bad_home_answer", "the home's answer is not JSON", {}});
    }
    ReplyFromReceipt(body, reply);
    return Answer(context, route, started, std::nullopt);
  }

  // [auth] (api::CheckAccess): the refusal of `call`, from the `authorization` metadata, or
  // nullopt. Runs first in every handler, before anything else is looked at.
  std::optional<ApiError> CheckToken(grpc::ServerContext* context, api::ApiCall* call) {
    return api::CheckAccess(*node_, Authorization(context), call);
  }
  std::optional<ApiError> CheckToken(grpc::ServerContext* context, api::Route route,
                                     const std::string& key = {}, const std::string& prefix = {}) {
    api::ApiCall call;
    call.route = route;
    call.key = key;
    call.prefix = prefix;
    return CheckToken(context, &call);
  }

  // Records the call in the request metrics (under the HTTP status it would have had) and turns
  // an error into the gRPC status.
  grpc::Status Answer(grpc::ServerContext* context, api::Route route, Clock::time_point started,
                      const std::optional<ApiError>& error) {
    node_->metrics().ObserveRequest(route, error ? error->status : 200,
                                    std::chrono::duration<double>(Clock::now() - started).count());
    return error ? Fail(context, *error) : grpc::Status::OK;
  }

  std::optional<ApiError> WaitForSession(grpc::ServerContext* context, const Waits& waits) {
    if (!waits.session || waits.session->empty()) return std::nullopt;
    const core::VersionVector& token = *waits.session;
    const bool covered = WaitUntil(context, Clock::now() + std::chrono::milliseconds(waits.wait_ms),
                                   [&] { return node_->region().frontier().Dominates(token); });
    if (!covered) return api::SessionTimeout(waits.wait_ms);
    return std::nullopt;
  }

  // Blocks until ready() holds, the deadline passes, the server stops or the client gives up;
  // ready() is re-checked after every commit and every acknowledgement from a peer.
  bool WaitUntil(grpc::ServerContext* context, Clock::time_point deadline,
                 const std::function<bool()>& ready) {
    if (ready()) return true;
    auto waiter = Enroll();
    auto handle = node_->commits().Register([waiter] { waiter->Wake(); });
    bool done = false;
    for (;;) {
      const uint64_t seen = waiter->wakes();
      if ((done = ready())) break;
      const auto now = Clock::now();
      if (now >= deadline || stopping_ || context->IsCancelled()) break;
      waiter->WaitPast(seen, std::min(deadline, now + kPollInterval));
    }
    node_->commits().Unregister(handle);
    Withdraw(waiter);
    return done;
  }

  // Waiters are enrolled so that Stop can wake every parked call at once.
  std::shared_ptr<Waiter> Enroll() {
    auto waiter = std::make_shared<Waiter>();
    std::lock_guard lock(waiters_mutex_);
    waiters_.insert(waiter);
    if (stopping_) waiter->Wake();
    return waiter;
  }
  void Withdraw(const std::shared_ptr<Waiter>& waiter) {
    std::lock_guard lock(waiters_mutex_);
    waiters_.erase(waiter);
  }

  node::Node* const node_;
  const std::string address_;
  int port_ = 0;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> tls_;  // [tls]: the files
  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> stopping_{false};
  std::mutex waiters_mutex_;
  std::set<std::shared_ptr<Waiter>> waiters_;
  bool stopped_ = false;
};

GrpcApiServer::GrpcApiServer(node::Node* node, std::string address)
    : impl_(std::make_unique<Impl>(node, std::move(address))) {}
GrpcApiServer::~GrpcApiServer() = default;
Status GrpcApiServer::Start() {
  return impl_->Start();
}
void GrpcApiServer::Stop() {
  impl_->Stop();
}
uint16_t GrpcApiServer::port() const {
  return impl_->port();
}

}  // namespace meridian::grpcapi
