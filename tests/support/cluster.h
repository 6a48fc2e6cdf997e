// Cluster: several real `meridian start` processes on loopback replicating to each other, each
// directed link (X dials Y) through its own route of an in-process WanProxy, so tests can add
// delay and cut or heal links between two regions at run time. Everything it started stops when
// it is destroyed.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "support/node_process.h"
#include "wanproxy/wan_proxy.h"

namespace meridian::testing {

// Conditions of one directed link on top of ClusterOptions' delay and jitter
// (docs/wan-proxy.md): a one-way delay and jitter, random connection resets (drop) and stalls.
struct LinkConditions {
  uint32_t delay_ms = 0;
  uint32_t jitter_ms = 0;
  double drop = 0;   // probability per second that a connection is reset
  double stall = 0;  // probability per second that a connection stalls for stall_ms
  uint32_t stall_ms = 1000;
  bool operator==(const LinkConditions&) const = default;
};

struct ClusterOptions {
  std::vector<std::string> regions = {"us", "eu", "asia"};
  uint32_t delay_ms = 0;  // one-way, every link
  uint32_t jitter_ms = 0;
  // Replication tuned for tests: quick heartbeats, relays and redials.
  std::string extra_toml =
      "[replication]\nheartbeat_ms = 50\nrelay_after_ms = 300\nsilence_timeout_ms = 1000\n"
      "backoff_initial_ms = 20\nbackoff_max_ms = 300\n";
  // A proxy's routes are fixed once it runs, so with this set every directed link also passes
  // through a proxy of its own, which SetLinkConditions restarts with new conditions.
  bool adjustable_links = false;
  // Nodes close the descriptors they would inherit from the test process
  // (NodeOptions::close_inherited_fds): needed when nodes are restarted while proxies and clients
  // run in the test process, and by adjustable_links, whose proxies listen again.
  bool close_inherited_fds = true;
  // Seed of the proxies' random choices (jitter, drops, stalls); 0: random.
  uint64_t proxy_seed = 0;
  // When set, every node runs with [tls] from this directory (ca.pem, <region>.pem and
  // <region>-key.pem, as `meridian ca create` and `meridian cert create` make them): mutual TLS
  // between the regions, and the clients speak HTTPS trusting ca.pem.
  std::string tls_dir = {};
  // Every node also serves the client gRPC API (NodeProcess::grpc_port()).
  bool grpc = false;
  // Every node also serves the Redis protocol (NodeProcess::resp_port()).
  bool resp = false;
  // When set, each node's entry for another region gives that region's HTTP address as a route
  // of the proxy (with the same delay and jitter as replication), so what a node sends to another
  // region's HTTP API (a consistency=strong request forwarded to its home) crosses the WAN too.
  // Partitions cut replication only; clients of Client() still reach every node directly.
  bool http_through_proxy = false;
};

// Drops and stalls the links' own proxies have caused (adjustable_links).
struct LinkFaultTotals {
  uint64_t drops = 0;
  uint64_t stalls = 0;
};

class Cluster {
 public:
  explicit Cluster(ClusterOptions options = {});
  ~Cluster();

  // Starts the proxy and every node and waits until they are linked; false (with the logs in
  // Logs()) when one did not come up.
  bool Start();
  NodeProcess& node(const std::string& region) { return *nodes_.at(region); }
  HttpClient Client(const std::string& region) const;
  const std::vector<std::string>& regions() const { return options_.regions; }

  // Waits until every running node's replication links to every other region are up.
  bool WaitLinked(std::chrono::milliseconds timeout);

  // Cuts (heals) both directions between two regions.
  void Partition(const std::string& a, const std::string& b);
  void Heal(const std::string& a, const std::string& b);
  // Cuts (heals) one direction only: the link `from` dials to receive `to`'s events. `to` still
  // receives `from`'s events on the link it dials itself.
  void PartitionRoute(const std::string& from, const std::string& to);
  void HealRoute(const std::string& from, const std::string& to);
  // Heals every link.
  void HealAll();
  // With adjustable_links: restarts the proxy of the link `from` dials to receive `to`'s events
  // with these conditions. The link's open connections are reset (the node redials, as after a
  // drop). False when that proxy could not listen again. Partitions are kept. Conditions equal to
  // the link's current ones change nothing.
  bool SetLinkConditions(const std::string& from, const std::string& to,
                         const LinkConditions& conditions);
  LinkFaultTotals LinkFaults() const;

  // Waits until every running node reports the same frontier and digest and no lag. On failure
  // *why says what differed at the deadline.
  bool WaitConverged(std::chrono::milliseconds timeout, std::string* why);
  // The rendered documents with keys starting with `prefix`, as a region serves them.
  std::map<std::string, std::string> Documents(const std::string& region,
                                               const std::string& prefix);
  std::string Logs() const;
  // Bytes the proxy has carried between regions so far, both directions of every replication
  // link (the HTTP routes of http_through_proxy are not counted).
  uint64_t ProxyBytes() const;
  // With http_through_proxy: the port on which `from` reaches `to`'s HTTP API through the proxy
  // (as `from`'s config names it); 0 without.
  uint16_t HttpRoutePort(const std::string& from, const std::string& to) const;

 private:
  std::string RouteName(const std::string& from, const std::string& to) const;

  ClusterOptions options_;
  std::unique_ptr<wanproxy::WanProxy> proxy_;
  std::map<std::string, size_t> route_index_;       // "from>to" -> route
  std::map<std::string, size_t> http_route_index_;  // "from>to" -> route (http_through_proxy)
  std::map<std::string, std::unique_ptr<NodeProcess>> nodes_;
  // adjustable_links: per "from>to", the link's own proxy, its fixed listen port and target, and
  // how many times it was restarted; what earlier proxies of the links dropped and stalled.
  mutable std::mutex links_mutex_;
  std::map<std::string, std::unique_ptr<wanproxy::WanProxy>> link_proxies_;
  std::map<std::string, uint16_t> link_ports_;
  std::map<std::string, uint16_t> link_targets_;
  std::map<std::string, uint64_t> link_generations_;
  std::map<std::string, LinkConditions> link_conditions_;
  LinkFaultTotals retired_link_faults_;
};

}  // namespace meridian::testing
