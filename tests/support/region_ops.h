// What the region-level tests share: a clock they move by hand, and the operations they write.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "core/event.h"
#include "core/hlc.h"

namespace meridian::testing {

struct ManualClock : core::PhysicalClock {
  uint64_t now_ms = 1'700'000'000'000;
  uint64_t NowMs() override { return now_ms; }
};

// PATCH of one field to a JSON value; an increment of one counter.
inline core::Operation Set(std::string field, std::string json) {
  return core::Operation{core::OpKind::kSet, {{std::move(field), std::move(json)}}, {}};
}
inline core::Operation Incr(std::string field, int64_t delta) {
  return core::Operation{core::OpKind::kIncrement, {}, {{std::move(field), delta}}};
}

}  // namespace meridian::testing
