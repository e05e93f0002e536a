// DiffOp (llb.Diff): the changes that turn `lower` into `upper`.
//
// Representation: a parentless committed snapshot in overlay upper-directory format:
//   * entries added or changed in upper (type, mode, owner, size, mtime, symlink target, device,
//     xattrs, or - when mtimes have no sub-second part - content) are copied with their
//     metadata, together with their parent directories (metadata from upper);
//   * entries of lower missing from upper are overlay whiteouts: character devices 0/0.
// Mounted on its own (a bind of one directory) the whiteouts show as 0/0 devices; as the lower
// layer of an overlay, or applied by MergeOp, they delete.  The exporter's overlay-upper path
// turns them into `.wh.` entries, like BuildKit's export of a diff.
// Special cases as BuildKit: scratch/scratch -> scratch; scratch lower -> upper itself; lower ==
// upper -> scratch.
//
// Cache map: sha256 of {"Type":"buildkit.diff.v0","Diff":<Go JSON of the DiffOp>}.
//
// Thread-safety: as engine::Op.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "engine/ops/file_root.h"
#include "engine/ops/llb_op.h"
#include "engine/solver/types.h"

namespace kiln::engine {

absl::StatusOr<std::unique_ptr<Op>> NewDiffOp(const LlbOp& op, const OpEnv& env);

// Writes the changes from `lower` to `upper` into the empty tree `out` (see above).
absl::Status WriteTreeDiff(const RootDir& lower, const RootDir& upper, const RootDir& out,
                           const CancelToken& cancel);

}  // namespace kiln::engine
