#pragma once

#include <pthread.h>

#include <string>
#include <string_view>

namespace meridian::core {

// Names the calling thread as `top -H`, `perf` and /proc/<pid>/task/*/comm show it (Linux keeps
// at most 15 bytes). Benchmarks group the node's CPU time by these names.
inline void NameThisThread(std::string_view name) {
  const std::string truncated(name.substr(0, 15));
  (void)pthread_setname_np(pthread_self(), truncated.c_str());
}

}  // namespace meridian::core
