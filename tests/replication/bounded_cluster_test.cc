// Bounded counters between real region processes (docs/semantics.md#bounded-counters): a flash
// sale in three regions, one of them cut off from the others, that never sells below zero in any
// region, keeps selling in each region while its share lasts, and converges once healed to the
// stock less every sale answered 200.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/cluster.h"

namespace meridian::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

constexpr int64_t kStock = 300;
constexpr char kItem[] = "item:sale";

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

ClusterOptions SaleOptions() {
  ClusterOptions options{.delay_ms = 5};
  options.extra_toml +=
      "[escrow]\nrebalance_ms = 50\nlow_water = 5\nhigh_water = 20\ngive_percent = 50\n";
  return options;
}

// Sales per region: answered 200 (sold) or 409 bound_exceeded (refused).
struct Sales {
  std::mutex mutex;
  std::map<std::string, int64_t> sold;
  std::map<std::string, int64_t> refused;
  std::vector<std::string> unexpected;  // any other answer

  int64_t total() {
    std::lock_guard lock(mutex);
    int64_t sum = 0;
    for (const auto& [region, count] : sold) sum += count;
    return sum;
  }
};

// What `client`'s region shows `regions` to hold of the stock: their rights and what was given
// to them and not yet accepted.
int64_t HeldBy(HttpClient& client, const std::vector<std::string>& regions) {
  const json stock =
      Parse(client.Get("/v1/docs/" + EncodeKey(kItem) + "/bounds").body)["bounds"]["stock"];
  int64_t held = 0;
  for (const std::string& region : regions) {
    held += stock["rights"][region].get<int64_t>() + stock["pending"][region].get<int64_t>();
  }
  return held;
}

// One client of `region` sells one unit at a time until its region shows nothing left in
// `sources` (the regions it can get rights from), or it has tried `attempts_max` times.
void Sell(Cluster& cluster, const std::string& region, const std::vector<std::string>& sources,
          Sales* sales, int attempts_max) {
  HttpClient client = cluster.Client(region);
  for (int attempt = 0; attempt < attempts_max; ++attempt) {
    const auto answer =
        client.Send("POST", "/v1/docs/" + EncodeKey(kItem) + "/incr", json{{"stock", -1}}.dump());
    std::unique_lock lock(sales->mutex);
    if (answer.status == 200) {
      ++sales->sold[region];
      continue;
    }
    if (answer.status != 409 || Parse(answer.body)["error"] != "bound_exceeded") {
      sales->unexpected.push_back(region + ": " + std::to_string(answer.status) + " " +
                                  answer.body);
      return;
    }
    ++sales->refused[region];
    lock.unlock();
    if (HeldBy(client, sources) == 0) return;
  }
}

// Reads the stock in every region until `stop`; records any read below zero.
void Watch(Cluster& cluster, const std::atomic<bool>& stop, std::vector<std::string>* below,
           int* reads) {
  std::map<std::string, HttpClient> clients;
  for (const std::string& region : cluster.regions()) {
    clients.emplace(region, cluster.Client(region));
  }
  while (!stop.load()) {
    for (auto& [region, client] : clients) {
      const auto answer = client.Get("/v1/docs/" + EncodeKey(kItem));
      if (answer.status != 200) continue;
      const json doc = Parse(answer.body);
      ++*reads;
      if (!doc.contains("stock") || doc["stock"].get<int64_t>() < 0) {
        below->push_back(region + " showed " + answer.body);
      }
    }
  }
}

