// The client subcommands of `meridian` (docs/cli.md): put, patch, incr, del, get, scan, watch,
// status, conflicts — each through meridian::Client, so region choice, failover, sessions and
// idempotent retries are those of the client library.
#pragma once

#include <CLI/CLI.hpp>

namespace meridian::cli {

// Adds the subcommands to `app`; after parsing, RunClientCommands runs the one given (returns
// -1 when none of them was).
void AddClientCommands(CLI::App& app);
int RunClientCommands();

}  // namespace meridian::cli
