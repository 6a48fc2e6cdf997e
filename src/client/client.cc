#include "meridian/client.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "api/session_token.h"
#include "client/http_client.h"
#include "core/version_vector.h"
#include "net/host_port.h"
#include "net/tls_context.h"

namespace meridian {

namespace {

using Clock = std::chrono::steady_clock;

thread_local CallError tls_last_error;

constexpr size_t kRememberedKeysMax = 100'000;  // unknown-outcome keys -> their region
constexpr double kRttSmoothing = 0.3;           // weight of a new probe in the smoothed RTT

// The status of an API error: by its code where the HTTP status is shared (409, 503, ...), else
// by the HTTP status.
StatusCode CodeOfError(int status, const std::string& code) {
  static const std::map<std::string, StatusCode, std::less<>> kByCode = {
      {"not_a_number", StatusCode::kTypeMismatch},
      {"bound_exceeded", StatusCode::kBoundExceeded},
      {"bounded_field", StatusCode::kBoundedField},
      {"locked", StatusCode::kLocked},
      {"transaction_aborted", StatusCode::kUnavailable},  // nothing applied: retry
      {"not_home", StatusCode::kNotHome},
      {"home_unavailable", StatusCode::kHomeUnavailable},
      {"rebuilding", StatusCode::kRebuilding},
      {"unauthenticated", StatusCode::kUnauthenticated},
      {"forbidden", StatusCode::kForbidden},
  };
  if (auto it = kByCode.find(code); it != kByCode.end()) return it->second;
  switch (status) {
    case 400:
      return StatusCode::kInvalidArgument;
    case 404:
      return StatusCode::kNotFound;
    case 409:
      return StatusCode::kTypeMismatch;
    case 412:
      return StatusCode::kPreconditionFailed;
    case 413:
      return StatusCode::kTooLarge;
    case 415:
      return StatusCode::kInvalidArgument;
    case 422:
      return StatusCode::kIdempotencyKeyReused;
    case 429:
      return StatusCode::kOverloaded;
    case 504:
      return StatusCode::kTimeout;
    default:
      return status >= 500 || status == 0 ? StatusCode::kUnavailable : StatusCode::kInternal;
  }
}

std::string RandomKey() {
  static thread_local std::mt19937_64 random(
      std::random_device{}() ^ std::hash<std::thread::id>()(std::this_thread::get_id()));
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(random()),
                static_cast<unsigned long long>(random()));
  return text;
}

}  // namespace

Result<RegionEndpoint> ParseRegionEndpoint(const std::string& text) {
  const size_t equals = text.find('=');
  RegionEndpoint endpoint;
  std::string_view address =
      equals == std::string::npos ? std::string_view() : std::string_view(text).substr(equals + 1);
  if (address.starts_with("https://")) {
    endpoint.tls = true;
    address.remove_prefix(8);
  } else if (address.starts_with("http://")) {
    address.remove_prefix(7);
  }
  if (equals == std::string::npos || equals == 0 ||
      !net::SplitHostPort(address, &endpoint.host, &endpoint.port) || endpoint.port == 0) {
    return InvalidArgument("'" + text + "' is not NAME=HOST:PORT (or NAME=https://HOST:PORT)");
  }
  if (!net::IsIpAddress(endpoint.host)) {
    return InvalidArgument("'" + endpoint.host + "' is not an IP address");
  }
  endpoint.name = text.substr(0, equals);
  return endpoint;
}

struct Client::Impl {
  struct Region {
    RegionEndpoint endpoint;
    // Keep-alive connections not in use (each HttpClient serves one call at a time).
    std::mutex pool_mutex;
    std::vector<std::unique_ptr<client::HttpClient>> pool;
    // Guarded by Impl::mutex. A failed call counts as a failed probe: the region's circuit is
    // open (calls avoid it) until a probe finds it ready again.
    bool healthy = false;
    bool probed = false;
    double rtt_ms = -1;
    uint64_t failures = 0;
  };

  ClientOptions options;
  std::vector<std::unique_ptr<Region>> regions;
  client::TlsContext tls;  // loaded once when a region is HTTPS

  mutable std::mutex mutex;
  int current = -1;
  core::VersionVector session;
  std::map<std::string, int> key_region;  // idempotency keys written -> the region that has them
  std::deque<std::string> key_order;      // oldest first, bounds key_region

