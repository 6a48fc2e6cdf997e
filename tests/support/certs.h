// Certificates for tests, made with the `openssl` command line (independently of `meridian`'s own
// tools): a deployment CA and region certificates whose subject CN names the region, as
// docs/security.md describes. Each certificate also names the region, `localhost`, 127.0.0.1 and
// ::1 as subject alternative names, and serves both as a server and as a client certificate.
#pragma once

#include <string>
#include <vector>

namespace meridian::testing {

struct TestCa {
  std::string dir;       // where the files are
  std::string ca_file;   // dir/<name>.pem
  std::string key_file;  // dir/<name>-key.pem
};

// Makes a CA named `name` in `dir` (created if missing). Throws std::runtime_error when openssl
// fails.
TestCa MakeTestCa(const std::string& dir, const std::string& name = "ca");

struct TestCert {
  std::string cert_file;  // ca.dir/<file_stem>.pem
  std::string key_file;   // ca.dir/<file_stem>-key.pem
};

// Signs a certificate with subject CN `common_name` by `ca`, valid for `days` (at least 1).
// `file_stem` defaults to the common name.
TestCert MakeTestCert(const TestCa& ca, const std::string& common_name, int days = 30,
                      const std::string& file_stem = "");

}  // namespace meridian::testing
