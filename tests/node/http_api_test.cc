// Integration tests of the public HTTP API (/work/shared/API.md) against a real `meridian start`
// process on loopback: every endpoint, every error code, and the promise that a rejected request
// changes nothing and never takes the node down.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "api/session_token.h"
#include "core/version_vector.h"
#include "support/http_client.h"
#include "support/node_fixture.h"
#include "support/node_process.h"

namespace {

using meridian::testing::EncodeKey;
using meridian::testing::HttpClient;
using meridian::testing::HttpResponse;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// NodeProcess gives its own region id 1 and the peers "eu" and "asia" ids 2 and 3.
constexpr uint32_t kUsId = 1;
constexpr uint32_t kEuId = 2;

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string DocPath(const std::string& key) {
  return "/v1/docs/" + EncodeKey(key);
}

int64_t ElapsedMs(Clock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - since).count();
}

std::string Describe(const HttpResponse& response) {
  std::string out =
      "HTTP " + std::to_string(response.status) + " body '" + response.body.substr(0, 400) + "'";
  if (!response.error.empty()) out += " error '" + response.error + "'";
  return out;
}

// The session token format (docs/formats.md), from the project's own encoder.
std::string SessionToken(const meridian::core::VersionVector& vv) {
  return meridian::api::EncodeSessionToken(vv);
}

// An error answer: the status, a JSON body {"error": code, "message": non-empty sentence}.
::testing::AssertionResult IsError(const HttpResponse& response, int status,
                                   const std::string& code) {
  if (response.status != status) {
    return ::testing::AssertionFailure()
           << "expected " << status << " " << code << ", got " << Describe(response);
  }
  if (response.Header("content-type").rfind("application/json", 0) != 0) {
    return ::testing::AssertionFailure()
           << "error answer with content-type '" << response.Header("content-type")
           << "': " << Describe(response);
  }
  const json body = Parse(response.body);
  if (!body.is_object() || !body.contains("error") || !body["error"].is_string() ||
      !body.contains("message") || !body["message"].is_string() ||
      body["message"].get<std::string>().empty()) {
    return ::testing::AssertionFailure()
           << "error body is not {\"error\":..., \"message\":...}: " << Describe(response);
  }
  if (body["error"] != code) {
    return ::testing::AssertionFailure()
           << "expected error code '" << code << "', got " << Describe(response);
  }
  return ::testing::AssertionSuccess();
}

struct Receipt {
  uint64_t seq = 0;                   // N of "us:N"
  std::pair<uint64_t, uint64_t> hlc;  // physical ms, logical
  std::string session;
};

bool ParseHlc(const std::string& text, std::pair<uint64_t, uint64_t>* out) {
  static const std::regex kHlc(R"(^([0-9]+)\.([0-9]+)$)");
  std::smatch match;
  if (!std::regex_match(text, match, kHlc)) return false;
  *out = {std::stoull(match[1]), std::stoull(match[2])};
  return true;
}

// A write receipt: 200, {"event":"us:N","hlc":"<ms>.<logical>","session":"<token>"}, the same
// token in the Meridian-Session header.
::testing::AssertionResult IsReceipt(const HttpResponse& response, Receipt* out = nullptr) {
  if (response.status != 200)
    return ::testing::AssertionFailure() << "expected a receipt, got " << Describe(response);
  if (response.Header("content-type").rfind("application/json", 0) != 0) {
    return ::testing::AssertionFailure()
           << "receipt content-type '" << response.Header("content-type") << "'";
  }
  const json body = Parse(response.body);
  if (!body.is_object() || !body.contains("event") || !body["event"].is_string() ||
      !body.contains("hlc") || !body["hlc"].is_string() || !body.contains("session") ||
      !body["session"].is_string()) {
    return ::testing::AssertionFailure() << "not a receipt: " << Describe(response);
  }
  static const std::regex kEvent(R"(^us:([1-9][0-9]*)$)");
  static const std::regex kToken(R"(^[A-Za-z0-9_-]+$)");
  const std::string event = body["event"];
  const std::string session = body["session"];
  std::smatch match;
  if (!std::regex_match(event, match, kEvent))
    return ::testing::AssertionFailure() << "event id '" << event << "'";
  Receipt receipt;
  receipt.seq = std::stoull(match[1]);
  if (!ParseHlc(body["hlc"], &receipt.hlc))
    return ::testing::AssertionFailure() << "hlc " << body["hlc"];
  if (!std::regex_match(session, kToken))
    return ::testing::AssertionFailure() << "session token '" << session << "'";
  if (response.Header("meridian-session") != session) {
    return ::testing::AssertionFailure()
           << "Meridian-Session header '" << response.Header("meridian-session")
           << "' differs from the receipt's session '" << session << "'";
  }
  receipt.session = session;
  if (out != nullptr) *out = receipt;
  return ::testing::AssertionSuccess();
}