  std::mutex probe_mutex;
  std::condition_variable probe_wake;
  bool stopping = false;
  std::thread prober;

  // What one attempt got.
  struct Answer {
    client::HttpResponse response;
    int region = -1;
  };

  int IndexOf(const std::string& name) const {
    for (size_t i = 0; i < regions.size(); ++i) {
      if (regions[i]->endpoint.name == name) return static_cast<int>(i);
    }
    return -1;
  }

  std::unique_ptr<client::HttpClient> Take(Region& region, std::chrono::milliseconds timeout) {
    {
      std::lock_guard lock(region.pool_mutex);
      if (!region.pool.empty()) {
        auto connection = std::move(region.pool.back());
        region.pool.pop_back();
        return connection;
      }
    }
    return Connect(region, timeout);
  }
  // A new connection to the region: TLS when its endpoint is https://, the bearer token on every
  // request.
  std::unique_ptr<client::HttpClient> Connect(const Region& region,
                                              std::chrono::milliseconds timeout) const {
    auto connection = std::make_unique<client::HttpClient>(
        region.endpoint.host, region.endpoint.port, timeout, TlsFor(region));
    connection->SetBearerToken(options.token);
    return connection;
  }
  client::TlsContext TlsFor(const Region& region) const {
    return region.endpoint.tls ? tls : nullptr;
  }
  void Give(Region& region, std::unique_ptr<client::HttpClient> connection) {
    std::lock_guard lock(region.pool_mutex);
    if (region.pool.size() < 16) region.pool.push_back(std::move(connection));
  }

  // One probe of one region: GET /readyz, its round trip smoothed into rtt_ms.
  void Probe(int index) {
    Region& region = *regions[index];
    const auto probe = Connect(region, options.probe_timeout);
    const auto start = Clock::now();
    client::HttpResponse response = probe->Get("/readyz");
    const double rtt = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    std::lock_guard lock(mutex);
    region.probed = true;
    region.healthy = response.status == 200;
    if (response.status != 0) {
      region.rtt_ms =
          region.rtt_ms < 0 ? rtt : region.rtt_ms * (1 - kRttSmoothing) + rtt * kRttSmoothing;
    }
  }

  void ProbeAll() {
    for (size_t i = 0; i < regions.size(); ++i) Probe(static_cast<int>(i));
  }

  void ProbeLoop() {
    std::unique_lock lock(probe_mutex);
    while (!stopping) {
      lock.unlock();
      ProbeAll();
      lock.lock();
      probe_wake.wait_for(lock, options.probe_interval, [this] { return stopping; });
    }
  }

  bool Usable(const Region& region) const { return region.healthy || !region.probed; }

  // The region for the next attempt (mutex held): the current one while usable; else the
  // preferred one, else the nearest usable one not excluded; else any not excluded.
  int Choose(const std::set<int>& excluded) {
    const int preferred = IndexOf(options.preferred_region);
    if (preferred >= 0 && !excluded.contains(preferred) && regions[preferred]->healthy) {
      current = preferred;  // back home once it is healthy again
      return current;
    }
    if (current >= 0 && !excluded.contains(current) && Usable(*regions[current])) return current;
    int best = -1;
    for (size_t i = 0; i < regions.size(); ++i) {
      const int index = static_cast<int>(i);
      if (excluded.contains(index) || !Usable(*regions[i])) continue;
      if (best < 0) {
        best = index;
        continue;
      }
      const Region& a = *regions[i];
      const Region& b = *regions[best];
      const double a_rtt = a.rtt_ms < 0 ? 1e18 : a.rtt_ms;
      const double b_rtt = b.rtt_ms < 0 ? 1e18 : b.rtt_ms;
      if (a_rtt < b_rtt) best = index;
    }
    if (best < 0) {
      // Every region not yet tried has its circuit open: try one anyway rather than give up.
      for (size_t i = 0; i < regions.size(); ++i) {
        if (!excluded.contains(static_cast<int>(i))) {
          best = static_cast<int>(i);
          break;
        }
      }
    }
    if (best >= 0) current = best;
    return best;
  }

  void MarkFailure(int index) {
    std::lock_guard lock(mutex);
    Region& region = *regions[index];
    region.failures += 1;
    region.probed = true;
    region.healthy = false;
    if (current == index) current = -1;
    probe_wake.notify_all();
  }

