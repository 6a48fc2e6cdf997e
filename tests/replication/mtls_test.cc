// Mutual TLS between real region processes (docs/security.md#tls): certificates made by
// `meridian ca create` / `meridian cert create`; regions replicate over it; plaintext, a
// certificate of another CA, one naming no region and one naming another region than the message
// claims are all refused; certificate files replaced while the nodes run are used for new
// connections without a restart.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/version_vector.h"
#include "meridian/api.grpc.pb.h"
#include "meridian/replication.grpc.pb.h"
#include "support/certs.h"
#include "support/http_client.h"
#include "support/node_process.h"
#include "support/temp_dir.h"
#include "wanproxy/wan_proxy.h"

namespace meridian::testing {
namespace {

namespace v1 = meridian::api::v1;
using std::chrono::seconds;

constexpr auto kCallTimeout = std::chrono::seconds(10);

// Runs `meridian ARGS`; true when it exits 0.
bool Meridian(const std::string& arguments) {
  const std::string command = std::string(MeridianBinary()) + " " + arguments + " >/dev/null";
  const int status = std::system(command.c_str());
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// A deployment's certificates, made with the tool: the CA and one certificate per region.
struct Pki {
  TempDir dir;
  std::string ca_dir() const { return dir.path() + "/ca"; }
  std::string ca_file() const { return ca_dir() + "/ca.pem"; }
  std::string cert_file(const std::string& region) const {
    return ca_dir() + "/" + region + ".pem";
  }
  std::string key_file(const std::string& region) const {
    return ca_dir() + "/" + region + "-key.pem";
  }
  bool Create(const std::vector<std::string>& regions) {
    if (!Meridian("ca create --dir " + ca_dir())) return false;
    for (const std::string& region : regions) {
      if (!Issue(region, false)) return false;
    }
    return true;
  }
  bool Issue(const std::string& region, bool force) {
    return Meridian("cert create --ca-dir " + ca_dir() + " --region " + region +
                    (force ? " --force" : ""));
  }
  // The nodes' ca_file: the CA's certificate unless `trust` names another file.
  std::string trust;
  std::string Toml(const std::string& region) const {
    return "[tls]\ncert_file = \"" + cert_file(region) + "\"\nkey_file = \"" + key_file(region) +
           "\"\nca_file = \"" + (trust.empty() ? ca_file() : trust) + "\"\n";
  }
};

// Writes `bytes` to `path` the way an operator replaces a watched file: beside it, then renamed.
bool Replace(const std::string& path, const std::string& bytes) {
  {
    std::ofstream file(path + ".new", std::ios::binary | std::ios::trunc);
    file << bytes;
    if (!file) return false;
  }
  return std::rename((path + ".new").c_str(), path.c_str()) == 0;
}

std::vector<RegionEntry> Regions(const std::vector<std::string>& names) {
  std::vector<RegionEntry> regions;
  int id = 1;
  for (const std::string& name : names) {
    regions.push_back({name, id++, FreePort(), "127.0.0.1:" + std::to_string(FreePort())});
  }
  return regions;
}

NodeOptions TlsNode(const Pki& pki, const std::string& region,
                    const std::vector<RegionEntry>& regions) {
  NodeOptions options;
  options.region = region;
  options.regions = regions;
  options.grpc = true;
  // [tls] makes the HTTP API speak TLS too, with the certificate replication presents.
  options.https_ca_file = pki.trust.empty() ? pki.ca_file() : pki.trust;
  options.extra_toml = pki.Toml(region) +
                       "[storage]\nsync = false\n"
                       "[replication]\nheartbeat_ms = 50\nbackoff_initial_ms = 20\n"
                       "backoff_max_ms = 300\n"
                       "[verify]\ninterval_ms = 300\n";
  return options;
}

std::string ReplicationAddress(const std::vector<RegionEntry>& regions, const std::string& name) {
  for (const RegionEntry& entry : regions) {
    if (entry.name == name) return entry.replication;
  }
  return {};
}

// A channel to `address` with TLS: trusting `ca_pem`, presenting `cert_file`/`key_file` when
// given, expecting the server to be `server_name` (a DNS name its certificate carries). Each its
// own connection.
std::shared_ptr<grpc::Channel> TlsChannel(const std::string& address, const std::string& ca_pem,
                                          const std::string& server_name,
                                          const std::string& cert_file = "",
                                          const std::string& key_file = "") {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem;
  if (!cert_file.empty()) {
    ssl.pem_cert_chain = ReadFile(cert_file);
    ssl.pem_private_key = ReadFile(key_file);
  }
  grpc::ChannelArguments arguments;
  arguments.SetSslTargetNameOverride(server_name);
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), arguments);
}

std::shared_ptr<grpc::Channel> PlainChannel(const std::string& address) {
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments);
}

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + kCallTimeout;
}

