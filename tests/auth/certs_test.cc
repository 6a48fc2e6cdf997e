// The certificate tool (auth::CreateCa, auth::CreateCert): what it makes is checked with the
// `openssl` command line, independently of the code that made it — the certificate verifies
// against the CA, names the region as its CN and subject alternative names, serves as server and
// client; keys are private; nothing existing is replaced without `force`.
#include "auth/certs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "support/temp_dir.h"

namespace meridian::auth {
namespace {

// Runs a shell command; its standard output (and error), and whether it exited 0.
std::string Shell(const std::string& command, bool* ok) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    *ok = false;
    return out;
  }
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  const int status = ::pclose(pipe);
  *ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return out;
}

CaOptions Ca(const std::string& dir) {
  CaOptions options;
  options.dir = dir;
  return options;
}

CertOptions Cert(const std::string& ca_dir, const std::string& region) {
  CertOptions options;
  options.ca_dir = ca_dir;
  options.region = region;
  return options;
}

CertOptions Elsewhere(CertOptions options, const std::string& out_dir, bool force) {
  options.out_dir = out_dir;
  options.force = force;
  return options;
}

mode_t ModeOf(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
  return info.st_mode & 0777;
}

TEST(Certs, ARegionCertificateVerifiesAgainstTheCaAndNamesTheRegion) {
  testing::TempDir dir;
  const std::string ca_dir = dir.path() + "/ca";
  auto ca = [&] {
    CaOptions options = Ca(ca_dir);
    options.name = "Test deployment";
    options.days = 30;
    return CreateCa(options);
  }();
  ASSERT_TRUE(ca.ok()) << ca.status().message();
  EXPECT_EQ(ca->cert_file, ca_dir + "/ca.pem");
  EXPECT_EQ(ca->key_file, ca_dir + "/ca-key.pem");
  EXPECT_EQ(ModeOf(ca->key_file), 0600u);

  auto cert = [&] {
    CertOptions options = Cert(ca_dir, "eu-west");
    options.hosts = {"10.1.2.3", "node.example.com", "fd00::5"};
    options.days = 7;
    return CreateCert(options);
  }();
  ASSERT_TRUE(cert.ok()) << cert.status().message();
  EXPECT_EQ(cert->cert_file, ca_dir + "/eu-west.pem");
  EXPECT_EQ(cert->key_file, ca_dir + "/eu-west-key.pem");
  EXPECT_EQ(ModeOf(cert->key_file), 0600u);

  bool ok = false;
  const std::string verified = Shell(
      "openssl verify -CAfile " + ca->cert_file + " -purpose sslserver " + cert->cert_file, &ok);
  EXPECT_TRUE(ok) << verified;
  (void)Shell("openssl verify -CAfile " + ca->cert_file + " -purpose sslclient " + cert->cert_file,
              &ok);
  EXPECT_TRUE(ok) << "usable as a client certificate too";
  const std::string text = Shell(
      "openssl x509 -noout -subject -issuer -enddate -ext "
      "subjectAltName,extendedKeyUsage,basicConstraints -in " +
          cert->cert_file,
      &ok);
  ASSERT_TRUE(ok) << text;
  EXPECT_NE(text.find("subject=CN = eu-west"), std::string::npos) << text;
  EXPECT_NE(text.find("issuer=CN = Test deployment"), std::string::npos) << text;
  for (const char* name : {"DNS:eu-west", "IP Address:10.1.2.3", "DNS:node.example.com",
                           "IP Address:FD00:0:0:0:0:0:0:5", "DNS:localhost", "IP Address:127.0.0.1",
                           "IP Address:0:0:0:0:0:0:0:1"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name << " in\n" << text;
  }
  EXPECT_NE(text.find("TLS Web Server Authentication, TLS Web Client Authentication"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("CA:FALSE"), std::string::npos) << text;
  // The key is the certificate's.
  const std::string cert_key = Shell("openssl x509 -noout -pubkey -in " + cert->cert_file, &ok);
  const std::string key_key = Shell("openssl pkey -pubout -in " + cert->key_file, &ok);
  EXPECT_TRUE(ok);
  EXPECT_EQ(cert_key, key_key);

  // Without the default hosts, only the region and the hosts given.
  auto bare = [&] {
    CertOptions options = Cert(ca_dir, "us");
    options.default_hosts = false;
    return CreateCert(options);
  }();
  ASSERT_TRUE(bare.ok()) << bare.status().message();
  const std::string bare_text =
      Shell("openssl x509 -noout -ext subjectAltName -in " + bare->cert_file, &ok);
  EXPECT_NE(bare_text.find("DNS:us"), std::string::npos) << bare_text;
  EXPECT_EQ(bare_text.find("localhost"), std::string::npos) << bare_text;
}

TEST(Certs, NothingExistingIsReplacedWithoutForce) {
  testing::TempDir dir;
  const std::string ca_dir = dir.path() + "/ca";
  auto ca = CreateCa(Ca(ca_dir));
  ASSERT_TRUE(ca.ok()) << ca.status().message();
  const std::string ca_pem = testing::ReadFile(ca->cert_file);
  auto again = CreateCa(Ca(ca_dir));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("ca-key.pem already exists"), std::string::npos)
      << again.status().message();
  EXPECT_EQ(testing::ReadFile(ca->cert_file), ca_pem);

  const std::string out = dir.path() + "/us-node";
  auto cert = CreateCert(Elsewhere(Cert(ca_dir, "us"), out, false));
  ASSERT_TRUE(cert.ok()) << cert.status().message();
  EXPECT_EQ(cert->cert_file, out + "/us.pem");
  const std::string first = testing::ReadFile(cert->cert_file);
  auto refused = CreateCert(Elsewhere(Cert(ca_dir, "us"), out, false));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), out + "/us-key.pem already exists (--force replaces it)");
  EXPECT_EQ(testing::ReadFile(cert->cert_file), first);

  // Rotation: --force writes a new key and certificate in place.
  const std::string first_key = testing::ReadFile(cert->key_file);
  auto rotated = CreateCert(Elsewhere(Cert(ca_dir, "us"), out, true));
  ASSERT_TRUE(rotated.ok()) << rotated.status().message();
  EXPECT_NE(testing::ReadFile(cert->cert_file), first);
  EXPECT_NE(testing::ReadFile(cert->key_file), first_key);
  EXPECT_EQ(ModeOf(cert->key_file), 0600u);
  EXPECT_FALSE(std::filesystem::exists(cert->key_file + ".tmp"));
  bool ok = false;
  const std::string verified =
      Shell("openssl verify -CAfile " + ca->cert_file + " " + cert->cert_file, &ok);
  EXPECT_TRUE(ok) << verified;
}

