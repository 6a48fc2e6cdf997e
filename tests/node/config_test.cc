#include <gtest/gtest.h>

#include <fstream>

#include "node/config.h"
#include "support/temp_dir.h"

namespace meridian::node {
namespace {

constexpr const char* kValid = R"(
[node]
region = "us"
data_dir = "data/us"

[[regions]]
name = "us"
id = 1
http = "127.0.0.1:7001"
replication = "127.0.0.1:7101"

[[regions]]
name = "eu"
id = 2
http = "127.0.0.1:7002"
replication = "127.0.0.1:7102"

[writes]
batch_max = 64

[limits]
key_bytes_max = 128
)";

TEST(ConfigTest, ParsesTheDocumentedFormat) {
  auto config = ParseConfig(kValid, "test.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_TRUE(ValidateConfig(*config).ok());
  EXPECT_EQ(config->region, "us");
  EXPECT_EQ(config->data_dir, "data/us");
  ASSERT_EQ(config->regions.size(), 2u);
  EXPECT_EQ(config->regions[1].name, "eu");
  EXPECT_EQ(config->regions[1].id, 2u);
  EXPECT_EQ(config->self().http, "127.0.0.1:7001");
  EXPECT_EQ(config->write_batch_max, 64u);
  EXPECT_EQ(config->limits.key_bytes_max, 128u);
  EXPECT_TRUE(config->sync);  // durable by default
}

TEST(ConfigTest, ScanPagesAreBoundedInBytes) {
  auto defaults = ParseConfig(kValid, "t");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->scan_page_bytes_max, size_t{4} << 20);
  auto set = ParseConfig(std::string(kValid) + "\n[http]\nscan_page_bytes_max = 65536\n", "t");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->scan_page_bytes_max, 65536u);
  EXPECT_TRUE(ValidateConfig(*set).ok());
  auto tiny = ParseConfig(std::string(kValid) + "\n[http]\nscan_page_bytes_max = 100\n", "t");
  ASSERT_TRUE(tiny.ok());
  const Status refused = ValidateConfig(*tiny);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("http.scan_page_bytes_max"), std::string::npos)
      << refused.message();
}

TEST(ConfigTest, RejectsWhatIsWrongWithAReason) {
  auto unknown = ParseConfig(std::string(kValid) + "\n[http]\nthreds = 2\n", "t");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("http.threds"), std::string::npos);

  auto syntax = ParseConfig("[node\nregion=", "broken.toml");
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.status().message().find("broken.toml"), std::string::npos);

  auto wrong_type = ParseConfig("[node]\nregion = 3\n", "t");
  EXPECT_FALSE(wrong_type.ok());

  auto bad_id = ParseConfig("[[regions]]\nname = \"x\"\nid = 40\nhttp = \"127.0.0.1:1\"\n", "t");
  EXPECT_FALSE(bad_id.ok());
}

TEST(ConfigTest, ValidationChecksTheWhole) {
  auto config = ParseConfig(kValid, "t");
  ASSERT_TRUE(config.ok());
  NodeConfig missing_self = *config;
  missing_self.region = "asia";
  EXPECT_FALSE(ValidateConfig(missing_self).ok());
  NodeConfig duplicate_id = *config;
  duplicate_id.regions[1].id = 1;
  EXPECT_FALSE(ValidateConfig(duplicate_id).ok());
  NodeConfig bad_address = *config;
  bad_address.regions[0].http = "localhost";
  EXPECT_FALSE(ValidateConfig(bad_address).ok());
  NodeConfig no_dir = *config;
  no_dir.data_dir.clear();
  EXPECT_FALSE(ValidateConfig(no_dir).ok());
  NodeConfig no_replication = *config;
  no_replication.regions[1].replication.clear();  // a peer nobody could dial
  const Status status = ValidateConfig(no_replication);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("'eu': replication"), std::string::npos) << status.message();
}

