// Linearizability of one key's history: whether the answers clients got from the strong operations
// (docs/http-api.md, `consistency=strong`, If-Match, If-None-Match) can be explained by the
// operations taking effect one at a time, each at some instant between its invocation and its
// answer, on a sequential model of the key.
//
// The checker runs per key: linearizability is compositional (a history is linearizable exactly
// when each key's sub-history is), so a test splits its history by key and checks each part.
//
// The search is Wing & Gong's, with Lowe's memoization (Lowe, "Testing for linearizability",
// 2017): it builds a linearization op by op, taking next any operation invoked before the earliest
// answer not yet explained, backtracks when an answer cannot be explained, and never explores the
// same (set of operations taken, model state) twice. An operation without an answer (pending: a
// timeout, a connection lost, an outcome the client never learnt) may take effect at any instant
// after its invocation (up to its deadline, if it has one), or never, with any outcome the model
// allows. Pending operations are what makes the search expensive: each one in flight may take
// effect at any later point. Three prunings keep that in check, none of which loses a
// linearization (see Search in the .cc): a configuration is skipped when one with the same
// answered operations taken and the same state, and fewer pending ones, was explored; a pending
// operation is taken only if it changes what the operation taken right after it does; and never
// right after other pending operations when it reaches the same state without them.
//
// Pure: no I/O, no clock, no randomness; the same history gives the same result.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace meridian::sim {

// A sequential specification. States are values: copyable, compared with ==, hashed by Hash().
// Step(state, input, output) lists the states the operation can lead to when it takes effect in
// `state` and answers `output`; output is nullptr for a pending operation (any answer the model
// allows). An empty list means it cannot take effect there with that answer. A model may be
// nondeterministic (more than one next state). Step must be a function of its arguments: the
// search calls it once per (state, operation). The Describe functions name states and operations
// in explanations.
template <typename M>
concept SequentialModel = requires(const M& model, const typename M::State& state,
                                   const typename M::Input& input,
                                   const typename M::Output* output) {
  { model.Initial() } -> std::same_as<typename M::State>;
  { model.Step(state, input, output) } -> std::same_as<std::vector<typename M::State>>;
  { model.Hash(state) } -> std::convertible_to<size_t>;
  { state == state } -> std::convertible_to<bool>;
  { model.DescribeState(state) } -> std::same_as<std::string>;
  { model.DescribeOperation(input, output) } -> std::same_as<std::string>;
};

// One operation of a history. Times are on one clock for the whole history (virtual milliseconds
// in the simulator, a monotonic clock in process tests); only their order matters. An operation
// invoked at the very instant another is answered counts as concurrent with it.
template <typename Model>
struct Operation {
  int client = 0;         // who invoked it: named in explanations, not otherwise used
  int64_t invoked = 0;    // when the request was sent
  int64_t completed = 0;  // when the answer arrived (>= invoked); ignored while pending
  typename Model::Input input;
  std::optional<typename Model::Output> output;  // nullopt: pending, the outcome unknown
  // Pending only: the last instant at which it can have taken effect, when the test knows one
  // (the process that would have applied it was gone by then); nullopt: any time. It narrows
  // the search a great deal when many ops are pending.
  std::optional<int64_t> deadline;

  bool pending() const { return !output.has_value(); }
};

enum class Linearizability { kLinearizable, kNotLinearizable, kUnknown };
const char* LinearizabilityName(Linearizability verdict);

struct CheckOptions {
  // Steps the search may take before answering kUnknown; a step is one attempt to take an op in
  // a configuration. See docs/testing.md for what histories cost. Explaining a failure searches
  // prefixes of the history: at most ceil(log2(answers)) + 1 more searches, with this budget each.
  uint64_t max_steps = 10'000'000;
  bool explain = true;  // on failure, find the smallest failing prefix and describe it
};

struct CheckResult {
  Linearizability verdict = Linearizability::kUnknown;
  uint64_t steps = 0;  // steps of the search (the explanation's searches not counted)
  // kLinearizable: indices into the history of the operations that took effect, in an order that
  // explains every answer. A pending operation missing from it need not have taken effect (or
  // took effect after everything answered).
  std::vector<size_t> order;
  // kNotLinearizable: the smallest prefix of the history (by answer time) that cannot be
  // linearized, the operations answered last in it, the states in which they could not take
  // effect, and the operations around them. kUnknown: the budget spent.
  std::string explanation;
  // kNotLinearizable (explained): the ops answered last in that prefix, whose answers no order
  // explains; they were answered at the same instant, the prefix's end.
  std::vector<size_t> unexplained;

  bool linearizable() const { return verdict == Linearizability::kLinearizable; }
};

// The document of one key as the strong operations see it: absent, or a value with a version.
// Values and versions are opaque strings, compared exactly: a history records the document's
// value as canonical JSON, and the version of its ETag.
//
// - read answers (exists, value, version); a read answering without a version checks only the
//   rest.
// - write v (put, patch, incr: the answer or the writer knows the document's value v after it)
//   and delete take effect when their precondition holds and produce a new version:
//   If-Match: V holds when the document exists at version V; If-None-Match: * when it does not
//   exist. When it does not hold they answer precondition_failed and change nothing.
// - Versions come from the history, not from the model: a write's answer names the version it
//   created. A write whose answer names none (pending, or the answer did not say) leaves the
//   version unknown, a wildcard that the first read (or If-Match that held) observing it fixes.
//   Versions are assumed never reused for a key, so a wildcard is never a version that another
//   write's answer names (nor the initial state's), and an If-Match that failed against a
//   wildcard excludes that version for it. Two wildcards of different writes are not checked to
//   differ.
// - A delete's version is unobservable (reads of an absent document name none): ignored.
class DocumentModel {
 public:
  struct State {
    bool exists = false;
    std::string value;                      // when exists
    std::optional<std::string> version;     // when exists; nullopt: not known yet (a wildcard)
    std::vector<std::string> not_versions;  // when the version is unknown: what it is not (sorted)

