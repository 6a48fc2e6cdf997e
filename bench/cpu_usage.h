// CPU accounting for the benchmarks, from /proc (Linux): a process's CPU time by thread name and
// the share of the machine's cores that were busy between two samples.
#pragma once

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace meridian::bench {

// The first line of a file, without its newline ("" when it cannot be read).
inline std::string ReadFirstLine(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return {};
  char buf[1024];
  std::string line;
  if (std::fgets(buf, sizeof buf, f) != nullptr) line = buf;
  std::fclose(f);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

// utime + stime in clock ticks of a /proc/<pid>[/task/<tid>]/stat line, and the name between
// its parentheses.
inline bool ParseStat(const std::string& line, std::string* name, uint64_t* ticks) {
  const auto open = line.find('(');
  const auto close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return false;
  *name = line.substr(open + 1, close - open - 1);
  std::vector<std::string> fields;  // from the state (stat field 3) on
  for (size_t i = close + 2; i < line.size();) {
    const auto end = line.find(' ', i);
    fields.push_back(line.substr(i, end == std::string::npos ? std::string::npos : end - i));
    if (end == std::string::npos) break;
    i = end + 1;
  }
  if (fields.size() < 13) return false;  // fields[11], [12]: utime, stime (stat fields 14, 15)
  *ticks = std::strtoull(fields[11].c_str(), nullptr, 10) +
           std::strtoull(fields[12].c_str(), nullptr, 10);
  return true;
}

struct MachineTicks {
  uint64_t busy = 0;  // all but idle and iowait
  uint64_t total = 0;
  bool ok = false;
};

inline MachineTicks SampleMachine() {
  // "cpu  user nice system idle iowait irq softirq steal ..."
  const std::string line = ReadFirstLine("/proc/stat");
  std::vector<uint64_t> v;
  for (size_t i = line.find(' '); i != std::string::npos && i < line.size();) {
    while (i < line.size() && line[i] == ' ') ++i;
    if (i >= line.size()) break;
    v.push_back(std::strtoull(line.c_str() + i, nullptr, 10));
    i = line.find(' ', i);
  }
  MachineTicks out;
  if (v.size() < 5) return out;
  for (size_t k = 0; k < v.size() && k < 8; ++k) out.total += v[k];
  out.busy = out.total - v[3] - v[4];
  out.ok = true;
  return out;
}

// Percent of all cores busy between two samples (0 when either failed).
inline double BusyPercent(const MachineTicks& before, const MachineTicks& after) {
  if (!before.ok || !after.ok || after.total <= before.total) return 0;
  return 100.0 * static_cast<double>(after.busy - before.busy) /
         static_cast<double>(after.total - before.total);
}

// A thread's group: its name without a trailing number ("http-1" and "http-2" are "http").
inline std::string ThreadGroup(std::string name) {
  while (!name.empty() && std::isdigit(static_cast<unsigned char>(name.back()))) name.pop_back();
  if (name.size() > 1 && name.back() == '-') name.pop_back();
  return name;
}

struct ProcessTicks {
  uint64_t total = 0;                        // every thread, also those gone since
  std::map<std::string, uint64_t> by_group;  // live threads by ThreadGroup
  bool ok = false;
};

// What each thread group used between two samples (groups that used nothing are left out; a
// group whose threads ended in between counts from 0).
inline std::map<std::string, uint64_t> GroupTicksSince(const ProcessTicks& before,
                                                       const ProcessTicks& after) {
  std::map<std::string, uint64_t> used;
  for (const auto& [group, ticks] : after.by_group) {
    const auto it = before.by_group.find(group);
    const uint64_t delta = ticks - (it == before.by_group.end() ? 0 : std::min(ticks, it->second));
    if (delta > 0) used[group] = delta;
  }
  return used;
}

inline ProcessTicks SampleProcess(long pid) {
  ProcessTicks out;
  std::string name;
  const std::string dir = "/proc/" + std::to_string(pid);
  if (!ParseStat(ReadFirstLine(dir + "/stat"), &name, &out.total)) return out;
  if (DIR* tasks = opendir((dir + "/task").c_str())) {
    while (const dirent* entry = readdir(tasks)) {
      if (entry->d_name[0] == '.') continue;
      uint64_t ticks = 0;
      if (ParseStat(ReadFirstLine(dir + "/task/" + entry->d_name + "/stat"), &name, &ticks))
        out.by_group[ThreadGroup(name)] += ticks;
    }
    closedir(tasks);
  }
  out.ok = true;
  return out;
}

// CPU seconds this process has used (every thread).
inline double SelfCpuSeconds() {
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  return static_cast<double>(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
         static_cast<double>(self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6;
}

inline double MicrosPerTick() {
  return 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace meridian::bench
