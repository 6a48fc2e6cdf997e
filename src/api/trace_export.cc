#include "api/trace_export.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "api/service.h"
#include "client/http_client.h"
#include "core/thread_name.h"

namespace meridian::api {

TraceExporter::TraceExporter(node::Node* node) : node_(node) {
  if (node_->config().otlp_endpoint.empty()) return;
  node_->traces().SetExporting(true);
  thread_ = std::thread([this] { Run(); });
}

TraceExporter::~TraceExporter() { Stop(); }

void TraceExporter::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void TraceExporter::Run() {
  core::NameThisThread("otlp-export");
  const node::NodeConfig& config = node_->config();
  std::string host, path;
  uint16_t port = 0;
  if (!node::SplitHttpUrl(config.otlp_endpoint, &host, &port, &path)) return;  // validated
  client::HttpClient collector(host, port, std::chrono::milliseconds(2000));
  bool failing = false;
  for (;;) {
    bool last = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::milliseconds(config.otlp_interval_ms),
                     [this] { return stopping_; });
      last = stopping_;
    }
    for (;;) {
      std::vector<core::Span> spans = node_->traces().TakeForExport(kBatchSpans);
      if (spans.empty()) break;
      const client::HttpResponse answer =
          collector.Send("POST", path, OtlpJson(config.region, spans));
      const bool ok = answer.status >= 200 && answer.status < 300;
      // One line when the collector starts failing and one when it is back: not one per batch.
      if (!ok && !failing) {
        spdlog::warn("tracing: the OTLP collector at {} {}; spans are dropped until it answers",
                     config.otlp_endpoint,
                     answer.status == 0 ? "does not answer (" + answer.error + ")"
                                        : "answered " + std::to_string(answer.status));
      } else if (ok && failing) {
        spdlog::info("tracing: the OTLP collector at {} answers again", config.otlp_endpoint);
      }
      failing = !ok;
      if (!ok) break;  // the rest waits for the next turn (the queue is bounded)
    }
    if (last) return;
  }
}

}  // namespace meridian::api
