// Replication between real region processes on loopback, each directed link through a wan-proxy
// route: convergence under concurrent writes, exact counters, session tokens and
// durability=regions:N across regions, a partition healed through a third region, and a region
// killed under load that catches up with nothing lost or doubled.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "support/cluster.h"

namespace meridian::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

// Adds delta to counter `field` of `key`; returns the HTTP status (0: no answer).
int SendIncrement(HttpClient& client, const std::string& key, const std::string& field,
                  int64_t delta) {
  return client.Send("POST", "/v1/docs/" + EncodeKey(key) + "/incr", json{{field, delta}}.dump())
      .status;
}

// Increments per key from any number of writer threads: acknowledged ones, and those whose
// answer was lost (the region died mid-request: committed or not).
class Ledger {
 public:
  // Sends the increment and books it by its answer; true when acknowledged.
  bool Increment(HttpClient& client, const std::string& key, int64_t delta) {
    const int status = SendIncrement(client, key, "stock", delta);
    std::lock_guard lock(mutex_);
    if (status == 200) sums_[key] += delta;
    if (status == 0) unknown_[key] += delta;
    return status == 200;
  }
  std::map<std::string, int64_t> sums() const {
    std::lock_guard lock(mutex_);
    return sums_;
  }
  int64_t unknown(const std::string& key) const {
    std::lock_guard lock(mutex_);
    auto it = unknown_.find(key);
    return it == unknown_.end() ? 0 : it->second;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, int64_t> sums_;
  std::map<std::string, int64_t> unknown_;
};

// Every region shows identical documents, and each counter holds exactly the acknowledged
// increments (plus possibly some whose answer was lost; deltas are positive).
void ExpectIdenticalWithCounters(Cluster& cluster, const Ledger& ledger) {
  const auto reference = cluster.Documents(cluster.regions().front(), "item:");
  EXPECT_EQ(reference.size(), ledger.sums().size());
  for (const std::string& region : cluster.regions()) {
    EXPECT_EQ(cluster.Documents(region, "item:"), reference) << region;
  }
  for (const auto& [key, sum] : ledger.sums()) {
    auto it = reference.find(key);
    ASSERT_NE(it, reference.end()) << key;
    const int64_t stock = Parse(it->second)["stock"].get<int64_t>();
    EXPECT_GE(stock, sum) << key;
    EXPECT_LE(stock, sum + ledger.unknown(key)) << key;
  }
}

TEST(ReplicationCluster, ConcurrentWritesInEveryRegionConverge) {
  Cluster cluster({.delay_ms = 5, .jitter_ms = 2});
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  Ledger ledger;
  std::vector<std::thread> writers;
  for (const std::string& region : cluster.regions()) {
    writers.emplace_back([&, region] {
      HttpClient client = cluster.Client(region);
      for (int i = 0; i < 150; ++i) {
        const std::string key = "item:" + std::to_string(i % 10);  // shared by every region
        const int64_t delta = (i % 3 == 0) ? 5 : 1;
        ledger.Increment(client, key, delta);
        if (i % 10 == 0) {
          client.Send("PATCH", "/v1/docs/" + EncodeKey(key),
                      json{{"price", i}, {"by", region}}.dump());
        }
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why << cluster.Logs();
  ExpectIdenticalWithCounters(cluster, ledger);
  // Concurrent price changes of one item in several regions were recorded as conflicts.
  const json status = Parse(cluster.Client("us").Get("/v1/status").body);
  EXPECT_GT(status["origins"]["eu"]["visibility_ms"]["count"].get<int>(), 0);
  // Each event arrived (its batch decoded) before it became readable.
  const json& arrival = status["origins"]["eu"]["arrival_ms"];
  EXPECT_GT(arrival["count"].get<int>(), 0);
  EXPECT_LE(arrival["p50"].get<double>(),
            status["origins"]["eu"]["visibility_ms"]["p50"].get<double>());
  EXPECT_EQ(status["frontier"]["eu"].get<int>(), 150 + 15);
}

TEST(ReplicationCluster, SessionTokenFromAnotherRegionSeesTheWrite) {
  Cluster cluster({.delay_ms = 40});
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient us = cluster.Client("us");
  HttpClient eu = cluster.Client("eu");
  const HttpResponse written = us.Send("PUT", "/v1/docs/cart", R"({"items":3})");
  ASSERT_EQ(written.status, 200) << written.body;
  const std::string token = written.Header("meridian-session");
  ASSERT_FALSE(token.empty());
  // With the token, eu answers only once it holds the write (about one WAN delay later).
  const HttpResponse read =
      eu.Request("GET", "/v1/docs/cart?wait_ms=5000", "", {{"Meridian-Session", token}});
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_EQ(Parse(read.body), json({{"items", 3}}));
  // The same token in a region that cannot catch up in time: 504 session_timeout.
  cluster.Partition("us", "asia");
  cluster.Partition("eu", "asia");
  const HttpResponse second = us.Send("PUT", "/v1/docs/cart", R"({"items":4})");
  ASSERT_EQ(second.status, 200);
  const HttpResponse timed_out =
      cluster.Client("asia").Request("GET", "/v1/docs/cart?wait_ms=200", "",
                                     {{"Meridian-Session", second.Header("meridian-session")}});
  EXPECT_EQ(timed_out.status, 504);
  EXPECT_EQ(Parse(timed_out.body)["error"], "session_timeout");
}

TEST(ReplicationCluster, DurabilityWaitsForOtherRegions) {
  Cluster cluster({.delay_ms = 10});
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient us = cluster.Client("us");
  const HttpResponse both =
      us.Send("PUT", "/v1/docs/order?durability=regions:2&timeout_ms=5000", R"({"paid":true})");
  ASSERT_EQ(both.status, 200) << both.body;
  EXPECT_EQ(Parse(both.body)["confirmed_regions"], 2);
  // The write is already durable in eu and asia: read there without waiting.
  EXPECT_EQ(cluster.Client("eu").Get("/v1/docs/order").status, 200);
  EXPECT_EQ(cluster.Client("asia").Get("/v1/docs/order").status, 200);

  cluster.node("asia").Kill();
  const HttpResponse one =
      us.Send("PUT", "/v1/docs/order?durability=regions:1&timeout_ms=5000", R"({"paid":false})");
  EXPECT_EQ(one.status, 200) << one.body;
  const HttpResponse two =
      us.Send("PUT", "/v1/docs/order?durability=regions:2&timeout_ms=300", R"({"paid":1})");
  EXPECT_EQ(two.status, 504) << two.body;
  EXPECT_EQ(Parse(two.body)["error"], "durability_timeout");
  EXPECT_EQ(Parse(two.body)["confirmed_regions"], 1);
  // Committed locally all the same.
  EXPECT_EQ(Parse(us.Get("/v1/docs/order").body), json({{"paid", 1}}));
}

// The hedges a region has started beside slow or quiet streams to `peer`.
uint64_t HedgesOf(HttpClient& client, const std::string& peer) {
  const json status = Parse(client.Get("/v1/status").body);
  if (!status.is_object() || !status.contains("peers")) return 0;
  for (const json& entry : status["peers"]) {
    if (entry["name"] == peer) return entry.value("hedges", uint64_t{0});
  }
  return 0;
}

// A link whose connections stall (nothing gets through for seconds, nothing is lost) goes quiet
// after silence_timeout_ms (1 s here); a second dial hedges it, and whichever stream speaks first
// carries the events. With no third region to relay through, the hedges alone keep eu up to date:
// nothing is lost or doubled, and eu's status counts them.
TEST(ReplicationCluster, AStallingLinkIsHedgedWithNothingLostOrDoubled) {
  Cluster cluster({.regions = {"us", "eu"}, .adjustable_links = true, .proxy_seed = 7});
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  // eu's link to us: a connection stalls for 3 s about nine times in ten each second.
  ASSERT_TRUE(cluster.SetLinkConditions("eu", "us", {.stall = 0.9, .stall_ms = 3000}));
  HttpClient us = cluster.Client("us");
  HttpClient eu = cluster.Client("eu");
  Ledger ledger;
  uint64_t hedges = 0;
  const auto deadline = std::chrono::steady_clock::now() + seconds(60);
  for (int i = 0; i < 100'000 && hedges < 3 && std::chrono::steady_clock::now() < deadline; ++i) {
    ASSERT_TRUE(ledger.Increment(us, "item:s" + std::to_string(i % 4), 1));
    if (i % 20 == 0) hedges = HedgesOf(eu, "us");
  }
  EXPECT_GE(hedges, 3u) << eu.Get("/v1/status").body;
  EXPECT_GT(cluster.LinkFaults().stalls, 0u);
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(60), &why)) << why << cluster.Logs();
  ExpectIdenticalWithCounters(cluster, ledger);
}

TEST(ReplicationCluster, PartitionBetweenTwoRegionsHealsThroughTheThird) {
  Cluster cluster({.delay_ms = 5});
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  cluster.Partition("us", "eu");
  HttpClient us = cluster.Client("us");
  HttpClient eu = cluster.Client("eu");
  Ledger ledger;
  for (int i = 0; i < 20; ++i) {
    ledger.Increment(us, "item:a", 1);
    ledger.Increment(eu, "item:a", 10);
  }
  // us's writes reach eu through asia (and eu's reach us) while the direct link stays cut.
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why << cluster.Logs();
  ExpectIdenticalWithCounters(cluster, ledger);
  const json status = Parse(eu.Get("/v1/status").body);
  bool relayed = false;
  for (const json& peer : status["peers"]) {
    if (peer["name"] == "us") {
      EXPECT_FALSE(peer["connected"].get<bool>());
      relayed = peer["relayed_by"] == "asia";
    }
  }
  EXPECT_TRUE(relayed) << status.dump();
  EXPECT_GE(status["relays_active"].get<int>(), 1);

  // Healed: the direct link comes back and the relay ends.
  cluster.Heal("us", "eu");
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  bool direct = false;
  while (!direct && std::chrono::steady_clock::now() < deadline) {
    const json now = Parse(eu.Get("/v1/status").body);
    direct = now["relays_active"] == 0;
    for (const json& peer : now["peers"]) direct = direct && peer["connected"].get<bool>();
    if (!direct) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(direct) << eu.Get("/v1/status").body;
  ledger.Increment(us, "item:a", 100);
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  ExpectIdenticalWithCounters(cluster, ledger);
}

TEST(ReplicationCluster, RegionKilledUnderLoadCatchesUpWithNothingLostOrDoubled) {
  Cluster cluster({.delay_ms = 5});
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  Ledger ledger;
  std::atomic<bool> stop = false;
  std::vector<std::thread> writers;
  for (const std::string& region : cluster.regions()) {
    writers.emplace_back([&, region] {
      // A region's writer keeps going while its own region is down: refused writes are not
      // counted, acknowledged ones must all survive.
      for (int i = 0; i < 100'000 && !stop; ++i) {
        HttpClient client = cluster.Client(region);
        for (int j = 0; j < 50 && !stop; ++j) {
          const std::string key = "item:" + std::to_string((i + j) % 7);
          // While the region is down, try again a little later (a client's back-off).
          if (!ledger.Increment(client, key, 1)) std::this_thread::sleep_for(milliseconds(5));
        }
      }
    });
  }
  // Wait for some load, kill eu, let the others go on without it, bring it back.
  const auto wait_for_events = [&](const std::string& region, int events) {
    const auto deadline = std::chrono::steady_clock::now() + seconds(20);
    HttpClient client = cluster.Client(region);
    while (std::chrono::steady_clock::now() < deadline) {
      const json status = Parse(client.Get("/v1/status").body);
      int total = 0;
      if (status.is_object()) {
        for (const auto& [origin, seq] : status["frontier"].items()) total += seq.get<int>();
      }
      if (total >= events) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  };
  ASSERT_TRUE(wait_for_events("us", 200));
  cluster.node("eu").Kill();
  ASSERT_TRUE(wait_for_events("us", 600));
  ASSERT_TRUE(cluster.node("eu").Start()) << cluster.node("eu").log();
  ASSERT_TRUE(wait_for_events("eu", 900));
  stop = true;
  for (std::thread& writer : writers) writer.join();
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(60), &why)) << why << cluster.Logs();
  ExpectIdenticalWithCounters(cluster, ledger);
}

}  // namespace
}  // namespace meridian::testing

namespace meridian::testing {
namespace {

TEST(ReplicationCluster, RetentionTrimsWhatEveryRegionHoldsAndAWipedRegionReseeds) {
  ClusterOptions options;
  options.extra_toml += "retention_age_s = 1\n";
  Cluster cluster(options);
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient us = cluster.Client("us");
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(us.Send("PUT", "/v1/docs/item:" + std::to_string(i), R"({"stock":1})").status, 200);
  }
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  // Once every region acknowledged them and they are older than a second, us trims its log.
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  json status;
  while (std::chrono::steady_clock::now() < deadline) {
    status = Parse(us.Get("/v1/status").body);
    if (status["retention"]["trimmed_through"].value("us", 0) == 50) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_EQ(status["retention"]["trimmed_through"].value("us", 0), 50) << status.dump();
  EXPECT_TRUE(status["retention"]["held_by"].empty());

  // eu loses its disk: it comes back empty, and nobody holds us's first events any more. It
  // re-seeds from a peer's snapshot, then follows the live streams, and takes writes again.
  cluster.node("eu").Kill();
  std::filesystem::remove_all(cluster.node("eu").data_dir());
  ASSERT_TRUE(cluster.node("eu").Start(seconds(30))) << cluster.node("eu").log();
  HttpClient eu = cluster.Client("eu");
  const json eu_status = Parse(eu.Get("/v1/status").body);
  EXPECT_EQ(eu_status["reseed"]["state"], "done") << eu_status.dump();
  EXPECT_EQ(eu_status["reseed"]["installed"], 50) << eu_status.dump();
  const std::string metrics = eu.Get("/metrics").body;
  EXPECT_NE(metrics.find("meridian_reseed_installed_documents 50"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("meridian_rebuilding 0"), std::string::npos);
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(eu.Send("PUT", "/v1/docs/item:e" + std::to_string(i), R"({"stock":2})").status, 200);
  }
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why << cluster.Logs();
  EXPECT_EQ(cluster.Documents("eu", "item:"), cluster.Documents("us", "item:"));
  EXPECT_EQ(cluster.Documents("asia", "item:").size(), 60u);
}

}  // namespace
}  // namespace meridian::testing

namespace meridian::testing {
namespace {

// `count` new documents item:{prefix}{i} and as many increments of item:counter, in `region`.
void WriteIn(Cluster& cluster, const std::string& region, const std::string& prefix, int count,
             Ledger* ledger) {
  HttpClient client = cluster.Client(region);
  for (int i = 0; i < count; ++i) {
    const std::string key = "item:" + prefix + std::to_string(i);
    ASSERT_EQ(client.Send("PUT", "/v1/docs/" + key, R"({"stock":0})").status, 200) << key;
    ASSERT_TRUE(ledger->Increment(client, "item:counter", 1));
  }
}

// Every region holds every acknowledged document of `prefixes` (count each) and the counter.
void ExpectEverywhere(Cluster& cluster, const std::map<std::string, int>& prefixes,
                      const Ledger& ledger) {
  for (const std::string& region : cluster.regions()) {
    const auto documents = cluster.Documents(region, "item:");
    for (const auto& [prefix, count] : prefixes) {
      for (int i = 0; i < count; ++i) {
        EXPECT_TRUE(documents.contains("item:" + prefix + std::to_string(i)))
            << region << " lacks item:" << prefix << i;
      }
    }
    auto counter = documents.find("item:counter");
    ASSERT_NE(counter, documents.end()) << region;
    EXPECT_EQ(Parse(counter->second)["stock"].get<int64_t>(), ledger.sums().at("item:counter"))
        << region;
  }
}

json StatusOf(Cluster& cluster, const std::string& region) {
  return Parse(cluster.Client(region).Get("/v1/status").body);
}

// eu loses its disk after writing: it comes back empty, cut off from both peers. It does not take
// writes (503 rebuilding, /readyz 503 rebuilding) while it cannot know which of its event ids the
// others hold; reads answer. Once the links heal it gets its own events back from them, then takes
// writes under ids nobody holds: every region ends with every document and the exact counter.
TEST(ReplicationCluster, TheConflictLogKeepsItsNewestRecordsAndCountsThemAll) {
  ClusterOptions options;
  options.regions = {"us", "eu"};
  options.extra_toml = "[storage]\nconflicts_kept = 3\n" + options.extra_toml;
  Cluster cluster(options);
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient us = cluster.Client("us");
  HttpClient eu = cluster.Client("eu");
  // Apart, both regions set the price of the same 8 items: one conflict per item in each.
  cluster.Partition("us", "eu");
  for (int i = 0; i < 8; ++i) {
    const std::string path = "/v1/docs/item:" + std::to_string(i);
    ASSERT_EQ(us.Send("PUT", path, json{{"price", i}}.dump()).status, 200);
    ASSERT_EQ(eu.Send("PUT", path, json{{"price", 100 + i}}.dump()).status, 200);
  }
  cluster.Heal("us", "eu");
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why << cluster.Logs();
  for (HttpClient* client : {&us, &eu}) {
    // Within about a second the log is down to its newest 3 records, sequence numbers 6 to 8.
    const auto deadline = std::chrono::steady_clock::now() + seconds(10);
    json status;
    while (std::chrono::steady_clock::now() < deadline) {
      status = Parse(client->Get("/v1/status").body);
      if (status["conflict_log"]["oldest_seq"] == 6) break;
      std::this_thread::sleep_for(milliseconds(50));
    }
    EXPECT_EQ(status["conflicts"], 8) << status.dump();
    EXPECT_EQ(status["conflict_log"], json({{"oldest_seq", 6}, {"records", 3}})) << status.dump();
    const json conflicts = Parse(client->Get("/v1/conflicts?limit=100").body);
    EXPECT_EQ(conflicts["total"], 8) << conflicts.dump();
    ASSERT_EQ(conflicts["conflicts"].size(), 3u) << conflicts.dump();
    for (const json& record : conflicts["conflicts"]) {
      EXPECT_EQ(record["kind"], "concurrent_set") << record.dump();
    }
    const std::string metrics = client->Get("/metrics").body;
    EXPECT_NE(metrics.find("\nmeridian_conflict_log_records 3\n"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("\nmeridian_conflicts_total 8\n"), std::string::npos) << metrics;
  }
}

TEST(ReplicationCluster, AWipedRegionRebuildsItsOwnEventsBeforeWriting) {
  Cluster cluster({.delay_ms = 2});
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  Ledger ledger;
  WriteIn(cluster, "eu", "e", 100, &ledger);
  WriteIn(cluster, "us", "u", 10, &ledger);
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  const std::string incarnation = StatusOf(cluster, "eu")["incarnation"];

  cluster.node("eu").Kill();
  std::filesystem::remove_all(cluster.node("eu").data_dir());
  cluster.Partition("eu", "us");
  cluster.Partition("eu", "asia");
  ASSERT_TRUE(cluster.node("eu").Start(seconds(20), /*ready=*/false)) << cluster.node("eu").log();
  HttpClient eu = cluster.Client("eu");
  const json status = StatusOf(cluster, "eu");
  EXPECT_NE(status["incarnation"], incarnation) << status.dump();
  EXPECT_EQ(status["rebuild"]["rebuilding"], true) << status.dump();
  EXPECT_EQ(status["rebuild"]["data_start"], "empty") << status.dump();
  const HttpResponse ready = eu.Get("/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(Parse(ready.body)["reason"], "rebuilding") << ready.body;
  const HttpResponse refused = eu.Send("PUT", "/v1/docs/item:early", R"({"stock":1})");
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(Parse(refused.body)["error"], "rebuilding") << refused.body;
  EXPECT_EQ(eu.Get("/v1/docs/item:e0").status, 404);  // reads answer from what it holds
  // The others keep writing meanwhile.
  WriteIn(cluster, "asia", "a", 20, &ledger);
  // Stopped midway, it rebuilds again at its next start, though the directory is its own now.
  cluster.node("eu").Kill();
  ASSERT_TRUE(cluster.node("eu").Start(seconds(20), /*ready=*/false)) << cluster.node("eu").log();
  const json again = StatusOf(cluster, "eu");
  EXPECT_EQ(again["rebuild"]["data_start"], "intact") << again.dump();
  EXPECT_EQ(again["rebuild"]["rebuilding"], true) << again.dump();
  EXPECT_EQ(eu.Send("PUT", "/v1/docs/item:early", R"({"stock":1})").status, 503);

  cluster.HealAll();
  ASSERT_TRUE(WaitFor([&] { return eu.Get("/readyz").status == 200; }, seconds(30)))
      << eu.Get("/readyz").body << cluster.node("eu").log();
  EXPECT_EQ(StatusOf(cluster, "eu")["frontier"].value("eu", 0), 200);
  WriteIn(cluster, "eu", "f", 50, &ledger);
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why << cluster.Logs();
  ExpectEverywhere(cluster, {{"e", 100}, {"u", 10}, {"a", 20}, {"f", 50}}, ledger);
  EXPECT_EQ(ledger.sums().at("item:counter"), 180);
  EXPECT_EQ(cluster.Documents("us", "item:early").size(), 0u);  // refused: never written
}

// eu is restored from a copy of its data directory taken before its last writes: the copy is
// recognised (new incarnation), the writes it lacks come back from its peers, and the writes it
// takes afterwards reuse none of their ids.
TEST(ReplicationCluster, ARegionRestoredFromAnOlderCopyRebuildsBeforeWriting) {
  Cluster cluster({.delay_ms = 2});
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  Ledger ledger;
  WriteIn(cluster, "eu", "a", 30, &ledger);
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  ASSERT_EQ(cluster.node("eu").Terminate(), 0);
  const std::string data = cluster.node("eu").data_dir();
  const std::string backup = data + ".backup";
  std::filesystem::copy(data, backup, std::filesystem::copy_options::recursive);
  ASSERT_TRUE(cluster.node("eu").Start()) << cluster.node("eu").log();
  EXPECT_EQ(StatusOf(cluster, "eu")["rebuild"]["data_start"], "intact");
  WriteIn(cluster, "eu", "b", 30, &ledger);
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;

  cluster.node("eu").Kill();
  std::filesystem::remove_all(data);
  std::filesystem::copy(backup, data, std::filesystem::copy_options::recursive);
  std::filesystem::remove_all(backup);
  ASSERT_TRUE(cluster.node("eu").Start(seconds(30))) << cluster.node("eu").log();
  const json status = StatusOf(cluster, "eu");
  EXPECT_EQ(status["rebuild"]["data_start"], "copied") << status.dump();
  EXPECT_EQ(status["frontier"].value("eu", 0), 120) << status.dump();
  WriteIn(cluster, "eu", "c", 20, &ledger);
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why << cluster.Logs();
  ExpectEverywhere(cluster, {{"a", 30}, {"b", 30}, {"c", 20}}, ledger);
}

// us is wiped and re-seeded from eu while asia is cut off: us's log now starts after its
// snapshot, so asia, which lacks us's earlier events, hears "behind retention" from us. It takes
// them through eu, which logged them (docs/replication.md#re-seeding), and us's own link carries
// us's later events again once asia has caught up.
TEST(ReplicationCluster, ARegionBehindAReseededOriginCatchesUpThroughARelay) {
  Cluster cluster({.delay_ms = 2});
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  cluster.Partition("asia", "us");
  cluster.Partition("asia", "eu");
  Ledger ledger;
  WriteIn(cluster, "us", "u", 15, &ledger);
  ASSERT_TRUE(WaitFor([&] { return StatusOf(cluster, "eu")["frontier"].value("us", 0) == 30; },
                      seconds(30)))
      << StatusOf(cluster, "eu").dump();
  cluster.node("us").Kill();
  std::filesystem::remove_all(cluster.node("us").data_dir());
  ASSERT_TRUE(cluster.node("us").Start(seconds(20), /*ready=*/false)) << cluster.node("us").log();
  ASSERT_TRUE(WaitFor(
      [&] { return StatusOf(cluster, "us")["reseed"].value("state", "") == "done"; }, seconds(30)))
      << StatusOf(cluster, "us").dump();

  cluster.HealAll();
  ASSERT_TRUE(WaitFor([&] { return StatusOf(cluster, "asia")["frontier"].value("us", 0) == 30; },
                      seconds(30)))
      << StatusOf(cluster, "asia").dump() << cluster.node("asia").log();
  // us writes again once it has heard from everyone: its own link to asia carries it.
  ASSERT_TRUE(
      WaitFor([&] { return cluster.Client("us").Get("/readyz").status == 200; }, seconds(30)))
      << cluster.Client("us").Get("/readyz").body;
  WriteIn(cluster, "us", "v", 5, &ledger);
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why << cluster.Logs();
  ExpectEverywhere(cluster, {{"u", 15}, {"v", 5}}, ledger);
  ASSERT_TRUE(
      WaitFor([&] { return cluster.Client("asia").Get("/readyz").status == 200; }, seconds(30)))
      << cluster.Client("asia").Get("/readyz").body;
}

// A region added to a running two-region deployment whose logs were already trimmed: it starts
// empty, re-seeds from a peer's snapshot, follows the live streams, and ends with every document
// and exact counters; its own writes reach the others.
TEST(ReplicationCluster, ARegionAddedAfterTheLogsWereTrimmedIsReseeded) {
  const auto region = [](const std::string& name, int id) {
    return RegionEntry{name, id, FreePort(), "127.0.0.1:" + std::to_string(FreePort())};
  };
  const std::vector<RegionEntry> two = {region("us", 1), region("eu", 2)};
  const std::string tuning =
      "[replication]\nheartbeat_ms = 50\nretention_age_s = 1\nbackoff_max_ms = 300\n";
  const auto options = [&](const std::string& name, const std::vector<RegionEntry>& regions,
                           const std::string& data_dir) {
    NodeOptions node;
    node.region = name;
    node.regions = regions;
    node.extra_toml = tuning;
    node.data_dir = data_dir;
    return node;
  };
  NodeProcess us1(options("us", two, ""));
  NodeProcess eu1(options("eu", two, ""));
  ASSERT_TRUE(us1.Start()) << us1.log();
  ASSERT_TRUE(eu1.Start()) << eu1.log();
  HttpClient us = us1.Client();
  HttpClient eu = eu1.Client();
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(us.Send("PUT", "/v1/docs/item:u" + std::to_string(i), R"({"stock":1})").status, 200);
    ASSERT_EQ(SendIncrement(eu, "item:counter", "stock", 1), 200);
  }
  // Both trim what the other acknowledged once it is a second old.
  ASSERT_TRUE(WaitFor(
      [&] {
        const json a = Parse(us.Get("/v1/status").body);
        const json b = Parse(eu.Get("/v1/status").body);
        return a["retention"]["trimmed_through"].value("us", 0) == 40 &&
               b["retention"]["trimmed_through"].value("eu", 0) == 40;
      },
      seconds(30)))
      << us.Get("/v1/status").body;
  ASSERT_EQ(us1.Terminate(), 0);
  ASSERT_EQ(eu1.Terminate(), 0);

  // asia joins: every node's config lists it now.
  std::vector<RegionEntry> three = two;
  three.push_back(region("asia", 3));
  NodeProcess us2(options("us", three, us1.data_dir()));
  NodeProcess eu2(options("eu", three, eu1.data_dir()));
  NodeOptions asia_options = options("asia", three, "");
  asia_options.bootstrap = false;  // it joins a deployment that has data
  NodeProcess asia(asia_options);
  ASSERT_TRUE(us2.Start(seconds(20), /*ready=*/false)) << us2.log();
  ASSERT_TRUE(eu2.Start(seconds(20), /*ready=*/false)) << eu2.log();
  ASSERT_TRUE(asia.Start(seconds(30))) << asia.log();
  HttpClient asia_client = asia.Client();
  const json status = Parse(asia_client.Get("/v1/status").body);
  EXPECT_EQ(status["reseed"]["state"], "done") << status.dump();
  ASSERT_EQ(asia_client.Send("PUT", "/v1/docs/item:a", R"({"stock":3})").status, 200);
  ASSERT_EQ(SendIncrement(asia_client, "item:counter", "stock", 1), 200);
  std::map<std::string, std::string> docs;
  ASSERT_TRUE(WaitFor(
      [&] {
        docs.clear();
        bool same = true;
        std::optional<std::string> first;
        for (NodeProcess* node : {&us2, &eu2, &asia}) {
          const HttpResponse scan = node->Client().Get("/v1/docs?prefix=item:&limit=1000");
          if (first && *first != scan.body) same = false;
          if (!first) first = scan.body;
        }
        return same && first && first->find("item:a") != std::string::npos;
      },
      seconds(30)));
  const json counter = Parse(us2.Client().Get("/v1/docs/item:counter").body);
  EXPECT_EQ(counter["stock"], 41) << counter.dump();
  EXPECT_EQ(Parse(asia_client.Get("/v1/docs/item:counter").body)["stock"], 41);
  EXPECT_EQ(Parse(asia_client.Get("/v1/docs/item:u39").body)["stock"], 1);
}

// asia is down longer than retention_hold_s: the others stop keeping their logs for it and trim.
// Back with its old data it is behind their retention (reported, not ready), and after
// reseed_after_s it re-seeds on its own, merging a peer's snapshot with what it holds: nothing
// it held is lost, what us deleted meanwhile stays deleted, and counters are exact
// (docs/replication.md#retention).
TEST(ReplicationCluster, ARegionDownPastTheHoldIsReleasedAndRejoinsByMergingASnapshot) {
  ClusterOptions options;
  options.extra_toml += "retention_age_s = 1\nretention_hold_s = 2\nreseed_after_s = 1\n";
  Cluster cluster(options);
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient us = cluster.Client("us");
  Ledger ledger;
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(us.Send("PUT", "/v1/docs/item:a" + std::to_string(i), R"({"stock":1})").status, 200);
  }
  {
    HttpClient asia = cluster.Client("asia");
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(ledger.Increment(asia, "item:counter", 1));
  }
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  cluster.node("asia").Kill();
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(us.Send("PUT", "/v1/docs/item:b" + std::to_string(i), R"({"stock":2})").status, 200);
  }
  ASSERT_EQ(us.Send("DELETE", "/v1/docs/item:a0", "").status, 200);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ledger.Increment(us, "item:counter", 2));
  json status;
  ASSERT_TRUE(WaitFor(
      [&] {
        status = Parse(us.Get("/v1/status").body);
        return status["retention"]["trimmed_through"].value("us", 0) == 44 &&
               status["retention"]["released"] == json::array({"asia"});
      },
      seconds(30)))
      << status.dump();

