// verify_bench: anti-entropy verification (src/replication/verify.h) between two regions in this
// process, each a node::Region over its own RocksDB store, the Verifier driven as the simulator
// drives it (src/sim/simulation.cc, CarryVerify and SendVerify) with a direct call in place of
// the network. Three goals, each measured in one run:
//
//   1. a comparison of two regions holding the same --documents documents (about 60 bytes each):
//      <= 1 s and <= 64 KiB on the wire (request and answer of every round trip, ByteSizeLong);
//   2. --damaged documents lost from one region's store (deleted from RocksDB behind its back):
//      its scrub marks them (timed apart: a background pass), then one comparison with the other
//      region finds and restores all of them (Region::Repair on the same thread): <= 2 s;
//   3. durable local writes (sync = true, groups of --group writes over --keys keys, 200-byte
//      documents) with the digest tree on and off (Region::SetDigestTree), on a fresh store each
//      round, rounds alternated: median writes/s on / off >= 0.95.
//
// Prints the figures and one GOAL line per goal (met / NOT met); exits 1 only when something is
// wrong (the regions differ after the repair, a commit fails), not when a goal is missed.
//
//   build/default/bench/verify_bench [--documents 1000000] [--damaged 100] [--rounds 5]
//       [--writes 30000] [--keys 10000] [--group 32] [--only all|verify|writes]
//       [--tree both|on|off] [--dir /tmp]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <rocksdb/db.h>
#include <CLI/CLI.hpp>

#include "core/event.h"
#include "node/node.h"
#include "node/region.h"
#include "node/verification.h"
#include "replication/verify.h"
#include "storage/rocksdb_store.h"

namespace meridian {
namespace {

using Clock = std::chrono::steady_clock;

constexpr core::RegionId kUs = 1;
constexpr core::RegionId kEu = 2;
const std::map<core::RegionId, std::string> kNames = {{kUs, "us"}, {kEu, "eu"}};

uint64_t SteadyMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
          .count());
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

double CpuSeconds(int who) {
  rusage usage{};
  getrusage(who, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double PeakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // KiB on Linux
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "verify_bench: FAILED: %s\n", what.c_str());
  std::exit(1);
}

void Check(const Status& status, const std::string& what) {
  if (!status.ok()) Fail(what + ": " + status.ToString());
}

const char* Met(bool met) {
  return met ? "met" : "NOT met";
}

// One region: its store and the Region over it.
struct Side {
  core::RegionId id = 0;
  std::string path;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<node::Region> region;
};

Side Open(core::RegionId id, const std::string& path, bool sync, bool tree,
          node::SystemClock* clock) {
  Side side;
  side.id = id;
  side.path = path;
  std::filesystem::create_directories(path);
  auto store = storage::OpenRocksDbStore({path, sync, 64 << 20});
  if (!store.ok()) Fail("open " + path + ": " + store.status().ToString());
  side.store = std::move(store).value();
  side.region = std::make_unique<node::Region>(id, kNames, side.store.get(), clock, core::Limits{},
                                               /*max_skew_ms=*/500);
  side.region->SetDigestTree(tree);
  Check(side.region->Recover(), "recover " + path);
  return side;
}

void Close(Side& side) {
  side.region.reset();
  side.store.reset();
}

std::string KeyOf(int i) {
  char key[32];
  std::snprintf(key, sizeof key, "doc:%07d", i);
  return key;
}

// About 60 bytes rendered: {"color":"blue","name":"item-0000042","price":142,"stock":42}
core::Operation SmallDocument(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "\"item-%07d\"", i);
  static const char* const kColors[] = {"\"blue\"", "\"green\"", "\"red\"", "\"black\""};
  core::Operation op;
  op.kind = core::OpKind::kReplace;
  op.fields = {{"color", kColors[i % 4]},
               {"name", name},
               {"price", std::to_string(100 + i % 900)},
               {"stock", std::to_string(i % 1000)}};
  return op;
}

void CheckOutcomes(const std::vector<Result<node::Receipt>>& outcomes) {
  for (const auto& outcome : outcomes) {
    if (!outcome.ok()) Fail("write: " + outcome.status().ToString());
  }
}

