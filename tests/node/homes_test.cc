// Home regions against real region processes (docs/semantics.md#home-regions): strong operations
// run in the key's home whichever region receives them, so a strong read anywhere sees the
// latest strong write even while replication lags; a home that cannot be reached refuses with
// nothing applied; a planned move loses nothing, and a forced one takes over a lost home.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/cli.h"
#include "support/cluster.h"
#include "support/http_client.h"

namespace meridian::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string Strong(const std::string& key, const std::string& suffix = "") {
  return "/v1/docs/" + EncodeKey(key) + suffix + "?consistency=strong&timeout_ms=3000";
}

ClusterOptions HomedCluster() {
  ClusterOptions options;
  options.delay_ms = 40;  // one way: a region's eventual read lags the home by a round trip
  options.extra_toml +=
      "\n[[homes]]\nprefix = \"acct/\"\nregion = \"us\"\n"
      "\n[[homes]]\nprefix = \"stock/\"\nregion = \"eu\"\n";
  return options;
}

// Waits (bounded) until `region` reports `prefix`'s home as `home`.
bool WaitHome(Cluster& cluster, const std::string& region, const std::string& prefix,
              const std::string& home) {
  HttpClient client = cluster.Client(region);
  for (int i = 0; i < 400; ++i) {
    const json homes = Parse(client.Get("/v1/homes").body);
    for (const json& entry : homes.value("homes", json::array())) {
      if (entry["prefix"] == prefix && entry["region"] == home) return true;
    }
    std::this_thread::sleep_for(milliseconds(25));
  }
  return false;
}

