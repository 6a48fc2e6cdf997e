// [auth] against a real `meridian start` process (docs/security.md): every 401 and 403 of the
// HTTP API (documents, scans, watches over SSE and WebSocket, admin endpoints), that a refused
// write changes nothing, secrets rotating without a restart, idempotency keys kept per client,
// the scan page byte bound, and a node that refuses to start without a usable secret.
#include <gtest/gtest.h>

// g++ 12 needs <utility> before Asio.
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "api/session_token.h"
#include "auth/token.h"
#include "client/run_one.h"
#include "support/http_client.h"
#include "support/node_process.h"
#include "support/sse_stream.h"
#include "support/temp_dir.h"
#include "support/tokens.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using meridian::testing::EncodeKey;
using meridian::testing::HttpClient;
using meridian::testing::HttpResponse;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using meridian::testing::NowS;
using meridian::testing::SseStream;
using meridian::testing::TempDir;
using meridian::testing::WaitFor;
using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Headers = std::map<std::string, std::string>;

const std::string kSecretA = "secret A: at least thirty-two bytes of it, for tests";
const std::string kSecretB = "secret B: at least thirty-two bytes of it, for tests";
constexpr size_t kScanPageBytes = 4096;  // [http] scan_page_bytes_max of the node under test

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string Describe(const HttpResponse& response) {
  return "HTTP " + std::to_string(response.status) + " '" + response.body.substr(0, 300) + "' " +
         response.error;
}

meridian::auth::Claims Claims(std::vector<std::string> read, std::vector<std::string> write,
                              bool admin = false, std::string sub = {}) {
  return meridian::testing::TokenClaims(std::move(read), std::move(write), admin, std::move(sub));
}

std::string Bearer(const meridian::auth::Claims& claims, const std::string& secret = kSecretA) {
  return meridian::testing::Bearer(claims, secret);
}

// Replaces the file whole (a new file renamed over it), as a careful operator does.
void WriteFile(const std::string& path, const std::string& contents) {
  const std::string temporary = path + ".new";
  std::ofstream(temporary, std::ios::binary | std::ios::trunc) << contents;
  ASSERT_EQ(std::rename(temporary.c_str(), path.c_str()), 0);
}

::testing::AssertionResult IsError(const HttpResponse& response, int status,
                                   const std::string& code) {
  const json body = Parse(response.body);
  if (response.status != status || !body.is_object() || body.value("error", "") != code ||
      body.value("message", "").empty()) {
    return ::testing::AssertionFailure()
           << "expected " << status << " " << code << ", got " << Describe(response);
  }
  if (status == 401 && response.Header("www-authenticate") != "Bearer") {
    return ::testing::AssertionFailure() << "401 without WWW-Authenticate: Bearer";
  }
  return ::testing::AssertionSuccess();
}

// A WebSocket handshake to `target` with an Authorization header; answers the HTTP status of the
// handshake's response (101 when accepted) and, when accepted, keeps the stream for Read().
class WsClient {
 public:
  explicit WsClient(uint16_t port) : port_(port), ws_(io_) {}

