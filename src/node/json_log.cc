#include "node/json_log.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

namespace meridian::node {

void JsonLogFormatter::format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& out) {
  const auto since_epoch = message.time.time_since_epoch();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
  const std::time_t time = seconds.count();
  std::tm utc{};
  gmtime_r(&time, &utc);
  char stamp[40];
  const size_t length = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(stamp + length, sizeof stamp - length, ".%03dZ", static_cast<int>(millis));
  // The formatter runs on the thread that logs (the loggers are synchronous).
  char thread[16] = "";
  pthread_getname_np(pthread_self(), thread, sizeof thread);
  const spdlog::string_view_t level = spdlog::level::to_string_view(message.level);
  nlohmann::ordered_json line = {
      {"time", stamp},
      {"level", std::string(level.data(), level.size())},
      {"region", region_},
      {"thread", thread},
      {"message", std::string(message.payload.data(), message.payload.size())}};
  const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out.append(text.data(), text.data() + text.size());
  out.push_back('\n');
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>(region_);
}

void UseJsonLogs(const std::string& region) {
  spdlog::set_formatter(std::make_unique<JsonLogFormatter>(region));
}

}  // namespace meridian::node
