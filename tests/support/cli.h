// Running the `meridian` command line under test.
#pragma once

#include <string>

namespace meridian::testing {

// The output (stdout and stderr) and exit code of `meridian <arguments>`, run by the shell.
std::string RunCli(const std::string& arguments, int* exit_code);

}  // namespace meridian::testing
