// Chaos against real processes (docs/testing.md): three `meridian start` nodes (us, eu, asia),
// every directed link through wan-proxy routes, clients writing in every region and one SSE
// watcher per region, while a schedule drawn from one seed kills (SIGKILL, sometimes SIGTERM)
// and restarts nodes, partitions and heals links (both ways, one way, isolating a region,
// flapping) and puts delay, jitter, connection resets and stalls on them. At the end everything is
// healed and restarted, the regions must converge, and the checkers of chaos_model.h run over
// HTTP: identical documents and digests everywhere, no acknowledged write lost, exact counters,
// watches that saw every change of their prefix once, in per-origin order, up to each key's final
// state. A report (seed, faults with their times, writes per region, convergence time, checker
// results) is printed and written to chaos-report-<seed>.txt.
//
// MERIDIAN_CHAOS_SEED replays a schedule (the seed is printed; the OS's timing is not replayed,
// so the same seed gives the same faults at the same planned times, not the same interleaving);
// MERIDIAN_CHAOS_SECONDS sets the length of the faulty phase (60 by default).
#include <gtest/gtest.h>
#include <poll.h>

// g++ 12 needs <utility> before Asio.
#include <utility>

#include <boost/asio.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "chaos/chaos_model.h"
#include "support/cluster.h"
#include "support/http_client.h"
#include "support/sse_stream.h"

namespace meridian::chaos {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using testing::Cluster;
using testing::ClusterOptions;
using testing::EncodeKey;
using testing::HttpClient;
using testing::HttpResponse;
using testing::LinkConditions;
using testing::SseEvent;
using testing::SseStream;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The watched prefix. Keys outside it ("z/", "m/") are written too, so the watches' filtering is
// part of what is checked.
const std::string kPrefix = "k/";
constexpr int kDocKeys = 12;     // "k/doc/N": unique values, written from every region
constexpr int kHotDocKeys = 3;   // half the document writes go to these: concurrent writes
constexpr int kCounterKeys = 6;  // "k/ctr/N": increments only, from every region
constexpr int kOutsideKeys = 4;  // "z/doc/N": unique values, outside the watched prefix
constexpr int kWritersPerRegion = 2;
constexpr int kMaxWritesPerWriter = 1'000'000;
const std::vector<std::string> kRegions = {"us", "eu", "asia"};

json Parse(const std::string& text) {
  return json::parse(text, nullptr, /*allow_exceptions=*/false);
}

std::string DocPath(const std::string& key) {
  return "/v1/docs/" + EncodeKey(key);
}

// Sleeps until `when` in slices, returning early (false) once `abort` is set.
bool SleepUntil(Clock::time_point when, const std::atomic<bool>& abort) {
  while (!abort.load()) {
    const auto now = Clock::now();
    if (now >= when) return true;
    std::this_thread::sleep_for(std::min<Clock::duration>(when - now, milliseconds(50)));
  }
  return false;
}

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

struct Settings {
  uint64_t seed = 0;
  int64_t duration_ms = 60'000;
};

Settings FromEnvironment() {
  Settings settings;
  if (const char* seed = std::getenv("MERIDIAN_CHAOS_SEED"); seed != nullptr && *seed != '\0') {
    settings.seed = std::strtoull(seed, nullptr, 10);
  } else {
    settings.seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }
  if (const char* text = std::getenv("MERIDIAN_CHAOS_SECONDS"); text != nullptr && *text != '\0') {
    const long long value = std::strtoll(text, nullptr, 10);
    if (value > 0 && value <= 24 * 3600) settings.duration_ms = value * 1000;
  }
  return settings;
}

std::optional<Change> ToChange(const SseEvent& event) {
  const json data = Parse(event.data);
  if (!data.is_object() || !data.contains("key") || !data["key"].is_string() ||
      !data.contains("event")) {
    return std::nullopt;
  }
  Change change;
  change.id = event.id;
  change.key = data["key"].get<std::string>();
  change.doc = data.value("doc", json());
  if (data["event"] != change.id) return std::nullopt;  // the id line and the body disagree
  return change;
}

std::string WatchTarget(const std::string& from) {
  return "/v1/watch?prefix=" + EncodeKey(kPrefix) + "&from=" + EncodeKey(from);
}

// One region's watcher: follows the prefix from the region's marker event, and whenever the
// stream ends (the node was killed or stopped, or closed a slow consumer) opens it again from
// the last event it saw, until stopped.
class Watcher {
 public:
  Watcher(std::string region, uint16_t port, std::string from)
      : region_(std::move(region)), port_(port), last_(std::move(from)) {}
  ~Watcher() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  std::vector<Change> changes() const {
    std::lock_guard lock(mutex_);
    return changes_;
  }
  bool SawAll(const std::set<std::string>& ids) const {
    std::lock_guard lock(mutex_);
    return std::all_of(ids.begin(), ids.end(),
                       [&](const std::string& id) { return seen_.count(id) > 0; });
  }
  std::string Summary() const {
    std::lock_guard lock(mutex_);
    std::ostringstream out;
    out << region_ << ": " << changes_.size() << " changes, " << streams_ << " streams opened, "
        << refused_ << " refused opens, " << errors_ << " error events";
    return out.str();
  }
  std::vector<std::string> problems() const {
    std::lock_guard lock(mutex_);
    return problems_;
  }

