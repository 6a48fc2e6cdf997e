// meridian: the single binary. `meridian start --config FILE` runs one region's node (with no
// file, one region on loopback); `meridian init` writes a deployment's files;
// `meridian --help` lists every subcommand (docs/cli.md).
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <optional>
#include <string>

#include "api/http_server.h"
#include "api/resp_server.h"
#include "api/trace_export.h"
#include "cli/client_commands.h"
#include "cli/init_command.h"
#include "cli/security_commands.h"
#include "demo/demo.h"
#include "grpcapi/grpc_api.h"
#include "node/config.h"
#include "node/config_text.h"
#include "node/json_log.h"
#include "node/node.h"
#include "node/replication_host.h"
#include "replication/transport.h"
#include "wanproxy/wan_proxy.h"

namespace meridian {
namespace {

struct StartOptions {
  std::string config_path;
  std::string region;
  std::string data_dir;
  std::string deployment;
  bool bootstrap = false;
  std::string http;
  std::string replication;
  std::string grpc;
  std::string resp;
  int http_threads = -1;
  std::string sync;  // "", "true", "false"
  std::string log_level;   // "": [log] level
  std::string log_format;  // "": [log] format
};

int Start(const StartOptions& options) {
  // No config file: one region on loopback (node::SingleRegionPlan), as redis-server and etcd
  // start with none.
  const bool zero_config = options.config_path.empty();
  auto config = zero_config
                    ? node::ParseConfig(node::WriteConfigToml(node::SingleRegionPlan()), "(none)")
                    : node::LoadConfigFile(options.config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "meridian start: %s\n", config.status().message().c_str());
    return 2;
  }
  if (!options.region.empty()) config->region = options.region;
  // Without a file, --region renames the one region.
  if (zero_config) config->regions.front().name = config->region;
  if (!options.data_dir.empty()) config->data_dir = options.data_dir;
  if (!options.deployment.empty()) config->deployment = options.deployment;
  config->bootstrap = options.bootstrap;
  if (options.http_threads >= 0) config->http_threads = options.http_threads;
  if (!options.sync.empty()) config->sync = options.sync == "true";
  if (!options.log_level.empty()) config->log_level = options.log_level;
  if (!options.log_format.empty()) config->log_format = options.log_format;
  // An address override replaces that address of this node's own [[regions]] entry.
  for (const auto& [value, field] :
       {std::pair{&options.http, &node::RegionAddress::http},
        std::pair{&options.replication, &node::RegionAddress::replication},
        std::pair{&options.grpc, &node::RegionAddress::grpc},
        std::pair{&options.resp, &node::RegionAddress::resp}}) {
    if (value->empty()) continue;
    for (node::RegionAddress& address : config->regions) {
      if (address.name == config->region) address.*field = *value;
    }
  }
  if (Status status = node::ValidateConfig(*config); !status.ok()) {
    std::fprintf(stderr, "meridian start: %s: %s\n",
                 zero_config ? "(no config file)" : options.config_path.c_str(),
                 status.message().c_str());
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  if (config->log_format == "json") node::UseJsonLogs(config->region);
  if (zero_config) {
    const node::RegionAddress& self = config->self();
    spdlog::info(
        "no --config: one region '{}' on loopback, HTTP on {}, the Redis protocol on {}, data in "
        "{} (`meridian init` writes the configuration of a deployment: docs/cli.md)",
        self.name, self.http, self.resp, config->data_dir);
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
  // Spans of traced writes to an OTLP collector, when [tracing] names one.
  api::TraceExporter trace_exporter(node->get());
  node::ReplicationHost replication_host(node->get());
  replication::Replicator replicator(&replication_host);
  if (Status status = replicator.Start(); !status.ok()) {
    std::fprintf(stderr, "meridian start: %s\n", status.message().c_str());
    return 1;
  }
  // The client gRPC API, when this region's entry names an address for it (docs/grpc-api.md).
  std::optional<grpcapi::GrpcApiServer> grpc_api;
  if (!(*node)->config().self().grpc.empty()) {
    grpc_api.emplace(node->get(), (*node)->config().self().grpc);
    if (Status status = grpc_api->Start(); !status.ok()) {
      std::fprintf(stderr, "meridian start: %s\n", status.message().c_str());
      return 1;
    }
  }
  // The Redis protocol port, when this region's entry names an address for it (docs/redis.md).
  std::optional<api::RespServer> resp_server;
  if (!(*node)->config().self().resp.empty()) {
    resp_server.emplace(node->get());
    if (Status status = resp_server->Start(); !status.ok()) {
      std::fprintf(stderr, "meridian start: %s\n", status.message().c_str());
      return 1;
    }
  }
  // The Redis port's connections answer what they already read before the write queue stops.
  server.SetBeforeNodeStop([&resp_server] {
    if (resp_server) resp_server->Drain();
  });
  server.Run();  // until SIGTERM or SIGINT: drains HTTP and commits what was queued
  if (resp_server) resp_server->Stop();  // closes its connections
  if (grpc_api) grpc_api->Stop();  // ends open watches and waits
  replicator.Stop();
  return 0;
}

// `meridian wan-proxy` (docs/wan-proxy.md): parses the routes, then runs until a signal.
int WanProxy(const std::vector<std::string>& routes, wanproxy::WanProxyOptions options,
             const std::string& log_level) {
  spdlog::set_level(spdlog::level::from_str(log_level));
  for (const std::string& text : routes) {
    auto route = wanproxy::ParseRoute(text);
    if (!route.ok()) {
      std::fprintf(stderr, "meridian wan-proxy: %s\n", route.status().message().c_str());
      return 2;
    }
    options.routes.push_back(std::move(route).value());
  }
  return wanproxy::RunWanProxy(options);
}

}  // namespace
}  // namespace meridian

int main(int argc, char** argv) {
  CLI::App app{"Meridian: a geo-distributed, active-active state store"};
  app.require_subcommand(1);

  meridian::StartOptions start;
  CLI::App* start_command =
      app.add_subcommand("start", "Run this region's node (docs/configuration.md)");
  start_command
      ->add_option("-c,--config", start.config_path,
                   "TOML config file (none: one region 'local' on loopback, data in "
                   "./meridian-data)")
      ->check(CLI::ExistingFile);
  start_command->add_option("--region", start.region, "Override [node] region");
  start_command->add_option("--data-dir", start.data_dir, "Override [node] data_dir");
  start_command->add_option("--deployment", start.deployment, "Override [node] deployment");
  start_command->add_flag("--bootstrap", start.bootstrap,
                          "An empty data_dir is a new region of a new deployment: take writes at "
                          "once instead of rebuilding from the peers first");
  start_command->add_option("--http", start.http,
                            "Override this region's http address (host:port)");
  start_command->add_option("--replication", start.replication,
                            "Override this region's replication address (host:port): where its "
                            "peers reach it");
  start_command->add_option("--grpc", start.grpc,
                            "Override this region's grpc address (host:port): the client gRPC API");
  start_command->add_option("--resp", start.resp,
                            "Override this region's resp address (host:port): the Redis protocol "
                            "port");
  start_command->add_option("--http-threads", start.http_threads,
                            "Override [http] threads (0: one per core but one)");
  start_command->add_option("--sync", start.sync, "Override [storage] sync")
      ->check(CLI::IsMember({"true", "false"}));
  start_command
      ->add_option("--log-level", start.log_level,
                   "trace, debug, info, warn, error (default: [log] level, else info)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  start_command
      ->add_option("--log-format", start.log_format,
                   "text, or json: one JSON object per line (default: [log] format, else text)")
      ->check(CLI::IsMember({"text", "json"}));

  meridian::demo::DemoOptions demo;
  CLI::App* demo_command = app.add_subcommand(
      "demo",
      "Three regions on this machine over WAN proxies, a live workload and a convergence "
      "proof (docs/demo.md)");
  demo_command->add_option("--duration", demo.duration_s, "Seconds of workload (0: until Ctrl-C)")
      ->check(CLI::NonNegativeNumber);
  demo_command->add_option("--base-port", demo.base_port, "Ports used: base+1 to base+232")
      ->check(CLI::Range(1024, 65535 - 232));
  demo_command->add_option("--data-dir", demo.data_dir,
                           "New or empty directory for data and logs (default: a temporary one)");
  demo_command->add_flag("--keep-data", demo.keep_data, "Keep the data directory at the end");
  demo_command->add_option("--rate", demo.rate, "Writes per second, all regions together")
      ->check(CLI::Range(1, 100000));
  demo_command->add_option("--delays", demo.delays, "One-way WAN delay per region pair, ms");
  demo_command->add_option("--jitter-ms", demo.jitter_ms, "WAN delay jitter, ms")
      ->check(CLI::Range(0, 10000));
  demo_command->add_flag("--no-tty", demo.no_tty, "Plain lines instead of a redrawn screen");
  demo_command->add_flag("--no-proxy", demo.no_proxy,
                         "Connect the regions directly, without WAN proxies");
  demo_command->add_flag("--insecure", demo.insecure,
                         "Plaintext ports and no tokens (default: [tls] and [auth] on)");

  meridian::wanproxy::WanProxyOptions wan;
  std::vector<std::string> wan_routes;
  std::string wan_log_level = "info";
  CLI::App* wan_command = app.add_subcommand(
      "wan-proxy",
      "Forward TCP between region nodes with WAN delay, jitter, drops, stalls, bandwidth caps and "
      "partitions (docs/wan-proxy.md)");
  wan_command
      ->add_option("--route", wan_routes,
                   "LISTEN=TARGET[,delay=MS][,jitter=MS][,drop=P][,stall=P][,stall-ms=MS]"
                   "[,bandwidth=BYTES_PER_S]; repeatable. Route values override the defaults below")
      ->required()
      ->allow_extra_args(false);
  wan_command->add_option("--delay-ms", wan.delay_ms, "One-way delay of each direction, ms")
      ->check(CLI::Range(0u, meridian::wanproxy::kMaxMilliseconds))
      ->capture_default_str();
  wan_command->add_option("--jitter-ms", wan.jitter_ms, "Uniform jitter around the delay, +/- ms")
      ->check(CLI::Range(0u, meridian::wanproxy::kMaxMilliseconds))
      ->capture_default_str();
  wan_command->add_option("--drop", wan.drop, "Probability per second that a connection is reset")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  wan_command
      ->add_option("--stall", wan.stall,
                   "Probability per second that a connection stops forwarding for --stall-ms")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  wan_command->add_option("--stall-ms", wan.stall_ms, "How long a stall lasts, ms")
      ->check(CLI::Range(1u, meridian::wanproxy::kMaxMilliseconds))
      ->capture_default_str();
  wan_command
      ->add_option("--bandwidth", wan.bandwidth,
                   "Bytes per second per direction per connection (0: no cap)")
      ->capture_default_str();
  wan_command
      ->add_option("--buffer-bytes", wan.buffer_bytes,
                   "Bytes held per direction per connection before reading pauses")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  wan_command->add_option("--seed", wan.seed, "Seed of the random choices (0: a random seed)")
      ->capture_default_str();
  wan_command->add_option("--control", wan.control,
                          "HOST:PORT of the HTTP control endpoint (GET /status, POST /partition, "
                          "POST /heal); none by default");
  wan_command->add_option("--log-level", wan_log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();

  meridian::cli::AddClientCommands(app);
  meridian::cli::AddSecurityCommands(app);
  meridian::cli::AddInitCommand(app);

  CLI11_PARSE(app, argc, argv);
  if (const int code = meridian::cli::RunClientCommands(); code >= 0) return code;
  if (const int code = meridian::cli::RunSecurityCommands(); code >= 0) return code;
  if (const int code = meridian::cli::RunInitCommand(); code >= 0) return code;
  if (start_command->parsed()) return meridian::Start(start);
  if (wan_command->parsed()) return meridian::WanProxy(wan_routes, wan, wan_log_level);
  if (demo_command->parsed()) return meridian::demo::RunDemo(demo);
  return 2;
}
