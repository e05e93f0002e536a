// Running a program to completion for the end-to-end tests: argv, extra environment, captured
// stdout and stderr, a deadline.  The child is started by posix_spawn, owned by the call, and
// killed by its PID when the deadline passes.
//
// Thread-safety: RunProcess may be called from several threads.
#pragma once

#include <string>
#include <vector>

namespace kiln::registry_e2e {

struct ProcessResult {
  int exit_code = -1;  // -1: did not start, was killed, or died of a signal
  std::string out;
  std::string err;
  // "exit 1" plus stderr, for assertion messages.
  std::string Describe() const;
};

struct ProcessOptions {
  std::vector<std::string> env;  // "K=V" entries added to (or replacing those of) our environment
  std::string stdin_data;
  int timeout_seconds = 600;
};

ProcessResult RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// `/bin/sh -c cmd`.
ProcessResult Sh(const std::string& cmd, const ProcessOptions& options = {});

}  // namespace kiln::registry_e2e
