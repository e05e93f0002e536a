#include "engine/ops/copy_tree.h"

#include <map>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_split.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/copy_util.h"

namespace kiln::engine {
namespace {

std::string Slash(std::string_view rel) { return StrCat("/", rel); }

std::string DirRel(std::string_view rel) {
  size_t slash = rel.rfind('/');
  return slash == std::string_view::npos ? std::string() : std::string(rel.substr(0, slash));
}

// A destination entry: its parent directory opened under the root, and its name ("" for the
// root itself, then `dir` is the root).
struct DstEntry {
  UniqueFd dir;
  std::string name;
  EntryRef ref() const { return EntryRef{dir.get(), name}; }
};

absl::StatusOr<DstEntry> OpenDst(const RootDir& root, const std::string& rel) {
  DstEntry e;
  if (rel.empty()) {
    KILN_ASSIGN_OR_RETURN(e.dir, root.OpenResolved("", O_RDONLY | O_DIRECTORY));
    return e;
  }
  KILN_ASSIGN_OR_RETURN(auto parent, root.OpenParent(rel));
  e.dir = std::move(parent.first);
  e.name = std::move(parent.second);
  return e;
}

std::optional<struct stat> LstatOpt(const EntryRef& e) {
  auto st = StatEntry(e);
  if (!st.ok()) return std::nullopt;
  return *st;
}

class Copier {
 public:
  Copier(const RootDir& dst_root, const CopyOptions& o) : dst_(dst_root), o_(o) {}

  absl::Status CopyTop(int src_dir, const std::string& src_name, const std::string& dst_rel) {
    return Copy(src_dir, src_name, "", dst_rel, /*overwrite=*/false, PathFilter::State{});
  }

 private:
  struct ParentDir {
    int src_fd;  // the open source directory (borrowed from the recursion)
    struct stat st;
    std::string dst_rel;
    bool copied;
  };

  bool Filtering() const { return o_.filter != nullptr && !o_.filter->empty(); }

  absl::Status Copy(int sdir, const std::string& sname, const std::string& comps,
                    const std::string& drel, bool overwrite, const PathFilter::State& parent) {
    KILN_RETURN_IF_ERROR(o_.cancel.Check());
    const EntryRef src{sdir, sname};
    KILN_ASSIGN_OR_RETURN(struct stat st, StatEntry(src));
    const bool is_dir = S_ISDIR(st.st_mode);

    bool include = true;
    PathFilter::State state;
    if (!comps.empty() && Filtering()) {
      PathFilter::Decision d = o_.filter->Check(comps, is_dir, parent);
      if (!d.include && !d.descend) return absl::OkStatus();
      include = d.include;
      state = std::move(d.state);
    }

    if (!is_dir && !include) return absl::OkStatus();
    if (!include) {
      // A directory an include pattern may still reach into: its destination is made only
      // when something below it is copied.
      return CopyDirectory(src, st, comps, drel, nullptr, overwrite, false, state).status();
    }
    KILN_RETURN_IF_ERROR(CreateParentDirs(overwrite));

    KILN_ASSIGN_OR_RETURN(DstEntry dst, OpenDst(dst_, drel));
    std::optional<struct stat> target = LstatOpt(dst.ref());
    if (o_.always_replace_existing_dest_paths && target && !(is_dir && S_ISDIR(target->st_mode))) {
      KILN_RETURN_IF_ERROR(RemoveEntry(dst.dir.get(), dst.name));
      target.reset();
    }

    if (!is_dir && target) {
      if (S_ISDIR(target->st_mode)) {
        return absl::FailedPreconditionError(
            StrCat("cannot replace to directory ", Slash(drel), " with file"));
      }
      if (::unlinkat(dst.dir.get(), dst.name.c_str(), 0) != 0) {
        return ErrnoStatus(StrCat("remove ", Quote(Slash(drel))));
      }
    }

    bool copy_info = include;
    bool restore_times = false;
    if (is_dir) {
      KILN_ASSIGN_OR_RETURN(bool created,
                            CopyDirectory(src, st, comps, drel, &dst, overwrite, true, state));
      if (!overwrite) {
        copy_info = created;
        restore_times = !created;
      }
    } else if (S_ISREG(st.st_mode)) {
      KILN_RETURN_IF_ERROR(CopyRegular(src, st, drel, dst));
    } else {
      KILN_RETURN_IF_ERROR(CreateSpecialLike(src, st, dst.ref()));
    }

    if (copy_info) {
      KILN_RETURN_IF_ERROR(CopyFileInfo(st, dst.ref()));
      KILN_ASSIGN_OR_RETURN(XattrList x, ReadXattrs(src));
      WriteXattrs(dst.ref(), x);
    } else if (restore_times && target) {
      KILN_RETURN_IF_ERROR(CopyTimes(st, dst.ref()));
    }
    return absl::OkStatus();
  }

