// Strong transactions across homes against real region processes
// (docs/semantics.md#transactions-across-homes): two-phase commit coordinated by the region that
// receives the transaction, with durable locks in each home; never half applied, through a home
// that cannot be reached, a coordinator killed after its prepares and a home killed holding a
// lock.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/cluster.h"
#include "support/http_client.h"

namespace meridian::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string Strong(const std::string& key, uint64_t timeout_ms = 3000) {
  return "/v1/docs/" + EncodeKey(key) +
         "?consistency=strong&timeout_ms=" + std::to_string(timeout_ms);
}

constexpr char kTxn[] = "/v1/txn?consistency=strong&timeout_ms=3000";

// acct/ is homed in us, stock/ in eu; asia is home of neither.
ClusterOptions HomedCluster() {
  ClusterOptions options;
  options.delay_ms = 20;
  options.extra_toml +=
      "\n[[homes]]\nprefix = \"acct/\"\nregion = \"us\"\n"
      "\n[[homes]]\nprefix = \"stock/\"\nregion = \"eu\"\n";
  return options;
}

// The lock record of `key` in `region` (404 when none).
int LockStatus(Cluster& cluster, const std::string& region, const std::string& key) {
  return cluster.Client(region).Get("/v1/docs/" + EncodeKey("_meridian/locks/" + key)).status;
}

// Waits (bounded) until no region holds a lock record of `key`.
bool WaitUnlockedEverywhere(Cluster& cluster, const std::string& key) {
  for (int i = 0; i < 400; ++i) {
    bool any = false;
    for (const std::string& region : cluster.regions()) {
      if (LockStatus(cluster, region, key) != 404) any = true;
    }
    if (!any) return true;
    std::this_thread::sleep_for(milliseconds(25));
  }
  return false;
}

// A prepare as a coordinator sends it (POST /v1/txn?prepare=ID), from `coordinator`, locking the
// transaction's keys homed in `region`.
client::HttpResponse Prepare(Cluster& cluster, const std::string& region, const std::string& id,
                             const std::string& coordinator, uint64_t lock_ms, const json& txn) {
  return cluster.Client(region).Request(
      "POST", "/v1/txn?prepare=" + id + "&lock_ms=" + std::to_string(lock_ms), txn.dump(),
      {{"content-type", "application/json"}, {"meridian-forwarded", coordinator}});
}

// The value of an unlabelled metric of a region's /metrics (-1 when absent).
double MetricValue(HttpClient& client, const std::string& name) {
  const std::string text = client.Get("/metrics").body;
  const std::string line_start = "\n" + name + " ";
  const size_t at = text.find(line_start);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + line_start.size()));
}

json Incr(const std::string& key, const std::string& field, int delta) {
  return {{"op", "incr"}, {"key", key}, {"doc", {{field, delta}}}};
}

