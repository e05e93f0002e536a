// Opening the in-process engine from kilnctl's global flags.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "engine/control/engine.h"
#include "tools/kilnctl/commands.h"

namespace kiln::tools::kilnctl {

// The engine on ctx.root, with registry access (plain HTTP for --insecure-registry hosts and,
// as in BuildKit, localhost) and the credentials of ~/.docker/config.json when it exists.
absl::StatusOr<std::unique_ptr<engine::Engine>> OpenEngine(const Context& ctx);

}  // namespace kiln::tools::kilnctl
