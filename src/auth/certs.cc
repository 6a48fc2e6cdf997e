#include "auth/certs.h"

#include "auth/files.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>

namespace meridian::auth {
namespace {

struct Free {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
  void operator()(X509* cert) const { X509_free(cert); }
  void operator()(BIO* bio) const { BIO_free(bio); }
  void operator()(BIGNUM* bn) const { BN_free(bn); }
  void operator()(X509_EXTENSION* extension) const { X509_EXTENSION_free(extension); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;
using Bio = std::unique_ptr<BIO, Free>;

Status Invalid(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}

// What OpenSSL said last (its error queue, emptied).
std::string OpensslError() {
  std::string out;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    out += (out.empty() ? "" : "; ") + std::string(buffer);
  }
  return out.empty() ? "unknown error" : out;
}

Status Failed(const std::string& what) {
  return Status(StatusCode::kInternal, what + ": " + OpensslError());
}

Status CheckDays(int days) {
  if (days < 1 || days > kDaysMax) {
    return Invalid("--days must be 1 to " + std::to_string(kDaysMax) + ", not " +
                   std::to_string(days));
  }
  return Status::Ok();
}

// A region name goes into the CN and a DNS name: letters, digits, '-', '_' and '.', as a config's
// [[regions]] name would be.
bool ValidRegionName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

bool IsIpAddress(const std::string& host) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// A DNS name (a leading "*." wildcard allowed): nothing that could end the SAN list early.
bool ValidDnsName(const std::string& host) {
  if (host.empty() || host.size() > 253) return false;
  const std::string rest = host.rfind("*.", 0) == 0 ? host.substr(2) : host;
  if (rest.empty() || rest.front() == '.' || rest.back() == '.') return false;
  for (char c : rest) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
      return false;
    }
  }
  return true;
}

Result<Key> NewKey() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return Failed("generating an EC P-256 key");
  return key;
}

// A random positive 127-bit serial (RFC 5280: unique per CA, at most 20 octets).
Status SetSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return Failed("random serial");
  bytes[0] &= 0x7f;
  bytes[0] |= 0x40;  // never zero, never negative
  std::unique_ptr<BIGNUM, Free> number(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (!number || BN_to_ASN1_INTEGER(number.get(), X509_get_serialNumber(cert)) == nullptr) {
    return Failed("serial");
  }
  return Status::Ok();
}

Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, Free> extension(
      X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str()));
  if (!extension || X509_add_ext(cert, extension.get(), -1) != 1) {
    return Failed(std::string("certificate extension ") + OBJ_nid2sn(nid) + " = " + value);
  }
  return Status::Ok();
}

// A certificate for `key` with subject CN `common_name`, valid from now for `days`; signed
// below (issuer set by the caller).
Result<Cert> NewCert(EVP_PKEY* key, const std::string& common_name, int days) {
  Cert cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return Failed("new certificate");
  if (Status status = SetSerial(cert.get()); !status.ok()) return status;
  // A minute back: a peer whose clock is a little behind still accepts it at once.
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86'400) ==
          nullptr) {
    return Failed("validity");
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1) {
    return Failed("subject CN '" + common_name + "'");
  }
  if (X509_set_pubkey(cert.get(), key) != 1) return Failed("public key");
  return cert;
}

