// kilnctl's subcommands.  Each command group lives in its own cmd_<group>.cc and exposes one
// Add<Group>Commands function that registers its CLI11 subcommands on the root app; main.cc
// calls them all.  To add a group (build, du, prune, image import, ...): write
// cmd_<group>.cc, declare its Add function here, call it from main.cc and list the file in
// CMakeLists.txt.
//
// A command reports its outcome through Context::exit_code (set by its callback), not through
// exceptions.
#pragma once

#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace kiln::tools::kilnctl {

// Global flags and the command's outcome.
struct Context {
  int exit_code = 0;
  std::string root = "/var/lib/kiln";            // --root: the state directory
  std::vector<std::string> insecure_registries;  // --insecure-registry: plain HTTP hosts
  int max_parallelism = 0;                       // --max-parallelism: RUN steps at once
};

// Prints "kilnctl: <message>" to stderr and sets the exit code when `status` is an error.
// Returns status.ok().
bool Report(Context& ctx, const absl::Status& status);

// `kilnctl debug ...` (cmd_debug.cc): dump-llb.
void AddDebugCommands(CLI::App& app, Context& ctx);

// `kilnctl build` (cmd_build.cc).
void AddBuildCommands(CLI::App& app, Context& ctx);

// `kilnctl du`, `kilnctl prune` (cmd_du.cc).
void AddStorageCommands(CLI::App& app, Context& ctx);

// `kilnctl image import|ls` (cmd_image.cc).
void AddImageCommands(CLI::App& app, Context& ctx);

}  // namespace kiln::tools::kilnctl
