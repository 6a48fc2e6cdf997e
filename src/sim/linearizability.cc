#include "sim/linearizability.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <set>
#include <unordered_map>

#include "core/check.h"

namespace meridian::sim {

const char* LinearizabilityName(Linearizability verdict) {
  switch (verdict) {
    case Linearizability::kLinearizable:
      return "linearizable";
    case Linearizability::kNotLinearizable:
      return "not linearizable";
    case Linearizability::kUnknown:
      return "unknown";
  }
  return "?";
}

// --- DocumentModel -------------------------------------------------------------------------------

namespace {

using State = DocumentModel::State;

State Absent() {
  return State{};
}

std::string Quoted(const std::string& text) {
  constexpr size_t kShown = 60;
  if (text.size() <= kShown) return "\"" + text + "\"";
  return "\"" + text.substr(0, kShown) + "...\"";
}

std::string VersionText(const std::optional<std::string>& version) {
  return version ? " @" + *version : "";
}

}  // namespace

DocumentModel::DocumentModel() : DocumentModel(State{}, {}) {}

DocumentModel::DocumentModel(State initial, std::set<std::string> versions_written)
    : initial_(std::move(initial)), versions_written_(std::move(versions_written)) {
  if (!initial_.exists) initial_ = Absent();
  std::sort(initial_.not_versions.begin(), initial_.not_versions.end());
  // The initial version belongs to a write before the history: no wildcard is it.
  if (initial_.version) versions_written_.insert(*initial_.version);
}

bool DocumentModel::MayBe(const State& state, const std::string& version) const {
  if (state.version) return *state.version == version;
  return !versions_written_.contains(version) &&
         !std::binary_search(state.not_versions.begin(), state.not_versions.end(), version);
}

std::vector<State> DocumentModel::Step(const State& state, const Input& input,
                                       const Output* output) const {
  if (input.kind == Kind::kRead) {
    if (output == nullptr) return {state};
    if (output->exists != state.exists) return {};
    if (!state.exists) return {state};
    if (output->value != state.value) return {};
    if (!output->version) return {state};
    if (!MayBe(state, *output->version)) return {};
    State observed = state;
    observed.version = *output->version;  // a wildcard is fixed by its first observation
    observed.not_versions.clear();
    return {observed};
  }

  // A write or delete: the precondition holds, fails, or (against a wildcard version) either.
  bool may_hold = false;
  bool may_fail = false;
  State unchanged = state;
  switch (input.precondition) {
    case Precondition::kNone:
      may_hold = true;
      break;
    case Precondition::kIfNoneMatch:
      may_hold = !state.exists;
      may_fail = state.exists;
      break;
    case Precondition::kIfMatch:
      may_hold = state.exists && MayBe(state, input.if_match);
      may_fail = !state.exists || !state.version || *state.version != input.if_match;
      if (may_fail && state.exists && !state.version) {
        // Failing against a wildcard: whatever the version is, it is not this one.
        std::vector<std::string>& excluded = unchanged.not_versions;
        const auto at = std::lower_bound(excluded.begin(), excluded.end(), input.if_match);
        if (at == excluded.end() || *at != input.if_match) excluded.insert(at, input.if_match);
      }
      break;
  }

  std::vector<State> next;
  if (may_hold && (output == nullptr || !output->precondition_failed)) {
    State written = Absent();
    if (input.kind == Kind::kWrite) {
      written.exists = true;
      written.value = input.value;
      if (output != nullptr) written.version = output->version;
    }
    next.push_back(std::move(written));
  }
  if (may_fail && (output == nullptr || output->precondition_failed)) {
    next.push_back(std::move(unchanged));
  }
  return next;
}

size_t DocumentModel::Hash(const State& state) const {
  const std::hash<std::string> hash;
  size_t h = state.exists ? 0x9e3779b97f4a7c15ULL : 0;
  auto mix = [&h](size_t x) { h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
  mix(hash(state.value));
  mix(state.version ? hash(*state.version) : 1);
  for (const std::string& version : state.not_versions) mix(hash(version));
  return h;
}

std::string DocumentModel::DescribeState(const State& state) const {
  if (!state.exists) return "absent";
  std::string text = Quoted(state.value);
  if (state.version) return text + " @" + *state.version;
  text += " @?";
  if (!state.not_versions.empty()) {
    text += " (not";
    for (const std::string& version : state.not_versions) text += " " + version;
    text += ")";
  }
  return text;
}

std::string DocumentModel::DescribeOperation(const Input& input, const Output* output) const {
  std::string text;
  switch (input.kind) {
    case Kind::kRead:
      text = "read";
      break;
    case Kind::kWrite:
      text = "write " + Quoted(input.value);
      break;
    case Kind::kDelete:
      text = "delete";
      break;
  }
  if (input.precondition == Precondition::kIfMatch) text += " if-match " + input.if_match;
  if (input.precondition == Precondition::kIfNoneMatch) text += " if-none-match";
  text += " -> ";
  if (output == nullptr) return text + "pending";
  if (input.kind == Kind::kRead) {
    return text +
           (output->exists ? Quoted(output->value) + VersionText(output->version) : "not found");
  }
  if (output->precondition_failed) return text + "precondition_failed";
  return text + "ok" + VersionText(output->version);
}

DocumentModel MakeDocumentModel(const std::vector<DocumentOperation>& history,
                                DocumentModel::State initial) {
  std::set<std::string> versions_written;
  for (const DocumentOperation& op : history) {
    if (op.input.kind == DocumentModel::Kind::kWrite && op.output &&
        !op.output->precondition_failed && op.output->version) {
      versions_written.insert(*op.output->version);
    }
  }
  return DocumentModel(std::move(initial), std::move(versions_written));
}

// --- The search ----------------------------------------------------------------------------------

namespace linearizability_internal {
namespace {

constexpr size_t kNone = std::numeric_limits<size_t>::max();

// What one search found. For a watched op i, `refused[i]`: the states in which it could not take
// effect with its answer; `accepted[i]`: whether it could in some state it was tried in.
struct SearchOutcome {
  Linearizability verdict = Linearizability::kUnknown;
  uint64_t steps = 0;
  std::vector<size_t> order;  // history indices, when linearizable
  std::vector<std::set<uint32_t>> refused;
  std::vector<bool> accepted;
};

using Bits = std::vector<uint64_t>;

bool IsSubset(const Bits& a, const Bits& b) {
  for (size_t w = 0; w < a.size(); ++w) {
    if ((a[w] & ~b[w]) != 0) return false;
  }
  return true;
}

// The configurations explored: the required ops taken, the state they led to, and the optional
// ops taken. Lowe's memo skips a configuration seen before; here also one that a configuration
// seen before dominates: with the same required ops and state and a subset of its optional ops,
// that one can continue in every way this one can (an optional op never has to be taken, and with
// fewer ops taken no deadline is passed sooner). So per
// (required ops, state) only the minimal sets of optional ops are kept. Without it, k pending
// writes in flight make 2^k configurations that differ only in which were taken and overwritten.
class Explored {
 public:
  // Whether `optional`, or a subset of it, was seen with these required ops and state.
  bool Dominated(const Bits& required, uint32_t state, const Bits& optional) const {
    const auto it = minimal_.find(Key{required, state});
    if (it == minimal_.end()) return false;
    return std::any_of(it->second.begin(), it->second.end(),
                       [&optional](const Bits& seen) { return IsSubset(seen, optional); });
  }

  // Records a configuration that is not Dominated.
  void Add(const Bits& required, uint32_t state, const Bits& optional) {
    std::vector<Bits>& minimal = minimal_[Key{required, state}];
    std::erase_if(minimal, [&optional](const Bits& seen) { return IsSubset(optional, seen); });
    minimal.push_back(optional);
  }

 private:
  struct Key {
    Bits required;
    uint32_t state;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& key) const {
      size_t h = key.state;
      for (uint64_t word : key.required) h = h * 0x100000001b3ULL ^ std::hash<uint64_t>{}(word);
      return h;
    }
  };
  std::unordered_map<Key, std::vector<Bits>, KeyHash> minimal_;
};

// Wing & Gong's search over the ops `ops` (history indices), of which those marked `required`
// must take effect (they were answered); the others, optional, may take effect after their
// invocation and by their deadline, or never. The entries (invocations, and answers of required
// ops) form a doubly linked list in time order; the ops that may take effect next are those
// invoked before the first answer left in it. Taking an op removes its entries; backtracking puts
// them back (the removals nest).
//
// The prunings (Explored, `redundant`, `unaffected`) lose no linearization. Say a configuration
// that can be completed into a linearization is open, and let d be the length of its shortest
// completion. Were the search to fail on a history with a linearization, it would have left every
// configuration it explored in vain, the initial one, open, among them; take an open one with the
// least (d, depth), C. Its shortest completion starts with some a:
// - C + a explored: it is open with a smaller d. Skipped as dominated by an explored D: D is
//   open with d(D) <= d(C + a) < d(C).
// - a optional, skipped as redundant: A + a, for A the configuration before some of the optional
//   ops on top of the stack, is open with d <= d(C + a), and is explored from A or skipped for one
//   of these reasons in turn, each step going up the stack: an open configuration with a smaller d.
// - a skipped as unaffected by the optional op o on top of the stack (C = P + o): then a and the
//   rest of the completion, leaving o out, complete P, explored, open, with the same d and a
//   smaller depth.
// Each case contradicts the choice of C.
SearchOutcome Search(const ErasedHistory& history, const std::vector<size_t>& ops,
                     const std::vector<bool>& required, const std::vector<bool>& watched,
                     uint64_t max_steps) {
  struct Entry {
    bool call;
    size_t op;  // position in `ops`
    int64_t time;
    size_t match = kNone;  // a call's answer entry
    size_t prev = kNone;
    size_t next = kNone;
  };
  std::vector<Entry> entries;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Timing& timing = history.ops[ops[i]];
    entries.push_back({true, i, timing.invoked});
    if (required[i]) entries.push_back({false, i, timing.completed});
  }
  // Invocations before answers at the same instant: such ops count as concurrent.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.time != b.time) return a.time < b.time;
    if (a.call != b.call) return a.call;
    return a.op < b.op;
  });
  // Node 0 is the list's head; entry k is node k + 1.
  std::vector<Entry> nodes(entries.size() + 1, Entry{false, kNone, 0});
  std::vector<size_t> call_node(ops.size(), kNone);
  for (size_t k = 0; k < entries.size(); ++k) {
    nodes[k + 1] = entries[k];
    if (entries[k].call) call_node[entries[k].op] = k + 1;
  }
  for (size_t k = 1; k < nodes.size(); ++k) {
    if (!nodes[k].call) nodes[call_node[nodes[k].op]].match = k;
  }
  for (size_t k = 0; k < nodes.size(); ++k) {
    nodes[k].prev = k == 0 ? kNone : k - 1;
    nodes[k].next = k + 1 < nodes.size() ? k + 1 : kNone;
  }
  auto remove = [&nodes](size_t n) {
    nodes[nodes[n].prev].next = nodes[n].next;
    if (nodes[n].next != kNone) nodes[nodes[n].next].prev = nodes[n].prev;
  };
  auto restore = [&nodes](size_t n) {
    nodes[nodes[n].prev].next = n;
    if (nodes[n].next != kNone) nodes[nodes[n].next].prev = n;
  };
  auto lift = [&](size_t n) {
    remove(n);
    if (nodes[n].match != kNone) remove(nodes[n].match);
  };
  auto unlift = [&](size_t n) {
    if (nodes[n].match != kNone) restore(nodes[n].match);
    restore(n);
  };