TEST(Certs, BadInputIsRefusedClearly) {
  testing::TempDir dir;
  const std::string ca_dir = dir.path() + "/ca";
  auto missing = CreateCert(Cert(ca_dir, "us"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no CA in " + ca_dir), std::string::npos)
      << missing.status().message();
  ASSERT_TRUE(CreateCa(Ca(ca_dir)).ok());
  auto name = CreateCert(Cert(ca_dir, "us,DNS:evil"));
  ASSERT_FALSE(name.ok());
  EXPECT_NE(name.status().message().find("region name"), std::string::npos);
  auto host = [&] {
    CertOptions options = Cert(ca_dir, "us");
    options.hosts = {"a.example,IP:1.2.3.4"};
    return CreateCert(options);
  }();
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.status().message(),
            "--host 'a.example,IP:1.2.3.4' is neither an IP address nor a DNS name");
  auto days = [&] {
    CertOptions options = Cert(ca_dir, "us");
    options.days = 0;
    return CreateCert(options);
  }();
  ASSERT_FALSE(days.ok());
  EXPECT_EQ(days.status().message(), "--days must be 1 to 36500, not 0");
  EXPECT_FALSE(std::filesystem::exists(ca_dir + "/us.pem")) << "nothing written on refusal";
}

}  // namespace
}  // namespace meridian::auth
