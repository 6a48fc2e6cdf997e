#include "node/trace_log.h"

namespace meridian::node {

void TraceLog::Record(std::vector<core::Span> spans) {
  std::lock_guard lock(mutex_);
  for (core::Span& span : spans) {
    if (exporting_) {
      if (queue_.size() >= kExportQueueMax) {
        queue_.pop_front();
        ++dropped_;
      }
      queue_.push_back(span);
    }
    kept_.push_back(std::move(span));
    if (kept_.size() > kSpansKept) kept_.pop_front();
  }
}

std::vector<core::Span> TraceLog::Find(std::string_view trace_id) const {
  std::lock_guard lock(mutex_);
  std::vector<core::Span> found;
  for (const core::Span& span : kept_) {
    if (span.trace_id == trace_id) found.push_back(span);
  }
  return found;
}

std::vector<core::Span> TraceLog::TakeForExport(size_t max) {
  std::lock_guard lock(mutex_);
  std::vector<core::Span> taken;
  while (!queue_.empty() && taken.size() < max) {
    taken.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return taken;
}

void TraceLog::SetExporting(bool exporting) {
  std::lock_guard lock(mutex_);
  exporting_ = exporting;
}

uint64_t TraceLog::export_dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

}  // namespace meridian::node
