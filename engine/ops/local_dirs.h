// Client directories for local sources: the mirror index every LocalDirs implementation should
// keep, and HostLocalDirs, the in-process implementation whose client directories are plain host
// directories (kilnctl running the engine in-process, tests, benchmarks).
//
// A mirror (<state>/local/<id>/tree, owned by the local source op) is an engine-side copy of one
// client directory after filtering.  Next to it, <tree>.index lists every entry (walk order:
// depth first, names in byte order) with its metadata as stored in the mirror and its content
// sha256, so the op derives the content digest without reading a file.
//
// Hardlinks: a file that is a later name (walk order) of an inode already seen in the same walk
// is recorded with `hardlink` = the path of the first name, and in the mirror it is another name
// of the first name's mirror inode.  Mirror names share an inode exactly as the index's link
// groups say: a name that leaves a group gets an inode of its own, and when the first name's
// inode is replaced every later name of the group is linked to the new one in the same sync.
//
// THE MIRROR INVARIANT (what makes hardlinked snapshots safe): an implementation that says
// KeepsMirrorIndex() never modifies a mirror inode in place - new content or new metadata of a
// file or symlink is written to a new file that is renamed over the old name.  The local source
// op hardlinks mirror files into committed snapshots, so an old snapshot keeps its old inodes
// and content whatever later syncs do.  Directories are never shared (the op recreates them), so
// they may be changed in place.
//
// Crash safety: a sync that changes anything first creates <tree>.dirty, and removes it only
// after the new index is durable (and syncfs made the files durable); a mirror found dirty is
// rebuilt from scratch.  LoadMirrorIndex refuses a dirty or corrupt index (DataLoss).  A sync
// that fails or is cancelled (rather than killed) writes an index of what it did - every entry
// is replaced atomically - so the next sync continues instead of starting over.  A file deleted
// between the walk and its copy is left out, as if the walk had not seen it.
//
// HostLocalDirs semantics (fsutil's walk as BuildKit v0.11's local source sees it, plus what
// buildctl's client does):
//  - include/exclude patterns with fsutil's semantics (base/pattern_match.h PathFilter), parent
//    directories of an included entry are created even when not included themselves;
//    followpaths resolve symlinks inside the directory into extra include patterns (fsutil's
//    FollowLinks);
//  - symlinks are copied as symlinks, never followed (the walk opens every directory and file
//    relative to its parent with O_NOFOLLOW / RESOLVE_NO_SYMLINKS, so swapping a directory for
//    a symlink mid-walk cannot lead outside the client directory);
//  - sockets, fifos and device nodes are skipped (fsutil transfers fifos and devices; a host
//    device node in a build context is never what a user wants inside RUN);
//  - modes (including setuid/setgid/sticky) and mtimes (ns) are preserved; owners become 0:0
//    as buildctl's client maps them (HostLocalDirsOptions::reset_owner);
//  - hardlinks between regular files both of whose names are inside the (filtered) client
//    directory are kept, as fsutil's walker and DiskWriter do (a file whose other names are
//    all outside it, or excluded, is a plain file); xattrs are not copied.
//  - change detection: an entry whose (type, mode, uid, gid, size, mtime, inode, ctime) are
//    unchanged is not read.  A file whose size and mtime are unchanged but whose ctime or inode
//    changed is re-hashed (XXH3-128) and compared with the stored hash, so an edit that keeps
//    size and mtime is still seen (BuildKit's default metadata differ misses it).
//
// Thread-safety: HostLocalDirs may be used concurrently for different mirrors; syncs of one
// mirror must be serialized by the caller (MirrorMutex).  The index functions are pure.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/digest.h"
#include "engine/ops/session.h"

