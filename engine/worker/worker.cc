#include "engine/worker/worker.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/digest.h"
#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/cache/leveldb_cache_storage.h"
#include "engine/executor/linux_executor.h"
#include "snapshotter/local_content_store.h"
#include "snapshotter/overlay_snapshotter.h"

namespace kiln::engine {
namespace {

constexpr char kDescriptionLabel[] = "kiln.dev/description";
constexpr char kKindLabel[] = "kiln.dev/kind";

// Reopens committed snapshots by key; the solver calls it for cache hits.
class SnapshotLoader : public ResultLoader {
 public:
  SnapshotLoader(snapshotter::Snapshotter* snapshots, std::shared_ptr<RefTracker> tracker)
      : snapshots_(snapshots), tracker_(std::move(tracker)) {}

  absl::StatusOr<ResultRef> Load(const std::string& id, const CancelToken&) override {
    if (id.empty()) return ResultRef(std::make_shared<SnapshotRef>("", tracker_));
    KILN_ASSIGN_OR_RETURN(snapshotter::SnapshotInfo info, snapshots_->Stat(id));
    if (info.kind != snapshotter::SnapshotKind::kCommitted) {
      return absl::NotFoundError(StrCat("snapshot ", Quote(id), " is not committed"));
    }
    return ResultRef(std::make_shared<SnapshotRef>(id, tracker_));
  }

 private:
  snapshotter::Snapshotter* snapshots_;
  std::shared_ptr<RefTracker> tracker_;
};

absl::StatusOr<UniqueFd> LockStateDir(const std::string& root) {
  std::string path = root + "/kiln.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(path)));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::UnavailableError(
          StrCat("state directory ", Quote(root), " is in use by another kiln process"));
    }
    return ErrnoStatus(StrCat("lock ", Quote(path)));
  }
  return fd;
}

int64_t DirSize(const std::string& path);

}  // namespace

absl::StatusOr<std::unique_ptr<Worker>> Worker::Open(const WorkerOptions& options) {
  std::unique_ptr<Worker> w(new Worker(options));
  KILN_RETURN_IF_ERROR_CTX(w->Init(), StrCat("open state directory ", Quote(options.root)));
  return w;
}

Worker::~Worker() {
  // Jobs and results must be gone; the stores close in reverse order of opening.
  loader_.reset();
  cache_.reset();
  executor_.reset();
  images_.reset();
  snapshots_.reset();
  content_.reset();
}

absl::Status Worker::Init() {
  const std::string& root = options_.root;
  KILN_RETURN_IF_ERROR(MakeDirs(root, 0700));
  KILN_ASSIGN_OR_RETURN(lock_fd_, LockStateDir(root));
  for (const char* sub : {"/executor", "/cachemounts", "/local", "/tmp"}) {
    KILN_RETURN_IF_ERROR(MakeDirs(root + sub, 0700));
  }
  KILN_ASSIGN_OR_RETURN(auto content, snapshotter::LocalContentStore::Open(root));
  content_ = std::move(content);

  overlay_ =
      !options_.force_naive_snapshotter && snapshotter::CheckOverlaySupport(root + "/tmp").ok();
  if (overlay_) {
    snapshotter::OverlaySnapshotterOptions so;
    so.sync_on_commit = options_.sync;
    KILN_ASSIGN_OR_RETURN(snapshots_, snapshotter::OpenOverlaySnapshotter(root, so));
  } else {
    KILN_ASSIGN_OR_RETURN(snapshots_, snapshotter::OpenNaiveSnapshotter(root));
  }
  KILN_ASSIGN_OR_RETURN(images_, ImageStore::Open(root + "/images"));
  LevelDbCacheStorage::Options co;
  co.sync = options_.sync;
  KILN_ASSIGN_OR_RETURN(auto cache, LevelDbCacheStorage::Open(root + "/cache", co));
  cache_ = std::move(cache);
  loader_ = std::make_shared<SnapshotLoader>(snapshots_.get(), tracker_);

  LinuxExecutorOptions eo;
  eo.state_dir = root + "/executor";
  if (!options_.init_path.empty()) {
    eo.init_path = options_.init_path;
  } else {
    KILN_ASSIGN_OR_RETURN(eo.init_path, FindInitBinary());
  }
  KILN_RETURN_IF_ERROR(CleanupStaleExecutorState(eo));
  KILN_ASSIGN_OR_RETURN(executor_, NewLinuxExecutor(eo));
  return Recover();
}

