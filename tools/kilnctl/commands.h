// kilnctl's subcommands.  Each command group lives in its own cmd_<group>.cc and exposes one
// Add<Group>Commands function that registers its CLI11 subcommands on the root app; main.cc
// calls them all.  To add a group (build, du, prune, image import, ...): write
// cmd_<group>.cc, declare its Add function here, call it from main.cc and list the file in
// CMakeLists.txt.
//
// A command reports its outcome through Context::exit_code (set by its callback), not through
// exceptions.
#pragma once

#include "CLI/CLI.hpp"

namespace kiln::tools::kilnctl {

struct Context {
  int exit_code = 0;
};

// `kilnctl debug ...` (cmd_debug.cc): dump-llb.
void AddDebugCommands(CLI::App& app, Context& ctx);

}  // namespace kiln::tools::kilnctl
