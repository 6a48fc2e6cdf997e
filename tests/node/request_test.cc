// Request parsing: routes, keys, queries, bodies and the error each bad input gets.
#include <gtest/gtest.h>

#include <random>

#include "api/request.h"
#include "api/session_token.h"

namespace meridian::api {
namespace {

std::variant<ApiCall, ApiError> Parse(std::string_view method, std::string_view target,
                                      std::string_view body = "",
                                      std::string_view content_type = "application/json") {
  return ParseRequest(RequestView{method, target, content_type, "", "", body, ""}, core::Limits{});
}

ApiCall Ok(const std::variant<ApiCall, ApiError>& result) {
  if (const auto* error = std::get_if<ApiError>(&result)) {
    ADD_FAILURE() << "unexpected error " << error->status << " " << error->code << ": "
                  << error->message;
    return {};
  }
  return std::get<ApiCall>(result);
}

ApiError Err(const std::variant<ApiCall, ApiError>& result) {
  if (!std::holds_alternative<ApiError>(result)) {
    ADD_FAILURE() << "expected an error";
    return {};
  }
  return std::get<ApiError>(result);
}

TEST(RequestTest, WritesTakeIfMatchOrIfNoneMatch) {
  const auto with = [](std::string_view if_match, std::string_view if_none_match) {
    return ParseRequest(RequestView{"PUT", "/v1/docs/k", "application/json", "", "", "{}", "",
                                    if_match, if_none_match},
                        core::Limits{});
  };
  ApiCall call = Ok(with("\"00112233aabbccdd\"", ""));
  ASSERT_TRUE(call.condition.has_value());
  EXPECT_EQ(call.condition->key, "k");
  EXPECT_EQ(call.condition->version, "00112233aabbccdd");
  EXPECT_FALSE(call.condition->exists.has_value());
  EXPECT_EQ(Ok(with(" * ", "")).condition->exists, true);
  EXPECT_EQ(Ok(with("", "*")).condition->exists, false);
  EXPECT_FALSE(Ok(with("", "")).condition.has_value());
  for (auto [if_match, if_none_match] :
       std::vector<std::pair<std::string_view, std::string_view>>{
           {"abc", ""}, {"\"a\",\"b\"", ""}, {"\"", ""}, {"", "\"abc\""}, {"*", "*"}}) {
    EXPECT_EQ(Err(with(if_match, if_none_match)).code, "bad_header") << if_match << if_none_match;
  }
}

TEST(RequestTest, ParsesTransactions) {
  ApiCall call = Ok(Parse("POST", "/v1/txn",
                          R"({"if":[{"key":"a","version":"v1"},{"key":"b","exists":false}],)"
                          R"("then":[{"op":"put","key":"a","doc":{"x":1}},)"
                          R"({"op":"patch","key":"b","doc":{"y":[1,2]}},)"
                          R"({"op":"incr","key":"c","doc":{"n":-2}},{"op":"delete","key":"d"}],)"
                          R"("else":[{"op":"incr","key":"stats","doc":{"failed":1}}]})"));
  EXPECT_EQ(call.route, Route::kTransaction);
  ASSERT_NE(call.txn, nullptr);
  ASSERT_EQ(call.txn->conditions.size(), 2u);
  EXPECT_EQ(call.txn->conditions[0].version, "v1");
  EXPECT_EQ(call.txn->conditions[1].exists, false);
  ASSERT_EQ(call.txn->then_ops.size(), 4u);
  EXPECT_EQ(call.txn->then_ops[0].op.kind, core::OpKind::kReplace);
  EXPECT_EQ(call.txn->then_ops[1].op.fields[0].value, "[1,2]");
  EXPECT_EQ(call.txn->then_ops[2].op.counters[0].delta, -2);
  EXPECT_EQ(call.txn->then_ops[3].op.kind, core::OpKind::kDelete);
  EXPECT_EQ(call.txn->else_ops[0].key, "stats");
  EXPECT_TRUE(IsWrite(call.route));

  // Each malformed part is named.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"([])", "malformed_json"},
      {R"({"then":{}})", "bad_transaction"},
      {R"({"if":[{"key":"a"}]})", "bad_transaction"},
      {R"({"if":[{"key":"a","version":"v","exists":true}]})", "bad_transaction"},
      {R"({"if":[{"key":"a","version":1}]})", "bad_transaction"},
      {R"({"then":[{"op":"upsert","key":"a","doc":{}}]})", "bad_transaction"},
      {R"({"then":[{"op":"put","key":"a"}]})", "bad_transaction"},
      {R"({"then":[{"op":"delete","key":"a","doc":{}}]})", "bad_transaction"},
      {R"({"then":[{"op":"incr","key":"a","doc":{"n":"x"}}]})", "bad_increment"},
      {R"({"then":[{"op":"put","key":"","doc":{}}]})", "invalid_key"},
      {R"({"then":[{"op":"put","doc":{}}]})", "bad_transaction"},
      {R"({"then":[{"op":"put","key":"a","doc":{},"extra":1}]})", "bad_transaction"},
      {R"({"when":[]})", "bad_transaction"},
  };
  for (const auto& [body, code] : bad) {
    EXPECT_EQ(Err(Parse("POST", "/v1/txn", body)).code, code) << body;
  }
  std::string many = R"({"then":[)";
  for (uint32_t i = 0; i <= core::kTransactionOpsMax; ++i) {
    many += std::string(i ? "," : "") + R"({"op":"delete","key":"k"})";
  }
  many += "]}";
  EXPECT_EQ(Err(Parse("POST", "/v1/txn", many)).status, 413);
  EXPECT_EQ(Err(Parse("GET", "/v1/txn")).status, 405);
  EXPECT_EQ(Err(Parse("POST", "/v1/txn", "{}", "text/plain")).status, 415);
}

// Two-phase commit's routes (docs/http-api.md#transactions-across-homes).
TEST(RequestTest, ParsesPreparesAndResolves) {
  const std::string txn = R"({"then":[{"op":"put","key":"a","doc":{}}]})";
  ApiCall prepare = Ok(Parse("POST", "/v1/txn?prepare=us-00ff&lock_ms=8000", txn));
  EXPECT_EQ(prepare.route, Route::kPrepareTransaction);
  EXPECT_EQ(prepare.txn_id, "us-00ff");
  EXPECT_EQ(prepare.lock_ms, 8000u);
  ASSERT_NE(prepare.txn, nullptr);
  EXPECT_EQ(prepare.txn->then_ops.size(), 1u);
  for (const char* target : {"/v1/txn?prepare=us-00ff", "/v1/txn?prepare=us-00ff&lock_ms=0",
                             "/v1/txn?prepare=a%20b&lock_ms=10", "/v1/txn?prepare=&lock_ms=10",
                             "/v1/txn?prepare=us-1&lock_ms=10&consistency=strong"}) {
    EXPECT_EQ(Err(Parse("POST", target, txn)).code, "bad_parameter") << target;
  }
  ApiCall resolve = Ok(Parse("POST", "/v1/txn/resolve?id=us-00ff"));
  EXPECT_EQ(resolve.route, Route::kResolveTransaction);
  EXPECT_EQ(resolve.txn_id, "us-00ff");
  EXPECT_EQ(Err(Parse("POST", "/v1/txn/resolve")).code, "bad_parameter");
  EXPECT_EQ(Err(Parse("GET", "/v1/txn/resolve?id=x")).status, 405);
}

TEST(RequestTest, RoutesDocumentWrites) {
  ApiCall put = Ok(Parse("PUT", "/v1/docs/sku-1", R"({"b":2,"a":"x"})"));
  EXPECT_EQ(put.route, Route::kPutDocument);
  EXPECT_EQ(put.key, "sku-1");
  EXPECT_EQ(put.op.kind, core::OpKind::kReplace);
  ASSERT_EQ(put.op.fields.size(), 2u);
  EXPECT_EQ(put.op.fields[0].name, "a");  // sorted
  EXPECT_EQ(put.op.fields[0].value, "\"x\"");

  ApiCall patch = Ok(Parse("PATCH", "/v1/docs/sku-1", R"({"n":{"z":1,"y":[1,2]}})"));
  EXPECT_EQ(patch.op.kind, core::OpKind::kSet);
  EXPECT_EQ(patch.op.fields[0].value, R"({"y":[1,2],"z":1})");  // canonical

  ApiCall incr = Ok(Parse("POST", "/v1/docs/sku-1/incr", R"({"stock":-3,"sold":3})"));
  EXPECT_EQ(incr.route, Route::kIncrementDocument);
  ASSERT_EQ(incr.op.counters.size(), 2u);
  EXPECT_EQ(incr.op.counters[1].name, "stock");
  EXPECT_EQ(incr.op.counters[1].delta, -3);

  ApiCall del = Ok(Parse("DELETE", "/v1/docs/sku-1"));
  EXPECT_EQ(del.route, Route::kDeleteDocument);
  EXPECT_EQ(del.op.kind, core::OpKind::kDelete);
}

TEST(RequestTest, DecodesPercentEncodedKeys) {
  EXPECT_EQ(Ok(Parse("GET", "/v1/docs/a%2Fb%20c")).key, "a/b c");
  EXPECT_EQ(Ok(Parse("GET", "/v1/docs/caf%C3%A9")).key, "café");
  EXPECT_EQ(Ok(Parse("GET", "/v1/docs/a+b")).key, "a+b");  // '+' is literal in a path
  // The key "x/incr" travels as x%2Fincr and is a document, not an increment route.
  ApiCall call = Ok(Parse("GET", "/v1/docs/x%2Fincr"));
  EXPECT_EQ(call.route, Route::kGetDocument);
  EXPECT_EQ(call.key, "x/incr");
}

TEST(RequestTest, RejectsBadKeys) {
  EXPECT_EQ(Err(Parse("GET", "/v1/docs/a%ZZ")).code, "bad_encoding");
  EXPECT_EQ(Err(Parse("GET", "/v1/docs/a%2")).code, "bad_encoding");
  EXPECT_EQ(Err(Parse("GET", "/v1/docs/%FF")).code, "invalid_key");
  EXPECT_EQ(Err(Parse("GET", "/v1/docs/")).status, 400);
  EXPECT_EQ(Err(Parse("GET", "/v1/docs/" + std::string(1025, 'k'))).status, 413);
  EXPECT_EQ(Err(Parse("GET", "/v1/docs/a/b")).status, 404);
}

TEST(RequestTest, RejectsBadBodies) {
  EXPECT_EQ(Err(Parse("PUT", "/v1/docs/k", "{")).code, "malformed_json");
  EXPECT_EQ(Err(Parse("PUT", "/v1/docs/k", "[1,2]")).code, "malformed_json");
  EXPECT_EQ(Err(Parse("PUT", "/v1/docs/k", "{\"a\":\"\xFF\"}")).code, "malformed_json");
  EXPECT_EQ(Err(Parse("PUT", "/v1/docs/k", "{}", "text/plain")).status, 415);
  EXPECT_EQ(Ok(Parse("PUT", "/v1/docs/k", "{}", "application/json; charset=utf-8")).route,
            Route::kPutDocument);
  EXPECT_EQ(Err(Parse("POST", "/v1/docs/k/incr", R"({"n":1.5})")).code, "bad_increment");
  EXPECT_EQ(Err(Parse("POST", "/v1/docs/k/incr", R"({"n":"1"})")).code, "bad_increment");
  EXPECT_EQ(Err(Parse("POST", "/v1/docs/k/incr", R"({"n":9223372036854775808})")).code,
            "bad_increment");
  EXPECT_EQ(
      Ok(Parse("POST", "/v1/docs/k/incr", R"({"n":9223372036854775807})")).op.counters[0].delta,
      INT64_MAX);
  EXPECT_EQ(Err(Parse("POST", "/v1/docs/k/incr", "{}")).status, 400);
  EXPECT_EQ(Err(Parse("PUT", "/v1/docs/k", "{\"" + std::string(300, 'f') + "\":1}")).status, 413);
}

TEST(RequestTest, MethodsAndRoutes) {
  ApiError error = Err(Parse("POST", "/v1/docs/k"));
  EXPECT_EQ(error.status, 405);
  EXPECT_EQ(error.allow, "GET, HEAD, PUT, PATCH, DELETE");
  EXPECT_EQ(Err(Parse("GET", "/v1/docs/k/incr")).status, 405);
  EXPECT_EQ(Err(Parse("DELETE", "/v1/status")).status, 405);
  EXPECT_EQ(Err(Parse("GET", "/v2/nothing")).status, 404);
  EXPECT_EQ(Ok(Parse("GET", "/healthz")).route, Route::kHealth);
  EXPECT_EQ(Ok(Parse("GET", "/readyz")).route, Route::kReady);
  EXPECT_EQ(Ok(Parse("GET", "/metrics")).route, Route::kMetrics);
  EXPECT_EQ(Ok(Parse("GET", "/v1/status")).route, Route::kStatus);
  EXPECT_EQ(Ok(Parse("GET", "/v1/conflicts?limit=5")).limit, 5u);
}

TEST(RequestTest, IdsTakeACountFromOneToTenThousand) {
  ApiCall one = Ok(Parse("POST", "/v1/ids"));
  EXPECT_EQ(one.route, Route::kIds);
  EXPECT_EQ(one.count, 1u);
  EXPECT_EQ(Ok(Parse("POST", "/v1/ids?count=10000")).count, 10000u);
  EXPECT_EQ(Ok(Parse("POST", "/v1/ids?count=7")).count, 7u);
  for (const char* bad : {"0", "10001", "-1", "abc", "", "1.5", "99999999999999999999999"}) {
    ApiError error = Err(Parse("POST", std::string("/v1/ids?count=") + bad));
    EXPECT_EQ(error.status, 400) << bad;
    EXPECT_EQ(error.code, "bad_parameter") << bad;
    EXPECT_NE(error.message.find("1 to 10000"), std::string::npos) << error.message;
  }
  for (const char* method : {"GET", "HEAD", "PUT", "DELETE"}) {
    ApiError error = Err(Parse(method, "/v1/ids?count=1"));
    EXPECT_EQ(error.status, 405) << method;
    EXPECT_EQ(error.allow, "POST");
  }
  EXPECT_EQ(RouteName(Route::kIds), "ids");
}

TEST(RequestTest, BoundsDeclareOneFieldsMinAndReadByKey) {
  ApiCall put = Ok(Parse("PUT", "/v1/docs/item%2F42/bounds", R"({"stock":{"min":-5}})"));
  EXPECT_EQ(put.route, Route::kPutBounds);
  EXPECT_TRUE(IsWrite(put.route));
  EXPECT_EQ(put.key, "item/42");
  EXPECT_EQ(put.op.kind, core::OpKind::kEscrow);
  EXPECT_EQ(put.op.escrow.kind, core::EscrowOpKind::kDeclare);
  EXPECT_EQ(put.op.escrow.field, "stock");
  EXPECT_EQ(put.op.escrow.min, -5);
  ApiCall get = Ok(Parse("GET", "/v1/docs/item/bounds"));
  EXPECT_EQ(get.route, Route::kGetBounds);
  EXPECT_FALSE(IsWrite(get.route));
  EXPECT_EQ(get.key, "item");
  EXPECT_EQ(Ok(Parse("GET", "/v1/docs/bounds")).route, Route::kGetDocument) << "a key 'bounds'";
  EXPECT_EQ(Ok(Parse("POST", "/v1/docs/bounds/incr", R"({"n":1})")).route,
            Route::kIncrementDocument);
  const ApiError method = Err(Parse("POST", "/v1/docs/item/bounds", "{}"));
  EXPECT_EQ(method.status, 405);
  EXPECT_EQ(method.allow, "GET, HEAD, PUT");
  for (const char* body :
       {R"({})", R"({"a":{"min":1},"b":{"min":2}})", R"({"a":5})", R"({"a":{"min":1.5}})",
        R"({"a":{"min":1,"max":2}})", R"({"a":{"min":9223372036854775808}})", R"({"a":{}})"}) {
    const ApiError error = Err(Parse("PUT", "/v1/docs/item/bounds", body));
    EXPECT_EQ(error.status, 400) << body;
    EXPECT_EQ(error.code, "bad_bounds") << body;
  }
  EXPECT_EQ(Err(Parse("PUT", "/v1/docs/item/bounds", "[")).code, "malformed_json");
  EXPECT_EQ(Err(Parse("PUT", "/v1/docs/item/bounds", R"({"":{"min":1}})")).code,
            "invalid_argument");
  EXPECT_EQ(Err(Parse("PUT", "/v1/docs/item/bounds", R"({"a":{"min":1}})", "text/plain")).status,
            415);
}

TEST(RequestTest, TheConsoleItsDeploymentViewAndADocumentsHistory) {
  ApiCall history = Ok(Parse("GET", "/v1/docs/item%2F42/history"));
  EXPECT_EQ(history.route, Route::kHistory);
  EXPECT_EQ(history.key, "item/42");
  EXPECT_FALSE(IsWrite(history.route));
  EXPECT_EQ(Ok(Parse("GET", "/v1/docs/history")).route, Route::kGetDocument) << "a key 'history'";
  const ApiError method = Err(Parse("PUT", "/v1/docs/item/history", "{}"));
  EXPECT_EQ(method.status, 405);
  EXPECT_EQ(method.allow, "GET, HEAD");
  EXPECT_EQ(Ok(Parse("GET", "/v1/deployment")).route, Route::kDeployment);
  EXPECT_EQ(Err(Parse("POST", "/v1/deployment", "{}")).status, 405);
  for (const char* path : {"/ui", "/ui/", "/ui/app.js", "/ui/nothing"}) {
    ApiCall console = Ok(Parse("GET", path));
    EXPECT_EQ(console.route, Route::kConsole) << path;
    EXPECT_EQ(console.key, path);
  }
  EXPECT_EQ(Err(Parse("DELETE", "/ui/app.js")).status, 405);
  EXPECT_EQ(Err(Parse("GET", "/uix")).status, 404);
  EXPECT_EQ(RouteName(Route::kHistory), "history");
  EXPECT_EQ(RouteName(Route::kDeployment), "deployment");
  EXPECT_EQ(RouteName(Route::kConsole), "console");
}

TEST(RequestTest, ScanAndWatchParameters) {
  ApiCall scan = Ok(Parse("GET", "/v1/docs?prefix=sku%3A&limit=10&after=sku%3A4"));
  EXPECT_EQ(scan.route, Route::kScan);
  EXPECT_EQ(scan.prefix, "sku:");
  EXPECT_EQ(scan.after, "sku:4");
  EXPECT_EQ(scan.limit, 10u);
  EXPECT_EQ(Err(Parse("GET", "/v1/docs?limit=0")).status, 400);
  EXPECT_EQ(Err(Parse("GET", "/v1/docs?limit=abc")).status, 400);
  EXPECT_EQ(Err(Parse("GET", "/v1/docs?limit=100000")).status, 400);
  EXPECT_EQ(Err(Parse("GET", "/v1/docs?prefix=%G0")).code, "bad_encoding");
  ApiCall watch = Ok(Parse("GET", "/v1/watch?prefix=a&from=us%3A4"));
  EXPECT_EQ(watch.route, Route::kWatch);
  EXPECT_EQ(watch.resume_from, "us:4");
  ApiCall resumed = std::get<ApiCall>(
      ParseRequest(RequestView{"GET", "/v1/watch", "", "", "eu:7", "", ""}, core::Limits{}));
  EXPECT_EQ(resumed.resume_from, "eu:7");
}

TEST(RequestTest, WatchSinceIsExclusiveWithFrom) {
  ApiCall call = Ok(Parse("GET", "/v1/watch?prefix=a&since=us%3A4%2Ceu%3A2"));
  EXPECT_EQ(call.since, "us:4,eu:2");
  EXPECT_EQ(call.resume_from, "");
  EXPECT_EQ(Err(Parse("GET", "/v1/watch?since=us%3A4&from=us%3A3")).code, "bad_parameter");
}

TEST(RequestTest, IdempotencyKeys) {
  auto parse = [](std::string_view method, std::string_view key) {
    return ParseRequest(RequestView{method, "/v1/docs/k", "application/json", "", "", "{}", key},
                        core::Limits{});
  };
  EXPECT_EQ(Ok(parse("PUT", "order-17/attempt")).idempotency_key, "order-17/attempt");
  EXPECT_EQ(Ok(parse("DELETE", "x")).idempotency_key, "x");
  EXPECT_EQ(Ok(parse("PATCH", "")).idempotency_key, "");  // none: an ordinary write
  EXPECT_EQ(Err(parse("PUT", "has space")).code, "bad_header");
  EXPECT_EQ(Err(parse("PUT", "caf\xc3\xa9")).code, "bad_header");
  EXPECT_EQ(Err(parse("PUT", std::string(256, 'k'))).status, 400);
  EXPECT_EQ(Ok(parse("PUT", std::string(255, 'k'))).idempotency_key.size(), 255u);
  EXPECT_EQ(Ok(parse("GET", "ignored-on-reads")).idempotency_key, "");
}

TEST(RequestTest, DurabilityAndSessions) {
  ApiCall call = Ok(Parse("PUT", "/v1/docs/k?durability=regions:2&timeout_ms=250", "{}"));
  EXPECT_EQ(call.durability_regions, 2u);
  EXPECT_EQ(call.durability_timeout_ms, 250u);
  EXPECT_EQ(Err(Parse("PUT", "/v1/docs/k?durability=all", "{}")).status, 400);
  EXPECT_EQ(Err(Parse("PUT", "/v1/docs/k?durability=regions:x", "{}")).status, 400);
  EXPECT_EQ(Err(Parse("PUT", "/v1/docs/k?timeout_ms=-1", "{}")).status, 400);

  const core::VersionVector token{{1, 42}, {3, 7}};
  const std::string text = EncodeSessionToken(token);
  ApiCall read = Ok(Parse("GET", "/v1/docs/k?session=" + text + "&wait_ms=20"));
  ASSERT_TRUE(read.session.has_value());
  EXPECT_EQ(*read.session, token);
  EXPECT_EQ(read.wait_ms, 20u);
  EXPECT_EQ(Err(Parse("GET", "/v1/docs/k?session=%21%21")).code, "bad_session");
  EXPECT_EQ(Err(Parse("GET", "/v1/docs/k?wait_ms=999999999")).status, 400);
}

TEST(SessionTokenTest, RoundTripsAndRejectsGarbage) {
  for (const core::VersionVector& vv : {core::VersionVector{}, core::VersionVector{{0, 1}},
                                        core::VersionVector{{1, 1}, {2, 300}, {31, UINT64_MAX}}}) {
    auto decoded = DecodeSessionToken(EncodeSessionToken(vv));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, vv);
  }
  EXPECT_FALSE(DecodeSessionToken("@@@").ok());
  EXPECT_FALSE(DecodeSessionToken("AQ").ok());  // truncated
  EXPECT_FALSE(DecodeSessionToken(std::string(600, 'A')).ok());
}