// Prometheus text format: "name{labels} value" -> value.
std::map<std::string, double> ParseMetrics(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

// What a rejected request must leave as it was.
struct Observed {
  json frontier;
  json digest;
  json documents;
};

class HttpApiTest : public meridian::testing::NodeFixture {
 protected:
  HttpResponse Put(const std::string& key, const std::string& body, const std::string& query = "") {
    return client_->Send("PUT", DocPath(key) + query, body);
  }
  HttpResponse Patch(const std::string& key, const std::string& body,
                     const std::string& query = "") {
    return client_->Send("PATCH", DocPath(key) + query, body);
  }
  HttpResponse Incr(const std::string& key, const std::string& body,
                    const std::string& query = "") {
    return client_->Send("POST", DocPath(key) + "/incr" + query, body);
  }
  HttpResponse Delete(const std::string& key, const std::string& query = "") {
    return client_->Request("DELETE", DocPath(key) + query);
  }
  HttpResponse Get(const std::string& key) { return client_->Get(DocPath(key)); }

  json Status() {
    const HttpResponse response = client_->Get("/v1/status");
    EXPECT_EQ(response.status, 200) << Describe(response);
    const json body = Parse(response.body);
    EXPECT_TRUE(body.is_object()) << Describe(response);
    return body.is_object() ? body : json::object();
  }

  uint64_t Frontier() {
    const json status = Status();
    return status["frontier"].contains("us") ? status["frontier"]["us"].get<uint64_t>() : 0;
  }

  Observed Observe() {
    json status = Status();
    return Observed{status["frontier"], status["digest"], status["documents"]};
  }

  // Nothing changed since `before`, and the node still answers a new connection.
  void ExpectUnchanged(const Observed& before) {
    const Observed now = Observe();
    EXPECT_EQ(now.frontier, before.frontier) << "a rejected request changed the frontier";
    EXPECT_EQ(now.digest, before.digest) << "a rejected request changed the data";
    EXPECT_EQ(now.documents, before.documents) << "a rejected request changed the document count";
    HttpClient fresh = node_->Client(std::chrono::seconds(5));
    EXPECT_EQ(fresh.Get("/healthz").status, 200) << "the node does not answer a new connection";
  }

  // `response` is the error (status, code) and the node is as before.
  void ExpectRejected(const HttpResponse& response, int status, const std::string& code,
                      const Observed& before, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_TRUE(IsError(response, status, code));
    ExpectUnchanged(before);
  }
};

// ---- Writes and reads --------------------------------------------------------------------------

TEST_F(HttpApiTest, PutReplacesTheDocumentAndGetReturnsIt) {
  Receipt first;
  ASSERT_TRUE(IsReceipt(Put("user:1", R"({"b": 1, "a": "x", "nested": {"z": [1, 2], "y": null}})"),
                        &first));
  EXPECT_EQ(first.seq, 1u);
  HttpResponse got = Get("user:1");
  ASSERT_EQ(got.status, 200) << Describe(got);
  EXPECT_EQ(got.Header("content-type").rfind("application/json", 0), 0u);
  EXPECT_EQ(got.body, R"({"a":"x","b":1,"nested":{"y":null,"z":[1,2]}})")
      << "documents render as canonical JSON";

  Receipt second;
  ASSERT_TRUE(IsReceipt(Put("user:1", R"({"c": 3})"), &second));
  EXPECT_EQ(second.seq, first.seq + 1);
  EXPECT_EQ(Get("user:1").body, R"({"c":3})") << "PUT removes the fields it does not name";

  ASSERT_TRUE(IsReceipt(Put("user:1", "{}")));
  got = Get("user:1");
  EXPECT_EQ(got.status, 200) << "PUT {} leaves the document present";
  EXPECT_EQ(got.body, "{}");

  const json status = Status();
  EXPECT_EQ(status["frontier"], json({{"us", 3}}));
  EXPECT_EQ(status["documents"], 1);
}

TEST_F(HttpApiTest, PatchSetsFieldsAndKeepsTheOthers) {
  ASSERT_TRUE(IsReceipt(Patch("p", R"({"a": 1})")));
  EXPECT_EQ(Get("p").body, R"({"a":1})") << "PATCH of a missing document creates it";
  ASSERT_TRUE(IsReceipt(Patch("p", R"({"b": "two"})")));
  EXPECT_EQ(Get("p").body, R"({"a":1,"b":"two"})");
  ASSERT_TRUE(IsReceipt(Patch("p", R"({"a": null})")));
  EXPECT_EQ(Get("p").body, R"({"a":null,"b":"two"})") << "a field set to null holds null";
  ASSERT_TRUE(IsReceipt(Patch("empty", "{}")));
  const HttpResponse empty = Get("empty");
  EXPECT_EQ(empty.status, 200) << "PATCH {} makes a missing document exist";
  EXPECT_EQ(empty.body, "{}");
  EXPECT_EQ(Status()["documents"], 2);
}

TEST_F(HttpApiTest, IncrementAddsToCounters) {
  ASSERT_TRUE(IsReceipt(Incr("c", R"({"n": 5})")));
  EXPECT_EQ(Get("c").body, R"({"n":5})") << "an increment of a missing document creates it from 0";
  ASSERT_TRUE(IsReceipt(Incr("c", R"({"n": -7, "m": 3})")));
  EXPECT_EQ(Get("c").body, R"({"m":3,"n":-2})");
  ASSERT_TRUE(IsReceipt(Incr("c", R"({"n": 9223372036854775807})")));
  EXPECT_EQ(Get("c").body, R"({"m":3,"n":9223372036854775805})") << "integers stay exact";
  ASSERT_TRUE(IsReceipt(Incr("c", R"({"n": -9223372036854775808})")));
  EXPECT_EQ(Get("c").body, R"({"m":3,"n":-3})");

  ASSERT_TRUE(IsReceipt(Put("g", R"({"x": 10, "keep": "yes"})")));
  ASSERT_TRUE(IsReceipt(Incr("g", R"({"x": 1})")));
  EXPECT_EQ(Get("g").body, R"({"keep":"yes","x":11})")
      << "an increment adds to a PUT value and keeps other fields";

  ASSERT_TRUE(IsReceipt(Put("f", R"({"x": 1.5})")));
  ASSERT_TRUE(IsReceipt(Incr("f", R"({"x": 2})")));
  EXPECT_EQ(Parse(Get("f").body), Parse(R"({"x":3.5})"));
}

TEST_F(HttpApiTest, IdempotencyKeyAnswersARetryWithTheOriginalReceipt) {
  auto incr = [&](const std::string& body, const std::string& key) {
    return client_->Request("POST", DocPath("c") + "/incr", body,
                            {{"Content-Type", "application/json"}, {"Idempotency-Key", key}});
  };
  const HttpResponse first = incr(R"({"n": 5})", "pay-7");
  ASSERT_TRUE(IsReceipt(first)) << Describe(first);
  EXPECT_FALSE(Parse(first.body).contains("replayed"));
  EXPECT_EQ(first.Header("idempotent-replayed"), "");
  const HttpResponse retry = incr(R"({"n": 5})", "pay-7");
  ASSERT_TRUE(IsReceipt(retry)) << Describe(retry);
  EXPECT_EQ(Parse(retry.body)["event"], Parse(first.body)["event"]);
  EXPECT_EQ(Parse(retry.body)["session"], Parse(first.body)["session"]);
  EXPECT_EQ(Parse(retry.body)["replayed"], true);
  EXPECT_EQ(retry.Header("idempotent-replayed"), "true");
  EXPECT_EQ(Get("c").body, R"({"n":5})") << "applied once";
  EXPECT_TRUE(Status()["idempotency_records"].is_number_unsigned());
  EXPECT_NE(client_->Get("/metrics").body.find("meridian_idempotency_records"), std::string::npos);

  const Observed before = Observe();
  ExpectRejected(incr(R"({"n": 6})", "pay-7"), 422, "idempotency_key_reused", before,
                 "the same key with another request");
  ExpectRejected(incr(R"({"n": 6})", "has space"), 400, "bad_header", before,
                 "a key that is not visible ASCII");
  ExpectRejected(incr(R"({"n": 6})", std::string(256, 'k')), 400, "bad_header", before,
                 "a key over 255 bytes");

  // Durable: a restarted node still answers the retry with the original receipt.
  ASSERT_EQ(node_->Terminate(), 0);
  ASSERT_TRUE(node_->Start()) << node_->log();
  client_.emplace(node_->Client());
  const HttpResponse after_restart = incr(R"({"n": 5})", "pay-7");
  ASSERT_TRUE(IsReceipt(after_restart)) << Describe(after_restart);
  EXPECT_EQ(Parse(after_restart.body)["event"], Parse(first.body)["event"]);
  EXPECT_EQ(Get("c").body, R"({"n":5})");
}

TEST_F(HttpApiTest, DeleteRemovesTheDocument) {
  ASSERT_TRUE(IsReceipt(Put("d", R"({"a": 1, "b": 2})")));
  ASSERT_TRUE(IsReceipt(Put("other", R"({"o": 1})")));
  EXPECT_EQ(Status()["documents"], 2);
  Receipt deleted;
  ASSERT_TRUE(IsReceipt(Delete("d"), &deleted));
  EXPECT_EQ(deleted.seq, 3u);
  EXPECT_TRUE(IsError(Get("d"), 404, "not_found"));
  EXPECT_EQ(Status()["documents"], 1);
  const json scan = Parse(client().Get("/v1/docs").body);
  ASSERT_TRUE(scan.is_object());
  ASSERT_EQ(scan["items"].size(), 1u) << scan.dump();
  EXPECT_EQ(scan["items"][0]["key"], "other");

  ASSERT_TRUE(IsReceipt(Delete("never-existed")))
      << "deleting a missing document is a write like any other";
  EXPECT_TRUE(IsError(Get("never-existed"), 404, "not_found"));

  ASSERT_TRUE(IsReceipt(Patch("d", R"({"c": 3})")));
  EXPECT_EQ(Get("d").body, R"({"c":3})") << "a write after a delete holds only what it sets";
  EXPECT_EQ(Get("other").body, R"({"o":1})");
}

TEST_F(HttpApiTest, ReceiptsNameConsecutiveEventsWithRisingClocksAndSessions) {
  std::vector<Receipt> receipts(4);
  ASSERT_TRUE(IsReceipt(Put("r", R"({"a": 1})"), &receipts[0]));
  ASSERT_TRUE(IsReceipt(Patch("r", R"({"b": 1})"), &receipts[1]));
  ASSERT_TRUE(IsReceipt(Incr("r", R"({"c": 1})"), &receipts[2]));
  ASSERT_TRUE(IsReceipt(Delete("r"), &receipts[3]));
  for (size_t i = 0; i < receipts.size(); ++i) {
    EXPECT_EQ(receipts[i].seq, i + 1) << "events of a fresh region are us:1, us:2, ...";
    EXPECT_EQ(receipts[i].session, SessionToken(meridian::core::VersionVector{{kUsId, i + 1}}))
        << "the session token covers exactly what the region had applied after the write";
    if (i > 0) {
      EXPECT_GT(receipts[i].hlc, receipts[i - 1].hlc) << "HLCs of successive writes rise";
    }
  }
  const json status = Status();
  EXPECT_EQ(status["frontier"], json({{"us", 4}}));
  EXPECT_EQ(status["session"], receipts.back().session);
  std::pair<uint64_t, uint64_t> status_hlc;
  ASSERT_TRUE(ParseHlc(status["hlc"], &status_hlc)) << status.dump();
  EXPECT_GE(status_hlc, receipts.back().hlc);
}

TEST_F(HttpApiTest, ConcurrentWritesGetDistinctContiguousEvents) {
  constexpr int kThreads = 4;
  constexpr int kWrites = 25;
  std::vector<std::vector<uint64_t>> seqs(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client = node_->Client();
      for (int i = 0; i < kWrites; ++i) {
        const std::string key = "conc/" + std::to_string(i % 5);
        HttpResponse response =
            i % 2 == 0 ? client.Send("POST", DocPath(key) + "/incr", R"({"n": 1})")
                       : client.Send("PATCH", DocPath(key),
                                     "{\"t" + std::to_string(t) + "\": " + std::to_string(i) + "}");
        Receipt receipt;
        if (!IsReceipt(response, &receipt)) {
          ++failures;
          continue;
        }
        seqs[t].push_back(receipt.seq);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);
  std::vector<uint64_t> all;
  for (const auto& mine : seqs) {
    EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end())) << "one client's writes are ordered";
    all.insert(all.end(), mine.begin(), mine.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<uint64_t> expected(kThreads * kWrites);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = i + 1;
  EXPECT_EQ(all, expected) << "every acknowledged write has its own event, without gaps";
  EXPECT_EQ(Frontier(), static_cast<uint64_t>(kThreads * kWrites));
  int64_t total = 0;
  for (int k = 0; k < 5; ++k) {
    const json doc = Parse(Get("conc/" + std::to_string(k)).body);
    ASSERT_TRUE(doc.is_object());
    total += doc.value("n", 0);
  }
  EXPECT_EQ(total, kThreads * ((kWrites + 1) / 2)) << "no increment lost";
}

TEST_F(HttpApiTest, KeysArePercentDecodedAndRoundTrip) {
  const std::vector<std::string> keys = {"a/b",
                                         "with space",
                                         "q?x=1&y#z",
                                         "\xc3\xbcn\xc3\xaf\xc2\xa9\xc3\xb8"
                                         "d\xc3\xa9",
                                         "100%",
                                         "+plus",
                                         "\xe2\x82\xac/\xf0\x9f\x98\x80",
                                         std::string("nul\0byte", 8)};
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(IsReceipt(Put(keys[i], "{\"i\": " + std::to_string(i) + "}"))) << keys[i];
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const HttpResponse got = Get(keys[i]);
    EXPECT_EQ(got.status, 200) << keys[i] << ": " << Describe(got);
    EXPECT_EQ(got.body, "{\"i\":" + std::to_string(i) + "}") << keys[i];
  }
  EXPECT_EQ(client().Get("/v1/docs/a%2fb").body, R"({"i":0})") << "escapes are case-insensitive";
  EXPECT_EQ(client().Get("/v1/docs/+plus").body, R"({"i":5})")
      << "'+' in a path is a plus, not a space";
  EXPECT_EQ(client().Get("/v1/docs/with%20space").body, R"({"i":1})");

  const json scan = Parse(client().Get("/v1/docs?limit=100").body);
  ASSERT_TRUE(scan.is_object());
  std::vector<std::string> listed;
  for (const json& item : scan["items"]) listed.push_back(item["key"]);
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(listed, sorted) << "the scan lists decoded keys in byte order";
}

TEST_F(HttpApiTest, ScanPagesInKeyOrderWithLimitAfterAndNext) {
  for (const std::string key : {"s/c", "s/a", "s/e", "s/b", "s/d", "s", "r/x", "t/x", "s0"}) {
    ASSERT_TRUE(IsReceipt(Put(key, "{\"k\": \"" + key + "\"}")));
  }
  ASSERT_TRUE(IsReceipt(Delete("s/c")));
  auto scan = [&](const std::string& query) {
    const HttpResponse response = client().Get("/v1/docs?" + query);
    EXPECT_EQ(response.status, 200) << query << ": " << Describe(response);
    EXPECT_EQ(response.Header("content-type").rfind("application/json", 0), 0u);
    const json body = Parse(response.body);
    EXPECT_TRUE(body.is_object() && body.contains("items") && body["items"].is_array() &&
                body.contains("next"))
        << query << ": " << response.body;
    return body.is_object() ? body : json::object({{"items", json::array()}, {"next", nullptr}});
  };
  auto keys_of = [](const json& page) {
    std::vector<std::string> keys;
    for (const json& item : page["items"]) {
      EXPECT_EQ(item["doc"], json({{"k", item["key"]}})) << "each item carries its document";
      keys.push_back(item["key"]);
    }
    return keys;
  };
  using Keys = std::vector<std::string>;

  json page = scan("prefix=s%2F&limit=2");
  EXPECT_EQ(keys_of(page), (Keys{"s/a", "s/b"}));
  EXPECT_EQ(page["next"], "s/b");
  page = scan("prefix=s%2F&limit=2&after=s%2Fb");
  EXPECT_EQ(keys_of(page), (Keys{"s/d", "s/e"})) << "deleted documents are not listed";
  EXPECT_TRUE(page["next"].is_null())
      << "a page that reaches the end has next null: " << page.dump();
  page = scan("prefix=s%2F&limit=3&after=s%2Fa");
  EXPECT_EQ(keys_of(page), (Keys{"s/b", "s/d", "s/e"}));
  EXPECT_TRUE(page["next"].is_null());
  page = scan("prefix=s%2F&after=s%2Fbb");
  EXPECT_EQ(keys_of(page), (Keys{"s/d", "s/e"})) << "after need not be an existing key";
  page = scan("prefix=s%2F&after=a");
  EXPECT_EQ(keys_of(page), (Keys{"s/a", "s/b", "s/d", "s/e"}))
      << "after before the prefix starts at the prefix";
  page = scan("prefix=s");
  EXPECT_EQ(keys_of(page), (Keys{"s", "s/a", "s/b", "s/d", "s/e", "s0"}));
  page = scan("limit=100");
  EXPECT_EQ(keys_of(page), (Keys{"r/x", "s", "s/a", "s/b", "s/d", "s/e", "s0", "t/x"}));
  EXPECT_TRUE(page["next"].is_null());
  page = scan("prefix=zz");
  EXPECT_TRUE(page["items"].empty());
  EXPECT_TRUE(page["next"].is_null());

  // Following next visits every key exactly once.
  for (int i = 0; i < 25; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "page/%02d", i);
    ASSERT_TRUE(IsReceipt(Put(key, std::string("{\"k\": \"") + key + "\"}")));
  }
  Keys visited;
  std::string after;
  int pages = 0;
  for (; pages < 10; ++pages) {
    page = scan("prefix=page%2F&limit=7" +
                (after.empty() ? std::string() : "&after=" + EncodeKey(after)));
    const Keys keys = keys_of(page);
    visited.insert(visited.end(), keys.begin(), keys.end());
    if (page["next"].is_null()) break;
    EXPECT_EQ(page["next"], keys.back()) << "next is the last key of the page";
    after = page["next"];
  }
  EXPECT_EQ(pages, 3) << "25 keys in pages of 7 are 4 pages";
  ASSERT_EQ(visited.size(), 25u);
  for (int i = 0; i < 25; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "page/%02d", i);
    EXPECT_EQ(visited[i], key);
  }
}

