#include "node/dead_letter.h"

#include <array>

namespace meridian::node {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t n = (static_cast<uint8_t>(bytes[i]) << 16) |
                       (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < bytes.size()) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::array<int8_t, 256> values;
  values.fill(-1);
  for (size_t i = 0; i < kAlphabet.size(); ++i) values[static_cast<uint8_t>(kAlphabet[i])] = i;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const size_t padding = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
    uint32_t n = 0;
    for (size_t j = 0; j < 4; ++j) {
      const char c = text[i + j];
      int8_t value = 0;
      if (j >= 4 - padding) {
        if (c != '=') return std::nullopt;
      } else {
        value = values[static_cast<uint8_t>(c)];
        if (value < 0) return std::nullopt;
      }
      n = (n << 6) | static_cast<uint32_t>(value);
    }
    out += static_cast<char>((n >> 16) & 0xff);
    if (padding < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (padding < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

std::string_view DeadLetter::StateName(State state) {
  switch (state) {
    case State::kParked:
      return "parked";
    case State::kApplied:
      return "applied";
    case State::kResolved:
      return "resolved";
  }
  return "parked";
}

std::string DeadLetter::Encode() const {
  nlohmann::json record = {{"event", event},
                           {"origin", origin},
                           {"seq", dot.seq},
                           {"origin_id", dot.origin},
                           {"schema_version", schema_version},
                           {"newer_schema", newer_schema},
                           {"reason", reason},
                           {"parked_ms", parked_ms},
                           {"status", StateName(state)},
                           {"retries", retries},
                           {"bytes", Base64Encode(bytes)}};
  if (!key.empty()) record["key"] = key;
  if (applied_ms != 0) record["applied_ms"] = applied_ms;
  return record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<DeadLetter> DeadLetter::Decode(uint64_t id, std::string_view text) {
  const auto bad = [id](const std::string& what) {
    return Corruption("dead letter " + std::to_string(id) + ": " + what);
  };
  nlohmann::json record = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!record.is_object()) return bad("not a JSON object");
  DeadLetter letter;
  letter.id = id;
  try {
    letter.event = record.at("event").get<std::string>();
    letter.origin = record.at("origin").get<std::string>();
    letter.dot.seq = record.at("seq").get<uint64_t>();
    const uint64_t origin = record.at("origin_id").get<uint64_t>();
    if (origin > core::kRegionIdMax) return bad("origin id above 31");
    letter.dot.origin = static_cast<core::RegionId>(origin);
    letter.key = record.value("key", std::string());
    letter.schema_version = record.at("schema_version").get<uint32_t>();
    letter.newer_schema = record.at("newer_schema").get<bool>();
    letter.reason = record.at("reason").get<std::string>();
    letter.parked_ms = record.at("parked_ms").get<uint64_t>();
    letter.applied_ms = record.value("applied_ms", uint64_t{0});
    letter.retries = record.value("retries", uint64_t{0});
    const std::string status = record.at("status").get<std::string>();
    if (status == "parked") {
      letter.state = State::kParked;
    } else if (status == "applied") {
      letter.state = State::kApplied;
    } else if (status == "resolved") {
      letter.state = State::kResolved;
    } else {
      return bad("unknown status '" + status + "'");
    }
    auto bytes = Base64Decode(record.at("bytes").get<std::string>());
    if (!bytes) return bad("bytes are not base64");
    letter.bytes = std::move(*bytes);
  } catch (const nlohmann::json::exception& error) {
    return bad(error.what());
  }
  return letter;
}

nlohmann::json DeadLetter::ToJson() const {
  nlohmann::json out = {{"id", id},
                        {"event", event},
                        {"origin", origin},
                        {"seq", dot.seq},
                        {"key", key.empty() ? nlohmann::json() : nlohmann::json(key)},
                        {"schema_version", schema_version},
                        {"reason", reason},
                        {"parked_ms", parked_ms},
                        {"status", StateName(state)},
                        {"retries", retries},
                        {"size", bytes.size()}};
  if (applied_ms != 0) out[state == State::kResolved ? "resolved_ms" : "applied_ms"] = applied_ms;
  return out;
}

}  // namespace meridian::node
