// Confined filesystem access for file ops: every path from LLB (copy sources and destinations,
// mkdir/mkfile/rm paths, mount selectors) is resolved inside a root directory, never outside.
//
// RootDir::Resolve is continuity's fs.RootPath (what BuildKit's file backend and fsutil's copy
// use), done on file descriptors: the path is cleaned lexically, then walked component by
// component with fstatat(AT_SYMLINK_NOFOLLOW); a symlink met on the way is read and its target is
// resolved as if the root were "/" (absolute targets restart at the root, ".." never climbs above
// it), so `a -> /etc` then `a/shadow` names <root>/etc/shadow and `b -> ../../..` names the root.
// Components that do not exist are kept as they are (a later create makes them).  The result is a
// clean relative path with no symlink in it (except the last component when not followed).
//
// Every open of a resolved path goes through openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) from the root fd, so if the tree changed between
// resolution and use and a symlink appeared, the operation fails instead of escaping.
//
// Thread-safety: a RootDir is immutable after Open and may be used from several threads; the
// tree itself must not be modified concurrently by someone else (the trees are private mounts).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <time.h>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"

namespace kiln::engine {

// Owner to give created entries (fsutil's Chowner with a fixed user); nullopt keeps what the
// operation would do by default.
struct FileOwner {
  uint32_t uid = 0;
  uint32_t gid = 0;
  bool operator==(const FileOwner&) const = default;
};

class RootDir {
 public:
  // Opens `path` (a host directory the caller vouches for: a snapshot mount point).
  static absl::StatusOr<RootDir> Open(const std::string& path);

  RootDir() = default;
  RootDir(RootDir&&) = default;
  RootDir& operator=(RootDir&&) = default;

  int fd() const { return fd_.get(); }
  // The host path; for messages and for handing a resolved subtree to a trusted consumer
  // (a bind mount source, the layer applier).
  const std::string& path() const { return path_; }
  // path() + "/" + rel ("" gives path()).
  std::string HostPath(std::string_view rel) const;

  // continuity fs.RootPath (see the file comment).  `p` may be absolute or relative, and may
  // contain "..".  Returns a clean relative path ("" for the root itself).  Errors: ELOOP after
  // 255 symlinks, ENOTDIR for a non-directory in the middle, other stat errors.
  absl::StatusOr<std::string> Resolve(std::string_view p, bool follow_final = true) const;

  // Opens a resolved relative path; `flags` as for openat (O_NOFOLLOW is implied for the last
  // component).  "" opens the root itself.
  absl::StatusOr<UniqueFd> OpenResolved(std::string_view rel, int flags, mode_t mode = 0) const;
  // Opens the parent directory of a resolved path and returns it with the last component.
  // The root itself has no parent: InvalidArgument.
  absl::StatusOr<std::pair<UniqueFd, std::string>> OpenParent(std::string_view rel) const;
  // lstat of a resolved path; std::nullopt when it does not exist.
  absl::StatusOr<std::optional<struct stat>> Lstat(std::string_view rel) const;

 private:
  RootDir(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
};

// Go's filepath.Split: ("a/b/c" -> "a/b/", "c"); ("a/" -> "a/", "").
std::pair<std::string, std::string> SplitPath(std::string_view p);
// Go's path.Base ("" -> ".", "/" -> "/").
std::string BasePath(std::string_view p);
// Joins a clean relative directory and a name.
std::string JoinRel(std::string_view dir, std::string_view name);

// fsutil's copy.MkdirAll on a resolved relative path: creates each missing directory with
// `perm` (the process umask applies, as in BuildKit), owned by `owner` when set (else by the
// daemon) and with both times set to `time` when set.  An existing non-directory is ENOTDIR.
// Returns the fd of the final directory.
absl::StatusOr<UniqueFd> MkdirAllInRoot(const RootDir& root, std::string_view rel, mode_t perm,
                                        const std::optional<FileOwner>& owner,
                                        const std::optional<struct timespec>& time);

// Both times of `name` under `dirfd` (not following a final symlink).
absl::Status SetTimes(int dirfd, const std::string& name, const struct timespec& atime,
                      const struct timespec& mtime);

// Nanoseconds since the epoch (LLB timestamps) to a timespec; -1 means "keep" (nullopt).
std::optional<struct timespec> TimestampFromNanos(int64_t ns);

}  // namespace kiln::engine
