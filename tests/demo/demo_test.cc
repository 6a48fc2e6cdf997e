// `meridian demo` end to end: the real binary starts three regions behind WAN proxies, runs its
// workload, proves convergence and stops everything it started.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "support/http_client.h"
#include "support/node_process.h"

namespace {

using meridian::testing::HttpClient;
using meridian::testing::MeridianBinary;
using meridian::testing::TempDir;

struct DemoRun {
  int status = -1;
  std::string output;  // stdout and stderr
};

DemoRun RunDemo(const std::string& args) {
  // `timeout` bounds a hung demo; SIGINT first, so the demo still stops what it started.
  const std::string command = "timeout -s INT -k 30 240 " + std::string(MeridianBinary()) +
                              " demo " + args + " 2>&1 </dev/null";
  DemoRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char chunk[4096];
  for (size_t got; (got = std::fread(chunk, 1, sizeof chunk, pipe)) > 0;)
    run.output.append(chunk, got);
  const int status = ::pclose(pipe);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// A base port below the usual ephemeral range; the demo uses base+1 to base+232.
// The demo takes base+1 to base+232. Bases from 12000 to 20000 keep every port below the range
// the other tests' nodes take theirs from (tests/support: the 10,000 ports under the kernel's
// ephemeral range, 22768 and up by default), so a demo never takes a port a cluster reserved.
int RandomBasePort() {
  std::random_device random;
  return 12000 + static_cast<int>(random() % 8000);
}

// The demo with `args` on a random base port, retried on another while a port is in use.
DemoRun RunDemoOnFreePorts(const std::string& args, int* base_port) {
  DemoRun run;
  for (int attempt = 0; attempt < 5; ++attempt) {
    *base_port = RandomBasePort();
    run = RunDemo("--base-port " + std::to_string(*base_port) + " " + args);
    if (run.status != 2 || run.output.find("is in use") == std::string::npos) break;
  }
  return run;
}

TEST(DemoTest, ThreeRegionsConvergeOverWanProxies) {
  TempDir dir;
  const std::string data_dir = dir.path() + "/demo";
  int base = 0;
  const DemoRun run = RunDemoOnFreePorts(
      "--duration 8 --rate 200 --no-tty --delays us-eu=20,us-asia=40,eu-asia=60 --data-dir " +
          data_dir,
      &base);
  SCOPED_TRACE(run.output);
  EXPECT_EQ(run.status, 0);
  EXPECT_NE(run.output.find("wan-proxy up: 6 routes"), std::string::npos);
  EXPECT_NE(run.output.find("every region applied the same events"), std::string::npos);
  EXPECT_NE(run.output.find("50 documents identical in 3 regions"), std::string::npos);
  EXPECT_NE(run.output.find("digests equal"), std::string::npos);
  EXPECT_NE(run.output.find("stock counters exact: 50/50"), std::string::npos);
  EXPECT_NE(run.output.find("\nCONVERGED\n"), std::string::npos);
  EXPECT_NE(run.output.find("stopped 4 processes"), std::string::npos);
  // With TLS and tokens, and says how to call a region with them.
  EXPECT_NE(run.output.find("us ready: https://127.0.0.1:" + std::to_string(base + 1)),
            std::string::npos);
  EXPECT_NE(run.output.find("TLS and tokens are on"), std::string::npos);
  EXPECT_NE(run.output.find("curl --cacert " + data_dir + "/pki/ca.pem -H \"Authorization: Bearer"),
            std::string::npos);
  // Everything it started is gone, and so is its data (no --keep-data).
  for (int offset : {1, 2, 3}) {
    HttpClient client("127.0.0.1", static_cast<uint16_t>(base + offset),
                      std::chrono::milliseconds(500));
    EXPECT_EQ(client.Get("/healthz").status, 0) << "a node still answers on " << base + offset;
  }
  EXPECT_FALSE(std::filesystem::exists(data_dir));
}

TEST(DemoTest, RefusesAPortInUseAndStartsNothing) {
  // A random base whose eu HTTP port this test can take (another test may hold the first pick).
  int base = 0;
  int fd = -1;
  for (int attempt = 0; attempt < 20 && fd < 0; ++attempt) {
    base = RandomBasePort();
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(base + 2));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ASSERT_GE(fd, 0) << "no free port found in 20 tries";
  ASSERT_EQ(::listen(fd, 1), 0);
  const DemoRun run = RunDemo("--duration 1 --no-tty --base-port " + std::to_string(base));
  ::close(fd);
  EXPECT_EQ(run.status, 2) << run.output;
  EXPECT_NE(run.output.find("port " + std::to_string(base + 2) + " (eu http) is in use"),
            std::string::npos)
      << run.output;
  EXPECT_EQ(run.output.find("ready"), std::string::npos) << run.output;
}

TEST(DemoTest, RefusesUnknownRegionsInDelays) {
  const DemoRun run = RunDemo("--duration 1 --no-tty --delays us-mars=10");
  EXPECT_EQ(run.status, 2) << run.output;
  EXPECT_NE(run.output.find("--delays: 'us-mars=10' must name two of the regions"),
            std::string::npos)
      << run.output;
}

}  // namespace
