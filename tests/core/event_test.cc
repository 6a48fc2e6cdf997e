#include "core/event.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "core/trace.h"
#include "meridian/event.pb.h"

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
}  // namespace core
}  // namespace meridian

namespace meridian::core {
namespace {

// Limits small enough that a test can cross each of them with a few bytes.
Limits SmallLimits() {
  Limits limits;
  limits.key_bytes_max = 8;
  limits.field_name_bytes_max = 4;
  limits.value_bytes_max = 6;
  limits.document_bytes_max = 24;
  limits.fields_max = 3;
  return limits;
}

Operation SetOp(std::vector<FieldValue> fields) {
  Operation op;
  op.kind = OpKind::kSet;
  op.fields = std::move(fields);
  return op;
}

Operation IncrementOp(std::vector<CounterDelta> counters) {
  Operation op;
  op.kind = OpKind::kIncrement;
  op.counters = std::move(counters);
  return op;
}

// A valid event of origin 2, seq 3, having seen 1:4 and its own first two events.
Event MakeEvent(Operation op) {
  Event event;
  event.dot = Dot{2, 3};
  event.hlc = MakeHlc(1732233600123, 7);
  event.context = VersionVector{{1, 4}, {2, 2}};
  event.key = "orders/42";
  event.op = std::move(op);
  return event;
}

Event SetEvent() {
  return MakeEvent(SetOp({{"price", "12.5"}, {"title", "\"Lamp\""}}));
}

// The wire message of an event, for tests that then corrupt one of its fields.
wire::Event WireOf(const Event& event) {
  wire::Event message;
  EXPECT_TRUE(message.ParseFromString(EncodeEvent(event)));
  return message;
}

StatusCode DecodeCode(const wire::Event& message, const Limits& limits = {}) {
  return DecodeEvent(message.SerializeAsString(), limits).status().code();
}

// --- OpKindName, UTF-8 -------------------------------------------------------------------------

TEST(OpKindTest, Names) {
  EXPECT_EQ(OpKindName(OpKind::kSet), "set");
  EXPECT_EQ(OpKindName(OpKind::kReplace), "replace");
  EXPECT_EQ(OpKindName(OpKind::kIncrement), "increment");
  EXPECT_EQ(OpKindName(OpKind::kDelete), "delete");
}

TEST(Utf8Test, AcceptsWellFormedText) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8(std::string("nul\0inside", 10)));
  EXPECT_TRUE(IsValidUtf8("\xC3\xA9"));          // é
  EXPECT_TRUE(IsValidUtf8("\xE2\x82\xAC"));      // €
  EXPECT_TRUE(IsValidUtf8("\xF0\x9D\x84\x9E"));  // 𝄞
  EXPECT_TRUE(IsValidUtf8("\xC2\x80"));          // U+0080, smallest 2-byte
  EXPECT_TRUE(IsValidUtf8("\xE0\xA0\x80"));      // U+0800, smallest 3-byte
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));      // U+E000, just above the surrogates
  EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80"));  // U+10000, smallest 4-byte
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the last code point
}

TEST(Utf8Test, RejectsMalformedText) {
  for (const std::string& text : {
           std::string("\x80"),                  // lone continuation byte
           std::string("\xBF"),                  // lone continuation byte
           std::string("\xFF"),                  // never valid
           std::string("\xFE"),                  // never valid
           std::string("\xC3"),                  // truncated 2-byte
           std::string("\xE2\x82"),              // truncated 3-byte
           std::string("\xF0\x9D\x84"),          // truncated 4-byte
           std::string("\xC3\x28"),              // bad continuation
           std::string("a\xE2\x28\xA1z"),        // bad continuation in the middle
           std::string("\xC0\xAF"),              // overlong '/'
           std::string("\xC1\xBF"),              // overlong 2-byte
           std::string("\xE0\x80\xAF"),          // overlong 3-byte '/'
           std::string("\xE0\x9F\xBF"),          // overlong 3-byte (U+07FF)
           std::string("\xF0\x80\x80\xAF"),      // overlong 4-byte '/'
           std::string("\xF0\x8F\xBF\xBF"),      // overlong 4-byte (U+FFFF)
           std::string("\xED\xA0\x80"),          // U+D800, a surrogate
           std::string("\xED\xBF\xBF"),          // U+DFFF, a surrogate
           std::string("\xF4\x90\x80\x80"),      // U+110000, beyond Unicode
           std::string("\xF8\x88\x80\x80\x80"),  // 5-byte form
       }) {
    EXPECT_FALSE(IsValidUtf8(text)) << testing::PrintToString(text);
  }
}

