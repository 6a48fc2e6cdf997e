// The node's Prometheus metrics (prometheus-cpp registry, served as text on GET /metrics). Every
// metric is listed with its meaning in docs/operations.md.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "api/request.h"

namespace meridian::node {

class Metrics {
 public:
  Metrics();

  void ObserveRequest(api::Route route, int status, double seconds);
  void ObserveCommit(size_t batch_size);

  // Values read at scrape time.
  struct Snapshot {
    uint64_t documents = 0;
    uint64_t conflicts = 0;
    uint64_t events = 0;
    uint64_t commits = 0;
    uint64_t dead_letters = 0;
    uint64_t write_queue_depth = 0;
    uint64_t watchers = 0;
    uint64_t watch_overflows = 0;
    uint64_t clock_skew_events = 0;
    uint64_t connections = 0;
    uint64_t idempotency_records = 0;    // about: the store's estimate
    uint64_t change_log_oldest_lsn = 1;  // the oldest change the change log keeps
    uint64_t change_log_changes = 0;     // changes it keeps
    uint64_t conflict_log_records = 0;   // conflict records the conflict log keeps
    uint64_t damaged_documents = 0;      // marked damaged, waiting for a repair
    uint64_t ids_issued = 0;             // unique ids issued since the start (POST /v1/ids)
    uint64_t id_reservations = 0;        // durable id reservations saved since the start
    // Bounded counters since the start (Region::EscrowStats).
    uint64_t escrow_refusals = 0;
    uint64_t escrow_declarations = 0;
    uint64_t escrow_transfers = 0;
    uint64_t escrow_accepts = 0;
    uint64_t escrow_wants = 0;
    uint64_t escrow_rounds = 0;
    uint64_t escrow_dropped = 0;
    // Transactions across homes (docs/semantics.md#transactions-across-homes): locks this region
    // holds as a home now, and transactions it coordinated since the start, by outcome.
    uint64_t txn_locks_held = 0;
    uint64_t txn_coordinated_committed = 0;
    uint64_t txn_coordinated_aborted = 0;
    // What the node is (meridian_node_info's labels), and its bounds and disk.
    std::string region;
    std::string deployment;
    uint64_t write_queue_max = 0;          // [writes] queue_max
    uint64_t data_dir_free_bytes = 0;      // free to this process on data_dir's filesystem
    uint64_t data_dir_capacity_bytes = 0;  // that filesystem's size
    uint64_t event_log_bytes = 0;          // about: the event log's size (Store::LogBytes)
    uint64_t trace_spans_dropped = 0;      // since the start (TraceLog::export_dropped)
  };
  std::string Serialize(const Snapshot& snapshot);

  // Replication (docs/operations.md): latencies of another region's events are observed as they
  // arrive (their batch decoded) and as they become readable (visibility); the rest mirrors
  // totals the ReplicationBoard keeps and is brought up to date before a scrape.
  enum class Latency { kArrival, kVisibility };
  void ObserveLatency(Latency latency, const std::string& origin,
                      std::span<const double> milliseconds);
  struct PeerTotals {
    std::string peer;
    bool connected = false;  // our subscription to it is up
    uint64_t sent_batches = 0, sent_events = 0, sent_wire = 0, sent_raw = 0;
    uint64_t received_batches = 0, received_events = 0, received_wire = 0, received_raw = 0;
    uint64_t reconnects = 0;
    uint64_t hedges = 0;
    bool behind_retention = false;
  };
  struct OriginLag {
    std::string origin;
    uint64_t events = 0;
    uint64_t milliseconds = 0;
  };
  void SetReplication(const std::vector<PeerTotals>& peers, const std::vector<OriginLag>& lags,
                      size_t relays_active);
  // Rebuilding and re-seeding (docs/replication.md): whether writes wait, and a re-seed's
  // documents installed of the snapshot's.
  void SetRebuild(bool rebuilding, bool reseeding, uint64_t installed, uint64_t documents);
  // Verification (docs/verification.md): a comparison with `peer` finished as `result`
  // ("identical", "differing", "unknown"), with that many documents found differing (after
  // alignment) and restored here.
  void VerifyFinished(const std::string& peer, std::string_view result, uint64_t differing,
                      uint64_t repaired);

