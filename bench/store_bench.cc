// store_bench: what each record of a local write costs the commit path — RocksDbStore::Commit with
// fsync, the node's own store, fed commit batches of the shape a region commits for SETs of one
// string field (as the Redis port's SET and an HTTP PUT of {"value": ...} write them).
//
// A region on a memory store first makes the events (--events SETs of --value-bytes over --keys
// keys); their log records, changes and document records are then committed to fresh RocksDB
// stores, --batch events per commit (a write group), in four shapes, alternating over --rounds:
//   - node:      what the node writes (the event, the change with the document as it left it, the
//                document record with its state and view, the position);
//   - no-change: the same without the change record (the events go in as `parked`: log only);
//   - no-view:   the same without the document's view in its record;
//   - neither:   without both.
// The last three are not valid stores (watches and reads need what they drop); they bound what a
// storage format that stores those bytes once could save (bench/RESULTS.md).
//
//   build/default/bench/store_bench [--events 100000] [--batch 32] [--keys 10000]
//                                   [--value-bytes 200] [--rounds 3]
//
// Prints one JSON line per shape and round: shape, events, us_per_event (wall time, fsyncs
// included), cpu_us_per_event (the process's CPU time, RocksDB's background threads and the
// store's close included), bytes_per_event (of the records' values and keys as committed).
#include <nlohmann/json.hpp>

#include <time.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/event.h"
#include "node/node.h"
#include "node/region.h"
#include "storage/memory_store.h"
#include "storage/rocksdb_store.h"

namespace meridian {
namespace {

// CPU time of the whole process (RocksDB's background flushes included), in seconds.
double ProcessCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

enum class Shape { kNode, kNoChange, kNoView, kNeither };
const char* Name(Shape shape) {
  switch (shape) {
    case Shape::kNode:
      return "node";
    case Shape::kNoChange:
      return "no-change";
    case Shape::kNoView:
      return "no-view";
    case Shape::kNeither:
      return "neither";
  }
  return "?";
}

// One event as the node commits it: its log entry (with the document as it left it) and the
// document record it writes.
struct Written {
  storage::LoggedEvent event;
  storage::DocumentWrite document;
};

size_t Bytes(const storage::CommitBatch& batch) {
  size_t bytes = 0;
  for (const auto& event : batch.events) {
    bytes += 9 + event.bytes.size() + 9 + event.key.size() + 20 +
             (event.rendered ? event.rendered->size() : 0);
  }
  for (const auto& event : batch.parked) bytes += 9 + event.bytes.size();
  for (const auto& document : batch.documents) {
    bytes += document.key.size() + document.state.size() + 10 +
             (document.rendered ? document.rendered->size() : 0);
  }
  return bytes;
}

int Run(size_t events, size_t batch, size_t keys, size_t value_bytes, int rounds) {
  const std::map<core::RegionId, std::string> names = {{1, "us"}};
  node::SystemClock clock;
  auto origin_store = storage::NewMemoryStore();
  node::Region origin(1, names, origin_store.get(), &clock, core::Limits{}, 500);
  if (!origin.Recover().ok()) return 1;
  std::vector<node::WriteRequest> writes;
  std::vector<Result<node::Receipt>> outcomes;
  std::vector<node::Change> changes;
  for (size_t i = 0; i < events; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "key:%06zu", (i * 7919) % keys);
    std::string value = "\"" + std::to_string(i) + ":";
    value.resize(value_bytes + 1, 'x');
    value += "\"";
    core::Operation op;
    op.kind = core::OpKind::kReplace;
    op.fields.push_back({"value", value});
    writes.push_back({key, std::move(op)});
    if (writes.size() == batch || i + 1 == events) {
      origin.CommitLocalWrites(writes, &outcomes, &changes);
      for (const auto& outcome : outcomes) {
        if (!outcome.ok()) {
          std::fprintf(stderr, "store_bench: %s\n", outcome.status().message().c_str());
          return 1;
        }
      }
      writes.clear();
      changes.clear();
    }
  }
  // The events with the documents they left (read back from the region's store).
  std::vector<Written> written;
  written.reserve(events);
  if (!origin_store
           ->ReadLog(1, 1, events,
                     [&](const storage::LoggedEvent& logged) {
                       written.push_back({logged, {}});
                     })
           .ok()) {
    return 1;
  }
  size_t next = 0;
  if (!origin_store
           ->ReadChanges(0, events,
                         [&](const storage::LoggedEvent& change) {
                           if (next < written.size()) written[next++].event.rendered =
                               change.rendered;
                         })
           .ok()) {
    return 1;
  }
  for (Written& entry : written) {
    auto stored = origin_store->GetDocument(entry.event.key);
    if (!stored.ok() || !stored->has_value()) return 1;
    entry.document.key = entry.event.key;
    entry.document.state = (*stored)->state;
    entry.document.rendered = entry.event.rendered;
    entry.document.digest = (*stored)->digest;
  }

