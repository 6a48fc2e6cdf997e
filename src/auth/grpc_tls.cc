#include "auth/grpc_tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/channel_arguments.h>

#include <utility>

#include "net/tls_context.h"

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

}  // namespace

Result<std::shared_ptr<CertificateProviderInterface>> WatchTlsFiles(const net::TlsFiles& files) {
  if (auto checked = net::LoadServerContext(files); !checked.ok()) return checked.status();
  return std::shared_ptr<CertificateProviderInterface>(
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          files.key_file, files.cert_file, files.ca_file, kTlsRefreshSeconds));
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