// --- ValidateKey -------------------------------------------------------------------------------

TEST(ValidateKeyTest, AcceptsKeysUpToTheLimit) {
  const Limits limits = SmallLimits();
  EXPECT_TRUE(ValidateKey("k", limits).ok());
  EXPECT_TRUE(ValidateKey("12345678", limits).ok());
  EXPECT_TRUE(ValidateKey("\xF0\x9D\x84\x9E\xC3\xA9!", limits).ok());  // multi-byte, 7 bytes
  EXPECT_TRUE(ValidateKey(std::string(1024, 'k'), Limits{}).ok());
}

TEST(ValidateKeyTest, RejectsAnEmptyKey) {
  EXPECT_EQ(ValidateKey("", Limits{}).code(), StatusCode::kInvalidArgument);
}

TEST(ValidateKeyTest, RejectsAKeyOverTheLimit) {
  EXPECT_EQ(ValidateKey("123456789", SmallLimits()).code(), StatusCode::kTooLarge);
  EXPECT_EQ(ValidateKey(std::string(1025, 'k'), Limits{}).code(), StatusCode::kTooLarge);
  // The limit counts bytes, not characters: four 3-byte characters are 12 bytes.
  EXPECT_EQ(ValidateKey("\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC", SmallLimits()).code(),
            StatusCode::kTooLarge);
}

TEST(ValidateKeyTest, RejectsInvalidUtf8) {
  for (const std::string& key :
       {std::string("a\xFF"), std::string("\xC0\xAF"), std::string("\xE0\x80\xAF"),
        std::string("\xF0\x80\x80\xAF"), std::string("\xED\xA0\x80"), std::string("\xED\xBF\xBF"),
        std::string("ab\xE2\x82")}) {
    EXPECT_EQ(ValidateKey(key, Limits{}).code(), StatusCode::kInvalidArgument)
        << testing::PrintToString(key);
  }
}

// --- CanonicalJson -----------------------------------------------------------------------------

TEST(CanonicalJsonTest, SortsObjectMembersAtEveryDepthAndDropsSpaces) {
  auto canonical = CanonicalJson(R"( { "b" : 1 , "a" : [ 3, { "z": true, "y": null } ] } )");
  ASSERT_TRUE(canonical.ok()) << canonical.status().ToString();
  EXPECT_EQ(*canonical, R"({"a":[3,{"y":null,"z":true}],"b":1})");
}

TEST(CanonicalJsonTest, ScalarsAndNumbers) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"42", "42"},
      {"-7", "-7"},
      {" 5 ", "5"},
      {"2.50", "2.5"},
      {"0.1", "0.1"},
      {"true", "true"},
      {"null", "null"},
      {"\"x\"", "\"x\""},
      {"[]", "[]"},
      {"{}", "{}"},
      {"\"\\u00e9\"", "\"\xC3\xA9\""},
  };
  for (const auto& [input, expected] : cases) {
    auto canonical = CanonicalJson(input);
    ASSERT_TRUE(canonical.ok()) << input << ": " << canonical.status().ToString();
    EXPECT_EQ(*canonical, expected) << input;
  }
}

TEST(CanonicalJsonTest, IsIdempotent) {
  for (const char* input :
       {R"({"b":[1.25,{"d":"\u00e9","c":-0.5}],"a":"x y"})", "1e2", "[1, 2 , 3]", "\"\\n\""}) {
    auto once = CanonicalJson(input);
    ASSERT_TRUE(once.ok()) << input;
    auto twice = CanonicalJson(*once);
    ASSERT_TRUE(twice.ok()) << *once;
    EXPECT_EQ(*twice, *once);
  }
}

