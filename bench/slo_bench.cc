// slo_bench: the deployment's service levels, measured (tests/support/slo.h; bench/README.md):
// p99 replication lag per pair under the demo's delays plus jitter and resets, then the share of
// successful client operations, failover and convergence times while each region in turn is
// killed and partitioned. Prints the steps, a JSON report, and the goals.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "support/slo.h"

int main(int argc, char** argv) {
  CLI::App app{"Measured service levels of three regions under WAN faults (bench/README.md)"};
  meridian::testing::SloOptions options;
  app.add_option("--steady-s", options.steady_s, "Seconds of the steady phase")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--fault-s", options.fault_s, "Seconds each kill and each partition lasts")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--settle-s", options.settle_s, "Seconds between two faults")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  app.add_option("--rate", options.rate, "Client operations per second, all clients together")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--clients-per-region", options.clients_per_region,
                 "Clients preferring each region")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--jitter-ms", options.jitter_ms, "Jitter of every link, besides its delay")
      ->check(CLI::Range(0u, 10000u))
      ->capture_default_str();
  app.add_option("--resets", options.resets,
                 "Probability per second that a link's connection is reset")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  bool no_faults = false;
  app.add_flag("--no-faults", no_faults, "The steady phase only");
  CLI11_PARSE(app, argc, argv);
  options.faults = !no_faults;
  options.progress = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  meridian::testing::SloReport report;
  std::string error;
  if (!meridian::testing::RunSlo(options, &report, &error)) {
    std::fprintf(stderr, "slo_bench: %s\n", error.c_str());
    return 1;
  }
  std::printf("%s\n", report.Json().dump().c_str());
  // The goals (the operations issue): p99 lag < 200 ms per pair with the demo's delays plus 20 ms
  // jitter; at least 99.992% of client operations successful while regions are killed and
  // partitioned.
  double worst = 0;
  for (const auto& pair : report.steady) worst = std::max(worst, pair.p99_ms);
  std::printf("goal p99 replication lag < 200 ms on every pair: worst %.1f ms: %s\n", worst,
              worst < 200 ? "met" : "NOT met");
  if (options.faults) {
    std::printf("goal >= 99.992%% of client operations successful: %.4f%% (%llu of %llu): %s\n",
                report.SuccessShare() * 100, static_cast<unsigned long long>(report.succeeded),
                static_cast<unsigned long long>(report.attempted),
                report.SuccessShare() >= 0.99992 ? "met" : "NOT met");
  }
  return 0;
}