wire::VerifyRequest VerifyAs(core::RegionId id, const std::string& name) {
  wire::VerifyRequest request;
  request.set_deployment("default");
  request.set_region_id(id);
  request.set_region_name(name);
  request.set_incarnation(0x77);
  return request;
}

// A Verify call on the replication port; `context` keeps what the handshake saw.
grpc::Status CallVerify(const std::shared_ptr<grpc::Channel>& channel,
                        const wire::VerifyRequest& request, grpc::ClientContext* context) {
  context->set_deadline(Deadline());
  wire::VerifyReply reply;
  return wire::Replication::NewStub(channel)->Verify(context, request, &reply);
}

// The certificate the server presented on the call's connection (PEM), empty when none.
std::string PeerCertificate(const grpc::ClientContext& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return {};
  const std::vector<grpc::string_ref> pems = auth->FindPropertyValues("x509_pem_cert");
  return pems.empty() ? std::string() : std::string(pems[0].data(), pems[0].size());
}

// A Get through the client gRPC API; `context` keeps what the handshake saw.
grpc::Status CallGet(const std::shared_ptr<grpc::Channel>& channel, const std::string& key,
                     grpc::ClientContext* context, v1::GetResponse* response) {
  context->set_deadline(Deadline());
  v1::GetRequest request;
  request.set_key(key);
  return v1::Meridian::NewStub(channel)->Get(context, request, response);
}

// Every peer's last comparison with the node found the same documents (docs/verification.md).
bool AllIdentical(NodeProcess& node) {
  const nlohmann::json verify =
      nlohmann::json::parse(node.Client().Get("/v1/verify").body, nullptr, false);
  if (!verify.is_object() || !verify.contains("peers") || verify["peers"].empty()) return false;
  for (const nlohmann::json& peer : verify["peers"]) {
    if (peer.value("state", "") != "identical") return false;
  }
  return true;
}

bool Holds(NodeProcess& node, const std::string& key, const std::string& body) {
  const HttpResponse response = node.Client().Get("/v1/docs/" + key);
  return response.status == 200 && response.body == body;
}

class MutualTls : public ::testing::Test {
 protected:
  void StartRegions(const std::vector<std::string>& names) {
    ASSERT_TRUE(pki_.Create(names));
    regions_ = Regions(names);
    for (const std::string& name : names) {
      nodes_.push_back(std::make_unique<NodeProcess>(TlsNode(pki_, name, regions_)));
    }
    for (auto& node : nodes_) ASSERT_TRUE(node->Start(seconds(30))) << node->log();
  }
  NodeProcess& node(size_t index) { return *nodes_.at(index); }
  std::string Replication(const std::string& name) const {
    return ReplicationAddress(regions_, name);
  }

  Pki pki_;
  std::vector<RegionEntry> regions_;
  std::vector<std::unique_ptr<NodeProcess>> nodes_;
};

