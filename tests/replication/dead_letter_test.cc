// A real node receives, from a peer speaking the Replication protocol (a fake `eu` in this
// process), a batch with an event it cannot read in the middle: it parks that event as a dead
// letter, applies the rest, acknowledges, keeps receiving on the link, and lists the dead letter.
// The same fake peer sends an event from far in the future: parked too, and the node's clock does
// not follow it. And a raw client on the node's replication port forges acknowledgements: they do
// not make a durability wait answer while the only peer is dead
// (docs/replication.md#what-a-peer-may-do).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/event.h"
#include "core/hlc.h"
#include "meridian/event.pb.h"
#include "meridian/replication.grpc.pb.h"
#include "replication/batch_codec.h"
#include "support/http_client.h"
#include "support/node_process.h"

namespace meridian::testing {
namespace {

constexpr core::RegionId kUs = 1;
constexpr core::RegionId kEu = 2;
constexpr const char* kDeployment = "dead-letters";

// eu's event `seq`: a PATCH of {"v": seq} to key `key`.
core::Event EuEvent(uint64_t seq, const std::string& key,
                    uint64_t physical_ms = 1'767'225'600'000) {
  core::Event event;
  event.dot = core::Dot{kEu, seq};
  event.hlc = core::MakeHlc(physical_ms + seq, 0);
  event.context = core::VersionVector{{kEu, seq - 1}};
  event.key = key;
  event.op = core::Operation{core::OpKind::kSet, {{"v", std::to_string(seq)}}, {}};
  return event;
}

// The same event as a newer build would send it: schema version kEventSchemaVersion + 1.
std::string Newer(const core::Event& event) {
  wire::Event message;
  EXPECT_TRUE(message.ParseFromString(core::EncodeEvent(event)));
  message.set_schema_version(core::kEventSchemaVersion + 1);
  return message.SerializeAsString();
}

// The fake eu: serves one subscription at a time, sends its heartbeat, then each batch it is
// given, and records the acknowledgements it gets.
class FakeSender final : public wire::Replication::Service {
 public:
  grpc::Status Stream(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<wire::ToReceiver, wire::ToSender>* stream) override {
    wire::ToSender first;
    if (!stream->Read(&first) || !first.has_subscribe()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no subscribe");
    }
    {
      std::lock_guard lock(mutex_);
      ++subscriptions_;
    }
    changed_.notify_all();
    wire::ToReceiver beat;
    wire::Heartbeat* heartbeat = beat.mutable_heartbeat();
    heartbeat->set_frontier(core::VersionVector{{kEu, 4}}.Encode());
    heartbeat->set_deployment(kDeployment);
    heartbeat->set_region_id(kEu);
    heartbeat->set_region_name("eu");
    heartbeat->set_incarnation(0x42);
    if (!stream->Write(beat)) return grpc::Status::OK;
    std::thread reader([&] {
      wire::ToSender message;
      while (stream->Read(&message)) {
        if (!message.has_ack()) continue;
        auto frontier = core::VersionVector::Decode(message.ack().frontier());
        std::lock_guard lock(mutex_);
        if (frontier.ok()) acked_ = std::max(acked_, frontier->Get(kEu));
        changed_.notify_all();
      }
      std::lock_guard lock(mutex_);
      ended_ = true;
      changed_.notify_all();
    });
    for (size_t next = 0;;) {
      std::vector<std::string> batch;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock,
                      [&] { return ended_ || next < batches_.size() || context->IsCancelled(); });
        if (ended_ || context->IsCancelled()) break;
        batch = batches_[next++];
      }
      wire::ToReceiver message;
      wire::Batch* out = message.mutable_batch();
      const replication::EncodedBatch encoded = replication::EncodeBatchOfEncoded(batch);
      out->set_origin(kEu);
      out->set_events(encoded.bytes);
      out->set_raw_bytes(encoded.raw_bytes);
      if (!stream->Write(message)) break;
    }
    context->TryCancel();
    reader.join();
    std::lock_guard lock(mutex_);
    ended_ = false;
    return grpc::Status::OK;
  }

  void Send(std::vector<std::string> batch) {
    std::lock_guard lock(mutex_);
    batches_.push_back(std::move(batch));
    changed_.notify_all();
  }

  // Waits (bounded) until the node acknowledged eu up to `seq`; the last seq acknowledged.
  uint64_t WaitForAck(uint64_t seq) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(20), [&] { return acked_ >= seq; });
    return acked_;
  }
  int subscriptions() {
    std::lock_guard lock(mutex_);
    return subscriptions_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::vector<std::string>> batches_;
  uint64_t acked_ = 0;
  int subscriptions_ = 0;
  bool ended_ = false;
};

