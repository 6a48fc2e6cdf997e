// gRPC credentials for a node's [tls] (docs/security.md): mutual TLS between regions on the
// replication port, and server-side TLS on the client gRPC API.
//
// Certificates are read by gRPC's FileWatcherCertificateProvider, which looks at the files again
// every kTlsRefreshSeconds: replacing a region's certificate, key or CA files takes effect for new
// connections within that time, without a restart. Replace each file atomically (write a new one,
// rename it over the old), the key before its certificate — `meridian cert create --force` does
// both. Connections already open keep the certificates they were made with.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/server_context.h>

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace meridian::auth {

// How often the certificate files are read again: gRPC's minimum.
inline constexpr unsigned kTlsRefreshSeconds = 1;

struct TlsFiles {
  std::string cert_file;  // this node's certificate chain (PEM)
  std::string key_file;   // its private key (PEM)
  std::string ca_file;    // the deployment's CA (PEM)
};

// The files, watched (one provider serves every credential of a node: one watcher thread).
std::shared_ptr<grpc::experimental::CertificateProviderInterface> WatchTlsFiles(
    const TlsFiles& files);

// Reads the three files and checks that they are PEM a TLS handshake could use: the certificate
// parses, the key parses and belongs to it, the CA file holds at least one certificate. The
// watcher only logs a bad file; a node checks at start that it has usable ones. Empty when good,
// else why not.
std::string CheckTlsFiles(const TlsFiles& files);

// Mutual TLS, server side (the replication port): a client must present a certificate chaining
// to the CA whose subject CN is one of `common_names` (the deployment's regions); anything else
// fails the handshake.
std::shared_ptr<grpc::ServerCredentials> MutualTlsServerCredentials(
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider,
    std::set<std::string> common_names);

// Mutual TLS, client side (dialling a peer region): presents this node's certificate and accepts
// the server only with a certificate chaining to the CA whose subject CN is `common_name` (the
// region dialled). The channel needs ChannelArgumentsFor(common_name) too.
std::shared_ptr<grpc::ChannelCredentials> MutualTlsChannelCredentials(
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider,
    const std::string& common_name);
// Sets the name the TLS handshake asks for (SNI) to `common_name` instead of the dialled
// address.
void SetTlsTargetName(grpc::ChannelArguments* arguments, const std::string& common_name);

// Server-side TLS (the client gRPC API): no client certificate is asked for; clients
// authenticate with tokens.
std::shared_ptr<grpc::ServerCredentials> TlsServerCredentials(
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider);

// The subject CN of the certificate the client of a call presented; nullopt without one.
std::optional<std::string> PeerCommonName(const grpc::ServerContext& context);

}  // namespace meridian::auth
