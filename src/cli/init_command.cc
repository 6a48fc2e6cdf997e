#include "cli/init_command.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>

#include "auth/deployment_secrets.h"
#include "auth/files.h"
#include "net/host_port.h"
#include "node/config.h"

namespace meridian::cli {
namespace {

constexpr size_t kRegionsMax = 32;  // region ids are 0..31 (and init numbers them from 1)

InitOptions g_options;
CLI::App* g_command = nullptr;

bool ValidName(const std::string& name) {
  return !name.empty() && name.size() <= 64 &&
         name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") ==
             std::string::npos;
}

std::string Absolute(const std::string& path) {
  std::error_code error;
  std::filesystem::path absolute = std::filesystem::absolute(path, error);
  return error ? path : absolute.lexically_normal().string();
}

}  // namespace

Result<std::vector<node::ConfigPlan>> PlanDeployment(const InitOptions& options) {
  if (options.regions.empty()) return InvalidArgument("--regions names no region");
  if (options.regions.size() > kRegionsMax - 1) {
    return InvalidArgument("--regions names " + std::to_string(options.regions.size()) +
                           " regions; a deployment has at most " + std::to_string(kRegionsMax - 1));
  }
  std::set<std::string> names;
  for (const std::string& name : options.regions) {
    if (!ValidName(name)) {
      return InvalidArgument("--regions: '" + name +
                             "' is not a region name (1-64 letters, digits, '-' or '_'; it names "
                             "files)");
    }
    if (!names.insert(name).second) return InvalidArgument("--regions names '" + name + "' twice");
  }
  std::map<std::string, std::string> hosts;
  for (const std::string& entry : options.hosts) {
    const size_t equals = entry.find('=');
    const std::string name = entry.substr(0, equals);
    const std::string host = equals == std::string::npos ? "" : entry.substr(equals + 1);
    if (equals == std::string::npos || names.count(name) == 0 || !net::IsIpAddress(host)) {
      return InvalidArgument("--host '" + entry +
                             "' is not NAME=IP with NAME one of --regions and IP an IPv4 or IPv6 "
                             "address");
    }
    if (!hosts.emplace(name, host).second) {
      return InvalidArgument("--host names region '" + name + "' twice");
    }
  }
  std::vector<node::PlannedRegion> regions;
  for (size_t i = 0; i < options.regions.size(); ++i) {
    const std::string& name = options.regions[i];
    const std::string host = hosts.count(name) != 0 ? hosts[name] : "127.0.0.1";
    Result<node::PlannedRegion> region =
        node::PlanRegion(name, static_cast<int>(i), host, options.base_port, options.grpc);
    if (!region.ok()) return region.status();
    regions.push_back(*region);
  }
  const std::string data_root =
      options.data_root.empty() ? Absolute(options.dir + "/data") : options.data_root;
  std::vector<node::ConfigPlan> plans;
  for (const node::PlannedRegion& region : regions) {
    node::ConfigPlan plan;
    plan.comment = {"Region " + region.name + " of a deployment of " +
                        std::to_string(regions.size()) + " written by `meridian init`.",
                    "Start it with: meridian start --config " + region.name + ".toml" +
                        (regions.size() > 1 ? " --bootstrap (the first start only)" : ""),
                    "Every key: docs/configuration.md"};
    plan.region = region.name;
    plan.data_dir = data_root + "/" + region.name;
    plan.deployment = options.deployment;
    plan.regions = regions;
    // Beside the config file: relative paths are taken from its directory.
    if (options.tls) {
      plan.cert_file = "pki/" + region.name + ".pem";
      plan.key_file = "pki/" + region.name + "-key.pem";
      plan.ca_file = "pki/ca.pem";
    }
    if (options.auth) plan.jwt_secret_file = "pki/jwt.key";
    // Checked as the node will check it: a plan the node would refuse is refused here.
    Result<node::NodeConfig> parsed =
        node::ParseConfig(node::WriteConfigToml(plan), region.name + ".toml");
    if (!parsed.ok()) return parsed.status();
    if (Status valid = node::ValidateConfig(*parsed); !valid.ok()) {
      return InvalidArgument(region.name + ".toml: " + valid.message() +
                             (options.tls && options.auth ? "" : " (--tls --auth)"));
    }
    plans.push_back(std::move(plan));
  }
  return plans;
}

void AddInitCommand(CLI::App& app) {
  InitOptions& o = g_options;
  g_command = app.add_subcommand(
      "init",
      "Write the configuration files of a new deployment, with its certificates and an admin "
      "token when asked (docs/cli.md)");
  g_command->add_option("--regions", o.regions, "Region names, comma-separated (ids 1, 2, ...)")
      ->required()
      ->delimiter(',');
  g_command->add_option("--dir", o.dir, "Directory for the files (created; nothing is replaced)")
      ->capture_default_str();
  g_command->add_option("--host", o.hosts,
                        "NAME=IP: the address region NAME listens on and is reached at "
                        "(default 127.0.0.1); repeatable");
  g_command
      ->add_option("--base-port", o.base_port,
                   "Region i (from 0) listens on base+1+i (HTTP), base+101+i (replication), "
                   "base+201+i (Redis protocol), base+301+i (gRPC)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  g_command->add_option("--deployment", o.deployment, "[node] deployment (default: meridian)");
  g_command->add_option("--data-root", o.data_root,
                        "Where the regions' data directories go, written as given (default: "
                        "DIR/data, absolute)");
  g_command->add_flag("--tls", o.tls, "Make a CA and a certificate per region in DIR/pki; [tls]");
  g_command->add_flag("--auth", o.auth,
                      "Make the token secret and an admin token (DIR/pki/token); [auth]");
  g_command->add_flag("--grpc", o.grpc, "Give each region a gRPC address");
}

int RunInitCommand() {
  if (g_command == nullptr || !g_command->parsed()) return -1;
  const InitOptions& options = g_options;
  Result<std::vector<node::ConfigPlan>> plans = PlanDeployment(options);
  if (!plans.ok()) {
    std::fprintf(stderr, "meridian init: %s\n", plans.status().message().c_str());
    return 2;
  }
  // Nothing is replaced: every file to write must be new, checked before the first is written.
  std::vector<std::string> paths;
  for (const node::ConfigPlan& plan : *plans) paths.push_back(options.dir + "/" + plan.region + ".toml");
  if (options.tls || options.auth) paths.push_back(options.dir + "/pki");
  for (const std::string& path : paths) {
    if (std::filesystem::exists(path)) {
      std::fprintf(stderr,
                   "meridian init: %s exists; nothing was written (choose another --dir, or "
                   "remove it)\n",
                   path.c_str());
      return 2;
    }
  }
  std::error_code error;
  std::filesystem::create_directories(options.dir, error);
  if (error) {
    std::fprintf(stderr, "meridian init: cannot create %s: %s\n", options.dir.c_str(),
                 error.message().c_str());
    return 1;
  }
  if (options.tls || options.auth) {
    auth::DeploymentSecretsOptions secrets;
    secrets.dir = options.dir + "/pki";
    secrets.tls = options.tls;
    secrets.auth = options.auth;
    for (size_t i = 0; i < plans->size(); ++i) {
      const node::PlannedRegion& region = (*plans)[i].regions[i];
      std::string host;
      uint16_t port = 0;
      net::SplitHostPort(region.http, &host, &port);
      secrets.regions.push_back({region.name, {host}});
    }
    Result<auth::DeploymentSecrets> made = auth::MakeDeploymentSecrets(secrets);
    if (!made.ok()) {
      std::fprintf(stderr, "meridian init: %s\n", made.status().message().c_str());
      return 1;
    }
  }
  for (size_t i = 0; i < plans->size(); ++i) {
    if (Status written =
            auth::WriteFile(paths[i], node::WriteConfigToml((*plans)[i]), 0644, /*replace=*/false);
        !written.ok()) {
      std::fprintf(stderr, "meridian init: %s\n", written.message().c_str());
      return 1;
    }
  }
  const bool many = plans->size() > 1;
  std::printf("Wrote the configuration of %zu region%s to %s/:\n", plans->size(), many ? "s" : "",
              options.dir.c_str());
  for (size_t i = 0; i < plans->size(); ++i) {
    const node::PlannedRegion& region = (*plans)[i].regions[i];
    std::printf("  %-16s http %s, redis %s, replication %s\n", ((*plans)[i].region + ".toml").c_str(),
                region.http.c_str(), region.resp.c_str(), region.replication.c_str());
  }
  if (options.tls) {
    std::printf("  pki/             the CA (ca.pem; keep ca-key.pem off the nodes), a certificate "
                "per region\n");
  }
  if (options.auth) {
    std::printf("  pki/jwt.key      the secret that signs tokens; pki/token: an admin token "
                "(every key, 30 days)\n");
  }
  std::printf("\nStart each region (on its own host, or all here)%s:\n",
              many ? ". --bootstrap is for the very first start of the new deployment only; "
                     "every later start goes without it"
                   : "");
  for (const node::ConfigPlan& plan : *plans) {
    std::printf("  meridian start --config %s/%s.toml%s\n", options.dir.c_str(),
                plan.region.c_str(), many ? " --bootstrap" : "");
  }
  return 0;
}

}  // namespace meridian::cli
