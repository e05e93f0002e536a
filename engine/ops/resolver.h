// The OpResolver that turns solver vertices built by load_definition into engine ops.
//
// Dispatch on the LLB op type: exec -> ExecOp, file -> FileOp, merge -> MergeOp, diff -> DiffOp,
// source -> NewSourceOp (image, local, git, http), build -> Unimplemented.  A vertex without an
// LlbOp payload is InvalidArgument.
//
// Thread-safety: the returned resolver may be called concurrently; `env` must outlive it.
#pragma once

#include "engine/ops/llb_op.h"
#include "engine/solver/types.h"

namespace kiln::engine {

OpResolver MakeResolver(const OpEnv& env);

}  // namespace kiln::engine
