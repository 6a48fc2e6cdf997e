// meridian demo: three regions on this machine joined through WAN proxies, a live workload from
// every region, a terminal view of replication, and a proof that the regions converged
// (docs/demo.md).
#pragma once

#include <string>

namespace meridian::demo {

struct DemoOptions {
  int duration_s = 0;      // 0: until SIGINT or SIGTERM
  int base_port = 7000;    // every port the demo uses is derived from it (docs/demo.md)
  std::string data_dir;    // "": a fresh directory under $TMPDIR
  bool keep_data = false;  // keep data_dir at the end
  int rate = 300;          // writes per second, all regions together
  std::string delays = "us-eu=40,us-asia=80,eu-asia=110";  // one-way ms per region pair
  int jitter_ms = 5;
  bool no_tty = false;    // plain lines instead of a redrawn screen
  bool no_proxy = false;  // regions dial each other directly, without WAN proxies
  bool insecure = false;  // plaintext ports and no tokens, instead of [tls] and [auth]
  std::string binary = "/proc/self/exe";  // the meridian binary the processes run
};

// Runs the demo; returns the process exit status: 0 converged, 1 not converged or a failure
// while running, 2 a setup error (bad option, port in use, data directory not empty).
int RunDemo(const DemoOptions& options);

}  // namespace meridian::demo
