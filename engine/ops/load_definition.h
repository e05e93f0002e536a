// Turning a received LLB Definition into the solver's graph.
//
// One solver Vertex per distinct LLB op (BuildKit's llbsolver.Load): its digest is the LLB op
// digest (sha256 of the op bytes as received), its name LlbOp::Name(), its inputs edges to the
// vertices of the op's inputs with their output indexes, its options from the op's metadata
// (ignore_cache, description, progress group), and its `sys` payload an LlbOp carrying the decoded
// op with its platform (op.platform, else the worker's default).  The returned edge is the
// terminal op's input: the build's target.
//
// No-cache: a frontend's "no-cache" reaches the solver two ways, as in BuildKit.  Per vertex, the
// frontend sets OpMetadata.ignore_cache; for a whole build, LoadOptions::ignore_cache (or the
// solver's JobOptions::ignore_cache) marks every vertex.  BuildKit also empties the cache mounts
// used by no-cache RUN steps before the build (its detectPrunedCacheID); LoadedDefinition lists
// their ids so the caller can reset them (CacheMounts::Reset in mounts.h).
//
// Thread-safety: pure functions; the returned graph is immutable and may be shared.
#pragma once

#include <set>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/oci.h"
#include "engine/solver/types.h"
#include "llb/definition.h"

namespace kiln::engine {

struct LoadOptions {
  // The platform of ops whose LLB has none (BuildKit: the worker's default platform).
  oci::Platform default_platform = oci::HostPlatform();
  // Mark every vertex ignore_cache (the build-wide --no-cache).
  bool ignore_cache = false;
  // Entitlements (BuildKit's ValidateEntitlements): an exec asking for NetMode HOST or
  // SecurityMode INSECURE is refused unless allowed.  The daemon passes what the client requested
  // and the daemon permits; the default allows both, for in-process use.
  bool allow_network_host = true;
  bool allow_security_insecure = true;
};

struct LoadedDefinition {
  Edge target;
  // Cache mount ids (CacheOpt.ID, else the mount's dest) used by exec ops marked ignore_cache.
  std::set<std::string> no_cache_mount_ids;
};

// Builds the graph of an already validated definition (llb::Validate).  InvalidArgument names
// the op when an input is missing, an output index is out of range, or an entitlement is
// refused.  Iterative: deep chains do not recurse.
absl::StatusOr<LoadedDefinition> LoadDefinition(const llb::ParsedDefinition& def,
                                                const LoadOptions& options = {});

// Parse + Validate + LoadDefinition: what a daemon does with marshaled LLB it receives.
absl::StatusOr<LoadedDefinition> LoadDefinitionBytes(std::string_view definition_bytes,
                                                     const LoadOptions& options = {});

}  // namespace kiln::engine