TEST(CanonicalJsonTest, EqualDocumentsWithDifferentSpellingsCanonicalizeEqually) {
  auto a = CanonicalJson(R"({"x": 1.50, "y": [true]})");
  auto b = CanonicalJson("{\n  \"y\" : [ true ],\n  \"x\" : 1.5\n}");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(CanonicalJsonTest, RejectsMalformedJson) {
  for (const char* input : {"", "   ", "{", "}", "[1,]", "{\"a\":}", "{'a':1}", "tru", "1 2", "01",
                            "NaN", "\"unterminated", "{\"a\" 1}", "[1]x"}) {
    auto canonical = CanonicalJson(input);
    EXPECT_FALSE(canonical.ok()) << '"' << input << "\" gave " << *canonical;
    EXPECT_EQ(canonical.status().code(), StatusCode::kInvalidArgument) << input;
  }
}

TEST(CanonicalJsonTest, RejectsInvalidUtf8) {
  for (const std::string& input :
       {std::string("\"\xFF\""), std::string("\"\xC0\xAF\""), std::string("\"\xED\xA0\x80\""),
        std::string("{\"\xFF\":1}"), std::string("\"\\ud800\"")}) {
    auto canonical = CanonicalJson(input);
    EXPECT_FALSE(canonical.ok()) << testing::PrintToString(input);
  }
}

// --- NormalizeOperation ------------------------------------------------------------------------

TEST(NormalizeOperationTest, SortsFieldsByName) {
  Operation op = SetOp({{"c", "3"}, {"a", "1"}, {"b", "2"}});
  ASSERT_TRUE(NormalizeOperation(&op, Limits{}).ok());
  EXPECT_EQ(op.fields, (std::vector<FieldValue>{{"a", "1"}, {"b", "2"}, {"c", "3"}}));
}

TEST(NormalizeOperationTest, SortsCountersByName) {
  Operation op = IncrementOp({{"z", 1}, {"m", -2}, {"a", 3}});
  ASSERT_TRUE(NormalizeOperation(&op, Limits{}).ok());
  EXPECT_EQ(op.counters, (std::vector<CounterDelta>{{"a", 3}, {"m", -2}, {"z", 1}}));
}

TEST(NormalizeOperationTest, AcceptsEveryKindInItsValidShape) {
  Operation set = SetOp({{"a", "1"}});
  EXPECT_TRUE(NormalizeOperation(&set, Limits{}).ok());
  Operation replace;
  replace.kind = OpKind::kReplace;
  replace.fields = {{"a", "1"}};
  EXPECT_TRUE(NormalizeOperation(&replace, Limits{}).ok());
  Operation empty_replace;  // replace with an empty document
  empty_replace.kind = OpKind::kReplace;
  EXPECT_TRUE(NormalizeOperation(&empty_replace, Limits{}).ok());
  Operation increment = IncrementOp({{"n", 1}});
  EXPECT_TRUE(NormalizeOperation(&increment, Limits{}).ok());
  Operation del;
  del.kind = OpKind::kDelete;
  EXPECT_TRUE(NormalizeOperation(&del, Limits{}).ok());
}

TEST(NormalizeOperationTest, RejectsDuplicateFieldNames) {
  Operation op = SetOp({{"b", "1"}, {"a", "1"}, {"b", "2"}});
  EXPECT_EQ(NormalizeOperation(&op, Limits{}).code(), StatusCode::kInvalidArgument);
}

TEST(NormalizeOperationTest, RejectsDuplicateCounterNames) {
  Operation op = IncrementOp({{"n", 1}, {"n", 2}});
  EXPECT_EQ(NormalizeOperation(&op, Limits{}).code(), StatusCode::kInvalidArgument);
}

TEST(NormalizeOperationTest, RejectsEmptyNames) {
  Operation set = SetOp({{"", "1"}});
  EXPECT_EQ(NormalizeOperation(&set, Limits{}).code(), StatusCode::kInvalidArgument);
  Operation increment = IncrementOp({{"", 1}});
  EXPECT_EQ(NormalizeOperation(&increment, Limits{}).code(), StatusCode::kInvalidArgument);
}

TEST(NormalizeOperationTest, RejectsInvalidUtf8Names) {
  Operation set = SetOp({{"a\xFF", "1"}});
  EXPECT_EQ(NormalizeOperation(&set, Limits{}).code(), StatusCode::kInvalidArgument);
  Operation surrogate = SetOp({{"\xED\xA0\x80", "1"}});
  EXPECT_EQ(NormalizeOperation(&surrogate, Limits{}).code(), StatusCode::kInvalidArgument);
  Operation increment = IncrementOp({{"\xC0\xAF", 1}});
  EXPECT_EQ(NormalizeOperation(&increment, Limits{}).code(), StatusCode::kInvalidArgument);
}

TEST(NormalizeOperationTest, FieldNameLimit) {
  Operation at_limit = SetOp({{"abcd", "1"}});
  EXPECT_TRUE(NormalizeOperation(&at_limit, SmallLimits()).ok());
  Operation over = SetOp({{"abcde", "1"}});
  EXPECT_EQ(NormalizeOperation(&over, SmallLimits()).code(), StatusCode::kTooLarge);
  Operation counter_over = IncrementOp({{"abcde", 1}});
  EXPECT_EQ(NormalizeOperation(&counter_over, SmallLimits()).code(), StatusCode::kTooLarge);
}

TEST(NormalizeOperationTest, ValueLimit) {
  Operation at_limit = SetOp({{"a", "123456"}});
  EXPECT_TRUE(NormalizeOperation(&at_limit, SmallLimits()).ok());
  Operation over = SetOp({{"a", "1234567"}});
  EXPECT_EQ(NormalizeOperation(&over, SmallLimits()).code(), StatusCode::kTooLarge);
  Operation replace_over;
  replace_over.kind = OpKind::kReplace;
  replace_over.fields = {{"a", "\"abcde\""}};
  EXPECT_EQ(NormalizeOperation(&replace_over, SmallLimits()).code(), StatusCode::kTooLarge);
}

TEST(NormalizeOperationTest, FieldCountLimit) {
  Operation at_limit = SetOp({{"a", "1"}, {"b", "2"}, {"c", "3"}});
  EXPECT_TRUE(NormalizeOperation(&at_limit, SmallLimits()).ok());
  Operation over = SetOp({{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}});
  EXPECT_EQ(NormalizeOperation(&over, SmallLimits()).code(), StatusCode::kTooLarge);
  Operation counters_over = IncrementOp({{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}});
  EXPECT_EQ(NormalizeOperation(&counters_over, SmallLimits()).code(), StatusCode::kTooLarge);
}

TEST(NormalizeOperationTest, DocumentLimit) {
  // Each field is within its own limits; together they are not.
  Limits limits = SmallLimits();
  limits.document_bytes_max = 12;
  Operation within = SetOp({{"ab", "1234"}, {"cd", "1234"}});  // 12 bytes
  EXPECT_TRUE(NormalizeOperation(&within, limits).ok());
  Operation over = SetOp({{"ab", "1234"}, {"cd", "12345"}});  // 13 bytes
  EXPECT_EQ(NormalizeOperation(&over, limits).code(), StatusCode::kTooLarge);
  limits.document_bytes_max = 4;
  Operation counters = IncrementOp({{"ab", 1}, {"cd", 1}});
  EXPECT_EQ(NormalizeOperation(&counters, limits).code(), StatusCode::kTooLarge);
}

TEST(NormalizeOperationTest, RejectsAnIncrementWithNoCounters) {
  Operation op = IncrementOp({});
  EXPECT_EQ(NormalizeOperation(&op, Limits{}).code(), StatusCode::kInvalidArgument);
}

TEST(NormalizeOperationTest, RejectsAnIncrementCarryingFieldValues) {
  Operation op = IncrementOp({{"n", 1}});
  op.fields = {{"a", "1"}};
  EXPECT_EQ(NormalizeOperation(&op, Limits{}).code(), StatusCode::kInvalidArgument);
}

TEST(NormalizeOperationTest, RejectsADeleteWithFieldsOrCounters) {
  Operation with_fields;
  with_fields.kind = OpKind::kDelete;
  with_fields.fields = {{"a", "1"}};
  EXPECT_EQ(NormalizeOperation(&with_fields, Limits{}).code(), StatusCode::kInvalidArgument);
  Operation with_counters;
  with_counters.kind = OpKind::kDelete;
  with_counters.counters = {{"n", 1}};
  EXPECT_EQ(NormalizeOperation(&with_counters, Limits{}).code(), StatusCode::kInvalidArgument);
}

TEST(NormalizeOperationTest, RejectsASetOrReplaceCarryingCounters) {
  Operation set = SetOp({{"a", "1"}});
  set.counters = {{"n", 1}};
  EXPECT_EQ(NormalizeOperation(&set, Limits{}).code(), StatusCode::kInvalidArgument);
  Operation replace;
  replace.kind = OpKind::kReplace;
  replace.counters = {{"n", 1}};
  EXPECT_EQ(NormalizeOperation(&replace, Limits{}).code(), StatusCode::kInvalidArgument);
}

TEST(NormalizeOperationTest, RejectsAnUnknownKind) {
  Operation op;
  op.kind = static_cast<OpKind>(9);
  EXPECT_EQ(NormalizeOperation(&op, Limits{}).code(), StatusCode::kInvalidArgument);
}

TEST(NormalizeOperationTest, RejectsAValueThatIsNotJson) {
  for (const char* value : {"not json", "", "{", "[1,]", "\"\xFF\""}) {
    Operation op = SetOp({{"a", value}});
    EXPECT_EQ(NormalizeOperation(&op, Limits{}).code(), StatusCode::kInvalidArgument)
        << testing::PrintToString(std::string(value));
  }
}

TEST(NormalizeOperationTest, PutsEveryValueInCanonicalForm) {
  Operation op = SetOp({{"b", R"({ "y": 1, "x": [ 2.50 ] })"}, {"a", " true "}});
  ASSERT_TRUE(NormalizeOperation(&op, Limits{}).ok());
  EXPECT_EQ(op.fields, (std::vector<FieldValue>{{"a", "true"}, {"b", R"({"x":[2.5],"y":1})"}}));
  // Normalizing twice changes nothing.
  const Operation once = op;
  ASSERT_TRUE(NormalizeOperation(&op, Limits{}).ok());
  EXPECT_EQ(op, once);
}

TEST(NormalizeOperationTest, ValueLimitAppliesAfterCanonicalization) {
  Operation spaced = SetOp({{"a", "[ 1 , 2 ]"}});  // 9 bytes as sent, 5 canonical
  ASSERT_TRUE(NormalizeOperation(&spaced, SmallLimits()).ok());
  EXPECT_EQ(spaced.fields[0].value, "[1,2]");
}

// --- ValidateEvent -----------------------------------------------------------------------------

TEST(ValidateEventTest, AcceptsAWellFormedEvent) {
  EXPECT_TRUE(ValidateEvent(SetEvent(), Limits{}).ok());
  Event first = SetEvent();
  first.dot = Dot{0, 1};
  first.context = VersionVector{{5, 9}};  // nothing of its own origin yet
  EXPECT_TRUE(ValidateEvent(first, Limits{}).ok());
}

TEST(ValidateEventTest, RejectsBadDotsContextsTimestampsAndKeys) {
  Event origin = SetEvent();
  origin.dot.origin = 32;
  EXPECT_FALSE(ValidateEvent(origin, Limits{}).ok());
  Event seq = SetEvent();
  seq.dot.seq = 0;
  seq.context.Set(2, 0);
  EXPECT_FALSE(ValidateEvent(seq, Limits{}).ok());
  Event covers_itself = SetEvent();
  covers_itself.context.Set(2, 3);
  EXPECT_FALSE(ValidateEvent(covers_itself, Limits{}).ok());
  Event gap = SetEvent();
  gap.context.Set(2, 1);
  EXPECT_FALSE(ValidateEvent(gap, Limits{}).ok());
  Event no_time = SetEvent();
  no_time.hlc = MakeHlc(0, 5);
  EXPECT_FALSE(ValidateEvent(no_time, Limits{}).ok());
  Event key = SetEvent();
  key.key = "";
  EXPECT_FALSE(ValidateEvent(key, Limits{}).ok());
}

// --- EncodeEvent / DecodeEvent -----------------------------------------------------------------

TEST(EventCodecTest, RoundTripsASet) {
  const Event event = SetEvent();
  auto decoded = DecodeEvent(EncodeEvent(event), Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, event);
}

TEST(EventCodecTest, RoundTripsAReplace) {
  Operation op;
  op.kind = OpKind::kReplace;
  op.fields = {{"a", R"({"nested":[1,"\u00e9"]})"}, {"\xC3\xA9t\xC3\xA9", "true"}};
  ASSERT_TRUE(CanonicalJson(op.fields[0].value).ok());
  op.fields[0].value = *CanonicalJson(op.fields[0].value);
  const Event event = MakeEvent(op);
  auto decoded = DecodeEvent(EncodeEvent(event), Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, event);
}

TEST(EventCodecTest, RoundTripsAnEmptyReplace) {
  Operation op;
  op.kind = OpKind::kReplace;
  const Event event = MakeEvent(op);
  auto decoded = DecodeEvent(EncodeEvent(event), Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, event);
}

TEST(EventCodecTest, RoundTripsAnIncrementWithExtremeDeltas) {
  const Event event = MakeEvent(IncrementOp({{"a", std::numeric_limits<int64_t>::min()},
                                             {"b", -1},
                                             {"c", 0},
                                             {"d", std::numeric_limits<int64_t>::max()}}));
  auto decoded = DecodeEvent(EncodeEvent(event), Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, event);
}

TEST(EventCodecTest, RoundTripsADelete) {
  Operation op;
  op.kind = OpKind::kDelete;
  Event event = MakeEvent(op);
  event.dot = Dot{31, 1};
  event.context = VersionVector{};
  event.hlc = UINT64_MAX;
  auto decoded = DecodeEvent(EncodeEvent(event), Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, event);
}

TEST(EventCodecTest, EncodingIsDeterministic) {
  EXPECT_EQ(EncodeEvent(SetEvent()), EncodeEvent(SetEvent()));
  Event other = SetEvent();
  other.op.fields[0].value = "12.25";
  EXPECT_NE(EncodeEvent(other), EncodeEvent(SetEvent()));
}

TEST(EventCodecTest, WireFieldsMatchTheEvent) {
  const wire::Event message = WireOf(SetEvent());
  // Without escrow content, the version every build reads.
  EXPECT_EQ(message.schema_version(), 1u);
  EXPECT_EQ(message.origin(), 2u);
  EXPECT_EQ(message.seq(), 3u);
  EXPECT_EQ(message.hlc(), MakeHlc(1732233600123, 7));
  EXPECT_EQ(message.context(), (VersionVector{{1, 4}, {2, 2}}).Encode());
  EXPECT_EQ(message.key(), "orders/42");
  EXPECT_EQ(message.operation().kind(), wire::Operation::SET);
  ASSERT_EQ(message.operation().fields_size(), 2);
  EXPECT_EQ(message.operation().fields(0).name(), "price");
  EXPECT_EQ(message.operation().fields(0).value(), "12.5");
}

TEST(EventCodecTest, DecodeRejectsGarbage) {
  for (const std::string& bytes : {std::string("\xFF\xFF\xFF\xFF"),
                                   std::string("\x0A\x05"
                                               "ab"),
                                   std::string("hello, world"), std::string(1, '\x08')}) {
    auto decoded = DecodeEvent(bytes, Limits{});
    EXPECT_FALSE(decoded.ok()) << testing::PrintToString(bytes);
  }
  // An empty message has no schema version.
  EXPECT_FALSE(DecodeEvent("", Limits{}).ok());
}

TEST(EventCodecTest, DecodeRejectsEveryTruncation) {
  const std::string bytes = EncodeEvent(SetEvent());
  for (size_t length = 0; length < bytes.size(); ++length) {
    EXPECT_FALSE(DecodeEvent(std::string_view(bytes).substr(0, length), Limits{}).ok())
        << "prefix of " << length << " bytes";
  }
}

TEST(EventCodecTest, DecodeSurvivesCorruptedBytes) {
  const std::string bytes = EncodeEvent(SetEvent());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (const int mask : {0x01, 0x80, 0xFF}) {
      std::string corrupted = bytes;
      corrupted[i] = static_cast<char>(corrupted[i] ^ mask);
      auto decoded = DecodeEvent(corrupted, Limits{});
      if (decoded.ok()) {
        // Whatever decodes must be a valid event, and encode back to something that decodes equal.
        EXPECT_TRUE(ValidateEvent(*decoded, Limits{}).ok());
        auto again = DecodeEvent(EncodeEvent(*decoded), Limits{});
        ASSERT_TRUE(again.ok());
        EXPECT_EQ(*again, *decoded);
      }
    }
  }
}

