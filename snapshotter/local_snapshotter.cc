// Overlay and naive snapshotters: shared metadata and lifecycle, different directory
// strategies (see overlay_snapshotter.h).
#include <cerrno>
#include <mutex>
#include <optional>
#include <set>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_join.h"
#include "base/fs.h"
#include "base/status.h"
#include "leveldb/db.h"
#include "leveldb/write_batch.h"
#include "nlohmann/json.hpp"
#include "snapshotter/fs_util.h"
#include "snapshotter/overlay_snapshotter.h"

namespace kiln::snapshotter {

std::string_view SnapshotKindName(SnapshotKind k) {
  switch (k) {
    case SnapshotKind::kActive:
      return "active";
    case SnapshotKind::kView:
      return "view";
    case SnapshotKind::kCommitted:
      return "committed";
  }
  return "unknown";
}

namespace {

int64_t ToNanos(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
Timestamp FromNanos(int64_t ns) {
  return Timestamp(std::chrono::duration_cast<Timestamp::duration>(std::chrono::nanoseconds(ns)));
}

struct Record {
  uint64_t id = 0;
  SnapshotKind kind = SnapshotKind::kActive;
  std::string parent;
  Timestamp created;
  Timestamp updated;
  Labels labels;
  SnapshotUsage usage;  // committed only
  bool flat = false;    // <id>/flat holds the whole chain
};

std::string EncodeRecord(const Record& r) {
  nlohmann::json j;
  j["id"] = r.id;
  j["kind"] = std::string(SnapshotKindName(r.kind));
  j["parent"] = r.parent;
  j["created"] = ToNanos(r.created);
  j["updated"] = ToNanos(r.updated);
  j["labels"] = r.labels;
  j["size"] = r.usage.size;
  j["inodes"] = r.usage.inodes;
  j["flat"] = r.flat;
  return j.dump();
}

absl::StatusOr<Record> DecodeRecord(std::string_view key, const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(StrCat("snapshot metadata for ", Quote(key), " is corrupt"));
  }
  Record r;
  r.id = j.value("id", uint64_t{0});
  std::string kind = j.value("kind", "");
  r.kind = kind == "committed" ? SnapshotKind::kCommitted
           : kind == "view"    ? SnapshotKind::kView
                               : SnapshotKind::kActive;
  r.parent = j.value("parent", "");
  r.created = FromNanos(j.value("created", int64_t{0}));
  r.updated = FromNanos(j.value("updated", int64_t{0}));
  if (j.contains("labels") && j["labels"].is_object()) {
    for (auto& [k, v] : j["labels"].items()) {
      if (v.is_string()) r.labels[k] = v.get<std::string>();
    }
  }
  r.usage.size = j.value("size", int64_t{0});
  r.usage.inodes = j.value("inodes", int64_t{0});
  r.flat = j.value("flat", false);
  return r;
}

std::string RecordKey(std::string_view key) { return StrCat("s/", key); }
std::string ChildKey(std::string_view parent, std::string_view child) {
  std::string k = StrCat("c/", parent);
  k.push_back('\0');
  k.append(child);
  return k;
}
constexpr char kNextIdKey[] = "n";

absl::Status LevelStatus(const leveldb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(StrCat(what, ": ", s.ToString()));
}

bool IsNumber(std::string_view s) {
  if (s.empty() || s.size() > 19) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

class LocalSnapshotter : public Snapshotter {
 public:
  LocalSnapshotter(std::string root, std::unique_ptr<leveldb::DB> db)
      : root_(std::move(root)), db_(std::move(db)) {}

  absl::Status Init() {
    KILN_RETURN_IF_ERROR(MakeDirs(root_ + "/trash", 0700));
    std::string v;
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), kNextIdKey, &v);
    if (s.ok()) next_id_ = std::strtoull(v.c_str(), nullptr, 10);
    // Directories from a crash may carry ids past the persisted counter: never reuse them.
    for (const std::string& name : ListNames(root_)) {
      if (IsNumber(name)) next_id_ = std::max<uint64_t>(next_id_, std::stoull(name) + 1);
    }
    for (const std::string& name : ListNames(root_ + "/trash")) {
      if (IsNumber(name)) next_id_ = std::max<uint64_t>(next_id_, std::stoull(name) + 1);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Mount>> Prepare(const std::string& key, const std::string& parent,
                                             const Labels& labels) override {
    return Create(key, parent, labels, SnapshotKind::kActive);
  }
  absl::StatusOr<std::vector<Mount>> View(const std::string& key, const std::string& parent,
                                          const Labels& labels) override {
    return Create(key, parent, labels, SnapshotKind::kView);
  }

  absl::StatusOr<std::vector<Mount>> Mounts(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    KILN_ASSIGN_OR_RETURN(Record r, Get(key));
    if (r.kind == SnapshotKind::kCommitted) {
      return absl::FailedPreconditionError(StrCat("mounts of snapshot ", Quote(key),
                                                  ": committed snapshots are not mountable; "
                                                  "make a view"));
    }
    return MountsFor(r);
  }

  absl::Status Commit(const std::string& name, const std::string& key,
                      const Labels& labels) override {
    std::lock_guard<std::mutex> lock(mu_);
    KILN_ASSIGN_OR_RETURN(Record r, Get(key));
    if (r.kind != SnapshotKind::kActive) {
      return absl::FailedPreconditionError(StrCat("commit ", Quote(key), ": snapshot is ",
                                                  SnapshotKindName(r.kind), ", not active"));
    }
    if (Exists(name))
      return absl::AlreadyExistsError(
          StrCat("commit ", Quote(key), " as ", Quote(name), ": exists"));
    KILN_ASSIGN_OR_RETURN(r.usage, DiskUsage(FsDir(r.id)));
    KILN_RETURN_IF_ERROR(BeforeCommit(r));
    r.kind = SnapshotKind::kCommitted;
    r.updated = std::chrono::system_clock::now();
    for (auto& [k, v] : labels) r.labels[k] = v;
    leveldb::WriteBatch batch;
    batch.Delete(RecordKey(key));
    batch.Put(RecordKey(name), EncodeRecord(r));
    if (!r.parent.empty()) {
      batch.Delete(ChildKey(r.parent, key));
      batch.Put(ChildKey(r.parent, name), "");
    }
    return WriteBatch(batch, StrCat("commit ", Quote(key)));
  }

  absl::Status Remove(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    KILN_ASSIGN_OR_RETURN(Record r, Get(key));
    std::vector<std::string> children = Children(key);
    if (!children.empty()) {
      std::string list;
      for (size_t i = 0; i < children.size() && i < 5; ++i)
        StrAppend(&list, i ? ", " : "", Quote(children[i]));
      return absl::FailedPreconditionError(StrCat("remove snapshot ", Quote(key), ": it has ",
                                                  children.size(), " child snapshot(s): ", list));
    }
    leveldb::WriteBatch batch;
    batch.Delete(RecordKey(key));
    if (!r.parent.empty()) batch.Delete(ChildKey(r.parent, key));
    KILN_RETURN_IF_ERROR(WriteBatch(batch, StrCat("remove ", Quote(key))));
    return Trash(r.id);
  }

  absl::StatusOr<SnapshotInfo> Stat(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    KILN_ASSIGN_OR_RETURN(Record r, Get(key));
    return Info(key, r);
  }

  absl::StatusOr<SnapshotUsage> Usage(const std::string& key) override {
    Record r;
    {
      std::lock_guard<std::mutex> lock(mu_);
      KILN_ASSIGN_OR_RETURN(r, Get(key));
    }
    if (r.kind == SnapshotKind::kCommitted) return r.usage;
    return DiskUsage(FsDir(r.id));
  }

  absl::Status Walk(const std::function<absl::Status(const SnapshotInfo&)>& fn) override {
    std::vector<SnapshotInfo> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      KILN_RETURN_IF_ERROR(ForEachRecord([&](const std::string& key, const Record& r) {
        all.push_back(Info(key, r));
        return absl::OkStatus();
      }));
    }
    for (const SnapshotInfo& info : all) KILN_RETURN_IF_ERROR(fn(info));
    return absl::OkStatus();
  }

  absl::Status Cleanup() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<uint64_t, Record> live;
    KILN_RETURN_IF_ERROR(ForEachRecord([&](const std::string&, const Record& r) {
      live[r.id] = r;
      return absl::OkStatus();
    }));
    for (const std::string& name : ListNames(root_)) {
      if (!IsNumber(name)) continue;
      uint64_t id = std::stoull(name);
      auto it = live.find(id);
      if (it == live.end()) {
        KILN_RETURN_IF_ERROR(Trash(id));
        continue;
      }
      std::string dir = Dir(id);
      KILN_RETURN_IF_ERROR(RemoveAll(dir + "/flat.tmp"));
      if (!it->second.flat) KILN_RETURN_IF_ERROR(RemoveAll(dir + "/flat"));
    }
    for (const std::string& name : ListNames(root_ + "/trash")) {
      KILN_RETURN_IF_ERROR(RemoveAll(StrCat(root_, "/trash/", name)));
    }
    return absl::OkStatus();
  }

