// The linearizability checker (src/sim/linearizability.h): hand-written histories of one key's
// strong operations, linearizable or not, a counter model through the same search, and three
// properties: random sequential executions of the document model spread over overlapping
// intervals are linearizable; one read answering a value never written makes them not; and on
// small histories with random answers the checker agrees with a search of every order, which is
// what checks its prunings. RC_PARAMS=max_success=N sets the number of cases (CTest runs 1000).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "sim/linearizability.h"

namespace meridian::sim {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using M = DocumentModel;

DocumentOperation Answered(int client, int64_t invoked, int64_t completed, M::Input input,
                           M::Output output) {
  return {client, invoked, completed, std::move(input), std::move(output), std::nullopt};
}

DocumentOperation Pending(int client, int64_t invoked, M::Input input) {
  return {client, invoked, 0, std::move(input), std::nullopt, std::nullopt};
}

M::State Document(std::string value, std::string version) {
  return {true, std::move(value), std::move(version), {}};
}

CheckResult Check(const std::vector<DocumentOperation>& history, M::State initial = {},
                  CheckOptions options = {}) {
  return CheckLinearizability(MakeDocumentModel(history, std::move(initial)), history, options);
}

// The last instant `op` can take effect at.
template <typename Model>
int64_t Latest(const Operation<Model>& op) {
  if (!op.pending()) return op.completed;
  return op.deadline.value_or(std::numeric_limits<int64_t>::max());
}

// Whether `order` is a linearization of `history`: every answered op once, pending ops at most
// once, no op after one that had to take effect before it was invoked (answered, or past its
// deadline), and every answer given by the model.
template <SequentialModel Model>
bool IsLinearization(const Model& model, const std::vector<Operation<Model>>& history,
                     const std::vector<size_t>& order) {
  std::vector<int> seen(history.size(), 0);
  for (const size_t op : order) {
    if (op >= history.size() || ++seen[op] > 1) return false;
  }
  for (size_t i = 0; i < history.size(); ++i) {
    if (!history[i].pending() && seen[i] == 0) return false;
  }
  for (size_t a = 0; a < order.size(); ++a) {
    for (size_t b = a + 1; b < order.size(); ++b) {
      if (Latest(history[order[b]]) < history[order[a]].invoked) return false;
    }
  }
  std::vector<typename Model::State> states{model.Initial()};
  for (const size_t op : order) {
    std::vector<typename Model::State> next;
    for (const auto& state : states) {
      const auto& o = history[op];
      for (auto& to : model.Step(state, o.input, o.output ? &*o.output : nullptr)) {
        next.push_back(std::move(to));
      }
    }
    if (next.empty()) return false;
    states = std::move(next);
  }
  return true;
}

// The history, one op a line, as explanations name them.
std::string Listing(const DocumentModel& model, const std::vector<DocumentOperation>& history) {
  std::string text;
  for (size_t i = 0; i < history.size(); ++i) {
    const DocumentOperation& op = history[i];
    text += "#" + std::to_string(i) + " client " + std::to_string(op.client) + " [" +
            std::to_string(op.invoked) + ", " +
            (op.pending() ? std::string("pending") : std::to_string(op.completed)) +
            (op.deadline ? " by " + std::to_string(*op.deadline) : std::string()) + "] " +
            model.DescribeOperation(op.input, op.output ? &*op.output : nullptr) + "\n";
  }
  return text;
}

void ExpectLinearizable(const std::vector<DocumentOperation>& history, M::State initial = {}) {
  const DocumentModel model = MakeDocumentModel(history, initial);
  const CheckResult result = CheckLinearizability(model, history);
  EXPECT_EQ(result.verdict, Linearizability::kLinearizable) << result.explanation;
  EXPECT_TRUE(IsLinearization(model, history, result.order));
}

// --- Document histories ------------------------------------------------------------------------

TEST(Linearizability, EmptyAndSequentialHistories) {
  ExpectLinearizable({});
  ExpectLinearizable({
      Answered(1, 0, 10, M::Read(), M::NotFound()),
      Answered(1, 20, 30, M::Write("v1"), M::Done("e1")),
      Answered(2, 40, 50, M::Read(), M::Found("v1", "e1")),
      Answered(1, 60, 70, M::Write("v2"), M::Done("e2")),
      Answered(2, 80, 90, M::Read(), M::Found("v2", "e2")),
      Answered(2, 100, 110, M::Delete(), M::Done()),
      Answered(1, 120, 130, M::Read(), M::NotFound()),
  });
  const std::vector<DocumentOperation> history{
      Answered(1, 0, 10, M::Write("v1"), M::Done("e1")),
      Answered(2, 20, 30, M::Read(), M::Found("v1", "e1")),
  };
  EXPECT_EQ(Check(history).order, (std::vector<size_t>{0, 1}));
}

TEST(Linearizability, StaleReadAfterACompletedWrite) {
  const CheckResult result = Check({
      Answered(1, 0, 10, M::Write("v1"), M::Done("e1")),
      Answered(2, 20, 30, M::Read(), M::NotFound()),
  });
  EXPECT_EQ(result.verdict, Linearizability::kNotLinearizable);
  EXPECT_THAT(result.explanation, HasSubstr("the answers up to t=30 cannot be linearized"));
  EXPECT_THAT(result.explanation, HasSubstr("those up to t=10 can"));
  EXPECT_THAT(result.explanation, HasSubstr("#1 client 2 [20, 30] read -> not found"));
  EXPECT_THAT(result.explanation,
              HasSubstr("refused in every state it could take effect in: \"v1\" @e1"));
  EXPECT_THAT(result.explanation, HasSubstr("#0 client 1 [0, 10] write \"v1\" -> ok @e1"));

  // With an initial document, the same for a stale value.
  EXPECT_FALSE(Check({Answered(1, 0, 10, M::Write("v1"), M::Done("e1")),
                      Answered(2, 20, 30, M::Read(), M::Found("v0", "e0"))},
                     Document("v0", "e0"))
                   .linearizable());
  ExpectLinearizable({Answered(2, 0, 5, M::Read(), M::Found("v0", "e0")),
                      Answered(1, 10, 20, M::Write("v1"), M::Done("e1"))},
                     Document("v0", "e0"));
}

TEST(Linearizability, AReadAnswersTheValueWithItsVersion) {
  const std::vector<DocumentOperation> writes{
      Answered(1, 0, 10, M::Write("v1"), M::Done("e1")),
      Answered(1, 20, 30, M::Write("v2"), M::Done("e2")),
  };
  auto then_read = [&](M::Output answer) {
    std::vector<DocumentOperation> history = writes;
    history.push_back(Answered(2, 40, 50, M::Read(), std::move(answer)));
    return Check(history).verdict;
  };
  EXPECT_EQ(then_read(M::Found("v2", "e2")), Linearizability::kLinearizable);
  EXPECT_EQ(then_read(M::Found("v2", std::nullopt)), Linearizability::kLinearizable);
  EXPECT_EQ(then_read(M::Found("v2", "e1")), Linearizability::kNotLinearizable);
  EXPECT_EQ(then_read(M::Found("v1", "e2")), Linearizability::kNotLinearizable);
  EXPECT_EQ(then_read(M::Found("v3", "e3")), Linearizability::kNotLinearizable);
}

TEST(Linearizability, AReadDuringAWriteSeesEitherState) {
  for (const bool sees_new : {false, true}) {
    ExpectLinearizable(
        {
            Answered(1, 0, 100, M::Write("v1"), M::Done("e1")),
            Answered(2, 10, 20, M::Read(), sees_new ? M::Found("v1", "e1") : M::Found("v0", "e0")),
        },
        Document("v0", "e0"));
  }
  // Two reads during the write in both orders of their answers: old then new is fine.
  ExpectLinearizable(
      {
          Answered(1, 0, 100, M::Write("v1"), M::Done("e1")),
          Answered(2, 10, 20, M::Read(), M::Found("v0", "e0")),
          Answered(3, 30, 40, M::Read(), M::Found("v1", "e1")),
      },
      Document("v0", "e0"));
  // New then old, the second invoked after the first was answered, is not.
  const CheckResult result = Check(
      {
          Answered(1, 0, 100, M::Write("v1"), M::Done("e1")),
          Answered(2, 10, 20, M::Read(), M::Found("v1", "e1")),
          Answered(3, 30, 40, M::Read(), M::Found("v0", "e0")),
      },
      Document("v0", "e0"));
  EXPECT_EQ(result.verdict, Linearizability::kNotLinearizable);
  EXPECT_THAT(result.explanation, HasSubstr("#2 client 3 [30, 40] read -> \"v0\" @e0"));
  // Overlapping reads may answer in either order.
  ExpectLinearizable(
      {
          Answered(1, 0, 100, M::Write("v1"), M::Done("e1")),
          Answered(2, 10, 40, M::Read(), M::Found("v1", "e1")),
          Answered(3, 20, 30, M::Read(), M::Found("v0", "e0")),
      },
      Document("v0", "e0"));
}

TEST(Linearizability, AnInvocationAtTheInstantOfAnAnswerIsConcurrentWithIt) {
  ExpectLinearizable({
      Answered(1, 0, 10, M::Write("v1"), M::Done("e1")),
      Answered(2, 10, 20, M::Read(), M::NotFound()),
  });
  EXPECT_FALSE(Check({Answered(1, 0, 10, M::Write("v1"), M::Done("e1")),
                      Answered(2, 11, 20, M::Read(), M::NotFound())})
                   .linearizable());
}

TEST(Linearizability, LostUpdateThroughIfMatch) {
  // Both clients read version e0, then both conditional writes on e0 succeed: one of them must
  // have seen e1 or e2 instead.
  std::vector<DocumentOperation> history{
      Answered(1, 0, 10, M::Read(), M::Found("v0", "e0")),
      Answered(2, 0, 10, M::Read(), M::Found("v0", "e0")),
      Answered(1, 20, 40, M::WriteIfMatch("a", "e0"), M::Done("e1")),
      Answered(2, 25, 45, M::WriteIfMatch("b", "e0"), M::Done("e2")),
  };
  const CheckResult result = Check(history, Document("v0", "e0"));
  EXPECT_EQ(result.verdict, Linearizability::kNotLinearizable);
  EXPECT_THAT(result.explanation, HasSubstr("up to t=45 cannot be linearized"));
  EXPECT_THAT(result.explanation, HasSubstr("#3 client 2 [25, 45] write \"b\" if-match e0"));
  EXPECT_THAT(result.explanation, HasSubstr("    refused in: \"a\" @e1\n"
                                            "    elsewhere it can take effect, but no order then "
                                            "explains every answer\n"));
  EXPECT_THAT(result.explanation, HasSubstr("#2 client 1 [20, 40] write \"a\" if-match e0"));

  // The second one failing, or succeeding on the first one's version, is linearizable.
  history[3].output = M::PreconditionFailed();
  ExpectLinearizable(history, Document("v0", "e0"));
  history[3] = Answered(2, 50, 60, M::WriteIfMatch("b", "e1"), M::Done("e2"));
  ExpectLinearizable(history, Document("v0", "e0"));
  // A precondition failure that nothing explains is not.
  history[3] = Answered(2, 50, 60, M::WriteIfMatch("b", "e1"), M::PreconditionFailed());
  EXPECT_FALSE(Check(history, Document("v0", "e0")).linearizable());
  // If-Match never holds on an absent document.
  EXPECT_FALSE(Check({Answered(1, 0, 10, M::DeleteIfMatch("e0"), M::Done())}).linearizable());
  ExpectLinearizable({Answered(1, 0, 10, M::DeleteIfMatch("e0"), M::PreconditionFailed())});
}

TEST(Linearizability, TwoIfNoneMatchCreates) {
  auto creates = [](M::Output first, M::Output second) {
    return Check({
        Answered(1, 0, 30, M::WriteIfNoneMatch("a"), std::move(first)),
        Answered(2, 10, 20, M::WriteIfNoneMatch("b"), std::move(second)),
    });
  };
  EXPECT_FALSE(creates(M::Done("e1"), M::Done("e2")).linearizable());
  EXPECT_TRUE(creates(M::Done("e1"), M::PreconditionFailed()).linearizable());
  EXPECT_TRUE(creates(M::PreconditionFailed(), M::Done("e2")).linearizable());
  // Both failing: the document never existed.
  EXPECT_FALSE(creates(M::PreconditionFailed(), M::PreconditionFailed()).linearizable());
  // A create after a delete holds again.
  ExpectLinearizable({
      Answered(1, 0, 10, M::WriteIfNoneMatch("a"), M::Done("e1")),
      Answered(1, 20, 30, M::Delete(), M::Done()),
      Answered(2, 40, 50, M::WriteIfNoneMatch("b"), M::Done("e3")),
  });
}

TEST(Linearizability, PendingWritesThatDidAndDidNotTakeEffect) {
  // Took effect: a later read sees it, and the checker fixes its unknown version.
  std::vector<DocumentOperation> history{
      Pending(1, 0, M::Write("x")),
      Answered(2, 50, 60, M::Read(), M::Found("x", "e7")),
  };
  ExpectLinearizable(history);
  EXPECT_EQ(Check(history).order, (std::vector<size_t>{0, 1}));
  // Did not: a later read does not see it, and it is left out.
  history[1].output = M::NotFound();
  ExpectLinearizable(history);
  EXPECT_EQ(Check(history).order, (std::vector<size_t>{1}));
  // Late: not seen at first, then seen. But once seen it stays.
  history = {
      Pending(1, 0, M::Write("x")),
      Answered(2, 10, 20, M::Read(), M::NotFound()),
      Answered(2, 30, 40, M::Read(), M::Found("x", "e1")),
  };
  ExpectLinearizable(history);
  history.push_back(Answered(3, 50, 60, M::Read(), M::NotFound()));
  EXPECT_FALSE(Check(history).linearizable());
  // Never before its invocation.
  EXPECT_FALSE(
      Check({Answered(2, 0, 10, M::Read(), M::Found("x", "e1")), Pending(1, 20, M::Write("x"))})
          .linearizable());
  // A pending conditional write may have failed its precondition or held.
  history = {
      Answered(1, 0, 10, M::Write("a"), M::Done("e1")),
      Pending(2, 20, M::WriteIfMatch("b", "e1")),
      Answered(3, 30, 40, M::Read(), M::Found("a", "e1")),
  };
  ExpectLinearizable(history);
  history[2].output = M::Found("b", "e2");
  ExpectLinearizable(history);
  history[1] = Pending(2, 20, M::WriteIfMatch("b", "e0"));
  EXPECT_FALSE(Check(history).linearizable());
}

TEST(Linearizability, APendingWriteTakesEffectByItsDeadlineOrNever) {
  std::vector<DocumentOperation> history{
      Pending(1, 0, M::Write("x")),
      Answered(2, 10, 20, M::Read(), M::NotFound()),
      Answered(2, 30, 40, M::Read(), M::Found("x", "e1")),
  };
  history[0].deadline = 30;  // it may take effect at 30, during the second read
  ExpectLinearizable(history);
  history[0].deadline = 25;  // or between the reads
  ExpectLinearizable(history);
  history[0].deadline = 9;  // but not before the first read, which did not see it
  const CheckResult result = Check(history);
  EXPECT_EQ(result.verdict, Linearizability::kNotLinearizable);
  EXPECT_EQ(result.unexplained, (std::vector<size_t>{2}));
  // Never is always possible: a read not seeing it after its deadline.
  history[2].output = M::NotFound();
  ExpectLinearizable(history);
  EXPECT_EQ(Check(history).order, (std::vector<size_t>{1, 2}));
}

TEST(Linearizability, AnUnknownVersionIsFixedByItsFirstObservation) {
  // Two reads of a pending write's value must name one version.
  std::vector<DocumentOperation> history{
      Pending(1, 0, M::Write("x")),
      Answered(2, 10, 20, M::Read(), M::Found("x", "e5")),
      Answered(3, 30, 40, M::Read(), M::Found("x", "e5")),
  };
  ExpectLinearizable(history);
  history[2].output = M::Found("x", "e6");
  EXPECT_FALSE(Check(history).linearizable());

  // A write answered without its version: the same.
  history[0] = Answered(1, 0, 5, M::Write("x"), M::Done());
  EXPECT_FALSE(Check(history).linearizable());

  // Never another write's version.
  history = {
      Answered(1, 0, 10, M::Write("a"), M::Done("e1")),
      Pending(1, 20, M::Write("b")),
      Answered(2, 30, 40, M::Read(), M::Found("b", "e2")),
  };
  ExpectLinearizable(history);
  history[2].output = M::Found("b", "e1");
  EXPECT_FALSE(Check(history).linearizable());
  // Nor the initial document's.
  EXPECT_FALSE(
      Check({Pending(1, 0, M::Write("b")), Answered(2, 30, 40, M::Read(), M::Found("b", "e0"))},
            Document("a", "e0"))
          .linearizable());
}

TEST(Linearizability, IfMatchAgainstAnUnknownVersion) {
  // Failed: the version is not e5, so a read cannot then name e5.
  std::vector<DocumentOperation> history{
      Answered(1, 0, 10, M::Write("x"), M::Done()),
      Answered(2, 20, 30, M::WriteIfMatch("y", "e5"), M::PreconditionFailed()),
      Answered(3, 40, 50, M::Read(), M::Found("x", "e6")),
  };
  ExpectLinearizable(history);
  history[2].output = M::Found("x", "e5");
  EXPECT_FALSE(Check(history).linearizable());
  // Held: the version was e5, so a read before it cannot name another.
  history = {
      Answered(1, 0, 10, M::Write("x"), M::Done()),
      Answered(3, 12, 15, M::Read(), M::Found("x", "e5")),
      Answered(2, 20, 30, M::WriteIfMatch("y", "e5"), M::Done("e6")),
      Answered(3, 40, 50, M::Read(), M::Found("y", "e6")),
  };
  ExpectLinearizable(history);
  history[1].output = M::Found("x", "e4");
  EXPECT_FALSE(Check(history).linearizable());
}

// Two pending writes of one value lead to the same state, but are not interchangeable: each can
// take effect once. Here each If-Match delete needs one of them before it, and its version.
// (Found by AgreesWithABruteForceSearch against a memo that ignored which optional ops were
// taken.)
TEST(Linearizability, PendingWritesReachingOneStateAreNotInterchangeable) {
  ExpectLinearizable(
      {
          Pending(1, 3, M::WriteIfMatch("a", "e0")),
          Pending(2, 0, M::Write("a")),
          Answered(3, 0, 3, M::DeleteIfMatch("e1"), M::Done()),
          Answered(4, 0, 3, M::DeleteIfMatch("e2"), M::Done()),
      },
      Document("a", "e0"));
}

// Pending ops taken one after another: a delete, then a create whose unknown version the
// answered If-Match delete names. (Found by AgreesWithABruteForceSearch against a search that
// skipped a pending op whenever it could also take effect before the pending ops just taken.)
TEST(Linearizability, PendingOpsTakeEffectOneAfterAnother) {
  ExpectLinearizable(
      {
          Answered(1, 1, 8, M::DeleteIfMatch("e1"), M::Done()),
          Pending(2, 0, M::WriteIfNoneMatch("a")),
          Answered(3, 0, 0, M::Read(), M::Found("a", "e0")),
          Pending(4, 0, M::DeleteIfMatch("e0")),
      },
      Document("a", "e0"));
}

// A deadline is inclusive: the delete takes effect at 3, after the write invoked at 3. (Found by
// AgreesWithABruteForceSearch against a search that took it as exclusive.)
TEST(Linearizability, APendingOpMayTakeEffectAtItsDeadline) {
  std::vector<DocumentOperation> history{
      Answered(1, 3, 3, M::Write("a"), M::Done("e1")),
      Pending(2, 3, M::Delete()),
      Answered(3, 0, 3, M::WriteIfNoneMatch("a"), M::Done("e0")),
      Answered(4, 4, 4, M::WriteIfMatch("a", "e0"), M::Done()),
  };
  history[1].deadline = 3;
  ExpectLinearizable(history);
  EXPECT_EQ(Check(history).order, (std::vector<size_t>{0, 1, 2, 3}));
}

TEST(Linearizability, Deletes) {
  std::vector<DocumentOperation> history{
      Answered(1, 0, 10, M::Write("v1"), M::Done("e1")),
      Answered(1, 20, 30, M::DeleteIfMatch("e1"), M::Done()),
      Answered(2, 40, 50, M::Read(), M::NotFound()),
  };
  ExpectLinearizable(history);
  history[2].output = M::Found("v1", "e1");
  EXPECT_FALSE(Check(history).linearizable());
  history[1].output = M::PreconditionFailed();
  EXPECT_FALSE(Check(history).linearizable());
}

TEST(Linearizability, TheExplanationNamesTheSmallestFailingPrefix) {
  // Correct for a while, one stale read at t=75, then more correct operations.
  std::vector<DocumentOperation> history;
  for (int i = 1; i <= 20; ++i) {
    const int64_t t = i * 10;
    const std::string value = "v" + std::to_string(i);
    const std::string version = "e" + std::to_string(i);
    history.push_back(Answered(1, t, t + 4, M::Write(value), M::Done(version)));
    if (i == 7) {
      history.push_back(Answered(2, t + 5, t + 6, M::Read(), M::Found("v6", "e6")));
    } else {
      history.push_back(Answered(2, t + 5, t + 6, M::Read(), M::Found(value, version)));
    }
  }
  const CheckResult result = Check(history);
  EXPECT_EQ(result.verdict, Linearizability::kNotLinearizable);
  EXPECT_THAT(result.explanation,
              HasSubstr("the answers up to t=76 cannot be linearized; those up to t=74 can"));
  EXPECT_THAT(result.explanation, HasSubstr("#13 client 2 [75, 76] read -> \"v6\" @e6\n"
                                            "    refused in every state it could take effect "
                                            "in: \"v7\" @e7\n"));
  EXPECT_THAT(result.explanation, HasSubstr("#12 client 1 [70, 74] write \"v7\" -> ok @e7"));
  EXPECT_THAT(result.explanation, Not(HasSubstr("#20 ")));

  CheckOptions quiet;
  quiet.explain = false;
  EXPECT_EQ(Check(history, {}, quiet).explanation, "not linearizable");
}

TEST(Linearizability, AnswersUnknownBeyondItsBudget) {
  // Twelve pending writes in flight together, then a read of a value none of them wrote: to
  // refute it the search tries the read after each of the writes, some hundreds of steps.
  std::vector<DocumentOperation> history;
  for (int i = 0; i < 12; ++i) history.push_back(Pending(i, i, M::Write("w" + std::to_string(i))));
  history.push_back(Answered(99, 100, 110, M::Read(), M::Found("never", "e1")));
  CheckOptions options;
  options.max_steps = 50;
  const CheckResult result = Check(history, {}, options);
  EXPECT_EQ(result.verdict, Linearizability::kUnknown);
  EXPECT_EQ(result.steps, 50u);
  EXPECT_THAT(result.explanation, HasSubstr("no answer within 50 search steps"));
  // With the default budget it answers.
  const CheckResult full = Check(history);
  EXPECT_EQ(full.verdict, Linearizability::kNotLinearizable);
  EXPECT_GT(full.steps, 50u);
  EXPECT_EQ(full.unexplained, (std::vector<size_t>{12}));
}

// --- Another model through the same search: a counter ------------------------------------------

struct CounterModel {
  using State = int64_t;
  struct Input {
    bool read = false;
    int64_t delta = 0;  // an increment
  };
  struct Output {
    int64_t value = 0;  // a read
  };
  State Initial() const { return 0; }
  std::vector<State> Step(State state, const Input& input, const Output* output) const {
    if (!input.read) return {state + input.delta};
    if (output != nullptr && output->value != state) return {};
    return {state};
  }
  size_t Hash(State state) const { return std::hash<int64_t>{}(state); }
  std::string DescribeState(State state) const { return std::to_string(state); }
  std::string DescribeOperation(const Input& input, const Output* output) const {
    if (!input.read) return "incr " + std::to_string(input.delta);
    return "read -> " + (output ? std::to_string(output->value) : std::string("pending"));
  }
};
static_assert(SequentialModel<CounterModel>);

TEST(Linearizability, ACounterModel) {
  using C = Operation<CounterModel>;
  const CounterModel model;
  auto incr = [](int client, int64_t at, int64_t until, int64_t delta) {
    return C{client, at, until, {false, delta}, CounterModel::Output{}, std::nullopt};
  };
  auto read = [](int client, int64_t at, int64_t until, int64_t value) {
    return C{client, at, until, {true, 0}, CounterModel::Output{value}, std::nullopt};
  };
  std::vector<C> history{incr(1, 0, 50, 1), incr(2, 0, 50, 2), read(3, 10, 20, 2),
                         read(3, 60, 70, 3)};
  EXPECT_TRUE(CheckLinearizability(model, history).linearizable());
  history.push_back(read(3, 80, 90, 2));
  const CheckResult result = CheckLinearizability(model, history);
  EXPECT_EQ(result.verdict, Linearizability::kNotLinearizable);
  EXPECT_THAT(result.explanation, HasSubstr("#4 client 3 [80, 90] read -> 2\n"
                                            "    refused in every state it could take effect "
                                            "in: 3\n"));
  // A pending increment may have happened.
  history = {C{1, 0, 0, {false, 5}, std::nullopt, std::nullopt}, read(2, 10, 20, 0),
             read(2, 30, 40, 5)};
  EXPECT_TRUE(CheckLinearizability(model, history).linearizable());
}

// --- Properties --------------------------------------------------------------------------------

// One raw choice of an operation; raw integers shrink well.
struct RawOp {
  int kind;
  int before;
  int after;
  int choice;
};

inline void showValue(const RawOp& op, std::ostream& os) {
  os << "{" << op.kind << "," << op.before << "," << op.after << "," << op.choice << "}";
}

// A sequential execution of the document model: op i takes effect at t = 100 * (i + 1), invoked
// up to 250 before and answered up to 250 after, so each overlaps about five others. Versions
// are e<n>, one per write that takes effect. Some writes are left pending (they took effect, the
// client never learnt it), some answer without their version, and some pending writes never take
// effect at all. Half the pending writes have a deadline (at t or later for those that took
// effect).
std::vector<DocumentOperation> Execute(const std::vector<RawOp>& raw) {
  bool exists = false;
  std::string value;
  std::string version;
  int versions = 0;
  std::vector<DocumentOperation> history;
  for (size_t i = 0; i < raw.size(); ++i) {
    const RawOp& r = raw[i];
    const int64_t t = 100 * static_cast<int64_t>(i + 1);
    DocumentOperation op;
    op.client = r.choice % 5;
    op.invoked = t - r.before % 251;
    op.completed = t + r.after % 251;
    const int kind = r.kind % 20;
    if (kind < 7) {
      op.input = M::Read();
      if (!exists) {
        op.output = M::NotFound();
      } else {
        op.output = M::Found(value, kind == 0 ? std::nullopt : std::optional(version));
      }
      history.push_back(std::move(op));
      continue;
    }
    if (kind == 19) {
      // Pending, never took effect; sometimes with a deadline.
      history.push_back(Pending(op.client, op.invoked, M::Write("lost" + std::to_string(i))));
      if (r.choice % 2 == 0) history.back().deadline = op.invoked + r.after % 500;
      continue;
    }
    const std::string written = "v" + std::to_string(i);
    // An If-Match names the current version, or an earlier one.
    const std::string named =
        r.choice % 3 == 0 || !exists ? version : "e" + std::to_string(r.choice % (versions + 1));
    bool holds = true;
    if (kind < 11) {
      op.input = M::Write(written);
    } else if (kind < 14) {
      op.input = M::WriteIfMatch(written, named);
      holds = exists && named == version;
    } else if (kind < 16) {
      op.input = M::WriteIfNoneMatch(written);
      holds = !exists;
    } else if (kind < 17) {
      op.input = M::Delete();
    } else {
      op.input = M::DeleteIfMatch(named);
      holds = exists && named == version;
    }
    if (!holds) {
      op.output = M::PreconditionFailed();
    } else {
      exists = op.input.kind == M::Kind::kWrite;
      value = exists ? written : "";
      version = "e" + std::to_string(++versions);
      op.output = M::Done(r.choice % 4 == 0 ? std::nullopt : std::optional(version));
    }
    if (r.after % 13 == 0) {
      // Pending: it took effect at t, which a deadline, when it has one, does not precede.
      op.output.reset();
      if (r.choice % 2 == 0) op.deadline = t + r.before % 500;
    }
    history.push_back(std::move(op));
  }
  return history;
}

std::vector<DocumentOperation> RandomExecution() {
  const auto raw = *rc::gen::container<std::vector<RawOp>>(
      rc::gen::construct<RawOp>(rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000),
                                rc::gen::inRange(0, 1000), rc::gen::inRange(0, 1000)));
  return Execute(raw);
}

