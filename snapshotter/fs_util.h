// Filesystem helpers for snapshot directories: fd-relative, never following symlinks.
//
// Internal to the snapshotter library.  Thread-safety: functions are safe to call concurrently
// on different trees.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <sys/stat.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/unique_fd.h"
#include "snapshotter/snapshotter.h"

namespace kiln::snapshotter {

using Xattrs = std::vector<std::pair<std::string, std::string>>;

absl::StatusOr<UniqueFd> OpenDirectory(const std::string& path);
// Opens `name` under `dirfd` as a directory without following a symlink.
absl::StatusOr<UniqueFd> OpenSubdir(int dirfd, const std::string& name, std::string_view what);

// Names in the directory, sorted bytewise ("." and ".." excluded).
absl::StatusOr<std::vector<std::string>> ListSorted(int dirfd, std::string_view what);

// "/proc/self/fd/<dirfd>/<name>": lets path-only syscalls (l*xattr) act on `name` under a
// directory we hold open, without re-resolving the directory's path.
std::string ProcFdPath(int dirfd, const std::string& name);

// Extended attributes of `name` under `dirfd` (not following a final symlink), sorted by name.
absl::StatusOr<Xattrs> ListXattrs(int dirfd, const std::string& name);
// trusted.overlay.* / user.overlay.*: overlayfs's private metadata.
bool IsOverlayXattr(std::string_view name);

// Removes `name` under `dirfd` recursively, never following symlinks.  Missing is OK.
absl::Status RemoveAt(int dirfd, const std::string& name);

// Copies the tree `src` into the existing empty directory `dst`: file types, content, owners,
// modes (setuid after chown), xattrs (overlay's own skipped), atime/mtime and hardlinks
// within the tree.  Sockets are skipped.
absl::Status CopyTree(const std::string& src, const std::string& dst);

// Disk blocks and distinct inodes below (and including) `path`.
absl::StatusOr<SnapshotUsage> DiskUsage(const std::string& path);

// Applies owner, mode, xattrs and times of `st` to `name` under `dirfd` (xattrs only when
// `xattrs` is not null).  `st` describes the desired state.
absl::Status ApplyMetadata(int dirfd, const std::string& name, const struct stat& st,
                           const Xattrs* xattrs, std::string_view what);

}  // namespace kiln::snapshotter
