#include "core/trace.h"

#include <chrono>
#include <random>

namespace meridian::core {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool AllZero(std::string_view bytes) {
  for (char c : bytes) {
    if (c != 0) return false;
  }
  return true;
}

// Lower-case hex only, as the specification writes every field.
std::optional<std::string> LowerHex(std::string_view hex) {
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  }
  return FromHex(hex);
}

}  // namespace

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::optional<std::string> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int high = HexDigit(hex[i]), low = HexDigit(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
  }
  return out;
}

std::optional<std::string> ParseTraceparent(std::string_view header) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 characters;
  // a later version may append "-..." fields.
  if (header.size() < 55 || header[2] != '-' || header[35] != '-' || header[52] != '-') {
    return std::nullopt;
  }
  auto version = LowerHex(header.substr(0, 2));
  if (!version || static_cast<unsigned char>((*version)[0]) == 0xff) return std::nullopt;
  if ((*version)[0] == 0 && header.size() != 55) return std::nullopt;
  if (header.size() > 55 && header[55] != '-') return std::nullopt;
  auto trace_id = LowerHex(header.substr(3, 32));
  auto parent = LowerHex(header.substr(36, 16));
  auto flags = LowerHex(header.substr(53, 2));
  if (!trace_id || !parent || !flags || AllZero(*trace_id) || AllZero(*parent)) {
    return std::nullopt;
  }
  return *trace_id + *parent + *flags;
}

std::string FormatTraceparent(std::string_view trace) {
  return "00-" + Hex(TraceId(trace)) + "-" + Hex(TraceSpanId(trace)) + "-" +
         Hex(trace.substr(24, 1));
}

std::string NewSpanId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  uint64_t value = 0;
  while (value == 0) value = rng();
  std::string id(8, '\0');
  for (int i = 0; i < 8; ++i) id[i] = static_cast<char>(value >> (8 * i));
  return id;
}

uint64_t WallNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

bool ValidTrace(std::string_view trace) {
  if (trace.empty()) return true;
  return trace.size() == kTraceBytes && !AllZero(TraceId(trace)) && !AllZero(TraceSpanId(trace));
}

}  // namespace meridian::core
