// kilnctl: the Kiln client.  Subcommands are registered by their groups (commands.h).
#include <cstdio>

#include "CLI/CLI.hpp"
#include "tools/kilnctl/commands.h"

int main(int argc, char** argv) {
  kiln::tools::kilnctl::Context ctx;
  CLI::App app{"kilnctl: client of the Kiln build engine (BuildKit-compatible)", "kilnctl"};
  app.require_subcommand(1);
  kiln::tools::kilnctl::AddDebugCommands(app, ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return ctx.exit_code;
}