TEST_F(MutualTls, RegionsReplicateAndPlaintextIsRefusedOnBothPorts) {
  StartRegions({"us", "eu", "asia"});
  NodeProcess& us = node(0);
  NodeProcess& asia = node(2);
  ASSERT_EQ(us.Client().Send("PUT", "/v1/docs/sku-1", R"({"stock":10})").status, 200);
  ASSERT_EQ(asia.Client().Send("PUT", "/v1/docs/sku-2", R"({"stock":7})").status, 200);
  for (auto& node : nodes_) {
    EXPECT_TRUE(WaitFor([&] { return Holds(*node, "sku-1", R"({"stock":10})"); }, seconds(20)))
        << node->log();
    EXPECT_TRUE(WaitFor([&] { return Holds(*node, "sku-2", R"({"stock":7})"); }, seconds(20)))
        << node->log();
  }

  // Plaintext gets no call through on the replication port...
  {
    grpc::ClientContext context;
    const grpc::Status status =
        CallVerify(PlainChannel(Replication("us")), VerifyAs(2, "eu"), &context);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  }
  // ...nor on the client gRPC API's, which speaks TLS to a client that trusts the CA.
  const std::string grpc_api = "127.0.0.1:" + std::to_string(us.grpc_port());
  {
    grpc::ClientContext context;
    v1::GetResponse response;
    const grpc::Status status = CallGet(PlainChannel(grpc_api), "sku-1", &context, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  }
  {
    grpc::ClientContext context;
    v1::GetResponse response;
    const grpc::Status status =
        CallGet(TlsChannel(grpc_api, ReadFile(pki_.ca_file()), "us"), "sku-2", &context, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(response.found());
    EXPECT_EQ(response.doc(), R"({"stock":7})");
  }
}

TEST_F(MutualTls, PeersWithoutTheRightCertificateAreRefused) {
  StartRegions({"us", "eu", "asia"});
  NodeProcess& us = node(0);
  const std::string ca_pem = ReadFile(pki_.ca_file());

  // A certificate naming eu from another CA: the handshake fails.
  const TestCa rogue = MakeTestCa(pki_.dir.path() + "/rogue", "rogue");
  const TestCert rogue_eu = MakeTestCert(rogue, "eu");
  {
    grpc::ClientContext context;
    const grpc::Status status = CallVerify(
        TlsChannel(Replication("us"), ca_pem, "us", rogue_eu.cert_file, rogue_eu.key_file),
        VerifyAs(2, "eu"), &context);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  }
  // No client certificate at all: the same.
  {
    grpc::ClientContext context;
    const grpc::Status status =
        CallVerify(TlsChannel(Replication("us"), ca_pem, "us"), VerifyAs(2, "eu"), &context);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  }
  // The deployment's CA, but a name that is no region of it.
  const TestCa deployment{pki_.ca_dir(), pki_.ca_file(), pki_.ca_dir() + "/ca-key.pem"};
  const TestCert mallory = MakeTestCert(deployment, "mallory");
  {
    grpc::ClientContext context;
    const grpc::Status status =
        CallVerify(TlsChannel(Replication("us"), ca_pem, "us", mallory.cert_file, mallory.key_file),
                   VerifyAs(2, "eu"), &context);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  }

  // eu's own certificate, claiming to be asia: the handshake passes, the exchange refuses.
  const auto eu_channel =
      TlsChannel(Replication("us"), ca_pem, "us", pki_.cert_file("eu"), pki_.key_file("eu"));
  {
    grpc::ClientContext context;
    const grpc::Status status = CallVerify(eu_channel, VerifyAs(3, "asia"), &context);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    EXPECT_EQ(status.error_message(), "refused: certificate names region 'eu', not 'asia'");
  }
  {
    grpc::ClientContext context;
    auto stream = wire::Replication::NewStub(eu_channel)->Stream(&context);
    wire::ToSender first;
    wire::Subscribe* subscribe = first.mutable_subscribe();
    subscribe->set_protocol_version(1);
    subscribe->set_deployment("default");
    subscribe->set_region_id(3);
    subscribe->set_region_name("asia");
    subscribe->set_incarnation(0x77);
    ASSERT_TRUE(stream->Write(first));
    stream->WritesDone();
    wire::ToReceiver message;
    EXPECT_FALSE(stream->Read(&message)) << "nothing is sent to an impostor";
    const grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    EXPECT_EQ(status.error_message(), "refused: certificate names region 'eu', not 'asia'");
  }
  EXPECT_TRUE(WaitFor(
      [&] {
        return us.log().find("refused a subscription: certificate names region 'eu', not 'asia'") !=
               std::string::npos;
      },
      seconds(10)))
      << us.log();

  // The real regions still replicate.
  ASSERT_EQ(us.Client().Send("PUT", "/v1/docs/k", R"({"v":1})").status, 200);
  EXPECT_TRUE(WaitFor([&] { return Holds(node(2), "k", R"({"v":1})"); }, seconds(20)))
      << node(2).log();
}

TEST_F(MutualTls, CertificatesReplacedWhileRunningAreUsedWithoutARestart) {
  StartRegions({"us", "eu"});
  NodeProcess& us = node(0);
  NodeProcess& eu = node(1);
  ASSERT_EQ(us.Client().Send("PUT", "/v1/docs/before", R"({"v":1})").status, 200);
  ASSERT_TRUE(WaitFor([&] { return Holds(eu, "before", R"({"v":1})"); }, seconds(20))) << eu.log();

  const std::string ca_pem = ReadFile(pki_.ca_file());
  const std::string old_eu = ReadFile(pki_.cert_file("eu"));
  // What eu presents on a new connection, on its replication port and on its gRPC API's.
  const auto presented_replication = [&] {
    grpc::ClientContext context;
    (void)CallVerify(
        TlsChannel(Replication("eu"), ca_pem, "eu", pki_.cert_file("us"), pki_.key_file("us")),
        VerifyAs(3, "nobody"), &context);
    return PeerCertificate(context);
  };
  const std::string grpc_api = "127.0.0.1:" + std::to_string(eu.grpc_port());
  const auto presented_api = [&] {
    grpc::ClientContext context;
    v1::GetResponse response;
    (void)CallGet(TlsChannel(grpc_api, ca_pem, "eu"), "before", &context, &response);
    return PeerCertificate(context);
  };
  ASSERT_EQ(presented_replication(), old_eu);
  ASSERT_EQ(presented_api(), old_eu);

  // New certificates for both regions, written over the old files (atomically, by renaming).
  ASSERT_TRUE(pki_.Issue("eu", /*force=*/true));
  ASSERT_TRUE(pki_.Issue("us", /*force=*/true));
  const std::string new_eu = ReadFile(pki_.cert_file("eu"));
  ASSERT_NE(new_eu, old_eu);
  EXPECT_TRUE(WaitFor([&] { return presented_replication() == new_eu; }, seconds(15)));
  EXPECT_TRUE(WaitFor([&] { return presented_api() == new_eu; }, seconds(15)));

  // The open streams go on...
  ASSERT_EQ(us.Client().Send("PUT", "/v1/docs/during", R"({"v":2})").status, 200);
  EXPECT_TRUE(WaitFor([&] { return Holds(eu, "during", R"({"v":2})"); }, seconds(20))) << eu.log();
  // ...and new ones are made with the new certificates: us restarts and dials eu (and eu
  // redials us) while eu keeps running.
  ASSERT_EQ(us.Terminate(), 0) << us.log();
  ASSERT_TRUE(us.Start(seconds(30))) << us.log();
  ASSERT_EQ(us.Client().Send("PUT", "/v1/docs/after", R"({"v":3})").status, 200);
  ASSERT_EQ(eu.Client().Send("PUT", "/v1/docs/back", R"({"v":4})").status, 200);
  EXPECT_TRUE(WaitFor([&] { return Holds(eu, "after", R"({"v":3})"); }, seconds(20))) << eu.log();
  EXPECT_TRUE(WaitFor([&] { return Holds(us, "back", R"({"v":4})"); }, seconds(20))) << us.log();
}

// The CA rotation docs/security.md describes, on running nodes: both CAs trusted, every region's
// certificate replaced by one of the new CA, the old CA dropped — replication goes on, and at the
// end a certificate of the old CA is refused while new connections work.
TEST(MutualTlsRotation, TheCaIsReplacedWithoutARestart) {
  Pki pki;
  pki.trust = pki.dir.path() + "/trust.pem";
  ASSERT_TRUE(pki.Create({"us", "eu"}));
  ASSERT_TRUE(Replace(pki.trust, ReadFile(pki.ca_file())));
  const std::vector<RegionEntry> regions = Regions({"us", "eu"});
  NodeProcess us(TlsNode(pki, "us", regions));
  NodeProcess eu(TlsNode(pki, "eu", regions));
  ASSERT_TRUE(us.Start(seconds(30))) << us.log();
  ASSERT_TRUE(eu.Start(seconds(30))) << eu.log();
  ASSERT_EQ(us.Client().Send("PUT", "/v1/docs/a", R"({"v":1})").status, 200);
  ASSERT_TRUE(WaitFor([&] { return Holds(eu, "a", R"({"v":1})"); }, seconds(20))) << eu.log();

  // Certificates of the new CA for a client to probe with, and copies of the old ones.
  const std::string next = pki.dir.path() + "/next";
  const std::string probe_new = pki.dir.path() + "/probe-new";
  const std::string probe_old = pki.dir.path() + "/probe-old";
  ASSERT_TRUE(Meridian("ca create --dir " + next));
  for (const std::string region : {"us", "eu"}) {
    ASSERT_TRUE(
        Meridian("cert create --ca-dir " + next + " --region " + region + " --out " + probe_new));
    ASSERT_TRUE(Meridian("cert create --ca-dir " + pki.ca_dir() + " --region " + region +
                         " --out " + probe_old));
  }
  const std::string old_ca = ReadFile(pki.ca_file());
  const std::string new_ca = ReadFile(next + "/ca.pem");
  // Whether `node` completes a handshake with a client presenting the other region's
  // certificate from `dir` (the call itself may be refused; only UNAVAILABLE means no handshake).
  const auto accepts = [&](const std::string& node, const std::string& dir) {
    const std::string other = node == "us" ? "eu" : "us";
    grpc::ClientContext context;
    const grpc::Status status =
        CallVerify(TlsChannel(ReplicationAddress(regions, node), old_ca + new_ca, node,
                              dir + "/" + other + ".pem", dir + "/" + other + "-key.pem"),
                   VerifyAs(other == "us" ? 1 : 2, other), &context);
    return status.error_code() != grpc::StatusCode::UNAVAILABLE;
  };
  ASSERT_TRUE(accepts("us", probe_old) && accepts("eu", probe_old));
  ASSERT_FALSE(accepts("us", probe_new)) << "the new CA is not trusted yet";

  // 1. Both CAs trusted.
  ASSERT_TRUE(Replace(pki.trust, old_ca + new_ca));
  ASSERT_TRUE(
      WaitFor([&] { return accepts("us", probe_new) && accepts("eu", probe_new); }, seconds(15)));
  // 2. Every region's certificate from the new CA, in place.
  for (const std::string region : {"us", "eu"}) {
    ASSERT_TRUE(Meridian("cert create --ca-dir " + next + " --region " + region + " --out " +
                         pki.ca_dir() + " --force"));
  }
  ASSERT_EQ(us.Client().Send("PUT", "/v1/docs/b", R"({"v":2})").status, 200);
  EXPECT_TRUE(WaitFor([&] { return Holds(eu, "b", R"({"v":2})"); }, seconds(20))) << eu.log();
  // 3. The old CA dropped: a certificate of it no longer gets through.
  ASSERT_TRUE(Replace(pki.trust, new_ca));
  ASSERT_TRUE(
      WaitFor([&] { return !accepts("us", probe_old) && !accepts("eu", probe_old); }, seconds(15)));
  EXPECT_TRUE(accepts("us", probe_new) && accepts("eu", probe_new));
  // New connections of the regions work with the new CA alone: us restarts, both directions
  // replicate.
  ASSERT_EQ(us.Terminate(), 0) << us.log();
  ASSERT_TRUE(us.Start(seconds(30))) << us.log();
  ASSERT_EQ(us.Client().Send("PUT", "/v1/docs/c", R"({"v":3})").status, 200);
  ASSERT_EQ(eu.Client().Send("PUT", "/v1/docs/d", R"({"v":4})").status, 200);
  EXPECT_TRUE(WaitFor([&] { return Holds(eu, "c", R"({"v":3})"); }, seconds(20))) << eu.log();
  EXPECT_TRUE(WaitFor([&] { return Holds(us, "d", R"({"v":4})"); }, seconds(20))) << us.log();
}

// A region may hold a bounded number of serving streams at a peer: the fifth stream of eu's
// certificate is refused while four are open, and taken once one of them closed.
TEST(MutualTlsLimits, ARegionHoldsAtMostFourStreamsAtAPeer) {
  Pki pki;
  ASSERT_TRUE(pki.Create({"us", "eu", "asia"}));
  const std::vector<RegionEntry> regions = Regions({"us", "eu", "asia"});
  NodeOptions options = TlsNode(pki, "us", regions);
  options.deployment = "limits";
  NodeProcess us(options);  // eu and asia are configured but not running
  ASSERT_TRUE(us.Start(seconds(30), /*ready=*/false)) << us.log();
  const auto channel = TlsChannel(ReplicationAddress(regions, "us"), ReadFile(pki.ca_file()), "us",
                                  pki.cert_file("eu"), pki.key_file("eu"));
  auto stub = wire::Replication::NewStub(channel);
  struct Open {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<wire::ToSender, wire::ToReceiver>> stream;
  };
  // Subscribes as eu; true when the heartbeat that starts a served stream arrives.
  const auto subscribe = [&](Open* open) {
    open->context.set_deadline(Deadline());
    open->stream = stub->Stream(&open->context);
    wire::ToSender first;
    wire::Subscribe* message = first.mutable_subscribe();
    message->set_protocol_version(1);
    message->set_deployment("limits");
    message->set_region_id(2);
    message->set_region_name("eu");
    message->set_incarnation(0x77);
    message->set_frontier(core::VersionVector().Encode());
    wire::ToReceiver reply;
    return open->stream->Write(first) && open->stream->Read(&reply) && reply.has_heartbeat();
  };
  std::vector<std::unique_ptr<Open>> open;
  for (int i = 0; i < 4; ++i) {
    open.push_back(std::make_unique<Open>());
    ASSERT_TRUE(subscribe(open.back().get())) << "stream " << i << "\n" << us.log();
  }
  Open fifth;
  EXPECT_FALSE(subscribe(&fifth));
  const grpc::Status refused = fifth.stream->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(refused.error_message(), "eu already has 4 streams here");

  // One closes: a new stream is served again (once the server has seen it go).
  open[0]->context.TryCancel();
  (void)open[0]->stream->Finish();
  std::unique_ptr<Open> again;
  EXPECT_TRUE(WaitFor(
      [&] {
        if (again) {
          again->context.TryCancel();
          (void)again->stream->Finish();
        }
        again = std::make_unique<Open>();
        return subscribe(again.get());
      },
      seconds(10)))
      << us.log();
  for (auto* one : {again.get(), open[1].get(), open[2].get(), open[3].get()}) {
    one->context.TryCancel();
    (void)one->stream->Finish();
  }
}

// The other calls between regions go over mutual TLS too: a region that joins empty is re-seeded
// from a peer's snapshot, and the regions' verification finds them identical.
TEST(MutualTlsCalls, ANewRegionIsReseededAndRegionsVerifyEachOther) {
  Pki pki;
  ASSERT_TRUE(pki.Create({"us", "eu", "asia"}));
  const std::vector<RegionEntry> regions = Regions({"us", "eu", "asia"});
  NodeProcess us(TlsNode(pki, "us", regions));
  NodeProcess eu(TlsNode(pki, "eu", regions));
  ASSERT_TRUE(us.Start(seconds(30), /*ready=*/false)) << us.log();
  ASSERT_TRUE(eu.Start(seconds(30), /*ready=*/false)) << eu.log();
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(us.Client().Send("PUT", "/v1/docs/item:" + std::to_string(i), R"({"n":1})").status,
              200);
  }
  ASSERT_TRUE(WaitFor([&] { return Holds(eu, "item:19", R"({"n":1})"); }, seconds(20))) << eu.log();

  NodeOptions asia_options = TlsNode(pki, "asia", regions);
  asia_options.bootstrap = false;  // joins a deployment that has data: re-seeds
  NodeProcess asia(asia_options);
  ASSERT_TRUE(asia.Start(seconds(30))) << asia.log();
  const nlohmann::json status =
      nlohmann::json::parse(asia.Client().Get("/v1/status").body, nullptr, false);
  EXPECT_EQ(status["reseed"]["state"], "done") << status.dump();
  EXPECT_TRUE(Holds(asia, "item:0", R"({"n":1})"));
  EXPECT_TRUE(Holds(asia, "item:19", R"({"n":1})"));
  EXPECT_TRUE(WaitFor([&] { return AllIdentical(us) && AllIdentical(eu) && AllIdentical(asia); },
                      seconds(30)))
      << us.Client().Get("/v1/verify").body << asia.Client().Get("/v1/verify").body;
}

// A peer that answers every subscription with an error, counting them.
class CountingPeer final : public wire::Replication::Service {
 public:
  grpc::Status Stream(grpc::ServerContext*,
                      grpc::ServerReaderWriter<wire::ToReceiver, wire::ToSender>*) override {
    ++streams;
    return {grpc::StatusCode::UNAVAILABLE, "a fake peer"};
  }
  std::atomic<int> streams{0};
};

// Serves `peer` on `port` with mutual TLS (the deployment's CA), presenting `region`'s
// certificate.
std::unique_ptr<grpc::Server> ServeAs(CountingPeer* peer, uint16_t port, const Pki& pki,
                                      const std::string& region) {
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = ReadFile(pki.ca_file());
  ssl.pem_key_cert_pairs.push_back(
      {ReadFile(pki.key_file(region)), ReadFile(pki.cert_file(region))});
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::SslServerCredentials(ssl));
  builder.RegisterService(peer);
  return builder.BuildAndStart();
}

