// Bearer tokens for tests of [auth] (docs/security.md): claims valid for an hour, signed with a
// test's secret by the node's own auth::MintToken.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "api/session_token.h"
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

// Authorization values a node with [auth] refuses as unauthenticated, each with a part of the
// reason its refusal gives ("" when any will do): none, another scheme, not a token, a token signed
// with `other_secret`, an expired one (signed with `secret`), an unsigned one ("alg":"none").
inline std::vector<std::pair<std::string, std::string>> RefusedAuthorizations(
    const std::string& secret, const std::string& other_secret) {
  auth::Claims expired = TokenClaims({""}, {""}, true);
  expired.exp = NowS() - 10;
  const std::string unsigned_token =
      api::EncodeBase64Url(R"({"alg":"none","typ":"JWT"})") + "." +
      api::EncodeBase64Url(R"({"exp":4000000000,"read":[""],"write":[""],"admin":true})") + ".";
  return {
      {"", "no token"},
      {"Basic dXNlcjpwYXNz", "Bearer"},
      {"Bearer not.a.token", "malformed"},
      {Bearer(TokenClaims({""}, {""}, true), other_secret), "signature"},
      {Bearer(expired, secret), "expired"},
      {"Bearer " + unsigned_token, ""},
  };
}

}  // namespace meridian::testing