RC_GTEST_PROP(LinearizabilityProperty, SequentialExecutionsAreLinearizable, ()) {
  const std::vector<DocumentOperation> history = RandomExecution();
  const DocumentModel model = MakeDocumentModel(history);
  const CheckResult result = CheckLinearizability(model, history);
  RC_LOG() << result.explanation << "\n";
  RC_ASSERT(result.verdict == Linearizability::kLinearizable);
  RC_ASSERT(IsLinearization(model, history, result.order));
}

RC_GTEST_PROP(LinearizabilityProperty, AReadOfANeverWrittenValueIsNot, ()) {
  std::vector<DocumentOperation> history = RandomExecution();
  std::vector<size_t> reads;
  for (size_t i = 0; i < history.size(); ++i) {
    if (history[i].input.kind == M::Kind::kRead && !history[i].pending()) reads.push_back(i);
  }
  if (reads.empty()) {
    const int64_t end = 100 * static_cast<int64_t>(history.size() + 4);
    history.push_back(Answered(0, end, end + 10, M::Read(), M::NotFound()));
    reads.push_back(history.size() - 1);
  }
  const size_t corrupted = reads[*rc::gen::inRange<size_t>(0, reads.size())];
  // Named with no version, a version some write made, or one no write made.
  const std::optional<std::string> versions[] = {std::nullopt, "e1", "e2", "e-none"};
  history[corrupted].output = M::Found("never written", versions[*rc::gen::inRange(0, 4)]);
  const CheckResult result = CheckLinearizability(MakeDocumentModel(history), history);
  RC_LOG() << result.explanation << "\n";
  RC_ASSERT(result.verdict == Linearizability::kNotLinearizable);
  RC_ASSERT(std::ranges::find(result.unexplained, corrupted) != result.unexplained.end());
  RC_ASSERT(result.explanation.find("#" + std::to_string(corrupted) + " ") != std::string::npos);
}

