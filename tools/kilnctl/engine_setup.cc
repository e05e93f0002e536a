#include "tools/kilnctl/engine_setup.h"

#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "registry/credentials.h"

namespace kiln::tools::kilnctl {

absl::StatusOr<std::unique_ptr<engine::Engine>> OpenEngine(const Context& ctx) {
  engine::EngineOptions options;
  options.worker.root = ctx.root;
  options.max_parallelism = static_cast<size_t>(std::max(0, ctx.max_parallelism));
  registry::RegistryOptions reg;
  for (const std::string& host : ctx.insecure_registries) reg.hosts[host].plain_http = true;
  options.registry = reg;
  auto config = ReadFileToString(registry::DockerConfigPath());
  if (config.ok()) {
    KILN_ASSIGN_OR_RETURN(registry::DockerConfig parsed, registry::ParseDockerConfig(*config));
    options.registry_credentials = std::make_shared<registry::DockerConfigCredentials>(
        std::move(parsed), registry::NewExecHelperRunner());
  }
  return engine::Engine::Open(std::move(options));
}

}  // namespace kiln::tools::kilnctl
