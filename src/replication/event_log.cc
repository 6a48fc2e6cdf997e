#include "replication/event_log.h"

#include <algorithm>

#include "core/hlc.h"
#include "meridian/event.pb.h"

namespace meridian::replication {
namespace {

constexpr size_t kPage = 10'000;  // events trimmed per origin and pass, at most

}  // namespace

Status ReadForSend(storage::Store& store, const Outbound::Read& read, LogRead* out) {
  out->events.clear();
  out->first_seq = out->last_seq = 0;
  size_t bytes = 0;
  const auto append = [&](const storage::LoggedEvent& event) {
    if (!out->events.empty() && event.dot.seq != out->last_seq + 1) return false;
    if (out->events.empty()) out->first_seq = event.dot.seq;
    out->last_seq = event.dot.seq;
    bytes += event.bytes.size();
    out->events.push_back(event.bytes);
    return true;
  };
  Status status = store.ReadLogWhile(
      read.origin, read.from_seq, read.limit, [&](const storage::LoggedEvent& event) {
        return append(event) && bytes < read.bytes_max;  // full: read no further
      });
  if (!status.ok() || out->events.empty()) return status;
  // A transaction is sent whole (the receiver applies it in one commit or not at all): a batch
  // that ends inside one takes the rest of it, past the read's limits. It was committed as one,
  // so the log holds all of it.
  const uint32_t rest = core::PeekTxnRest(out->events.back());
  if (rest == 0) return Status::Ok();
  return store.ReadLogWhile(read.origin, out->last_seq + 1, rest, append);
}

bool Retention::Due(uint64_t now_ms) {
  if (now_ms < next_ms_) return false;
  next_ms_ = now_ms + options_.interval_ms;
  return true;
}

void Retention::Run(storage::Store& store, const Exchange& names, const core::VersionVector& floor,
                    const core::VersionVector& applied, uint64_t wall_ms, Ready* ready) {
  if (Status status = Pass(store, names, floor, applied, wall_ms, ready); !status.ok()) {
    ready->Log(Ready::Note::Level::kError, "log retention: " + status.message());
  }
}

Status Retention::Pass(storage::Store& store, const Exchange& names,
                       const core::VersionVector& floor, const core::VersionVector& applied,
                       uint64_t wall_ms, Ready* ready) {
  auto log_bytes = store.LogBytes();
  if (!log_bytes.ok()) return log_bytes.status();
  const bool over_bytes = *log_bytes > options_.bytes;
  const uint64_t cutoff_ms = wall_ms > options_.age_ms ? wall_ms - options_.age_ms : 0;
  for (const auto& entry : floor.entries()) {
    if (!known_.contains(entry.origin)) {
      // After a restart: where an earlier run trimmed this origin's log to.
      std::optional<uint64_t> oldest;
      const Status status = store.ReadLog(
          entry.origin, 1, 1, [&](const storage::LoggedEvent& logged) { oldest = logged.dot.seq; });
      if (!status.ok()) return status;
      trimmed_through_.Set(entry.origin, oldest ? *oldest - 1 : applied.Get(entry.origin));
      known_.insert(entry.origin);
    }
    const uint64_t trimmed = trimmed_through_.Get(entry.origin);
    if (entry.seq <= trimmed) continue;
    uint64_t through = trimmed;
    if (over_bytes) {
      // Never past what this region holds (later events are trimmed by age), and a bounded page
      // per pass: one batch of deletes, not the whole backlog at once.
      through = std::min({entry.seq, applied.Get(entry.origin), trimmed + kPage});
    } else {
      // The oldest events first, a bounded page per pass.
      wire::Event message;
      const Status status = store.ReadLogWhile(
          entry.origin, trimmed + 1, kPage, [&](const storage::LoggedEvent& logged) {
            if (through != logged.dot.seq - 1 || logged.dot.seq > entry.seq) return false;
            // Only the clock is needed: parsed, not decoded and checked.
            if (!message.ParseFromString(logged.bytes) ||
                core::HlcPhysicalMs(message.hlc()) >= cutoff_ms) {
              return false;
            }
            through = logged.dot.seq;
            return true;
          });
      if (!status.ok()) return status;
    }
    if (through <= trimmed) continue;
    if (Status status = store.TrimLog(entry.origin, through); !status.ok()) return status;
    trimmed_through_.Set(entry.origin, through);
    ready->Log(Ready::Note::Level::kInfo, "log retention trimmed " + names.NameOf(entry.origin) +
                                              " through " + std::to_string(through));
  }
  auto after = store.LogBytes();
  log_bytes_ = after.ok() ? *after : *log_bytes;
  return Status::Ok();
}

}  // namespace meridian::replication