// Secure by default: the own region listens only on loopback unless [node] insecure says
// otherwise; where the other regions are is not this node's to check.
TEST(ConfigTest, ListeningBeyondLoopbackNeedsInsecure) {
  auto config = ParseConfig(kValid, "t");
  ASSERT_TRUE(config.ok());
  EXPECT_FALSE(config->insecure);
  EXPECT_TRUE(ValidateConfig(*config).ok());
  NodeConfig v6 = *config;
  v6.regions[0].http = "[::1]:7001";
  v6.regions[0].grpc = "127.0.0.2:7201";
  EXPECT_TRUE(ValidateConfig(v6).ok());
  NodeConfig peer_elsewhere = *config;
  peer_elsewhere.regions[1].http = "10.0.0.2:7002";
  peer_elsewhere.regions[1].replication = "10.0.0.2:7102";
  EXPECT_TRUE(ValidateConfig(peer_elsewhere).ok());
  for (const auto& [field, address] :
       std::vector<std::pair<std::string, std::string>>{{"http", "0.0.0.0:7001"},
                                                        {"http", "10.0.0.5:7001"},
                                                        {"replication", "[::]:7101"},
                                                        {"grpc", "192.168.1.4:7201"}}) {
    NodeConfig open = *config;
    (field == "http"          ? open.regions[0].http
     : field == "replication" ? open.regions[0].replication
                              : open.regions[0].grpc) = address;
    const Status status = ValidateConfig(open);
    EXPECT_FALSE(status.ok()) << address;
    EXPECT_NE(status.message().find(field + " listens on " + address), std::string::npos)
        << status.message();
    EXPECT_NE(status.message().find("insecure = true"), std::string::npos) << status.message();
    open.insecure = true;
    EXPECT_TRUE(ValidateConfig(open).ok()) << address;
  }
  std::string text = kValid;
  text.replace(text.find("[node]\n"), 7, "[node]\ninsecure = true\n");
  auto parsed = ParseConfig(text, "t");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(parsed->insecure);
  text.replace(text.find("insecure = true"), 15, "insecure = 1");
  EXPECT_FALSE(ParseConfig(text, "t").ok());
}

// Beyond loopback, replication needs [tls] (mutual TLS authenticates peers) and the client ports
// need [tls] and [auth] (tokens authenticate clients).
TEST(ConfigTest, TlsAndAuthOpenPortsBeyondLoopback) {
  auto config = ParseConfig(kValid, "t");
  ASSERT_TRUE(config.ok());
  NodeConfig open = *config;
  open.regions[0].http = "0.0.0.0:7001";
  open.regions[0].replication = "0.0.0.0:7101";
  open.tls = {"us.pem", "us-key.pem", "ca.pem"};
  Status status = ValidateConfig(open);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("http listens on 0.0.0.0:7001"), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("without [tls] and [auth]"), std::string::npos)
      << status.message();
  NodeConfig replication_only = open;
  replication_only.regions[0].http = "127.0.0.1:7001";
  EXPECT_TRUE(ValidateConfig(replication_only).ok());
  open.auth.jwt_secret_file = "jwt.key";
  EXPECT_TRUE(ValidateConfig(open).ok());
  open.tls = {};
  status = ValidateConfig(open);
  EXPECT_NE(status.message().find("without [tls]"), std::string::npos) << status.message();
}

TEST(ConfigTest, TlsAndAuthSectionsAreParsedAndChecked) {
  std::string text = kValid;
  text += "[tls]\ncert_file = \"us.pem\"\nkey_file = \"us-key.pem\"\nca_file = \"/etc/ca.pem\"\n";
  text += "[auth]\njwt_secret_file = \"jwt.key\"\n";
  auto parsed = ParseConfig(text, "t");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(parsed->tls.enabled());
  EXPECT_EQ(parsed->tls.key_file, "us-key.pem");
  EXPECT_EQ(parsed->tls.ca_file, "/etc/ca.pem");
  EXPECT_TRUE(parsed->auth.enabled());
  EXPECT_EQ(parsed->auth.jwt_secret_file, "jwt.key");

  // Relative file names are found beside the config file; absolute ones are kept.
  testing::TempDir dir;
  const std::string path = dir.path() + "/us.toml";
  {
    std::ofstream file(path);
    file << text;
  }
  auto loaded = LoadConfigFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->tls.cert_file, dir.path() + "/us.pem");
  EXPECT_EQ(loaded->tls.ca_file, "/etc/ca.pem");
  EXPECT_EQ(loaded->auth.jwt_secret_file, dir.path() + "/jwt.key");

  std::string partial = std::string(kValid) + "[tls]\ncert_file = \"us.pem\"\n";
  auto refused = ParseConfig(partial, "t");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("[tls] needs cert_file, key_file and ca_file"),
            std::string::npos);
  auto misspelt = ParseConfig(std::string(kValid) + "[auth]\nsecret = \"x\"\n", "t");
  ASSERT_FALSE(misspelt.ok());
  EXPECT_NE(misspelt.status().message().find("unknown key auth.secret"), std::string::npos)
      << misspelt.status().message();
}

