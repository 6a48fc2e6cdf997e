// Scenario scripts: readable steps run against a Simulation, each followed by its expected output
// (the style of etcd-io/raft's datadriven tests). A script is a sequence of cases
//
//   write us k/1 a=1
//   ----
//   us:1
//
// separated by blank lines; lines starting with '#' are comments. docs/testing.md lists the
// commands. Running a script yields the same text with every case's actual output, so a
// mismatch is a diff and rewriting the expected output is writing that text back.
#pragma once

#include <string>
#include <vector>

namespace meridian::sim {

struct ScriptResult {
  std::string rewritten;                // the script with every case's actual output
  std::vector<std::string> mismatches;  // per differing case: where, the step, expected, actual
};

// `name` labels mismatches (the file name).
ScriptResult RunScript(const std::string& name, const std::string& text);

}  // namespace meridian::sim
