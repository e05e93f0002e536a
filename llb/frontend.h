// The contract between a frontend (Dockerfile -> LLB) and the engine.
//
// A frontend sees the outside world only through FrontendClient: it resolves image configs and
// reads files of the named local sources, and returns a Definition plus the image config to
// export.  Nothing here assumes the engine's process, so a frontend could also run out of
// process behind a gateway (BuildKit's LLBBridge offers the same calls: ResolveImageConfig,
// ReadFile).
//
// Thread-safety: a FrontendClient must allow concurrent calls (the Dockerfile frontend resolves
// the base images of all stages in parallel).  A Frontend instance serves one Build at a time.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "base/oci.h"
#include "llb/pb/ops.pb.h"
#include "llb/state.h"  // ResolveMode

namespace kiln::llb {

// The result of resolving an image reference for a platform.
struct ResolvedImage {
  std::string ref;  // the reference as resolved (normalized, e.g. docker.io/library/x:latest)
  Digest digest;    // manifest digest; invalid (empty) when the resolver could not pin one
  std::string config_json;  // the raw image config blob
};

// Implemented by the engine (and by tests with canned data).
class FrontendClient {
 public:
  FrontendClient() = default;
  FrontendClient(const FrontendClient&) = delete;
  FrontendClient& operator=(const FrontendClient&) = delete;
  virtual ~FrontendClient() = default;

  // Resolves `ref` (as written by the user or already normalized) for `platform` (nullopt: the
  // engine's default platform).  NotFound when the image does not exist; other errors as the
  // registry reports them.
  virtual absl::StatusOr<ResolvedImage> ResolveImageConfig(
      const std::string& ref, const std::optional<oci::Platform>& platform, ResolveMode mode) = 0;

  // Reads `path` (slash-separated, relative to the source root) from the named local source
  // ("dockerfile", "context").  NotFound when the file is absent.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& local_name,
                                               const std::string& path) = 0;
};

struct BuildOpts {
  std::string session_id;  // goes into local.session of every local source
  // The frontend options of the solve request (BuildKit's FrontendAttrs: "filename", "target",
  // "build-arg:X", "platform", ...).
  std::map<std::string, std::string> frontend_opts;
  // Platforms the workers can run; the first is the default build/target platform.
  std::vector<oci::Platform> worker_platforms;
  // Added to the brief's contract: the LLB caps the engine supports (BuildKit's Ping LLBCaps),
  // for Constraints::WithCaps when marshaling.  They decide e.g. whether exec ops must carry a
  // default PATH themselves.  Unset means the frontend may assume everything Kiln implements.
  std::optional<CapSet> llb_caps;
};

struct FrontendResult {
  pb::Definition definition;
  std::string image_config_json;  // the full image config blob (oci::Image) for the exporter
  // Extra result metadata (BuildKit's exporter metadata keys, e.g. "containerimage.config").
  std::map<std::string, std::string> metadata;
};

class Frontend {
 public:
  Frontend() = default;
  Frontend(const Frontend&) = delete;
  Frontend& operator=(const Frontend&) = delete;
  virtual ~Frontend() = default;
  // Converts the build described by `opts` into LLB.  InvalidArgument for user errors (bad
  // Dockerfile, unknown target), with the file name and line range in the message.
  virtual absl::StatusOr<FrontendResult> Build(FrontendClient& client, const BuildOpts& opts) = 0;
};

}  // namespace kiln::llb
