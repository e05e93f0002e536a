#include "engine/ops/diff_op.h"

#include <cstring>
#include <optional>
#include <set>

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/copy_tree.h"
#include "engine/ops/copy_util.h"
#include "engine/ops/file_tree.h"
#include "engine/worker/worker.h"
#include "llb/dump.h"

namespace kiln::engine {
namespace {

constexpr char kDiffCacheType[] = "buildkit.diff.v0";

absl::StatusOr<bool> SameContent(const EntryRef& a, const EntryRef& b, const CancelToken& cancel) {
  UniqueFd fa(::openat(a.dir, a.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  UniqueFd fb(::openat(b.dir, b.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fa || !fb) return ErrnoStatus(StrCat("open ", Quote(a.name)));
  std::string ba(1 << 16, '\0'), bb(1 << 16, '\0');
  for (;;) {
    KILN_RETURN_IF_ERROR(cancel.Check());
    ssize_t na = ::read(fa.get(), ba.data(), ba.size());
    if (na < 0) return ErrnoStatus(StrCat("read ", Quote(a.name)));
    size_t got = 0;
    while (got < static_cast<size_t>(na)) {
      ssize_t nb = ::read(fb.get(), bb.data() + got, static_cast<size_t>(na) - got);
      if (nb < 0) return ErrnoStatus(StrCat("read ", Quote(b.name)));
      if (nb == 0) return false;
      got += static_cast<size_t>(nb);
    }
    if (na == 0) {
      char c;
      return ::read(fb.get(), &c, 1) == 0;
    }
    if (std::memcmp(ba.data(), bb.data(), static_cast<size_t>(na)) != 0) return false;
  }
}

absl::StatusOr<std::string> LinkTarget(const EntryRef& e, const struct stat& st) {
  std::string t(static_cast<size_t>(st.st_size) + 1, '\0');
  ssize_t n = ::readlinkat(e.dir, e.name.c_str(), t.data(), t.size());
  if (n < 0) return ErrnoStatus(StrCat("read link ", Quote(e.name)));
  t.resize(static_cast<size_t>(n));
  return t;
}

absl::StatusOr<bool> Changed(const EntryRef& lo, const struct stat& l, const EntryRef& up,
                             const struct stat& u, const CancelToken& cancel) {
  if ((l.st_mode & S_IFMT) != (u.st_mode & S_IFMT)) return true;
  if ((l.st_mode & 07777) != (u.st_mode & 07777) || l.st_uid != u.st_uid || l.st_gid != u.st_gid) {
    return true;
  }
  if (!S_ISDIR(u.st_mode) &&
      (l.st_mtim.tv_sec != u.st_mtim.tv_sec || l.st_mtim.tv_nsec != u.st_mtim.tv_nsec)) {
    return true;
  }
  if ((S_ISCHR(u.st_mode) || S_ISBLK(u.st_mode)) && l.st_rdev != u.st_rdev) return true;
  KILN_ASSIGN_OR_RETURN(XattrList lx, ReadXattrs(lo));
  KILN_ASSIGN_OR_RETURN(XattrList ux, ReadXattrs(up));
  if (lx != ux) return true;
  if (S_ISLNK(u.st_mode)) {
    KILN_ASSIGN_OR_RETURN(std::string a, LinkTarget(lo, l));
    KILN_ASSIGN_OR_RETURN(std::string b, LinkTarget(up, u));
    return a != b;
  }
  if (S_ISREG(u.st_mode)) {
    if (l.st_size != u.st_size) return true;
    if (u.st_mtim.tv_nsec == 0) {
      KILN_ASSIGN_OR_RETURN(bool same, SameContent(lo, up, cancel));
      return !same;
    }
  }
  if (S_ISDIR(u.st_mode) &&
      (l.st_mtim.tv_sec != u.st_mtim.tv_sec || l.st_mtim.tv_nsec != u.st_mtim.tv_nsec)) {
    return true;
  }
  return false;
}

class TreeDiff {
 public:
  TreeDiff(const RootDir& out, const CancelToken& cancel)
      : out_(out), cancel_(cancel), cloner_(out, /*skip_whiteouts=*/false, cancel) {}

  // Compares the directories `lower` (-1: absent) and `upper` whose path is `rel`.
  absl::Status CompareDirs(int lower, int upper, const std::string& rel) {
    std::set<std::string> names;
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> un, ListDirSorted(upper));
    names.insert(un.begin(), un.end());
    std::set<std::string> in_upper(un.begin(), un.end());
    if (lower >= 0) {
      KILN_ASSIGN_OR_RETURN(std::vector<std::string> ln, ListDirSorted(lower));
      names.insert(ln.begin(), ln.end());
    }
    for (const std::string& n : names) {
      KILN_RETURN_IF_ERROR(cancel_.Check());
      const std::string crel = JoinRel(rel, n);
      EntryRef up{upper, n};
      std::optional<struct stat> l;
      if (lower >= 0) {
        auto s = StatEntry(EntryRef{lower, n});
        if (s.ok()) l = *s;
      }
      if (!in_upper.count(n)) {
        KILN_RETURN_IF_ERROR(EnsureParents());
        KILN_ASSIGN_OR_RETURN(auto parent, out_.OpenParent(crel));
        if (::mknodat(parent.first.get(), parent.second.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
          return ErrnoStatus(StrCat("create whiteout ", Quote(StrCat("/", crel))));
        }
        continue;
      }
      KILN_ASSIGN_OR_RETURN(struct stat u, StatEntry(up));
      if (l && S_ISDIR(l->st_mode) && S_ISDIR(u.st_mode)) {
        EntryRef lo{lower, n};
        KILN_ASSIGN_OR_RETURN(bool changed, Changed(lo, *l, up, u, cancel_));
        KILN_ASSIGN_OR_RETURN(UniqueFd lsub, OpenDirEntry(lo));
        KILN_ASSIGN_OR_RETURN(UniqueFd usub, OpenDirEntry(up));
        pending_.push_back(Pending{usub.get(), u, crel, false});
        absl::Status s = changed ? EnsureParents() : absl::OkStatus();
        if (s.ok()) s = CompareDirs(lsub.get(), usub.get(), crel);
        if (s.ok() && pending_.back().created) s = FixDirMetadata(pending_.back());
        pending_.pop_back();
        KILN_RETURN_IF_ERROR(s);
        continue;
      }
      if (l) {
        KILN_ASSIGN_OR_RETURN(bool changed, Changed(EntryRef{lower, n}, *l, up, u, cancel_));
        if (!changed) continue;
      }
      KILN_RETURN_IF_ERROR(EnsureParents());
      KILN_RETURN_IF_ERROR(cloner_.Clone(up, crel));
    }
    return absl::OkStatus();
  }

 private:
  struct Pending {
    int upper_fd;
    struct stat st;
    std::string rel;
    bool created;
  };

  // Creates the pending parent directories of a change, with upper's metadata.
  absl::Status EnsureParents() {
    for (Pending& p : pending_) {
      if (p.created) continue;
      KILN_ASSIGN_OR_RETURN(auto parent, out_.OpenParent(p.rel));
      if (::mkdirat(parent.first.get(), parent.second.c_str(), 0700) != 0) {
        return ErrnoStatus(StrCat("mkdir ", Quote(StrCat("/", p.rel))));
      }
      p.created = true;
    }
    return absl::OkStatus();
  }

  // Directory metadata is applied after its children (their creation moves the mtime).
  absl::Status FixDirMetadata(const Pending& p) {
    KILN_ASSIGN_OR_RETURN(auto parent, out_.OpenParent(p.rel));
    return cloner_.CopyMetadata(EntryRef{p.upper_fd, ""}, p.st,
                                EntryRef{parent.first.get(), parent.second});
  }

  const RootDir& out_;
  const CancelToken& cancel_;
  TreeCloner cloner_;
  std::vector<Pending> pending_;
};

class DiffOp : public Op {
 public:
  DiffOp(LlbOp op, OpEnv env) : llb_(std::move(op)), env_(env) {}

  absl::StatusOr<CacheMap> GetCacheMap(const OpContext&) override {
    CacheMap cm;
    cm.digest = Digest::Sha256Of(
        StrCat("{\"Type\":\"", kDiffCacheType, "\",\"Diff\":", llb::GoJson(llb_.op.diff()), "}"));
    cm.deps.resize(llb_.op.inputs_size());
    return cm;
  }

  absl::StatusOr<std::vector<ResultRef>> Exec(const OpContext& ctx,
                                              std::span<const ResultRef> inputs) override {
    Worker& w = *env_.worker;
    auto pick = [&](int64_t idx) -> absl::StatusOr<ResultRef> {
      if (idx == -1) return ResultRef();
      if (idx < 0 || idx >= static_cast<int64_t>(inputs.size())) {
        return absl::InvalidArgumentError(StrCat("diff: invalid input index ", idx));
      }
      const ResultRef& r = inputs[idx];
      return SnapshotKeyOf(r).empty() ? ResultRef() : r;
    };
    KILN_ASSIGN_OR_RETURN(ResultRef lower, pick(llb_.op.diff().lower().input()));
    KILN_ASSIGN_OR_RETURN(ResultRef upper, pick(llb_.op.diff().upper().input()));
    if (!lower) return std::vector<ResultRef>{upper ? upper : w.EmptyResult()};
    if (upper && SnapshotKeyOf(lower) == SnapshotKeyOf(upper)) {
      return std::vector<ResultRef>{w.EmptyResult()};
    }
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<ReadTree> lo, ReadTree::Open(w, lower));
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<ReadTree> up, ReadTree::Open(w, upper));
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<WriteTree> out,
                          WriteTree::Prepare(w, nullptr, llb_.Name()));
    KILN_RETURN_IF_ERROR(WriteTreeDiff(lo->root(), up->root(), out->root(), ctx.cancel));
    lo.reset();
    up.reset();
    KILN_ASSIGN_OR_RETURN(ResultRef r, out->Commit());
    return std::vector<ResultRef>{r};
  }

 private:
  LlbOp llb_;
  OpEnv env_;
};

}  // namespace

absl::Status WriteTreeDiff(const RootDir& lower, const RootDir& upper, const RootDir& out,
                           const CancelToken& cancel) {
  TreeDiff diff(out, cancel);
  return diff.CompareDirs(lower.fd(), upper.fd(), "");
}

absl::StatusOr<std::unique_ptr<Op>> NewDiffOp(const LlbOp& op, const OpEnv& env) {
  if (!op.op.has_diff()) return absl::InvalidArgumentError("not a diff op");
  if (env.worker == nullptr) return absl::FailedPreconditionError("diff op needs a worker");
  return std::unique_ptr<Op>(new DiffOp(op, env));
}

}  // namespace kiln::engine
