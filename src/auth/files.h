// Files that hold secrets (keys, token secrets, tokens): written whole, with their mode set as
// asked whatever the umask, synced, and never half-replaced.
#pragma once

#include <sys/types.h>

#include <string>

#include "meridian/status.h"

namespace meridian::auth {

// Writes `bytes` to `path` with `mode`: a new file (O_EXCL: kInvalidArgument "PATH already
// exists" when it does) unless `replace`, when it is written beside the old one and renamed over
// it, so that a reader (a node watching its certificate) never sees half of one.
Status WriteFile(const std::string& path, const std::string& bytes, mode_t mode, bool replace);

}  // namespace meridian::auth