  int Open(const std::string& target, const std::string& authorization) {
    auto& lowest = beast::get_lowest_layer(ws_);
    lowest.expires_after(seconds(10));
    beast::error_code ec = Run([&](auto handler) {
      lowest.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_),
                           [handler](beast::error_code e) mutable { handler(e, 0); });
    });
    if (ec) return 0;
    if (!authorization.empty()) {
      ws_.set_option(websocket::stream_base::decorator([authorization](websocket::request_type& r) {
        r.set(http::field::authorization, authorization);
      }));
    }
    lowest.expires_after(seconds(10));
    ec = Run([&](auto handler) {
      ws_.async_handshake(response_, "127.0.0.1:" + std::to_string(port_), target,
                          [handler](beast::error_code e) mutable { handler(e, 0); });
    });
    return static_cast<int>(response_.result_int());
  }
  const std::string& body() const { return response_.body(); }

  std::optional<std::string> Read() {
    beast::flat_buffer buffer;
    beast::get_lowest_layer(ws_).expires_after(seconds(10));
    beast::error_code ec = Run([&](auto handler) { ws_.async_read(buffer, handler); });
    if (ec) return std::nullopt;
    return beast::buffers_to_string(buffer.data());
  }

 private:
  template <typename Start>
  beast::error_code Run(Start start) {
    return meridian::client::RunOne(io_, std::move(start));
  }

  uint16_t port_;
  asio::io_context io_;
  websocket::stream<beast::tcp_stream> ws_;
  websocket::response_type response_;
};

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    secret_path_ = dir_.path() + "/jwt.key";
    WriteFile(secret_path_, kSecretA + "\n");
    NodeOptions options;
    options.extra_toml =
        "[storage]\nsync = false\n[http]\nscan_page_bytes_max = " + std::to_string(kScanPageBytes) +
        "\n[auth]\njwt_secret_file = \"" + secret_path_ + "\"\n";
    node_ = std::make_unique<NodeProcess>(options);
    ASSERT_TRUE(node_->Start()) << "the node did not come up:\n" << node_->log();
    client_.emplace(node_->Client());
    admin_ = Bearer(Claims({""}, {""}, /*admin=*/true));
  }

  HttpResponse Call(const std::string& method, const std::string& target,
                    const std::string& authorization, const std::string& body = "",
                    Headers headers = {}) {
    if (!authorization.empty()) headers["Authorization"] = authorization;
    if (!body.empty()) headers["Content-Type"] = "application/json";
    return client_->Request(method, target, body, headers);
  }

  // The status JSON, read with an admin token.
  json Status() {
    const HttpResponse response = Call("GET", "/v1/status", admin_);
    EXPECT_EQ(response.status, 200) << Describe(response);
    return Parse(response.body);
  }

  TempDir dir_;
  std::string secret_path_;
  std::unique_ptr<NodeProcess> node_;
  std::optional<HttpClient> client_;
  std::string admin_;
};

// Every route that needs a token, as (method, target, body).
struct Route {
  std::string method;
  std::string target;
  std::string body;
};
const std::vector<Route> kTokenRoutes = {
    {"GET", "/v1/docs/a", ""},
    {"HEAD", "/v1/docs/a", ""},
    {"PUT", "/v1/docs/a", R"({"v":1})"},
    {"PATCH", "/v1/docs/a", R"({"v":1})"},
    {"POST", "/v1/docs/a/incr", R"({"n":1})"},
    {"DELETE", "/v1/docs/a", ""},
    {"GET", "/v1/docs?prefix=a", ""},
    {"GET", "/v1/conflicts", ""},
    {"GET", "/v1/status", ""},
    {"GET", "/metrics", ""},
    {"GET", "/v1/verify", ""},
    {"POST", "/v1/verify", ""},
    {"GET", "/v1/repairs", ""},
    {"GET", "/v1/dead-letters", ""},
    {"POST", "/v1/dead-letters/1/retry", ""},
    {"POST", "/v1/ids", ""},
};

TEST_F(AuthTest, HealthAndReadinessNeedNoToken) {
  EXPECT_EQ(Call("GET", "/healthz", "").status, 200);
  EXPECT_EQ(Call("GET", "/readyz", "").status, 200);
  EXPECT_EQ(Call("GET", "/healthz", "Bearer nonsense").status, 200);
}

TEST_F(AuthTest, EveryOtherRequestWithoutAGoodTokenIsUnauthenticated) {
  const auto bad = meridian::testing::RefusedAuthorizations(kSecretA, kSecretB);
  for (const Route& route : kTokenRoutes) {
    for (const auto& [authorization, reason] : bad) {
      const HttpResponse response = Call(route.method, route.target, authorization, route.body);
      if (route.method == "HEAD") {
        EXPECT_EQ(response.status, 401) << route.target;
        continue;
      }
      EXPECT_TRUE(IsError(response, 401, "unauthenticated"))
          << route.method << " " << route.target << " with '" << authorization << "'";
      EXPECT_NE(Parse(response.body).value("message", "").find(reason), std::string::npos)
          << Describe(response);
    }
  }
  // Nothing is learnt of routes without a token either.
  EXPECT_TRUE(IsError(Call("GET", "/v1/nothing-here", ""), 401, "unauthenticated"));
  EXPECT_TRUE(IsError(Call("GET", "/v1/nothing-here", admin_), 404, "not_found"));
}

