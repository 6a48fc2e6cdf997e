// Integration tests of the client gRPC API (proto/meridian/api.proto, docs/grpc-api.md) against a
// real `meridian start` process: every RPC, the error mapping, waits, idempotent replay, watches
// that resume without gaps and end when the node stops. Every call carries a deadline.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/session_token.h"
#include "core/version_vector.h"
#include "meridian/api.grpc.pb.h"
#include "support/http_client.h"
#include "support/node_process.h"

namespace {

namespace v1 = meridian::api::v1;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr auto kCallTimeout = seconds(10);

// A context whose call gives up after kCallTimeout (or `timeout`).
std::unique_ptr<grpc::ClientContext> Context(std::chrono::milliseconds timeout = kCallTimeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  return context;
}

// A trailing metadata value of a finished call ("" when absent).
std::string Trailer(const grpc::ClientContext& context, const std::string& name) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(name);
  return it == trailers.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

std::string Describe(const grpc::Status& status) {
  return "gRPC " + std::to_string(status.error_code()) + " '" + status.error_message() + "'";
}

class GrpcApiTest : public ::testing::Test {
 protected:
  virtual std::string ExtraToml() { return "[storage]\nsync = false\n"; }

  void SetUp() override {
    NodeOptions options;
    options.extra_toml = ExtraToml();
    options.grpc = true;
    node_ = std::make_unique<NodeProcess>(options);
    ASSERT_TRUE(node_->Start()) << "the node did not come up:\n" << node_->log();
    ASSERT_NE(node_->grpc_port(), 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(node_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
    ASSERT_TRUE(channel_->WaitForConnected(std::chrono::system_clock::now() + kCallTimeout))
        << node_->log();
    stub_ = v1::Meridian::NewStub(channel_);
  }

  // Puts `doc` at `key` and expects success.
  v1::WriteReceipt MustPut(const std::string& key, const std::string& doc) {
    v1::PutRequest request;
    request.set_key(key);
    request.set_doc(doc);
    v1::WriteReceipt receipt;
    auto context = Context();
    const grpc::Status status = stub_->Put(context.get(), request, &receipt);
    EXPECT_TRUE(status.ok()) << Describe(status);
    return receipt;
  }

  v1::GetResponse MustGet(const std::string& key) {
    v1::GetRequest request;
    request.set_key(key);
    v1::GetResponse response;
    auto context = Context();
    const grpc::Status status = stub_->Get(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << Describe(status);
    return response;
  }

  // Expects `status` to be `code` with `error` in the meridian-error trailer and the message.
  static void ExpectError(const grpc::Status& status, const grpc::ClientContext& context,
                          grpc::StatusCode code, const std::string& error) {
    EXPECT_EQ(status.error_code(), code) << Describe(status);
    EXPECT_EQ(Trailer(context, "meridian-error"), error) << Describe(status);
    EXPECT_EQ(status.error_message().rfind(error + ": ", 0), 0u) << Describe(status);
  }

  std::unique_ptr<NodeProcess> node_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Meridian::Stub> stub_;
};

// Reads changes from a watch stream, each read bounded by the stream's deadline.
struct WatchStream {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<v1::Change>> reader;

  static WatchStream Open(v1::Meridian::Stub& stub, const v1::WatchRequest& request,
                          std::chrono::milliseconds timeout = seconds(20)) {
    WatchStream stream;
    stream.context = Context(timeout);
    stream.reader = stub.Watch(stream.context.get(), request);
    return stream;
  }
  // Reads n changes; fewer when the stream ends first.
  std::vector<v1::Change> Read(size_t n) {
    std::vector<v1::Change> changes;
    v1::Change change;
    while (changes.size() < n && reader->Read(&change)) changes.push_back(change);
    return changes;
  }
};

TEST_F(GrpcApiTest, WritesAndReadsMirrorHttp) {
  const v1::WriteReceipt put = MustPut("item:1", R"({"name":"lamp", "stock": 5})");
  EXPECT_EQ(put.event(), "us:1");
  EXPECT_FALSE(put.hlc().empty());
  EXPECT_FALSE(put.session().empty());
  EXPECT_FALSE(put.replayed());
  EXPECT_EQ(put.confirmed_regions(), 0u);

  v1::GetResponse got = MustGet("item:1");
  EXPECT_TRUE(got.found());
  EXPECT_EQ(got.doc(), R"({"name":"lamp","stock":5})");  // canonical JSON, as HTTP answers

  v1::PatchRequest patch;
  patch.set_key("item:1");
  patch.set_doc(R"({"price":12})");
  v1::WriteReceipt patched;
  auto patch_context = Context();
  ASSERT_TRUE(stub_->Patch(patch_context.get(), patch, &patched).ok());
  EXPECT_EQ(patched.event(), "us:2");

  v1::IncrementRequest increment;
  increment.set_key("item:1");
  (*increment.mutable_deltas())["stock"] = -2;
  (*increment.mutable_deltas())["sold"] = 2;
  v1::WriteReceipt incremented;
  auto increment_context = Context();
  ASSERT_TRUE(stub_->Increment(increment_context.get(), increment, &incremented).ok());
  EXPECT_EQ(incremented.event(), "us:3");

  got = MustGet("item:1");
  ASSERT_TRUE(got.found());
  EXPECT_EQ(json::parse(got.doc()),
            json::parse(R"({"name":"lamp","price":12,"sold":2,"stock":3})"));
  // The HTTP API reads the same document, byte for byte.
  auto http = node_->Client();
  EXPECT_EQ(http.Get("/v1/docs/item:1").body, got.doc());

  v1::DeleteRequest del;
  del.set_key("item:1");
  v1::WriteReceipt deleted;
  auto delete_context = Context();
  ASSERT_TRUE(stub_->Delete(delete_context.get(), del, &deleted).ok());
  EXPECT_EQ(deleted.event(), "us:4");
  got = MustGet("item:1");
  EXPECT_FALSE(got.found());
  EXPECT_TRUE(got.doc().empty());
  EXPECT_EQ(http.Get("/v1/docs/item:1").status, 404);

  // A read carrying the session of a write answers at once: this region covers it.
  v1::GetRequest with_session;
  with_session.set_key("item:1");
  with_session.mutable_options()->set_session(deleted.session());
  v1::GetResponse response;
  auto session_context = Context();
  EXPECT_TRUE(stub_->Get(session_context.get(), with_session, &response).ok());
}

TEST_F(GrpcApiTest, BoundsMirrorHttp) {
  MustPut("item:b", R"({"stock": 4})");
  v1::PutBoundsRequest declare;
  declare.set_key("item:b");
  declare.set_body(R"({"stock":{"min":1}})");
  v1::WriteReceipt declared;
  auto declare_context = Context();
  const grpc::Status ok = stub_->PutBounds(declare_context.get(), declare, &declared);
  ASSERT_TRUE(ok.ok()) << Describe(ok);
  EXPECT_EQ(declared.event(), "us:2");

  v1::GetBoundsRequest read;
  read.set_key("item:b");
  v1::GetBoundsResponse bounds;
  auto read_context = Context();
  ASSERT_TRUE(stub_->GetBounds(read_context.get(), read, &bounds).ok());
  EXPECT_EQ(json::parse(bounds.json()),
            json::parse(node_->Client().Get("/v1/docs/item:b/bounds").body));
  // The room of 3 is split over the three regions configured.
  EXPECT_EQ(json::parse(bounds.json())["bounds"]["stock"]["rights"],
            json({{"us", 1}, {"eu", 1}, {"asia", 1}}));

  // us holds 1 right: a decrement of 2 is refused, as HTTP refuses it.
  v1::IncrementRequest increment;
  increment.set_key("item:b");
  (*increment.mutable_deltas())["stock"] = -2;
  v1::WriteReceipt receipt;
  auto refused_context = Context();
  ExpectError(stub_->Increment(refused_context.get(), increment, &receipt), *refused_context,
              grpc::StatusCode::FAILED_PRECONDITION, "bound_exceeded");
  v1::PatchRequest patch;
  patch.set_key("item:b");
  patch.set_doc(R"({"stock":9})");
  auto patch_context = Context();
  ExpectError(stub_->Patch(patch_context.get(), patch, &receipt), *patch_context,
              grpc::StatusCode::FAILED_PRECONDITION, "bounded_field");
  declare.set_body(R"({"stock":{"min":1},"other":{"min":0}})");
  auto bad_context = Context();
  ExpectError(stub_->PutBounds(bad_context.get(), declare, &receipt), *bad_context,
              grpc::StatusCode::INVALID_ARGUMENT, "bad_bounds");
  read.set_key("absent");
  auto absent_context = Context();
  ExpectError(stub_->GetBounds(absent_context.get(), read, &bounds), *absent_context,
              grpc::StatusCode::NOT_FOUND, "not_found");
}

TEST_F(GrpcApiTest, ScanConflictsAndStatus) {
  for (const char* key : {"s/c", "s/a", "s/e", "s/b", "s/d", "t/x"}) MustPut(key, R"({"v":1})");
  std::vector<std::string> keys;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    v1::ScanRequest request;
    request.set_prefix("s/");
    request.set_after(after);
    request.set_limit(2);
    v1::ScanResponse response;
    auto context = Context();
    ASSERT_TRUE(stub_->Scan(context.get(), request, &response).ok());
    EXPECT_LE(response.items_size(), 2);
    for (const v1::ScanItem& item : response.items()) {
      keys.push_back(item.key());
      EXPECT_EQ(item.doc(), R"({"v":1})");
    }
    if (!response.has_next()) break;
    after = response.next();
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"s/a", "s/b", "s/c", "s/d", "s/e"}));

