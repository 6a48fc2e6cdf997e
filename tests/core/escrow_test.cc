#include "core/escrow.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

// Readable failure messages (gtest finds PrintTo by argument-dependent lookup).
namespace meridian {
inline void PrintTo(StatusCode code, std::ostream* os) {
  *os << StatusCodeName(code);
}

namespace core {
inline void PrintTo(const EscrowDeclaration& declaration, std::ostream* os) {
  *os << "{" << declaration.dot.ToString() << ", hlc " << FormatHlc(declaration.hlc) << ", min "
      << declaration.min << ", " << declaration.shares.size() << " shares}";
}
inline void PrintTo(const EscrowAction& action, std::ostream* os) {
  *os << EscrowActionKindName(action.kind) << "{" << action.region << ", " << action.amount << "}";
}
}  // namespace core
}  // namespace meridian

namespace meridian::core {
namespace {

constexpr RegionId kUs = 1;
constexpr RegionId kEu = 2;
constexpr RegionId kAsia = 3;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

EscrowDeclaration Declaration(int64_t min, std::map<RegionId, int64_t> shares,
                              Dot dot = Dot{kUs, 1}, HlcTimestamp hlc = MakeHlc(1000, 0)) {
  return EscrowDeclaration{dot, hlc, min, std::move(shares)};
}

EscrowLedger Declared(int64_t min, std::map<RegionId, int64_t> shares) {
  EscrowLedger ledger;
  EXPECT_TRUE(ledger.Declare(Declaration(min, std::move(shares))).ok());
  return ledger;
}

std::string Encode(const EscrowLedger& ledger) {
  std::string bytes;
  ledger.EncodeTo(&bytes);
  return bytes;
}

Result<EscrowLedger> Decode(std::string_view bytes) {
  auto decoded = EscrowLedger::DecodeFrom(&bytes);
  if (decoded.ok() && !bytes.empty()) return Corruption("trailing bytes");
  return decoded;
}

// A ledger with every kind of entry: a declaration, increments both ways, transfers, an accept, a
// pending transfer and a want.
EscrowLedger RichLedger() {
  EscrowLedger ledger = Declared(-5, {{kUs, 40}, {kEu, 30}, {kAsia, 30}});
  EXPECT_TRUE(ledger.ApplyIncrement(Dot{kUs, 2}, -12).ok());
  EXPECT_TRUE(ledger.ApplyIncrement(Dot{kEu, 1}, 300).ok());
  EXPECT_TRUE(ledger.ApplyTransfer(Dot{kEu, 4}, kUs, 100).ok());
  EXPECT_TRUE(ledger.ApplyTransfer(Dot{kEu, 5}, kAsia, 7).ok());
  EXPECT_TRUE(ledger.ApplyAccept(Dot{kUs, 3}, kEu, 100).ok());
  EXPECT_TRUE(ledger.ApplyWant(Dot{kAsia, 9}, 50).ok());
  return ledger;
}

TEST(SplitRoomTest, EvenSharesAndTheRemainderToTheDeclarer) {
  const std::vector<RegionId> regions{kUs, kEu, kAsia};
  EXPECT_EQ(SplitRoom(100, regions, kEu),
            (std::map<RegionId, int64_t>{{kUs, 33}, {kEu, 34}, {kAsia, 33}}));
  EXPECT_EQ(SplitRoom(99, regions, kUs),
            (std::map<RegionId, int64_t>{{kUs, 33}, {kEu, 33}, {kAsia, 33}}));
  // Less room than regions: only the declarer holds any; no room, no shares.
  EXPECT_EQ(SplitRoom(2, regions, kAsia), (std::map<RegionId, int64_t>{{kAsia, 2}}));
  EXPECT_TRUE(SplitRoom(0, regions, kUs).empty());
  // Duplicates count once, whatever the order.
  const std::vector<RegionId> repeated{kAsia, kUs, kAsia, kEu, kUs};
  EXPECT_EQ(SplitRoom(100, repeated, kEu), SplitRoom(100, regions, kEu));
  // The whole room, down to the last unit, even at the top of the range.
  int64_t total = 0;
  for (const auto& [region, share] : SplitRoom(kMax, regions, kUs)) total += share;
  EXPECT_EQ(total, kMax);
}

TEST(EscrowDeclarationTest, ValidationRefusesWhatNoRegionCouldDeclare) {
  EXPECT_TRUE(ValidateEscrowDeclaration(Declaration(0, {})).ok());
  EXPECT_TRUE(ValidateEscrowDeclaration(Declaration(kMin, {{kUs, kMax}})).ok());
  for (const EscrowDeclaration& bad : {
           Declaration(0, {{kUs, 1}}, Dot{kUs, 0}),  // no event has seq 0
           Declaration(0, {{kUs, 1}}, Dot{32, 1}),   // region ids are 0..31
           Declaration(0, {{32, 1}}),                //
           Declaration(0, {{kUs, 0}}),               // zero shares are left out
           Declaration(0, {{kUs, -1}}),              //
           Declaration(0, {{kUs, kMax}, {kEu, 1}}),  // the room past 64 bits
           Declaration(1, {{kUs, kMax}}),            // min + room past 64 bits
       }) {
    EXPECT_EQ(ValidateEscrowDeclaration(bad).code(), StatusCode::kInvalidArgument);
    EscrowLedger ledger;
    EXPECT_EQ(ledger.Declare(bad).code(), StatusCode::kInvalidArgument);
    EXPECT_FALSE(ledger.declared());
  }
}

TEST(EscrowDeclarationTest, TheGreaterHlcThenOriginWinsInAnyOrder) {
  const EscrowDeclaration early = Declaration(0, {{kUs, 10}}, Dot{kAsia, 4}, MakeHlc(1000, 0));
  const EscrowDeclaration late = Declaration(5, {{kEu, 10}}, Dot{kAsia, 2}, MakeHlc(1000, 1));
  const EscrowDeclaration tie = Declaration(7, {{kEu, 3}}, Dot{kEu, 9}, MakeHlc(1000, 1));
  for (const auto& order : std::vector<std::vector<EscrowDeclaration>>{
           {early, late, tie}, {tie, late, early}, {late, early, tie, late}}) {
    EscrowLedger ledger;
    for (const auto& declaration : order) ASSERT_TRUE(ledger.Declare(declaration).ok());
    EXPECT_EQ(ledger.declaration(), late);  // same hlc as `tie`, greater origin
  }
}

TEST(EscrowLedgerTest, RightsStartAtTheSharesAndFollowEachOriginsEvents) {
  EscrowLedger ledger = Declared(10, {{kUs, 50}, {kEu, 30}});
  EXPECT_EQ(ledger.Rights(kUs), 50);
  EXPECT_EQ(ledger.Rights(kEu), 30);
  EXPECT_EQ(ledger.Rights(kAsia), 0);
  EXPECT_EQ(ledger.TotalRights(), 80);
  EXPECT_EQ(ledger.Value(), 90);

  ASSERT_TRUE(ledger.ApplyIncrement(Dot{kUs, 2}, -20).ok());
  ASSERT_TRUE(ledger.ApplyIncrement(Dot{kAsia, 1}, 5).ok());
  EXPECT_EQ(ledger.Rights(kUs), 30);
  EXPECT_EQ(ledger.Rights(kAsia), 5);
  EXPECT_EQ(ledger.Value(), 75);

  // A transfer leaves the giver at once and stays counted in the value until accepted.
  ASSERT_TRUE(ledger.ApplyTransfer(Dot{kUs, 3}, kEu, 25).ok());
  EXPECT_EQ(ledger.Rights(kUs), 5);
  EXPECT_EQ(ledger.Rights(kEu), 30);
  EXPECT_EQ(ledger.Pending(kEu, kUs), 25);
  EXPECT_EQ(ledger.PendingTo(kEu), 25);
  EXPECT_EQ(ledger.PendingTotal(), 25);
  EXPECT_EQ(ledger.Projected(kEu), 55);
  EXPECT_EQ(ledger.TotalRights(), 40);
  EXPECT_EQ(ledger.Value(), 75);

  ASSERT_TRUE(ledger.ApplyAccept(Dot{kEu, 7}, kUs, 25).ok());
  EXPECT_EQ(ledger.Rights(kEu), 55);
  EXPECT_EQ(ledger.Pending(kEu, kUs), 0);
  EXPECT_EQ(ledger.TotalRights(), 65);
  EXPECT_EQ(ledger.Value(), 75);

  ASSERT_TRUE(ledger.ApplyWant(Dot{kAsia, 2}, 40).ok());
  EXPECT_EQ(ledger.Account(kAsia).wanted, 40);
  EXPECT_EQ(ledger.Account(kAsia).seq, 2u);
  EXPECT_EQ(ledger.Value(), 75);
}

TEST(EscrowLedgerTest, EventsAreCountedOncePerDotAndSeqsMaySkip) {
  EscrowLedger ledger = Declared(0, {{kUs, 50}});
  ASSERT_TRUE(ledger.ApplyIncrement(Dot{kUs, 5}, -10).ok());
  const EscrowLedger after = ledger;
  // The same event again, or any earlier one of its origin: ignored.
  EXPECT_TRUE(ledger.ApplyIncrement(Dot{kUs, 5}, -10).ok());
  EXPECT_TRUE(ledger.ApplyIncrement(Dot{kUs, 3}, -10).ok());
  EXPECT_TRUE(ledger.ApplyTransfer(Dot{kUs, 4}, kEu, 10).ok());
  EXPECT_TRUE(ledger.ApplyAccept(Dot{kUs, 2}, kEu, 10).ok());
  EXPECT_TRUE(ledger.ApplyWant(Dot{kUs, 1}, 10).ok());
  EXPECT_EQ(ledger, after);
  // Seq 9 after 5: the origin wrote other keys' events in between.
  ASSERT_TRUE(ledger.ApplyIncrement(Dot{kUs, 9}, -1).ok());
  EXPECT_EQ(ledger.Rights(kUs), 39);
}

TEST(EscrowLedgerTest, EventsNoOriginCouldWriteChangeNothing) {
  EscrowLedger ledger = Declared(0, {{kUs, 50}});
  ASSERT_TRUE(ledger.ApplyTransfer(Dot{kUs, 2}, kEu, kMax - 1).ok());
  ASSERT_TRUE(ledger.ApplyAccept(Dot{kEu, 2}, kUs, kMax - 1).ok());
  ASSERT_TRUE(ledger.ApplyIncrement(Dot{kAsia, 2}, kMin + 1).ok());
  const EscrowLedger before = ledger;
  for (const Status& status : {
           ledger.ApplyTransfer(Dot{kUs, 3}, kUs, 1),     // to itself
           ledger.ApplyTransfer(Dot{kUs, 3}, 32, 1),      // no such region
           ledger.ApplyTransfer(Dot{kUs, 3}, kEu, 0),     // nothing
           ledger.ApplyTransfer(Dot{kUs, 3}, kAsia, -1),  //
           ledger.ApplyTransfer(Dot{kUs, 3}, kEu, 2),     // given past 64 bits
           ledger.ApplyAccept(Dot{kEu, 3}, kEu, 1),       // from itself
           ledger.ApplyAccept(Dot{kEu, 3}, 40, 1),        //
           ledger.ApplyAccept(Dot{kEu, 3}, kUs, 0),       //
           ledger.ApplyAccept(Dot{kEu, 3}, kUs, 2),       // accepted past 64 bits
           ledger.ApplyIncrement(Dot{kAsia, 3}, -2),      // net past 64 bits
           ledger.ApplyWant(Dot{kAsia, 3}, -1),           //
       }) {
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  }
  EXPECT_EQ(ledger, before);
  // The seq did not move: the next real event of each origin still counts.
  EXPECT_TRUE(ledger.ApplyTransfer(Dot{kUs, 3}, kEu, 1).ok());
  EXPECT_EQ(ledger.Account(kUs).seq, 3u);
}

TEST(EscrowLedgerTest, EventsBeforeTheDeclarationCountOnceItArrives) {
  // asia applies eu's spending before us's declaration, which eu had applied.
  EscrowLedger asia;
  ASSERT_TRUE(asia.ApplyIncrement(Dot{kEu, 3}, -30).ok());
  EXPECT_FALSE(asia.declared());
  EXPECT_EQ(asia.Value(), std::nullopt);
  EXPECT_TRUE(Rebalance(asia, kAsia, EscrowPolicy{10, 20, 50}, 0).empty());
  ASSERT_TRUE(asia.Declare(Declaration(0, {{kUs, 34}, {kEu, 33}, {kAsia, 33}})).ok());
  EXPECT_EQ(asia.Rights(kEu), 3);
  EXPECT_EQ(asia.Value(), 70);
}

TEST(EscrowCheckTest, ADecrementNeedsTheRightsOfTheRegionThatTakesIt) {
  EscrowLedger ledger = Declared(0, {{kUs, 10}, {kEu, 90}});
  EXPECT_TRUE(ledger.CheckIncrement(kUs, -10).ok());
  EXPECT_EQ(ledger.CheckIncrement(kUs, -11).code(), StatusCode::kBoundExceeded);
  // eu's rights are eu's: us cannot spend them, however much room there is.
  EXPECT_EQ(ledger.CheckIncrement(kAsia, -1).code(), StatusCode::kBoundExceeded);
  EXPECT_EQ(ledger.CheckIncrement(kUs, kMin).code(), StatusCode::kBoundExceeded);
  // An increment always passes, and adds to the region's rights.
  EXPECT_TRUE(ledger.CheckIncrement(kAsia, 0).ok());
  EXPECT_TRUE(ledger.CheckIncrement(kAsia, 5).ok());
  ASSERT_TRUE(ledger.ApplyIncrement(Dot{kAsia, 1}, 5).ok());
  EXPECT_TRUE(ledger.CheckIncrement(kAsia, -5).ok());
  EXPECT_EQ(ledger.CheckIncrement(kAsia, -6).code(), StatusCode::kBoundExceeded);
  // ...unless it would leave 64 bits.
  EXPECT_EQ(ledger.CheckIncrement(kAsia, kMax - 4).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(ledger.CheckIncrement(kAsia, kMax - 5).ok());
}

TEST(EscrowCheckTest, TransfersAndAcceptsMoveOnlyWhatIsThere) {
  EscrowLedger ledger = Declared(0, {{kUs, 10}, {kEu, 90}});
  EXPECT_TRUE(ledger.CheckTransfer(kUs, kEu, 10).ok());
  EXPECT_EQ(ledger.CheckTransfer(kUs, kEu, 11).code(), StatusCode::kBoundExceeded);
  EXPECT_EQ(ledger.CheckTransfer(kUs, kUs, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger.CheckTransfer(kUs, 32, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger.CheckTransfer(kUs, kEu, 0).code(), StatusCode::kInvalidArgument);

  EXPECT_EQ(ledger.CheckAccept(kUs, kEu, 1).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(ledger.ApplyTransfer(Dot{kEu, 1}, kUs, 40).ok());
  // Given is not yet the receiver's: it must accept before it spends.
  EXPECT_EQ(ledger.CheckIncrement(kUs, -11).code(), StatusCode::kBoundExceeded);
  EXPECT_TRUE(ledger.CheckAccept(kUs, kEu, 40).ok());
  EXPECT_TRUE(ledger.CheckAccept(kUs, kEu, 1).ok());
  EXPECT_EQ(ledger.CheckAccept(kUs, kEu, 41).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ledger.CheckAccept(kUs, kUs, 1).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(ledger.ApplyAccept(Dot{kUs, 1}, kEu, 40).ok());
  EXPECT_TRUE(ledger.CheckIncrement(kUs, -50).ok());
  EXPECT_EQ(ledger.CheckAccept(kUs, kEu, 1).code(), StatusCode::kInvalidArgument);
}

// The scenario that makes `accept` necessary. Room 0: eu increments 10 and gives the 10 to us,
// us spends them. asia receives us's events first. Were us's rights share + given to it, asia
// would show us's -10 without eu's +10: min - 10. With accept, asia counts the 10 us accepted
// as us's rights, and its value stays at min although it holds none of eu's events.
TEST(EscrowLedgerTest, AViewHoldingASpendButNotItsFundingStaysAtTheBound) {
  const EscrowDeclaration declaration = Declaration(0, {});
  EscrowLedger eu;
  EscrowLedger us;
  EscrowLedger asia;
  for (EscrowLedger* ledger : {&eu, &us, &asia}) ASSERT_TRUE(ledger->Declare(declaration).ok());

  ASSERT_TRUE(eu.CheckIncrement(kEu, 10).ok());
  ASSERT_TRUE(eu.ApplyIncrement(Dot{kEu, 1}, 10).ok());
  ASSERT_TRUE(eu.CheckTransfer(kEu, kUs, 10).ok());
  ASSERT_TRUE(eu.ApplyTransfer(Dot{kEu, 2}, kUs, 10).ok());

  ASSERT_TRUE(us.ApplyIncrement(Dot{kEu, 1}, 10).ok());
  ASSERT_TRUE(us.ApplyTransfer(Dot{kEu, 2}, kUs, 10).ok());
  EXPECT_EQ(us.CheckIncrement(kUs, -10).code(), StatusCode::kBoundExceeded);
  ASSERT_TRUE(us.CheckAccept(kUs, kEu, 10).ok());
  ASSERT_TRUE(us.ApplyAccept(Dot{kUs, 1}, kEu, 10).ok());
  ASSERT_TRUE(us.CheckIncrement(kUs, -10).ok());
  ASSERT_TRUE(us.ApplyIncrement(Dot{kUs, 2}, -10).ok());
  EXPECT_EQ(us.Value(), 0);

  // asia: us's events only.
  ASSERT_TRUE(asia.ApplyAccept(Dot{kUs, 1}, kEu, 10).ok());
  ASSERT_TRUE(asia.ApplyIncrement(Dot{kUs, 2}, -10).ok());
  EXPECT_EQ(asia.Rights(kUs), 0);
  EXPECT_EQ(asia.Rights(kEu), 0);
  EXPECT_EQ(asia.Value(), 0);
  // Then eu's: the counter is exact again, and asia's ledger is everyone's.
  ASSERT_TRUE(asia.ApplyIncrement(Dot{kEu, 1}, 10).ok());
  EXPECT_EQ(asia.Value(), 10) << "eu's +10 arrived; eu's transfer not yet";
  ASSERT_TRUE(asia.ApplyTransfer(Dot{kEu, 2}, kUs, 10).ok());
  EXPECT_EQ(asia.Value(), 0);
  EXPECT_EQ(asia, us);
}

TEST(EscrowJoinTest, TakesPerOriginTheLongerPrefixAndTheWinningDeclaration) {
  EscrowLedger a = Declared(0, {{kUs, 30}, {kEu, 30}});
  EscrowLedger b;
  ASSERT_TRUE(a.ApplyIncrement(Dot{kUs, 2}, -5).ok());
  ASSERT_TRUE(a.ApplyIncrement(Dot{kEu, 1}, -1).ok());
  ASSERT_TRUE(b.ApplyIncrement(Dot{kEu, 1}, -1).ok());
  ASSERT_TRUE(b.ApplyTransfer(Dot{kEu, 2}, kAsia, 9).ok());
  ASSERT_TRUE(b.ApplyWant(Dot{kAsia, 1}, 20).ok());

  // What applying every event of both gives.
  EscrowLedger all = a;
  ASSERT_TRUE(all.ApplyTransfer(Dot{kEu, 2}, kAsia, 9).ok());
  ASSERT_TRUE(all.ApplyWant(Dot{kAsia, 1}, 20).ok());

  EscrowLedger ab = a;
  ab.Join(b);
  EscrowLedger ba = b;
  ba.Join(a);
  EXPECT_EQ(ab, all);
  EXPECT_EQ(ba, all);
  EscrowLedger again = ab;
  again.Join(ab);
  again.Join(a);
  EXPECT_EQ(again, all);
}

TEST(EscrowEncodingTest, RoundTripsAndEqualLedgersEncodeEqually) {
  for (const EscrowLedger& ledger :
       {EscrowLedger(), Declared(kMin, {}), Declared(-1, {{0, 1}, {31, kMax - 1}}), RichLedger()}) {
    const std::string bytes = Encode(ledger);
    auto decoded = Decode(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(*decoded, ledger);
    EXPECT_EQ(Encode(*decoded), bytes);
  }
  // The same events in another order across origins, and through a join: the same bytes.
  EscrowLedger other;
  ASSERT_TRUE(other.ApplyWant(Dot{kAsia, 9}, 50).ok());
  ASSERT_TRUE(other.ApplyIncrement(Dot{kUs, 2}, -12).ok());
  ASSERT_TRUE(other.ApplyAccept(Dot{kUs, 3}, kEu, 100).ok());
  EscrowLedger eu;
  ASSERT_TRUE(eu.ApplyIncrement(Dot{kEu, 1}, 300).ok());
  ASSERT_TRUE(eu.ApplyTransfer(Dot{kEu, 4}, kUs, 100).ok());
  ASSERT_TRUE(eu.Declare(Declaration(-5, {{kUs, 40}, {kEu, 30}, {kAsia, 30}})).ok());
  ASSERT_TRUE(eu.ApplyTransfer(Dot{kEu, 5}, kAsia, 7).ok());
  other.Join(eu);
  EXPECT_EQ(Encode(other), Encode(RichLedger()));
  // An empty ledger: version, no declaration, no account.
  EXPECT_EQ(Encode(EscrowLedger()), std::string("\x02\x00\x00", 3));
}

// A view that parked one of an origin's escrow events as a dead letter counts its later events
// without it: same seq as the whole account, one event fewer. Joined in either order (a repair
// from a peer), the whole account is kept, and the value is the whole one's.
TEST(EscrowLedgerTest, AJoinKeepsTheAccountThatCountsEveryEvent) {
  EscrowLedger whole;
  ASSERT_TRUE(whole.Declare(Declaration(0, {{kUs, 10}, {kEu, 10}})).ok());
  EscrowLedger parked = whole;
  ASSERT_TRUE(whole.ApplyIncrement(Dot{kUs, 1}, -3).ok());
  ASSERT_TRUE(whole.ApplyIncrement(Dot{kUs, 2}, -1).ok());
  ASSERT_TRUE(parked.ApplyIncrement(Dot{kUs, 2}, -1).ok());  // us:1 parked here
  ASSERT_EQ(whole.Account(kUs).seq, parked.Account(kUs).seq);
  EXPECT_EQ(whole.Account(kUs).events, 2u);
  EXPECT_EQ(parked.Account(kUs).events, 1u);
  EscrowLedger repaired = parked;
  repaired.Join(whole);
  EscrowLedger other = whole;
  other.Join(parked);
  EXPECT_EQ(repaired.Value(), whole.Value());
  EXPECT_EQ(other.Value(), whole.Value());
  EXPECT_EQ(*whole.Value(), 16);
}

// A ledger written before accounts counted their events (format 1) still decodes, with counts of
// 0.
TEST(EscrowEncodingTest, DecodesTheFormerFormat) {
  auto decoded = Decode(std::string("\x01\x00\x01\x01\x01\x00\x00\x00\x00", 9));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->Account(1).seq, 1u);
  EXPECT_EQ(decoded->Account(1).events, 0u);
}

TEST(EscrowEncodingTest, DecodeFromLeavesWhatFollows) {
  std::string bytes = Encode(RichLedger());
  bytes += "next";
  std::string_view in = bytes;
  auto decoded = EscrowLedger::DecodeFrom(&in);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(in, "next");
}

TEST(EscrowEncodingTest, DecodeRejectsGarbage) {
  for (const std::string& bytes : {
           std::string(),
           std::string(1, '\0'),
           std::string("\x03\x00\x00", 3),
           std::string("\x01"),
           std::string("\x01\x02\x00", 3),  // declaration marker 2
           std::string("\x01\x00\x21", 3),  // 33 accounts
           std::string("garbage, not a ledger"),
           // Declaration of region 32; of seq 0; a zero share; shares out of order.
           std::string("\x01\x01\x20\x01\x00\x00\x00\x00", 8),
           std::string("\x01\x01\x01\x00\x00\x00\x00\x00", 8),
           std::string("\x01\x01\x01\x01\x00\x00\x01\x02\x00\x00", 10),
           std::string("\x01\x01\x01\x01\x00\x00\x02\x03\x01\x02\x01\x00", 12),
           // An account of seq 0; one giving to itself; one with an amount past 64 bits;
           // accounts out of order; a want past 64 bits.
           std::string("\x01\x00\x01\x01\x00\x00\x00\x00\x00", 9),
           std::string("\x01\x00\x01\x01\x01\x00\x01\x01\x05\x00\x00", 11),
           std::string("\x01\x00\x01\x01\x01\x00\x01\x02\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x80\x01"
                       "\x00\x00",
                       20),
           std::string("\x01\x00\x02\x02\x01\x00\x00\x00\x00\x01\x01\x00\x00\x00\x00", 15),
           std::string("\x01\x00\x01\x01\x01\x00\x00\x00\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x80\x01",
                       18),
       }) {
    auto decoded = Decode(bytes);
    EXPECT_FALSE(decoded.ok()) << testing::PrintToString(bytes);
    EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption) << testing::PrintToString(bytes);
  }
  // The well-formed neighbours of some of those decode.
  EXPECT_TRUE(Decode(std::string("\x01\x00\x01\x01\x01\x00\x00\x00\x00", 9)).ok());
  EXPECT_TRUE(Decode(std::string("\x01\x00\x01\x01\x01\x00\x01\x02\x05\x00\x00", 11)).ok());
}

TEST(EscrowEncodingTest, DecodeRejectsEveryTruncation) {
  const std::string bytes = Encode(RichLedger());
  for (size_t length = 0; length < bytes.size(); ++length) {
    EXPECT_FALSE(Decode(std::string_view(bytes).substr(0, length)).ok())
        << "prefix of " << length << " of " << bytes.size() << " bytes";
  }
}

TEST(EscrowEncodingTest, DecodeSurvivesCorruptedBytes) {
  const std::string bytes = Encode(RichLedger());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (const int mask : {0x01, 0x02, 0x20, 0x40, 0x80, 0xFF}) {
      std::string corrupted = bytes;
      corrupted[i] = static_cast<char>(corrupted[i] ^ mask);
      std::string_view in = corrupted;
      auto decoded = EscrowLedger::DecodeFrom(&in);
      if (!decoded.ok()) {
        EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption);
        continue;
      }
      // Whatever decodes is a ledger Declare and Apply* could have built: it round-trips and
      // answers every question without crashing.
      auto again = Decode(Encode(*decoded));
      ASSERT_TRUE(again.ok());
      EXPECT_EQ(*again, *decoded);
      for (RegionId region = 0; region <= kRegionIdMax; ++region) {
        (void)decoded->Rights(region);
        (void)decoded->Projected(region);
        if (decoded->declared()) {
          (void)decoded->CheckIncrement(region, -1);
          (void)Rebalance(*decoded, region, EscrowPolicy{5, 10, 50}, 3);
        }
      }
      (void)decoded->Value();
    }
  }
}

TEST(EscrowPolicyTest, Validation) {
  EXPECT_TRUE(ValidateEscrowPolicy(EscrowPolicy{}).ok());
  EXPECT_TRUE(ValidateEscrowPolicy(EscrowPolicy{0, 0, 0}).ok());
  EXPECT_TRUE(ValidateEscrowPolicy(EscrowPolicy{10, 10, 100}).ok());
  EXPECT_FALSE(ValidateEscrowPolicy(EscrowPolicy{-1, 10, 50}).ok());
  EXPECT_FALSE(ValidateEscrowPolicy(EscrowPolicy{11, 10, 50}).ok());
  EXPECT_FALSE(ValidateEscrowPolicy(EscrowPolicy{0, 10, 101}).ok());
  EXPECT_FALSE(ValidateEscrowPolicy(EscrowPolicy{0, 10, -1}).ok());
}

using Actions = std::vector<EscrowAction>;
constexpr auto kAccept = EscrowActionKind::kAccept;
constexpr auto kWant = EscrowActionKind::kWant;
constexpr auto kTransfer = EscrowActionKind::kTransfer;

// Writes `actions` as region `self`'s events from seq `*seq` on, each checked first.
void Write(EscrowLedger* ledger, RegionId self, uint64_t* seq, const Actions& actions) {
  for (const EscrowAction& action : actions) {
    const Dot dot{self, ++*seq};
    switch (action.kind) {
      case EscrowActionKind::kAccept:
        ASSERT_TRUE(ledger->CheckAccept(self, action.region, action.amount).ok());
        ASSERT_TRUE(ledger->ApplyAccept(dot, action.region, action.amount).ok());
        break;
      case EscrowActionKind::kWant:
        ASSERT_TRUE(ledger->ApplyWant(dot, action.amount).ok());
        break;
      case EscrowActionKind::kTransfer:
        ASSERT_TRUE(ledger->CheckTransfer(self, action.region, action.amount).ok());
        ASSERT_TRUE(ledger->ApplyTransfer(dot, action.region, action.amount).ok());
        break;
    }
  }
}

TEST(EscrowRebalanceTest, AsksBelowTheLowWaterMarkOnceAndWithdrawsWhenServed) {
  const EscrowPolicy policy{10, 25, 50};
  EscrowLedger ledger = Declared(0, {{kUs, 12}, {kEu, 100}});
  uint64_t seq = 0;
  EXPECT_EQ(Rebalance(ledger, kUs, policy, 0), Actions{});
  ASSERT_TRUE(ledger.ApplyIncrement(Dot{kUs, ++seq}, -3).ok());
  EXPECT_EQ(Rebalance(ledger, kUs, policy, 0), (Actions{{kWant, 0, 25}}));
  Write(&ledger, kUs, &seq, Rebalance(ledger, kUs, policy, 0));
  EXPECT_EQ(Rebalance(ledger, kUs, policy, 0), Actions{}) << "asks once";
  // eu serves it: what us lacks, within half their difference and eu's budget.
  EXPECT_EQ(Rebalance(ledger, kEu, policy, 0), (Actions{{kTransfer, kUs, 16}}));
  uint64_t eu_seq = 0;
  Write(&ledger, kEu, &eu_seq, Rebalance(ledger, kEu, policy, 0));
  EXPECT_EQ(Rebalance(ledger, kEu, policy, 0), Actions{}) << "counts its own transfer";
  // us accepts, and its want met, withdraws it.
  EXPECT_EQ(Rebalance(ledger, kUs, policy, 0), (Actions{{kAccept, kEu, 16}, {kWant, 0, 0}}));
  Write(&ledger, kUs, &seq, Rebalance(ledger, kUs, policy, 0));
  EXPECT_EQ(ledger.Rights(kUs), 25);
  EXPECT_EQ(Rebalance(ledger, kUs, policy, 0), Actions{});
  EXPECT_EQ(Rebalance(ledger, kEu, policy, 0), Actions{});
}

TEST(EscrowRebalanceTest, ARefusedDecrementAsksForWhatItNeeded) {
  const EscrowPolicy policy{0, 0, 50};  // no low-water mark: only refusals ask
  EscrowLedger ledger = Declared(0, {{kUs, 5}, {kEu, 100}});
  EXPECT_EQ(ledger.CheckIncrement(kUs, -8).code(), StatusCode::kBoundExceeded);
  EXPECT_EQ(Rebalance(ledger, kUs, policy, 8), (Actions{{kWant, 0, 8}}));
  EXPECT_EQ(Rebalance(ledger, kUs, policy, 5), Actions{}) << "its rights cover that";
  uint64_t seq = 0;
  Write(&ledger, kUs, &seq, Rebalance(ledger, kUs, policy, 8));
  EXPECT_EQ(Rebalance(ledger, kUs, policy, 7), Actions{}) << "a standing want covers less";
  EXPECT_EQ(Rebalance(ledger, kUs, policy, 30), (Actions{{kWant, 0, 30}})) << "raised";
  EXPECT_EQ(Rebalance(ledger, kEu, policy, 0), (Actions{{kTransfer, kUs, 3}}));
}

TEST(EscrowRebalanceTest, ServesThePoorestFirstWithinItsBudget) {
  // eu holds 100 and may give half of it in a round; three regions ask.
  const EscrowPolicy policy{10, 40, 50};
  EscrowLedger ledger = Declared(0, {{kEu, 100}, {kUs, 20}, {kAsia, 4}, {7, 1}});
  ASSERT_TRUE(ledger.ApplyWant(Dot{kUs, 1}, 60).ok());
  ASSERT_TRUE(ledger.ApplyWant(Dot{kAsia, 1}, 40).ok());
  ASSERT_TRUE(ledger.ApplyWant(Dot{7, 1}, 40).ok());
  // 7 (1 right): lacks 39, halfway 49 -> 39, budget 50 -> 11 left. asia (4): lacks 36, halfway
  // (61 - 4) / 2 = 28, budget 11 -> 11. us: nothing left.
  EXPECT_EQ(Rebalance(ledger, kEu, policy, 0),
            (Actions{{kTransfer, 7, 39}, {kTransfer, kAsia, 11}}));
  // asia (4, budget 2) gives 7 halfway, (4 - 1) / 2 = 1, and us nothing: us is richer. us (20,
  // budget 10), whose own want is unmet, gives 7 halfway, 9, and asia what is left of its budget.
  EXPECT_EQ(Rebalance(ledger, kAsia, policy, 0), (Actions{{kTransfer, 7, 1}}));
  EXPECT_EQ(Rebalance(ledger, kUs, policy, 0), (Actions{{kTransfer, 7, 9}, {kTransfer, kAsia, 1}}));
}

TEST(EscrowRebalanceTest, ARegionThatWasGivenEnoughElsewhereIsNotServedAgain) {
  const EscrowPolicy policy{10, 30, 50};
  EscrowLedger ledger = Declared(0, {{kUs, 100}, {kEu, 100}});
  ASSERT_TRUE(ledger.ApplyWant(Dot{kAsia, 1}, 30).ok());
  ASSERT_TRUE(ledger.ApplyTransfer(Dot{kUs, 1}, kAsia, 30).ok());
  // eu sees us's transfer, pending at asia: asia's Projected is 30, its want met.
  EXPECT_EQ(ledger.Projected(kAsia), 30);
  EXPECT_EQ(Rebalance(ledger, kEu, policy, 0), Actions{});
  // A view without us's transfer serves it too: the over-serving the header bounds.
  EscrowLedger stale = Declared(0, {{kUs, 100}, {kEu, 100}});
  ASSERT_TRUE(stale.ApplyWant(Dot{kAsia, 1}, 30).ok());
  EXPECT_EQ(Rebalance(stale, kEu, policy, 0), (Actions{{kTransfer, kAsia, 30}}));
}

TEST(EscrowRebalanceTest, NeverGivesToARicherRegionNorBelowOneItGivesTo) {
  const EscrowPolicy policy{10, 100, 100};
  EscrowLedger ledger = Declared(0, {{kUs, 7}, {kEu, 9}, {kAsia, 8}});
  ASSERT_TRUE(ledger.ApplyWant(Dot{kUs, 1}, 100).ok());
  ASSERT_TRUE(ledger.ApplyWant(Dot{kEu, 1}, 100).ok());
  ASSERT_TRUE(ledger.ApplyWant(Dot{kAsia, 1}, 100).ok());
  EXPECT_EQ(Rebalance(ledger, kUs, policy, 0), Actions{});
  EXPECT_EQ(Rebalance(ledger, kAsia, policy, 0), Actions{}) << "(8 - 7) / 2 rounds to nothing";
  EXPECT_EQ(Rebalance(ledger, kEu, policy, 0), (Actions{{kTransfer, kUs, 1}}));
}

// The example of docs/semantics.md, "Bounded counters", step by step.
TEST(EscrowRebalanceTest, TheExampleOfTheSemantics) {
  const EscrowPolicy policy{5, 20, 50};
  const std::vector<RegionId> regions{kUs, kEu, kAsia};
  const EscrowDeclaration declaration = Declaration(0, SplitRoom(90, regions, kUs));
  ASSERT_EQ(declaration.shares, (std::map<RegionId, int64_t>{{kUs, 30}, {kEu, 30}, {kAsia, 30}}));
  EscrowLedger us;
  EscrowLedger eu;
  EscrowLedger asia;
  for (EscrowLedger* ledger : {&us, &eu, &asia}) ASSERT_TRUE(ledger->Declare(declaration).ok());
  const auto rights = [](const EscrowLedger& ledger) {
    return std::vector<int64_t>{ledger.Rights(kUs), ledger.Rights(kEu), ledger.Rights(kAsia)};
  };
  using Rights = std::vector<int64_t>;

  uint64_t eu_seq = 0;
  ASSERT_TRUE(eu.CheckIncrement(kEu, -30).ok());
  ASSERT_TRUE(eu.ApplyIncrement(Dot{kEu, ++eu_seq}, -30).ok());
  EXPECT_EQ(rights(eu), (Rights{30, 0, 30}));
  EXPECT_EQ(eu.Value(), 60);
  EXPECT_EQ(eu.CheckIncrement(kEu, -1).code(), StatusCode::kBoundExceeded);
  EXPECT_EQ(Rebalance(eu, kEu, policy, 1), (Actions{{kWant, 0, 20}}));
  Write(&eu, kEu, &eu_seq, Rebalance(eu, kEu, policy, 1));

  // us and asia each receive eu:1-eu:2 and serve the want before seeing each other's transfer.
  for (EscrowLedger* ledger : {&us, &asia}) ledger->Join(eu);
  uint64_t us_seq = 1;  // us:1 is the declaration
  EXPECT_EQ(Rebalance(us, kUs, policy, 0), (Actions{{kTransfer, kEu, 15}}));
  Write(&us, kUs, &us_seq, Rebalance(us, kUs, policy, 0));
  EXPECT_EQ(rights(us), (Rights{15, 0, 30}));
  EXPECT_EQ(us.Value(), 60);
  EXPECT_EQ(us.PendingTotal(), 15);
  uint64_t asia_seq = 0;
  EXPECT_EQ(Rebalance(asia, kAsia, policy, 0), (Actions{{kTransfer, kEu, 15}}));
  Write(&asia, kAsia, &asia_seq, Rebalance(asia, kAsia, policy, 0));
  EXPECT_EQ(rights(asia), (Rights{30, 0, 15}));
  EXPECT_EQ(asia.Value(), 60);

  // eu receives both, accepts both and withdraws its want.
  eu.Join(us);
  eu.Join(asia);
  EXPECT_EQ(Rebalance(eu, kEu, policy, 0),
            (Actions{{kAccept, kUs, 15}, {kAccept, kAsia, 15}, {kWant, 0, 0}}));
  Write(&eu, kEu, &eu_seq, Rebalance(eu, kEu, policy, 0));
  EXPECT_EQ(eu_seq, 5u);
  EXPECT_EQ(rights(eu), (Rights{15, 30, 15}));
  EXPECT_EQ(eu.Value(), 60);

  // us, with eu:3-eu:5 but not asia:1, counts eu's accept of asia's 15 ahead of the transfer.
  ASSERT_TRUE(us.ApplyAccept(Dot{kEu, 3}, kUs, 15).ok());
  ASSERT_TRUE(us.ApplyAccept(Dot{kEu, 4}, kAsia, 15).ok());
  ASSERT_TRUE(us.ApplyWant(Dot{kEu, 5}, 0).ok());
  EXPECT_EQ(us.Value(), 75);
  us.Join(asia);
  EXPECT_EQ(us.Value(), 60);
  EXPECT_EQ(us, eu);
  asia.Join(eu);
  EXPECT_EQ(asia, eu);
}

}  // namespace
}  // namespace meridian::core
