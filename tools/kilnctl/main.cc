// kilnctl: the Kiln client.  Subcommands are registered by their groups (commands.h).
#include <cstdio>
#include <sstream>

#include "CLI/CLI.hpp"
#include "base/strings.h"
#include "tools/kilnctl/commands.h"

namespace kiln::tools::kilnctl {

bool Report(Context& ctx, const absl::Status& status) {
  if (status.ok()) return true;
  std::string message = RedactSecrets(std::string(status.message()), ctx.secrets);
  std::fprintf(stderr, "kilnctl: %s\n", message.c_str());
  ctx.exit_code = 1;
  return false;
}

}  // namespace kiln::tools::kilnctl

int main(int argc, char** argv) {
  kiln::tools::kilnctl::Context ctx;
  ctx.secrets = kiln::tools::kilnctl::CommandLineSecrets(argc, argv);
  CLI::App app{"kilnctl: client of the Kiln build engine (BuildKit-compatible)", "kilnctl"};
  app.require_subcommand(1);
  app.add_option("--root", ctx.root, "State directory of the in-process engine")
      ->capture_default_str();
  app.add_option("--insecure-registry", ctx.insecure_registries,
                 "Registry host[:port] to reach over plain HTTP (repeatable)");
  app.add_option("--max-parallelism", ctx.max_parallelism, "RUN steps at once (0: one per core)");
  kiln::tools::kilnctl::AddRegistryCredentialFlags(app, ctx.registry_auth, ctx.registry_tokens);
  kiln::tools::kilnctl::AddBuildCommands(app, ctx);
  kiln::tools::kilnctl::AddStorageCommands(app, ctx);
  kiln::tools::kilnctl::AddImageCommands(app, ctx);
  kiln::tools::kilnctl::AddRemoteImageCommands(app, ctx);
  kiln::tools::kilnctl::AddDebugCommands(app, ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 quotes arguments it did not expect, which may be a mistyped credential.
    std::ostringstream out, err;
    int code = app.exit(e, out, err);
    std::fputs(kiln::tools::kilnctl::RedactSecrets(out.str(), ctx.secrets).c_str(), stdout);
    std::fputs(kiln::tools::kilnctl::RedactSecrets(err.str(), ctx.secrets).c_str(), stderr);
    return code;
  }
  return ctx.exit_code;
}
