#include "api/service.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <set>
#include <sstream>
#include <unordered_map>

#include "api/authorize.h"
#include "api/session_token.h"
#include "api/two_phase.h"
#include "core/check.h"
#include "core/hlc.h"

namespace meridian::api {

namespace {

std::string Hex64(uint64_t value) {
  std::ostringstream out;
  out << std::hex << std::setw(16) << std::setfill('0') << value;
  return out.str();
}

// The event id of the change at `lsn`, or of the first one after it; empty when there is none.
std::string EventAtOrAfter(node::Node& node, uint64_t lsn) {
  std::string event;
  (void)node.store().ReadChanges(lsn - 1, 1, [&](const storage::LoggedEvent& change) {
    if (change.dot.origin != 0) event = node.region().EventId(change.dot);  // 0: merged
  });
  return event;
}

// 410 resume_point_trimmed: `message` says what is gone; `oldest` is the event of the oldest
// change the change log keeps.
ApiError ResumePointTrimmed(std::string message, std::string oldest) {
  return ApiError{410, "resume_point_trimmed", std::move(message), {}, std::move(oldest)};
}

// 410 resume_point_trimmed for changes the change log no longer holds (`what`).
ApiError ChangesTrimmed(const std::string& what, std::string oldest) {
  std::string message = "the change log no longer holds " + what +
                        ": it keeps the newest changes (watch.changes_kept), the oldest being " +
                        (oldest.empty() ? std::string("(none)") : oldest) +
                        "; resume from that event or a later one, or start again from a scan";
  return ResumePointTrimmed(std::move(message), std::move(oldest));
}

// The rule every resume point follows: the change after `after_lsn` must still be kept.
std::optional<ApiError> CheckKept(node::Node& node, uint64_t after_lsn, const std::string& what) {
  auto kept = node.store().Kept();
  if (!kept.ok()) return ErrorFromStatus(kept.status());
  if (after_lsn + 1 >= kept->oldest_lsn) return std::nullopt;
  return ChangesTrimmed(what, EventAtOrAfter(node, kept->oldest_lsn));
}

ApiError BacklogError(const Status& status, const std::string& last_event) {
  const ApiError error = ErrorFromStatus(status);
  return ApiError{error.status,
                  error.code,
                  "cannot read the change log after " + last_event + ": " + error.message,
                  {}};
}

}  // namespace

node::WriteRequest MakeWriteRequest(ApiCall& call) {
  node::WriteRequest write{call.key, std::move(call.op), std::move(call.idempotency_key)};
  write.condition = std::move(call.condition);
  write.txn = call.txn;  // kept: a strong request routes by its keys again after kNotHome
  write.strong = call.strong;
  if (!call.traceparent.empty()) {
    // The write's own span, a child of the client's: its id goes with the event everywhere.
    write.trace = std::string(core::TraceId(call.traceparent)) + core::NewSpanId() +
                  std::string(1, static_cast<char>(core::TraceFlags(call.traceparent)));
  }
  return write;
}

core::Span WriteSpan(node::Node& node, const ApiCall& call, const std::string& trace,
                     const node::Receipt& receipt, uint64_t started_ns) {
  core::Span span;
  span.trace_id = std::string(core::TraceId(trace));
  span.span_id = std::string(core::TraceSpanId(trace));
  span.parent_span_id = std::string(core::TraceSpanId(call.traceparent));
  span.name = "meridian.write";
  span.region = node.config().region;
  span.start_ns = started_ns;
  span.end_ns = std::max(started_ns, core::WallNs());  // a clock stepped back: no negative span
  span.attributes = {{"meridian.route", std::string(RouteName(call.route))},
                     {"meridian.event", node.region().EventId(receipt.dot)}};
  if (!call.key.empty()) span.attributes.emplace_back("meridian.key", call.key);
  return span;
}

nlohmann::json ReceiptJson(const node::Region& region, const node::Receipt& receipt,
                           const std::string& session) {
  const bool wrote = receipt.dot.seq != 0;
  nlohmann::json body = {{"event", wrote ? nlohmann::json(region.EventId(receipt.dot)) : nullptr},
                         {"hlc", wrote ? nlohmann::json(core::FormatHlc(receipt.hlc)) : nullptr},
                         {"session", session}};
  if (receipt.replayed) body["replayed"] = true;
  if (!receipt.version.empty()) body["version"] = receipt.version;
  if (!receipt.succeeded || !receipt.events.empty() || !wrote) {
    body["succeeded"] = receipt.succeeded;
    nlohmann::json events = nlohmann::json::array();
    for (const core::Dot& dot : receipt.events) events.push_back(region.EventId(dot));
    body["events"] = std::move(events);
  }
  return body;
}

std::string ChangeJson(const node::Region& region, const node::Change& change) {
  std::string out = "{\"key\":";
  out += nlohmann::json(change.key).dump();
  out += ",\"doc\":";
  out += change.doc ? *change.doc : "null";
  // A re-seed's merged document names no event.
  out += change.merged() ? ",\"event\":null,\"merged\":true"
                         : ",\"event\":\"" + region.EventId(change.dot) + "\"";
  out += ",\"hlc\":\"" + core::FormatHlc(change.hlc) + "\"";
  // A traced write's context, as its region wrote it (docs/operations.md#tracing).
  if (!change.trace.empty())
    out += ",\"traceparent\":\"" + core::FormatTraceparent(change.trace) + "\"";
  out += "}";
  return out;
}

bool WatchSends(const node::Region& region, const node::Change& change, std::string_view prefix,
                const core::VersionVector& seen, std::string* last_event) {
  if (change.merged()) return change.key.starts_with(prefix);
  *last_event = region.EventId(change.dot);
  return change.key.starts_with(prefix) && !seen.Covers(change.dot);
}

node::Metrics::Snapshot Snapshot(node::Node& node, size_t connections) {
  node::Metrics::Snapshot snapshot;
  const node::CommitStats stats = node.region().stats();
  snapshot.documents = node.region().documents();
  auto conflicts = node.store().ConflictCount();
  snapshot.conflicts = conflicts.ok() ? *conflicts : 0;
  auto dead_letters = node.store().DeadLetterCount();
  snapshot.dead_letters = dead_letters.ok() ? *dead_letters : 0;
  snapshot.damaged_documents = node.region().damaged_count();
  auto idempotency = node.store().IdempotencyCount();
  snapshot.idempotency_records = idempotency.ok() ? *idempotency : 0;
  // The start first, then the end: a trim between the two can only make the count too large.
  auto kept = node.store().Kept();
  if (kept.ok()) {
    const uint64_t last_lsn = node.region().last_lsn();
    snapshot.change_log_oldest_lsn = kept->oldest_lsn;
    snapshot.change_log_changes =
        last_lsn + 1 > kept->oldest_lsn ? last_lsn + 1 - kept->oldest_lsn : 0;
    snapshot.conflict_log_records = snapshot.conflicts + 1 > kept->oldest_conflict
                                        ? snapshot.conflicts + 1 - kept->oldest_conflict
                                        : 0;
  }
  snapshot.events = stats.events;
  snapshot.commits = stats.commits;
  snapshot.write_queue_depth = node.write_queue_depth();
  snapshot.watchers = node.watches().watchers();
  snapshot.watch_overflows = node.watches().overflows();
  snapshot.clock_skew_events = node.region().skew_count();
  snapshot.ids_issued = node.ids().issued();
  snapshot.id_reservations = node.ids().reservations();
  const node::Region::EscrowStats escrow = node.region().escrow_stats();
  snapshot.escrow_refusals = escrow.refusals;
  snapshot.escrow_declarations = escrow.declarations;
  snapshot.escrow_transfers = escrow.transfers;
  snapshot.escrow_accepts = escrow.accepts;
  snapshot.escrow_wants = escrow.wants;
  snapshot.escrow_rounds = escrow.rounds;
  snapshot.escrow_dropped = escrow.dropped;
  snapshot.txn_locks_held = LocksHeldHere(node);
  const CoordinatedCounts coordinated = CoordinatedSoFar();
  snapshot.txn_coordinated_committed = coordinated.committed;
  snapshot.txn_coordinated_aborted = coordinated.aborted;
  node.replication().UpdateGauges(node.region().frontier());
  snapshot.connections = connections;
  snapshot.region = node.config().region;
  snapshot.deployment = node.config().deployment;
  snapshot.write_queue_max = node.config().write_queue_max;
  std::error_code error;
  const std::filesystem::space_info space = std::filesystem::space(node.config().data_dir, error);
  if (!error) {
    snapshot.data_dir_free_bytes = space.available;
    snapshot.data_dir_capacity_bytes = space.capacity;
  }
  auto log_bytes = node.store().LogBytes();
  snapshot.event_log_bytes = log_bytes.ok() ? *log_bytes : 0;
  snapshot.trace_spans_dropped = node.traces().export_dropped();
  return snapshot;
}

std::variant<std::vector<uint64_t>, ApiError> IssueIds(node::Node& node, uint32_t count) {
  MERIDIAN_CHECK(!CheckIdCount(count));
  std::vector<uint64_t> ids;
  if (Status status = node.ids().Next(count, &ids); !status.ok()) return ErrorFromStatus(status);
  return ids;
}

std::string IdsJson(const std::vector<uint64_t>& ids) {
  std::string body = "{\"ids\":[";
  body.reserve(body.size() + ids.size() * 22 + 2);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) body += ',';
    body += '"';
    body += std::to_string(ids[i]);
    body += '"';
  }
  body += "]}";
  return body;
}