TEST(EventCodecTest, DecodeRejectsAnotherSchemaVersion) {
  wire::Event message = WireOf(SetEvent());
  EXPECT_EQ(DecodeCode(message), StatusCode::kOk);
  message.set_schema_version(kEventSchemaVersion + 1);
  EXPECT_EQ(DecodeCode(message), StatusCode::kUnsupported);
  message.set_schema_version(0);
  EXPECT_EQ(DecodeCode(message), StatusCode::kUnsupported);
}

TEST(EventCodecTest, DecodeRejectsNonCanonicalJsonValues) {
  wire::Event message = WireOf(SetEvent());
  message.mutable_operation()->mutable_fields(0)->set_value("12.50");
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  message.mutable_operation()->mutable_fields(0)->set_value(R"({"b":1, "a":2})");
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  message.mutable_operation()->mutable_fields(0)->set_value("not json");
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  message.mutable_operation()->mutable_fields(0)->set_value(R"({"a":2,"b":1})");
  EXPECT_EQ(DecodeCode(message), StatusCode::kOk);
}

TEST(EventCodecTest, DecodeRejectsAContextThatDoesNotEndJustBeforeTheEvent) {
  wire::Event message = WireOf(SetEvent());  // seq 3 of origin 2
  message.set_context(VersionVector{{1, 4}, {2, 1}}.Encode());
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  message.set_context(VersionVector{{1, 4}, {2, 3}}.Encode());  // covers the event itself
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  message.set_context(VersionVector{{1, 4}}.Encode());
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  message.set_context(VersionVector{{2, 2}}.Encode());
  EXPECT_EQ(DecodeCode(message), StatusCode::kOk);
}

