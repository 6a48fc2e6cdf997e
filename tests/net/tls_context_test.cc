// net/tls_context: loading server and client contexts from PEM files (errors name the file at
// fault) and the holder that reloads them when they change.
#include "net/tls_context.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/certs.h"
#include "support/temp_dir.h"

namespace meridian::net {
namespace {

using testing::MakeTestCa;
using testing::MakeTestCert;
using testing::TempDir;
using testing::TestCa;
using testing::TestCert;

void WriteFile(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".new";
  std::ofstream(temporary, std::ios::binary | std::ios::trunc) << text;
  std::filesystem::rename(temporary, path);
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class TlsContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = MakeTestCa(dir_.path() + "/ca");
    cert_ = MakeTestCert(ca_, "us");
    files_ = {cert_.cert_file, cert_.key_file, ca_.ca_file};
  }
  TempDir dir_;
  TestCa ca_;
  TestCert cert_;
  TlsFiles files_;
};

TEST_F(TlsContextTest, LoadsAServerContext) {
  auto context = LoadServerContext(files_);
  ASSERT_TRUE(context.ok()) << context.status().ToString();
  EXPECT_NE(*context, nullptr);
  EXPECT_EQ(SSL_CTX_get_min_proto_version((*context)->native_handle()), TLS1_2_VERSION);
}

TEST_F(TlsContextTest, AMissingFileIsNamed) {
  for (std::string TlsFiles::*field :
       {&TlsFiles::cert_file, &TlsFiles::key_file, &TlsFiles::ca_file}) {
    TlsFiles files = files_;
    files.*field = dir_.path() + "/missing.pem";
    auto context = LoadServerContext(files);
    ASSERT_FALSE(context.ok());
    EXPECT_EQ(context.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(context.status().message(), dir_.path() + "/missing.pem"))
        << context.status().message();
    EXPECT_TRUE(Contains(context.status().message(), "No such file")) << context.status().message();
  }
}

TEST_F(TlsContextTest, AFileThatIsNotPemIsNamed) {
  const std::string garbage = dir_.path() + "/garbage.pem";
  WriteFile(garbage, "this is not a certificate\n");
  for (std::string TlsFiles::*field :
       {&TlsFiles::cert_file, &TlsFiles::key_file, &TlsFiles::ca_file}) {
    TlsFiles files = files_;
    files.*field = garbage;
    auto context = LoadServerContext(files);
    ASSERT_FALSE(context.ok());
    EXPECT_TRUE(Contains(context.status().message(), "cannot load")) << context.status().message();
    EXPECT_TRUE(Contains(context.status().message(), garbage)) << context.status().message();
  }
}

TEST_F(TlsContextTest, AKeyThatDoesNotMatchTheCertificateIsRefused) {
  const TestCert other = MakeTestCert(ca_, "eu");
  TlsFiles files = files_;
  files.key_file = other.key_file;
  auto context = LoadServerContext(files);
  ASSERT_FALSE(context.ok());
  EXPECT_TRUE(Contains(context.status().message(), "does not match")) << context.status().message();
  EXPECT_TRUE(Contains(context.status().message(), other.key_file)) << context.status().message();
}

TEST_F(TlsContextTest, ClientContexts) {
  auto context = LoadClientContext(ca_.ca_file);
  ASSERT_TRUE(context.ok()) << context.status().ToString();
  EXPECT_NE(SSL_CTX_get_verify_mode((*context)->native_handle()) & SSL_VERIFY_PEER, 0);
  EXPECT_TRUE(LoadClientContext("").ok()) << "the system's trust store";
  auto missing = LoadClientContext(dir_.path() + "/nope.pem");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(missing.status().message(), dir_.path() + "/nope.pem"));
}

TEST_F(TlsContextTest, HolderReloadsOnRequestAndKeepsTheOldContextWhenReloadingFails) {
  auto created = TlsContextHolder::Create(files_);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  TlsContextHolder& holder = **created;
  EXPECT_EQ(holder.generation(), 1u);
  const std::shared_ptr<SslContext> first = holder.Current();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(holder.Current(), first) << "unchanged files: the same context";

  ASSERT_TRUE(holder.Reload("test").ok());
  EXPECT_EQ(holder.generation(), 2u);
  const std::shared_ptr<SslContext> second = holder.Current();
  EXPECT_NE(second, first);

  const std::string good = testing::ReadFile(files_.cert_file);
  WriteFile(files_.cert_file, "garbage\n");
  const Status failed = holder.Reload("test");
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(Contains(failed.message(), files_.cert_file)) << failed.message();
  EXPECT_EQ(holder.Current(), second) << "a failed reload keeps the context in use";
  EXPECT_EQ(holder.generation(), 2u);
  WriteFile(files_.cert_file, good);
  ASSERT_TRUE(holder.Reload("test").ok());
  EXPECT_EQ(holder.generation(), 3u);
}

TEST_F(TlsContextTest, HolderReloadsWhenTheFilesChange) {
  auto created = TlsContextHolder::Create(files_);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  TlsContextHolder& holder = **created;
  const TestCert next = MakeTestCert(ca_, "us", 30, "us-next");
  WriteFile(files_.key_file, testing::ReadFile(next.key_file));
  WriteFile(files_.cert_file, testing::ReadFile(next.cert_file));
  // Current() looks at the files at most once a second: bounded polling.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (holder.generation() < 2 && std::chrono::steady_clock::now() < deadline) {
    holder.Current();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(holder.generation(), 2u);
}

TEST_F(TlsContextTest, HolderCreationFailsWithTheLoadError) {
  TlsFiles files = files_;
  files.cert_file = dir_.path() + "/missing.pem";
  auto created = TlsContextHolder::Create(files);
  ASSERT_FALSE(created.ok());
  EXPECT_TRUE(Contains(created.status().message(), files.cert_file));
}

}  // namespace
}  // namespace meridian::net
