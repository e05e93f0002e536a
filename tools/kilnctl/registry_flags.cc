// kilnctl's registry credential flags: --registry-auth HOST=USER:PASSWORD and
// --registry-token HOST=TOKEN, global or after a command, combined with ~/.docker/config.json.
// A token is an OAuth2 refresh token traded at the registry's token realm (Docker's
// identitytoken; an ACR refresh token may equally be given as
// --registry-auth HOST=00000000-0000-0000-0000-000000000000:TOKEN); a GHCR personal access token
// is a password: --registry-auth ghcr.io=USER:TOKEN.  Values are never printed, also not in
// errors about malformed flags.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "registry/credentials.h"
#include "tools/kilnctl/commands.h"

namespace kiln::tools::kilnctl {
namespace {

// A host as a reference names it: "https://index.docker.io/v1/" -> "docker.io".
std::string FlagHost(std::string_view text) {
  std::string host = registry::NormalizeConfigHost(text);
  if (host == "index.docker.io" || host == "registry-1.docker.io") return "docker.io";
  return host;
}

absl::Status AddAuthFlag(const std::string& flag, registry::StaticCredentials& out) {
  size_t eq = flag.find('=');
  size_t colon = eq == std::string::npos ? std::string::npos : flag.find(':', eq + 1);
  if (eq == std::string::npos || eq == 0 || colon == std::string::npos || colon == eq + 1) {
    // Not even the host is shown: a mistyped flag may hold the secret anywhere.
    return absl::InvalidArgumentError(
        "--registry-auth: expected HOST=USER:PASSWORD (the value is not shown)");
  }
  registry::Credential c;
  c.username = flag.substr(eq + 1, colon - eq - 1);
  c.password = flag.substr(colon + 1);
  out.Set(FlagHost(std::string_view(flag).substr(0, eq)), std::move(c));
  return absl::OkStatus();
}

absl::Status AddTokenFlag(const std::string& flag, registry::StaticCredentials& out) {
  size_t eq = flag.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == flag.size()) {
    return absl::InvalidArgumentError(
        "--registry-token: expected HOST=TOKEN (the value is not shown)");
  }
  registry::Credential c;
  c.identity_token = flag.substr(eq + 1);
  out.Set(FlagHost(std::string_view(flag).substr(0, eq)), std::move(c));
  return absl::OkStatus();
}

// The credentials of ~/.docker/config.json, or nullptr when there is no such file.
absl::StatusOr<std::shared_ptr<registry::CredentialSource>> DockerConfigSource() {
  auto text = ReadFileToString(registry::DockerConfigPath());
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return nullptr;
    return Annotate(text.status(), "read the Docker config");
  }
  KILN_ASSIGN_OR_RETURN(registry::DockerConfig parsed, registry::ParseDockerConfig(*text));
  return std::shared_ptr<registry::CredentialSource>(
      std::make_shared<registry::DockerConfigCredentials>(std::move(parsed),
                                                          registry::NewExecHelperRunner()));
}

}  // namespace

void AddRegistryCredentialFlags(CLI::App& cmd, std::vector<std::string>& auth,
                                std::vector<std::string>& tokens) {
  cmd.add_option("--registry-auth", auth,
                 "Registry credentials, used before ~/.docker/config.json's (repeatable)")
      ->type_name("HOST=USER:PASSWORD")
      ->allow_extra_args(false);
  cmd.add_option("--registry-token", tokens,
                 "OAuth2 refresh/identity token, traded at the registry's token realm "
                 "(repeatable)")
      ->type_name("HOST=TOKEN")
      ->allow_extra_args(false);
}

absl::StatusOr<std::shared_ptr<registry::CredentialSource>> FlagCredentials(
    const Context& ctx, const std::vector<std::string>& auth,
    const std::vector<std::string>& tokens) {
  if (ctx.registry_auth.empty() && ctx.registry_tokens.empty() && auth.empty() && tokens.empty()) {
    return nullptr;
  }
  auto creds = std::make_shared<registry::StaticCredentials>();
  // The command's own flags come last, so they win over the global ones for the same host.
  for (const auto* list : {&ctx.registry_auth, &auth}) {
    for (const std::string& a : *list) KILN_RETURN_IF_ERROR(AddAuthFlag(a, *creds));
  }
  for (const auto* list : {&ctx.registry_tokens, &tokens}) {
    for (const std::string& t : *list) KILN_RETURN_IF_ERROR(AddTokenFlag(t, *creds));
  }
  return std::shared_ptr<registry::CredentialSource>(std::move(creds));
}

absl::StatusOr<std::shared_ptr<registry::CredentialSource>> RequestCredentials(
    const Context& ctx, const std::vector<std::string>& auth,
    const std::vector<std::string>& tokens) {
  KILN_ASSIGN_OR_RETURN(auto flags, FlagCredentials(ctx, auth, tokens));
  KILN_ASSIGN_OR_RETURN(auto config, DockerConfigSource());
  if (flags == nullptr) return config;
  if (config == nullptr) return flags;
  return std::shared_ptr<registry::CredentialSource>(std::make_shared<registry::ChainCredentials>(
      std::vector<std::shared_ptr<registry::CredentialSource>>{flags, config}));
}

std::vector<std::string> CommandLineSecrets(int argc, const char* const* argv) {
  std::vector<std::string> out;
  // Returns whether the value is malformed in the way a space typed for '=' makes it.
  auto add_value = [&out](std::string_view value) {
    out.emplace_back(value);
    size_t eq = value.find('=');
    if (eq == std::string_view::npos) return true;
    std::string_view rest = value.substr(eq + 1);  // USER:PASSWORD or TOKEN
    out.emplace_back(rest);
    size_t colon = rest.find(':');
    if (colon != std::string_view::npos) out.emplace_back(rest.substr(colon + 1));
    return rest.empty();
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    for (std::string_view flag : {"--registry-auth", "--registry-token"}) {
      int next = 0;  // where the argument after the value is
      if (arg == flag && i + 1 < argc) {
        next = add_value(argv[i + 1]) ? i + 2 : 0;
      } else if (arg.size() > flag.size() + 1 && arg.substr(0, flag.size()) == flag &&
                 arg[flag.size()] == '=') {
        next = add_value(arg.substr(flag.size() + 1)) ? i + 1 : 0;
      }
      if (next > 0 && next < argc) out.emplace_back(argv[next]);
    }
  }
  // Longest first, so a value is replaced whole before its parts; tiny strings would only
  // blot out ordinary words.
  std::erase_if(out, [](const std::string& s) { return s.size() < 4; });
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

std::string RedactSecrets(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    for (size_t at = text.find(secret); at != std::string::npos;
         at = text.find(secret, at + std::strlen("<redacted>"))) {
      text.replace(at, secret.size(), "<redacted>");
    }
  }
  return text;
}

}  // namespace kiln::tools::kilnctl