  SearchOutcome outcome;
  outcome.refused.resize(ops.size());
  outcome.accepted.resize(ops.size());
  const size_t required_total =
      static_cast<size_t>(std::count(required.begin(), required.end(), true));
  size_t required_taken = 0;

  struct Frame {
    size_t node;
    uint32_t state;  // before the op took effect
    size_t alternative;
    bool optional_pass;
    int64_t latest_invocation;  // of the ops taken before it
  };
  // An optional op takes effect by its deadline (an answered one, optional in a prefix, by its
  // answer), so not after an op invoked later than that.
  std::vector<int64_t> deadline(ops.size(), std::numeric_limits<int64_t>::max());
  for (size_t i = 0; i < ops.size(); ++i) {
    const Timing& timing = history.ops[ops[i]];
    if (!timing.pending) deadline[i] = timing.completed;
    if (timing.deadline) deadline[i] = *timing.deadline;
  }
  int64_t latest_invocation = std::numeric_limits<int64_t>::min();  // of the ops taken
  std::vector<Frame> taken_stack;
  // Each op's bit in the set of required, or of optional, ops taken.
  std::vector<size_t> bit(ops.size());
  size_t required_count = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    bit[i] = required[i] ? required_count++ : i - required_count;
  }
  Bits required_taken_bits((required_count + 63) / 64, 0);
  Bits optional_taken_bits((ops.size() - required_count + 63) / 64, 0);
  auto flip = [&](size_t op) {
    Bits& bits = required[op] ? required_taken_bits : optional_taken_bits;
    bits[bit[op] / 64] ^= 1ULL << (bit[op] % 64);
  };
  uint32_t state = history.initial;
  Explored explored;
  explored.Add(required_taken_bits, state, optional_taken_bits);

  // Whether optional op `op`, taken now to reach `to`, follows optional ops it could have been
  // taken before, reaching `to` all the same: that configuration (the same required ops and
  // state, fewer optional ops) dominates this one, and the configuration before those optional
  // ops, on the stack with the same first answer left, tries `op` itself.
  std::vector<uint32_t> earlier;
  auto redundant = [&](size_t op, uint32_t to) {
    for (auto frame = taken_stack.rbegin();
         frame != taken_stack.rend() && !required[nodes[frame->node].op]; ++frame) {
      ++outcome.steps;
      earlier.clear();
      history.step(frame->state, ops[op], &earlier);
      if (std::find(earlier.begin(), earlier.end(), to) != earlier.end()) return true;
    }
    return false;
  };

  // An optional op is taken only to change what the op taken next does. If `op` leads from the
  // state before the optional op on top of the stack to the same states as from the state after
  // it, any linearization taking that optional op and then `op` has a twin taking `op` first and
  // the optional op later or never (it has no answer to come before), which the configuration
  // before it tries. `next`: the states `op` leads to from now, sorted.
  std::vector<uint32_t> without;
  auto unaffected = [&](size_t op, const std::vector<uint32_t>& next) {
    if (taken_stack.empty() || required[nodes[taken_stack.back().node].op]) return false;
    without.clear();
    history.step(taken_stack.back().state, ops[op], &without);
    std::sort(without.begin(), without.end());
    return without == next;
  };

  // The candidates of a configuration are tried required ops first (one pass over them), then
  // optional ones (a second pass), so that optional ops are taken late, when an answer needs them.
  size_t node = nodes[0].next;
  bool optional_pass = false;
  size_t alternative = 0;
  std::vector<uint32_t> next;
  while (required_taken < required_total) {
    if (outcome.steps > max_steps) return outcome;  // kUnknown
    if (node != kNone && nodes[node].call) {
      const size_t op = nodes[node].op;
      if (required[op] == optional_pass || (!required[op] && latest_invocation > deadline[op])) {
        node = nodes[node].next;
        continue;
      }
      ++outcome.steps;
      next.clear();
      history.step(state, ops[op], &next);
      std::sort(next.begin(), next.end());
      if (watched[op]) {
        if (next.empty()) outcome.refused[op].insert(state);
        if (!next.empty()) outcome.accepted[op] = true;
      }
      if (unaffected(op, next)) {
        node = nodes[node].next;
        alternative = 0;
        continue;
      }
      flip(op);
      bool moved = false;
      for (; alternative < next.size(); ++alternative) {
        const uint32_t to = next[alternative];
        if (explored.Dominated(required_taken_bits, to, optional_taken_bits)) continue;
        if (!required[op] && redundant(op, to)) continue;
        explored.Add(required_taken_bits, to, optional_taken_bits);
        moved = true;
        break;
      }
      if (moved) {
        taken_stack.push_back({node, state, alternative, optional_pass, latest_invocation});
        state = next[alternative];
        latest_invocation = std::max(latest_invocation, history.ops[ops[op]].invoked);
        lift(node);
        if (required[op]) ++required_taken;
        node = nodes[0].next;
        optional_pass = false;
      } else {
        flip(op);
        node = nodes[node].next;
      }
      alternative = 0;
    } else if (!optional_pass) {
      optional_pass = true;
      node = nodes[0].next;
      alternative = 0;
    } else {
      // The first answer left (or the end of the list) cannot be explained from here: undo the
      // last op taken and try its next alternative, then the ops after it.
      if (taken_stack.empty()) {
        outcome.verdict = Linearizability::kNotLinearizable;
        return outcome;
      }
      const Frame frame = taken_stack.back();
      taken_stack.pop_back();
      const size_t op = nodes[frame.node].op;
      flip(op);
      if (required[op]) --required_taken;
      state = frame.state;
      latest_invocation = frame.latest_invocation;
      unlift(frame.node);
      node = frame.node;
      optional_pass = frame.optional_pass;
      alternative = frame.alternative + 1;
    }
  }
  outcome.verdict = Linearizability::kLinearizable;
  for (const Frame& frame : taken_stack) outcome.order.push_back(ops[nodes[frame.node].op]);
  return outcome;
}