TEST(EventCodecTest, DecodeRejectsAMalformedContext) {
  wire::Event message = WireOf(SetEvent());
  message.set_context(std::string("\x01\x02", 2));  // truncated
  EXPECT_FALSE(DecodeEvent(message.SerializeAsString(), Limits{}).ok());
  std::string trailing = VersionVector{{2, 2}}.Encode() + "x";
  message.set_context(trailing);
  EXPECT_FALSE(DecodeEvent(message.SerializeAsString(), Limits{}).ok());
}

TEST(EventCodecTest, DecodeRejectsOriginsAbove31) {
  Event event = SetEvent();
  event.dot = Dot{32, 1};
  event.context = VersionVector{};
  EXPECT_EQ(DecodeEvent(EncodeEvent(event), Limits{}).status().code(), StatusCode::kCorruption);
  wire::Event message = WireOf(SetEvent());
  message.set_origin(1000);
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
}

TEST(EventCodecTest, DecodeRejectsSeqZero) {
  Event event = SetEvent();
  event.dot = Dot{2, 0};
  event.context = VersionVector{{1, 4}};
  EXPECT_EQ(DecodeEvent(EncodeEvent(event), Limits{}).status().code(), StatusCode::kCorruption);
}

TEST(EventCodecTest, DecodeRejectsAMissingTimestamp) {
  wire::Event message = WireOf(SetEvent());
  message.set_hlc(MakeHlc(0, 3));
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
}