  const std::string base =
      (std::filesystem::temp_directory_path() / "meridian-store-bench").string();
  for (int round = 0; round < rounds; ++round) {
    for (Shape shape : {Shape::kNode, Shape::kNoChange, Shape::kNoView, Shape::kNeither}) {
      std::filesystem::remove_all(base);
      std::filesystem::create_directories(base);
      auto store = storage::OpenRocksDbStore({base, /*sync=*/true, 64 << 20});
      if (!store.ok()) {
        std::fprintf(stderr, "store_bench: %s\n", store.status().message().c_str());
        return 1;
      }
      size_t bytes = 0;
      const auto start = std::chrono::steady_clock::now();
      const double cpu_start = ProcessCpuSeconds();
      for (size_t first = 0; first < written.size(); first += batch) {
        storage::CommitBatch commit;
        for (size_t i = first; i < std::min(first + batch, written.size()); ++i) {
          storage::LoggedEvent event = written[i].event;
          storage::DocumentWrite document = written[i].document;
          if (shape == Shape::kNoView || shape == Shape::kNeither) document.rendered.reset();
          if (shape == Shape::kNoChange || shape == Shape::kNeither) {
            commit.parked.push_back(std::move(event));
          } else {
            commit.events.push_back(std::move(event));
          }
          commit.documents.push_back(std::move(document));
          commit.frontier.Set(1, written[i].event.dot.seq);
          commit.hlc = written[i].event.hlc;
        }
        commit.document_count = keys;
        bytes += Bytes(commit);
        if (Status status = (*store)->Commit(commit); !status.ok()) {
          std::fprintf(stderr, "store_bench: %s\n", status.message().c_str());
          return 1;
        }
      }
      // Flushed, so that the memtable work a shape leaves behind is counted with it.
      if (Status status = (*store)->SaveIdReservation(1); !status.ok()) return 1;
      store->reset();
      const double cpu = ProcessCpuSeconds() - cpu_start;
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("%s\n", nlohmann::json{{"shape", Name(shape)},
                                         {"round", round + 1},
                                         {"events", written.size()},
                                         {"batch", batch},
                                         {"us_per_event", 1e6 * seconds / written.size()},
                                         {"cpu_us_per_event", 1e6 * cpu / written.size()},
                                         {"bytes_per_event", bytes / written.size()}}
                              .dump()
                              .c_str());
      std::fflush(stdout);
    }
  }
  std::filesystem::remove_all(base);
  return 0;
}

}  // namespace
}  // namespace meridian

int main(int argc, char** argv) {
  size_t events = 100'000, batch = 32, keys = 10'000, value_bytes = 200;
  int rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const size_t value = std::stoul(argv[i + 1]);
    if (flag == "--events" && value > 0) {
      events = value;
    } else if (flag == "--batch" && value > 0) {
      batch = value;
    } else if (flag == "--keys" && value > 0) {
      keys = value;
    } else if (flag == "--value-bytes") {
      value_bytes = value;
    } else if (flag == "--rounds" && value > 0) {
      rounds = static_cast<int>(value);
    } else {
      std::fprintf(stderr,
                   "usage: store_bench [--events 100000] [--batch 32] [--keys 10000] "
                   "[--value-bytes 200] [--rounds 3]\n");
      return 2;
    }
  }
  return meridian::Run(events, batch, keys, value_bytes, rounds);
}
