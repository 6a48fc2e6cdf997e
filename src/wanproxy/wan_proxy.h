// WanProxy: a user-space TCP proxy that puts WAN conditions between region nodes on one machine
// (docs/wan-proxy.md). Each route accepts connections on a LISTEN address and forwards them to a
// TARGET address, delaying every chunk of each direction by a one-way delay plus jitter (never
// reordering), and optionally capping bandwidth, resetting connections at random (drops), pausing
// them at random (stalls), or cutting the route entirely (partition, until heal).
//
// The proxy runs on its own thread; every public method may be called from any other thread
// (but not concurrently with Start or Stop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "meridian/status.h"

namespace meridian::wanproxy {

// Upper bound of every millisecond setting (delay, jitter, stall length): ten minutes.
inline constexpr uint32_t kMaxMilliseconds = 600'000;

// One proxied path. Settings left unset take the proxy-wide defaults of WanProxyOptions.
struct Route {
  std::string listen_host;
  uint16_t listen_port = 0;  // 0: an ephemeral port, reported by WanProxy::listen_port
  std::string target_host;
  uint16_t target_port = 0;
  std::optional<uint32_t> delay_ms;   // one-way delay of each direction
  std::optional<uint32_t> jitter_ms;  // uniform in [-jitter, +jitter] around the delay
  std::optional<double> drop;         // probability per second that a connection is reset
  std::optional<double> stall;        // probability per second that a connection stalls
  std::optional<uint32_t> stall_ms;   // how long a stall lasts
  std::optional<uint64_t> bandwidth;  // bytes per second per direction per connection; 0: no cap

  std::string listen() const;  // "127.0.0.1:9101", "[::1]:9101"
  std::string target() const;
};

// Parses `LISTEN=TARGET[,delay=MS][,jitter=MS][,drop=P][,stall=P][,stall-ms=MS]
// [,bandwidth=BYTES_PER_S]`, e.g. "127.0.0.1:9101=127.0.0.1:7102,delay=40,jitter=5". Hosts are
// names or IP addresses (IPv6 in brackets). Errors are InvalidArgument with a message that quotes
// the route and says what is wrong and what was expected.
Result<Route> ParseRoute(std::string_view text);

struct WanProxyOptions {
  std::vector<Route> routes;
  // Defaults for routes that do not set their own value.
  uint32_t delay_ms = 0;
  uint32_t jitter_ms = 0;
  double drop = 0;
  double stall = 0;
  uint32_t stall_ms = 1000;
  uint64_t bandwidth = 0;
  // Seed of the random choices (jitter, drops, stalls); 0: chosen at random (see stats().seed).
  uint64_t seed = 0;
  // HOST:PORT of the HTTP control endpoint (port 0: ephemeral); empty: no control endpoint.
  std::string control;
  // Bytes held per direction per connection before the proxy stops reading that side.
  size_t buffer_bytes = size_t{4} << 20;
};

// Checks the options as Start would: InvalidArgument naming the first problem.
Status ValidateOptions(const WanProxyOptions& options);

struct RouteStats {
  std::string listen;  // the bound address, e.g. "127.0.0.1:9101"
  std::string target;
  uint32_t delay_ms = 0;
  uint32_t jitter_ms = 0;
  double drop = 0;
  double stall = 0;
  uint32_t stall_ms = 0;
  uint64_t bandwidth = 0;
  bool partitioned = false;
  uint64_t connections_open = 0;
  uint64_t connections_total = 0;    // connections accepted and forwarded since start
  uint64_t connections_refused = 0;  // accepted while partitioned and closed at once
  uint64_t connect_failures = 0;     // the target could not be reached
  uint64_t bytes_to_target = 0;      // delivered listen side -> target side
  uint64_t bytes_to_client = 0;      // delivered target side -> listen side
  uint64_t drops = 0;
  uint64_t stalls = 0;
  uint64_t buffered_peak = 0;  // the most bytes one direction of one connection ever held
};

struct WanProxyStats {
  uint64_t seed = 0;
  std::string control;  // the bound control address, empty without one
  std::vector<RouteStats> routes;
};

// The JSON document served by GET /status (docs/wan-proxy.md).
std::string StatsJson(const WanProxyStats& stats);

class WanProxy {
 public:
  explicit WanProxy(WanProxyOptions options);
  ~WanProxy();  // Stop()
  WanProxy(const WanProxy&) = delete;
  WanProxy& operator=(const WanProxy&) = delete;

  // Validates the options, resolves every address, binds every listener (and the control
  // endpoint) and starts forwarding. InvalidArgument for bad options, Unavailable when an
  // address does not resolve or cannot be bound. Call once.
  Status Start();
  // Closes every listener and connection and joins the proxy's thread. Idempotent.
  void Stop();

  // Partitions one route, or every route when `route` is empty: closes (resets) its open
  // connections, and until Heal resets every new connection as soon as it is accepted. A route
  // is named by its LISTEN as given, its bound address, or its bound port. NotFound when no
  // route has that name. On return the connections are closed.
  Status Partition(std::string_view route = {});
  Status Heal(std::string_view route = {});

  WanProxyStats stats() const;
  size_t route_count() const;
  // The bound port and address of route `index` (in the order of options.routes); valid after
  // a successful Start.
  uint16_t listen_port(size_t index) const;
  std::string listen_address(size_t index) const;
  // The bound port of the control endpoint; 0 without one.
  uint16_t control_port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs a proxy in the foreground for `meridian wan-proxy`: prints one line per route once it
// listens, partitions every route on SIGUSR1, heals them on SIGUSR2, stops on SIGINT or SIGTERM.
// Returns the exit status: 0 after a signal stopped it, 1 when it could not start (an address
// that does not resolve or bind), 2 for invalid options.
int RunWanProxy(const WanProxyOptions& options);

}  // namespace meridian::wanproxy
