// NodeProcess: a real `meridian start` process on loopback for integration and crash tests. It
// writes its config into a fresh temporary directory, picks free ports, waits (bounded) until
// /readyz answers, and kills whatever it started when destroyed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "support/http_client.h"
#include "support/temp_dir.h"

namespace meridian::testing {

// A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral range, and
// reserved for this test process: no other call, here or in another test process using FreePort
// at the same time, returns it while this process lives.
uint16_t FreePort();
// A base port B such that every B + offset is free and reserved as FreePort's are: for programs
// that lay their ports out from a base (`meridian init --base-port`).
uint16_t FreeBasePort(const std::vector<int>& offsets);

// Waits (bounded) until `condition` holds, checking every 20 ms; false at the deadline.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// One region of a deployment as a node's config lists it.
struct RegionEntry {
  std::string name;
  int id = 0;
  uint16_t http_port = 0;
  std::string replication;  // own region: listen address; others: where to dial them
};

struct NodeOptions {
  std::string region = "us";
  std::vector<std::string> peers = {"eu", "asia"};  // configured but not running
  std::string extra_toml;                           // appended to the config (sections)
  std::string deployment;                           // [node] deployment; empty: the default
  std::string data_dir;                             // [node] data_dir; empty: its own
  // When set, the deployment exactly (this region included, by name `region`) instead of
  // `peers` on fresh ports.
  std::vector<RegionEntry> regions;
  // Give this region a `grpc` address on a free port: the node serves the client gRPC API there
  // (see grpc_port()).
  bool grpc = false;
  // Give this region a `resp` address on a free port: the node serves the Redis protocol there
  // (see resp_port()).
  bool resp = false;
  // Closes, in the child before exec, every descriptor the test process had open (the sockets of
  // in-process proxies and clients), so the node holds none of them: a proxy can then reset a
  // connection, or listen on its port again, without a node keeping the old socket alive.
  bool close_inherited_fds = true;
  // The node serves HTTPS ([tls] in extra_toml): Start's readiness probes and Client() speak TLS
  // and trust this CA file. Empty: plaintext HTTP.
  std::string https_ca_file;
  // --log-level of the node; empty: $MERIDIAN_TEST_LOG_LEVEL, else "warn".
  std::string log_level;
  // The first Start passes --bootstrap (a new region of a new deployment: nothing to rebuild);
  // later starts never do, so a wiped or restored data directory rebuilds from its peers.
  bool bootstrap = true;
  // Start from this file as it is (what `meridian init` wrote) instead of writing one; the node's
  // HTTP port is then `http_port`.
  std::string config_file;
  // Start with no --config at all (one region on loopback); `http_port` as above.
  bool no_config = false;
  uint16_t http_port = 0;
  std::vector<std::string> start_args;  // more arguments of `meridian start`
  std::string cwd;                      // the process's working directory; empty: this one's
};

class NodeProcess {
 public:
  explicit NodeProcess(NodeOptions options = {});
  ~NodeProcess();

  // Starts the process and waits up to `timeout` for /readyz (or, with ready = false, /healthz)
  // to answer 200. False (with the process's log in log()) when it did not come up.
  bool Start(std::chrono::milliseconds timeout = std::chrono::seconds(20), bool ready = true);
  void Kill();  // SIGKILL and reap
  // SIGTERM and wait (bounded) for exit; returns the exit status or -1 on timeout (then killed).
  int Terminate(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }  // -1 when not running

  uint16_t http_port() const { return http_port_; }
  uint16_t grpc_port() const { return grpc_port_; }  // 0 unless NodeOptions::grpc
  uint16_t resp_port() const { return resp_port_; }  // 0 unless NodeOptions::resp
  const std::string& data_dir() const { return data_dir_; }
  const std::string& config_path() const { return config_path_; }
  std::string log() const;
  HttpClient Client(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

 private:
  NodeOptions options_;
  TempDir dir_;
  std::string data_dir_;
  std::string config_path_;
  std::string log_path_;
  uint16_t http_port_ = 0;
  uint16_t grpc_port_ = 0;
  uint16_t resp_port_ = 0;
  pid_t pid_ = -1;
  int starts_ = 0;
};

// The path of the meridian binary under test (set by CMake).
const char* MeridianBinary();

}  // namespace meridian::testing
