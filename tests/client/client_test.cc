// The client library and the CLI against real region processes: failover when the region in use
// is killed (no write applied twice, read-your-writes kept), idempotent retries across a restart,
// and the CLI's commands.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include "auth/token.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "meridian/client.h"
#include "support/cli.h"
#include "support/cluster.h"

namespace meridian::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

ClientOptions OptionsFor(Cluster& cluster, const std::string& preferred) {
  ClientOptions options;
  for (const std::string& region : cluster.regions()) {
    options.regions.push_back(
        RegionEndpoint{region, "127.0.0.1", cluster.node(region).http_port()});
  }
  options.preferred_region = preferred;
  options.attempt_timeout = milliseconds(500);
  options.failover_budget = milliseconds(3000);
  options.probe_interval = milliseconds(100);
  options.probe_timeout = milliseconds(200);
  options.session_wait = milliseconds(300);
  return options;
}

// Stops and joins a test's background thread however the test ends (an ASSERT returns early).
class StopAndJoin {
 public:
  StopAndJoin(std::atomic<bool>* stop, std::thread* thread) : stop_(stop), thread_(thread) {}
  ~StopAndJoin() {
    *stop_ = true;
    if (thread_->joinable()) thread_->join();
  }

 private:
  std::atomic<bool>* stop_;
  std::thread* thread_;
};

int64_t CounterValue(Cluster& cluster, const std::string& region, const std::string& key) {
  auto response = cluster.Client(region).Get("/v1/docs/" + key);
  auto doc = json::parse(response.body, nullptr, false);
  return doc.is_object() ? doc.value("n", int64_t{0}) : -1;
}

// A client writes and reads continuously while the region it uses is killed: it moves to another
// region, every write is applied exactly once (writes whose answer was lost are resolved with
// their idempotency keys once the region is back), and no read ever misses the client's writes.
TEST(ClientFailover, RegionKilledMidStreamNoWriteTwiceReadYourWrites) {
  Cluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  auto created = Client::Create(OptionsFor(cluster, "us"));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Client& client = **created;
  ASSERT_EQ(client.current_region(), "us");

  std::atomic<bool> stop{false};
  std::atomic<int64_t> acknowledged{0};
  std::atomic<int> stale_reads{0};
  std::atomic<int> good_reads{0};
  std::mutex mutex;
  std::vector<std::pair<std::string, std::string>> unknown_keys;  // key, region
  std::map<std::string, int> acks_by_region;
  std::string errors;
  // Writes are acknowledged once another region holds them too: then some region can serve this
  // client's session the moment its own region dies (with regions:0, the writes the dead region
  // had not yet sent would keep session reads waiting until it is back).
  WriteOptions durable;
  durable.durability_regions = 1;
  std::thread writer([&] {
    for (int i = 0; i < 100'000 && !stop; ++i) {
      auto receipt = client.Increment("counter", {{"n", 1}}, durable);
      if (!receipt.ok()) {
        const CallError error = client.last_error();
        std::lock_guard lock(mutex);
        if (error.code == "outcome_unknown") {
          unknown_keys.emplace_back(error.idempotency_key, error.region);
        } else if (errors.size() < 2000) {
          errors += receipt.status().ToString() + "\n";
        }
        continue;
      }
      acknowledged += 1;
      {
        std::lock_guard lock(mutex);
        acks_by_region[receipt->region] += 1;
      }
      // Read-your-writes: a read answers with this write in it, or not at all (session timeout).
      auto put = client.Put("mine:" + std::to_string(i), json{{"i", i}}.dump(), durable);
      if (!put.ok()) continue;
      auto read = client.Get("mine:" + std::to_string(i));
      if (read.ok()) {
        if (read->doc && json::parse(*read->doc).value("i", -1) == i) {
          good_reads += 1;
        } else {
          stale_reads += 1;
        }
      }
    }
  });

  StopAndJoin stop_writer(&stop, &writer);

  auto wait_for = [&](const std::function<bool()>& done, Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!done() && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(10));
    return done();
  };
  ASSERT_TRUE(wait_for([&] { return acknowledged.load() >= 100; }, seconds(30)));
  cluster.node("us").Kill();
  const int64_t at_kill = acknowledged.load();
  const bool moved = wait_for(
      [&] {
        std::lock_guard lock(mutex);
        return acks_by_region["eu"] + acks_by_region["asia"] >= 100;
      },
      seconds(30));
  EXPECT_TRUE(moved) << "the client did not move on after the kill";
  EXPECT_GT(acknowledged.load(), at_kill);
  ASSERT_TRUE(cluster.node("us").Start()) << cluster.node("us").log();
  ASSERT_TRUE(cluster.WaitLinked(seconds(20)));
  // Back home: the preferred region is used again once healthy.
  EXPECT_TRUE(wait_for([&] { return client.current_region() == "us"; }, seconds(20)));
  stop = true;
  writer.join();
  EXPECT_EQ(errors, "");

  // Writes of unknown outcome: retried with their keys, they go to the region that took them
  // and are applied there at most once.
  int64_t resolved = 0;
  for (const auto& [key, region] : unknown_keys) {
    WriteOptions options;
    options.idempotency_key = key;
    auto retry = client.Increment("counter", {{"n", 1}}, options);
    ASSERT_TRUE(retry.ok()) << retry.status().ToString();
    EXPECT_EQ(retry->region, region);
    resolved += 1;
  }
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;
  for (const std::string& region : cluster.regions()) {
    EXPECT_EQ(CounterValue(cluster, region, "counter"), acknowledged.load() + resolved)
        << region << ": every acknowledged or resolved increment exactly once";
  }
  EXPECT_EQ(stale_reads.load(), 0);
  EXPECT_GT(good_reads.load(), 0);
  std::printf("acknowledged %lld (us %d, eu %d, asia %d), unknown then resolved %lld\n",
              static_cast<long long>(acknowledged.load()), acks_by_region["us"],
              acks_by_region["eu"], acks_by_region["asia"], static_cast<long long>(resolved));
}