TEST_F(HttpApiTest, ConflictsEndpointListsRecordsNewestFirst) {
  ASSERT_TRUE(IsReceipt(Put("x", R"({"a": 1})")));
  ASSERT_TRUE(IsReceipt(Put("x", R"({"a": 2})")));
  for (const std::string target :
       {"/v1/conflicts", "/v1/conflicts?limit=5", "/v1/conflicts?limit=1000"}) {
    const HttpResponse response = client().Get(target);
    ASSERT_EQ(response.status, 200) << target << ": " << Describe(response);
    EXPECT_EQ(response.Header("content-type").rfind("application/json", 0), 0u);
    const json body = Parse(response.body);
    ASSERT_TRUE(body.is_object()) << response.body;
    ASSERT_TRUE(body.contains("conflicts") && body["conflicts"].is_array()) << response.body;
    // One region's own writes have always seen each other: nothing to record.
    EXPECT_TRUE(body["conflicts"].empty()) << response.body;
    ASSERT_TRUE(body.contains("total") && body["total"].is_number_unsigned()) << response.body;
    EXPECT_EQ(body["total"], 0);
  }
  EXPECT_EQ(Status()["conflicts"], 0);
}

TEST_F(HttpApiTest, StatusReportsRegionFrontierDigestAndCounts) {
  json status = Status();
  EXPECT_EQ(status["region"], "us");
  EXPECT_EQ(status["id"], kUsId);
  EXPECT_EQ(status["frontier"], json::object()) << "a fresh region has applied nothing";
  EXPECT_EQ(status["documents"], 0);
  ASSERT_TRUE(status["digest"].is_string());
  EXPECT_TRUE(std::regex_match(status["digest"].get<std::string>(), std::regex("^[0-9a-f]{16}$")))
      << status.dump();
  const json empty_digest = status["digest"];
  for (const char* field : {"session", "hlc"}) EXPECT_TRUE(status[field].is_string()) << field;
  for (const char* field : {"conflicts", "dead_letters", "local_events", "commits",
                            "write_queue_depth", "watchers", "uptime_s", "clock_skew_events"}) {
    EXPECT_TRUE(status.contains(field) && status[field].is_number())
        << field << " in " << status.dump();
  }
  EXPECT_GE(status["uptime_s"].get<double>(), 0.0);
  EXPECT_EQ(status["change_log"],
            json({{"oldest_lsn", 1}, {"last_lsn", 0}, {"changes", 0}, {"oldest_event", nullptr}}));
  EXPECT_EQ(status["conflict_log"], json({{"oldest_seq", 1}, {"records", 0}}));
  ASSERT_TRUE(status["peers"].is_array());
  std::set<std::string> peers;
  for (const json& peer : status["peers"]) {
    peers.insert(peer["name"].get<std::string>());
    EXPECT_TRUE(peer.contains("connected") && peer["connected"].is_boolean()) << peer.dump();
    EXPECT_FALSE(peer["connected"].get<bool>()) << "the peers are not running: " << peer.dump();
    EXPECT_TRUE(peer.contains("lag_events")) << peer.dump();
    EXPECT_TRUE(peer.contains("lag_ms")) << peer.dump();
  }
  EXPECT_EQ(peers, (std::set<std::string>{"eu", "asia"}))
      << "every other configured region is a peer";

  ASSERT_TRUE(IsReceipt(Put("a", R"({"x": 1})")));
  const json digest_a1 = Status()["digest"];
  EXPECT_NE(digest_a1, empty_digest);
  ASSERT_TRUE(IsReceipt(Put("b", R"({"y": 1})")));
  status = Status();
  EXPECT_EQ(status["frontier"], json({{"us", 2}}));
  EXPECT_EQ(status["documents"], 2);
  EXPECT_EQ(status["local_events"], 2);
  EXPECT_GE(status["commits"].get<uint64_t>(), 1u);
  EXPECT_LE(status["commits"].get<uint64_t>(), 2u);
  EXPECT_NE(status["digest"], digest_a1);
  EXPECT_EQ(status["change_log"],
            json({{"oldest_lsn", 1}, {"last_lsn", 2}, {"changes", 2}, {"oldest_event", "us:1"}}));

  // The digest describes the data, not its history.
  ASSERT_TRUE(IsReceipt(Put("a", R"({"x": 2})")));
  ASSERT_TRUE(IsReceipt(Put("a", R"({"x": 1})")));
  ASSERT_TRUE(IsReceipt(Delete("b")));
  status = Status();
  EXPECT_EQ(status["digest"], digest_a1) << "same data, same digest";
  EXPECT_EQ(status["documents"], 1);
  ASSERT_TRUE(IsReceipt(Delete("a")));
  status = Status();
  EXPECT_EQ(status["digest"], empty_digest) << "no documents, the digest of an empty region";
  EXPECT_EQ(status["documents"], 0);
  EXPECT_EQ(status["frontier"], json({{"us", 6}}));
}

