#include "support/node_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "net/tls_context.h"

namespace meridian::testing {

const char* MeridianBinary() {
  if (const char* path = std::getenv("MERIDIAN_BINARY")) return path;
  return MERIDIAN_BINARY_PATH;
}

namespace {

// In a forked child: only async-signal-safe calls.
void CloseDescriptorsFrom(int first) {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), ~0U, 0U) == 0) return;
#endif
  const long limit = std::min(::sysconf(_SC_OPEN_MAX), 65536L);
  for (int fd = first; fd < limit; ++fd) ::close(fd);
}

// Whether nothing is bound to 127.0.0.1:port now (0: any free port; *port is then set).
bool Bindable(uint16_t* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(*port);
  socklen_t length = sizeof address;
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  ::close(fd);
  if (bound) *port = ntohs(address.sin_port);
  return bound;
}

// Claims the port for this test process until it exits: never handed out twice here, and locked
// (flock on a file named after it in a directory every test process shares), so that another
// test process running at the same time does not pick it before a node of ours listens on it.
bool Reserve(uint16_t port) {
  static std::mutex mutex;
  static std::set<uint16_t> reserved;
  std::lock_guard lock(mutex);
  if (reserved.contains(port)) return false;
  const char* base = std::getenv("TMPDIR");
  const std::string dir = std::string(base ? base : "/tmp") + "/meridian-test-ports";
  ::mkdir(dir.c_str(), 0777);  // may exist already
  const std::string path = dir + "/" + std::to_string(port);
  const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0666);
  if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return false;  // another test process holds it
  }
  // Kept open (the lock with it) for the life of the process; without the directory, the port
  // is still never handed out twice here.
  reserved.insert(port);
  return true;
}

}  // namespace

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

uint16_t FreePort() {
  // Below the kernel's ephemeral range: a port the kernel hands out (bind to 0) may be taken
  // again, before the node listens on it, as the local port of any outgoing connection of the
  // tests running in parallel.
  unsigned ephemeral_low = 32768;
  if (std::FILE* range = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(range, "%u", &ephemeral_low) != 1) ephemeral_low = 32768;
    std::fclose(range);
  }
  if (ephemeral_low > 12000) {
    thread_local std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<unsigned> pick(ephemeral_low - 10000, ephemeral_low - 1);
    for (int attempt = 0; attempt < 100; ++attempt) {
      uint16_t port = static_cast<uint16_t>(pick(rng));
      if (Reserve(port) && Bindable(&port)) return port;
    }
  }
  for (int attempt = 0; attempt < 100; ++attempt) {
    uint16_t port = 0;
    if (Bindable(&port) && Reserve(port)) return port;
  }
  throw std::runtime_error("cannot find a free port");
}

uint16_t FreeBasePort(const std::vector<int>& offsets) {
  unsigned ephemeral_low = 32768;
  if (std::FILE* range = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(range, "%u", &ephemeral_low) != 1) ephemeral_low = 32768;
    std::fclose(range);
  }
  const int highest = offsets.empty() ? 0 : *std::max_element(offsets.begin(), offsets.end());
  thread_local std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<unsigned> pick(std::max(1024u, ephemeral_low - 10000),
                                               ephemeral_low - 1 - highest);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const auto base = static_cast<uint16_t>(pick(rng));
    bool free = true;
    for (int offset : offsets) {
      auto port = static_cast<uint16_t>(base + offset);
      if (!Reserve(port) || !Bindable(&port)) {
        free = false;
        break;
      }
    }
    if (free) return base;
  }
  throw std::runtime_error("cannot find a free block of ports");
}

