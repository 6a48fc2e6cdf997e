#include "support/cluster.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <random>
#include <thread>

namespace meridian::testing {
namespace {

uint64_t MixSeed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A proxy with one route, 127.0.0.1:listen_port (0: any) -> 127.0.0.1:target_port; null when it
// could not start. A port just released by a stopped proxy can be taken again at once (the proxy
// listens with SO_REUSEADDR), so a few quick retries cover a late close.
std::unique_ptr<wanproxy::WanProxy> StartLinkProxy(uint16_t listen_port, uint16_t target_port,
                                                   const LinkConditions& conditions, uint64_t seed,
                                                   int attempts = 50) {
  wanproxy::WanProxyOptions options;
  wanproxy::Route route;
  route.listen_host = "127.0.0.1";
  route.listen_port = listen_port;
  route.target_host = "127.0.0.1";
  route.target_port = target_port;
  options.routes.push_back(route);
  options.delay_ms = conditions.delay_ms;
  options.jitter_ms = conditions.jitter_ms;
  options.drop = conditions.drop;
  options.stall = conditions.stall;
  options.stall_ms = conditions.stall_ms;
  options.seed = seed;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto proxy = std::make_unique<wanproxy::WanProxy>(options);
    if (proxy->Start().ok()) return proxy;
  }
  return nullptr;
}

// Ports for the links' own proxies, which give their port up and take it again on every restart:
// below the kernel's ephemeral range, so that no outgoing connection (a node redialling, say)
// is handed the port as its source port in between. Empty when the range leaves no room.
std::vector<uint16_t> StablePortCandidates(uint64_t seed) {
  int low = 32768;
  int high = 60999;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  range >> low >> high;
  std::vector<uint16_t> candidates;
  const int first = std::max(10000, low - 20000);
  if (low - first < 1000) return candidates;
  std::mt19937_64 random(seed == 0 ? std::random_device{}() : seed);
  for (int i = 0; i < 200; ++i) {
    candidates.push_back(static_cast<uint16_t>(first + static_cast<int>(random() % (low - first))));
  }
  return candidates;
}

}  // namespace

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {}

Cluster::~Cluster() {
  nodes_.clear();  // kills what still runs
  if (proxy_) proxy_->Stop();
  std::lock_guard lock(links_mutex_);
  link_proxies_.clear();  // each stops when destroyed
}

std::string Cluster::RouteName(const std::string& from, const std::string& to) const {
  return from + ">" + to;
}