 protected:
  std::string Dir(uint64_t id) const { return StrCat(root_, "/", id); }
  std::string FsDir(uint64_t id) const { return StrCat(root_, "/", id, "/fs"); }
  const std::string& root() const { return root_; }

  // Creates the directories of the new snapshot `r` (Dir(r.id) exists, empty).
  virtual absl::Status CreateDirs(const Record& r, const std::optional<Record>& parent) = 0;
  virtual absl::StatusOr<std::vector<Mount>> MountsFor(const Record& r) = 0;
  virtual absl::Status BeforeCommit(const Record& r) { return absl::OkStatus(); }

  absl::StatusOr<Record> Get(const std::string& key) {
    std::string v;
    leveldb::Status s = db_->Get(leveldb::ReadOptions(), RecordKey(key), &v);
    if (s.IsNotFound()) return absl::NotFoundError(StrCat("snapshot ", Quote(key), ": not found"));
    KILN_RETURN_IF_ERROR(LevelStatus(s, StrCat("read snapshot ", Quote(key))));
    return DecodeRecord(key, v);
  }

  absl::Status Put(const std::string& key, const Record& r) {
    leveldb::WriteBatch batch;
    batch.Put(RecordKey(key), EncodeRecord(r));
    return WriteBatch(batch, StrCat("update ", Quote(key)));
  }

