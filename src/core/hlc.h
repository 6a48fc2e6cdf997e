// Hybrid logical clock: 48 bits of physical milliseconds and a 16-bit logical counter packed in
// one uint64 so that timestamps compare as integers.
//
// The physical clock is injected (PhysicalClock), so the same code runs against the wall clock
// in a node and against virtual time in the simulator. Timestamps never go backwards, whatever
// the physical clock does. A remote timestamp further ahead of the local physical clock than
// max_skew_ms is still accepted (refusing it would stall replication) but counted, so the node
// can raise a clock-skew alarm.
//
// Not thread-safe: the owner serializes calls.
#pragma once

#include <cstdint>
#include <string>

namespace meridian::core {

using HlcTimestamp = uint64_t;

constexpr int kHlcLogicalBits = 16;
constexpr uint64_t kHlcLogicalMask = (uint64_t{1} << kHlcLogicalBits) - 1;
constexpr uint64_t kHlcPhysicalMax = (uint64_t{1} << 48) - 1;

constexpr HlcTimestamp MakeHlc(uint64_t physical_ms, uint64_t logical) {
  return (physical_ms << kHlcLogicalBits) | (logical & kHlcLogicalMask);
}
constexpr uint64_t HlcPhysicalMs(HlcTimestamp t) {
  return t >> kHlcLogicalBits;
}
constexpr uint64_t HlcLogical(HlcTimestamp t) {
  return t & kHlcLogicalMask;
}

// "1732233600123.7": physical milliseconds, a dot, the logical counter.
std::string FormatHlc(HlcTimestamp t);
// Parses FormatHlc's output; false on anything else (leading zeros included).
bool ParseHlc(std::string_view text, HlcTimestamp* out);

class PhysicalClock {
 public:
  virtual ~PhysicalClock() = default;
  // Milliseconds since the Unix epoch (or since any fixed origin in a simulation).
  virtual uint64_t NowMs() = 0;
};

class HybridLogicalClock {
 public:
  explicit HybridLogicalClock(PhysicalClock* clock, uint64_t max_skew_ms = 500)
      : clock_(clock), max_skew_ms_(max_skew_ms) {}

  // A timestamp for a local event (the "send" rule): strictly greater than every timestamp this
  // clock has produced or received — except at the very end of the 48-bit range, where it
  // saturates instead of wrapping.
  HlcTimestamp Now();

  // Merges a timestamp received from another region (the "receive" rule); the next Now() is
  // strictly greater than `remote`.
  void Observe(HlcTimestamp remote);

  // The last timestamp produced or observed.
  HlcTimestamp last() const { return last_; }
  // Restores the clock after a restart so it never goes backwards across restarts.
  void Restore(HlcTimestamp at_least) {
    if (at_least > last_) last_ = at_least;
  }
  // How many remote timestamps were more than max_skew_ms ahead of the local physical clock.
  uint64_t skew_count() const { return skew_count_; }
  uint64_t max_skew_ms() const { return max_skew_ms_; }

 private:
  HlcTimestamp Advance(uint64_t physical_ms, HlcTimestamp floor);

  PhysicalClock* clock_;
  uint64_t max_skew_ms_;
  HlcTimestamp last_ = 0;
  uint64_t skew_count_ = 0;
};

}  // namespace meridian::core
