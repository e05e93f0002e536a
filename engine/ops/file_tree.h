// Snapshots mounted on the host for ops that work on files directly (file, merge, diff ops, and
// exec mounts with a selector).
//
// ReadTree: a read-only view of a result (scratch: an empty directory).  WriteTree: a new active
// snapshot on top of a parent result, mounted writable, committed with Commit().  Both unmount
// and remove everything they made when destroyed, so every error path cleans up; a WriteTree
// that is not committed leaves no snapshot behind.
//
// A snapshot whose mounts are a single plain bind mount (a one-layer view, a parentless active
// snapshot) is used in place, without a mount.
//
// Thread-safety: one owner per object.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/fs.h"
#include "engine/ops/file_root.h"
#include "engine/solver/types.h"
#include "engine/worker/snapshot_ref.h"
#include "snapshotter/mount.h"

namespace kiln::engine {

class Worker;

// Mount descriptions made visible at a host directory.
class MountedTree {
 public:
  // `mounts` empty: a fresh empty directory.
  static absl::StatusOr<std::unique_ptr<MountedTree>> Mount(
      Worker& worker, const std::vector<snapshotter::Mount>& mounts);
  ~MountedTree() = default;
  MountedTree(const MountedTree&) = delete;
  MountedTree& operator=(const MountedTree&) = delete;

  const RootDir& root() const { return root_; }
  const std::string& path() const { return root_.path(); }
  // Unmounts now (before a commit); root() is unusable afterwards.
  absl::Status Unmount();

 private:
  MountedTree() = default;
  TempDir dir_;  // the mount point (unused when the bind source is used in place)
  snapshotter::ScopedMount mount_;
  RootDir root_;
};

class ReadTree {
 public:
  static absl::StatusOr<std::unique_ptr<ReadTree>> Open(Worker& worker, const ResultRef& result);
  const RootDir& root() const { return tree_->root(); }
  const std::string& path() const { return tree_->path(); }

 private:
  ReadTree() = default;
  ActiveSnapshot view_;
  std::unique_ptr<MountedTree> tree_;  // destroyed before view_
};

class WriteTree {
 public:
  static absl::StatusOr<std::unique_ptr<WriteTree>> Prepare(Worker& worker, const ResultRef& parent,
                                                            std::string_view description);
  const RootDir& root() const { return tree_->root(); }
  const std::string& path() const { return tree_->path(); }
  const ActiveSnapshot& active() const { return active_; }
  // Unmounts and commits; the WriteTree is spent afterwards.
  absl::StatusOr<ResultRef> Commit();

 private:
  explicit WriteTree(Worker& worker) : worker_(&worker) {}
  Worker* worker_;
  ActiveSnapshot active_;
  std::unique_ptr<MountedTree> tree_;  // destroyed before active_
};

}  // namespace kiln::engine