// `documents` local writes in region a, each batch then applied to b from a's log: both end with
// the same states, b having applied every event of a.
void Load(Side& a, Side& b, int documents, int batch_size) {
  std::vector<node::WriteRequest> writes;
  std::vector<Result<node::Receipt>> outcomes;
  std::vector<node::Change> changes;
  std::vector<core::Event> events;
  uint64_t next_seq = 1;
  for (int first = 0; first < documents; first += batch_size) {
    const int end = std::min(documents, first + batch_size);
    writes.clear();
    for (int i = first; i < end; ++i) writes.push_back({KeyOf(i), SmallDocument(i)});
    outcomes.clear();
    changes.clear();
    a.region->CommitLocalWrites(writes, &outcomes, &changes);
    CheckOutcomes(outcomes);
    events.clear();
    Check(a.store->ReadLog(a.id, next_seq, writes.size(),
                           [&](const storage::LoggedEvent& logged) {
                             auto event = core::DecodeEvent(logged.bytes, core::Limits{});
                             if (!event.ok()) Fail("decode: " + event.status().ToString());
                             events.push_back(std::move(event).value());
                           }),
          "read log");
    next_seq += writes.size();
    changes.clear();
    auto applied = b.region->ApplyRemoteEvents(events, &changes);
    if (!applied.ok()) Fail("apply: " + applied.status().ToString());
    if (applied->applied != writes.size()) Fail("apply: not every event applied");
  }
}

// The Verifier of one region comparing with one peer, both in this process: a request is
// answered at once by a direct call (what the transport's Verify handler does), its answer goes
// straight back in. Timers say where a comparison's time goes.
class Comparison {
 public:
  Comparison(Side& self, Side& peer)
      : self_(self),
        peer_(peer),
        local_(self.region.get()),
        verifier_(
            [] {
              replication::VerifyOptions options;
              options.interval_ms = 0;  // on demand only
              return options;
            }(),
            {peer.id}, SteadyMs()) {}

  replication::VerifyResult Run() {
    const auto started = Clock::now();
    Carry(verifier_.Start(peer_.id, SteadyMs()));
    while (!result_) {
      // The Verifier moves a watched page on at its next Tick (a node ticks every 50-100 ms;
      // here at once).
      const bool idle = Carry(verifier_.Tick(SteadyMs(), self_.region->frontier()));
      if (!result_ && idle) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (Seconds(started) > 120) Fail("the comparison did not end within 120 s");
    }
    return *result_;
  }

  double answer_s = 0;  // the peer answering (tree hashes, bucket entries, states)
  double verify_s = 0;  // this side's Verifier and its reads (its tree, its buckets)
  double repair_s = 0;  // Region::Repair, commit included
  size_t ticks = 0;

 private:
  // Carries out what the Verifier said, in the simulator's order; returns whether it said nothing.
  bool Carry(replication::Verifier::Ready ready) {
    bool idle = true;
    std::deque<replication::Verifier::Ready> queue;
    queue.push_back(std::move(ready));
    while (!queue.empty()) {
      replication::Verifier::Ready now = std::move(queue.front());
      queue.pop_front();
      if (!now.watch.empty() || !now.requests.empty() || !now.repairs.empty() ||
          !now.unwatch.empty() || !now.finished.empty()) {
        idle = false;
      }
      if (!now.watch.empty()) self_.region->Watch(now.watch);
      for (const replication::VerifyResult& result : now.finished) result_ = result;
      for (replication::Verifier::Ready::Repair& repair : now.repairs) {
        const auto started = Clock::now();
        std::vector<node::Change> changes;
        auto outcome = self_.region->Repair(repair.peer, node::StatesOf(repair.states), &changes);
        Result<replication::RepairCounts> counts =
            outcome.ok() ? Result<replication::RepairCounts>(node::CountsOf(*outcome))
                         : Result<replication::RepairCounts>(outcome.status());
        if (!outcome.ok())
          std::fprintf(stderr, "repair: %s\n", outcome.status().ToString().c_str());
        repair_s += Seconds(started);
        queue.push_back(
            verifier_.Repaired(repair.peer, counts, self_.region->frontier(), SteadyMs()));
      }
      if (!now.unwatch.empty()) self_.region->Unwatch(now.unwatch);
      // Answers arrive after the rest of this Ready was carried out, as over a network.
      for (replication::Verifier::Ready::Request& request : now.requests) {
        queue.push_back(Send(std::move(request)));
      }
    }
    return idle;
  }

