// IdGenerator: the region's unique 63-bit ids (POST /v1/ids; docs/semantics.md#unique-ids).
//
// An id is, from the high bit down:
//
//   0 (1 bit: the id is a positive int64) | region id (5 bits: 58-62) |
//   milliseconds since 2026-01-01T00:00:00Z (42 bits: until 2165) | sequence (16 bits)
//
// The low 58 bits are one counter (milliseconds × 65536 + sequence) that only grows: each id takes
// the next value, jumping forward to the clock's millisecond when the clock is ahead. When the
// clock stands still or goes back the counter simply goes on (the ids run ahead of the clock);
// when one millisecond's 65536 values are used up it carries into the next millisecond. So the
// ids of one region increase strictly, and ids of different regions differ in bits 58-62.
//
// Across restarts: before it issues any id at or beyond its reservation, the generator saves a
// new one durably (the store's one record) — a millisecond that every id issued lies below, set
// reserve_ms past the last id it is about to issue (or past the clock, when later). A restarted
// generator starts at its recorded reservation, so it never issues an id an earlier run may have
// issued, wherever the clock stands. One durable write per reserve_ms of ids, not per request.
// Its first id is also reserve_ms past the clock: a store may hold an older reservation than the
// last one saved (a directory restored from a backup or a snapshot, or lost), and an earlier
// run's reservations reached no further than that past its clock unless its clock went back.
//
// Thread-safe. A reservation is saved under the generator's lock: the calls that arrive meanwhile
// wait for it (they could not be answered before it anyway).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "core/hlc.h"
#include "core/version_vector.h"
#include "meridian/status.h"

namespace meridian::node {

constexpr int kIdRegionShift = 58;
constexpr int kIdSequenceBits = 16;
constexpr int kIdMillisecondBits = 42;
// Unix milliseconds of 2026-01-01T00:00:00Z: the ids' clock starts there.
constexpr uint64_t kIdEpochUnixMs = 1'767'225'600'000;
// The counter's values (the low 58 bits): [0, kIdCounterEnd).
constexpr uint64_t kIdCounterEnd = uint64_t{1} << kIdRegionShift;
// The ids' clock, in milliseconds since kIdEpochUnixMs, runs below this (2165-05-15).
constexpr uint64_t kIdMillisecondsEnd = uint64_t{1} << kIdMillisecondBits;
// How far past the ids it issues a reservation reaches, by default.
constexpr uint64_t kIdReserveMs = 5000;

// The parts of an id.
constexpr core::RegionId IdRegion(uint64_t id) {
  return static_cast<core::RegionId>(id >> kIdRegionShift);
}
constexpr uint64_t IdMilliseconds(uint64_t id) {
  return (id & (kIdCounterEnd - 1)) >> kIdSequenceBits;
}
constexpr uint64_t IdSequence(uint64_t id) {
  return id & ((uint64_t{1} << kIdSequenceBits) - 1);
}

struct IdGeneratorOptions {
  core::RegionId region = 0;             // 0..31
  core::PhysicalClock* clock = nullptr;  // Unix milliseconds
  uint64_t reserve_ms = kIdReserveMs;    // at least 1
  // The reservation the store holds (Store::IdReservation; 0: none): ids start at it, and
  // reserve_ms past the clock of the first call.
  uint64_t recorded = 0;
  // Saves a reservation durably (Store::SaveIdReservation); an error issues nothing.
  std::function<Status(uint64_t)> save;
};

class IdGenerator {
 public:
  explicit IdGenerator(IdGeneratorOptions options);

  // Appends `count` (at least 1) new ids to *ids, each greater than every id this region issued
  // before. kUnavailable, issuing none, when the reservation cannot be saved (the store's error)
  // or when the ids' clock has run out (the physical clock reads past 2165, or the counter reached
  // its end).
  Status Next(uint32_t count, std::vector<uint64_t>* ids);

  // Totals since this process started, for metrics.
  uint64_t issued() const { return issued_.load(std::memory_order_relaxed); }
  uint64_t reservations() const { return reservations_.load(std::memory_order_relaxed); }
  // The reservation in force (the last saved, or the recorded one before the first save).
  uint64_t reservation() const;

 private:
  // The clock in the ids' milliseconds (0 before the epoch).
  uint64_t NowMs() const;

  const core::RegionId region_;
  core::PhysicalClock* const clock_;
  const uint64_t reserve_ms_;
  const std::function<Status(uint64_t)> save_;

  mutable std::mutex mutex_;
  uint64_t next_ = 0;          // the counter value of the next id; none at or above it issued
  uint64_t reserved_end_ = 0;  // counter values below it may be issued without saving
  uint64_t reservation_ = 0;   // in milliseconds: the last saved (or the recorded) reservation
  bool started_ = false;       // a call has taken the clock's floor
  std::atomic<uint64_t> issued_{0};
  std::atomic<uint64_t> reservations_{0};
};

}  // namespace meridian::node