nlohmann::json StatusJson(node::Node& node) {
  node::Region& region = node.region();
  const node::NodeConfig& config = node.config();
  const core::VersionVector applied = region.frontier();
  nlohmann::json frontier = nlohmann::json::object();
  for (const auto& entry : applied.entries()) frontier[region.NameOf(entry.origin)] = entry.seq;
  node::SystemClock clock;
  nlohmann::json replication = node.replication().StatusJson(applied, clock.NowMs());
  const node::Metrics::Snapshot snapshot = Snapshot(node, 0);
  char incarnation[17];
  std::snprintf(incarnation, sizeof incarnation, "%016llx",
                static_cast<unsigned long long>(node.identity().incarnation));
  return {{"region", config.region},
          {"id", config.self().id},
          {"deployment", config.deployment},
          {"insecure", config.insecure},
          {"incarnation", incarnation},
          {"rebuild", replication["rebuild"]},
          {"reseed", replication["reseed"]},
          {"frontier", frontier},
          {"session", EncodeSessionToken(applied)},
          {"hlc", core::FormatHlc(region.hlc())},
          {"peers", replication["peers"]},
          {"origins", replication["origins"]},
          {"relays_active", replication["relays_active"]},
          {"retention", replication["retention"]},
          {"digest", Hex64(region.digest())},
          {"documents", snapshot.documents},
          {"conflicts", snapshot.conflicts},
          {"change_log",
           {{"oldest_lsn", snapshot.change_log_oldest_lsn},
            {"last_lsn", snapshot.change_log_oldest_lsn + snapshot.change_log_changes - 1},
            {"changes", snapshot.change_log_changes},
            {"oldest_event",
             snapshot.change_log_changes == 0
                 ? nlohmann::json(nullptr)
                 : nlohmann::json(EventAtOrAfter(node, snapshot.change_log_oldest_lsn))}}},
          {"conflict_log",
           {{"oldest_seq", snapshot.conflicts + 1 - snapshot.conflict_log_records},
            {"records", snapshot.conflict_log_records}}},
          {"dead_letters", snapshot.dead_letters},
          {"dead_letter_documents", region.documents_with_dead_letters()},
          {"idempotency_records", snapshot.idempotency_records},
          {"local_events", snapshot.events},
          {"commits", snapshot.commits},
          {"write_queue_depth", snapshot.write_queue_depth},
          {"watchers", snapshot.watchers},
          {"clock_skew_events", snapshot.clock_skew_events},
          {"uptime_s", node.uptime_s()}};
}