  // Which region holds (or may hold) the write of an idempotency key: its retries go there.
  void RememberKey(const std::string& key, int region) {
    std::lock_guard lock(mutex);
    auto [it, added] = key_region.insert_or_assign(key, region);
    (void)it;
    if (added) {
      key_order.push_back(key);
      if (key_order.size() > kRememberedKeysMax) {
        key_region.erase(key_order.front());
        key_order.pop_front();
      }
    }
  }
  void MergeSession(const std::string& token) {
    auto decoded = api::DecodeSessionToken(token);
    if (!decoded.ok()) return;
    std::lock_guard lock(mutex);
    session.Merge(*decoded);
  }

  static Status Fail(int http_status, const std::string& body, const std::string& region,
                     const std::string& fallback, const std::string& idempotency_key = "") {
    CallError error;
    error.http_status = http_status;
    error.region = region;
    error.idempotency_key = idempotency_key;
    std::string message = fallback;
    if (http_status != 0) {
      auto json = nlohmann::json::parse(body, nullptr, false);
      if (json.is_object()) {
        error.code = json.value("error", "");
        message = json.value("message", fallback);
      }
    } else {
      error.code = "unavailable";
    }
    tls_last_error = error;
    return Status(CodeOfError(http_status, error.code),
                  region.empty() ? message : region + ": " + message);
  }

