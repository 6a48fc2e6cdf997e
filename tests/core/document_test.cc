#include "core/document.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

// Readable failure messages (gtest finds PrintTo by argument-dependent lookup).
namespace meridian {
inline void PrintTo(StatusCode code, std::ostream* os) {
  *os << StatusCodeName(code);
}

namespace core {
inline void PrintTo(const Dot& dot, std::ostream* os) {
  *os << dot.ToString();
}
inline void PrintTo(const VersionVector& vv, std::ostream* os) {
  *os << vv.ToString();
}
inline void PrintTo(ConflictKind kind, std::ostream* os) {
  *os << ConflictKindName(kind);
}
}  // namespace core
}  // namespace meridian

namespace meridian::core {
namespace {

constexpr RegionId kA = 0;
constexpr RegionId kB = 1;
constexpr RegionId kC = 2;
constexpr char kKey[] = "products/lamp";

Operation Set(std::vector<FieldValue> fields) {
  Operation op;
  op.kind = OpKind::kSet;
  op.fields = std::move(fields);
  return op;
}

Operation Replace(std::vector<FieldValue> fields) {
  Operation op;
  op.kind = OpKind::kReplace;
  op.fields = std::move(fields);
  return op;
}

Operation Incr(std::vector<CounterDelta> counters) {
  Operation op;
  op.kind = OpKind::kIncrement;
  op.counters = std::move(counters);
  return op;
}

Operation Delete() {
  Operation op;
  op.kind = OpKind::kDelete;
  return op;
}

// An event of `origin`, numbered `seq`, at physical time `ms`, having seen `context` (the
// context's own-origin entry is filled in as seq - 1, as a replica would).
Event Ev(RegionId origin, uint64_t seq, uint64_t ms, VersionVector context, Operation op) {
  Event event;
  event.dot = Dot{origin, seq};
  event.hlc = MakeHlc(ms, 0);
  context.Set(origin, seq - 1);
  event.context = std::move(context);
  event.key = kKey;
  EXPECT_TRUE(NormalizeOperation(&op, Limits{}).ok());
  event.op = std::move(op);
  EXPECT_TRUE(ValidateEvent(event, Limits{}).ok());
  return event;
}

Sibling SiblingOf(const Event& event, size_t field = 0) {
  return Sibling{event.dot, event.hlc, event.op.fields.at(field).value};
}

DocumentState ApplyAll(const std::vector<Event>& events,
                       std::vector<Conflict>* conflicts = nullptr) {
  DocumentState state;
  for (const Event& event : events) state.Apply(event, conflicts);
  return state;
}

// Every delivery order a replica may use: any interleaving that keeps each origin's events in
// seq order.
std::vector<std::vector<Event>> DeliveryOrders(const std::vector<Event>& events) {
  std::vector<size_t> order(events.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::vector<Event>> orders;
  do {
    std::vector<Event> sequence;
    bool per_origin_in_order = true;
    for (size_t i : order) {
      for (const Event& earlier : sequence) {
        if (earlier.dot.origin == events[i].dot.origin && earlier.dot.seq > events[i].dot.seq) {
          per_origin_in_order = false;
        }
      }
      sequence.push_back(events[i]);
    }
    if (per_origin_in_order) orders.push_back(std::move(sequence));
  } while (std::next_permutation(order.begin(), order.end()));
  return orders;
}

// Applies `events` in every delivery order, expects identical states, and returns that state.
DocumentState ConvergedState(const std::vector<Event>& events) {
  const std::vector<std::vector<Event>> orders = DeliveryOrders(events);
  EXPECT_FALSE(orders.empty());
  const DocumentState reference = ApplyAll(orders.front());
  for (const std::vector<Event>& order : orders) {
    const DocumentState state = ApplyAll(order);
    std::string dots;
    for (const Event& event : order) dots += event.dot.ToString() + " ";
    EXPECT_EQ(state.Render(), reference.Render()) << "order " << dots;
    EXPECT_EQ(state.Encode(), reference.Encode()) << "order " << dots;
  }
  return reference;
}

// --- Basics ------------------------------------------------------------------------------------

TEST(DocumentStateTest, AnAbsentDocumentRendersNothing) {
  const DocumentState state;
  EXPECT_FALSE(state.exists());
  EXPECT_TRUE(state.empty());
  EXPECT_EQ(state.Render(), std::nullopt);
  EXPECT_EQ(state.RenderField("x"), std::nullopt);
  EXPECT_FALSE(state.FieldIsNonNumeric("x"));
  EXPECT_EQ(state.MetadataEntries(), 0u);
}

TEST(DocumentStateTest, SetRendersCanonicalJsonWithSortedFieldNames) {
  const DocumentState state =
      ApplyAll({Ev(kA, 1, 100, {}, Set({{"b", "2"}, {"a", "\"x\""}, {"c", R"({"k":[1]})"}}))});
  EXPECT_TRUE(state.exists());
  EXPECT_FALSE(state.empty());
  EXPECT_EQ(state.Render(), R"({"a":"x","b":2,"c":{"k":[1]}})");
  EXPECT_EQ(state.RenderField("a"), "\"x\"");
  EXPECT_EQ(state.RenderField("missing"), std::nullopt);
}

TEST(DocumentStateTest, RenderEscapesFieldNames) {
  const DocumentState state = ApplyAll({Ev(kA, 1, 100, {}, Set({{"say \"hi\"", "1"}}))});
  EXPECT_EQ(state.Render(), R"({"say \"hi\"":1})");
}

TEST(DocumentStateTest, ReplaceWithNoFieldsRendersAnEmptyObject) {
  const DocumentState state = ApplyAll({Ev(kA, 1, 100, {}, Replace({}))});
  EXPECT_TRUE(state.exists());
  EXPECT_EQ(state.Render(), "{}");
}

TEST(DocumentStateTest, ConflictKindNames) {
  EXPECT_EQ(ConflictKindName(ConflictKind::kConcurrentSet), "concurrent_set");
  EXPECT_EQ(ConflictKindName(ConflictKind::kNonNumericIncrement), "non_numeric_increment");
}

// --- Set ---------------------------------------------------------------------------------------

TEST(DocumentSetTest, ASetOverwritesWhatItHasSeenAndKeepsOtherFields) {
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Set({{"x", "1"}, {"y", "1"}})),
      Ev(kA, 2, 200, {}, Set({{"x", "2"}})),
  });
  EXPECT_EQ(state.Render(), R"({"x":2,"y":1})");
}

