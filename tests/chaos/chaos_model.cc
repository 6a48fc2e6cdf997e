#include "chaos/chaos_model.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <sstream>
#include <tuple>

namespace meridian::chaos {

using nlohmann::json;

Micros NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------------------------
// Fault schedule

namespace {

// Draws straight from the engine (no std::uniform_*_distribution, whose results differ between
// standard libraries), so a seed gives the same schedule wherever the test is built.
class Draw {
 public:
  explicit Draw(uint64_t seed) : engine_(seed) {}
  int64_t Between(int64_t low, int64_t high) {  // inclusive
    return low + static_cast<int64_t>(engine_() % static_cast<uint64_t>(high - low + 1));
  }
  double Fraction(int low_percent, int high_percent) {
    return static_cast<double>(Between(low_percent, high_percent)) / 100.0;
  }
  const std::string& Pick(const std::vector<std::string>& from) {
    return from[engine_() % from.size()];
  }
  std::string PickOther(const std::vector<std::string>& from, const std::string& not_this) {
    std::vector<std::string> others;
    for (const std::string& region : from) {
      if (region != not_this) others.push_back(region);
    }
    return Pick(others);
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace

FaultPlan PlanFaults(uint64_t seed, int64_t duration_ms, const std::vector<std::string>& regions) {
  Draw draw(seed);
  FaultPlan plan;
  // Process track: a node down for 0.3-3 s, then 2-6 s with every node up (plus however long the
  // restart takes) so that the cluster also works, and catches up, between kills. The last fault
  // of each track may outlast the phase: the end of the phase undoes it (the final heal).
  for (int64_t t = draw.Between(1000, 3000); t < duration_ms - 1000;) {
    Fault fault;
    fault.kind = draw.Between(0, 99) < 75 ? FaultKind::kKill : FaultKind::kTerminate;
    fault.a = draw.Pick(regions);
    fault.start_ms = t;
    fault.end_ms = t + draw.Between(300, 3000);
    plan.process.push_back(fault);
    t = fault.end_ms + draw.Between(2000, 6000);
  }
  // Network track: one link fault of 1-6 s at a time, 0.2-1.5 s apart.
  for (int64_t t = draw.Between(300, 1500); t < duration_ms - 1000;) {
    Fault fault;
    fault.start_ms = t;
    fault.end_ms = t + draw.Between(1000, 6000);
    fault.a = draw.Pick(regions);
    fault.b = draw.PickOther(regions, fault.a);
    const int64_t dice = draw.Between(0, 99);
    if (dice < 22) {
      fault.kind = FaultKind::kPartition;
    } else if (dice < 40) {
      fault.kind = FaultKind::kOneWay;
    } else if (dice < 50) {
      fault.kind = FaultKind::kIsolate;
      fault.b.clear();
    } else if (dice < 60) {
      fault.kind = FaultKind::kFlap;
      for (int64_t at = 0; fault.start_ms + at < fault.end_ms; at += draw.Between(150, 800)) {
        fault.toggles_ms.push_back(fault.start_ms + at);
      }
    } else if (dice < 80) {
      fault.kind = FaultKind::kJitter;
      fault.conditions.delay_ms = static_cast<uint32_t>(draw.Between(20, 120));
      fault.conditions.jitter_ms =
          static_cast<uint32_t>(draw.Between(5, fault.conditions.delay_ms));
    } else {
      fault.kind = FaultKind::kLossy;
      fault.conditions.delay_ms = static_cast<uint32_t>(draw.Between(2, 30));
      fault.conditions.jitter_ms = static_cast<uint32_t>(draw.Between(0, 10));
      fault.conditions.drop = draw.Fraction(20, 90);
      fault.conditions.stall = draw.Fraction(20, 90);
      fault.conditions.stall_ms = static_cast<uint32_t>(draw.Between(100, 1200));
    }
    plan.network.push_back(fault);
    t = fault.end_ms + draw.Between(200, 1500);
  }
  return plan;
}

std::string Describe(const Fault& fault) {
  std::ostringstream out;
  const int64_t length = fault.end_ms - fault.start_ms;
  switch (fault.kind) {
    case FaultKind::kKill:
      out << "SIGKILL " << fault.a << ", restart after " << length << " ms";
      break;
    case FaultKind::kTerminate:
      out << "SIGTERM " << fault.a << ", restart after " << length << " ms";
      break;
    case FaultKind::kPartition:
      out << "partition " << fault.a << "|" << fault.b << " for " << length << " ms";
      break;
    case FaultKind::kOneWay:
      out << "one-way cut: " << fault.a << " cannot receive from " << fault.b << " for " << length
          << " ms";
      break;
    case FaultKind::kIsolate:
      out << "isolate " << fault.a << " for " << length << " ms";
      break;
    case FaultKind::kFlap:
      out << "flap " << fault.a << "|" << fault.b << " (" << fault.toggles_ms.size()
          << " cuts and heals) for " << length << " ms";
      break;
    case FaultKind::kJitter:
      out << "jitter " << fault.a << "<->" << fault.b << " delay " << fault.conditions.delay_ms
          << "+-" << fault.conditions.jitter_ms << " ms for " << length << " ms";
      break;
    case FaultKind::kLossy:
      out << "lossy " << fault.a << "<->" << fault.b << " drop " << fault.conditions.drop
          << "/s stall " << fault.conditions.stall << "/s x " << fault.conditions.stall_ms
          << " ms, delay " << fault.conditions.delay_ms << "+-" << fault.conditions.jitter_ms
          << " ms for " << length << " ms";
      break;
  }
  return out.str();
}

double FaultCoverage(const FaultPlan& plan, int64_t duration_ms) {
  constexpr int64_t kStep = 10;
  const int64_t steps = std::max<int64_t>(1, duration_ms / kStep);
  std::vector<bool> covered(static_cast<size_t>(steps), false);
  for (const auto* track : {&plan.process, &plan.network}) {
    for (const Fault& fault : *track) {
      for (int64_t t = fault.start_ms; t < fault.end_ms && t / kStep < steps; t += kStep) {
        if (t >= 0) covered[static_cast<size_t>(t / kStep)] = true;
      }
    }
  }
  return static_cast<double>(std::count(covered.begin(), covered.end(), true)) /
         static_cast<double>(steps);
}

// ---------------------------------------------------------------------------------------------
// Writes

const char* KindName(WriteKind kind) {
  switch (kind) {
    case WriteKind::kPut:
      return "PUT";
    case WriteKind::kPatch:
      return "PATCH";
    case WriteKind::kDelete:
      return "DELETE";
    case WriteKind::kIncr:
      return "INCR";
  }
  return "?";
}

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kAcked:
      return "acknowledged";
    case Outcome::kUnknown:
      return "unknown";
    case Outcome::kRejected:
      return "rejected";
    case Outcome::kNotSent:
      return "not sent";
  }
  return "?";
}

void Classify(std::vector<Write>* writes, const std::map<std::string, std::vector<Life>>& lives) {
  static const std::vector<Life> kNone;
  for (Write& write : *writes) {
    if (write.status == 200) {
      write.outcome = Outcome::kAcked;
      continue;
    }
    if (write.status != 0) {
      write.outcome = Outcome::kRejected;
      continue;
    }
    // No answer. Only a process that lived while the request was out can have taken it, and it
    // cannot have committed anything after it was reaped.
    auto it = lives.find(write.region);
    const std::vector<Life>& region_lives = it == lives.end() ? kNone : it->second;
    bool any = false;
    Micros latest = 0;
    for (const Life& life : region_lives) {
      if (life.started <= write.ended && life.reaped >= write.sent) {
        any = true;
        latest = std::max(latest, life.reaped);
      }
    }
    write.outcome = any ? Outcome::kUnknown : Outcome::kNotSent;
    write.latest_commit = any ? latest : 0;
  }
}

bool ParseHlc(const std::string& text, uint64_t* ms, uint64_t* logical) {
  const size_t dot = text.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == text.size()) return false;
  try {
    size_t used = 0;
    *ms = std::stoull(text.substr(0, dot), &used);
    if (used != dot) return false;
    *logical = std::stoull(text.substr(dot + 1), &used);
    return used == text.size() - dot - 1;
  } catch (const std::exception&) {
    return false;
  }
}

bool ParseEventId(const std::string& id, std::string* origin, uint64_t* seq) {
  const size_t colon = id.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == id.size()) return false;
  try {
    size_t used = 0;
    *seq = std::stoull(id.substr(colon + 1), &used);
    if (used != id.size() - colon - 1 || *seq == 0) return false;
  } catch (const std::exception&) {
    return false;
  }
  *origin = id.substr(0, colon);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Checkers

namespace {

std::string Show(const Write& write) {
  std::ostringstream out;
  out << KindName(write.kind) << " " << write.key;
  if (!write.value.empty()) out << " v=" << write.value;
  if (write.kind == WriteKind::kIncr) out << " +" << write.delta;
  out << " in " << write.region << " -> " << OutcomeName(write.outcome);
  if (write.outcome == Outcome::kAcked) {
    out << " " << write.event << " hlc " << write.hlc_ms << "." << write.hlc_logical;
  }
  return out.str();
}

bool SetsValue(const Write& write) {
  return write.kind == WriteKind::kPut || write.kind == WriteKind::kPatch;
}

bool Possible(const Write& write) {
  return write.outcome == Outcome::kAcked || write.outcome == Outcome::kUnknown;
}

// If `write` committed at all, it committed before this.
Micros CommitBound(const Write& write) {
  return write.outcome == Outcome::kAcked ? write.ended : write.latest_commit;
}

std::tuple<uint64_t, uint64_t, int> Order(const Write& write) {
  return {write.hlc_ms, write.hlc_logical, write.region_id};
}

}  // namespace

// The rule for a key written with unique values. Every write to such a key names field "v": a
// PUT or PATCH sets it to a value no other write uses, a DELETE removes it. By the merge rules
// (docs/semantics.md) a write removes exactly the siblings of "v" it has seen, a write that has
// seen another has the greater HLC, and "v" renders the surviving sibling with the greatest
// (HLC, region id). From the client's side:
//
//   - A write x has certainly seen a write w when both went to the same region and w had
//     committed before x was sent: w was acknowledged before x was sent, or w's outcome is
//     unknown but the process that could have taken it was reaped before x was sent. (A region
//     keeps what it committed across restarts, so this holds across them.) Such a w is
//     certainly removed if x was acknowledged: every write touches "v".
//   - L is the acknowledged write with the greatest (HLC, region id). Only a write with a greater
//     HLC can have seen L, so no acknowledged one did; nor did an unknown write that cannot have
//     committed after L was sent. Such an unknown write also has the smaller HLC: its HLC's
//     physical part is at most the wall clock when it committed, L's at least the wall clock
//     when L was sent (one machine, one clock; a 2 ms margin covers the millisecond grain).
//     U is the set of unknown writes for which that is not certain.
//
// The final value F of "v" (absent when the document or the field is absent) must then be:
//   1. absent, or the value of a PUT or PATCH that was acknowledged or unknown: never one that
//      was rejected, not sent, or never written;
//   2. not the value of a write certainly removed by an acknowledged one;
//   3. when U is empty and L is a PUT or PATCH: exactly L's value (L survives, and beats every
//      other survivor). When U is empty and L is a DELETE: absent, or a value that survived it
//      (concurrent with it, by 1 and 2);
//   4. when U is not empty (L may have been overwritten or deleted since): absent only if L or a
//      write of U is a DELETE; otherwise any value allowed by 1 and 2;
//   5. with no acknowledged write at all: absent, or the value of an unknown PUT or PATCH.
std::vector<std::string> CheckUniqueValueKey(const std::string& key,
                                             const std::optional<json>& final_doc,
                                             const std::vector<const Write*>& writes) {
  std::vector<std::string> problems;
  std::optional<std::string> final_value;
  if (final_doc && final_doc->is_object() && final_doc->contains("v")) {
    const json& v = (*final_doc)["v"];
    if (!v.is_string()) {
      problems.push_back(key + ": v is not a written value: " + v.dump());
      return problems;
    }
    final_value = v.get<std::string>();
  }
  const Write* last = nullptr;  // L
  for (const Write* write : writes) {
    if (write->outcome != Outcome::kAcked) continue;
    if (last == nullptr || Order(*write) > Order(*last)) last = write;
  }
  const auto removed = [&](const Write& w) -> const Write* {
    for (const Write* x : writes) {
      if (x != &w && x->outcome == Outcome::kAcked && x->region == w.region &&
          CommitBound(w) < x->sent) {
        return x;
      }
    }
    return nullptr;
  };
  std::vector<const Write*> after_last;  // U
  if (last != nullptr) {
    for (const Write* write : writes) {
      if (write->outcome == Outcome::kUnknown &&
          (write->latest_commit == kNever || write->latest_commit + 2000 > last->sent)) {
        after_last.push_back(write);
      }
    }
  }
  const Write* source = nullptr;  // the write whose value F is
  if (final_value) {
    for (const Write* write : writes) {
      if (SetsValue(*write) && write->value == *final_value) source = write;
    }
    if (source == nullptr) {
      problems.push_back(key + ": final v=" + *final_value + " was never written");
      return problems;
    }
    if (!Possible(*source)) {  // rule 1
      problems.push_back(key +
                         ": final v comes from a write that did not happen: " + Show(*source));
      return problems;
    }
    if (const Write* remover = removed(*source)) {  // rule 2
      problems.push_back(key + ": final v comes from " + Show(*source) +
                         ", which the acknowledged " + Show(*remover) + " had seen and removed");
      return problems;
    }
  }
  if (last == nullptr) return problems;  // rule 5: a value, if any, came from an unknown write
  if (after_last.empty()) {              // rule 3
    if (SetsValue(*last) && source != last) {
      problems.push_back(key + ": lost acknowledged write " + Show(*last) + "; final v is " +
                         (final_value ? *final_value : std::string("absent")) +
                         (source ? " from " + Show(*source) : std::string()));
    }
    return problems;
  }
  // Rule 4.
  if (!final_value) {
    bool deleted = last->kind == WriteKind::kDelete;
    for (const Write* write : after_last) deleted = deleted || write->kind == WriteKind::kDelete;
    if (!deleted) {
      problems.push_back(key + ": v is absent but no delete can have removed the acknowledged " +
                         Show(*last));
    }
  }
  return problems;
}

std::vector<std::string> CheckCounterKey(const std::string& key,
                                         const std::optional<json>& final_doc,
                                         const std::vector<const Write*>& writes) {
  std::vector<std::string> problems;
  int64_t acknowledged = 0;
  int64_t unknown = 0;
  for (const Write* write : writes) {
    if (write->outcome == Outcome::kAcked) acknowledged += write->delta;
    if (write->outcome == Outcome::kUnknown) unknown += write->delta;
  }
  const auto field = [&](const char* name, int64_t* out) {
    *out = 0;
    if (!final_doc || !final_doc->is_object() || !final_doc->contains(name)) return true;
    const json& value = (*final_doc)[name];
    if (!value.is_number_integer()) return false;
    *out = value.get<int64_t>();
    return true;
  };
  int64_t n = 0;
  int64_t m = 0;
  if (!field("n", &n) || !field("m", &m)) {
    problems.push_back(key + ": a counter is not an integer: " + final_doc->dump());
    return problems;
  }
  if (n < acknowledged) {
    problems.push_back(key + ": lost acknowledged increments: n=" + std::to_string(n) +
                       " < acknowledged sum " + std::to_string(acknowledged));
  }
  if (n > acknowledged + unknown) {
    problems.push_back(key + ": n=" + std::to_string(n) + " > acknowledged " +
                       std::to_string(acknowledged) + " + unknown " + std::to_string(unknown));
  }
  if (m != -n) {
    problems.push_back(key + ": an increment was half applied: n=" + std::to_string(n) +
                       " m=" + std::to_string(m));
  }
  return problems;
}

std::vector<std::string> CheckWatchOrder(const std::string& region, const std::string& prefix,
                                         const std::vector<Change>& seen) {
  std::vector<std::string> problems;
  std::set<std::string> ids;
  std::map<std::string, uint64_t> last_seq;
  for (size_t i = 0; i < seen.size() && problems.size() < 20; ++i) {
    const Change& change = seen[i];
    std::string origin;
    uint64_t seq = 0;
    if (!ParseEventId(change.id, &origin, &seq)) {
      problems.push_back(region + " watch #" + std::to_string(i) + ": malformed id " + change.id);
      continue;
    }
    if (!ids.insert(change.id).second) {
      problems.push_back(region + " watch #" + std::to_string(i) + ": " + change.id +
                         " delivered twice");
    }
    if (seq <= last_seq[origin]) {
      problems.push_back(region + " watch #" + std::to_string(i) + ": " + change.id + " after " +
                         origin + ":" + std::to_string(last_seq[origin]));
    }
    last_seq[origin] = std::max(last_seq[origin], seq);
    if (change.key.compare(0, prefix.size(), prefix) != 0) {
      problems.push_back(region + " watch #" + std::to_string(i) + ": key " + change.key +
                         " outside the prefix " + prefix);
    }
  }
  return problems;
}

std::vector<std::string> CheckWatchFinalState(const std::string& region,
                                              const std::vector<Change>& seen,
                                              const std::map<std::string, json>& final_docs) {
  std::vector<std::string> problems;
  std::map<std::string, json> last;
  for (const Change& change : seen) last[change.key] = change.doc;
  for (const auto& [key, doc] : final_docs) {
    auto it = last.find(key);
    if (it == last.end()) {
      problems.push_back(region + " watch: no change of " + key + " (final " + doc.dump() + ")");
    } else if (it->second != doc) {
      problems.push_back(region + " watch: last change of " + key + " is " + it->second.dump() +
                         ", the final document " + doc.dump());
    }
  }
  for (const auto& [key, doc] : last) {
    if (!final_docs.count(key) && !doc.is_null()) {
      problems.push_back(region + " watch: " + key + " ended absent, its last change shows " +
                         doc.dump());
    }
  }
  return problems;
}

std::vector<std::string> CheckWatchAgainstWrites(const std::string& region,
                                                 const std::string& prefix,
                                                 const std::vector<Change>& seen,
                                                 const std::vector<Write>& writes) {
  std::vector<std::string> problems;
  const auto add = [&](std::string problem) {
    if (problems.size() < 30) problems.push_back(region + " watch: " + std::move(problem));
  };
  std::map<std::string, const Write*> by_event;
  // Unknown writes per (origin, key), and their deltas: what may explain an event no receipt
  // names.
  std::map<std::pair<std::string, std::string>, std::vector<const Write*>> unknown;
  for (const Write& write : writes) {
    if (write.outcome == Outcome::kAcked) by_event[write.event] = &write;
    if (write.outcome == Outcome::kUnknown) unknown[{write.region, write.key}].push_back(&write);
  }
  std::map<std::string, const Change*> seen_by_id;
  for (const Change& change : seen) seen_by_id[change.id] = &change;
  for (const auto& [event, write] : by_event) {
    if (write->key.compare(0, prefix.size(), prefix) != 0) continue;
    auto it = seen_by_id.find(event);
    if (it == seen_by_id.end()) {
      add("never saw the acknowledged " + Show(*write));
    } else if (it->second->key != write->key) {
      add(event + " is a change of " + it->second->key + ", the receipt was for " + Show(*write));
    }
  }
  std::map<std::pair<std::string, std::string>, size_t> unexplained;
  std::map<std::string, int64_t> counter_n;  // n after the last change of each key
  for (const Change& change : seen) {
    std::string origin;
    uint64_t seq = 0;
    if (!ParseEventId(change.id, &origin, &seq)) continue;
    auto known = by_event.find(change.id);
    const Write* write = known == by_event.end() ? nullptr : known->second;
    if (write == nullptr) {
      // An event of a write whose answer was lost, or of the test's own markers.
      const auto& candidates = unknown[{origin, change.key}];
      if (++unexplained[{origin, change.key}] > candidates.size() &&
          change.key.rfind(prefix + "~", 0) != 0) {
        add(change.id + " on " + change.key + " matches no write sent to " + origin);
      }
    }
    if (change.doc.is_object() && (change.doc.contains("n") || change.doc.contains("m"))) {
      const json n = change.doc.value("n", json(0));
      const json m = change.doc.value("m", json(0));
      if (!n.is_number_integer() || !m.is_number_integer() ||
          n.get<int64_t>() != -m.get<int64_t>()) {
        add(change.id + " on " + change.key + " half applied an increment: " + change.doc.dump());
        continue;
      }
      const int64_t step = n.get<int64_t>() - counter_n[change.key];
      counter_n[change.key] = n.get<int64_t>();
      if (write != nullptr && write->kind == WriteKind::kIncr && step != write->delta) {
        add(change.id + " moved " + change.key + " by " + std::to_string(step) + ", its write by " +
            std::to_string(write->delta));
      }
      if (write == nullptr) {
        bool explained = false;
        for (const Write* candidate : unknown[{origin, change.key}]) {
          explained =
              explained || (candidate->kind == WriteKind::kIncr && candidate->delta == step);
        }
        if (!explained) {
          add(change.id + " moved " + change.key + " by " + std::to_string(step) +
              ", which no unknown increment from " + origin + " did");
        }
      }
    }
    if (write != nullptr && origin == region) {
      if (SetsValue(*write) &&
          !(change.doc.is_object() && change.doc.value("v", json()) == json(write->value))) {
        add(change.id + " left " + change.doc.dump() +
            " in its own region; written: v=" + write->value);
      }
      if (write->kind == WriteKind::kDelete && !change.doc.is_null()) {
        add(change.id + " (a delete) left " + change.doc.dump() + " in its own region");
      }
    }
  }
  return problems;
}

std::vector<std::string> CompareChanges(const std::string& what, const std::vector<Change>& live,
                                        const std::vector<Change>& replay) {
  std::vector<std::string> problems;
  const size_t common = std::min(live.size(), replay.size());
  for (size_t i = 0; i < common; ++i) {
    const Change& a = live[i];
    const Change& b = replay[i];
    if (a.id != b.id || a.key != b.key || a.doc != b.doc) {
      problems.push_back(what + ": change #" + std::to_string(i) + " differs: live " + a.id + " " +
                         a.key + " " + a.doc.dump() + ", replay " + b.id + " " + b.key + " " +
                         b.doc.dump());
      return problems;
    }
  }
  if (live.size() != replay.size()) {
    problems.push_back(what + ": the live watch saw " + std::to_string(live.size()) +
                       " changes, the replay of the change log holds " +
                       std::to_string(replay.size()));
  }
  return problems;
}

}  // namespace meridian::chaos
