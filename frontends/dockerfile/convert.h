// Dockerfile -> LLB conversion with BuildKit's semantics (BuildKit v0.11.6's
// frontend/dockerfile/dockerfile2llb, plus the newer flags of BuildKit HEAD: COPY --parents /
// --exclude, ADD --checksum / --keep-git-dir / --unpack, RUN --security, RUN --mount ...,env=).
//
// Convert() takes the Dockerfile text and the options BuildKit's builder derives from the
// frontend attributes (see frontend.h for the attribute parsing) and returns:
//   * the LLB state of the target stage, with the marshal defaults (target platform, caps) set,
//     so that `result.state.Marshal()` gives the Definition BuildKit would solve;
//   * the image config BuildKit's frontend returns as `containerimage.config` (base image config
//     inherited and extended, history entries as BuildKit writes them).
// Base images are resolved through llb::FrontendClient::ResolveImageConfig (in parallel, one
// request per reachable stage), and their digests pinned into the docker-image identifiers.
// Stages the target cannot reach are not resolved and contribute no ops.
//
// Errors are InvalidArgument (or the resolver's code), prefixed "<file>:<lines>: " and carrying
// the SourceRange (source_location.h) whenever they belong to a place in the Dockerfile.
//
// Thread-safety: Convert is reentrant; the client must allow concurrent calls (llb/frontend.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/oci.h"
#include "frontends/dockerfile/source_location.h"
#include "llb/frontend.h"
#include "llb/llb.h"

namespace kiln::frontends::dockerfile {

// A build context given by name (BuildKit's `context:NAME` frontend attribute), already turned
// into a state.  `image` is set for image-like contexts (docker-image://, oci-layout://).
struct NamedContext {
  llb::State state;
  std::optional<oci::Image> image;
  bool image_diff_ids_set = false;  // the config held "diff_ids": [] (see ConvertResult)
};

// Resolves a named context: nullopt when `name` has none.  `platform` is the platform of the
// stage asking (nullopt: the target platform).
using NamedContextFn = std::function<absl::StatusOr<std::optional<NamedContext>>(
    std::string_view name, llb::ResolveMode mode, const std::optional<oci::Platform>& platform)>;

// BuildKit's dockerfile2llb.ConvertOpt.
struct ConvertOptions {
  std::string filename = "Dockerfile";  // names the file in errors
  std::string target;                   // stage name; empty: the last stage
  std::map<std::string, std::string> build_args;
  std::map<std::string, std::string> labels;  // added to the target image config
  std::string session_id;                     // local.session of the context source
  // Replaces the local context source (Go: BuildContext), e.g. a git or http context.
  std::optional<llb::State> build_context;
  std::vector<std::string> excludes;  // .dockerignore patterns for the context source
  // Stages that must not use the cache: nullopt = none, empty = all (BuildKit's no-cache).
  std::optional<std::vector<std::string>> ignore_cache;
  std::string cache_id_namespace;  // BUILDKIT_CACHE_MOUNT_NS
  llb::ResolveMode image_resolve_mode = llb::ResolveMode::kDefault;
  // nullopt: implicit (the first build platform; base images may pick their own).
  std::optional<oci::Platform> target_platform;
  // Empty: this machine's platform.
  std::vector<oci::Platform> build_platforms;
  bool prefix_platform = false;  // put the platform into progress names (multi-platform)
  std::vector<llb::HostIP> extra_hosts;
  int64_t shm_size = 0;  // bytes; 0: no /dev/shm mount
  std::vector<llb::Ulimit> ulimits;
  std::string cgroup_parent;
  pb::NetMode force_network_mode = pb::UNSET;
  // LLB caps of the daemon; nullopt: assume all (the caps below are what the conversion uses).
  std::optional<llb::CapSet> llb_caps;
  std::string context_local_name = "context";
  // The Dockerfile as a source map for op locations; null: no locations.
  std::shared_ptr<llb::SourceMap> source_map;
  std::string hostname;
  std::optional<int64_t> source_date_epoch;  // unix seconds (SOURCE_DATE_EPOCH)
  NamedContextFn named_context;              // may be empty
  // Generates progress-group ids (COPY --link); default: llb::NewRandomID.
  std::function<std::string()> new_id;
};

struct ConvertResult {
  llb::State state;  // the target stage; Marshal() it for the Definition
  oci::Image image;  // the image config (containerimage.config)
  // Go tells a missing rootfs.diff_ids (null) from an empty list ([]); oci::Image does not.
  bool image_diff_ids_set = false;
  std::vector<Warning> warnings;
};

// Converts `dockerfile`.  `client` resolves base images (and is not used otherwise).
absl::StatusOr<ConvertResult> Convert(std::string_view dockerfile, const ConvertOptions& opts,
                                      llb::FrontendClient& client);

// The image config JSON exactly as BuildKit's frontend marshals it for containerimage.config
// (Go's json.Marshal of dockerfile2llb.Image: architecture, os, rootfs, history, config, ...).
// `diff_ids_set`: write an empty rootfs.diff_ids as [] instead of null.
std::string EncodeImageConfigJson(const oci::Image& image, bool diff_ids_set = false);

// Whether an image config JSON holds a rootfs.diff_ids array (Go: a non-nil slice).
bool ConfigHasDiffIds(std::string_view config_json);

// containerd's platforms.Parse (not normalized: "linux/arm64/v8" keeps its variant), with
// BuildKit's error text.
absl::StatusOr<oci::Platform> ParsePlatformSpecifier(std::string_view specifier);
// containerd's platforms.Format: "os/arch[/variant]", "unknown" without an OS.
std::string FormatPlatformSpecifier(const oci::Platform& p);

}  // namespace kiln::frontends::dockerfile
