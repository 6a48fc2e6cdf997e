// Outbound: what one region sends one subscriber on a replication stream, as a state machine with
// no I/O (docs/replication.md). The transport feeds it the subscription, acknowledgements, the
// region's applied frontier and the time; it answers what to read from the log and send next, and
// when a heartbeat is due. The simulator drives the same code over a virtual network.
//
// Per origin it keeps a cursor (the next seq to send). A batch is ready when the log holds events
// at the cursor and either nothing is in flight on the stream (no unacknowledged batch), a full
// batch is waiting, or the stream sent no batch in the last linger_ms. An idle link thus sends a
// change at once, never holding it back for a linger; while a batch is unacknowledged the stream
// sends at most one batch per linger_ms, so batches grow with the load (and compress better).
// Flow control: at most window_batches batches (and window_bytes raw bytes) may be unacknowledged;
// beyond that nothing is sent until the subscriber acknowledges. A slow subscriber thus holds only
// its own stream back; the region's writes never wait for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "core/version_vector.h"

namespace meridian::replication {

struct SenderOptions {
  size_t batch_events_max = 2000;    // events per batch at most
  size_t batch_bytes_max = 1 << 20;  // raw bytes per batch, about (one event may exceed)
  uint64_t linger_ms = 10;           // batches at most this often while one is unacknowledged
  size_t window_batches = 4096;      // unacknowledged batches at most
  size_t window_bytes = 32 << 20;    // unacknowledged raw bytes at most
  uint64_t heartbeat_ms = 100;       // a heartbeat at least this often
};

class Outbound {
 public:
  explicit Outbound(SenderOptions options) : options_(options) {}

  // A (re)subscription: streams `origins` after `frontier`, forgetting what was in flight (the
  // subscriber will acknowledge from its frontier again).
  void Subscribe(const core::VersionVector& frontier, const std::vector<core::RegionId>& origins);
  // The subscriber has durably applied `applied`: frees the window up to it.
  void Ack(const core::VersionVector& applied);

  // The next read to send: events of `origin` from `from_seq` on, at most `limit` of them and
  // about `bytes_max` raw bytes. nullopt when nothing is due now (nothing new, lingering, or the
  // window is full). `heads` is the sender's applied frontier: its log holds every event up to it.
  struct Read {
    core::RegionId origin = 0;
    uint64_t from_seq = 0;
    size_t limit = 0;
    size_t bytes_max = 0;
  };
  std::optional<Read> Next(const core::VersionVector& heads, uint64_t now_ms);
  // Whether Next would answer a read now (without changing anything).
  bool Ready(const core::VersionVector& heads, uint64_t now_ms) const;
  // A batch of `origin` up to `last_seq` (raw_bytes uncompressed) went out.
  void Sent(core::RegionId origin, uint64_t last_seq, size_t raw_bytes);
  // The log no longer holds `origin` from the cursor on: stop streaming that origin.
  void Abandon(core::RegionId origin);

  bool HeartbeatDue(uint64_t now_ms) const;
  void HeartbeatSent(uint64_t now_ms) {
    last_heartbeat_ms_ = now_ms;
    heartbeat_sent_ = true;
  }

  // When Next or HeartbeatDue may next answer differently without any input (a linger or the
  // heartbeat running out): the transport sleeps at most until then. An Ack is an input: one that
  // leaves nothing in flight makes waiting events due at once, so callers look again after each.
  uint64_t WakeAtMs(const core::VersionVector& heads, uint64_t now_ms) const;

  bool subscribed() const { return subscribed_; }
  const core::VersionVector& acked() const { return acked_; }
  size_t in_flight_batches() const { return in_flight_.size(); }
  size_t in_flight_bytes() const { return in_flight_bytes_; }
  // Events of the subscribed origins the sender holds and has not yet sent.
  uint64_t Backlog(const core::VersionVector& heads) const;

 private:
  struct Cursor {
    uint64_t next_seq = 1;
    std::optional<uint64_t> waiting_since_ms;  // when events were first seen waiting here
    uint64_t last_sent = 0;                    // order of its last batch (fair among equals)
  };
  struct InFlight {
    core::RegionId origin;
    uint64_t last_seq;
    size_t raw_bytes;
  };
  bool WindowOpen() const;
  // Whether `waiting` events of an origin make a batch due now (window aside): nothing in flight,
  // a full batch, or no batch in the last linger_ms.
  bool Due(uint64_t waiting, uint64_t now_ms) const {
    return waiting >= options_.batch_events_max || now_ms >= LingerEndsMs(now_ms);
  }
  // When waiting events become due without a full batch: at once on an idle stream (nothing in
  // flight, or no batch yet), else linger_ms after the last batch.
  uint64_t LingerEndsMs(uint64_t now_ms) const {
    if (in_flight_.empty() || !last_batch_ms_) return now_ms;
    return *last_batch_ms_ + options_.linger_ms;
  }

  const SenderOptions options_;
  bool subscribed_ = false;
  std::map<core::RegionId, Cursor> cursors_;
  std::deque<InFlight> in_flight_;
  size_t in_flight_bytes_ = 0;
  uint64_t batches_sent_ = 0;
  std::optional<uint64_t> last_batch_ms_;  // when the last batch was read to be sent
  core::VersionVector acked_;
  uint64_t last_heartbeat_ms_ = 0;
  bool heartbeat_sent_ = false;
};

}  // namespace meridian::replication
