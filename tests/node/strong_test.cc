// Conditional writes and transactions against real region processes (docs/semantics.md,
// "Conditional writes" and "Transactions"): ETag and If-Match over HTTP, a create that only one of
// many racing clients wins, read-modify-write loops that lose no update, and transactions that a
// reader in another region never sees half of.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/cluster.h"
#include "support/http_client.h"

namespace meridian::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string DocPath(const std::string& key) { return "/v1/docs/" + EncodeKey(key); }

class StrongTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions options;
    // One event per batch: a transaction's events would travel and commit apart unless the
    // sender keeps them together (replication::ReadForSend) and the receiver applies them whole.
    options.extra_toml += "batch_events_max = 1\n";
    cluster_ = new Cluster(options);
    ASSERT_TRUE(cluster_->Start()) << cluster_->Logs();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  static Cluster* cluster_;
};
Cluster* StrongTest::cluster_ = nullptr;

TEST_F(StrongTest, ReadsAnswerAnETagThatIfMatchWritesOver) {
  HttpClient us = cluster_->Client("us");
  const std::string path = DocPath("etag/acct");
  auto created = us.Send("PUT", path, R"({"balance":10})");
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string etag = created.Header("etag");
  ASSERT_EQ(etag.size(), 18u) << etag;  // 16 hex digits in quotes
  EXPECT_EQ(Parse(created.body)["version"], etag.substr(1, 16));
  auto read = us.Get(path);
  ASSERT_EQ(read.status, 200);
  EXPECT_EQ(read.Header("etag"), etag);

  // Over the version read: applied, with a new version.
  auto updated = us.Request("PUT", path, R"({"balance":7})",
                            {{"content-type", "application/json"}, {"if-match", etag}});
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_NE(updated.Header("etag"), etag);
  // Over the old one again: 412, and nothing changes.
  auto stale = us.Request("PUT", path, R"({"balance":0})",
                          {{"content-type", "application/json"}, {"if-match", etag}});
  EXPECT_EQ(stale.status, 412) << stale.body;
  EXPECT_EQ(Parse(stale.body)["error"], "precondition_failed");
  EXPECT_EQ(us.Get(path).body, R"({"balance":7})");
  // Every write route takes conditions; If-Match: * needs the document to exist.
  auto incr = us.Request("POST", path + "/incr", R"({"balance":1})",
                         {{"content-type", "application/json"}, {"if-match", etag}});
  EXPECT_EQ(incr.status, 412);
  auto absent = us.Request("DELETE", DocPath("etag/none"), "", {{"if-match", "*"}});
  EXPECT_EQ(absent.status, 412);
  auto gone = us.Request("DELETE", path, "", {{"if-match", updated.Header("etag")}});
  EXPECT_EQ(gone.status, 200) << gone.body;
  EXPECT_EQ(us.Get(path).status, 404);

  // Malformed conditions are refused before anything is written.
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"if-match", "abc"}, {"if-match", "\"a\", \"b\""}, {"if-none-match", "\"abc\""}}) {
    auto bad = us.Request("PUT", DocPath("etag/bad"), "{}",
                          {{"content-type", "application/json"}, {name, value}});
    EXPECT_EQ(bad.status, 400) << name << ": " << value;
    EXPECT_EQ(Parse(bad.body)["error"], "bad_header");
  }
  EXPECT_EQ(us.Get(DocPath("etag/bad")).status, 404);
}

