// Bounded counters in the event model, the document and the command path: escrow events on the
// wire, ledgers in DocumentState (render, encoding, fold, state merge), and the checks of
// StampLocalWrite (docs/semantics.md#bounded-counters). The ledger itself is escrow_test.cc's.
#include <gtest/gtest.h>

#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "core/document.h"
#include "core/event.h"
#include "core/replica.h"
#include "core/state_merge.h"
#include "meridian/event.pb.h"

namespace meridian {
inline void PrintTo(StatusCode code, std::ostream* os) {
  *os << StatusCodeName(code);
}
}  // namespace meridian

namespace meridian::core {
namespace {

constexpr RegionId kUs = 1;
constexpr RegionId kEu = 2;
constexpr RegionId kAsia = 3;
constexpr RegionId kAll[] = {kUs, kEu, kAsia};
constexpr char kKey[] = "item/42";

class FakeClock : public PhysicalClock {
 public:
  explicit FakeClock(uint64_t now_ms) : now_ms_(now_ms) {}
  uint64_t NowMs() override { return now_ms_; }

 private:
  uint64_t now_ms_;
};

Operation Declare(const std::string& field, int64_t min) {
  Operation op;
  op.kind = OpKind::kEscrow;
  op.escrow.kind = EscrowOpKind::kDeclare;
  op.escrow.field = field;
  op.escrow.min = min;
  return op;
}

Operation Escrow(EscrowOpKind kind, const std::string& field, RegionId region, int64_t amount,
                 uint64_t prev = 0) {
  Operation op;
  op.escrow.prev = prev;
  op.kind = OpKind::kEscrow;
  op.escrow.kind = kind;
  op.escrow.field = field;
  op.escrow.region = region;
  op.escrow.amount = amount;
  return op;
}

Operation Incr(const std::string& field, int64_t delta) {
  Operation op;
  op.kind = OpKind::kIncrement;
  op.counters.push_back(CounterDelta{field, delta});
  return op;
}

Operation Set(const std::string& field, const std::string& value) {
  Operation op;
  op.kind = OpKind::kSet;
  op.fields.push_back(FieldValue{field, value});
  return op;
}

Operation Delete() {
  Operation op;
  op.kind = OpKind::kDelete;
  return op;
}

// One region's document and position, writing through StampLocalWrite as a region does.
struct Writer {
  explicit Writer(RegionId region) : id(region) {}
  RegionId id;
  FakeClock clock{1'000'000};
  HybridLogicalClock hlc{&clock};
  DocumentState doc;
  VersionVector frontier;
  std::vector<Event> written;