  v1::ScanRequest everything;  // no limit: 100 by default
  v1::ScanResponse all;
  auto scan_context = Context();
  ASSERT_TRUE(stub_->Scan(scan_context.get(), everything, &all).ok());
  EXPECT_EQ(all.items_size(), 6);
  EXPECT_FALSE(all.has_next());

  v1::ConflictsRequest conflicts_request;
  v1::ConflictsResponse conflicts;
  auto conflicts_context = Context();
  ASSERT_TRUE(stub_->Conflicts(conflicts_context.get(), conflicts_request, &conflicts).ok());
  EXPECT_EQ(conflicts.total(), 0u);  // one region writing alone never conflicts
  EXPECT_EQ(conflicts.conflicts_size(), 0);

  v1::StatusRequest status_request;
  v1::StatusResponse status;
  auto status_context = Context();
  ASSERT_TRUE(stub_->Status(status_context.get(), status_request, &status).ok());
  const json parsed = json::parse(status.json());
  EXPECT_EQ(status.region(), "us");
  EXPECT_EQ(parsed["region"], "us");
  EXPECT_EQ(status.documents(), 6u);
  EXPECT_EQ(parsed["documents"], 6);
  EXPECT_EQ(parsed["frontier"]["us"], 6);
  EXPECT_EQ(status.digest(), parsed["digest"].get<std::string>());
  EXPECT_EQ(status.digest().size(), 16u);
  // The same view as GET /v1/status.
  const json http = json::parse(node_->Client().Get("/v1/status").body);
  EXPECT_EQ(http["digest"], parsed["digest"]);
  EXPECT_EQ(http["frontier"], parsed["frontier"]);
}

// Verification answers as GET /v1/verify and /v1/repairs do (the same functions build both).
TEST_F(GrpcApiTest, VerifyAndRepairsMirrorHttp) {
  v1::VerifyRequest latest;
  v1::VerifyResponse verify;
  auto context = Context();
  ASSERT_TRUE(stub_->Verify(context.get(), latest, &verify).ok());
  const json parsed = json::parse(verify.json());
  EXPECT_EQ(parsed["region"], "us");
  EXPECT_EQ(parsed, json::parse(node_->Client().Get("/v1/verify").body));
  ASSERT_EQ(parsed["peers"].size(), 2u);  // eu and asia: configured, never compared
  for (const json& peer : parsed["peers"]) EXPECT_EQ(peer["state"], "unknown");

  v1::VerifyRequest now;
  now.set_now(true);
  now.set_peer("mars");
  auto refused_context = Context();
  EXPECT_EQ(stub_->Verify(refused_context.get(), now, &verify).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  now.set_peer("eu");
  auto started_context = Context();
  ASSERT_TRUE(stub_->Verify(started_context.get(), now, &verify).ok());
  EXPECT_EQ(json::parse(verify.json())["started"], true);

  v1::RepairsRequest repairs_request;
  v1::RepairsResponse repairs;
  auto repairs_context = Context();
  ASSERT_TRUE(stub_->Repairs(repairs_context.get(), repairs_request, &repairs).ok());
  EXPECT_EQ(repairs.total(), 0u);
  EXPECT_EQ(repairs.items_size(), 0);
  repairs_request.set_limit(0);
  auto bad_context = Context();
  EXPECT_EQ(stub_->Repairs(bad_context.get(), repairs_request, &repairs).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(GrpcApiTest, IdempotentRetryAnswersTheOriginalReceipt) {
  v1::IncrementRequest request;
  request.set_key("counter");
  (*request.mutable_deltas())["n"] = 5;
  request.mutable_options()->set_idempotency_key("pay-7");
  v1::WriteReceipt first;
  v1::WriteReceipt retry;
  auto first_context = Context();
  ASSERT_TRUE(stub_->Increment(first_context.get(), request, &first).ok());
  auto retry_context = Context();
  ASSERT_TRUE(stub_->Increment(retry_context.get(), request, &retry).ok());
  EXPECT_FALSE(first.replayed());
  EXPECT_TRUE(retry.replayed());
  EXPECT_EQ(retry.event(), first.event());
  EXPECT_EQ(retry.hlc(), first.hlc());
  EXPECT_EQ(retry.session(), first.session());
  EXPECT_EQ(MustGet("counter").doc(), R"({"n":5})");  // applied once

  // The record is the region's, whichever API the retry comes through.
  auto http =
      node_->Client().Request("POST", "/v1/docs/counter/incr", R"({"n":5})",
                              {{"Content-Type", "application/json"}, {"Idempotency-Key", "pay-7"}});
  ASSERT_EQ(http.status, 200) << http.body;
  EXPECT_EQ(json::parse(http.body)["event"], first.event());
  EXPECT_EQ(json::parse(http.body)["replayed"], true);

  // The same key with another write is refused, and changes nothing.
  (*request.mutable_deltas())["n"] = 6;
  v1::WriteReceipt reused;
  auto reused_context = Context();
  const grpc::Status status = stub_->Increment(reused_context.get(), request, &reused);
  ExpectError(status, *reused_context, grpc::StatusCode::FAILED_PRECONDITION,
              "idempotency_key_reused");
  EXPECT_EQ(MustGet("counter").doc(), R"({"n":5})");
}

TEST_F(GrpcApiTest, ErrorsMapOntoStatusCodes) {
  struct Case {
    std::string name;
    std::function<grpc::Status(grpc::ClientContext*)> call;
    grpc::StatusCode code;
    std::string error;
  };
  MustPut("word", R"({"name":"lamp"})");
  const std::string long_key(2000, 'k');  // limits.key_bytes_max is 1024
  std::vector<Case> cases;
  const auto put = [this](std::string key, std::string doc, v1::WriteOptions options = {}) {
    return [this, key, doc, options](grpc::ClientContext* context) {
      v1::PutRequest request;
      request.set_key(key);
      request.set_doc(doc);
      *request.mutable_options() = options;
      v1::WriteReceipt receipt;
      return stub_->Put(context, request, &receipt);
    };
  };
  const auto increment = [this](std::string key, std::map<std::string, int64_t> deltas) {
    return [this, key, deltas](grpc::ClientContext* context) {
      v1::IncrementRequest request;
      request.set_key(key);
      for (const auto& [field, delta] : deltas) (*request.mutable_deltas())[field] = delta;
      v1::WriteReceipt receipt;
      return stub_->Increment(context, request, &receipt);
    };
  };
  const auto get = [this](std::string key, v1::ReadOptions options = {}) {
    return [this, key, options](grpc::ClientContext* context) {
      v1::GetRequest request;
      request.set_key(key);
      *request.mutable_options() = options;
      v1::GetResponse response;
      return stub_->Get(context, request, &response);
    };
  };
  const auto scan = [this](std::optional<uint32_t> limit, std::string prefix) {
    return [this, limit, prefix](grpc::ClientContext* context) {
      v1::ScanRequest request;
      if (limit) request.set_limit(*limit);
      request.set_prefix(prefix);
      v1::ScanResponse response;
      return stub_->Scan(context, request, &response);
    };
  };
  const auto watch = [this](std::string from) {
    return [this, from](grpc::ClientContext* context) {
      v1::WatchRequest request;
      request.set_resume_from(from);
      auto reader = stub_->Watch(context, request);
      v1::Change change;
      while (reader->Read(&change)) {
      }
      return reader->Finish();
    };
  };
  using Code = grpc::StatusCode;
  v1::WriteOptions bad_session;
  bad_session.set_session("not a token!");
  v1::ReadOptions long_wait;
  long_wait.set_wait_ms(60'001);
  v1::WriteOptions bad_idempotency;
  bad_idempotency.set_idempotency_key("has space");
  v1::WriteOptions too_many_regions;
  too_many_regions.set_durability_regions(3);  // two other regions are configured
  v1::WriteOptions long_durability;
  long_durability.set_durability_regions(1);
  long_durability.set_durability_timeout_ms(60'001);

  cases.push_back({"empty key", put("", R"({"a":1})"), Code::INVALID_ARGUMENT, "invalid_key"});
  cases.push_back({"long key", put(long_key, R"({"a":1})"), Code::INVALID_ARGUMENT, "too_large"});
  cases.push_back({"long key get", get(long_key), Code::INVALID_ARGUMENT, "too_large"});
  cases.push_back({"not json", put("k", "{"), Code::INVALID_ARGUMENT, "malformed_json"});
  cases.push_back({"not an object", put("k", "[1]"), Code::INVALID_ARGUMENT, "malformed_json"});
  cases.push_back({"large value", put("k", R"({"a":")" + std::string(70'000, 'v') + R"("})"),
                   Code::INVALID_ARGUMENT, "too_large"});
  cases.push_back(
      {"empty field", put("k", R"({"":1})"), Code::INVALID_ARGUMENT, "invalid_argument"});
  cases.push_back(
      {"bad session", put("k", "{}", bad_session), Code::INVALID_ARGUMENT, "bad_session"});
  cases.push_back({"wait_ms", get("k", long_wait), Code::INVALID_ARGUMENT, "bad_parameter"});
  cases.push_back({"idempotency key", put("k", "{}", bad_idempotency), Code::INVALID_ARGUMENT,
                   "bad_parameter"});
  cases.push_back({"durability regions", put("k", "{}", too_many_regions), Code::INVALID_ARGUMENT,
                   "bad_parameter"});
  cases.push_back({"durability timeout", put("k", "{}", long_durability), Code::INVALID_ARGUMENT,
                   "bad_parameter"});
  cases.push_back({"no counter", increment("k", {}), Code::INVALID_ARGUMENT, "invalid_argument"});
  cases.push_back({"not a number", increment("word", {{"name", 1}}), Code::FAILED_PRECONDITION,
                   "not_a_number"});
  cases.push_back({"limit 0", scan(0, ""), Code::INVALID_ARGUMENT, "bad_parameter"});
  cases.push_back({"limit 1001", scan(1001, ""), Code::INVALID_ARGUMENT, "bad_parameter"});
  cases.push_back(
      {"long prefix", scan(std::nullopt, long_key), Code::INVALID_ARGUMENT, "too_large"});
  cases.push_back({"resume garbage", watch("garbage"), Code::INVALID_ARGUMENT, "bad_parameter"});
  cases.push_back({"resume unknown", watch("eu:99"), Code::NOT_FOUND, "unknown_event"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto context = Context();
    const grpc::Status status = c.call(context.get());
    ExpectError(status, *context, c.code, c.error);
  }
  // None of the refused writes changed anything.
  EXPECT_FALSE(MustGet("k").found());
  v1::StatusRequest status_request;
  v1::StatusResponse status;
  auto status_context = Context();
  ASSERT_TRUE(stub_->Status(status_context.get(), status_request, &status).ok());
  EXPECT_EQ(json::parse(status.json())["frontier"]["us"], 1);
}

TEST_F(GrpcApiTest, SessionWaitTimesOut) {
  // A token covering an event of `eu`, which is configured but never runs.
  meridian::core::VersionVector ahead;
  ahead.Set(2, 5);
  v1::GetRequest request;
  request.set_key("k");
  request.mutable_options()->set_session(meridian::api::EncodeSessionToken(ahead));
  request.mutable_options()->set_wait_ms(300);
  v1::GetResponse response;
  auto context = Context();
  const auto started = Clock::now();
  const grpc::Status status = stub_->Get(context.get(), request, &response);
  const auto elapsed = Clock::now() - started;
  ExpectError(status, *context, grpc::StatusCode::DEADLINE_EXCEEDED, "session_timeout");
  EXPECT_GE(elapsed, milliseconds(300));
  EXPECT_LT(elapsed, seconds(5));

  // A write with that token waits the same way, and is not made.
  v1::PutRequest put;
  put.set_key("k");
  put.set_doc("{}");
  put.mutable_options()->set_session(request.options().session());
  put.mutable_options()->set_wait_ms(0);
  v1::WriteReceipt receipt;
  auto put_context = Context();
  ExpectError(stub_->Put(put_context.get(), put, &receipt), *put_context,
              grpc::StatusCode::DEADLINE_EXCEEDED, "session_timeout");
  EXPECT_FALSE(MustGet("k").found());
}

TEST_F(GrpcApiTest, DurabilityTimeoutCarriesTheReceipt) {
  v1::PutRequest request;
  request.set_key("durable");
  request.set_doc(R"({"a":1})");
  request.mutable_options()->set_durability_regions(1);  // nobody else runs: never confirmed
  request.mutable_options()->set_durability_timeout_ms(200);
  v1::WriteReceipt receipt;
  auto context = Context();
  const grpc::Status status = stub_->Put(context.get(), request, &receipt);
  ExpectError(status, *context, grpc::StatusCode::DEADLINE_EXCEEDED, "durability_timeout");
  EXPECT_EQ(Trailer(*context, "meridian-event"), "us:1");
  EXPECT_FALSE(Trailer(*context, "meridian-hlc").empty());
  EXPECT_FALSE(Trailer(*context, "meridian-session").empty());
  EXPECT_EQ(Trailer(*context, "meridian-confirmed-regions"), "0");
  // Committed here all the same.
  EXPECT_EQ(MustGet("durable").doc(), R"({"a":1})");
}

TEST_F(GrpcApiTest, WatchStreamsChangesAndResumesWithoutGaps) {
  v1::WatchRequest request;
  request.set_prefix("w/");
  WatchStream live = WatchStream::Open(*stub_, request);
  live.reader->WaitForInitialMetadata();  // registered: every later change arrives

  const v1::WriteReceipt first = MustPut("w/1", R"({"n":1})");
  MustPut("x/1", R"({"n":0})");  // another prefix: not delivered
  const v1::WriteReceipt second = MustPut("w/2", R"({"n":2})");
  v1::DeleteRequest del;
  del.set_key("w/1");
  v1::WriteReceipt deleted;
  auto delete_context = Context();
  ASSERT_TRUE(stub_->Delete(delete_context.get(), del, &deleted).ok());

  std::vector<v1::Change> changes = live.Read(3);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].key(), "w/1");
  EXPECT_EQ(changes[0].doc(), R"({"n":1})");
  EXPECT_EQ(changes[0].event(), first.event());
  EXPECT_EQ(changes[0].hlc(), first.hlc());
  EXPECT_EQ(changes[1].key(), "w/2");
  EXPECT_EQ(changes[1].event(), second.event());
  EXPECT_EQ(changes[2].key(), "w/1");
  EXPECT_FALSE(changes[2].has_doc());  // deleted
  EXPECT_EQ(changes[2].event(), deleted.event());
  live.context->TryCancel();
  EXPECT_EQ(live.reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  // Resuming from the first change replays what followed it, then continues live.
  request.set_resume_from(first.event());
  WatchStream resumed = WatchStream::Open(*stub_, request);
  std::vector<v1::Change> replay = resumed.Read(2);
  ASSERT_EQ(replay.size(), 2u);
  EXPECT_EQ(replay[0].event(), second.event());
  EXPECT_EQ(replay[0].doc(), R"({"n":2})");  // the document as that change left it
  EXPECT_EQ(replay[1].event(), deleted.event());
  EXPECT_FALSE(replay[1].has_doc());
  const v1::WriteReceipt third = MustPut("w/3", R"({"n":3})");
  std::vector<v1::Change> next = resumed.Read(1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].event(), third.event());
  EXPECT_EQ(next[0].key(), "w/3");
  resumed.context->TryCancel();
  resumed.reader->Finish();
}

TEST_F(GrpcApiTest, WatchEndsWhenTheNodeStops) {
  v1::WatchRequest request;
  WatchStream stream = WatchStream::Open(*stub_, request, seconds(30));
  stream.reader->WaitForInitialMetadata();
  const v1::WriteReceipt put = MustPut("a", "{}");
  ASSERT_EQ(stream.Read(1).size(), 1u);

  const auto started = Clock::now();
  std::thread stopper([this] { EXPECT_EQ(node_->Terminate(), 0) << node_->log(); });
  v1::Change change;
  EXPECT_FALSE(stream.reader->Read(&change));
  const grpc::Status status = stream.reader->Finish();
  stopper.join();
  EXPECT_LT(Clock::now() - started, seconds(10));  // not the stream's own 30 s deadline
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << Describe(status);
  EXPECT_EQ(Trailer(*stream.context, "meridian-error"), "unavailable");
  EXPECT_EQ(Trailer(*stream.context, "meridian-resume-from"), put.event());
}

class GrpcApiTrimmedLogTest : public GrpcApiTest {
 protected:
  std::string ExtraToml() override {
    return "[storage]\nsync = false\n[watch]\nchanges_kept = 5\n";
  }
};

TEST_F(GrpcApiTrimmedLogTest, AResumePointBeforeTheChangesKeptIsOutOfRange) {
  std::vector<std::string> events;
  for (int i = 0; i < 20; ++i) {
    events.push_back(
        MustPut("t/" + std::to_string(i % 3), R"({"i":)" + std::to_string(i) + "}").event());
  }
  // The newest 5 changes are kept, lsn 16 to 20, within about a second.
  meridian::testing::HttpClient http = node_->Client();
  const auto deadline = Clock::now() + seconds(10);
  while (json::parse(http.Get("/v1/status").body, nullptr, false)["change_log"]["oldest_lsn"] !=
         16) {
    ASSERT_LT(Clock::now(), deadline) << "the change log was not trimmed";
    std::this_thread::sleep_for(milliseconds(20));
  }

  for (const auto& [resume_from, since] :
       std::vector<std::pair<std::string, std::string>>{{events[3], ""}, {"", "us:14"}}) {
    SCOPED_TRACE(resume_from + since);
    v1::WatchRequest request;
    request.set_resume_from(resume_from);
    request.set_since(since);
    WatchStream refused = WatchStream::Open(*stub_, request);
    v1::Change change;
    EXPECT_FALSE(refused.reader->Read(&change));
    const grpc::Status status = refused.reader->Finish();
    ExpectError(status, *refused.context, grpc::StatusCode::OUT_OF_RANGE, "resume_point_trimmed");
    EXPECT_EQ(Trailer(*refused.context, "meridian-oldest"), events[15]);
  }

  // From the event before the oldest kept: every kept change, in order.
  v1::WatchRequest request;
  request.set_resume_from(events[14]);
  WatchStream resumed = WatchStream::Open(*stub_, request);
  std::vector<std::string> replayed;
  for (const v1::Change& change : resumed.Read(5)) replayed.push_back(change.event());
  EXPECT_EQ(replayed, std::vector<std::string>(events.begin() + 15, events.end()));
  resumed.context->TryCancel();
  resumed.reader->Finish();
}

class GrpcApiSlowWatchTest : public GrpcApiTest {
 protected:
  std::string ExtraToml() override { return "[storage]\nsync = false\n[watch]\nbuffer_max = 1\n"; }
};

// The value of a counter in /metrics (0 when absent).
double MetricValue(NodeProcess& node, const std::string& name) {
  const std::string text = node.Client().Get("/metrics").body;
  const auto at = text.find("\n" + name + " ");
  return at == std::string::npos ? 0 : std::stod(text.substr(at + name.size() + 2));
}

TEST_F(GrpcApiSlowWatchTest, SlowConsumerIsAbortedAndResumesWithoutGaps) {
  v1::WatchRequest request;
  WatchStream stream = WatchStream::Open(*stub_, request, seconds(60));
  stream.reader->WaitForInitialMetadata();
  // Large documents fill the HTTP/2 window of a watch nobody reads: the server's writes block and
  // its one-change buffer overflows.
  const std::string doc =
      R"({"a":")" + std::string(30'000, 'a') + R"(","b":")" + std::string(30'000, 'b') + R"("})";
  std::vector<std::string> events;
  const auto deadline = Clock::now() + seconds(40);
  while (MetricValue(*node_, "meridian_watch_overflows_total") < 1) {
    ASSERT_LT(Clock::now(), deadline) << "the watch never fell behind";
    for (int i = 0; i < 20; ++i) {
      events.push_back(MustPut("big/" + std::to_string(events.size()), doc).event());
    }
  }

  std::vector<std::string> seen;
  v1::Change change;
  while (stream.reader->Read(&change)) seen.push_back(change.event());
  const grpc::Status status = stream.reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ABORTED) << Describe(status);
  EXPECT_EQ(Trailer(*stream.context, "meridian-error"), "slow_consumer");
  ASSERT_FALSE(seen.empty());
  ASSERT_LT(seen.size(), events.size());
  EXPECT_EQ(Trailer(*stream.context, "meridian-resume-from"), seen.back());

  // Resuming from the trailer delivers the rest: every event once, in order, no gap.
  request.set_resume_from(seen.back());
  WatchStream resumed = WatchStream::Open(*stub_, request, seconds(60));
  while (seen.size() < events.size() && resumed.reader->Read(&change)) {
    seen.push_back(change.event());
  }
  EXPECT_EQ(seen, events);
  resumed.context->TryCancel();
  resumed.reader->Finish();
}

class GrpcApiLimitsTest : public GrpcApiTest {
 protected:
  std::string ExtraToml() override {
    return "[storage]\nsync = false\n[watch]\nwatchers_max = 1\n";
  }
};

TEST_F(GrpcApiLimitsTest, OverloadIsResourceExhausted) {
  v1::WatchRequest request;
  WatchStream first = WatchStream::Open(*stub_, request);
  first.reader->WaitForInitialMetadata();
  WatchStream second = WatchStream::Open(*stub_, request);
  EXPECT_TRUE(second.Read(1).empty());
  const grpc::Status status = second.reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << Describe(status);
  EXPECT_EQ(Trailer(*second.context, "meridian-error"), "overloaded");
  first.context->TryCancel();
  first.reader->Finish();
}

}  // namespace