TEST(TwoPhaseTest, ATransactionAcrossHomesCommitsWholeInEveryRegion) {
  Cluster cluster(HomedCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient asia = cluster.Client("asia");
  ASSERT_EQ(asia.Send("PUT", Strong("acct/ann"), R"({"balance":100})").status, 200)
      << cluster.Logs();
  ASSERT_EQ(asia.Send("PUT", Strong("stock/lamp"), R"({"left":5})").status, 200);
  const std::string ann = asia.Get(Strong("acct/ann")).Header("etag");
  const std::string lamp = asia.Get(Strong("stock/lamp")).Header("etag");
  ASSERT_FALSE(ann.empty());

  // Sent to asia, home of neither key: it coordinates; us and eu lock and then apply.
  const auto buy = [&](const std::string& ann_version, const std::string& lamp_version) {
    const json txn = {
        {"if",
         {{{"key", "acct/ann"}, {"version", ann_version.substr(1, ann_version.size() - 2)}},
          {{"key", "stock/lamp"}, {"version", lamp_version.substr(1, lamp_version.size() - 2)}}}},
        {"then", {Incr("acct/ann", "balance", -30), Incr("stock/lamp", "left", -1)}},
        {"else", {Incr("acct/ann", "declined", 1)}}};
    return asia.Send("POST", kTxn, txn.dump());
  };
  auto bought = buy(ann, lamp);
  ASSERT_EQ(bought.status, 200) << bought.body;
  EXPECT_EQ(Parse(bought.body)["succeeded"], true) << bought.body;
  EXPECT_EQ(Parse(bought.body)["event"].get<std::string>().substr(0, 5), "asia:") << bought.body;

  // A strong read in any region sees all of it at once (the homes' locks go with its events).
  for (const std::string& region : cluster.regions()) {
    HttpClient client = cluster.Client(region);
    auto read_ann = client.Get(Strong("acct/ann"));
    auto read_lamp = client.Get(Strong("stock/lamp"));
    ASSERT_EQ(read_ann.status, 200) << region << ": " << read_ann.body;
    EXPECT_EQ(Parse(read_ann.body)["balance"], 70) << region;
    EXPECT_EQ(Parse(read_lamp.body)["left"], 4) << region;
  }
  // The same versions again: they changed, so the else branch runs, in ann's home only.
  auto declined = buy(ann, lamp);
  ASSERT_EQ(declined.status, 200) << declined.body;
  EXPECT_EQ(Parse(declined.body)["succeeded"], false) << declined.body;
  EXPECT_EQ(Parse(cluster.Client("eu").Get(Strong("acct/ann")).body)["declined"], 1);

  // The locks are gone everywhere; the decision is recorded in the coordinator.
  EXPECT_TRUE(WaitUnlockedEverywhere(cluster, "acct/ann"));
  EXPECT_TRUE(WaitUnlockedEverywhere(cluster, "stock/lamp"));
  auto decisions = asia.Get("/v1/docs?prefix=" + EncodeKey("_meridian/txns/"));
  ASSERT_EQ(decisions.status, 200) << decisions.body;
  ASSERT_EQ(Parse(decisions.body)["items"].size(), 2u) << decisions.body;
  EXPECT_EQ(Parse(decisions.body)["items"][0]["doc"]["txn"]["decision"], "committed");

  // A retry with the same Idempotency-Key answers the first outcome, applied once.
  const json once = {{"then", {Incr("acct/ann", "visits", 1), Incr("stock/lamp", "views", 1)}}};
  const std::map<std::string, std::string> headers = {{"content-type", "application/json"},
                                                      {"idempotency-key", "visit-1"}};
  auto first = asia.Request("POST", kTxn, once.dump(), headers);
  auto again = asia.Request("POST", kTxn, once.dump(), headers);
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.Header("idempotent-replayed"), "true");
  EXPECT_EQ(Parse(cluster.Client("us").Get(Strong("acct/ann")).body)["visits"], 1);
  EXPECT_EQ(Parse(cluster.Client("us").Get(Strong("stock/lamp")).body)["views"], 1);
  EXPECT_TRUE(WaitUnlockedEverywhere(cluster, "acct/ann"));
  // Counted by the coordinator: three committed (the retry's own attempt was aborted).
  EXPECT_EQ(MetricValue(asia, "meridian_txn_coordinated_committed_total"), 3);
  EXPECT_EQ(MetricValue(asia, "meridian_txn_coordinated_aborted_total"), 1);
}