  replication::Verifier::Ready Send(replication::Verifier::Ready::Request request) {
    // What the transport adds (Exchange::Identify), so that the bytes are the wire's.
    request.message.set_deployment("bench");
    request.message.set_region_id(self_.id);
    request.message.set_region_name(kNames.at(self_.id));
    request.message.set_incarnation(0x5eed5eed5eedULL);
    const wire::VerifyRequest& message = request.message;
    auto started = Clock::now();
    Result<wire::VerifyReply> answer = Status(StatusCode::kUnavailable, "refused");
    if (Status checked = node::CheckVerifyRequest(message); !checked.ok()) {
      answer = checked;
    } else if (node::AsksStates(message)) {
      auto states = peer_.region->ReadStates(node::KeysOf(message));
      answer = states.ok() ? Result<wire::VerifyReply>(node::StatesReply(*states))
                           : Result<wire::VerifyReply>(states.status());
    } else {
      answer = node::AnswerTree(*peer_.region, message);
    }
    answer_s += Seconds(started);
    started = Clock::now();
    replication::Verifier::Ready ready;
    if (!answer.ok()) {
      ready = verifier_.Failed(request.peer, answer.status().message(), SteadyMs());
    } else {
      const size_t bytes = message.ByteSizeLong() + answer->ByteSizeLong();
      ready = verifier_.Answered(request.peer, *answer, bytes, local_, self_.region->frontier(),
                                 SteadyMs());
    }
    verify_s += Seconds(started);
    return ready;
  }

  Side& self_;
  Side& peer_;
  node::RegionVerifyLocal local_;
  replication::Verifier verifier_;
  std::optional<replication::VerifyResult> result_;
};

void PrintResult(const char* what, const replication::VerifyResult& result, double seconds,
                 const Comparison& comparison) {
  std::printf(
      "%s: %s in %.3f s, %zu round trips, %llu bytes; %zu buckets differing, %zu candidates, "
      "%zu repaired here, %zu there, %zu in flight%s%s%s\n"
      "  time: peer answering %.3f s, verifier and local reads %.3f s, repair commits %.3f s\n",
      what, std::string(replication::VerifyStateName(result.state)).c_str(), seconds,
      result.round_trips, static_cast<unsigned long long>(result.bytes), result.buckets_differing,
      result.candidates, result.repaired, result.theirs, result.in_flight,
      result.truncated ? " (truncated)" : "", result.error.empty() ? "" : ": ",
      result.error.c_str(), comparison.answer_s, comparison.verify_s, comparison.repair_s);
}

// The records of `keys` deleted from the `docs` column family of the store at `path` (closed),
// as a lost write or a bad sector would: the digest index still lists them.
void LoseRecords(const std::string& path, const std::vector<std::string>& keys) {
  std::vector<std::string> families;
  rocksdb::Status status = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &families);
  if (!status.ok()) Fail("list column families: " + status.ToString());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : families)
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  status = rocksdb::DB::Open(rocksdb::Options(), path, descriptors, &handles, &raw);
  if (!status.ok()) Fail("open for damage: " + status.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::ColumnFamilyHandle* docs = nullptr;
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    if (handle->GetName() == "docs") docs = handle;
  }
  if (docs == nullptr) Fail("no docs column family in " + path);
  rocksdb::WriteOptions write;
  write.sync = true;
  for (const std::string& key : keys) {
    std::string value;
    if (!db->Get(rocksdb::ReadOptions(), docs, key, &value).ok()) Fail("no record of " + key);
    status = db->Delete(write, docs, key);
    if (!status.ok()) Fail("delete: " + status.ToString());
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles) (void)db->DestroyColumnFamilyHandle(handle);
  (void)db->Close();
}

