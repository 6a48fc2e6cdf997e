// The deployment's certificates (docs/security.md): a CA, and a certificate per region signed by
// it whose subject CN is the region's name — what [tls] names in each node's config. Made with
// OpenSSL's C API; `meridian ca create` and `meridian cert create` (docs/cli.md) are their
// command line.
//
// Keys are ECDSA P-256. Every key file is created with mode 0600. No file that exists is replaced
// unless `force` is set, and then atomically (a new file renamed over it), so that a node watching
// the files never reads half of one.
#pragma once

#include <string>
#include <vector>

#include "meridian/status.h"

namespace meridian::auth {

inline constexpr int kCaDaysDefault = 3650;
inline constexpr int kCertDaysDefault = 365;
inline constexpr int kDaysMax = 36500;

struct CaOptions {
  std::string dir;                              // created when missing
  std::string name = "Meridian deployment CA";  // the CA's subject CN
  int days = kCaDaysDefault;
  bool force = false;  // replace an existing CA (every certificate it signed stops verifying)
};

struct CaFiles {
  std::string cert_file;  // <dir>/ca.pem: what every node's [tls] ca_file names
  std::string key_file;   // <dir>/ca-key.pem (0600): keep it off the nodes
};

// The files of the CA in `dir`.
CaFiles CaFilesIn(const std::string& dir);

// A new CA: a key and a self-signed certificate (CA:TRUE, keyCertSign and cRLSign).
Result<CaFiles> CreateCa(const CaOptions& options);

struct CertOptions {
  std::string ca_dir;              // where CreateCa wrote the CA
  std::string region;              // the subject CN and a DNS name
  std::vector<std::string> hosts;  // IP addresses and DNS names the node is reached at
  bool default_hosts = true;       // also localhost, 127.0.0.1 and ::1
  int days = kCertDaysDefault;
  std::string out_dir;  // empty: ca_dir
  bool force = false;   // replace existing files (rotation)
};

struct CertFiles {
  std::string cert_file;  // <out_dir>/<region>.pem: [tls] cert_file
  std::string key_file;   // <out_dir>/<region>-key.pem (0600): [tls] key_file
};

// A region certificate signed by the CA in ca_dir: subject CN = region; subject alternative
// names: the region, the hosts (and the default ones); usable as a TLS server and client
// (extendedKeyUsage serverAuth, clientAuth), as mutual TLS between regions needs.
Result<CertFiles> CreateCert(const CertOptions& options);

}  // namespace meridian::auth
