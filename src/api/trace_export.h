// Exports the spans of traced writes (node::TraceLog) to an OTLP collector as OTLP/JSON over HTTP
// ([tracing] otlp_endpoint; docs/operations.md#tracing): a thread that posts what was recorded,
// every [tracing] interval_ms, at most kBatchSpans spans per request.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "node/node.h"

namespace meridian::api {

class TraceExporter {
 public:
  static constexpr size_t kBatchSpans = 512;

  // Does nothing unless the node's config names an endpoint.
  explicit TraceExporter(node::Node* node);
  ~TraceExporter();
  TraceExporter(const TraceExporter&) = delete;
  TraceExporter& operator=(const TraceExporter&) = delete;

  // Posts what is left, then stops.
  void Stop();

 private:
  void Run();

  node::Node* const node_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace meridian::api