TEST_F(StrongTest, OfManyRacingCreatesOnlyOneWins) {
  constexpr int kClients = 8;
  std::atomic<int> won{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      HttpClient client = cluster_->Client("us");
      auto answer = client.Request("PUT", DocPath("race/seat-1"),
                                   json{{"holder", c}}.dump(),
                                   {{"content-type", "application/json"}, {"if-none-match", "*"}});
      if (answer.status == 200) ++won;
      if (answer.status == 412) ++refused;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(refused.load(), kClients - 1);
}

TEST_F(StrongTest, ReadModifyWriteWithIfMatchLosesNoUpdate) {
  const std::string path = DocPath("rmw/total");
  ASSERT_EQ(cluster_->Client("us").Send("PUT", path, R"({"n":0})").status, 200);
  constexpr int kClients = 4;
  constexpr int kUpdates = 25;
  std::atomic<int> applied{0};
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&] {
      HttpClient client = cluster_->Client("us");
      for (int done = 0, attempts = 0; done < kUpdates && attempts < 2000; ++attempts) {
        auto read = client.Get(path);
        if (read.status != 200) continue;
        // A plain set of n + 1: only If-Match stops two clients from both writing the same n.
        const int64_t n = Parse(read.body)["n"].get<int64_t>();
        auto write = client.Request("PUT", path, json{{"n", n + 1}}.dump(),
                                    {{"content-type", "application/json"},
                                     {"if-match", read.Header("etag")}});
        if (write.status == 200) {
          ++done;
          ++applied;
        } else if (write.status == 412) {
          ++conflicts;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(applied.load(), kClients * kUpdates);
  EXPECT_EQ(Parse(cluster_->Client("us").Get(path).body)["n"], kClients * kUpdates);
}

TEST_F(StrongTest, ATransactionChoosesItsBranchAndAnswersItsEvents) {
  HttpClient us = cluster_->Client("us");
  ASSERT_EQ(us.Send("PUT", DocPath("txn/stock"), R"({"left":1})").status, 200);
  const std::string version = us.Get(DocPath("txn/stock")).Header("etag");
  const json txn = {
      {"if", {{{"key", "txn/stock"}, {"version", version.substr(1, 16)}},
              {{"key", "txn/order-1"}, {"exists", false}}}},
      {"then",
       {{{"op", "incr"}, {"key", "txn/stock"}, {"doc", {{"left", -1}}}},
        {{"op", "put"}, {"key", "txn/order-1"}, {"doc", {{"item", "lamp"}}}}}},
      {"else", {{{"op", "incr"}, {"key", "txn/stats"}, {"doc", {{"sold_out", 1}}}}}}};
  auto first = us.Send("POST", "/v1/txn", txn.dump());
  ASSERT_EQ(first.status, 200) << first.body;
  const json receipt = Parse(first.body);
  EXPECT_EQ(receipt["succeeded"], true);
  ASSERT_EQ(receipt["events"].size(), 2u);
  EXPECT_EQ(receipt["event"], receipt["events"][1]);
  EXPECT_EQ(us.Get(DocPath("txn/stock")).body, R"({"left":0})");
  EXPECT_EQ(us.Get(DocPath("txn/order-1")).body, R"({"item":"lamp"})");
  auto second = us.Send("POST", "/v1/txn", txn.dump());
  ASSERT_EQ(second.status, 200);
  EXPECT_EQ(Parse(second.body)["succeeded"], false);
  EXPECT_EQ(us.Get(DocPath("txn/stats")).body, R"({"sold_out":1})");
  EXPECT_EQ(us.Get(DocPath("txn/stock")).body, R"({"left":0})");

  // A refused operation refuses the whole transaction.
  ASSERT_EQ(us.Send("PUT", DocPath("txn/name"), R"({"n":"text"})").status, 200);
  auto refused = us.Send("POST", "/v1/txn",
                         json{{"then",
                               {{{"op", "put"}, {"key", "txn/first"}, {"doc", {{"a", 1}}}},
                                {{"op", "incr"}, {"key", "txn/name"}, {"doc", {{"n", 1}}}}}}}
                             .dump());
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_EQ(us.Get(DocPath("txn/first")).status, 404);

  // Malformed transactions: 400 with the place named; 405 for other methods.
  for (const std::string& body :
       {std::string(R"({"then":[{"op":"upsert","key":"a","doc":{}}]})"),
        std::string(R"({"if":[{"key":"a"}]})"), std::string(R"({"then":{}})"),
        std::string(R"({"when":[]})"), std::string(R"({"then":[{"op":"delete","key":""}]})")}) {
    auto bad = us.Send("POST", "/v1/txn", body);
    EXPECT_EQ(bad.status, 400) << body << " -> " << bad.body;
  }
  EXPECT_EQ(us.Get("/v1/txn").status, 405);
}

TEST_F(StrongTest, AReaderInAnotherRegionNeverSeesHalfATransaction) {
  constexpr int kTransactions = 150;
  std::atomic<bool> done{false};
  std::atomic<int> scans{0};
  std::atomic<int> torn{0};
  std::string first_torn;
  std::thread reader([&] {
    HttpClient eu = cluster_->Client("eu");
    // Bounded: the writer ends after kTransactions; a scan is one consistent read of the store.
    for (int i = 0; i < 100'000 && !done.load(); ++i) {
      auto page = eu.Get("/v1/docs?prefix=" + EncodeKey("pair/") + "&limit=10");
      if (page.status != 200) continue;
      const json items = Parse(page.body)["items"];
      ++scans;
      if (items.size() == 1 || (items.size() == 2 && items[0]["doc"] != items[1]["doc"])) {
        if (torn++ == 0) first_torn = page.body;
      }
    }
  });
  HttpClient us = cluster_->Client("us");
  int committed = 0;
  for (int i = 1; i <= kTransactions; ++i) {
    const json txn = {{"then",
                       {{{"op", "put"}, {"key", "pair/a"}, {"doc", {{"n", i}}}},
                        {{"op", "put"}, {"key", "pair/b"}, {"doc", {{"n", i}}}}}}};
    if (us.Send("POST", "/v1/txn", txn.dump()).status == 200) ++committed;
  }
  std::string why;
  EXPECT_TRUE(cluster_->WaitConverged(seconds(30), &why)) << why;
  done = true;
  reader.join();
  EXPECT_EQ(committed, kTransactions);
  EXPECT_GT(scans.load(), 0);
  EXPECT_EQ(torn.load(), 0) << first_torn;
  for (const std::string& region : cluster_->regions()) {
    auto docs = cluster_->Documents(region, "pair/");
    EXPECT_EQ(docs["pair/a"], json({{"n", kTransactions}}).dump()) << region;
    EXPECT_EQ(docs["pair/b"], docs["pair/a"]) << region;
  }
}

}  // namespace
}  // namespace meridian::testing