  absl::Status CopyRegular(const EntryRef& src, const struct stat& st, const std::string& drel,
                           const DstEntry& dst) {
    if (st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto it = inodes_.find(key);
      if (it != inodes_.end()) {
        KILN_ASSIGN_OR_RETURN(DstEntry first, OpenDst(dst_, it->second));
        if (::linkat(first.dir.get(), first.name.c_str(), dst.dir.get(), dst.name.c_str(), 0) !=
            0) {
          return ErrnoStatus(StrCat("hard link ", Quote(Slash(drel))));
        }
        return absl::OkStatus();
      }
      inodes_.emplace(key, drel);
    }
    return CopyFileContent(src, dst.ref(), o_.cancel);
  }

  // fsutil copyFileInfo: owner (the forced one or the source's), permission bits (not on
  // symlinks), times.
  absl::Status CopyFileInfo(const struct stat& st, const EntryRef& dst) {
    uint32_t uid = o_.owner ? o_.owner->uid : st.st_uid;
    uint32_t gid = o_.owner ? o_.owner->gid : st.st_gid;
    KILN_RETURN_IF_ERROR(ChownEntry(dst, uid, gid));
    if (!S_ISLNK(st.st_mode)) {
      mode_t m = st.st_mode & 07777;
      if (o_.mode_str) {
        m = o_.mode_str->Apply(m, S_ISDIR(st.st_mode));
      } else if (o_.mode) {
        m = (m & ~mode_t{0777}) | (*o_.mode & 0777);
      }
      KILN_RETURN_IF_ERROR(ChmodEntry(dst, m));
    }
    return CopyTimes(st, dst);
  }

  absl::Status CopyTimes(const struct stat& st, const EntryRef& dst) {
    if (o_.time) return SetEntryTimes(dst, *o_.time, *o_.time);
    return SetEntryTimes(dst, st.st_atim, st.st_mtim);
  }

  // fsutil copyDirectoryOnly: true when the directory was created.
  absl::StatusOr<bool> CopyDirectoryOnly(const struct stat& st, const std::string& drel,
                                         const DstEntry& dst, bool overwrite) {
    std::optional<struct stat> t = LstatOpt(dst.ref());
    if (!t) {
      if (::mkdirat(dst.dir.get(), dst.name.c_str(), st.st_mode & 07777) != 0) {
        return ErrnoStatus(StrCat("mkdir ", Quote(Slash(drel))));
      }
      return true;
    }
    if (!S_ISDIR(t->st_mode)) {
      return absl::FailedPreconditionError(StrCat("cannot copy to non-directory: ", Slash(drel)));
    }
    if (overwrite) KILN_RETURN_IF_ERROR(ChmodEntry(dst.ref(), st.st_mode & 07777));
    return false;
  }

  absl::StatusOr<bool> CopyDirectory(const EntryRef& src, const struct stat& st,
                                     const std::string& comps, const std::string& drel,
                                     const DstEntry* dst, bool overwrite, bool include,
                                     const PathFilter::State& state) {
    KILN_ASSIGN_OR_RETURN(UniqueFd dirfd, OpenDirEntry(src));
    bool created = false;
    ParentDir pd{dirfd.get(), st, drel, false};
    if (include) {
      KILN_ASSIGN_OR_RETURN(created, CopyDirectoryOnly(st, drel, *dst, overwrite));
      pd.copied = true;
    }
    parents_.push_back(pd);
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirSorted(dirfd.get()));
    absl::Status s;
    for (const std::string& n : names) {
      s = Copy(dirfd.get(), n, comps.empty() ? n : StrCat(comps, "/", n), JoinRel(drel, n),
               /*overwrite=*/true, state);
      if (!s.ok()) break;
    }
    parents_.pop_back();
    KILN_RETURN_IF_ERROR(s);
    return created;
  }

