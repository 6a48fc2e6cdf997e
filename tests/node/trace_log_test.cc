#include "node/trace_log.h"

#include <gtest/gtest.h>

namespace meridian::node {
namespace {

core::Span SpanOf(const std::string& trace_id, uint64_t start_ns) {
  core::Span span;
  span.trace_id = trace_id;
  span.span_id = core::NewSpanId();
  span.name = "meridian.write";
  span.start_ns = start_ns;
  span.end_ns = start_ns + 1;
  return span;
}

TEST(TraceLogTest, KeepsTheNewestSpansAndQueuesThemOnlyWhenExporting) {
  TraceLog log;
  log.Record({SpanOf(std::string(16, 'a'), 1)});
  EXPECT_TRUE(log.TakeForExport(10).empty());  // not exporting: nothing queued
  log.SetExporting(true);
  std::vector<core::Span> many;
  for (uint64_t i = 0; i < TraceLog::kSpansKept + 5; ++i) many.push_back(SpanOf(std::string(16, 'b'), i));
  log.Record(std::move(many));
  // The oldest fell out of what is kept, the first trace's span with them.
  EXPECT_TRUE(log.Find(std::string(16, 'a')).empty());
  const std::vector<core::Span> kept = log.Find(std::string(16, 'b'));
  ASSERT_EQ(kept.size(), TraceLog::kSpansKept);
  EXPECT_EQ(kept.front().start_ns, 5u);
  // The export queue is bounded too: its oldest were dropped, and counted.
  EXPECT_EQ(log.export_dropped(), 5u);
  const std::vector<core::Span> first = log.TakeForExport(3);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first.front().start_ns, 5u);
  EXPECT_EQ(log.TakeForExport(TraceLog::kExportQueueMax).size(), TraceLog::kExportQueueMax - 3);
  EXPECT_TRUE(log.TakeForExport(10).empty());
}

}  // namespace
}  // namespace meridian::node
