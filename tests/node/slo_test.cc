// A short run of the service-level measurement (tests/support/slo.h; the long runs are `make
// bench`'s bench/slo_bench): the three regions through WAN delays, jitter and resets, one of them
// killed and then partitioned under the client library's load. What it checks is behaviour, not
// speed: every pair replicates, the clients of a killed region carry on through another region,
// and the deployment catches up after every restart and heal.
#include <gtest/gtest.h>

#include "support/slo.h"

namespace meridian::testing {
namespace {

TEST(SloTest, HistogramQuantilesInterpolateWithinTheirBucket) {
  const std::vector<std::pair<double, double>> buckets = {
      {0.05, 0}, {0.1, 50}, {0.2, 90}, {0.5, 100}, {std::numeric_limits<double>::infinity(), 100}};
  EXPECT_DOUBLE_EQ(HistogramQuantile(buckets, 0.5), 0.1);
  EXPECT_DOUBLE_EQ(HistogramQuantile(buckets, 0.25), 0.075);
  EXPECT_DOUBLE_EQ(HistogramQuantile(buckets, 0.99), 0.2 + 0.3 * 0.9);
  EXPECT_DOUBLE_EQ(HistogramQuantile({{0.1, 0}, {std::numeric_limits<double>::infinity(), 0}}, 0.99),
                   0);
  // Beyond the last finite bound: that bound.
  EXPECT_DOUBLE_EQ(HistogramQuantile({{0.1, 1}, {std::numeric_limits<double>::infinity(), 10}}, 0.99),
                   0.1);
}

TEST(SloTest, EveryPairReplicatesAndEveryFaultIsSurvived) {
  SloOptions options;
  options.steady_s = 4;
  options.fault_s = 3;
  options.settle_s = 1;
  options.rate = 120;
  options.clients_per_region = 1;
  // One region's kill and partition: the bench runs all three.
  options.fault_regions = {"asia"};
  SloReport report;
  std::string error;
  std::string steps;
  options.progress = [&](const std::string& line) { steps += line + "\n"; };
  ASSERT_TRUE(RunSlo(options, &report, &error)) << error;
  ASSERT_EQ(report.steady.size(), 6u) << steps;
  for (const SloPair& pair : report.steady) {
    EXPECT_GT(pair.samples, 0u) << pair.from << " -> " << pair.to << "\n" << steps;
    EXPECT_GT(pair.p99_ms, 0) << pair.from << " -> " << pair.to;
  }
  EXPECT_EQ(report.attempted, report.succeeded + report.failed);
  EXPECT_GT(report.succeeded, 0u);
  ASSERT_EQ(report.faults.size(), 2u) << steps;
  for (const SloFault& fault : report.faults) {
    EXPECT_GE(fault.convergence_ms, 0) << fault.kind << " " << fault.region << "\n" << steps;
    if (fault.kind == "kill") {
      EXPECT_GE(fault.failover_ms, 0) << "the clients of " << fault.region << "\n" << steps;
    }
  }
  const nlohmann::json json = report.Json();
  EXPECT_EQ(json["operations"]["attempted"], report.attempted);
  EXPECT_EQ(json["faults"].size(), 2u);
}

}  // namespace
}  // namespace meridian::testing