TEST_F(HttpApiTest, MetricsUseThePrometheusTextFormatAndTheDocumentedNames) {
  ASSERT_TRUE(IsReceipt(Put("m", R"({"a": 1})")));
  ASSERT_EQ(Get("m").status, 200);
  ASSERT_EQ(Get("missing").status, 404);
  const HttpResponse response = client().Get("/metrics");
  ASSERT_EQ(response.status, 200) << Describe(response);
  EXPECT_EQ(response.Header("content-type").rfind("text/plain", 0), 0u)
      << response.Header("content-type");
  const std::map<std::string, std::string> documented = {
      {"meridian_http_requests_total", "counter"},
      {"meridian_http_request_duration_seconds", "histogram"},
      {"meridian_write_batch_size", "histogram"},
      {"meridian_documents", "gauge"},
      {"meridian_conflicts_total", "counter"},
      {"meridian_local_events_total", "counter"},
      {"meridian_fsyncs_total", "counter"},
      {"meridian_dead_letters_total", "counter"},
      {"meridian_write_queue_depth", "gauge"},
      {"meridian_watchers", "gauge"},
      {"meridian_watch_overflows_total", "counter"},
      {"meridian_clock_skew_events_total", "counter"},
      {"meridian_http_connections", "gauge"},
      {"meridian_change_log_changes", "gauge"},
      {"meridian_change_log_oldest_lsn", "gauge"},
      {"meridian_conflict_log_records", "gauge"},
  };
  for (const auto& [name, type] : documented) {
    EXPECT_NE(response.body.find("# TYPE " + name + " " + type + "\n"), std::string::npos) << name;
  }
  const auto metrics = ParseMetrics(response.body);
  const json status = Status();
  EXPECT_EQ(metrics.at("meridian_documents"), status["documents"].get<double>());
  EXPECT_EQ(metrics.at("meridian_local_events_total"), 1.0);
  EXPECT_GE(metrics.at("meridian_fsyncs_total"), 1.0);
  EXPECT_GE(metrics.at("meridian_http_connections"), 1.0);
  EXPECT_EQ(metrics.at("meridian_change_log_changes"), 1.0);
  EXPECT_EQ(metrics.at("meridian_change_log_oldest_lsn"), 1.0);
  EXPECT_EQ(metrics.at("meridian_conflict_log_records"), 0.0);
  EXPECT_EQ(metrics.at(R"(meridian_http_requests_total{code="200",route="put_doc"})"), 1.0);
  EXPECT_EQ(metrics.at(R"(meridian_http_requests_total{code="200",route="get_doc"})"), 1.0);
  EXPECT_EQ(metrics.at(R"(meridian_http_requests_total{code="404",route="get_doc"})"), 1.0);
  EXPECT_EQ(metrics.at(R"(meridian_write_batch_size_count)"), 1.0);
  EXPECT_EQ(metrics.at(R"(meridian_http_request_duration_seconds_count{route="put_doc"})"), 1.0);
}

TEST_F(HttpApiTest, MetricsDoNotCountRejectedRequestsAsHealthChecks) {
  // Requests rejected while parsing have no route of their own; counting them as /healthz
  // answers makes a dashboard show health checks failing with 415, 400, 405.
  ASSERT_TRUE(IsError(client().Request("PUT", "/v1/docs/k", "{}", {{"Content-Type", "text/plain"}}),
                      415, "unsupported_media_type"));
  ASSERT_TRUE(IsError(client().Request("POST", "/v1/status"), 405, "method_not_allowed"));
  ASSERT_TRUE(IsError(client().Get("/nowhere"), 404, "not_found"));
  const HttpResponse response = client().Get("/metrics");
  ASSERT_EQ(response.status, 200);
  for (const auto& [series, value] : ParseMetrics(response.body)) {
    if (series.find("route=\"healthz\"") == std::string::npos) continue;
    if (series.rfind("meridian_http_requests_total", 0) != 0) continue;
    EXPECT_NE(series.find("code=\"200\""), std::string::npos)
        << "/healthz was never answered with anything but 200, yet the metrics say " << series
        << " " << value;
  }
}

TEST_F(HttpApiTest, HealthAndReadiness) {
  HttpResponse health = client().Get("/healthz");
  ASSERT_EQ(health.status, 200) << Describe(health);
  EXPECT_EQ(Parse(health.body), json({{"status", "alive"}}));
  HttpResponse ready = client().Get("/readyz");
  ASSERT_EQ(ready.status, 200) << Describe(ready);
  EXPECT_EQ(Parse(ready.body), json({{"ready", true}}));
}

// ---- Rejections: the error, and nothing changed
// --------------------------------------------------