namespace {

// Tokens this thread verified, by their exact Authorization value: a client sends the same token
// with every request, and verifying it (base64, HMAC-SHA256, JSON) costs more than the rest of a
// small read. An entry holds only while the secrets that verified it are the current ones (a
// rotated-out secret empties the cache) and until the token's `exp`; the cache is emptied when it
// holds kVerifiedMax tokens. Per thread: the cache itself is never shared.
struct VerifiedTokens {
  static constexpr size_t kVerifiedMax = 1024;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  std::shared_ptr<const auth::SecretFile::Secrets> secrets;  // held: the pointer is not reused
  std::unordered_map<std::string, auth::Claims, Hash, std::equal_to<>> claims;
};

}  // namespace

std::variant<const auth::Claims*, ApiError> Authenticated(node::Node& node,
                                                          std::string_view authorization) {
  auth::SecretFile* file = node.secrets();
  MERIDIAN_CHECK(file != nullptr);
  const std::shared_ptr<const auth::SecretFile::Secrets> secrets = file->Current();
  const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  thread_local VerifiedTokens cache;
  if (cache.secrets != secrets) {
    cache.claims.clear();
    cache.secrets = secrets;
  } else if (auto it = cache.claims.find(authorization);
             it != cache.claims.end() && it->second.exp > now_s) {
    return &it->second;
  }
  auto verified = Authenticate(*secrets, authorization, now_s);
  if (auto* error = std::get_if<ApiError>(&verified)) return *error;
  if (cache.claims.size() >= VerifiedTokens::kVerifiedMax) cache.claims.clear();
  return &(
      cache.claims
          .insert_or_assign(std::string(authorization), std::move(std::get<auth::Claims>(verified)))
          .first->second);
}