TEST(DocumentSetTest, ACausallyLaterSetWinsEvenWithAnOlderTimestamp) {
  std::vector<Conflict> conflicts;
  const Event first = Ev(kA, 1, 500, {}, Set({{"x", "1"}}));
  const Event later = Ev(kB, 1, 100, {{kA, 1}}, Set({{"x", "2"}}));  // B's clock is behind
  const DocumentState state = ApplyAll({first, later}, &conflicts);
  EXPECT_EQ(state.Render(), R"({"x":2})");
  EXPECT_TRUE(conflicts.empty());
  ASSERT_EQ(state.fields().size(), 1u);
  EXPECT_EQ(state.fields()[0].second.siblings, std::vector<Sibling>{SiblingOf(later)});
  EXPECT_EQ(ConvergedState({first, later}).Render(), R"({"x":2})");
}

TEST(DocumentSetTest, ConcurrentSetsKeepTheGreaterTimestampAndReportAConflict) {
  const Event a = Ev(kA, 1, 100, {}, Set({{"x", "\"a\""}}));
  const Event b = Ev(kB, 1, 200, {}, Set({{"x", "\"b\""}}));
  for (const bool b_first : {false, true}) {
    SCOPED_TRACE(b_first ? "b first" : "a first");
    std::vector<Conflict> conflicts;
    const DocumentState state =
        ApplyAll(b_first ? std::vector{b, a} : std::vector{a, b}, &conflicts);
    EXPECT_EQ(state.Render(), R"({"x":"b"})");
    ASSERT_EQ(conflicts.size(), 1u);
    const Conflict& conflict = conflicts[0];
    EXPECT_EQ(conflict.kind, ConflictKind::kConcurrentSet);
    EXPECT_EQ(conflict.key, kKey);
    EXPECT_EQ(conflict.field, "x");
    EXPECT_EQ(conflict.winner, SiblingOf(b));
    EXPECT_EQ(conflict.losers, std::vector<Sibling>{SiblingOf(a)});
    EXPECT_TRUE(conflict.increments.empty());
    EXPECT_EQ(conflict.cause, b_first ? a.dot : b.dot);
  }
  EXPECT_EQ(ConvergedState({a, b}).Render(), R"({"x":"b"})");
}

TEST(DocumentSetTest, TimestampTiesAreBrokenByOriginId) {
  const Event a = Ev(kA, 1, 100, {}, Set({{"x", "\"a\""}}));
  const Event b = Ev(kB, 1, 100, {}, Set({{"x", "\"b\""}}));
  EXPECT_TRUE(WinsOver(SiblingOf(b), SiblingOf(a)));
  EXPECT_FALSE(WinsOver(SiblingOf(a), SiblingOf(b)));
  std::vector<Conflict> conflicts;
  const DocumentState state = ApplyAll({b, a}, &conflicts);
  EXPECT_EQ(state.Render(), R"({"x":"b"})");
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0].winner, SiblingOf(b));
  EXPECT_EQ(conflicts[0].losers, std::vector<Sibling>{SiblingOf(a)});
  EXPECT_EQ(ConvergedState({a, b}).Render(), R"({"x":"b"})");
}

TEST(DocumentSetTest, ThreeConcurrentSetsListTwoLosers) {
  const Event a = Ev(kA, 1, 300, {}, Set({{"x", "1"}}));
  const Event b = Ev(kB, 1, 200, {}, Set({{"x", "2"}}));
  const Event c = Ev(kC, 1, 100, {}, Set({{"x", "3"}}));
  std::vector<Conflict> conflicts;
  const DocumentState state = ApplyAll({b, c, a}, &conflicts);
  EXPECT_EQ(state.Render(), R"({"x":1})");
  ASSERT_FALSE(conflicts.empty());
  const Conflict& last = conflicts.back();
  EXPECT_EQ(last.winner, SiblingOf(a));
  EXPECT_EQ(last.losers, (std::vector<Sibling>{SiblingOf(b), SiblingOf(c)}));
  EXPECT_EQ(ConvergedState({a, b, c}).Render(), R"({"x":1})");
}