// Whether the ops of `history` marked `included` can be linearized with every one marked
// `required` taking effect: every order tried, nothing remembered. The checker's memo and its
// pruning of optional ops are what this does without.
bool LinearizableByBruteForce(const DocumentModel& model,
                              const std::vector<DocumentOperation>& history,
                              const std::vector<bool>& included,
                              const std::vector<bool>& required) {
  std::vector<bool> taken(history.size(), false);
  std::function<bool(const M::State&)> extend = [&](const M::State& state) {
    bool done = true;
    for (size_t i = 0; i < history.size(); ++i) done &= !included[i] || !required[i] || taken[i];
    if (done) return true;
    for (size_t op = 0; op < history.size(); ++op) {
      if (!included[op] || taken[op]) continue;
      // It may come next unless a required op left was answered before it was invoked, or it is
      // optional and an op taken was invoked after its deadline (or answer).
      bool may = true;
      for (size_t other = 0; other < history.size(); ++other) {
        if (!included[other]) continue;
        if (!taken[other] && required[other]) {
          may &= history[other].completed >= history[op].invoked;
        }
        if (taken[other] && !required[op]) may &= history[other].invoked <= Latest(history[op]);
      }
      if (!may) continue;
      taken[op] = true;
      const auto& o = history[op];
      for (const M::State& next : model.Step(state, o.input, o.output ? &*o.output : nullptr)) {
        if (extend(next)) return true;
      }
      taken[op] = false;
    }
    return false;
  };
  return extend(model.Initial());
}

