// The convergence proof the demo ends with, once the workload has stopped: every region applied
// the same events, holds byte-for-byte the same documents with the same digest, and every stock
// counter equals its initial value plus the deltas the regions acknowledged.
#pragma once

#include <chrono>

#include "demo/layout.h"
#include "demo/workload.h"

namespace meridian::demo {

// Waits up to `timeout` for equal frontiers (less after a second signal), then compares and
// prints the proof on stdout. True when every check holds ("CONVERGED").
bool ProveConvergence(const Layout& layout, const Workload& workload,
                      std::chrono::milliseconds timeout);

}  // namespace meridian::demo
