// Mount helpers for kiln-init: option parsing, path resolution confined to a root directory,
// and mounting through file descriptors with the new mount API (fsopen/open_tree/move_mount), so
// a mount lands exactly on the directory that was resolved, never on what a symlink swapped in
// later points to.
//
// Thread-safety: functions are independent; ResolveInRoot() is safe on a root that changes
// concurrently (it never follows a symlink out of the root), though the result then reflects one
// moment of it.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"
#include "engine/executor/executor.h"

namespace kiln::engine::internal {

// MountSpec::options split into per-mount attributes and filesystem parameters.
struct ParsedMountOptions {
  uint64_t attr_set = 0;    // MOUNT_ATTR_* to set
  uint64_t attr_clear = 0;  // MOUNT_ATTR_* to clear (explicit "rw", "suid", "dev", "exec", ...)
  bool bind = false;        // "bind" or "rbind"
  bool recursive = false;   // "rbind"
  // Filesystem parameters in order: {"size", "65536k"}, {"newinstance", ""} (a flag).
  std::vector<std::pair<std::string, std::string>> params;
};
ParsedMountOptions ParseMountOptions(const std::vector<std::string>& options);

// A path split into what to create or open: the directory that holds it and the last name.
struct ResolvedParent {
  UniqueFd dir;      // O_PATH directory inside the root
  std::string name;  // last component, never a symlink that was followed; "" if `dir` is the
                     // object itself (the path resolved to a directory such as "/" or "a/..")
};

struct ResolveOptions {
  // Create missing intermediate directories (mode 0755) instead of failing with NotFound.
  bool create_parents = false;
  // Owner for directories created on the way (-1: keep root).
  uid_t owner_uid = static_cast<uid_t>(-1);
  gid_t owner_gid = static_cast<gid_t>(-1);
};

// Resolves `path` (a container path; relative means relative to "/") inside `root_fd` as if
// `root_fd` were "/": symlinks are followed but resolved relative to the root, ".." never goes
// above it, and every step opens with O_NOFOLLOW relative to the previous directory's fd.  A
// symlink in the last component is followed too (like open(2) without O_NOFOLLOW), so `name`
// is what a create would make.  Fails NotFound for a missing intermediate directory (unless
// create_parents), InvalidArgument for a non-directory in the middle or a symlink loop.
absl::StatusOr<ResolvedParent> ResolveParentInRoot(int root_fd, std::string_view path,
                                                   const ResolveOptions& options = {});

enum class TargetKind { kDirectory, kFile };

// The O_PATH fd of `path` inside the root, created (parents too) when missing: a directory
// (mode 0755) or an empty file (mode 0755, like runc's mount stubs).  An existing object of the
// other kind is an error.
absl::StatusOr<UniqueFd> MakeMountTarget(int root_fd, std::string_view path, TargetKind kind);

// mkdir -p inside the root; directories created get `uid`:`gid` and mode 0755.  Returns the
// O_PATH fd of the final directory.
absl::StatusOr<UniqueFd> MakeDirsInRoot(int root_fd, std::string_view path, uid_t uid, gid_t gid);

// True when `path` exists inside the root (symlinks followed within the root).
bool ExistsInRoot(int root_fd, std::string_view path);

// Mounts a new filesystem instance (tmpfs, proc, overlay, ...) onto `target_fd`.
// `source` is the name shown in mountinfo.  Overlay lowerdirs too long for one fsconfig value
// are passed one by one ("lowerdir+", Linux >= 6.8) or, failing that, through mount(2).
absl::Status MountFilesystem(std::string_view type, std::string_view source,
                             const ParsedMountOptions& options, int target_fd);

// Bind-mounts the host path `source` (or, with source_fd >= 0, that O_PATH fd) onto `target_fd`
// with the attributes of `options` applied to the new mount(s) before they become visible.
absl::Status BindMount(std::string_view source, int source_fd, const ParsedMountOptions& options,
                       int target_fd);

// Puts a read-only copy of the mount at `target_fd` on top of it (runc's readonly paths).
absl::Status RemountReadOnly(int target_fd);

// "type=`x` source=`y` target=`z`" for messages.
std::string DescribeMount(const MountSpec& spec);

}  // namespace kiln::engine::internal
