// Bearer tokens for tests of [auth] (docs/security.md): claims valid for an hour, signed with a
// test's secret by the node's own auth::MintToken.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "auth/token.h"

namespace meridian::testing {

inline int64_t NowS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Claims that expire in an hour.
inline auth::Claims TokenClaims(std::vector<std::string> read, std::vector<std::string> write,
                                bool admin = false, std::string sub = {}) {
  auth::Claims claims;
  claims.exp = NowS() + 3600;
  claims.read = std::move(read);
  claims.write = std::move(write);
  claims.admin = admin;
  claims.sub = std::move(sub);
  return claims;
}

// "Bearer <token>" of `claims` signed with `secret`.
inline std::string Bearer(const auth::Claims& claims, const std::string& secret) {
  return "Bearer " + auth::MintToken(claims, secret).value();
}

}  // namespace meridian::testing
