// replication_bench: cross-region replication of three real region nodes on this machine, each
// directed link through a wan-proxy route with an injected one-way delay D. Four measurements,
// each against its goal (bench/RESULTS.md):
//
//   visibility   steady load of --rate writes/s spread over the regions; per pair, p50/p99 of
//                (time the event became readable in the receiving region - its origin HLC time),
//                over the last --measure-s seconds.              goal: p99 <= D + 5 ms
//   wire         bytes the proxies carried between regions (both directions, everything: batches,
//                heartbeats, acks, gRPC framing) per replicated event, against the event as JSON.
//                                                                goal: <= 20%
//   catch-up     a region down for --down-s seconds of that load, restarted: the backlog it applies
//                per second against the cluster's write rate.   goal: >= 10x
//   pair rate    one region's backlog of --backlog events replayed to another: events/s applied
//                over that one link.                            goal: >= 100,000 events/s
//   mutual TLS   the same replay between two fresh regions with [tls] (mutual TLS, certificates
//                of a CA made for the run) against without, --tls-backlog events each, one after
//                the other (--only tls runs just this).         goal: >= 0.9x plaintext
//
// Output: a JSON line per measurement on stdout, progress on stderr.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "auth/certs.h"
#include "cpu_usage.h"
#include "support/cluster.h"
#include "support/temp_dir.h"

namespace meridian::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Options {
  uint32_t delay_ms = 50;
  double rate = 10'000;  // writes/s over all regions
  int threads_per_region = 8;
  int measure_s = 10;  // /v1/status reports visibility over the last 10 s: measure at least that
  int warmup_s = 3;
  int down_s = 60;
  int backlog = 300'000;
  int tls_backlog = 200'000;
  int items = 10'000;
  std::string only;    // "visibility": stop after the steady-load measurements
  int linger_ms = -1;  // [replication] linger_ms of the nodes; -1: the default
};

void Log(const std::string& line) {
  std::fprintf(stderr, "[replication_bench] %s\n", line.c_str());
}

json Status(HttpClient& client) {
  return json::parse(client.Get("/v1/status").body, nullptr, false);
}

uint64_t Total(const json& status) {
  uint64_t total = 0;
  if (!status.is_object()) return 0;
  for (const auto& [origin, seq] : status["frontier"].items()) total += seq.get<uint64_t>();
  return total;
}

