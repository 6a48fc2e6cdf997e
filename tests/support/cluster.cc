#include "support/cluster.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <thread>

namespace meridian::testing {

Cluster::Cluster(ClusterOptions options) : options_(std::move(options)) {}

Cluster::~Cluster() {
  nodes_.clear();  // kills what still runs
  if (proxy_) proxy_->Stop();
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
  for (const std::string& from : options_.regions) {
    for (const std::string& to : options_.regions) {
      if (from == to) continue;
      wanproxy::Route route;
      route.listen_host = "127.0.0.1";
      route.listen_port = 0;
      route.target_host = "127.0.0.1";
      route.target_port = replication_ports[to];
      route_index_[RouteName(from, to)] = proxy_options.routes.size();
      proxy_options.routes.push_back(route);
    }
  }
  proxy_ = std::make_unique<wanproxy::WanProxy>(proxy_options);
  if (!proxy_->Start().ok()) return false;
  for (const std::string& self : options_.regions) {
    NodeOptions node_options;
    node_options.region = self;
    node_options.extra_toml = options_.extra_toml;
    int id = 1;
    for (const std::string& region : options_.regions) {
      const std::string replication =
          region == self
              ? "127.0.0.1:" + std::to_string(replication_ports[region])
              : "127.0.0.1:" +
                    std::to_string(proxy_->listen_port(route_index_[RouteName(self, region)]));
      node_options.regions.push_back({region, id++, http_ports[region], replication});
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
  uint64_t bytes = 0;
  for (const wanproxy::RouteStats& route : proxy_->stats().routes) {
    bytes += route.bytes_to_target + route.bytes_to_client;
  }
  return bytes;
}

std::string Cluster::Logs() const {
  std::string logs;
  for (const auto& [region, node] : nodes_) logs += "--- " + region + " ---\n" + node->log();
  return logs;
}

}  // namespace meridian::testing
