#include "node/metrics.h"

#include <prometheus/text_serializer.h>

namespace meridian::node {

namespace {

prometheus::Gauge* MakeGauge(prometheus::Registry& registry, const std::string& name,
                             const std::string& help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

prometheus::Counter* MakeCounter(prometheus::Registry& registry, const std::string& name,
                                 const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

// Counters here mirror totals the node keeps itself; bring the counter up to the total.
void CatchUp(prometheus::Counter* counter, uint64_t total) {
  const double value = static_cast<double>(total);
  if (value > counter->Value()) counter->Increment(value - counter->Value());
}

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("meridian_http_requests_total")
                   .Help("HTTP requests answered, by route and status code")
                   .Register(*registry_);
  latency_ = &prometheus::BuildHistogram()
                  .Name("meridian_http_request_duration_seconds")
                  .Help("Time from a request's arrival to its answer, by route")
                  .Register(*registry_);
  const prometheus::Histogram::BucketBoundaries latency_buckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  for (size_t i = 0; i < kRoutes; ++i) {
    latency_by_route_[i] = &latency_->Add(
        {{"route", std::string(api::RouteName(static_cast<api::Route>(i)))}}, latency_buckets);
  }
  batch_size_ =
      &prometheus::BuildHistogram()
           .Name("meridian_write_batch_size")
           .Help("Writes grouped into one durable commit (one fsync)")
           .Register(*registry_)
           .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256, 512});
  documents_ = MakeGauge(*registry_, "meridian_documents", "Documents that exist in this region");
  info_ = &prometheus::BuildGauge()
               .Name("meridian_node_info")
               .Help("Always 1: the node's region and deployment, as labels to join on")
               .Register(*registry_);
  write_queue_limit_ = MakeGauge(
      *registry_, "meridian_write_queue_limit",
      "Writes that may wait for a commit before new ones are refused ([writes] queue_max)");
  data_dir_free_ = MakeGauge(*registry_, "meridian_data_dir_free_bytes",
                             "Bytes free to the node on the data directory's filesystem");
  data_dir_capacity_ = MakeGauge(*registry_, "meridian_data_dir_capacity_bytes",
                                 "Size of the data directory's filesystem, in bytes");
  trace_spans_dropped_ =
      MakeCounter(*registry_, "meridian_trace_spans_dropped_total",
                  "Spans of traced writes dropped from a full OTLP export queue");
  event_log_bytes_ =
      MakeGauge(*registry_, "meridian_event_log_bytes",
                "About how many bytes the event log holds (replication.retention_bytes bounds it)");
  idempotency_records_ =
      MakeGauge(*registry_, "meridian_idempotency_records",
                "Idempotency keys remembered within the window (an estimate on RocksDB)");
  conflicts_ =
      MakeCounter(*registry_, "meridian_conflicts_total", "Conflicts recorded in this region");
  events_ = MakeCounter(*registry_, "meridian_local_events_total", "Local writes committed");
  fsyncs_ = MakeCounter(*registry_, "meridian_fsyncs_total", "Durable commits (each one fsync)");
  dead_letters_ =
      MakeCounter(*registry_, "meridian_dead_letters_total", "Events that could not be applied");
  damaged_documents_ = MakeGauge(*registry_, "meridian_damaged_documents",
                                 "Documents marked damaged, waiting for a repair from a peer");
  verify_comparisons_ = &prometheus::BuildCounter()
                             .Name("meridian_verify_comparisons_total")
                             .Help("Comparisons with a peer finished, by result")
                             .Register(*registry_);
  verify_differing_ = &prometheus::BuildCounter()
                           .Name("meridian_verify_differing_documents_total")
                           .Help("Documents found differing from a peer's copy (once aligned)")
                           .Register(*registry_);
  repairs_ = &prometheus::BuildCounter()
                  .Name("meridian_repairs_total")
                  .Help("Documents restored here from a peer's copy")
                  .Register(*registry_);
  write_queue_depth_ =
      MakeGauge(*registry_, "meridian_write_queue_depth", "Writes waiting for a commit");
  watchers_ = MakeGauge(*registry_, "meridian_watchers", "Open watches");
  watch_overflows_ = MakeCounter(*registry_, "meridian_watch_overflows_total",
                                 "Watches closed for falling too far behind");
  clock_skew_ =
      MakeCounter(*registry_, "meridian_clock_skew_events_total",
                  "Remote timestamps further ahead of the local clock than clock.max_skew_ms");
  connections_ = MakeGauge(*registry_, "meridian_http_connections", "Open HTTP connections");
  change_log_oldest_lsn_ =
      MakeGauge(*registry_, "meridian_change_log_oldest_lsn",
                "Position of the oldest change the change log keeps (watches resume after it)");
  change_log_changes_ = MakeGauge(*registry_, "meridian_change_log_changes",
                                  "Changes the change log keeps (watch.changes_kept bounds them)");
  conflict_log_records_ =
      MakeGauge(*registry_, "meridian_conflict_log_records",
                "Records the conflict log keeps (storage.conflicts_kept bounds them)");
  ids_issued_ = MakeCounter(*registry_, "meridian_ids_issued_total",
                            "Unique ids issued by this region (POST /v1/ids)");
  id_reservations_ =
      MakeCounter(*registry_, "meridian_id_reservations_total",
                  "Id reservations saved durably (one fsync each; docs/semantics.md#unique-ids)");
  escrow_refusals_ =
      MakeCounter(*registry_, "meridian_escrow_refusals_total",
                  "Decrements of bounded counters refused for lack of this region's rights");
  escrow_declarations_ = MakeCounter(*registry_, "meridian_escrow_declarations_total",
                                     "Bounds declared in this region");
  escrow_transfers_ = MakeCounter(*registry_, "meridian_escrow_transfers_total",
                                  "Escrow transfers of rights this region wrote (gave)");
  escrow_accepts_ = MakeCounter(*registry_, "meridian_escrow_accepts_total",
                                "Escrow accepts this region wrote (rights given to it, taken in)");
  escrow_wants_ = MakeCounter(*registry_, "meridian_escrow_wants_total",
                              "Escrow wants this region wrote (asks for rights, withdrawals)");
  escrow_rounds_ = MakeCounter(*registry_, "meridian_escrow_rounds_total",
                               "Keys of bounded counters rebalanced by this region");
  txn_locks_held_ = MakeGauge(*registry_, "meridian_txn_locks_held",
                              "Keys a transaction across homes holds locked in this region, as "
                              "their home");
  txn_committed_ = MakeCounter(*registry_, "meridian_txn_coordinated_committed_total",
                               "Transactions across homes this region coordinated and committed");
  txn_aborted_ = MakeCounter(*registry_, "meridian_txn_coordinated_aborted_total",
                             "Transactions across homes this region coordinated and aborted");
  escrow_dropped_ =
      MakeCounter(*registry_, "meridian_escrow_dropped_total",
                  "Keys not noted for a rebalancing round: escrow.keys_max were waiting");

