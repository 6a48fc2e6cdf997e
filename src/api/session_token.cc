#include "api/session_token.h"

#include <array>

namespace meridian::api {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int DecodeChar(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

}  // namespace

std::string EncodeSessionToken(const core::VersionVector& vv) {
  if (vv.empty()) return "";
  return EncodeBase64Url(vv.Encode());
}

std::string EncodeBase64Url(std::string_view bytes) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char byte : bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(buffer >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (6 - bits)) & 0x3F]);
  return out;
}

Result<core::VersionVector> DecodeSessionToken(std::string_view token) {
  if (token.empty()) return core::VersionVector();
  if (token.size() > 512) return InvalidArgument("session token is too long");
  std::string bytes;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : token) {
    const int value = DecodeChar(c);
    if (value < 0) return InvalidArgument("session token is not base64url");
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  auto vv = core::VersionVector::Decode(bytes);
  if (!vv.ok()) return InvalidArgument("session token is malformed");
  return vv;
}

}  // namespace meridian::api
