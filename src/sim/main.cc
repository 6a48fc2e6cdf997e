// meridian-sim: runs the deterministic simulator (docs/testing.md, "Simulation").
//
//   meridian-sim --seed 42                 one run; prints its summary and trace digest
//   meridian-sim --seed 42 --verbose       the same run with its whole trace
//   meridian-sim --seeds 1000 --from 1     a campaign over seeds 1..1000
//   meridian-sim --campaign --seeds 200    a campaign with speed and convergence figures
//   meridian-sim --script FILE             a scenario script, with its actual output
//
// The wall clock is read here only to report how fast a campaign ran; the simulation never
// reads it.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "sim/script.h"
#include "sim/simulation.h"

namespace {

using meridian::sim::Options;
using meridian::sim::Report;

double Percentile(std::vector<uint64_t> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t rank = static_cast<size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return static_cast<double>(values[std::min(rank, values.size() - 1)]);
}

int RunScriptFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "cannot read " << path << "\n";
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  const meridian::sim::ScriptResult result = meridian::sim::RunScript(path, text.str());
  std::cout << result.rewritten;
  for (const std::string& mismatch : result.mismatches) std::cerr << mismatch << "\n";
  return result.mismatches.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meridian-sim: the deterministic multi-region simulator"};
  Options options;
  std::string profile = "default";
  uint64_t seeds = 0;
  uint64_t from = 1;
  bool campaign = false;
  bool verbose = false;
  std::string script;
  std::optional<int> regions;
  std::optional<uint64_t> duration_ms, rtt_ms, jump_ms;
  std::optional<double> strong, txns, home_moves;
  std::optional<double> writes, loss, duplicate, reorder, partitions, crashes, disk_losses, damages,
      poison, restores, jumps, drift, heal_loss, jitter;

  app.add_option("--seed", options.seed, "Run this seed (replays it exactly)");
  app.add_option("--seeds", seeds, "Run this many seeds, from --from on");
  app.add_option("--from", from, "The first seed of --seeds");
  app.add_flag("--campaign", campaign,
               "Report seeds per second, simulated hours per hour and convergence times");
  app.add_option("--profile", profile, "Fault rates to start from: none, default, lossy, retention")
      ->check(CLI::IsMember({"none", "default", "lossy", "retention"}));
  app.add_option("--regions", regions, "Regions, 3 to 9 (default: chosen by the seed)")
      ->check(CLI::Range(3, 9));
  app.add_option("--duration-ms", duration_ms, "Virtual milliseconds of workload and faults");
  app.add_option("--rtt-ms", rtt_ms, "Round trip of every pair (default: 20-300 ms per pair)");
  app.add_option("--jitter", jitter, "Latency varies up to this fraction above the base");
  app.add_option("--writes", writes, "Client writes per second in each region");
  app.add_option("--strong", strong,
                 "Strong reads and writes per second of each region's client (0: none)");
  app.add_option("--txns", txns, "Transactions per second of each region's client (0: none)");
  app.add_option("--home-moves", home_moves, "Planned home moves per virtual minute");
  app.add_option("--strong-durability", options.strong_durability,
                 "Strong writes wait for this many other regions to hold them (durability)");
  app.add_option("--loss", loss, "Probability that a transmission is lost (and retransmitted)");
  app.add_option("--duplicate", duplicate, "Probability that a message is delivered twice");
  app.add_option("--reorder", reorder, "Probability that a message overtakes earlier ones");
  app.add_option("--partitions", partitions, "Partitions per virtual minute");
  app.add_option("--crashes", crashes, "Crashes per virtual minute");
  app.add_option("--disk-losses", disk_losses,
                 "Data directories lost per virtual minute (the region restarts empty)");
  app.add_option("--damages", damages,
                 "Stored documents lost or corrupted per virtual minute (verification repairs "
                 "them)");
  app.add_option("--poison", poison,
                 "Probability per event received that it is parked as if it did not decode "
                 "(a dead letter; verification restores its document)");
  app.add_option("--restores", restores,
                 "Restores per virtual minute of a region from a copy of its store taken earlier");
  app.add_option("--clock-jumps", jumps, "Clock jumps per virtual minute");
  app.add_option("--jump-ms", jump_ms, "A clock jump moves a clock by up to this");
  app.add_option("--drift-ppm", drift, "Clocks drift by up to this many parts per million");
  app.add_option("--heal-loss", heal_loss, "Loss that stays after the heal");
  app.add_option("--silence-ms", options.links.silence_timeout_ms,
                 "Receiver: a link silent this long is cut and redialled");
  app.add_option("--relay-after-ms", options.links.relay_after_ms,
                 "Receiver: a direct link down this long is relayed through a peer");
  app.add_option("--dial-timeout-ms", options.links.dial_timeout_ms,
                 "Receiver: a dial not answered this long is given up (at least)");
  app.add_option("--hedge-after-ms", options.links.hedge_after_ms,
                 "Receiver: a dial not answered this long gets a second dial beside it (at least)");
  app.add_option("--backoff-max-ms", options.links.backoff_max_ms,
                 "Receiver: the ceiling of the redial delay");
  app.add_flag("!--no-rack", options.rack,
               "Lost retransmissions wait for the doubling RTO instead of RACK's round trip");
  app.add_flag("!--no-require-fold", options.require_fold,
               "Do not fail when stable metadata was not folded away");
  app.add_option("--retention-age-ms", options.retention_age_ms,
                 "Log retention trims what every region acknowledged once this old (0: keep)");
  app.add_option("--retention-hold-ms", options.retention_hold_ms,
                 "A region down this long is released from the log (0: the node's default)");
  app.add_flag("--lifecycle", options.lifecycle,
               "After the heal, remove a region for good and add a new one");
  app.add_flag("--verbose", verbose, "Print the trace of each run");
  app.add_option("--script", script, "Run a scenario script and print its actual output");
  CLI11_PARSE(app, argc, argv);

