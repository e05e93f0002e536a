// FileOp: LLB file actions (mkdir, mkfile, rm, copy, symlink) chained within one op, as
// BuildKit's solver/llbsolver/ops/file.go.
//
// Evaluation: the actions an output needs are run in order.  Each action works on a writable
// tree: a new active snapshot on top of its input (op input, scratch, or an earlier action's
// result).  An action result used by exactly one later action and not an output stays
// uncommitted and is handed on, so a chain (mkdir then copy) is one snapshot; a result that is an
// output, or used more than once, is committed.  So every output is one snapshot whose parent is
// the snapshot of the op input its action chain started from (a COPY is one layer on its base).
//
// Cache map (BuildKit's): digest = sha256 of {"Type":"buildkit.file.v0","Actions":[base64 of each
// action's Go JSON],"indexes":...}, where a copy from an op input has its src reduced to its base
// name; per input, the selector = sha256 of its copy source paths (and /etc/passwd, /etc/group
// for chown by name) and a content checksum over those paths (with the copy's wildcard,
// follow-symlink and include/exclude settings), unless the input is also modified by an action.
//
// Thread-safety: as engine::Op.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "engine/ops/llb_op.h"
#include "engine/solver/types.h"

namespace kiln::engine {

absl::StatusOr<std::unique_ptr<Op>> NewFileOp(const LlbOp& op, const OpEnv& env);

// The cache map of a file op with `num_inputs` inputs (content functions use `worker`).
absl::StatusOr<CacheMap> FileOpCacheMap(const pb::FileOp& op, int num_inputs, Worker* worker);

}  // namespace kiln::engine
