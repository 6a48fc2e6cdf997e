// The processes the demo starts, signals, and ports.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace meridian::demo {

// SIGINT and SIGTERM no longer end the demo: they are counted, and the demo winds down.
void InstallSignalHandlers();
int SignalsReceived();
// Sleeps `duration`, returning early (false) once at least `signals` signals have arrived.
bool SleepUnlessSignalled(std::chrono::milliseconds duration, int signals = 1);

// Whether 127.0.0.1:port can be bound right now.
bool PortFree(uint16_t port);
// Whether something accepts TCP connections on 127.0.0.1:port.
bool PortAccepts(uint16_t port);

// A child process: `binary args...` with stdout and stderr appended to `log_path`, in its own
// process group (a Ctrl-C at the terminal reaches only the demo, which stops its children in its
// own time) and sent SIGTERM by the kernel should the demo die first.
class Child {
 public:
  Child(std::string name, std::string log_path)
      : name_(std::move(name)), log_(std::move(log_path)) {}
  bool Spawn(const std::string& binary, const std::vector<std::string>& args, std::string* error);
  // False once the process has exited (its status then in exit_description()).
  bool Running();
  void Signal(int signal);
  // Waits until `deadline` for the process to exit; true when it has.
  bool WaitUntil(std::chrono::steady_clock::time_point deadline);
  const std::string& name() const { return name_; }
  const std::string& log_path() const { return log_; }
  std::string exit_description() const;
  // The last `lines` lines of its log.
  std::string LogTail(int lines) const;

 private:
  std::string name_;
  std::string log_;
  pid_t pid_ = -1;
  int wait_status_ = 0;
};

// Every child started; StopAll (also run on destruction) sends SIGTERM to all, waits up to
// `grace`, then SIGKILLs what is left.
class Children {
 public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() { StopAll(); }
  Child& Add(std::string name, std::string log_path);
  // Returns how many had to be killed.
  int StopAll(std::chrono::milliseconds grace = std::chrono::seconds(15));
  std::deque<Child>& all() { return children_; }

 private:
  std::deque<Child> children_;  // stable references
};

}  // namespace meridian::demo