TEST(DocumentSetTest, ASetThatSawBothSiblingsResolvesTheConflict) {
  const Event a = Ev(kA, 1, 100, {}, Set({{"x", "1"}}));
  const Event b = Ev(kB, 1, 200, {}, Set({{"x", "2"}}));
  const Event resolve = Ev(kC, 1, 50, {{kA, 1}, {kB, 1}}, Set({{"x", "3"}}));
  std::vector<Conflict> conflicts;
  DocumentState state = ApplyAll({a, b}, &conflicts);
  ASSERT_EQ(conflicts.size(), 1u);
  conflicts.clear();
  state.Apply(resolve, &conflicts);
  EXPECT_TRUE(conflicts.empty());
  EXPECT_EQ(state.Render(), R"({"x":3})");
  EXPECT_EQ(state.fields()[0].second.siblings, std::vector<Sibling>{SiblingOf(resolve)});
  EXPECT_EQ(ConvergedState({a, b, resolve}).Render(), R"({"x":3})");
}

TEST(DocumentSetTest, ConcurrentSetsOfDifferentFieldsDoNotConflict) {
  std::vector<Conflict> conflicts;
  const DocumentState state = ApplyAll(
      {Ev(kA, 1, 100, {}, Set({{"x", "1"}})), Ev(kB, 1, 100, {}, Set({{"y", "2"}}))}, &conflicts);
  EXPECT_EQ(state.Render(), R"({"x":1,"y":2})");
  EXPECT_TRUE(conflicts.empty());
}

TEST(DocumentSetTest, NoConflictsAreCollectedWithoutASink) {
  DocumentState state;
  state.Apply(Ev(kA, 1, 100, {}, Set({{"x", "1"}})), nullptr);
  state.Apply(Ev(kB, 1, 200, {}, Set({{"x", "2"}})), nullptr);
  EXPECT_EQ(state.Render(), R"({"x":2})");
}

// --- Increment ---------------------------------------------------------------------------------

TEST(DocumentIncrementTest, IncrementsWithNoSiblingSumFromZero) {
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Incr({{"n", 5}})),
      Ev(kB, 1, 100, {}, Incr({{"n", -2}})),
      Ev(kA, 2, 101, {}, Incr({{"n", 10}, {"m", -1}})),
  });
  EXPECT_EQ(state.Render(), R"({"m":-1,"n":13})");
  EXPECT_EQ(state.RenderField("n"), "13");
  EXPECT_FALSE(state.FieldIsNonNumeric("n"));
}

TEST(DocumentIncrementTest, ConcurrentIncrementsAllCount) {
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Set({{"stock", "10"}})),
      Ev(kB, 1, 200, {{kA, 1}}, Incr({{"stock", -1}})),
      Ev(kC, 1, 200, {{kA, 1}}, Incr({{"stock", -2}})),
      Ev(kA, 2, 200, {}, Incr({{"stock", -3}})),
  });
  EXPECT_EQ(state.Render(), R"({"stock":4})");
}

TEST(DocumentIncrementTest, RestockConcurrentWithASaleKeepsTheSale) {
  // "restock to 100" || "sold 1" -> 99.
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Set({{"stock", "10"}})),
      Ev(kA, 2, 200, {}, Set({{"stock", "100"}})),
      Ev(kB, 1, 300, {{kA, 1}}, Incr({{"stock", -1}})),
  });
  EXPECT_EQ(state.Render(), R"({"stock":99})");
}

TEST(DocumentIncrementTest, ASetRemovesTheIncrementsItHasSeen) {
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Set({{"stock", "10"}})),
      Ev(kB, 1, 150, {{kA, 1}}, Incr({{"stock", -1}})),
      Ev(kA, 2, 200, {{kB, 1}}, Set({{"stock", "100"}})),
  });
  EXPECT_EQ(state.Render(), R"({"stock":100})");
  ASSERT_EQ(state.fields().size(), 1u);
  EXPECT_TRUE(state.fields()[0].second.increments.empty());
}

TEST(DocumentIncrementTest, AnIncrementDoesNotRemoveTheValueItSaw) {
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Set({{"n", "10"}})),
      Ev(kA, 2, 200, {}, Incr({{"n", 5}})),
  });
  EXPECT_EQ(state.Render(), R"({"n":15})");
}

TEST(DocumentIncrementTest, IntegerArithmeticIsExactOverTheInt64AndUint64Range) {
  EXPECT_EQ(ApplyAll({Ev(kA, 1, 100, {}, Set({{"n", "-5"}})), Ev(kA, 2, 200, {}, Incr({{"n", 3}}))})
                .Render(),
            R"({"n":-2})");
  // Past int64: still exact, as canonical JSON keeps uint64 integers exact.
  EXPECT_EQ(ApplyAll({Ev(kA, 1, 100, {}, Set({{"n", "9223372036854775807"}})),
                      Ev(kA, 2, 200, {}, Incr({{"n", 1}}))})
                .Render(),
            R"({"n":9223372036854775808})");
  EXPECT_EQ(ApplyAll({Ev(kA, 1, 100, {}, Set({{"n", "18446744073709551615"}})),
                      Ev(kA, 2, 200, {}, Incr({{"n", -1}}))})
                .Render(),
            R"({"n":18446744073709551614})");
  EXPECT_EQ(ApplyAll({Ev(kA, 1, 100, {}, Incr({{"n", std::numeric_limits<int64_t>::max()}})),
                      Ev(kB, 1, 100, {}, Incr({{"n", std::numeric_limits<int64_t>::max()}}))})
                .Render(),
            R"({"n":18446744073709551614})");
}

