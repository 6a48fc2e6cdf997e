// apply_bench: how fast one region applies another region's events from replication batches —
// Region::Commit on RocksDB with fsync, the receive path without the network. The events are
// written first by an origin region (the inventory workload of replication_bench: stock movements
// and price changes), then applied in batches of --batch events to a fresh region.
//
//   build/default/bench/apply_bench [--events 200000] [--batch 2000] [--keys 10000]
//
// Prints one JSON line: events, seconds, events_per_s.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/event.h"
#include "node/node.h"
#include "node/region.h"
#include "storage/rocksdb_store.h"

namespace meridian {
namespace {

std::unique_ptr<storage::Store> Open(const std::string& path) {
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  auto store = storage::OpenRocksDbStore({path, /*sync=*/true, 64 << 20});
  if (!store.ok()) {
    std::fprintf(stderr, "apply_bench: %s\n", store.status().message().c_str());
    std::exit(1);
  }
  return std::move(store).value();
}

int Run(size_t events, size_t batch, size_t keys) {
  const std::string base =
      (std::filesystem::temp_directory_path() / "meridian-apply-bench").string();
  const std::map<core::RegionId, std::string> names = {{1, "us"}, {2, "eu"}};
  node::SystemClock clock;
  auto origin_store = Open(base + "/us");
  node::Region origin(1, names, origin_store.get(), &clock, core::Limits{}, 500);
  if (!origin.Recover().ok()) return 1;

  // The origin writes the events, 500 per commit.
  std::vector<node::WriteRequest> writes;
  std::vector<Result<node::Receipt>> outcomes;
  std::vector<node::Change> changes;
  for (size_t i = 0; i < events; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "item:%05zu", (i * 7919) % keys);
    core::Operation op;
    if (i % 4 == 0) {
      op.kind = core::OpKind::kSet;
      op.fields.push_back({"price", std::to_string(100 + i % 50) + ".5"});
      op.fields.push_back({"updated_by", "\"us\""});
    } else {
      op.kind = core::OpKind::kIncrement;
      op.counters.push_back({"stock", i % 5 == 0 ? 20 : -1});
    }
    writes.push_back({key, std::move(op)});
    if (writes.size() == 500 || i + 1 == events) {
      origin.CommitLocalWrites(writes, &outcomes, &changes);
      writes.clear();
      changes.clear();
    }
  }
  std::vector<std::vector<core::Event>> batches;
  for (uint64_t seq = 1; seq <= events; seq += batch) {
    std::vector<core::Event> events_of_batch;
    if (!origin_store
             ->ReadLog(1, seq, batch,
                       [&](const storage::LoggedEvent& logged) {
                         events_of_batch.push_back(
                             core::DecodeEvent(logged.bytes, core::Limits{}).value());
                       })
             .ok()) {
      return 1;
    }
    batches.push_back(std::move(events_of_batch));
  }

  auto target_store = Open(base + "/eu");
  node::Region target(2, names, target_store.get(), &clock, core::Limits{}, 500);
  if (!target.Recover().ok()) return 1;
  const auto start = std::chrono::steady_clock::now();
  size_t applied = 0;
  for (const std::vector<core::Event>& events_of_batch : batches) {
    changes.clear();
    auto outcome = target.ApplyRemoteEvents(events_of_batch, &changes);
    if (!outcome.ok()) return 1;
    applied += outcome->applied;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s\n", nlohmann::json{{"events", applied},
                                     {"batch", batch},
                                     {"keys", keys},
                                     {"seconds", seconds},
                                     {"events_per_s", applied / seconds}}
                          .dump()
                          .c_str());
  std::filesystem::remove_all(base);
  return applied == events ? 0 : 1;
}

}  // namespace
}  // namespace meridian

int main(int argc, char** argv) {
  size_t events = 200'000, batch = 2000, keys = 10'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const size_t value = std::stoul(argv[i + 1]);
    if (flag == "--events")
      events = value;
    else if (flag == "--batch")
      batch = value;
    else if (flag == "--keys")
      keys = value;
    else {
      std::fprintf(stderr, "usage: apply_bench [--events 200000] [--batch 2000] [--keys 10000]\n");
      return 2;
    }
  }
  return meridian::Run(events, batch, keys);
}