TEST(ClientFailover, RetriedWriteIsAppliedOnceAcrossANodeRestart) {
  Cluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  auto client = Client::Create(OptionsFor(cluster, "eu"));
  ASSERT_TRUE(client.ok());
  WriteOptions options;
  options.idempotency_key = "payment-7";
  auto first = (*client)->Increment("acct", {{"n", 5}}, options);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(first->replayed);
  cluster.node("eu").Kill();
  ASSERT_TRUE(cluster.node("eu").Start()) << cluster.node("eu").log();
  auto again = (*client)->Increment("acct", {{"n", 5}}, options);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->region, "eu");
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->event, first->event);
  auto other = (*client)->Increment("acct", {{"n", 6}}, options);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kIdempotencyKeyReused);
  EXPECT_EQ(CounterValue(cluster, "eu", "acct"), 5);
}

TEST(ClientFailover, SessionCarriesAcrossClients) {
  Cluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  auto writer = Client::Create(OptionsFor(cluster, "us"));
  auto reader = Client::Create(OptionsFor(cluster, "asia"));
  ASSERT_TRUE(writer.ok() && reader.ok());
  ASSERT_TRUE((*writer)->Put("profile", R"({"name":"ada"})").ok());
  ASSERT_TRUE((*reader)->set_session((*writer)->session()).ok());
  auto read = (*reader)->Get("profile");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->region, "asia");
  EXPECT_EQ(read->doc, R"({"name":"ada"})");
  EXPECT_FALSE((*reader)->set_session("not a token!").ok());
}

