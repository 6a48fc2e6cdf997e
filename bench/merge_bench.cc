// Merge throughput: events applied per second in memory, on one core.
//
//   make bench            (or: build/default/bench/merge_bench)
//
// The events are generated up front (three origins writing round-robin over a key space, each
// with the context its origin would have had), so only merging is timed.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/document.h"
#include "core/event.h"
#include "core/replica.h"

namespace meridian::core {
namespace {

constexpr int kOrigins = 3;

// Events as three regions would produce them, interleaved: origin r's i-th write sees its own
// earlier writes and everything the others wrote up to two rounds before.
std::vector<Event> MakeEvents(size_t count, size_t keys, OpKind kind) {
  std::vector<Event> events;
  events.reserve(count);
  std::vector<uint64_t> seq(kOrigins + 1, 0);
  for (size_t i = 0; i < count; ++i) {
    const RegionId origin = static_cast<RegionId>(i % kOrigins) + 1;
    Event event;
    event.dot = Dot{origin, ++seq[origin]};
    event.hlc = MakeHlc(1'700'000'000'000 + i / 8, i % 8);
    for (RegionId other = 1; other <= kOrigins; ++other) {
      const uint64_t seen =
          other == origin ? seq[other] - 1 : (seq[other] > 2 ? seq[other] - 2 : 0);
      event.context.Set(other, seen);
    }
    event.key = "item:" + std::to_string((i * 7919) % keys);
    event.op.kind = kind;
    if (kind == OpKind::kIncrement) {
      event.op.counters.push_back(CounterDelta{"stock", (i % 2) ? -1 : 5});
    } else {
      event.op.fields.push_back(FieldValue{"price", std::to_string(100 + i % 50)});
    }
    events.push_back(std::move(event));
  }
  return events;
}

void ApplyToDocuments(benchmark::State& state, OpKind kind) {
  const std::vector<Event> events = MakeEvents(200'000, static_cast<size_t>(state.range(0)), kind);
  std::vector<Conflict> conflicts;
  for (auto _ : state) {
    state.PauseTiming();
    std::unordered_map<std::string, DocumentState> documents;
    documents.reserve(static_cast<size_t>(state.range(0)));
    conflicts.clear();
    state.ResumeTiming();
    for (const Event& event : events) documents[event.key].Apply(event, &conflicts);
    benchmark::DoNotOptimize(documents);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * events.size()));
}

void BM_ApplySet(benchmark::State& state) {
  ApplyToDocuments(state, OpKind::kSet);
}
void BM_ApplyIncrement(benchmark::State& state) {
  ApplyToDocuments(state, OpKind::kIncrement);
}
BENCHMARK(BM_ApplySet)->Arg(1'000)->Arg(100'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ApplyIncrement)->Arg(1'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

// The whole receive path of a region: per-origin ordering, duplicate check, merge, frontier.
void BM_ReplicaReceiveSet(benchmark::State& state) {
  const std::vector<Event> events = MakeEvents(200'000, 10'000, OpKind::kSet);
  struct FixedClock : PhysicalClock {
    uint64_t NowMs() override { return 1'700'000'000'000; }
  } clock;
  for (auto _ : state) {
    state.PauseTiming();
    auto replica = std::make_unique<Replica>(kOrigins + 1, &clock);
    state.ResumeTiming();
    for (const Event& event : events) replica->Receive(event);
    benchmark::DoNotOptimize(replica);
    state.PauseTiming();
    replica.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * events.size()));
}
BENCHMARK(BM_ReplicaReceiveSet)->Unit(benchmark::kMillisecond);

void BM_DecodeEvent(benchmark::State& state) {
  const std::vector<Event> events = MakeEvents(1'000, 100, OpKind::kSet);
  std::vector<std::string> encoded;
  for (const Event& event : events) encoded.push_back(EncodeEvent(event));
  const Limits limits;
  for (auto _ : state) {
    for (const std::string& bytes : encoded) benchmark::DoNotOptimize(DecodeEvent(bytes, limits));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * encoded.size()));
}
BENCHMARK(BM_DecodeEvent);

}  // namespace
}  // namespace meridian::core

BENCHMARK_MAIN();