NodeProcess::NodeProcess(NodeOptions options) : options_(std::move(options)) {
  data_dir_ = options_.data_dir.empty() ? dir_.path() + "/data" : options_.data_dir;
  config_path_ = dir_.path() + "/node.toml";
  log_path_ = dir_.path() + "/node.log";
  if (!options_.config_file.empty() || options_.no_config) {
    config_path_ = options_.config_file;
    http_port_ = options_.http_port;
    return;
  }
  std::ofstream config(config_path_);
  config << "[node]\nregion = \"" << options_.region << "\"\ndata_dir = \"" << data_dir_ << "\"\n";
  if (!options_.deployment.empty()) config << "deployment = \"" << options_.deployment << "\"\n";
  config << "\n";
  if (options_.grpc) grpc_port_ = FreePort();
  if (options_.resp) resp_port_ = FreePort();
  // The own region's `grpc` and `resp` lines, when it has them.
  const auto grpc_line = [this](const std::string& name) {
    if (name != options_.region) return std::string();
    std::string lines;
    if (grpc_port_ != 0) lines += "grpc = \"127.0.0.1:" + std::to_string(grpc_port_) + "\"\n";
    if (resp_port_ != 0) lines += "resp = \"127.0.0.1:" + std::to_string(resp_port_) + "\"\n";
    return lines;
  };
  if (!options_.regions.empty()) {
    for (const RegionEntry& entry : options_.regions) {
      if (entry.name == options_.region) http_port_ = entry.http_port;
      config << "[[regions]]\nname = \"" << entry.name << "\"\nid = " << entry.id
             << "\nhttp = \"127.0.0.1:" << entry.http_port << "\"\nreplication = \""
             << entry.replication << "\"\n"
             << grpc_line(entry.name) << "\n";
    }
    config << options_.extra_toml << "\n";
    return;
  }
  http_port_ = FreePort();
  config << "[[regions]]\nname = \"" << options_.region
         << "\"\nid = 1\nhttp = \"127.0.0.1:" << http_port_
         << "\"\nreplication = \"127.0.0.1:" << FreePort() << "\"\n"
         << grpc_line(options_.region) << "\n";
  int id = 2;
  for (const std::string& peer : options_.peers) {
    config << "[[regions]]\nname = \"" << peer << "\"\nid = " << id++
           << "\nhttp = \"127.0.0.1:" << FreePort()
           << "\"\nreplication = \"127.0.0.1:" << FreePort() << "\"\n\n";
  }
  config << options_.extra_toml << "\n";
}

NodeProcess::~NodeProcess() {
  if (pid_ > 0) Kill();
}

bool NodeProcess::Start(std::chrono::milliseconds timeout, bool ready) {
  const bool bootstrap = options_.bootstrap && starts_++ == 0;
  // The arguments are built before the fork: the child only calls what is safe after it.
  const std::string binary = MeridianBinary();
  const char* level = !options_.log_level.empty() ? options_.log_level.c_str()
                      : std::getenv("MERIDIAN_TEST_LOG_LEVEL")
                          ? std::getenv("MERIDIAN_TEST_LOG_LEVEL")
                          : "warn";
  std::vector<std::string> args = {binary, "start", "--log-level", level};
  if (!options_.no_config) args.insert(args.end(), {"--config", config_path_});
  if (bootstrap) args.push_back("--bootstrap");
  args.insert(args.end(), options_.start_args.begin(), options_.start_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log >= 0) {
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
    }
    if (options_.close_inherited_fds) CloseDescriptorsFrom(STDERR_FILENO + 1);
    if (!options_.cwd.empty() && ::chdir(options_.cwd.c_str()) != 0) ::_exit(126);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  HttpClient client = Client(std::chrono::milliseconds(500));
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;  // exited during start-up
    }
    if (client.Get(ready ? "/readyz" : "/healthz").status == 200) return true;
    // Not listening yet: the connection was refused at once; wait for the process a moment.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void NodeProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

int NodeProcess::Terminate(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
  return -1;
}

std::string NodeProcess::log() const {
  std::ifstream file(log_path_);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

HttpClient NodeProcess::Client(std::chrono::milliseconds timeout) const {
  client::TlsContext tls;
  if (!options_.https_ca_file.empty()) {
    auto context = net::LoadClientContext(options_.https_ca_file);
    if (!context.ok()) throw std::runtime_error(context.status().message());
    tls = std::move(context).value();
  }
  return HttpClient("127.0.0.1", http_port_, timeout, std::move(tls));
}

}  // namespace meridian::testing