// Render is canonical JSON: a sum beyond what a canonical JSON integer holds renders as the
// canonical form of that number.
TEST(DocumentIncrementTest, SumsBeyondTheIntegerRangeRenderCanonically) {
  const DocumentState above = ApplyAll({Ev(kA, 1, 100, {}, Set({{"n", "18446744073709551615"}})),
                                        Ev(kA, 2, 200, {}, Incr({{"n", 1}}))});
  auto expected_above = CanonicalJson("18446744073709551616");
  ASSERT_TRUE(expected_above.ok());
  EXPECT_EQ(above.RenderField("n"), *expected_above);
  const DocumentState below =
      ApplyAll({Ev(kA, 1, 100, {}, Incr({{"n", std::numeric_limits<int64_t>::min()}})),
                Ev(kB, 1, 100, {}, Incr({{"n", -1}}))});
  auto expected_below = CanonicalJson("-9223372036854775809");
  ASSERT_TRUE(expected_below.ok());
  EXPECT_EQ(below.RenderField("n"), *expected_below);
  // Whatever the sum, Render stays canonical.
  for (const DocumentState* state : {&above, &below}) {
    auto rendered = state->Render();
    ASSERT_TRUE(rendered.has_value());
    auto canonical = CanonicalJson(*rendered);
    ASSERT_TRUE(canonical.ok());
    EXPECT_EQ(*canonical, *rendered);
  }
}

TEST(DocumentIncrementTest, FloatValuesPlusIncrementsStayFloats) {
  EXPECT_EQ(ApplyAll({Ev(kA, 1, 100, {}, Set({{"price", "1.5"}})),
                      Ev(kB, 1, 100, {{kA, 1}}, Incr({{"price", 2}}))})
                .RenderField("price"),
            "3.5");
  EXPECT_EQ(ApplyAll({Ev(kA, 1, 100, {}, Set({{"price", "2.0"}})),
                      Ev(kB, 1, 100, {{kA, 1}}, Incr({{"price", 1}}))})
                .RenderField("price"),
            "3.0");
  EXPECT_EQ(ApplyAll({Ev(kA, 1, 100, {}, Set({{"price", "-0.25"}})),
                      Ev(kB, 1, 100, {{kA, 1}}, Incr({{"price", -1}}))})
                .RenderField("price"),
            "-1.25");
}

TEST(DocumentIncrementTest, ANonNumericValueWithIncrementsRendersTheValueAndReportsAConflict) {
  const Event set = Ev(kA, 1, 100, {}, Set({{"x", "\"hi\""}}));
  const Event increment = Ev(kB, 1, 100, {}, Incr({{"x", 1}}));
  for (const bool increment_first : {false, true}) {
    SCOPED_TRACE(increment_first ? "increment first" : "set first");
    std::vector<Conflict> conflicts;
    const DocumentState state = ApplyAll(
        increment_first ? std::vector{increment, set} : std::vector{set, increment}, &conflicts);
    EXPECT_EQ(state.Render(), R"({"x":"hi"})");
    EXPECT_TRUE(state.FieldIsNonNumeric("x"));
    ASSERT_EQ(conflicts.size(), 1u);
    const Conflict& conflict = conflicts[0];
    EXPECT_EQ(conflict.kind, ConflictKind::kNonNumericIncrement);
    EXPECT_EQ(conflict.key, kKey);
    EXPECT_EQ(conflict.field, "x");
    EXPECT_EQ(conflict.winner, SiblingOf(set));
    EXPECT_TRUE(conflict.losers.empty());
    EXPECT_EQ(conflict.increments, (std::vector<Increment>{Increment{increment.dot, 1}}));
    EXPECT_EQ(conflict.cause, increment_first ? set.dot : increment.dot);
  }
}

TEST(DocumentIncrementTest, EveryNonNumericKindRendersAsIs) {
  for (const char* value : {"true", "null", "[1,2]", R"({"a":1})", "\"12\""}) {
    std::vector<Conflict> conflicts;
    const DocumentState state =
        ApplyAll({Ev(kA, 1, 100, {}, Set({{"x", value}})), Ev(kB, 1, 100, {}, Incr({{"x", 1}}))},
                 &conflicts);
    EXPECT_EQ(state.RenderField("x"), value);
    EXPECT_TRUE(state.FieldIsNonNumeric("x")) << value;
    ASSERT_EQ(conflicts.size(), 1u) << value;
    EXPECT_EQ(conflicts[0].kind, ConflictKind::kNonNumericIncrement);
  }
}

// --- Delete ------------------------------------------------------------------------------------

TEST(DocumentDeleteTest, ADeleteThatSawEverythingRemovesTheDocument) {
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Set({{"x", "1"}})),
      Ev(kA, 2, 110, {}, Incr({{"n", 1}})),
      Ev(kB, 1, 200, {{kA, 2}}, Delete()),
  });
  EXPECT_FALSE(state.exists());
  EXPECT_EQ(state.Render(), std::nullopt);
  EXPECT_EQ(state.RenderField("x"), std::nullopt);
}