std::optional<ApiError> CheckAccess(node::Node& node, std::string_view authorization,
                                    ApiCall* call) {
  if (node.secrets() == nullptr || NeedsNoToken(call->route)) return std::nullopt;
  auto authenticated = Authenticated(node, authorization);
  if (auto* error = std::get_if<ApiError>(&authenticated)) return *error;
  const auth::Claims& claims = *std::get<const auth::Claims*>(authenticated);
  if (auto refused = Permit(claims, *call)) return refused;
  if (!call->idempotency_key.empty()) {
    call->idempotency_key = ScopedIdempotencyKey(claims, call->idempotency_key);
  }
  return std::nullopt;
}

size_t ScanItemBytes(std::string_view key, std::string_view doc) {
  return key.size() + doc.size() + 16;  // {"key":"...","doc":...},
}

Result<bool> ScanPage(storage::Store& store, std::string_view prefix, std::string_view after,
                      size_t limit, size_t bytes_max,
                      const std::function<void(std::string_view, std::string_view)>& visit) {
  constexpr size_t kFirstChunk = 64;
  constexpr size_t kChunkMax = 1024;
  std::string cursor(after);
  size_t count = 0;
  size_t bytes = 0;
  size_t chunk = std::min(limit, kFirstChunk);
  for (;;) {
    bool full = false;  // a document did not fit: the page ends before it
    auto more =
        store.ScanViews(prefix, cursor, chunk, [&](std::string_view key, std::string_view doc) {
          if (full) return;
          const size_t item = ScanItemBytes(key, doc);
          if (count > 0 && bytes + item > bytes_max) {
            full = true;
            return;
          }
          visit(key, doc);
          ++count;
          bytes += item;
          cursor = key;
        });
    if (!more.ok()) return more.status();
    if (full) return true;
    if (!*more) return false;
    if (count >= limit) return true;
    // As many documents as the bytes left would hold at the average size so far, and one more
    // (which may not fit, and is then read in vain).
    const size_t average = std::max<size_t>(bytes / std::max<size_t>(count, 1), 1);
    const size_t left = bytes < bytes_max ? bytes_max - bytes : 0;
    chunk = std::min({limit - count, left / average + 1, kChunkMax});
  }
}

ApiError SessionTimeout(uint64_t wait_ms) {
  return {504,
          "session_timeout",
          "this region has not yet applied everything the session token covers (waited up to " +
              std::to_string(wait_ms) + " ms); retry or raise wait_ms",
          {}};
}

std::optional<ApiError> CheckDurabilityRegions(const node::NodeConfig& config, uint32_t regions) {
  const size_t peers = config.regions.size() - 1;
  if (regions <= peers) return std::nullopt;
  return ApiError{400,
                  "bad_parameter",
                  "durability=regions:" + std::to_string(regions) +
                      " asks for more regions than the " + std::to_string(peers) +
                      " other regions configured",
                  {}};
}

bool DurabilityConfirmed(node::Node& node, core::Dot dot, size_t wanted) {
  return node.replication().RegionsHolding(dot) >= wanted;
}

std::string DurabilityTimeoutMessage(uint32_t regions, uint64_t timeout_ms) {
  return "the write is committed in this region but " + std::to_string(regions) +
         " other regions have not confirmed it within " + std::to_string(timeout_ms) +
         " ms; it will replicate";
}

nlohmann::json VerifyJson(node::Node& node) {
  const node::Region& region = node.region();
  return {{"region", region.NameOf(region.id())},
          {"peers", node.replication().VerifyJson()},
          {"damaged_documents", region.damaged_count()}};
}

std::optional<ApiError> VerifyNow(node::Node& node, const std::string& peer) {
  core::RegionId id = 0;
  if (!peer.empty()) {
    for (const node::RegionAddress& address : node.config().regions) {
      if (address.name == peer && address.id != node.region().id()) id = address.id;
    }
    if (id == 0) {
      return ApiError{400, "bad_parameter", "peer must name another region of the deployment", {}};
    }
  }
  node.replication().RequestVerify(id);
  return std::nullopt;
}

std::variant<nlohmann::json, ApiError> RepairsJson(node::Node& node, size_t limit) {
  auto records = node.store().RecentRepairs(limit);
  if (!records.ok()) return ErrorFromStatus(records.status());
  nlohmann::json items = nlohmann::json::array();
  for (const std::string& record : *records) {
    items.push_back(nlohmann::json::parse(record, nullptr, /*allow_exceptions=*/false));
  }
  auto total = node.store().RepairCount();
  return nlohmann::json{{"items", std::move(items)}, {"total", total.ok() ? *total : 0}};
}

