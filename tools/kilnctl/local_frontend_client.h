// An llb::FrontendClient for running a frontend inside kilnctl: files of the named local sources
// ("context", "dockerfile", named `local:` contexts) come from directories on disk, image
// configs from an ImageResolver (image_resolver.h).
//
// ReadFile resolves every path inside its directory (openat2 RESOLVE_IN_ROOT): "..", absolute
// paths and symlinks cannot leave it.  Files over 64 MiB are refused.
//
// Thread-safety: concurrent calls are safe when the resolver allows them.
#pragma once

#include <map>
#include <string>

#include "llb/frontend.h"
#include "tools/kilnctl/image_resolver.h"

namespace kiln::tools::kilnctl {

class LocalFrontendClient : public llb::FrontendClient {
 public:
  // `locals`: local name -> directory.  `resolver` must outlive the client.
  LocalFrontendClient(std::map<std::string, std::string> locals, ImageResolver& resolver)
      : locals_(std::move(locals)), resolver_(resolver) {}

  absl::StatusOr<llb::ResolvedImage> ResolveImageConfig(
      const std::string& ref, const std::optional<oci::Platform>& platform,
      llb::ResolveMode mode) override;
  // NotFound for an unknown local name or a missing file.
  absl::StatusOr<std::string> ReadFile(const std::string& local_name,
                                       const std::string& path) override;

 private:
  std::map<std::string, std::string> locals_;
  ImageResolver& resolver_;
};

}  // namespace kiln::tools::kilnctl
