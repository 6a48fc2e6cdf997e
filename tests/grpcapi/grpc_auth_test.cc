// [auth] over the client gRPC API against a real `meridian start` process (docs/grpc-api.md,
// docs/security.md): UNAUTHENTICATED and PERMISSION_DENIED on every RPC with the messages of the
// HTTP API, refused writes that change nothing, idempotency keys kept per client, and the scan
// page byte bound.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "api/session_token.h"
#include "auth/token.h"
#include "meridian/api.grpc.pb.h"
#include "support/node_process.h"
#include "support/temp_dir.h"
#include "support/tokens.h"

namespace {

namespace v1 = meridian::api::v1;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using meridian::testing::NowS;
using meridian::testing::TempDir;
using json = nlohmann::json;
using std::chrono::seconds;

const std::string kSecret = "the gRPC tests' secret, at least thirty-two bytes";
constexpr size_t kScanPageBytes = 4096;

meridian::auth::Claims Claims(std::vector<std::string> read, std::vector<std::string> write,
                              bool admin = false, std::string sub = {}) {
  return meridian::testing::TokenClaims(std::move(read), std::move(write), admin, std::move(sub));
}

std::string Bearer(const meridian::auth::Claims& claims, const std::string& secret = kSecret) {
  return meridian::testing::Bearer(claims, secret);
}

std::string Describe(const grpc::Status& status) {
  return "gRPC " + std::to_string(status.error_code()) + " '" + status.error_message() + "'";
}

// A context with a deadline and, unless empty, the `authorization` metadata.
std::unique_ptr<grpc::ClientContext> Context(const std::string& authorization,
                                             std::chrono::milliseconds timeout = seconds(10)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  if (!authorization.empty()) context->AddMetadata("authorization", authorization);
  return context;
}

std::string Trailer(const grpc::ClientContext& context, const std::string& name) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(name);
  return it == trailers.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

class GrpcAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string secret_path = dir_.path() + "/jwt.key";
    std::ofstream(secret_path) << kSecret << "\n";
    NodeOptions options;
    options.grpc = true;
    options.extra_toml =
        "[storage]\nsync = false\n[http]\nscan_page_bytes_max = " + std::to_string(kScanPageBytes) +
        "\n[auth]\njwt_secret_file = \"" + secret_path + "\"\n";
    node_ = std::make_unique<NodeProcess>(options);
    ASSERT_TRUE(node_->Start()) << "the node did not come up:\n" << node_->log();
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(node_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
    ASSERT_TRUE(channel_->WaitForConnected(std::chrono::system_clock::now() + seconds(10)));
    stub_ = v1::Meridian::NewStub(channel_);
    admin_ = Bearer(Claims({""}, {""}, /*admin=*/true));
  }

  // Each RPC once with `authorization`; `key` for document calls, `prefix` for scans and watches.
  // Answers the status with the context that carried it (for the trailers).
  struct Outcome {
    std::string rpc;
    grpc::Status status;
    std::string error;  // the meridian-error trailer
  };
  std::vector<Outcome> CallEvery(const std::string& authorization, const std::string& key,
                                 const std::string& prefix) {
    std::vector<Outcome> outcomes;
    const auto record = [&](const std::string& rpc, grpc::ClientContext& context,
                            const grpc::Status& status) {
      outcomes.push_back({rpc, status, Trailer(context, "meridian-error")});
    };
    v1::WriteReceipt receipt;
    {
      v1::PutRequest request;
      request.set_key(key);
      request.set_doc(R"({"v":2})");
      auto context = Context(authorization);
      record("Put", *context, stub_->Put(context.get(), request, &receipt));
    }
    {
      v1::PatchRequest request;
      request.set_key(key);
      request.set_doc(R"({"v":3})");
      auto context = Context(authorization);
      record("Patch", *context, stub_->Patch(context.get(), request, &receipt));
    }
    {
      v1::IncrementRequest request;
      request.set_key(key);
      (*request.mutable_deltas())["n"] = 1;
      auto context = Context(authorization);
      record("Increment", *context, stub_->Increment(context.get(), request, &receipt));
    }
    {
      v1::DeleteRequest request;
      request.set_key(key);
      auto context = Context(authorization);
      record("Delete", *context, stub_->Delete(context.get(), request, &receipt));
    }
    {
      v1::GetRequest request;
      request.set_key(key);
      v1::GetResponse response;
      auto context = Context(authorization);
      record("Get", *context, stub_->Get(context.get(), request, &response));
    }
    {
      v1::ScanRequest request;
      request.set_prefix(prefix);
      v1::ScanResponse response;
      auto context = Context(authorization);
      record("Scan", *context, stub_->Scan(context.get(), request, &response));
    }
    {
      v1::WatchRequest request;
      request.set_prefix(prefix);
      // An allowed watch streams until this deadline ends it.
      auto context = Context(authorization, seconds(2));
      auto reader = stub_->Watch(context.get(), request);
      v1::Change change;
      while (reader->Read(&change)) {
      }
      record("Watch", *context, reader->Finish());
    }
    AdminCalls(authorization, record);
    return outcomes;
  }