// Goals 1 and 2. Returns whether both were met.
bool RunVerification(const std::string& base, int documents, int damaged,
                     node::SystemClock* clock) {
  Side us = Open(kUs, base + "/us", /*sync=*/false, true, clock);
  Side eu = Open(kEu, base + "/eu", /*sync=*/false, true, clock);
  auto started = Clock::now();
  Load(us, eu, documents, 4096);
  std::printf("loaded %d documents into us and eu in %.1f s (peak RSS %.0f MiB)\n", documents,
              Seconds(started), PeakRssMiB());
  if (us.region->digest() != eu.region->digest() ||
      us.region->documents() != static_cast<uint64_t>(documents) ||
      eu.region->documents() != us.region->documents()) {
    Fail("the two regions differ after loading");
  }

  // 1. The clean comparison, us -> eu.
  bool clean_met = false;
  {
    Comparison comparison(us, eu);
    started = Clock::now();
    const replication::VerifyResult result = comparison.Run();
    const double seconds = Seconds(started);
    PrintResult("clean comparison us -> eu", result, seconds, comparison);
    if (result.state != replication::VerifyResult::State::kIdentical) {
      Fail("the clean comparison did not find the regions identical");
    }
    clean_met = seconds <= 1.0 && result.bytes <= 64 * 1024;
    std::printf(
        "GOAL clean comparison of %d documents <= 1 s and <= 65536 bytes: %s (%.6f s, %llu "
        "bytes, %zu round trips)\n",
        documents, Met(clean_met), seconds, static_cast<unsigned long long>(result.bytes),
        result.round_trips);
  }

  // 2. eu loses `damaged` records behind its back; its scrub marks them; eu compares with us.
  std::mt19937_64 random(20261207);
  std::set<int> chosen;
  while (static_cast<int>(chosen.size()) < std::min(damaged, documents)) {
    chosen.insert(static_cast<int>(random() % static_cast<uint64_t>(documents)));
  }
  std::vector<std::string> lost;
  for (int i : chosen) lost.push_back(KeyOf(i));
  const uint64_t digest_before = eu.region->digest();
  Close(eu);
  LoseRecords(base + "/eu", lost);
  eu = Open(kEu, base + "/eu", /*sync=*/true, true, clock);  // repairs commit durably
  // Nothing is marked yet. The digest already lacks the lost records that fell in buckets
  // journaled since the tree was last saved (recomputed at start), and still holds the others.
  if (eu.region->documents() != static_cast<uint64_t>(documents) ||
      eu.region->damaged_count() != 0) {
    Fail("eu's position changed with the lost records");
  }
  std::printf("eu reopened: its digest %s the lost records' digests\n",
              eu.region->digest() == digest_before ? "still holds" : "already lacks some of");

  started = Clock::now();
  size_t checked = 0, found = 0, steps = 0;
  double found_all_s = 0;
  for (bool done = false; !done;) {
    std::vector<node::Change> erased;
    auto step = eu.region->Scrub(4096, &erased);
    if (!step.ok()) Fail("scrub: " + step.status().ToString());
    checked += step->checked;
    found += step->damaged;
    ++steps;
    if (found == lost.size() && found_all_s == 0) found_all_s = Seconds(started);
    done = step->pass_done;
  }
  const double scrub_s = Seconds(started);
  std::printf(
      "scrub of eu: %zu documents checked in %.2f s (%.0f documents/s, %zu steps of 4096), "
      "%zu damaged found (all %zu found after %.2f s); damaged_count=%zu\n",
      checked, scrub_s, static_cast<double>(checked) / scrub_s, steps, found, lost.size(),
      found_all_s, eu.region->damaged_count());
  if (found != lost.size() || eu.region->damaged_count() != lost.size()) {
    Fail("the scrub did not find every lost record");
  }

  bool repair_met = false;
  {
    Comparison comparison(eu, us);
    started = Clock::now();
    const replication::VerifyResult result = comparison.Run();
    const double seconds = Seconds(started);
    PrintResult("repairing comparison eu -> us", result, seconds, comparison);
    const bool whole = eu.region->digest() == us.region->digest() &&
                       eu.region->damaged_count() == 0 &&
                       eu.region->documents() == us.region->documents();
    if (!whole || result.repaired != lost.size()) {
      Fail("after the repair: eu digest " + std::to_string(eu.region->digest()) + " us digest " +
           std::to_string(us.region->digest()) + ", damaged_count " +
           std::to_string(eu.region->damaged_count()) + ", repaired " +
           std::to_string(result.repaired) + " of " + std::to_string(lost.size()));
    }
    for (const std::string& key : lost) {
      auto mine = eu.store->GetView(key);
      auto theirs = us.store->GetView(key);
      if (!mine.ok() || !theirs.ok() || *mine != *theirs || !mine->has_value()) {
        Fail("after the repair " + key + " differs");
      }
    }
    repair_met = seconds <= 2.0;
    std::printf(
        "GOAL the comparison that finds and repairs %zu damaged documents <= 2 s: %s (%.3f s, "
        "%zu repaired; digests equal, damaged_count 0)\n",
        lost.size(), Met(repair_met), seconds, result.repaired);
  }
  {
    // And once more, as the next periodic comparison would: identical.
    Comparison comparison(eu, us);
    started = Clock::now();
    const replication::VerifyResult result = comparison.Run();
    PrintResult("comparison eu -> us after the repair", result, Seconds(started), comparison);
    if (result.state != replication::VerifyResult::State::kIdentical) {
      Fail("not identical after the repair");
    }
  }
  std::printf("peak RSS %.0f MiB\n", PeakRssMiB());
  Close(us);
  Close(eu);
  return clean_met && repair_met;
}

