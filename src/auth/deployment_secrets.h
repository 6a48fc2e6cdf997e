// A new deployment's secrets in one directory (docs/security.md): the CA, a certificate per
// region, the secret that signs bearer tokens and an admin token signed with it. What `meridian
// init --tls --auth` and `meridian demo` make; `meridian ca create`, `cert create` and `token`
// make each of them alone.
#pragma once

#include <string>
#include <vector>

#include "auth/certs.h"
#include "meridian/status.h"

namespace meridian::auth {

struct DeploymentSecretsOptions {
  std::string dir;  // created when missing; no file in it is replaced
  bool tls = true;  // the CA and the regions' certificates
  bool auth = true;  // the token secret and the admin token
  std::string ca_name = "Meridian deployment CA";
  int ca_days = kCaDaysDefault;
  int cert_days = kCertDaysDefault;
  struct Region {
    std::string name;
    std::vector<std::string> hosts;  // besides localhost, 127.0.0.1 and ::1
  };
  std::vector<Region> regions;
  std::string token_subject = "admin";  // the token's `sub`
  int token_days = 30;
};

struct DeploymentSecrets {
  std::string ca_file;               // <dir>/ca.pem (tls)
  std::vector<CertFiles> certs;      // one per region, in order (tls)
  std::string jwt_secret_file;       // <dir>/jwt.key (auth)
  std::string token;                 // admin, every key readable and writable (auth)
  std::string token_file;            // <dir>/token, mode 0600 (auth)
};

Result<DeploymentSecrets> MakeDeploymentSecrets(const DeploymentSecretsOptions& options);

}  // namespace meridian::auth