TEST(DocumentDeleteTest, ADeleteConcurrentWithASetKeepsTheSet) {
  // Add-wins: y=2 was written without seeing the delete; x, which the delete saw, is gone.
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Set({{"x", "1"}, {"y", "1"}})),
      Ev(kB, 1, 300, {{kA, 1}}, Delete()),
      Ev(kA, 2, 200, {}, Set({{"y", "2"}})),
  });
  EXPECT_TRUE(state.exists());
  EXPECT_EQ(state.Render(), R"({"y":2})");
}

TEST(DocumentDeleteTest, ADeleteConcurrentWithAnIncrementKeepsOnlyTheIncrement) {
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Set({{"n", "5"}, {"label", "\"a\""}})),
      Ev(kB, 1, 200, {{kA, 1}}, Delete()),
      Ev(kC, 1, 200, {{kA, 1}}, Incr({{"n", 2}})),
  });
  EXPECT_EQ(state.Render(), R"({"n":2})");
}

TEST(DocumentDeleteTest, ALateEventTheDeleteAlreadyCoveredIsNotResurrected) {
  const Event set = Ev(kA, 1, 100, {}, Set({{"x", "1"}}));
  const Event increment = Ev(kA, 2, 110, {}, Incr({{"n", 1}}));
  const Event del = Ev(kB, 1, 200, {{kA, 2}}, Delete());
  DocumentState state;
  state.Apply(del, nullptr);
  state.Apply(set, nullptr);
  state.Apply(increment, nullptr);
  EXPECT_FALSE(state.exists());
  EXPECT_EQ(state.Render(), std::nullopt);
  EXPECT_TRUE(state.fields().empty());
  EXPECT_EQ(state, ApplyAll({set, increment, del}));
}

TEST(DocumentDeleteTest, ALateSetAlreadyOverwrittenIsNotResurrected) {
  const Event old = Ev(kA, 1, 900, {}, Set({{"x", "1"}}));
  const Event overwrite = Ev(kB, 1, 100, {{kA, 1}}, Set({{"x", "2"}}));
  DocumentState state;
  state.Apply(overwrite, nullptr);
  std::vector<Conflict> conflicts;
  state.Apply(old, &conflicts);
  EXPECT_EQ(state.Render(), R"({"x":2})");
  EXPECT_TRUE(conflicts.empty());
  EXPECT_EQ(state, ApplyAll({old, overwrite}));
}

TEST(DocumentDeleteTest, WritesAfterADeleteRecreateTheDocument) {
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Set({{"x", "1"}})),
      Ev(kA, 2, 200, {}, Delete()),
      Ev(kA, 3, 300, {}, Set({{"z", "1"}})),
  });
  EXPECT_EQ(state.Render(), R"({"z":1})");
}

TEST(DocumentDeleteTest, ADeleteOfNothingLeavesNoDocument) {
  const DocumentState state = ApplyAll({Ev(kA, 1, 100, {}, Delete())});
  EXPECT_FALSE(state.exists());
  EXPECT_EQ(state.Render(), std::nullopt);
}

// --- Replace -----------------------------------------------------------------------------------

TEST(DocumentReplaceTest, ReplaceRemovesSeenFieldsAndKeepsConcurrentOnes) {
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Set({{"a", "1"}, {"b", "1"}})),
      Ev(kB, 1, 100, {}, Set({{"c", "1"}})),
      Ev(kA, 2, 200, {}, Replace({{"a", "2"}, {"d", "1"}})),
  });
  EXPECT_EQ(state.Render(), R"({"a":2,"c":1,"d":1})");
}

TEST(DocumentReplaceTest, ReplaceRemovesSeenIncrementsAndKeepsConcurrentOnes) {
  const DocumentState state = ConvergedState({
      Ev(kA, 1, 100, {}, Set({{"n", "10"}})),
      Ev(kB, 1, 110, {{kA, 1}}, Incr({{"n", 1}})),
      Ev(kC, 1, 120, {{kA, 1}}, Incr({{"n", 5}})),
      Ev(kA, 2, 200, {{kB, 1}}, Replace({{"n", "0"}})),
  });
  EXPECT_EQ(state.Render(), R"({"n":5})");
}

TEST(DocumentReplaceTest, ConcurrentReplacesKeepTheFieldsNeitherSaw) {
  const Event a = Ev(kA, 1, 100, {}, Set({{"x", "1"}}));
  const Event b_replace = Ev(kB, 1, 200, {{kA, 1}}, Replace({{"y", "2"}}));
  const Event c_replace = Ev(kC, 1, 300, {{kA, 1}}, Replace({{"y", "3"}, {"z", "3"}}));
  std::vector<Conflict> conflicts;
  ApplyAll({a, b_replace, c_replace}, &conflicts);
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0].field, "y");
  EXPECT_EQ(ConvergedState({a, b_replace, c_replace}).Render(), R"({"y":3,"z":3})");
}

// --- Idempotence -------------------------------------------------------------------------------

