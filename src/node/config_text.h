// The TOML text of a region node's configuration (docs/configuration.md), written from a
// deployment's plan: what `meridian init` writes for each region, what `meridian start` runs with
// no config file, and what `meridian demo` gives its nodes. One writer, so that the three cannot
// drift from each other or from what ParseConfig reads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "meridian/status.h"

namespace meridian::node {

struct PlannedRegion {
  std::string name;
  int id = 0;
  std::string http;         // host:port
  std::string replication;  // host:port
  std::string resp;         // host:port; empty: none
  std::string grpc;         // host:port; empty: none
};

struct ConfigPlan {
  std::vector<std::string> comment;  // lines written first, each as a "# " comment
  std::string region;                // which region this node is
  std::string data_dir;
  std::string deployment;  // empty: the default, not written
  // Every region of the deployment. A region's `replication` as this node dials it may differ
  // from where the region listens (through a proxy): `dial` overrides it per region, by index.
  std::vector<PlannedRegion> regions;
  std::vector<std::string> dial;  // empty, or one per region (empty entries: `replication`)
  int http_threads = -1;          // < 0: not written (the default)
  bool sync = true;
  // [tls] and [auth]; empty: not written. Relative paths are taken from the file's directory.
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  std::string jwt_secret_file;
};

// A TOML basic string: quoted, with '"', '\' and control characters escaped.
std::string TomlString(std::string_view text);

// The file's text.
std::string WriteConfigToml(const ConfigPlan& plan);

// The single region `meridian start` runs without a config file (docs/cli.md#meridian-start):
// region "local" (id 1) on loopback, HTTP on 127.0.0.1:7001, the Redis protocol on
// 127.0.0.1:7201, replication on 127.0.0.1:7101, its data in ./meridian-data.
ConfigPlan SingleRegionPlan();

// The addresses `meridian init` gives the region of index `index` (0-based) on `host`: HTTP on
// base + 1 + index, replication on base + 101 + index, the Redis protocol on base + 201 + index,
// gRPC (when asked for) on base + 301 + index. A deployment has at most 32 regions, so the
// ranges never overlap; kInvalidArgument when a port would pass 65535.
Result<PlannedRegion> PlanRegion(const std::string& name, int index, const std::string& host,
                                 int base_port, bool grpc);

}  // namespace meridian::node