TEST(EventCodecTest, DecodeRejectsUnknownOperationKinds) {
  wire::Event message = WireOf(SetEvent());
  message.mutable_operation()->set_kind(wire::Operation::KIND_UNSPECIFIED);
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  message.mutable_operation()->set_kind(static_cast<wire::Operation::Kind>(9));
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  message.clear_operation();
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
}

TEST(EventCodecTest, DecodeRejectsBadKeys) {
  wire::Event message = WireOf(SetEvent());
  message.set_key("");
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  message.set_key("bad\xFF");
  EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  message.set_key("123456789");
  EXPECT_EQ(DecodeCode(message, SmallLimits()), StatusCode::kCorruption);
}

TEST(EventCodecTest, DecodeRejectsOperationsThatBreakTheRules) {
  {
    wire::Event message = WireOf(SetEvent());
    message.mutable_operation()->mutable_fields(1)->set_name("price");  // duplicate
    EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  }
  {
    wire::Event message = WireOf(SetEvent());
    message.mutable_operation()->mutable_fields(0)->set_name("\xC0\xAF");
    EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);
  }
  {
    wire::Event message = WireOf(SetEvent());
    wire::CounterDelta* counter = message.mutable_operation()->add_counters();
    counter->set_name("n");
    counter->set_delta(1);
    EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);  // a set with a counter
  }
  {
    wire::Event message = WireOf(MakeEvent(IncrementOp({{"n", 1}})));
    message.mutable_operation()->clear_counters();
    EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);  // an increment of nothing
  }
  {
    Operation del;
    del.kind = OpKind::kDelete;
    wire::Event message = WireOf(MakeEvent(del));
    wire::FieldValue* field = message.mutable_operation()->add_fields();
    field->set_name("a");
    field->set_value("1");
    EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption);  // a delete with a field
  }
}

