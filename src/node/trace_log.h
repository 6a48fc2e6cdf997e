// The spans this node recorded of traced writes (core/trace.h; docs/operations.md#tracing): the
// newest kSpansKept of them, by trace id for GET /v1/traces/{id}, and a bounded queue of those not
// yet exported to an OTLP collector ([tracing] otlp_endpoint). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/trace.h"

namespace meridian::node {

class TraceLog {
 public:
  static constexpr size_t kSpansKept = 10'000;
  static constexpr size_t kExportQueueMax = 10'000;

  // Keeps the spans; queues them for export too when `exporting` was set.
  void Record(std::vector<core::Span> spans);
  // The kept spans of one trace (16 bytes), oldest first.
  std::vector<core::Span> Find(std::string_view trace_id) const;
  // Up to `max` spans waiting for export, oldest first, taken off the queue.
  std::vector<core::Span> TakeForExport(size_t max);
  void SetExporting(bool exporting);
  // Spans dropped from a full export queue (the collector slower than the spans, or down), since
  // the start: meridian_trace_spans_dropped_total.
  uint64_t export_dropped() const;

 private:
  mutable std::mutex mutex_;
  std::deque<core::Span> kept_;
  std::deque<core::Span> queue_;
  bool exporting_ = false;
  uint64_t dropped_ = 0;
};

}  // namespace meridian::node