std::string Interval(const Timing& op) {
  std::string text = "[" + std::to_string(op.invoked) + ", ";
  if (!op.pending) return text + std::to_string(op.completed) + "]";
  text += "pending";
  if (op.deadline) text += " by " + std::to_string(*op.deadline);
  return text + "]";
}

std::string Line(const ErasedHistory& history, size_t op) {
  return "#" + std::to_string(op) + " client " + std::to_string(history.ops[op].client) + " " +
         Interval(history.ops[op]) + " " + history.descriptions[op];
}

// The smallest prefix of the history that cannot be linearized, found by bisection: the prefix up
// to time T keeps the ops invoked by T, and requires those answered by T; the others keep their
// answers, if any, and may take effect (by their answer) or never. A prefix of a linearizable
// history is linearizable (restrict its linearization, dropping the optional ops after the first
// op invoked after T), so the failing prefixes are those from some T on.
void Explain(const ErasedHistory& history, const CheckOptions& options, CheckResult* result) {
  std::vector<int64_t> answers;
  for (const Timing& op : history.ops) {
    if (!op.pending) answers.push_back(op.completed);
  }
  std::sort(answers.begin(), answers.end());
  answers.erase(std::unique(answers.begin(), answers.end()), answers.end());
  MERIDIAN_CHECK(!answers.empty());  // a history without answers is linearizable

  struct Prefix {
    std::vector<size_t> ops;
    std::vector<bool> required;
    std::vector<bool> watched;  // answered at T exactly: the answers the prefix adds
    SearchOutcome outcome;
  };
  auto search = [&](int64_t until) {
    Prefix prefix;
    for (size_t i = 0; i < history.ops.size(); ++i) {
      const Timing& op = history.ops[i];
      if (op.invoked > until) continue;
      prefix.ops.push_back(i);
      prefix.required.push_back(!op.pending && op.completed <= until);
      prefix.watched.push_back(!op.pending && op.completed == until);
    }
    prefix.outcome =
        Search(history, prefix.ops, prefix.required, prefix.watched, options.max_steps);
    return prefix;
  };

  // answers[high] fails (the whole history); every answer before answers[low] passes.
  size_t low = 0;
  size_t high = answers.size() - 1;
  Prefix failing = search(answers[high]);
  bool bisected = failing.outcome.verdict == Linearizability::kNotLinearizable;
  while (bisected && low < high) {
    const size_t middle = low + (high - low) / 2;
    Prefix prefix = search(answers[middle]);
    if (prefix.outcome.verdict == Linearizability::kUnknown) {
      bisected = false;
    } else if (prefix.outcome.verdict == Linearizability::kNotLinearizable) {
      high = middle;
      failing = std::move(prefix);
    } else {
      low = middle + 1;
    }
  }
  if (failing.outcome.verdict != Linearizability::kNotLinearizable) {
    result->explanation =
        "not linearizable (no explanation: the search for the failing prefix ran out of budget)";
    return;
  }

  const int64_t until = answers[high];
  std::string text = "the answers up to t=" + std::to_string(until) + " cannot be linearized";
  if (!bisected) {
    text += " (a shorter failing prefix may exist: the search for it ran out of budget)";
  } else if (high > 0) {
    text += "; those up to t=" + std::to_string(answers[high - 1]) + " can";
  }
  text += "\n";

  std::set<size_t> last;  // history indices of the ops the prefix adds answers of
  std::set<size_t> around;
  for (size_t i = 0; i < failing.ops.size(); ++i) {
    if (failing.watched[i]) last.insert(failing.ops[i]);
  }
  result->unexplained.assign(last.begin(), last.end());
  for (size_t i = 0; i < failing.ops.size(); ++i) {
    if (!failing.watched[i]) continue;
    const size_t op = failing.ops[i];
    text += Line(history, op) + "\n";
    const std::set<uint32_t>& refused = failing.outcome.refused[i];
    const bool accepted = failing.outcome.accepted[i];
    if (!refused.empty()) {
      text += accepted ? "    refused in:" : "    refused in every state it could take effect in:";
      constexpr size_t kShown = 6;
      size_t shown = 0;
      for (const uint32_t state : refused) {
        if (shown++ == kShown) {
          text += " ... (" + std::to_string(refused.size() - kShown) + " more)";
          break;
        }
        text += (shown == 1 ? " " : "; ") + history.describe_state(state);
      }
      text += "\n";
    }
    if (accepted) {
      text += refused.empty() ? "    it can take effect, but no order then explains every answer\n"
                              : "    elsewhere it can take effect, but no order then explains "
                                "every answer\n";
    } else if (refused.empty()) {
      text += "    no order of the others reaches a point where it may take effect\n";
    }
    // The ops that may take effect during it, and the last two answered before it.
    std::vector<std::pair<int64_t, size_t>> before;
    for (const size_t other : failing.ops) {
      if (last.contains(other)) continue;
      const Timing& timing = history.ops[other];
      const int64_t latest = timing.pending
                                 ? timing.deadline.value_or(std::numeric_limits<int64_t>::max())
                                 : timing.completed;
      if (latest >= history.ops[op].invoked) {
        around.insert(other);
      } else if (!timing.pending) {
        before.emplace_back(timing.completed, other);
      }
    }
    std::sort(before.rbegin(), before.rend());
    for (size_t k = 0; k < before.size() && k < 2; ++k) around.insert(before[k].second);
  }
  if (!around.empty()) {
    text += "operations during it, and the last answered before it:\n";
    constexpr size_t kShown = 20;
    size_t shown = 0;
    for (const size_t op : around) {
      if (shown++ == kShown) {
        text += "  ... (" + std::to_string(around.size() - kShown) + " more)\n";
        break;
      }
      text += "  " + Line(history, op) + "\n";
    }
  }
  result->explanation = std::move(text);
}

}  // namespace

