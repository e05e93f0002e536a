// Snapshotter: copy-on-write filesystem trees for build steps (containerd's model).
//
// A snapshot is named by a caller-chosen key.  Prepare(key, parent) makes an *active* snapshot,
// writable, whose initial content is the committed `parent` (or empty); View(key, parent) makes
// a read-only *view* of it.  Commit(name, key) turns an active snapshot into an immutable
// *committed* one named `name`, which can then be the parent of others.  Snapshots are returned
// as Mount descriptions; the caller mounts them (ScopedMount) and must unmount before Remove.
//
// Errors: a key that exists -> AlreadyExists; an unknown key or parent -> NotFound; a parent
// that is not committed, Commit of a non-active snapshot, Mounts of a committed one, Remove of a
// snapshot that still has children -> FailedPrecondition (naming the children).
//
// Durability: metadata changes are single atomic batches; a crash leaves each snapshot either
// fully there or absent.  Cleanup() (run at startup) removes directories no metadata refers to.
//
// Thread-safety: every method may be called concurrently from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "snapshotter/content_store.h"
#include "snapshotter/mount.h"

namespace kiln::snapshotter {

enum class SnapshotKind { kActive, kView, kCommitted };
std::string_view SnapshotKindName(SnapshotKind k);

struct SnapshotInfo {
  std::string key;
  SnapshotKind kind = SnapshotKind::kActive;
  std::string parent;  // "" for none
  Timestamp created;
  Timestamp updated;
  Labels labels;
};

struct SnapshotUsage {
  int64_t size = 0;    // bytes of this snapshot's own layer (disk blocks)
  int64_t inodes = 0;  // distinct inodes in this snapshot's own layer
};

class Snapshotter {
 public:
  Snapshotter() = default;
  virtual ~Snapshotter() = default;
  Snapshotter(const Snapshotter&) = delete;
  Snapshotter& operator=(const Snapshotter&) = delete;

  virtual absl::StatusOr<std::vector<Mount>> Prepare(const std::string& key,
                                                     const std::string& parent,
                                                     const Labels& labels = {}) = 0;
  virtual absl::StatusOr<std::vector<Mount>> View(const std::string& key, const std::string& parent,
                                                  const Labels& labels = {}) = 0;
  // Mounts of an active snapshot or a view.
  virtual absl::StatusOr<std::vector<Mount>> Mounts(const std::string& key) = 0;
  // The active snapshot `key` becomes the committed snapshot `name` (`key` is gone); labels
  // are merged.  The caller must have unmounted it.
  virtual absl::Status Commit(const std::string& name, const std::string& key,
                              const Labels& labels = {}) = 0;
  virtual absl::Status Remove(const std::string& key) = 0;
  virtual absl::StatusOr<SnapshotInfo> Stat(const std::string& key) = 0;
  // Committed snapshots report the usage measured at Commit; others are measured now.
  virtual absl::StatusOr<SnapshotUsage> Usage(const std::string& key) = 0;
  // Calls fn for every snapshot (order unspecified); stops at the first error fn returns.
  virtual absl::Status Walk(const std::function<absl::Status(const SnapshotInfo&)>& fn) = 0;
  // Removes directories not referenced by metadata (crash leftovers, the trash).
  virtual absl::Status Cleanup() = 0;
};

}  // namespace kiln::snapshotter
