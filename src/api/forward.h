// Forwarding a consistency=strong request to its key's home region
// (docs/semantics.md#home-regions): the one decision of where such a request runs, and the HTTP
// call that carries it to the home, for the HTTP server and the gRPC API alike.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "api/request.h"
#include "node/node.h"

namespace meridian::api {

// The header a forwarded request carries (the forwarding region's name): its receiver runs it or
// refuses it, and never forwards it again.
constexpr char kForwardedHeader[] = "Meridian-Forwarded";

// Where a strong request runs: here, or in `home`; a transaction whose keys have different homes
// runs here, with two-phase commit across them (api/two_phase.h). 400 no_home when one of its
// keys is under no home prefix.
struct StrongRoute {
  bool here = true;
  core::RegionId home = 0;  // the first key's
  std::string home_name;
  std::map<core::RegionId, std::vector<std::string>> keys;  // by home
  bool across() const { return keys.size() > 1; }
};
std::variant<StrongRoute, ApiError> RouteStrong(node::Node& node, const ApiCall& call);

struct ForwardRequest {
  std::string method;
  std::string target;  // path and query, as received
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

struct Forwarded {
  int status = 0;  // 0: no answer
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  bool sent = false;  // the request reached the connection (the home may have acted on it)
  std::string error;  // why there is no answer
};

// Sends `request` to `region`'s HTTP address over one of this thread's kept connections (HTTPS
// with the deployment CA under [tls]), each step bounded by `timeout`. Blocking.
Forwarded Forward(node::Node& node, core::RegionId region, const ForwardRequest& request,
                  std::chrono::milliseconds timeout);

// The HTTP form of a strong request of the gRPC API, to forward it: `route` on `key` (or a
// transaction) with `body` as the HTTP API takes it, its durability and the client's headers.
ForwardRequest HttpFormOf(Route route, const std::string& key, std::string body,
                          uint32_t durability_regions, uint64_t timeout_ms);
// What a forwarded request's answer was: nullopt for a 2xx, else the error it answered (a 503
// home_unavailable when there was no answer).
std::optional<ApiError> ForwardedError(const StrongRoute& route, const Forwarded& forwarded,
                                       bool write, const std::string& idempotency_key);

// The answer when the home gave none: 503 home_unavailable, saying whether the request can have
// been applied there (when it was sent) and, for a write, the idempotency key to retry with.
ApiError HomeUnavailable(const StrongRoute& route, const Forwarded& forwarded, bool write,
                         const std::string& idempotency_key);

// What goes to the home with a strong request besides the request itself: the client's own
// headers (empty: absent).
struct ClientHeaders {
  std::string_view content_type = {};
  std::string_view authorization = {};
  std::string_view session = {};  // Meridian-Session
  std::string_view if_match = {};
  std::string_view if_none_match = {};
  std::string_view idempotency_key = {};
  std::string_view traceparent = {};  // W3C trace context: the home traces the write
};
// Adds them to `request`, and this region's name (kForwardedHeader). A write always carries an
// Idempotency-Key, the client's or "forwarded-" and 32 random hex digits, so that a retry after a
// lost answer applies it once: returned ("" for a read without one).
std::string AddForwardHeaders(node::Node& node, const ClientHeaders& client, bool write,
                              ForwardRequest* request);

// POST /v1/homes/move: what it would do. 404 unknown_home for a prefix that is no home, 400
// bad_parameter for a region that is not configured.
struct HomeMovePlan {
  node::Home home;         // as it is
  node::Home next;         // as the move makes it (epoch + 1)
  bool here = false;       // this region writes the record: the home (planned), or any (forced)
  bool unchanged = false;  // a planned move to where it already is: nothing to do
};
std::variant<HomeMovePlan, ApiError> PlanHomeMove(node::Node& node, const ApiCall::HomeMove& move);
// {"prefix", "region", "epoch", "forced"}; GET /v1/homes: {"homes": [...]}.
nlohmann::json HomeJson(node::Node& node, const node::Home& home);
nlohmann::json HomesJson(node::Node& node);

// A small pool of threads that run forwards for the HTTP server, whose own threads must not block:
// at most `queue_max` wait; Submit is false beyond (the caller answers 429).
class ForwardPool {
 public:
  ForwardPool(size_t threads, size_t queue_max);
  ~ForwardPool();
  bool Submit(std::function<void()> job);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::api