  ASSERT_TRUE(cluster.node("asia").Start(seconds(20), /*ready=*/false));
  HttpClient asia = cluster.Client("asia");
  ASSERT_TRUE(WaitFor(
      [&] {
        status = Parse(asia.Get("/v1/status").body);
        return status.contains("reseed") && status["reseed"].value("state", "") == "done";
      },
      seconds(30)))
      << status.dump() << cluster.node("asia").log();
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why << cluster.Logs();
  EXPECT_EQ(cluster.Documents("asia", "item:"), cluster.Documents("us", "item:"));
  EXPECT_FALSE(cluster.Documents("asia", "item:").contains("item:a0"));
  ExpectEverywhere(cluster, {{"b", 30}}, ledger);
  EXPECT_EQ(cluster.Documents("asia", "item:").size(), 9u + 30u + 1u);
  EXPECT_NE(cluster.node("asia").log().find("merged with what this region holds"),
            std::string::npos);
  // asia takes writes again, and they reach the others.
  ASSERT_TRUE(ledger.Increment(asia, "item:counter", 1));
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  ExpectEverywhere(cluster, {{"b", 30}}, ledger);
}

// docs/operations.md, "Removing a region": asia is stopped for good once everyone has its
// events; until the others' configs drop it they wait for it (it holds their logs, it counts in
// durability=regions:N); after they are restarted without it, one at a time, they no longer do,
// and what asia wrote stays in every document.
TEST(ReplicationCluster, ARegionRemovedForGoodIsNoLongerWaitedFor) {
  const auto region = [](const std::string& name, int id) {
    return RegionEntry{name, id, FreePort(), "127.0.0.1:" + std::to_string(FreePort())};
  };
  const std::vector<RegionEntry> three = {region("us", 1), region("eu", 2), region("asia", 3)};
  const std::vector<RegionEntry> two = {three[0], three[1]};
  const auto options = [&](const std::string& name, const std::vector<RegionEntry>& regions,
                           const std::string& data_dir) {
    NodeOptions node;
    node.region = name;
    node.regions = regions;
    node.extra_toml = "[replication]\nheartbeat_ms = 50\nretention_age_s = 1\n";
    node.data_dir = data_dir;
    return node;
  };
  NodeProcess us1(options("us", three, ""));
  NodeProcess eu1(options("eu", three, ""));
  NodeProcess asia(options("asia", three, ""));
  ASSERT_TRUE(us1.Start()) << us1.log();
  ASSERT_TRUE(eu1.Start()) << eu1.log();
  ASSERT_TRUE(asia.Start()) << asia.log();
  HttpClient asia_client = asia.Client();
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(
        asia_client.Send("PUT", "/v1/docs/item:a" + std::to_string(i), R"({"stock":1})").status,
        200);
    ASSERT_EQ(SendIncrement(asia_client, "item:counter", "stock", 1), 200);
  }
  const auto frontier_of = [](NodeProcess& node) {
    return Parse(node.Client().Get("/v1/status").body)["frontier"];
  };
  // Step 2's condition: every remaining region holds all of asia's events.
  ASSERT_TRUE(WaitFor(
      [&] {
        return frontier_of(us1).value("asia", 0) == 20 && frontier_of(eu1).value("asia", 0) == 20;
      },
      seconds(30)))
      << frontier_of(us1).dump();
  ASSERT_EQ(asia.Terminate(), 0);

