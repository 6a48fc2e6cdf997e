// The node's Prometheus metrics (prometheus-cpp registry, served as text on GET /metrics). Every
// metric is listed with its meaning in docs/operations.md.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

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
  };
  std::string Serialize(const Snapshot& snapshot);

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
  prometheus::Counter* conflicts_;
  prometheus::Counter* events_;
  prometheus::Counter* fsyncs_;
  prometheus::Counter* dead_letters_;
  prometheus::Gauge* write_queue_depth_;
  prometheus::Gauge* watchers_;
  prometheus::Counter* watch_overflows_;
  prometheus::Counter* clock_skew_;
  prometheus::Gauge* connections_;
};

}  // namespace meridian::node
