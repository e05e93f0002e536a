// MergeOp (llb.Merge; COPY --link joins layers with it): the inputs' filesystems layered in
// order, later ones winning.
//
// Representation: the result is one committed snapshot whose parent is the first (non-scratch)
// input and whose own layer holds every following input's tree applied on top: entries copied
// with their metadata (owner, mode, times, xattrs, hardlinks), directories merged, a
// non-directory replacing whatever was there.  Inputs are read as raw trees with overlay
// semantics, so a Diff result (diff_op.h: whiteouts for deletions) applies its deletions: a
// character device 0/0 removes the entry below it, an opaque directory (trusted.overlay.opaque)
// first empties the directory below it.  Scratch inputs are skipped; with none left the result
// is scratch, with one it is that input itself.
//
// BuildKit keeps each input's layers as they are (a lazy merged ref); Kiln copies the upper
// inputs into one new layer, so an export produces base layers + one layer for the rest.
//
// Cache map: sha256 of {"Type":"buildkit.merge.v0","Merge":<Go JSON of the MergeOp>}, no
// selectors or content keys (as BuildKit).
//
// Thread-safety: as engine::Op.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "engine/ops/file_root.h"
#include "engine/ops/llb_op.h"
#include "engine/solver/types.h"

namespace kiln::engine {

absl::StatusOr<std::unique_ptr<Op>> NewMergeOp(const LlbOp& op, const OpEnv& env);

// Applies the raw tree `src` onto the tree `dst` with overlay semantics (see above).
absl::Status ApplyOverlayTree(const RootDir& src, const RootDir& dst, const CancelToken& cancel);

}  // namespace kiln::engine
