// Unique ids (POST /v1/ids, docs/semantics.md#unique-ids) against real `meridian start`
// processes: a three-region deployment whose region ids span 0..31, ids never repeated across
// regions, increasing in each, carrying their region in bits 58-62, above every earlier one after
// a kill -9; the count bounds; and the gRPC, client library and CLI paths.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "meridian/api.grpc.pb.h"
#include "meridian/client.h"
#include "support/cli.h"
#include "support/http_client.h"
#include "support/node_process.h"

namespace {

namespace v1 = meridian::api::v1;
using meridian::testing::HttpClient;
using meridian::testing::HttpResponse;
using meridian::testing::NodeOptions;
using meridian::testing::NodeProcess;
using meridian::testing::RegionEntry;
using meridian::testing::RunCli;
using json = nlohmann::json;

// Region names and ids: the lowest, one between, the highest.
const std::map<std::string, uint32_t> kRegionIds = {{"us", 0}, {"eu", 17}, {"asia", 31}};

std::string Describe(const HttpResponse& response) {
  return "HTTP " + std::to_string(response.status) + " body '" + response.body.substr(0, 300) +
         "' " + response.error;
}

// The ids of a 200 answer {"ids": ["<decimal>", ...]}; a failure when it is anything else.
std::vector<uint64_t> IdsOf(const HttpResponse& response) {
  std::vector<uint64_t> ids;
  EXPECT_EQ(response.status, 200) << Describe(response);
  const json body = json::parse(response.body, nullptr, false);
  if (!body.is_object() || !body["ids"].is_array()) {
    ADD_FAILURE() << "not an ids answer: " << Describe(response);
    return ids;
  }
  for (const json& id : body["ids"]) {
    const std::string text = id.is_string() ? id.get<std::string>() : "";
    uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    EXPECT_TRUE(!text.empty() && error == std::errc() && end == text.data() + text.size())
        << "not a decimal string: " << id.dump();
    EXPECT_EQ(std::to_string(value), text) << "leading zeros or signs";
    ids.push_back(value);
  }
  return ids;
}

::testing::AssertionResult IncreasingInRegion(const std::vector<uint64_t>& ids, uint32_t region) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >> 58 != region) {
      return ::testing::AssertionFailure() << "id " << ids[i] << " has region " << (ids[i] >> 58);
    }
    if (ids[i] == 0 || ids[i] >> 63 != 0) {
      return ::testing::AssertionFailure() << "id " << ids[i] << " is not a positive int64";
    }
    if (i > 0 && ids[i - 1] >= ids[i]) {
      return ::testing::AssertionFailure()
             << "ids " << ids[i - 1] << " then " << ids[i] << " at " << i;
    }
  }
  return ::testing::AssertionSuccess();
}


class UniqueIdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<RegionEntry> entries;
    for (const auto& [name, id] : kRegionIds) {
      entries.push_back({name, static_cast<int>(id), meridian::testing::FreePort(),
                         "127.0.0.1:" + std::to_string(meridian::testing::FreePort())});
    }
    for (const auto& [name, id] : kRegionIds) {
      NodeOptions options;
      options.region = name;
      options.regions = entries;
      options.grpc = name == "eu";
      nodes_[name] = std::make_unique<NodeProcess>(options);
    }
    for (auto& [name, node] : nodes_) {
      ASSERT_TRUE(node->Start()) << name << " did not come up:\n" << node->log();
    }
  }

  std::vector<uint64_t> Take(const std::string& region, uint32_t count) {
    HttpClient client = nodes_.at(region)->Client();
    return IdsOf(client.Request("POST", "/v1/ids?count=" + std::to_string(count)));
  }

  std::string RegionsFlag() const {
    std::string flag = "--regions ";
    for (const auto& [name, node] : nodes_) {
      if (flag.back() != ' ') flag += ',';
      flag += name + "=127.0.0.1:" + std::to_string(node->http_port());
    }
    return flag;
  }

  std::map<std::string, std::unique_ptr<NodeProcess>> nodes_;
};

