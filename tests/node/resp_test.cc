// The Redis protocol's pure parts (api/resp.h): request parsing, reply writing in RESP2 and
// RESP3, the mapping of Redis values onto documents, and key patterns.
#include "api/resp.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace meridian::api::resp {
namespace {

struct Outcome {
  Parsed parsed;
  std::vector<std::string> args;
  size_t consumed = 0;
  std::string error;
};

Outcome Parse(std::string_view input, ParseLimits limits = {}) {
  Outcome outcome;
  outcome.parsed = ParseCommand(input, limits, &outcome.args, &outcome.consumed, &outcome.error);
  return outcome;
}

TEST(RespParse, AnArrayOfBulkStrings) {
  const std::string wire = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nx!\r\n*1\r\n$4\r\nPING\r\n";
  Outcome first = Parse(wire);
  ASSERT_EQ(first.parsed, Parsed::kCommand);
  EXPECT_EQ(first.args, (std::vector<std::string>{"SET", "k", "v\r\nx!"}));  // binary-safe
  Outcome second = Parse(std::string_view(wire).substr(first.consumed));
  ASSERT_EQ(second.parsed, Parsed::kCommand);
  EXPECT_EQ(second.args, std::vector<std::string>{"PING"});
  EXPECT_EQ(first.consumed + second.consumed, wire.size());
}

TEST(RespParse, EveryPrefixOfACommandNeedsMore) {
  const std::string wire = "*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
  for (size_t n = 0; n < wire.size(); ++n) {
    Outcome outcome = Parse(std::string_view(wire).substr(0, n));
    EXPECT_EQ(outcome.parsed, Parsed::kNeedMore) << n;
    EXPECT_EQ(outcome.consumed, 0u) << n;
  }
  EXPECT_EQ(Parse(wire).parsed, Parsed::kCommand);
}

TEST(RespParse, InlineCommandsWithQuotes) {
  Outcome outcome = Parse("set \"a b\" 'it\\'s' \"\\x41\\n\"\r\n");
  ASSERT_EQ(outcome.parsed, Parsed::kCommand);
  EXPECT_EQ(outcome.args, (std::vector<std::string>{"set", "a b", "it's", "A\n"}));
  EXPECT_EQ(Parse("PING\n").args, std::vector<std::string>{"PING"});
  EXPECT_EQ(Parse("get \"open\r\n").parsed, Parsed::kError);
  // An empty line is consumed and skipped.
  Outcome empty = Parse("\r\nPING\r\n");
  EXPECT_EQ(empty.parsed, Parsed::kNeedMore);
  EXPECT_EQ(empty.consumed, 2u);
}

TEST(RespParse, MalformedAndOversizedRequestsAreErrors) {
  EXPECT_EQ(Parse("*x\r\n").parsed, Parsed::kError);
  EXPECT_EQ(Parse("*1\r\n:5\r\n").parsed, Parsed::kError);
  EXPECT_EQ(Parse("*1\r\n$-5\r\n").parsed, Parsed::kError);
  EXPECT_EQ(Parse("*1\r\n$3\r\nabcX\r\n").parsed, Parsed::kError);  // no CRLF after the bytes
  ParseLimits small;
  small.args_max = 2;
  small.bulk_bytes_max = 4;
  small.inline_bytes_max = 8;
  EXPECT_EQ(Parse("*3\r\n", small).parsed, Parsed::kError);
  EXPECT_EQ(Parse("*1\r\n$5\r\n", small).parsed, Parsed::kError);
  EXPECT_EQ(Parse("aaaaaaaaaaaa", small).parsed, Parsed::kError);  // a line too long, unfinished
  // *0 is an empty request, skipped.
  Outcome zero = Parse("*0\r\n");
  EXPECT_EQ(zero.parsed, Parsed::kNeedMore);
  EXPECT_EQ(zero.consumed, 4u);
}

TEST(RespWriter, Resp2AndResp3Forms) {
  std::string two;
  Writer w2(&two, 2);
  w2.Simple("OK");
  w2.Error("ERR a\r\nb");
  w2.Integer(-7);
  w2.Bulk("hi");
  w2.Null();
  w2.NullArray();
  w2.Map(1);
  w2.Push(2);
  EXPECT_EQ(two, "+OK\r\n-ERR a  b\r\n:-7\r\n$2\r\nhi\r\n$-1\r\n*-1\r\n*2\r\n*2\r\n");
  std::string three;
  Writer w3(&three, 3);
  w3.Null();
  w3.Map(1);
  w3.Push(2);
  w3.Double(1.5);
  EXPECT_EQ(three, "_\r\n%1\r\n>2\r\n,1.5\r\n");
}

TEST(RespValues, IntegersBecomeJsonNumbersAndTheRestStrings) {
  EXPECT_EQ(JsonOfValue("42"), "42");
  EXPECT_EQ(JsonOfValue("-9223372036854775808"), "-9223372036854775808");
  EXPECT_EQ(JsonOfValue("9223372036854775808"), "\"9223372036854775808\"");  // past int64
  EXPECT_EQ(JsonOfValue("007"), "\"007\"");
  EXPECT_EQ(JsonOfValue("-0"), "\"-0\"");
  EXPECT_EQ(JsonOfValue("+1"), "\"+1\"");
  EXPECT_EQ(JsonOfValue("1.5"), "\"1.5\"");
  EXPECT_EQ(JsonOfValue("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(JsonOfValue(std::string("\xff\xfe", 2)), std::nullopt);
  for (const std::string value : {"42", "plain", "a\"b\\c\n\x01", "{\"x\":1}", "", "ünï"}) {
    EXPECT_EQ(ValueOfJson(*JsonOfValue(value)), value);
  }
  EXPECT_EQ(ValueOfJson("true"), "true");
  EXPECT_EQ(ValueOfJson("[1,2]"), "[1,2]");
}

TEST(RespValues, AStringIsADocumentWhoseOnlyFieldIsValue) {
  EXPECT_EQ(StringValue("{\"value\":\"x\"}"), "\"x\"");
  EXPECT_EQ(StringValue("{\"value\":12}"), "12");
  EXPECT_EQ(StringValue("{\"value\":\"a\\\"}\"}"), "\"a\\\"}\"");
  EXPECT_EQ(StringValue("{\"value\":[1,{\"a\":2}]}"), "[1,{\"a\":2}]");
  EXPECT_EQ(StringValue("{\"value\":1,\"x\":2}"), std::nullopt);
  EXPECT_EQ(StringValue("{\"value\":\"a\",\"x\":\"b\"}"), std::nullopt);
  EXPECT_EQ(StringValue("{\"other\":1}"), std::nullopt);
  EXPECT_EQ(StringValue("{}"), std::nullopt);
  auto fields = DocumentFields("{\"a\":1,\"b\":\"x\"}");
  ASSERT_TRUE(fields);
  EXPECT_EQ(*fields,
            (std::vector<std::pair<std::string, std::string>>{{"a", "1"}, {"b", "\"x\""}}));
}

TEST(RespPatterns, GlobAsRedisMatches) {
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("user:*", "user:42"));
  EXPECT_FALSE(GlobMatch("user:*", "users:42"));
  EXPECT_TRUE(GlobMatch("h?llo", "hallo"));
  EXPECT_FALSE(GlobMatch("h?llo", "hllo"));
  EXPECT_TRUE(GlobMatch("h[ae]llo", "hello"));
  EXPECT_FALSE(GlobMatch("h[^e]llo", "hello"));
  EXPECT_TRUE(GlobMatch("h[a-b]llo", "hbllo"));
  EXPECT_TRUE(GlobMatch("a\\*b", "a*b"));
  EXPECT_FALSE(GlobMatch("a\\*b", "axb"));
  EXPECT_TRUE(GlobMatch("*a*b*c", "xxaybzzc"));
  EXPECT_FALSE(GlobMatch("*a*b*c", "xxaybzz"));
  EXPECT_TRUE(GlobMatch("__keyspace@0__:*", "__keyspace@0__:k/1"));
  EXPECT_EQ(GlobPrefix("user:*"), "user:");
  EXPECT_EQ(GlobPrefix("a\\*b*"), "a*b");
  EXPECT_EQ(GlobPrefix("[ab]x"), "");
  EXPECT_EQ(GlobPrefix("exact"), "exact");
}

}  // namespace
}  // namespace meridian::api::resp
