// Re-seeding a region from a peer's snapshot (docs/replication.md#re-seeding): a source region
// holding N documents of about 200 bytes (written in process straight into its data directory),
// then two real nodes on loopback — the source, and an empty region that joins and re-seeds from
// it. Measures documents per second from the empty node's start until its re-seed is done, and
// its peak resident memory (VmHWM). Goals: >= 100,000 documents/s, <= 256 MiB. bench/README.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "node/node.h"
#include "support/node_process.h"

namespace {

using Clock = std::chrono::steady_clock;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using meridian::testing::RegionEntry;

// The process's peak resident memory, in MiB (0 when unknown).
double PeakMiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

// Writes `documents` documents of about 200 bytes into a new data directory of region us.
bool Seed(const std::vector<RegionEntry>& regions, const std::string& data_dir, int documents) {
  meridian::node::NodeConfig config;
  config.region = "us";
  config.data_dir = data_dir;
  config.bootstrap = true;
  config.sync = false;
  for (const RegionEntry& entry : regions) {
    config.regions.push_back({entry.name, static_cast<meridian::core::RegionId>(entry.id),
                              "127.0.0.1:" + std::to_string(entry.http_port), entry.replication,
                              ""});
  }
  auto node = meridian::node::Node::Open(config);
  if (!node.ok()) {
    std::fprintf(stderr, "seed: %s\n", node.status().ToString().c_str());
    return false;
  }
  const std::string filler(120, 'x');
  std::vector<meridian::node::WriteRequest> batch;
  std::vector<meridian::Result<meridian::node::Receipt>> outcomes;
  std::vector<meridian::node::Change> changes;
  for (int i = 0; i < documents; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "item:%08d", i);
    meridian::core::Operation op;
    op.kind = meridian::core::OpKind::kReplace;
    op.fields = {{"description", "\"" + filler + "\""},
                 {"price", std::to_string(100 + i % 900)},
                 {"stock", std::to_string(i % 1000)}};
    batch.push_back({key, std::move(op)});
    if (batch.size() == 1000 || i + 1 == documents) {
      outcomes.clear();
      changes.clear();
      (*node)->region().CommitLocalWrites(batch, &outcomes, &changes);
      for (const auto& outcome : outcomes) {
        if (!outcome.ok()) {
          std::fprintf(stderr, "seed: %s\n", outcome.status().ToString().c_str());
          return false;
        }
      }
      batch.clear();
    }
  }
  (*node)->Stop();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Re-seeding a region from a peer's snapshot (bench/README.md)"};
  int documents = 1'000'000;
  app.add_option("--documents", documents, "Documents in the source region")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const std::vector<RegionEntry> regions = {
      {"us", 1, meridian::testing::FreePort(),
       "127.0.0.1:" + std::to_string(meridian::testing::FreePort())},
      {"eu", 2, meridian::testing::FreePort(),
       "127.0.0.1:" + std::to_string(meridian::testing::FreePort())}};
  meridian::testing::TempDir dir;
  const auto seeded = Clock::now();
  if (!Seed(regions, dir.path() + "/us", documents)) return 1;
  std::printf("seeded %d documents in %.1f s\n", documents,
              std::chrono::duration<double>(Clock::now() - seeded).count());

  NodeOptions us_options;
  us_options.region = "us";
  us_options.regions = regions;
  us_options.data_dir = dir.path() + "/us";
  NodeOptions eu_options = us_options;
  eu_options.region = "eu";
  eu_options.data_dir.clear();
  eu_options.bootstrap = false;  // an empty region joining: it re-seeds
  NodeProcess us(us_options);
  if (!us.Start(std::chrono::seconds(60), /*ready=*/false)) {
    std::fprintf(stderr, "us did not start:\n%s\n", us.log().c_str());
    return 1;
  }
  NodeProcess eu(eu_options);
  const auto started = Clock::now();
  if (!eu.Start(std::chrono::seconds(60), /*ready=*/false)) {
    std::fprintf(stderr, "eu did not start:\n%s\n", eu.log().c_str());
    return 1;
  }
  auto client = eu.Client();
  nlohmann::json reseed;
  double peak = 0;
  for (int i = 0; i < 600'000; ++i) {
    peak = std::max(peak, PeakMiB(eu.pid()));
    const auto body = nlohmann::json::parse(client.Get("/v1/status").body, nullptr, false);
    if (!body.is_discarded() && body.contains("reseed")) reseed = body["reseed"];
    if (reseed.value("state", "") == "done") break;
    if (Clock::now() - started > std::chrono::minutes(10)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  peak = std::max(peak, PeakMiB(eu.pid()));
  const uint64_t installed = reseed.value("installed", uint64_t{0});
  const double rate = static_cast<double>(installed) / seconds;
  std::printf(
      "reseed: documents=%llu seconds=%.2f documents_per_s=%.0f (goal >= 100000: %s) "
      "peak_rss_mib=%.0f (goal <= 256: %s) wire_bytes=%llu (%.1f bytes/document) state=%s\n",
      static_cast<unsigned long long>(installed), seconds, rate, rate >= 100'000 ? "met" : "missed",
      peak, peak <= 256 ? "met" : "missed",
      static_cast<unsigned long long>(reseed.value("wire_bytes", uint64_t{0})),
      installed ? static_cast<double>(reseed.value("wire_bytes", uint64_t{0})) / installed : 0.0,
      reseed.value("state", "?").c_str());
  return installed == static_cast<uint64_t>(documents) ? 0 : 1;
}