TEST_F(AuthTest, DocumentsOutsideTheTokensPrefixesAreForbidden) {
  const std::string token = Bearer(Claims({"orders/"}, {"orders/eu/"}));
  ASSERT_EQ(Call("PUT", "/v1/docs/" + EncodeKey("orders/eu/1"), token, R"({"n":1})").status, 200);
  ASSERT_EQ(Call("PUT", "/v1/docs/" + EncodeKey("carts/1"), admin_, R"({"n":1})").status, 200);
  EXPECT_EQ(Call("GET", "/v1/docs/" + EncodeKey("orders/eu/1"), token).status, 200);
  EXPECT_TRUE(IsError(Call("GET", "/v1/docs/" + EncodeKey("carts/1"), token), 403, "forbidden"));
  EXPECT_EQ(Call("HEAD", "/v1/docs/" + EncodeKey("carts/1"), token).status, 403);
  const std::string us = "/v1/docs/" + EncodeKey("orders/us/1");
  EXPECT_TRUE(IsError(Call("PUT", us, token, R"({"n":1})"), 403, "forbidden"));
  EXPECT_TRUE(IsError(Call("PATCH", us, token, R"({"n":1})"), 403, "forbidden"));
  EXPECT_TRUE(IsError(Call("POST", us + "/incr", token, R"({"n":1})"), 403, "forbidden"));
  EXPECT_TRUE(IsError(Call("DELETE", us, token), 403, "forbidden"));
  const std::string eu = "/v1/docs/" + EncodeKey("orders/eu/1");
  EXPECT_EQ(Call("PATCH", eu, token, R"({"m":1})").status, 200);
  EXPECT_EQ(Call("POST", eu + "/incr", token, R"({"n":1})").status, 200);
  EXPECT_EQ(Call("DELETE", eu, token).status, 200);
  // admin is not a key grant.
  const std::string only_admin = Bearer(Claims({}, {}, true));
  EXPECT_TRUE(
      IsError(Call("GET", "/v1/docs/" + EncodeKey("carts/1"), only_admin), 403, "forbidden"));
}

TEST_F(AuthTest, ScansNeedAReadPrefixOfTheirPrefix) {
  const std::string token = Bearer(Claims({"orders/"}, {}));
  EXPECT_EQ(Call("GET", "/v1/docs?prefix=orders%2F", token).status, 200);
  EXPECT_EQ(Call("GET", "/v1/docs?prefix=orders%2Feu%2F", token).status, 200);
  EXPECT_TRUE(IsError(Call("GET", "/v1/docs?prefix=order", token), 403, "forbidden"));
  EXPECT_TRUE(IsError(Call("GET", "/v1/docs", token), 403, "forbidden"));
  EXPECT_TRUE(IsError(Call("GET", "/v1/docs?prefix=carts%2F", token), 403, "forbidden"));
}

TEST_F(AuthTest, AdminEndpointsNeedAdmin) {
  const std::string plain = Bearer(Claims({""}, {""}));
  for (const Route& route : kTokenRoutes) {
    if (route.target.starts_with("/v1/docs") || route.target == "/v1/ids") continue;
    const HttpResponse refused = Call(route.method, route.target, plain, route.body);
    EXPECT_TRUE(IsError(refused, 403, "forbidden")) << route.method << " " << route.target;
    const HttpResponse allowed = Call(route.method, route.target, admin_, route.body);
    // Past authorization: the endpoint's own answer (no dead letter 1 exists here).
    if (route.target == "/v1/dead-letters/1/retry") {
      EXPECT_TRUE(IsError(allowed, 404, "unknown_dead_letter")) << Describe(allowed);
    } else {
      EXPECT_LT(allowed.status, 300)
          << route.method << " " << route.target << " " << Describe(allowed);
    }
  }
}

