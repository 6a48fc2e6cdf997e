#include "support/cli.h"

#include <sys/wait.h>

#include <cstdio>

#include "support/node_process.h"

namespace meridian::testing {

std::string RunCli(const std::string& arguments, int* exit_code) {
  const std::string command = std::string(MeridianBinary()) + " " + arguments + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buffer[4096];
  size_t got;
  while (pipe != nullptr && (got = fread(buffer, 1, sizeof buffer, pipe)) > 0) {
    out.append(buffer, got);
  }
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

}  // namespace meridian::testing
