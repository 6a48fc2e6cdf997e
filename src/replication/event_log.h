// What the drivers of the exchange do with the region's event log: read a batch to send, and
// trim it by retention.
//
// Log retention (docs/replication.md#retention): trims each origin's logged events below the
// floor every peer that holds the log back has acknowledged (Exchange::RetentionFloor) and older
// than the age bound — or all of them while the log is over the byte bound. Never anything a peer
// still needs, and never past what this region holds. A bounded page per origin and pass. The
// transport and the simulator both run it on their ticks.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/version_vector.h"
#include "replication/exchange.h"
#include "storage/store.h"

namespace meridian::replication {

// The events of a serving stream's read (Exchange::Next), in seq order, never skipping a seq,
// up to the read's limits. `events` empty, or `first_seq` past the read's from_seq: the log does
// not hold what the subscriber needs next (Exchange::Missing, with oldest_seq = first_seq or 0).
struct LogRead {
  std::vector<std::string> events;  // encoded, as logged
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  bool complete(const Outbound::Read& read) const {
    return !events.empty() && first_seq == read.from_seq;
  }
};
Status ReadForSend(storage::Store& store, const Outbound::Read& read, LogRead* out);

struct RetentionOptions {
  uint64_t age_ms = 7ull * 24 * 3600 * 1000;
  uint64_t bytes = uint64_t{1} << 30;
  uint64_t interval_ms = 1000;  // how often a pass runs
};

class Retention {
 public:
  explicit Retention(RetentionOptions options) : options_(options) {}

  // Whether a pass is due at `now_ms` (the driver's steady clock): interval_ms since the last.
  bool Due(uint64_t now_ms);
  // One pass below `floor` (Exchange::RetentionFloor); `wall_ms` is the time events' HLCs are
  // compared with. Notes what it trimmed, or why it failed, in `ready`. Needs no lock on the
  // exchange: only its names are read.
  void Run(storage::Store& store, const Exchange& names, const core::VersionVector& floor,
           const core::VersionVector& applied, uint64_t wall_ms, Ready* ready);

  const core::VersionVector& trimmed_through() const { return trimmed_through_; }
  uint64_t log_bytes() const { return log_bytes_; }

 private:
  Status Pass(storage::Store& store, const Exchange& names, const core::VersionVector& floor,
              const core::VersionVector& applied, uint64_t wall_ms, Ready* ready);

  const RetentionOptions options_;
  uint64_t next_ms_ = 0;
  core::VersionVector trimmed_through_;
  std::set<core::RegionId> known_;  // origins whose trimmed point was read from the store
  uint64_t log_bytes_ = 0;
};

}  // namespace meridian::replication