 private:
  static std::vector<std::string> ListNames(const std::string& path) {
    std::vector<std::string> names;
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
      ::closedir(d);
    }
    return names;
  }

  bool Exists(const std::string& key) {
    std::string v;
    return db_->Get(leveldb::ReadOptions(), RecordKey(key), &v).ok();
  }

  std::vector<std::string> Children(const std::string& key) {
    std::vector<std::string> out;
    std::string prefix = ChildKey(key, "");
    std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      out.push_back(it->key().ToString().substr(prefix.size()));
    }
    return out;
  }

  absl::Status ForEachRecord(
      const std::function<absl::Status(const std::string&, const Record&)>& fn) {
    std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
    for (it->Seek("s/"); it->Valid() && it->key().starts_with("s/"); it->Next()) {
      std::string key = it->key().ToString().substr(2);
      KILN_ASSIGN_OR_RETURN(Record r, DecodeRecord(key, it->value().ToString()));
      KILN_RETURN_IF_ERROR(fn(key, r));
    }
    return LevelStatus(it->status(), "iterate snapshots");
  }

  absl::Status WriteBatch(leveldb::WriteBatch& batch, std::string_view what) {
    leveldb::WriteOptions wo;
    wo.sync = true;
    return LevelStatus(db_->Write(wo, &batch), what);
  }

  SnapshotInfo Info(const std::string& key, const Record& r) {
    return SnapshotInfo{key, r.kind, r.parent, r.created, r.updated, r.labels};
  }

  absl::Status Trash(uint64_t id) {
    std::string from = Dir(id);
    std::string to = StrCat(root_, "/trash/", id);
    if (::rename(from.c_str(), to.c_str()) != 0) {
      if (errno == ENOENT) return absl::OkStatus();
      return ErrnoStatus(StrCat("rename ", Quote(from), " to the trash"));
    }
    return RemoveAll(to);
  }

  absl::StatusOr<std::vector<Mount>> Create(const std::string& key, const std::string& parent,
                                            const Labels& labels, SnapshotKind kind) {
    if (key.empty()) return absl::InvalidArgumentError("snapshot key is empty");
    std::lock_guard<std::mutex> lock(mu_);
    if (Exists(key))
      return absl::AlreadyExistsError(StrCat("snapshot ", Quote(key), ": already exists"));
    std::optional<Record> parent_rec;
    if (!parent.empty()) {
      auto p = Get(parent);
      if (!p.ok()) return Annotate(p.status(), StrCat("prepare ", Quote(key)));
      if (p->kind != SnapshotKind::kCommitted) {
        return absl::FailedPreconditionError(
            StrCat("prepare ", Quote(key), ": parent ", Quote(parent), " is not committed"));
      }
      parent_rec = *p;
    }
    Record r;
    r.id = next_id_++;
    r.kind = kind;
    r.parent = parent;
    r.created = r.updated = std::chrono::system_clock::now();
    r.labels = labels;
    std::string dir = Dir(r.id);
    if (::mkdir(dir.c_str(), 0700) != 0) return ErrnoStatus(StrCat("mkdir ", Quote(dir)));
    absl::Status made = CreateDirs(r, parent_rec);
    if (!made.ok()) {
      (void)Trash(r.id);
      return Annotate(made, StrCat("prepare ", Quote(key)));
    }
    absl::StatusOr<std::vector<Mount>> mounts = MountsFor(r);
    if (!mounts.ok()) {
      (void)Trash(r.id);
      return mounts.status();
    }
    leveldb::WriteBatch batch;
    batch.Put(RecordKey(key), EncodeRecord(r));
    if (!parent.empty()) batch.Put(ChildKey(parent, key), "");
    batch.Put(kNextIdKey, std::to_string(next_id_));
    absl::Status s = WriteBatch(batch, StrCat("prepare ", Quote(key)));
    if (!s.ok()) {
      (void)Trash(r.id);
      return s;
    }
    return mounts;
  }

  std::string root_;
  std::unique_ptr<leveldb::DB> db_;
  std::mutex mu_;
  uint64_t next_id_ = 1;
};

