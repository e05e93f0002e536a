// The worker: everything a build runs on, under one state directory.
//
//   <root>/kiln.lock      held (flock) while a Worker is open: one process per state directory
//   <root>/content/       content store (blobs by digest)
//   <root>/snapshots/     snapshotter (overlayfs, or naive copies where overlayfs is missing)
//   <root>/cache/         the solver's cache-key graph (leveldb)
//   <root>/images/        image store (name -> manifest descriptor, leveldb)
//   <root>/executor/      per-run state of the executor
//   <root>/cachemounts/   persistent RUN --mount=type=cache directories
//   <root>/local/         mirrors of client directories (local sources), synced incrementally
//   <root>/git/           repositories fetched by git sources
//   <root>/tmp/           scratch space (mount points, downloads), emptied at open
//
// Opening a worker recovers from a crash of the previous process: active snapshots and views
// are removed (nothing can be using them: we hold the lock), orphaned snapshot directories and
// executor state are cleaned, and cache records whose snapshot is gone are released.
//
// Results: every op output is a committed snapshot held through a SnapshotRef (snapshot_ref.h).
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"
#include "engine/executor/executor.h"
#include "engine/solver/cache_storage.h"
#include "engine/solver/types.h"
#include "engine/worker/image_store.h"
#include "engine/worker/snapshot_ref.h"
#include "snapshotter/content_store.h"
#include "snapshotter/mount.h"
#include "snapshotter/snapshotter.h"

namespace kiln::engine {

struct WorkerOptions {
  std::string root = "/var/lib/kiln";
  // kiln-init; "" finds it next to the running executable (or $KILN_INIT_PATH).
  std::string init_path;
  // Use the copying snapshotter even where overlayfs works (tests, odd filesystems).
  bool force_naive_snapshotter = false;
  // fsync cache and snapshot commits (off only for throwaway state).
  bool sync = true;
};

// One record of `du`.
struct UsageEntry {
  std::string id;           // snapshot key, or a cache mount / local mirror path
  std::string kind;         // "regular", "exec.cachemount", "source.local", "source.git"
  std::string description;  // the step that made it
  int64_t size = 0;
  bool in_use = false;
  std::string parent;
  std::chrono::system_clock::time_point created;
  std::chrono::system_clock::time_point last_used;
};

struct PruneOptions {
  bool all = false;  // also cache mounts, local-source mirrors and git repositories
  // Keep records used within this duration (0: no age limit).
  std::chrono::seconds keep_duration{0};
  // Stop once the remaining total is at most this many bytes (0: no size limit).
  int64_t keep_storage = 0;
};

class Worker {
 public:
  // Fails with Unavailable when another process holds the state directory.
  static absl::StatusOr<std::unique_ptr<Worker>> Open(const WorkerOptions& options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  const std::string& root() const { return options_.root; }
  snapshotter::ContentStore& content() { return *content_; }
  snapshotter::Snapshotter& snapshots() { return *snapshots_; }
  ImageStore& images() { return *images_; }
  Executor& executor() { return *executor_; }
  const std::shared_ptr<CacheStorage>& cache_storage() { return cache_; }
  const std::shared_ptr<ResultLoader>& result_loader() { return loader_; }
  bool overlay() const { return overlay_; }

  // A writable snapshot on top of `parent` (nullptr or scratch: empty).  Labels describe it in du.
  absl::StatusOr<ActiveSnapshot> Prepare(const ResultRef& parent, std::string_view description);
  // Commits `active` and returns the result holding it.
  absl::StatusOr<ResultRef> Commit(ActiveSnapshot active);
  // A result for an already committed snapshot (e.g. an unpacked image's top layer).
  absl::StatusOr<ResultRef> RefFor(const std::string& committed_key);
  // The empty filesystem (scratch) as a result.
  ResultRef EmptyResult();
  // Read-only mounts of `result` for as long as the returned view lives (empty list for
  // scratch: the caller uses an empty directory).
  absl::StatusOr<ActiveSnapshot> View(const ResultRef& result);

  // Mounts `result` read-only on a fresh directory and calls fn(path); scratch gets an empty
  // directory.
  absl::Status WithReadOnlyMount(const ResultRef& result,
                                 const std::function<absl::Status(const std::string&)>& fn);

  // A fresh directory under <root>/tmp, removed by the owner.
  absl::StatusOr<std::string> MakeTempDir(std::string_view prefix);
  std::string CacheMountsDir() const { return options_.root + "/cachemounts"; }
  std::string LocalMirrorsDir() const { return options_.root + "/local"; }
  std::string TempRoot() const { return options_.root + "/tmp"; }

  absl::StatusOr<std::vector<UsageEntry>> DiskUsage();
  // Removes unused records per `options`; returns the removed ones.
  absl::StatusOr<std::vector<UsageEntry>> Prune(const PruneOptions& options);

 private:
  explicit Worker(WorkerOptions options) : options_(std::move(options)) {}
  absl::Status Init();
  absl::Status Recover();
  std::string NewKey(std::string_view kind);

  WorkerOptions options_;
  UniqueFd lock_fd_;
  bool overlay_ = false;
  std::unique_ptr<snapshotter::ContentStore> content_;
  std::unique_ptr<snapshotter::Snapshotter> snapshots_;
  std::unique_ptr<ImageStore> images_;
  std::unique_ptr<Executor> executor_;
  std::shared_ptr<CacheStorage> cache_;
  std::shared_ptr<RefTracker> tracker_ = std::make_shared<RefTracker>();
  std::shared_ptr<ResultLoader> loader_;
};

}  // namespace kiln::engine