  // Still configured: asia holds us's log and counts in durability waits.
  HttpClient us = us1.Client();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(SendIncrement(us, "item:counter", "stock", 1), 200);
  }
  json status;
  ASSERT_TRUE(WaitFor(
      [&] {
        status = Parse(us.Get("/v1/status").body);
        return status["retention"]["held_by"] == json::array({"asia"});
      },
      seconds(30)))
      << status.dump();
  const HttpResponse waited =
      us.Send("PUT", "/v1/docs/order?durability=regions:2&timeout_ms=300", R"({"paid":1})");
  EXPECT_EQ(waited.status, 504) << waited.body;

  // Step 2: every remaining node drops asia from its config and is restarted, one at a time.
  ASSERT_EQ(us1.Terminate(), 0);
  NodeProcess us2(options("us", two, us1.data_dir()));
  ASSERT_TRUE(us2.Start()) << us2.log();
  ASSERT_EQ(eu1.Terminate(), 0);
  NodeProcess eu2(options("eu", two, eu1.data_dir()));
  ASSERT_TRUE(eu2.Start()) << eu2.log();

  HttpClient us_after = us2.Client();
  const HttpResponse confirmed =
      us_after.Send("PUT", "/v1/docs/order?durability=regions:1&timeout_ms=5000", R"({"paid":2})");
  ASSERT_EQ(confirmed.status, 200) << confirmed.body;
  EXPECT_EQ(Parse(confirmed.body)["confirmed_regions"], 1);
  EXPECT_EQ(
      us_after.Send("PUT", "/v1/docs/order?durability=regions:2&timeout_ms=300", R"({})").status,
      400);  // more regions than are configured now
  ASSERT_TRUE(WaitFor(
      [&] {
        status = Parse(us_after.Get("/v1/status").body);
        return status["retention"]["held_by"].empty() &&
               status["retention"]["trimmed_through"].value("us", 0) >= 5;
      },
      seconds(30)))
      << status.dump();
  for (const json& peer : status["peers"]) EXPECT_NE(peer["name"], "asia");
  EXPECT_EQ(status["frontier"].value("#3", 0), 20);  // asia's events: ordinary history
  EXPECT_EQ(us_after.Get("/readyz").status, 200);
  // What asia wrote is in every remaining region, the counter exact.
  HttpClient eu_after = eu2.Client();
  ASSERT_TRUE(WaitFor(
      [&] {
        return Parse(eu_after.Get("/v1/docs/item:counter").body) == json({{"stock", 15}});
      },
      seconds(30)))
      << eu_after.Get("/v1/docs/item:counter").body;
  EXPECT_EQ(Parse(us_after.Get("/v1/docs/item:a9").body), json({{"stock", 1}}));
}

