#include "cli/security_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "auth/token.h"

namespace meridian::cli {
namespace {

struct TokenOptions {
  CLI::App* command = nullptr;
  std::string secret_file;
  std::string new_secret;
  std::vector<std::string> read;
  std::vector<std::string> write;
  bool admin = false;
  std::string subject;
  int64_t ttl_s = 86'400;
};
TokenOptions token_options;

// 32 random bytes as 64 hex characters, written to a new file only its owner can read.
int WriteNewSecret(const std::string& path) {
  std::random_device device;  // the kernel's random source on Linux
  std::string secret;
  static const char* const kHex = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) {
    const unsigned byte = device() & 0xff;
    secret.push_back(kHex[byte >> 4]);
    secret.push_back(kHex[byte & 15]);
  }
  secret.push_back('\n');
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    std::fprintf(stderr, "meridian token: cannot create %s (it must not exist yet)\n",
                 path.c_str());
    return 2;
  }
  const bool written =
      ::write(fd, secret.data(), secret.size()) == static_cast<ssize_t>(secret.size());
  const bool closed = ::close(fd) == 0;
  if (!written || !closed) {
    std::fprintf(stderr, "meridian token: cannot write %s\n", path.c_str());
    return 2;
  }
  std::printf("wrote a new secret to %s (mode 0600): name it in [auth] jwt_secret_file\n",
              path.c_str());
  return 0;
}

int RunToken(const TokenOptions& options) {
  if (!options.new_secret.empty()) return WriteNewSecret(options.new_secret);
  if (options.secret_file.empty()) {
    std::fprintf(stderr, "meridian token: give --secret-file (or --new-secret FILE)\n");
    return 2;
  }
  std::ifstream file(options.secret_file, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  if (!file) {
    std::fprintf(stderr, "meridian token: cannot read %s\n", options.secret_file.c_str());
    return 2;
  }
  // The file may hold several secrets while they rotate: the first signs.
  auto secret = auth::SecretFromFile(contents.str());
  if (!secret.ok()) {
    std::fprintf(stderr, "meridian token: %s\n", secret.status().message().c_str());
    return 2;
  }
  auth::Claims claims;
  claims.exp = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count() +
               options.ttl_s;
  claims.read = options.read;
  claims.write = options.write;
  claims.admin = options.admin;
  claims.sub = options.subject;
  auto token = auth::MintToken(claims, *secret);
  if (!token.ok()) {
    std::fprintf(stderr, "meridian token: %s\n", token.status().message().c_str());
    return 2;
  }
  std::printf("%s\n", token->c_str());
  return 0;
}

}  // namespace

void AddSecurityCommands(CLI::App& app) {
  TokenOptions& options = token_options;
  options.command = app.add_subcommand(
      "token",
      "Print a bearer token signed with the deployment's secret, or create that secret "
      "(docs/security.md)");
  CLI::Option* secret_file = options.command->add_option(
      "--secret-file", options.secret_file,
      "The HS256 secrets ([auth] jwt_secret_file); the first line signs");
  options.command
      ->add_option("--new-secret", options.new_secret,
                   "Create FILE holding a new random secret (mode 0600) and exit")
      ->excludes(secret_file);
  options.command->add_option("--read", options.read,
                              "A key prefix the token may read (repeatable; \"\" is every key)");
  options.command->add_option("--write", options.write,
                              "A key prefix the token may write (repeatable; \"\" is every key)");
  options.command->add_flag("--admin", options.admin,
                            "May use status, metrics, conflicts, verify, repairs, dead letters");
  options.command->add_option(
      "--subject", options.subject,
      "The client the token names (its \"sub\" claim): idempotency keys are kept per client");
  options.command->add_option("--ttl-s", options.ttl_s, "Seconds until the token expires")
      ->check(CLI::Range(int64_t{1}, int64_t{10} * 365 * 86'400))
      ->capture_default_str();
}

int RunSecurityCommands() {
  if (token_options.command != nullptr && token_options.command->parsed()) {
    return RunToken(token_options);
  }
  return -1;
}

}  // namespace meridian::cli