// Runs `sellers` clients per region while every region's stock is watched; each region's
// sellers draw on the rights of the regions `sources` gives for it.
void RunSale(Cluster& cluster, const std::map<std::string, int>& sellers_per_region,
             const std::map<std::string, std::vector<std::string>>& sources, Sales* sales,
             std::vector<std::string>* below, int* reads) {
  std::atomic<bool> stop{false};
  std::thread watcher([&] { Watch(cluster, stop, below, reads); });
  std::vector<std::thread> sellers;
  for (const auto& [region, count] : sellers_per_region) {
    for (int i = 0; i < count; ++i) {
      sellers.emplace_back(
          [&, region] { Sell(cluster, region, sources.at(region), sales, 10'000); });
    }
  }
  for (std::thread& seller : sellers) seller.join();
  stop = true;
  watcher.join();
}

TEST(BoundedCluster, AFlashSaleUnderAPartitionNeverSellsBelowZero) {
  Cluster cluster(SaleOptions());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient us = cluster.Client("us");
  const std::string path = "/v1/docs/" + EncodeKey(kItem);
  ASSERT_EQ(us.Send("PUT", path, json{{"stock", kStock}, {"name", "lamp"}}.dump()).status, 200);
  const auto declared = us.Send("PUT", path + "/bounds", R"({"stock":{"min":0}})");
  ASSERT_EQ(declared.status, 200) << declared.body;
  // Declaring again is a no-op; another bound, or setting the field, is refused.
  const auto again = us.Send("PUT", path + "/bounds", R"({"stock":{"min":0}})");
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_TRUE(Parse(again.body)["event"].is_null()) << again.body;
  const auto other = us.Send("PUT", path + "/bounds", R"({"stock":{"min":5}})");
  EXPECT_EQ(other.status, 409);
  EXPECT_EQ(Parse(other.body)["error"], "bounded_field");
  const auto set = us.Send("PATCH", path, R"({"stock":1000})");
  EXPECT_EQ(set.status, 409);
  EXPECT_EQ(Parse(set.body)["error"], "bounded_field");
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why << cluster.Logs();
  for (const std::string& region : cluster.regions()) {
    const json bounds = Parse(cluster.Client(region).Get(path + "/bounds").body);
    const json& stock = bounds["bounds"]["stock"];
    EXPECT_EQ(stock["min"], 0) << region;
    EXPECT_EQ(stock["value"], kStock) << region;
    EXPECT_EQ(stock["rights"], json({{"us", 100}, {"eu", 100}, {"asia", 100}})) << region;
    EXPECT_EQ(stock["declared_by"], "us:2") << region;
  }

  // asia is cut off from us and eu; clients in all three regions buy at once, most in us, which
  // runs out of its share first and is given rights by eu.
  cluster.Partition("us", "asia");
  cluster.Partition("eu", "asia");
  Sales sales;
  std::vector<std::string> below;
  int reads = 0;
  RunSale(cluster, {{"us", 4}, {"eu", 1}, {"asia", 1}},
          {{"us", {"us", "eu"}}, {"eu", {"us", "eu"}}, {"asia", {"asia"}}}, &sales, &below, &reads);
  EXPECT_TRUE(sales.unexpected.empty()) << sales.unexpected.front();
  EXPECT_TRUE(below.empty()) << below.front();
  EXPECT_GT(reads, 0);
  for (const std::string& region : cluster.regions()) {
    EXPECT_GT(sales.sold[region], 0) << region << " sold nothing while its share lasted";
  }
  // asia sold its own share, and nothing more: nothing could reach it. us and eu sold theirs.
  EXPECT_EQ(sales.sold["asia"], 100);
  EXPECT_EQ(sales.sold["us"] + sales.sold["eu"], 200);
  const int64_t during_partition = sales.total();
  EXPECT_LE(during_partition, kStock);
  // Rights moved from eu to us while asia was away (eu's events say so in us).
  const json moved = Parse(us.Get(path + "/bounds").body)["bounds"]["stock"];
  EXPECT_GT(sales.sold["us"], 100) << moved.dump();

  // Healed: the regions converge to the stock less every sale, and sales go on until it is gone.
  cluster.HealAll();
  ASSERT_TRUE(cluster.WaitConverged(seconds(60), &why)) << why << cluster.Logs();
  for (const std::string& region : cluster.regions()) {
    const json doc = Parse(cluster.Client(region).Get(path).body);
    EXPECT_EQ(doc["stock"].get<int64_t>(), kStock - during_partition) << region;
  }
  const std::vector<std::string> all = cluster.regions();
  RunSale(cluster, {{"us", 1}, {"eu", 1}, {"asia", 2}}, {{"us", all}, {"eu", all}, {"asia", all}},
          &sales, &below, &reads);
  EXPECT_TRUE(sales.unexpected.empty()) << sales.unexpected.front();
  EXPECT_TRUE(below.empty()) << below.front();
  ASSERT_TRUE(cluster.WaitConverged(seconds(60), &why)) << why << cluster.Logs();
  const int64_t sold = sales.total();
  EXPECT_EQ(sold, kStock) << "every unit sold, none twice";
  for (const std::string& region : cluster.regions()) {
    const json doc = Parse(cluster.Client(region).Get(path).body);
    EXPECT_EQ(doc["stock"].get<int64_t>(), kStock - sold) << region;
    EXPECT_EQ(doc["name"], "lamp") << region;
  }
  // Refusals and transfers were counted.
  const auto counter = [&](const std::string& region, const std::string& name) {
    const std::string text = cluster.Client(region).Get("/metrics").body;
    const auto at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stoll(text.substr(at + name.size() + 2));
  };
  EXPECT_GT(counter("us", "meridian_escrow_refusals_total"), 0);
  EXPECT_GT(counter("eu", "meridian_escrow_transfers_total"), 0);
  EXPECT_GT(counter("us", "meridian_escrow_accepts_total"), 0);
}

}  // namespace
}  // namespace meridian::testing