TEST_F(AuthTest, IdsNeedAWritePrefixOfAnyKey) {
  const HttpResponse allowed = Call("POST", "/v1/ids?count=2", Bearer(Claims({}, {"carts/"})));
  EXPECT_EQ(allowed.status, 200) << Describe(allowed);
  EXPECT_EQ(Parse(allowed.body)["ids"].size(), 2u) << Describe(allowed);
  EXPECT_TRUE(IsError(Call("POST", "/v1/ids", Bearer(Claims({""}, {}))), 403, "forbidden"));
  EXPECT_TRUE(
      IsError(Call("POST", "/v1/ids", Bearer(Claims({}, {}, /*admin=*/true))), 403, "forbidden"));
}

TEST_F(AuthTest, ARefusedRequestChangesNothing) {
  const std::string path = "/v1/docs/" + EncodeKey("orders/1");
  ASSERT_EQ(Call("PUT", path, admin_, R"({"v":1,"n":5})").status, 200);
  const json before = Status();
  const std::string reader = Bearer(Claims({""}, {"carts/"}));
  meridian::auth::Claims expired = Claims({""}, {""});
  expired.exp = NowS() - 1;
  for (const std::string& authorization :
       {std::string(), reader, Bearer(expired), Bearer(Claims({""}, {""}), kSecretB)}) {
    EXPECT_GE(Call("PUT", path, authorization, R"({"v":2})").status, 401);
    EXPECT_GE(Call("PATCH", path, authorization, R"({"v":3})").status, 401);
    EXPECT_GE(Call("POST", path + "/incr", authorization, R"({"n":1})").status, 401);
    EXPECT_GE(Call("DELETE", path, authorization).status, 401);
    EXPECT_GE(Call("POST", "/v1/verify", authorization).status, 401);
  }
  const HttpResponse doc = Call("GET", path, admin_);
  EXPECT_EQ(Parse(doc.body), Parse(R"({"v":1,"n":5})")) << Describe(doc);
  const json after = Status();
  EXPECT_EQ(after["local_events"], before["local_events"]);
  EXPECT_EQ(after["documents"], before["documents"]);
  EXPECT_EQ(after["digest"], before["digest"]);
}

TEST_F(AuthTest, SseWatchesNeedATokenAndAReadPrefixOfTheirPrefix) {
  const std::string token = Bearer(Claims({"orders/"}, {}));
  {
    SseStream sse(node_->http_port());
    EXPECT_EQ(sse.Open("/v1/watch?prefix=orders%2F"), 401);
    EXPECT_NE(sse.ReadBody().find("unauthenticated"), std::string::npos);
  }
  {
    SseStream sse(node_->http_port());
    EXPECT_EQ(sse.Open("/v1/watch?prefix=orders%2F",
                       {{"Authorization", Bearer(Claims({""}, {}), kSecretB)}}),
              401);
  }
  for (const std::string prefix : {"", "order", "carts%2F"}) {
    SseStream sse(node_->http_port());
    EXPECT_EQ(sse.Open("/v1/watch?prefix=" + prefix, {{"Authorization", token}}), 403) << prefix;
    EXPECT_NE(sse.ReadBody().find("forbidden"), std::string::npos);
  }
  SseStream sse(node_->http_port());
  ASSERT_EQ(sse.Open("/v1/watch?prefix=orders%2F", {{"Authorization", token}}), 200);
  ASSERT_EQ(Call("PUT", "/v1/docs/" + EncodeKey("orders/7"), admin_, R"({"v":7})").status, 200);
  auto event = sse.Next();
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(Parse(event->data)["key"], "orders/7");
}

TEST_F(AuthTest, WebSocketWatchesNeedATokenAndAReadPrefixOfTheirPrefix) {
  const std::string token = Bearer(Claims({"orders/"}, {}));
  {
    WsClient ws(node_->http_port());
    EXPECT_EQ(ws.Open("/v1/watch?prefix=orders%2F", ""), 401);
    EXPECT_NE(ws.body().find("unauthenticated"), std::string::npos) << ws.body();
  }
  {
    WsClient ws(node_->http_port());
    EXPECT_EQ(ws.Open("/v1/watch?prefix=carts%2F", token), 403);
    EXPECT_NE(ws.body().find("forbidden"), std::string::npos) << ws.body();
  }
  WsClient ws(node_->http_port());
  ASSERT_EQ(ws.Open("/v1/watch?prefix=orders%2F", token), 101);
  ASSERT_EQ(Call("PUT", "/v1/docs/" + EncodeKey("orders/8"), admin_, R"({"v":8})").status, 200);
  auto message = ws.Read();
  ASSERT_TRUE(message.has_value());
  EXPECT_EQ(Parse(*message)["key"], "orders/8");
}

