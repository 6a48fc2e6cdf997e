#include "cli/security_commands.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "auth/certs.h"
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
  if (Result<std::string> made = auth::CreateSecretFile(path); !made.ok()) {
    std::fprintf(stderr, "meridian token: %s\n", made.status().message().c_str());
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

// `meridian ca create` and `meridian cert create` (docs/cli.md#meridian-ca-and-meridian-cert).
struct CertCommands {
  CLI::App* ca_create = nullptr;
  CLI::App* cert_create = nullptr;
  auth::CaOptions ca;
  auth::CertOptions cert;
  bool no_default_hosts = false;
};
CertCommands cert_commands;

int RunCaCreate(const auth::CaOptions& options) {
  auto files = auth::CreateCa(options);
  if (!files.ok()) {
    std::fprintf(stderr, "meridian ca create: %s\n", files.status().message().c_str());
    return 2;
  }
  std::printf(
      "wrote the CA's certificate to %s (every node's [tls] ca_file)\n"
      "and its key to %s (mode 0600: keep it where certificates are made, not on the nodes)\n",
      files->cert_file.c_str(), files->key_file.c_str());
  return 0;
}

int RunCertCreate(auth::CertOptions options, bool no_default_hosts) {
  options.default_hosts = !no_default_hosts;
  auto files = auth::CreateCert(options);
  if (!files.ok()) {
    std::fprintf(stderr, "meridian cert create: %s\n", files.status().message().c_str());
    return 2;
  }
  std::printf(
      "wrote %s's certificate to %s ([tls] cert_file)\nand its key to %s (mode 0600, [tls] "
      "key_file)\n",
      options.region.c_str(), files->cert_file.c_str(), files->key_file.c_str());
  return 0;
}

void AddCertCommands(CLI::App& app) {
  CertCommands& c = cert_commands;
  CLI::App* ca =
      app.add_subcommand("ca", "The deployment's certificate authority (docs/security.md)");
  ca->require_subcommand(1);
  c.ca_create = ca->add_subcommand(
      "create", "Create a CA: DIR/ca.pem (the nodes' [tls] ca_file) and DIR/ca-key.pem (0600)");
  c.ca_create->add_option("--dir", c.ca.dir, "Where to write it (created if missing)")->required();
  c.ca_create->add_option("--name", c.ca.name, "The CA's subject CN")->capture_default_str();
  c.ca_create->add_option("--days", c.ca.days, "Days it is valid")->capture_default_str();
  c.ca_create->add_flag("--force", c.ca.force,
                        "Replace an existing CA (certificates it signed stop verifying)");

  CLI::App* cert = app.add_subcommand("cert", "Region certificates signed by the deployment's CA");
  cert->require_subcommand(1);
  c.cert_create = cert->add_subcommand(
      "create",
      "Create a region's certificate (CN = the region) and key: OUT/REGION.pem, "
      "OUT/REGION-key.pem (0600)");
  c.cert_create->add_option("--ca-dir", c.cert.ca_dir, "The CA's directory (meridian ca create)")
      ->required();
  c.cert_create->add_option("--region", c.cert.region, "The region's name, as in [[regions]]")
      ->required();
  c.cert_create->add_option(
      "--host", c.cert.hosts,
      "An IP address or DNS name the node is reached at (repeatable; localhost, 127.0.0.1 and ::1 "
      "are always added unless --no-default-hosts)");
  c.cert_create->add_flag("--no-default-hosts", c.no_default_hosts,
                          "Do not add localhost, 127.0.0.1 and ::1");
  c.cert_create->add_option("--days", c.cert.days, "Days it is valid")->capture_default_str();
  c.cert_create->add_option("--out", c.cert.out_dir,
                            "Where to write it (default: the CA's directory)");
  c.cert_create->add_flag("--force", c.cert.force,
                          "Replace existing files, atomically (rotation: nodes reload them)");
}

}  // namespace

void AddSecurityCommands(CLI::App& app) {
  AddCertCommands(app);
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
  if (cert_commands.ca_create != nullptr && cert_commands.ca_create->parsed()) {
    return RunCaCreate(cert_commands.ca);
  }
  if (cert_commands.cert_create != nullptr && cert_commands.cert_create->parsed()) {
    return RunCertCreate(cert_commands.cert, cert_commands.no_default_hosts);
  }
  if (token_options.command != nullptr && token_options.command->parsed()) {
    return RunToken(token_options);
  }
  return -1;
}

}  // namespace meridian::cli
