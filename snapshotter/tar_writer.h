// Deterministic tar header encoding (ustar + PAX extended headers when needed).
//
// We write tar headers ourselves instead of using libarchive's writer because the bytes must be
// reproducible and lean: PAX records appear only when a value does not fit ustar (long names
// or link targets, big ids/sizes, negative or huge mtimes) or for xattrs, which are written
// once as SCHILY.xattr.<name> (what Go's archive/tar, containerd and BuildKit write;
// libarchive would add LIBARCHIVE.xattr duplicates).  Records are sorted, uname/gname are
// empty, the PAX header's own fields are fixed, and file data is streamed by the caller
// straight into its buffers (no copy through a writer object).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include <sys/stat.h>

#include "absl/status/statusor.h"
#include "snapshotter/fs_util.h"

namespace kiln::snapshotter {

struct TarHeader {
  std::string name;   // relative, directories end with '/'
  char type = '0';    // '0' file, '1' hardlink, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky
  uint64_t uid = 0;
  uint64_t gid = 0;
  int64_t size = 0;
  int64_t mtime = 0;  // seconds
  std::string linkname;
  uint32_t devmajor = 0;
  uint32_t devminor = 0;
  Xattrs xattrs;  // sorted by name
};

// The header block(s) for `h`: optionally a PAX 'x' header with its records, then the ustar
// header; a multiple of 512 bytes.
std::string EncodeTarHeader(const TarHeader& h);
// Zero bytes needed after `size` bytes of data.
inline size_t TarPadding(int64_t size) { return static_cast<size_t>((512 - size % 512) % 512); }
// End of archive: two zero blocks.
inline constexpr size_t kTarTrailerSize = 1024;

// Sets h->type from `st`, the lstat of `name` in `dirfd`: the symlink target for a symlink, the
// size of a regular file, the device numbers of a device, a '/' after a directory's name.
// False for what tar cannot hold (sockets): the caller leaves the entry out.  Hardlinks are the
// caller's to spot (it knows which inodes it wrote).
absl::StatusOr<bool> SetTarEntryType(int dirfd, const std::string& name, const struct stat& st,
                                     TarHeader* h);

// readlinkat of `name` in `dirfd`, whose lstat is `st`.
absl::StatusOr<std::string> ReadLinkAt(int dirfd, const std::string& name, const struct stat& st);

}  // namespace kiln::snapshotter