namespace kiln::engine {

// ---- the mirror index --------------------------------------------------------------------

struct MirrorEntry {
  enum class Type : uint8_t { kDir = 'd', kFile = 'f', kSymlink = 'l' };
  std::string path;  // relative, '/'-separated, no empty, "." or ".." component
  Type type = Type::kFile;
  uint32_t mode = 0;  // permission bits with setuid/setgid/sticky (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t size = 0;  // files
  int64_t mtime_ns = 0;
  std::string link;  // symlinks: the target, verbatim
  // Files: "" or the path of an earlier file entry (the first name of this inode in the walk)
  // that this entry is another name of; its metadata and hashes are then that entry's.
  std::string hardlink;
  std::array<uint8_t, 32> sha256{};  // files: of the content
  // Change-detection state of the implementation that wrote the entry (opaque to readers).
  std::array<uint8_t, 16> xxh128{};
  uint64_t src_ino = 0;
  int64_t src_ctime_ns = 0;
  uint32_t src_mode = 0;
  uint32_t src_uid = 0;
  uint32_t src_gid = 0;
};

struct MirrorIndex {
  std::vector<MirrorEntry> entries;  // walk order
};

// Gives the open file or directory `fd` the owner, mode and mtime (also atime) of `e`; errors
// name e.path.
absl::Status ApplyEntryMetadata(int fd, const MirrorEntry& e);
// Creates the symlink `name` in `dirfd` with e's target, owner and mtime.
absl::Status CreateEntrySymlink(int dirfd, const std::string& name, const MirrorEntry& e);

std::string MirrorIndexPath(const std::string& mirror_dir);
std::string MirrorDirtyPath(const std::string& mirror_dir);

// NotFound when there is no index; DataLoss when it is corrupt, of another format version (an
// older Kiln's, which did not record hardlinks) or the mirror is marked dirty.
absl::StatusOr<MirrorIndex> LoadMirrorIndex(const std::string& mirror_dir);
// Durable (WriteFileAtomic).
absl::Status SaveMirrorIndex(const std::string& mirror_dir, const MirrorIndex& index);

// The digest naming the mirror's content: paths, types, modes, owners, mtimes, link targets,
// file content hashes and hardlink groups, in walk order.  Never reads the mirror.  (An index
// without hardlinks gives the digest earlier versions gave.)
Digest MirrorContentDigest(const MirrorIndex& index);

// Builds an index by walking and hashing the mirror itself (for LocalDirs implementations that
// keep none).  Sockets, fifos and devices are left out; regular files that are names of one
// inode become a link group.
absl::StatusOr<MirrorIndex> ScanMirror(const std::string& mirror_dir, const CancelToken& cancel);

// The process-wide lock of one mirror: held around a sync and its digest, and around making a
// snapshot from it.
std::shared_ptr<std::mutex> MirrorMutex(const std::string& mirror_dir);

// ---- optional capabilities of a LocalDirs implementation (dynamic_cast) --------------------

class LocalDirsMirrorSupport {
 public:
  virtual ~LocalDirsMirrorSupport() = default;
  // A stable name for client directory `name` across sessions (so later builds reuse its
  // mirror), "" when unknown.  BuildKit's caller.SharedKey() plays this role.
  virtual std::string SharedKey(const std::string& name) const = 0;
  // Sync keeps the mirror index current and honours the mirror invariant above.
  virtual bool KeepsMirrorIndex() const = 0;
};

// ---- HostLocalDirs -----------------------------------------------------------------------

struct HostLocalDirsOptions {
  // Owners in the mirror become 0:0 (buildctl's resetUIDAndGID); false keeps the host's.
  bool reset_owner = true;
};

// Cumulative counters (tests and benchmarks check what a sync did).
struct LocalSyncStats {
  int64_t syncs = 0;
  int64_t entries_walked = 0;
  int64_t files_copied = 0;  // content written into the mirror
  int64_t bytes_copied = 0;
  int64_t files_rehashed = 0;  // read to compare content (size and mtime unchanged)
  int64_t entries_removed = 0;
  int64_t metadata_only = 0;  // changed metadata, same content
  int64_t full_rebuilds = 0;  // index missing, corrupt or dirty
  int64_t links_made = 0;     // later names of a link group (re)linked in the mirror
};

class HostLocalDirs : public LocalDirs, public LocalDirsMirrorSupport {
 public:
  // `dirs`: name ("context", "dockerfile") -> host directory.
  explicit HostLocalDirs(std::map<std::string, std::string> dirs,
                         HostLocalDirsOptions options = {});

  absl::Status Sync(const std::string& name, const LocalDirFilter& filter,
                    const std::string& mirror_dir, const CancelToken& cancel) override;

  // "host:<real path of the directory>".
  std::string SharedKey(const std::string& name) const override;
  bool KeepsMirrorIndex() const override { return true; }

  LocalSyncStats stats() const;

 private:
  struct Counters {
    std::atomic<int64_t> syncs{0}, entries_walked{0}, files_copied{0}, bytes_copied{0},
        files_rehashed{0}, entries_removed{0}, metadata_only{0}, full_rebuilds{0}, links_made{0};
  };
  std::map<std::string, std::string> dirs_;
  HostLocalDirsOptions options_;
  std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
};

}  // namespace kiln::engine
