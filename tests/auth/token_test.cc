// Bearer tokens: what verifies, what each claim allows, and every way a token is refused.
#include "auth/token.h"

#include <gtest/gtest.h>
#include <jwt.h>

#include <cstdlib>

#include <string>

#include "api/session_token.h"

namespace meridian::auth {
namespace {

const std::string kSecret = "a secret of at least thirty-two bytes, for tests";
constexpr int64_t kNow = 1'800'000'000;

Claims Reader(std::vector<std::string> read) {
  Claims claims;
  claims.exp = kNow + 3600;
  claims.read = std::move(read);
  return claims;
}

std::string Base64Url(const std::string& in) {
  return api::EncodeBase64Url(in);
}

TEST(TokenTest, AMintedTokenVerifiesWithItsClaims) {
  Claims claims = Reader({"orders/", "carts/"});
  claims.write = {"carts/"};
  claims.admin = true;
  const std::string token = MintToken(claims, kSecret).value();
  auto verified = VerifyToken(token, kSecret, kNow);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->exp, claims.exp);
  EXPECT_EQ(verified->read, claims.read);
  EXPECT_EQ(verified->write, claims.write);
  EXPECT_TRUE(verified->admin);
}

TEST(TokenTest, PrefixesDecideReadsWritesScansAndWatches) {
  Claims claims = Reader({"orders/"});
  claims.write = {"orders/eu/"};
  EXPECT_TRUE(claims.CanRead("orders/1"));
  EXPECT_FALSE(claims.CanRead("carts/1"));
  EXPECT_TRUE(claims.CanWrite("orders/eu/7"));
  EXPECT_FALSE(claims.CanWrite("orders/us/7"));
  EXPECT_TRUE(claims.CanReadAll("orders/eu/"));  // every key under it is readable
  EXPECT_TRUE(claims.CanReadAll("orders/"));
  EXPECT_FALSE(claims.CanReadAll("order"));  // would return keys the token may not read
  EXPECT_FALSE(claims.CanReadAll(""));
  EXPECT_FALSE(claims.admin);
  const Claims everything = Reader({""});
  EXPECT_TRUE(everything.CanReadAll(""));
  EXPECT_TRUE(everything.CanRead("anything"));
  EXPECT_FALSE(everything.CanWrite("anything"));  // no write claim: nothing
}

TEST(TokenTest, ExpiredWrongSecretTamperedOrMalformedTokensAreUnauthenticated) {
  const std::string token = MintToken(Reader({""}), kSecret).value();
  const auto refused = [](const Result<Claims>& result, const std::string& why) {
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kUnauthenticated);
    EXPECT_NE(result.status().message().find(why), std::string::npos) << result.status().message();
  };
  refused(VerifyToken(token, kSecret, kNow + 3600), "expired");
  refused(VerifyToken(token, kSecret + "!", kNow), "signature");
  refused(VerifyToken("", kSecret, kNow), "no token");
  refused(VerifyToken("not.a.token", kSecret, kNow), "malformed");
  refused(VerifyToken(std::string(kTokenBytesMax + 1, 'a'), kSecret, kNow), "over");
  // The claims changed after signing: the signature no longer matches.
  const size_t first = token.find('.');
  const size_t second = token.find('.', first + 1);
  const std::string forged_claims =
      Base64Url(R"({"exp":1900000000,"read":[""],"write":[""],"admin":true})");
  refused(
      VerifyToken(token.substr(0, first + 1) + forged_claims + token.substr(second), kSecret, kNow),
      "signature");
  // Unsigned ("alg": "none") and other algorithms are refused whatever they claim.
  const std::string unsigned_token = Base64Url(R"({"alg":"none","typ":"JWT"})") + "." +
                                     Base64Url(R"({"exp":1900000000,"read":[""]})") + ".";
  EXPECT_EQ(VerifyToken(unsigned_token, kSecret, kNow).status().code(),
            StatusCode::kUnauthenticated);
}

// An HS256 token of any claims, signed with kSecret (libjwt directly, not MintToken).
std::string SignRaw(const std::string& claims_json, jwt_alg_t alg = JWT_ALG_HS256) {
  jwt_t* jwt = nullptr;
  EXPECT_EQ(jwt_new(&jwt), 0);
  EXPECT_EQ(jwt_add_grants_json(jwt, claims_json.c_str()), 0) << claims_json;
  EXPECT_EQ(jwt_set_alg(jwt, alg, reinterpret_cast<const unsigned char*>(kSecret.data()),
                        static_cast<int>(kSecret.size())),
            0);
  char* encoded = jwt_encode_str(jwt);
  std::string token = encoded != nullptr ? encoded : "";
  std::free(encoded);
  jwt_free(jwt);
  return token;
}

TEST(TokenTest, ClaimsOfTheWrongShapeAreRefused) {
  // Well signed, and accepted with the claims it needs (others are ignored).
  auto minimal = VerifyToken(SignRaw(R"({"exp":1900000000,"sub":"svc"})"), kSecret, kNow);
  ASSERT_TRUE(minimal.ok()) << minimal.status().ToString();
  EXPECT_TRUE(minimal->read.empty());
  EXPECT_FALSE(minimal->admin);
  for (const std::string claims : {
           R"({"read":[""]})",                        // no exp
           R"({"exp":"1900000000","read":[""]})",     // exp not a number
           R"({"exp":1900000000,"read":"orders/"})",  // read not a list
           R"({"exp":1900000000,"write":[1]})",       // write of something else than prefixes
           R"({"exp":1900000000,"admin":"yes"})",     // admin not a bool
       }) {
    auto verified = VerifyToken(SignRaw(claims), kSecret, kNow);
    EXPECT_EQ(verified.status().code(), StatusCode::kUnauthenticated) << claims;
  }
  // Signed with the right secret but another algorithm.
  auto hs512 = VerifyToken(SignRaw(R"({"exp":1900000000})", JWT_ALG_HS512), kSecret, kNow);
  EXPECT_EQ(hs512.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(hs512.status().message().find("HS256"), std::string::npos);
}

TEST(TokenTest, SecretsAreTrimmedAndMustBeLongEnough) {
  EXPECT_EQ(SecretFromFile(kSecret + "\n").value(), kSecret);
  EXPECT_EQ(SecretFromFile("short\n").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MintToken(Reader({""}), "short").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace meridian::auth