// Money moves both ways between two accounts with different homes, from clients in every region
// at once, each transfer conditional on the versions it read: the total never changes, and each
// account ends at its start plus exactly the transfers acknowledged.
TEST(TwoPhaseTest, ConcurrentTransfersAcrossHomesKeepTheTotal) {
  Cluster cluster(HomedCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  ASSERT_EQ(cluster.Client("us").Send("PUT", Strong("acct/a"), R"({"n":100})").status, 200);
  ASSERT_EQ(cluster.Client("eu").Send("PUT", Strong("stock/b"), R"({"n":100})").status, 200);

  std::atomic<int> a_to_b{0};
  std::atomic<int> b_to_a{0};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> clients;
  for (size_t c = 0; c < cluster.regions().size(); ++c) {
    clients.emplace_back([&, c] {
      HttpClient client = cluster.Client(cluster.regions()[c]);
      for (int i = 0; i < 25; ++i) {
        auto a = client.Get(Strong("acct/a"));
        auto b = client.Get(Strong("stock/b"));
        if (a.status != 200 || b.status != 200) continue;  // 423 past the wait: try again
        const bool forward = (i + c) % 2 == 0;
        const std::string from = forward ? "acct/a" : "stock/b";
        const std::string to = forward ? "stock/b" : "acct/a";
        const auto version = [](const client::HttpResponse& r) {
          const std::string etag = r.Header("etag");
          return etag.substr(1, etag.size() - 2);
        };
        const json txn = {{"if",
                           {{{"key", "acct/a"}, {"version", version(a)}},
                            {{"key", "stock/b"}, {"version", version(b)}}}},
                          {"then", {Incr(from, "n", -1), Incr(to, "n", 1)}}};
        auto moved = client.Send("POST", kTxn, txn.dump());
        if (moved.status == 200 && Parse(moved.body)["succeeded"] == true) {
          ++(forward ? a_to_b : b_to_a);
        } else if (moved.status != 200 && moved.status != 423 &&
                   Parse(moved.body).value("error", "") != "transaction_aborted") {
          ++unexpected;
          ADD_FAILURE() << moved.status << " " << moved.body;
        }
      }
    });
  }
  for (std::thread& thread : clients) thread.join();
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_GT(a_to_b.load() + b_to_a.load(), 0);
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(std::chrono::seconds(20), &why)) << why;
  for (const std::string& region : cluster.regions()) {
    HttpClient client = cluster.Client(region);
    const json a = Parse(client.Get("/v1/docs/" + EncodeKey("acct/a")).body);
    const json b = Parse(client.Get("/v1/docs/" + EncodeKey("stock/b")).body);
    EXPECT_EQ(a["n"], 100 - a_to_b.load() + b_to_a.load()) << region;
    EXPECT_EQ(b["n"], 100 + a_to_b.load() - b_to_a.load()) << region;
  }
}

