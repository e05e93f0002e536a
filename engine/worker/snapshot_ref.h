// Snapshot-backed solver results and the active snapshots ops write into.
//
// Every output of an engine op is a committed snapshot.  A SnapshotRef is the solver Result for
// one: holding it keeps the snapshot alive (prune skips snapshots with live refs), and its ID()
// is the snapshot key, which the worker's ResultLoader reopens after a restart.
//
// An ActiveSnapshot is the writable snapshot an op is producing.  It is removed when dropped
// uncommitted, so a failed or cancelled step leaves nothing behind.
//
// Thread-safety: SnapshotRef is immutable and may be shared; RefTracker is thread-safe; an
// ActiveSnapshot has one owner.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/solver/types.h"
#include "snapshotter/mount.h"
#include "snapshotter/snapshotter.h"

namespace kiln::engine {

// Counts live SnapshotRefs per snapshot key.
class RefTracker {
 public:
  void Acquire(const std::string& key);
  void Release(const std::string& key);
  bool InUse(const std::string& key) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, int> counts_;
};

class SnapshotRef : public Result {
 public:
  // `key` names a committed snapshot ("" for the empty filesystem: scratch has no snapshot).
  SnapshotRef(std::string key, std::shared_ptr<RefTracker> tracker);
  ~SnapshotRef() override;

  std::string ID() const override { return key_; }
  const std::string& key() const { return key_; }
  bool empty() const { return key_.empty(); }

 private:
  std::string key_;
  std::shared_ptr<RefTracker> tracker_;
};

// The snapshot key behind a solver result (nullptr and scratch give "").
std::string SnapshotKeyOf(const ResultRef& result);

class ActiveSnapshot {
 public:
  ActiveSnapshot() = default;
  ActiveSnapshot(snapshotter::Snapshotter* snapshotter, std::string key,
                 std::vector<snapshotter::Mount> mounts)
      : snapshotter_(snapshotter), key_(std::move(key)), mounts_(std::move(mounts)) {}
  ~ActiveSnapshot();
  ActiveSnapshot(ActiveSnapshot&& o) noexcept;
  ActiveSnapshot& operator=(ActiveSnapshot&& o) noexcept;
  ActiveSnapshot(const ActiveSnapshot&) = delete;
  ActiveSnapshot& operator=(const ActiveSnapshot&) = delete;

  const std::string& key() const { return key_; }
  const std::vector<snapshotter::Mount>& mounts() const { return mounts_; }
  bool valid() const { return snapshotter_ != nullptr; }

  // Hands the snapshot over (after Commit); the destructor will no longer remove it.
  std::string Release();

 private:
  snapshotter::Snapshotter* snapshotter_ = nullptr;
  std::string key_;
  std::vector<snapshotter::Mount> mounts_;
};

}  // namespace kiln::engine
