// Low-level, descriptor-relative entry operations shared by the file, merge and diff ops.
//
// An entry is named by a directory fd and a name inside it; an empty name means the directory fd
// itself.  No function here follows a symlink in the last component.
//
// Thread-safety: functions are independent.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <sys/stat.h>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/unique_fd.h"

namespace kiln::engine {

struct EntryRef {
  int dir = -1;
  std::string name;  // "" = `dir` itself
};

absl::StatusOr<struct stat> StatEntry(const EntryRef& e);
// Opens a directory entry for reading its children.
absl::StatusOr<UniqueFd> OpenDirEntry(const EntryRef& e);
// Names in an open directory, sorted bytewise.
absl::StatusOr<std::vector<std::string>> ListDirSorted(int dirfd);

// Copies the content of the regular file `src` into the new file `dst` (created with O_EXCL,
// mode 0600 until metadata is applied).  Checks `cancel` between chunks.
absl::Status CopyFileContent(const EntryRef& src, const EntryRef& dst, const CancelToken& cancel);
// Creates at `dst` an entry of the same non-directory, non-regular type as `st`: a symlink
// (target read from `src`), a device, a fifo or a socket node.
absl::Status CreateSpecialLike(const EntryRef& src, const struct stat& st, const EntryRef& dst);

absl::Status ChownEntry(const EntryRef& e, uint32_t uid, uint32_t gid);
// chmod; not for symlinks (the caller skips them).
absl::Status ChmodEntry(const EntryRef& e, mode_t mode);
absl::Status SetEntryTimes(const EntryRef& e, const struct timespec& atime,
                           const struct timespec& mtime);

using XattrList = std::vector<std::pair<std::string, std::string>>;
// Extended attributes except overlayfs's private ones (trusted.overlay.*, user.overlay.*): those
// describe a layer's storage, never content to carry over.
absl::StatusOr<XattrList> ReadXattrs(const EntryRef& e);
// Best effort, like BuildKit's copy (it logs and ignores failures): filesystems without xattr
// support or a symlink refusing user.* attributes do not fail the copy.
void WriteXattrs(const EntryRef& e, const XattrList& xattrs);

// rm -rf of one entry, never following symlinks.  Missing is OK.
absl::Status RemoveEntry(int dirfd, const std::string& name);

// The overlayfs whiteout: a character device 0/0.
inline bool IsWhiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == 0; }
// trusted.overlay.opaque = "y" on a directory of a raw layer.
bool IsOpaqueDir(const EntryRef& e);

}  // namespace kiln::engine
