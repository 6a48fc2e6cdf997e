// SecretFile: the deployment's JWT secrets as `[auth] jwt_secret_file` holds them (one per line,
// auth::SecretsFromFile), re-read when the file changes so that secrets rotate without a restart:
// add the new secret as the first line, re-mint tokens, and drop the old line once its tokens
// have expired (docs/security.md#rotating-the-secret).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "meridian/status.h"
#include "net/file_watch.h"

namespace meridian::auth {

class SecretFile {
 public:
  using Secrets = std::vector<std::string>;

  // Reads `path`: kInvalidArgument naming the file when it is missing, unreadable, or holds no
  // secret or one that is too short. A node with [auth] refuses to start on that error.
  static Result<std::unique_ptr<SecretFile>> Open(std::string path);

  // The secrets now. At most once a second (from any thread) the file is checked (net::FileWatch)
  // and, when it changed, read again; a read that fails keeps the secrets held and logs an error,
  // so a half-written or broken file never locks every client out.
  std::shared_ptr<const Secrets> Current();

  // Reads the file now, whether or not it changed: the error, keeping the secrets held, when it
  // cannot be read or holds a bad secret.
  Status Reload();

  const std::string& path() const { return path_; }

 private:
  explicit SecretFile(std::string path) : path_(std::move(path)), watch_({path_}) {}
  // Reads and parses the file (noting it in watch_ first).
  Result<Secrets> Read();

  const std::string path_;
  std::mutex mutex_;
  net::FileWatch watch_;                    // mutex_
  std::shared_ptr<const Secrets> secrets_;  // mutex_
};

}  // namespace meridian::auth