bool Cluster::Start() {
  spdlog::set_level(spdlog::level::err);  // the proxy's refused dials while nodes start are noise
  std::map<std::string, uint16_t> http_ports;
  std::map<std::string, uint16_t> replication_ports;
  for (const std::string& region : options_.regions) {
    http_ports[region] = FreePort();
    replication_ports[region] = FreePort();
  }
  wanproxy::WanProxyOptions proxy_options;
  proxy_options.delay_ms = options_.delay_ms;
  proxy_options.jitter_ms = options_.jitter_ms;
  proxy_options.seed = options_.proxy_seed;
  for (const std::string& from : options_.regions) {
    for (const std::string& to : options_.regions) {
      if (from == to) continue;
      wanproxy::Route route;
      route.listen_host = "127.0.0.1";
      route.listen_port = 0;
      route.target_host = "127.0.0.1";
      route.target_port = replication_ports[to];
      if (options_.adjustable_links) {
        // The link's own proxy, with no conditions yet, between the route and the peer.
        const std::string name = RouteName(from, to);
        const uint64_t seed =
            options_.proxy_seed == 0
                ? 0
                : MixSeed(options_.proxy_seed + link_proxies_.size() + 1) | 1;  // never 0: random
        std::unique_ptr<wanproxy::WanProxy> link;
        for (uint16_t port : StablePortCandidates(seed)) {
          link = StartLinkProxy(port, replication_ports[to], LinkConditions{}, seed,
                                /*attempts=*/1);
          if (link != nullptr) break;
        }
        if (link == nullptr) {
          link = StartLinkProxy(0, replication_ports[to], LinkConditions{}, seed);
        }
        if (link == nullptr) return false;
        std::lock_guard lock(links_mutex_);
        link_ports_[name] = link->listen_port(0);
        link_targets_[name] = replication_ports[to];
        link_generations_[name] = 0;
        route.target_port = link_ports_[name];
        link_proxies_[name] = std::move(link);
      }
      route_index_[RouteName(from, to)] = proxy_options.routes.size();
      proxy_options.routes.push_back(route);
      if (options_.http_through_proxy) {
        wanproxy::Route http = route;
        http.target_port = http_ports[to];
        http_route_index_[RouteName(from, to)] = proxy_options.routes.size();
        proxy_options.routes.push_back(http);
      }
    }
  }
  proxy_ = std::make_unique<wanproxy::WanProxy>(proxy_options);
  if (!proxy_->Start().ok()) return false;
  for (const std::string& self : options_.regions) {
    NodeOptions node_options;
    node_options.region = self;
    node_options.extra_toml = options_.extra_toml;
    node_options.grpc = options_.grpc;
    node_options.resp = options_.resp;
    if (!options_.tls_dir.empty()) {
      const std::string& dir = options_.tls_dir;
      node_options.extra_toml += "\n[tls]\ncert_file = \"" + dir + "/" + self +
                                 ".pem\"\nkey_file = \"" + dir + "/" + self +
                                 "-key.pem\"\nca_file = \"" + dir + "/ca.pem\"\n";
      node_options.https_ca_file = dir + "/ca.pem";
    }
    node_options.close_inherited_fds = options_.close_inherited_fds;
    int id = 1;
    for (const std::string& region : options_.regions) {
      const std::string replication =
          region == self
              ? "127.0.0.1:" + std::to_string(replication_ports[region])
              : "127.0.0.1:" +
                    std::to_string(proxy_->listen_port(route_index_[RouteName(self, region)]));
      const uint16_t http = region == self || !options_.http_through_proxy
                                ? http_ports[region]
                                : proxy_->listen_port(http_route_index_[RouteName(self, region)]);
      node_options.regions.push_back({region, id++, http, replication});
    }
    nodes_[self] = std::make_unique<NodeProcess>(node_options);
  }
  for (auto& [region, node] : nodes_) {
    if (!node->Start()) return false;
  }
  return WaitLinked(std::chrono::seconds(30));
}

HttpClient Cluster::Client(const std::string& region) const {
  return nodes_.at(region)->Client();
}

void Cluster::Partition(const std::string& a, const std::string& b) {
  (void)proxy_->Partition(proxy_->listen_address(route_index_.at(RouteName(a, b))));
  (void)proxy_->Partition(proxy_->listen_address(route_index_.at(RouteName(b, a))));
}

void Cluster::Heal(const std::string& a, const std::string& b) {
  (void)proxy_->Heal(proxy_->listen_address(route_index_.at(RouteName(a, b))));
  (void)proxy_->Heal(proxy_->listen_address(route_index_.at(RouteName(b, a))));
}

void Cluster::PartitionRoute(const std::string& from, const std::string& to) {
  (void)proxy_->Partition(proxy_->listen_address(route_index_.at(RouteName(from, to))));
}

void Cluster::HealRoute(const std::string& from, const std::string& to) {
  (void)proxy_->Heal(proxy_->listen_address(route_index_.at(RouteName(from, to))));
}

void Cluster::HealAll() {
  (void)proxy_->Heal();
}

bool Cluster::SetLinkConditions(const std::string& from, const std::string& to,
                                const LinkConditions& conditions) {
  const std::string name = RouteName(from, to);
  std::lock_guard lock(links_mutex_);
  if (link_ports_.count(name) == 0) return false;  // not adjustable_links
  auto it = link_proxies_.find(name);
  if (it != link_proxies_.end() && it->second != nullptr && link_conditions_[name] == conditions) {
    return true;
  }
  if (it != link_proxies_.end() && it->second != nullptr) {
    for (const wanproxy::RouteStats& route : it->second->stats().routes) {
      retired_link_faults_.drops += route.drops;
      retired_link_faults_.stalls += route.stalls;
    }
    // Destroyed, not only stopped: a stopped proxy still holds its connections' sockets.
    it->second.reset();
  }
  const uint64_t generation = ++link_generations_[name];
  const uint64_t mixed =
      MixSeed(options_.proxy_seed ^ MixSeed(route_index_.at(name) * 1000003 + generation));
  const uint64_t seed = options_.proxy_seed == 0 ? 0 : mixed | 1;  // never 0: random
  link_proxies_[name] =
      StartLinkProxy(link_ports_.at(name), link_targets_.at(name), conditions, seed);
  link_conditions_[name] = conditions;
  return link_proxies_[name] != nullptr;
}

