// Integration tests of watches (GET /v1/watch, API.md) against a real `meridian start` process:
// Server-Sent Events and WebSocket, prefixes, order, resume without gaps, slow consumers.
// Every wait is bounded by a deadline.
#include <gtest/gtest.h>
#include <poll.h>

// g++ 12 needs <utility> before Asio.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/session_token.h"
#include "client/run_one.h"
#include "support/http_client.h"
#include "support/node_fixture.h"
#include "support/node_process.h"
#include "support/sse_stream.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using meridian::testing::EncodeKey;
using meridian::testing::HttpClient;
using meridian::testing::HttpResponse;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using meridian::testing::SseEvent;
using meridian::testing::SseStream;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string DocPath(const std::string& key) {
  return "/v1/docs/" + EncodeKey(key);
}

std::string Describe(const HttpResponse& response) {
  return "HTTP " + std::to_string(response.status) + " '" + response.body.substr(0, 300) + "' " +
         response.error;
}

// A WebSocket watch: Beast's client, each operation bounded by the TCP stream's timeout.
class WsWatch {
 public:
  explicit WsWatch(uint16_t port) : port_(port), ws_(io_) {}

  // receive_buffer > 0 shrinks the socket's receive buffer (a reader that lags behind).
  bool Open(const std::string& target, milliseconds timeout = seconds(10), int receive_buffer = 0) {
    auto& lowest = beast::get_lowest_layer(ws_);
    beast::error_code ec;
    if (receive_buffer > 0) {
      lowest.socket().open(tcp::v4(), ec);
      if (!ec)
        lowest.socket().set_option(asio::socket_base::receive_buffer_size(receive_buffer), ec);
      if (ec) return false;
    }
    lowest.expires_after(timeout);
    ec = Run([&](auto handler) {
      lowest.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_),
                           [handler](beast::error_code e) mutable { handler(e, 0); });
    });
    if (ec) return false;
    lowest.expires_after(timeout);
    ec = Run([&](auto handler) {
      ws_.async_handshake("127.0.0.1:" + std::to_string(port_), target,
                          [handler](beast::error_code e) mutable { handler(e, 0); });
    });
    error_ = ec;
    return !ec;
  }

  // The next text message; nullopt on timeout, close or error (see error()).
  std::optional<std::string> Read(milliseconds timeout = seconds(10)) {
    beast::flat_buffer buffer;
    beast::get_lowest_layer(ws_).expires_after(timeout);
    error_ = Run([&](auto handler) { ws_.async_read(buffer, handler); });
    if (error_) return std::nullopt;
    return beast::buffers_to_string(buffer.data());
  }

  std::vector<json> Collect(size_t count, milliseconds timeout = seconds(10)) {
    std::vector<json> messages;
    const auto deadline = Clock::now() + timeout;
    while (messages.size() < count) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      auto message = Read(left);
      if (!message) break;
      messages.push_back(Parse(*message));
    }
    return messages;
  }

  void Close(milliseconds timeout = seconds(5)) {
    beast::get_lowest_layer(ws_).expires_after(timeout);
    error_ = Run([&](auto handler) {
      ws_.async_close(websocket::close_code::normal,
                      [handler](beast::error_code e) mutable { handler(e, 0); });
    });
  }

  beast::error_code error() const { return error_; }
  websocket::close_reason reason() const { return ws_.reason(); }

 private:
  template <typename Start>
  beast::error_code Run(Start start) {
    return meridian::client::RunOne(io_, std::move(start));
  }

  uint16_t port_;
  asio::io_context io_;
  websocket::stream<beast::tcp_stream> ws_;
  beast::error_code error_;
};

// What a change must say: its key, the event id and HLC of the receipt, and the document.
struct Expected {
  std::string key;
  std::string event;
  std::string hlc;
  json doc;  // null: deleted
};

::testing::AssertionResult IsChange(const json& change, const Expected& expected) {
  if (!change.is_object())
    return ::testing::AssertionFailure() << "not a JSON object: " << change.dump();
  for (const char* field : {"key", "doc", "event", "hlc"}) {
    if (!change.contains(field))
      return ::testing::AssertionFailure() << "no '" << field << "' in " << change.dump();
  }
  if (change["key"] != expected.key || change["event"] != expected.event ||
      change["hlc"] != expected.hlc || change["doc"] != expected.doc) {
    return ::testing::AssertionFailure()
           << "change " << change.dump() << "\n expected key " << expected.key << " event "
           << expected.event << " hlc " << expected.hlc << " doc " << expected.doc.dump();
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult IsSseChange(const SseEvent& event, const Expected& expected) {
  if (event.event != "change") {
    return ::testing::AssertionFailure() << "event '" << event.event << "' data " << event.data;
  }
  if (event.id != expected.event) {
    return ::testing::AssertionFailure()
           << "SSE id '" << event.id << "', expected " << expected.event;
  }
  return IsChange(Parse(event.data), expected);
}

uint64_t SeqOf(const std::string& event_id) {
  const auto colon = event_id.rfind(':');
  return colon == std::string::npos ? 0 : std::stoull(event_id.substr(colon + 1));
}

class WatchTest : public meridian::testing::NodeFixture {
 protected:
  // Applies a write and returns what a watcher must see for it (doc read back right after, which
  // is exact here: this test is the only writer).
  Expected Write(const std::string& method, const std::string& key, const std::string& body = "") {
    HttpResponse response;
    if (method == "DELETE") {
      response = client_->Request("DELETE", DocPath(key));
    } else if (method == "INCR") {
      response = client_->Send("POST", DocPath(key) + "/incr", body);
    } else {
      response = client_->Send(method, DocPath(key), body);
    }
    EXPECT_EQ(response.status, 200) << method << " " << key << ": " << Describe(response);
    const json receipt = Parse(response.body);
    Expected expected;
    expected.key = key;
    if (receipt.is_object()) {
      expected.event = receipt.value("event", "");
      expected.hlc = receipt.value("hlc", "");
    }
    const HttpResponse doc = client_->Get(DocPath(key));
    expected.doc = doc.status == 200 ? Parse(doc.body) : json(nullptr);
    return expected;
  }

  SseStream Sse() { return SseStream(node_->http_port()); }

  // Polls /v1/status until it reports `count` watchers (bounded).
  bool WaitForWatchers(uint64_t count, milliseconds timeout = seconds(10)) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      const json status = Parse(client_->Get("/v1/status").body);
      if (status.is_object() && status["watchers"] == count) return true;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return false;
  }

  double Metric(const std::string& name) {
    const std::string text = client_->Get("/metrics").body;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    }
    return -1;
  }
};