TEST(DocumentStateTest, ApplyingAnEventTwiceChangesNothing) {
  const std::vector<Event> events = {
      Ev(kA, 1, 100, {}, Set({{"x", "1"}, {"s", "\"v\""}})),
      Ev(kB, 1, 200, {}, Set({{"x", "2"}})),
      Ev(kB, 2, 210, {}, Incr({{"n", 3}, {"s", 1}})),
      Ev(kC, 1, 300, {{kA, 1}}, Replace({{"r", "1"}})),
      Ev(kA, 2, 400, {{kB, 2}}, Delete()),
  };
  DocumentState state;
  for (const Event& event : events) {
    state.Apply(event, nullptr);
    const DocumentState once = state;
    std::vector<Conflict> conflicts;
    state.Apply(event, &conflicts);
    EXPECT_EQ(state, once) << "after re-applying " << event.dot.ToString();
    EXPECT_TRUE(conflicts.empty()) << "after re-applying " << event.dot.ToString();
  }
  // And re-applying everything at the end changes nothing either.
  const DocumentState before = state;
  for (const Event& event : events) state.Apply(event, nullptr);
  EXPECT_EQ(state, before);
}

// --- Fold --------------------------------------------------------------------------------------

TEST(DocumentFoldTest, FoldKeepsRenderAndShrinksMetadata) {
  const std::vector<Event> events = {
      Ev(kA, 1, 100, {}, Set({{"x", "1"}})), Ev(kB, 1, 200, {}, Set({{"x", "2"}})),
      Ev(kA, 2, 110, {}, Incr({{"n", 1}})),  Ev(kA, 3, 120, {}, Incr({{"n", 2}})),
      Ev(kB, 2, 210, {}, Incr({{"n", 3}})),
  };
  DocumentState state = ApplyAll(events);
  const std::optional<std::string> rendered = state.Render();
  EXPECT_EQ(rendered, R"({"n":6,"x":2})");
  const size_t before = state.MetadataEntries();
  EXPECT_EQ(before, 7u);  // presence 2, siblings 2, increments 3
  state.Fold(VersionVector{{kA, 3}, {kB, 2}});
  EXPECT_EQ(state.Render(), rendered);
  EXPECT_EQ(state.MetadataEntries(), 5u);  // presence 2, one sibling, increments A (folded) + B
  // Folding again with the same vector changes nothing.
  const DocumentState folded = state;
  state.Fold(VersionVector{{kA, 3}, {kB, 2}});
  EXPECT_EQ(state, folded);
}

TEST(DocumentFoldTest, FoldOnlyTouchesWhatIsStable) {
  DocumentState state = ApplyAll({
      Ev(kA, 1, 100, {}, Set({{"x", "1"}})),
      Ev(kB, 1, 50, {}, Set({{"x", "2"}})),
      Ev(kC, 1, 500, {}, Set({{"x", "3"}})),
  });
  const std::optional<std::string> rendered = state.Render();
  EXPECT_EQ(rendered, R"({"x":3})");
  state.Fold(VersionVector{{kA, 1}, {kB, 1}});  // C1 is not stable
  EXPECT_EQ(state.Render(), rendered);
  ASSERT_EQ(state.fields().size(), 1u);
  const std::vector<Sibling>& siblings = state.fields()[0].second.siblings;
  ASSERT_EQ(siblings.size(), 2u);
  EXPECT_EQ(siblings[0].dot, (Dot{kA, 1}));  // the stable winner
  EXPECT_EQ(siblings[1].dot, (Dot{kC, 1}));
}

TEST(DocumentFoldTest, FoldForgetsStableRemovedEntries) {
  DocumentState state = ApplyAll({
      Ev(kA, 1, 100, {}, Set({{"x", "1"}})),
      Ev(kA, 2, 200, {}, Set({{"x", "2"}})),
  });
  EXPECT_EQ(state.MetadataEntries(), 3u);  // presence, sibling A2, x.removed {A:1}
  state.Fold(VersionVector{{kA, 2}});
  EXPECT_EQ(state.Render(), R"({"x":2})");
  EXPECT_EQ(state.MetadataEntries(), 2u);
  EXPECT_TRUE(state.fields()[0].second.removed.empty());
}

TEST(DocumentFoldTest, ADeletedAndFoldedDocumentBecomesEmpty) {
  DocumentState state = ApplyAll({
      Ev(kA, 1, 100, {}, Set({{"x", "1"}})),
      Ev(kA, 2, 200, {}, Set({{"x", "2"}, {"y", "1"}})),
      Ev(kA, 3, 250, {}, Incr({{"n", 4}})),
      Ev(kB, 1, 300, {{kA, 3}}, Delete()),
  });
  EXPECT_FALSE(state.exists());
  EXPECT_FALSE(state.empty());  // the removed vectors are still needed until stable
  state.Fold(VersionVector{{kA, 3}, {kB, 1}});
  EXPECT_TRUE(state.empty());
  EXPECT_EQ(state.MetadataEntries(), 0u);
  EXPECT_EQ(state.Render(), std::nullopt);
}

