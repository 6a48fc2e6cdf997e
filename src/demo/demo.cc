#include "demo/demo.h"

#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "demo/layout.h"
#include "demo/processes.h"
#include "demo/proof.h"
#include "demo/view.h"
#include "demo/workload.h"

namespace meridian::demo {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr seconds kReadyTimeout(30);
constexpr seconds kSeedTimeout(20);
constexpr seconds kConvergeTimeout(30);
constexpr int kInterrupted = 130;

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

int Fail(int status, const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr, "meridian demo: %s\n", message.c_str());
  return status;
}

// A fresh temporary directory, or --data-dir, which must be new or empty: the demo removes it.
bool PrepareDataDir(const DemoOptions& options, std::string* path, std::string* error) {
  if (options.data_dir.empty()) {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/meridian-demo-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      *error = "cannot create a directory like " + pattern;
      return false;
    }
    *path = pattern;
    return true;
  }
  std::error_code ec;
  const fs::path dir = fs::absolute(options.data_dir, ec);
  if (fs::exists(dir, ec) && (!fs::is_directory(dir, ec) || !fs::is_empty(dir, ec))) {
    *error = "--data-dir " + options.data_dir + " exists and is not an empty directory";
    return false;
  }
  if (fs::create_directories(dir, ec); ec) {
    *error = "cannot create --data-dir " + options.data_dir + ": " + ec.message();
    return false;
  }
  *path = dir.string();
  return true;
}

// Why a child that should be running is not, with the end of its log.
std::string Exited(Child& child) {
  return child.name() + " " + child.exit_description() + "; the end of " + child.log_path() +
         ":\n" + child.LogTail(8);
}