TEST(ConfigTest, TheDeploymentNameDefaultsAndIsChecked) {
  auto config = ParseConfig(kValid, "t");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->deployment, "meridian");
  std::string text = kValid;
  text.replace(text.find("[node]\n"), 7, "[node]\ndeployment = \"prod-1.eu_west\"\n");
  auto named = ParseConfig(text, "t");
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  EXPECT_EQ(named->deployment, "prod-1.eu_west");
  EXPECT_TRUE(ValidateConfig(*named).ok());
  for (const char* bad : {"", "has space", "a/b"}) {
    named->deployment = bad;
    const Status status = ValidateConfig(*named);
    EXPECT_FALSE(status.ok()) << bad;
    EXPECT_NE(status.message().find("node.deployment"), std::string::npos) << status.message();
  }
}

TEST(ConfigTest, SplitHostPort) {
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(SplitHostPort("127.0.0.1:7001", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 7001);
  EXPECT_FALSE(SplitHostPort("127.0.0.1", &host, &port));
  EXPECT_FALSE(SplitHostPort(":80", &host, &port));
  EXPECT_FALSE(SplitHostPort("h:99999", &host, &port));
  EXPECT_FALSE(SplitHostPort("h:8x", &host, &port));
  EXPECT_TRUE(SplitHostPort("[::1]:7001", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_FALSE(SplitHostPort("[::1:7001", &host, &port));
  EXPECT_FALSE(SplitHostPort("::1:7001", &host, &port));
}

TEST(ConfigTest, AddressesMustBeIpLiterals) {
  auto config = ParseConfig(kValid, "t");
  ASSERT_TRUE(config.ok());
  NodeConfig v6 = *config;
  v6.regions[0].http = "[::1]:7001";
  EXPECT_TRUE(ValidateConfig(v6).ok());
  NodeConfig name = *config;
  name.regions[0].http = "localhost:7001";  // refused before anything is opened
  EXPECT_FALSE(ValidateConfig(name).ok());
}

TEST(ConfigTest, NumbersOutOfRangeAreRefused) {
  auto zero_queue = ParseConfig(std::string(kValid) + "\n[watch]\nbuffer_max = 0\n", "t");
  ASSERT_TRUE(zero_queue.ok());
  Status status = ValidateConfig(*zero_queue);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("watch.buffer_max"), std::string::npos);
  auto huge_threads = ParseConfig(std::string(kValid) + "\n[http]\nthreads = 4294967297\n", "t");
  EXPECT_FALSE(huge_threads.ok());
  auto unknown_top = ParseConfig(std::string("colour = 1\n") + kValid, "t");
  ASSERT_FALSE(unknown_top.ok());
  EXPECT_NE(unknown_top.status().message().find("unknown key colour"), std::string::npos);
}

TEST(ConfigTest, WriteTimeoutAndWatchBufferBytesAreReadAndChecked) {
  auto defaults = ParseConfig(kValid, "t");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->write_timeout_ms, 30'000u);
  EXPECT_EQ(defaults->watch_buffer_bytes_max, size_t{8} << 20);
  auto set = ParseConfig(
      std::string(kValid) + "\n[http]\nwrite_timeout_ms = 500\n[watch]\nbuffer_bytes_max = 65536\n",
      "t");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->write_timeout_ms, 500u);
  EXPECT_EQ(set->watch_buffer_bytes_max, 65536u);
  EXPECT_TRUE(ValidateConfig(*set).ok());
  for (const auto& [toml, key] :
       {std::pair{"[http]\nwrite_timeout_ms = 99\n", "http.write_timeout_ms"},
        std::pair{"[watch]\nbuffer_bytes_max = 1000\n", "watch.buffer_bytes_max"}}) {
    auto parsed = ParseConfig(std::string(kValid) + "\n" + toml, "t");
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    const Status status = ValidateConfig(*parsed);
    EXPECT_FALSE(status.ok()) << key;
    EXPECT_NE(status.message().find(key), std::string::npos) << status.message();
  }
}

TEST(ConfigTest, HedgeAfterIsReadAndChecked) {
  auto defaults = ParseConfig(kValid, "t");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->replication.hedge_after_ms, 1000u);
  auto set = ParseConfig(std::string(kValid) + "\n[replication]\nhedge_after_ms = 250\n", "t");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->replication.hedge_after_ms, 250u);
  EXPECT_TRUE(ValidateConfig(*set).ok());
  auto tiny = ParseConfig(std::string(kValid) + "\n[replication]\nhedge_after_ms = 1\n", "t");
  ASSERT_TRUE(tiny.ok());
  const Status status = ValidateConfig(*tiny);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("replication.hedge_after_ms"), std::string::npos);
}

