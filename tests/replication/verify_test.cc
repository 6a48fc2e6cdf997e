// Verification and repair between real region processes (docs/verification.md): documents lost
// or corrupted in one region's store while it was stopped (with RocksDB's own `ldb`, as a disk
// fault or an operator's mistake would) are found by the scrub and the tree comparison, restored
// from a peer, and listed in the review queue.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
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

// Runs RocksDB's ldb on a stopped region's store; true when it succeeded.
bool Ldb(const std::string& data_dir, const std::string& arguments) {
  const std::string command =
      "ldb --db='" + data_dir + "' --column_family=docs " + arguments + " >/dev/null 2>&1";
  const int status = std::system(command.c_str());
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

ClusterOptions VerifyingCluster() {
  ClusterOptions options;
  options.delay_ms = 2;
  options.extra_toml +=
      "[verify]\ninterval_ms = 300\nalign_timeout_ms = 3000\nscrub_documents_per_s = 100000\n"
      // Repairs come from peers here, not from the regions' own logs.
      "rebuild_log_bytes_max = 0\n";
  return options;
}

bool AllIdentical(HttpClient& client) {
  const json verify = Parse(client.Get("/v1/verify").body);
  if (!verify.contains("peers") || verify["peers"].empty()) return false;
  for (const json& peer : verify["peers"]) {
    if (peer.value("state", "") != "identical") return false;
  }
  return true;
}

TEST(Verification, LostAndCorruptedDocumentsAreFoundRestoredAndListed) {
  Cluster cluster(VerifyingCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  HttpClient us = cluster.Client("us");
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(us.Send("PUT", "/v1/docs/item:" + std::to_string(i),
                      json{{"name", "item " + std::to_string(i)}, {"stock", i}}.dump())
                  .status,
              200);
  }
  ASSERT_EQ(us.Send("POST", "/v1/docs/item:7/incr", R"({"sold":3})").status, 200);
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  const auto before = cluster.Documents("us", "item:");
  ASSERT_EQ(before.size(), 40u);

  // While eu is stopped, one document record is deleted and another overwritten with garbage.
  cluster.node("eu").Kill();
  const std::string dir = cluster.node("eu").data_dir();
  ASSERT_TRUE(Ldb(dir, "delete item:3"));
  ASSERT_TRUE(Ldb(dir, "put item:7 'not a document record'"));
  ASSERT_TRUE(cluster.node("eu").Start(seconds(20))) << cluster.node("eu").log();
  HttpClient eu = cluster.Client("eu");
  EXPECT_EQ(eu.Get("/v1/docs/item:3").status, 404);  // lost, until repaired

  ASSERT_TRUE(WaitFor([&] { return cluster.Documents("eu", "item:") == before; }, seconds(30)))
      << cluster.node("eu").log();
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  EXPECT_EQ(Parse(eu.Get("/v1/docs/item:7").body)["sold"], 3);

  // The review queue lists both: found damaged, then restored from a peer.
  const json repairs = Parse(eu.Get("/v1/repairs?limit=100").body);
  ASSERT_TRUE(repairs.contains("items")) << repairs.dump();
  std::map<std::string, std::vector<std::string>> actions;
  for (const json& item : repairs["items"]) {
    actions[item["key"].get<std::string>()].push_back(item["action"].get<std::string>());
  }
  for (const std::string key : {"item:3", "item:7"}) {
    ASSERT_TRUE(actions.contains(key)) << repairs.dump();
    bool restored = false;
    for (const std::string& action : actions[key]) restored |= action.starts_with("restored from");
    EXPECT_TRUE(restored) << key << ": " << repairs.dump();
  }
  EXPECT_GE(repairs["total"].get<int>(), 2);
  // Nothing else was touched, and the next comparisons find every pair identical.
  EXPECT_EQ(actions.size(), 2u) << repairs.dump();
  HttpClient asia = cluster.Client("asia");
  ASSERT_TRUE(WaitFor([&] { return AllIdentical(eu) && AllIdentical(us) && AllIdentical(asia); },
                      seconds(30)))
      << eu.Get("/v1/verify").body << us.Get("/v1/verify").body << asia.Get("/v1/verify").body;
  const json verify = Parse(eu.Get("/v1/verify").body);
  EXPECT_EQ(verify["region"], "eu");
  EXPECT_EQ(verify["damaged_documents"], 0) << verify.dump();
  // A clean comparison of identical regions: one round trip of a few hundred bytes (a comparison
  // that began while a repair was landing may have walked further down).
  json us_verify;
  ASSERT_TRUE(WaitFor(
      [&] {
        us_verify = Parse(us.Get("/v1/verify").body);
        for (const json& peer : us_verify["peers"]) {
          if (peer.value("state", "") != "identical" || peer.value("round_trips", 0) != 1) {
            return false;
          }
        }
        return true;
      },
      seconds(10)))
      << us_verify.dump();
  for (const json& peer : us_verify["peers"]) EXPECT_LT(peer["bytes"].get<int>(), 1024) << peer;
  // The command prints the same for every region pair, and exits 0 when every pair is identical.
  std::string regions;
  for (const std::string& region : cluster.regions()) {
    regions += (regions.empty() ? "" : ",") + region +
               "=127.0.0.1:" + std::to_string(cluster.node(region).http_port());
  }
  const auto run = [&](const std::string& arguments, std::string* out) {
    const std::string command = std::string(MERIDIAN_BINARY_PATH) + " verify --regions " + regions +
                                " " + arguments + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) return -1;
    char buffer[4096];
    size_t read = 0;
    while ((read = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out->append(buffer, read);
    const int status = ::pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  std::string table;
  EXPECT_EQ(run("", &table), 0) << table;
  EXPECT_NE(table.find("every pair identical"), std::string::npos) << table;
  EXPECT_NE(table.find("asia"), std::string::npos) << table;
  std::string machine;
  EXPECT_EQ(run("--json", &machine), 0) << machine;
  const json parsed = Parse(machine);
  EXPECT_EQ(parsed["identical"], true) << machine;
  EXPECT_EQ(parsed["regions"].size(), 3u) << machine;
  // A region that cannot be reached makes the answer not identical (exit 1).
  cluster.node("asia").Kill();
  std::string down;
  EXPECT_EQ(run("--timeout-ms 500", &down), 1) << down;
  const std::string metrics = eu.Get("/metrics").body;
  EXPECT_NE(metrics.find("meridian_repairs_total{peer="), std::string::npos);
  EXPECT_NE(metrics.find("meridian_verify_comparisons_total{"), std::string::npos);
}

// eu cannot apply the events of one document (a poison event, injected with
// MERIDIAN_FAULT_POISON_KEY): they are parked as dead letters, the link keeps flowing, and the
// document is restored from a region that applied them, which settles the dead letters.
TEST(Verification, APoisonEventIsParkedTheLinkFlowsAndTheDocumentConverges) {
  Cluster cluster(VerifyingCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  cluster.node("eu").Kill();
  ::setenv("MERIDIAN_FAULT_POISON_KEY", "item:poison", 1);
  const bool started = cluster.node("eu").Start(seconds(20));
  ::unsetenv("MERIDIAN_FAULT_POISON_KEY");
  ASSERT_TRUE(started) << cluster.node("eu").log();
  ASSERT_TRUE(cluster.WaitLinked(seconds(20)));
  HttpClient us = cluster.Client("us");
  HttpClient eu = cluster.Client("eu");
  ASSERT_EQ(us.Send("PUT", "/v1/docs/item:poison", R"({"name":"poison","stock":1})").status, 200);
  ASSERT_EQ(us.Send("POST", "/v1/docs/item:poison/incr", R"({"stock":4})").status, 200);
  ASSERT_EQ(us.Send("PUT", "/v1/docs/item:after", R"({"name":"after"})").status, 200);

  // The link goes on past the parked events.
  ASSERT_TRUE(WaitFor([&] { return eu.Get("/v1/docs/item:after").status == 200; }, seconds(20)));
  const json letters = Parse(eu.Get("/v1/dead-letters").body);
  ASSERT_EQ(letters["items"].size(), 2u) << letters.dump();
  for (const json& letter : letters["items"]) {
    EXPECT_EQ(letter["key"], "item:poison") << letter.dump();
    EXPECT_NE(letter["reason"].get<std::string>().find("poisoned"), std::string::npos);
  }
  // Verification restores the document from a region that applied the events.
  ASSERT_TRUE(WaitFor(
      [&] {
        const HttpResponse doc = eu.Get("/v1/docs/item:poison");
        return doc.status == 200 && Parse(doc.body)["stock"] == 5;
      },
      seconds(30)))
      << eu.Get("/v1/docs/item:poison").body << cluster.node("eu").log();
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  ASSERT_TRUE(WaitFor(
      [&] {
        const json letters = Parse(eu.Get("/v1/dead-letters").body);
        for (const json& letter : letters["items"]) {
          if (letter["status"] != "resolved") return false;
        }
        return true;
      },
      seconds(10)))
      << eu.Get("/v1/dead-letters").body;
  bool restored = false;
  const json repairs = Parse(eu.Get("/v1/repairs").body);
  for (const json& item : repairs["items"]) {
    restored |= item["key"] == "item:poison" &&
                item["action"].get<std::string>().starts_with("restored from");
  }
  EXPECT_TRUE(restored) << eu.Get("/v1/repairs").body;
  EXPECT_EQ(Parse(eu.Get("/v1/verify").body)["damaged_documents"], 0);
}

// Writes keep flowing in every region while they compare: differences in flight are not
// repairs, and nothing is listed.
TEST(Verification, WritesInFlightAreNotDifferences) {
  Cluster cluster(VerifyingCluster());
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (const std::string region : {"us", "eu", "asia"}) {
    writers.emplace_back([&, region] {
      HttpClient client = cluster.Client(region);
      for (int i = 0; !stop && i < 100000; ++i) {
        client.Send("POST", "/v1/docs/hot:" + std::to_string(i % 20) + "/incr",
                    json{{region, 1}}.dump());
        client.Send("PUT", "/v1/docs/" + region + ":" + std::to_string(i), json{{"n", i}}.dump());
      }
    });
  }
  // Several comparisons of every pair run under the load.
  HttpClient us = cluster.Client("us");
  const auto compared = [&](HttpClient& client) {
    const json verify = Parse(client.Get("/v1/verify").body);
    size_t done = 0;
    for (const json& peer : verify.value("peers", json::array())) {
      if (peer.value("compared", false) && peer.value("in_flight", 0) > 0) ++done;
    }
    return done == 2;
  };
  const bool ran = WaitFor([&] { return compared(us); }, seconds(30));
  stop = true;
  for (std::thread& writer : writers) writer.join();
  EXPECT_TRUE(ran) << us.Get("/v1/verify").body;
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  for (const std::string region : {"us", "eu", "asia"}) {
    HttpClient client = cluster.Client(region);
    const json repairs = Parse(client.Get("/v1/repairs").body);
    EXPECT_EQ(repairs["total"], 0) << region << ": " << repairs.dump();
  }
}

}  // namespace
}  // namespace meridian::testing
