#include "demo/layout.h"

#include <fstream>
#include <sstream>

#include "auth/deployment_secrets.h"
#include "net/tls_context.h"
#include "node/config_text.h"

namespace meridian::demo {
namespace {

std::string Address(uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

int RegionIndex(const std::vector<Region>& regions, const std::string& name) {
  for (size_t i = 0; i < regions.size(); ++i) {
    if (regions[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

// Parses "us-eu=40,us-asia=80" into delays[i][j] (symmetric), over the defaults already there.
bool ParseDelays(const std::string& text, const std::vector<Region>& regions,
                 std::vector<std::vector<int>>* delays, std::string* error) {
  std::stringstream entries(text);
  std::string entry;
  while (std::getline(entries, entry, ',')) {
    const size_t dash = entry.find('-');
    const size_t equals = entry.find('=');
    const std::string bad = "--delays: '" + entry + "' is not REGION-REGION=MS (us-eu=40)";
    if (dash == std::string::npos || equals == std::string::npos || equals < dash) {
      *error = bad;
      return false;
    }
    const int a = RegionIndex(regions, entry.substr(0, dash));
    const int b = RegionIndex(regions, entry.substr(dash + 1, equals - dash - 1));
    const std::string ms = entry.substr(equals + 1);
    if (a < 0 || b < 0 || a == b) {
      *error = "--delays: '" + entry + "' must name two of the regions us, eu, asia";
      return false;
    }
    if (ms.empty() || ms.size() > 6 || ms.find_first_not_of("0123456789") != std::string::npos) {
      *error = bad;
      return false;
    }
    (*delays)[a][b] = (*delays)[b][a] = std::stoi(ms);
  }
  return true;
}

}  // namespace

bool MakeLayout(const DemoOptions& options, Layout* layout, std::string* error) {
  constexpr int kHighestOffset = 232;  // the route asia -> eu, below
  if (options.base_port < 1024 || options.base_port > 65535 - kHighestOffset) {
    *error = "--base-port must be from 1024 to " + std::to_string(65535 - kHighestOffset) +
             " (the demo uses ports up to base + " + std::to_string(kHighestOffset) + ")";
    return false;
  }
  const int base = options.base_port;
  layout->regions.clear();
  const char* names[] = {"us", "eu", "asia"};
  for (int i = 0; i < 3; ++i) {
    layout->regions.push_back({names[i], i + 1, static_cast<uint16_t>(base + 1 + i),
                               static_cast<uint16_t>(base + 101 + i),
                               static_cast<uint16_t>(base + 11 + i)});
  }
  std::vector<std::vector<int>> delays = {{0, 40, 80}, {40, 0, 110}, {80, 110, 0}};
  if (!ParseDelays(options.delays, layout->regions, &delays, error)) return false;
  layout->jitter_ms = options.jitter_ms;
  layout->routes.clear();
  if (options.no_proxy) return true;
  layout->control = static_cast<uint16_t>(base + 200);
  for (int from = 0; from < 3; ++from) {
    for (int to = 0; to < 3; ++to) {
      if (from == to) continue;
      // us -> eu listens on base + 212, eu -> asia on base + 223: the region ids in the port.
      const int listen = base + 200 + 10 * (from + 1) + (to + 1);
      layout->routes.push_back({from, to, static_cast<uint16_t>(listen), delays[from][to]});
    }
  }
  return true;
}

uint16_t Layout::DialPort(int from, int to) const {
  for (const Route& route : routes) {
    if (route.from == from && route.to == to) return route.listen;
  }
  return regions[to].replication;
}

std::vector<std::pair<uint16_t, std::string>> Layout::Ports() const {
  std::vector<std::pair<uint16_t, std::string>> ports;
  for (const Region& region : regions) {
    ports.emplace_back(region.http, region.name + " http");
    ports.emplace_back(region.replication, region.name + " replication");
    ports.emplace_back(region.resp, region.name + " redis");
  }
  if (!routes.empty()) ports.emplace_back(control, "wan-proxy control");
  for (const Route& route : routes) {
    ports.emplace_back(route.listen, "wan-proxy route " + regions[route.from].name + "->" +
                                         regions[route.to].name);
  }
  return ports;
}

std::string Layout::NodeConfig(int index, const std::string& data_dir) const {
  node::ConfigPlan plan;
  plan.comment = {"Region " + regions[index].name +
                  " of `meridian demo`: other regions are dialled " +
                  (routes.empty() ? "directly." : "through the WAN proxy.")};
  plan.region = regions[index].name;
  plan.data_dir = data_dir;
  for (int i = 0; i < static_cast<int>(regions.size()); ++i) {
    plan.regions.push_back({regions[i].name, regions[i].id, Address(regions[i].http),
                            Address(regions[i].replication), Address(regions[i].resp), ""});
    plan.dial.push_back(i == index ? "" : Address(DialPort(index, i)));
  }
  // Three nodes, the proxy and the workload share this machine's cores.
  plan.http_threads = 2;
  if (secure()) {
    const std::string& name = regions[index].name;
    plan.cert_file = pki_dir + "/" + name + ".pem";
    plan.key_file = pki_dir + "/" + name + "-key.pem";
    plan.ca_file = pki_dir + "/ca.pem";
    plan.jwt_secret_file = pki_dir + "/jwt.key";
  }
  return node::WriteConfigToml(plan);
}

bool Layout::MakeSecrets(const std::string& dir, std::string* error) {
  auth::DeploymentSecretsOptions options;
  options.dir = dir;
  options.ca_name = "Meridian demo CA";
  options.ca_days = options.cert_days = options.token_days = 30;
  for (const Region& region : regions) options.regions.push_back({region.name, {}});
  options.token_subject = "meridian-demo";
  Result<auth::DeploymentSecrets> made = auth::MakeDeploymentSecrets(options);
  if (!made.ok()) {
    *error = "cannot make the demo's secrets: " + made.status().message();
    return false;
  }
  token = made->token;
  Result<std::shared_ptr<net::SslContext>> context = net::LoadClientContext(made->ca_file);
  if (!context.ok()) {
    *error = context.status().message();
    return false;
  }
  tls = *context;
  pki_dir = dir;
  return true;
}

client::HttpClient Layout::Client(int index, std::chrono::milliseconds timeout) const {
  client::HttpClient client("127.0.0.1", regions[index].http, timeout, tls);
  client.SetBearerToken(token);
  return client;
}

std::vector<std::string> Layout::CallHint(int index) const {
  const std::string region = regions[index].name;
  const std::string redis = "redis-cli -p " + std::to_string(regions[index].resp);
  if (!secure()) {
    return {"curl " + Url(index) + "/v1/docs/item:0001",
            "meridian get item:0001 --regions " + region + "=" + Address(regions[index].http),
            redis + " hgetall item:0001", "the console: " + Url(index) + "/ui/"};
  }
  const std::string read_token = "$(cat " + pki_dir + "/token)";
  return {"curl --cacert " + pki_dir + "/ca.pem -H \"Authorization: Bearer " + read_token + "\" " +
              Url(index) + "/v1/docs/item:0001",
          "meridian get item:0001 --regions " + region + "=" + Url(index) + " --ca-file " +
              pki_dir + "/ca.pem --token \"" + read_token + "\"",
          redis + " --tls --cacert " + pki_dir + "/ca.pem --pass \"" + read_token +
              "\" --no-auth-warning hgetall item:0001",
          "the console: " + Url(index) + "/ui/ (the browser does not know the demo's CA, " +
              pki_dir + "/ca.pem: accept it, then paste the token in " + pki_dir + "/token)"};
}

std::string Layout::Url(int index) const {
  return std::string(secure() ? "https" : "http") +
         "://127.0.0.1:" + std::to_string(regions[index].http);
}

std::vector<std::string> Layout::ProxyArgs() const {
  std::vector<std::string> args;
  for (const Route& route : routes) {
    args.push_back("--route");
    args.push_back(Address(route.listen) + "=" + Address(regions[route.to].replication) +
                   ",delay=" + std::to_string(route.delay_ms) +
                   ",jitter=" + std::to_string(jitter_ms));
  }
  args.push_back("--control");
  args.push_back(Address(control));
  return args;
}

std::string Layout::DelaySummary() const {
  if (routes.empty()) return "no WAN proxies: regions connect directly";
  std::string out = "WAN one-way delay:";
  for (const Route& route : routes) {
    if (route.from > route.to) continue;  // once per pair: the delay is symmetric
    out += " " + regions[route.from].name + "-" + regions[route.to].name + " " +
           std::to_string(route.delay_ms) + " ms,";
  }
  return out + " jitter " + std::to_string(jitter_ms) + " ms";
}

}  // namespace meridian::demo