 private:
  void Run() {
    for (int attempt = 0; attempt < 1'000'000 && !stop_; ++attempt) {
      SseStream stream(port_);
      const int status = stream.Open(WatchTarget(last_), {}, seconds(5));
      if (status != 200) {
        std::lock_guard lock(mutex_);
        ++refused_;
        // 404 unknown_event: the node no longer holds an event it sent this watch.
        if (status == 404 && problems_.size() < 10) {
          problems_.push_back(region_ + " watch: resuming from " + last_ + " answered 404");
        }
      } else {
        {
          std::lock_guard lock(mutex_);
          ++streams_;
        }
        while (!stop_) {
          const auto event = stream.Next(milliseconds(300));
          if (!event) {
            if (stream.closed()) break;
            continue;
          }
          if (event->event == "error") {  // slow_consumer: resume from the last event seen
            std::lock_guard lock(mutex_);
            ++errors_;
            break;
          }
          if (event->event != "change") continue;
          const auto change = ToChange(*event);
          std::lock_guard lock(mutex_);
          if (!change) {
            if (problems_.size() < 10) {
              problems_.push_back(region_ + " watch: malformed change: " + event->data);
            }
            continue;
          }
          changes_.push_back(*change);
          seen_.insert(change->id);
          last_ = change->id;
        }
      }
      if (!stop_) std::this_thread::sleep_for(milliseconds(50));  // a client's back-off
    }
  }