TEST_F(UniqueIdsTest, EveryRegionsIdsAreUniqueIncreasingAndCarryItsRegionAcrossAKill) {
  // Callers in every region at once, two per region, with counts of every size.
  std::mutex mutex;
  std::map<std::string, std::vector<std::vector<uint64_t>>> answers;  // per region, per caller
  std::vector<std::thread> callers;
  for (const auto& [name, id] : kRegionIds) {
    for (int caller = 0; caller < 2; ++caller) {
      callers.emplace_back([&, name, caller] {
        HttpClient client = nodes_.at(name)->Client();
        std::vector<uint64_t> mine;
        for (uint32_t round = 0; round < 30; ++round) {
          const uint32_t count = 1 + (round * 337 + static_cast<uint32_t>(caller) * 101) % 2000;
          const std::vector<uint64_t> ids =
              IdsOf(client.Request("POST", "/v1/ids?count=" + std::to_string(count)));
          EXPECT_EQ(ids.size(), count);
          mine.insert(mine.end(), ids.begin(), ids.end());
        }
        std::lock_guard lock(mutex);
        answers[name].push_back(std::move(mine));
      });
    }
  }
  for (std::thread& caller : callers) caller.join();

  std::set<uint64_t> all;
  size_t total = 0;
  std::map<std::string, uint64_t> highest;
  for (const auto& [name, per_caller] : answers) {
    ASSERT_EQ(per_caller.size(), 2u);
    for (const std::vector<uint64_t>& ids : per_caller) {
      // Each caller's ids increase (its calls follow one another), in its region's bits.
      EXPECT_TRUE(IncreasingInRegion(ids, kRegionIds.at(name))) << name;
      all.insert(ids.begin(), ids.end());
      total += ids.size();
      if (!ids.empty()) highest[name] = std::max(highest[name], ids.back());
    }
  }
  EXPECT_EQ(all.size(), total) << "an id was issued twice";

  // kill -9 one region (its ids were handed out after their reservation was durable), restart it:
  // every new id is above all of its earlier ones; the other regions carry on.
  NodeProcess& eu = *nodes_.at("eu");
  eu.Kill();
  ASSERT_TRUE(eu.Start()) << eu.log();
  const std::vector<uint64_t> after = Take("eu", 500);
  ASSERT_EQ(after.size(), 500u);
  EXPECT_TRUE(IncreasingInRegion(after, 17));
  EXPECT_GT(after.front(), highest["eu"]);
  // Twice in a row, with nothing issued in between.
  eu.Kill();
  ASSERT_TRUE(eu.Start()) << eu.log();
  const std::vector<uint64_t> again = Take("eu", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_GT(again.front(), after.back());
  for (const auto& [name, id] : kRegionIds) {
    if (name == "eu") continue;
    const std::vector<uint64_t> more = Take(name, 10);
    EXPECT_TRUE(IncreasingInRegion(more, id));
    ASSERT_FALSE(more.empty());
    EXPECT_GT(more.front(), highest[name]);
  }
  for (uint64_t id : after) EXPECT_TRUE(all.insert(id).second);
  EXPECT_TRUE(all.insert(again.front()).second);
}

TEST_F(UniqueIdsTest, TheCountIsOneToTenThousandAndOnlyPostIsAllowed) {
  HttpClient client = nodes_.at("asia")->Client();
  EXPECT_EQ(IdsOf(client.Request("POST", "/v1/ids")).size(), 1u);  // default: one
  const std::vector<uint64_t> most = IdsOf(client.Request("POST", "/v1/ids?count=10000"));
  EXPECT_EQ(most.size(), 10'000u);
  EXPECT_TRUE(IncreasingInRegion(most, 31));
  for (const char* bad : {"0", "10001", "-3", "ten", "", "1e3", "18446744073709551617"}) {
    const HttpResponse response = client.Request("POST", std::string("/v1/ids?count=") + bad);
    EXPECT_EQ(response.status, 400) << bad << ": " << Describe(response);
    const json body = json::parse(response.body, nullptr, false);
    EXPECT_EQ(body.value("error", ""), "bad_parameter") << Describe(response);
  }
  for (const char* method : {"GET", "PUT", "DELETE"}) {
    const HttpResponse response = client.Request(method, "/v1/ids?count=1");
    EXPECT_EQ(response.status, 405) << method << ": " << Describe(response);
    EXPECT_EQ(response.Header("allow"), "POST");
  }
  // Refusals issued nothing: the next id follows the last one handed out.
  const std::vector<uint64_t> next = IdsOf(client.Request("POST", "/v1/ids?count=1"));
  ASSERT_EQ(next.size(), 1u);
  EXPECT_GT(next[0], most.back());
  // The metrics count what was issued.
  const HttpResponse metrics = client.Get("/metrics");
  EXPECT_NE(metrics.body.find("meridian_ids_issued_total 10002"), std::string::npos)
      << metrics.body.substr(0, 200);
}

TEST_F(UniqueIdsTest, GrpcClientLibraryAndCliShareTheGenerator) {
  NodeProcess& eu = *nodes_.at("eu");
  const std::vector<uint64_t> first = Take("eu", 3);

  // gRPC.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(eu.grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::Meridian::NewStub(channel);
  v1::IdsRequest request;
  request.set_count(5);
  v1::IdsResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const grpc::Status status = stub->Ids(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<uint64_t> by_grpc(response.ids().begin(), response.ids().end());
  ASSERT_EQ(by_grpc.size(), 5u);
  EXPECT_TRUE(IncreasingInRegion(by_grpc, 17));
  EXPECT_GT(by_grpc.front(), first.back());
  v1::IdsRequest none;
  none.set_count(0);
  grpc::ClientContext refused;
  refused.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const grpc::Status bad = stub->Ids(&refused, none, &response);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad.error_message();
  EXPECT_EQ(bad.error_message().rfind("bad_parameter: ", 0), 0u) << bad.error_message();
  v1::IdsRequest unset;  // no count: one id
  grpc::ClientContext one;
  one.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ASSERT_TRUE(stub->Ids(&one, unset, &response).ok());
  ASSERT_EQ(response.ids_size(), 1);
  EXPECT_GT(response.ids(0), by_grpc.back());

  // The client library, in a chosen region.
  meridian::ClientOptions options;
  for (const auto& [name, node] : nodes_) {
    options.regions.push_back({name, "127.0.0.1", node->http_port(), false});
  }
  options.background_probes = false;
  auto client = meridian::Client::Create(options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  auto by_library = (*client)->Ids(4, "eu");
  ASSERT_TRUE(by_library.ok()) << by_library.status().ToString();
  ASSERT_EQ(by_library->size(), 4u);
  EXPECT_TRUE(IncreasingInRegion(*by_library, 17));
  EXPECT_GT(by_library->front(), response.ids(0));
  auto anywhere = (*client)->Ids(2);
  ASSERT_TRUE(anywhere.ok()) << anywhere.status().ToString();
  EXPECT_EQ(anywhere->size(), 2u);
  EXPECT_EQ((*client)->Ids(0, "eu").status().code(), meridian::StatusCode::kInvalidArgument);
  EXPECT_EQ((*client)->last_error().code, "bad_parameter");

  // The CLI: one id per line, or JSON.
  int code = -1;
  std::string out = RunCli("ids --count 3 --region eu " + RegionsFlag(), &code);
  ASSERT_EQ(code, 0) << out;
  std::istringstream lines(out);
  std::vector<uint64_t> by_cli;
  for (std::string line; std::getline(lines, line);) by_cli.push_back(std::stoull(line));
  ASSERT_EQ(by_cli.size(), 3u) << out;
  EXPECT_TRUE(IncreasingInRegion(by_cli, 17));
  EXPECT_GT(by_cli.front(), by_library->back());
  out = RunCli("ids --json --prefer us " + RegionsFlag(), &code);
  ASSERT_EQ(code, 0) << out;
  const json answer = json::parse(out, nullptr, false);
  ASSERT_TRUE(answer.is_object()) << out;
  EXPECT_EQ(answer.value("region", ""), "us");
  ASSERT_EQ(answer["ids"].size(), 1u) << out;
  EXPECT_EQ(std::stoull(answer["ids"][0].get<std::string>()) >> 58, 0u);
  out = RunCli("ids --count 10001 " + RegionsFlag(), &code);
  EXPECT_NE(code, 0) << out;
}

}  // namespace