TEST(RequestTest, PercentDecode) {
  EXPECT_EQ(PercentDecode("a%20b+c", true), "a b c");
  EXPECT_EQ(PercentDecode("a%20b+c", false), "a b+c");
  EXPECT_FALSE(PercentDecode("%", false).has_value());
  EXPECT_FALSE(PercentDecode("%4", false).has_value());
  EXPECT_FALSE(PercentDecode("%4x", false).has_value());
}

TEST(RequestTest, ErrorsFromStatuses) {
  EXPECT_EQ(ErrorFromStatus(Status(StatusCode::kTypeMismatch, "x")).status, 409);
  EXPECT_EQ(ErrorFromStatus(Status(StatusCode::kOverloaded, "x")).status, 429);
  EXPECT_EQ(ErrorFromStatus(Status(StatusCode::kUnavailable, "x")).status, 503);
  EXPECT_EQ(ErrorFromStatus(Status(StatusCode::kTooLarge, "x")).status, 413);
  EXPECT_EQ(ErrorFromStatus(Status(StatusCode::kBoundExceeded, "x")).code, "bound_exceeded");
  EXPECT_EQ(ErrorFromStatus(Status(StatusCode::kBoundedField, "x")).status, 409);
  EXPECT_EQ(ErrorFromStatus(Status(StatusCode::kBoundedField, "x")).code, "bounded_field");
  EXPECT_EQ(ErrorBody(ApiError{400, "bad", "a \"quoted\" message", {}}),
            R"({"error":"bad","message":"a \"quoted\" message"})");
  // A message quoting bytes that are not UTF-8 (a raw path, say) still gives valid JSON.
  EXPECT_EQ(ErrorBody(ApiError{404, "not_found", "no such route: /\xB4", {}}),
            "{\"error\":\"not_found\",\"message\":\"no such route: /\xEF\xBF\xBD\"}");
}

}  // namespace
}  // namespace meridian::api

