// Bearer tokens ([auth], docs/security.md): JWTs signed with HS256, whose claims say which keys a
// client may read and write and whether it may use the admin endpoints. Pure: no I/O but the
// caller's secret; the HTTP and gRPC front ends check requests against the same Claims.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meridian/status.h"

namespace meridian::auth {

// What a verified token allows.
struct Claims {
  int64_t exp = 0;                 // expiry, seconds since the epoch (required)
  std::vector<std::string> read;   // key prefixes it may read; "" is every key
  std::vector<std::string> write;  // key prefixes it may write; "" is every key
  bool admin = false;              // status, metrics, conflicts, verify, repairs, dead letters
  // The client the token names (`sub`, optional): idempotency keys are kept per client, by this
  // when present (api::ScopedIdempotencyKey).
  std::string sub;

  bool CanRead(std::string_view key) const { return Covers(read, key); }
  bool CanWrite(std::string_view key) const { return Covers(write, key); }
  // A scan or a watch of `prefix` returns only keys starting with it: allowed when every such key
  // is readable, that is when one read prefix is a prefix of `prefix`.
  bool CanReadAll(std::string_view prefix) const { return Covers(read, prefix); }

  static bool Covers(const std::vector<std::string>& prefixes, std::string_view key);
};

// The longest token accepted (a header of a few prefixes is far below it).
inline constexpr size_t kTokenBytesMax = 8192;
// The shortest HS256 secret accepted: 256 bits, as RFC 7518 requires.
inline constexpr size_t kSecretBytesMin = 32;

// Verifies `token` (the part after "Bearer "): an HS256 JWT signed with one of `secrets`, with an
// `exp` claim later than `now_s` and well-formed `read`, `write`, `admin` and `sub` claims.
// kUnauthenticated, with the reason, otherwise; other claims are ignored. Several secrets are
// accepted at once so that a deployment rotates its secret without downtime.
Result<Claims> VerifyToken(std::string_view token, std::span<const std::string> secrets,
                           int64_t now_s);
Result<Claims> VerifyToken(std::string_view token, std::string_view secret, int64_t now_s);

// Signs `claims` with `secret` (HS256): what `meridian token` prints.
Result<std::string> MintToken(const Claims& claims, std::string_view secret);

// The secrets as kept in their file (`jwt_secret_file`): one per line, each line without its
// trailing whitespace, blank lines skipped. The first signs new tokens; tokens signed with any
// verify. kInvalidArgument when there is none, or one is shorter than kSecretBytesMin.
Result<std::vector<std::string>> SecretsFromFile(std::string_view contents);
// The first of them: the one to sign with.
Result<std::string> SecretFromFile(std::string_view contents);

// Creates `path` (which must not exist) holding a new secret: 32 bytes of the kernel's random
// source as 64 hex characters and a newline, readable by its owner only (mode 0600). Returns the
// secret; the error of auth::WriteFile (naming the file) when it exists or cannot be written.
Result<std::string> CreateSecretFile(const std::string& path);

}  // namespace meridian::auth
