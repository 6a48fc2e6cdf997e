#include "support/certs.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace meridian::testing {
namespace {

void Run(const std::string& command) {
  const std::string quiet = command + " >/dev/null 2>&1";
  if (std::system(quiet.c_str()) != 0) throw std::runtime_error("failed: " + command);
}

std::string Quote(const std::string& text) {
  return "'" + text + "'";
}

}  // namespace

TestCa MakeTestCa(const std::string& dir, const std::string& name) {
  std::filesystem::create_directories(dir);
  TestCa ca{dir, dir + "/" + name + ".pem", dir + "/" + name + "-key.pem"};
  Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj " +
      Quote("/CN=" + name + " test CA") + " -keyout " + Quote(ca.key_file) + " -out " +
      Quote(ca.ca_file) +
      " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign");
  return ca;
}

TestCert MakeTestCert(const TestCa& ca, const std::string& common_name, int days,
                      const std::string& file_stem) {
  const std::string stem = ca.dir + "/" + (file_stem.empty() ? common_name : file_stem);
  TestCert cert{stem + ".pem", stem + "-key.pem"};
  const std::string extensions = stem + ".ext";
  {
    std::ofstream file(extensions);
    file << "basicConstraints=CA:FALSE\n"
         << "keyUsage=critical,digitalSignature,keyEncipherment\n"
         << "extendedKeyUsage=serverAuth,clientAuth\n"
         << "subjectAltName=DNS:" << common_name << ",DNS:localhost,IP:127.0.0.1,IP:::1\n";
  }
  Run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj " +
      Quote("/CN=" + common_name) + " -keyout " + Quote(cert.key_file) + " -out " +
      Quote(stem + ".csr"));
  const std::string validity = "-days " + std::to_string(days);
  Run("openssl x509 -req -in " + Quote(stem + ".csr") + " -CA " + Quote(ca.ca_file) + " -CAkey " +
      Quote(ca.key_file) + " -CAcreateserial -out " + Quote(cert.cert_file) + " " + validity +
      " -extfile " + Quote(extensions));
  return cert;
}

}  // namespace meridian::testing
