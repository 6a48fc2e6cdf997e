#include "auth/token.h"

#include "auth/files.h"

#include <jwt.h>

#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

namespace meridian::auth {
namespace {

Status Unauthenticated(std::string message) {
  return Status(StatusCode::kUnauthenticated, std::move(message));
}

struct JwtFree {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
using Jwt = std::unique_ptr<jwt_t, JwtFree>;

// A claim that lists prefixes: absent is none; otherwise an array of strings.
Status ReadPrefixes(const nlohmann::json& grants, const char* name, std::vector<std::string>* out) {
  auto it = grants.find(name);
  if (it == grants.end()) return Status::Ok();
  if (!it->is_array()) {
    return Unauthenticated(std::string("the token's \"") + name + "\" claim is not a list");
  }
  for (const nlohmann::json& prefix : *it) {
    if (!prefix.is_string()) {
      return Unauthenticated(std::string("the token's \"") + name +
                             "\" claim holds something other than key prefixes");
    }
    out->push_back(prefix.get<std::string>());
  }
  return Status::Ok();
}

}  // namespace

bool Claims::Covers(const std::vector<std::string>& prefixes, std::string_view key) {
  for (const std::string& prefix : prefixes) {
    if (key.starts_with(prefix)) return true;
  }
  return false;
}

namespace {

// The claims of a token whose signature verified.
Result<Claims> ReadClaims(jwt_t* jwt, int64_t now_s) {
  if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
    return Unauthenticated("the token is not signed with HS256");
  }
  char* grants_text = jwt_get_grants_json(jwt, nullptr);
  if (grants_text == nullptr) return Unauthenticated("the token has no claims");
  const nlohmann::json grants = nlohmann::json::parse(grants_text, nullptr, false);
  std::free(grants_text);
  if (!grants.is_object()) return Unauthenticated("the token's claims are not an object");
  Claims claims;
  auto exp = grants.find("exp");
  if (exp == grants.end() || !exp->is_number_integer()) {
    return Unauthenticated("the token has no \"exp\" claim (seconds since the epoch)");
  }
  claims.exp = exp->get<int64_t>();
  if (claims.exp <= now_s) return Unauthenticated("the token has expired");
  if (Status status = ReadPrefixes(grants, "read", &claims.read); !status.ok()) return status;
  if (Status status = ReadPrefixes(grants, "write", &claims.write); !status.ok()) return status;
  if (auto admin = grants.find("admin"); admin != grants.end()) {
    if (!admin->is_boolean()) return Unauthenticated("the token's \"admin\" claim is not a bool");
    claims.admin = admin->get<bool>();
  }
  if (auto sub = grants.find("sub"); sub != grants.end()) {
    if (!sub->is_string()) return Unauthenticated("the token's \"sub\" claim is not a string");
    claims.sub = sub->get<std::string>();
  }
  return claims;
}

}  // namespace

Result<Claims> VerifyToken(std::string_view token, std::span<const std::string> secrets,
                           int64_t now_s) {
  if (token.empty()) return Unauthenticated("no token");
  if (token.size() > kTokenBytesMax) {
    return Unauthenticated("the token is over " + std::to_string(kTokenBytesMax) + " bytes");
  }
  const std::string text(token);
  // jwt_decode verifies the signature with the key for the algorithm the token names; only
  // HS256 is accepted (ReadClaims), so a token naming another (or none) is refused whatever it
  // says. The first secret that verifies decides: a rotated-out secret is simply absent.
  for (const std::string& secret : secrets) {
    jwt_t* raw = nullptr;
    const int decoded =
        jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(secret.data()),
                   static_cast<int>(secret.size()));
    Jwt jwt(raw);
    if (decoded == 0 && jwt != nullptr) return ReadClaims(jwt.get(), now_s);
  }
  return Unauthenticated("the token is malformed or its signature does not verify");
}

Result<Claims> VerifyToken(std::string_view token, std::string_view secret, int64_t now_s) {
  const std::string secrets[] = {std::string(secret)};
  return VerifyToken(token, secrets, now_s);
}

Result<std::string> MintToken(const Claims& claims, std::string_view secret) {
  if (secret.size() < kSecretBytesMin) {
    return Status(StatusCode::kInvalidArgument,
                  "the secret is under " + std::to_string(kSecretBytesMin) + " bytes");
  }
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return Status(StatusCode::kInternal, "jwt_new failed");
  Jwt jwt(raw);
  nlohmann::json grants{
      {"exp", claims.exp}, {"read", claims.read}, {"write", claims.write}, {"admin", claims.admin}};
  if (!claims.sub.empty()) grants["sub"] = claims.sub;
  if (jwt_add_grants_json(jwt.get(), grants.dump().c_str()) != 0 ||
      jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                  static_cast<int>(secret.size())) != 0) {
    return Status(StatusCode::kInternal, "the token cannot be signed");
  }
  char* encoded = jwt_encode_str(jwt.get());
  if (encoded == nullptr) return Status(StatusCode::kInternal, "the token cannot be encoded");
  std::string token(encoded);
  std::free(encoded);
  return token;
}

Result<std::vector<std::string>> SecretsFromFile(std::string_view contents) {
  std::vector<std::string> secrets;
  size_t line_number = 0;
  while (!contents.empty()) {
    const size_t end = contents.find('\n');
    std::string_view line = contents.substr(0, end);
    contents = end == std::string_view::npos ? std::string_view() : contents.substr(end + 1);
    ++line_number;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    if (line.empty()) continue;
    if (line.size() < kSecretBytesMin) {
      return Status(StatusCode::kInvalidArgument,
                    "the JWT secret on line " + std::to_string(line_number) + " is " +
                        std::to_string(line.size()) + " bytes; at least " +
                        std::to_string(kSecretBytesMin) + " are needed");
    }
    secrets.emplace_back(line);
  }
  if (secrets.empty()) {
    return Status(StatusCode::kInvalidArgument, "there is no JWT secret (one per line, at least " +
                                                    std::to_string(kSecretBytesMin) +
                                                    " bytes each)");
  }
  return secrets;
}

Result<std::string> SecretFromFile(std::string_view contents) {
  auto secrets = SecretsFromFile(contents);
  if (!secrets.ok()) return secrets.status();
  return std::move(secrets->front());
}

Result<std::string> CreateSecretFile(const std::string& path) {
  std::random_device device;  // the kernel's random source on Linux
  std::string secret;
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < kSecretBytesMin; ++i) {
    const unsigned byte = device() & 0xff;
    secret.push_back(kHex[byte >> 4]);
    secret.push_back(kHex[byte & 15]);
  }
  if (Status written = WriteFile(path, secret + "\n", 0600, /*replace=*/false); !written.ok()) {
    return written;
  }
  return secret;
}

}  // namespace meridian::auth