TEST(TwoPhaseTest, AHomeThatCannotBeReachedAbortsWithNothingApplied) {
  Cluster cluster(HomedCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient asia = cluster.Client("asia");
  ASSERT_EQ(asia.Send("PUT", Strong("acct/ann"), R"({"n":1})").status, 200);
  ASSERT_EQ(asia.Send("PUT", Strong("stock/lamp"), R"({"n":1})").status, 200);
  cluster.node("eu").Kill();

  const json txn = {{"then", {Incr("acct/ann", "n", 1), Incr("stock/lamp", "n", 1)}}};
  auto refused = asia.Send("POST", kTxn, txn.dump());
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(Parse(refused.body)["error"], "home_unavailable") << refused.body;
  EXPECT_NE(Parse(refused.body)["message"].get<std::string>().find("nothing was applied"),
            std::string::npos)
      << refused.body;
  // us locked acct/ann and releases it once it sees the abort: strong writes go on.
  auto incr = asia.Send(
      "POST", "/v1/docs/" + EncodeKey("acct/ann") + "/incr?consistency=strong&timeout_ms=5000",
      R"({"n":10})");
  ASSERT_EQ(incr.status, 200) << incr.body;
  ASSERT_TRUE(cluster.node("eu").Start()) << cluster.node("eu").log();
  EXPECT_EQ(Parse(asia.Get(Strong("acct/ann")).body)["n"], 11);
  EXPECT_EQ(Parse(asia.Get(Strong("stock/lamp")).body)["n"], 1);
}

// A coordinator killed after a home prepared: the lock holds while no one can say what became of
// the transaction, and once the coordinator is back and the lock past its deadline, the home asks
// it, it records the abort, and the home releases.
TEST(TwoPhaseTest, ALockWhoseCoordinatorDiedIsAbortedOnceItAnswers) {
  Cluster cluster(HomedCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient us = cluster.Client("us");
  ASSERT_EQ(us.Send("PUT", Strong("acct/ann"), R"({"n":1})").status, 200);
  const json txn = {{"then", {Incr("acct/ann", "n", 1), Incr("stock/lamp", "n", 1)}}};
  // The coordinator is gone before its lock's deadline (1 ms) passes.
  cluster.node("asia").Kill();
  auto prepared = Prepare(cluster, "us", "asia-0123456789abcdef", "asia", 1, txn);
  ASSERT_EQ(prepared.status, 200) << prepared.body;
  EXPECT_EQ(Parse(prepared.body)["locked"], json::array({"acct/ann"})) << prepared.body;
  // Another transaction's prepare of the same key is refused.
  auto second = Prepare(cluster, "us", "eu-0123456789abcdef", "eu", 60'000, txn);
  EXPECT_EQ(second.status, 423) << second.body;
  EXPECT_EQ(Parse(second.body)["error"], "locked");

  // Past its deadline, with the coordinator down: held (refused once the request's wait is over).
  auto held = us.Send(
      "POST", "/v1/docs/" + EncodeKey("acct/ann") + "/incr?consistency=strong&timeout_ms=300",
      R"({"n":10})");
  EXPECT_EQ(held.status, 423) << held.body;
  EXPECT_EQ(Parse(held.body)["error"], "locked") << held.body;
  EXPECT_EQ(us.Get(Strong("acct/ann", 300)).status, 423);
  EXPECT_EQ(MetricValue(us, "meridian_txn_locks_held"), 1);

  ASSERT_TRUE(cluster.node("asia").Start()) << cluster.node("asia").log();
  auto after = us.Send(
      "POST", "/v1/docs/" + EncodeKey("acct/ann") + "/incr?consistency=strong&timeout_ms=10000",
      R"({"n":10})");
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(Parse(us.Get(Strong("acct/ann")).body)["n"], 11);  // the prepare changed nothing
  const json decision =
      Parse(cluster.Client("asia")
                .Get("/v1/docs/" + EncodeKey("_meridian/txns/asia-0123456789abcdef"))
                .body);
  EXPECT_EQ(decision["txn"]["decision"], "aborted") << decision.dump();
}

// A home killed while it holds a lock keeps it (the record is durable), and releases it once the
// coordinator's decision reaches it.
TEST(TwoPhaseTest, AHomeKeepsItsLockThroughACrash) {
  Cluster cluster(HomedCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  const json txn = {{"then", {Incr("acct/ann", "n", 1), Incr("stock/lamp", "n", 1)}}};
  auto prepared = Prepare(cluster, "eu", "asia-fedcba9876543210", "asia", 60'000, txn);
  ASSERT_EQ(prepared.status, 200) << prepared.body;
  EXPECT_EQ(Parse(prepared.body)["locked"], json::array({"stock/lamp"})) << prepared.body;
  cluster.node("eu").Kill();
  ASSERT_TRUE(cluster.node("eu").Start()) << cluster.node("eu").log();
  HttpClient eu = cluster.Client("eu");
  auto held = eu.Send("PUT", Strong("stock/lamp", 200), R"({"n":5})");
  EXPECT_EQ(held.status, 423) << held.body;

  // The coordinator decides (as when a home asks): aborted; eu releases when the record arrives.
  auto resolved =
      cluster.Client("asia").Request("POST", "/v1/txn/resolve?id=asia-fedcba9876543210", "", {});
  ASSERT_EQ(resolved.status, 200) << resolved.body;
  EXPECT_EQ(Parse(resolved.body)["decision"], "aborted");
  auto written = eu.Send("PUT", Strong("stock/lamp", 10'000), R"({"n":5})");
  ASSERT_EQ(written.status, 200) << written.body;
  EXPECT_TRUE(WaitUnlockedEverywhere(cluster, "stock/lamp"));
  // Asked again, the coordinator says the same.
  auto again =
      cluster.Client("asia").Request("POST", "/v1/txn/resolve?id=asia-fedcba9876543210", "", {});
  EXPECT_EQ(Parse(again.body)["decision"], "aborted");
}

}  // namespace
}  // namespace meridian::testing