// Small histories with answers drawn at random (most of them not linearizable): the checker
// agrees with the brute force, its order is a linearization, and its smallest failing prefix is
// one (answered by the unexplained ops' answer) whose predecessor (answered by the answer before)
// is linearizable. Prefixes as Explain cuts them: ops invoked by then, answered ones required.
RC_GTEST_PROP(LinearizabilityProperty, AgreesWithABruteForceSearch, ()) {
  const std::string values[] = {"a", "b"};
  const std::string versions[] = {"e0", "e1", "e2"};
  auto version = [&] { return versions[*rc::gen::inRange(0, 3)]; };
  auto maybe_version = [&] {
    return *rc::gen::inRange(0, 3) == 0 ? std::nullopt : std::optional(version());
  };
  std::vector<DocumentOperation> history(*rc::gen::inRange<size_t>(0, 8));
  for (DocumentOperation& op : history) {
    op.client = *rc::gen::inRange(0, 3);
    op.invoked = *rc::gen::inRange(0, 20);
    op.completed = op.invoked + *rc::gen::inRange(0, 10);
    const std::string value = values[*rc::gen::inRange(0, 2)];
    switch (*rc::gen::inRange(0, 6)) {
      case 0:
        op.input = M::Read();
        break;
      case 1:
        op.input = M::Write(value);
        break;
      case 2:
        op.input = M::WriteIfMatch(value, version());
        break;
      case 3:
        op.input = M::WriteIfNoneMatch(value);
        break;
      case 4:
        op.input = M::Delete();
        break;
      default:
        op.input = M::DeleteIfMatch(version());
        break;
    }
    const int answer = *rc::gen::inRange(0, 5);
    if (answer == 0) op.deadline = op.invoked + *rc::gen::inRange(0, 12);
    if (answer < 2) continue;  // pending
    if (op.input.kind == M::Kind::kRead) {
      op.output = answer == 2 ? M::NotFound() : M::Found(value, maybe_version());
    } else {
      op.output = answer == 2 ? M::PreconditionFailed() : M::Done(maybe_version());
    }
  }
  const M::State initial = *rc::gen::inRange(0, 2) == 0 ? M::State{} : Document("a", "e0");
  const DocumentModel model = MakeDocumentModel(history, initial);

  const CheckResult result = CheckLinearizability(model, history);
  RC_LOG() << "initial " << model.DescribeState(initial) << "\n"
           << Listing(model, history) << result.explanation << "\n";
  RC_CLASSIFY(result.linearizable());
  std::vector<bool> all(history.size(), true);
  std::vector<bool> answered(history.size());
  for (size_t i = 0; i < history.size(); ++i) answered[i] = !history[i].pending();
  RC_ASSERT(result.linearizable() == LinearizableByBruteForce(model, history, all, answered));
  if (result.linearizable()) {
    RC_ASSERT(IsLinearization(model, history, result.order));
    return;
  }
  RC_ASSERT(!result.unexplained.empty());
  const int64_t end = history[result.unexplained.front()].completed;
  auto prefix_linearizable = [&](int64_t until) {
    std::vector<bool> included(history.size());
    std::vector<bool> required(history.size());
    for (size_t i = 0; i < history.size(); ++i) {
      included[i] = history[i].invoked <= until;
      required[i] = included[i] && !history[i].pending() && history[i].completed <= until;
    }
    return LinearizableByBruteForce(model, history, included, required);
  };
  RC_ASSERT(!prefix_linearizable(end));
  std::optional<int64_t> before;
  for (size_t i = 0; i < history.size(); ++i) {
    RC_ASSERT(history[i].pending() || history[i].completed != end ||
              std::ranges::find(result.unexplained, i) != result.unexplained.end());
    if (!history[i].pending() && history[i].completed < end) {
      before = std::max(before.value_or(history[i].completed), history[i].completed);
    }
  }
  if (before) RC_ASSERT(prefix_linearizable(*before));
}

}  // namespace
}  // namespace meridian::sim