struct RoundCpu {
  double commit_us = 0;   // the committing thread's CPU per write
  double process_us = 0;  // the whole process's (RocksDB's flushes and compactions too)
};

// One round of goal 3: a fresh store, `keys` documents written first (not timed), then `writes`
// durable writes in groups of `group`. Returns writes/s.
double WriteRound(const std::string& path, bool tree, int keys, int writes, int group,
                  uint64_t seed, node::SystemClock* clock, RoundCpu* cpu) {
  std::filesystem::remove_all(path);
  Side side = Open(kUs, path, /*sync=*/true, tree, clock);
  const std::string filler(150, 'x');
  const auto document = [&](int key, uint64_t n) {
    core::Operation op;
    op.kind = core::OpKind::kReplace;
    op.fields = {{"description", "\"" + filler + "\""},
                 {"price", std::to_string(100 + n % 900)},
                 {"stock", std::to_string(n % 1000)},
                 {"sku", std::to_string(key)}};
    return op;
  };
  std::vector<node::WriteRequest> batch;
  std::vector<Result<node::Receipt>> outcomes;
  std::vector<node::Change> changes;
  for (int key = 0; key < keys; ++key) {
    batch.push_back({KeyOf(key), document(key, 0)});
    if (batch.size() == 1000 || key + 1 == keys) {
      outcomes.clear();
      changes.clear();
      side.region->CommitLocalWrites(batch, &outcomes, &changes);
      CheckOutcomes(outcomes);
      batch.clear();
    }
  }
  std::mt19937_64 random(seed);
  std::vector<std::vector<node::WriteRequest>> groups;
  for (int i = 0; i < writes; i += group) {
    std::vector<node::WriteRequest> writes_of_group;
    for (int j = i; j < std::min(writes, i + group); ++j) {
      const int key = static_cast<int>(random() % static_cast<uint64_t>(keys));
      writes_of_group.push_back({KeyOf(key), document(key, static_cast<uint64_t>(j))});
    }
    groups.push_back(std::move(writes_of_group));
  }
  const double thread_before = CpuSeconds(RUSAGE_THREAD);
  const double process_before = CpuSeconds(RUSAGE_SELF);
  const auto started = Clock::now();
  for (const auto& writes_of_group : groups) {
    outcomes.clear();
    changes.clear();
    side.region->CommitLocalWrites(writes_of_group, &outcomes, &changes);
    CheckOutcomes(outcomes);
  }
  const double seconds = Seconds(started);
  cpu->commit_us = (CpuSeconds(RUSAGE_THREAD) - thread_before) * 1e6 / writes;
  cpu->process_us = (CpuSeconds(RUSAGE_SELF) - process_before) * 1e6 / writes;
  uint64_t root = 0;
  for (uint64_t hash : side.region->TreeChildren(0, std::vector<uint32_t>{0})) root ^= hash;
  if (root != (tree ? side.region->digest() : 0)) Fail("the tree does not match the digest");
  Close(side);
  std::filesystem::remove_all(path);
  return writes / seconds;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Goal 3. Returns whether it was met.
bool RunWrites(const std::string& base, int rounds, int keys, int writes, int group,
               const std::string& only_tree, node::SystemClock* clock) {
  std::vector<double> on, off, on_cpu, off_cpu;
  for (int round = 0; round < rounds; ++round) {
    // on, off / off, on / ...: neither always goes first.
    for (int k = 0; k < 2; ++k) {
      const bool tree = (round % 2 == 0) == (k == 0);
      if ((tree && only_tree == "off") || (!tree && only_tree == "on")) continue;
      RoundCpu cpu;
      const double rate = WriteRound(base + "/writes", tree, keys, writes, group,
                                     static_cast<uint64_t>(round), clock, &cpu);
      (tree ? on : off).push_back(rate);
      (tree ? on_cpu : off_cpu).push_back(cpu.commit_us);
      std::printf(
          "write round %d, tree %s: %.0f durable writes/s; CPU per write %.1f us committing, "
          "%.1f us the whole process\n",
          round + 1, tree ? "on " : "off", rate, cpu.commit_us, cpu.process_us);
      std::fflush(stdout);
    }
  }
  if (on.empty() || off.empty()) return true;  // one side only (to profile it): no ratio
  const double median_on = Median(on), median_off = Median(off);
  const double ratio = median_on / median_off;
  std::printf(
      "durable writes (groups of %d over %d keys, 200-byte documents, %d writes a round, %d "
      "rounds each): tree on median %.0f/s (%.0f-%.0f), off median %.0f/s (%.0f-%.0f)\n",
      group, keys, writes, rounds, median_on, *std::min_element(on.begin(), on.end()),
      *std::max_element(on.begin(), on.end()), median_off,
      *std::min_element(off.begin(), off.end()), *std::max_element(off.begin(), off.end()));
  std::printf("committing thread's CPU per write: tree on median %.1f us, off %.1f us\n",
              Median(on_cpu), Median(off_cpu));
  std::printf("GOAL durable write throughput with the tree >= 0.95 x without: %s (%.3f)\n",
              Met(ratio >= 0.95), ratio);
  return ratio >= 0.95;
}

}  // namespace
}  // namespace meridian