  void AdminCalls(const std::string& authorization,
                  const std::function<void(const std::string&, grpc::ClientContext&,
                                           const grpc::Status&)>& record) {
    {
      v1::ConflictsRequest request;
      v1::ConflictsResponse response;
      auto context = Context(authorization);
      record("Conflicts", *context, stub_->Conflicts(context.get(), request, &response));
    }
    {
      v1::DeadLettersRequest request;
      v1::DeadLettersResponse response;
      auto context = Context(authorization);
      record("DeadLetters", *context, stub_->DeadLetters(context.get(), request, &response));
    }
    {
      v1::RetryDeadLetterRequest request;
      request.set_id(1);
      v1::RetryDeadLetterResponse response;
      auto context = Context(authorization);
      record("RetryDeadLetter", *context,
             stub_->RetryDeadLetter(context.get(), request, &response));
    }
    for (bool now : {false, true}) {
      v1::VerifyRequest request;
      request.set_now(now);
      v1::VerifyResponse response;
      auto context = Context(authorization);
      record(now ? "Verify(now)" : "Verify", *context,
             stub_->Verify(context.get(), request, &response));
    }
    {
      v1::RepairsRequest request;
      v1::RepairsResponse response;
      auto context = Context(authorization);
      record("Repairs", *context, stub_->Repairs(context.get(), request, &response));
    }
    {
      v1::StatusRequest request;
      v1::StatusResponse response;
      auto context = Context(authorization);
      record("Status", *context, stub_->Status(context.get(), request, &response));
    }
  }

