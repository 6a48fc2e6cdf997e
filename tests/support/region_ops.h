// What the region-level tests share: a clock they move by hand, and the operations they write.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/event.h"
#include "core/hlc.h"
#include "storage/store.h"

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

// Up to `limit` events of `origin` from seq `from` on, as `store` logged them, decoded.
inline std::vector<core::Event> LoggedEvents(storage::Store& store, core::RegionId origin,
                                             uint64_t from, size_t limit) {
  std::vector<core::Event> events;
  EXPECT_TRUE(store
                  .ReadLog(origin, from, limit,
                           [&](const storage::LoggedEvent& logged) {
                             auto event = core::DecodeEvent(logged.bytes, core::Limits{});
                             EXPECT_TRUE(event.ok()) << event.status().ToString();
                             if (event.ok()) events.push_back(*event);
                           })
                  .ok());
  return events;
}

}  // namespace meridian::testing