// We hold the state-directory lock, so no other process uses any active snapshot, view or
// temporary file: they are leftovers of a process that died.
absl::Status Worker::Recover() {
  std::vector<std::string> stale;
  KILN_RETURN_IF_ERROR(snapshots_->Walk([&](const snapshotter::SnapshotInfo& info) {
    if (info.kind != snapshotter::SnapshotKind::kCommitted) stale.push_back(info.key);
    return absl::OkStatus();
  }));
  for (const auto& key : stale) {
    KILN_RETURN_IF_ERROR_CTX(snapshots_->Remove(key), "remove leftover snapshot");
  }
  KILN_RETURN_IF_ERROR(snapshots_->Cleanup());
  KILN_RETURN_IF_ERROR(RemoveAll(TempRoot()));
  KILN_RETURN_IF_ERROR(MakeDirs(TempRoot(), 0700));
  auto released = ReleaseUnreferenced(*cache_, [this](const std::string& id) {
    if (id.empty()) return true;
    auto info = snapshots_->Stat(id);
    return info.ok() && info->kind == snapshotter::SnapshotKind::kCommitted;
  });
  return released.status();
}

std::string Worker::NewKey(std::string_view kind) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  uint64_t a = rng(), b = rng();
  return StrCat(kind, "-", HexEncode(&a, sizeof(a)), HexEncode(&b, sizeof(b)));
}

absl::StatusOr<ActiveSnapshot> Worker::Prepare(const ResultRef& parent,
                                               std::string_view description) {
  std::string key = NewKey("active");
  snapshotter::Labels labels;
  if (!description.empty()) labels[kDescriptionLabel] = std::string(description);
  KILN_ASSIGN_OR_RETURN(auto mounts, snapshots_->Prepare(key, SnapshotKeyOf(parent), labels));
  return ActiveSnapshot(snapshots_.get(), key, std::move(mounts));
}

absl::StatusOr<ResultRef> Worker::Commit(ActiveSnapshot active) {
  std::string name = NewKey("snap");
  KILN_RETURN_IF_ERROR(snapshots_->Commit(name, active.key()));
  active.Release();
  return ResultRef(std::make_shared<SnapshotRef>(name, tracker_));
}

absl::StatusOr<ResultRef> Worker::RefFor(const std::string& committed_key) {
  return loader_->Load(committed_key, CancelToken());
}

ResultRef Worker::EmptyResult() { return std::make_shared<SnapshotRef>("", tracker_); }

absl::StatusOr<ActiveSnapshot> Worker::View(const ResultRef& result) {
  std::string parent = SnapshotKeyOf(result);
  if (parent.empty()) return ActiveSnapshot(nullptr, "", {});
  std::string key = NewKey("view");
  KILN_ASSIGN_OR_RETURN(auto mounts, snapshots_->View(key, parent));
  return ActiveSnapshot(snapshots_.get(), key, std::move(mounts));
}

absl::Status Worker::WithReadOnlyMount(const ResultRef& result,
                                       const std::function<absl::Status(const std::string&)>& fn) {
  KILN_ASSIGN_OR_RETURN(ActiveSnapshot view, View(result));
  if (view.mounts().empty()) {
    KILN_ASSIGN_OR_RETURN(std::string empty, MakeTempDir("empty-"));
    absl::Status s = fn(empty);
    (void)RemoveAll(empty);
    return s;
  }
  return snapshotter::WithTempMount(view.mounts(), TempRoot(), fn);
}

absl::StatusOr<std::string> Worker::MakeTempDir(std::string_view prefix) {
  KILN_ASSIGN_OR_RETURN(TempDir dir, TempDir::Create(prefix, TempRoot()));
  return dir.Release();
}

