// Who may do what ([auth], docs/security.md): the one rule both front ends apply to every request
// before any handler runs. Pure — the caller passes the secrets, the Authorization value and the
// time — so that every case is unit-tested.
//
//   - /healthz and /readyz need no token.
//   - Every other request needs `Authorization: Bearer <JWT>` (gRPC: `authorization` metadata)
//     that verifies with one of the secrets and has not expired: else 401 unauthenticated.
//   - A document read needs a `read` prefix of its key, a write a `write` prefix of it (a
//     transaction: `read` of every key its conditions name, `write` of every key of either
//     branch); a scan or
//     a watch of a prefix needs a `read` prefix of that prefix (every key it can return is then
//     readable); ids need some `write` prefix (any); status, metrics, conflicts, verify (both),
//     repairs and dead letters (both) need `admin`: else 403 forbidden.
// Both refusals change nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "api/request.h"
#include "auth/token.h"

namespace meridian::api {

// Whether `route` is open to anyone: /healthz, /readyz and the console's files (/ui/, which hold
// no data: the console asks the API for everything it shows, with the token it is given).
bool NeedsNoToken(Route route);

// The token of an Authorization value, "Bearer <JWT>" (the scheme in any case), verified with
// `secrets` at `now_s`: its claims, or 401 unauthenticated with the reason.
std::variant<auth::Claims, ApiError> Authenticate(std::span<const std::string> secrets,
                                                  std::string_view authorization, int64_t now_s);

// Whether `claims` allow `call`: nullopt, or 403 forbidden naming what is outside them.
std::optional<ApiError> Permit(const auth::Claims& claims, const ApiCall& call);

// Idempotency keys are kept per client: one client can neither block another's key nor read the
// receipt it answers. The client is the token's `sub` when it has one, else the token's claims
// (then every token is a client of its own: a refreshed token starts afresh). The stored key is
// "<key> <32 hex digits>" (docs/formats.md); the space never occurs in a key a client sends, so
// scoped keys never meet the unscoped ones of a node without [auth].
std::string ScopedIdempotencyKey(const auth::Claims& claims, std::string_view key);

}  // namespace meridian::api