TEST(ConfigTest, EscrowSettingsAreReadAndChecked) {
  auto defaults = ParseConfig(kValid, "t");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->escrow.rebalance_ms, 200u);
  EXPECT_EQ(EscrowPolicyOf(*defaults), (core::EscrowPolicy{10, 50, 50}));
  auto set = ParseConfig(std::string(kValid) +
                             "\n[escrow]\nrebalance_ms = 50\nlow_water = 2\nhigh_water = 8\n"
                             "give_percent = 100\nkeys_per_round = 4\nkeys_max = 9\n",
                         "t");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_TRUE(ValidateConfig(*set).ok());
  EXPECT_EQ(EscrowPolicyOf(*set), (core::EscrowPolicy{2, 8, 100}));
  EXPECT_EQ(set->escrow.rebalance_ms, 50u);
  EXPECT_EQ(set->escrow.keys_per_round, 4u);
  EXPECT_EQ(set->escrow.keys_max, 9u);
  for (const char* bad : {"high_water = 1", "give_percent = 101", "keys_max = 0"}) {
    auto parsed = ParseConfig(std::string(kValid) + "\n[escrow]\n" + bad + "\n", "t");
    ASSERT_TRUE(parsed.ok()) << bad;
    const Status status = ValidateConfig(*parsed);
    EXPECT_FALSE(status.ok()) << bad;
    EXPECT_NE(status.message().find("escrow."), std::string::npos) << status.message();
  }
  EXPECT_FALSE(ParseConfig(std::string(kValid) + "\n[escrow]\nlow_watermark = 1\n", "t").ok());
}

TEST(ConfigTest, TheChangeAndConflictLogsAreBoundedByDefaultAndChecked) {
  auto defaults = ParseConfig(kValid, "t");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->changes_kept, 1'000'000u);
  EXPECT_EQ(defaults->conflicts_kept, 100'000u);
  auto set = ParseConfig(
      std::string(kValid) + "\n[watch]\nchanges_kept = 10\n[storage]\nconflicts_kept = 3\n", "t");
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->changes_kept, 10u);
  EXPECT_EQ(set->conflicts_kept, 3u);
  EXPECT_TRUE(ValidateConfig(*set).ok());
  for (const char* key : {"watch.changes_kept", "storage.conflicts_kept"}) {
    for (const char* value : {"0", "1000000000001"}) {
      const std::string section(key, std::string(key).find('.'));
      const std::string name = std::string(key).substr(section.size() + 1);
      auto bad = ParseConfig(
          std::string(kValid) + "\n[" + section + "]\n" + name + " = " + value + "\n", "t");
      ASSERT_TRUE(bad.ok()) << bad.status().ToString();
      const Status status = ValidateConfig(*bad);
      EXPECT_FALSE(status.ok()) << key << " = " << value;
      EXPECT_NE(status.message().find(std::string(key) + " must be from 1 to 1000000000000"),
                std::string::npos)
          << status.message();
    }
  }
  auto negative = ParseConfig(std::string(kValid) + "\n[watch]\nchanges_kept = -1\n", "t");
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("watch.changes_kept must be a non-negative integer"),
            std::string::npos)
      << negative.status().message();
}