// ---- overlay ----

class OverlaySnapshotter : public LocalSnapshotter {
 public:
  OverlaySnapshotter(std::string root, std::unique_ptr<leveldb::DB> db,
                     OverlaySnapshotterOptions opts)
      : LocalSnapshotter(std::move(root), std::move(db)), opts_(opts) {}

 protected:
  absl::Status CreateDirs(const Record& r, const std::optional<Record>& parent) override {
    std::string fs = FsDir(r.id);
    if (::mkdir(fs.c_str(), 0755) != 0) return ErrnoStatus(StrCat("mkdir ", Quote(fs)));
    if (r.kind == SnapshotKind::kActive && parent) {
      std::string work = Dir(r.id) + "/work";
      if (::mkdir(work.c_str(), 0700) != 0) return ErrnoStatus(StrCat("mkdir ", Quote(work)));
    }
    if (parent) {
      KILN_ASSIGN_OR_RETURN(auto stack, Stack(r.parent));
      // The new snapshot's own layer will sit on top once committed.
      size_t needed = stack.size() + (r.kind == SnapshotKind::kActive ? 1 : 0);
      if (needed > static_cast<size_t>(opts_.max_lower_layers)) {
        KILN_RETURN_IF_ERROR(Flatten(r.parent, stack));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Mount>> MountsFor(const Record& r) override {
    if (r.parent.empty()) {
      std::string opt = r.kind == SnapshotKind::kActive ? "rw" : "ro";
      return std::vector<Mount>{{"bind", FsDir(r.id), "", {"rbind", opt}}};
    }
    KILN_ASSIGN_OR_RETURN(auto stack, Stack(r.parent));
    if (r.kind == SnapshotKind::kView) {
      if (stack.size() == 1) return std::vector<Mount>{{"bind", stack[0], "", {"rbind", "ro"}}};
      return std::vector<Mount>{{"overlay",
                                 "overlay",
                                 "",
                                 {"ro", "index=off", "redirect_dir=off", "metacopy=off",
                                  StrCat("lowerdir=", absl::StrJoin(stack, ":"))}}};
    }
    return std::vector<Mount>{
        {"overlay",
         "overlay",
         "",
         {"index=off", "redirect_dir=off", "metacopy=off", StrCat("workdir=", Dir(r.id), "/work"),
          StrCat("upperdir=", FsDir(r.id)), StrCat("lowerdir=", absl::StrJoin(stack, ":"))}}};
  }

  absl::Status BeforeCommit(const Record& r) override {
    if (!opts_.sync_on_commit) return absl::OkStatus();
    KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenDirectory(FsDir(r.id)));
    if (::syncfs(fd.get()) != 0) return ErrnoStatus("syncfs");
    return absl::OkStatus();
  }

 private:
  // Lower directories of committed snapshot `key`'s whole chain, top first.
  absl::StatusOr<std::vector<std::string>> Stack(std::string key) {
    std::vector<std::string> out;
    while (!key.empty()) {
      KILN_ASSIGN_OR_RETURN(Record r, Get(key));
      if (r.flat) {
        out.push_back(Dir(r.id) + "/flat");
        break;
      }
      out.push_back(FsDir(r.id));
      key = r.parent;
    }
    return out;
  }

  absl::Status Flatten(const std::string& key, const std::vector<std::string>& stack) {
    KILN_ASSIGN_OR_RETURN(Record r, Get(key));
    std::string tmp = Dir(r.id) + "/flat.tmp";
    std::string flat = Dir(r.id) + "/flat";
    KILN_RETURN_IF_ERROR(RemoveAll(tmp));
    if (::mkdir(tmp.c_str(), 0755) != 0) return ErrnoStatus(StrCat("mkdir ", Quote(tmp)));
    std::vector<Mount> view = {{"overlay",
                                "overlay",
                                "",
                                {"ro", "index=off", "redirect_dir=off", "metacopy=off",
                                 StrCat("lowerdir=", absl::StrJoin(stack, ":"))}}};
    if (stack.size() == 1) view = {{"bind", stack[0], "", {"rbind", "ro"}}};
    KILN_RETURN_IF_ERROR_CTX(
        WithTempMount(view, root() + "/trash",
                      [&](const std::string& merged) { return CopyTree(merged, tmp); }),
        StrCat("flatten snapshot ", Quote(key)));
    KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenDirectory(tmp));
    if (::syncfs(fd.get()) != 0) return ErrnoStatus("syncfs");
    if (::rename(tmp.c_str(), flat.c_str()) != 0) return ErrnoStatus(StrCat("rename ", Quote(tmp)));
    r.flat = true;
    return Put(key, r);
  }

  OverlaySnapshotterOptions opts_;
};

// ---- naive ----

class NaiveSnapshotter : public LocalSnapshotter {
 public:
  using LocalSnapshotter::LocalSnapshotter;