// The dialling side checks too: a server at eu's address whose certificate (from the deployment's
// CA) names asia completes no handshake with us, so us never subscribes to it; once the server
// there presents eu's certificate, us does.
TEST(MutualTlsDial, APeerPresentingAnotherRegionsCertificateIsNotSubscribedTo) {
  Pki pki;
  ASSERT_TRUE(pki.Create({"us", "eu", "asia"}));
  const uint16_t fake_port = FreePort();
  // Through a proxy, to see that us keeps connecting (and the server answering) meanwhile.
  wanproxy::WanProxyOptions proxy_options;
  wanproxy::Route route_to_fake;
  route_to_fake.listen_host = "127.0.0.1";
  route_to_fake.target_host = "127.0.0.1";
  route_to_fake.target_port = fake_port;
  proxy_options.routes.push_back(route_to_fake);
  wanproxy::WanProxy proxy(proxy_options);
  ASSERT_TRUE(proxy.Start().ok());
  std::vector<RegionEntry> regions = Regions({"us", "eu"});
  regions[1].replication = "127.0.0.1:" + std::to_string(proxy.listen_port(0));

  CountingPeer impostor;
  std::unique_ptr<grpc::Server> server = ServeAs(&impostor, fake_port, pki, "asia");
  ASSERT_NE(server, nullptr);
  NodeProcess us(TlsNode(pki, "us", regions));
  ASSERT_TRUE(us.Start(seconds(30), /*ready=*/false)) << us.log();
  const auto route = [&] { return proxy.stats().routes.at(0); };
  ASSERT_TRUE(WaitFor([&] { return route().connections_total >= 3 && route().bytes_to_client > 0; },
                      seconds(20)))
      << us.log();
  EXPECT_EQ(impostor.streams.load(), 0) << "us subscribed to a server whose certificate names asia";
  server->Shutdown();
  server.reset();

  CountingPeer eu;
  server = ServeAs(&eu, fake_port, pki, "eu");
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(WaitFor([&] { return eu.streams.load() > 0; }, seconds(20))) << us.log();
  server->Shutdown();
}

}  // namespace
}  // namespace meridian::testing