std::variant<nlohmann::json, ApiError> DeadLettersJson(node::Node& node, size_t limit) {
  auto records = node.store().RecentDeadLetters(limit);
  if (!records.ok()) return ErrorFromStatus(records.status());
  nlohmann::json items = nlohmann::json::array();
  for (const auto& [id, record] : *records) {
    auto letter = node::DeadLetter::Decode(id, record);
    if (!letter.ok()) return ErrorFromStatus(letter.status());
    items.push_back(letter->ToJson());
  }
  auto total = node.store().DeadLetterCount();
  return nlohmann::json{{"items", std::move(items)}, {"total", total.ok() ? *total : 0}};
}

std::variant<nlohmann::json, ApiError> DeadLetterRetryAnswer(
    uint64_t id, const Result<node::DeadLetterRetry>& retry) {
  using Outcome = node::DeadLetterRetry::Outcome;
  if (!retry.ok()) return ErrorFromStatus(retry.status());
  switch (retry->outcome) {
    case Outcome::kApplied:
      return retry->letter.ToJson();
    case Outcome::kStillParked:
      return ApiError{409,
                      "still_unreadable",
                      "dead letter " + std::to_string(id) + " (" + retry->letter.event +
                          ") still cannot be applied: " + retry->letter.reason +
                          "; it stays parked",
                      {}};
    case Outcome::kNotParked:
    case Outcome::kResolved:
      return ApiError{409,
                      "not_parked",
                      "dead letter " + std::to_string(id) + " (" + retry->letter.event + ") is " +
                          std::string(node::DeadLetter::StateName(retry->letter.state)) +
                          ", not parked: there is nothing to retry",
                      {}};
    case Outcome::kUnknown:
      break;
  }
  return ApiError{404, "unknown_dead_letter", "no dead letter has id " + std::to_string(id), {}};
}

std::variant<uint64_t, ApiError> ResumeLsn(node::Node& node, const std::string& event_id) {
  core::Dot dot;
  if (!node.region().ParseEventId(event_id, &dot)) {
    return ApiError{400,
                    "bad_parameter",
                    "cannot resume from '" + event_id + "': not an event id like us:42",
                    {}};
  }
  auto lsn = node.store().LsnOf(dot);
  if (!lsn.ok()) return ErrorFromStatus(lsn.status());
  if (!lsn->has_value()) {
    if (node.region().frontier().Covers(dot)) {
      auto kept = node.store().Kept();
      if (!kept.ok()) return ErrorFromStatus(kept.status());
      return ResumePointTrimmed("event " + event_id +
                                    " is no longer in this region's event log (replication "
                                    "retention), so where its changes end is unknown; resume "
                                    "with since, or start again from a scan",
                                EventAtOrAfter(node, kept->oldest_lsn));
    }
    return ApiError{
        404, "unknown_event", "event " + event_id + " has not been applied in this region", {}};
  }
  if (auto trimmed = CheckKept(node, **lsn, "the changes after " + event_id)) return *trimmed;
  return **lsn;
}

std::variant<core::VersionVector, ApiError> ParseSince(node::Node& node, const std::string& since) {
  core::VersionVector seen;
  size_t start = 0;
  for (int items = 0; start <= since.size() && items < 256; ++items) {
    size_t end = since.find(',', start);
    if (end == std::string::npos) end = since.size();
    const std::string item = since.substr(start, end - start);
    core::Dot dot;
    if (!node.region().ParseEventId(item, &dot)) {
      return ApiError{
          400,
          "bad_parameter",
          "since must be event ids like us:42,eu:17 (one per origin); '" + item + "' is not one",
          {}};
    }
    if (dot.seq > seen.Get(dot.origin)) seen.Set(dot.origin, dot.seq);
    start = end + 1;
  }
  return seen;
}

std::variant<uint64_t, ApiError> SinceLsn(node::Node& node, const core::VersionVector& seen,
                                          uint64_t subscribed_lsn) {
  auto kept = node.store().Kept();
  if (!kept.ok()) return ErrorFromStatus(kept.status());
  uint64_t lsn = subscribed_lsn;
  const core::VersionVector applied = node.region().frontier();
  for (const auto& entry : applied.entries()) {
    const uint64_t next = seen.Get(entry.origin) + 1;
    if (entry.seq < next) continue;  // nothing unseen of this origin applied here yet
    const core::Dot unseen{entry.origin, next};
    auto position = node.store().LsnOf(unseen);
    if (!position.ok()) return ErrorFromStatus(position.status());
    if (position->has_value()) {
      lsn = std::min(lsn, **position - 1);
      continue;
    }
    // Not in the event log any more (retention): replay the whole change log, unless part of it
    // is gone too, which may have held it.
    if (kept->oldest_lsn > 1) {
      return ResumePointTrimmed("event " + node.region().EventId(unseen) +
                                    ", the first of its origin this watch has not seen, is no "
                                    "longer in this region's event log (replication retention), "
                                    "and the change log, which may have held it, was trimmed "
                                    "(watch.changes_kept); start again from a scan",
                                EventAtOrAfter(node, kept->oldest_lsn));
    }
    lsn = 0;
  }
  if (auto trimmed = CheckKept(node, lsn, "some changes this watch has not seen")) return *trimmed;
  return lsn;
}

