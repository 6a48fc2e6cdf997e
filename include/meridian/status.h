// Status and Result<T>: how Meridian reports expected failures.
//
// Expected failures (bad input, a limit exceeded, a missing document) are values, never
// exceptions. Each code exists because a caller reacts to it differently; the HTTP layer maps
// them one-to-one onto status codes. Broken invariants are not Statuses: they stop the process
// (see MERIDIAN_CHECK in src/core/check.h).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace meridian {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,       // malformed input: the request can never succeed as sent
  kTooLarge,              // a key, value, field or document over its limit
  kNotFound,              // no such document (or route)
  kTypeMismatch,          // e.g. an increment of a field that holds a non-number
  kCorruption,            // bytes that do not decode (wire or disk)
  kUnsupported,           // a schema version or feature this build does not know
  kUnavailable,           // a dependency (disk, peer) cannot serve now; retrying may help
  kTimeout,               // a bounded wait ran out
  kOverloaded,            // admission refused; retry later
  kInternal,              // an unexpected failure of the node itself
  kIdempotencyKeyReused,  // an idempotency key sent again with a different request
  kRebuilding,            // the region is recovering its own events from its peers: no writes yet
  kUnauthenticated,       // no credentials, or credentials that do not verify ([auth])
  kForbidden,             // verified credentials that do not allow this request
  kPreconditionFailed,    // a conditional write whose condition does not hold (If-Match, ...)
  kBoundExceeded,         // a bounded counter's region lacks the rights for this decrement
  kNotHome,               // a strong operation in a region that is not (or no longer) the home
  kHomeUnavailable,       // a strong operation whose home region could not be reached
  kBoundedField,          // a write a bounded field does not take (set, replace, delete, a
                          // second declaration with another bound)
  kLocked,                // a key held by a two-phase transaction in progress; retrying helps
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid_argument: key is empty"
  std::string ToString() const;

  bool operator==(const Status&) const = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}
inline Status TooLarge(std::string message) {
  return Status(StatusCode::kTooLarge, std::move(message));
}
inline Status Corruption(std::string message) {
  return Status(StatusCode::kCorruption, std::move(message));
}

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : state_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(state_).ok() && "a Result holding a Status must hold an error");
  }

  bool ok() const { return std::holds_alternative<T>(state_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(state_);
  }
  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace meridian

// Returns the Status `expr` evaluates to from the enclosing function when it is not ok.
#define MERIDIAN_RETURN_IF_ERROR(expr)                                      \
  do {                                                                      \
    if (::meridian::Status status_ = (expr); !status_.ok()) return status_; \
  } while (false)
