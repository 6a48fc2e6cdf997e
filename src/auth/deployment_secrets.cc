#include "auth/deployment_secrets.h"

#include <ctime>
#include <filesystem>
#include <system_error>

#include "auth/files.h"
#include "auth/token.h"

namespace meridian::auth {

Result<DeploymentSecrets> MakeDeploymentSecrets(const DeploymentSecretsOptions& options) {
  DeploymentSecrets made;
  std::error_code error;
  std::filesystem::create_directories(options.dir, error);
  if (error) return InvalidArgument("cannot create " + options.dir + ": " + error.message());
  if (options.tls) {
    CaOptions ca;
    ca.dir = options.dir;
    ca.name = options.ca_name;
    ca.days = options.ca_days;
    Result<CaFiles> ca_files = CreateCa(ca);
    if (!ca_files.ok()) return ca_files.status();
    made.ca_file = ca_files->cert_file;
    for (const DeploymentSecretsOptions::Region& region : options.regions) {
      CertOptions cert;
      cert.ca_dir = options.dir;
      cert.region = region.name;
      cert.hosts = region.hosts;
      cert.days = options.cert_days;
      Result<CertFiles> cert_files = CreateCert(cert);
      if (!cert_files.ok()) return cert_files.status();
      made.certs.push_back(*cert_files);
    }
  }
  if (options.auth) {
    made.jwt_secret_file = options.dir + "/jwt.key";
    Result<std::string> secret = CreateSecretFile(made.jwt_secret_file);
    if (!secret.ok()) return secret.status();
    Claims claims;
    claims.exp = static_cast<int64_t>(std::time(nullptr)) + int64_t{options.token_days} * 86'400;
    claims.read = {""};
    claims.write = {""};
    claims.admin = true;
    claims.sub = options.token_subject;
    Result<std::string> minted = MintToken(claims, *secret);
    if (!minted.ok()) return minted.status();
    made.token = *minted;
    made.token_file = options.dir + "/token";
    // An admin token: readable by its owner only, like the secret that signs it.
    if (Status written = WriteFile(made.token_file, made.token + "\n", 0600, /*replace=*/false);
        !written.ok()) {
      return written;
    }
  }
  return made;
}

}  // namespace meridian::auth
