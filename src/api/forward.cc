#include "api/forward.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "client/http_client.h"
#include "net/host_port.h"
#include "net/tls_context.h"

namespace meridian::api {
namespace {

ApiError Error(int status, std::string code, std::string message) {
  return ApiError{status, std::move(code), std::move(message), {}};
}

// Every key a call reads or writes, once each.
std::vector<std::string> KeysOf(const ApiCall& call) {
  return call.txn ? call.txn->Keys() : std::vector<std::string>{call.key};
}

}  // namespace

std::variant<StrongRoute, ApiError> RouteStrong(node::Node& node, const ApiCall& call) {
  std::optional<node::Home> first;
  StrongRoute route;
  for (const std::string& key : KeysOf(call)) {
    std::optional<node::Home> home = node.homes().HomeOf(key);
    if (!home) {
      return Error(
          400, "no_home",
          "consistency=strong needs a home region, and '" + key + "' is under no [[homes]] prefix");
    }
    route.keys[home->region].push_back(key);
    if (!first) first = home;
  }
  if (!first) return route;  // a transaction with no keys: nothing to route
  route.home = first->region;
  route.home_name = node.homes().NameOf(first->region);
  // Across homes: coordinated here.
  route.here = route.across() || first->region == node.config().self().id;
  return route;
}

Forwarded Forward(node::Node& node, core::RegionId region, const ForwardRequest& request,
                  std::chrono::milliseconds timeout) {
  Forwarded out;
  const node::NodeConfig& config = node.config();
  const node::RegionAddress* address = nullptr;
  for (const node::RegionAddress& candidate : config.regions) {
    if (candidate.id == region) address = &candidate;
  }
  std::string host;
  uint16_t port = 0;
  if (address == nullptr || !net::SplitHostPort(address->http, &host, &port)) {
    out.error = "region has no HTTP address";
    return out;
  }
  // One kept connection per home and thread: a forward costs the home's round trip, not a
  // handshake too.
  thread_local std::map<std::string, std::unique_ptr<client::HttpClient>> connections;
  std::unique_ptr<client::HttpClient>& connection = connections[address->http];
  if (connection == nullptr) {
    client::TlsContext tls;
    if (config.tls.enabled()) {
      auto context = net::LoadClientContext(config.tls.ca_file);
      if (!context.ok()) {
        out.error = context.status().message();
        return out;
      }
      tls = std::move(context).value();
    }
    connection = std::make_unique<client::HttpClient>(host, port, timeout, tls);
  }
  connection->SetTimeout(timeout);
  client::HttpResponse response =
      connection->Request(request.method, request.target, request.body, request.headers);
  out.status = response.status;
  out.body = std::move(response.body);
  out.headers = std::move(response.headers);
  out.sent = response.sent;
  out.error = std::move(response.error);
  return out;
}

ApiError HomeUnavailable(const StrongRoute& route, const Forwarded& forwarded, bool write,
                         const std::string& idempotency_key) {
  std::string message = "the home region " + route.home_name + " could not be reached (" +
                        (forwarded.error.empty() ? "no answer" : forwarded.error) + ")";
  if (write && !forwarded.sent) message += ": nothing was applied";
  if (write && forwarded.sent) {
    message +=
        ": the write reached it and may have been applied there; retry with "
        "Idempotency-Key '" +
        idempotency_key + "' to learn its outcome without applying it twice";
  }
  return Error(503, "home_unavailable", std::move(message));
}

ForwardRequest HttpFormOf(Route route, const std::string& key, std::string body,
                          uint32_t durability_regions, uint64_t timeout_ms) {
  ForwardRequest request;
  const std::string path = "/v1/docs/" + client::EncodeKey(key);
  switch (route) {
    case Route::kPutDocument:
      request.method = "PUT";
      request.target = path;
      break;
    case Route::kPatchDocument:
      request.method = "PATCH";
      request.target = path;
      break;
    case Route::kIncrementDocument:
      request.method = "POST";
      request.target = path + "/incr";
      break;
    case Route::kDeleteDocument:
      request.method = "DELETE";
      request.target = path;
      break;
    case Route::kTransaction:
      request.method = "POST";
      request.target = "/v1/txn";
      break;
    default:
      request.method = "GET";
      request.target = path;
      break;
  }
  request.target += "?consistency=strong&timeout_ms=" + std::to_string(timeout_ms);
  if (durability_regions > 0) {
    request.target += "&durability=regions:" + std::to_string(durability_regions);
  }
  if (!body.empty()) request.headers["Content-Type"] = "application/json";
  request.body = std::move(body);
  return request;
}

std::optional<ApiError> ForwardedError(const StrongRoute& route, const Forwarded& forwarded,
                                       bool write, const std::string& idempotency_key) {
  if (forwarded.status == 0) return HomeUnavailable(route, forwarded, write, idempotency_key);
  if (forwarded.status >= 200 && forwarded.status < 300) return std::nullopt;
  if (forwarded.status == 421) {
    return Error(503, "home_unavailable",
                 "the home of this request's keys is moving (region " + route.home_name +
                     " is no longer it); nothing was applied: retry");
  }
  const nlohmann::json body = nlohmann::json::parse(forwarded.body, nullptr, false);
  if (!body.is_object()) {
    return Error(502, "bad_home_answer",
                 "the home region " + route.home_name + " answered HTTP " +
                     std::to_string(forwarded.status) + " without an error body");
  }
  return Error(forwarded.status, body.value("error", "internal"), body.value("message", ""));
}

std::string AddForwardHeaders(node::Node& node, const ClientHeaders& client, bool write,
                              ForwardRequest* request) {
  const std::pair<const char*, std::string_view> given[] = {
      {"Content-Type", client.content_type},   {"Authorization", client.authorization},
      {"Meridian-Session", client.session},    {"If-Match", client.if_match},
      {"If-None-Match", client.if_none_match}, {"traceparent", client.traceparent},
  };
  for (const auto& [name, value] : given) {
    if (!value.empty()) request->headers[name] = std::string(value);
  }
  std::string idempotency_key(client.idempotency_key);
  if (write && idempotency_key.empty()) {
    thread_local std::mt19937_64 random(std::random_device{}());
    static constexpr char kHex[] = "0123456789abcdef";
    idempotency_key = "forwarded-";
    for (int i = 0; i < 2; ++i) {
      uint64_t bits = random();
      for (int d = 0; d < 16; ++d, bits >>= 4) idempotency_key.push_back(kHex[bits & 0xf]);
    }
  }
  if (!idempotency_key.empty()) request->headers["Idempotency-Key"] = idempotency_key;
  request->headers[kForwardedHeader] = node.config().region;
  return idempotency_key;
}

std::variant<HomeMovePlan, ApiError> PlanHomeMove(node::Node& node, const ApiCall::HomeMove& move) {
  std::optional<node::Home> home = node.homes().Find(move.prefix);
  if (!home) {
    return Error(404, "unknown_home", "'" + move.prefix + "' is no home prefix ([[homes]])");
  }
  std::optional<core::RegionId> to = node.homes().IdOf(move.to);
  if (!to) return Error(400, "bad_parameter", "'" + move.to + "' is not a configured region");
  HomeMovePlan plan;
  plan.home = *home;
  plan.next = node::Home{home->prefix, *to, home->epoch + 1, move.force};
  plan.unchanged = !move.force && home->region == *to;
  plan.here = move.force || home->region == node.config().self().id;
  return plan;
}

nlohmann::json HomeJson(node::Node& node, const node::Home& home) {
  return {{"prefix", home.prefix},
          {"region", node.homes().NameOf(home.region)},
          {"epoch", home.epoch},
          {"forced", home.forced}};
}

nlohmann::json HomesJson(node::Node& node) {
  nlohmann::json homes = nlohmann::json::array();
  for (const node::Home& home : node.homes().All()) homes.push_back(HomeJson(node, home));
  return {{"homes", homes}};
}

struct ForwardPool::Impl {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::function<void()>> jobs;
  size_t queue_max = 0;
  bool stopping = false;
  std::vector<std::thread> threads;
};

ForwardPool::ForwardPool(size_t threads, size_t queue_max) : impl_(std::make_unique<Impl>()) {
  impl_->queue_max = queue_max;
  for (size_t i = 0; i < threads; ++i) {
    impl_->threads.emplace_back([impl = impl_.get()] {
      for (;;) {
        std::function<void()> job;
        {
          std::unique_lock lock(impl->mutex);
          impl->wake.wait(lock, [impl] { return impl->stopping || !impl->jobs.empty(); });
          if (impl->jobs.empty()) return;  // stopping, nothing left
          job = std::move(impl->jobs.front());
          impl->jobs.pop_front();
        }
        job();
      }
    });
  }
}

ForwardPool::~ForwardPool() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  for (std::thread& thread : impl_->threads) thread.join();
}

bool ForwardPool::Submit(std::function<void()> job) {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping || impl_->jobs.size() >= impl_->queue_max) return false;
    impl_->jobs.push_back(std::move(job));
  }
  impl_->wake.notify_one();
  return true;
}

}  // namespace meridian::api
