#include "api/request.h"

#include "core/trace.h"

#include <simdjson.h>
#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "api/session_token.h"

namespace meridian::api {

std::string_view RouteName(Route route) {
  switch (route) {
    case Route::kPutDocument:
      return "put_doc";
    case Route::kPatchDocument:
      return "patch_doc";
    case Route::kIncrementDocument:
      return "incr_doc";
    case Route::kDeleteDocument:
      return "delete_doc";
    case Route::kGetDocument:
      return "get_doc";
    case Route::kScan:
      return "scan";
    case Route::kWatch:
      return "watch";
    case Route::kConflicts:
      return "conflicts";
    case Route::kVerify:
      return "verify";
    case Route::kVerifyNow:
      return "verify_now";
    case Route::kRepairs:
      return "repairs";
    case Route::kDeadLetters:
      return "dead_letters";
    case Route::kRetryDeadLetter:
      return "retry_dead_letter";
    case Route::kTransaction:
      return "txn";
    case Route::kPrepareTransaction:
      return "txn_prepare";
    case Route::kResolveTransaction:
      return "txn_resolve";
    case Route::kHomes:
      return "homes";
    case Route::kMoveHome:
      return "move_home";
    case Route::kIds:
      return "ids";
    case Route::kPutBounds:
      return "put_bounds";
    case Route::kGetBounds:
      return "get_bounds";
    case Route::kHistory:
      return "history";
    case Route::kDeployment:
      return "deployment";
    case Route::kConsole:
      return "console";
    case Route::kTrace:
      return "trace";
    case Route::kStatus:
      return "status";
    case Route::kMetrics:
      return "metrics";
    case Route::kHealth:
      return "healthz";
    case Route::kReady:
      return "readyz";
    case Route::kRejected:
      return "rejected";
  }
  return "unknown";
}

namespace {

ApiError Error(int status, std::string code, std::string message) {
  return ApiError{status, std::move(code), std::move(message), {}};
}

// 405: `method` is not allowed on `what` (a path, or a kind of route); Allow: `allow`.
ApiError MethodNotAllowed(std::string_view method, std::string_view what, std::string allow) {
  ApiError error = Error(405, "method_not_allowed",
                         std::string(method) + " is not allowed on " + std::string(what));
  error.allow = std::move(allow);
  return error;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ParseUnsigned(std::string_view text, uint64_t* value) {
  if (text.empty()) return false;
  auto [ptr, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && ptr == text.data() + text.size();
}

using Query = std::map<std::string, std::string, std::less<>>;

std::optional<ApiError> ParseQuery(std::string_view text, Query* query) {
  while (!text.empty()) {
    const auto amp = text.find('&');
    const std::string_view pair = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto name = PercentDecode(pair.substr(0, eq), true);
    auto value = PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!name || !value)
      return Error(400, "bad_encoding", "the query has a malformed percent-escape");
    if (!core::IsValidUtf8(*name) || !core::IsValidUtf8(*value)) {
      return Error(400, "bad_encoding", "the query is not valid UTF-8");
    }
    (*query)[std::move(*name)] = std::move(*value);
  }
  return std::nullopt;
}

std::optional<ApiError> ReadUnsigned(const Query& query, std::string_view name, uint64_t max,
                                     uint64_t* out) {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  uint64_t value = 0;
  if (!ParseUnsigned(it->second, &value) || value > max) {
    return Error(400, "bad_parameter",
                 std::string(name) + " must be an integer from 0 to " + std::to_string(max));
  }
  *out = value;
  return std::nullopt;
}

bool IsJsonContentType(std::string_view content_type) {
  if (content_type.empty()) return true;  // no Content-Type at all: accept and parse as JSON
  const auto semicolon = content_type.find(';');
  std::string_view type = content_type.substr(0, semicolon);
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  std::string lower(type);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower == "application/json" ||
         (lower.ends_with("+json") && lower.starts_with("application/"));
}

}  // namespace

namespace {

// A write's JSON object (PUT, PATCH: fields; incr: integer deltas) as an operation of `route`.
std::optional<ApiError> OperationFromJson(Route route, const nlohmann::json& json,
                                          const core::Limits& limits, core::Operation* op) {
  if (!json.is_object()) return Error(400, "malformed_json", "the body must be a JSON object");
  if (route == Route::kIncrementDocument) {
    op->kind = core::OpKind::kIncrement;
    for (auto& [name, value] : json.items()) {
      if (value.is_number_integer() && !value.is_number_unsigned()) {
        op->counters.push_back(core::CounterDelta{name, value.get<int64_t>()});
      } else if (value.is_number_unsigned() &&
                 value.get<uint64_t>() <=
                     static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        op->counters.push_back(
            core::CounterDelta{name, static_cast<int64_t>(value.get<uint64_t>())});
      } else {
        return Error(400, "bad_increment",
                     "the increment of '" + name + "' must be an integer from -2^63 to 2^63-1");
      }
    }
  } else {
    op->kind = route == Route::kPutDocument ? core::OpKind::kReplace : core::OpKind::kSet;
    for (auto& [name, value] : json.items())
      op->fields.push_back(core::FieldValue{name, value.dump()});
  }
  // Values were written by dump(): already canonical JSON.
  if (Status status = core::CheckCanonicalOperation(op, limits); !status.ok())
    return ErrorFromStatus(status);
  return std::nullopt;
}

std::optional<ApiError> CheckBody(std::string_view body, const core::Limits& limits) {
  if (body.size() > limits.document_bytes_max) {
    return Error(413, "too_large",
                 "the body is " + std::to_string(body.size()) + " bytes; the limit is " +
                     std::to_string(limits.document_bytes_max));
  }
  if (!core::IsValidUtf8(body)) return Error(400, "malformed_json", "the body is not valid UTF-8");
  return std::nullopt;
}

// A JSON token as it stands in a body is already its canonical form (what nlohmann's dump()
// writes, core/event.h) when it is a string without escapes or raw control characters, an integer
// of at most 18 digits in the shortest form (no '-0'), true, false or null.
bool CanonicalAsItStands(std::string_view token) {
  if (token.empty()) return false;
  if (token[0] == '"') {
    if (token.size() < 2 || token.back() != '"') return false;
    for (size_t i = 1; i + 1 < token.size(); ++i) {
      const auto c = static_cast<unsigned char>(token[i]);
      if (c == '\\' || c == '"' || c < 0x20) return false;
    }
    return true;
  }
  if (token == "true" || token == "false" || token == "null") return true;
  std::string_view digits = token[0] == '-' ? token.substr(1) : token;
  if (digits.empty() || digits.size() > 18) return false;
  if (digits[0] == '0' && (digits.size() > 1 || token[0] == '-')) return false;
  return digits.find_first_not_of("0123456789") == std::string_view::npos;
}

std::string_view TrimRight(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n' ||
                           text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

// The fields of a flat body, {"name": <token canonical as it stands>, ...}, names without
// escapes, read with simdjson's On-Demand parser (no DOM); a name given twice keeps its last
// value, as the DOM does. nullopt for any other body, the general path's to read.
std::optional<std::map<std::string, std::string>> FlatFields(std::string_view body) {
  thread_local simdjson::ondemand::parser parser;
  const simdjson::padded_string padded(body);
  simdjson::ondemand::document document;
  if (parser.iterate(padded).get(document) != simdjson::SUCCESS) return std::nullopt;
  simdjson::ondemand::object object;
  if (document.get_object().get(object) != simdjson::SUCCESS) return std::nullopt;
  std::map<std::string, std::string> fields;
  for (auto field : object) {
    simdjson::ondemand::raw_json_string raw_name;
    if (field.key().get(raw_name) != simdjson::SUCCESS) return std::nullopt;
    // The name's bytes up to its closing quote: with no escape among them, they are the name.
    const char* name = raw_name.raw();
    size_t length = 0;
    while (name + length < padded.data() + padded.size() && name[length] != '"') {
      if (name[length] == '\\' || static_cast<unsigned char>(name[length]) < 0x20) {
        return std::nullopt;
      }
      ++length;
    }
    std::string_view token;
    if (field.value().raw_json_token().get(token) != simdjson::SUCCESS) return std::nullopt;
    token = TrimRight(token);
    if (!CanonicalAsItStands(token)) return std::nullopt;
    fields.insert_or_assign(std::string(name, length), std::string(token));
  }
  // Nothing after the object: the document's iterator is past its last token.
  if (document.current_location().error() != simdjson::OUT_OF_BOUNDS) return std::nullopt;
  return fields;
}

// The operation of `route` from a flat body's fields; false when the general path must read it
// (an increment that is not an integer: its error is the general path's to give).
bool OperationFromFlatFields(Route route, std::map<std::string, std::string> fields,
                             core::Operation* op) {
  if (route == Route::kIncrementDocument) {
    op->kind = core::OpKind::kIncrement;
    for (auto& [name, token] : fields) {
      int64_t delta = 0;
      const auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), delta);
      if (error != std::errc() || end != token.data() + token.size()) return false;
      op->counters.push_back(core::CounterDelta{name, delta});
    }
    return true;
  }
  op->kind = route == Route::kPutDocument ? core::OpKind::kReplace : core::OpKind::kSet;
  for (auto& [name, token] : fields) {
    op->fields.push_back(core::FieldValue{name, std::move(token)});
  }
  return true;
}

ApiError BadTransaction(std::string message) {
  return Error(400, "bad_transaction", std::move(message));
}

// A key in a transaction's body.
std::optional<ApiError> TransactionKey(const nlohmann::json& item, const std::string& where,
                                       const core::Limits& limits, std::string* key) {
  auto it = item.find("key");
  if (it == item.end() || !it->is_string()) {
    return BadTransaction(where + " needs a \"key\" string");
  }
  *key = it->get<std::string>();
  if (auto error = CheckKey(*key, limits)) {
    error->message = where + ": " + error->message;
    return error;
  }
  return std::nullopt;
}

}  // namespace

std::optional<ApiError> ParseWriteBodyWithDom(Route route, std::string_view body,
                                              const core::Limits& limits, core::Operation* op) {
  if (auto error = CheckBody(body, limits)) return error;
  nlohmann::json json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Error(400, "malformed_json", "the body is not valid JSON");
  return OperationFromJson(route, json, limits, op);
}

std::optional<ApiError> ParseWriteBody(Route route, std::string_view body,
                                       const core::Limits& limits, core::Operation* op) {
  if (body.size() <= limits.document_bytes_max && core::IsValidUtf8(body)) {
    if (auto fields = FlatFields(body)) {
      core::Operation flat;
      if (OperationFromFlatFields(route, std::move(*fields), &flat)) {
        if (Status status = core::CheckCanonicalOperation(&flat, limits); !status.ok()) {
          return ErrorFromStatus(status);
        }
        *op = std::move(flat);
        return std::nullopt;
      }
    }
  }
  // Anything else (nested values, escapes, numbers with fractions, malformed bodies, with their
  // errors) through the DOM.
  return ParseWriteBodyWithDom(route, body, limits, op);
}

std::optional<ApiError> ParseBoundsBody(std::string_view body, const core::Limits& limits,
                                        core::Operation* op) {
  if (auto error = CheckBody(body, limits)) return error;
  nlohmann::json json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Error(400, "malformed_json", "the body is not valid JSON");
  if (!json.is_object()) return Error(400, "malformed_json", "the body must be a JSON object");
  const auto bad = [](std::string message) { return Error(400, "bad_bounds", std::move(message)); };
  if (json.size() != 1) {
    return bad("the body declares the bound of one field: {\"<field>\": {\"min\": <integer>}}");
  }
  // The iterator's own key and value: items() would hand out a reference into a temporary.
  const std::string name = json.begin().key();
  const nlohmann::json& bound = json.begin().value();
  if (!bound.is_object() || bound.size() != 1 || !bound.contains("min")) {
    return bad("the bound of '" + name + "' must be {\"min\": <integer>}");
  }
  const nlohmann::json& min = bound["min"];
  if (!min.is_number_integer() ||
      (min.is_number_unsigned() &&
       min.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
    return bad("the min of '" + name + "' must be an integer from -2^63 to 2^63-1");
  }
  op->kind = core::OpKind::kEscrow;
  op->escrow = core::EscrowOp{};
  op->escrow.kind = core::EscrowOpKind::kDeclare;
  op->escrow.field = name;
  op->escrow.min = min.get<int64_t>();
  if (Status status = core::CheckCanonicalOperation(op, limits); !status.ok()) {
    return ErrorFromStatus(status);
  }
  return std::nullopt;
}

std::optional<ApiError> ParseTransaction(std::string_view body, const core::Limits& limits,
                                         core::Transaction* txn) {
  if (auto error = CheckBody(body, limits)) return error;
  nlohmann::json json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return Error(400, "malformed_json", "the body is not valid JSON");
  if (!json.is_object()) return Error(400, "malformed_json", "the body must be a JSON object");
  for (const auto& [name, value] : json.items()) {
    if (name != "if" && name != "then" && name != "else") {
      return BadTransaction("unknown member \"" + name + "\" (a transaction has if, then, else)");
    }
    if (!value.is_array()) return BadTransaction("\"" + name + "\" must be an array");
  }
  if (auto it = json.find("if"); it != json.end()) {
    for (size_t i = 0; i < it->size(); ++i) {
      const nlohmann::json& item = (*it)[i];
      const std::string where = "condition " + std::to_string(i + 1);
      if (!item.is_object()) return BadTransaction(where + " must be an object");
      core::Condition condition;
      if (auto error = TransactionKey(item, where, limits, &condition.key)) return error;
      for (const auto& [name, value] : item.items()) {
        if (name == "key") continue;
        if (name == "version" && value.is_string()) {
          condition.version = value.get<std::string>();
        } else if (name == "exists" && value.is_boolean()) {
          condition.exists = value.get<bool>();
        } else {
          return BadTransaction(where + ": \"" + name +
                                "\" is not a condition (\"version\": string or \"exists\": "
                                "true/false)");
        }
      }
      if (condition.version.has_value() == condition.exists.has_value()) {
        return BadTransaction(where + " needs exactly one of \"version\" and \"exists\"");
      }
      txn->conditions.push_back(std::move(condition));
    }
  }
  for (const char* branch : {"then", "else"}) {
    auto it = json.find(branch);
    if (it == json.end()) continue;
    std::vector<core::KeyedOperation>& ops =
        std::string_view(branch) == "then" ? txn->then_ops : txn->else_ops;
    if (it->size() > core::kTransactionOpsMax) {
      return Error(413, "too_large",
                   std::string("\"") + branch + "\" has " + std::to_string(it->size()) +
                       " operations; the limit is " + std::to_string(core::kTransactionOpsMax));
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const nlohmann::json& item = (*it)[i];
      const std::string where = std::string(branch) + " operation " + std::to_string(i + 1);
      if (!item.is_object()) return BadTransaction(where + " must be an object");
      core::KeyedOperation op;
      if (auto error = TransactionKey(item, where, limits, &op.key)) return error;
      auto kind = item.find("op");
      if (kind == item.end() || !kind->is_string()) {
        return BadTransaction(where + " needs \"op\": put, patch, incr or delete");
      }
      const std::string name = kind->get<std::string>();
      auto doc = item.find("doc");
      for (const auto& [member, value] : item.items()) {
        if (member != "key" && member != "op" && member != "doc") {
          return BadTransaction(where + ": unknown member \"" + member + "\"");
        }
      }
      if (name == "delete") {
        if (doc != item.end()) return BadTransaction(where + ": a delete takes no \"doc\"");
        op.op.kind = core::OpKind::kDelete;
      } else {
        const Route route = name == "put"     ? Route::kPutDocument
                            : name == "patch" ? Route::kPatchDocument
                            : name == "incr"  ? Route::kIncrementDocument
                                              : Route::kRejected;
        if (route == Route::kRejected) {
          return BadTransaction(where + ": \"" + name +
                                "\" is not an operation (put, patch, incr or delete)");
        }
        if (doc == item.end()) return BadTransaction(where + " needs a \"doc\" object");
        if (auto error = OperationFromJson(route, *doc, limits, &op.op)) {
          error->message = where + ": " + error->message;
          return error;
        }
      }
      ops.push_back(std::move(op));
    }
  }
  return std::nullopt;
}

std::variant<std::optional<core::Condition>, ApiError> ParseCondition(
    std::string_view key, std::string_view if_match, std::string_view if_none_match) {
  const auto trim = [](std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
  };
  if_match = trim(if_match);
  if_none_match = trim(if_none_match);
  if (if_match.empty() && if_none_match.empty()) return std::optional<core::Condition>();
  if (!if_match.empty() && !if_none_match.empty()) {
    return Error(400, "bad_header", "a write takes If-Match or If-None-Match, not both");
  }
  core::Condition condition;
  condition.key = std::string(key);
  if (!if_none_match.empty()) {
    if (if_none_match != "*") {
      return Error(400, "bad_header",
                   "If-None-Match takes * (the write applies only when the document does not "
                   "exist)");
    }
    condition.exists = false;
    return std::optional<core::Condition>(std::move(condition));
  }
  if (if_match == "*") {
    condition.exists = true;
    return std::optional<core::Condition>(std::move(condition));
  }
  if (if_match.size() < 2 || if_match.front() != '"' || if_match.back() != '"' ||
      if_match.substr(1, if_match.size() - 2).find_first_of("\",") != std::string_view::npos) {
    return Error(400, "bad_header",
                 "If-Match takes one version in quotes, as ETag answers it (\"0123456789abcdef\"), "
                 "or *");
  }
  condition.version = std::string(if_match.substr(1, if_match.size() - 2));
  return std::optional<core::Condition>(std::move(condition));
}

bool IsWrite(Route route) {
  switch (route) {
    case Route::kPutDocument:
    case Route::kPatchDocument:
    case Route::kIncrementDocument:
    case Route::kDeleteDocument:
    case Route::kTransaction:
    case Route::kPrepareTransaction:
    case Route::kPutBounds:
      return true;
    default:
      return false;
  }
}

std::optional<ApiError> CheckKey(std::string_view key, const core::Limits& limits) {
  if (Status status = core::ValidateKey(key, limits); !status.ok()) {
    ApiError error = ErrorFromStatus(status);
    if (error.status == 400) error.code = "invalid_key";
    return error;
  }
  return std::nullopt;
}

std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int high = HexValue(text[i + 1]);
      const int low = HexValue(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<ApiError> CheckIdCount(uint64_t count) {
  if (count >= 1 && count <= kIdsCountMax) return std::nullopt;
  return Error(400, "bad_parameter",
               "count must be an integer from 1 to " + std::to_string(kIdsCountMax));
}

bool ValidTransactionId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

bool ValidIdempotencyKey(std::string_view key) {
  if (key.empty() || key.size() > kIdempotencyKeyBytesMax) return false;
  for (char c : key) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

ApiError ErrorFromStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
      return Error(400, "invalid_argument", status.message());
    case StatusCode::kTooLarge:
      return Error(413, "too_large", status.message());
    case StatusCode::kNotFound:
      return Error(404, "not_found", status.message());
    case StatusCode::kTypeMismatch:
      return Error(409, "not_a_number", status.message());
    case StatusCode::kOverloaded:
      return Error(429, "overloaded", status.message());
    case StatusCode::kUnavailable:
      return Error(503, "unavailable", status.message());
    case StatusCode::kRebuilding:
      return Error(503, "rebuilding", status.message());
    case StatusCode::kTimeout:
      return Error(504, "timeout", status.message());
    case StatusCode::kIdempotencyKeyReused:
      return Error(422, "idempotency_key_reused", status.message());
    case StatusCode::kUnauthenticated:
      return Error(401, "unauthenticated", status.message());
    case StatusCode::kForbidden:
      return Error(403, "forbidden", status.message());
    case StatusCode::kPreconditionFailed:
      return Error(412, "precondition_failed", status.message());
    case StatusCode::kBoundExceeded:
      return Error(409, "bound_exceeded", status.message());
    case StatusCode::kNotHome:
      return Error(421, "not_home", status.message());
    case StatusCode::kHomeUnavailable:
      return Error(503, "home_unavailable", status.message());
    case StatusCode::kBoundedField:
      return Error(409, "bounded_field", status.message());
    case StatusCode::kLocked:
      return Error(423, "locked", status.message());
    default:
      return Error(500, "internal", status.ToString());
  }
}

std::string ErrorBody(const ApiError& error) {
  // Messages may quote what the client sent, which need not be UTF-8: replace, never throw.
  nlohmann::json body{{"error", error.code}, {"message", error.message}};
  if (!error.oldest.empty()) body["oldest"] = error.oldest;
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::variant<ApiCall, ApiError> ParseRequest(const RequestView& request,
                                             const core::Limits& limits) {
  const std::string_view target = request.target;
  const auto question = target.find('?');
  const std::string_view path = target.substr(0, question);
  Query query;
  if (question != std::string_view::npos) {
    if (auto error = ParseQuery(target.substr(question + 1), &query)) return *error;
  }
  const std::string_view method = request.method;
  ApiCall call;

  // Route: exact paths first, then /v1/docs/{key}[/incr].
  struct Fixed {
    std::string_view path;
    std::string_view method;
    Route route;
  };
  static constexpr Fixed kFixed[] = {
      {"/v1/docs", "GET", Route::kScan},           {"/v1/watch", "GET", Route::kWatch},
      {"/v1/conflicts", "GET", Route::kConflicts}, {"/v1/status", "GET", Route::kStatus},
      {"/metrics", "GET", Route::kMetrics},        {"/healthz", "GET", Route::kHealth},
      {"/readyz", "GET", Route::kReady},           {"/v1/verify", "GET", Route::kVerify},
      {"/v1/repairs", "GET", Route::kRepairs},     {"/v1/dead-letters", "GET", Route::kDeadLetters},
      {"/v1/homes", "GET", Route::kHomes},         {"/v1/deployment", "GET", Route::kDeployment},
  };
  bool routed = false;
  if (path == "/v1/verify" && method == "POST") {
    call.route = Route::kVerifyNow;
    routed = true;
  }
  // The routes that take POST only.
  for (std::string_view post_only : {"/v1/homes/move", "/v1/txn/resolve", "/v1/txn", "/v1/ids"}) {
    if (path == post_only && method != "POST") return MethodNotAllowed(method, path, "POST");
  }
  if (path == "/v1/homes/move") {
    call.route = Route::kMoveHome;
    routed = true;
  }
  if (path == "/v1/txn/resolve") {
    auto id = query.find("id");
    if (id == query.end() || !ValidTransactionId(id->second)) {
      return Error(400, "bad_parameter",
                   "id must name a transaction: 1 to 128 characters of A-Z a-z 0-9 . _ -");
    }
    call.route = Route::kResolveTransaction;
    call.txn_id = id->second;
    routed = true;
  }
  if (path == "/v1/txn") {
    call.route = Route::kTransaction;
    routed = true;
  }
  for (const Fixed& fixed : kFixed) {
    if (routed || path != fixed.path) continue;
    const bool streams = fixed.route == Route::kWatch;  // a stream has no HEAD
    if (method != fixed.method && (streams || method != "HEAD")) {
      return MethodNotAllowed(method, path,
                              streams                         ? "GET"
                              : fixed.route == Route::kVerify ? "GET, HEAD, POST"
                                                              : "GET, HEAD");
    }
    call.route = fixed.route;
    routed = true;
  }
  if (path == "/v1/ids") {
    call.route = Route::kIds;
    routed = true;
  }
  constexpr std::string_view kDeadLetters = "/v1/dead-letters/";
  if (!routed && path.starts_with(kDeadLetters)) {
    // POST /v1/dead-letters/{id}/retry
    std::string_view rest = path.substr(kDeadLetters.size());
    constexpr std::string_view kRetry = "/retry";
    if (!rest.ends_with(kRetry))
      return Error(404, "not_found", "no such route: " + std::string(path));
    rest.remove_suffix(kRetry.size());
    uint64_t id = 0;
    if (!ParseUnsigned(rest, &id) || id == 0) {
      return Error(400, "bad_parameter",
                   "'" + std::string(rest) + "' is not a dead letter id (an integer from 1)");
    }
    if (method != "POST") return MethodNotAllowed(method, path, "POST");
    call.route = Route::kRetryDeadLetter;
    call.dead_letter = id;
    routed = true;
  }
  // GET /v1/traces/{32 hex digits}[?regions=all]
  constexpr std::string_view kTraces = "/v1/traces/";
  if (!routed && path.starts_with(kTraces)) {
    const std::string_view id = path.substr(kTraces.size());
    auto bytes = core::FromHex(id);
    if (id.size() != 32 || !bytes) {
      return Error(400, "bad_parameter",
                   "a trace id is 32 hex digits, not '" + std::string(id) + "'");
    }
    if (method != "GET" && method != "HEAD") return MethodNotAllowed(method, path, "GET, HEAD");
    call.route = Route::kTrace;
    call.key = *bytes;
    if (auto it = query.find("regions"); it != query.end()) {
      if (it->second != "all" && it->second != "here") {
        return Error(400, "bad_parameter", "regions must be all or here");
      }
      call.every_region = it->second == "all";
    }
    routed = true;
  }
  // The console's files: /ui/ and what it loads (/ui redirects to /ui/).
  if (!routed && (path == "/ui" || path.starts_with("/ui/"))) {
    if (method != "GET" && method != "HEAD") return MethodNotAllowed(method, path, "GET, HEAD");
    call.route = Route::kConsole;
    call.key = std::string(path);
    routed = true;
  }
  if (!routed) {
    constexpr std::string_view kDocs = "/v1/docs/";
    if (!path.starts_with(kDocs))
      return Error(404, "not_found", "no such route: " + std::string(path));
    std::string_view raw_key = path.substr(kDocs.size());
    bool increment = false;
    if (raw_key.ends_with("/incr")) {
      raw_key.remove_suffix(5);
      increment = true;
    }
    bool bounds = false;
    if (!increment && raw_key.ends_with("/bounds")) {
      raw_key.remove_suffix(7);
      bounds = true;
    }
    bool history = false;
    if (!increment && !bounds && raw_key.ends_with("/history")) {
      raw_key.remove_suffix(8);
      history = true;
    }
    if (raw_key.find('/') != std::string_view::npos) {
      return Error(404, "not_found",
                   "no such route: " + std::string(path) + " (a '/' in a key is written %2F)");
    }
    if (raw_key.size() > 3 * limits.key_bytes_max) {
      return Error(413, "too_large",
                   "the key is longer than " + std::to_string(limits.key_bytes_max) + " bytes");
    }
    auto key = PercentDecode(raw_key, false);
    if (!key) return Error(400, "bad_encoding", "the key has a malformed percent-escape");
    if (auto error = CheckKey(*key, limits)) return *error;
    call.key = std::move(*key);
    if (history) {
      if (method != "GET" && method != "HEAD")
        return MethodNotAllowed(method, "history", "GET, HEAD");
      call.route = Route::kHistory;
    } else if (bounds) {
      if (method == "GET" || method == "HEAD") {
        call.route = Route::kGetBounds;
      } else if (method == "PUT") {
        call.route = Route::kPutBounds;
      } else {
        return MethodNotAllowed(method, "bounds", "GET, HEAD, PUT");
      }
    } else if (increment) {
      if (method != "POST") return MethodNotAllowed(method, "increments", "POST");
      call.route = Route::kIncrementDocument;
    } else if (method == "GET" || method == "HEAD") {
      call.route = Route::kGetDocument;
    } else if (method == "PUT") {
      call.route = Route::kPutDocument;
    } else if (method == "PATCH") {
      call.route = Route::kPatchDocument;
    } else if (method == "DELETE") {
      call.route = Route::kDeleteDocument;
    } else {
      return MethodNotAllowed(method, "documents", "GET, HEAD, PUT, PATCH, DELETE");
    }
  }

  // Session token and waits, accepted on every route.
  std::string_view session = request.session_header;
  if (auto it = query.find("session"); it != query.end() && !it->second.empty())
    session = it->second;
  if (!session.empty()) {
    auto vv = DecodeSessionToken(session);
    if (!vv.ok()) return Error(400, "bad_session", vv.status().message());
    call.session = std::move(vv).value();
  }
  if (auto error = ReadUnsigned(query, "wait_ms", kWaitMsMax, &call.wait_ms)) return *error;
  if (auto it = query.find("consistency"); it != query.end()) {
    if (it->second != "strong" && it->second != "eventual") {
      return Error(400, "bad_parameter", "consistency must be strong or eventual");
    }
    if (it->second == "strong" && !IsWrite(call.route) && call.route != Route::kGetDocument) {
      return Error(400, "bad_parameter",
                   "consistency=strong applies to document reads, writes and transactions");
    }
    call.strong = it->second == "strong";
    if (call.route == Route::kGetDocument) {
      if (auto error = ReadUnsigned(query, "timeout_ms", kWaitMsMax, &call.durability_timeout_ms))
        return *error;
    }
  }
  call.forwarded_by = std::string(request.forwarded);

  switch (call.route) {
    case Route::kPutBounds:
    case Route::kPutDocument:
    case Route::kPatchDocument:
    case Route::kIncrementDocument:
      if (!IsJsonContentType(request.content_type)) {
        return Error(415, "unsupported_media_type",
                     "the body must be application/json, not " + std::string(request.content_type));
      }
      if (call.route == Route::kPutBounds) {
        if (auto error = ParseBoundsBody(request.body, limits, &call.op)) return *error;
      } else if (auto error = ParseWriteBody(call.route, request.body, limits, &call.op)) {
        return *error;
      }
      [[fallthrough]];
    case Route::kDeleteDocument:
    case Route::kTransaction: {
      if (call.route == Route::kDeleteDocument) call.op.kind = core::OpKind::kDelete;
      if (call.route == Route::kTransaction) {
        if (!IsJsonContentType(request.content_type)) {
          return Error(
              415, "unsupported_media_type",
              "the body must be application/json, not " + std::string(request.content_type));
        }
        call.txn = std::make_shared<core::Transaction>();
        if (auto error = ParseTransaction(request.body, limits, call.txn.get())) return *error;
        if (!request.if_match.empty() || !request.if_none_match.empty()) {
          return Error(400, "bad_header",
                       "a transaction states its conditions in its body, not in If-Match or "
                       "If-None-Match");
        }
        if (auto id = query.find("prepare"); id != query.end()) {
          // A coordinator's prepare: the locks of the keys homed here.
          if (!ValidTransactionId(id->second)) {
            return Error(400, "bad_parameter",
                         "prepare must name a transaction: 1 to 128 characters of A-Z a-z 0-9 . _ "
                         "-");
          }
          if (auto error = ReadUnsigned(query, "lock_ms", kWaitMsMax * 2, &call.lock_ms)) {
            return *error;
          }
          if (call.lock_ms == 0 || query.contains("consistency")) {
            return Error(400, "bad_parameter",
                         "a prepare takes lock_ms (1 to " + std::to_string(kWaitMsMax * 2) +
                             ") and runs where it is sent, without consistency");
          }
          call.route = Route::kPrepareTransaction;
          call.txn_id = id->second;
        }
      } else {
        auto condition = ParseCondition(call.key, request.if_match, request.if_none_match);
        if (auto* error = std::get_if<ApiError>(&condition)) return *error;
        call.condition = std::get<std::optional<core::Condition>>(std::move(condition));
      }
      if (auto it = query.find("durability"); it != query.end()) {
        constexpr std::string_view kRegions = "regions:";
        uint64_t regions = 0;
        if (!std::string_view(it->second).starts_with(kRegions) ||
            !ParseUnsigned(std::string_view(it->second).substr(kRegions.size()), &regions) ||
            regions > 31) {
          return Error(400, "bad_parameter", "durability must be regions:N with N from 0 to 31");
        }
        call.durability_regions = static_cast<uint32_t>(regions);
      }
      if (auto error = ReadUnsigned(query, "timeout_ms", kWaitMsMax, &call.durability_timeout_ms))
        return *error;
      if (!request.idempotency_key.empty()) {
        if (!ValidIdempotencyKey(request.idempotency_key)) {
          return Error(400, "bad_header",
                       "Idempotency-Key must be 1 to " + std::to_string(kIdempotencyKeyBytesMax) +
                           " visible ASCII characters");
        }
        call.idempotency_key = std::string(request.idempotency_key);
      }
      if (!request.traceparent.empty()) {
        if (auto context = core::ParseTraceparent(request.traceparent)) call.traceparent = *context;
      }
      break;
    }
    case Route::kMoveHome: {
      if (!IsJsonContentType(request.content_type)) {
        return Error(415, "unsupported_media_type",
                     "the body must be application/json, not " + std::string(request.content_type));
      }
      if (auto error = CheckBody(request.body, limits)) return *error;
      const nlohmann::json json =
          nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
      if (!json.is_object() || !json.contains("prefix") || !json["prefix"].is_string() ||
          !json.contains("to") || !json["to"].is_string() ||
          (json.contains("force") && !json["force"].is_boolean())) {
        return Error(400, "malformed_json",
                     "the body must be {\"prefix\": string, \"to\": region name, \"force\": "
                     "bool (optional)}");
      }
      call.move.prefix = json["prefix"].get<std::string>();
      call.move.to = json["to"].get<std::string>();
      call.move.force = json.value("force", false);
      break;
    }
    case Route::kRepairs: {
      uint64_t limit = call.limit;
      if (auto error = ReadUnsigned(query, "limit", kScanLimitMax, &limit); error || limit == 0) {
        return Error(400, "bad_parameter",
                     "limit must be an integer from 1 to " + std::to_string(kScanLimitMax));
      }
      call.limit = static_cast<size_t>(limit);
      break;
    }
    case Route::kVerifyNow:
      if (auto it = query.find("peer"); it != query.end()) call.peer = it->second;
      break;
    case Route::kIds: {
      uint64_t count = call.count;
      if (auto it = query.find("count"); it != query.end() && !ParseUnsigned(it->second, &count)) {
        count = 0;  // malformed: refused as out of range
      }
      if (auto error = CheckIdCount(count)) return *error;
      call.count = static_cast<uint32_t>(count);
      break;
    }
    case Route::kScan:
    case Route::kConflicts:
    case Route::kDeadLetters: {
      uint64_t limit = call.limit;
      if (auto error = ReadUnsigned(query, "limit", kScanLimitMax, &limit); error || limit == 0) {
        return Error(400, "bad_parameter",
                     "limit must be an integer from 1 to " + std::to_string(kScanLimitMax));
      }
      call.limit = static_cast<size_t>(limit);
      [[fallthrough]];
    }
    case Route::kWatch:
      if (auto it = query.find("prefix"); it != query.end()) call.prefix = it->second;
      if (auto it = query.find("after"); it != query.end()) call.after = it->second;
      if (auto it = query.find("from"); it != query.end()) call.resume_from = it->second;
      if (auto it = query.find("since"); it != query.end()) call.since = it->second;
      if (call.resume_from.empty() && call.since.empty()) {
        call.resume_from = std::string(request.last_event_id);
      }
      if (!call.resume_from.empty() && !call.since.empty()) {
        return Error(400, "bad_parameter",
                     "a watch resumes either from one event of this region's order (from) or after "
                     "the events seen of each origin (since), not both");
      }
      if (call.prefix.size() > limits.key_bytes_max || call.after.size() > limits.key_bytes_max) {
        return Error(413, "too_large",
                     "prefix and after are keys: at most " + std::to_string(limits.key_bytes_max) +
                         " bytes");
      }
      break;
    default:
      break;
  }
  return call;
}

}  // namespace meridian::api