TEST(HomesTest, StrongOperationsRunInTheHomeFromAnyRegion) {
  Cluster cluster(HomedCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  const std::vector<std::string> regions = cluster.regions();
  std::vector<HttpClient> clients;
  for (const std::string& region : regions) clients.push_back(cluster.Client(region));

  // Each write in one region, the read at once in another: only a read in the home sees it
  // before replication brings it (40 ms away).
  for (int i = 1; i <= 12; ++i) {
    HttpClient& writer = clients[i % 3];
    HttpClient& reader = clients[(i + 1) % 3];
    auto wrote = writer.Send("PUT", Strong("acct/ann"), json{{"n", i}}.dump());
    ASSERT_EQ(wrote.status, 200) << wrote.body;
    EXPECT_EQ(Parse(wrote.body)["event"].get<std::string>().substr(0, 3), "us:") << wrote.body;
    auto read = reader.Get(Strong("acct/ann"));
    ASSERT_EQ(read.status, 200) << read.body;
    EXPECT_EQ(Parse(read.body)["n"], i) << "read in " << regions[(i + 1) % 3];
  }

  // If-Match over the home's copy: of two clients in two regions with the same version, one wins.
  const std::string etag = clients[1].Get(Strong("acct/ann")).Header("etag");
  auto first = clients[1].Request("PUT", Strong("acct/ann"), R"({"n":100})",
                                  {{"content-type", "application/json"}, {"if-match", etag}});
  auto second = clients[2].Request("PUT", Strong("acct/ann"), R"({"n":200})",
                                   {{"content-type", "application/json"}, {"if-match", etag}});
  EXPECT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(second.status, 412) << second.body;

  // A strong transaction on keys of one home runs there.
  const json txn = {{"then",
                     {{{"op", "incr"}, {"key", "stock/lamp"}, {"doc", {{"left", 5}}}},
                      {{"op", "put"}, {"key", "stock/log"}, {"doc", {{"last", "restock"}}}}}}};
  auto ran = clients[0].Send("POST", "/v1/txn?consistency=strong", txn.dump());
  ASSERT_EQ(ran.status, 200) << ran.body;
  EXPECT_EQ(Parse(ran.body)["event"].get<std::string>().substr(0, 3), "eu:");

  // Refusals: no home, the deployment's own keys. (Homes that differ: two_phase_test.cc.)
  EXPECT_EQ(Parse(clients[0].Send("PUT", Strong("free/x"), "{}").body)["error"], "no_home");
  auto own = clients[0].Send("PUT", "/v1/docs/" + EncodeKey("_meridian/homes/acct/"), "{}");
  EXPECT_EQ(own.status, 400) << own.body;
  EXPECT_EQ(clients[0].Get("/v1/docs/x?consistency=sometimes").status, 400);
}

// With http_through_proxy each region names the others' HTTP APIs at its proxy routes, so a
// forwarded strong request crosses the WAN as replication does (bench/strong_bench.cc).
TEST(HomesTest, ForwardingGoesThroughTheProxyWhenRegionsSeeEachOtherThere) {
  ClusterOptions options = HomedCluster();
  options.http_through_proxy = true;
  Cluster cluster(options);
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  const uint16_t route = cluster.HttpRoutePort("eu", "us");
  ASSERT_NE(route, 0);
  ASSERT_NE(route, cluster.node("us").http_port());
  std::ifstream file(cluster.node("eu").config_path());
  std::stringstream config;
  config << file.rdbuf();
  EXPECT_NE(config.str().find("http = \"127.0.0.1:" + std::to_string(route) + "\""),
            std::string::npos)
      << config.str();
  HttpClient through(std::string("127.0.0.1"), route);
  EXPECT_EQ(Parse(through.Get("/v1/status").body)["region"], "us");

  HttpClient eu = cluster.Client("eu");
  auto written = eu.Send("PUT", Strong("acct/carol"), R"({"n":1})");
  ASSERT_EQ(written.status, 200) << written.body;
  EXPECT_EQ(Parse(written.body)["event"].get<std::string>().substr(0, 3), "us:");
  auto read = eu.Get(Strong("acct/carol"));
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_EQ(Parse(read.body)["n"], 1);
}

TEST(HomesTest, AHomeThatCannotBeReachedRefusesWithNothingApplied) {
  Cluster cluster(HomedCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient eu = cluster.Client("eu");
  ASSERT_EQ(eu.Send("PUT", Strong("acct/bob"), R"({"n":1})").status, 200);
  cluster.node("us").Kill();
  auto refused = eu.Send("PUT", Strong("acct/bob"), R"({"n":2})");
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(Parse(refused.body)["error"], "home_unavailable");
  EXPECT_NE(Parse(refused.body)["message"].get<std::string>().find("nothing was applied"),
            std::string::npos)
      << refused.body;
  EXPECT_EQ(eu.Get(Strong("acct/bob")).status, 503);
  // Eventual operations go on in every live region.
  EXPECT_EQ(eu.Send("PUT", "/v1/docs/acct%2Fbob-note", R"({"ok":true})").status, 200);
  ASSERT_TRUE(cluster.node("us").Start()) << cluster.node("us").log();
  auto read = eu.Get(Strong("acct/bob"));
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_EQ(read.body, R"({"n":1})");
}

TEST(HomesTest, APlannedMoveLosesNoStrongWriteMadeAroundIt) {
  Cluster cluster(HomedCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  ASSERT_EQ(cluster.Client("us").Send("PUT", Strong("acct/pool"), R"({"n":0})").status, 200);

  // Writers in every region add 1 strongly while the home moves from us to eu.
  std::atomic<bool> stop{false};
  std::atomic<int> applied{0};
  std::atomic<int> refused{0};
  std::atomic<int> other{0};
  std::vector<std::thread> writers;
  for (const std::string& region : cluster.regions()) {
    writers.emplace_back([&, region] {
      HttpClient client = cluster.Client(region);
      for (int i = 0; i < 400 && !stop.load(); ++i) {
        auto answer = client.Send("POST", Strong("acct/pool", "/incr"), R"({"n":1})");
        if (answer.status == 200) {
          ++applied;
        } else if (answer.status == 503) {
          ++refused;  // the home was moving: refused, nothing applied
        } else {
          ++other;
        }
      }
    });
  }
  // Sent to asia: forwarded to the home, us, which writes the record.
  for (int i = 0; i < 2000 && applied.load() < 20; ++i)
    std::this_thread::sleep_for(milliseconds(5));
  ASSERT_GE(applied.load(), 20);
  auto moved =
      cluster.Client("asia").Send("POST", "/v1/homes/move", R"({"prefix":"acct/","to":"eu"})");
  ASSERT_EQ(moved.status, 200) << moved.body;
  EXPECT_EQ(Parse(moved.body)["region"], "eu");
  EXPECT_EQ(Parse(moved.body)["epoch"], 1);
  for (const std::string& region : cluster.regions()) {
    EXPECT_TRUE(WaitHome(cluster, region, "acct/", "eu")) << region;
  }
  const int before = applied.load();
  for (int i = 0; i < 2000 && applied.load() < before + 20; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  stop = true;
  for (std::thread& writer : writers) writer.join();
  EXPECT_GE(applied.load(), before + 20);
  EXPECT_EQ(other.load(), 0);

  // Every acknowledged increment is there, and only those, in the new home at once and, once
  // converged, everywhere; the new ones were made by eu.
  auto read = cluster.Client("us").Get(Strong("acct/pool"));
  ASSERT_EQ(read.status, 200);
  EXPECT_EQ(Parse(read.body)["n"], applied.load());
  auto after = cluster.Client("asia").Send("POST", Strong("acct/pool", "/incr"), R"({"n":0})");
  EXPECT_EQ(Parse(after.body)["event"].get<std::string>().substr(0, 3), "eu:") << after.body;
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  for (const std::string& region : cluster.regions()) {
    EXPECT_EQ(Parse(cluster.Documents(region, "acct/pool")["acct/pool"])["n"], applied.load());
  }
  // Back: asked of the old home, forwarded to the new one.
  auto back =
      cluster.Client("us").Send("POST", "/v1/homes/move", R"({"prefix":"acct/","to":"us"})");
  ASSERT_EQ(back.status, 200) << back.body;
  EXPECT_EQ(Parse(back.body)["epoch"], 2);
  EXPECT_EQ(
      cluster.Client("us").Send("POST", "/v1/homes/move", R"({"prefix":"nope/","to":"us"})").status,
      404);
}

TEST(HomesTest, AForcedMoveTakesOverALostHome) {
  Cluster cluster(HomedCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient asia = cluster.Client("asia");
  ASSERT_EQ(asia.Send("PUT", Strong("stock/pen"), R"({"left":3})").status, 200);
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  cluster.node("eu").Kill();
  // A planned move needs the home.
  auto planned = asia.Send("POST", "/v1/homes/move", R"({"prefix":"stock/","to":"asia"})");
  EXPECT_EQ(planned.status, 503) << planned.body;
  auto forced =
      asia.Send("POST", "/v1/homes/move", R"({"prefix":"stock/","to":"asia","force":true})");
  ASSERT_EQ(forced.status, 200) << forced.body;
  EXPECT_EQ(Parse(forced.body)["forced"], true);
  auto wrote = asia.Send("POST", Strong("stock/pen", "/incr"), R"({"left":-1})");
  ASSERT_EQ(wrote.status, 200) << wrote.body;
  EXPECT_EQ(Parse(wrote.body)["event"].get<std::string>().substr(0, 5), "asia:");
  EXPECT_TRUE(WaitHome(cluster, "us", "stock/", "asia"));
  EXPECT_EQ(cluster.Client("us").Get(Strong("stock/pen")).body, R"({"left":2})");
  // The old home learns of it when it comes back, and forwards from then on.
  ASSERT_TRUE(cluster.node("eu").Start()) << cluster.node("eu").log();
  EXPECT_TRUE(WaitHome(cluster, "eu", "stock/", "asia"));
  EXPECT_EQ(cluster.Client("eu").Get(Strong("stock/pen")).body, R"({"left":2})");
}


TEST(HomesTest, TheCliWritesStronglyAndMovesHomes) {
  Cluster cluster(HomedCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  std::string common = "--regions ";
  for (const std::string& region : cluster.regions()) {
    common += region + "=127.0.0.1:" + std::to_string(cluster.node(region).http_port()) + ",";
  }
  common.pop_back();
  common += " --prefer asia";
  int code = 0;
  std::string out = RunCli("put acct/cli '{\"n\":1}' --strong --json " + common, &code);
  ASSERT_EQ(code, 0) << out;
  const json receipt = Parse(out);
  EXPECT_EQ(receipt["event"].get<std::string>().substr(0, 3), "us:") << out;
  const std::string version = receipt["version"];
  out = RunCli("put acct/cli '{\"n\":2}' --strong --if-match " + version + " " + common, &code);
  EXPECT_EQ(code, 0) << out;
  out = RunCli("put acct/cli '{\"n\":3}' --strong --if-match " + version + " " + common, &code);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("is not at version " + version), std::string::npos) << out;
  out = RunCli("get acct/cli --strong --json " + common, &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(Parse(out)["n"], 2) << out;
  out = RunCli("move-home acct/ eu " + common, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("acct/"), std::string::npos) << out;
  ASSERT_TRUE(WaitHome(cluster, "asia", "acct/", "eu"));
  out = RunCli("homes --json " + common, &code);
  EXPECT_EQ(code, 0);
  bool found = false;
  const json homes = Parse(out);
  for (const json& home : homes["homes"]) {
    if (home["prefix"] == "acct/") found = home["region"] == "eu" && home["epoch"] == 1;
  }
  EXPECT_TRUE(found) << out;

  // A strong transaction across homes (stock/ in eu, acct/ now in eu too: acct/ moves back to us
  // first), coordinated by asia.
  out = RunCli("move-home acct/ us " + common, &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_TRUE(WaitHome(cluster, "asia", "acct/", "us"));
  out = RunCli(
      "txn '{\"if\":[{\"key\":\"acct/cli\",\"exists\":true}],\"then\":[{\"op\":\"incr\","
      "\"key\":\"acct/cli\",\"doc\":{\"n\":-1}},{\"op\":\"incr\",\"key\":\"stock/cli\","
      "\"doc\":{\"n\":1}}]}' --strong --json " +
          common,
      &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(Parse(out)["succeeded"], true) << out;
  EXPECT_EQ(Parse(out)["events"][0].get<std::string>().substr(0, 5), "asia:") << out;
  out = RunCli("get stock/cli --strong --json " + common, &code);
  EXPECT_EQ(Parse(out)["n"], 1) << out;
  out = RunCli("txn 'not json' " + common, &code);
  EXPECT_NE(code, 0) << out;

  // Bounds: declared, then read with this region's rights.
  out = RunCli("put stock/lamp '{\"left\":10}' " + common, &code);
  ASSERT_EQ(code, 0) << out;
  out = RunCli("bounds stock/lamp left 0 --json " + common, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_FALSE(Parse(out)["event"].get<std::string>().empty()) << out;
  out = RunCli("bounds stock/lamp " + common, &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"min\":0"), std::string::npos) << out;
  out = RunCli("bounds stock/lamp left " + common, &code);  // no MIN
  EXPECT_NE(code, 0) << out;
  out = RunCli("bounds stock/lamp left few " + common, &code);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("MIN must be an integer"), std::string::npos) << out;
}

}  // namespace
}  // namespace meridian::testing