  // Sends one call, failing over between regions within the budget (see client.h). `pinned`:
  // a region the call must stay in — a write retried with a key of unknown outcome (is_write), or
  // a read of one region's own view (not is_write: then any failure ends the call).
  Result<Answer> Call(const std::string& method, const std::string& target, const std::string& body,
                      std::map<std::string, std::string> headers, bool is_write,
                      const std::string& idempotency_key, int pinned, bool with_session,
                      std::chrono::milliseconds extra_wait = std::chrono::milliseconds(0)) {
    const Clock::time_point deadline = Clock::now() + options.failover_budget + extra_wait;
    std::set<int> excluded;
    std::string last_failure = "no region answered";
    // A write that may have been applied in `pinned`: it must not move to another region.
    bool unknown = is_write && pinned >= 0;
    const bool single_region = !is_write && pinned >= 0;
    int last_region = -1;
    client::HttpResponse refusal;  // the last answer that sent the call elsewhere
    std::string refusal_region;
    auto pause = [&] {
      std::unique_lock lock(probe_mutex);
      probe_wake.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(50)),
                            [this] { return stopping; });
    };
    for (int attempt = 0; attempt < 1000 && Clock::now() < deadline; ++attempt) {
      int index = pinned;
      if (index < 0) {
        std::lock_guard lock(mutex);
        index = Choose(excluded);
      }
      if (index < 0) {
        // Every region was tried. One that answered (behind the session, overloaded, failing
        // its commits) answered for now: say so. Only when none answered, start over once
        // probes have had a chance to find one back.
        if (refusal.status != 0) {
          return Fail(refusal.status, refusal.body, refusal_region, last_failure, idempotency_key);
        }
        excluded.clear();
        if (!options.background_probes) ProbeAll();
        pause();
        continue;
      }
      last_region = index;
      Region& region = *regions[index];
      if (with_session) {
        std::lock_guard lock(mutex);
        if (!session.empty()) headers["Meridian-Session"] = api::EncodeSessionToken(session);
      }
      // A write with a durability wait may take that long on top of an ordinary attempt.
      const bool long_wait = extra_wait.count() > 0;
      auto connection = long_wait ? Connect(region, options.attempt_timeout + extra_wait)
                                  : Take(region, options.attempt_timeout);
      client::HttpResponse response = connection->Request(method, target, body, headers);
      if (response.status != 0 && !long_wait) Give(region, std::move(connection));

      if (response.status == 0) {
        MarkFailure(index);
        last_failure = region.endpoint.name + ": " + response.error;
        if (single_region) break;
        if (is_write && (response.sent || unknown)) {
          // It may have been applied there: only that region can tell (by its key). Ask again
          // while it might answer; once it refuses connections (its process is gone) nothing
          // more can be learnt now, and the caller hears so at once.
          const bool gone = unknown && !response.sent;
          pinned = index;
          unknown = true;
          if (gone) break;
          pause();
          continue;
        }
        excluded.insert(index);
        continue;
      }
      const int status = response.status;
      // Only an error's body is read here: a success is the caller's to parse.
      std::string code;
      if (status >= 400) {
        auto json = nlohmann::json::parse(response.body, nullptr, false);
        if (json.is_object()) code = json.value("error", "");
      }
      const bool session_behind = status == 504 && code == "session_timeout";
      if (!single_region && (status == 503 || status == 502 || status == 429 || session_behind)) {
        // Not applied there: a refused or failed commit, or a region behind this session.
        if (status == 503 || status == 502) MarkFailure(index);
        last_failure = region.endpoint.name + " answered " + std::to_string(status) +
                       (code.empty() ? "" : " " + code);
        if (unknown) {
          pause();  // stay: an earlier attempt may have been applied there
          continue;
        }
        excluded.insert(index);
        refusal = std::move(response);
        refusal_region = region.endpoint.name;
        continue;
      }
      return Answer{std::move(response), index};
    }
    if (unknown) {
      RememberKey(idempotency_key, pinned);
      CallError error;
      error.code = "outcome_unknown";
      error.region = regions[pinned]->endpoint.name;
      error.idempotency_key = idempotency_key;
      tls_last_error = error;
      return Status(StatusCode::kUnavailable,
                    "the write was sent to " + error.region + " and no answer came back (" +
                        last_failure + "); it may have been applied there. Retry it with " +
                        "idempotency key " + idempotency_key + ": the retry goes to " +
                        error.region + " and is applied at most once");
    }
    CallError error;
    error.code = "unavailable";
    error.region = last_region >= 0 ? regions[last_region]->endpoint.name : "";
    error.idempotency_key = idempotency_key;
    tls_last_error = error;
    return Status(StatusCode::kUnavailable, "no region could serve the call within " +
                                                std::to_string(options.failover_budget.count()) +
                                                " ms: " + last_failure);
  }

  Result<WriteReceipt> Write(const std::string& method, const std::string& path,
                             const std::string& body, const WriteOptions& write) {
    const std::string key = write.idempotency_key.empty() ? RandomKey() : write.idempotency_key;
    std::string target = path;
    std::string query;
    if (write.durability_regions > 0) {
      query += "&durability=regions:" + std::to_string(write.durability_regions);
    }
    if (write.strong) query += "&consistency=strong";
    if (!query.empty()) {
      target += "?" + query.substr(1) +
                "&timeout_ms=" + std::to_string(write.durability_timeout.count());
    }
    std::map<std::string, std::string> headers = {{"Idempotency-Key", key}};
    if (!body.empty()) headers["Content-Type"] = "application/json";
    if (!write.if_match.empty()) {
      headers["If-Match"] = write.if_match == "*" ? "*" : "\"" + write.if_match + "\"";
    }
    if (write.if_none_match) headers["If-None-Match"] = "*";
    int pinned = -1;
    {
      std::lock_guard lock(mutex);
      if (auto it = key_region.find(key); it != key_region.end()) pinned = it->second;
    }
    auto answer = Call(
        method, target, body, headers, /*is_write=*/true, key, pinned, /*with_session=*/false,
        write.durability_regions > 0 ? write.durability_timeout : std::chrono::milliseconds(0));
    if (!answer.ok()) return answer.status();
    const std::string& region = regions[answer->region]->endpoint.name;
    const client::HttpResponse& response = answer->response;
    auto json = nlohmann::json::parse(response.body, nullptr, false);
    if (response.status == 200 || (response.status == 504 && json.is_object() &&
                                   json.value("error", "") == "durability_timeout")) {
      // Applied there: a later retry with this key must go there too to be recognized.
      RememberKey(key, answer->region);
      if (json.is_object() && json.contains("session")) MergeSession(json.value("session", ""));
    }
    if (response.status != 200) return Fail(response.status, response.body, region, "", key);
    if (!json.is_object()) return Fail(0, "", region, "the answer is not JSON", key);
    WriteReceipt receipt;
    // null in a transaction's receipt whose branch wrote nothing.
    const auto text = [&json](const char* name) {
      return json.contains(name) && json[name].is_string() ? json[name].get<std::string>() : "";
    };
    receipt.event = text("event");
    receipt.hlc = text("hlc");
    receipt.region = region;
    receipt.idempotency_key = key;
    receipt.replayed = json.value("replayed", false);
    receipt.confirmed_regions = json.value("confirmed_regions", -1);
    receipt.version = json.value("version", "");
    receipt.succeeded = json.value("succeeded", true);
    if (json.contains("events") && json["events"].is_array()) {
      for (const nlohmann::json& event : json["events"]) {
        if (event.is_string()) receipt.events.push_back(event.get<std::string>());
      }
    }
    return receipt;
  }

  Result<Answer> Read(const std::string& target) {
    const std::string separator = target.find('?') == std::string::npos ? "?" : "&";
    return Call("GET",
                target + separator + "wait_ms=" + std::to_string(options.session_wait.count()), "",
                {}, /*is_write=*/false, "", -1, /*with_session=*/true);
  }

  // A GET of JSON in one region (or the current one): the body, or the error it answered.
  Result<std::string> GetJson(const std::string& region_name, const std::string& target) {
    auto answer = ReadIn(region_name, target);
    if (!answer.ok()) return answer.status();
    if (answer->response.status != 200) {
      return Fail(answer->response.status, answer->response.body,
                  regions[answer->region]->endpoint.name, "");
    }
    return std::move(answer->response.body);
  }

  Result<Answer> ReadIn(const std::string& region_name, const std::string& target) {
    if (region_name.empty()) return Read(target);
    const int index = IndexOf(region_name);
    if (index < 0) return InvalidArgument("no region named '" + region_name + "'");
    return Call("GET", target, "", {}, /*is_write=*/false, "", index, /*with_session=*/false);
  }
};