bool StartProxy(const Layout& layout, const DemoOptions& options, const std::string& dir,
                Children& children, std::string* error) {
  Child& proxy = children.Add("wan-proxy", dir + "/wan-proxy.log");
  std::vector<std::string> args = {"wan-proxy"};
  for (std::string& arg : layout.ProxyArgs()) args.push_back(std::move(arg));
  if (!proxy.Spawn(options.binary, args, error)) return false;
  const auto deadline = steady_clock::now() + seconds(10);
  while (!PortAccepts(layout.control)) {
    if (!proxy.Running()) {
      *error = Exited(proxy) + "(--no-proxy connects the regions without WAN proxies)";
      return false;
    }
    if (steady_clock::now() >= deadline || SignalsReceived() > 0) {
      *error = SignalsReceived() > 0 ? "interrupted" : "wan-proxy did not open its control port";
      return false;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  Say("wan-proxy up: " + std::to_string(layout.routes.size()) + " routes, control on " +
      "127.0.0.1:" + std::to_string(layout.control) + "; " + layout.DelaySummary());
  return true;
}

bool StartNodes(const Layout& layout, const DemoOptions& options, const std::string& dir,
                Children& children, std::vector<Child*>* nodes, std::string* error) {
  for (size_t i = 0; i < layout.regions.size(); ++i) {
    const std::string& name = layout.regions[i].name;
    const std::string config = dir + "/" + name + ".toml";
    std::ofstream(config) << layout.NodeConfig(static_cast<int>(i), dir + "/" + name);
    Child& node = children.Add(name, dir + "/" + name + ".log");
    // A new deployment in a new directory: nothing to rebuild.
    if (!node.Spawn(options.binary, {"start", "--config", config, "--bootstrap"}, error)) {
      return false;
    }
    nodes->push_back(&node);
  }
  const auto deadline = steady_clock::now() + kReadyTimeout;
  for (size_t i = 0; i < layout.regions.size(); ++i) {
    client::HttpClient client = layout.Client(static_cast<int>(i), seconds(1));
    for (;;) {
      const client::HttpResponse ready = client.Get("/readyz");
      if (ready.status == 200) break;
      if (!(*nodes)[i]->Running()) {
        *error = Exited(*(*nodes)[i]);
        return false;
      }
      if (SignalsReceived() > 0) {
        *error = "interrupted";
        return false;
      }
      if (steady_clock::now() >= deadline) {
        *error = layout.regions[i].name + " was not ready within " +
                 std::to_string(kReadyTimeout.count()) +
                 " s; /readyz: " + (ready.status == 0 ? ready.error : ready.body);
        return false;
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
    Say(layout.regions[i].name + " ready: " + layout.Url(static_cast<int>(i)) + " (log " +
        (*nodes)[i]->log_path() + ")");
  }
  // Then until every region has subscribed to every other (so the first writes' visibility does
  // not include the links coming up). Not fatal: a link that stays down is what relays are for.
  bool all_linked = true;
  for (size_t i = 0; i < layout.regions.size(); ++i) {
    client::HttpClient client = layout.Client(static_cast<int>(i), seconds(1));
    bool linked = false;
    while (!linked && steady_clock::now() < deadline && SignalsReceived() == 0) {
      const auto status = nlohmann::json::parse(client.Get("/v1/status").body, nullptr, false);
      linked = status.is_object() && status.contains("peers");
      if (linked) {
        for (const auto& peer : status["peers"]) linked = linked && peer.value("connected", false);
      }
      if (!linked) std::this_thread::sleep_for(milliseconds(20));
    }
    if (!linked) Say(layout.regions[i].name + " is not linked to every region yet; going on");
    all_linked = all_linked && linked;
  }
  if (all_linked) Say("every region subscribed to every other");
  Say(layout.secure() ? "TLS and tokens are on (the CA, certificates and an admin token are in " +
                            layout.pki_dir + "); call a region while the demo runs:"
                      : "TLS and tokens are off (--insecure); call a region while the demo runs:");
  for (const std::string& line : layout.CallHint(0)) Say("  " + line);
  return true;
}

// Runs the workload and the view until the duration ends, a signal arrives or a process dies.
// False with *error when a process died.
bool RunWorkload(const Layout& layout, const DemoOptions& options, bool tty, Children& children,
                 Workload& workload, std::string* error) {
  View view(layout, workload, tty, options.duration_s);
  if (tty) std::fputs("\x1b[2J", stdout);
  const auto start = steady_clock::now();
  const auto end = start + seconds(options.duration_s);
  for (int tick = 1; SignalsReceived() == 0; ++tick) {
    auto next = start + seconds(tick);
    if (options.duration_s > 0) next = std::min(next, end);
    SleepUnlessSignalled(std::chrono::duration_cast<milliseconds>(next - steady_clock::now()) +
                         milliseconds(1));
    view.Update(steady_clock::now() - start);
    for (Child& child : children.all()) {
      if (!child.Running()) {
        *error = Exited(child);
        return false;
      }
    }
    if (options.duration_s > 0 && steady_clock::now() >= end) break;
  }
  return true;
}

int Run(const DemoOptions& options, const Layout& layout, const std::string& dir, bool tty) {
  Say("meridian demo: 3 regions (us, eu, asia), data and logs in " + dir);
  Children children;
  std::string error;
  if (!layout.routes.empty() && !StartProxy(layout, options, dir, children, &error)) {
    return Fail(SignalsReceived() > 0 ? kInterrupted : 1, error);
  }
  std::vector<Child*> nodes;
  if (!StartNodes(layout, options, dir, children, &nodes, &error)) {
    return Fail(SignalsReceived() > 0 ? kInterrupted : 1, error);
  }
  Workload workload(layout, options.rate);
  if (!workload.Seed(&error)) return Fail(1, error);
  if (workload.AwaitSeed(kSeedTimeout, &error)) {
    Say("seeded " + std::to_string(Workload::kItems) + " items in us, visible in every region");
  } else if (SignalsReceived() > 0) {
    return Fail(kInterrupted, "interrupted");
  } else {
    Say("warning: " + error + "; running the workload anyway, the proof will show what differs");
  }
  Say("workload: " + std::to_string(options.rate) + " writes/s from all regions" +
      (options.duration_s > 0 ? " for " + std::to_string(options.duration_s) + " s"
                              : std::string(", Ctrl-C to stop")));
  workload.Start();
  const bool ran = RunWorkload(layout, options, tty, children, workload, &error);
  workload.Stop();
  uint64_t acked = 0, failed = 0, unanswered = 0;
  for (size_t i = 0; i < layout.regions.size(); ++i) {
    acked += workload.acked(static_cast<int>(i));
    failed += workload.failed(static_cast<int>(i));
    unanswered += workload.unanswered(static_cast<int>(i));
  }
  Say("\nwrites acknowledged: " + std::to_string(acked) + ", refused: " + std::to_string(failed) +
      ", unanswered: " + std::to_string(unanswered));
  if (!ran) return Fail(1, error);
  const bool converged = ProveConvergence(layout, workload, kConvergeTimeout);
  const int killed = children.StopAll();
  Say("stopped " + std::to_string(children.all().size()) + " processes" +
      (killed > 0 ? " (" + std::to_string(killed) + " had to be killed)" : ""));
  return converged ? 0 : 1;
}

}  // namespace

int RunDemo(const DemoOptions& options) {
  InstallSignalHandlers();
  Layout layout;
  std::string error;
  if (options.rate < 1 || options.duration_s < 0 || options.jitter_ms < 0) {
    return Fail(2, "--rate must be at least 1; --duration and --jitter-ms at least 0");
  }
  if (!MakeLayout(options, &layout, &error)) return Fail(2, error);
  for (const auto& [port, what] : layout.Ports()) {
    if (!PortFree(port)) {
      return Fail(2, "port " + std::to_string(port) + " (" + what +
                         ") is in use; choose another --base-port (the demo uses base+1 to "
                         "base+232)");
    }
  }
  std::string dir;
  if (!PrepareDataDir(options, &dir, &error)) return Fail(2, error);
  // The CA is made first, in a new directory of its own (auth::CreateCa creates it).
  if (!options.insecure && !layout.MakeSecrets(dir + "/pki", &error)) return Fail(2, error);
  const bool tty = !options.no_tty && ::isatty(STDOUT_FILENO);
  const int status = Run(options, layout, dir, tty);
  if (status == 0 && !options.keep_data) {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  } else {
    Say("data and logs kept in " + dir);
  }
  return status;
}

}  // namespace meridian::demo
