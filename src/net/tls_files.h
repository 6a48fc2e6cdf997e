// The files of a node's [tls] (docs/security.md), as the config names them and every TLS user
// (the HTTP server, the gRPC API, replication) reads them. No TLS library here.
#pragma once

#include <string>

namespace meridian::net {

struct TlsFiles {
  std::string cert_file;  // this node's certificate chain (PEM), leaf first; its CN is the region
  std::string key_file;   // its private key (PEM)
  std::string ca_file;    // the deployment's CA (PEM): verifies peers and, for clients, the node
  bool enabled() const { return !cert_file.empty(); }
};

}  // namespace meridian::net
