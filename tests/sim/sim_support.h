// What the simulator's tests share: a scripted run's options, and a search of a check's failures.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "sim/simulation.h"

namespace meridian::sim::test_support {

// No faults, every pair 100 ms round trip without jitter: a script's timing is its own.
inline Options Scripted() {
  Options options;
  options.rtt_ms = 100;
  options.jitter = 0;
  return options;
}

// Whether one of `failures` contains `text`.
inline bool Mentions(const std::vector<std::string>& failures, const std::string& text) {
  return std::any_of(failures.begin(), failures.end(), [&](const std::string& failure) {
    return failure.find(text) != std::string::npos;
  });
}

}  // namespace meridian::sim::test_support
