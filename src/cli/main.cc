// meridian: the single binary. `meridian start --config FILE` runs one region's node;
// `meridian --help` lists every subcommand (docs/cli.md).
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "api/http_server.h"
#include "node/config.h"
#include "node/node.h"

namespace meridian {
namespace {

struct StartOptions {
  std::string config_path;
  std::string region;
  std::string data_dir;
  std::string http;
  int http_threads = -1;
  std::string sync;  // "", "true", "false"
  std::string log_level = "info";
};

int Start(const StartOptions& options) {
  spdlog::set_level(spdlog::level::from_str(options.log_level));
  auto config = node::LoadConfigFile(options.config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "meridian start: %s\n", config.status().message().c_str());
    return 2;
  }
  if (!options.region.empty()) config->region = options.region;
  if (!options.data_dir.empty()) config->data_dir = options.data_dir;
  if (options.http_threads >= 0) config->http_threads = options.http_threads;
  if (!options.sync.empty()) config->sync = options.sync == "true";
  if (!options.http.empty()) {
    for (node::RegionAddress& address : config->regions) {
      if (address.name == config->region) address.http = options.http;
    }
  }
  if (Status status = node::ValidateConfig(*config); !status.ok()) {
    std::fprintf(stderr, "meridian start: %s: %s\n", options.config_path.c_str(),
                 status.message().c_str());
    return 2;
  }
  auto node = node::Node::Open(*config);
  if (!node.ok()) {
    std::fprintf(stderr, "meridian start: %s\n", node.status().ToString().c_str());
    return 1;
  }
  api::HttpServer server(node->get());
  if (Status status = server.Listen(); !status.ok()) {
    std::fprintf(stderr, "meridian start: %s\n", status.message().c_str());
    return 1;
  }
  server.Run();
  return 0;
}

}  // namespace
}  // namespace meridian

int main(int argc, char** argv) {
  CLI::App app{"Meridian: a geo-distributed, active-active state store"};
  app.require_subcommand(1);

  meridian::StartOptions start;
  CLI::App* start_command =
      app.add_subcommand("start", "Run this region's node (docs/configuration.md)");
  start_command->add_option("-c,--config", start.config_path, "TOML config file")
      ->required()
      ->check(CLI::ExistingFile);
  start_command->add_option("--region", start.region, "Override [node] region");
  start_command->add_option("--data-dir", start.data_dir, "Override [node] data_dir");
  start_command->add_option("--http", start.http,
                            "Override this region's http address (host:port)");
  start_command->add_option("--http-threads", start.http_threads,
                            "Override [http] threads (0: one per core but one)");
  start_command->add_option("--sync", start.sync, "Override [storage] sync")
      ->check(CLI::IsMember({"true", "false"}));
  start_command->add_option("--log-level", start.log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

  CLI11_PARSE(app, argc, argv);
  if (start_command->parsed()) return meridian::Start(start);
  return 2;
}