 protected:
  absl::Status CreateDirs(const Record& r, const std::optional<Record>& parent) override {
    std::string fs = FsDir(r.id);
    if (::mkdir(fs.c_str(), 0755) != 0) return ErrnoStatus(StrCat("mkdir ", Quote(fs)));
    if (parent && r.kind == SnapshotKind::kActive) return CopyTree(FsDir(parent->id), fs);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Mount>> MountsFor(const Record& r) override {
    if (r.kind == SnapshotKind::kView) {
      std::string src = FsDir(r.id);
      if (!r.parent.empty()) {
        KILN_ASSIGN_OR_RETURN(Record p, Get(r.parent));
        src = FsDir(p.id);  // committed snapshots are immutable: no copy needed
      }
      return std::vector<Mount>{{"bind", src, "", {"rbind", "ro"}}};
    }
    return std::vector<Mount>{{"bind", FsDir(r.id), "", {"rbind", "rw"}}};
  }
};

absl::StatusOr<std::unique_ptr<leveldb::DB>> OpenDb(const std::string& dir) {
  KILN_RETURN_IF_ERROR(kiln::MakeDirs(dir, 0700));
  if (dir.find_first_of(",:") != std::string::npos) {
    return absl::InvalidArgumentError(
        StrCat("snapshotter root ", Quote(dir), " must not contain `,` or `:` (overlay options)"));
  }
  leveldb::Options options;
  options.create_if_missing = true;
  // Append to the existing MANIFEST and log at open instead of writing (and syncing) new
  // ones: every kilnctl run opens this database, and a fresh manifest costs three fsyncs.
  options.reuse_logs = true;
  leveldb::DB* db = nullptr;
  leveldb::Status s = leveldb::DB::Open(options, dir + "/metadata.db", &db);
  KILN_RETURN_IF_ERROR(LevelStatus(s, StrCat("open snapshot metadata in ", Quote(dir))));
  return std::unique_ptr<leveldb::DB>(db);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Snapshotter>> OpenOverlaySnapshotter(
    const std::string& root, const OverlaySnapshotterOptions& options) {
  if (options.max_lower_layers < 2 || options.max_lower_layers > kOverlayMaxStack) {
    return absl::InvalidArgumentError(
        StrCat("max_lower_layers must be in [2, ", kOverlayMaxStack, "]"));
  }
  std::string dir = root + "/snapshots";
  KILN_ASSIGN_OR_RETURN(auto db, OpenDb(dir));
  auto s = std::make_unique<OverlaySnapshotter>(dir, std::move(db), options);
  KILN_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Snapshotter>(std::move(s));
}

absl::StatusOr<std::unique_ptr<Snapshotter>> OpenNaiveSnapshotter(const std::string& root) {
  std::string dir = root + "/snapshots";
  KILN_ASSIGN_OR_RETURN(auto db, OpenDb(dir));
  auto s = std::make_unique<NaiveSnapshotter>(dir, std::move(db));
  KILN_RETURN_IF_ERROR(s->Init());
  return std::unique_ptr<Snapshotter>(std::move(s));
}

absl::Status CheckOverlaySupport(const std::string& scratch_dir) {
  if (::geteuid() != 0) return absl::PermissionDeniedError("overlayfs needs root");
  KILN_ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("ovl-probe-", scratch_dir));
  for (const char* d : {"/l1", "/l2", "/u", "/w", "/m"}) {
    KILN_RETURN_IF_ERROR(kiln::MakeDirs(dir.path() + d));
  }
  std::vector<Mount> m = {
      {"overlay",
       "overlay",
       "",
       {"index=off", "redirect_dir=off", "metacopy=off", StrCat("workdir=", dir.path(), "/w"),
        StrCat("upperdir=", dir.path(), "/u"),
        StrCat("lowerdir=", dir.path(), "/l1:", dir.path(), "/l2")}}};
  KILN_ASSIGN_OR_RETURN(ScopedMount mounted, ScopedMount::MountAll(m, dir.path() + "/m"));
  return mounted.Unmount();
}

}  // namespace kiln::snapshotter
