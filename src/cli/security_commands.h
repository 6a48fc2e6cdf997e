// `meridian token`: the secret that signs bearer tokens, and tokens signed with it; `meridian ca
// create` and `meridian cert create`: the deployment's CA and region certificates
// (docs/security.md, docs/cli.md).
#pragma once

#include <CLI/CLI.hpp>

namespace meridian::cli {

// Adds the commands to `app`.
void AddSecurityCommands(CLI::App& app);
// After parsing: the exit code of the command that ran, or -1 when none of these was given.
int RunSecurityCommands();

}  // namespace meridian::cli
