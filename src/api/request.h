// The HTTP API's request parsing: from method, target, headers and body to an ApiCall, or to the
// error response the API promises (../docs/http-api.md). Pure — no I/O — so that the whole
// parsing path is unit-tested and fuzzed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <memory>

#include "core/event.h"
#include "core/transaction.h"
#include "core/version_vector.h"

namespace meridian::api {

enum class Route {
  kPutDocument,
  kPatchDocument,
  kIncrementDocument,
  kDeleteDocument,
  kGetDocument,
  kScan,
  kWatch,
  kConflicts,
  kVerify,     // GET /v1/verify
  kVerifyNow,  // POST /v1/verify
  kRepairs,
  kDeadLetters,         // GET /v1/dead-letters
  kRetryDeadLetter,     // POST /v1/dead-letters/{id}/retry
  kTransaction,         // POST /v1/txn
  kPrepareTransaction,  // POST /v1/txn?prepare=ID (a two-phase commit's prepare, from a region)
  kResolveTransaction,  // POST /v1/txn/resolve?id=ID (what became of it, from a home)
  kHomes,               // GET /v1/homes
  kMoveHome,            // POST /v1/homes/move
  kIds,                 // POST /v1/ids
  kPutBounds,           // PUT /v1/docs/{key}/bounds
  kGetBounds,           // GET /v1/docs/{key}/bounds
  kHistory,             // GET /v1/docs/{key}/history
  kDeployment,          // GET /v1/deployment
  kConsole,             // GET /ui/...: the web console's files
  kTrace,               // GET /v1/traces/{trace id}
  kStatus,
  kMetrics,
  kHealth,
  kReady,
  kRejected,  // a request refused before it was routed (metrics only)
};
// A short stable name for metrics labels: "put_doc", "get_doc", "scan", ...
std::string_view RouteName(Route route);

// An error answer: HTTP status, the machine-readable code and a sentence for humans.
struct ApiError {
  int status = 400;
  std::string code;
  std::string message;
  std::string allow;        // for 405: the methods the route accepts
  std::string oldest = {};  // for resume_point_trimmed: the oldest change kept (an event id)
};

struct ApiCall {
  Route route = Route::kHealth;
  std::string key;                             // documents: the decoded key
  core::Operation op;                          // writes: normalized
  std::optional<core::VersionVector> session;  // Meridian-Session header or session= query
  uint64_t wait_ms = 1000;                     // session wait bound
  uint32_t durability_regions = 0;             // durability=regions:N
  uint64_t durability_timeout_ms = 5000;       // timeout_ms with durability
  std::string prefix;                          // scan, watch
  std::string after;                           // scan
  size_t limit = 100;                          // scan, conflicts, dead letters
  uint64_t dead_letter = 0;                    // retry: the dead letter's id
  std::string resume_from;      // watch: an event id ("from" query or Last-Event-ID header)
  std::string since;            // watch: "us:42,eu:17", the last event seen of each origin
  std::string idempotency_key;  // writes: the Idempotency-Key header
  // Writes: the client's trace context from a well-formed traceparent header (core/trace.h: trace
  // id, the client's span id, flags); empty without one (a malformed one is ignored, as W3C
  // Trace Context asks).
  std::string traceparent;
  std::string peer;             // POST /v1/verify: compare with this region only
  bool every_region = false;    // GET /v1/traces/{id}?regions=all: ask every region too
  // Writes: If-Match ("<version>": that version; *: it exists) or If-None-Match: * (it does not
  // exist). The condition's key is `key`.
  std::optional<core::Condition> condition;
  std::shared_ptr<core::Transaction> txn;  // POST /v1/txn
  // consistency=strong (writes, transactions, GET): run in the key's home region, forwarded
  // there; timeout_ms (durability_timeout_ms) bounds the wait for the home's answer.
  bool strong = false;
  std::string forwarded_by;  // the Meridian-Forwarded header: a region forwarded this request
  struct HomeMove {
    std::string prefix;
    std::string to;
    bool force = false;
  };
  HomeMove move;                // POST /v1/homes/move
  uint32_t count = 1;           // POST /v1/ids: how many ids
  // A two-phase transaction (docs/semantics.md#transactions-across-homes): its id (prepare,
  // resolve) and how long the prepare's locks live before their home asks (prepare).
  std::string txn_id;
  uint64_t lock_ms = 0;
};

// Whether `route` writes (the document routes that change a document, and transactions).
bool IsWrite(Route route);

struct RequestView {
  std::string_view method;  // "GET", "PUT", ...
  std::string_view target;  // "/v1/docs/a%2Fb?durability=regions:1"
  std::string_view content_type;
  std::string_view session_header;
  std::string_view last_event_id;
  std::string_view body;
  std::string_view idempotency_key;  // the Idempotency-Key header
  std::string_view if_match = {};    // the If-Match header
  std::string_view if_none_match = {};  // the If-None-Match header
  std::string_view forwarded = {};      // the Meridian-Forwarded header
  std::string_view traceparent = {};    // the W3C traceparent header
};

constexpr uint64_t kWaitMsMax = 60'000;
constexpr size_t kIdempotencyKeyBytesMax = 255;

// A two-phase transaction's id: 1..128 characters of [A-Za-z0-9._-].
bool ValidTransactionId(std::string_view id);
// An idempotency key: 1..kIdempotencyKeyBytesMax bytes of visible ASCII (no spaces).
bool ValidIdempotencyKey(std::string_view key);
constexpr size_t kScanLimitMax = 1000;
// POST /v1/ids takes 1..kIdsCountMax ids at once (count=N; default 1).
constexpr uint64_t kIdsCountMax = 10'000;
// 400 bad_parameter when `count` is outside 1..kIdsCountMax.
std::optional<ApiError> CheckIdCount(uint64_t count);

std::variant<ApiCall, ApiError> ParseRequest(const RequestView& request,
                                             const core::Limits& limits);

// A write's JSON body (PUT, PATCH: an object of fields; incr: an object of integer deltas) as a
// normalized operation of `route`, or the error the API answers (malformed_json, bad_increment,
// too_large, invalid_argument).
std::optional<ApiError> ParseWriteBody(Route route, std::string_view body,
                                       const core::Limits& limits, core::Operation* op);
// ParseWriteBody always through a DOM (nlohmann::json), value by value canonicalized.
// ParseWriteBody reads the common flat bodies with simdjson's On-Demand parser instead and hands
// every other body here; the two must agree on every body (tests and the request fuzz target
// compare them).
std::optional<ApiError> ParseWriteBodyWithDom(Route route, std::string_view body,
                                              const core::Limits& limits, core::Operation* op);
// The body of PUT /v1/docs/{key}/bounds, {"<field>": {"min": <integer>}} (one field), as the
// declaration it asks for (core::EscrowOpKind::kDeclare; the command path splits the room), or
// 400 malformed_json or bad_bounds, 413 too_large. HTTP and gRPC alike.
std::optional<ApiError> ParseBoundsBody(std::string_view body, const core::Limits& limits,
                                        core::Operation* op);
// The body of POST /v1/txn as a transaction (docs/http-api.md#transactions), or the error the API
// answers (400 malformed_json or bad_transaction, 413 too_large, ...).
std::optional<ApiError> ParseTransaction(std::string_view body, const core::Limits& limits,
                                         core::Transaction* txn);
// The condition of a write's If-Match or If-None-Match header on `key` (both empty: nullopt), or
// 400 bad_header.
std::variant<std::optional<core::Condition>, ApiError> ParseCondition(
    std::string_view key, std::string_view if_match, std::string_view if_none_match);

// A document key: 400 invalid_key when empty or not UTF-8, 413 too_large when over the limit.
std::optional<ApiError> CheckKey(std::string_view key, const core::Limits& limits);

// Percent-decodes a path segment or query component ('+' is a space only in queries); nullopt
// on a malformed escape.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space);

// The error of a Status from the write path, as the API answers it.
ApiError ErrorFromStatus(const Status& status);
// {"error": code, "message": message}, and "oldest" when the error has it.
std::string ErrorBody(const ApiError& error);

}  // namespace meridian::api
