#include "engine/ops/local_source.h"

#include <cerrno>
#include <cstring>
#include <mutex>

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/pattern_match.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "engine/ops/session.h"
#include "engine/ops/source_op.h"
#include "engine/worker/worker.h"
#include "llb/caps.h"
#include "nlohmann/json.hpp"

namespace kiln::engine {
namespace {

absl::StatusOr<UniqueFd> OpenDirBeneath(int root, const std::string& rel) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, root, rel.empty() ? "." : rel.c_str(), &how, sizeof(how));
  if (fd < 0) return ErrnoStatus(StrCat("open directory ", Quote(rel.empty() ? "." : rel)));
  return UniqueFd(static_cast<int>(fd));
}

// The directory holding each path, reopened only when the walk moves to another directory.
class ParentCache {
 public:
  explicit ParentCache(int root) : root_(root) {}
  absl::StatusOr<int> For(const std::string& dir) {
    if (!fd_ || dir_ != dir) {
      fd_.Reset();
      KILN_ASSIGN_OR_RETURN(fd_, OpenDirBeneath(root_, dir));
      dir_ = dir;
    }
    return fd_.get();
  }

 private:
  int root_;
  UniqueFd fd_;
  std::string dir_;
};

std::pair<std::string, std::string> SplitPath(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

absl::Status CopyRegular(int sdir, int ddir, const std::string& base, const MirrorEntry& e) {
  int s = ::openat(sdir, base.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (s < 0) return ErrnoStatus(StrCat("open mirror file ", Quote(e.path)));
  UniqueFd src(s);
  struct stat st;
  if (::fstat(src.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::DataLossError(StrCat("mirror file ", Quote(e.path), " is not a regular file"));
  }
  int d = ::openat(ddir, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (d < 0) return ErrnoStatus(StrCat("create ", Quote(e.path)));
  UniqueFd dst(d);
  for (;;) {
    ssize_t n = ::copy_file_range(src.get(), nullptr, dst.get(), nullptr, 1 << 30, 0);
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
      char buf[1 << 16];
      for (;;) {
        ssize_t r = ::read(src.get(), buf, sizeof(buf));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return ErrnoStatus(StrCat("read ", Quote(e.path)));
        if (r == 0) break;
        if (::write(dst.get(), buf, static_cast<size_t>(r)) != r) {
          return ErrnoStatus(StrCat("write ", Quote(e.path)));
        }
      }
      break;
    }
    if (n < 0) return ErrnoStatus(StrCat("copy ", Quote(e.path)));
    if (n == 0) break;
  }
  KILN_RETURN_IF_ERROR(ApplyEntryMetadata(dst.get(), e));
  return absl::OkStatus();
}

class LocalSourceOp : public Op {
 public:
  LocalSourceOp(const OpEnv& env, std::string name, std::string session_id, LocalDirFilter filter,
                std::string shared_key_hint, bool differ_none)
      : worker_(env.worker),
        name_(std::move(name)),
        session_id_(std::move(session_id)),
        filter_(std::move(filter)),
        shared_key_hint_(std::move(shared_key_hint)),
        differ_none_(differ_none) {}

  absl::StatusOr<CacheMap> GetCacheMap(const OpContext& ctx) override {
    std::shared_ptr<LocalDirs> dirs = FindDirs(ctx.session);
    if (!dirs) {
      return absl::FailedPreconditionError(StrCat("local source ", Quote(name_),
                                                  ": could not access local files without a "
                                                  "session"));
    }
    auto* support = dynamic_cast<LocalDirsMirrorSupport*>(dirs.get());
    keeps_index_ = support != nullptr && support->KeepsMirrorIndex();
    std::string shared = support ? support->SharedKey(name_) : "";
    if (shared.empty()) {
      const std::string* id = ctx.session.FindFirst<std::string>(kSessionId);
      shared = StrCat("session:", id ? *id : session_id_);
    }
    mirror_dir_ = StrCat(worker_->LocalMirrorsDir(), "/", MirrorId(shared), "/tree");
    KILN_RETURN_IF_ERROR(MakeDirs(PathDir(mirror_dir_), 0700));

    std::shared_ptr<std::mutex> mu = MirrorMutex(mirror_dir_);
    std::lock_guard<std::mutex> lock(*mu);
    if (differ_none_ && ::unlink(MirrorIndexPath(mirror_dir_).c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(StrCat("remove ", Quote(MirrorIndexPath(mirror_dir_))));
    }
    {
      ProgressTask task(ctx.progress, StrCat("transferring ", name_, ":"));
      KILN_RETURN_IF_ERROR(dirs->Sync(name_, filter_, mirror_dir_, ctx.cancel));
    }
    KILN_ASSIGN_OR_RETURN(MirrorIndex index, Index(ctx.cancel));
    digest_ = MirrorContentDigest(index);
    CacheMap cm;
    cm.digest = SourceCacheDigest(StrCat("local:", digest_.str()));
    return cm;
  }

  absl::StatusOr<std::vector<ResultRef>> Exec(const OpContext& ctx,
                                              std::span<const ResultRef>) override {
    if (mirror_dir_.empty()) KILN_RETURN_IF_ERROR(GetCacheMap(ctx).status());
    std::shared_ptr<std::mutex> mu = MirrorMutex(mirror_dir_);
    std::lock_guard<std::mutex> lock(*mu);
    KILN_ASSIGN_OR_RETURN(MirrorIndex index, Index(ctx.cancel));
    if (MirrorContentDigest(index) != digest_) {
      return absl::AbortedError(
          StrCat("local source ", Quote(name_),
                 ": the directory changed while this build was running (another build synced "
                 "different content into its mirror); run the build again"));
    }
    auto ref =
        WriteNewSnapshot(*worker_, StrCat("local source for ", name_), [&](const std::string& dir) {
          return MaterializeMirror(mirror_dir_, index, dir, keeps_index_, ctx.cancel);
        });
    if (!ref.ok()) return Annotate(ref.status(), StrCat("local source ", Quote(name_)));
    return std::vector<ResultRef>{std::move(*ref)};
  }

 private:
  std::shared_ptr<LocalDirs> FindDirs(const SessionGroup& session) const {
    std::vector<const std::any*> dirs = session.Find(kSessionLocalDirs);
    std::vector<const std::any*> ids = session.Find(kSessionId);
    // Prefer the session the op names; fall back to any (BuildKit does the same).
    if (!session_id_.empty() && ids.size() == dirs.size()) {
      for (size_t i = 0; i < ids.size(); ++i) {
        const auto* id = std::any_cast<std::string>(ids[i]);
        const auto* d = std::any_cast<std::shared_ptr<LocalDirs>>(dirs[i]);
        if (id && d && *d && *id == session_id_) return *d;
      }
    }
    for (const std::any* v : dirs) {
      if (const auto* d = std::any_cast<std::shared_ptr<LocalDirs>>(v); d && *d) return *d;
    }
    return nullptr;
  }

  std::string MirrorId(const std::string& shared) const {
    nlohmann::ordered_json j;
    j["name"] = name_;
    j["hint"] = shared_key_hint_;
    j["shared"] = shared;
    j["include"] = filter_.include_patterns;
    j["exclude"] = filter_.exclude_patterns;
    j["follow"] = filter_.follow_paths;
    return std::string(Digest::Sha256Of(j.dump()).hex().substr(0, 32));
  }

  absl::StatusOr<MirrorIndex> Index(const CancelToken& cancel) const {
    if (keeps_index_) {
      auto index = LoadMirrorIndex(mirror_dir_);
      if (index.ok()) return index;
      if (!absl::IsNotFound(index.status()) && !absl::IsDataLoss(index.status())) {
        return index.status();
      }
    }
    return ScanMirror(mirror_dir_, cancel);
  }

  Worker* worker_;
  std::string name_;
  std::string session_id_;
  LocalDirFilter filter_;
  std::string shared_key_hint_;
  bool differ_none_;
  // Set by GetCacheMap.
  std::string mirror_dir_;
  bool keeps_index_ = false;
  Digest digest_;
};

}  // namespace

absl::Status MaterializeMirror(const std::string& mirror_dir, const MirrorIndex& index,
                               const std::string& dest, bool hardlink, const CancelToken& cancel) {
  int s = ::open(mirror_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (s < 0) return ErrnoStatus(StrCat("open mirror ", Quote(mirror_dir)));
  UniqueFd src_root(s);
  int d = ::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (d < 0) return ErrnoStatus(StrCat("open ", Quote(dest)));
  UniqueFd dst_root(d);
  ParentCache src_parents(src_root.get()), dst_parents(dst_root.get());
  size_t n = 0;
  for (const MirrorEntry& e : index.entries) {
    if ((++n & 255) == 0) KILN_RETURN_IF_ERROR(cancel.Check());
    auto [dir, base] = SplitPath(e.path);
    if (base.empty() || base == "." || base == "..") {
      return absl::DataLossError(StrCat("mirror index: bad path ", Quote(e.path)));
    }
    KILN_ASSIGN_OR_RETURN(int dparent, dst_parents.For(dir));
    switch (e.type) {
      case MirrorEntry::Type::kDir:
        if (::mkdirat(dparent, base.c_str(), 0700) != 0) {
          return ErrnoStatus(StrCat("mkdir ", Quote(e.path)));
        }
        break;
      case MirrorEntry::Type::kSymlink: {
        KILN_RETURN_IF_ERROR(CreateEntrySymlink(dparent, base, e));
        break;
      }
      case MirrorEntry::Type::kFile: {
        if (!e.hardlink.empty()) {
          // Another name of an earlier file: linked to what this tree already holds for it.
          auto [first_dir, first_base] = SplitPath(e.hardlink);
          KILN_ASSIGN_OR_RETURN(UniqueFd first_parent, OpenDirBeneath(dst_root.get(), first_dir));
          if (::linkat(first_parent.get(), first_base.c_str(), dparent, base.c_str(), 0) == 0) {
            break;
          }
          if (errno != EMLINK) {
            return ErrnoStatus(StrCat("link ", Quote(e.path), " to ", Quote(e.hardlink)));
          }
        }
        KILN_ASSIGN_OR_RETURN(int sparent, src_parents.For(dir));
        if (hardlink) {
          if (::linkat(sparent, base.c_str(), dparent, base.c_str(), 0) == 0) break;
          if (errno != EXDEV && errno != EMLINK && errno != EPERM) {
            return ErrnoStatus(StrCat("link ", Quote(e.path)));
          }
        }
        KILN_RETURN_IF_ERROR(CopyRegular(sparent, dparent, base, e));
        break;
      }
    }
  }
  // Directory metadata last, deepest first: creating entries changes a directory's mtime.
  for (size_t i = index.entries.size(); i-- > 0;) {
    const MirrorEntry& e = index.entries[i];
    if (e.type != MirrorEntry::Type::kDir) continue;
    KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenDirBeneath(dst_root.get(), e.path));
    KILN_RETURN_IF_ERROR(ApplyEntryMetadata(fd.get(), e));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Op>> NewLocalSourceOp(const LlbOp& op, const OpEnv& env) {
  const pb::SourceOp& src = op.op.source();
  KILN_ASSIGN_OR_RETURN(auto parts, SplitSourceIdentifier(src.identifier()));
  SourceAttrs attrs(src);
  std::string name = parts.second;
  if (name.empty()) return attrs.Invalid("identifier", "a local source needs a name");
  std::string session = attrs.Get(llb::kAttrLocalSessionID);
  if (size_t colon = session.find(':'); colon != std::string::npos) {
    name = StrCat(session.substr(0, colon), "-", name);
    session = session.substr(colon + 1);
  }
  LocalDirFilter filter;
  KILN_ASSIGN_OR_RETURN(filter.include_patterns, attrs.StringList(llb::kAttrIncludePatterns));
  KILN_ASSIGN_OR_RETURN(filter.exclude_patterns, attrs.StringList(llb::kAttrExcludePatterns));
  KILN_ASSIGN_OR_RETURN(filter.follow_paths, attrs.StringList(llb::kAttrFollowPaths));
  const std::string differ = attrs.Get(llb::kAttrLocalDiffer);
  if (!(differ.empty() || differ == llb::kAttrLocalDifferMetadata ||
        differ == llb::kAttrLocalDifferNone)) {
    return attrs.Invalid(llb::kAttrLocalDiffer, "want metadata or none");
  }
  return std::unique_ptr<Op>(
      new LocalSourceOp(env, std::move(name), std::move(session), std::move(filter),
                        attrs.Get(llb::kAttrSharedKeyHint), differ == llb::kAttrLocalDifferNone));
}

}  // namespace kiln::engine
