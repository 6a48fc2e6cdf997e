// Trace context (W3C Trace Context, `traceparent`) of a write, kept with its event and carried to
// every region (docs/operations.md#tracing), and the spans the regions record of it.
//
// An event's trace is 25 bytes: the trace id (16), the span id of the write in its origin (8) and
// the trace flags (1); empty when the write was not traced. Pure but for NewSpanId and WallNs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meridian::core {

inline constexpr size_t kTraceBytes = 25;

// A `traceparent` header ("00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>"): the
// trace id, the parent span id and the flags as 25 bytes; nullopt when malformed (or an all-zero
// id, or version ff). Versions above 00 are read by their first four fields, as the
// specification asks.
std::optional<std::string> ParseTraceparent(std::string_view header);

// "00-<trace id>-<span id>-<flags>" of 25 bytes (a ParseTraceparent result, or an event's trace).
std::string FormatTraceparent(std::string_view trace);

// Lower-case hex of raw bytes (trace and span ids as OTLP/JSON and the console show them).
std::string Hex(std::string_view bytes);
// The bytes of lower-case or upper-case hex; nullopt when not hex of an even length.
std::optional<std::string> FromHex(std::string_view hex);

// Whether `trace` is a well-formed event trace: empty, or 25 bytes with non-zero ids.
bool ValidTrace(std::string_view trace);

// The trace id, span id and flags of a 25-byte trace.
inline std::string_view TraceId(std::string_view trace) { return trace.substr(0, 16); }
inline std::string_view TraceSpanId(std::string_view trace) { return trace.substr(16, 8); }
inline uint8_t TraceFlags(std::string_view trace) { return static_cast<uint8_t>(trace[24]); }

// 8 random bytes: a new span id (never all zero).
std::string NewSpanId();
// Nanoseconds since the epoch, now (what spans are timed in).
uint64_t WallNs();

// One timed step of a traced write in one region.
struct Span {
  std::string trace_id;        // 16 bytes
  std::string span_id;         // 8 bytes
  std::string parent_span_id;  // 8 bytes; empty: a root
  std::string name;            // "meridian.write", ".send", ".wire", ".apply"
  std::string region;          // where it was recorded
  uint64_t start_ns = 0;       // wall clock, ns since the epoch
  uint64_t end_ns = 0;
  std::vector<std::pair<std::string, std::string>> attributes;
};

}  // namespace meridian::core
