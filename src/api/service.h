// The parts of answering a client that do not depend on the transport: the status object, a
// change as JSON, the durability check and its timeout, a watch's resume point and backlog, the
// errors of waits and watches. The HTTP server (http_server.cc) and the gRPC API
// (grpcapi/grpc_api.cc) both build their answers from these, so the two cannot drift apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "api/authorize.h"
#include "api/request.h"
#include "core/trace.h"
#include "meridian/status.h"
#include "node/metrics.h"
#include "node/node.h"

namespace meridian::api {

// Changes a watch reads from the log per store call while it replays its backlog.
constexpr size_t kWatchBacklogPage = 256;

// The write request of a write route or a transaction (ApiCall::txn).
node::WriteRequest MakeWriteRequest(ApiCall& call);
// A write's answer: {"event", "hlc", "session"} (event null for a transaction that wrote
// nothing), "replayed" when it is, "version" for a single write that left a document, and for a
// transaction "succeeded" and "events".
// The span of a traced write in its own region (docs/operations.md#tracing): from `started_ns`
// (the request read) to its durable commit, a child of the client's span.
core::Span WriteSpan(node::Node& node, const ApiCall& call, const std::string& trace,
                     const node::Receipt& receipt, uint64_t started_ns);

nlohmann::json ReceiptJson(const node::Region& region, const node::Receipt& receipt,
                           const std::string& session);

// {"key":..., "doc": {...} or null, "event": "us:42", "hlc": "..."}
std::string ChangeJson(const node::Region& region, const node::Change& change);

// One change a watch reads, from the backlog or live (HTTP and gRPC alike): moves the watch's
// resume point *last_event past it (a re-seed's merged change names no event and leaves it
// where it was), and says whether the watch sends it: within `prefix`, and not an event the
// client has seen already (`seen`, its `since`).
bool WatchSends(const node::Region& region, const node::Change& change, std::string_view prefix,
                const core::VersionVector& seen, std::string* last_event);

// The gauges of /metrics and /v1/status; `connections` is the transport's open connections.
node::Metrics::Snapshot Snapshot(node::Node& node, size_t connections);
// The object GET /v1/status answers: this region's view of itself and its peers.
nlohmann::json StatusJson(node::Node& node);

// Verification (docs/verification.md), for HTTP and gRPC alike.
// GET /v1/verify: {"region", "damaged_documents", "peers": [the latest comparison with each]}.
nlohmann::json VerifyJson(node::Node& node);
// POST /v1/verify[?peer=NAME]: compares with `peer` (empty: every peer) now; 400 bad_parameter
// when it is not another region of the deployment.
std::optional<ApiError> VerifyNow(node::Node& node, const std::string& peer);
// GET /v1/repairs: {"items": [...], "total": N}, the newest `limit` records, newest first.
std::variant<nlohmann::json, ApiError> RepairsJson(node::Node& node, size_t limit);

// Dead letters (docs/replication.md#dead-letters), for HTTP and gRPC alike.
// GET /v1/dead-letters: {"items": [...]}, the newest `limit` records, newest first.
std::variant<nlohmann::json, ApiError> DeadLettersJson(node::Node& node, size_t limit);
// POST /v1/dead-letters/{id}/retry, from what Region::RetryDeadLetter answered: the updated
// record (200) when applied; 409 still_unreadable (the record stays parked, with the new reason)
// or not_parked; 404 unknown_dead_letter.
std::variant<nlohmann::json, ApiError> DeadLetterRetryAnswer(
    uint64_t id, const Result<node::DeadLetterRetry>& retry);

// Unique ids (node/id_generator.h), for HTTP and gRPC alike: `count` (already checked with
// CheckIdCount) new ids of this region, increasing; 503 unavailable when none can be issued (the
// reservation could not be saved, or the ids' clock ran out).
std::variant<std::vector<uint64_t>, ApiError> IssueIds(node::Node& node, uint32_t count);
// {"ids": ["<decimal>", ...]}: strings, since JSON numbers past 2^53 lose digits in many readers.
std::string IdsJson(const std::vector<uint64_t>& ids);

// GET /v1/docs/{key}/bounds (docs/http-api.md#bounded-counters), for HTTP and gRPC alike: the
// committed ledgers of the document's bounded fields, {"key": K, "bounds": {"<field>": {"min",
// "value", "declared_by", "rights": {region: n}, "pending": {region: n}, "wanted": {region: n}}}}
// (regions by name), or 404 not_found when the document does not exist.
std::variant<nlohmann::json, ApiError> BoundsJson(node::Node& node, const std::string& key);

// GET /v1/docs/{key}/history (docs/http-api.md#a-documents-history): the document with what made
// it — per field the values kept (the one rendered and the concurrent ones), the increments per
// region, and the events those name, read from the event log while it keeps them. 404 when no
// record of the key is held (a document deleted and folded away included).
std::variant<nlohmann::json, ApiError> HistoryJson(node::Node& node, const std::string& key);

// GET /v1/deployment: this region's status and every other region's, as each answered its own
// GET /v1/status (`answers`: by region name, a status body or why there is none).
struct RegionAnswer {
  int status = 0;  // 0: no answer
  std::string body;
  std::string error;
};
nlohmann::json DeploymentJson(node::Node& node, const std::map<std::string, RegionAnswer>& answers);

// GET /v1/traces/{id} (docs/operations.md#tracing): the spans of one trace recorded here and, with
// `answers` (GET /v1/traces/{id} of every other region, by name), there; oldest first.
nlohmann::json TraceJson(node::Node& node, const std::string& trace_id,
                         const std::map<std::string, RegionAnswer>& answers);
// One span as TraceJson and the console show it.
nlohmann::json SpanJson(const core::Span& span);
// Spans as an OTLP/JSON ExportTraceServiceRequest, all of `region`.
std::string OtlpJson(const std::string& region, const std::vector<core::Span>& spans);

// [auth] (api/authorize.h) for a request of either front end: nullopt when it is allowed (always
// without [auth]), else the 401 or 403 to answer, before any handler runs. `authorization` is the
// Authorization header or the `authorization` metadata. Once allowed, a write's idempotency key
// becomes the one scoped to the token's client (ScopedIdempotencyKey).
std::optional<ApiError> CheckAccess(node::Node& node, std::string_view authorization,
                                    ApiCall* call);
// The claims of the token in `authorization` (api::Authenticate), or its 401: verified once per
// thread while its secret is current and until its `exp`. The node has [auth]. The claims stay
// valid until the thread's next call.
std::variant<const auth::Claims*, ApiError> Authenticated(node::Node& node,
                                                          std::string_view authorization);

// Bytes an item of a scan page counts for: its key, its document and the JSON around them.
size_t ScanItemBytes(std::string_view key, std::string_view doc);
// One scan page, for HTTP and gRPC alike: visit(key, doc) for up to `limit` documents under
// `prefix` after `after`, in key order, ending early once the items passed `bytes_max` bytes
// (ScanItemBytes; a page has at least one item). Answers whether more remain: then the last key
// visited is the cursor of the next page. Read in chunks sized from the documents seen, so that
// a page cut short by bytes reads few documents it does not return.
Result<bool> ScanPage(storage::Store& store, std::string_view prefix, std::string_view after,
                      size_t limit, size_t bytes_max,
                      const std::function<void(std::string_view, std::string_view)>& visit);

// 504 session_timeout: the frontier did not cover the session token within wait_ms.
ApiError SessionTimeout(uint64_t wait_ms);

// A durability wait may ask for at most as many regions as there are others: checked before the
// write, so a refused request writes nothing.
std::optional<ApiError> CheckDurabilityRegions(const node::NodeConfig& config, uint32_t regions);
// True once `wanted` other regions have acknowledged the event `dot`.
bool DurabilityConfirmed(node::Node& node, core::Dot dot, size_t wanted);
// The message of 504 durability_timeout.
std::string DurabilityTimeoutMessage(uint32_t regions, uint64_t timeout_ms);

// Resuming a watch: the change log keeps only its newest changes (watch.changes_kept), so every
// resume point is checked against where it starts, and a resume point it no longer covers is
// refused with 410 resume_point_trimmed, naming the oldest change kept, before streaming.

// The change-log position of a watch's resume point (an event id this region has applied):
// 400 bad_parameter for text that is not an event id, 404 unknown_event for one not applied here,
// 410 resume_point_trimmed when the changes after it were trimmed, or when the event log no longer
// holds the event (replication retention), so that its position is unknown.
std::variant<uint64_t, ApiError> ResumeLsn(node::Node& node, const std::string& event_id);
// A watch's `since`: "us:42,eu:17", the last event a watcher has seen of each origin, as a
// version vector. Any region can resume such a watch: with one region's order of changes, a
// watcher that saw every change of an origin up to some event saw all its earlier ones (each
// region applies an origin's events in order). 400 bad_parameter when malformed.
std::variant<core::VersionVector, ApiError> ParseSince(node::Node& node, const std::string& since);
// Where a `since` watch replays from, once subscribed at `subscribed_lsn`: the change-log position
// just before the earliest change of an event `seen` does not cover (changes after the
// subscription come live). When the event log no longer holds such an event (replication
// retention), its position is unknown: the whole change log is replayed, skipping what `seen`
// covers, unless the change log was trimmed too, which answers 410 resume_point_trimmed (the
// trimmed part might hold it); so does a position before the change log's start.
std::variant<uint64_t, ApiError> SinceLsn(node::Node& node, const core::VersionVector& seen,
                                          uint64_t subscribed_lsn);

// Up to kWatchBacklogPage logged changes after `after_lsn` and at most `through_lsn`
// (> after_lsn), in order; an empty page means the backlog is exhausted. Or the error that must
// end the watch rather than let it skip to later changes (which would leave a gap): the storage
// error, or 410 resume_point_trimmed when the change after `after_lsn` was trimmed meanwhile.
// `last_event` is the last event the watch delivered or resumed from, for the message.
std::optional<ApiError> ReadBacklog(node::Node& node, uint64_t after_lsn, uint64_t through_lsn,
                                    const std::string& last_event, std::vector<node::Change>* page);
// The error that closes a watch that fell more than buffer_max changes (or watch.buffer_bytes_max
// bytes) behind.
ApiError SlowConsumer(size_t buffer_max, const std::string& last_event);
// The error refusing a watch when watch.watchers_max are open.
ApiError TooManyWatches();

}  // namespace meridian::api