std::optional<ApiError> ReadBacklog(node::Node& node, uint64_t after_lsn, uint64_t through_lsn,
                                    const std::string& last_event,
                                    std::vector<node::Change>* page) {
  page->clear();
  // The first change read: lsns are dense from the oldest kept, so anything but the one after
  // after_lsn means that one was trimmed.
  std::optional<storage::LoggedEvent> first;
  const auto visit = [&](const storage::LoggedEvent& logged) {
    if (!first) first = logged;
    if (logged.lsn > through_lsn) return;
    page->push_back(node::Change{logged.key, logged.rendered, logged.dot, logged.hlc, logged.lsn});
  };
  const Status status = node.store().ReadChanges(after_lsn, kWatchBacklogPage, visit);
  if (!status.ok()) return BacklogError(status, last_event);
  if (first && first->lsn == after_lsn + 1) return std::nullopt;
  // Trimmed while this watch was replaying: never skip to what is left.
  page->clear();
  return ChangesTrimmed(
      "the changes after " +
          (last_event.empty() ? std::string("this watch's resume point") : last_event) +
          " (trimmed while this watch replayed them)",
      first ? node.region().EventId(first->dot) : std::string());
}

ApiError SlowConsumer(size_t buffer_max, const std::string& last_event) {
  return ApiError{0,
                  "slow_consumer",
                  "this watch fell more than " + std::to_string(buffer_max) +
                      " changes (or watch.buffer_bytes_max bytes) behind and was closed; "
                      "resume from event " +
                      (last_event.empty() ? std::string("(none yet)") : last_event),
                  {}};
}

ApiError TooManyWatches() {
  return ApiError{429, "overloaded", "too many open watches (watch.watchers_max)", {}};
}

std::variant<nlohmann::json, ApiError> BoundsJson(node::Node& node, const std::string& key) {
  const ApiError absent{404, "not_found", "no document with this key", {}};
  auto bytes = node.store().GetDocumentState(key);
  if (!bytes.ok()) return ErrorFromStatus(bytes.status());
  if (!bytes->has_value()) return absent;
  auto state = core::DocumentState::Decode(**bytes);
  if (!state.ok()) return ErrorFromStatus(state.status());
  if (!state->exists()) return absent;
  const node::Region& region = node.region();
  nlohmann::json bounds = nlohmann::json::object();
  for (const auto& [field, ledger] : state->escrows()) {
    if (!ledger.declared()) continue;
    // Every configured region, and any other a ledger names.
    std::set<core::RegionId> regions(region.regions().begin(), region.regions().end());
    for (const auto& [id, share] : ledger.declaration()->shares) regions.insert(id);
    for (const auto& [id, account] : ledger.accounts()) regions.insert(id);
    nlohmann::json rights = nlohmann::json::object();
    nlohmann::json pending = nlohmann::json::object();
    nlohmann::json wanted = nlohmann::json::object();
    for (core::RegionId id : regions) {
      const std::string name = region.NameOf(id);
      rights[name] = ledger.Rights(id);
      pending[name] = ledger.PendingTo(id);
      wanted[name] = ledger.Account(id).wanted;
    }
    bounds[field] = {{"min", ledger.declaration()->min},
                     {"value", *ledger.Value()},
                     {"declared_by", region.EventId(ledger.declaration()->dot)},
                     {"rights", std::move(rights)},
                     {"pending", std::move(pending)},
                     {"wanted", std::move(wanted)}};
  }
  return nlohmann::json{{"key", key}, {"bounds", std::move(bounds)}};
}