Result<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  if (options.regions.empty()) return InvalidArgument("a client needs at least one region");
  auto impl = std::make_unique<Impl>();
  std::set<std::string> names;
  for (const RegionEndpoint& endpoint : options.regions) {
    if (endpoint.name.empty() || !names.insert(endpoint.name).second) {
      return InvalidArgument("region names must be unique and not empty: '" + endpoint.name + "'");
    }
    auto region = std::make_unique<Impl::Region>();
    region->endpoint = endpoint;
    impl->regions.push_back(std::move(region));
  }
  if (!options.preferred_region.empty() && impl->IndexOf(options.preferred_region) < 0) {
    return InvalidArgument("the preferred region '" + options.preferred_region +
                           "' is not among the regions");
  }
  if (std::any_of(options.regions.begin(), options.regions.end(),
                  [](const RegionEndpoint& endpoint) { return endpoint.tls; })) {
    auto context = net::LoadClientContext(options.ca_file);
    if (!context.ok()) return context.status();
    impl->tls = std::move(context).value();
  }
  impl->options = std::move(options);
  impl->ProbeAll();  // first round trips: the nearest region is known before the first call
  {
    std::lock_guard lock(impl->mutex);
    impl->Choose({});
  }
  if (impl->options.background_probes) {
    Impl* raw = impl.get();
    impl->prober = std::thread([raw] { raw->ProbeLoop(); });
  }
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client() {
  {
    std::lock_guard lock(impl_->probe_mutex);
    impl_->stopping = true;
  }
  impl_->probe_wake.notify_all();
  if (impl_->prober.joinable()) impl_->prober.join();
}

Result<WriteReceipt> Client::Put(const std::string& key, const std::string& json,
                                 const WriteOptions& options) {
  return impl_->Write("PUT", "/v1/docs/" + client::EncodeKey(key), json, options);
}

Result<WriteReceipt> Client::Patch(const std::string& key, const std::string& json,
                                   const WriteOptions& options) {
  return impl_->Write("PATCH", "/v1/docs/" + client::EncodeKey(key), json, options);
}

Result<WriteReceipt> Client::Increment(const std::string& key,
                                       const std::map<std::string, int64_t>& deltas,
                                       const WriteOptions& options) {
  nlohmann::json body = nlohmann::json::object();
  for (const auto& [field, delta] : deltas) body[field] = delta;
  return impl_->Write("POST", "/v1/docs/" + client::EncodeKey(key) + "/incr", body.dump(), options);
}

Result<WriteReceipt> Client::Delete(const std::string& key, const WriteOptions& options) {
  return impl_->Write("DELETE", "/v1/docs/" + client::EncodeKey(key), "", options);
}

Result<WriteReceipt> Client::Transaction(const std::string& json, const WriteOptions& options) {
  return impl_->Write("POST", "/v1/txn", json, options);
}

Result<WriteReceipt> Client::DeclareBound(const std::string& key, const std::string& field,
                                          int64_t min, const WriteOptions& options) {
  const nlohmann::json body = {{field, {{"min", min}}}};
  return impl_->Write("PUT", "/v1/docs/" + client::EncodeKey(key) + "/bounds", body.dump(),
                      options);
}