LinkFaultTotals Cluster::LinkFaults() const {
  std::lock_guard lock(links_mutex_);
  LinkFaultTotals totals = retired_link_faults_;
  for (const auto& [name, proxy] : link_proxies_) {
    if (proxy == nullptr) continue;
    for (const wanproxy::RouteStats& route : proxy->stats().routes) {
      totals.drops += route.drops;
      totals.stalls += route.stalls;
    }
  }
  return totals;
}

bool Cluster::WaitLinked(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto& [region, node] : nodes_) {
    if (!node->running()) continue;
    HttpClient client = node->Client(std::chrono::seconds(2));
    for (;;) {
      const auto status = nlohmann::json::parse(client.Get("/v1/status").body, nullptr, false);
      bool linked = status.is_object() && status.contains("peers");
      if (linked) {
        for (const auto& peer : status["peers"]) linked = linked && peer["connected"].get<bool>();
      }
      if (linked) break;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  return true;
}

bool Cluster::WaitConverged(std::chrono::milliseconds timeout, std::string* why) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::map<std::string, HttpClient> clients;
  for (auto& [region, node] : nodes_) {
    if (node->running()) clients.emplace(region, node->Client(std::chrono::seconds(2)));
  }
  for (;;) {
    std::string description;
    std::optional<nlohmann::json> first_frontier;
    std::string first_digest;
    bool same = true;
    for (auto& [region, client] : clients) {
      const HttpResponse response = client.Get("/v1/status");
      if (response.status != 200) {
        same = false;
        description += region + ": status " + std::to_string(response.status) + "; ";
        continue;
      }
      const auto status = nlohmann::json::parse(response.body, nullptr, false);
      if (status.is_discarded()) {
        same = false;
        continue;
      }
      description += region + ": frontier " + status["frontier"].dump() + " digest " +
                     status["digest"].get<std::string>() + "; ";
      if (!first_frontier) {
        first_frontier = status["frontier"];
        first_digest = status["digest"];
      } else if (status["frontier"] != *first_frontier || status["digest"] != first_digest) {
        same = false;
      }
    }
    if (same) return true;
    if (std::chrono::steady_clock::now() >= deadline) {
      if (why != nullptr) *why = description;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::map<std::string, std::string> Cluster::Documents(const std::string& region,
                                                      const std::string& prefix) {
  std::map<std::string, std::string> documents;
  HttpClient client = Client(region);
  std::string after;
  for (int page = 0; page < 10'000; ++page) {
    const HttpResponse response = client.Get("/v1/docs?prefix=" + EncodeKey(prefix) +
                                             "&limit=1000&after=" + EncodeKey(after));
    if (response.status != 200) break;
    const auto body = nlohmann::json::parse(response.body, nullptr, false);
    if (body.is_discarded()) break;
    for (const auto& item : body["items"]) {
      documents[item["key"].get<std::string>()] = item["doc"].dump();
    }
    if (body["next"].is_null()) break;
    after = body["next"].get<std::string>();
  }
  return documents;
}

uint64_t Cluster::ProxyBytes() const {
  const std::vector<wanproxy::RouteStats> routes = proxy_->stats().routes;
  uint64_t bytes = 0;
  for (const auto& [name, index] : route_index_) {
    bytes += routes[index].bytes_to_target + routes[index].bytes_to_client;
  }
  return bytes;
}

uint16_t Cluster::HttpRoutePort(const std::string& from, const std::string& to) const {
  auto it = http_route_index_.find(RouteName(from, to));
  return it == http_route_index_.end() ? 0 : proxy_->listen_port(it->second);
}

std::string Cluster::Logs() const {
  std::string logs;
  for (const auto& [region, node] : nodes_) logs += "--- " + region + " ---\n" + node->log();
  return logs;
}

}  // namespace meridian::testing