TEST(DocumentFoldTest, FoldedStateMergesLaterEventsLikeTheUnfoldedOne) {
  const std::vector<Event> history = {
      Ev(kA, 1, 100, {}, Set({{"x", "1"}, {"n", "10"}})),
      Ev(kB, 1, 200, {}, Set({{"x", "2"}})),
      Ev(kB, 2, 210, {}, Incr({{"n", -1}})),
      Ev(kA, 2, 220, {}, Incr({{"n", -2}})),
  };
  const VersionVector stable{{kA, 2}, {kB, 2}};
  const std::vector<Event> later = {
      Ev(kC, 1, 300, stable, Incr({{"n", 5}})),
      Ev(kA, 3, 310, {{kB, 2}}, Set({{"y", "true"}})),
      Ev(kB, 3, 320, {{kA, 2}}, Set({{"x", "3"}})),
      Ev(kC, 2, 330, stable, Delete()),
  };
  DocumentState unfolded = ApplyAll(history);
  DocumentState folded = unfolded;
  folded.Fold(stable);
  EXPECT_EQ(folded.Render(), unfolded.Render());
  EXPECT_LT(folded.MetadataEntries(), unfolded.MetadataEntries());
  for (const Event& event : later) {
    unfolded.Apply(event, nullptr);
    folded.Apply(event, nullptr);
    EXPECT_EQ(folded.Render(), unfolded.Render()) << "after " << event.dot.ToString();
  }
  EXPECT_EQ(folded.Render(), R"({"x":3,"y":true})");
}

// --- Encode / Decode / Digest ------------------------------------------------------------------

std::vector<Event> RichHistory() {
  return {
      Ev(kA, 1, 100, {}, Set({{"x", "1"}, {"name", "\"l\xC3\xA4mp\""}})),
      Ev(kB, 1, 200, {}, Set({{"x", "2"}})),
      Ev(kB, 2, 210, {}, Incr({{"n", -7}, {"m", std::numeric_limits<int64_t>::min()}})),
      Ev(kC, 1, 300, {{kA, 1}}, Replace({{"r", "[1,{\"a\":null}]"}})),
      Ev(kA, 2, 400, {}, Set({{"name", "\"lamp\""}})),
      Ev(kA, 3, 410, {{kB, 1}}, Incr({{"n", 3}})),
  };
}

TEST(DocumentStateTest, RenderIsAlwaysCanonicalJson) {
  const std::vector<Event> events = RichHistory();
  DocumentState state;
  for (const Event& event : events) {
    state.Apply(event, nullptr);
    const std::optional<std::string> rendered = state.Render();
    ASSERT_TRUE(rendered.has_value());
    auto canonical = CanonicalJson(*rendered);
    ASSERT_TRUE(canonical.ok()) << *rendered;
    EXPECT_EQ(*canonical, *rendered);
  }
}

TEST(DocumentEncodingTest, EncodeDecodeRoundTrips) {
  const std::vector<Event> events = RichHistory();
  DocumentState state;
  for (size_t i = 0; i <= events.size(); ++i) {
    if (i > 0) state.Apply(events[i - 1], nullptr);
    auto decoded = DocumentState::Decode(state.Encode());
    ASSERT_TRUE(decoded.ok()) << "after " << i << " events: " << decoded.status().ToString();
    EXPECT_EQ(*decoded, state);
    EXPECT_EQ(decoded->Encode(), state.Encode());
    EXPECT_EQ(decoded->Digest(), state.Digest());
    EXPECT_EQ(decoded->Render(), state.Render());
  }
}

TEST(DocumentEncodingTest, EqualStatesHaveEqualBytesAndDigests) {
  const std::vector<Event> events = RichHistory();
  DocumentState forward = ApplyAll(events);
  DocumentState backward;
  // Another delivery order that keeps each origin in seq order.
  for (const size_t i : {3, 1, 2, 0, 4, 5}) backward.Apply(events[i], nullptr);
  EXPECT_EQ(forward, backward);
  EXPECT_EQ(forward.Encode(), backward.Encode());
  EXPECT_EQ(forward.Digest(), backward.Digest());
}

TEST(DocumentEncodingTest, DifferentStatesHaveDifferentDigests) {
  const DocumentState one = ApplyAll({Ev(kA, 1, 100, {}, Set({{"x", "1"}}))});
  const DocumentState two = ApplyAll({Ev(kA, 1, 100, {}, Set({{"x", "2"}}))});
  const DocumentState later = ApplyAll({Ev(kA, 1, 101, {}, Set({{"x", "1"}}))});
  EXPECT_NE(one.Digest(), two.Digest());
  EXPECT_NE(one.Digest(), later.Digest());
  EXPECT_NE(one.Digest(), DocumentState().Digest());
}

TEST(DocumentEncodingTest, DecodeRejectsGarbage) {
  for (const std::string& bytes :
       {std::string(), std::string(1, '\0'), std::string("\x02\x00\x00\x00", 4),
        std::string("\x01"), std::string("\x01\x00", 2), std::string("\x01\x00\x00", 3),
        std::string("\x01\x00\x00\x05", 4), std::string("garbage, not a document"),
        std::string("\x01\x00\x00\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x01", 13)}) {
    auto decoded = DocumentState::Decode(bytes);
    EXPECT_FALSE(decoded.ok()) << testing::PrintToString(bytes);
    EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption) << testing::PrintToString(bytes);
  }
}