Result<std::string> Client::BoundsJson(const std::string& key, const std::string& region) {
  return impl_->GetJson(region, "/v1/docs/" + client::EncodeKey(key) + "/bounds");
}

Result<ReadResult> Client::Get(const std::string& key, bool strong) {
  auto answer =
      impl_->Read("/v1/docs/" + client::EncodeKey(key) + (strong ? "?consistency=strong" : ""));
  if (!answer.ok()) return answer.status();
  const std::string& region = impl_->regions[answer->region]->endpoint.name;
  if (answer->response.status == 404) {
    auto json = nlohmann::json::parse(answer->response.body, nullptr, false);
    if (json.is_object() && json.value("error", "") == "not_found") {
      return ReadResult{std::nullopt, region};
    }
  }
  if (answer->response.status != 200) {
    return Impl::Fail(answer->response.status, answer->response.body, region, "");
  }
  std::string version = answer->response.Header("etag");
  if (version.size() >= 2 && version.front() == '"') version = version.substr(1, version.size() - 2);
  return ReadResult{std::move(answer->response.body), region, std::move(version)};
}

Result<std::string> Client::HomesJson(const std::string& region) {
  return impl_->GetJson(region, "/v1/homes");
}

Result<std::string> Client::MoveHome(const std::string& prefix, const std::string& to,
                                     bool force) {
  const std::string body =
      nlohmann::json{{"prefix", prefix}, {"to", to}, {"force", force}}.dump();
  // Not retried elsewhere as a write: a move is idempotent (to where it already is: nothing).
  auto answer = impl_->Call("POST", "/v1/homes/move", body, {{"Content-Type", "application/json"}},
                            /*is_write=*/false, "", -1, /*with_session=*/false);
  if (!answer.ok()) return answer.status();
  if (answer->response.status != 200) {
    return Impl::Fail(answer->response.status, answer->response.body,
                      impl_->regions[answer->region]->endpoint.name, "");
  }
  return std::move(answer->response.body);
}

Result<ScanPage> Client::Scan(const std::string& prefix, const std::string& after, size_t limit) {
  std::string target =
      "/v1/docs?prefix=" + client::EncodeKey(prefix) + "&limit=" + std::to_string(limit);
  if (!after.empty()) target += "&after=" + client::EncodeKey(after);
  auto answer = impl_->Read(target);
  if (!answer.ok()) return answer.status();
  const std::string& region = impl_->regions[answer->region]->endpoint.name;
  if (answer->response.status != 200) {
    return Impl::Fail(answer->response.status, answer->response.body, region, "");
  }
  auto json = nlohmann::json::parse(answer->response.body, nullptr, false);
  if (!json.is_object() || !json["items"].is_array()) {
    return Impl::Fail(0, "", region, "the scan answer is not the expected JSON");
  }
  ScanPage page;
  for (const auto& item : json["items"]) {
    page.items.push_back(ScanItem{item.value("key", ""), item["doc"].dump()});
  }
  if (json["next"].is_string()) page.next = json["next"].get<std::string>();
  return page;
}

Result<std::string> Client::StatusJson(const std::string& region) {
  auto answer = impl_->ReadIn(region, "/v1/status");
  if (!answer.ok()) return answer.status();
  if (answer->response.status != 200) {
    return Impl::Fail(answer->response.status, answer->response.body,
                      impl_->regions[answer->region]->endpoint.name, "");
  }
  return std::move(answer->response.body);
}

Result<std::string> Client::ConflictsJson(size_t limit, const std::string& region) {
  return impl_->GetJson(region, "/v1/conflicts?limit=" + std::to_string(limit));
}

Result<std::string> Client::VerifyJson(const std::string& region) {
  return impl_->GetJson(region, "/v1/verify");
}

Result<std::string> Client::RepairsJson(size_t limit, const std::string& region) {
  return impl_->GetJson(region, "/v1/repairs?limit=" + std::to_string(limit));
}

Result<std::string> Client::DeadLettersJson(size_t limit, const std::string& region) {
  return impl_->GetJson(region, "/v1/dead-letters?limit=" + std::to_string(limit));
}