// ---- SSE
// -----------------------------------------------------------------------------------------

TEST_F(WatchTest, SseDeliversEachChangeOfItsPrefixOnceInOrder) {
  SseStream watch = Sse();
  ASSERT_EQ(watch.Open("/v1/watch?prefix=w%2F"), 200) << watch.head();
  EXPECT_NE(watch.head().find("Content-Type: text/event-stream"), std::string::npos)
      << watch.head();
  ASSERT_TRUE(WaitForWatchers(1));

  std::vector<Expected> expected;
  expected.push_back(Write("PUT", "w/a", R"({"v": 1})"));
  Write("PUT", "x/a", R"({"v": 1})");
  expected.push_back(Write("PATCH", "w/b", R"({"p": 1})"));
  Write("PUT", "w", R"({"v": 1})");  // not under "w/"
  expected.push_back(Write("INCR", "w/a", R"({"n": 2})"));
  Write("PUT", "wx/a", R"({"v": 1})");
  expected.push_back(Write("DELETE", "w/b"));
  expected.push_back(Write("INCR", "w/c", R"({"n": 1})"));
  Write("DELETE", "x/a");
  EXPECT_EQ(expected[2].doc, json({{"n", 2}, {"v", 1}}));
  EXPECT_TRUE(expected[3].doc.is_null());

  const std::vector<SseEvent> events = watch.Collect(expected.size());
  ASSERT_EQ(events.size(), expected.size()) << "closed: " << watch.closed();
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_TRUE(IsSseChange(events[i], expected[i])) << i;
  // Nothing else came in between, nor twice: the next event is the next matching write.
  const Expected sentinel = Write("PUT", "w/z", R"({"last": true})");
  const auto next = watch.Next();
  ASSERT_TRUE(next.has_value()) << "closed: " << watch.closed();
  EXPECT_TRUE(IsSseChange(*next, sentinel));
}

