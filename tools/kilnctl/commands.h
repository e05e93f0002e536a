// kilnctl's subcommands.  Each command group lives in its own cmd_<group>.cc and exposes one
// Add<Group>Commands function that registers its CLI11 subcommands on the root app; main.cc
// calls them all.  To add a group (build, du, prune, image import, ...): write
// cmd_<group>.cc, declare its Add function here, call it from main.cc and list the file in
// CMakeLists.txt.
//
// A command reports its outcome through Context::exit_code (set by its callback), not through
// exceptions.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kiln::registry {
class CredentialSource;
}

namespace kiln::tools::kilnctl {

// Global flags and the command's outcome.
struct Context {
  int exit_code = 0;
  std::string root = "/var/lib/kiln";            // --root: the state directory
  std::vector<std::string> insecure_registries;  // --insecure-registry: plain HTTP hosts
  int max_parallelism = 0;                       // --max-parallelism: RUN steps at once
  std::vector<std::string> registry_auth;        // --registry-auth HOST=USER:PASSWORD (secret)
  std::vector<std::string> registry_tokens;      // --registry-token HOST=TOKEN (secret)
  std::vector<std::string> secrets;              // CommandLineSecrets(): never printed by Report
};

// Prints "kilnctl: <message>" (ctx.secrets redacted) to stderr and sets the exit code when
// `status` is an error.
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

// `kilnctl image inspect|copy|push|pull` (cmd_remote.cc); call after AddImageCommands.
void AddRemoteImageCommands(CLI::App& app, Context& ctx);

// Adds --registry-auth HOST=USER:PASSWORD and --registry-token HOST=TOKEN to `cmd`
// (registry_flags.cc, as the two functions below).
void AddRegistryCredentialFlags(CLI::App& cmd, std::vector<std::string>& auth,
                                std::vector<std::string>& tokens);

// The credentials those flags give (the global ones in ctx, then the command's own, which win),
// or nullptr when none was given.  Errors never show a flag's value.
absl::StatusOr<std::shared_ptr<registry::CredentialSource>> FlagCredentials(
    const Context& ctx, const std::vector<std::string>& auth,
    const std::vector<std::string>& tokens);

// The client's credentials, as buildctl's session offers them: the flags' (FlagCredentials),
// then those of ~/.docker/config.json ($DOCKER_CONFIG); nullptr when there are none.  A build
// sends them with the request, so every registry client of the build (image resolution, pulls,
// pushes, registry.insecure's own) uses the same ones.
absl::StatusOr<std::shared_ptr<registry::CredentialSource>> RequestCredentials(
    const Context& ctx, const std::vector<std::string>& auth,
    const std::vector<std::string>& tokens);

// What on the command line may be secret: each --registry-auth / --registry-token value, its
// password or token part and, when the value has no '=' (or nothing after it), the argument
// after it: a credential typed with a space for '=' ends up there, and the parser then quotes
// it as unexpected.
std::vector<std::string> CommandLineSecrets(int argc, const char* const* argv);

// `text` with every occurrence of each secret replaced by "<redacted>".
std::string RedactSecrets(std::string text, const std::vector<std::string>& secrets);

}  // namespace kiln::tools::kilnctl
