// The Dockerfile frontend (BuildKit's `dockerfile.v0`, frontend/dockerfile/builder/build.go of
// v0.11.6): frontend attributes -> Dockerfile and .dockerignore read through the client ->
// Convert() (convert.h) -> Definition + image config.
//
//   kiln::frontends::dockerfile::DockerfileFrontend fe;
//   absl::StatusOr<llb::FrontendResult> r = fe.Build(client, opts);
//   // r->definition: the LLB to solve; r->image_config_json / metadata["containerimage.config"]
//
// What Build reads through llb::FrontendClient:
//   * ReadFile(<dockerfilekey, default "dockerfile">, <filename, default "Dockerfile">) (falling
//     back to "dockerfile" as BuildKit does) and "<filename>.dockerignore";
//   * ReadFile(<contextkey, default "context">, ".dockerignore") when no Dockerfile-specific
//     ignore file exists (the Dockerfile-specific one wins, as in BuildKit);
//   * ResolveImageConfig for every reachable base image (and docker-image:// named contexts);
//   * ReadFile(<name>, ".dockerignore") for `context:X=local:<name>` named contexts.
// The returned Definition carries the Dockerfile as its source map (with the definition of the
// dockerfile local source, as BuildKit), so errors at solve time can point into it.
//
// Frontend attributes (BuildOpts::frontend_opts), as BuildKit:
//   filename, target, build-arg:NAME, label:NAME, platform (one platform), no-cache ("" = all
//   stages, or a comma list), image-resolve-mode (default|pull|local), force-network-mode
//   (sandbox|none|host), add-hosts (CSV host=ip), hostname, shm-size (bytes), ulimit (CSV
//   name=soft[:hard]), cgroup-parent, multi-platform, contextkey, dockerfilekey,
//   context:NAME (docker-image://REF, local:NAME), build-arg:BUILDKIT_CACHE_MOUNT_NS,
//   build-arg:BUILDKIT_SANDBOX_HOSTNAME, build-arg:BUILDKIT_MULTI_PLATFORM,
//   build-arg:SOURCE_DATE_EPOCH.
// Refused with InvalidArgument: several target platforms, a git/http/oci-layout/input named
// context or build context, subrequests (requestid), override-copy-image, invalid values.
// Ignored (accepted, no effect on the LLB): cache-imports, cache-from, attest:*, contextsubdir
// (BuildKit ignores it for local contexts too), frontend.caps, a `# syntax=` directive and
// BUILDKIT_SYNTAX (this frontend is the implementation; nothing is forwarded).
//
// Thread-safety: one Build at a time per instance.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "llb/frontend.h"

namespace kiln::frontends::dockerfile {

class DockerfileFrontend : public llb::Frontend {
 public:
  struct Options {
    // Progress-group ids for COPY --link (default: random, as BuildKit).  Tests fix them.
    std::function<std::string()> new_id;
  };
  DockerfileFrontend() = default;
  explicit DockerfileFrontend(Options options) : options_(std::move(options)) {}
  DockerfileFrontend(const DockerfileFrontend&) = delete;
  DockerfileFrontend& operator=(const DockerfileFrontend&) = delete;

  absl::StatusOr<llb::FrontendResult> Build(llb::FrontendClient& client,
                                            const llb::BuildOpts& opts) override;

 private:
  Options options_;
};

}  // namespace kiln::frontends::dockerfile