// The sum of a Prometheus counter over every region, over the series whose labels contain all of
// `labels` (e.g. direction="sent").
double MetricSum(Cluster& cluster, const std::string& name,
                 const std::vector<std::string>& labels) {
  double sum = 0;
  for (const std::string& region : cluster.regions()) {
    HttpClient client = cluster.Client(region);
    const std::string text = client.Get("/metrics").body;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      const std::string line = text.substr(start, end - start);
      start = end + 1;
      if (!line.starts_with(name + "{")) continue;
      bool match = true;
      for (const std::string& label : labels)
        match = match && line.find(label) != std::string::npos;
      if (match) sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return sum;
}

// An inventory workload: stock movements and price changes on --items items, as JSON bodies.
struct Write {
  std::string method;
  std::string target;
  std::string body;
  std::string json_event;  // the same event as a JSON record, for the wire ratio
};

Write MakeWrite(std::mt19937_64& random, int items, const std::string& region) {
  const int item = static_cast<int>(random() % static_cast<uint64_t>(items));
  char key[32];
  std::snprintf(key, sizeof key, "item:%05d", item);
  Write write;
  json fields;
  if (random() % 4 == 0) {
    write.method = "PATCH";
    write.target = std::string("/v1/docs/") + key;
    fields = {{"price", static_cast<double>(random() % 10'000) / 100.0}, {"updated_by", region}};
    write.body = fields.dump();
  } else {
    write.method = "POST";
    write.target = std::string("/v1/docs/") + key + "/incr";
    fields = {{"stock", random() % 5 == 0 ? 20 : -1}};
    write.body = fields.dump();
  }
  write.json_event = json{
      {"event", region + ":1234567"},
      {"hlc", "1795313737401.0"},
      {"key", key},
      {"op", write.method == "PATCH" ? "set" : "incr"},
      {"fields", fields}}.dump();
  return write;
}

// Writers paced to `rate` over all regions until stopped; counts acknowledged writes.
class Load {
 public:
  Load(Cluster& cluster, const Options& options) : cluster_(cluster), options_(options) {}
  ~Load() { Stop(); }

  void Start() {
    const int threads = options_.threads_per_region * static_cast<int>(cluster_.regions().size());
    const double per_thread = options_.rate / threads;
    for (const std::string& region : cluster_.regions()) {
      for (int t = 0; t < options_.threads_per_region; ++t) {
        threads_.emplace_back([this, region, per_thread, t] {
          HttpClient client = cluster_.Client(region);
          std::mt19937_64 random(std::hash<std::string>{}(region) + static_cast<uint64_t>(t));
          const auto start = Clock::now();
          for (uint64_t k = 0; !stop_; ++k) {
            const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(k / per_thread));
            if (due > Clock::now()) std::this_thread::sleep_until(due);  // pacing, not waiting
            const Write write = MakeWrite(random, options_.items, region);
            const HttpResponse response = client.Send(write.method, write.target, write.body);
            if (response.status == 200) {
              ++acknowledged_;
              json_bytes_ += write.json_event.size();
            } else {
              ++failed_;
              if (response.status == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
          }
        });
      }
    }
  }
  void Stop() {
    stop_ = true;
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
  }
  uint64_t acknowledged() const { return acknowledged_; }
  double mean_json_bytes() const {
    return acknowledged_ ? static_cast<double>(json_bytes_) / acknowledged_ : 0;
  }

 private:
  Cluster& cluster_;
  const Options& options_;
  std::atomic<bool> stop_ = false;
  std::atomic<uint64_t> acknowledged_ = 0;
  std::atomic<uint64_t> failed_ = 0;
  std::atomic<uint64_t> json_bytes_ = 0;
  std::vector<std::thread> threads_;
};

bool WaitUntilTotal(HttpClient& client, uint64_t total, std::chrono::seconds timeout,
                    Clock::time_point* reached) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (Total(Status(client)) >= total) {
      *reached = Clock::now();
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Writes `events` events to `region` from 16 connections, as fast as it takes them.
void WriteBacklog(Cluster& cluster, const std::string& region, int events, int items) {
  std::vector<std::thread> writers;
  std::atomic<int> next = 0;
  for (int t = 0; t < 16; ++t) {
    writers.emplace_back([&, t] {
      HttpClient client = cluster.Client(region);
      std::mt19937_64 random(1000 + t);
      while (next++ < events) {
        const Write write = MakeWrite(random, items, region);
        client.Send(write.method, write.target, write.body);
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
}

// us's backlog of `events` events replayed to eu, a fresh pair of regions joined by a proxy of
// `delay_ms`, with [tls] from `tls_dir` when it is set: events/s applied, or 0 on a failure.
double PairReplay(const Options& options, int events, const std::string& tls_dir) {
  ClusterOptions cluster_options;
  cluster_options.regions = {"us", "eu"};
  cluster_options.delay_ms = options.delay_ms;
  cluster_options.tls_dir = tls_dir;
  cluster_options.extra_toml = "[writes]\nqueue_max = 100000\n";
  Cluster cluster(cluster_options);
  if (!cluster.Start()) {
    Log("the pair did not start:\n" + cluster.Logs());
    return 0;
  }
  cluster.node("eu").Kill();
  WriteBacklog(cluster, "us", events, options.items);
  HttpClient us = cluster.Client("us");
  const uint64_t us_total = Total(Status(us));
  if (!cluster.node("eu").Start(std::chrono::seconds(60))) return 0;
  HttpClient eu = cluster.Client("eu");
  const auto eu_up = Clock::now();
  const uint64_t eu_before = Total(Status(eu));
  Clock::time_point caught_up;
  if (!WaitUntilTotal(eu, us_total, std::chrono::seconds(600), &caught_up)) return 0;
  return (us_total - eu_before) / std::chrono::duration<double>(caught_up - eu_up).count();
}

// The replay rate with mutual TLS against without (the TLS run first, then plaintext).
int MutualTlsReplay(const Options& options) {
  TempDir pki;
  auth::CaOptions ca;
  ca.dir = pki.path();
  auth::CertOptions us;
  us.ca_dir = pki.path();
  us.region = "us";
  auth::CertOptions eu = us;
  eu.region = "eu";
  if (!auth::CreateCa(ca).ok() || !auth::CreateCert(us).ok() || !auth::CreateCert(eu).ok()) {
    Log("cannot make the pair's certificates");
    return 1;
  }
  Log("mutual TLS: us's backlog of " + std::to_string(options.tls_backlog) +
      " events replayed to eu, with [tls], then without");
  const double tls = PairReplay(options, options.tls_backlog, pki.path());
  const double plain = PairReplay(options, options.tls_backlog, "");
  if (tls <= 0 || plain <= 0) {
    Log("a replay did not finish");
    return 1;
  }
  std::printf("%s\n", json{{"measure", "mutual_tls_replay"},
                           {"events", options.tls_backlog},
                           {"plaintext_events_per_s", plain},
                           {"mutual_tls_events_per_s", tls},
                           {"ratio", tls / plain},
                           {"goal_ratio", 0.9},
                           {"met", tls / plain >= 0.9}}
                          .dump()
                          .c_str());
  std::fflush(stdout);
  return 0;
}

int Run(const Options& options) {
  if (options.only == "tls") return MutualTlsReplay(options);
  ClusterOptions cluster_options;
  cluster_options.delay_ms = options.delay_ms;
  cluster_options.extra_toml = "[replication]\nrelay_after_ms = 60000\n";
  if (options.linger_ms >= 0) {
    cluster_options.extra_toml += "linger_ms = " + std::to_string(options.linger_ms) + "\n";
  }
  cluster_options.extra_toml += "[writes]\nqueue_max = 100000\n";
  Cluster cluster(cluster_options);
  if (!cluster.Start()) {
    Log("the cluster did not start:\n" + cluster.Logs());
    return 1;
  }
  if (!cluster.WaitLinked(std::chrono::seconds(30))) {
    Log("the regions did not link up:\n" + cluster.Logs());
    return 1;
  }
  Log("3 regions up and linked, one-way delay " + std::to_string(options.delay_ms) + " ms");

  // --- visibility and wire bytes at a steady rate ----------------------------------------------
  Load load(cluster, options);
  load.Start();
  std::this_thread::sleep_for(std::chrono::seconds(options.warmup_s));
  const auto wire_before = cluster.ProxyBytes();
  const auto batch_bytes = [&](const char* form) {
    return MetricSum(cluster, "meridian_replication_bytes_total",
                     {"direction=\"sent\"", std::string("form=\"") + form + "\""});
  };
  const double raw_before = batch_bytes("raw");
  const double compressed_before = batch_bytes("wire");
  const double sent_before =
      MetricSum(cluster, "meridian_replication_events_total", {"direction=\"sent\""});
  const uint64_t acknowledged_before = load.acknowledged();
  const auto measure_start = Clock::now();
  // The regions, the proxy and the load share this machine: how busy it was, and who used it,
  // says whether the latencies below are the protocol's or the machine's queueing.
  const auto node_ticks = [&] {  // the three nodes together, also by thread name
    bench::ProcessTicks sum;
    for (const std::string& region : cluster.regions()) {
      const bench::ProcessTicks one = bench::SampleProcess(cluster.node(region).pid());
      sum.total += one.total;
      for (const auto& [group, ticks] : one.by_group) sum.by_group[group] += ticks;
    }
    return sum;
  };
  const bench::MachineTicks machine_before = bench::SampleMachine();
  const bench::ProcessTicks nodes_before = node_ticks();
  const double self_before = bench::SelfCpuSeconds();
  std::this_thread::sleep_for(std::chrono::seconds(options.measure_s));
  const double machine_busy_pct = bench::BusyPercent(machine_before, bench::SampleMachine());
  const double seconds = std::chrono::duration<double>(Clock::now() - measure_start).count();
  const bench::ProcessTicks nodes_after = node_ticks();
  const auto cores_of = [&](uint64_t ticks) {
    return std::round(static_cast<double>(ticks) * bench::MicrosPerTick() / 1e6 / seconds * 100) /
           100;
  };
  const double nodes_cores = cores_of(nodes_after.total - nodes_before.total);
  json nodes_threads = json::object();  // the main thread is named after the program: "meridian"
  for (const auto& [group, used] : bench::GroupTicksSince(nodes_before, nodes_after)) {
    if (cores_of(used) >= 0.01) nodes_threads[group] = cores_of(used);
  }
  const double bench_cores = (bench::SelfCpuSeconds() - self_before) / seconds;
  const uint64_t written = load.acknowledged() - acknowledged_before;
  const auto wire_after = cluster.ProxyBytes();
  const double sent =
      MetricSum(cluster, "meridian_replication_events_total", {"direction=\"sent\""}) - sent_before;
  const double raw_per_event = (batch_bytes("raw") - raw_before) / sent;
  const double compressed_per_event = (batch_bytes("wire") - compressed_before) / sent;
  json pairs = json::array();
  double worst_p99 = 0;
  for (const std::string& region : cluster.regions()) {
    HttpClient client = cluster.Client(region);
    const json status = Status(client);
    for (const auto& [origin, state] : status["origins"].items()) {
      const json& visibility = state["visibility_ms"];
      pairs.push_back({{"from", origin},
                       {"to", region},
                       {"p50_ms", visibility["p50"]},
                       {"p99_ms", visibility["p99"]},
                       {"arrival_p50_ms", state["arrival_ms"]["p50"]},
                       {"arrival_p99_ms", state["arrival_ms"]["p99"]},
                       {"samples", visibility["count"]}});
      worst_p99 = std::max(worst_p99, visibility["p99"].get<double>());
    }
  }
  const double write_rate = written / seconds;
  std::printf("%s\n", json{{"measure", "visibility"},
                           {"delay_ms", options.delay_ms},
                           {"target_rate", options.rate},
                           {"write_rate", write_rate},
                           {"machine_busy_pct", std::round(machine_busy_pct * 10) / 10},
                           {"cores", std::thread::hardware_concurrency()},
                           {"nodes_cores", nodes_cores},
                           {"nodes_threads_cores", nodes_threads},
                           {"proxy_and_load_cores", std::round(bench_cores * 100) / 100},
                           {"pairs", pairs},
                           {"worst_p99_ms", worst_p99},
                           {"goal_p99_ms", options.delay_ms + 5},
                           {"met", worst_p99 <= options.delay_ms + 5}}
                          .dump()
                          .c_str());
  // Each write reaches the two other regions.
  const double replicated = 2.0 * written;
  const double wire_per_event = (wire_after - wire_before) / replicated;
  const double ratio = wire_per_event / load.mean_json_bytes();
  std::printf("%s\n", json{{"measure", "wire"},
                           {"wire_bytes_per_event", wire_per_event},
                           {"json_bytes_per_event", load.mean_json_bytes()},
                           {"batch_raw_bytes_per_event", raw_per_event},
                           {"batch_zstd_bytes_per_event", compressed_per_event},
                           {"ratio", ratio},
                           {"goal_ratio", 0.2},
                           {"met", ratio <= 0.2}}
                          .dump()
                          .c_str());
  std::fflush(stdout);

  if (options.only == "visibility") {
    if (std::getenv("BENCH_LOGS")) std::fprintf(stderr, "%s", cluster.Logs().c_str());
    return 0;
  }

  // --- catch-up after a region was down under load ---------------------------------------------
  Log("asia down for " + std::to_string(options.down_s) + " s under load");
  cluster.node("asia").Kill();
  const uint64_t down_acknowledged = load.acknowledged();
  const auto down_start = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(options.down_s));
  const double down_rate = (load.acknowledged() - down_acknowledged) /
                           std::chrono::duration<double>(Clock::now() - down_start).count();
  HttpClient us = cluster.Client("us");
  const uint64_t target = Total(Status(us));
  const auto restart = Clock::now();
  if (!cluster.node("asia").Start(std::chrono::seconds(60))) {
    Log("asia did not restart:\n" + cluster.node("asia").log());
    return 1;
  }
  // The rate counts from the first look at the restarted region (its start-up is reported apart).
  HttpClient asia = cluster.Client("asia");
  const auto asia_up = Clock::now();
  const uint64_t asia_before = Total(Status(asia));
  Clock::time_point caught_up;
  if (!WaitUntilTotal(asia, target, std::chrono::seconds(600), &caught_up)) {
    Log("asia did not catch up");
    return 1;
  }
  const double catch_up_s = std::chrono::duration<double>(caught_up - asia_up).count();
  const double restart_s = std::chrono::duration<double>(asia_up - restart).count();
  const double catch_up_rate = (target - asia_before) / catch_up_s;
  std::printf("%s\n", json{{"measure", "catch_up"},
                           {"down_s", options.down_s},
                           {"write_rate_while_down", down_rate},
                           {"backlog_events", target - asia_before},
                           {"restart_s", restart_s},
                           {"catch_up_s", catch_up_s},
                           {"catch_up_rate", catch_up_rate},
                           {"ratio", catch_up_rate / down_rate},
                           {"goal_ratio", 10},
                           {"met", catch_up_rate / down_rate >= 10}}
                          .dump()
                          .c_str());
  std::fflush(stdout);
  load.Stop();

  // --- one pair's replay rate ------------------------------------------------------------------
  std::string why;
  if (!cluster.WaitConverged(std::chrono::seconds(120), &why)) {
    Log("no convergence before the pair measurement: " + why);
    return 1;
  }
  Log("eu down; us writes a backlog of " + std::to_string(options.backlog) + " events");
  cluster.node("eu").Kill();
  cluster.node("asia").Kill();  // the backlog reaches eu from us alone
  WriteBacklog(cluster, "us", options.backlog, options.items);
  const uint64_t us_total = Total(Status(us));
  const auto eu_restart = Clock::now();
  if (!cluster.node("eu").Start(std::chrono::seconds(60))) return 1;
  HttpClient eu = cluster.Client("eu");
  const auto eu_up = Clock::now();
  const uint64_t eu_before = Total(Status(eu));
  if (!WaitUntilTotal(eu, us_total, std::chrono::seconds(600), &caught_up)) return 1;
  const double pair_s = std::chrono::duration<double>(caught_up - eu_up).count();
  const double pair_rate = (us_total - eu_before) / pair_s;
  std::printf("%s\n", json{{"measure", "pair_rate"},
                           {"from", "us"},
                           {"to", "eu"},
                           {"events", us_total - eu_before},
                           {"restart_s", std::chrono::duration<double>(eu_up - eu_restart).count()},
                           {"seconds", pair_s},
                           {"events_per_s", pair_rate},
                           {"goal", 100'000},
                           {"met", pair_rate >= 100'000}}
                          .dump()
                          .c_str());
  return 0;
}

}  // namespace
}  // namespace meridian::testing

int main(int argc, char** argv) {
  meridian::testing::Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--only") {
      options.only = argv[i + 1];
      continue;
    }
    const double value = std::stod(argv[i + 1]);
    if (flag == "--delay-ms")
      options.delay_ms = static_cast<uint32_t>(value);
    else if (flag == "--rate")
      options.rate = value;
    else if (flag == "--threads-per-region")
      options.threads_per_region = static_cast<int>(value);
    else if (flag == "--measure-s")
      options.measure_s = static_cast<int>(value);
    else if (flag == "--warmup-s")
      options.warmup_s = static_cast<int>(value);
    else if (flag == "--down-s")
      options.down_s = static_cast<int>(value);
    else if (flag == "--backlog")
      options.backlog = static_cast<int>(value);
    else if (flag == "--tls-backlog")
      options.tls_backlog = static_cast<int>(value);
    else if (flag == "--items")
      options.items = static_cast<int>(value);
    else if (flag == "--linger-ms")
      options.linger_ms = static_cast<int>(value);
    else {
      std::fprintf(stderr,
                   "usage: replication_bench [--delay-ms 50] [--rate 10000] "
                   "[--threads-per-region 8] [--measure-s 10] [--warmup-s 3] [--down-s 60] "
                   "[--backlog 300000] [--tls-backlog 200000] [--items 10000] [--linger-ms MS] "
                   "[--only visibility|tls]\n");
      return 2;
    }
  }
  const int status = meridian::testing::Run(options);
  // The mutual TLS replay runs on its own pair of regions, after the three regions stopped.
  if (status != 0 || !options.only.empty()) return status;
  return meridian::testing::MutualTlsReplay(options);
}
