#include "auth/grpc_tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/channel_arguments.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>
#include <utility>

namespace meridian::auth {
namespace {

using grpc::experimental::CertificateProviderInterface;
using grpc::experimental::CertificateVerifier;
using grpc::experimental::ExternalCertificateVerifier;
using grpc::experimental::TlsCustomVerificationCheckRequest;

// Runs after the chain was verified against the CA (gRPC does that first): accepts the peer only
// when its subject CN is one of the expected names. Synchronous.
class CommonNameVerifier final : public ExternalCertificateVerifier {
 public:
  CommonNameVerifier(std::set<std::string> names, std::string what)
      : names_(std::move(names)), what_(std::move(what)) {}

  bool Verify(TlsCustomVerificationCheckRequest* request, std::function<void(grpc::Status)>,
              grpc::Status* sync_status) override {
    const std::string name(request->common_name().data(), request->common_name().size());
    if (names_.contains(name)) {
      *sync_status = grpc::Status::OK;
    } else {
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  "the certificate names '" + name + "', not " + what_);
    }
    return true;
  }
  void Cancel(TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::set<std::string> names_;
  const std::string what_;
};

std::string ReadFile(const std::string& path, bool* ok) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  *ok = static_cast<bool>(file);
  return contents.str();
}

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::unique_ptr<BIO, BioFree> MemoryBio(const std::string& bytes) {
  return std::unique_ptr<BIO, BioFree>(
      BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

}  // namespace

std::shared_ptr<CertificateProviderInterface> WatchTlsFiles(const TlsFiles& files) {
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key_file, files.cert_file, files.ca_file, kTlsRefreshSeconds);
}

std::string CheckTlsFiles(const TlsFiles& files) {
  bool ok = false;
  const std::string cert_pem = ReadFile(files.cert_file, &ok);
  if (!ok) return "[tls] cert_file: cannot read " + files.cert_file;
  const std::string key_pem = ReadFile(files.key_file, &ok);
  if (!ok) return "[tls] key_file: cannot read " + files.key_file;
  const std::string ca_pem = ReadFile(files.ca_file, &ok);
  if (!ok) return "[tls] ca_file: cannot read " + files.ca_file;
  auto cert_bio = MemoryBio(cert_pem);
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return "[tls] cert_file: " + files.cert_file + " holds no PEM certificate";
  auto key_bio = MemoryBio(key_pem);
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return "[tls] key_file: " + files.key_file + " holds no PEM private key (or it is encrypted)";
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return "[tls] key_file: " + files.key_file + " is not the key of " + files.cert_file;
  }
  auto ca_bio = MemoryBio(ca_pem);
  std::unique_ptr<X509, X509Free> ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
  if (!ca) return "[tls] ca_file: " + files.ca_file + " holds no PEM certificate";
  return {};
}

std::shared_ptr<grpc::ServerCredentials> MutualTlsServerCredentials(
    std::shared_ptr<CertificateProviderInterface> provider, std::set<std::string> common_names) {
  grpc::experimental::TlsServerCredentialsOptions options(std::move(provider));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.set_certificate_verifier(ExternalCertificateVerifier::Create<CommonNameVerifier>(
      std::move(common_names), "a region of this deployment"));
  options.set_check_call_host(false);
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> MutualTlsChannelCredentials(
    std::shared_ptr<CertificateProviderInterface> provider, const std::string& common_name) {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(std::move(provider));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  // The dialled address is an IP or a proxy's: what must match is the region the certificate
  // names, which the verifier checks (not the per-call host).
  options.set_certificate_verifier(ExternalCertificateVerifier::Create<CommonNameVerifier>(
      std::set<std::string>{common_name}, "'" + common_name + "', the region dialled"));
  options.set_check_call_host(false);
  return grpc::experimental::TlsCredentials(options);
}

void SetTlsTargetName(grpc::ChannelArguments* arguments, const std::string& common_name) {
  arguments->SetSslTargetNameOverride(common_name);
}

std::shared_ptr<grpc::ServerCredentials> TlsServerCredentials(
    std::shared_ptr<CertificateProviderInterface> provider) {
  grpc::experimental::TlsServerCredentialsOptions options(std::move(provider));
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  return grpc::experimental::TlsServerCredentials(options);
}

std::optional<std::string> PeerCommonName(const grpc::ServerContext& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return std::nullopt;
  const std::vector<grpc::string_ref> names = auth->FindPropertyValues("x509_common_name");
  if (names.size() != 1) return std::nullopt;
  return std::string(names.front().data(), names.front().size());
}

}  // namespace meridian::auth
