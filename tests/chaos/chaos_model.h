// The chaos test's model (docs/testing.md, "Chaos against real processes"): the fault schedule
// drawn from one seed, the record of every write a client attempted and what it may have done,
// and the rules the checkers apply to the final state and to what the watches saw. Pure code,
// no processes or sockets: chaos_model_test.cc pins the rules on small histories, and
// chaos_test.cc drives them against real nodes.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "support/cluster.h"

namespace meridian::chaos {

// Wall-clock microseconds since the Unix epoch (std::chrono::system_clock). The nodes run on the
// same machine and stamp their HLCs from the same clock, which is what lets the checkers compare
// the test's own timestamps with HLCs. Assumes the clock does not step during a run.
using Micros = int64_t;
inline constexpr Micros kNever = std::numeric_limits<Micros>::max();
Micros NowMicros();

// ---------------------------------------------------------------------------------------------
// Fault schedule

enum class FaultKind {
  kKill,       // SIGKILL node a, restart it at the end
  kTerminate,  // SIGTERM node a, restart it at the end
  kPartition,  // cut both directions between a and b
  kOneWay,     // cut only the link a dials to receive b's events
  kIsolate,    // cut a from every other region
  kFlap,       // cut and heal a|b at the offsets in `toggles_ms`
  kJitter,     // delay and jitter on both directions between a and b
  kLossy,      // connection resets and stalls on both directions between a and b
};

struct Fault {
  FaultKind kind = FaultKind::kKill;
  int64_t start_ms = 0;  // planned, from the start of the chaos phase
  int64_t end_ms = 0;    // when it is undone (the node restarted, the link healed or cleaned)
  std::string a;
  std::string b;
  testing::LinkConditions conditions;  // kJitter, kLossy
  std::vector<int64_t> toggles_ms;     // kFlap: cut at even indexes, heal at odd ones
};

// Two tracks run side by side: the process track (kills and SIGTERMs, one node down at most,
// each restart finished before the next fault) and the network track (one link fault at a time).
// Everything, durations and gaps included, is a function of (seed, duration_ms, regions), so a
// seed replays the same schedule; when each step actually happens also depends on the machine.
struct FaultPlan {
  std::vector<Fault> process;
  std::vector<Fault> network;
};

FaultPlan PlanFaults(uint64_t seed, int64_t duration_ms, const std::vector<std::string>& regions);
std::string Describe(const Fault& fault);
// Fraction of [0, duration_ms) during which at least one planned fault is active.
double FaultCoverage(const FaultPlan& plan, int64_t duration_ms);

// ---------------------------------------------------------------------------------------------
// Writes and what they may have done

enum class WriteKind { kPut, kPatch, kDelete, kIncr };
enum class Outcome {
  kAcked,     // 200 with a receipt: committed
  kUnknown,   // no answer (reset, timeout) while a process of the region lived: maybe committed
  kRejected,  // an error answer: changed nothing
  kNotSent,   // no answer, and no process of the region lived during the request
};

const char* KindName(WriteKind kind);
const char* OutcomeName(Outcome outcome);

struct Write {
  std::string region;  // where it was sent
  int region_id = 0;
  WriteKind kind = WriteKind::kPut;
  std::string key;
  std::string value;  // kPut, kPatch: the write's unique value of field "v"
  int64_t delta = 0;  // kIncr: adds delta to "n" and -delta to "m"
  Micros sent = 0;    // just before the request
  Micros ended = 0;   // just after the answer (or the failure)
  int status = 0;     // HTTP status; 0: no answer
  Outcome outcome = Outcome::kUnknown;
  std::string event;  // kAcked: the receipt's event id, "us:42"
  uint64_t hlc_ms = 0;
  uint64_t hlc_logical = 0;
  // kUnknown: if it committed at all, it committed before this (the region's process that could
  // have taken it was reaped by then); kNever when that process may still be running.
  Micros latest_commit = kNever;
  std::string detail;  // the error, for the report
};

// One process of a region: from just before it was forked to just after it was reaped.
struct Life {
  Micros started = 0;
  Micros reaped = kNever;
};

// Sets the outcome of every write from its status, and bounds the unknown ones with the
// lifetimes of the region's processes.
void Classify(std::vector<Write>* writes, const std::map<std::string, std::vector<Life>>& lives);

// "1795307075292.7" -> {1795307075292, 7}; false when malformed.
bool ParseHlc(const std::string& text, uint64_t* ms, uint64_t* logical);
// "us:42" -> {"us", 42}; false when malformed.
bool ParseEventId(const std::string& id, std::string* origin, uint64_t* seq);

// ---------------------------------------------------------------------------------------------
// Checkers. Each returns the problems it found, empty when the rule holds.

// The final value of field "v" of a key written with unique values (PUT, PATCH, DELETE), against
// every write to that key. `final_doc` is the rendered document, nullopt when it does not exist.
// The rule is stated in chaos_model.cc.
std::vector<std::string> CheckUniqueValueKey(const std::string& key,
                                             const std::optional<nlohmann::json>& final_doc,
                                             const std::vector<const Write*>& writes);

// A counter key (only ever incremented, "n" by delta and "m" by -delta, deltas > 0):
// acknowledged_sum <= n <= acknowledged_sum + unknown_sum, equal when nothing is unknown,
// and m == -n (no increment half applied).
std::vector<std::string> CheckCounterKey(const std::string& key,
                                         const std::optional<nlohmann::json>& final_doc,
                                         const std::vector<const Write*>& writes);

// A change as a watch delivered it.
struct Change {
  std::string id;  // "eu:17"
  std::string key;
  nlohmann::json doc;  // null when the change deleted the document
};

// What one region's watcher (resumed across restarts) saw, on keys starting with `prefix`:
// - every change at most once (no event id twice);
// - per origin region, in increasing seq order;
// - only keys starting with `prefix`.
std::vector<std::string> CheckWatchOrder(const std::string& region, const std::string& prefix,
                                         const std::vector<Change>& seen);

// After convergence: the watcher saw, for every key of the prefix, the key's final state as the
// last change of that key (`final_docs`: rendered documents of the prefix, by key; a key it saw
// that is not there must have ended deleted).
std::vector<std::string> CheckWatchFinalState(
    const std::string& region, const std::vector<Change>& seen,
    const std::map<std::string, nlohmann::json>& final_docs);

// Every acknowledged write to a key of the prefix is in what the watcher saw, under its receipt's
// event id and key; every event the watcher saw that no receipt names is explained by an unknown
// write of that origin to that key; counter changes move "n" by exactly the write's delta and
// keep m == -n; and at the writing region, a change of its own acknowledged PUT or PATCH shows
// the written value, of its own DELETE no document.
std::vector<std::string> CheckWatchAgainstWrites(const std::string& region,
                                                 const std::string& prefix,
                                                 const std::vector<Change>& seen,
                                                 const std::vector<Write>& writes);

// Two sequences of changes are the same (ids, keys and documents, in order): the live watcher
// against a replay of the region's change log.
std::vector<std::string> CompareChanges(const std::string& what, const std::vector<Change>& live,
                                        const std::vector<Change>& replay);

}  // namespace meridian::chaos