TEST_F(WatchTest, SseWithoutPrefixSeesEverything) {
  SseStream watch = Sse();
  ASSERT_EQ(watch.Open("/v1/watch"), 200) << watch.head();
  std::vector<Expected> expected = {Write("PUT", "a", R"({"x": 1})"),
                                    Write("PUT", "zz/top", R"({"x": 2})"), Write("DELETE", "a")};
  const auto events = watch.Collect(expected.size());
  ASSERT_EQ(events.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_TRUE(IsSseChange(events[i], expected[i])) << i;
}

// Like any read, a watch with a session token waits until this region covers it.
TEST_F(WatchTest, AWatchWaitsForItsSessionToken) {
  Write("PUT", "s/a", R"({"v": 1})");  // history the token covers
  const HttpResponse receipt = client().Send("PUT", "/v1/docs/s%2Fb", R"({"v": 2})");
  ASSERT_EQ(receipt.status, 200);
  const std::string covered = receipt.Header("meridian-session");
  SseStream watch = Sse();
  ASSERT_EQ(watch.Open("/v1/watch?prefix=s%2F&session=" + covered), 200) << watch.head();
  const Expected next = Write("PUT", "s/c", R"({"v": 3})");
  const auto event = watch.Next();
  ASSERT_TRUE(event.has_value());
  EXPECT_TRUE(IsSseChange(*event, next));

  // A token from this region's future: the wait runs out and the watch never opens.
  const std::string future =
      meridian::api::EncodeSessionToken(meridian::core::VersionVector{{1, 1'000'000}});
  const HttpResponse refused = client().Get("/v1/watch?session=" + future + "&wait_ms=50");
  EXPECT_EQ(refused.status, 504);
  EXPECT_NE(refused.body.find("session_timeout"), std::string::npos) << refused.body;
}

TEST_F(WatchTest, SseOrderHoldsUnderConcurrentWriters) {
  SseStream watch = Sse();
  ASSERT_EQ(watch.Open("/v1/watch?prefix=cw%2F"), 200) << watch.head();
  constexpr int kThreads = 4;
  constexpr int kWrites = 20;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads + 1; ++t) {
    threads.emplace_back([&, t] {
      HttpClient client = node_->Client();
      for (int i = 0; i < kWrites; ++i) {
        // The last thread writes outside the prefix.
        const std::string key =
            t == kThreads ? "other/" + std::to_string(i % 3) : "cw/" + std::to_string(i % 4);
        const HttpResponse response = client.Send("POST", DocPath(key) + "/incr", R"({"n": 1})");
        if (response.status != 200) {
          ++failures;
          continue;
        }
        if (t < kThreads) ids[t].push_back(Parse(response.body).value("event", ""));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(failures.load(), 0);
  std::set<std::string> acknowledged;
  for (const auto& mine : ids) acknowledged.insert(mine.begin(), mine.end());
  ASSERT_EQ(acknowledged.size(), static_cast<size_t>(kThreads * kWrites));

  const auto events = watch.Collect(kThreads * kWrites, seconds(20));
  ASSERT_EQ(events.size(), static_cast<size_t>(kThreads * kWrites));
  std::set<std::string> seen;
  uint64_t last_seq = 0;
  for (const SseEvent& event : events) {
    EXPECT_EQ(event.event, "change");
    const json change = Parse(event.data);
    ASSERT_TRUE(change.is_object()) << event.data;
    EXPECT_EQ(change["key"].get<std::string>().rfind("cw/", 0), 0u) << event.data;
    EXPECT_EQ(change["event"], event.id);
    EXPECT_GT(SeqOf(event.id), last_seq) << "changes arrive in commit order";
    last_seq = SeqOf(event.id);
    EXPECT_TRUE(seen.insert(event.id).second) << "delivered twice: " << event.id;
  }
  EXPECT_EQ(seen, acknowledged) << "every acknowledged write of the prefix, and nothing else";
  // The counters the watcher saw last are the counters the region holds.
  std::map<std::string, json> last_doc;
  for (const SseEvent& event : events) {
    const json change = Parse(event.data);
    last_doc[change["key"]] = change["doc"];
  }
  for (const auto& [key, doc] : last_doc)
    EXPECT_EQ(doc, Parse(client_->Get(DocPath(key)).body)) << key;
}

// Writes under "r/" and "o/" alternately; returns what a watcher of "r/" sees, and all events.
struct History {
  std::vector<Expected> matching;  // under r/
  std::vector<Expected> all;
};

class WatchResumeTest : public WatchTest {
 protected:
  History MakeHistory() {
    History history;
    for (int i = 0; i < 12; ++i) {
      const bool matching = i % 3 != 2;
      const std::string key = (matching ? "r/" : "o/") + std::to_string(i % 4);
      const std::string method = i % 5 == 4 ? "DELETE" : (i % 2 == 0 ? "PUT" : "INCR");
      Expected expected = Write(
          method, key, method == "PUT" ? "{\"i\": " + std::to_string(i) + "}" : R"({"n": 1})");
      if (matching) history.matching.push_back(expected);
      history.all.push_back(std::move(expected));
    }
    return history;
  }

  // Replayed changes carry the right ids, keys and order; a replayed change's document is the
  // current one (the log keeps events, not old documents), so check documents only where the
  // change was the key's last.
  void ExpectReplay(const std::vector<SseEvent>& events, const std::vector<Expected>& expected) {
    ASSERT_EQ(events.size(), expected.size());
    std::map<std::string, size_t> last_of_key;
    for (size_t i = 0; i < expected.size(); ++i) last_of_key[expected[i].key] = i;
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(events[i].event, "change") << i;
      EXPECT_EQ(events[i].id, expected[i].event) << i;
      const json change = Parse(events[i].data);
      ASSERT_TRUE(change.is_object()) << events[i].data;
      EXPECT_EQ(change["key"], expected[i].key) << i;
      EXPECT_EQ(change["event"], expected[i].event) << i;
      EXPECT_EQ(change["hlc"], expected[i].hlc) << i;
      if (last_of_key[expected[i].key] == i) {
        const HttpResponse current = client_->Get(DocPath(expected[i].key));
        EXPECT_EQ(change["doc"], current.status == 200 ? Parse(current.body) : json(nullptr)) << i;
      }
    }
  }
};

TEST_F(WatchResumeTest, ResumeFromAnEventReplaysTheRestThenGoesLive) {
  std::vector<Expected> matching = MakeHistory().matching;
  ASSERT_GE(matching.size(), 6u);
  for (size_t from : {size_t{0}, size_t{2}, matching.size() - 2}) {
    SCOPED_TRACE("from " + matching[from].event);
    SseStream watch = Sse();
    ASSERT_EQ(watch.Open("/v1/watch?prefix=r%2F&from=" + matching[from].event), 200)
        << watch.head();
    const std::vector<Expected> rest(matching.begin() + from + 1, matching.end());
    ExpectReplay(watch.Collect(rest.size()), rest);
    const Expected live = Write("PATCH", "r/live", R"({"from": )" + std::to_string(from) + "}");
    const auto next = watch.Next();
    ASSERT_TRUE(next.has_value()) << "closed: " << watch.closed();
    EXPECT_TRUE(IsSseChange(*next, live))
        << "live changes follow the replay without a gap or a repeat";
    matching.push_back(live);
  }
}

TEST_F(WatchResumeTest, ResumeFromTheLatestEventReplaysNothing) {
  const History history = MakeHistory();
  SseStream watch = Sse();
  ASSERT_EQ(watch.Open("/v1/watch?prefix=r%2F&from=" + history.all.back().event), 200)
      << watch.head();
  const Expected live = Write("PUT", "r/next", R"({"x": 1})");
  const auto next = watch.Next();
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(IsSseChange(*next, live));
}

TEST_F(WatchResumeTest, ResumeFromAnEventOutsideThePrefix) {
  const History history = MakeHistory();
  // history.all[5] is under o/: the replay is every r/ change after it.
  ASSERT_EQ(history.all[5].key.rfind("o/", 0), 0u);
  std::vector<Expected> rest;
  for (size_t i = 6; i < history.all.size(); ++i) {
    if (history.all[i].key.rfind("r/", 0) == 0) rest.push_back(history.all[i]);
  }
  SseStream watch = Sse();
  ASSERT_EQ(watch.Open("/v1/watch?prefix=r%2F&from=" + history.all[5].event), 200) << watch.head();
  ExpectReplay(watch.Collect(rest.size()), rest);
}

TEST_F(WatchResumeTest, ResumeWithTheLastEventIdHeader) {
  const History history = MakeHistory();
  SseStream watch = Sse();
  ASSERT_EQ(watch.Open("/v1/watch?prefix=r%2F", {{"Last-Event-ID", history.matching[1].event}}),
            200)
      << watch.head();
  const std::vector<Expected> rest(history.matching.begin() + 2, history.matching.end());
  ExpectReplay(watch.Collect(rest.size()), rest);
  const Expected live = Write("DELETE", "r/0");
  const auto next = watch.Next();
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(IsSseChange(*next, live));
}

TEST_F(WatchResumeTest, ReplayedChangesAreTheChangesALiveWatcherSaw) {
  // A change says what the document became with that event ("null when deleted"); resuming
  // replays the same changes, so a resumed watcher sees what a live one saw.
  const Expected before = Write("PUT", "o/start", "{}");
  SseStream live = Sse();
  ASSERT_EQ(live.Open("/v1/watch?prefix=h%2F"), 200) << live.head();
  std::vector<Expected> writes = {
      Write("PUT", "h/a", R"({"v": 1})"),  Write("DELETE", "h/a"),
      Write("PUT", "h/a", R"({"v": 3})"),  Write("PATCH", "h/b", R"({"x": 1})"),
      Write("INCR", "h/b", R"({"n": 2})"), Write("DELETE", "h/b")};
  const auto seen_live = live.Collect(writes.size());
  ASSERT_EQ(seen_live.size(), writes.size());
  for (size_t i = 0; i < writes.size(); ++i) ASSERT_TRUE(IsSseChange(seen_live[i], writes[i])) << i;

  SseStream resumed = Sse();
  ASSERT_EQ(resumed.Open("/v1/watch?prefix=h%2F&from=" + before.event), 200) << resumed.head();
  const auto replayed = resumed.Collect(writes.size());
  ASSERT_EQ(replayed.size(), writes.size());
  for (size_t i = 0; i < writes.size(); ++i) {
    EXPECT_EQ(replayed[i].id, seen_live[i].id) << i;
    EXPECT_EQ(Parse(replayed[i].data), Parse(seen_live[i].data))
        << "event " << seen_live[i].id << " replayed differs from the same event live";
  }
}

TEST_F(WatchResumeTest, AResumedWatchSeesWritesMadeWhileItReplays) {
  // Many logged changes, so that the replay takes pages; writes continue meanwhile.
  std::vector<std::string> ids;
  for (int i = 0; i < 600; ++i) {
    const HttpResponse response =
        client_->Send("POST", DocPath("r/" + std::to_string(i % 7)) + "/incr", R"({"n": 1})");
    ASSERT_EQ(response.status, 200);
    ids.push_back(Parse(response.body)["event"]);
  }
  SseStream watch = Sse();
  ASSERT_EQ(watch.Open("/v1/watch?prefix=r%2F&from=" + ids[9]), 200) << watch.head();
  HttpClient writer = node_->Client();
  for (int i = 0; i < 50; ++i) {
    const HttpResponse response = writer.Send("POST", DocPath("r/w") + "/incr", R"({"n": 1})");
    ASSERT_EQ(response.status, 200);
    ids.push_back(Parse(response.body)["event"]);
  }
  const std::vector<std::string> expected(ids.begin() + 10, ids.end());
  const auto events = watch.Collect(expected.size(), seconds(30));
  std::vector<std::string> got;
  for (const SseEvent& event : events) got.push_back(event.id);
  EXPECT_EQ(got, expected) << "the replay and the live changes join without a gap or a repeat";
}

TEST_F(WatchTest, ResumeFromAnUnknownEventIs404) {
  ASSERT_EQ(Write("PUT", "k", R"({"a": 1})").event, "us:1");
  const json before = Parse(client_->Get("/v1/status").body);
  struct Case {
    std::string target;
    std::map<std::string, std::string> headers;
    int status;
    std::string code;
  };
  const std::vector<Case> cases = {
      {"/v1/watch?from=us:999", {}, 404, "unknown_event"},
      {"/v1/watch?prefix=k&from=us:2", {}, 404, "unknown_event"},
      {"/v1/watch?from=eu:1", {}, 404, "unknown_event"},
      {"/v1/watch", {{"Last-Event-ID", "us:999"}}, 404, "unknown_event"},
      {"/v1/watch?from=garbage", {}, 400, "bad_parameter"},
      {"/v1/watch?from=mars:1", {}, 400, "bad_parameter"},
      {"/v1/watch?from=us:0", {}, 400, "bad_parameter"},
      {"/v1/watch?from=us:-1", {}, 400, "bad_parameter"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target);
    SseStream watch = Sse();
    EXPECT_EQ(watch.Open(c.target, c.headers), c.status) << watch.head();
    EXPECT_NE(watch.head().find("Content-Type: application/json"), std::string::npos)
        << watch.head();
    const json body = Parse(watch.ReadBody());
    ASSERT_TRUE(body.is_object());
    EXPECT_EQ(body["error"], c.code);
    EXPECT_TRUE(body["message"].is_string() && !body["message"].get<std::string>().empty());
  }
  // Also through the plain client, and the node is as before.
  const HttpResponse response =
      client_->Request("GET", "/v1/watch?from=us:999", "", {{"Accept", "text/event-stream"}});
  EXPECT_EQ(response.status, 404) << Describe(response);
  EXPECT_TRUE(WaitForWatchers(0)) << "a refused watch holds no watcher";
  const json after = Parse(client_->Get("/v1/status").body);
  EXPECT_EQ(after["frontier"], before["frontier"]);
  EXPECT_EQ(after["digest"], before["digest"]);
  EXPECT_EQ(client_->Get("/healthz").status, 200);
}

class WatchSlowConsumerTest : public WatchTest {
 protected:
  std::string ExtraToml() override { return "[storage]\nsync = false\n[watch]\nbuffer_max = 5\n"; }

  // With a watch of "slow/" open that does not read: writes large documents until the node
  // reports the overflow (bounded), then three more. Returns every write's event id, in order.
  std::vector<std::string> WriteUntilOverflow() {
    const std::string padding(50000, 'p');
    std::vector<std::string> ids;
    const auto deadline = Clock::now() + seconds(60);
    bool overflowed = false;
    for (int i = 0; i < 600 && Clock::now() < deadline && !overflowed; ++i) {
      const HttpResponse response =
          client_->Send("PUT", DocPath("slow/" + std::to_string(i % 10)),
                        "{\"i\": " + std::to_string(i) + ", \"pad\": \"" + padding + "\"}");
      EXPECT_EQ(response.status, 200) << Describe(response);
      if (response.status != 200) return ids;
      ids.push_back(Parse(response.body)["event"]);
      overflowed = Metric("meridian_watch_overflows_total") >= 1;
    }
    EXPECT_TRUE(overflowed) << "the watcher never overflowed after " << ids.size() << " writes";
    // A few more: they are not delivered to the overflowed watch.
    for (int i = 0; i < 3; ++i) {
      const HttpResponse response =
          client_->Send("PUT", DocPath("slow/extra"), "{\"i\": " + std::to_string(i) + "}");
      EXPECT_EQ(response.status, 200);
      ids.push_back(Parse(response.body).value("event", ""));
    }
    return ids;
  }
};

TEST_F(WatchSlowConsumerTest, ASlowWatcherIsClosedWithSlowConsumerAndCanResume) {
  SseStream watch = Sse();
  // A small receive buffer: the node's writes to this watcher block soon once it stops reading.
  ASSERT_EQ(watch.Open("/v1/watch?prefix=slow%2F", {}, seconds(10), 4096), 200) << watch.head();
  ASSERT_TRUE(WaitForWatchers(1));
  const std::vector<std::string> ids = WriteUntilOverflow();
  ASSERT_FALSE(HasFailure());

  // Now read: changes (a gap-free prefix of the writes), then an error event, then the end.
  std::vector<std::string> received;
  std::optional<SseEvent> error;
  const auto read_deadline = Clock::now() + seconds(30);
  while (Clock::now() < read_deadline && received.size() <= ids.size()) {
    auto event = watch.Next(std::chrono::duration_cast<milliseconds>(read_deadline - Clock::now()));
    if (!event) break;
    if (event->event == "error") {
      error = event;
      break;
    }
    EXPECT_EQ(event->event, "change");
    received.push_back(event->id);
  }
  ASSERT_TRUE(error.has_value()) << "no error event; received " << received.size()
                                 << " changes, closed " << watch.closed();
  const json body = Parse(error->data);
  ASSERT_TRUE(body.is_object()) << error->data;
  EXPECT_EQ(body["error"], "slow_consumer") << error->data;
  ASSERT_TRUE(body["message"].is_string());
  EXPECT_TRUE(watch.WaitClosed(seconds(10))) << "the node closes a slow watch";
  ASSERT_LT(received.size(), ids.size()) << "a slow watch misses changes";
  EXPECT_EQ(received, std::vector<std::string>(ids.begin(), ids.begin() + received.size()))
      << "what it got is every change up to its last, in order";
  ASSERT_FALSE(received.empty());
  EXPECT_NE(body["message"].get<std::string>().find(received.back()), std::string::npos)
      << "the error names the event to resume from: " << error->data;
  EXPECT_TRUE(WaitForWatchers(0));

  // Resuming from the last change it got delivers the rest without a gap.
  SseStream resumed = Sse();
  ASSERT_EQ(resumed.Open("/v1/watch?prefix=slow%2F&from=" + received.back()), 200)
      << resumed.head();
  const std::vector<std::string> rest(ids.begin() + received.size(), ids.end());
  const auto events = resumed.Collect(rest.size(), seconds(30));
  std::vector<std::string> got;
  for (const SseEvent& event : events) got.push_back(event.id);
  EXPECT_EQ(got, rest);
}

TEST_F(WatchSlowConsumerTest, OverflowMetricCountsClosedWatchesNotDroppedChanges) {
  // meridian_watch_overflows_total: "Watches closed for falling too far behind".
  SseStream watch = Sse();
  ASSERT_EQ(watch.Open("/v1/watch?prefix=slow%2F", {}, seconds(10), 4096), 200) << watch.head();
  ASSERT_TRUE(WaitForWatchers(1));
  const std::vector<std::string> ids = WriteUntilOverflow();
  ASSERT_FALSE(HasFailure());
  // Drain the stream so that the node can close the watch.
  const auto deadline = Clock::now() + seconds(30);
  while (!watch.closed() && Clock::now() < deadline) {
    watch.Next(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
  }
  ASSERT_TRUE(watch.closed());
  ASSERT_TRUE(WaitForWatchers(0));
  EXPECT_EQ(Metric("meridian_watch_overflows_total"), 1)
      << "one watch was closed for falling behind; the metric must not count each change it missed";
}

TEST_F(WatchSlowConsumerTest, ASlowWebSocketWatcherGetsTheErrorAndAPolicyClose) {
  WsWatch ws(node_->http_port());
  ASSERT_TRUE(ws.Open("/v1/watch?prefix=slow%2F", seconds(10), 4096)) << ws.error().message();
  ASSERT_TRUE(WaitForWatchers(1));
  const std::vector<std::string> ids = WriteUntilOverflow();
  ASSERT_FALSE(HasFailure());
  std::vector<std::string> received;
  std::optional<json> error;
  for (size_t i = 0; i <= ids.size(); ++i) {
    const auto message = ws.Read(seconds(10));
    if (!message) break;
    const json parsed = Parse(*message);
    ASSERT_TRUE(parsed.is_object()) << message->substr(0, 200);
    if (parsed.contains("error")) {
      error = parsed;
      break;
    }
    received.push_back(parsed["event"]);
  }
  ASSERT_TRUE(error.has_value()) << "no error message; " << received.size() << " changes, "
                                 << ws.error().message();
  EXPECT_EQ((*error)["error"], "slow_consumer");
  ASSERT_FALSE(received.empty());
  EXPECT_EQ(received, std::vector<std::string>(ids.begin(), ids.begin() + received.size()));
  EXPECT_FALSE(ws.Read(seconds(10)).has_value()) << "the watch ends after the error";
  EXPECT_EQ(ws.error(), websocket::error::closed) << ws.error().message();
  EXPECT_EQ(ws.reason().code, websocket::close_code::policy_error);
  EXPECT_NE(std::string(ws.reason().reason.c_str()).find(received.back()), std::string::npos)
      << "the close reason names the event to resume from: " << ws.reason().reason.c_str();
  EXPECT_TRUE(WaitForWatchers(0));
}

// ---- A bounded change log ------------------------------------------------------------------

class WatchTrimTest : public WatchTest {
 protected:
  std::string ExtraToml() override {
    return "[storage]\nsync = false\n[watch]\nchanges_kept = " + std::to_string(kKept) + "\n";
  }

  // Polls /v1/status (bounded) until the change log starts at `oldest_lsn`; returns its
  // change_log object as last seen.
  json WaitForChangeLogStart(uint64_t oldest_lsn, milliseconds timeout = seconds(10)) {
    json change_log;
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      change_log = Parse(client_->Get("/v1/status").body)["change_log"];
      if (change_log.is_object() && change_log["oldest_lsn"] == oldest_lsn) break;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return change_log;
  }

  // A refused watch: the status, a JSON body with `code`, and `oldest` when given.
  void ExpectRefused(const std::string& target, const std::map<std::string, std::string>& headers,
                     int status, const std::string& code, const std::string& oldest) {
    SCOPED_TRACE(target);
    SseStream watch = Sse();
    EXPECT_EQ(watch.Open(target, headers), status) << watch.head();
    EXPECT_NE(watch.head().find("Content-Type: application/json"), std::string::npos)
        << watch.head();
    const json body = Parse(watch.ReadBody());
    ASSERT_TRUE(body.is_object());
    EXPECT_EQ(body["error"], code) << body.dump();
    if (!oldest.empty()) {
      EXPECT_EQ(body["oldest"], oldest) << body.dump();
      EXPECT_NE(body["message"].get<std::string>().find(oldest), std::string::npos) << body.dump();
    }
  }

  static constexpr uint64_t kKept = 10;
};

TEST_F(WatchTrimTest, TheChangeLogKeepsItsNewestChangesAndRefusesToResumeBeforeThem) {
  std::vector<Expected> writes;
  for (int i = 0; i < 40; ++i) {
    writes.push_back(
        Write("PUT", "t/" + std::to_string(i % 7), "{\"i\": " + std::to_string(i) + "}"));
  }
  ASSERT_EQ(writes.back().event, "us:40");
  // Trimmed within about a second to the newest kKept changes: lsn 31 to 40.
  json change_log = WaitForChangeLogStart(31);
  EXPECT_EQ(change_log, json({{"oldest_lsn", 31},
                              {"last_lsn", 40},
                              {"changes", kKept},
                              {"oldest_event", writes[30].event}}));
  EXPECT_EQ(Metric("meridian_change_log_changes"), kKept);
  EXPECT_EQ(Metric("meridian_change_log_oldest_lsn"), 31);

  // Resume points before the oldest change kept are refused before streaming, naming it.
  const std::string oldest = writes[30].event;
  ExpectRefused("/v1/watch?from=" + writes[4].event, {}, 410, "resume_point_trimmed", oldest);
  ExpectRefused("/v1/watch?prefix=t%2F&from=" + writes[28].event, {}, 410, "resume_point_trimmed",
                oldest);
  ExpectRefused("/v1/watch", {{"Last-Event-ID", writes[0].event}}, 410, "resume_point_trimmed",
                oldest);
  ExpectRefused("/v1/watch?since=us:5", {}, 410, "resume_point_trimmed", oldest);
  ExpectRefused("/v1/watch?since=us:29", {}, 410, "resume_point_trimmed", oldest);
  ExpectRefused("/v1/watch?from=us:41", {}, 404, "unknown_event", "");
  WsWatch ws(node_->http_port());
  EXPECT_FALSE(ws.Open("/v1/watch?from=" + writes[4].event)) << "the handshake fails";
  EXPECT_TRUE(WaitForWatchers(0)) << "a refused watch holds no watcher";

  // From the change before the oldest kept, or later, every change after it is replayed exactly,
  // then live ones follow.
  const std::vector<Expected> kept(writes.begin() + 30, writes.end());
  SseStream from = Sse();
  ASSERT_EQ(from.Open("/v1/watch?from=" + writes[29].event), 200) << from.head();
  SseStream since = Sse();
  ASSERT_EQ(since.Open("/v1/watch?since=us:30"), 200) << since.head();
  SseStream later = Sse();
  ASSERT_EQ(later.Open("/v1/watch?from=" + writes[35].event), 200) << later.head();
  for (SseStream* watch : {&from, &since}) {
    const auto replayed = watch->Collect(kept.size());
    ASSERT_EQ(replayed.size(), kept.size());
    for (size_t i = 0; i < kept.size(); ++i) EXPECT_TRUE(IsSseChange(replayed[i], kept[i])) << i;
  }
  const auto rest = later.Collect(4);
  ASSERT_EQ(rest.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(IsSseChange(rest[i], writes[36 + i])) << i;
  const Expected live = Write("PUT", "t/live", R"({"live": true})");
  for (SseStream* watch : {&from, &since, &later}) {
    const auto next = watch->Next();
    ASSERT_TRUE(next.has_value());
    EXPECT_TRUE(IsSseChange(*next, live));
  }

  // More writes: the log stays at its bound.
  for (int i = 0; i < 25; ++i) Write("PUT", "t/more", "{\"i\": " + std::to_string(i) + "}");
  change_log = WaitForChangeLogStart(66 - kKept + 1);
  EXPECT_EQ(change_log["changes"], kKept) << change_log.dump();
  EXPECT_EQ(change_log["last_lsn"], 66) << change_log.dump();
}

class WatchTrimWhileReplayingTest : public WatchTrimTest {
 protected:
  std::string ExtraToml() override {
    return "[storage]\nsync = false\n[watch]\nchanges_kept = 400\n";
  }
};

TEST_F(WatchTrimWhileReplayingTest, AWatchWhoseBacklogIsTrimmedEndsWithTheErrorNotAGap) {
  // 400 large changes, all kept: replaying them takes more than the socket buffers hold.
  const std::string padding(50000, 'p');
  std::vector<std::string> ids;
  for (int i = 0; i < 400; ++i) {
    const HttpResponse response =
        client_->Send("PUT", DocPath("big/" + std::to_string(i % 10)),
                      "{\"i\": " + std::to_string(i) + ", \"pad\": \"" + padding + "\"}");
    ASSERT_EQ(response.status, 200) << Describe(response);
    ids.push_back(Parse(response.body)["event"]);
  }
  // A watch resuming from the first change that does not read: the node's replay blocks in its
  // first page (256 changes, about 13 MB).
  SseStream watch = Sse();
  ASSERT_EQ(watch.Open("/v1/watch?from=" + ids[0], {}, seconds(10), 4096), 200) << watch.head();
  ASSERT_TRUE(WaitForWatchers(1));
  // Meanwhile 450 more changes: the trim leaves lsn 451 to 850.
  for (int i = 0; i < 450; ++i) {
    const HttpResponse response =
        client_->Send("PUT", DocPath("small/" + std::to_string(i)), R"({"s": 1})");
    ASSERT_EQ(response.status, 200) << Describe(response);
    ids.push_back(Parse(response.body)["event"]);
  }
  ASSERT_EQ(WaitForChangeLogStart(451)["oldest_lsn"], 451);

  // Now read: a gap-free run of changes from the resume point on, then the error, then the end.
  std::vector<std::string> received;
  std::optional<SseEvent> error;
  const auto deadline = Clock::now() + seconds(30);
  while (Clock::now() < deadline && received.size() < ids.size()) {
    auto event = watch.Next(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
    if (!event) break;
    if (event->event == "error") {
      error = event;
      break;
    }
    received.push_back(event->id);
  }
  ASSERT_TRUE(error.has_value()) << "no error event; received " << received.size()
                                 << " changes, closed " << watch.closed();
  const json body = Parse(error->data);
  EXPECT_EQ(body["error"], "resume_point_trimmed") << error->data;
  EXPECT_EQ(body["oldest"], ids[450]) << error->data;
  EXPECT_TRUE(watch.WaitClosed(seconds(10)));
  ASSERT_FALSE(received.empty());
  ASSERT_LT(received.size(), 399u) << "the replay stopped where the log was trimmed";
  EXPECT_EQ(received, std::vector<std::string>(ids.begin() + 1, ids.begin() + 1 + received.size()))
      << "every change up to the last one delivered, in order";
  EXPECT_NE(body["message"].get<std::string>().find(received.back()), std::string::npos)
      << "the error names the last change delivered: " << error->data;
}

class WatchLimitTest : public WatchTest {
 protected:
  std::string ExtraToml() override {
    return "[storage]\nsync = false\n[watch]\nwatchers_max = 1\n";
  }
};

TEST_F(WatchLimitTest, WatchesOverWatchersMaxAreRefused429Overloaded) {
  SseStream first = Sse();
  ASSERT_EQ(first.Open("/v1/watch"), 200);
  SseStream second = Sse();
  const int status = second.Open("/v1/watch");
  const json body = Parse(second.ReadBody());
  EXPECT_EQ(status, 429) << "API.md: 429 overloaded; got " << second.head();
  ASSERT_TRUE(body.is_object());
  EXPECT_EQ(body["error"], "overloaded");
  // The first watch is unaffected.
  const Expected change = Write("PUT", "a", R"({"x": 1})");
  const auto next = first.Next();
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(IsSseChange(*next, change));
}

// ---- WebSocket ----------------------------------------------------------------------------------

TEST_F(WatchTest, WebSocketWatchReceivesJsonChanges) {
  WsWatch ws(node_->http_port());
  ASSERT_TRUE(ws.Open("/v1/watch?prefix=ws%2F")) << ws.error().message();
  ASSERT_TRUE(WaitForWatchers(1));
  std::vector<Expected> expected;
  expected.push_back(Write("PUT", "ws/a", R"({"v": "one"})"));
  Write("PUT", "other", R"({"v": 1})");
  expected.push_back(Write("INCR", "ws/a", R"({"n": 3})"));
  expected.push_back(Write("PATCH", "ws/b", R"({"p": [1, 2]})"));
  expected.push_back(Write("DELETE", "ws/a"));
  const auto messages = ws.Collect(expected.size());
  ASSERT_EQ(messages.size(), expected.size()) << ws.error().message();
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(IsChange(messages[i], expected[i])) << i;
  const Expected sentinel = Write("PUT", "ws/z", "{}");
  const auto next = ws.Read();
  ASSERT_TRUE(next.has_value()) << ws.error().message();
  EXPECT_TRUE(IsChange(Parse(*next), sentinel));

  ws.Close();
  EXPECT_FALSE(ws.error()) << ws.error().message();
  EXPECT_TRUE(WaitForWatchers(0)) << "a closed WebSocket watch is released";
}

TEST_F(WatchTest, WebSocketWatchResumesFromAnEvent) {
  std::vector<Expected> writes;
  for (int i = 0; i < 6; ++i)
    writes.push_back(Write("INCR", "ws/" + std::to_string(i % 2), R"({"n": 1})"));
  WsWatch ws(node_->http_port());
  ASSERT_TRUE(ws.Open("/v1/watch?prefix=ws%2F&from=" + writes[2].event)) << ws.error().message();
  const auto messages = ws.Collect(3);
  ASSERT_EQ(messages.size(), 3u) << ws.error().message();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(messages[i]["event"], writes[3 + i].event);
    EXPECT_EQ(messages[i]["key"], writes[3 + i].key);
  }
  const Expected live = Write("INCR", "ws/0", R"({"n": 1})");
  const auto next = ws.Read();
  ASSERT_TRUE(next.has_value()) << ws.error().message();
  EXPECT_TRUE(IsChange(Parse(*next), live));
}

TEST_F(WatchTest, WebSocketResumeFromAnUnknownEventIsRefused) {
  WsWatch ws(node_->http_port());
  EXPECT_FALSE(ws.Open("/v1/watch?from=us:77"))
      << "the handshake of a watch that cannot resume fails";
  EXPECT_EQ(client_->Get("/healthz").status, 200);
  EXPECT_TRUE(WaitForWatchers(0));
}

// ---- Shutdown -----------------------------------------------------------------------------------

TEST_F(WatchTest, SigtermClosesOpenWatchesAndExitsPromptly) {
  SseStream sse = Sse();
  ASSERT_EQ(sse.Open("/v1/watch"), 200);
  WsWatch ws(node_->http_port());
  ASSERT_TRUE(ws.Open("/v1/watch")) << ws.error().message();
  ASSERT_TRUE(WaitForWatchers(2));
  const Expected change = Write("PUT", "a", R"({"x": 1})");
  ASSERT_TRUE(sse.Next().has_value());
  ASSERT_TRUE(ws.Read().has_value());

  // The WebSocket client keeps reading, as a live client does, so that it answers the node's
  // close frame during the shutdown.
  std::optional<std::string> after_close;
  std::thread reader([&] { after_close = ws.Read(seconds(15)); });
  const auto started = Clock::now();
  EXPECT_EQ(node_->Terminate(seconds(20)), 0) << node_->log();
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(Clock::now() - started).count(), 9000)
      << "open watches must not hold the shutdown up to the 10 s grace period";
  reader.join();
  EXPECT_TRUE(sse.WaitClosed(seconds(5)));
  EXPECT_FALSE(after_close.has_value());
  EXPECT_EQ(ws.error(), websocket::error::closed) << ws.error().message();
  EXPECT_EQ(ws.reason().code, websocket::close_code::going_away)
      << "the node says why it closes the watch";
}

}  // namespace
