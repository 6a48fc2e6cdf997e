// The demo's deployment: three regions, their ports, the six directed WAN routes between them,
// and the files that describe them to `meridian start` and `meridian wan-proxy`.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "client/http_client.h"
#include "demo/demo.h"

namespace meridian::demo {

struct Region {
  std::string name;
  int id = 0;
  uint16_t http = 0;
  uint16_t replication = 0;  // where this region's node listens for its peers
  uint16_t resp = 0;         // the Redis protocol port (docs/redis.md)
};

// Node `from` reaches node `to` through a proxy listening on `listen`.
struct Route {
  int from = 0;  // indexes into Layout::regions
  int to = 0;
  uint16_t listen = 0;
  int delay_ms = 0;
};

struct Layout {
  std::vector<Region> regions;
  std::vector<Route> routes;  // empty without proxies
  uint16_t control = 0;       // the proxy's control port
  int jitter_ms = 0;
  // [tls] and [auth] (docs/security.md), unless --insecure: the deployment's CA, the regions'
  // certificates and the token secret are in pki_dir, and the demo's clients use `token` (every
  // key, admin) and trust `tls` (the CA).
  std::string pki_dir;
  std::string token;
  client::TlsContext tls;
  bool secure() const { return !pki_dir.empty(); }
  // Makes the CA, a certificate per region, the token secret and the demo's token in `dir`.
  bool MakeSecrets(const std::string& dir, std::string* error);
  // A client of region `index`, speaking TLS and sending the token when the demo is secure.
  client::HttpClient Client(int index, std::chrono::milliseconds timeout) const;
  // "https://127.0.0.1:7001" (or http://).
  std::string Url(int index) const;
  // How to call region `index` by hand while the demo runs: curl, `meridian get` and redis-cli
  // command lines with the CA and the token, and the web console's address.
  std::vector<std::string> CallHint(int index) const;

  // The replication address node `from` dials to reach region `to`.
  uint16_t DialPort(int from, int to) const;
  // Every port the demo listens on, with what it is for ("us http").
  std::vector<std::pair<uint16_t, std::string>> Ports() const;
  // `meridian start`'s TOML for region `index`, its database in `data_dir`.
  std::string NodeConfig(int index, const std::string& data_dir) const;
  // `meridian wan-proxy`'s arguments (after the subcommand).
  std::vector<std::string> ProxyArgs() const;
  // "us-eu 40 ms, us-asia 80 ms, eu-asia 110 ms, jitter 5 ms"
  std::string DelaySummary() const;
};

// Builds the layout from the options; false with *error when an option is unusable.
bool MakeLayout(const DemoOptions& options, Layout* layout, std::string* error);

}  // namespace meridian::demo
