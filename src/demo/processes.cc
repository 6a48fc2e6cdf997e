#include "demo/processes.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <fstream>
#include <thread>

namespace meridian::demo {
namespace {

std::atomic<int> signals_received{0};

void OnSignal(int) {
  signals_received.fetch_add(1);
}

// A TCP socket on 127.0.0.1:port, bound (bind = true) or connected; true when that worked. Bound
// like the nodes and the proxy bind theirs (SO_REUSEADDR): connections of an earlier run still in
// TIME_WAIT do not make a port busy, a listener does.
bool TryLoopback(uint16_t port, bool bind) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  const auto* raw = reinterpret_cast<const sockaddr*>(&address);
  const bool ok =
      bind ? ::bind(fd, raw, sizeof address) == 0 : ::connect(fd, raw, sizeof address) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

void InstallSignalHandlers() {
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

int SignalsReceived() {
  return signals_received.load();
}

bool SleepUnlessSignalled(std::chrono::milliseconds duration, int signals) {
  const auto deadline = std::chrono::steady_clock::now() + duration;
  while (SignalsReceived() < signals) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return true;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        deadline - now, std::chrono::milliseconds(50)));
  }
  return false;
}

bool PortFree(uint16_t port) {
  return TryLoopback(port, /*bind=*/true);
}
bool PortAccepts(uint16_t port) {
  return TryLoopback(port, /*bind=*/false);
}

bool Child::Spawn(const std::string& binary, const std::vector<std::string>& args,
                  std::string* error) {
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  // argv[0] names the binary's real path (ps shows "meridian start ..."), also when `binary` is
  // /proc/self/exe, which is what runs: this very build, even if the file was replaced since.
  char real[4096];
  const ssize_t length = ::readlink(binary.c_str(), real, sizeof real - 1);
  std::vector<std::string> strings = {length > 0 ? std::string(real, length) : binary};
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  const int log = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    *error = "cannot open " + log_ + ": " + std::strerror(errno);
    return false;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);  // the demo died before prctl
    ::signal(SIGPIPE, SIG_DFL);
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, STDIN_FILENO);
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    ::execv(binary.c_str(), argv.data());
    const char message[] = "meridian demo: exec of the meridian binary failed\n";
    [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, message, sizeof message - 1);
    ::_exit(127);
  }
  ::close(log);
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  pid_ = pid;
  return true;
}

bool Child::Running() {
  if (pid_ <= 0) return false;
  if (::waitpid(pid_, &wait_status_, WNOHANG) == pid_) pid_ = -1;
  return pid_ > 0;
}

void Child::Signal(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

bool Child::WaitUntil(std::chrono::steady_clock::time_point deadline) {
  while (Running()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::string Child::exit_description() const {
  if (WIFEXITED(wait_status_))
    return "exited with status " + std::to_string(WEXITSTATUS(wait_status_));
  if (WIFSIGNALED(wait_status_)) {
    return "killed by signal " + std::to_string(WTERMSIG(wait_status_)) + " (" +
           strsignal(WTERMSIG(wait_status_)) + ")";
  }
  return "stopped";
}

std::string Child::LogTail(int lines) const {
  std::ifstream in(log_);
  std::deque<std::string> tail;
  for (std::string line; std::getline(in, line);) {
    tail.push_back("    " + line);
    if (static_cast<int>(tail.size()) > lines) tail.pop_front();
  }
  std::string out;
  for (const std::string& line : tail) out += line + "\n";
  return out;
}

Child& Children::Add(std::string name, std::string log_path) {
  return children_.emplace_back(std::move(name), std::move(log_path));
}

int Children::StopAll(std::chrono::milliseconds grace) {
  for (Child& child : children_) child.Signal(SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  int killed = 0;
  for (Child& child : children_) {
    if (child.WaitUntil(deadline)) continue;
    child.Signal(SIGKILL);
    child.WaitUntil(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    ++killed;
  }
  return killed;
}

}  // namespace meridian::demo
