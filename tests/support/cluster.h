// Cluster: several real `meridian start` processes on loopback replicating to each other, each
// directed link (X dials Y) through its own route of an in-process WanProxy, so tests can add
// delay and cut or heal links between two regions at run time. Everything it started stops when
// it is destroyed.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/node_process.h"
#include "wanproxy/wan_proxy.h"

namespace meridian::testing {

struct ClusterOptions {
  std::vector<std::string> regions = {"us", "eu", "asia"};
  uint32_t delay_ms = 0;  // one-way, every link
  uint32_t jitter_ms = 0;
  // Replication tuned for tests: quick heartbeats, relays and redials.
  std::string extra_toml =
      "[replication]\nheartbeat_ms = 50\nrelay_after_ms = 300\nsilence_timeout_ms = 1000\n"
      "backoff_initial_ms = 20\nbackoff_max_ms = 300\n";
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

  // Waits until every running node reports the same frontier and digest and no lag. On failure
  // *why says what differed at the deadline.
  bool WaitConverged(std::chrono::milliseconds timeout, std::string* why);
  // The rendered documents with keys starting with `prefix`, as a region serves them.
  std::map<std::string, std::string> Documents(const std::string& region,
                                               const std::string& prefix);
  std::string Logs() const;
  // Bytes the proxy has carried between regions so far, both directions of every link.
  uint64_t ProxyBytes() const;

 private:
  std::string RouteName(const std::string& from, const std::string& to) const;

  ClusterOptions options_;
  std::unique_ptr<wanproxy::WanProxy> proxy_;
  std::map<std::string, size_t> route_index_;  // "from>to" -> route
  std::map<std::string, std::unique_ptr<NodeProcess>> nodes_;
};

}  // namespace meridian::testing
