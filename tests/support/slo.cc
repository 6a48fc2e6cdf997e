#include "support/slo.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "meridian/client.h"
#include "support/cluster.h"

namespace meridian::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const std::vector<std::string> kRegions = {"us", "eu", "asia"};

// The demo's one-way delays (src/demo/layout.cc).
uint32_t DelayMs(const std::string& a, const std::string& b) {
  const auto pair = [&](const char* x, const char* y) {
    return (a == x && b == y) || (a == y && b == x);
  };
  if (pair("us", "eu")) return 40;
  if (pair("us", "asia")) return 80;
  return 110;  // eu-asia
}

// Per origin, the cumulative bucket counts (upper bound, count) of a node's visibility histogram.
using Buckets = std::map<std::string, std::vector<std::pair<double, double>>>;

Buckets ScrapeVisibility(Cluster& cluster, const std::string& region) {
  Buckets buckets;
  const std::string metrics = cluster.Client(region).Get("/metrics").body;
  static const std::regex line(
      R"re(^meridian_replication_visibility_seconds_bucket\{([^}]*)\} ([0-9.e+]+))re");
  static const std::regex origin(R"re(origin="([^"]+)")re");
  static const std::regex le(R"re(le="([^"]+)")re");
  std::istringstream lines(metrics);
  std::string text;
  while (std::getline(lines, text)) {
    std::smatch match, o, l;
    if (!std::regex_search(text, match, line)) continue;
    const std::string labels = match[1];
    if (!std::regex_search(labels, o, origin) || !std::regex_search(labels, l, le)) continue;
    const double bound = l[1] == "+Inf" ? std::numeric_limits<double>::infinity()
                                        : std::stod(l[1].str());
    buckets[o[1]].emplace_back(bound, std::stod(match[2].str()));
  }
  for (auto& [name, list] : buckets) std::sort(list.begin(), list.end());
  return buckets;
}

// Every node's lag towards every origin is 0 and its links are up.
bool CaughtUp(Cluster& cluster) {
  for (const std::string& region : kRegions) {
    const auto answer = cluster.Client(region).Get("/v1/status");
    if (answer.status != 200) return false;
    const nlohmann::json status = nlohmann::json::parse(answer.body, nullptr, false);
    if (!status.is_object()) return false;
    for (const auto& peer : status.value("peers", nlohmann::json::array())) {
      if (!peer.value("connected", false)) return false;
    }
    const nlohmann::json origins = status.value("origins", nlohmann::json::object());
    for (const auto& [name, origin] : origins.items()) {
      if (origin.value("lag_events", 1) != 0) return false;
    }
  }
  return true;
}

// Milliseconds from `since` until CaughtUp, polling every 20 ms; -1 after a minute.
double Convergence(Cluster& cluster, Clock::time_point since) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    if (CaughtUp(cluster)) {
      return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return -1;
}

struct Worker {
  std::string region;  // preferred
  std::unique_ptr<meridian::Client> client;
  std::thread thread;
  std::mutex mutex;
  std::vector<Clock::time_point>
      successes;  // when each success was seen (one per success of the run)
  std::atomic<uint64_t> attempted = 0, succeeded = 0, failed = 0, unknown = 0;

  // The first success at or after `since`, if any.
  std::optional<Clock::time_point> FirstSuccessAfter(Clock::time_point since) {
    std::lock_guard lock(mutex);
    auto it = std::lower_bound(successes.begin(), successes.end(), since);
    if (it == successes.end()) return std::nullopt;
    return *it;
  }
};

}  // namespace

double HistogramQuantile(const std::vector<std::pair<double, double>>& buckets, double q) {
  if (buckets.empty() || buckets.back().second <= 0) return 0;
  const double rank = q * buckets.back().second;
  double lower = 0, below = 0;
  for (const auto& [bound, count] : buckets) {
    if (count >= rank) {
      if (std::isinf(bound)) return lower;
      if (count == below) return bound;
      return lower + (bound - lower) * (rank - below) / (count - below);
    }
    lower = bound;
    below = count;
  }
  return lower;
}

nlohmann::json SloReport::Json() const {
  nlohmann::json pairs = nlohmann::json::array();
  for (const SloPair& pair : steady) {
    pairs.push_back({{"from", pair.from},
                     {"to", pair.to},
                     {"samples", pair.samples},
                     {"p50_ms", std::round(pair.p50_ms * 10) / 10},
                     {"p99_ms", std::round(pair.p99_ms * 10) / 10}});
  }
  nlohmann::json faults_json = nlohmann::json::array();
  for (const SloFault& fault : faults) {
    nlohmann::json entry = {{"kind", fault.kind},
                            {"region", fault.region},
                            {"convergence_ms", std::round(fault.convergence_ms)}};
    if (fault.kind == "kill") entry["failover_ms"] = std::round(fault.failover_ms);
    faults_json.push_back(std::move(entry));
  }
  return {{"steady_visibility", std::move(pairs)},
          {"operations",
           {{"attempted", attempted},
            {"succeeded", succeeded},
            {"failed", failed},
            {"unknown_outcome", unknown},
            {"success_percent", SuccessShare() * 100}}},
          {"faults", std::move(faults_json)}};
}

bool RunSlo(const SloOptions& options, SloReport* report, std::string* error) {
  const auto say = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };
  ClusterOptions cluster_options;
  cluster_options.regions = kRegions;
  cluster_options.adjustable_links = true;
  cluster_options.extra_toml = "";  // the nodes' own defaults, as a deployment runs them
  Cluster cluster(cluster_options);
  if (!cluster.Start()) {
    *error = "the cluster did not start:\n" + cluster.Logs();
    return false;
  }
  // Every link: its delay and the jitter; with `resets`, also connection resets.
  const auto set_links = [&](double resets) {
    for (const std::string& from : kRegions) {
      for (const std::string& to : kRegions) {
        if (from == to) continue;
        LinkConditions conditions;
        conditions.delay_ms = DelayMs(from, to);
        conditions.jitter_ms = options.jitter_ms;
        conditions.drop = resets;
        if (!cluster.SetLinkConditions(from, to, conditions)) {
          *error = "cannot set the link " + from + " -> " + to;
          return false;
        }
      }
    }
    return true;
  };
  if (!set_links(0)) return false;
  if (!cluster.WaitLinked(std::chrono::seconds(30))) {
    *error = "the regions did not link:\n" + cluster.Logs();
    return false;
  }
  say("three regions up, linked through wan-proxy routes: us-eu 40 ms, us-asia 80 ms, eu-asia "
      "110 ms one-way, jitter " +
      std::to_string(options.jitter_ms) + " ms");

  // The clients: each prefers one region and may use every other.
  std::vector<std::unique_ptr<Worker>> workers;
  for (const std::string& region : kRegions) {
    for (int i = 0; i < options.clients_per_region; ++i) {
      ClientOptions client_options;
      for (const std::string& name : kRegions) {
        client_options.regions.push_back({name, "127.0.0.1", cluster.node(name).http_port()});
      }
      client_options.preferred_region = region;
      auto client = meridian::Client::Create(client_options);
      if (!client.ok()) {
        *error = client.status().message();
        return false;
      }
      auto worker = std::make_unique<Worker>();
      worker->region = region;
      worker->client = std::move(client).value();
      workers.push_back(std::move(worker));
    }
  }
  std::atomic<bool> stop = false;
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(static_cast<double>(workers.size()) /
                                    std::max(1, options.rate)));
  for (size_t w = 0; w < workers.size(); ++w) {
    Worker* worker = workers[w].get();
    worker->thread = std::thread([worker, w, interval, &stop] {
      auto next = Clock::now();
      for (uint64_t i = 0; !stop; ++i) {
        next += interval;
        const std::string id = std::to_string(w);
        bool ok = false;
        if (i % 2 == 0) {
          ok = worker->client->Increment("slo:counter:" + id, {{"n", 1}}).ok();
        } else {
          ok = worker->client
                   ->Put("slo:doc:" + id + ":" + std::to_string(i % 100),
                         R"({"i":)" + std::to_string(i) + "}")
                   .ok();
        }
        ++worker->attempted;
        if (ok) {
          ++worker->succeeded;
          std::lock_guard lock(worker->mutex);
          worker->successes.push_back(Clock::now());
        } else {
          ++worker->failed;
          if (worker->client->last_error().code == "outcome_unknown") ++worker->unknown;
        }
        const auto now = Clock::now();
        if (next > now) {
          std::this_thread::sleep_until(next);
        } else {
          next = now;  // behind (a slow call): no burst to catch up
        }
      }
    });
  }

  // Steady: the visibility histograms' growth over the phase, per directed pair.
  std::map<std::string, Buckets> before;
  for (const std::string& region : kRegions) before[region] = ScrapeVisibility(cluster, region);
  say("steady phase: " + std::to_string(options.steady_s) + " s at " +
      std::to_string(options.rate) + " operations/s");
  std::this_thread::sleep_for(std::chrono::seconds(options.steady_s));
  for (const std::string& to : kRegions) {
    const Buckets after = ScrapeVisibility(cluster, to);
    for (const std::string& from : kRegions) {
      if (from == to) continue;
      SloPair pair{from, to};
      auto now = after.find(from);
      if (now != after.end()) {
        std::vector<std::pair<double, double>> delta = now->second;
        auto then = before[to].find(from);
        for (size_t i = 0; i < delta.size(); ++i) {
          if (then != before[to].end() && i < then->second.size()) {
            delta[i].second -= then->second[i].second;
          }
        }
        pair.samples = static_cast<uint64_t>(delta.empty() ? 0 : delta.back().second);
        pair.p50_ms = HistogramQuantile(delta, 0.5) * 1000;
        pair.p99_ms = HistogramQuantile(delta, 0.99) * 1000;
      }
      say("  " + from + " -> " + to + ": p99 " + std::to_string(static_cast<int>(pair.p99_ms)) +
          " ms over " + std::to_string(pair.samples) + " events");
      report->steady.push_back(pair);
    }
  }

  if (options.faults) {
    if (options.resets > 0) {
      say("connection resets from now on: " + std::to_string(options.resets) +
          " per second per connection");
      if (!set_links(options.resets) || !cluster.WaitLinked(std::chrono::seconds(30))) {
        stop = true;
        for (auto& worker : workers) worker->thread.join();
        if (error->empty()) *error = "the regions did not link again:\n" + cluster.Logs();
        return false;
      }
    }
    for (const std::string& region : options.fault_regions) {
      // Killed, then restarted.
      say("kill " + region + " for " + std::to_string(options.fault_s) + " s");
      const auto killed = Clock::now();
      cluster.node(region).Kill();
      std::this_thread::sleep_for(std::chrono::seconds(options.fault_s));
      SloFault kill{"kill", region};
      for (auto& worker : workers) {
        if (worker->region != region) continue;
        const auto first = worker->FirstSuccessAfter(killed);
        const double gap =
            first ? std::chrono::duration<double, std::milli>(*first - killed).count() : -1;
        if (gap < 0 || kill.failover_ms < 0) {
          kill.failover_ms = -1;
        } else {
          kill.failover_ms = std::max(kill.failover_ms, gap);
        }
      }
      if (!cluster.node(region).Start(std::chrono::seconds(60))) {
        stop = true;
        for (auto& worker : workers) worker->thread.join();
        *error = region + " did not restart:\n" + cluster.node(region).log();
        return false;
      }
      kill.convergence_ms = Convergence(cluster, Clock::now());
      say("  clients of " + region + " failed over within " +
          std::to_string(static_cast<int>(kill.failover_ms)) + " ms; converged " +
          std::to_string(static_cast<int>(kill.convergence_ms)) + " ms after the restart");
      report->faults.push_back(kill);
      std::this_thread::sleep_for(std::chrono::seconds(options.settle_s));

      // Cut off from both others, then healed.
      say("partition " + region + " from the others for " + std::to_string(options.fault_s) +
          " s");
      for (const std::string& other : kRegions) {
        if (other != region) cluster.Partition(region, other);
      }
      std::this_thread::sleep_for(std::chrono::seconds(options.fault_s));
      for (const std::string& other : kRegions) {
        if (other != region) cluster.Heal(region, other);
      }
      SloFault partition{"partition", region};
      partition.convergence_ms = Convergence(cluster, Clock::now());
      say("  converged " + std::to_string(static_cast<int>(partition.convergence_ms)) +
          " ms after the heal");
      report->faults.push_back(partition);
      std::this_thread::sleep_for(std::chrono::seconds(options.settle_s));
    }
  }
  stop = true;
  for (auto& worker : workers) worker->thread.join();
  for (auto& worker : workers) {
    report->attempted += worker->attempted;
    report->succeeded += worker->succeeded;
    report->failed += worker->failed;
    report->unknown += worker->unknown;
  }
  say("operations: " + std::to_string(report->succeeded) + " of " +
      std::to_string(report->attempted) + " succeeded");
  return true;
}

}  // namespace meridian::testing