TEST_F(HttpApiTest, MalformedJsonIsRejectedAndChangesNothing) {
  ASSERT_TRUE(IsReceipt(Put("doc", R"({"a": 1})")));
  const Observed before = Observe();
  const std::vector<std::string> bodies = {"",
                                           "{",
                                           "{\"a\":}",
                                           "{\"a\":1,}",
                                           "{'a':1}",
                                           "{\"a\":1} x",
                                           "nul",
                                           "{\"a\":NaN}",
                                           "{a:1}",
                                           "{\"a\":01}",
                                           "{\"a\":\"\\ud800\"}"};
  for (const std::string& body : bodies) {
    ExpectRejected(Put("doc", body), 400, "malformed_json", before, "PUT " + body);
    ExpectRejected(Patch("doc", body), 400, "malformed_json", before, "PATCH " + body);
    ExpectRejected(Incr("doc", body), 400, "malformed_json", before, "incr " + body);
  }
  EXPECT_EQ(Get("doc").body, R"({"a":1})");
}

TEST_F(HttpApiTest, BodyMustBeAJsonObject) {
  ASSERT_TRUE(IsReceipt(Put("doc", R"({"a": 1})")));
  const Observed before = Observe();
  for (const std::string body : {"[1,2]", "[]", "42", "\"text\"", "null", "true"}) {
    ExpectRejected(Put("doc", body), 400, "malformed_json", before, "PUT " + body);
    ExpectRejected(Patch("doc", body), 400, "malformed_json", before, "PATCH " + body);
    ExpectRejected(Incr("doc", body), 400, "malformed_json", before, "incr " + body);
    ExpectRejected(Put("new", body), 400, "malformed_json", before, "PUT new " + body);
  }
  EXPECT_EQ(Get("doc").body, R"({"a":1})");
  EXPECT_TRUE(IsError(Get("new"), 404, "not_found"));
}

TEST_F(HttpApiTest, WrongContentTypeIs415) {
  ASSERT_TRUE(IsReceipt(Put("doc", R"({"a": 1})")));
  const Observed before = Observe();
  for (const std::string type :
       {"text/plain", "application/x-www-form-urlencoded", "application/xml", "text/json",
        "application/jsonx", "multipart/form-data; boundary=x"}) {
    for (const auto& [method, suffix] : std::vector<std::pair<std::string, std::string>>{
             {"PUT", ""}, {"PATCH", ""}, {"POST", "/incr"}}) {
      ExpectRejected(client().Request(method, "/v1/docs/doc" + suffix, R"({"a": 2})",
                                      {{"Content-Type", type}}),
                     415, "unsupported_media_type", before, method + " as " + type);
    }
  }
  EXPECT_EQ(Get("doc").body, R"({"a":1})");
  // JSON with parameters or in capitals is JSON.
  EXPECT_TRUE(IsReceipt(client().Request("PATCH", "/v1/docs/doc", R"({"b": 2})",
                                         {{"Content-Type", "application/json; charset=utf-8"}})));
  EXPECT_TRUE(IsReceipt(client().Request("PATCH", "/v1/docs/doc", R"({"c": 3})",
                                         {{"Content-Type", "Application/JSON"}})));
  EXPECT_EQ(Get("doc").body, R"({"a":1,"b":2,"c":3})");
}

TEST_F(HttpApiTest, IncrementRejectsNonIntegerAndOutOfRangeDeltas) {
  ASSERT_TRUE(IsReceipt(Put("ctr", R"({"n": 1, "m": 1})")));
  const Observed before = Observe();
  for (const std::string body :
       {R"({"n": 1.5})", R"({"n": "1"})", R"({"n": true})", R"({"n": null})", R"({"n": [1]})",
        R"({"n": {}})", R"({"n": 1e3})", R"({"n": 1.0})", R"({"n": 9223372036854775808})",
        R"({"n": -9223372036854775809})", R"({"n": 18446744073709551616})",
        R"({"m": 1, "n": 0.5})"}) {
    ExpectRejected(Incr("ctr", body), 400, "bad_increment", before, body);
  }
  ExpectRejected(Incr("ctr", "{}"), 400, "invalid_argument", before,
                 "an increment without a counter");
  EXPECT_EQ(Get("ctr").body, R"({"m":1,"n":1})");
  EXPECT_TRUE(IsError(Get("never"), 404, "not_found"));
}

TEST_F(HttpApiTest, IncrementOfANonNumberIs409AndChangesNothing) {
  ASSERT_TRUE(IsReceipt(
      Put("mixed",
          R"({"n": 1, "s": "text", "b": true, "z": null, "o": {"k": 1}, "a": [1], "e": ""})")));
  const std::string doc = Get("mixed").body;
  const Observed before = Observe();
  for (const std::string field : {"s", "b", "z", "o", "a", "e"}) {
    ExpectRejected(Incr("mixed", "{\"" + field + "\": 1}"), 409, "not_a_number", before, field);
    ExpectRejected(Incr("mixed", "{\"n\": 5, \"" + field + "\": 1}"), 409, "not_a_number", before,
                   "n and " + field + ": all or nothing");
  }
  EXPECT_EQ(Get("mixed").body, doc);
  ASSERT_TRUE(IsReceipt(Incr("mixed", R"({"n": 5})")));
  EXPECT_EQ(Parse(Get("mixed").body)["n"], 6);
}

TEST_F(HttpApiTest, OversizedKeyIs413) {
  const std::string longest(1024, 'k');
  ASSERT_TRUE(IsReceipt(Put(longest, R"({"a": 1})"))) << "a key of key_bytes_max bytes is fine";
  EXPECT_EQ(Get(longest).body, R"({"a":1})");
  std::string two_byte_longest;
  for (int i = 0; i < 512; ++i) two_byte_longest += "\xc3\xa9";
  ASSERT_TRUE(IsReceipt(Put(two_byte_longest, R"({"a": 2})")))
      << "the limit counts bytes, not escapes";
  const Observed before = Observe();
  const std::string too_long(1025, 'k');
  ExpectRejected(Put(too_long, R"({"a": 1})"), 413, "too_large", before, "PUT");
  ExpectRejected(Patch(too_long, R"({"a": 1})"), 413, "too_large", before, "PATCH");
  ExpectRejected(Incr(too_long, R"({"a": 1})"), 413, "too_large", before, "incr");
  ExpectRejected(Delete(too_long), 413, "too_large", before, "DELETE");
  ExpectRejected(Get(too_long), 413, "too_large", before, "GET");
  ExpectRejected(Put(std::string(4000, 'k'), R"({"a": 1})"), 413, "too_large", before,
                 "4000 bytes");
  ExpectRejected(Put(two_byte_longest + "x", R"({"a": 1})"), 413, "too_large", before,
                 "1025 bytes of UTF-8");
}

TEST_F(HttpApiTest, OversizedBodyIs413) {
  ASSERT_TRUE(IsReceipt(Put("doc", R"({"a": 1})")));
  ASSERT_TRUE(IsReceipt(Put("fits", "{\"v\": \"" + std::string(60000, 'x') + "\"}")));
  const Observed before = Observe();
  ExpectRejected(Put("doc", "{\"v\": \"" + std::string(70000, 'x') + "\"}"), 413, "too_large",
                 before, "one value over value_bytes_max");
  std::string big = "{";
  for (int i = 0; i < 20; ++i)
    big += (i ? ",\"f" : "\"f") + std::to_string(i) + "\": \"" + std::string(60000, 'y') + "\"";
  big += "}";
  ExpectRejected(Put("doc", big), 413, "too_large", before, "an operation over document_bytes_max");
  ExpectRejected(Patch("doc", big), 413, "too_large", before, "PATCH over document_bytes_max");
  EXPECT_EQ(Get("doc").body, R"({"a":1})");
}

class HttpApiSmallBodyTest : public HttpApiTest {
 protected:
  std::string ExtraToml() override {
    return "[storage]\nsync = false\n[http]\nbody_bytes_max = 4096\n";
  }
};

TEST_F(HttpApiSmallBodyTest, BodyOverHttpBodyBytesMaxIs413) {
  ASSERT_TRUE(IsReceipt(Put("doc", "{\"v\": \"" + std::string(3000, 'x') + "\"}")));
  const std::string doc = Get("doc").body;
  const Observed before = Observe();
  ExpectRejected(Put("doc", "{\"v\": \"" + std::string(6000, 'x') + "\"}"), 413, "too_large",
                 before, "PUT");
  ExpectRejected(Patch("doc", "{\"v\": \"" + std::string(5000, 'x') + "\"}"), 413, "too_large",
                 before, "PATCH");
  ExpectRejected(Put("other", "{\"v\": \"" + std::string(4100, 'x') + "\"}"), 413, "too_large",
                 before, "new");
  EXPECT_EQ(Get("doc").body, doc);
  EXPECT_TRUE(IsError(Get("other"), 404, "not_found"));
  EXPECT_TRUE(IsReceipt(Patch("doc", R"({"small": 1})"))) << "the node goes on taking writes";
}