Result<std::vector<uint64_t>> Client::Ids(uint32_t count, const std::string& region) {
  int pinned = -1;
  if (!region.empty()) {
    pinned = impl_->IndexOf(region);
    if (pinned < 0) return InvalidArgument("no region named '" + region + "'");
  }
  // Not a write: an attempt retried elsewhere can only leave ids unused, never repeat one.
  auto answer = impl_->Call("POST", "/v1/ids?count=" + std::to_string(count), "", {},
                            /*is_write=*/false, "", pinned, /*with_session=*/false);
  if (!answer.ok()) return answer.status();
  const std::string& name = impl_->regions[answer->region]->endpoint.name;
  if (answer->response.status != 200) {
    return Impl::Fail(answer->response.status, answer->response.body, name, "");
  }
  auto json = nlohmann::json::parse(answer->response.body, nullptr, false);
  if (!json.is_object() || !json["ids"].is_array()) {
    return Impl::Fail(0, "", name, "the ids answer is not the expected JSON");
  }
  std::vector<uint64_t> ids;
  ids.reserve(json["ids"].size());
  for (const nlohmann::json& id : json["ids"]) {
    uint64_t value = 0;
    const std::string text = id.is_string() ? id.get<std::string>() : std::string();
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
      return Impl::Fail(0, "", name, "the ids answer holds an id that is not a decimal string");
    }
    ids.push_back(value);
  }
  return ids;
}

namespace {

// The last event seen of each origin, as the `since` of a watch: "eu:17,us:42".
std::string SinceText(const std::map<std::string, uint64_t>& seen) {
  std::string text;
  for (const auto& [origin, seq] : seen) {
    if (!text.empty()) text += ',';
    text += origin + ":" + std::to_string(seq);
  }
  return text;
}

// Adds "us:42" (or a list of them) to `seen`; false when malformed.
bool AddSeen(const std::string& events, std::map<std::string, uint64_t>* seen) {
  size_t start = 0;
  while (start < events.size()) {
    size_t end = events.find(',', start);
    if (end == std::string::npos) end = events.size();
    const std::string item = events.substr(start, end - start);
    const size_t colon = item.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    char* tail = nullptr;
    const unsigned long long seq = std::strtoull(item.c_str() + colon + 1, &tail, 10);
    if (tail == item.c_str() + colon + 1 || *tail != '\0') return false;
    uint64_t& known = (*seen)[item.substr(0, colon)];
    known = std::max<uint64_t>(known, seq);
    start = end + 1;
  }
  return true;
}

}  // namespace