  // Delayed creation of the parents of an entry an include pattern selected.
  absl::Status CreateParentDirs(bool overwrite) {
    for (ParentDir& pd : parents_) {
      if (pd.copied) continue;
      KILN_ASSIGN_OR_RETURN(DstEntry dst, OpenDst(dst_, pd.dst_rel));
      KILN_ASSIGN_OR_RETURN(bool created, CopyDirectoryOnly(pd.st, pd.dst_rel, dst, overwrite));
      if (created) {
        KILN_RETURN_IF_ERROR(CopyFileInfo(pd.st, dst.ref()));
        KILN_ASSIGN_OR_RETURN(XattrList x, ReadXattrs(EntryRef{pd.src_fd, ""}));
        WriteXattrs(dst.ref(), x);
      }
      pd.copied = true;
    }
    return absl::OkStatus();
  }

  const RootDir& dst_;
  const CopyOptions& o_;
  std::vector<ParentDir> parents_;
  std::map<std::pair<dev_t, ino_t>, std::string> inodes_;
};

std::pair<std::string, std::string> SplitWildcards(std::string_view p) {
  std::string cleaned = CleanPath(p);
  std::vector<std::string> p1, p2;
  bool found = false;
  bool first = true;
  for (absl::string_view part : absl::StrSplit(ToAbsl(cleaned), '/')) {
    std::string s(part.data(), part.size());
    if (!found && ContainsWildcards(s)) found = true;
    if (s.empty() && first) s.assign(1, '/');  // assign(1, c): GCC 12 -Wrestrict false positive
    first = false;
    (found ? p2 : p1).push_back(std::move(s));
  }
  auto join = [](const std::vector<std::string>& parts) {
    std::string out;
    for (const std::string& s : parts) {
      if (s.empty()) continue;
      if (!out.empty() && out.back() != '/') out.push_back('/');
      out += s;
    }
    return out.empty() ? out : CleanPath(out);
  };
  return {join(p1), join(p2)};
}

size_t ComponentCount(std::string_view p) {
  size_t n = 1;
  for (char c : p) n += c == '/';
  return n;
}

// filepath.Walk from `base` in lexical order, collecting entries whose path relative to `base`
// matches `pattern`; a matching directory is not entered.  Entries deeper than the pattern's
// component count cannot match ('*' never matches '/'), so the walk stops there.
absl::Status WalkMatches(int dirfd, const std::string& rel_from_base, const std::string& base_rel,
                         const std::string& pattern, size_t depth, size_t max_depth,
                         std::vector<std::string>* out) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirSorted(dirfd));
  for (const std::string& n : names) {
    std::string rel = rel_from_base.empty() ? n : StrCat(rel_from_base, "/", n);
    KILN_ASSIGN_OR_RETURN(struct stat st, StatEntry(EntryRef{dirfd, n}));
    auto m = GlobMatch(pattern, rel);
    if (m.ok() && *m) {
      out->push_back(JoinRel(base_rel, rel));
      continue;
    }
    if (S_ISDIR(st.st_mode) && depth < max_depth) {
      KILN_ASSIGN_OR_RETURN(UniqueFd sub, OpenDirEntry(EntryRef{dirfd, n}));
      KILN_RETURN_IF_ERROR(
          WalkMatches(sub.get(), rel, base_rel, pattern, depth + 1, max_depth, out));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool ContainsWildcards(std::string_view name) {
  for (size_t i = 0; i < name.size(); ++i) {
    char ch = name[i];
    if (ch == '\\') {
      ++i;
    } else if (ch == '*' || ch == '?' || ch == '[') {
      return true;
    }
  }
  return false;
}

absl::StatusOr<std::string> ResolveSourcePath(const RootDir& root, std::string_view p,
                                              bool follow_links) {
  std::string clean = CleanPath(StrCat("/", p));
  if (clean == "/") return std::string();
  if (follow_links) return root.Resolve(clean, true);
  auto [dir, file] = SplitPath(clean);
  KILN_ASSIGN_OR_RETURN(std::string parent, root.Resolve(dir, true));
  return JoinRel(parent, file);
}

absl::StatusOr<std::vector<std::string>> ResolveWildcards(const RootDir& root, std::string_view src,
                                                          bool follow_links) {
  auto [d1, d2] = SplitWildcards(src);
  if (d2.empty()) return std::vector<std::string>{d1};
  KILN_ASSIGN_OR_RETURN(std::string base, ResolveSourcePath(root, d1, follow_links));
  KILN_ASSIGN_OR_RETURN(std::optional<struct stat> st, root.Lstat(base));
  if (!st) return absl::NotFoundError(StrCat("lstat ", Slash(base), ": no such file or directory"));
  std::vector<std::string> out;
  if (!S_ISDIR(st->st_mode)) return out;
  KILN_ASSIGN_OR_RETURN(UniqueFd dir, root.OpenResolved(base, O_RDONLY | O_DIRECTORY));
  KILN_RETURN_IF_ERROR(WalkMatches(dir.get(), "", base, d2, 1, ComponentCount(d2), &out));
  return out;
}

absl::Status CopyPath(const RootDir& src_root, std::string_view src, const RootDir& dst_root,
                      std::string_view dst, const CopyOptions& o) {
  // Parents of the destination (and the destination itself when it ends in "/").
  std::string ensure(dst);
  if (auto [d, f] = SplitPath(dst); !f.empty() && f != ".") ensure = d;
  if (!ensure.empty()) {
    KILN_ASSIGN_OR_RETURN(std::string r, dst_root.Resolve(ensure, true));
    KILN_RETURN_IF_ERROR(MkdirAllInRoot(dst_root, r, 0755, o.owner, o.time).status());
  }
  KILN_ASSIGN_OR_RETURN(std::string dst_rel, dst_root.Resolve(CleanPath(dst), true));
  KILN_ASSIGN_OR_RETURN(std::string src_rel, ResolveSourcePath(src_root, src, o.follow_links));

  // fsutil prepareTargetDir.
  KILN_ASSIGN_OR_RETURN(std::optional<struct stat> src_st, src_root.Lstat(src_rel));
  if (!src_st) {
    return absl::NotFoundError(
        StrCat("lstat ", CleanPath(StrCat("/", src)), ": no such file or directory"));
  }
  KILN_ASSIGN_OR_RETURN(std::optional<struct stat> dst_st, dst_root.Lstat(dst_rel));
  const bool src_dir = S_ISDIR(src_st->st_mode);
  const bool dst_is_dir = dst_st && S_ISDIR(dst_st->st_mode);
  std::string target_rel = dst_rel;
  if ((!o.copy_dir_contents && src_dir && dst_st) || (!src_dir && dst_is_dir)) {
    target_rel = JoinRel(dst_rel, BasePath(src));
  }
  std::string mkdir_rel = DirRel(target_rel);
  if (o.copy_dir_contents && src_dir && !dst_st) mkdir_rel = target_rel;
  KILN_RETURN_IF_ERROR(MkdirAllInRoot(dst_root, mkdir_rel, 0755, o.owner, o.time).status());

  Copier copier(dst_root, o);
  if (src_rel.empty()) {
    KILN_ASSIGN_OR_RETURN(UniqueFd root_fd, src_root.OpenResolved("", O_RDONLY | O_DIRECTORY));
    return copier.CopyTop(root_fd.get(), "", target_rel);
  }
  KILN_ASSIGN_OR_RETURN(auto parent, src_root.OpenParent(src_rel));
  return copier.CopyTop(parent.first.get(), parent.second, target_rel);
}

}  // namespace kiln::engine

namespace kiln::engine {

absl::Status TreeCloner::CopyMetadata(const EntryRef& src, const struct stat& st,
                                      const EntryRef& dst) {
  KILN_RETURN_IF_ERROR(ChownEntry(dst, st.st_uid, st.st_gid));
  if (!S_ISLNK(st.st_mode)) KILN_RETURN_IF_ERROR(ChmodEntry(dst, st.st_mode & 07777));
  KILN_ASSIGN_OR_RETURN(XattrList x, ReadXattrs(src));
  WriteXattrs(dst, x);
  return SetEntryTimes(dst, st.st_atim, st.st_mtim);
}

absl::Status TreeCloner::Clone(const EntryRef& src, const std::string& dst_rel) {
  KILN_RETURN_IF_ERROR(cancel_.Check());
  KILN_ASSIGN_OR_RETURN(struct stat st, StatEntry(src));
  KILN_ASSIGN_OR_RETURN(auto parent, dst_.OpenParent(dst_rel));
  EntryRef dst{parent.first.get(), parent.second};
  if (S_ISDIR(st.st_mode)) {
    if (::mkdirat(dst.dir, dst.name.c_str(), 0700) != 0) {
      return ErrnoStatus(StrCat("mkdir ", Quote(StrCat("/", dst_rel))));
    }
    KILN_ASSIGN_OR_RETURN(UniqueFd dir, OpenDirEntry(src));
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirSorted(dir.get()));
    for (const std::string& n : names) {
      if (skip_whiteouts_) {
        KILN_ASSIGN_OR_RETURN(struct stat cst, StatEntry(EntryRef{dir.get(), n}));
        if (IsWhiteout(cst)) continue;
      }
      KILN_RETURN_IF_ERROR(Clone(EntryRef{dir.get(), n}, JoinRel(dst_rel, n)));
    }
    return CopyMetadata(src, st, dst);
  }
  if (S_ISREG(st.st_mode)) {
    if (st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto it = links_.find(key);
      if (it != links_.end()) {
        KILN_ASSIGN_OR_RETURN(auto first, dst_.OpenParent(it->second));
        if (::linkat(first.first.get(), first.second.c_str(), dst.dir, dst.name.c_str(), 0) != 0) {
          return ErrnoStatus(StrCat("hard link ", Quote(StrCat("/", dst_rel))));
        }
        return absl::OkStatus();
      }
      links_.emplace(key, dst_rel);
    }
    KILN_RETURN_IF_ERROR(CopyFileContent(src, dst, cancel_));
  } else {
    KILN_RETURN_IF_ERROR(CreateSpecialLike(src, st, dst));
  }
  return CopyMetadata(src, st, dst);
}

}  // namespace kiln::engine