TEST_F(HttpApiTest, InvalidUtf8IsRejected) {
  ASSERT_TRUE(IsReceipt(Put("doc", R"({"a": 1})")));
  const Observed before = Observe();
  for (const std::string raw_key : {"%FF", "a%C3%28", "%ED%A0%80", "%C3", "%F0%9F%98", "%C0%AF"}) {
    ExpectRejected(client().Send("PUT", "/v1/docs/" + raw_key, R"({"a": 1})"), 400, "invalid_key",
                   before, "key " + raw_key);
    ExpectRejected(client().Get("/v1/docs/" + raw_key), 400, "invalid_key", before,
                   "GET key " + raw_key);
  }
  for (const std::string body : {"{\"a\": \"\xff\"}", "{\"\xc3\x28\": 1}", "{\"a\": \"\xe2\x82\"}",
                                 "{\"a\": \"\xed\xa0\x80\"}"}) {
    ExpectRejected(Put("doc", body), 400, "malformed_json", before, "PUT with invalid UTF-8");
    ExpectRejected(Patch("doc", body), 400, "malformed_json", before, "PATCH with invalid UTF-8");
  }
  ExpectRejected(Incr("doc", "{\"\xff\": 1}"), 400, "malformed_json", before,
                 "incr with invalid UTF-8");
  ExpectRejected(client().Get("/v1/docs?prefix=%FF"), 400, "bad_encoding", before, "query");
  ExpectRejected(client().Send("PUT", "/v1/docs/doc?durability=%FF", "{}"), 400, "bad_encoding",
                 before, "write query");
  EXPECT_EQ(Get("doc").body, R"({"a":1})");
}

TEST_F(HttpApiTest, EmptyKeyIs400) {
  const Observed before = Observe();
  ExpectRejected(client().Send("PUT", "/v1/docs/", R"({"a": 1})"), 400, "invalid_key", before,
                 "PUT");
  ExpectRejected(client().Get("/v1/docs/"), 400, "invalid_key", before, "GET");
}

TEST_F(HttpApiTest, BadPercentEncodingIs400) {
  ASSERT_TRUE(IsReceipt(Put("a", R"({"a": 1})")));
  const Observed before = Observe();
  for (const std::string target :
       {"/v1/docs/a%zz", "/v1/docs/a%2", "/v1/docs/a%", "/v1/docs/%%41", "/v1/docs/%g0"}) {
    ExpectRejected(client().Get(target), 400, "bad_encoding", before, "GET " + target);
    ExpectRejected(client().Send("PUT", target, R"({"a": 2})"), 400, "bad_encoding", before,
                   "PUT " + target);
    ExpectRejected(client().Request("DELETE", target), 400, "bad_encoding", before,
                   "DELETE " + target);
  }
  for (const std::string target :
       {"/v1/docs?prefix=%zz", "/v1/docs?prefix=a%2", "/v1/docs/a?wait_ms=%",
        "/v1/docs?after=%x1&prefix=a", "/v1/docs?%zz=1"}) {
    ExpectRejected(client().Get(target), 400, "bad_encoding", before, target);
  }
  EXPECT_EQ(Get("a").body, R"({"a":1})");
}

TEST_F(HttpApiTest, UnknownRouteIs404) {
  ASSERT_TRUE(IsReceipt(Put("a", R"({"a": 1})")));
  const Observed before = Observe();
  for (const std::string target :
       {"/", "/v1", "/v1/", "/v2/docs/a", "/v1/doc/a", "/v1/docs/a/b", "/v1/docs/a/incr/b",
        "/v1/statuss", "/metrics/x", "/v1/docs/a/incr/"}) {
    ExpectRejected(client().Get(target), 404, "not_found", before, "GET " + target);
    ExpectRejected(client().Send("PUT", target, R"({"a": 2})"), 404, "not_found", before,
                   "PUT " + target);
  }
  EXPECT_EQ(Get("a").body, R"({"a":1})");
}

TEST_F(HttpApiTest, WrongMethodIs405WithAllow) {
  ASSERT_TRUE(IsReceipt(Put("k", R"({"a": 1})")));
  const Observed before = Observe();
  struct Case {
    std::string method;
    std::string target;
    std::set<std::string> allowed;
  };
  const std::vector<Case> cases = {
      {"POST", "/v1/status", {"GET", "HEAD"}},
      {"DELETE", "/metrics", {"GET", "HEAD"}},
      {"PUT", "/healthz", {"GET", "HEAD"}},
      {"POST", "/readyz", {"GET", "HEAD"}},
      {"PUT", "/v1/docs", {"GET", "HEAD"}},
      {"DELETE", "/v1/conflicts", {"GET", "HEAD"}},
      {"POST", "/v1/watch", {"GET"}},
      {"GET", "/v1/docs/k/incr", {"POST"}},
      {"PUT", "/v1/docs/k/incr", {"POST"}},
      {"DELETE", "/v1/docs/k/incr", {"POST"}},
      {"POST", "/v1/docs/k", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}},
      {"OPTIONS", "/v1/docs/k", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}},
      {"BREW", "/v1/docs/k", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}},
  };
  for (const Case& c : cases) {
    const HttpResponse response =
        client().Request(c.method, c.target, R"({"a": 2})", {{"Content-Type", "application/json"}});
    ExpectRejected(response, 405, "method_not_allowed", before, c.method + " " + c.target);
    std::set<std::string> allowed;
    std::string allow = response.Header("allow");
    std::replace(allow.begin(), allow.end(), ',', ' ');
    std::istringstream words(allow);
    for (std::string word; words >> word;) allowed.insert(word);
    EXPECT_EQ(allowed, c.allowed) << c.method << " " << c.target << ": Allow '"
                                  << response.Header("allow") << "'";
  }
  // A watch is a stream: HEAD is refused too (an answer to HEAD has no body to check).
  const HttpResponse head = client().Request("HEAD", "/v1/watch");
  EXPECT_EQ(head.status, 405);
  EXPECT_EQ(head.Header("allow"), "GET");
  EXPECT_EQ(Get("k").body, R"({"a":1})");
}

TEST_F(HttpApiTest, BadQueryParametersAre400) {
  ASSERT_TRUE(IsReceipt(Put("k", R"({"a": 1})")));
  const Observed before = Observe();
  for (const std::string target :
       {"/v1/docs?limit=abc", "/v1/docs?limit=0", "/v1/docs?limit=1001", "/v1/docs?limit=-1",
        "/v1/docs?limit=1.5", "/v1/docs?limit=", "/v1/docs?limit=+5", "/v1/conflicts?limit=x",
        "/v1/conflicts?limit=0", "/v1/docs/k?wait_ms=abc", "/v1/docs/k?wait_ms=60001",
        "/v1/status?wait_ms=-5", "/v1/docs/k?wait_ms=99999999999999999999999"}) {
    ExpectRejected(client().Get(target), 400, "bad_parameter", before, "GET " + target);
  }
  for (const std::string query :
       {"?durability=all", "?durability=regions:", "?durability=regions:-1",
        "?durability=regions:32", "?durability=regions:1x", "?durability=1", "?timeout_ms=abc",
        "?durability=regions:1&timeout_ms=-1", "?timeout_ms=60001"}) {
    ExpectRejected(Put("k", R"({"a": 2})", query), 400, "bad_parameter", before, "PUT " + query);
    ExpectRejected(Put("new", R"({"a": 2})", query), 400, "bad_parameter", before,
                   "PUT new " + query);
    ExpectRejected(Delete("k", query), 400, "bad_parameter", before, "DELETE " + query);
  }
  ExpectRejected(client().Get("/v1/docs?prefix=" + std::string(1025, 'p')), 413, "too_large",
                 before, "a prefix longer than a key");
  ExpectRejected(client().Get("/v1/docs?after=" + std::string(1025, 'p')), 413, "too_large", before,
                 "an after longer than a key");
  EXPECT_EQ(Get("k").body, R"({"a":1})");
  EXPECT_TRUE(IsError(Get("new"), 404, "not_found"));
}

