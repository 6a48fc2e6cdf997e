// The gRPC API's strong operations, conditions and transactions against real region processes:
// a strong write or read sent to any region's gRPC port runs in the key's home (forwarded there
// over the home's HTTP API, as the HTTP server does), conditions refuse with FAILED_PRECONDITION,
// and Txn takes the HTTP body.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "meridian/api.grpc.pb.h"
#include "support/cluster.h"

namespace meridian::testing {
namespace {

namespace v1 = meridian::api::v1;
using nlohmann::json;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

std::string Trailer(const grpc::ClientContext& context, const std::string& name) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(name);
  return it == trailers.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

TEST(GrpcStrongTest, StrongCallsRunInTheHomeAndConditionsHold) {
  ClusterOptions options;
  options.grpc = true;
  options.delay_ms = 40;
  options.extra_toml +=
      "\n[[homes]]\nprefix = \"acct/\"\nregion = \"us\"\n"
      "\n[[homes]]\nprefix = \"stock/\"\nregion = \"eu\"\n";
  Cluster cluster(options);
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  std::map<std::string, std::unique_ptr<v1::Meridian::Stub>> stubs;
  for (const std::string& region : cluster.regions()) {
    auto channel =
        grpc::CreateChannel("127.0.0.1:" + std::to_string(cluster.node(region).grpc_port()),
                            grpc::InsecureChannelCredentials());
    stubs[region] = v1::Meridian::NewStub(channel);
  }

  // A strong put through eu is made by us; a strong get through asia sees it at once.
  v1::PutRequest put;
  put.set_key("acct/ann");
  put.set_doc(R"({"n":1})");
  put.mutable_options()->set_consistency("strong");
  v1::WriteReceipt receipt;
  auto context = Context();
  grpc::Status status = stubs["eu"]->Put(context.get(), put, &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(receipt.event().substr(0, 3), "us:");
  EXPECT_EQ(receipt.version().size(), 16u);
  v1::GetRequest get;
  get.set_key("acct/ann");
  get.mutable_options()->set_consistency("strong");
  v1::GetResponse got;
  context = Context();
  status = stubs["asia"]->Get(context.get(), get, &got);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(got.found());
  EXPECT_EQ(got.doc(), R"({"n":1})");
  EXPECT_EQ(got.version(), receipt.version());

  // If-Match over that version: once, then FAILED_PRECONDITION.
  put.set_doc(R"({"n":2})");
  put.mutable_options()->set_if_match("\"" + receipt.version() + "\"");
  context = Context();
  ASSERT_TRUE(stubs["asia"]->Put(context.get(), put, &receipt).ok());
  put.set_doc(R"({"n":3})");
  context = Context();
  status = stubs["eu"]->Put(context.get(), put, &receipt);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Trailer(*context, "meridian-error"), "precondition_failed");

  // A strong transaction through asia: run in us; then its else branch.
  v1::TxnRequest txn;
  txn.set_body(json{{"if", {{{"key", "acct/bob"}, {"exists", false}}}},
                    {"then",
                     {{{"op", "put"}, {"key", "acct/bob"}, {"doc", {{"n", 1}}}},
                      {{"op", "incr"}, {"key", "acct/ann"}, {"doc", {{"n", 10}}}}}},
                    {"else", {{{"op", "incr"}, {"key", "acct/ann"}, {"doc", {{"n", 100}}}}}}}
                   .dump());
  txn.mutable_options()->set_consistency("strong");
  context = Context();
  status = stubs["asia"]->Txn(context.get(), txn, &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(receipt.succeeded());
  ASSERT_EQ(receipt.events_size(), 2);
  EXPECT_EQ(receipt.events(0).substr(0, 3), "us:");
  context = Context();
  ASSERT_TRUE(stubs["eu"]->Txn(context.get(), txn, &receipt).ok());
  EXPECT_FALSE(receipt.succeeded());
  context = Context();
  ASSERT_TRUE(stubs["eu"]->Get(context.get(), get, &got).ok());
  EXPECT_EQ(got.doc(), R"({"n":112})");

  // Keys in two homes: two-phase commit, coordinated by asia, which receives it.
  v1::TxnRequest across;
  across.set_body(json{{"then",
                        {{{"op", "incr"}, {"key", "acct/ann"}, {"doc", {{"n", -2}}}},
                         {{"op", "incr"}, {"key", "stock/lamp"}, {"doc", {{"left", 2}}}}}}}
                      .dump());
  across.mutable_options()->set_consistency("strong");
  context = Context();
  status = stubs["asia"]->Txn(context.get(), across, &receipt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(receipt.succeeded());
  EXPECT_EQ(receipt.events(0).substr(0, 5), "asia:");
  context = Context();
  ASSERT_TRUE(stubs["us"]->Get(context.get(), get, &got).ok());
  EXPECT_EQ(got.doc(), R"({"n":110})");

  // No home; a home that is down: refused, nothing applied.
  v1::PutRequest free;
  free.set_key("free/x");
  free.set_doc("{}");
  free.mutable_options()->set_consistency("strong");
  context = Context();
  status = stubs["eu"]->Put(context.get(), free, &receipt);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Trailer(*context, "meridian-error"), "no_home");
  cluster.node("us").Kill();
  put.mutable_options()->clear_if_match();
  context = Context();
  status = stubs["eu"]->Put(context.get(), put, &receipt);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Trailer(*context, "meridian-error"), "home_unavailable");
}

}  // namespace
}  // namespace meridian::testing