TEST_F(AuthTest, SecretsRotateWithoutARestart) {
  const std::string path = "/v1/docs/" + EncodeKey("k");
  const std::string signed_a = Bearer(Claims({""}, {}), kSecretA);
  const std::string signed_b = Bearer(Claims({""}, {}), kSecretB);
  EXPECT_EQ(Call("GET", path, signed_a).status, 404);
  EXPECT_TRUE(IsError(Call("GET", path, signed_b), 401, "unauthenticated"));

  // B signs from now on; A's tokens are still accepted until they expire.
  WriteFile(secret_path_, kSecretB + "\n" + kSecretA + "\n");
  EXPECT_TRUE(WaitFor([&] { return Call("GET", path, signed_b).status == 404; }, seconds(10)))
      << node_->log();
  EXPECT_EQ(Call("GET", path, signed_a).status, 404);

  // A broken file is logged and changes nothing (the file is checked as requests come).
  WriteFile(secret_path_, "too short\n");
  EXPECT_TRUE(WaitFor(
      [&] {
        Call("GET", path, signed_b);
        return node_->log().find("keeping the 2 secret") != std::string::npos;
      },
      seconds(10)))
      << node_->log();
  EXPECT_EQ(Call("GET", path, signed_a).status, 404);
  EXPECT_EQ(Call("GET", path, signed_b).status, 404);

  // A dropped.
  WriteFile(secret_path_, kSecretB + "\n");
  EXPECT_TRUE(WaitFor([&] { return Call("GET", path, signed_a).status == 401; }, seconds(10)))
      << node_->log();
  EXPECT_EQ(Call("GET", path, signed_b).status, 404);
  EXPECT_EQ(node_->Terminate(), 0);
}

// A token the node has verified (and keeps verified for the next requests) stops working when it
// expires.
TEST_F(AuthTest, AVerifiedTokenIsRefusedOnceItExpires) {
  const std::string path = "/v1/docs/" + EncodeKey("k");
  meridian::auth::Claims claims = Claims({""}, {});
  claims.exp = NowS() + 2;
  const std::string token = Bearer(claims);
  ASSERT_EQ(Call("GET", path, token).status, 404);
  ASSERT_EQ(Call("GET", path, token).status, 404);
  EXPECT_TRUE(WaitFor([&] { return IsError(Call("GET", path, token), 401, "unauthenticated"); },
                      seconds(10)));
  const HttpResponse refused = Call("GET", path, token);
  EXPECT_NE(refused.body.find("expired"), std::string::npos) << Describe(refused);
}

