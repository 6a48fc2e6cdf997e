#include "auth/secret_file.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <time.h>

#include <fstream>
#include <sstream>

#include "auth/token.h"

namespace meridian::auth {
namespace {

constexpr auto kCheckInterval = std::chrono::seconds(1);

int64_t Nanoseconds(const struct timespec& time) {
  return static_cast<int64_t>(time.tv_sec) * 1'000'000'000 + time.tv_nsec;
}

// File times come from a coarse clock: a file rewritten in place (same size) within a few
// milliseconds of a read may keep its mtime. So a file modified this recently is read again at
// the next check even when its stat looks the same.
constexpr int64_t kRacyNs = 2'000'000'000;

bool Racy(int64_t mtime_ns) {
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return Nanoseconds(now) - mtime_ns < kRacyNs;
}

}  // namespace

Result<std::unique_ptr<SecretFile>> SecretFile::Open(std::string path) {
  std::unique_ptr<SecretFile> file(new SecretFile(std::move(path)));
  Signature signature;
  auto secrets = file->Read(&signature);
  if (!secrets.ok()) return secrets.status();
  file->secrets_ = std::make_shared<const Secrets>(std::move(secrets).value());
  file->signature_ = signature;
  if (Racy(signature.mtime_ns)) file->signature_.mtime_ns = -1;
  file->checked_ = std::chrono::steady_clock::now();
  return file;
}

bool SecretFile::Stat(Signature* signature) const {
  struct stat info {};
  if (::stat(path_.c_str(), &info) != 0) return false;
  *signature =
      Signature{info.st_ino, info.st_size, Nanoseconds(info.st_mtim), Nanoseconds(info.st_ctim)};
  return true;
}

Result<SecretFile::Secrets> SecretFile::Read(Signature* signature) const {
  const auto fail = [&](const std::string& why) {
    return Status(StatusCode::kInvalidArgument, "[auth] jwt_secret_file " + path_ + ": " + why);
  };
  if (!Stat(signature)) return fail("cannot be read (missing?)");
  std::ifstream file(path_, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  if (!file) return fail("cannot be read");
  auto secrets = SecretsFromFile(contents.str());
  if (!secrets.ok()) return fail(secrets.status().message());
  return secrets;
}

std::shared_ptr<const SecretFile::Secrets> SecretFile::Current() {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (now - checked_ < kCheckInterval) return secrets_;
  checked_ = now;
  Signature signature;
  // A file that vanished (an editor replacing it, say) keeps the secrets held until it is back.
  if (!Stat(&signature) || signature == signature_) return secrets_;
  auto secrets = Read(&signature);
  // Remembered even when the read failed: the error is logged once per change, not per second.
  signature_ = signature;
  if (Racy(signature.mtime_ns)) signature_.mtime_ns = -1;
  if (!secrets.ok()) {
    spdlog::error("{}; keeping the {} secret(s) read before", secrets.status().message(),
                  secrets_->size());
    return secrets_;
  }
  if (*secrets == *secrets_) return secrets_;
  spdlog::info("[auth] jwt_secret_file {} changed: {} secret(s) now accepted", path_,
               secrets->size());
  secrets_ = std::make_shared<const Secrets>(std::move(secrets).value());
  return secrets_;
}

Status SecretFile::Reload() {
  std::lock_guard lock(mutex_);
  Signature signature;
  auto secrets = Read(&signature);
  checked_ = std::chrono::steady_clock::now();
  signature_ = signature;
  if (Racy(signature.mtime_ns)) signature_.mtime_ns = -1;
  if (!secrets.ok()) return secrets.status();
  secrets_ = std::make_shared<const Secrets>(std::move(secrets).value());
  return Status::Ok();
}

}  // namespace meridian::auth
