#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

#include <nlohmann/json.hpp>

#include "node/json_log.h"

namespace meridian::node {
namespace {

nlohmann::json Format(const std::string& text, spdlog::level::level_enum level) {
  JsonLogFormatter formatter("eu");
  spdlog::details::log_msg message(spdlog::source_loc{}, "", level, text);
  message.time = spdlog::log_clock::time_point(std::chrono::milliseconds(1'765'000'000'123));
  spdlog::memory_buf_t out;
  formatter.format(message, out);
  const std::string line(out.data(), out.size());
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;  // one line, whatever the message
  return nlohmann::json::parse(line);
}

TEST(JsonLogTest, OneObjectPerLineWithTimeLevelRegionThreadAndMessage) {
  const nlohmann::json line = Format("replication: subscribed to us", spdlog::level::info);
  EXPECT_EQ(line["time"], "2025-12-06T05:46:40.123Z");
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["region"], "eu");
  EXPECT_TRUE(line["thread"].is_string());
  EXPECT_EQ(line["message"], "replication: subscribed to us");
  EXPECT_EQ(Format("x", spdlog::level::warn)["level"], "warning");
  EXPECT_EQ(Format("x", spdlog::level::err)["level"], "error");
}

TEST(JsonLogTest, QuotesNewlinesAndBytesThatAreNotUtf8StayValidJson) {
  const std::string awkward = "key \"a\\b\"\nsecond line\ttab \x01 and \xff\xfe bytes";
  const nlohmann::json line = Format(awkward, spdlog::level::err);
  EXPECT_EQ(line["message"],
            "key \"a\\b\"\nsecond line\ttab \x01 and \xef\xbf\xbd\xef\xbf\xbd bytes");
}

}  // namespace
}  // namespace meridian::node