    bool operator==(const State&) const = default;
  };

  enum class Kind { kRead, kWrite, kDelete };
  enum class Precondition { kNone, kIfMatch, kIfNoneMatch };

  struct Input {
    Kind kind = Kind::kRead;
    std::string value;  // kWrite: the document's value once written
    Precondition precondition = Precondition::kNone;
    std::string if_match;  // kIfMatch: the version named
  };

  struct Output {
    bool precondition_failed = false;  // kWrite, kDelete: answered 412
    bool exists = false;               // kRead: the document was found
    std::string value;                 // kRead, when exists
    // kRead: the version the answer named (its ETag); kWrite: the version it created. nullopt:
    // the answer named none.
    std::optional<std::string> version;
  };

  // The initial state of the key, and the versions the history's answers say writes created
  // (see MakeDocumentModel). By default: absent, and no versions.
  DocumentModel();
  explicit DocumentModel(State initial, std::set<std::string> versions_written = {});

  State Initial() const { return initial_; }
  std::vector<State> Step(const State& state, const Input& input, const Output* output) const;
  size_t Hash(const State& state) const;
  std::string DescribeState(const State& state) const;
  std::string DescribeOperation(const Input& input, const Output* output) const;

  static Input Read() { return {}; }
  static Input Write(std::string value) { return {Kind::kWrite, std::move(value), {}, {}}; }
  static Input WriteIfMatch(std::string value, std::string version) {
    return {Kind::kWrite, std::move(value), Precondition::kIfMatch, std::move(version)};
  }
  static Input WriteIfNoneMatch(std::string value) {
    return {Kind::kWrite, std::move(value), Precondition::kIfNoneMatch, {}};
  }
  static Input Delete() { return {Kind::kDelete, {}, {}, {}}; }
  static Input DeleteIfMatch(std::string version) {
    return {Kind::kDelete, {}, Precondition::kIfMatch, std::move(version)};
  }

  static Output Found(std::string value, std::optional<std::string> version) {
    return {false, true, std::move(value), std::move(version)};
  }
  static Output NotFound() { return {}; }
  // A write or delete that took effect; `version`: the version the answer named, if any.
  static Output Done(std::optional<std::string> version = std::nullopt) {
    return {false, false, {}, std::move(version)};
  }
  static Output PreconditionFailed() { return {true, false, {}, std::nullopt}; }

 private:
  // Whether a wildcard version may turn out to be `version`.
  bool MayBe(const State& state, const std::string& version) const;

  State initial_;
  std::set<std::string> versions_written_;
};

using DocumentOperation = Operation<DocumentModel>;

// The model for a history: the versions its writes' answers name are not wildcards' versions.
DocumentModel MakeDocumentModel(const std::vector<DocumentOperation>& history,
                                DocumentModel::State initial = {});

// The model-independent search, on operations reduced to their timing and on interned states.
namespace linearizability_internal {

struct Timing {
  int client = 0;
  int64_t invoked = 0;
  int64_t completed = 0;
  bool pending = false;
  std::optional<int64_t> deadline;
};

// Appends to `next` the ids of the states op `op` leads to from state `state` (see Step).
using StepFunction = std::function<void(uint32_t state, size_t op, std::vector<uint32_t>* next)>;

struct ErasedHistory {
  std::vector<Timing> ops;
  std::vector<std::string> descriptions;  // per op: DescribeOperation
  uint32_t initial = 0;
  StepFunction step;
  std::function<std::string(uint32_t state)> describe_state;
};

CheckResult Check(const ErasedHistory& history, const CheckOptions& options);

}  // namespace linearizability_internal

// Checks one key's history against `model`. Ops are referred to by their index in `history`.
template <SequentialModel Model>
CheckResult CheckLinearizability(const Model& model, const std::vector<Operation<Model>>& history,
                                 const CheckOptions& options = {}) {
  using State = typename Model::State;
  struct StateHash {
    const Model* model;
    size_t operator()(const State& state) const { return model->Hash(state); }
  };
  // States are interned: the search stores small ids, and each distinct state once.
  std::vector<State> states;
  std::unordered_map<State, uint32_t, StateHash> ids(16, StateHash{&model});
  auto intern = [&](State state) {
    const auto [it, added] = ids.try_emplace(state, static_cast<uint32_t>(states.size()));
    if (added) states.push_back(std::move(state));
    return it->second;
  };

  linearizability_internal::ErasedHistory erased;
  for (const Operation<Model>& op : history) {
    erased.ops.push_back({op.client, op.invoked, op.completed, op.pending(), op.deadline});
    erased.descriptions.push_back(
        model.DescribeOperation(op.input, op.output ? &*op.output : nullptr));
  }
  erased.initial = intern(model.Initial());
  erased.step = [&](uint32_t state, size_t index, std::vector<uint32_t>* next) {
    const Operation<Model>& op = history[index];
    // Copied: interning may grow `states`.
    const State from = states[state];
    for (State& to : model.Step(from, op.input, op.output ? &*op.output : nullptr)) {
      next->push_back(intern(std::move(to)));
    }
  };
  erased.describe_state = [&](uint32_t state) { return model.DescribeState(states[state]); };
  return linearizability_internal::Check(erased, options);
}

}  // namespace meridian::sim
