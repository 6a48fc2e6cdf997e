#include "auth/secret_file.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

#include "auth/token.h"

namespace meridian::auth {

Result<std::unique_ptr<SecretFile>> SecretFile::Open(std::string path) {
  std::unique_ptr<SecretFile> file(new SecretFile(std::move(path)));
  auto secrets = file->Read();
  if (!secrets.ok()) return secrets.status();
  file->secrets_ = std::make_shared<const Secrets>(std::move(secrets).value());
  return file;
}

Result<SecretFile::Secrets> SecretFile::Read() {
  const auto fail = [&](const std::string& why) {
    return Status(StatusCode::kInvalidArgument, "[auth] jwt_secret_file " + path_ + ": " + why);
  };
  // Noted even when the read fails: the error is logged once per change, not once a second.
  watch_.Noted();
  std::ifstream file(path_, std::ios::binary);
  if (!file) return fail("cannot be read (missing?)");
  std::stringstream contents;
  contents << file.rdbuf();
  if (!file) return fail("cannot be read");
  auto secrets = SecretsFromFile(contents.str());
  if (!secrets.ok()) return fail(secrets.status().message());
  return secrets;
}

std::shared_ptr<const SecretFile::Secrets> SecretFile::Current() {
  std::lock_guard lock(mutex_);
  if (!watch_.Due()) return secrets_;
  auto secrets = Read();
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
  auto secrets = Read();
  if (!secrets.ok()) return secrets.status();
  secrets_ = std::make_shared<const Secrets>(std::move(secrets).value());
  return Status::Ok();
}

}  // namespace meridian::auth
