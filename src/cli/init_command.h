// `meridian init`: the configuration files of a new deployment, one per region, with (when asked)
// its CA, the regions' certificates, the token secret and an admin token (docs/cli.md).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "node/config_text.h"

namespace meridian::cli {

struct InitOptions {
  std::vector<std::string> regions;  // names, in id order (1, 2, ...)
  std::string dir = "meridian";      // where the files go
  std::vector<std::string> hosts;    // NAME=IP: where a region listens (default 127.0.0.1)
  int base_port = 7000;
  std::string deployment;  // empty: the default
  std::string data_root;   // empty: <dir>/data, absolute; else written as given
  bool tls = false;
  bool auth = false;
  bool grpc = false;
};

// The config plan of each region (in order), its files relative to `dir`; kInvalidArgument for
// an unusable option. Nothing is written.
Result<std::vector<node::ConfigPlan>> PlanDeployment(const InitOptions& options);

// Adds `init` to `app`.
void AddInitCommand(CLI::App& app);
// After parsing: the exit code of `init` when it ran, or -1.
int RunInitCommand();

}  // namespace meridian::cli