namespace kiln::engine {

absl::StatusOr<SymbolicMode> SymbolicMode::Parse(std::string_view spec) {
  SymbolicMode m;
  auto bad = [&] { return absl::InvalidArgumentError(StrCat("invalid mode ", Quote(spec))); };
  if (spec.empty()) return bad();
  if (spec[0] >= '0' && spec[0] <= '9') {
    mode_t v = 0;
    for (char c : spec) {
      if (c < '0' || c > '7') return bad();
      v = v * 8 + static_cast<mode_t>(c - '0');
      if (v > 07777) return bad();
    }
    m.clauses_.push_back(Clause{07777, '=', v, false});
    return m;
  }
  size_t i = 0;
  while (i <= spec.size()) {
    mode_t who = 0;
    for (; i < spec.size(); ++i) {
      char c = spec[i];
      if (c == 'a')
        who |= 07777;
      else if (c == 'u')
        who |= 04700;
      else if (c == 'g')
        who |= 02070;
      else if (c == 'o')
        who |= 00007;
      else
        break;
    }
    if (i >= spec.size()) return bad();
    // One or more op+perms groups for this who.
    while (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == '=')) {
      char op = spec[i++];
      mode_t perm = 0;
      bool xcond = false;
      for (;
           i < spec.size() && spec[i] != ',' && spec[i] != '+' && spec[i] != '-' && spec[i] != '=';
           ++i) {
        char c = spec[i];
        if (c == 'r')
          perm |= 0444;
        else if (c == 'w')
          perm |= 0222;
        else if (c == 'x')
          perm |= 0111;
        else if (c == 'X')
          xcond = true;
        else if (c == 's')
          perm |= 06000;
        else if (c == 't')
          perm |= 01000;
        else
          return bad();
      }
      m.clauses_.push_back(Clause{who == 0 ? mode_t{07777} : who, op, perm, xcond});
    }
    if (i == spec.size()) break;
    if (spec[i] != ',') return bad();
    ++i;
    if (i == spec.size()) return bad();
  }
  if (m.clauses_.empty()) return bad();
  return m;
}

mode_t SymbolicMode::Apply(mode_t mode, bool is_dir) const {
  for (const Clause& c : clauses_) {
    mode_t perm = c.perm;
    if (c.x_if_dir_or_exec && (is_dir || (mode & 0111) != 0)) perm |= 0111;
    mode_t who = c.who;
    if (perm & 01000) who |= 01000;  // 't' applies whoever was named
    const mode_t eff = perm & who;
    switch (c.op) {
      case '+':
        mode |= eff;
        break;
      case '-':
        mode &= ~eff;
        break;
      default:
        mode = (mode & ~(who & 07777)) | eff;
        break;
    }
  }
  return mode & 07777;
}

}  // namespace kiln::engine