namespace meridian::api {
namespace {

// ParseWriteBody reads flat bodies with simdjson and hands the rest to the DOM: both must give
// the same operation, or the same error, for every body and route.
::testing::AssertionResult SameAsTheDom(const std::string& body) {
  for (const Route route :
       {Route::kPutDocument, Route::kPatchDocument, Route::kIncrementDocument}) {
    core::Operation fast;
    core::Operation dom;
    const auto fast_error = ParseWriteBody(route, body, core::Limits{}, &fast);
    const auto dom_error = ParseWriteBodyWithDom(route, body, core::Limits{}, &dom);
    if (fast_error.has_value() != dom_error.has_value() ||
        (fast_error &&
         (fast_error->status != dom_error->status || fast_error->code != dom_error->code)) ||
        (!fast_error && !(fast == dom))) {
      return ::testing::AssertionFailure() << "route " << RouteName(route) << ", body '" << body
                                           << "': fast " << (fast_error ? fast_error->code : "ok")
                                           << ", DOM " << (dom_error ? dom_error->code : "ok");
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(WriteBodyTest, TheFastPathReadsAsTheDomDoes) {
  for (const std::string body :
       {R"({"a":1})",
        R"({"a":"x","a":"y"})",
        R"({"b":-0})",
        R"({"a":1e2})",
        R"({"a":1.5})",
        R"({"a":"\u00e9"})",
        R"({"a\u0041":1})",
        R"({"a":{"c":1,"b":2}})",
        R"({"a":[1,"x"]})",
        R"( {"a":true} )",
        R"({"a":null}x)",
        R"({"a":1}{)",
        "{\"a\":\"x\ty\"}",
        R"({"a":12345678901234567890})",
        R"({"a":123456789012345678})",
        R"({"a":-9223372036854775808})",
        R"({"a":007})",
        R"({})",
        R"([])",
        R"("x")",
        R"({"a":})",
        R"({"a":1,})",
        R"({"a":"\\"})",
        "",
        R"({"a" :  "b"  ,  "c":2 })",
        R"({"ä":"ö","z":false})",
        R"({"a":tru})",
        R"({"a":"x)",
        R"({"a":1)",
        "{\"\":1}",
        R"({"v":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})"}) {
    EXPECT_TRUE(SameAsTheDom(body));
  }
  // Random flat and not-so-flat bodies from the pieces bodies are made of.
  std::mt19937_64 rng(20261207);
  const std::vector<std::string> names = {"\"a\"", "\"b\"", "\"a\\n\"", "\"\"", "\"é\""};
  const std::vector<std::string> values = {"1",
                                           "-1",
                                           "0",
                                           "-0",
                                           "1.0",
                                           "2e3",
                                           "\"s\"",
                                           "\"\\t\"",
                                           "true",
                                           "null",
                                           "[]",
                                           "{\"x\":1}",
                                           "99999999999999999999",
                                           "\"é\"",
                                           "-12345678901234567"};
  for (int i = 0; i < 2000; ++i) {
    std::string body = "{";
    const int fields = static_cast<int>(rng() % 4);
    for (int f = 0; f < fields; ++f) {
      if (f > 0) body += rng() % 8 == 0 ? " , " : ",";
      body += names[rng() % names.size()] + ":" + values[rng() % values.size()];
    }
    body += rng() % 16 == 0 ? "} " : "}";
    ASSERT_TRUE(SameAsTheDom(body));
  }
}

}  // namespace
}  // namespace meridian::api