std::variant<nlohmann::json, ApiError> HistoryJson(node::Node& node, const std::string& key) {
  using nlohmann::json;
  auto bytes = node.store().GetDocumentState(key);
  if (!bytes.ok()) return ErrorFromStatus(bytes.status());
  if (!bytes->has_value()) return ApiError{404, "not_found", "no record of this key", {}};
  auto state = core::DocumentState::Decode(**bytes);
  if (!state.ok()) return ErrorFromStatus(state.status());
  const node::Region& region = node.region();
  // A canonical JSON value as JSON (a value that does not parse is shown as its text).
  const auto value_of = [](const std::string& text) {
    json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
    return value.is_discarded() ? json(text) : value;
  };
  const auto vector_of = [&](const core::VersionVector& vector) {
    json out = json::object();
    for (const auto& entry : vector.entries()) out[region.NameOf(entry.origin)] = entry.seq;
    return out;
  };
  std::set<core::Dot> dots;  // the events the state names, in dot order
  json fields = json::array();
  for (const auto& [name, field] : state->fields()) {
    const core::Sibling* shown = nullptr;
    for (const core::Sibling& sibling : field.siblings) {
      if (shown == nullptr || core::WinsOver(sibling, *shown)) shown = &sibling;
    }
    json siblings = json::array();
    for (const core::Sibling& sibling : field.siblings) {
      dots.insert(sibling.dot);
      siblings.push_back({{"event", region.EventId(sibling.dot)},
                          {"region", region.NameOf(sibling.dot.origin)},
                          {"hlc", core::FormatHlc(sibling.hlc)},
                          {"value", value_of(sibling.value)},
                          {"rendered", &sibling == shown}});
    }
    json increments = json::array();
    json by_region = json::object();
    for (const core::Increment& increment : field.increments) {
      dots.insert(increment.dot);
      const std::string origin = region.NameOf(increment.dot.origin);
      increments.push_back({{"event", region.EventId(increment.dot)},
                            {"region", origin},
                            {"delta", increment.delta}});
      by_region[origin] = by_region.value(origin, int64_t{0}) + increment.delta;
    }
    const std::optional<std::string> rendered = state->RenderField(name);
    fields.push_back({{"name", name},
                      {"value", rendered ? value_of(*rendered) : json(nullptr)},
                      {"siblings", std::move(siblings)},
                      {"increments", std::move(increments)},
                      {"increments_by_region", std::move(by_region)},
                      {"removed", vector_of(field.removed)}});
  }
  // The events, newest first by HLC, at most kHistoryEventsMax of them.
  constexpr size_t kHistoryEventsMax = 100;
  std::vector<std::pair<core::HlcTimestamp, json>> events;
  for (const core::Dot& dot : dots) {
    core::HlcTimestamp hlc = 0;
    json entry = {
        {"event", region.EventId(dot)}, {"region", region.NameOf(dot.origin)}, {"seq", dot.seq}};
    bool found = false;
    const Status read =
        node.store().ReadLogWhile(dot.origin, dot.seq, 1, [&](const storage::LoggedEvent& logged) {
          if (logged.dot != dot) return false;
          auto event = core::DecodeEvent(logged.bytes, node.config().limits);
          if (!event.ok()) return false;
          found = true;
          json set = json::object();
          for (const core::FieldValue& field : event->op.fields)
            set[field.name] = value_of(field.value);
          json counters = json::object();
          for (const core::CounterDelta& counter : event->op.counters)
            counters[counter.name] = counter.delta;
          hlc = event->hlc;
          entry["hlc"] = core::FormatHlc(event->hlc);
          entry["op"] = std::string(core::OpKindName(event->op.kind));
          if (!set.empty()) entry["fields"] = std::move(set);
          if (!counters.empty()) entry["counters"] = std::move(counters);
          entry["context"] = vector_of(event->context);
          if (event->txn_rest > 0) entry["txn_rest"] = event->txn_rest;
          if (!event->trace.empty()) entry["traceparent"] = core::FormatTraceparent(event->trace);
          return false;
        });
    if (!read.ok()) return ErrorFromStatus(read);
    // Trimmed by log retention (the state still names it), or folded into its region's total.
    if (!found) entry["in_log"] = false;
    events.emplace_back(hlc, std::move(entry));
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  const bool more = events.size() > kHistoryEventsMax;
  json listed = json::array();
  for (size_t i = 0; i < events.size() && i < kHistoryEventsMax; ++i) {
    listed.push_back(std::move(events[i].second));
  }
  const std::optional<std::string> rendered = state->Render();
  return json{{"key", key},
              {"exists", state->exists()},
              {"document", rendered ? value_of(*rendered) : json(nullptr)},
              {"fields", std::move(fields)},
              {"presence", vector_of(state->presence())},
              {"removed", vector_of(state->removed())},
              {"events", std::move(listed)},
              {"more_events", more}};
}

namespace {

// Another region's answer as a JSON object, or why there is none.
std::variant<nlohmann::json, std::string> AnswerBody(const RegionAnswer& answer) {
  if (answer.status == 0) return "no answer: " + answer.error;
  if (answer.status != 200) {
    return "answered " + std::to_string(answer.status) + ": " + answer.body.substr(0, 200);
  }
  nlohmann::json body = nlohmann::json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return std::string("its answer is not a JSON object");
  return body;
}

}  // namespace

nlohmann::json DeploymentJson(node::Node& node,
                              const std::map<std::string, RegionAnswer>& answers) {
  using nlohmann::json;
  json regions = json::object();
  for (const node::RegionAddress& address : node.config().regions) {
    json entry = {{"id", address.id}, {"http", address.http}};
    if (address.name == node.config().region) {
      entry["status"] = StatusJson(node);
    } else if (auto it = answers.find(address.name); it == answers.end()) {
      entry["error"] = "not asked";
    } else if (auto body = AnswerBody(it->second); auto* why = std::get_if<std::string>(&body)) {
      entry["error"] = std::move(*why);
    } else {
      entry["status"] = std::move(std::get<json>(body));
    }
    regions[address.name] = std::move(entry);
  }
  return json{{"region", node.config().region}, {"regions", std::move(regions)}};
}

nlohmann::json SpanJson(const core::Span& span) {
  nlohmann::json attributes = nlohmann::json::object();
  for (const auto& [name, value] : span.attributes) attributes[name] = value;
  return {{"trace_id", core::Hex(span.trace_id)},
          {"span_id", core::Hex(span.span_id)},
          {"parent_span_id", span.parent_span_id.empty()
                                 ? nlohmann::json(nullptr)
                                 : nlohmann::json(core::Hex(span.parent_span_id))},
          {"name", span.name},
          {"region", span.region},
          {"start_unix_nano", std::to_string(span.start_ns)},
          {"end_unix_nano", std::to_string(span.end_ns)},
          {"start_ms", static_cast<double>(span.start_ns) / 1e6},
          {"duration_ms", static_cast<double>(span.end_ns - span.start_ns) / 1e6},
          {"attributes", std::move(attributes)}};
}

nlohmann::json TraceJson(node::Node& node, const std::string& trace_id,
                         const std::map<std::string, RegionAnswer>& answers) {
  using nlohmann::json;
  json spans = json::array();
  for (const core::Span& span : node.traces().Find(trace_id)) spans.push_back(SpanJson(span));
  json unanswered = json::object();
  for (const auto& [name, answer] : answers) {
    auto body = AnswerBody(answer);
    if (auto* why = std::get_if<std::string>(&body)) {
      unanswered[name] = std::move(*why);
      continue;
    }
    for (json& span : std::get<json>(body)["spans"]) spans.push_back(std::move(span));
  }
  // The write first (the other spans start at its event's HLC, whole milliseconds), then by start.
  std::stable_sort(spans.begin(), spans.end(), [](const json& a, const json& b) {
    const bool a_write = a.value("name", "") == "meridian.write";
    const bool b_write = b.value("name", "") == "meridian.write";
    if (a_write != b_write) return a_write;
    return a.value("start_ms", 0.0) < b.value("start_ms", 0.0);
  });
  json out = {{"trace_id", core::Hex(trace_id)}, {"spans", std::move(spans)}};
  if (!unanswered.empty()) out["unanswered"] = std::move(unanswered);
  return out;
}

std::string OtlpJson(const std::string& region, const std::vector<core::Span>& spans) {
  using nlohmann::json;
  const auto text = [](const std::string& key, const std::string& value) {
    return json{{"key", key}, {"value", {{"stringValue", value}}}};
  };
  json list = json::array();
  for (const core::Span& span : spans) {
    json attributes = json::array();
    for (const auto& [name, value] : span.attributes) attributes.push_back(text(name, value));
    json entry = {{"traceId", core::Hex(span.trace_id)},
                  {"spanId", core::Hex(span.span_id)},
                  {"name", span.name},
                  // SERVER for a write (a client's request), CONSUMER for what replication brings.
                  {"kind", span.name == "meridian.write" ? 2 : 5},
                  {"startTimeUnixNano", std::to_string(span.start_ns)},
                  {"endTimeUnixNano", std::to_string(span.end_ns)},
                  {"attributes", std::move(attributes)}};
    if (!span.parent_span_id.empty()) entry["parentSpanId"] = core::Hex(span.parent_span_id);
    list.push_back(std::move(entry));
  }
  json request = {{"resourceSpans",
                   json::array({{{"resource",
                                  {{"attributes", json::array({text("service.name", "meridian"),
                                                               text("meridian.region", region)})}}},
                                 {"scopeSpans", json::array({{{"scope", {{"name", "meridian"}}},
                                                              {"spans", list}}})}}})}};
  return request.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace meridian::api