// A watch whose region dies resumes in another region after exactly what it delivered: every
// change once, in per-origin order, none missed.
TEST(ClientFailover, WatchMovesToAnotherRegionWithoutGapsOrRepeats) {
  Cluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  auto watching = Client::Create(OptionsFor(cluster, "us"));
  ASSERT_TRUE(watching.ok());
  std::mutex mutex;
  std::vector<std::string> delivered;
  std::set<std::string> expected;
  std::atomic<bool> stop{false};
  Status watch_status;
  std::string last_seen;
  // The watch starts after a first write of each region (outside its prefix): every later write
  // must reach it. ("From now" would race with the writes below.)
  std::string since;
  for (const std::string& region : cluster.regions()) {
    auto response = cluster.Client(region).Send("PUT", "/v1/docs/before", "{}");
    ASSERT_EQ(response.status, 200) << response.body;
    since += (since.empty() ? "" : ",") + json::parse(response.body)["event"].get<std::string>();
  }
  std::thread watcher([&] {
    watch_status = (*watching)->Watch(
        "w/", since,
        [&](const WatchChange& change) {
          std::lock_guard lock(mutex);
          delivered.push_back(change.event);
          return true;
        },
        [&] { return stop.load(); }, &last_seen);
  });
  StopAndJoin stop_watcher(&stop, &watcher);
  // Writes in every region; `us` (where the watch is) dies halfway and comes back at the end.
  auto write = [&](const std::string& region, int i) {
    auto response = cluster.Client(region).Send(
        "PUT", "/v1/docs/w%2F" + region + "%2F" + std::to_string(i), json{{"i", i}}.dump());
    if (response.status == 200) {
      std::lock_guard lock(mutex);
      expected.insert(json::parse(response.body)["event"].get<std::string>());
    }
  };
  for (int i = 0; i < 40; ++i) {
    for (const std::string& region : cluster.regions()) write(region, i);
  }
  cluster.node("us").Kill();
  for (int i = 40; i < 80; ++i) {
    write("eu", i);
    write("asia", i);
  }
  ASSERT_TRUE(cluster.node("us").Start()) << cluster.node("us").log();
  for (int i = 80; i < 90; ++i) {
    for (const std::string& region : cluster.regions()) write(region, i);
  }
  const auto deadline = Clock::now() + seconds(30);
  auto all_seen = [&] {
    std::lock_guard lock(mutex);
    std::set<std::string> seen(delivered.begin(), delivered.end());
    return std::includes(seen.begin(), seen.end(), expected.begin(), expected.end());
  };
  while (!all_seen() && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
  stop = true;
  watcher.join();
  EXPECT_TRUE(watch_status.ok()) << watch_status.ToString();
  std::string missing;
  for (const std::string& event : expected) {
    if (std::find(delivered.begin(), delivered.end(), event) == delivered.end()) {
      missing += " " + event;
    }
  }
  EXPECT_TRUE(all_seen()) << delivered.size() << " delivered of " << expected.size()
                          << "; missing:" << missing;
  std::set<std::string> unique(delivered.begin(), delivered.end());
  EXPECT_EQ(unique.size(), delivered.size()) << "a change was delivered twice";
  std::map<std::string, uint64_t> last;  // per origin
  for (const std::string& event : delivered) {
    const size_t colon = event.find(':');
    const std::string origin = event.substr(0, colon);
    const uint64_t seq = std::stoull(event.substr(colon + 1));
    EXPECT_GT(seq, last[origin]) << event << " out of order";
    last[origin] = seq;
  }
  EXPECT_GE(expected.size(), 200u);
  EXPECT_FALSE(last_seen.empty());
}

// Transactions and bounded counters through the library, and what their refusals map to: a
// decrement past this region's rights is kBoundExceeded, a set of a bounded field kBoundedField
// (both 409 over HTTP), a condition that does not hold kPreconditionFailed.
TEST(ClientCalls, TransactionsBoundsAndTheirRefusals) {
  Cluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  auto client = Client::Create(OptionsFor(cluster, "us"));
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  Client& c = **client;
  ASSERT_TRUE(c.Put("item", R"({"stock":2})").ok());
  auto declared = c.DeclareBound("item", "stock", 0);
  ASSERT_TRUE(declared.ok()) << declared.status().ToString();
  auto bounds = c.BoundsJson("item");
  ASSERT_TRUE(bounds.ok()) << bounds.status().ToString();
  EXPECT_NE(bounds->find("\"min\":0"), std::string::npos) << *bounds;
  auto past = c.Increment("item", {{"stock", -1000}});
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.status().code(), StatusCode::kBoundExceeded) << past.status().ToString();
  EXPECT_EQ(c.last_error().code, "bound_exceeded");
  auto set = c.Put("item", R"({"stock":5})");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), StatusCode::kBoundedField) << set.status().ToString();

  auto txn = c.Transaction(
      R"({"if":[{"key":"cart","exists":false}],"then":[{"op":"put","key":"cart","doc":{"n":1}},)"
      R"({"op":"put","key":"order","doc":{"n":1}}],"else":[]})");
  ASSERT_TRUE(txn.ok()) << txn.status().ToString();
  EXPECT_TRUE(txn->succeeded);
  ASSERT_EQ(txn->events.size(), 2u);
  EXPECT_EQ(txn->event, txn->events.back());
  auto again = c.Transaction(
      R"({"if":[{"key":"cart","exists":false}],"then":[{"op":"put","key":"cart","doc":{"n":2}}]})");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_FALSE(again->succeeded);
  EXPECT_TRUE(again->events.empty());
  WriteOptions conditional;
  conditional.if_none_match = true;
  auto created = c.Put("cart", "{}", conditional);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), StatusCode::kPreconditionFailed);
}

