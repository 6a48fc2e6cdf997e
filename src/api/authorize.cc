#include "api/authorize.h"

#include <xxhash.h>

#include <cstdio>
#include <nlohmann/json.hpp>

namespace meridian::api {
namespace {

ApiError Unauthenticated(std::string message) {
  return ApiError{401, "unauthenticated", std::move(message), {}};
}

ApiError Forbidden(std::string message) {
  return ApiError{403, "forbidden", std::move(message), {}};
}

// A key or prefix quoted in a message: JSON string syntax, so bytes that are not text show.
std::string Quote(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool NeedsNoToken(Route route) {
  return route == Route::kHealth || route == Route::kReady || route == Route::kConsole;
}

std::variant<auth::Claims, ApiError> Authenticate(std::span<const std::string> secrets,
                                                  std::string_view authorization, int64_t now_s) {
  if (authorization.empty()) {
    return Unauthenticated("no token: send Authorization: Bearer <token>");
  }
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size() ||
      !EqualsIgnoringCase(authorization.substr(0, kScheme.size()), kScheme)) {
    return Unauthenticated("the Authorization value is not \"Bearer <token>\"");
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  auto claims = auth::VerifyToken(token, secrets, now_s);
  if (!claims.ok()) return Unauthenticated(claims.status().message());
  return std::move(claims).value();
}

std::optional<ApiError> Permit(const auth::Claims& claims, const ApiCall& call) {
  // No default: a new route does not compile until it is decided here.
  switch (call.route) {
    case Route::kHealth:
    case Route::kReady:
    case Route::kConsole:  // the console's own files: no data (what it shows, it asks with a token)
      return std::nullopt;
    case Route::kGetDocument:
    case Route::kGetBounds:
    case Route::kHistory:
      if (claims.CanRead(call.key)) return std::nullopt;
      return Forbidden("this token may not read key " + Quote(call.key) +
                       " (no \"read\" prefix of it)");
    case Route::kPutDocument:
    case Route::kPatchDocument:
    case Route::kIncrementDocument:
    case Route::kDeleteDocument:
    case Route::kPutBounds:
      if (claims.CanWrite(call.key)) return std::nullopt;
      return Forbidden("this token may not write key " + Quote(call.key) +
                       " (no \"write\" prefix of it)");
    case Route::kTransaction:
    case Route::kPrepareTransaction:  // a coordinator's, with the client's token
      // Each condition reads its document; each operation of either branch writes its own.
      {
        if (call.txn == nullptr) return std::nullopt;  // not parsed: refused as malformed
        std::optional<ApiError> refused;
        call.txn->VisitKeys([&](const std::string& key, bool writes) {
          if (writes ? claims.CanWrite(key) : claims.CanRead(key)) return true;
          refused =
              Forbidden(writes ? "this token may not write key " + Quote(key) +
                                     ", which the transaction writes (no \"write\" prefix of it)"
                               : "this token may not read key " + Quote(key) +
                                     ", which a condition of the transaction reads (no "
                                     "\"read\" prefix of it)");
          return false;
        });
        return refused;
      }
    case Route::kScan:
    case Route::kWatch:
      if (claims.CanReadAll(call.prefix)) return std::nullopt;
      return Forbidden(std::string("this token may not ") +
                       (call.route == Route::kScan ? "scan" : "watch") + " prefix " +
                       Quote(call.prefix) +
                       ": it needs a \"read\" prefix of it, so that every key it can return is "
                       "readable");
    case Route::kIds:
      // Ids touch no key, but each one issued is spent for good: a token that may write some key.
      if (!claims.write.empty()) return std::nullopt;
      return Forbidden("ids needs a token with a \"write\" prefix (any)");
    case Route::kHomes:  // where each prefix's home is: what any client's routing may need
      return std::nullopt;
    case Route::kMoveHome:
    case Route::kResolveTransaction:  // a home's, with a token its node signs
    case Route::kConflicts:
    case Route::kVerify:
    case Route::kVerifyNow:
    case Route::kRepairs:
    case Route::kDeadLetters:
    case Route::kRetryDeadLetter:
    case Route::kStatus:
    case Route::kDeployment:
    case Route::kTrace:  // names keys and events of any prefix
    case Route::kMetrics:
      if (claims.admin) return std::nullopt;
      return Forbidden(std::string(RouteName(call.route)) + " needs a token with \"admin\"");
    case Route::kRejected:
      break;
  }
  return Forbidden("this request is not one a token can allow");
}

std::string ScopedIdempotencyKey(const auth::Claims& claims, std::string_view key) {
  // The client, in a form where "sub" and "claims" identities never meet. The claims are signed
  // by the deployment's secret, so no client chooses them: a 128-bit hash separates clients.
  std::string identity;
  if (!claims.sub.empty()) {
    identity = "sub\n" + claims.sub;
  } else {
    identity = "claims\n" + nlohmann::json{{"exp", claims.exp},
                                           {"read", claims.read},
                                           {"write", claims.write},
                                           {"admin", claims.admin}}
                                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  const XXH128_hash_t hash = XXH3_128bits(identity.data(), identity.size());
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(hash.high64),
                static_cast<unsigned long long>(hash.low64));
  std::string scoped(key);
  scoped += ' ';
  scoped += hex;
  return scoped;
}

}  // namespace meridian::api
