#include "auth/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace meridian::auth {

Status WriteFile(const std::string& path, const std::string& bytes, mode_t mode, bool replace) {
  const std::string target = replace ? path + ".tmp" : path;
  if (replace) ::unlink(target.c_str());
  const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    if (errno == EEXIST) return Status(StatusCode::kInvalidArgument, path + " already exists");
    return Status(StatusCode::kUnavailable,
                  "cannot create " + target + ": " + std::strerror(errno));
  }
  bool ok = ::fchmod(fd, mode) == 0;  // the umask does not loosen nor tighten it
  ok = ok && ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  ok = ok && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    ::unlink(target.c_str());
    return Status(StatusCode::kUnavailable, "cannot write " + target);
  }
  if (replace && ::rename(target.c_str(), path.c_str()) != 0) {
    ::unlink(target.c_str());
    return Status(StatusCode::kUnavailable, "cannot replace " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace meridian::auth