TEST(EventCodecTest, DecodeEnforcesTheReceiverLimits) {
  const std::string bytes = EncodeEvent(SetEvent());
  EXPECT_TRUE(DecodeEvent(bytes, Limits{}).ok());
  Limits names = Limits{};
  names.field_name_bytes_max = 4;  // "price" and "title" are 5 bytes
  EXPECT_EQ(DecodeEvent(bytes, names).status().code(), StatusCode::kCorruption);
  Limits values = Limits{};
  values.value_bytes_max = 4;  // "12.5" fits, "\"Lamp\"" does not
  EXPECT_EQ(DecodeEvent(bytes, values).status().code(), StatusCode::kCorruption);
  Limits count = Limits{};
  count.fields_max = 1;
  EXPECT_EQ(DecodeEvent(bytes, count).status().code(), StatusCode::kCorruption);
}

TEST(EventCodecTest, DecodedOperationsAreSortedByName) {
  wire::Event message = WireOf(MakeEvent(IncrementOp({{"a", 1}, {"b", 2}})));
  message.mutable_operation()->mutable_counters()->SwapElements(0, 1);
  auto decoded = DecodeEvent(message.SerializeAsString(), Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->op.counters, (std::vector<CounterDelta>{{"a", 1}, {"b", 2}}));
}

}  // namespace
}  // namespace meridian::core

