#include "node/id_generator.h"

#include <algorithm>
#include <string>

#include "core/check.h"

namespace meridian::node {

IdGenerator::IdGenerator(IdGeneratorOptions options)
    : region_(options.region),
      clock_(options.clock),
      reserve_ms_(options.reserve_ms),
      save_(std::move(options.save)) {
  MERIDIAN_CHECK(region_ <= core::kRegionIdMax && clock_ != nullptr && save_ && reserve_ms_ >= 1 &&
                 reserve_ms_ < kIdMillisecondsEnd);
  // Every id an earlier run issued lies below its reservation (and below reserve_ms past the
  // clock: the first call starts there too).
  reservation_ = options.recorded;
  next_ = std::min(options.recorded, kIdMillisecondsEnd) << kIdSequenceBits;
  reserved_end_ = next_;  // nothing reserved yet by this run
}

uint64_t IdGenerator::NowMs() const {
  const uint64_t unix_ms = clock_->NowMs();
  return unix_ms > kIdEpochUnixMs ? unix_ms - kIdEpochUnixMs : 0;
}

uint64_t IdGenerator::reservation() const {
  std::lock_guard lock(mutex_);
  return reservation_;
}

Status IdGenerator::Next(uint32_t count, std::vector<uint64_t>* ids) {
  MERIDIAN_CHECK(count >= 1);
  std::lock_guard lock(mutex_);
  const uint64_t now = NowMs();
  if (now >= kIdMillisecondsEnd) {
    return Status(StatusCode::kUnavailable,
                  "the clock reads past 2165-05-15, the last millisecond an id can carry");
  }
  if (!started_) {
    // The first call of this run: reserve_ms past the clock, should the store hold an older
    // reservation than the last one saved (see the header). Taken from a clock that reads within
    // the ids' range only, so that a misset clock cannot spend the counter.
    next_ = std::max(next_, std::min(now + 1 + reserve_ms_, kIdMillisecondsEnd) << kIdSequenceBits);
    started_ = true;
  }
  const uint64_t start = std::max(next_, now << kIdSequenceBits);
  if (count > kIdCounterEnd - start) {
    return Status(StatusCode::kUnavailable,
                  "this region's ids are used up: the counter reached the end of 2165-05-15");
  }
  const uint64_t end = start + count;
  if (end > reserved_end_) {
    // Past the reservation: a new one, durable before any of these ids is handed out. It reaches
    // reserve_ms past the last of them, or past the clock when the clock is ahead.
    const uint64_t last_ms = (end - 1) >> kIdSequenceBits;
    const uint64_t reservation =
        std::min(std::max(now, last_ms) + 1 + reserve_ms_, kIdMillisecondsEnd);
    MERIDIAN_CHECK(reservation > reservation_ && end <= reservation << kIdSequenceBits);
    if (Status saved = save_(reservation); !saved.ok()) {
      return Status(StatusCode::kUnavailable, "cannot save the id reservation: " + saved.message());
    }
    reservation_ = reservation;
    reserved_end_ = reservation << kIdSequenceBits;
    reservations_.fetch_add(1, std::memory_order_relaxed);
  }
  const uint64_t region = uint64_t{region_} << kIdRegionShift;
  ids->reserve(ids->size() + count);
  for (uint64_t value = start; value < end; ++value) ids->push_back(region | value);
  next_ = end;
  issued_.fetch_add(count, std::memory_order_relaxed);
  return Status::Ok();
}

}  // namespace meridian::node
