#include "engine/worker/snapshot_ref.h"

#include <utility>

namespace kiln::engine {

void RefTracker::Acquire(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  counts_[key]++;
}

void RefTracker::Release(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(key);
  if (it != counts_.end() && --it->second == 0) counts_.erase(it);
}

bool RefTracker::InUse(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_.count(key) > 0;
}

SnapshotRef::SnapshotRef(std::string key, std::shared_ptr<RefTracker> tracker)
    : key_(std::move(key)), tracker_(std::move(tracker)) {
  if (!key_.empty() && tracker_) tracker_->Acquire(key_);
}

SnapshotRef::~SnapshotRef() {
  if (!key_.empty() && tracker_) tracker_->Release(key_);
}

std::string SnapshotKeyOf(const ResultRef& result) {
  if (!result) return "";
  const auto* ref = dynamic_cast<const SnapshotRef*>(result.get());
  return ref ? ref->key() : "";
}

ActiveSnapshot::~ActiveSnapshot() {
  // Best effort: a snapshot that cannot be removed now is an orphan Cleanup() finds later.
  if (snapshotter_ && !key_.empty()) (void)snapshotter_->Remove(key_);
}

ActiveSnapshot::ActiveSnapshot(ActiveSnapshot&& o) noexcept
    : snapshotter_(std::exchange(o.snapshotter_, nullptr)),
      key_(std::move(o.key_)),
      mounts_(std::move(o.mounts_)) {}

ActiveSnapshot& ActiveSnapshot::operator=(ActiveSnapshot&& o) noexcept {
  if (this != &o) {
    ActiveSnapshot dying(std::move(*this));
    snapshotter_ = std::exchange(o.snapshotter_, nullptr);
    key_ = std::move(o.key_);
    mounts_ = std::move(o.mounts_);
  }
  return *this;
}

std::string ActiveSnapshot::Release() {
  snapshotter_ = nullptr;
  return std::move(key_);
}

}  // namespace kiln::engine