TEST(DocumentEncodingTest, DecodeRejectsEveryTruncationAndTrailingBytes) {
  const std::string bytes = ApplyAll(RichHistory()).Encode();
  for (size_t length = 0; length < bytes.size(); ++length) {
    EXPECT_FALSE(DocumentState::Decode(std::string_view(bytes).substr(0, length)).ok())
        << "prefix of " << length << " of " << bytes.size() << " bytes";
  }
  EXPECT_FALSE(DocumentState::Decode(bytes + '\0').ok());
}

TEST(DocumentEncodingTest, DecodeRejectsUnsortedFieldsAndSiblings) {
  // Format version, empty presence, empty removed, then fields.
  const std::string header("\x01\x00\x00", 3);
  // name, empty removed, one sibling (origin, seq, hlc, value), no increments.
  const auto field = [](char name, char origin, char seq) {
    return std::string{1, name, 0, 1, origin, seq, 5, 1, '1', 0};
  };
  EXPECT_TRUE(DocumentState::Decode(header + '\x02' + field('a', 0, 1) + field('b', 0, 2)).ok());
  EXPECT_FALSE(DocumentState::Decode(header + '\x02' + field('b', 0, 1) + field('a', 0, 2)).ok());
  EXPECT_FALSE(DocumentState::Decode(header + '\x02' + field('a', 0, 1) + field('a', 0, 2)).ok());
  // Two siblings out of dot order, and a sibling of region 40.
  const std::string two_siblings =
      header + std::string{1, 1, 'a', 0, 2, 1, 2, 5, 1, '1', 0, 1, 5, 1, '2', 0};
  EXPECT_FALSE(DocumentState::Decode(two_siblings).ok());
  EXPECT_FALSE(DocumentState::Decode(header + '\x01' + field('a', 40, 1)).ok());
  EXPECT_FALSE(DocumentState::Decode(header + '\x01' + field('a', 0, 0)).ok());
  // Field names are 1.. bytes of UTF-8.
  EXPECT_FALSE(DocumentState::Decode(header + '\x01' + field('\xFF', 0, 1)).ok());
  std::string empty_name = header + '\x01' + field('a', 0, 1);
  empty_name.erase(header.size() + 1, 2);  // the name's length 1 and its byte become length 0
  empty_name.insert(header.size() + 1, 1, '\0');
  EXPECT_FALSE(DocumentState::Decode(empty_name).ok());
}

TEST(DocumentEncodingTest, DecodeSurvivesCorruptedBytes) {
  const std::string bytes = ApplyAll(RichHistory()).Encode();
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (const int mask : {0x01, 0x40, 0x80, 0xFF}) {
      std::string corrupted = bytes;
      corrupted[i] = static_cast<char>(corrupted[i] ^ mask);
      auto decoded = DocumentState::Decode(corrupted);
      if (!decoded.ok()) {
        EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption);
        continue;
      }
      auto again = DocumentState::Decode(decoded->Encode());
      ASSERT_TRUE(again.ok());
      EXPECT_EQ(*again, *decoded);
    }
  }
}

TEST(RenderedDigestTest, DependsOnKeyContentAndExistence) {
  const uint64_t base = RenderedDigest("k", std::string(R"({"a":1})"));
  EXPECT_EQ(base, RenderedDigest("k", std::string(R"({"a":1})")));
  EXPECT_NE(base, RenderedDigest("k", std::string(R"({"a":2})")));
  EXPECT_NE(base, RenderedDigest("j", std::string(R"({"a":1})")));
  EXPECT_NE(base, RenderedDigest("k", std::nullopt));
  EXPECT_NE(RenderedDigest("k", std::nullopt), RenderedDigest("j", std::nullopt));
  EXPECT_NE(RenderedDigest("k", std::string()), RenderedDigest("k", std::nullopt));
  // The key and the document are framed: moving bytes across the boundary changes the digest,
  // even when the concatenated bytes (key, existence byte, document) would be the same.
  EXPECT_NE(RenderedDigest("ab", std::string("c")), RenderedDigest("a", std::string("bc")));
  EXPECT_NE(RenderedDigest("a", std::string("\x01z")), RenderedDigest("a\x01", std::string("z")));
}

TEST(RenderedDigestTest, IgnoresFoldedMetadata) {
  DocumentState state = ApplyAll({
      Ev(kA, 1, 100, {}, Set({{"x", "1"}})),
      Ev(kB, 1, 200, {}, Set({{"x", "2"}})),
  });
  const uint64_t before = RenderedDigest(kKey, state.Render());
  const uint64_t state_digest = state.Digest();
  state.Fold(VersionVector{{kA, 1}, {kB, 1}});
  EXPECT_NE(state.Digest(), state_digest);
  EXPECT_EQ(RenderedDigest(kKey, state.Render()), before);
}

}  // namespace
}  // namespace meridian::core

namespace meridian::core {
namespace {

TEST(AppendJsonString, EscapesExactlyAsTheJsonLibrary) {
  std::vector<std::string> names = {"", "plain", "with \"quotes\" and \\",
                                    "caf\xc3\xa9 \xe2\x82\xac", "\x7f"};
  for (int c = 0; c < 0x20; ++c) names.push_back(std::string("a") + static_cast<char>(c) + "b");
  for (const std::string& name : names) {
    std::string ours;
    AppendJsonString(name, &ours);
    EXPECT_EQ(ours, nlohmann::json(name).dump()) << name;
  }
}

}  // namespace
}  // namespace meridian::core
