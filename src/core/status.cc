#include "meridian/status.h"

namespace meridian {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kTooLarge:
      return "too_large";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kTypeMismatch:
      return "type_mismatch";
    case StatusCode::kCorruption:
      return "corruption";
    case StatusCode::kUnsupported:
      return "unsupported";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kTimeout:
      return "timeout";
    case StatusCode::kOverloaded:
      return "overloaded";
    case StatusCode::kInternal:
      return "internal";
    case StatusCode::kIdempotencyKeyReused:
      return "idempotency_key_reused";
    case StatusCode::kRebuilding:
      return "rebuilding";
    case StatusCode::kUnauthenticated:
      return "unauthenticated";
    case StatusCode::kPreconditionFailed:
      return "precondition_failed";
    case StatusCode::kBoundExceeded:
      return "bound_exceeded";
    case StatusCode::kNotHome:
      return "not_home";
    case StatusCode::kHomeUnavailable:
      return "home_unavailable";
    case StatusCode::kBoundedField:
      return "bounded_field";
    case StatusCode::kLocked:
      return "locked";
    case StatusCode::kForbidden:
      return "forbidden";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string text(StatusCodeName(code_));
  text += ": ";
  text += message_;
  return text;
}

}  // namespace meridian