TEST(ClientOptions, RegionEndpointsAreNameEqualsHostPort) {
  auto us = ParseRegionEndpoint("us=127.0.0.1:7001");
  ASSERT_TRUE(us.ok()) << us.status().ToString();
  EXPECT_EQ(us->name, "us");
  EXPECT_EQ(us->host, "127.0.0.1");
  EXPECT_EQ(us->port, 7001);
  auto v6 = ParseRegionEndpoint("eu=[::1]:7002");
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_FALSE(ParseRegionEndpoint("us=localhost:7001").ok());  // names are not resolved
  EXPECT_FALSE(ParseRegionEndpoint("=127.0.0.1:7001").ok());
  EXPECT_FALSE(ParseRegionEndpoint("us=127.0.0.1").ok());
  EXPECT_FALSE(ParseRegionEndpoint("us=127.0.0.1:0").ok());
  EXPECT_FALSE(ParseRegionEndpoint("us=127.0.0.1:70000").ok());
}

// The CLI: every command once, text and --json.
TEST(Cli, EveryCommand) {
  Cluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  std::string regions = "--regions ";
  for (const std::string& region : cluster.regions()) {
    regions += region + "=127.0.0.1:" + std::to_string(cluster.node(region).http_port()) + ",";
  }
  regions.pop_back();
  const std::string common = regions + " --prefer eu";
  int code = 0;
  std::string out = RunCli("put item:1 '{\"price\":3,\"stock\":10}' --json " + common, &code);
  ASSERT_EQ(code, 0) << out;
  json receipt = json::parse(out);
  EXPECT_EQ(receipt["region"], "eu");
  EXPECT_TRUE(receipt["event"].get<std::string>().starts_with("eu:"));
  const std::string session = receipt["session"];

  out = RunCli("incr item:1 stock=-3 --idempotency-key k1 --json " + common, &code);
  ASSERT_EQ(code, 0) << out;
  out = RunCli("incr item:1 stock=-3 --idempotency-key k1 --json " + common, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(json::parse(out)["replayed"].get<bool>());
  out = RunCli("patch item:1 '{\"price\":4}' " + common, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find(" in eu"), std::string::npos) << out;

  out = RunCli("get item:1 --json --prefer asia --session " + session + " " + regions, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(json::parse(out).contains("price")) << "asia covers the session: the put at least";
  out = RunCli("get item:1 " + common, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(json::parse(out), json::parse(R"({"price":4,"stock":7})"));

  out = RunCli("put item:2 '{\"a\":1}' " + common, &code);
  ASSERT_EQ(code, 0) << out;
  out = RunCli("scan item: --limit 1 --all --json " + common, &code);
  ASSERT_EQ(code, 0) << out;
  json scan = json::parse(out);
  ASSERT_EQ(scan["items"].size(), 2u);
  EXPECT_EQ(scan["items"][1]["key"], "item:2");
  out = RunCli("scan item: " + common, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("item:2\t{\"a\":1}"), std::string::npos) << out;

  out = RunCli("del item:2 " + common, &code);
  ASSERT_EQ(code, 0) << out;
  out = RunCli("get item:2 " + common, &code);
  EXPECT_EQ(code, 3) << out;

  out = RunCli(
      "watch item: --since " + receipt["event"].get<std::string>() + " --count 2 --json " + common,
      &code);
  ASSERT_EQ(code, 0) << out;
  std::vector<json> changes;
  size_t start = 0;
  for (size_t end; (end = out.find('\n', start)) != std::string::npos; start = end + 1) {
    changes.push_back(json::parse(out.substr(start, end - start)));
  }
  ASSERT_EQ(changes.size(), 2u) << out;
  EXPECT_EQ(changes[0]["key"], "item:1");
  EXPECT_EQ(changes[0]["doc"]["stock"], 7);  // the increment after the put

  out = RunCli("status --json --region asia " + regions, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(json::parse(out)["region"], "asia");
  out = RunCli("status " + common, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("region     eu"), std::string::npos) << out;
  EXPECT_NE(out.find("peer       us connected, lag "), std::string::npos) << out;
  EXPECT_NE(out.find("peer       asia connected, lag "), std::string::npos) << out;
  out = RunCli("conflicts --json " + common, &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(json::parse(out).contains("conflicts"));

  // Bad input: clear errors, distinct exit codes.
  out = RunCli("put item:3 'not json' " + common, &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("JSON object"), std::string::npos) << out;
  out = RunCli("incr item:1 stock=abc " + common, &code);
  EXPECT_EQ(code, 1);
  out = RunCli("get item:1 --regions nonsense", &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("NAME=HOST:PORT"), std::string::npos) << out;
  out = RunCli("get item:1", &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("no regions"), std::string::npos) << out;
}

// `meridian token`: a new secret file (owner-only, never overwritten), and tokens signed with it
// that verify with their claims; a short or missing secret is refused.
TEST(Cli, TokenCreatesASecretAndSignsTokensWithIt) {
  TempDir dir;
  const std::string secret_path = dir.path() + "/jwt.key";
  int code = 0;
  std::string out = RunCli("token --new-secret " + secret_path, &code);
  ASSERT_EQ(code, 0) << out;
  struct stat info {};
  ASSERT_EQ(::stat(secret_path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  out = RunCli("token --new-secret " + secret_path, &code);
  EXPECT_EQ(code, 2) << out;  // never overwritten

  out = RunCli("token --secret-file " + secret_path +
                   " --read orders/ --read carts/ --write carts/ --admin --ttl-s 600",
               &code);
  ASSERT_EQ(code, 0) << out;
  std::ifstream file(secret_path);
  std::stringstream secret;
  secret << file.rdbuf();
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  while (!out.empty() && out.back() == '\n') out.pop_back();
  auto claims = auth::VerifyToken(out, *auth::SecretFromFile(secret.str()), now);
  ASSERT_TRUE(claims.ok()) << claims.status().ToString() << " " << out;
  EXPECT_EQ(claims->read, (std::vector<std::string>{"orders/", "carts/"}));
  EXPECT_EQ(claims->write, std::vector<std::string>{"carts/"});
  EXPECT_TRUE(claims->admin);
  EXPECT_GT(claims->exp, now + 500);
  EXPECT_LE(claims->exp, now + 601);

  const std::string short_path = dir.path() + "/short.key";
  std::ofstream(short_path) << "too short\n";
  out = RunCli("token --secret-file " + short_path, &code);
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("at least 32"), std::string::npos) << out;
  out = RunCli("token --secret-file " + dir.path() + "/missing.key", &code);
  EXPECT_EQ(code, 2) << out;
}

TEST(Cli, AllRegionsDownFailsWithinTheBudget) {
  const std::string regions = "--regions us=127.0.0.1:" + std::to_string(FreePort()) +
                              ",eu=127.0.0.1:" + std::to_string(FreePort());
  int code = 0;
  std::string out = RunCli("put k '{}' --timeout-ms 500 --json " + regions, &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_EQ(json::parse(out)["error"], "unavailable") << out;
  EXPECT_NE(json::parse(out)["message"].get<std::string>().find("within 500 ms"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace meridian::testing