TEST_F(HttpApiTest, GarbageInsteadOfHttpIsAnswered400AndTheNodeStaysUp) {
  ASSERT_TRUE(IsReceipt(Put("k", R"({"a": 1})")));
  const Observed before = Observe();
  HttpClient raw = node_->Client(std::chrono::seconds(5));
  const std::string sanity =
      raw.Raw("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(sanity.rfind("HTTP/1.1 200", 0), 0u) << "raw requests work: " << sanity;
  const std::vector<std::string> garbage = {
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),  // a TLS ClientHello
      "NOT HTTP AT ALL\r\n\r\n",
      "GET\r\n\r\n",
      "GET / HTTP/1.1\r\nHost x\r\n\r\n",  // header without a colon
      "PUT /v1/docs/k HTTP/1.1\r\nContent-Length: abc\r\n\r\n{}",
      "PUT /v1/docs/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
      std::string("GET /\x01 HTTP/1.1\r\n\r\n"),
  };
  for (const std::string& bytes : garbage) {
    SCOPED_TRACE(::testing::PrintToString(bytes));
    const std::string answer = raw.Raw(bytes);
    EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << "answer: " << answer;
    const auto body_start = answer.find("\r\n\r\n");
    ASSERT_NE(body_start, std::string::npos) << answer;
    const json body = Parse(answer.substr(body_start + 4));
    EXPECT_TRUE(body.is_object() && body.contains("error") && body.contains("message")) << answer;
    ExpectUnchanged(before);
  }
  // Headers over 16 KiB get an error too, and pipelined requests are answered in order.
  const std::string huge =
      raw.Raw("GET /healthz HTTP/1.1\r\nX-Big: " + std::string(20000, 'b') + "\r\n\r\n");
  EXPECT_EQ(huge.rfind("HTTP/1.1 431", 0), 0u) << huge.substr(0, 200);
  EXPECT_NE(huge.find("\"error\""), std::string::npos) << huge.substr(0, 300);
  const std::string pipelined = raw.Raw(
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/docs/k HTTP/1.1\r\nHost: x\r\nConnection: "
      "close\r\n\r\n");
  const auto second = pipelined.find("HTTP/1.1", 1);
  EXPECT_EQ(pipelined.rfind("HTTP/1.1 200", 0), 0u) << pipelined;
  ASSERT_NE(second, std::string::npos) << pipelined;
  EXPECT_EQ(pipelined.compare(second, 12, "HTTP/1.1 200"), 0) << pipelined;
  EXPECT_NE(pipelined.find(R"({"a":1})"), std::string::npos) << pipelined;
  ExpectUnchanged(before);
  EXPECT_EQ(Get("k").body, R"({"a":1})");
}

TEST_F(HttpApiTest, HeadAnswersLikeGetWithoutABody) {
  ASSERT_TRUE(IsReceipt(Put("h", R"({"a": "some text"})")));
  HttpClient raw = node_->Client(std::chrono::seconds(5));
  for (const auto& [target, status, length] :
       std::vector<std::tuple<std::string, std::string, size_t>>{
           {"/v1/docs/h", "200", Get("h").body.size()},
           {"/v1/docs/missing", "404", Get("missing").body.size()},
           {"/healthz", "200", client().Get("/healthz").body.size()}}) {
    SCOPED_TRACE(target);
    const std::string answer =
        raw.Raw("HEAD " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(answer.rfind("HTTP/1.1 " + status, 0), 0u) << answer;
    EXPECT_NE(answer.find("Content-Length: " + std::to_string(length) + "\r\n"), std::string::npos)
        << answer;
    const auto end = answer.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos) << answer;
    EXPECT_EQ(answer.size(), end + 4) << "a HEAD answer has no body: " << answer;
  }
}

// ---- Sessions and durability
// ---------------------------------------------------------------------

TEST_F(HttpApiTest, SessionTokensMakeReadsWaitAndTimeOut) {
  Receipt receipt;
  ASSERT_TRUE(IsReceipt(Put("s", R"({"a": 1})"), &receipt));
  // A token the region has applied: answered at once.
  HttpResponse response =
      client().Request("GET", DocPath("s"), "", {{"Meridian-Session", receipt.session}});
  EXPECT_EQ(response.status, 200) << Describe(response);
  EXPECT_EQ(response.body, R"({"a":1})");
  response = client().Get(DocPath("s") + "?session=" + receipt.session);
  EXPECT_EQ(response.status, 200) << Describe(response);
  response = client().Get("/v1/docs?session=" + receipt.session + "&wait_ms=0");
  EXPECT_EQ(response.status, 200) << Describe(response);

  const Observed before = Observe();
  // A token from the future of this region: 504 after wait_ms (not the default 1000 ms).
  const std::string future =
      SessionToken(meridian::core::VersionVector{{kUsId, receipt.seq + 1000}});
  auto started = Clock::now();
  response =
      client().Request("GET", DocPath("s") + "?wait_ms=50", "", {{"Meridian-Session", future}});
  int64_t elapsed = ElapsedMs(started);
  ExpectRejected(response, 504, "session_timeout", before, "a future token in the header");
  EXPECT_GE(elapsed, 45) << "the region waited before giving up";
  EXPECT_LT(elapsed, 1000) << "wait_ms=50 bounds the wait";
  started = Clock::now();
  response = client().Get(DocPath("s") + "?wait_ms=50&session=" + future);
  elapsed = ElapsedMs(started);
  ExpectRejected(response, 504, "session_timeout", before, "a future token in the query");
  EXPECT_LT(elapsed, 1000);
  // A token covering another region's writes, which never arrive.
  const std::string remote = SessionToken(meridian::core::VersionVector{{kEuId, 5}});
  ExpectRejected(client().Get("/v1/status?wait_ms=50&session=" + remote), 504, "session_timeout",
                 before, "a token of region eu");
  // A write carrying a future token waits too, and on timeout is not applied.
  ExpectRejected(
      client().Request("PUT", DocPath("s") + "?wait_ms=50", R"({"a": 2})",
                       {{"Content-Type", "application/json"}, {"Meridian-Session", future}}),
      504, "session_timeout", before, "a write with a future token");
  EXPECT_EQ(Get("s").body, R"({"a":1})");
  // Not a token at all.
  ExpectRejected(client().Request("GET", DocPath("s"), "", {{"Meridian-Session", "$$$"}}), 400,
                 "bad_session", before, "a malformed token");
  ExpectRejected(client().Get(DocPath("s") + "?session=%21%21"), 400, "bad_session", before,
                 "a malformed token");
}

TEST_F(HttpApiTest, SessionWaitEndsWhenTheRegionCatchesUp) {
  Receipt receipt;
  ASSERT_TRUE(IsReceipt(Put("first", R"({"a": 1})"), &receipt));
  // A read of "next" with a token covering the write that will create it: never 404.
  const std::string token = SessionToken(meridian::core::VersionVector{{kUsId, receipt.seq + 1}});
  HttpResponse waited;
  int64_t elapsed = 0;
  std::thread reader([&] {
    HttpClient client = node_->Client(std::chrono::seconds(15));
    const auto started = Clock::now();
    waited = client.Request("GET", DocPath("next") + "?wait_ms=10000", "",
                            {{"Meridian-Session", token}});
    elapsed = ElapsedMs(started);
  });
  // Let the reader connect (bounded): the node then has two connections open, ours and its.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    const auto metrics = ParseMetrics(client().Get("/metrics").body);
    if (metrics.count("meridian_http_connections") && metrics.at("meridian_http_connections") >= 2)
      break;
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_TRUE(IsReceipt(Put("next", R"({"b": 2})")));
  reader.join();
  EXPECT_EQ(waited.status, 200) << Describe(waited);
  EXPECT_EQ(waited.body, R"({"b":2})");
  EXPECT_LT(elapsed, 10000) << "the commit woke the waiting read";
}

