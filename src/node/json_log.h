// Log lines as JSON objects, one per line ([log] format = "json", docs/operations.md#logs), for
// log pipelines that parse what they collect: {"time": RFC 3339 UTC with milliseconds, "level",
// "region", "thread" (the thread's name), "message"}. Text that is not UTF-8 is written with
// U+FFFD in place of the bytes that are not.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>

namespace meridian::node {

class JsonLogFormatter final : public spdlog::formatter {
 public:
  explicit JsonLogFormatter(std::string region) : region_(std::move(region)) {}
  void format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& out) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  std::string region_;
};

// Makes every logger of the process write JSON lines for `region`.
void UseJsonLogs(const std::string& region);

}  // namespace meridian::node