CheckResult Check(const ErasedHistory& uncached, const CheckOptions& options) {
  MERIDIAN_CHECK(uncached.descriptions.size() == uncached.ops.size());
  MERIDIAN_CHECK(uncached.ops.size() < (uint64_t{1} << 32));
  for (const Timing& op : uncached.ops) {
    MERIDIAN_CHECK(op.pending ? !op.deadline || *op.deadline >= op.invoked
                              : !op.deadline && op.completed >= op.invoked);
  }

  // The searches take an op in a state many times over (once per configuration with that state
  // in which it may come next): the model computes each transition once.
  std::unordered_map<uint64_t, std::vector<uint32_t>> transitions;
  ErasedHistory history = uncached;
  history.step = [&](uint32_t state, size_t op, std::vector<uint32_t>* next) {
    const auto [it, added] = transitions.try_emplace(uint64_t{state} << 32 | op);
    if (added) uncached.step(state, op, &it->second);
    next->insert(next->end(), it->second.begin(), it->second.end());
  };

  std::vector<size_t> all(history.ops.size());
  std::vector<bool> required(history.ops.size());
  for (size_t i = 0; i < all.size(); ++i) {
    all[i] = i;
    required[i] = !history.ops[i].pending;
  }
  const std::vector<bool> watched(all.size(), false);
  SearchOutcome outcome = Search(history, all, required, watched, options.max_steps);

  CheckResult result;
  result.verdict = outcome.verdict;
  result.steps = std::min(outcome.steps, options.max_steps);
  result.order = std::move(outcome.order);
  if (result.verdict == Linearizability::kUnknown) {
    result.explanation = "no answer within " + std::to_string(options.max_steps) +
                         " search steps (CheckOptions::max_steps)";
  } else if (result.verdict == Linearizability::kNotLinearizable) {
    if (options.explain) {
      Explain(history, options, &result);
    } else {
      result.explanation = "not linearizable";
    }
  }
  return result;
}

}  // namespace linearizability_internal
}  // namespace meridian::sim
