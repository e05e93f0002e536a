// The actions of an LLB FileOp, on trees already mounted (BuildKit's solver/llbsolver/file
// backend, v0.11.6 semantics; symlink from HEAD).  Every path is resolved inside its root
// (file_root.h); errors name LLB paths, never host paths.
//
// Thread-safety: functions are independent; one action at a time per destination tree.
#pragma once

#include <optional>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "engine/ops/file_root.h"
#include "llb/pb/ops.pb.h"

namespace kiln::engine {

// BuildKit's readUser: the owner a ChownOpt asks for.  nullopt when there is no ChownOpt (keep
// owners).  By id: uid (and gid) = the id; by name: looked up in /etc/passwd (user) or /etc/group
// (group) of `user_root` / `group_root` (resolved inside them); a name that is not found, or a
// missing file, gives 0 as BuildKit does.  A group overrides the user's primary group.
absl::StatusOr<std::optional<FileOwner>> ResolveOwner(const pb::ChownOpt* chown,
                                                      const RootDir* user_root,
                                                      const RootDir* group_root);

// BuildKit's cleanPath: "/" joined and cleaned, keeping a trailing "/" or "/.".
std::string CleanActionPath(std::string_view p);

absl::Status DoMkdir(const RootDir& root, const pb::FileActionMkDir& a,
                     const std::optional<FileOwner>& owner);
absl::Status DoMkfile(const RootDir& root, const pb::FileActionMkFile& a,
                      const std::optional<FileOwner>& owner);
absl::Status DoRm(const RootDir& root, const pb::FileActionRm& a);
absl::Status DoSymlink(const RootDir& root, const pb::FileActionSymlink& a,
                       const std::optional<FileOwner>& owner);
absl::Status DoCopy(const RootDir& src, const RootDir& dst, const pb::FileActionCopy& a,
                    const std::optional<FileOwner>& owner, const CancelToken& cancel);

// Whether the regular file `rel` of `root` is a tar archive, plain or gzip/zstd compressed
// (Docker's ADD auto-extraction test: the first header parses).
bool IsArchive(const RootDir& root, const std::string& rel);

}  // namespace kiln::engine