std::string PemOf(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string PemOf(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

Status Refuse(const std::string& path) {
  return Status(StatusCode::kInvalidArgument, path + " already exists (--force replaces it)");
}

// Writes a key and its certificate, the key first (a watcher that sees a new certificate finds
// its key already there); refuses before writing anything when either exists and !force.
Status WritePair(const std::string& key_file, const std::string& cert_file, EVP_PKEY* key,
                 X509* cert, bool force) {
  for (const std::string& path : {key_file, cert_file}) {
    if (!force && std::filesystem::exists(path)) return Refuse(path);
  }
  if (Status status = WriteFile(key_file, PemOf(key), 0600, force); !status.ok()) return status;
  return WriteFile(cert_file, PemOf(cert), 0644, force);
}

Status MakeDirectory(const std::string& dir, std::filesystem::perms perms) {
  std::error_code error;
  if (std::filesystem::is_directory(dir, error)) return Status::Ok();
  if (!std::filesystem::create_directories(dir, error) || error) {
    return Status(StatusCode::kUnavailable,
                  "cannot create the directory " + dir + ": " + error.message());
  }
  std::filesystem::permissions(dir, perms, error);
  return Status::Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  if (!file) return Status(StatusCode::kNotFound, "cannot read " + path);
  return contents.str();
}

}  // namespace

CaFiles CaFilesIn(const std::string& dir) {
  const std::filesystem::path path(dir);
  return {(path / "ca.pem").string(), (path / "ca-key.pem").string()};
}

Result<CaFiles> CreateCa(const CaOptions& options) {
  if (options.dir.empty()) return Invalid("give the CA's directory (--dir)");
  if (options.name.empty() || options.name.size() > 64) {
    return Invalid("the CA's name must be 1 to 64 characters");
  }
  if (Status status = CheckDays(options.days); !status.ok()) return status;
  const CaFiles files = CaFilesIn(options.dir);
  for (const std::string& path : {files.key_file, files.cert_file}) {
    if (!options.force && std::filesystem::exists(path)) {
      return Status(StatusCode::kInvalidArgument,
                    path +
                        " already exists: a deployment has one CA (--force replaces it, and "
                        "every certificate it signed stops verifying)");
    }
  }
  if (Status status = MakeDirectory(options.dir, std::filesystem::perms::owner_all); !status.ok()) {
    return status;
  }
  auto key = NewKey();
  if (!key.ok()) return key.status();
  auto cert = NewCert(key->get(), options.name, options.days);
  if (!cert.ok()) return cert.status();
  X509* c = cert->get();
  if (X509_set_issuer_name(c, X509_get_subject_name(c)) != 1) return Failed("issuer");
  for (const auto& [nid, value] : std::initializer_list<std::pair<int, std::string>>{
           {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
           {NID_key_usage, "critical,keyCertSign,cRLSign"},
           {NID_subject_key_identifier, "hash"},
           {NID_authority_key_identifier, "keyid:always"}}) {
    if (Status status = AddExtension(c, c, nid, value); !status.ok()) return status;
  }
  if (X509_sign(c, key->get(), EVP_sha256()) == 0) return Failed("signing the CA certificate");
  if (Status status = WritePair(files.key_file, files.cert_file, key->get(), c, options.force);
      !status.ok()) {
    return status;
  }
  return files;
}

Result<CertFiles> CreateCert(const CertOptions& options) {
  if (options.ca_dir.empty()) return Invalid("give the CA's directory (--ca-dir)");
  if (!ValidRegionName(options.region)) {
    return Invalid("the region name must be 1 to 63 letters, digits, '-', '_' or '.', not '" +
                   options.region + "'");
  }
  if (Status status = CheckDays(options.days); !status.ok()) return status;
  std::vector<std::string> names = {"DNS:" + options.region};
  std::vector<std::string> hosts = options.hosts;
  if (options.default_hosts) {
    for (const char* host : {"localhost", "127.0.0.1", "::1"}) hosts.emplace_back(host);
  }
  for (const std::string& host : hosts) {
    std::string name;
    if (IsIpAddress(host)) {
      name = "IP:" + host;
    } else if (ValidDnsName(host)) {
      name = "DNS:" + host;
    } else {
      return Invalid("--host '" + host + "' is neither an IP address nor a DNS name");
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }

  const CaFiles ca_files = CaFilesIn(options.ca_dir);
  auto ca_pem = ReadFile(ca_files.cert_file);
  if (!ca_pem.ok()) {
    return Status(StatusCode::kNotFound, "no CA in " + options.ca_dir + ": " +
                                             ca_pem.status().message() +
                                             " (meridian ca create --dir " + options.ca_dir + ")");
  }
  auto ca_key_pem = ReadFile(ca_files.key_file);
  if (!ca_key_pem.ok()) {
    return Status(StatusCode::kNotFound, "the CA's key: " + ca_key_pem.status().message() +
                                             " (certificates are signed where the CA's key is)");
  }
  Bio ca_bio(BIO_new_mem_buf(ca_pem->data(), static_cast<int>(ca_pem->size())));
  Cert ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
  if (!ca) return Invalid(ca_files.cert_file + " holds no PEM certificate");
  Bio ca_key_bio(BIO_new_mem_buf(ca_key_pem->data(), static_cast<int>(ca_key_pem->size())));
  Key ca_key(PEM_read_bio_PrivateKey(ca_key_bio.get(), nullptr, nullptr, nullptr));
  if (!ca_key) return Invalid(ca_files.key_file + " holds no PEM private key");
  if (X509_check_private_key(ca.get(), ca_key.get()) != 1) {
    ERR_clear_error();
    return Invalid(ca_files.key_file + " is not the key of " + ca_files.cert_file);
  }

  const std::string out_dir = options.out_dir.empty() ? options.ca_dir : options.out_dir;
  const CertFiles files{(std::filesystem::path(out_dir) / (options.region + ".pem")).string(),
                        (std::filesystem::path(out_dir) / (options.region + "-key.pem")).string()};
  for (const std::string& path : {files.key_file, files.cert_file}) {
    if (!options.force && std::filesystem::exists(path)) return Refuse(path);
  }
  if (Status status = MakeDirectory(out_dir, std::filesystem::perms::owner_all); !status.ok()) {
    return status;
  }

  auto key = NewKey();
  if (!key.ok()) return key.status();
  auto cert = NewCert(key->get(), options.region, options.days);
  if (!cert.ok()) return cert.status();
  X509* c = cert->get();
  if (X509_set_issuer_name(c, X509_get_subject_name(ca.get())) != 1) return Failed("issuer");
  std::string alt_names;
  for (const std::string& name : names) alt_names += (alt_names.empty() ? "" : ",") + name;
  for (const auto& [nid, value] : std::initializer_list<std::pair<int, std::string>>{
           {NID_basic_constraints, "critical,CA:FALSE"},
           {NID_key_usage, "critical,digitalSignature"},
           {NID_ext_key_usage, "serverAuth,clientAuth"},
           {NID_subject_alt_name, alt_names},
           {NID_subject_key_identifier, "hash"},
           {NID_authority_key_identifier, "keyid:always"}}) {
    if (Status status = AddExtension(c, ca.get(), nid, value); !status.ok()) return status;
  }
  if (X509_sign(c, ca_key.get(), EVP_sha256()) == 0) return Failed("signing the certificate");
  if (Status status = WritePair(files.key_file, files.cert_file, key->get(), c, options.force);
      !status.ok()) {
    return status;
  }
  return files;
}

}  // namespace meridian::auth
