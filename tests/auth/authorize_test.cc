// The rule of who may do what (api/authorize.h): every route class against a token's claims,
// every way a token is refused, secrets rotating through their file, and idempotency scopes.
#include "api/authorize.h"

#include <gtest/gtest.h>
#include <jwt.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "api/session_token.h"
#include "auth/secret_file.h"
#include "auth/token.h"
#include "support/temp_dir.h"

namespace meridian::api {
namespace {

const std::string kOld = "the old secret, at least thirty-two bytes long";
const std::string kNew = "the new secret, at least thirty-two bytes long too";
constexpr int64_t kNow = 1'800'000'000;

auth::Claims Token(std::vector<std::string> read, std::vector<std::string> write,
                   bool admin = false) {
  auth::Claims claims;
  claims.exp = kNow + 3600;
  claims.read = std::move(read);
  claims.write = std::move(write);
  claims.admin = admin;
  return claims;
}

std::string Bearer(const auth::Claims& claims, const std::string& secret = kNew) {
  return "Bearer " + auth::MintToken(claims, secret).value();
}

// A token of any claims, signed with kNew by libjwt directly (not MintToken).
std::string SignRaw(const std::string& claims_json, jwt_alg_t alg = JWT_ALG_HS256) {
  jwt_t* jwt = nullptr;
  EXPECT_EQ(jwt_new(&jwt), 0);
  EXPECT_EQ(jwt_add_grants_json(jwt, claims_json.c_str()), 0) << claims_json;
  EXPECT_EQ(jwt_set_alg(jwt, alg, reinterpret_cast<const unsigned char*>(kNew.data()),
                        static_cast<int>(kNew.size())),
            0);
  char* encoded = jwt_encode_str(jwt);
  std::string token = encoded != nullptr ? encoded : "";
  std::free(encoded);
  jwt_free(jwt);
  return token;
}

ApiCall Call(Route route, std::string key = {}, std::string prefix = {}) {
  ApiCall call;
  call.route = route;
  call.key = std::move(key);
  call.prefix = std::move(prefix);
  return call;
}

const std::vector<std::string> kSecrets = {kNew};

// nullopt, or "<status> <code>: <message>" of the refusal.
std::string Outcome(const std::string& authorization, const ApiCall& call,
                    const std::vector<std::string>& secrets = kSecrets, int64_t now = kNow) {
  // As api::CheckAccess composes them.
  if (NeedsNoToken(call.route)) return "allowed";
  auto authenticated = Authenticate(secrets, authorization, now);
  std::optional<ApiError> refused;
  if (auto* error = std::get_if<ApiError>(&authenticated)) {
    refused = *error;
  } else {
    refused = Permit(std::get<auth::Claims>(authenticated), call);
  }
  if (!refused) return "allowed";
  return std::to_string(refused->status) + " " + refused->code + ": " + refused->message;
}

::testing::AssertionResult Refused(const std::string& outcome, int status,
                                   const std::string& reason) {
  const std::string head =
      std::to_string(status) + (status == 401 ? " unauthenticated" : " forbidden");
  if (outcome.rfind(head, 0) != 0 || outcome.find(reason) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "expected " << head << " (" << reason << "), got " << outcome;
  }
  return ::testing::AssertionSuccess();
}

const Route kAdminRoutes[] = {Route::kConflicts, Route::kVerify,      Route::kVerifyNow,
                              Route::kRepairs,   Route::kDeadLetters, Route::kRetryDeadLetter,
                              Route::kStatus,    Route::kMetrics,     Route::kDeployment};
const Route kWrites[] = {Route::kPutDocument, Route::kPatchDocument, Route::kIncrementDocument,
                         Route::kDeleteDocument, Route::kPutBounds};

TEST(AuthorizeTest, HealthReadinessAndTheConsolesFilesNeedNoToken) {
  for (Route route : {Route::kHealth, Route::kReady, Route::kConsole}) {
    EXPECT_EQ(Outcome("", Call(route)), "allowed");
    EXPECT_EQ(Outcome("Bearer garbage", Call(route)), "allowed");
    EXPECT_TRUE(NeedsNoToken(route));
  }
  for (Route route : kAdminRoutes) EXPECT_FALSE(NeedsNoToken(route));
}

TEST(AuthorizeTest, DocumentReadsAndWritesFollowTheirPrefixes) {
  const std::string token = Bearer(Token({"orders/"}, {"orders/eu/"}));
  EXPECT_EQ(Outcome(token, Call(Route::kGetDocument, "orders/1")), "allowed");
  EXPECT_TRUE(Refused(Outcome(token, Call(Route::kGetDocument, "carts/1")), 403,
                      "may not read key \"carts/1\""));
  EXPECT_EQ(Outcome(token, Call(Route::kGetBounds, "orders/1")), "allowed");
  EXPECT_TRUE(Refused(Outcome(token, Call(Route::kGetBounds, "carts/1")), 403, "read"));
  EXPECT_EQ(Outcome(token, Call(Route::kHistory, "orders/1")), "allowed");
  EXPECT_TRUE(Refused(Outcome(token, Call(Route::kHistory, "carts/1")), 403, "read"));
  for (Route route : kWrites) {
    EXPECT_EQ(Outcome(token, Call(route, "orders/eu/7")), "allowed") << RouteName(route);
    EXPECT_TRUE(Refused(Outcome(token, Call(route, "orders/us/7")), 403,
                        "may not write key \"orders/us/7\""))
        << RouteName(route);
  }
  // Reading does not follow from writing, nor writing from reading.
  const std::string writer = Bearer(Token({}, {""}));
  EXPECT_TRUE(Refused(Outcome(writer, Call(Route::kGetDocument, "a")), 403, "read"));
  EXPECT_EQ(Outcome(writer, Call(Route::kPutDocument, "a")), "allowed");
  const std::string reader = Bearer(Token({""}, {}));
  EXPECT_TRUE(Refused(Outcome(reader, Call(Route::kDeleteDocument, "a")), 403, "write"));
}

TEST(AuthorizeTest, ATransactionNeedsReadOfItsConditionsAndWriteOfBothBranches) {
  const std::string token = Bearer(Token({"orders/"}, {"orders/eu/"}));
  const auto txn = [](std::string condition, std::string then_key, std::string else_key) {
    ApiCall call = Call(Route::kTransaction);
    call.txn = std::make_shared<core::Transaction>();
    call.txn->conditions.push_back({.key = condition, .exists = true});
    call.txn->then_ops.push_back({then_key, core::Operation{core::OpKind::kDelete, {}, {}}});
    call.txn->else_ops.push_back({else_key, core::Operation{core::OpKind::kDelete, {}, {}}});
    return call;
  };
  EXPECT_EQ(Outcome(token, txn("orders/1", "orders/eu/1", "orders/eu/2")), "allowed");
  EXPECT_TRUE(Refused(Outcome(token, txn("carts/1", "orders/eu/1", "orders/eu/2")), 403,
                      "may not read key \"carts/1\", which a condition"));
  EXPECT_TRUE(Refused(Outcome(token, txn("orders/1", "orders/us/1", "orders/eu/2")), 403,
                      "may not write key \"orders/us/1\""));
  // The else branch counts too: which branch runs is decided later.
  EXPECT_TRUE(Refused(Outcome(token, txn("orders/1", "orders/eu/1", "orders/us/2")), 403,
                      "may not write key \"orders/us/2\""));
}

TEST(AuthorizeTest, ScansAndWatchesNeedAReadPrefixOfTheirPrefix) {
  const std::string token = Bearer(Token({"orders/"}, {}));
  for (Route route : {Route::kScan, Route::kWatch}) {
    const std::string verb = route == Route::kScan ? "scan" : "watch";
    EXPECT_EQ(Outcome(token, Call(route, {}, "orders/")), "allowed");
    EXPECT_EQ(Outcome(token, Call(route, {}, "orders/eu/")), "allowed");
    // Would return keys outside orders/.
    EXPECT_TRUE(Refused(Outcome(token, Call(route, {}, "order")), 403,
                        "may not " + verb + " prefix \"order\""));
    EXPECT_TRUE(Refused(Outcome(token, Call(route, {}, "")), 403, verb));
    EXPECT_TRUE(Refused(Outcome(token, Call(route, {}, "carts/")), 403, verb));
  }
  const std::string everything = Bearer(Token({""}, {}));
  EXPECT_EQ(Outcome(everything, Call(Route::kScan)), "allowed");
  EXPECT_EQ(Outcome(everything, Call(Route::kWatch)), "allowed");
}

TEST(AuthorizeTest, AdminRoutesNeedAdmin) {
  const std::string plain = Bearer(Token({""}, {""}));
  const std::string admin = Bearer(Token({}, {}, /*admin=*/true));
  for (Route route : kAdminRoutes) {
    EXPECT_TRUE(Refused(Outcome(plain, Call(route)), 403, "needs a token with \"admin\""))
        << RouteName(route);
    EXPECT_EQ(Outcome(admin, Call(route)), "allowed") << RouteName(route);
  }
  // admin covers the operator's endpoints, not documents.
  EXPECT_TRUE(Refused(Outcome(admin, Call(Route::kGetDocument, "a")), 403, "read"));
  EXPECT_TRUE(Refused(Outcome(admin, Call(Route::kScan)), 403, "scan"));
}

TEST(AuthorizeTest, IdsNeedSomeWritePrefix) {
  // Any write prefix will do: ids touch no key.
  EXPECT_EQ(Outcome(Bearer(Token({}, {"orders/eu/"})), Call(Route::kIds)), "allowed");
  EXPECT_EQ(Outcome(Bearer(Token({}, {""})), Call(Route::kIds)), "allowed");
  // Reading, even everything, or admin alone is not enough.
  EXPECT_TRUE(Refused(Outcome(Bearer(Token({""}, {})), Call(Route::kIds)), 403,
                      "ids needs a token with a \"write\" prefix"));
  EXPECT_TRUE(
      Refused(Outcome(Bearer(Token({}, {}, /*admin=*/true)), Call(Route::kIds)), 403, "\"write\""));
  EXPECT_TRUE(Refused(Outcome("", Call(Route::kIds)), 401, "no token"));
  EXPECT_FALSE(NeedsNoToken(Route::kIds));
}

TEST(AuthorizeTest, MissingMalformedBadlySignedOrExpiredTokensAreUnauthenticated) {
  const ApiCall get = Call(Route::kGetDocument, "a");
  const auth::Claims claims = Token({""}, {""}, true);
  EXPECT_TRUE(Refused(Outcome("", get), 401, "no token"));
  EXPECT_TRUE(Refused(Outcome("Bearer", get), 401, "not \"Bearer <token>\""));
  EXPECT_TRUE(Refused(Outcome("Basic dXNlcjpwYXNz", get), 401, "not \"Bearer <token>\""));
  EXPECT_TRUE(Refused(Outcome("Bearer not.a.token", get), 401, "malformed"));
  EXPECT_TRUE(Refused(Outcome(Bearer(claims, kOld), get), 401, "signature"));
  EXPECT_TRUE(Refused(Outcome(Bearer(claims), get, kSecrets, claims.exp), 401, "expired"));
  // The scheme's case does not matter (RFC 7235).
  const std::string token = auth::MintToken(claims, kNew).value();
  EXPECT_EQ(Outcome("bearer " + token, get), "allowed");
  // Unsigned ("alg": "none"): refused whatever it claims, on every route.
  const std::string unsigned_token =
      EncodeBase64Url(R"({"alg":"none","typ":"JWT"})") + "." +
      EncodeBase64Url(R"({"exp":1900000000,"read":[""],"write":[""],"admin":true})") + ".";
  for (Route route : {Route::kGetDocument, Route::kPutDocument, Route::kScan, Route::kStatus}) {
    EXPECT_TRUE(Refused(Outcome("Bearer " + unsigned_token, Call(route, "a")), 401, ""));
  }
  // No exp: refused, even well signed with the right secret (MintToken always writes one).
  EXPECT_TRUE(
      Refused(Outcome("Bearer " + SignRaw(R"({"read":[""],"admin":true})"), get), 401, "\"exp\""));
  // Another algorithm with the right secret.
  EXPECT_TRUE(
      Refused(Outcome("Bearer " + SignRaw(R"({"exp":1900000000,"read":[""]})", JWT_ALG_HS512), get),
              401, "HS256"));
}

TEST(AuthorizeTest, TokensOfEverySecretInTheListVerify) {
  const auth::Claims claims = Token({""}, {});
  const ApiCall get = Call(Route::kGetDocument, "a");
  const std::vector<std::string> rotating = {kNew, kOld};  // kNew signs, kOld still accepted
  EXPECT_EQ(Outcome(Bearer(claims, kOld), get, rotating), "allowed");
  EXPECT_EQ(Outcome(Bearer(claims, kNew), get, rotating), "allowed");
  // Once the old secret is dropped its tokens are refused.
  EXPECT_TRUE(Refused(Outcome(Bearer(claims, kOld), get, {kNew}), 401, "signature"));
  // An expired token stays expired whichever secret verifies it.
  EXPECT_TRUE(
      Refused(Outcome(Bearer(claims, kOld), get, rotating, claims.exp + 1), 401, "expired"));
}

TEST(AuthorizeTest, IdempotencyKeysAreScopedPerClient) {
  auth::Claims alice = Token({""}, {""});
  alice.sub = "alice";
  auth::Claims bob = alice;
  bob.sub = "bob";
  const std::string scoped = ScopedIdempotencyKey(alice, "order-17");
  EXPECT_EQ(scoped.substr(0, scoped.find(' ')), "order-17");  // the client's key comes first
  EXPECT_EQ(scoped.size(), std::string("order-17").size() + 1 + 32);
  EXPECT_NE(scoped, ScopedIdempotencyKey(bob, "order-17"));
  // The same client with a refreshed token keeps its scope.
  auth::Claims alice_later = alice;
  alice_later.exp += 86'400;
  alice_later.read = {"orders/"};
  EXPECT_EQ(scoped, ScopedIdempotencyKey(alice_later, "order-17"));
  // Without sub each token is its own client.
  auth::Claims anonymous = Token({""}, {""});
  auth::Claims other = anonymous;
  other.exp += 1;
  EXPECT_NE(ScopedIdempotencyKey(anonymous, "k"), ScopedIdempotencyKey(other, "k"));
  EXPECT_EQ(ScopedIdempotencyKey(anonymous, "k"), ScopedIdempotencyKey(anonymous, "k"));
  // A sub that looks like claims is still another client.
  EXPECT_NE(ScopedIdempotencyKey(anonymous, "k"), ScopedIdempotencyKey(alice, "k"));
  // Never a key a client could send unscoped.
  EXPECT_FALSE(ValidIdempotencyKey(scoped));
}

TEST(AuthorizeTest, SubjectTravelsInTheToken) {
  auth::Claims claims = Token({"a"}, {});
  claims.sub = "billing-service";
  auto verified = auth::VerifyToken(auth::MintToken(claims, kNew).value(), kNew, kNow);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  EXPECT_EQ(verified->sub, "billing-service");
}

TEST(SecretsTest, OnePerLineFirstSigns) {
  auto secrets = auth::SecretsFromFile(kNew + "\r\n\n" + kOld + "  \n");
  ASSERT_TRUE(secrets.ok()) << secrets.status().ToString();
  EXPECT_EQ(*secrets, (std::vector<std::string>{kNew, kOld}));
  EXPECT_EQ(auth::SecretFromFile(kNew + "\n" + kOld).value(), kNew);
  auto short_line = auth::SecretsFromFile(kNew + "\nshort\n");
  EXPECT_EQ(short_line.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(short_line.status().message().find("line 2"), std::string::npos)
      << short_line.status().message();
  EXPECT_EQ(auth::SecretsFromFile("\n \n").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(auth::SecretsFromFile("").status().code(), StatusCode::kInvalidArgument);
}

void Write(const std::string& path, const std::string& contents) {
  // A new file renamed into place, as a careful operator (or a config tool) replaces it.
  const std::string temporary = path + ".new";
  std::ofstream(temporary, std::ios::binary | std::ios::trunc) << contents;
  ASSERT_EQ(std::rename(temporary.c_str(), path.c_str()), 0);
}

TEST(SecretFileTest, MissingOrShortFilesAreRefusedAtOpen) {
  testing::TempDir dir;
  auto missing = auth::SecretFile::Open(dir.path() + "/none.key");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("none.key"), std::string::npos);
  Write(dir.path() + "/short.key", "short\n");
  auto short_file = auth::SecretFile::Open(dir.path() + "/short.key");
  ASSERT_FALSE(short_file.ok());
  EXPECT_NE(short_file.status().message().find("at least 32"), std::string::npos)
      << short_file.status().message();
}

TEST(SecretFileTest, AChangedFileIsReadAgainAndABadOneKeepsTheOldSecrets) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/jwt.key";
  Write(path, kOld + "\n");
  auto file = auth::SecretFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(*(*file)->Current(), std::vector<std::string>{kOld});

  // Rotation: the new secret first, the old one still accepted. Current() notices by itself
  // (it checks at most once a second): poll, bounded.
  Write(path, kNew + "\n" + kOld + "\n");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*file)->Current()->size() != 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(*(*file)->Current(), (std::vector<std::string>{kNew, kOld}));

  // A broken file: the read fails and the secrets held stay.
  Write(path, "short\n");
  EXPECT_FALSE((*file)->Reload().ok());
  EXPECT_EQ(*(*file)->Current(), (std::vector<std::string>{kNew, kOld}));
  ::unlink(path.c_str());
  EXPECT_FALSE((*file)->Reload().ok());
  EXPECT_EQ((*file)->Current()->size(), 2u);

  Write(path, kNew + "\n");
  EXPECT_TRUE((*file)->Reload().ok());
  EXPECT_EQ(*(*file)->Current(), std::vector<std::string>{kNew});
}

}  // namespace
}  // namespace meridian::api