  // The regions' own log lines (a home table noting each move, in every region) would drown
  // the summaries; the trace says what happened.
  spdlog::set_level(spdlog::level::warn);
  if (!script.empty()) return RunScriptFile(script);

  meridian::sim::ApplyProfile(profile, &options);
  if (regions) options.regions = *regions;
  if (duration_ms) options.duration_ms = *duration_ms;
  if (rtt_ms) options.rtt_ms = *rtt_ms;
  if (jitter) options.jitter = *jitter;
  if (writes) options.writes_per_s = *writes;
  if (strong) options.strong_per_s = *strong;
  if (txns) options.txns_per_s = *txns;
  if (home_moves) options.home_moves_per_min = *home_moves;
  if (loss) options.faults.loss = *loss;
  if (duplicate) options.faults.duplicate = *duplicate;
  if (reorder) options.faults.reorder = *reorder;
  if (partitions) options.faults.partitions_per_min = *partitions;
  if (crashes) options.faults.crashes_per_min = *crashes;
  if (disk_losses) options.faults.disk_losses_per_min = *disk_losses;
  if (damages) options.faults.damages_per_min = *damages;
  if (poison) options.faults.poison = *poison;
  if (restores) options.faults.restores_per_min = *restores;
  if (jumps) options.faults.clock_jumps_per_min = *jumps;
  if (jump_ms) options.faults.max_jump_ms = *jump_ms;
  if (drift) options.faults.max_drift_ppm = *drift;
  if (heal_loss) options.heal_loss = *heal_loss;

  const uint64_t first = seeds == 0 ? options.seed : from;
  const uint64_t count = seeds == 0 ? 1 : seeds;
  std::vector<uint64_t> failed;
  std::vector<uint64_t> convergence_ms;
  std::vector<double> convergence_rtts;
  uint64_t virtual_ms = 0;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t seed = first; seed < first + count; ++seed) {
    options.seed = seed;
    const Report report = meridian::sim::Run(options, verbose ? &std::cout : nullptr);
    virtual_ms += report.virtual_ms;
    if (report.ok) {
      convergence_ms.push_back(report.convergence_ms);
      convergence_rtts.push_back(static_cast<double>(report.convergence_ms) /
                                 static_cast<double>(std::max<uint64_t>(1, report.max_rtt_ms)));
    }
    if (count == 1 || !report.ok) std::cout << "seed " << seed << " " << report.Summary() << "\n";
    if (!report.ok) {
      failed.push_back(seed);
      for (const std::string& failure : report.failures) std::cout << "  " << failure << "\n";
      std::cout << "  replay: " << meridian::sim::ReplayCommand(options) << "\n";
    }
  }
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (count > 1 || campaign) {
    std::printf("%" PRIu64 " seeds (%" PRIu64 "..%" PRIu64 "), %zu failed, %.1f s\n", count, first,
                first + count - 1, failed.size(), wall_s);
    for (uint64_t seed : failed) std::printf("  failed: seed %" PRIu64 "\n", seed);
  }
  if (campaign) {
    std::vector<uint64_t> rtts;
    for (double r : convergence_rtts) rtts.push_back(static_cast<uint64_t>(r * 1000));
    std::printf("profile %s: %.1f seeds/s, %.0f simulated hours per hour\n", profile.c_str(),
                static_cast<double>(count) / wall_s,
                static_cast<double>(virtual_ms) / 1000.0 / wall_s);
    std::printf(
        "convergence after heal: p50 %.0f ms, p99 %.0f ms, max %.0f ms"
        " (p50 %.1f, p99 %.1f round trips of the slowest pair)\n",
        Percentile(convergence_ms, 0.5), Percentile(convergence_ms, 0.99),
        Percentile(convergence_ms, 1.0), Percentile(rtts, 0.5) / 1000.0,
        Percentile(rtts, 0.99) / 1000.0);
  }
  return failed.empty() ? 0 : 1;
}
