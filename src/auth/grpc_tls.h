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

#include "meridian/status.h"
#include "net/tls_files.h"

namespace meridian::auth {

// How often the certificate files are read again: gRPC's minimum.
inline constexpr unsigned kTlsRefreshSeconds = 1;

// The files, watched (one provider serves every credential of a node: one watcher thread).
// The watcher only logs a bad file, so they are checked first, as the HTTP server loads them
// (net::LoadServerContext): kInvalidArgument naming the file that a handshake could not use.
Result<std::shared_ptr<grpc::experimental::CertificateProviderInterface>> WatchTlsFiles(
    const net::TlsFiles& files);

// Mutual TLS, server side (the replication port): a client must present a certificate chaining
// to the CA whose subject CN is one of `common_names` (the deployment's regions); anything else
// fails the handshake.
std::shared_ptr<grpc::ServerCredentials> MutualTlsServerCredentials(
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider,
    std::set<std::string> common_names);

// Mutual TLS, client side (dialling a peer region): presents this node's certificate and accepts
// the server only with a certificate chaining to the CA whose subject CN is `common_name` (the
// region dialled). The channel's arguments should name it too (SetSslTargetNameOverride), so that
// the handshake asks for the region rather than the dialled address.
std::shared_ptr<grpc::ChannelCredentials> MutualTlsChannelCredentials(
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider,
    const std::string& common_name);

// Server-side TLS (the client gRPC API): no client certificate is asked for; clients
// authenticate with tokens.
std::shared_ptr<grpc::ServerCredentials> TlsServerCredentials(
    std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider);

// The subject CN of the certificate the client of a call presented; nullopt without one.
std::optional<std::string> PeerCommonName(const grpc::ServerContext& context);

}  // namespace meridian::auth
