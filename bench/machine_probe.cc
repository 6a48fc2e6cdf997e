// machine_probe: two costs of this machine that every durable write of a node pays, measured
// without the node, so that its figures can be read against them (bench/README.md):
//   - a wake-up: two threads passing a turn back and forth through a condition variable;
//   - an fdatasync after a small write, appending to a file (the size changes, so the inode is
//     written too) and overwriting blocks already written (only the data).
// Prints one JSON line. usage: machine_probe [--dir DIR] [--rounds N]
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// Microseconds per round trip: each round wakes the other thread and is woken by it.
double CondvarRoundTripUs(int rounds) {
  std::mutex mutex;
  std::condition_variable to_b;
  std::condition_variable to_a;
  int turn = 0;  // 0: a's, 1: b's
  const auto start = Clock::now();
  std::thread b([&] {
    for (int i = 0; i < rounds; ++i) {
      std::unique_lock lock(mutex);
      to_b.wait(lock, [&] { return turn == 1; });
      turn = 0;
      to_a.notify_one();
    }
  });
  for (int i = 0; i < rounds; ++i) {
    std::unique_lock lock(mutex);
    turn = 1;
    to_b.notify_one();
    to_a.wait(lock, [&] { return turn == 0; });
  }
  b.join();
  return Micros(Clock::now() - start) / rounds;
}

struct SyncCost {
  double wall_us = 0;  // per write + fdatasync
  double cpu_us = 0;   // this process's CPU (user + system) for the same
};

// `rounds` writes of `bytes`, each followed by fdatasync. Overwriting: the file is first written
// and synced to its full size, then written again from the start.
SyncCost WriteAndSync(const std::string& path, size_t bytes, int rounds, bool overwrite) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(("machine_probe: open " + path).c_str());
    std::exit(1);
  }
  const std::vector<char> buffer(bytes, 'x');
  const auto write_all = [&] {
    if (::write(fd, buffer.data(), buffer.size()) != static_cast<ssize_t>(buffer.size())) {
      std::perror("machine_probe: write");
      std::exit(1);
    }
  };
  if (overwrite) {
    for (int i = 0; i < rounds; ++i) write_all();
    ::fdatasync(fd);
    ::lseek(fd, 0, SEEK_SET);
  }
  const double cpu_before = CpuSeconds();
  const auto start = Clock::now();
  for (int i = 0; i < rounds; ++i) {
    write_all();
    ::fdatasync(fd);
  }
  SyncCost cost;
  cost.wall_us = Micros(Clock::now() - start) / rounds;
  cost.cpu_us = (CpuSeconds() - cpu_before) * 1e6 / rounds;
  ::close(fd);
  ::unlink(path.c_str());
  return cost;
}

}  // namespace

int main(int argc, char** argv) {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = tmp != nullptr ? tmp : "/tmp";
  int rounds = 3000;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (flag == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: machine_probe [--dir DIR] [--rounds N]\n");
      return flag == "-h" || flag == "--help" ? 0 : 1;
    }
  }
  if (rounds < 1 || rounds > 1'000'000) {
    std::fprintf(stderr, "machine_probe: --rounds must be 1..1000000\n");
    return 1;
  }
  const std::string path = dir + "/machine_probe." + std::to_string(::getpid());
  const double round_trip = CondvarRoundTripUs(rounds * 5);
  const SyncCost append = WriteAndSync(path, 8000, rounds, /*overwrite=*/false);
  const SyncCost overwrite = WriteAndSync(path, 8000, rounds, /*overwrite=*/true);
  std::printf(
      "{\"cores\":%u,\"condvar_round_trip_us\":%.1f,\"fdatasync_append_us\":%.1f,"
      "\"fdatasync_append_cpu_us\":%.1f,\"fdatasync_overwrite_us\":%.1f,"
      "\"fdatasync_overwrite_cpu_us\":%.1f,\"write_bytes\":8000,\"rounds\":%d,\"dir\":\"%s\"}\n",
      std::thread::hardware_concurrency(), round_trip, append.wall_us, append.cpu_us,
      overwrite.wall_us, overwrite.cpu_us, rounds, dir.c_str());
  return 0;
}