absl::StatusOr<std::vector<UsageEntry>> Worker::DiskUsage() {
  std::vector<UsageEntry> out;
  std::map<std::string, int> children;
  std::vector<snapshotter::SnapshotInfo> infos;
  KILN_RETURN_IF_ERROR(snapshots_->Walk([&](const snapshotter::SnapshotInfo& info) {
    infos.push_back(info);
    if (!info.parent.empty()) children[info.parent]++;
    return absl::OkStatus();
  }));
  for (const auto& info : infos) {
    if (info.kind != snapshotter::SnapshotKind::kCommitted) continue;
    UsageEntry e;
    e.id = info.key;
    auto kind = info.labels.find(kKindLabel);
    e.kind = kind != info.labels.end() ? kind->second : "regular";
    auto desc = info.labels.find(kDescriptionLabel);
    if (desc != info.labels.end()) e.description = desc->second;
    auto usage = snapshots_->Usage(info.key);
    if (usage.ok()) e.size = usage->size;
    e.in_use = tracker_->InUse(info.key);
    e.parent = info.parent;
    e.created = info.created;
    e.last_used = info.updated;
    out.push_back(std::move(e));
  }
  std::error_code ec;
  // Directories whose entries are caches of their own: RUN cache mounts, local-source mirrors,
  // git repositories fetched by git sources.
  static const std::pair<const char*, const char*> kCacheDirs[] = {
      {"/cachemounts", "exec.cachemount"}, {"/local", "source.local"}, {"/git", "source.git"}};
  for (const auto& [dir, kind] : kCacheDirs) {
    std::string base = options_.root + dir;
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(base.c_str()), ::closedir);
    if (!d) continue;
    while (dirent* e = ::readdir(d.get())) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      UsageEntry u;
      u.id = StrCat(dir + 1, "/", name);
      u.kind = kind;
      u.size = DirSize(base + "/" + name);
      out.push_back(std::move(u));
    }
  }
  return out;
}

absl::StatusOr<std::vector<UsageEntry>> Worker::Prune(const PruneOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<UsageEntry> usage, DiskUsage());
  int64_t total = 0;
  for (const auto& e : usage) total += e.size;
  auto now = std::chrono::system_clock::now();
  std::vector<UsageEntry> removed;
  // Oldest first; only leaves can go, so repeat until a pass removes nothing.
  std::sort(usage.begin(), usage.end(),
            [](const UsageEntry& a, const UsageEntry& b) { return a.last_used < b.last_used; });
  bool progress = true;
  std::set<std::string> gone;
  while (progress) {
    progress = false;
    std::map<std::string, int> children;
    for (const auto& e : usage) {
      if (!gone.count(e.id) && !e.parent.empty()) children[e.parent]++;
    }
    for (const auto& e : usage) {
      if (gone.count(e.id) || e.in_use || children[e.id] > 0) continue;
      if (options.keep_storage > 0 && total <= options.keep_storage) break;
      if (options.keep_duration.count() > 0 && now - e.last_used < options.keep_duration) continue;
      if (e.kind == "exec.cachemount" || e.kind == "source.local" || e.kind == "source.git") {
        if (!options.all) continue;
        KILN_RETURN_IF_ERROR(RemoveAll(options_.root + "/" + e.id));
      } else {
        KILN_RETURN_IF_ERROR(cache_->Release(e.id));
        absl::Status s = snapshots_->Remove(e.id);
        if (!s.ok() && s.code() != absl::StatusCode::kNotFound) return s;
        KILN_RETURN_IF_ERROR(images_->DeleteLayers(e.id));
      }
      gone.insert(e.id);
      total -= e.size;
      removed.push_back(e);
      progress = true;
    }
  }
  return removed;
}

namespace {

int64_t DirSize(const std::string& path) {
  std::error_code ec;
  int64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(
           path, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) total += it->file_size(ec);
  }
  return total;
}

}  // namespace

}  // namespace kiln::engine
