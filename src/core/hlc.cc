#include "core/hlc.h"

#include <algorithm>
#include <charconv>

namespace meridian::core {

std::string FormatHlc(HlcTimestamp t) {
  return std::to_string(HlcPhysicalMs(t)) + "." + std::to_string(HlcLogical(t));
}

bool ParseHlc(std::string_view text, HlcTimestamp* out) {
  const auto dot = text.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == text.size()) return false;
  // Only the form FormatHlc writes: no leading zeros, so one timestamp has one spelling.
  if ((dot > 1 && text[0] == '0') || (text.size() - dot > 2 && text[dot + 1] == '0')) return false;
  uint64_t physical = 0;
  uint64_t logical = 0;
  const char* begin = text.data();
  const char* mid = begin + dot;
  const char* end = begin + text.size();
  auto [p1, e1] = std::from_chars(begin, mid, physical);
  if (e1 != std::errc() || p1 != mid || physical > kHlcPhysicalMax) return false;
  auto [p2, e2] = std::from_chars(mid + 1, end, logical);
  if (e2 != std::errc() || p2 != end || logical > kHlcLogicalMask) return false;
  *out = MakeHlc(physical, logical);
  return true;
}

// Returns the smallest timestamp that is > floor and whose physical part is >= physical_ms.
// When the logical counter would overflow, the physical part moves one millisecond ahead: time
// runs slightly fast rather than backwards.
HlcTimestamp HybridLogicalClock::Advance(uint64_t physical_ms, HlcTimestamp floor) {
  physical_ms = std::min(physical_ms, kHlcPhysicalMax);
  const HlcTimestamp candidate = MakeHlc(physical_ms, 0);
  if (candidate > floor) return candidate;
  // At the very end of the range (a clock broken by some 8,000 years) saturate rather than
  // wrap to 0: timestamps stop growing but never go backwards.
  if (floor == UINT64_MAX) return floor;
  return floor + 1;  // same millisecond: next logical tick (carries into ms on overflow)
}

HlcTimestamp HybridLogicalClock::Now() {
  last_ = Advance(clock_->NowMs(), last_);
  return last_;
}

void HybridLogicalClock::Observe(HlcTimestamp remote) {
  const uint64_t physical_ms = clock_->NowMs();
  if (HlcPhysicalMs(remote) > physical_ms + max_skew_ms_) ++skew_count_;
  last_ = std::max(last_, remote);
}

}  // namespace meridian::core