namespace meridian::core {
namespace {

TEST(EventTraceTest, ATraceTravelsWithItsEventAndAMalformedOneIsCorrupt) {
  Event event = SetEvent();
  event.trace = *ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  auto decoded = DecodeEvent(EncodeEvent(event), Limits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, event);
  EXPECT_EQ(FormatTraceparent(decoded->trace),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  // Untraced events encode as before: no field.
  EXPECT_EQ(WireOf(SetEvent()).trace(), "");
  for (const std::string& bad :
       {std::string(24, 'x'), std::string(26, 'x'), std::string(16, '\0') + std::string(9, 'x'),
        std::string(16, 'x') + std::string(8, '\0') + "x"}) {
    wire::Event message = WireOf(SetEvent());
    message.set_trace(bad);
    EXPECT_EQ(DecodeCode(message), StatusCode::kCorruption) << Hex(bad);
  }
}

TEST(TraceparentTest, TheW3cFormAndNothingElse) {
  const auto parsed = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(Hex(TraceId(*parsed)), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(Hex(TraceSpanId(*parsed)), "00f067aa0ba902b7");
  EXPECT_EQ(TraceFlags(*parsed), 1);
  // A later version: its first four fields, more may follow.
  EXPECT_TRUE(ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab"));
  for (const char* bad :
       {"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  // version 00: exactly 55
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // version ff
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper case
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}) {
    EXPECT_FALSE(ParseTraceparent(bad).has_value()) << bad;
  }
  EXPECT_EQ(FromHex("0aFf"), std::string("\x0a\xff", 2));
  EXPECT_FALSE(FromHex("abc").has_value());
  EXPECT_FALSE(FromHex("zz").has_value());
  EXPECT_EQ(NewSpanId().size(), 8u);
  EXPECT_NE(NewSpanId(), std::string(8, '\0'));
}

}  // namespace
}  // namespace meridian::core