// A re-seed whose calls break after every page (the sender's fault injection) resumes each time
// on the same snapshot from the last key installed, and ends with the sender's documents.
TEST(ReplicationCluster, ABrokenReseedResumesOnTheSameSnapshot) {
  const std::vector<RegionEntry> regions = {
      {"us", 1, FreePort(), "127.0.0.1:" + std::to_string(FreePort())},
      {"eu", 2, FreePort(), "127.0.0.1:" + std::to_string(FreePort())}};
  NodeOptions us_options;
  us_options.region = "us";
  us_options.regions = regions;
  NodeOptions eu_options = us_options;
  eu_options.region = "eu";
  eu_options.bootstrap = false;
  NodeProcess us(us_options);
  ::setenv("MERIDIAN_FAULT_SNAPSHOT_PAGES_PER_CALL", "1", 1);
  const bool started = us.Start();
  ::unsetenv("MERIDIAN_FAULT_SNAPSHOT_PAGES_PER_CALL");
  ASSERT_TRUE(started) << us.log();
  HttpClient client = us.Client();
  // Pages hold about 1 MiB: documents of 60 KB make five pages of these eighty.
  const std::string blob(60'000, 'b');
  for (int i = 0; i < 80; ++i) {
    ASSERT_EQ(
        client.Send("PUT", "/v1/docs/big:" + std::to_string(i), json{{"blob", blob}}.dump()).status,
        200);
  }
  NodeProcess eu(eu_options);
  ASSERT_TRUE(eu.Start(seconds(30))) << eu.log();
  const json status = Parse(eu.Client().Get("/v1/status").body);
  EXPECT_EQ(status["reseed"]["state"], "done") << status.dump();
  EXPECT_EQ(status["reseed"]["installed"], 80) << status.dump();
  EXPECT_GE(status["reseed"]["resumes"].get<int>(), 3) << status.dump() << eu.log();
  EXPECT_EQ(status["documents"], 80);
  EXPECT_EQ(status["digest"], Parse(client.Get("/v1/status").body)["digest"]);
}

// Runs `meridian start` with `args` to its exit (bounded); its exit code and output.
std::pair<int, std::string> RunMeridian(const std::vector<std::string>& args,
                                        const std::string& log_path) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    std::vector<char*> argv;
    const std::string binary = MeridianBinary();
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return {-1, "still running after 20 s"};
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  std::ifstream in(log_path);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

// A second process on a running node's data directory, and a second node claiming its region
// (its own directory, the same replication address), are refused with a clear message.
TEST(ReplicationIdentity, ASecondProcessForARegionIsRefused) {
  NodeProcess node;
  ASSERT_TRUE(node.Start()) << node.log();
  TempDir dir;
  const auto [same_dir, same_dir_log] =
      RunMeridian({"start", "--config", node.config_path(), "--http",
                   "127.0.0.1:" + std::to_string(FreePort())},
                  dir.path() + "/same-dir.log");
  EXPECT_NE(same_dir, 0);
  EXPECT_NE(same_dir_log.find("is in use by another process"), std::string::npos) << same_dir_log;

  const auto [same_port, same_port_log] =
      RunMeridian({"start", "--config", node.config_path(), "--data-dir", dir.path() + "/other",
                   "--http", "127.0.0.1:" + std::to_string(FreePort())},
                  dir.path() + "/same-port.log");
  EXPECT_NE(same_port, 0);
  EXPECT_NE(same_port_log.find("cannot listen for replication"), std::string::npos)
      << same_port_log;
  // The first node never noticed.
  EXPECT_EQ(node.Client().Get("/readyz").status, 200);
}

// A data directory of one region is refused by a node of another region or deployment.
TEST(ReplicationIdentity, ADataDirectoryOfAnotherRegionOrDeploymentIsRefused) {
  NodeOptions options;
  options.region = "us";
  NodeProcess node(options);
  ASSERT_TRUE(node.Start()) << node.log();
  ASSERT_EQ(node.Terminate(), 0);
  TempDir dir;
  const auto [region, region_log] = RunMeridian(
      {"start", "--config", node.config_path(), "--region", "eu"}, dir.path() + "/region.log");
  EXPECT_NE(region, 0);
  EXPECT_NE(region_log.find("belongs to region 'us'"), std::string::npos) << region_log;
  const auto [deployment, deployment_log] =
      RunMeridian({"start", "--config", node.config_path(), "--deployment", "staging"},
                  dir.path() + "/deployment.log");
  EXPECT_NE(deployment, 0);
  EXPECT_NE(deployment_log.find("belongs to deployment 'meridian'"), std::string::npos)
      << deployment_log;
}

// Two regions configured as peers but of different deployments refuse each other's streams, and
// each says why in its status and readiness.
TEST(ReplicationIdentity, PeersOfAnotherDeploymentAreRefusedOnBothSides) {
  const uint16_t us_http = FreePort(), eu_http = FreePort();
  const std::string us_repl = "127.0.0.1:" + std::to_string(FreePort());
  const std::string eu_repl = "127.0.0.1:" + std::to_string(FreePort());
  const std::vector<RegionEntry> regions = {{"us", 1, us_http, us_repl},
                                            {"eu", 2, eu_http, eu_repl}};
  NodeOptions us_options;
  us_options.region = "us";
  us_options.deployment = "prod";
  us_options.regions = regions;
  NodeOptions eu_options = us_options;
  eu_options.region = "eu";
  eu_options.deployment = "staging";
  NodeProcess us(us_options);
  NodeProcess eu(eu_options);
  ASSERT_TRUE(us.Start(seconds(20), /*ready=*/false)) << us.log();
  ASSERT_TRUE(eu.Start(seconds(20), /*ready=*/false)) << eu.log();
  const auto refused = [](NodeProcess& node) {
    const json status = Parse(node.Client().Get("/v1/status").body);
    for (const json& peer : status.value("peers", json::array())) {
      if (peer.contains("refused")) return peer["refused"].get<std::string>();
    }
    return std::string();
  };
  ASSERT_TRUE(WaitFor([&] { return !refused(us).empty() && !refused(eu).empty(); }, seconds(20)))
      << us.log() << eu.log();
  EXPECT_NE(refused(us).find("deployment"), std::string::npos) << refused(us);
  EXPECT_NE(refused(eu).find("deployment"), std::string::npos) << refused(eu);
  const HttpResponse ready = us.Client().Get("/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("refused"), std::string::npos) << ready.body;
}

}  // namespace
}  // namespace meridian::testing
