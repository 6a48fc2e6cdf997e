// The demo's deployment: three regions, their ports, the six directed WAN routes between them,
// and the files that describe them to `meridian start` and `meridian wan-proxy`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "demo/demo.h"

namespace meridian::demo {

struct Region {
  std::string name;
  int id = 0;
  uint16_t http = 0;
  uint16_t replication = 0;  // where this region's node listens for its peers
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