Status Client::Watch(const std::string& prefix, const std::string& since,
                     const std::function<bool(const WatchChange&)>& on_change,
                     const std::function<bool()>& stop, std::string* last_seen) {
  std::map<std::string, uint64_t> seen;
  if (!AddSeen(since, &seen)) {
    return InvalidArgument("since must be event ids like us:42,eu:17, not '" + since + "'");
  }
  auto report = [&] {
    if (last_seen != nullptr) *last_seen = SinceText(seen);
  };
  if (since.empty()) {
    // From now: what the current region has applied is what this watch has "seen".
    auto status = StatusJson();
    if (!status.ok()) return status.status();
    auto json = nlohmann::json::parse(*status, nullptr, false);
    if (json.is_object() && json["frontier"].is_object()) {
      for (const auto& [origin, seq] : json["frontier"].items()) {
        if (seq.is_number_unsigned() && seq.get<uint64_t>() > 0) seen[origin] = seq.get<uint64_t>();
      }
    }
  }
  Clock::time_point failing_since{};
  std::string failure;
  std::set<int> failed;  // regions that failed this watch since it last delivered
  for (int connection = 0; connection < 100000; ++connection) {
    if (stop && stop()) break;
    if (failing_since != Clock::time_point{} &&
        Clock::now() - failing_since > impl_->options.failover_budget) {
      report();
      CallError error;
      error.code = "unavailable";
      tls_last_error = error;
      return Status(StatusCode::kUnavailable,
                    "no region could serve the watch within " +
                        std::to_string(impl_->options.failover_budget.count()) + " ms: " + failure);
    }
    int index;
    {
      std::lock_guard lock(impl_->mutex);
      index = impl_->Choose(failed);
    }
    if (index < 0) {
      failed.clear();  // every region failed once: try them again after a pause
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    const RegionEndpoint& endpoint = impl_->regions[index]->endpoint;
    auto fail = [&](const std::string& why) {
      failure = endpoint.name + ": " + why;
      failed.insert(index);
      impl_->MarkFailure(index);
      if (failing_since == Clock::time_point{}) failing_since = Clock::now();
    };
    client::StreamConnection stream(endpoint.host, endpoint.port, impl_->options.attempt_timeout,
                                    impl_->TlsFor(*impl_->regions[index]));
    std::string target = "/v1/watch?prefix=" + client::EncodeKey(prefix);
    if (!seen.empty()) target += "&since=" + client::EncodeKey(SinceText(seen));
    std::string request = "GET " + target + " HTTP/1.1\r\nHost: " + endpoint.host +
                          "\r\nAccept: text/event-stream\r\n";
    if (!impl_->options.token.empty()) {
      request += "Authorization: Bearer " + impl_->options.token + "\r\n";
    }
    request += "\r\n";
    std::string error;
    if (!stream.Open(request, &error)) {
      fail(error);
      continue;
    }
    std::string buffer;
    bool headers_done = false;
    bool ended = false;
    while (!ended && !(stop && stop())) {
      if (!stream.Read(&buffer, std::chrono::seconds(1), &error)) {
        if (error.empty()) continue;  // quiet for a second: look at `stop`
        fail(error);
        break;
      }
      if (!headers_done) {
        const size_t end = buffer.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        const std::string head = buffer.substr(0, end);
        buffer.erase(0, end + 4);
        if (head.rfind("HTTP/1.1 200", 0) != 0) {
          const size_t space = head.find(' ');
          const int status = space == std::string::npos ? 0 : std::atoi(head.c_str() + space + 1);
          if (status == 503) {  // not serving now: another region may
            fail("answered 503");
            break;
          }
          // A refusal of the request itself (a bad prefix): no point in retrying.
          std::string body = buffer;
          for (int i = 0; i < 20 && stream.Read(&body, std::chrono::seconds(1), &error); ++i) {
          }
          report();
          return Impl::Fail(status, body, endpoint.name, "the watch was refused");
        }
        headers_done = true;
      }
      size_t frame_end;
      while ((frame_end = buffer.find("\n\n")) != std::string::npos) {
        const std::string frame = buffer.substr(0, frame_end);
        buffer.erase(0, frame_end + 2);
        std::string event_name, data;
        size_t start = 0;
        while (start < frame.size()) {
          size_t line_end = frame.find('\n', start);
          if (line_end == std::string::npos) line_end = frame.size();
          const std::string line = frame.substr(start, line_end - start);
          start = line_end + 1;
          if (line.rfind("event: ", 0) == 0) event_name = line.substr(7);
          if (line.rfind("data: ", 0) == 0) data = line.substr(6);
        }
        if (event_name == "error") {
          failure = endpoint.name + ": " + data;  // a slow consumer: resume where it stopped
          ended = true;
          break;
        }
        if (event_name != "change") continue;
        auto json = nlohmann::json::parse(data, nullptr, false);
        if (!json.is_object()) continue;
        WatchChange change;
        change.key = json.value("key", "");
        if (json.contains("doc") && !json["doc"].is_null()) change.doc = json["doc"].dump();
        change.event = json.value("event", "");
        change.hlc = json.value("hlc", "");
        AddSeen(change.event, &seen);
        failing_since = {};
        failed.clear();
        if (!on_change(change)) {
          report();
          return Status::Ok();
        }
      }
    }
    if (stop && stop()) break;
    if (failing_since == Clock::time_point{}) failing_since = Clock::now();
  }
  report();
  return Status::Ok();
}

std::string Client::session() const {
  std::lock_guard lock(impl_->mutex);
  return api::EncodeSessionToken(impl_->session);
}

Status Client::set_session(const std::string& token) {
  auto decoded = api::DecodeSessionToken(token);
  if (!decoded.ok()) return decoded.status();
  std::lock_guard lock(impl_->mutex);
  impl_->session = std::move(decoded).value();
  return Status::Ok();
}

std::string Client::current_region() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->current >= 0 ? impl_->regions[impl_->current]->endpoint.name : "";
}

std::vector<RegionHealth> Client::health() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<RegionHealth> out;
  for (const auto& region : impl_->regions) {
    out.push_back(RegionHealth{region->endpoint.name, region->healthy, !impl_->Usable(*region),
                               region->rtt_ms, region->failures});
  }
  return out;
}

CallError Client::last_error() const {
  return tls_last_error;
}

}  // namespace meridian
