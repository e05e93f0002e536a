// The engine's side of the frontend contract (llb/frontend.h): how a frontend running in the
// engine sees the outside world.
//
//  - ResolveImageConfig goes through the same ImageResolver as the image source op, so a FROM
//    resolves to the same digest the build then uses.
//  - ReadFile syncs just that file (followpaths) of the client's directory into an engine-owned
//    mirror and reads it there, confined to the mirror (a symlinked Dockerfile resolves inside the
//    client directory, never on the host).
// Each call shows up as an "[internal] ..." step in the build's progress, as in BuildKit.
//
// Thread-safety: calls may come from several threads.
#pragma once

#include <memory>
#include <string>

#include "engine/ops/image_resolver.h"
#include "engine/ops/session.h"
#include "engine/solver/progress.h"
#include "engine/worker/worker.h"
#include "llb/frontend.h"

namespace kiln::engine {

class EngineFrontendClient : public llb::FrontendClient {
 public:
  EngineFrontendClient(Worker* worker, const ImageResolver* resolver,
                       std::shared_ptr<LocalDirs> local_dirs,
                       std::shared_ptr<registry::CredentialSource> credentials,
                       std::shared_ptr<ProgressSink> progress, CancelToken cancel);

  absl::StatusOr<llb::ResolvedImage> ResolveImageConfig(
      const std::string& ref, const std::optional<oci::Platform>& platform,
      llb::ResolveMode mode) override;
  absl::StatusOr<std::string> ReadFile(const std::string& local_name,
                                       const std::string& path) override;

 private:
  Worker* worker_;
  const ImageResolver* resolver_;
  std::shared_ptr<LocalDirs> local_dirs_;
  std::shared_ptr<registry::CredentialSource> credentials_;
  std::shared_ptr<ProgressSink> progress_;
  CancelToken cancel_;
};

}  // namespace kiln::engine