  visibility_.family = &prometheus::BuildHistogram()
                            .Name("meridian_replication_visibility_seconds")
                            .Help(
                                "Time an event of another region became readable here minus its "
                                "origin HLC time, in seconds, by origin")
                            .Register(*registry_);
  arrival_.family = &prometheus::BuildHistogram()
                         .Name("meridian_replication_arrival_seconds")
                         .Help(
                             "Time the batch of an event of another region arrived here, before "
                             "it was applied, minus the event's origin HLC time, in seconds, by "
                             "origin")
                         .Register(*registry_);
  lag_events_ = &prometheus::BuildGauge()
                     .Name("meridian_replication_lag_events")
                     .Help("Events of an origin known to exist and not yet applied here")
                     .Register(*registry_);
  lag_seconds_ = &prometheus::BuildGauge()
                      .Name("meridian_replication_lag_seconds")
                      .Help(
                          "How far (origin HLC time) the newest applied event of an origin is "
                          "behind the newest known one, in seconds")
                      .Register(*registry_);
  replication_bytes_ = &prometheus::BuildCounter()
                            .Name("meridian_replication_bytes_total")
                            .Help(
                                "Replication batch bytes by peer, direction (sent, received) "
                                "and form (wire: compressed, raw: uncompressed)")
                            .Register(*registry_);
  replication_batches_ = &prometheus::BuildCounter()
                              .Name("meridian_replication_batches_total")
                              .Help("Replication batches by peer and direction")
                              .Register(*registry_);
  replication_events_ = &prometheus::BuildCounter()
                             .Name("meridian_replication_events_total")
                             .Help("Events in replication batches by peer and direction")
                             .Register(*registry_);
  reconnects_ = &prometheus::BuildCounter()
                     .Name("meridian_replication_reconnects_total")
                     .Help("Times the subscription to a peer was lost and redialled")
                     .Register(*registry_);
  hedges_ = &prometheus::BuildCounter()
                 .Name("meridian_replication_hedges_total")
                 .Help("Second dials of a peer started beside a slow or quiet stream")
                 .Register(*registry_);
  peer_connected_ = &prometheus::BuildGauge()
                         .Name("meridian_replication_peer_connected")
                         .Help("1 when this region's subscription to the peer is up")
                         .Register(*registry_);
  behind_retention_ = &prometheus::BuildGauge()
                           .Name("meridian_replication_behind_retention")
                           .Help(
                               "1 when this region and the peer cannot catch up from the log "
                               "(retention trimmed what is needed)")
                           .Register(*registry_);
  relays_active_ = MakeGauge(*registry_, "meridian_replication_relays_active",
                             "Origins received through a third region (direct link down)");
  rebuilding_ = MakeGauge(*registry_, "meridian_rebuilding",
                          "1 while the region rebuilds its own events from its peers and refuses "
                          "writes");
  reseeding_ = MakeGauge(*registry_, "meridian_reseed_running",
                         "1 while the region re-seeds from a peer's snapshot");
  reseed_installed_ = MakeGauge(*registry_, "meridian_reseed_installed_documents",
                                "Documents the current or last re-seed installed");
  reseed_documents_ = MakeGauge(*registry_, "meridian_reseed_snapshot_documents",
                                "Documents in the snapshot of the current or last re-seed");
}

void Metrics::SetRebuild(bool rebuilding, bool reseeding, uint64_t installed, uint64_t documents) {
  rebuilding_->Set(rebuilding ? 1 : 0);
  reseeding_->Set(reseeding ? 1 : 0);
  reseed_installed_->Set(static_cast<double>(installed));
  reseed_documents_->Set(static_cast<double>(documents));
}

void Metrics::VerifyFinished(const std::string& peer, std::string_view result, uint64_t differing,
                             uint64_t repaired) {
  verify_comparisons_->Add({{"peer", peer}, {"result", std::string(result)}}).Increment();
  verify_differing_->Add({{"peer", peer}}).Increment(static_cast<double>(differing));
  repairs_->Add({{"peer", peer}}).Increment(static_cast<double>(repaired));
}

void Metrics::ObserveLatency(Latency latency, const std::string& origin,
                             std::span<const double> milliseconds) {
  ByOrigin& by_origin = latency == Latency::kArrival ? arrival_ : visibility_;
  prometheus::Histogram* histogram = nullptr;
  {
    std::lock_guard lock(by_origin.mutex);
    auto it = by_origin.histograms.find(origin);
    if (it == by_origin.histograms.end()) {
      // In seconds, as Prometheus names its base unit: 1 ms to 10 s.
      const prometheus::Histogram::BucketBoundaries buckets = {
          0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08,
          0.1,   0.12,  0.15,  0.2,  0.3,  0.5,  1,    2,    5,    10};
      it = by_origin.histograms
               .emplace(origin, &by_origin.family->Add({{"origin", origin}}, buckets))
               .first;
    }
    histogram = it->second;
  }
  for (double value : milliseconds) histogram->Observe(value / 1000);
}

void Metrics::SetReplication(const std::vector<PeerTotals>& peers,
                             const std::vector<OriginLag>& lags, size_t relays_active) {
  std::lock_guard lock(serialize_mutex_);
  for (const PeerTotals& peer : peers) {
    const auto counter = [&](prometheus::Family<prometheus::Counter>* family,
                             const std::map<std::string, std::string>& extra, uint64_t total) {
      std::map<std::string, std::string> labels = extra;
      labels["peer"] = peer.peer;
      CatchUp(&family->Add(labels), total);
    };
    counter(replication_bytes_, {{"direction", "sent"}, {"form", "wire"}}, peer.sent_wire);
    counter(replication_bytes_, {{"direction", "sent"}, {"form", "raw"}}, peer.sent_raw);
    counter(replication_bytes_, {{"direction", "received"}, {"form", "wire"}}, peer.received_wire);
    counter(replication_bytes_, {{"direction", "received"}, {"form", "raw"}}, peer.received_raw);
    counter(replication_batches_, {{"direction", "sent"}}, peer.sent_batches);
    counter(replication_batches_, {{"direction", "received"}}, peer.received_batches);
    counter(replication_events_, {{"direction", "sent"}}, peer.sent_events);
    counter(replication_events_, {{"direction", "received"}}, peer.received_events);
    counter(reconnects_, {}, peer.reconnects);
    counter(hedges_, {}, peer.hedges);
    peer_connected_->Add({{"peer", peer.peer}}).Set(peer.connected ? 1 : 0);
    behind_retention_->Add({{"peer", peer.peer}}).Set(peer.behind_retention ? 1 : 0);
  }
  for (const OriginLag& lag : lags) {
    lag_events_->Add({{"origin", lag.origin}}).Set(static_cast<double>(lag.events));
    lag_seconds_->Add({{"origin", lag.origin}}).Set(static_cast<double>(lag.milliseconds) / 1000);
  }
  relays_active_->Set(static_cast<double>(relays_active));
}

void Metrics::ObserveRequest(api::Route route, int status, double seconds) {
  const auto index = static_cast<size_t>(route);
  if (index >= kRoutes || status < 100 || status > 599) return;
  latency_by_route_[index]->Observe(seconds);
  // The counter of (route, status) is created once, then found without a lock or allocation.
  std::atomic<prometheus::Counter*>& slot =
      requests_by_route_status_[index * kStatuses + (status - 100)];
  prometheus::Counter* counter = slot.load(std::memory_order_acquire);
  if (counter == nullptr) {
    counter = &requests_->Add(
        {{"route", std::string(api::RouteName(route))}, {"code", std::to_string(status)}});
    slot.store(counter, std::memory_order_release);  // Add returns the same counter every time
  }
  counter->Increment();
}

void Metrics::ObserveCommit(size_t batch_size) {
  batch_size_->Observe(static_cast<double>(batch_size));
}

std::string Metrics::Serialize(const Snapshot& snapshot) {
  std::lock_guard lock(serialize_mutex_);
  documents_->Set(static_cast<double>(snapshot.documents));
  idempotency_records_->Set(static_cast<double>(snapshot.idempotency_records));
  CatchUp(conflicts_, snapshot.conflicts);
  CatchUp(events_, snapshot.events);
  CatchUp(fsyncs_, snapshot.commits);
  CatchUp(dead_letters_, snapshot.dead_letters);
  damaged_documents_->Set(static_cast<double>(snapshot.damaged_documents));
  write_queue_depth_->Set(static_cast<double>(snapshot.write_queue_depth));
  watchers_->Set(static_cast<double>(snapshot.watchers));
  CatchUp(watch_overflows_, snapshot.watch_overflows);
  CatchUp(clock_skew_, snapshot.clock_skew_events);
  connections_->Set(static_cast<double>(snapshot.connections));
  change_log_oldest_lsn_->Set(static_cast<double>(snapshot.change_log_oldest_lsn));
  change_log_changes_->Set(static_cast<double>(snapshot.change_log_changes));
  conflict_log_records_->Set(static_cast<double>(snapshot.conflict_log_records));
  CatchUp(ids_issued_, snapshot.ids_issued);
  CatchUp(id_reservations_, snapshot.id_reservations);
  CatchUp(escrow_refusals_, snapshot.escrow_refusals);
  CatchUp(escrow_declarations_, snapshot.escrow_declarations);
  CatchUp(escrow_transfers_, snapshot.escrow_transfers);
  CatchUp(escrow_accepts_, snapshot.escrow_accepts);
  CatchUp(escrow_wants_, snapshot.escrow_wants);
  CatchUp(escrow_rounds_, snapshot.escrow_rounds);
  CatchUp(escrow_dropped_, snapshot.escrow_dropped);
  txn_locks_held_->Set(static_cast<double>(snapshot.txn_locks_held));
  if (!snapshot.region.empty()) {
    info_->Add({{"region", snapshot.region}, {"deployment", snapshot.deployment}}).Set(1);
  }
  write_queue_limit_->Set(static_cast<double>(snapshot.write_queue_max));
  data_dir_free_->Set(static_cast<double>(snapshot.data_dir_free_bytes));
  data_dir_capacity_->Set(static_cast<double>(snapshot.data_dir_capacity_bytes));
  event_log_bytes_->Set(static_cast<double>(snapshot.event_log_bytes));
  CatchUp(trace_spans_dropped_, snapshot.trace_spans_dropped);
  CatchUp(txn_committed_, snapshot.txn_coordinated_committed);
  CatchUp(txn_aborted_, snapshot.txn_coordinated_aborted);
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace meridian::node