TEST_F(HttpApiTest, DurabilityWaitTimesOutButTheWriteStays) {
  const uint64_t frontier = Frontier();
  auto started = Clock::now();
  HttpResponse response = Put("dur", R"({"a": 1})", "?durability=regions:1&timeout_ms=50");
  const int64_t elapsed = ElapsedMs(started);
  EXPECT_TRUE(IsError(response, 504, "durability_timeout"));
  EXPECT_GE(elapsed, 45);
  EXPECT_LT(elapsed, 4000) << "timeout_ms=50 bounds the wait (the default is 5000)";
  EXPECT_EQ(Get("dur").body, R"({"a":1})") << "the write is committed locally";
  EXPECT_EQ(Frontier(), frontier + 1);
  const json body = Parse(response.body);
  EXPECT_EQ(body.value("event", ""), "us:" + std::to_string(frontier + 1))
      << "the 504 still names the write";

  ASSERT_TRUE(IsReceipt(Put("dur0", R"({"a": 1})", "?durability=regions:0")));
  EXPECT_TRUE(IsError(Put("dur2", R"({"a": 1})", "?durability=regions:2&timeout_ms=50"), 504,
                      "durability_timeout"));
  EXPECT_TRUE(
      IsError(Delete("dur", "?durability=regions:1&timeout_ms=50"), 504, "durability_timeout"));
  EXPECT_TRUE(IsError(Get("dur"), 404, "not_found")) << "the delete is committed locally";

  const Observed before = Observe();
  ExpectRejected(Put("dur9", R"({"a": 1})", "?durability=regions:9"), 400, "bad_parameter", before,
                 "more regions than the 2 peers");
  ExpectRejected(Put("dur2", R"({"a": 2})", "?durability=regions:3&timeout_ms=50"), 400,
                 "bad_parameter", before, "3 of 2 peers");
  ExpectRejected(Incr("dur2", R"({"n": 1})", "?durability=regions:9"), 400, "bad_parameter", before,
                 "incr");
  ExpectRejected(Delete("dur2", "?durability=regions:9"), 400, "bad_parameter", before, "delete");
  EXPECT_TRUE(IsError(Get("dur9"), 404, "not_found"));
  EXPECT_EQ(Get("dur2").body, R"({"a":1})");
}

// ---- 429: overloaded
// -----------------------------------------------------------------------------

class HttpApiConnectionLimitTest : public HttpApiTest {
 protected:
  std::string ExtraToml() override {
    return "[storage]\nsync = false\n[http]\nconnections_max = 2\n";
  }
};

// Polls (bounded) until `client` gets 200 from /healthz: its connection is then one of the node's.
bool ConnectWithin(HttpClient& client, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (client.Get("/healthz").status == 200) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return false;
}

TEST_F(HttpApiConnectionLimitTest, ConnectionsOverTheLimitAreAnswered429Overloaded) {
  client_.reset();  // hold exactly the connections below
  std::optional<HttpClient> first(node_->Client());
  HttpClient second = node_->Client();
  ASSERT_TRUE(ConnectWithin(*first, std::chrono::seconds(5)));
  ASSERT_TRUE(ConnectWithin(second, std::chrono::seconds(5)));
  HttpClient third = node_->Client();
  const HttpResponse refused = third.Send("PUT", DocPath("k"), R"({"a": 1})");
  EXPECT_TRUE(IsError(refused, 429, "overloaded")) << "API.md: 429 overloaded";
  EXPECT_EQ(second.Get("/healthz").status, 200) << "connections within the limit go on";
  EXPECT_TRUE(IsError(second.Get(DocPath("k")), 404, "not_found"))
      << "the refused write changed nothing";
  first.reset();
  EXPECT_TRUE(ConnectWithin(third, std::chrono::seconds(5))) << "a freed slot is reused";
}

// ---- Shutdown
// ------------------------------------------------------------------------------------

class HttpApiDurableTest : public HttpApiTest {
 protected:
  std::string ExtraToml() override { return ""; }  // [storage] sync = true, the default
};

TEST_F(HttpApiDurableTest, SigtermAnswersParkedWaitsAndExitsPromptly) {
  Receipt receipt;
  ASSERT_TRUE(IsReceipt(Put("a", R"({"x": 1})"), &receipt));
  const std::string future =
      SessionToken(meridian::core::VersionVector{{kUsId, receipt.seq + 1000}});
  HttpResponse session_wait;
  HttpResponse durability_wait;
  std::thread reader([&] {
    HttpClient client = node_->Client(std::chrono::seconds(30));
    session_wait =
        client.Request("GET", DocPath("a") + "?wait_ms=30000", "", {{"Meridian-Session", future}});
  });
  std::thread writer([&] {
    HttpClient client = node_->Client(std::chrono::seconds(30));
    durability_wait =
        client.Send("PUT", DocPath("b") + "?durability=regions:1&timeout_ms=30000", R"({"y": 2})");
  });
  // The durable write is committed before its wait begins: poll for it (bounded), and for both
  // connections to be open.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  bool parked = false;
  while (!parked && Clock::now() < deadline) {
    const auto metrics = ParseMetrics(client().Get("/metrics").body);
    parked = Get("b").status == 200 && metrics.count("meridian_http_connections") &&
             metrics.at("meridian_http_connections") >= 3;
    if (!parked) std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_TRUE(parked);
  const auto started = Clock::now();
  EXPECT_EQ(node_->Terminate(std::chrono::seconds(20)), 0) << node_->log();
  EXPECT_LT(ElapsedMs(started), 9000)
      << "parked waits must not hold the shutdown up to the 10 s grace period";
  reader.join();
  writer.join();
  EXPECT_TRUE(IsError(session_wait, 504, "session_timeout"))
      << "a parked read is answered, not dropped";
  EXPECT_TRUE(IsError(durability_wait, 504, "durability_timeout"))
      << "a parked durable write is answered";
  ASSERT_TRUE(node_->Start()) << node_->log();
  EXPECT_EQ(Get("b").body, R"({"y":2})")
      << "the write whose durability wait was cut short is committed";
}

TEST_F(HttpApiDurableTest, SigtermExitsCleanlyAndARestartServesEveryAcknowledgedWrite) {
  std::map<std::string, std::optional<std::string>> expected;  // key -> body, nullopt: deleted
  for (int i = 0; i < 40; ++i) {
    const std::string key = "k" + std::to_string(i % 10);
    HttpResponse response;
    switch (i % 4) {
      case 0:
        response =
            Put(key, "{\"i\": " + std::to_string(i) + ", \"s\": \"v" + std::to_string(i) + "\"}");
        break;
      case 1:
        response = Patch(key, "{\"p\": " + std::to_string(i) + "}");
        break;
      case 2:
        response = Incr(key, "{\"n\": " + std::to_string(i) + "}");
        break;
      default:
        response = Delete(key);
        break;
    }
    ASSERT_TRUE(IsReceipt(response)) << i;
  }
  for (int k = 0; k < 10; ++k) {
    const std::string key = "k" + std::to_string(k);
    const HttpResponse got = Get(key);
    ASSERT_TRUE(got.status == 200 || got.status == 404) << Describe(got);
    expected[key] = got.status == 200 ? std::optional<std::string>(got.body) : std::nullopt;
  }
  const json before = Status();
  ASSERT_EQ(before["frontier"], json({{"us", 40}}));

  HttpClient idle = node_->Client();  // an idle keep-alive connection must not hold the shutdown up
  ASSERT_EQ(idle.Get("/healthz").status, 200);
  const auto started = Clock::now();
  EXPECT_EQ(node_->Terminate(std::chrono::seconds(20)), 0) << node_->log();
  EXPECT_LT(ElapsedMs(started), 9000) << "stopped without waiting for the 10 s grace period";
  EXPECT_EQ(idle.Get("/healthz").status, 0) << "the node is down";

  ASSERT_TRUE(node_->Start()) << node_->log();
  for (const auto& [key, body] : expected) {
    const HttpResponse got = Get(key);
    if (body) {
      EXPECT_EQ(got.status, 200) << key;
      EXPECT_EQ(got.body, *body) << key;
    } else {
      EXPECT_TRUE(IsError(got, 404, "not_found")) << key;
    }
  }
  const json after = Status();
  EXPECT_EQ(after["frontier"], before["frontier"]);
  EXPECT_EQ(after["digest"], before["digest"]);
  EXPECT_EQ(after["documents"], before["documents"]);
  Receipt next;
  ASSERT_TRUE(IsReceipt(Put("after-restart", R"({"x": 1})"), &next));
  EXPECT_EQ(next.seq, 41u) << "event ids continue after a restart; none is reused";
  std::pair<uint64_t, uint64_t> hlc_before;
  ASSERT_TRUE(ParseHlc(before["hlc"], &hlc_before));
  EXPECT_GT(next.hlc, hlc_before) << "the clock never goes back across a restart";
}

}  // namespace
