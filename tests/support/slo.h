// Measured service levels (bench/README.md#slo_bench): three region nodes joined through
// wan-proxy routes with the demo's one-way delays (us-eu 40 ms, us-asia 80 ms, eu-asia 110 ms)
// plus jitter and connection resets, and clients of the client library writing through them.
//   - Steady: the links' delays and jitter only; the p99 replication lag (visibility: from a
//     write in one region to readable in another) of every directed pair.
//   - Faults: connection resets on every link from then on, and each region in turn killed
//   (SIGKILL, restarted after a while) and then cut off from
//     the others by partitions (healed after a while), while the clients go on; the share of
//     client operations that succeeded, how long the clients of a killed region went without a
//     success (failover), and how long after each restart or heal every region had caught up
//     (convergence).
// Used by bench/slo_bench.cc (the long runs of `make bench`) and by a short run in the test
// suite (tests/node/slo_test.cc).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace meridian::testing {

struct SloOptions {
  int steady_s = 30;          // the steady phase
  int fault_s = 10;           // how long each kill and each partition lasts
  int settle_s = 5;           // between two faults
  int rate = 300;             // client operations per second, all clients together
  int clients_per_region = 2;  // clients that prefer each region
  uint32_t jitter_ms = 20;    // on every link, besides its one-way delay
  double resets = 0.01;  // fault phase: probability per second that a link's connection is reset
  bool faults = true;         // run the fault phase
  // The regions killed and partitioned in turn, in this order.
  std::vector<std::string> fault_regions = {"us", "eu", "asia"};
  std::function<void(const std::string&)> progress;  // one line per step (may be empty)
};

struct SloPair {
  std::string from;  // where the events were written
  std::string to;    // where they became readable
  uint64_t samples = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

struct SloFault {
  std::string kind;    // "kill" or "partition"
  std::string region;
  // kill: the longest time a client preferring the region went from the kill to its next
  // success (through another region); -1 when one never succeeded again before the fault ended.
  double failover_ms = 0;
  // From the restart (kill) or heal (partition) to every region caught up with every other (no
  // lag anywhere); -1 when that did not happen within a minute.
  double convergence_ms = 0;
};

struct SloReport {
  std::vector<SloPair> steady;
  uint64_t attempted = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t unknown = 0;  // of the failed: writes whose outcome the client could not learn
  std::vector<SloFault> faults;
  double SuccessShare() const {
    return attempted == 0 ? 0 : static_cast<double>(succeeded) / static_cast<double>(attempted);
  }
  nlohmann::json Json() const;
};

// Runs the cluster through the phases; false with *error when it could not run (a node did not
// start, the proxy could not listen).
bool RunSlo(const SloOptions& options, SloReport* report, std::string* error);

// The quantile q (0..1) of a Prometheus histogram given by its cumulative bucket counts (upper
// bounds ascending, the last +Inf), interpolated linearly within the bucket, in the buckets' unit.
double HistogramQuantile(const std::vector<std::pair<double, double>>& buckets, double q);

}  // namespace meridian::testing
