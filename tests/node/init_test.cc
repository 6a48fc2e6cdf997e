// `meridian init` and `meridian start` without a config file, run as a new user would: the files
// init writes start a deployment as they are, and the repository's examples are what init
// writes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/cli.h"
#include "support/node_process.h"
#include "support/temp_dir.h"

namespace meridian::testing {
namespace {

unsigned Mode(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return 0;
  return info.st_mode & 0777;
}

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// A node started in `dir` without a config file (or from `config_file`), on free loopback ports
// given by the address overrides, followed by `more` arguments.
NodeOptions OnFreePorts(const TempDir& dir, const std::string& config_file,
                        std::vector<std::string> more = {}) {
  NodeOptions options;
  options.no_config = config_file.empty();
  options.config_file = config_file;
  options.http_port = FreePort();
  options.cwd = dir.path();
  options.log_level = "info";
  options.start_args = std::move(more);
  for (const std::string& arg :
       {std::string("--http"), "127.0.0.1:" + std::to_string(options.http_port),
        std::string("--replication"), "127.0.0.1:" + std::to_string(FreePort()),
        std::string("--resp"), "127.0.0.1:" + std::to_string(FreePort())}) {
    options.start_args.push_back(arg);
  }
  return options;
}

TEST(Init, WritesADeploymentThatStartsAsWritten) {
  TempDir dir;
  const std::string out_dir = dir.path() + "/deployment";
  const uint16_t base = FreeBasePort({1, 2, 3, 101, 102, 103, 201, 202, 203});
  int code = -1;
  const std::string out = RunCli("init --regions us,eu,asia --dir " + out_dir + " --base-port " +
                                     std::to_string(base) + " --tls --auth",
                                 &code);
  ASSERT_EQ(code, 0) << out;
  for (const char* file : {"us.toml", "eu.toml", "asia.toml", "pki/ca.pem", "pki/us.pem",
                           "pki/asia-key.pem", "pki/jwt.key", "pki/token"}) {
    EXPECT_TRUE(std::filesystem::exists(out_dir + "/" + file)) << file << "\n" << out;
  }
  // Secrets are readable by their owner only.
  for (const char* file : {"pki/ca-key.pem", "pki/us-key.pem", "pki/jwt.key", "pki/token"}) {
    EXPECT_EQ(Mode(out_dir + "/" + file), 0600u) << file;
  }
  EXPECT_NE(out.find("meridian start --config " + out_dir + "/eu.toml --bootstrap"),
            std::string::npos)
      << out;

  // The three regions start from the files as written, speak TLS with the CA made, and take the
  // admin token made.
  const std::string token = Trimmed(ReadFile(out_dir + "/pki/token"));
  ASSERT_FALSE(token.empty());
  std::vector<std::unique_ptr<NodeProcess>> nodes;
  const char* names[] = {"us", "eu", "asia"};
  for (int i = 0; i < 3; ++i) {
    NodeOptions options;
    options.region = names[i];
    options.config_file = out_dir + "/" + names[i] + ".toml";
    options.http_port = static_cast<uint16_t>(base + 1 + i);
    options.https_ca_file = out_dir + "/pki/ca.pem";
    nodes.push_back(std::make_unique<NodeProcess>(options));
  }
  for (auto& node : nodes) ASSERT_TRUE(node->Start()) << node->log();
  HttpClient us = nodes[0]->Client();
  EXPECT_EQ(us.Get("/v1/docs/greeting").status, 401);  // [auth] is on
  us.SetBearerToken(token);
  const HttpResponse put = us.Send("PUT", "/v1/docs/greeting", R"({"text":"hello"})");
  ASSERT_EQ(put.status / 100, 2) << put.body;
  HttpClient asia = nodes[2]->Client();
  asia.SetBearerToken(token);
  EXPECT_TRUE(WaitFor(
      [&] {
        const HttpResponse got = asia.Get("/v1/docs/greeting");
        return got.status == 200 && got.body.find("hello") != std::string::npos;
      },
      std::chrono::seconds(20)))
      << nodes[2]->log();
  for (auto& node : nodes) EXPECT_EQ(node->Terminate(), 0) << node->log();
}

TEST(Init, RefusesWhatTheNodeWouldRefuseAndReplacesNothing) {
  TempDir dir;
  int code = -1;
  // Beyond loopback without [tls] and [auth]: the node's own check, before anything is written.
  std::string out = RunCli("init --regions us,eu --host us=10.1.2.3 --dir " + dir.path() + "/a",
                           &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("loopback"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/a"));
  // The same with them is a deployment across hosts.
  out = RunCli("init --regions us,eu --host us=10.1.2.3 --tls --auth --dir " + dir.path() + "/b",
               &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(ReadFile(dir.path() + "/b/eu.toml").find("http = \"10.1.2.3:7001\""),
            std::string::npos);

  out = RunCli("init --regions 'u s' --dir " + dir.path() + "/c", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("not a region name"), std::string::npos) << out;
  out = RunCli("init --regions us,us --dir " + dir.path() + "/c", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("twice"), std::string::npos) << out;
  out = RunCli("init --regions us --host eu=127.0.0.1 --dir " + dir.path() + "/c", &code);
  EXPECT_EQ(code, 2) << out;
  out = RunCli("init --regions us --base-port 65300 --dir " + dir.path() + "/c", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/c"));

  // An existing file is never replaced: nothing is written.
  std::filesystem::create_directories(dir.path() + "/d");
  std::ofstream(dir.path() + "/d/eu.toml") << "mine\n";
  out = RunCli("init --regions us,eu --dir " + dir.path() + "/d", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_NE(out.find("exists"), std::string::npos) << out;
  EXPECT_EQ(ReadFile(dir.path() + "/d/eu.toml"), "mine\n");
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/d/us.toml"));
}

TEST(Init, StartWithoutAConfigRunsOneRegionOnLoopback) {
  TempDir dir;
  NodeProcess node(OnFreePorts(dir, "", {"--region", "solo"}));
  ASSERT_TRUE(node.Start()) << node.log();
  HttpClient client = node.Client();
  ASSERT_EQ(client.Send("PUT", "/v1/docs/k", R"({"n":1})").status / 100, 2);
  const HttpResponse got = client.Get("/v1/docs/k");
  EXPECT_EQ(got.status, 200);
  EXPECT_NE(got.body.find("\"n\":1"), std::string::npos) << got.body;
  EXPECT_EQ(node.Terminate(), 0) << node.log();
  // The default data directory, in the working directory; the log says what it runs.
  EXPECT_TRUE(std::filesystem::is_directory(dir.path() + "/meridian-data"));
  EXPECT_NE(node.log().find("no --config: one region 'solo' on loopback"), std::string::npos)
      << node.log();

  // A second start finds its data again.
  ASSERT_TRUE(node.Start()) << node.log();
  EXPECT_NE(client.Get("/v1/docs/k").body.find("\"n\":1"), std::string::npos);
  EXPECT_EQ(node.Terminate(), 0) << node.log();
}

TEST(Init, TheRepositorysExamplesAreWhatInitWrites) {
  TempDir dir;
  for (const auto& [example, regions] :
       {std::pair<std::string, std::vector<std::string>>{"three-regions", {"us", "eu", "asia"}},
        {"single", {"local"}}}) {
    std::string list;
    for (const std::string& name : regions) list += (list.empty() ? "" : ",") + name;
    int code = -1;
    const std::string out = RunCli(
        "init --regions " + list + " --data-root data --dir " + dir.path() + "/" + example, &code);
    ASSERT_EQ(code, 0) << out;
    for (const std::string& name : regions) {
      const std::string file =
          std::string(MERIDIAN_SOURCE_DIR) + "/examples/" + example + "/" + name + ".toml";
      ASSERT_TRUE(std::filesystem::exists(file)) << file;
      EXPECT_EQ(ReadFile(file), ReadFile(dir.path() + "/" + example + "/" + name + ".toml"))
          << file
          << " differs from what `meridian init` writes: regenerate it (examples/README.md)";
    }
  }
  // The single region's example starts as it is (its data in the working directory's data/).
  NodeProcess node(
      OnFreePorts(dir, std::string(MERIDIAN_SOURCE_DIR) + "/examples/single/local.toml"));
  ASSERT_TRUE(node.Start()) << node.log();
  EXPECT_EQ(node.Terminate(), 0) << node.log();
  EXPECT_TRUE(std::filesystem::is_directory(dir.path() + "/data/local"));
}

TEST(Init, JsonLogsAreOneObjectPerLine) {
  TempDir dir;
  NodeProcess node(OnFreePorts(dir, "", {"--log-format", "json"}));
  ASSERT_TRUE(node.Start()) << node.log();
  EXPECT_EQ(node.Terminate(), 0) << node.log();
  std::istringstream lines(node.log());
  std::string line;
  int parsed = 0;
  bool serving = false;
  while (std::getline(lines, line)) {
    const auto object = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(object.is_object()) << line;
    EXPECT_EQ(object.value("region", ""), "local") << line;
    EXPECT_TRUE(object.contains("time") && object.contains("level") && object.contains("thread"))
        << line;
    serving = serving || object.value("message", "").find("serving HTTP") != std::string::npos;
    ++parsed;
  }
  EXPECT_GE(parsed, 3);
  EXPECT_TRUE(serving) << node.log();
}

}  // namespace
}  // namespace meridian::testing