  Result<Event> Write(Operation op) {
    Result<Event> event =
        StampLocalWrite(id, kKey, std::move(op), &doc, frontier, &hlc, Limits{}, kAll);
    if (event.ok()) {
      Receive(*event);
      written.push_back(*event);
    }
    return event;
  }
  void ReceiveAll(const Writer& other) {
    for (const Event& event : other.written) {
      if (event.dot.seq > frontier.Get(event.dot.origin)) Receive(event);
    }
  }
  void Receive(const Event& event) {
    doc.Apply(event, nullptr);
    frontier.Set(event.dot.origin, std::max(frontier.Get(event.dot.origin), event.dot.seq));
  }
};

std::optional<std::string> Field(const DocumentState& doc, const std::string& name) {
  return doc.RenderField(name);
}

// --- events on the wire ----------------------------------------------------------------------

Event MakeEvent(Operation op) {
  Event event;
  event.dot = Dot{kEu, 3};
  event.hlc = MakeHlc(1732233600123, 7);
  event.context = VersionVector{{kUs, 4}, {kEu, 2}};
  event.key = kKey;
  event.op = std::move(op);
  return event;
}

TEST(EscrowEventTest, EveryKindRoundTripsAsSchemaVersion2) {
  Operation declare = Declare("stock", -5);
  declare.escrow.shares = {{kUs, 34}, {kEu, 33}, {kAsia, 33}};
  Operation escrowed = Incr("stock", -3);
  escrowed.counters[0].escrow = true;
  for (const Operation& op : {declare, Escrow(EscrowOpKind::kTransfer, "stock", kUs, 7, 2),
                              Escrow(EscrowOpKind::kAccept, "stock", kAsia, 2),
                              Escrow(EscrowOpKind::kWant, "stock", 0, 20),
                              Escrow(EscrowOpKind::kWant, "stock", 0, 0), escrowed}) {
    const Event event = MakeEvent(op);
    EXPECT_EQ(EventSchemaVersion(event), 2u);
    const std::string bytes = EncodeEvent(event);
    wire::Event message;
    ASSERT_TRUE(message.ParseFromString(bytes));
    EXPECT_EQ(message.schema_version(), 2u);
    auto decoded = DecodeEvent(bytes, Limits{});
    ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
    EXPECT_EQ(*decoded, event);
  }
  EXPECT_EQ(EventSchemaVersion(MakeEvent(Incr("stock", -3))), 1u) << "a plain increment";
}

TEST(EscrowEventTest, ImpossibleContentDoesNotDecode) {
  const auto code = [](const wire::Event& message) {
    return DecodeEvent(message.SerializeAsString(), Limits{}).status().code();
  };
  const auto wire_of = [](const Event& event) {
    wire::Event message;
    EXPECT_TRUE(message.ParseFromString(EncodeEvent(event)));
    return message;
  };
  // A transfer or accept naming its own writer (eu).
  EXPECT_EQ(code(wire_of(MakeEvent(Escrow(EscrowOpKind::kTransfer, "stock", kEu, 1)))),
            StatusCode::kCorruption);
  EXPECT_EQ(code(wire_of(MakeEvent(Escrow(EscrowOpKind::kAccept, "stock", kEu, 1)))),
            StatusCode::kCorruption);
  // Amounts that are not positive, a negative want, a region above 31.
  wire::Event message = wire_of(MakeEvent(Escrow(EscrowOpKind::kTransfer, "stock", kUs, 1)));
  message.mutable_operation()->mutable_escrow()->set_amount(0);
  EXPECT_EQ(code(message), StatusCode::kCorruption);
  message.mutable_operation()->mutable_escrow()->set_amount(-4);
  EXPECT_EQ(code(message), StatusCode::kCorruption);
  message.mutable_operation()->mutable_escrow()->set_amount(4);
  message.mutable_operation()->mutable_escrow()->set_region(32);
  EXPECT_EQ(code(message), StatusCode::kCorruption);
  message = wire_of(MakeEvent(Escrow(EscrowOpKind::kWant, "stock", 0, 3)));
  message.mutable_operation()->mutable_escrow()->set_amount(-1);
  EXPECT_EQ(code(message), StatusCode::kCorruption);
  // A declaration whose shares are not positive, repeat a region, or overflow with min.
  Operation declare = Declare("stock", 0);
  declare.escrow.shares = {{kUs, 5}};
  message = wire_of(MakeEvent(declare));
  message.mutable_operation()->mutable_escrow()->mutable_shares(0)->set_amount(0);
  EXPECT_EQ(code(message), StatusCode::kCorruption);
  message.mutable_operation()->mutable_escrow()->mutable_shares(0)->set_amount(5);
  *message.mutable_operation()->mutable_escrow()->add_shares() =
      message.operation().escrow().shares(0);
  EXPECT_EQ(code(message), StatusCode::kCorruption);
  declare.escrow.min = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(code(wire_of(MakeEvent(declare))), StatusCode::kCorruption);
  // What the kind does not use, escrow content in a version 1 event, an unknown kind.
  message = wire_of(MakeEvent(Escrow(EscrowOpKind::kWant, "stock", 0, 3)));
  message.mutable_operation()->mutable_escrow()->set_region(kUs);
  EXPECT_EQ(code(message), StatusCode::kCorruption);
  message = wire_of(MakeEvent(Escrow(EscrowOpKind::kWant, "stock", 0, 3)));
  message.set_schema_version(1);
  EXPECT_EQ(code(message), StatusCode::kCorruption);
  message = wire_of(MakeEvent(Escrow(EscrowOpKind::kWant, "stock", 0, 3)));
  message.mutable_operation()->mutable_escrow()->set_kind(static_cast<wire::Escrow::Kind>(9));
  EXPECT_EQ(code(message), StatusCode::kCorruption);
  message = wire_of(MakeEvent(Incr("stock", 1)));
  message.mutable_operation()->mutable_escrow()->set_field("stock");
  EXPECT_EQ(code(message), StatusCode::kCorruption) << "an escrow part on an increment";
  message = wire_of(MakeEvent(Escrow(EscrowOpKind::kWant, "", 0, 3)));
  EXPECT_EQ(code(message), StatusCode::kCorruption) << "no field name";
  message = wire_of(MakeEvent(Escrow(EscrowOpKind::kWant, "stock", 0, 3)));
  message.mutable_operation()->mutable_escrow()->set_prev(3);  // the event's own seq
  EXPECT_EQ(code(message), StatusCode::kCorruption) << "a chain to itself";
  message = wire_of(MakeEvent(Incr("stock", 1)));
  message.mutable_operation()->mutable_counters(0)->set_prev(1);
  EXPECT_EQ(code(message), StatusCode::kCorruption) << "a chained plain increment";
}

// --- the document ----------------------------------------------------------------------------

TEST(BoundedDocumentTest, TheBoundedFieldRendersTheLedgersValue) {
  Writer us(kUs);
  ASSERT_TRUE(us.Write(Set("stock", "90")).ok());
  ASSERT_TRUE(us.Write(Set("name", "\"lamp\"")).ok());
  auto declared = us.Write(Declare("stock", 0));
  ASSERT_TRUE(declared.ok()) << declared.status().ToString();
  EXPECT_EQ(declared->op.escrow.shares,
            (std::map<RegionId, int64_t>{{kUs, 30}, {kEu, 30}, {kAsia, 30}}));
  EXPECT_TRUE(us.doc.IsBounded("stock"));
  EXPECT_FALSE(us.doc.IsBounded("name"));
  EXPECT_EQ(us.doc.Render(), R"({"name":"lamp","stock":90})");

  auto sold = us.Write(Incr("stock", -30));
  ASSERT_TRUE(sold.ok()) << sold.status().ToString();
  EXPECT_TRUE(sold->op.counters[0].escrow) << "the command path flags it";
  EXPECT_EQ(Field(us.doc, "stock"), "60");
  EXPECT_EQ(us.Write(Incr("stock", -1)).status().code(), StatusCode::kBoundExceeded)
      << "us has spent its 30";
  EXPECT_EQ(Field(us.doc, "stock"), "60");
}

TEST(BoundedDocumentTest, WritesOfARegionUnawareOfTheBoundAreKeptButNotRendered) {
  Writer us(kUs);
  Writer eu(kEu);
  ASSERT_TRUE(us.Write(Set("stock", "90")).ok());
  eu.ReceiveAll(us);
  ASSERT_TRUE(us.Write(Declare("stock", 0)).ok());
  // Concurrently, eu (without the declaration) sells 100 and deletes the document.
  auto plain = eu.Write(Incr("stock", -100));
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->op.counters[0].escrow);
  ASSERT_TRUE(eu.Write(Delete()).ok());
  EXPECT_EQ(eu.doc.Render(), std::nullopt);
  us.ReceiveAll(eu);
  eu.ReceiveAll(us);
  EXPECT_EQ(us.doc.Render(), R"({"stock":90})") << "the bound holds; the delete did not see it";
  EXPECT_EQ(eu.doc.Render(), us.doc.Render());
  EXPECT_EQ(eu.doc.Digest(), us.doc.Digest());
}

TEST(BoundedDocumentTest, EscrowedIncrementsCountOnceTheDeclarationArrives) {
  Writer us(kUs);
  Writer eu(kEu);
  Writer asia(kAsia);
  ASSERT_TRUE(us.Write(Declare("stock", -10)).ok()) << "an absent field counts as 0";
  ASSERT_TRUE(us.Write(Incr("stock", 40)).ok());
  ASSERT_TRUE(us.Write(Incr("stock", -5)).ok());
  // A view that has the increments but not yet the declaration: not bounded there yet.
  Event declaration = us.written[0];
  for (size_t i = 1; i < us.written.size(); ++i) asia.doc.Apply(us.written[i], nullptr);
  EXPECT_FALSE(asia.doc.IsBounded("stock"));
  EXPECT_EQ(Field(asia.doc, "stock"), std::nullopt) << "escrowed increments are not plain ones";
  asia.doc.Apply(declaration, nullptr);
  EXPECT_EQ(Field(asia.doc, "stock"), "35");
  EXPECT_EQ(asia.doc.Ledger("stock")->TotalRights(), 45) << "room 10 + 40 - 5";
  eu.ReceiveAll(us);
  EXPECT_EQ(eu.doc.Digest(), asia.doc.Digest()) << "any order, the same state";
  EXPECT_EQ(Field(eu.doc, "stock"), "35");
}

TEST(BoundedDocumentTest, RightsMoveByTransferAndAccept) {
  Writer us(kUs);
  Writer eu(kEu);
  ASSERT_TRUE(us.Write(Set("stock", "30")).ok());
  ASSERT_TRUE(us.Write(Declare("stock", 0)).ok());  // 10 each
  eu.ReceiveAll(us);
  ASSERT_TRUE(eu.Write(Incr("stock", -10)).ok());
  EXPECT_EQ(eu.Write(Incr("stock", -1)).status().code(), StatusCode::kBoundExceeded);
  EXPECT_EQ(us.Write(Escrow(EscrowOpKind::kTransfer, "stock", kEu, 11)).status().code(),
            StatusCode::kBoundExceeded);
  ASSERT_TRUE(us.Write(Escrow(EscrowOpKind::kTransfer, "stock", kEu, 6)).ok());
  eu.ReceiveAll(us);
  EXPECT_EQ(Field(eu.doc, "stock"), "20") << "moving rights changes no value";
  EXPECT_EQ(eu.Write(Incr("stock", -1)).status().code(), StatusCode::kBoundExceeded)
      << "given, not yet accepted";
  EXPECT_EQ(eu.Write(Escrow(EscrowOpKind::kAccept, "stock", kUs, 7)).status().code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(eu.Write(Escrow(EscrowOpKind::kAccept, "stock", kUs, 6)).ok());
  ASSERT_TRUE(eu.Write(Incr("stock", -6)).ok());
  EXPECT_EQ(Field(eu.doc, "stock"), "14");
  ASSERT_TRUE(eu.Write(Escrow(EscrowOpKind::kWant, "stock", 0, 5)).ok());
  EXPECT_EQ(eu.doc.Ledger("stock")->Account(kEu).wanted, 5);
  us.ReceiveAll(eu);
  EXPECT_EQ(us.doc.Digest(), eu.doc.Digest());
}

TEST(BoundedDocumentTest, EncodesAsVersion2FoldsAndMergesWithItsLedgers) {
  Writer us(kUs);
  ASSERT_TRUE(us.Write(Set("stock", "9")).ok());
  EXPECT_EQ(us.doc.Encode()[0], 1) << "no ledger: version 1, as before";
  ASSERT_TRUE(us.Write(Declare("stock", 0)).ok());
  ASSERT_TRUE(us.Write(Incr("stock", -2)).ok());
  const std::string bytes = us.doc.Encode();
  EXPECT_EQ(bytes[0], 2);
  auto decoded = DocumentState::Decode(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, us.doc);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(DocumentState::Decode(bytes.substr(0, cut)).ok()) << cut;
  }
  DocumentState folded = us.doc;
  folded.Fold(us.frontier);
  EXPECT_EQ(folded.Render(), us.doc.Render());
  EXPECT_EQ(folded.escrows(), us.doc.escrows()) << "a fold keeps the ledgers";

  // The state merge joins ledgers: us's copy and an earlier copy of it render the latest.
  Writer eu(kEu);
  eu.Receive(us.written[0]);
  eu.Receive(us.written[1]);
  const VersionVector none;
  auto merged = MergeStates({eu.doc, eu.frontier, none}, {us.doc, us.frontier, none});
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ(merged->Render(), R"({"stock":7})");
  EXPECT_EQ(merged->escrows(), us.doc.escrows());
}

TEST(BoundedDocumentTest, AnOriginsEscrowEventsApplyInTheirChainWhateverTheOrder) {
  Writer us(kUs);
  ASSERT_TRUE(us.Write(Set("stock", "30")).ok());
  ASSERT_TRUE(us.Write(Declare("stock", 0)).ok());
  ASSERT_TRUE(us.Write(Set("name", "\"lamp\"")).ok());  // seqs skip: other fields, other keys
  auto first = us.Write(Incr("stock", -1));
  auto second = us.Write(Incr("stock", -2));
  auto third = us.Write(Escrow(EscrowOpKind::kTransfer, "stock", kEu, 3));
  ASSERT_TRUE(first.ok() && second.ok() && third.ok());
  EXPECT_EQ(first->op.counters[0].prev, 0u);
  EXPECT_EQ(second->op.counters[0].prev, first->dot.seq);
  EXPECT_EQ(third->op.escrow.prev, second->dot.seq);

  // eu misses the second (parked on the way, say): the third waits for it.
  DocumentState eu;
  for (const Event& event : us.written) {
    if (event.dot != second->dot) eu.Apply(event, nullptr);
  }
  EXPECT_EQ(eu.Ledger("stock")->Account(kUs).seq, first->dot.seq);
  ASSERT_EQ(eu.escrow_waiting().size(), 1u);
  EXPECT_EQ(eu.escrow_waiting()[0].second.size(), 1u);
  EXPECT_EQ(eu.RenderField("stock"), "29") << "a prefix of us's events: never below the bound";
  const std::string bytes = eu.Encode();
  auto decoded = DocumentState::Decode(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, eu);

  // A merge with a copy that has it all, or the missing event itself, completes the chain.
  const VersionVector none;
  auto merged = MergeStates({eu, us.frontier, none}, {us.doc, us.frontier, none});
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(*merged, us.doc);
  eu.Apply(*second, nullptr);
  EXPECT_TRUE(eu.escrow_waiting().empty());
  EXPECT_EQ(eu, us.doc);

  // us, holding a copy that lacks one of its own events, writes no escrow event of the field.
  Writer restored(kUs);
  for (const Event& event : us.written) {
    if (event.dot != second->dot) restored.Receive(event);
  }
  EXPECT_EQ(restored.Write(Incr("stock", -1)).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(restored.Write(Escrow(EscrowOpKind::kWant, "stock", 0, 4)).status().code(),
            StatusCode::kUnavailable);
}

// What the fuzz target asks of every decoder, on bytes near valid escrow content: each byte of an
// escrow event and of a document state with ledgers and waiting events, replaced by other
// values, never crashes, and whatever decodes survives a round trip and applies and renders.
TEST(BoundedDocumentTest, DecodersSurviveMutatedEscrowBytes) {
  Writer us(kUs);
  ASSERT_TRUE(us.Write(Set("stock", "30")).ok());
  ASSERT_TRUE(us.Write(Declare("stock", 0)).ok());
  ASSERT_TRUE(us.Write(Incr("stock", -1)).ok());
  ASSERT_TRUE(us.Write(Incr("stock", -2)).ok());
  ASSERT_TRUE(us.Write(Escrow(EscrowOpKind::kTransfer, "stock", kEu, 3)).ok());
  DocumentState gapped;
  for (size_t i = 0; i < us.written.size(); ++i) {
    if (i != 2) gapped.Apply(us.written[i], nullptr);
  }
  std::vector<std::string> inputs = {us.doc.Encode(), gapped.Encode()};
  for (const Event& event : us.written) inputs.push_back(EncodeEvent(event));
  size_t decoded = 0;
  for (const std::string& input : inputs) {
    for (size_t at = 0; at < input.size(); ++at) {
      for (int value : {0x00, 0x01, 0x02, 0x05, 0x1f, 0x20, 0x7f, 0x80, 0xff}) {
        std::string bytes = input;
        bytes[at] = static_cast<char>(value);
        if (auto event = DecodeEvent(bytes, Limits{}); event.ok()) {
          ++decoded;
          auto again = DecodeEvent(EncodeEvent(*event), Limits{});
          ASSERT_TRUE(again.ok() && *again == *event);
          DocumentState state = us.doc;
          state.Apply(*event, nullptr);
          (void)state.Render();
          ASSERT_TRUE(DocumentState::Decode(state.Encode()).ok());
        }
        if (auto state = DocumentState::Decode(bytes); state.ok()) {
          ++decoded;
          auto again = DocumentState::Decode(state->Encode());
          ASSERT_TRUE(again.ok() && *again == *state);
          (void)state->Render();
        }
      }
    }
  }
  EXPECT_GT(decoded, 0u);
}

// --- the command path ------------------------------------------------------------------------

TEST(BoundedStampTest, SetsReplacesAndDeletesOfABoundedFieldAreRefused) {
  Writer us(kUs);
  ASSERT_TRUE(us.Write(Set("stock", "3")).ok());
  ASSERT_TRUE(us.Write(Declare("stock", 0)).ok());
  EXPECT_EQ(us.Write(Set("stock", "5")).status().code(), StatusCode::kBoundedField);
  Operation replace = Set("name", "\"x\"");
  replace.kind = OpKind::kReplace;
  EXPECT_EQ(us.Write(replace).status().code(), StatusCode::kBoundedField);
  EXPECT_EQ(us.Write(Delete()).status().code(), StatusCode::kBoundedField);
  EXPECT_TRUE(us.Write(Set("name", "\"x\"")).ok()) << "other fields take sets";
  EXPECT_EQ(us.doc.Render(), R"({"name":"x","stock":3})");
}

TEST(BoundedStampTest, ADeclarationNeedsAnIntegerAtLeastMinAndComesOnce) {
  Writer us(kUs);
  ASSERT_TRUE(us.Write(Set("price", "2.5")).ok());
  ASSERT_TRUE(us.Write(Set("stock", "4")).ok());
  EXPECT_EQ(us.Write(Declare("price", 0)).status().code(), StatusCode::kTypeMismatch);
  EXPECT_EQ(us.Write(Declare("stock", 5)).status().code(), StatusCode::kBoundExceeded);
  auto declared = us.Write(Declare("stock", 4));
  ASSERT_TRUE(declared.ok());
  EXPECT_TRUE(declared->op.escrow.shares.empty()) << "room 0: no shares";
  EXPECT_TRUE(RepeatedDeclaration(Declare("stock", 4), &us.doc));
  EXPECT_FALSE(RepeatedDeclaration(Declare("stock", 3), &us.doc));
  EXPECT_EQ(us.Write(Declare("stock", 4)).status().code(), StatusCode::kBoundedField);
  EXPECT_EQ(us.Write(Declare("stock", 3)).status().code(), StatusCode::kBoundedField);
  EXPECT_EQ(us.Write(Incr("stock", -1)).status().code(), StatusCode::kBoundExceeded);
  ASSERT_TRUE(us.Write(Incr("stock", 2)).ok());
  ASSERT_TRUE(us.Write(Incr("stock", -2)).ok());

  // A region holding others' escrow events of a field, not its declaration, does not declare.
  Writer eu(kEu);
  eu.Receive(us.written.back());
  EXPECT_EQ(eu.Write(Declare("stock", 0)).status().code(), StatusCode::kBoundedField);
}

TEST(BoundedStampTest, TransfersAcceptsAndWantsNeedABoundedField) {
  Writer us(kUs);
  EXPECT_EQ(us.Write(Escrow(EscrowOpKind::kWant, "stock", 0, 5)).status().code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(us.Write(Declare("stock", 0)).ok());
  EXPECT_TRUE(us.Write(Escrow(EscrowOpKind::kWant, "stock", 0, 5)).ok());
  EXPECT_EQ(us.Write(Escrow(EscrowOpKind::kTransfer, "stock", kUs, 1)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(us.Write(Escrow(EscrowOpKind::kAccept, "stock", kEu, 1)).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace meridian::core