  json Status() {
    v1::StatusRequest request;
    v1::StatusResponse response;
    auto context = Context(admin_);
    const grpc::Status status = stub_->Status(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << Describe(status);
    return json::parse(response.json(), nullptr, false);
  }

  TempDir dir_;
  std::unique_ptr<NodeProcess> node_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Meridian::Stub> stub_;
  std::string admin_;
};

TEST_F(GrpcAuthTest, EveryRpcWithoutAGoodTokenIsUnauthenticated) {
  const auto bad = meridian::testing::RefusedAuthorizations(
      kSecret, "another secret, also thirty-two bytes long");
  for (const auto& [authorization, reason] : bad) {
    const auto outcomes = CallEvery(authorization, "k", "");
    ASSERT_EQ(outcomes.size(), 14u);
    for (const Outcome& outcome : outcomes) {
      EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << outcome.rpc << " with '" << authorization << "': " << Describe(outcome.status);
      EXPECT_EQ(outcome.error, "unauthenticated") << outcome.rpc;
      EXPECT_EQ(outcome.status.error_message().rfind("unauthenticated: ", 0), 0u)
          << Describe(outcome.status);
      EXPECT_NE(outcome.status.error_message().find(reason), std::string::npos)
          << Describe(outcome.status);
    }
  }
}

TEST_F(GrpcAuthTest, CallsOutsideTheTokensClaimsArePermissionDenied) {
  const std::string token = Bearer(Claims({"orders/"}, {"orders/eu/"}));
  // Documents, scans and watches outside the prefixes, and every admin call.
  for (const Outcome& outcome : CallEvery(token, "carts/1", "order")) {
    EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << outcome.rpc << ": " << Describe(outcome.status);
    EXPECT_EQ(outcome.error, "forbidden") << outcome.rpc;
    EXPECT_EQ(outcome.status.error_message().rfind("forbidden: ", 0), 0u)
        << Describe(outcome.status);
  }
  // Inside them: the documents and the scan are allowed, the admin calls are still not.
  for (const Outcome& outcome : CallEvery(token, "orders/eu/1", "orders/eu/")) {
    const bool admin = outcome.rpc != "Put" && outcome.rpc != "Patch" &&
                       outcome.rpc != "Increment" && outcome.rpc != "Delete" &&
                       outcome.rpc != "Get" && outcome.rpc != "Scan" && outcome.rpc != "Watch";
    if (admin) {
      EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << outcome.rpc;
    } else if (outcome.rpc == "Watch") {
      // Allowed: it streamed until the deadline ended it.
      EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
          << Describe(outcome.status);
    } else {
      EXPECT_TRUE(outcome.status.ok()) << outcome.rpc << ": " << Describe(outcome.status);
    }
  }
  // Reading orders/ is not writing it.
  {
    v1::PutRequest request;
    request.set_key("orders/us/1");
    request.set_doc("{}");
    v1::WriteReceipt receipt;
    auto context = Context(token);
    EXPECT_EQ(stub_->Put(context.get(), request, &receipt).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  // An admin token passes every admin call (the dead letter does not exist: NOT_FOUND).
  std::vector<Outcome> outcomes;
  AdminCalls(admin_,
             [&](const std::string& rpc, grpc::ClientContext& context, const grpc::Status& status) {
               outcomes.push_back({rpc, status, Trailer(context, "meridian-error")});
             });
  for (const Outcome& outcome : outcomes) {
    if (outcome.rpc == "RetryDeadLetter") {
      EXPECT_EQ(outcome.error, "unknown_dead_letter") << Describe(outcome.status);
    } else {
      EXPECT_TRUE(outcome.status.ok()) << outcome.rpc << ": " << Describe(outcome.status);
    }
  }
}

TEST_F(GrpcAuthTest, IdsNeedAWritePrefixOfAnyKey) {
  const auto ids = [&](const std::string& authorization) {
    v1::IdsRequest request;
    request.set_count(3);
    v1::IdsResponse response;
    auto context = Context(authorization);
    const grpc::Status status = stub_->Ids(context.get(), request, &response);
    return std::make_pair(status, response.ids_size());
  };
  EXPECT_EQ(ids("").first.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ids(Bearer(Claims({""}, {}))).first.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ids(Bearer(Claims({}, {}, /*admin=*/true))).first.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  const auto [status, count] = ids(Bearer(Claims({}, {"carts/"})));
  EXPECT_TRUE(status.ok()) << Describe(status);
  EXPECT_EQ(count, 3);
}

TEST_F(GrpcAuthTest, ARefusedWriteChangesNothing) {
  {
    v1::PutRequest request;
    request.set_key("orders/1");
    request.set_doc(R"({"v":1})");
    v1::WriteReceipt receipt;
    auto context = Context(admin_);
    ASSERT_TRUE(stub_->Put(context.get(), request, &receipt).ok());
  }
  const json before = Status();
  for (const std::string& authorization : {std::string(), Bearer(Claims({""}, {"carts/"}))}) {
    for (const Outcome& outcome : CallEvery(authorization, "orders/1", "")) {
      // The reader may read; every write and admin call is refused.
      if (outcome.rpc == "Get" || outcome.rpc == "Scan" || outcome.rpc == "Watch") continue;
      EXPECT_TRUE(outcome.error == "unauthenticated" || outcome.error == "forbidden")
          << outcome.rpc << ": " << Describe(outcome.status);
    }
  }
  v1::GetRequest request;
  request.set_key("orders/1");
  v1::GetResponse response;
  auto context = Context(admin_);
  ASSERT_TRUE(stub_->Get(context.get(), request, &response).ok());
  EXPECT_EQ(response.doc(), R"({"v":1})");
  const json after = Status();
  EXPECT_EQ(after["local_events"], before["local_events"]);
  EXPECT_EQ(after["digest"], before["digest"]);
}

TEST_F(GrpcAuthTest, IdempotencyKeysAreKeptPerClient) {
  const auto put = [&](const std::string& authorization, const std::string& key,
                       v1::WriteReceipt* receipt) {
    v1::PutRequest request;
    request.set_key(key);
    request.set_doc(R"({"v":1})");
    request.mutable_options()->set_idempotency_key("order-17");
    auto context = Context(authorization);
    return stub_->Put(context.get(), request, receipt);
  };
  const std::string alice = Bearer(Claims({""}, {""}, false, "alice"));
  const std::string bob = Bearer(Claims({""}, {""}, false, "bob"));
  v1::WriteReceipt first, bobs, again;
  ASSERT_TRUE(put(alice, "a1", &first).ok());
  const grpc::Status bob_status = put(bob, "b1", &bobs);
  ASSERT_TRUE(bob_status.ok()) << Describe(bob_status);
  EXPECT_FALSE(bobs.replayed());
  EXPECT_NE(bobs.event(), first.event());
  ASSERT_TRUE(put(alice, "a1", &again).ok());
  EXPECT_TRUE(again.replayed());
  EXPECT_EQ(again.event(), first.event());
  const grpc::Status reused = put(alice, "a2", &again);
  EXPECT_EQ(reused.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << Describe(reused);
  EXPECT_NE(reused.error_message().find("'order-17'"), std::string::npos) << Describe(reused);
}

TEST_F(GrpcAuthTest, AScanPageEndsBeforeItsBytesPassTheBound) {
  const std::string filler(1000, 'x');
  for (int i = 0; i < 20; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "big/%02d", i);
    v1::PutRequest request;
    request.set_key(key);
    request.set_doc(json{{"fill", filler}, {"i", i}}.dump());
    v1::WriteReceipt receipt;
    auto context = Context(admin_);
    ASSERT_TRUE(stub_->Put(context.get(), request, &receipt).ok());
  }
  std::vector<std::string> keys;
  std::string after;
  for (int page = 0; page < 50; ++page) {
    v1::ScanRequest request;
    request.set_prefix("big/");
    request.set_after(after);
    request.set_limit(1000);
    v1::ScanResponse response;
    auto context = Context(admin_);
    const grpc::Status status = stub_->Scan(context.get(), request, &response);
    ASSERT_TRUE(status.ok()) << Describe(status);
    size_t bytes = 0;
    for (const v1::ScanItem& item : response.items()) {
      keys.push_back(item.key());
      bytes += item.key().size() + item.doc().size() + 16;
    }
    EXPECT_GE(response.items_size(), 1);
    EXPECT_LE(bytes, kScanPageBytes);
    if (!response.has_next()) break;
    EXPECT_LT(response.items_size(), 20);
    EXPECT_EQ(response.next(), keys.back());
    after = response.next();
  }
  ASSERT_EQ(keys.size(), 20u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), 20u);
}

}  // namespace
