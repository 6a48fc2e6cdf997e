#include "core/replica.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
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
inline void PrintTo(ReceiveOutcome outcome, std::ostream* os) {
  switch (outcome) {
    case ReceiveOutcome::kApplied:
      *os << "applied";
      return;
    case ReceiveOutcome::kDuplicate:
      *os << "duplicate";
      return;
    case ReceiveOutcome::kBuffered:
      *os << "buffered";
      return;
  }
  *os << "unknown";
}
}  // namespace core
}  // namespace meridian

namespace meridian::core {
namespace {

constexpr RegionId kUs = 0;
constexpr RegionId kEu = 1;
constexpr RegionId kAsia = 2;

class FakeClock : public PhysicalClock {
 public:
  explicit FakeClock(uint64_t now_ms) : now_ms_(now_ms) {}
  uint64_t NowMs() override { return now_ms_; }
  void Set(uint64_t now_ms) { now_ms_ = now_ms; }

 private:
  uint64_t now_ms_;
};

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

// Writes and expects success.
Event MustWrite(Replica* replica, const std::string& key, Operation op) {
  auto event = replica->Write(key, std::move(op));
  EXPECT_TRUE(event.ok()) << event.status().ToString();
  return event.ok() ? *event : Event{};
}

// The events `replica` wrote itself, in seq order.
std::vector<Event> OwnEvents(const Replica& replica) {
  std::vector<Event> own;
  for (const Event& event : replica.applied()) {
    if (event.dot.origin == replica.id()) own.push_back(event);
  }
  return own;
}

// Every key any of the replicas holds.
std::vector<std::string> AllKeys(const std::vector<const Replica*>& replicas) {
  std::vector<std::string> keys;
  for (const Replica* replica : replicas) {
    for (const auto& [key, state] : replica->documents()) keys.push_back(key);
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

// --- Write -------------------------------------------------------------------------------------

TEST(ReplicaWriteTest, StampsDotsContextsAndIncreasingTimestamps) {
  FakeClock clock(1000);
  Replica replica(kEu, &clock);
  EXPECT_EQ(replica.id(), kEu);

  const Event first = MustWrite(&replica, "k", Set({{"a", "1"}}));
  EXPECT_EQ(first.dot, (Dot{kEu, 1}));
  EXPECT_EQ(first.hlc, MakeHlc(1000, 0));
  EXPECT_TRUE(first.context.empty());
  EXPECT_EQ(first.key, "k");
  EXPECT_EQ(replica.frontier(), (VersionVector{{kEu, 1}}));

  const Event second = MustWrite(&replica, "other", Incr({{"n", 1}}));  // clock stalled
  EXPECT_EQ(second.dot, (Dot{kEu, 2}));
  EXPECT_GT(second.hlc, first.hlc);
  EXPECT_EQ(second.context, (VersionVector{{kEu, 1}}));

  clock.Set(900);  // the physical clock steps back
  const Event third = MustWrite(&replica, "k", Delete());
  EXPECT_EQ(third.dot, (Dot{kEu, 3}));
  EXPECT_GT(third.hlc, second.hlc);
  EXPECT_EQ(third.context, (VersionVector{{kEu, 2}}));

  EXPECT_EQ(replica.frontier(), (VersionVector{{kEu, 3}}));
  ASSERT_EQ(replica.applied().size(), 3u);
  EXPECT_EQ(replica.applied()[0], first);
  EXPECT_EQ(replica.applied()[1], second);
  EXPECT_EQ(replica.applied()[2], third);
  EXPECT_EQ(replica.clock().last(), third.hlc);
}

TEST(ReplicaWriteTest, ContextIsTheFrontierBeforeTheWrite) {
  FakeClock us_clock(1000);
  FakeClock eu_clock(1000);
  Replica us(kUs, &us_clock);
  Replica eu(kEu, &eu_clock);
  const Event from_eu_1 = MustWrite(&eu, "k", Set({{"a", "1"}}));
  const Event from_eu_2 = MustWrite(&eu, "j", Set({{"b", "1"}}));
  MustWrite(&us, "k", Set({{"c", "1"}}));
  ASSERT_EQ(us.Receive(from_eu_1), ReceiveOutcome::kApplied);
  ASSERT_EQ(us.Receive(from_eu_2), ReceiveOutcome::kApplied);
  const VersionVector before = us.frontier();
  EXPECT_EQ(before, (VersionVector{{kUs, 1}, {kEu, 2}}));
  const Event event = MustWrite(&us, "k", Set({{"a", "2"}}));
  EXPECT_EQ(event.context, before);
  EXPECT_EQ(event.dot, (Dot{kUs, 2}));
  EXPECT_EQ(us.frontier(), (VersionVector{{kUs, 2}, {kEu, 2}}));
}

TEST(ReplicaWriteTest, WriteNormalizesAppliesAndReturnsAValidEvent) {
  FakeClock clock(1000);
  Replica replica(kUs, &clock);
  const Event event = MustWrite(&replica, "k", Set({{"b", "2"}, {"a", "\"x\""}}));
  EXPECT_EQ(event.op.fields, (std::vector<FieldValue>{{"a", "\"x\""}, {"b", "2"}}));
  EXPECT_EQ(replica.Render("k"), R"({"a":"x","b":2})");
  EXPECT_TRUE(ValidateEvent(event, Limits{}).ok());
  auto decoded = DecodeEvent(EncodeEvent(event), Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, event);
  EXPECT_EQ(replica.Render("absent"), std::nullopt);
}

TEST(ReplicaWriteTest, RejectsInvalidKeysAndLeavesTheStateUnchanged) {
  FakeClock clock(1000);
  Limits limits;
  limits.key_bytes_max = 4;
  Replica replica(kUs, &clock, limits);
  EXPECT_EQ(replica.Write("", Set({{"a", "1"}})).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(replica.Write("toolong", Set({{"a", "1"}})).status().code(), StatusCode::kTooLarge);
  EXPECT_EQ(replica.Write("k\xFF", Set({{"a", "1"}})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(replica.Write("\xED\xA0\x80", Set({{"a", "1"}})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(replica.frontier().empty());
  EXPECT_TRUE(replica.applied().empty());
  EXPECT_TRUE(replica.documents().empty());
  EXPECT_EQ(replica.clock().last(), 0u);
  // The next accepted write still gets seq 1.
  EXPECT_EQ(MustWrite(&replica, "k", Set({{"a", "1"}})).dot, (Dot{kUs, 1}));
}

TEST(ReplicaWriteTest, RejectsInvalidOperationsWithTheRightCode) {
  FakeClock clock(1000);
  Limits limits;
  limits.value_bytes_max = 8;
  limits.fields_max = 2;
  Replica replica(kUs, &clock, limits);
  EXPECT_EQ(replica.Write("k", Set({{"a", "1"}, {"a", "2"}})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(replica.Write("k", Set({{"", "1"}})).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(replica.Write("k", Incr({})).status().code(), StatusCode::kInvalidArgument);
  Operation delete_with_fields = Delete();
  delete_with_fields.fields = {{"a", "1"}};
  EXPECT_EQ(replica.Write("k", delete_with_fields).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(replica.Write("k", Set({{"a", "\"123456789\""}})).status().code(),
            StatusCode::kTooLarge);
  EXPECT_EQ(replica.Write("k", Replace({{"a", "1"}, {"b", "1"}, {"c", "1"}})).status().code(),
            StatusCode::kTooLarge);
  EXPECT_TRUE(replica.frontier().empty());
  EXPECT_TRUE(replica.applied().empty());
  EXPECT_TRUE(replica.documents().empty());
}

TEST(ReplicaWriteTest, RefusesToIncrementANonNumberAndLeavesTheStateUnchanged) {
  FakeClock clock(1000);
  Replica replica(kUs, &clock);
  MustWrite(&replica, "k", Set({{"name", "\"lamp\""}, {"stock", "10"}}));
  const VersionVector frontier = replica.frontier();
  const HlcTimestamp last = replica.clock().last();
  const std::optional<std::string> rendered = replica.Render("k");

  auto refused = replica.Write("k", Incr({{"name", 1}}));
  EXPECT_EQ(refused.status().code(), StatusCode::kTypeMismatch);
  auto refused_with_other = replica.Write("k", Incr({{"stock", 1}, {"name", 1}}));
  EXPECT_EQ(refused_with_other.status().code(), StatusCode::kTypeMismatch);

  EXPECT_EQ(replica.frontier(), frontier);
  EXPECT_EQ(replica.clock().last(), last);
  EXPECT_EQ(replica.applied().size(), 1u);
  EXPECT_EQ(replica.Render("k"), rendered);

  // Numbers, absent fields and fields of other documents can be incremented.
  MustWrite(&replica, "k", Incr({{"stock", -1}, {"sold", 1}}));
  MustWrite(&replica, "other", Incr({{"name", 1}}));
  EXPECT_EQ(replica.Render("k"), R"({"name":"lamp","sold":1,"stock":9})");
  EXPECT_EQ(replica.Render("other"), R"({"name":1})");
}

TEST(ReplicaWriteTest, AnIncrementIsAllowedOnceTheNonNumberIsDeleted) {
  FakeClock clock(1000);
  Replica replica(kUs, &clock);
  MustWrite(&replica, "k", Set({{"name", "\"lamp\""}}));
  MustWrite(&replica, "k", Delete());
  EXPECT_EQ(replica.Render("k"), std::nullopt);
  MustWrite(&replica, "k", Incr({{"name", 2}}));
  EXPECT_EQ(replica.Render("k"), R"({"name":2})");
}

// Whatever Write accepts becomes an event every receiver can decode: values are put in canonical
// JSON form (DecodeEvent insists on it), and values that are not JSON are refused.
TEST(ReplicaWriteTest, NeverProducesAnEventReceiversRefuse) {
  FakeClock clock(1000);
  Replica replica(kUs, &clock);
  EXPECT_EQ(replica.Write("k", Set({{"a", "not json"}})).status().code(),
            StatusCode::kInvalidArgument);
  const Event event = MustWrite(&replica, "k", Set({{"a", R"({ "z": 1, "y": [ 1.50 ] })"}}));
  EXPECT_EQ(event.op.fields[0].value, R"({"y":[1.5],"z":1})");
  auto decoded = DecodeEvent(EncodeEvent(event), Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, event);
  EXPECT_EQ(replica.Render("k"), R"({"a":{"y":[1.5],"z":1}})");
}

// --- Receive -----------------------------------------------------------------------------------

TEST(ReplicaReceiveTest, AppliesEventsInOrder) {
  FakeClock eu_clock(1000);
  FakeClock us_clock(1000);
  Replica eu(kEu, &eu_clock);
  Replica us(kUs, &us_clock);
  MustWrite(&eu, "k", Set({{"a", "1"}}));
  MustWrite(&eu, "k", Incr({{"n", 2}}));
  MustWrite(&eu, "j", Set({{"b", "true"}}));
  for (const Event& event : OwnEvents(eu)) {
    EXPECT_EQ(us.Receive(event), ReceiveOutcome::kApplied);
  }
  EXPECT_EQ(us.frontier(), (VersionVector{{kEu, 3}}));
  EXPECT_EQ(us.applied(), eu.applied());
  EXPECT_EQ(us.buffered(), 0u);
  EXPECT_EQ(us.Render("k"), R"({"a":1,"n":2})");
  EXPECT_EQ(us.Render("j"), R"({"b":true})");
  EXPECT_EQ(us.documents(), eu.documents());
}

TEST(ReplicaReceiveTest, BuffersGapsAndDrainsThemWhenTheGapFills) {
  FakeClock eu_clock(1000);
  FakeClock us_clock(1000);
  Replica eu(kEu, &eu_clock);
  Replica us(kUs, &us_clock);
  MustWrite(&eu, "k", Set({{"a", "1"}}));
  MustWrite(&eu, "k", Set({{"a", "2"}}));
  MustWrite(&eu, "k", Set({{"b", "3"}}));
  MustWrite(&eu, "k", Set({{"c", "4"}}));
  const std::vector<Event> events = OwnEvents(eu);
  ASSERT_EQ(events.size(), 4u);

  EXPECT_EQ(us.Receive(events[3]), ReceiveOutcome::kBuffered);
  EXPECT_EQ(us.buffered(), 1u);
  EXPECT_EQ(us.Receive(events[1]), ReceiveOutcome::kBuffered);
  EXPECT_EQ(us.buffered(), 2u);
  EXPECT_TRUE(us.frontier().empty());
  EXPECT_TRUE(us.applied().empty());
  EXPECT_EQ(us.Render("k"), std::nullopt);

  // Event 1 fills the first gap: 1 and 2 apply, 4 still waits for 3.
  EXPECT_EQ(us.Receive(events[0]), ReceiveOutcome::kApplied);
  EXPECT_EQ(us.frontier(), (VersionVector{{kEu, 2}}));
  EXPECT_EQ(us.buffered(), 1u);
  EXPECT_EQ(us.Render("k"), R"({"a":2})");

  EXPECT_EQ(us.Receive(events[2]), ReceiveOutcome::kApplied);
  EXPECT_EQ(us.frontier(), (VersionVector{{kEu, 4}}));
  EXPECT_EQ(us.buffered(), 0u);
  EXPECT_EQ(us.applied(), events);  // applied in seq order
  EXPECT_EQ(us.Render("k"), R"({"a":2,"b":3,"c":4})");
}

TEST(ReplicaReceiveTest, BuffersPerOrigin) {
  FakeClock clock(1000);
  Replica eu(kEu, &clock);
  Replica asia(kAsia, &clock);
  Replica us(kUs, &clock);
  MustWrite(&eu, "k", Set({{"a", "1"}}));
  MustWrite(&eu, "k", Set({{"a", "2"}}));
  MustWrite(&asia, "k", Set({{"b", "1"}}));
  EXPECT_EQ(us.Receive(OwnEvents(eu)[1]), ReceiveOutcome::kBuffered);
  // A gap in eu's events does not hold asia's back.
  EXPECT_EQ(us.Receive(OwnEvents(asia)[0]), ReceiveOutcome::kApplied);
  EXPECT_EQ(us.buffered(), 1u);
  EXPECT_EQ(us.Render("k"), R"({"b":1})");
  EXPECT_EQ(us.Receive(OwnEvents(eu)[0]), ReceiveOutcome::kApplied);
  EXPECT_EQ(us.buffered(), 0u);
  EXPECT_EQ(us.frontier(), (VersionVector{{kEu, 2}, {kAsia, 1}}));
}

TEST(ReplicaReceiveTest, DropsDuplicates) {
  FakeClock clock(1000);
  Replica eu(kEu, &clock);
  Replica us(kUs, &clock);
  const Event event = MustWrite(&eu, "k", Incr({{"n", 1}}));
  EXPECT_EQ(us.Receive(event), ReceiveOutcome::kApplied);
  EXPECT_EQ(us.Receive(event), ReceiveOutcome::kDuplicate);
  EXPECT_EQ(us.Receive(event), ReceiveOutcome::kDuplicate);
  EXPECT_EQ(us.applied().size(), 1u);
  EXPECT_EQ(us.Render("k"), R"({"n":1})");
  // A redelivery of a region's own event is a duplicate too.
  const Event own = MustWrite(&us, "k", Incr({{"n", 1}}));
  EXPECT_EQ(us.Receive(own), ReceiveOutcome::kDuplicate);
  EXPECT_EQ(us.Render("k"), R"({"n":2})");
  EXPECT_EQ(us.applied().size(), 2u);
}

TEST(ReplicaReceiveTest, ABufferedEventDeliveredTwiceIsAppliedOnce) {
  FakeClock clock(1000);
  Replica eu(kEu, &clock);
  Replica us(kUs, &clock);
  MustWrite(&eu, "k", Incr({{"n", 1}}));
  MustWrite(&eu, "k", Incr({{"n", 10}}));
  const std::vector<Event> events = OwnEvents(eu);
  EXPECT_EQ(us.Receive(events[1]), ReceiveOutcome::kBuffered);
  EXPECT_EQ(us.Receive(events[1]), ReceiveOutcome::kBuffered);
  EXPECT_EQ(us.buffered(), 1u);
  EXPECT_EQ(us.Receive(events[0]), ReceiveOutcome::kApplied);
  EXPECT_EQ(us.Receive(events[1]), ReceiveOutcome::kDuplicate);
  EXPECT_EQ(us.buffered(), 0u);
  EXPECT_EQ(us.applied().size(), 2u);
  EXPECT_EQ(us.Render("k"), R"({"n":11})");
}

TEST(ReplicaReceiveTest, ObservesTheRemoteTimestamp) {
  FakeClock eu_clock(50'000);  // eu's clock runs far ahead
  FakeClock us_clock(1000);
  Replica eu(kEu, &eu_clock);
  Replica us(kUs, &us_clock);
  const Event remote = MustWrite(&eu, "k", Set({{"a", "1"}}));
  EXPECT_EQ(us.Receive(remote), ReceiveOutcome::kApplied);
  EXPECT_GE(us.clock().last(), remote.hlc);
  EXPECT_EQ(us.clock().skew_count(), 1u);
  const Event local = MustWrite(&us, "k", Set({{"a", "2"}}));
  EXPECT_GT(local.hlc, remote.hlc);
  // Having seen eu's write, this one overwrites it.
  EXPECT_EQ(us.Render("k"), R"({"a":2})");
}

TEST(ReplicaReceiveTest, ObservesTheTimestampsOfDrainedEvents) {
  FakeClock eu_clock(1000);
  FakeClock us_clock(1000);
  Replica eu(kEu, &eu_clock);
  Replica us(kUs, &us_clock);
  MustWrite(&eu, "k", Set({{"a", "1"}}));
  eu_clock.Set(1300);
  const Event later = MustWrite(&eu, "k", Set({{"a", "2"}}));
  EXPECT_EQ(us.Receive(later), ReceiveOutcome::kBuffered);
  EXPECT_EQ(us.Receive(OwnEvents(eu)[0]), ReceiveOutcome::kApplied);
  EXPECT_GE(us.clock().last(), later.hlc);
  EXPECT_EQ(us.clock().skew_count(), 0u);  // 300 ms ahead is within the default 500 ms
  EXPECT_GT(MustWrite(&us, "k", Set({{"b", "1"}})).hlc, later.hlc);
}

TEST(ReplicaReceiveTest, WithinSkewTimestampsAreNotCounted) {
  FakeClock eu_clock(1400);
  FakeClock us_clock(1000);
  Replica eu(kEu, &eu_clock);
  Replica us(kUs, &us_clock);
  EXPECT_EQ(us.Receive(MustWrite(&eu, "k", Set({{"a", "1"}}))), ReceiveOutcome::kApplied);
  EXPECT_EQ(us.clock().skew_count(), 0u);
}

// --- Convergence -------------------------------------------------------------------------------

struct ThreeRegions {
  FakeClock us_clock{1000};
  FakeClock eu_clock{1003};
  FakeClock asia_clock{998};
  Replica us{kUs, &us_clock};
  Replica eu{kEu, &eu_clock};
  Replica asia{kAsia, &asia_clock};

  std::vector<Replica*> all() { return {&us, &eu, &asia}; }

  // Delivers every region's own events to every other region: `reverse` sends each stream
  // backwards (every event but the last waits in the buffer), and each event is sent twice.
  void Exchange(bool reverse) {
    for (Replica* from : all()) {
      std::vector<Event> events = OwnEvents(*from);
      if (reverse) std::reverse(events.begin(), events.end());
      for (Replica* to : all()) {
        if (to == from) continue;
        for (const Event& event : events) {
          to->Receive(event);
          to->Receive(event);
        }
      }
    }
  }

  // Every region reports its frontier to every other (a round of heartbeats).
  void Heartbeats() {
    for (Replica* from : all()) {
      for (Replica* to : all()) {
        if (to != from) to->ObserveFrontier(from->id(), from->frontier());
      }
    }
  }

  static std::vector<RegionId> ids() { return {kUs, kEu, kAsia}; }

  void ExpectConverged() {
    const std::vector<std::string> keys = AllKeys({&us, &eu, &asia});
    for (const std::string& key : keys) {
      EXPECT_EQ(eu.Render(key), us.Render(key)) << key;
      EXPECT_EQ(asia.Render(key), us.Render(key)) << key;
    }
    EXPECT_EQ(eu.documents(), us.documents());
    EXPECT_EQ(asia.documents(), us.documents());
    EXPECT_EQ(eu.frontier(), us.frontier());
    EXPECT_EQ(asia.frontier(), us.frontier());
    for (Replica* replica : all()) EXPECT_EQ(replica->buffered(), 0u);
  }
};

TEST(ReplicaConvergenceTest, TheStockExampleStaysExact) {
  ThreeRegions regions;
  MustWrite(&regions.us, "stock/lamp", Set({{"stock", "10"}}));
  regions.Exchange(false);
  // Concurrently: us restocks to 100, eu and asia each sell one.
  MustWrite(&regions.us, "stock/lamp", Set({{"stock", "100"}}));
  MustWrite(&regions.eu, "stock/lamp", Incr({{"stock", -1}}));
  MustWrite(&regions.asia, "stock/lamp", Incr({{"stock", -1}}));
  regions.Exchange(true);
  regions.ExpectConverged();
  EXPECT_EQ(regions.us.Render("stock/lamp"), R"({"stock":98})");
}

TEST(ReplicaConvergenceTest, ConcurrentWritesConvergeWhateverTheDeliveryOrder) {
  for (const bool reverse : {false, true}) {
    SCOPED_TRACE(reverse ? "reversed streams" : "in-order streams");
    ThreeRegions regions;
    MustWrite(&regions.us, "cart/1", Set({{"items", "1"}, {"owner", "\"ann\""}}));
    MustWrite(&regions.eu, "cart/1", Set({{"items", "2"}}));
    MustWrite(&regions.asia, "cart/1", Incr({{"views", 1}}));
    MustWrite(&regions.us, "cart/2", Set({{"x", "1"}}));
    MustWrite(&regions.eu, "cart/2", Delete());  // eu has not seen cart/2: deletes nothing
    // asia sees us's writes, then replaces cart/1 and deletes cart/2.
    for (const Event& event : OwnEvents(regions.us)) regions.asia.Receive(event);
    MustWrite(&regions.asia, "cart/1", Replace({{"items", "5"}}));
    MustWrite(&regions.asia, "cart/2", Delete());
    MustWrite(&regions.us, "cart/1", Incr({{"views", 2}}));
    MustWrite(&regions.eu, "cart/3", Set({{"note", "\"hi\""}}));

    regions.Exchange(reverse);
    regions.ExpectConverged();
    // asia's replace removed what it had seen (us's items and owner, asia's own view) but not
    // what was concurrent with it: eu's items=2, which wins on its greater hlc (1003 ms against
    // 1000 ms), and us's later view increment.
    EXPECT_EQ(regions.us.Render("cart/1"), R"({"items":2,"views":2})");
    EXPECT_EQ(regions.us.Render("cart/2"), std::nullopt);
    EXPECT_EQ(regions.us.Render("cart/3"), R"({"note":"hi"})");
  }
}

TEST(ReplicaConvergenceTest, ConcurrentSetsPickTheSameWinnerEverywhere) {
  ThreeRegions regions;
  regions.us_clock.Set(5000);
  regions.eu_clock.Set(5000);
  regions.asia_clock.Set(4000);
  MustWrite(&regions.us, "k", Set({{"color", "\"red\""}}));
  MustWrite(&regions.eu, "k", Set({{"color", "\"blue\""}}));  // same hlc: eu's id is greater
  MustWrite(&regions.asia, "k", Set({{"color", "\"green\""}}));
  regions.Exchange(false);
  regions.ExpectConverged();
  for (Replica* replica : regions.all()) {
    EXPECT_EQ(replica->Render("k"), R"({"color":"blue"})");
  }
}

// --- Fold --------------------------------------------------------------------------------------

TEST(ReplicaFoldTest, FoldWithTheStableFrontierKeepsRendersAndDropsDeletedDocuments) {
  ThreeRegions regions;
  MustWrite(&regions.us, "a", Set({{"x", "1"}}));
  MustWrite(&regions.eu, "a", Set({{"x", "2"}}));
  MustWrite(&regions.asia, "a", Incr({{"n", 1}}));
  MustWrite(&regions.asia, "a", Incr({{"n", 1}}));
  MustWrite(&regions.us, "gone", Set({{"y", "1"}}));
  regions.Exchange(false);
  MustWrite(&regions.eu, "gone", Delete());
  regions.Exchange(false);
  regions.Heartbeats();
  regions.ExpectConverged();

  for (Replica* replica : regions.all()) {
    const VersionVector stable = replica->StableFrontier(ThreeRegions::ids());
    // Everything was exchanged and reported: the whole history is stable.
    EXPECT_EQ(stable, replica->frontier());
    const std::optional<std::string> a = replica->Render("a");
    size_t metadata_before = 0;
    for (const auto& [key, state] : replica->documents()) {
      metadata_before += state.MetadataEntries();
    }
    replica->Fold(stable);
    EXPECT_EQ(replica->Render("a"), a);
    EXPECT_EQ(replica->Render("a"), R"({"n":2,"x":2})");
    EXPECT_EQ(replica->Render("gone"), std::nullopt);
    EXPECT_EQ(replica->documents().count("gone"), 0u) << "a deleted, folded document is dropped";
    size_t metadata_after = 0;
    for (const auto& [key, state] : replica->documents()) {
      metadata_after += state.MetadataEntries();
    }
    EXPECT_LT(metadata_after, metadata_before);
  }
  regions.ExpectConverged();

  // Writes after the fold still merge and converge.
  MustWrite(&regions.us, "a", Incr({{"n", 5}}));
  MustWrite(&regions.asia, "gone", Set({{"y", "2"}}));
  regions.Exchange(true);
  regions.ExpectConverged();
  EXPECT_EQ(regions.eu.Render("a"), R"({"n":7,"x":2})");
  EXPECT_EQ(regions.eu.Render("gone"), R"({"y":2})");
}

// An event written before its origin applied what every region has applied can still be on its
// way. us increments twice (us:1, us:3); eu sets the counter having seen only us:1; everybody but
// us then applies all of us's events. "Applied everywhere" covers us:3, yet folding us:1 and us:3
// together at us would let eu's set, arriving later, remove both instead of only us:1.
TEST(ReplicaFoldTest, AnEventStillInFlightKeepsWhatItCanRemove) {
  for (const bool naive : {false, true}) {
    ThreeRegions regions;
    const Event first = MustWrite(&regions.us, "k", Incr({{"stock", 1}}));
    const Event other = MustWrite(&regions.us, "other", Set({{"x", "1"}}));
    const Event second = MustWrite(&regions.us, "k", Incr({{"stock", 1}}));
    regions.eu.Receive(first);
    const Event restock = MustWrite(&regions.eu, "k", Set({{"stock", "100"}}));
    for (const Event& event : {other, second}) regions.eu.Receive(event);
    for (const Event& event : {first, other, second}) regions.asia.Receive(event);
    regions.asia.Receive(restock);
    regions.Heartbeats();  // eu's and asia's reports reach us: both have applied us:3

    VersionVector applied_everywhere = regions.us.frontier();
    for (Replica* replica : regions.all()) {
      applied_everywhere = VersionVector::Meet(applied_everywhere, replica->frontier());
    }
    EXPECT_EQ(applied_everywhere.Get(kUs), 3u);
    const VersionVector stable = regions.us.StableFrontier(ThreeRegions::ids());
    EXPECT_EQ(stable.Get(kUs), 0u)
        << "eu's report is not usable before us has applied the writes eu made";
    regions.us.Fold(naive ? applied_everywhere : stable);
    regions.us.Receive(restock);
    EXPECT_EQ(regions.eu.Render("k"), R"({"stock":101})");
    EXPECT_EQ(regions.asia.Render("k"), R"({"stock":101})");
    if (naive) {
      EXPECT_EQ(regions.us.Render("k"), R"({"stock":102})") << "the unsafe fold diverges";
    } else {
      EXPECT_EQ(regions.us.Render("k"), R"({"stock":101})");
    }
  }
}

TEST(ReplicaFoldTest, FoldWithAPartlyStableFrontierKeepsRenders) {
  ThreeRegions regions;
  MustWrite(&regions.us, "a", Set({{"x", "1"}}));
  regions.Exchange(false);
  regions.Heartbeats();
  MustWrite(&regions.eu, "a", Set({{"x", "2"}}));
  MustWrite(&regions.asia, "a", Incr({{"x", 3}}));
  regions.Exchange(false);
  const VersionVector stable = regions.eu.StableFrontier(ThreeRegions::ids());
  EXPECT_EQ(stable, (VersionVector{{kUs, 1}}));
  const std::optional<std::string> rendered = regions.eu.Render("a");
  EXPECT_EQ(rendered, R"({"x":5})");
  regions.eu.Fold(stable);
  EXPECT_EQ(regions.eu.Render("a"), rendered);
}

// --- StableFrontier / ObserveFrontier ----------------------------------------------------------

TEST(ReplicaStableFrontierTest, IsEmptyUntilEveryOtherRegionIsKnown) {
  FakeClock clock(1000);
  Replica us(kUs, &clock);
  Replica eu(kEu, &clock);
  MustWrite(&us, "k", Set({{"a", "1"}}));
  EXPECT_EQ(us.StableFrontier({kUs}), us.frontier());
  EXPECT_TRUE(us.StableFrontier({kUs, kEu}).empty());
  ASSERT_EQ(us.Receive(MustWrite(&eu, "k", Set({{"b", "1"}}))), ReceiveOutcome::kApplied);
  // eu's event tells us what eu had applied: its own first event, nothing of us.
  EXPECT_EQ(us.StableFrontier({kUs, kEu}), (VersionVector{{kEu, 1}}));
  EXPECT_TRUE(us.StableFrontier({kUs, kEu, kAsia}).empty());
}

TEST(ReplicaStableFrontierTest, LearnsFromTheContextsOfReceivedEvents) {
  FakeClock clock(1000);
  Replica us(kUs, &clock);
  Replica eu(kEu, &clock);
  const Event mine = MustWrite(&us, "k", Set({{"a", "1"}}));
  ASSERT_EQ(eu.Receive(mine), ReceiveOutcome::kApplied);
  const Event theirs = MustWrite(&eu, "k", Set({{"b", "1"}}));  // context {us:1}
  ASSERT_EQ(us.Receive(theirs), ReceiveOutcome::kApplied);
  EXPECT_EQ(us.StableFrontier({kUs, kEu}), (VersionVector{{kUs, 1}, {kEu, 1}}));
}

TEST(ReplicaStableFrontierTest, ObserveFrontierIsIgnoredUntilTheOriginsEventsAreApplied) {
  FakeClock clock(1000);
  Replica us(kUs, &clock);
  Replica eu(kEu, &clock);
  const Event mine = MustWrite(&us, "k", Set({{"a", "1"}}));
  // eu writes twice without having seen us's write, then applies it.
  const Event first = MustWrite(&eu, "k", Set({{"b", "1"}}));
  const Event second = MustWrite(&eu, "k", Set({{"b", "2"}}));
  ASSERT_EQ(eu.Receive(mine), ReceiveOutcome::kApplied);
  ASSERT_EQ(us.Receive(first), ReceiveOutcome::kApplied);
  EXPECT_EQ(us.StableFrontier({kUs, kEu}), (VersionVector{{kEu, 1}}));

  // eu reports {us:1, eu:2}, but its second event, written before it saw us:1, has not arrived
  // here: its context does not cover us:1, so the report cannot be used yet.
  us.ObserveFrontier(kEu, eu.frontier());
  EXPECT_EQ(us.StableFrontier({kUs, kEu}), (VersionVector{{kEu, 1}}));

  ASSERT_EQ(us.Receive(second), ReceiveOutcome::kApplied);
  EXPECT_EQ(us.StableFrontier({kUs, kEu}), (VersionVector{{kEu, 2}}));
  us.ObserveFrontier(kEu, eu.frontier());
  EXPECT_EQ(us.StableFrontier({kUs, kEu}), (VersionVector{{kUs, 1}, {kEu, 2}}));
}

TEST(ReplicaStableFrontierTest, NeverExceedsTheLocalFrontier) {
  FakeClock clock(1000);
  Replica us(kUs, &clock);
  Replica eu(kEu, &clock);
  Replica asia(kAsia, &clock);
  MustWrite(&asia, "k", Set({{"a", "1"}}));
  ASSERT_EQ(eu.Receive(asia.applied()[0]), ReceiveOutcome::kApplied);
  // eu has applied asia:1, us has not; eu's report must not make asia:1 stable at us.
  us.ObserveFrontier(kEu, eu.frontier());
  us.ObserveFrontier(kAsia, asia.frontier());
  us.ObserveFrontier(kUs, VersionVector{{kAsia, 1}});  // a report about itself: ignored
  const VersionVector stable = us.StableFrontier({kUs, kEu, kAsia});
  EXPECT_TRUE(us.frontier().Dominates(stable));
  EXPECT_TRUE(stable.empty());
}

// --- StampLocalWrite ---------------------------------------------------------------------------

TEST(StampLocalWriteTest, StampsWithoutApplying) {
  FakeClock clock(7000);
  HybridLogicalClock hlc(&clock);
  const VersionVector frontier{{kUs, 4}, {kEu, 9}};
  auto event =
      StampLocalWrite(kUs, "k", Set({{"b", "2"}, {"a", "1"}}), nullptr, frontier, &hlc, Limits{});
  ASSERT_TRUE(event.ok()) << event.status().ToString();
  EXPECT_EQ(event->dot, (Dot{kUs, 5}));
  EXPECT_EQ(event->context, frontier);
  EXPECT_EQ(event->hlc, MakeHlc(7000, 0));
  EXPECT_EQ(event->key, "k");
  EXPECT_EQ(event->op.fields, (std::vector<FieldValue>{{"a", "1"}, {"b", "2"}}));  // sorted
  EXPECT_EQ(hlc.last(), event->hlc);
  EXPECT_TRUE(ValidateEvent(*event, Limits{}).ok());
}

TEST(StampLocalWriteTest, ChecksTheWriteAgainstTheCurrentDocument) {
  FakeClock clock(7000);
  HybridLogicalClock hlc(&clock);
  DocumentState current;
  Event set;
  set.dot = Dot{kEu, 1};
  set.hlc = MakeHlc(10, 0);
  set.key = "k";
  set.op = Set({{"name", "\"lamp\""}, {"stock", "3"}});
  current.Apply(set, nullptr);
  const VersionVector frontier{{kEu, 1}};

  auto refused = StampLocalWrite(kUs, "k", Incr({{"name", 1}}), &current, frontier, &hlc, Limits{});
  EXPECT_EQ(refused.status().code(), StatusCode::kTypeMismatch);
  EXPECT_EQ(hlc.last(), 0u) << "a refused write takes no timestamp";
  auto bad_key = StampLocalWrite(kUs, "", Incr({{"stock", 1}}), &current, frontier, &hlc, Limits{});
  EXPECT_EQ(bad_key.status().code(), StatusCode::kInvalidArgument);
  auto accepted =
      StampLocalWrite(kUs, "k", Incr({{"stock", 1}}), &current, frontier, &hlc, Limits{});
  ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
  EXPECT_EQ(accepted->dot, (Dot{kUs, 1}));
  EXPECT_EQ(current.RenderField("stock"), "3") << "stamping does not apply";
}

// --- Conflicts ---------------------------------------------------------------------------------

TEST(ReplicaConflictTest, TakeConflictsReturnsThenClears) {
  FakeClock us_clock(2000);
  FakeClock eu_clock(1000);
  Replica us(kUs, &us_clock);
  Replica eu(kEu, &eu_clock);
  EXPECT_TRUE(us.TakeConflicts().empty());
  const Event mine = MustWrite(&us, "k", Set({{"color", "\"red\""}}));
  const Event theirs = MustWrite(&eu, "k", Set({{"color", "\"blue\""}}));
  EXPECT_TRUE(us.TakeConflicts().empty());
  ASSERT_EQ(us.Receive(theirs), ReceiveOutcome::kApplied);

  const std::vector<Conflict> conflicts = us.TakeConflicts();
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0].kind, ConflictKind::kConcurrentSet);
  EXPECT_EQ(conflicts[0].key, "k");
  EXPECT_EQ(conflicts[0].field, "color");
  EXPECT_EQ(conflicts[0].winner.dot, mine.dot);  // us's hlc is greater
  EXPECT_EQ(conflicts[0].winner.value, "\"red\"");
  ASSERT_EQ(conflicts[0].losers.size(), 1u);
  EXPECT_EQ(conflicts[0].losers[0].dot, theirs.dot);
  EXPECT_EQ(conflicts[0].cause, theirs.dot);
  EXPECT_TRUE(us.TakeConflicts().empty());
  EXPECT_EQ(us.Render("k"), R"({"color":"red"})");
}

TEST(ReplicaConflictTest, NonNumericIncrementIsReported) {
  FakeClock clock(1000);
  Replica us(kUs, &clock);
  Replica eu(kEu, &clock);
  MustWrite(&us, "k", Set({{"n", "\"many\""}}));
  const Event increment = MustWrite(&eu, "k", Incr({{"n", 1}}));
  ASSERT_EQ(us.Receive(increment), ReceiveOutcome::kApplied);
  const std::vector<Conflict> conflicts = us.TakeConflicts();
  ASSERT_EQ(conflicts.size(), 1u);
  EXPECT_EQ(conflicts[0].kind, ConflictKind::kNonNumericIncrement);
  EXPECT_EQ(conflicts[0].field, "n");
  EXPECT_EQ(us.Render("k"), R"({"n":"many"})");
  EXPECT_TRUE(us.TakeConflicts().empty());
}

}  // namespace
}  // namespace meridian::core