int main(int argc, char** argv) {
  CLI::App app{"Anti-entropy verification: comparison, repair and the tree's write cost"};
  int documents = 1'000'000;
  int damaged = 100;
  int rounds = 5;
  int writes = 30'000;
  int keys = 10'000;
  int group = 32;
  std::string only = "all";
  std::string tree = "both";
  std::string dir = std::filesystem::temp_directory_path().string();
  app.add_option("--documents", documents, "Documents in both regions")->capture_default_str();
  app.add_option("--damaged", damaged, "Documents lost from one region")->capture_default_str();
  app.add_option("--rounds", rounds, "Write rounds with the tree on, and as many off")
      ->capture_default_str();
  app.add_option("--writes", writes, "Durable writes a round")->capture_default_str();
  app.add_option("--keys", keys, "Keys the durable writes go to")->capture_default_str();
  app.add_option("--group", group, "Writes per commit")->capture_default_str();
  app.add_option("--only", only, "all, verify or writes")
      ->check(CLI::IsMember({"all", "verify", "writes"}))
      ->capture_default_str();
  app.add_option("--tree", tree, "Write rounds with the tree on, off or both (on, off: to profile)")
      ->check(CLI::IsMember({"both", "on", "off"}))
      ->capture_default_str();
  app.add_option("--dir", dir, "Where the stores go (a directory made and removed within)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const std::string base = dir + "/meridian-verify-bench-" + std::to_string(getpid());
  std::filesystem::remove_all(base);
  meridian::node::SystemClock clock;
  bool met = true;
  if (only != "writes") met = meridian::RunVerification(base, documents, damaged, &clock) && met;
  if (only != "verify")
    met = meridian::RunWrites(base, rounds, keys, writes, group, tree, &clock) && met;
  std::filesystem::remove_all(base);
  std::printf("goals: %s\n", met ? "all met" : "NOT all met");
  return 0;
}