TEST(ConfigTest, GrpcAddressIsOptionalAndCheckedLikeHttp) {
  auto plain = ParseConfig(kValid, "t");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->self().grpc.empty());  // absent: no gRPC API

  std::string text = kValid;
  const std::string anchor = "replication = \"127.0.0.1:7101\"\n";
  text.insert(text.find(anchor) + anchor.size(), "grpc = \"127.0.0.1:7201\"\n");
  auto config = ParseConfig(text, "t");
  ASSERT_TRUE(config.ok()) << config.status().message();
  ASSERT_TRUE(ValidateConfig(*config).ok());
  EXPECT_EQ(config->self().grpc, "127.0.0.1:7201");
  EXPECT_TRUE(config->regions[1].grpc.empty());

  NodeConfig v6 = *config;
  v6.regions[0].grpc = "[::1]:7201";
  EXPECT_TRUE(ValidateConfig(v6).ok());
  for (const char* bad : {"localhost:7201", "127.0.0.1", "127.0.0.1:99999"}) {
    NodeConfig wrong = *config;
    wrong.regions[0].grpc = bad;
    const Status status = ValidateConfig(wrong);
    EXPECT_FALSE(status.ok()) << bad;
    EXPECT_NE(status.message().find("'us': grpc must be ip:port"), std::string::npos)
        << status.message();
  }

  std::string typed = kValid;
  typed.insert(typed.find(anchor) + anchor.size(), "grpc = 7201\n");
  auto wrong_type = ParseConfig(typed, "t");
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_NE(wrong_type.status().message().find("regions.grpc must be a string"), std::string::npos)
      << wrong_type.status().message();
}

TEST(ConfigTest, TracingNamesAnOtlpCollectorOverHttp) {
  auto plain = ParseConfig(kValid, "t");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->otlp_endpoint, "");
  auto traced = ParseConfig(
      std::string(kValid) +
          "\n[tracing]\notlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\ninterval_ms = 500\n",
      "t");
  ASSERT_TRUE(traced.ok()) << traced.status().message();
  EXPECT_TRUE(ValidateConfig(*traced).ok());
  EXPECT_EQ(traced->otlp_endpoint, "http://127.0.0.1:4318/v1/traces");
  EXPECT_EQ(traced->otlp_interval_ms, 500u);
  for (const char* bad : {"https://127.0.0.1:4318/v1/traces", "http://collector:4318/v1/traces",
                          "http://127.0.0.1/v1/traces", "127.0.0.1:4318"}) {
    NodeConfig wrong = *traced;
    wrong.otlp_endpoint = bad;
    EXPECT_NE(ValidateConfig(wrong).message().find("tracing.otlp_endpoint must be"),
              std::string::npos)
        << bad;
  }
  NodeConfig fast = *traced;
  fast.otlp_interval_ms = 10;
  EXPECT_NE(ValidateConfig(fast).message().find("tracing.interval_ms"), std::string::npos);
  std::string path;
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(SplitHttpUrl("http://[::1]:4318", &host, &port, &path));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 4318);
  EXPECT_EQ(path, "/");
}

TEST(ConfigTest, TheLogSectionChoosesTheFormatAndLevel) {
  auto defaults = ParseConfig(kValid, "t");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->log_format, "text");
  EXPECT_EQ(defaults->log_level, "info");
  auto json =
      ParseConfig(std::string(kValid) + "\n[log]\nformat = \"json\"\nlevel = \"warn\"\n", "t");
  ASSERT_TRUE(json.ok()) << json.status().message();
  EXPECT_TRUE(ValidateConfig(*json).ok());
  EXPECT_EQ(json->log_format, "json");
  EXPECT_EQ(json->log_level, "warn");
  auto xml = ParseConfig(std::string(kValid) + "\n[log]\nformat = \"xml\"\n", "t");
  ASSERT_TRUE(xml.ok());
  const Status refused = ValidateConfig(*xml);
  EXPECT_NE(refused.message().find("log.format must be \"text\" or \"json\""), std::string::npos)
      << refused.message();
  auto loud = ParseConfig(std::string(kValid) + "\n[log]\nlevel = \"loud\"\n", "t");
  ASSERT_TRUE(loud.ok());
  EXPECT_NE(ValidateConfig(*loud).message().find("log.level must be one of"), std::string::npos);
  auto unknown = ParseConfig(std::string(kValid) + "\n[log]\nfile = \"x\"\n", "t");
  EXPECT_FALSE(unknown.ok());
}

}  // namespace
}  // namespace meridian::node