  const std::string region_;
  const uint16_t port_;
  std::string last_;  // only the watcher's thread touches it
  std::atomic<bool> stop_ = false;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<Change> changes_;
  std::set<std::string> seen_;
  std::vector<std::string> problems_;
  int streams_ = 0;
  int refused_ = 0;
  int errors_ = 0;
};

// The region's change log as a fresh watch replays it from `from`, up to the events `until`.
std::optional<std::vector<Change>> Replay(uint16_t port, const std::string& from,
                                          const std::set<std::string>& until,
                                          milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  SseStream stream(port);
  if (stream.Open(WatchTarget(from), {}, timeout) != 200) return std::nullopt;
  std::vector<Change> changes;
  std::set<std::string> missing = until;
  while (!missing.empty() && Clock::now() < deadline) {
    const auto event = stream.Next(milliseconds(500));
    if (!event) {
      if (stream.closed()) return std::nullopt;
      continue;
    }
    if (event->event != "change") return std::nullopt;
    const auto change = ToChange(*event);
    if (!change) return std::nullopt;
    changes.push_back(*change);
    missing.erase(change->id);
  }
  if (!missing.empty()) return std::nullopt;
  return changes;
}

// ---------------------------------------------------------------------------------------------
// What happened when: the regions' processes, and the faults as executed.

class Timeline {
 public:
  void Started(const std::string& region, Micros at) {
    std::lock_guard lock(mutex_);
    lives_[region].push_back(Life{at, kNever});
  }
  void Reaped(const std::string& region, Micros at) {
    std::lock_guard lock(mutex_);
    auto& lives = lives_[region];
    if (!lives.empty() && lives.back().reaped == kNever) lives.back().reaped = at;
  }
  std::map<std::string, std::vector<Life>> lives() const {
    std::lock_guard lock(mutex_);
    return lives_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<Life>> lives_;
};

struct FaultRecord {
  std::string description;
  int64_t planned_ms = 0;
  int64_t started_ms = -1;
  int64_t ended_ms = -1;
  std::string note;  // what went wrong, or a SIGTERM's exit status
  bool failed = false;
};

// Every planned fault, with when it actually started and was undone (-1: not reached).
class FaultLog {
 public:
  // The index of the first of `faults` in the log.
  size_t Plan(const std::vector<Fault>& faults) {
    std::lock_guard lock(mutex_);
    const size_t first = records_.size();
    for (const Fault& fault : faults) {
      records_.push_back(FaultRecord{Describe(fault), fault.start_ms, -1, -1, "", false});
    }
    return first;
  }
  void Update(size_t index, const std::function<void(FaultRecord&)>& change) {
    std::lock_guard lock(mutex_);
    change(records_[index]);
  }
  std::vector<FaultRecord> records() const {
    std::lock_guard lock(mutex_);
    std::vector<FaultRecord> sorted = records_;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.planned_ms < b.planned_ms; });
    return sorted;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<FaultRecord> records_;
};

std::string CutShort() {
  return "undone early: the phase ended";
}

// Kills or stops a node, then restarts it; one fault after the other, so at most one node is
// ever down.
void RunProcessTrack(Cluster& cluster, const std::vector<Fault>& faults, size_t first,
                     Clock::time_point start, Timeline& timeline, FaultLog& log,
                     const std::atomic<bool>& abort) {
  for (size_t i = 0; i < faults.size(); ++i) {
    const Fault& fault = faults[i];
    if (!SleepUntil(start + milliseconds(fault.start_ms), abort)) return;
    const size_t index = first + i;
    log.Update(index, [&](FaultRecord& r) { r.started_ms = MsSince(start); });
    testing::NodeProcess& node = cluster.node(fault.a);
    if (fault.kind == FaultKind::kKill) {
      node.Kill();
    } else {
      const int status = node.Terminate(seconds(20));
      log.Update(index, [&](FaultRecord& r) {
        r.note = "exit status " + std::to_string(status);
        r.failed = status != 0;  // a graceful shutdown exits with 0 (docs/operations.md)
        if (status == -1) r.note = "did not exit within 20 s of SIGTERM; killed";
      });
    }
    timeline.Reaped(fault.a, NowMicros());
    SleepUntil(start + milliseconds(fault.end_ms), abort);  // restart even when aborting
    timeline.Started(fault.a, NowMicros());
    const bool ready = node.Start(seconds(30));
    if (!node.running()) timeline.Reaped(fault.a, NowMicros());
    log.Update(index, [&](FaultRecord& r) {
      r.ended_ms = MsSince(start);
      if (r.ended_ms < fault.end_ms) r.note += (r.note.empty() ? "" : "; ") + CutShort();
      if (!ready) {
        r.failed = true;
        r.note += (r.note.empty() ? "" : "; ") + std::string("restart: not ready within 30 s");
      }
    });
  }
}

// One link fault at a time; each is undone before the next.
void RunNetworkTrack(Cluster& cluster, const std::vector<Fault>& faults, size_t first,
                     Clock::time_point start, FaultLog& log, const std::atomic<bool>& abort) {
  for (size_t f = 0; f < faults.size(); ++f) {
    const Fault& fault = faults[f];
    if (!SleepUntil(start + milliseconds(fault.start_ms), abort)) return;
    const size_t index = first + f;
    log.Update(index, [&](FaultRecord& r) { r.started_ms = MsSince(start); });
    bool ok = true;
    switch (fault.kind) {
      case FaultKind::kPartition:
        cluster.Partition(fault.a, fault.b);
        break;
      case FaultKind::kOneWay:
        cluster.PartitionRoute(fault.a, fault.b);
        break;
      case FaultKind::kIsolate:
        for (const std::string& other : kRegions) {
          if (other != fault.a) cluster.Partition(fault.a, other);
        }
        break;
      case FaultKind::kFlap:
        for (size_t i = 0; i < fault.toggles_ms.size(); ++i) {
          if (!SleepUntil(start + milliseconds(fault.toggles_ms[i]), abort)) break;
          if (i % 2 == 0) {
            cluster.Partition(fault.a, fault.b);
          } else {
            cluster.Heal(fault.a, fault.b);
          }
        }
        break;
      case FaultKind::kJitter:
      case FaultKind::kLossy:
        ok = cluster.SetLinkConditions(fault.a, fault.b, fault.conditions) &&
             cluster.SetLinkConditions(fault.b, fault.a, fault.conditions);
        break;
      case FaultKind::kKill:
      case FaultKind::kTerminate:
        break;
    }
    SleepUntil(start + milliseconds(fault.end_ms), abort);  // undo even when aborting
    switch (fault.kind) {
      case FaultKind::kPartition:
      case FaultKind::kFlap:
        cluster.Heal(fault.a, fault.b);
        break;
      case FaultKind::kOneWay:
        cluster.HealRoute(fault.a, fault.b);
        break;
      case FaultKind::kIsolate:
        for (const std::string& other : kRegions) {
          if (other != fault.a) cluster.Heal(fault.a, other);
        }
        break;
      case FaultKind::kJitter:
      case FaultKind::kLossy:
        ok = cluster.SetLinkConditions(fault.a, fault.b, LinkConditions{}) &&
             cluster.SetLinkConditions(fault.b, fault.a, LinkConditions{}) && ok;
        break;
      case FaultKind::kKill:
      case FaultKind::kTerminate:
        break;
    }
    log.Update(index, [&](FaultRecord& r) {
      r.ended_ms = MsSince(start);
      if (r.ended_ms < fault.end_ms) r.note = CutShort();
      if (!ok) {
        r.failed = true;
        r.note = "a link's proxy could not listen again";
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Clients

// One client of one region: sequential writes at a paced rate, each recorded with its answer.
// After a write without an answer it waits for the region to answer /healthz again (a client's
// back-off), so a region that is down costs a writer one unknown outcome, not hundreds.
void RunWriter(Cluster& cluster, const std::string& region, int region_id, int index, uint64_t seed,
               const std::atomic<bool>& stop, std::vector<Write>* out) {
  std::mt19937_64 rng(seed);
  HttpClient client = cluster.node(region).Client(seconds(5));
  const std::string name = region + "." + std::to_string(index) + ".";
  for (int i = 0; i < kMaxWritesPerWriter && !stop.load(); ++i) {
    Write write;
    write.region = region;
    write.region_id = region_id;
    const uint64_t dice = rng() % 100;
    const auto doc_key = [&](const char* space, int count) {
      const int pick = rng() % 2 == 0 ? static_cast<int>(rng() % kHotDocKeys)
                                      : static_cast<int>(rng() % static_cast<uint64_t>(count));
      return std::string(space) + std::to_string(pick);
    };
    if (dice < 30) {
      write.kind = WriteKind::kPut;
      write.key = doc_key("k/doc/", kDocKeys);
    } else if (dice < 50) {
      write.kind = WriteKind::kPatch;
      write.key = doc_key("k/doc/", kDocKeys);
    } else if (dice < 58) {
      write.kind = WriteKind::kDelete;
      write.key = doc_key("k/doc/", kDocKeys);
    } else if (dice < 90) {
      write.kind = WriteKind::kIncr;
      write.key = "k/ctr/" + std::to_string(rng() % kCounterKeys);
      write.delta = 1 + static_cast<int64_t>(rng() % 5);
    } else {
      const uint64_t kind = rng() % 10;
      write.kind = kind < 6 ? WriteKind::kPut : kind < 9 ? WriteKind::kPatch : WriteKind::kDelete;
      write.key = "z/doc/" + std::to_string(rng() % kOutsideKeys);
    }
    HttpResponse response;
    write.sent = NowMicros();
    switch (write.kind) {
      case WriteKind::kPut:
        write.value = name + std::to_string(i);
        response =
            client.Send("PUT", DocPath(write.key), json{{"v", write.value}, {"by", region}}.dump());
        break;
      case WriteKind::kPatch:
        write.value = name + std::to_string(i);
        response = client.Send("PATCH", DocPath(write.key), json{{"v", write.value}}.dump());
        break;
      case WriteKind::kDelete:
        response = client.Request("DELETE", DocPath(write.key));
        break;
      case WriteKind::kIncr:
        response = client.Send("POST", DocPath(write.key) + "/incr",
                               json{{"n", write.delta}, {"m", -write.delta}}.dump());
        break;
    }
    write.ended = NowMicros();
    write.status = response.status;
    if (response.status == 200) {
      const json receipt = Parse(response.body);
      if (receipt.is_object() && receipt.value("event", json()).is_string() &&
          receipt.value("hlc", json()).is_string() &&
          ParseHlc(receipt["hlc"].get<std::string>(), &write.hlc_ms, &write.hlc_logical)) {
        write.event = receipt["event"].get<std::string>();
      } else {
        write.detail = "malformed receipt: " + response.body.substr(0, 200);
      }
    } else if (response.status == 0) {
      write.detail = response.error;
    } else {
      write.detail = std::to_string(response.status) + " " + response.body.substr(0, 200);
    }
    out->push_back(std::move(write));
    if (response.status == 0) {
      for (int poll = 0; poll < 1200 && !stop.load(); ++poll) {
        if (client.Get("/healthz").status == 200) break;
        std::this_thread::sleep_for(milliseconds(50));
      }
    }
    std::this_thread::sleep_for(milliseconds(10 + static_cast<int64_t>(rng() % 21)));
  }
}

// Stops and joins every thread it was given, also when the test ends early.
class Threads {
 public:
  ~Threads() { StopAll(); }
  void Add(std::atomic<bool>* flag, std::thread thread) {
    flags_.push_back(flag);
    threads_.push_back(std::move(thread));
  }
  void StopAll() {
    for (std::atomic<bool>* flag : flags_) *flag = true;
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

 private:
  std::vector<std::atomic<bool>*> flags_;
  std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------------------------------------
// The report

struct CheckResult {
  std::string name;
  std::vector<std::string> problems;
};

std::string Percent(double fraction) {
  char text[32];
  std::snprintf(text, sizeof text, "%.0f%%", fraction * 100);
  return text;
}

std::string Report(const Settings& settings, double coverage,
                   const std::vector<FaultRecord>& faults, const std::vector<Write>& writes,
                   const std::vector<std::string>& watchers, int64_t chaos_ms, int64_t converge_ms,
                   const std::map<std::string, json>& statuses,
                   const testing::LinkFaultTotals& link_faults, uint64_t proxy_bytes,
                   const std::vector<CheckResult>& checks) {
  std::ostringstream out;
  out << "Meridian chaos report\n"
      << "seed " << settings.seed << " (replay: MERIDIAN_CHAOS_SEED=" << settings.seed
      << " MERIDIAN_CHAOS_SECONDS=" << settings.duration_ms / 1000 << ")\n"
      << "faulty phase " << settings.duration_ms << " ms planned, " << chaos_ms
      << " ms actual; planned fault coverage " << Percent(coverage) << "\n"
      << "The schedule below is a function of the seed; the times actually reached, and everything"
         " the operating system decides, are not.\n\n";
  out << "faults (" << faults.size() << "): planned ms / started ms / undone ms\n";
  std::map<std::string, int> by_kind;
  for (const FaultRecord& fault : faults) {
    char line[96];
    std::snprintf(line, sizeof line, "  %7lld %7lld %7lld  ",
                  static_cast<long long>(fault.planned_ms),
                  static_cast<long long>(fault.started_ms), static_cast<long long>(fault.ended_ms));
    const std::string note =
        fault.started_ms < 0 ? "not reached: the phase ended first" : fault.note;
    out << line << fault.description << (note.empty() ? "" : "  [" + note + "]")
        << (fault.failed ? "  FAILED" : "") << "\n";
    ++by_kind[fault.description.substr(0, fault.description.find(' '))];
  }
  out << "  by kind:";
  for (const auto& [kind, count] : by_kind) out << " " << kind << "=" << count;
  out << "\n  link proxies: " << link_faults.drops << " connections reset, " << link_faults.stalls
      << " stalls; " << proxy_bytes << " bytes carried between regions\n\n";

  out << "writes: attempted / acknowledged / unknown / rejected / not sent (region down)\n";
  std::map<std::string, std::array<int, 5>> per_region;
  for (const Write& write : writes) {
    auto& row = per_region[write.region];
    ++row[0];
    ++row[1 + static_cast<int>(write.outcome)];
  }
  std::array<int, 5> total{};
  for (const std::string& region : kRegions) {
    const auto& row = per_region[region];
    out << "  " << region << ": " << row[0] << " / " << row[1] << " / " << row[2] << " / " << row[3]
        << " / " << row[4] << "\n";
    for (size_t i = 0; i < total.size(); ++i) total[i] += row[i];
  }
  out << "  all: " << total[0] << " / " << total[1] << " / " << total[2] << " / " << total[3]
      << " / " << total[4] << "\n\n";

  out << "convergence after the final heal and restarts: "
      << (converge_ms >= 0 ? std::to_string(converge_ms) + " ms" : std::string("NOT REACHED"))
      << "\n";
  for (const auto& [region, status] : statuses) {
    out << "  " << region << ": frontier " << status.value("frontier", json()).dump() << " digest "
        << status.value("digest", json()).dump() << " documents "
        << status.value("documents", json()).dump() << " conflicts "
        << status.value("conflicts", json()).dump() << "\n";
    // How its links fared: redials after a lost link, and hedges beside slow or quiet streams.
    if (status.contains("peers") && status["peers"].is_array()) {
      out << "    links:";
      for (const json& peer : status["peers"]) {
        out << " " << peer.value("name", "?") << " reconnects " << peer.value("reconnects", 0)
            << " hedges " << peer.value("hedges", 0) << ";";
      }
      out << "\n";
    }
  }
  out << "watchers:\n";
  for (const std::string& watcher : watchers) out << "  " << watcher << "\n";
  out << "\ncheckers:\n";
  for (const CheckResult& check : checks) {
    out << "  " << (check.problems.empty() ? "PASS " : "FAIL ") << check.name << "\n";
    for (size_t i = 0; i < check.problems.size() && i < 20; ++i) {
      out << "       " << check.problems[i] << "\n";
    }
    if (check.problems.size() > 20) {
      out << "       ... and " << check.problems.size() - 20 << " more\n";
    }
  }
  return out.str();
}

std::string WriteReport(const std::string& text, uint64_t seed) {
  const std::string name = "chaos-report-" + std::to_string(seed) + ".txt";
  std::vector<std::filesystem::path> places = {std::filesystem::current_path() / name};
  const char* tmp = std::getenv("TMPDIR");
  places.push_back(std::filesystem::path(tmp != nullptr ? tmp : "/tmp") / name);
  for (const auto& path : places) {
    std::ofstream file(path);
    if (!file) continue;
    file << text;
    if (file.good()) return path.string();
  }
  return "(not written)";
}

std::string LogTails(Cluster& cluster, size_t lines) {
  std::string out;
  for (const std::string& region : kRegions) {
    const std::string log = cluster.node(region).log();
    size_t start = log.size();
    for (size_t found = 0; start > 0 && found <= lines; --start) {
      if (log[start - 1] == '\n') ++found;
    }
    out += "--- " + region + " (last lines) ---\n" + log.substr(start) + "\n";
  }
  return out;
}

TEST(Chaos, RealProcessesUnderFaults) {
  const Settings settings = FromEnvironment();
  std::printf("chaos: seed %llu, %lld s of faults (replay: MERIDIAN_CHAOS_SEED=%llu)\n",
              static_cast<unsigned long long>(settings.seed),
              static_cast<long long>(settings.duration_ms / 1000),
              static_cast<unsigned long long>(settings.seed));
  std::fflush(stdout);
  const FaultPlan plan = PlanFaults(settings.seed, settings.duration_ms, kRegions);
  const double coverage = FaultCoverage(plan, settings.duration_ms);

  ClusterOptions options;
  options.delay_ms = 5;
  options.jitter_ms = 2;
  options.adjustable_links = true;
  options.close_inherited_fds = true;
  options.proxy_seed = settings.seed;
  Timeline timeline;
  for (const std::string& region : kRegions) timeline.Started(region, NowMicros());
  Cluster cluster(options);
  ASSERT_TRUE(cluster.Start()) << cluster.Logs();
  std::map<std::string, int> region_ids;
  for (size_t i = 0; i < kRegions.size(); ++i) region_ids[kRegions[i]] = static_cast<int>(i) + 1;

  // A marker written in each region, outside the prefix, before anything else: each watch starts
  // from its own region's marker, so it has an event to resume from from the first moment.
  std::map<std::string, std::string> markers;
  for (const std::string& region : kRegions) {
    const HttpResponse written =
        cluster.Client(region).Send("PUT", DocPath("m/" + region), R"({"marker":true})");
    ASSERT_EQ(written.status, 200) << written.body;
    markers[region] = Parse(written.body)["event"].get<std::string>();
  }
  std::string why;
  ASSERT_TRUE(cluster.WaitConverged(seconds(30), &why)) << why;

  std::map<std::string, std::unique_ptr<Watcher>> watchers;
  for (const std::string& region : kRegions) {
    watchers[region] =
        std::make_unique<Watcher>(region, cluster.node(region).http_port(), markers[region]);
    watchers[region]->Start();
  }

  // The faulty phase.
  Threads threads;
  std::atomic<bool> stop_writers = false;
  std::atomic<bool> abort_faults = false;
  std::vector<std::vector<Write>> written(kRegions.size() * kWritersPerRegion);
  FaultLog fault_log;
  const size_t first_process = fault_log.Plan(plan.process);
  const size_t first_network = fault_log.Plan(plan.network);
  const Clock::time_point start = Clock::now();
  for (size_t r = 0; r < kRegions.size(); ++r) {
    for (int w = 0; w < kWritersPerRegion; ++w) {
      const size_t slot = r * kWritersPerRegion + static_cast<size_t>(w);
      const uint64_t writer_seed = settings.seed ^ (0x5851f42d4c957f2dULL * (slot + 1));
      threads.Add(&stop_writers,
                  std::thread(RunWriter, std::ref(cluster), kRegions[r], region_ids[kRegions[r]], w,
                              writer_seed, std::cref(stop_writers), &written[slot]));
    }
  }
  std::thread process_track([&] {
    RunProcessTrack(cluster, plan.process, first_process, start, timeline, fault_log, abort_faults);
  });
  std::thread network_track([&] {
    RunNetworkTrack(cluster, plan.network, first_network, start, fault_log, abort_faults);
  });
  threads.Add(&abort_faults, std::move(process_track));
  threads.Add(&abort_faults, std::move(network_track));
  std::this_thread::sleep_for(milliseconds(settings.duration_ms));  // paces the run
  // The end of the phase: the clients stop, and the fault in progress on each track is undone at
  // once (the node restarted, the link healed or cleaned); faults not reached are left out.
  threads.StopAll();
  const int64_t chaos_ms = MsSince(start);

  // Heal everything (again), restart what is still down, and measure the time to converge.
  cluster.HealAll();
  for (const std::string& from : kRegions) {
    for (const std::string& to : kRegions) {
      if (from != to) {
        EXPECT_TRUE(cluster.SetLinkConditions(from, to, LinkConditions{}));
      }
    }
  }
  for (const std::string& region : kRegions) {
    if (!cluster.node(region).running()) {
      timeline.Started(region, NowMicros());
      EXPECT_TRUE(cluster.node(region).Start(seconds(30))) << cluster.node(region).log();
    }
  }
  const Clock::time_point healed = Clock::now();
  const bool converged = cluster.WaitConverged(seconds(60), &why);
  const int64_t converge_ms = converged ? MsSince(healed) : -1;

  std::vector<CheckResult> checks;
  checks.push_back({"every region converges within 60 s of the final heal (frontier and digest)",
                    converged ? std::vector<std::string>{} : std::vector<std::string>{why}});

  // A sentinel per region, written after convergence: once a watcher has seen all three, it has
  // seen everything its region applied before them.
  std::set<std::string> sentinels;
  for (const std::string& region : kRegions) {
    const HttpResponse sentinel =
        cluster.Client(region).Send("PUT", DocPath(kPrefix + "~end/" + region), R"({"end":1})");
    if (sentinel.status == 200) sentinels.insert(Parse(sentinel.body)["event"].get<std::string>());
  }
  const bool settled =
      sentinels.size() == kRegions.size() && cluster.WaitConverged(seconds(30), &why);
  std::vector<std::string> caught_up_problems;
  if (!settled) caught_up_problems.push_back("the sentinels did not reach every region: " + why);
  // One deadline for all: the whole test stays within its CTest timeout even when this fails.
  const auto caught_up_by = Clock::now() + seconds(settled ? 30 : 0);
  for (const std::string& region : kRegions) {
    while (!watchers[region]->SawAll(sentinels) && Clock::now() < caught_up_by) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    if (!watchers[region]->SawAll(sentinels)) {
      caught_up_problems.push_back(region + " watch did not see every sentinel");
    }
  }
  for (auto& [region, watcher] : watchers) watcher->Stop();
  checks.push_back({"every watcher caught up with the sentinels", caught_up_problems});

  // The final state, as every region serves it.
  std::map<std::string, std::map<std::string, std::string>> documents;
  std::map<std::string, json> statuses;
  for (const std::string& region : kRegions) {
    documents[region] = cluster.Documents(region, "");
    statuses[region] = Parse(cluster.Client(region).Get("/v1/status").body);
  }
  {
    std::vector<std::string> problems;
    const auto& reference = documents[kRegions.front()];
    for (const std::string& region : kRegions) {
      const auto& mine = documents[region];
      if (mine != reference) {
        std::set<std::string> keys;
        for (const auto& [key, doc] : reference) keys.insert(key);
        for (const auto& [key, doc] : mine) keys.insert(key);
        for (const std::string& key : keys) {
          const auto a = reference.find(key);
          const auto b = mine.find(key);
          const std::string left = a == reference.end() ? "absent" : a->second;
          const std::string right = b == mine.end() ? "absent" : b->second;
          if (left != right) {
            problems.push_back(key + ": " + kRegions.front() + " " + left + ", " + region + " " +
                               right);
          }
        }
      }
      if (statuses[region].value("digest", json()) !=
              statuses[kRegions.front()].value("digest", json()) ||
          statuses[region].value("frontier", json()) !=
              statuses[kRegions.front()].value("frontier", json())) {
        problems.push_back(region + " status differs: " + statuses[region].dump().substr(0, 300));
      }
    }
    checks.push_back({"all regions serve identical documents, digests and frontiers", problems});
  }

  // Every write, classified.
  std::vector<Write> writes;
  for (auto& slot : written) {
    for (Write& write : slot) writes.push_back(std::move(write));
  }
  Classify(&writes, timeline.lives());
  {
    std::vector<std::string> problems;
    std::map<std::string, uint64_t> highest;
    for (const Write& write : writes) {
      if (write.outcome != Outcome::kAcked) continue;
      std::string origin;
      uint64_t seq = 0;
      if (!ParseEventId(write.event, &origin, &seq) || origin != write.region) {
        problems.push_back("bad receipt for " + std::string(KindName(write.kind)) + " " +
                           write.key + " in " + write.region + ": '" + write.event + "' " +
                           write.detail);
        continue;
      }
      highest[origin] = std::max(highest[origin], seq);
    }
    for (const std::string& region : kRegions) {
      const json frontier = statuses[region].value("frontier", json::object());
      for (const auto& [origin, seq] : highest) {
        if (frontier.value(origin, uint64_t{0}) < seq) {
          problems.push_back(region + " frontier " + frontier.dump() + " does not cover " + origin +
                             ":" + std::to_string(seq));
        }
      }
    }
    checks.push_back(
        {"every receipt is well-formed and covered by every region's frontier", problems});
  }
  {
    std::vector<std::string> problems;
    std::map<std::string, std::vector<const Write*>> by_key;
    for (const Write& write : writes) by_key[write.key].push_back(&write);
    const auto& final_docs = documents[kRegions.front()];
    std::vector<std::string> counter_problems;
    for (const auto& [key, doc] : final_docs) {
      const bool ours = key.rfind("m/", 0) == 0 || key.rfind(kPrefix + "~end/", 0) == 0;
      if (!ours && by_key.count(key) == 0) {
        problems.push_back(key + " exists (" + doc + ") but was never written");
      }
    }
    for (const auto& [key, key_writes] : by_key) {
      std::optional<json> doc;
      if (auto it = final_docs.find(key); it != final_docs.end()) doc = Parse(it->second);
      const bool counter = key.rfind("k/ctr/", 0) == 0;
      auto found = counter ? CheckCounterKey(key, doc, key_writes)
                           : CheckUniqueValueKey(key, doc, key_writes);
      auto& into = counter ? counter_problems : problems;
      into.insert(into.end(), found.begin(), found.end());
    }
    checks.push_back(
        {"no acknowledged write lost: each unique-value key ends as the rule of "
         "chaos_model.cc allows",
         problems});
    checks.push_back(
        {"counters: acknowledged <= n <= acknowledged + unknown, m == -n", counter_problems});
  }

  // The watches.
  std::map<std::string, json> final_prefix_docs;
  for (const auto& [key, doc] : documents[kRegions.front()]) {
    if (key.rfind(kPrefix, 0) == 0) final_prefix_docs[key] = Parse(doc);
  }
  std::vector<std::string> watcher_lines;
  std::vector<std::string> order_problems;
  std::vector<std::string> final_problems;
  std::vector<std::string> write_problems;
  std::vector<std::string> replay_problems;
  std::vector<std::string> same_problems;
  std::map<std::string, std::set<std::string>> ids;
  for (const std::string& region : kRegions) {
    const std::vector<Change> seen = watchers[region]->changes();
    watcher_lines.push_back(watchers[region]->Summary());
    auto add = [](std::vector<std::string>& into, const std::vector<std::string>& found) {
      into.insert(into.end(), found.begin(), found.end());
    };
    add(order_problems, watchers[region]->problems());
    add(order_problems, CheckWatchOrder(region, kPrefix, seen));
    add(final_problems, CheckWatchFinalState(region, seen, final_prefix_docs));
    add(write_problems, CheckWatchAgainstWrites(region, kPrefix, seen, writes));
    const auto replay =
        settled ? Replay(cluster.node(region).http_port(), markers[region], sentinels, seconds(10))
                : std::nullopt;
    if (!replay) {
      replay_problems.push_back(region + ": the change log could not be replayed from " +
                                markers[region]);
    } else {
      add(replay_problems, CompareChanges(region, seen, *replay));
    }
    for (const Change& change : seen) ids[region].insert(change.id);
  }
  for (const std::string& region : kRegions) {
    if (ids[region] != ids[kRegions.front()]) {
      same_problems.push_back(region + " watch saw " + std::to_string(ids[region].size()) +
                              " events, " + kRegions.front() + " " +
                              std::to_string(ids[kRegions.front()].size()));
    }
  }
  checks.push_back(
      {"watches: each change at most once, per-origin seq order, only the prefix", order_problems});
  checks.push_back(
      {"watches: the live stream (resumed across restarts) equals a replay of the "
       "region's change log (exactly once)",
       replay_problems});
  checks.push_back({"watches: every region's watch saw the same events", same_problems});
  checks.push_back(
      {"watches: every acknowledged write seen, every other event explained, "
       "counter steps exact",
       write_problems});
  checks.push_back({"watches: the last change of every key is its final state", final_problems});

  const std::string report =
      Report(settings, coverage, fault_log.records(), writes, watcher_lines, chaos_ms, converge_ms,
             statuses, cluster.LinkFaults(), cluster.ProxyBytes(), checks);
  bool all_passed = true;
  for (const CheckResult& check : checks) all_passed = all_passed && check.problems.empty();
  for (const FaultRecord& fault : fault_log.records()) all_passed = all_passed && !fault.failed;
  const std::string text = report + (all_passed ? "" : "\n" + LogTails(cluster, 40));
  const std::string path = WriteReport(text, settings.seed);
  std::printf("%s\nreport written to %s\n", text.c_str(), path.c_str());
  std::fflush(stdout);

  for (const CheckResult& check : checks) {
    EXPECT_TRUE(check.problems.empty()) << check.name << ": " << check.problems.front();
  }
  for (const FaultRecord& fault : fault_log.records()) {
    EXPECT_FALSE(fault.failed) << fault.description << ": " << fault.note;
  }
  int acknowledged = 0;
  for (const Write& write : writes) acknowledged += write.outcome == Outcome::kAcked;
  EXPECT_GT(acknowledged, 0) << "no write was acknowledged";
}

}  // namespace
}  // namespace meridian::chaos
