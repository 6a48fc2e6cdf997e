// TempDir: a scratch directory for a test, removed with everything in it on destruction; and
// ReadFile. Kept apart from the process helpers so unit tests link nothing else.
#pragma once

#include <string>

namespace meridian::testing {

// A directory under $TMPDIR (or /tmp) removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The whole contents of the file at `path` (bytes as they are; empty when it cannot be read).
std::string ReadFile(const std::string& path);

}  // namespace meridian::testing
