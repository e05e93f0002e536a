// The link between LLB and the solver: what a solver Vertex built from an LLB op carries, and
// what every engine op is given to work with.
//
// load_definition turns a pb.Definition into solver Vertices whose `sys` payload is an LlbOp;
// the resolver turns each back into an engine Op (ExecOp, FileOp, a source op, ...).
//
// Thread-safety: plain values; OpEnv's pointees are thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "base/oci.h"
#include "engine/solver/types.h"
#include "llb/pb/ops.pb.h"

namespace kiln::registry {
class Registry;
}

namespace kiln::engine {

class Worker;

struct LlbOp {
  Digest digest;  // sha256 of the op bytes as received
  pb::Op op;
  pb::OpMetadata metadata;
  oci::Platform platform;  // op.platform, or the worker's when the op has none

  // llb.customname when set, else a name derived from the op ("exec /bin/sh -c ...").
  std::string Name() const;
};

// Shared services for ops; owned by the engine, outliving every build.
struct OpEnv {
  Worker* worker = nullptr;
  // nullptr: no registry access (image sources resolve from the local image store only).
  registry::Registry* registry = nullptr;
};

// The LlbOp behind a solver vertex (nullptr when the vertex does not carry one).
const LlbOp* LlbOpOf(const Vertex& vertex);

// Source ops: image, local, git, http (engine/ops/source_*.cc).
absl::StatusOr<std::unique_ptr<Op>> NewSourceOp(const LlbOp& op, const OpEnv& env);

}  // namespace kiln::engine
