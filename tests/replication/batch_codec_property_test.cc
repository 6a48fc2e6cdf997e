// Both batch formats against arbitrary runs of events: whatever one origin writes — any contexts,
// clocks that go back, any keys and operations — decodes to exactly the events encoded, and the
// same events given as log bytes encode to the same batch.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <vector>

#include "replication/batch_codec.h"

namespace meridian::replication {
namespace {

core::Operation GenOperation() {
  const int kind = *rc::gen::inRange(0, 3);
  core::Operation op;
  const std::string name = *rc::gen::element<std::string>("stock", "price", "name", "a\"b", "é");
  if (kind == 0) {
    op.kind = core::OpKind::kIncrement;
    op.counters.push_back({name, *rc::gen::inRange<int64_t>(-1'000'000, 1'000'000)});
  } else if (kind == 1) {
    op.kind = core::OpKind::kSet;
    op.fields.push_back({name, std::to_string(*rc::gen::inRange(0, 100'000))});
  } else {
    op.kind = core::OpKind::kDelete;
  }
  return op;
}

// A run of one origin's events: consecutive seqs, each context ending just before its event.
std::vector<core::Event> GenRun() {
  const auto origin = static_cast<core::RegionId>(*rc::gen::inRange(0, 32));
  const uint64_t first = *rc::gen::inRange<uint64_t>(1, 1'000'000);
  const size_t count = *rc::gen::inRange<size_t>(1, 40);
  uint64_t physical = *rc::gen::inRange<uint64_t>(1, uint64_t{1} << 47);
  std::vector<core::Event> events;
  for (size_t i = 0; i < count; ++i) {
    core::Event event;
    event.dot = core::Dot{origin, first + i};
    // Mostly forward, sometimes back (another writer's clock, a restart).
    physical = std::max<uint64_t>(1, physical + *rc::gen::inRange<int64_t>(-5, 50));
    event.hlc = core::MakeHlc(physical, *rc::gen::inRange<uint64_t>(0, 70'000));
    for (int other = 0; other < 3; ++other) {
      const auto id = static_cast<core::RegionId>(*rc::gen::inRange(0, 32));
      if (id != origin) event.context.Set(id, *rc::gen::inRange<uint64_t>(0, 1'000));
    }
    event.context.Set(origin, event.dot.seq - 1);
    event.key = "k" + std::to_string(*rc::gen::inRange(0, 20));
    event.op = GenOperation();
    events.push_back(std::move(event));
  }
  return events;
}

RC_GTEST_PROP(BatchCodecProperty, RunsRoundTripExactly, ()) {
  const std::vector<core::Event> events = GenRun();
  const EncodedBatch batch = EncodeBatch(events);
  RC_ASSERT(batch.bytes[0] == 2);
  auto decoded = DecodeBatch(batch.bytes, BatchLimits{}, core::Limits{});
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == events);
  std::vector<std::string> encoded;
  for (const core::Event& event : events) encoded.push_back(core::EncodeEvent(event));
  RC_ASSERT(EncodeBatchOfEncoded(encoded).bytes == batch.bytes);
}

RC_GTEST_PROP(BatchCodecProperty, AnythingElseTravelsWhole, ()) {
  std::vector<core::Event> events = GenRun();
  std::vector<core::Event> more = GenRun();
  events.insert(events.end(), more.begin(), more.end());
  const EncodedBatch batch = EncodeBatch(events);
  auto decoded = DecodeBatch(batch.bytes, BatchLimits{}, core::Limits{});
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == events);
}

}  // namespace
}  // namespace meridian::replication