TEST_F(AuthTest, IdempotencyKeysAreKeptPerClient) {
  const std::string alice = Bearer(Claims({""}, {""}, false, "alice"));
  const std::string bob = Bearer(Claims({""}, {""}, false, "bob"));
  const Headers key = {{"Idempotency-Key", "order-17"}};
  const HttpResponse first = Call("PUT", "/v1/docs/a1", alice, R"({"by":"alice"})", key);
  ASSERT_EQ(first.status, 200) << Describe(first);
  // Bob's same key is his own: a new write to another document, not 422 and not Alice's receipt.
  const HttpResponse bobs = Call("PUT", "/v1/docs/b1", bob, R"({"by":"bob"})", key);
  ASSERT_EQ(bobs.status, 200) << Describe(bobs);
  EXPECT_FALSE(Parse(bobs.body).contains("replayed"));
  EXPECT_NE(Parse(bobs.body)["event"], Parse(first.body)["event"]);
  // Each retry answers its own client's receipt.
  const HttpResponse alice_again = Call("PUT", "/v1/docs/a1", alice, R"({"by":"alice"})", key);
  EXPECT_EQ(Parse(alice_again.body)["event"], Parse(first.body)["event"]);
  EXPECT_EQ(Parse(alice_again.body)["replayed"], true);
  // A new token of the same subject is the same client.
  const std::string alice_later = Bearer(Claims({"a"}, {"a"}, false, "alice"));
  const HttpResponse later = Call("PUT", "/v1/docs/a1", alice_later, R"({"by":"alice"})", key);
  EXPECT_EQ(Parse(later.body)["event"], Parse(first.body)["event"]) << Describe(later);
  const HttpResponse bob_again = Call("PUT", "/v1/docs/b1", bob, R"({"by":"bob"})", key);
  EXPECT_EQ(Parse(bob_again.body)["event"], Parse(bobs.body)["event"]);
  // Reusing one's own key for something else names the key as the client sent it.
  const HttpResponse reused = Call("PUT", "/v1/docs/a2", alice, R"({"by":"alice"})", key);
  EXPECT_TRUE(IsError(reused, 422, "idempotency_key_reused"));
  EXPECT_NE(reused.body.find("'order-17' was already used"), std::string::npos) << reused.body;
  // Tokens without a subject are each a client of their own.
  const std::string anonymous_1 = Bearer(Claims({""}, {""}));
  const std::string anonymous_2 = Bearer(Claims({""}, {"", "x"}));
  const Headers other = {{"Idempotency-Key", "k-2"}};
  EXPECT_EQ(Call("PUT", "/v1/docs/c1", anonymous_1, R"({"v":1})", other).status, 200);
  const HttpResponse second = Call("PUT", "/v1/docs/c2", anonymous_2, R"({"v":2})", other);
  EXPECT_EQ(second.status, 200) << Describe(second);
  EXPECT_EQ(Parse(Call("GET", "/v1/docs/b1", admin_).body)["by"], "bob");
}

TEST_F(AuthTest, AScanPageEndsBeforeItsBytesPassTheBound) {
  // 20 documents of about 1000 bytes: a page of 4096 bytes holds three of them.
  const std::string filler(1000, 'x');
  for (int i = 0; i < 20; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "big/%02d", i);
    ASSERT_EQ(
        Call("PUT", "/v1/docs/" + EncodeKey(key), admin_, json{{"fill", filler}, {"i", i}}.dump())
            .status,
        200);
  }
  std::vector<std::string> keys;
  std::string after;
  for (int page = 0; page < 50; ++page) {
    const HttpResponse response = Call(
        "GET",
        "/v1/docs?prefix=big%2F&limit=1000" + (after.empty() ? "" : "&after=" + EncodeKey(after)),
        admin_);
    ASSERT_EQ(response.status, 200) << Describe(response);
    const json body = Parse(response.body);
    size_t bytes = 0;
    for (const json& item : body["items"]) {
      keys.push_back(item["key"]);
      bytes += item["key"].get<std::string>().size() + item["doc"].dump().size() + 16;
    }
    EXPECT_GE(body["items"].size(), 1u);
    EXPECT_LE(bytes, kScanPageBytes) << response.body.substr(0, 200);
    if (body["next"].is_null()) break;
    EXPECT_LT(body["items"].size(), 20u);
    EXPECT_EQ(body["next"], keys.back());
    after = body["next"];
  }
  ASSERT_EQ(keys.size(), 20u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), 20u);
}

// A node with [auth] whose secret file is missing or too short does not start, and says why.
TEST(AuthStartTest, ANodeRefusesToStartWithoutAUsableSecret) {
  TempDir dir;
  const std::string short_path = dir.path() + "/short.key";
  WriteFile(short_path, "too short\n");
  for (const std::string& path : {dir.path() + "/missing.key", short_path}) {
    NodeOptions options;
    options.extra_toml = "[auth]\njwt_secret_file = \"" + path + "\"\n";
    NodeProcess node(options);
    EXPECT_FALSE(node.Start(seconds(20)));
    EXPECT_NE(node.log().find("jwt_secret_file"), std::string::npos) << node.log();
    EXPECT_NE(node.log().find(path), std::string::npos) << node.log();
  }
}

}  // namespace