// A real node `us` whose peer `eu` is a FakeSender served in the test process; `extra_toml` is
// added to us's config.
struct UsBesideFakeEu {
  explicit UsBesideFakeEu(const std::string& extra_toml = "") {
    const uint16_t eu_port = FreePort();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(eu_port),
                             grpc::InsecureServerCredentials());
    builder.RegisterService(&eu);
    server = builder.BuildAndStart();
    NodeOptions options;
    options.deployment = kDeployment;
    options.regions = {
        {"us", kUs, FreePort(), "127.0.0.1:" + std::to_string(FreePort())},
        {"eu", kEu, FreePort(), "127.0.0.1:" + std::to_string(eu_port)},
    };
    options.extra_toml = "[storage]\nsync = false\n" + extra_toml;
    us = std::make_unique<NodeProcess>(options);
  }
  // Starts us (not waiting for readiness: eu is not a real region).
  bool Start() { return server != nullptr && us->Start(std::chrono::seconds(20), /*ready=*/false); }

  FakeSender eu;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<NodeProcess> us;
};

TEST(DeadLetterProcessTest, APoisonEventIsParkedAndTheLinkGoesOn) {
  UsBesideFakeEu pair;
  ASSERT_TRUE(pair.Start()) << pair.us->log();
  FakeSender& eu = pair.eu;
  NodeProcess& us = *pair.us;
  HttpClient client = us.Client();

  // eu:2 is of a newer schema, in the middle of the batch.
  eu.Send({core::EncodeEvent(EuEvent(1, "a")), Newer(EuEvent(2, "b")),
           core::EncodeEvent(EuEvent(3, "c"))});
  ASSERT_EQ(eu.WaitForAck(3), 3u) << "the batch is acknowledged past the parked event\n"
                                  << us.log();
  // Later events on the same link go on.
  eu.Send({core::EncodeEvent(EuEvent(4, "d"))});
  ASSERT_EQ(eu.WaitForAck(4), 4u) << us.log();
  EXPECT_EQ(eu.subscriptions(), 1) << "the stream was never cancelled";

  EXPECT_EQ(client.Get("/v1/docs/a").body, R"({"v":1})");
  EXPECT_EQ(client.Get("/v1/docs/b").status, 404);
  EXPECT_EQ(client.Get("/v1/docs/c").body, R"({"v":3})");
  EXPECT_EQ(client.Get("/v1/docs/d").body, R"({"v":4})");

  HttpResponse listed = client.Get("/v1/dead-letters");
  ASSERT_EQ(listed.status, 200) << listed.body;
  const nlohmann::json items = nlohmann::json::parse(listed.body)["items"];
  ASSERT_EQ(items.size(), 1u) << listed.body;
  EXPECT_EQ(items[0]["id"], 1);
  EXPECT_EQ(items[0]["event"], "eu:2");
  EXPECT_EQ(items[0]["key"], "b");
  EXPECT_EQ(items[0]["status"], "parked");
  EXPECT_EQ(items[0]["reason"], "schema version " + std::to_string(core::kEventSchemaVersion + 1) +
                                    " is newer than this node reads (" +
                                    std::to_string(core::kEventSchemaVersion) + ")");
  const nlohmann::json status = nlohmann::json::parse(client.Get("/v1/status").body);
  EXPECT_EQ(status["dead_letters"], 1);
  EXPECT_EQ(status["dead_letter_documents"], 1);
  EXPECT_NE(client.Get("/metrics").body.find("meridian_dead_letters_total 1"), std::string::npos);
  EXPECT_NE(us.log().find("parked eu:2 (key 'b') as dead letter 1"), std::string::npos);

  // This build still cannot read it; unknown ids and bad parameters are refused.
  HttpResponse retry = client.Send("POST", "/v1/dead-letters/1/retry", "");
  EXPECT_EQ(retry.status, 409) << retry.body;
  EXPECT_EQ(nlohmann::json::parse(retry.body)["error"], "still_unreadable");
  EXPECT_EQ(client.Send("POST", "/v1/dead-letters/9/retry", "").status, 404);
  EXPECT_EQ(client.Get("/v1/dead-letters/1/retry").status, 405);
  EXPECT_EQ(client.Get("/v1/dead-letters?limit=0").status, 400);
  EXPECT_EQ(client.Get("/v1/dead-letters?limit=x").status, 400);
  const nlohmann::json after =
      nlohmann::json::parse(client.Get("/v1/dead-letters?limit=1").body)["items"];
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0]["retries"], 1);
  EXPECT_EQ(after[0]["status"], "parked");

  us.Kill();
  pair.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

