// The local:// source op: files of a client directory, through the job session's LocalDirs.
//
//   identifier  local://<name>
//   attrs       local.session        the session to use ("<prefix>:<id>" renames the mirror as
//                                    BuildKit renames the source); any job's session if gone
//               local.unique         ignored (only makes the op digest unique)
//               local.includepattern, local.excludepatterns, local.followpaths   JSON arrays
//               local.sharedkeyhint  part of the mirror's identity
//               local.differ         metadata (default) | none (re-transfer everything)
//
// Kiln caches a local source by content, unlike BuildKit v0.11 (whose key is the session, so
// the source always runs and only COPY steps hit through content checksums):
//  - GetCacheMap syncs the client directory into a persistent mirror
//    (<state>/local/<id>/tree, <id> = hash of name, shared-key hint, the LocalDirs' shared key
//    and the filter), incrementally (local_dirs.h), and returns as `digest` the content digest
//    of the mirror, computed from its index without reading files.  An unchanged context gives
//    the same key: the source and everything after it hit the cache and no snapshot is made.
//  - Exec makes a committed snapshot of the mirror by hardlinking its files (directories and
//    symlinks are recreated), which costs one link per file; names of one inode in the client
//    directory are names of one inode in the snapshot.  It is safe because the mirror
//    never changes an inode in place (local_dirs.h), so old snapshots keep their content.  When
//    the LocalDirs implementation does not promise that, files are copied instead.  If another
//    build changed the mirror between this op's GetCacheMap and Exec, Exec fails with Aborted
//    rather than produce content that does not match the cache key.
//
// Thread-safety: an Op is driven by the solver as types.h says; syncs of one mirror are
// serialized by MirrorMutex.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/ops/llb_op.h"
#include "engine/ops/local_dirs.h"
#include "engine/solver/types.h"

namespace kiln::engine {

absl::StatusOr<std::unique_ptr<Op>> NewLocalSourceOp(const LlbOp& op, const OpEnv& env);

// Builds the tree `index` describes from `mirror_dir` into the empty directory `dest`:
// directories and symlinks are created, files hardlinked when `hardlink` (copied otherwise, or
// when a link is impossible), and each later name of a link group (MirrorEntry::hardlink) is
// linked to its first name in `dest`.  Paths are resolved without following symlinks.
absl::Status MaterializeMirror(const std::string& mirror_dir, const MirrorIndex& index,
                               const std::string& dest, bool hardlink, const CancelToken& cancel);

}  // namespace kiln::engine