 private:
  std::mutex serialize_mutex_;  // scrapes catch the mirrored counters up one at a time
  static constexpr size_t kRoutes = static_cast<size_t>(api::Route::kRejected) + 1;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* latency_;
  std::array<prometheus::Histogram*, kRoutes> latency_by_route_{};
  static constexpr size_t kStatuses = 500;  // 100..599
  std::array<std::atomic<prometheus::Counter*>, kRoutes * kStatuses> requests_by_route_status_{};
  prometheus::Histogram* batch_size_;
  prometheus::Gauge* documents_;
  prometheus::Family<prometheus::Gauge>* info_;
  prometheus::Gauge* write_queue_limit_;
  prometheus::Gauge* data_dir_free_;
  prometheus::Gauge* data_dir_capacity_;
  prometheus::Gauge* event_log_bytes_;
  prometheus::Counter* trace_spans_dropped_;
  prometheus::Gauge* idempotency_records_;
  prometheus::Counter* conflicts_;
  prometheus::Counter* events_;
  prometheus::Counter* fsyncs_;
  prometheus::Counter* dead_letters_;
  prometheus::Gauge* damaged_documents_;
  prometheus::Gauge* txn_locks_held_;
  prometheus::Counter* txn_committed_;
  prometheus::Counter* txn_aborted_;
  prometheus::Family<prometheus::Counter>* verify_comparisons_;
  prometheus::Family<prometheus::Counter>* verify_differing_;
  prometheus::Family<prometheus::Counter>* repairs_;
  prometheus::Gauge* write_queue_depth_;
  prometheus::Gauge* watchers_;
  prometheus::Counter* watch_overflows_;
  prometheus::Counter* clock_skew_;
  prometheus::Gauge* connections_;
  prometheus::Gauge* change_log_oldest_lsn_;
  prometheus::Gauge* change_log_changes_;
  prometheus::Gauge* conflict_log_records_;
  prometheus::Counter* ids_issued_;
  prometheus::Counter* id_reservations_;
  prometheus::Counter* escrow_refusals_;
  prometheus::Counter* escrow_declarations_;
  prometheus::Counter* escrow_transfers_;
  prometheus::Counter* escrow_accepts_;
  prometheus::Counter* escrow_wants_;
  prometheus::Counter* escrow_rounds_;
  prometheus::Counter* escrow_dropped_;

  // A latency histogram per origin, made with the first observation of that origin.
  struct ByOrigin {
    prometheus::Family<prometheus::Histogram>* family = nullptr;
    std::mutex mutex;
    std::map<std::string, prometheus::Histogram*> histograms;
  };
  ByOrigin visibility_;
  ByOrigin arrival_;
  prometheus::Family<prometheus::Gauge>* lag_events_;
  prometheus::Family<prometheus::Gauge>* lag_seconds_;
  prometheus::Family<prometheus::Counter>* replication_bytes_;
  prometheus::Family<prometheus::Counter>* replication_batches_;
  prometheus::Family<prometheus::Counter>* replication_events_;
  prometheus::Family<prometheus::Counter>* reconnects_;
  prometheus::Family<prometheus::Counter>* hedges_;
  prometheus::Family<prometheus::Gauge>* peer_connected_;
  prometheus::Family<prometheus::Gauge>* behind_retention_;
  prometheus::Gauge* relays_active_;
  prometheus::Gauge* rebuilding_;
  prometheus::Gauge* reseeding_;
  prometheus::Gauge* reseed_installed_;
  prometheus::Gauge* reseed_documents_;
};

}  // namespace meridian::node