uint64_t WallMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// An event whose HLC is a day ahead of the node's clock is parked with the reason, the link goes
// on, and the node's next write is stamped with its own time, not the event's.
TEST(DeadLetterProcessTest, AnEventFromTheFarFutureIsParkedAndTheClockStays) {
  UsBesideFakeEu pair("[replication]\nhlc_ahead_max_ms = 60000\n");
  ASSERT_TRUE(pair.Start()) << pair.us->log();
  FakeSender& eu = pair.eu;
  NodeProcess& us = *pair.us;
  HttpClient client = us.Client();

  const uint64_t day_ahead = WallMs() + 86'400'000;
  eu.Send({core::EncodeEvent(EuEvent(1, "a")), core::EncodeEvent(EuEvent(2, "b", day_ahead))});
  ASSERT_EQ(eu.WaitForAck(2), 2u) << us.log();
  eu.Send({core::EncodeEvent(EuEvent(3, "c"))});
  ASSERT_EQ(eu.WaitForAck(3), 3u) << us.log();
  EXPECT_EQ(eu.subscriptions(), 1) << "the stream was never cancelled";
  EXPECT_EQ(client.Get("/v1/docs/a").body, R"({"v":1})");
  EXPECT_EQ(client.Get("/v1/docs/b").status, 404);
  EXPECT_EQ(client.Get("/v1/docs/c").body, R"({"v":3})");

  const nlohmann::json items = nlohmann::json::parse(client.Get("/v1/dead-letters").body)["items"];
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0]["event"], "eu:2");
  EXPECT_NE(items[0]["reason"].get<std::string>().find(
                "its HLC time is more than 60000 ms ahead of this region's clock"),
            std::string::npos)
      << items[0];

  HttpResponse put = client.Send("PUT", "/v1/docs/mine", R"({"x":1})");
  ASSERT_EQ(put.status, 200) << put.body;
  core::HlcTimestamp hlc = 0;
  ASSERT_TRUE(core::ParseHlc(nlohmann::json::parse(put.body)["hlc"].get<std::string>(), &hlc));
  EXPECT_LT(core::HlcPhysicalMs(hlc), day_ahead - 3'600'000) << put.body;

  us.Kill();
  pair.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

// A client on the replication port claims to be eu and acknowledges every event of us up to
// 1000, in its Subscribe and in Acks; eu itself is dead. A write waiting for one other region
// must time out, not answer 200: nothing was sent to that stream, so nothing of it is believed.
TEST(DeadLetterProcessTest, ForgedAcknowledgementsDoNotSatisfyADurabilityWait) {
  const std::string us_replication = "127.0.0.1:" + std::to_string(FreePort());
  NodeOptions options;
  options.deployment = kDeployment;
  options.regions = {
      {"us", kUs, FreePort(), us_replication},
      {"eu", kEu, FreePort(), "127.0.0.1:" + std::to_string(FreePort())},  // nobody there
  };
  options.extra_toml = "[storage]\nsync = false\n";
  NodeProcess us(options);
  ASSERT_TRUE(us.Start(std::chrono::seconds(20), /*ready=*/false)) << us.log();
  HttpClient client = us.Client();
  ASSERT_EQ(client.Send("PUT", "/v1/docs/before", R"({"x":1})").status, 200);

  auto channel = grpc::CreateChannel(us_replication, grpc::InsecureChannelCredentials());
  auto stub = wire::Replication::NewStub(channel);
  grpc::ClientContext context;
  auto stream = stub->Stream(&context);
  const std::string forged = core::VersionVector{{kUs, 1000}, {kEu, 1000}}.Encode();
  wire::ToSender hello;
  wire::Subscribe* subscribe = hello.mutable_subscribe();
  subscribe->set_protocol_version(1);
  subscribe->set_region_id(kEu);
  subscribe->set_region_name("eu");
  subscribe->set_deployment(kDeployment);
  subscribe->set_incarnation(0x66);
  subscribe->set_frontier(forged);
  subscribe->set_subscription(1);
  subscribe->set_streamed_batches(true);  // and no origins: the stream sends it nothing
  ASSERT_TRUE(stream->Write(hello));
  // It is served: the first answer is the sender's heartbeat.
  wire::ToReceiver answer;
  ASSERT_TRUE(stream->Read(&answer));
  ASSERT_TRUE(answer.has_heartbeat());
  std::thread reader([&] {
    wire::ToReceiver ignored;
    while (stream->Read(&ignored)) {
    }
  });
  wire::ToSender ack;
  ack.mutable_ack()->set_frontier(forged);
  ASSERT_TRUE(stream->Write(ack));
  ASSERT_TRUE(WaitFor(
      [&] {
        return us.log().find("more of us's events than this region wrote") != std::string::npos;
      },
      std::chrono::seconds(10)))
      << us.log();

  HttpResponse put =
      client.Send("PUT", "/v1/docs/k?durability=regions:1&timeout_ms=1000", R"({"x":1})");
  EXPECT_EQ(put.status, 504) << put.body;
  EXPECT_EQ(nlohmann::json::parse(put.body)["confirmed_regions"], 0) << put.body;
  // Forged again after the write: still nothing was sent to it.
  ASSERT_TRUE(stream->Write(ack));
  put = client.Send("PUT", "/v1/docs/k2?durability=regions:1&timeout_ms=1000", R"({"x":2})");
  EXPECT_EQ(put.status, 504) << put.body;

  context.TryCancel();
  reader.join();
  us.Kill();
}

}  // namespace
}  // namespace meridian::testing
