#include "engine/ops/file_actions.h"

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "base/fs.h"
#include "base/pattern_match.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/content_hash.h"
#include "engine/ops/copy_tree.h"
#include "engine/ops/copy_util.h"
#include "snapshotter/applier.h"
#include "snapshotter/byte_stream.h"
#include "snapshotter/compression.h"

namespace kiln::engine {
namespace {

std::string Slash(std::string_view rel) { return StrCat("/", rel); }

// One field of the first /etc/passwd or /etc/group line whose name is `name`:
// {id (field 2), primary gid (field 3, passwd only)}.
struct DbEntry {
  uint32_t id = 0;
  uint32_t gid = 0;
};

std::optional<DbEntry> LookupDb(const RootDir& root, const char* file, std::string_view name,
                                bool want_gid) {
  auto rel = root.Resolve(file, true);
  if (!rel.ok()) return std::nullopt;
  auto fd = root.OpenResolved(*rel, O_RDONLY);
  if (!fd.ok()) return std::nullopt;
  auto data = ReadFdToString(fd->get(), file, 64u << 20);  // larger: not a real passwd file
  if (!data.ok()) return std::nullopt;
  for (absl::string_view line : absl::StrSplit(*data, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, ':');
    if (f.size() < 3 || f[0] != ToAbsl(name)) continue;
    DbEntry e;
    if (!absl::SimpleAtoi(f[2], &e.id)) continue;
    if (want_gid && (f.size() < 4 || !absl::SimpleAtoi(f[3], &e.gid))) continue;
    return e;
  }
  return std::nullopt;
}

absl::Status ChownNew(int dirfd, const std::string& name, const std::optional<FileOwner>& owner) {
  if (!owner) return absl::OkStatus();
  return ChownEntry(EntryRef{dirfd, name}, owner->uid, owner->gid);
}

absl::Status UtimesNew(int dirfd, const std::string& name, int64_t timestamp) {
  std::optional<struct timespec> t = TimestampFromNanos(timestamp);
  if (!t) return absl::OkStatus();
  return SetEntryTimes(EntryRef{dirfd, name}, *t, *t);
}

// tar's header checksum: the sum of the header bytes with the checksum field read as spaces.
bool ValidTarHeader(const unsigned char* h) {
  bool all_zero = true;
  for (int i = 0; i < 512; ++i) all_zero &= h[i] == 0;
  if (all_zero) return false;
  std::string field(reinterpret_cast<const char*>(h + 148), 8);
  field = std::string(absl::StripAsciiWhitespace(field.c_str()));
  if (field.empty()) return false;
  char* end = nullptr;
  long want = std::strtol(field.c_str(), &end, 8);
  if (end == field.c_str()) return false;
  long usum = 0, ssum = 0;
  for (int i = 0; i < 512; ++i) {
    unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
    usum += c;
    ssum += static_cast<signed char>(c);
  }
  return want == usum || want == ssum;
}

absl::StatusOr<bool> TryUnpack(const RootDir& src, const std::string& src_path, const RootDir& dst,
                               const std::string& dest_path, const std::optional<FileOwner>& owner,
                               const std::optional<struct timespec>& time,
                               const CancelToken& cancel) {
  auto rel = src.Resolve(src_path, true);
  if (!rel.ok() || !IsArchive(src, *rel)) return false;
  KILN_ASSIGN_OR_RETURN(std::string dest_rel, dst.Resolve(dest_path, true));
  KILN_RETURN_IF_ERROR(MkdirAllInRoot(dst, dest_rel, 0755, owner, time).status());
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, src.OpenResolved(*rel, O_RDONLY));
  snapshotter::FdSource in(std::move(fd), src_path);
  snapshotter::ApplyOptions ao;
  ao.whiteouts = snapshotter::WhiteoutMode::kDelete;
  ao.cancel = cancel;
  auto applied = snapshotter::ApplyLayer(dst.HostPath(dest_rel), in, ao);
  if (!applied.ok()) return Annotate(applied.status(), StrCat("extract ", Quote(src_path)));
  return true;
}

}  // namespace

bool IsArchive(const RootDir& root, const std::string& rel) {
  auto st = root.Lstat(rel);
  if (!st.ok() || !*st || !S_ISREG((*st)->st_mode)) return false;
  auto fd = root.OpenResolved(rel, O_RDONLY);
  if (!fd.ok()) return false;
  snapshotter::FdSource raw(std::move(*fd));
  snapshotter::DecompressingSource in(raw);
  unsigned char header[512];
  size_t got = 0;
  while (got < sizeof(header)) {
    auto n = in.Read(header + got, sizeof(header) - got);
    if (!n.ok() || *n == 0) return false;
    got += *n;
  }
  return ValidTarHeader(header);
}

std::string CleanActionPath(std::string_view s) {
  std::string s2 = CleanPath(StrCat("/", s));
  if (s.ends_with("/.")) {
    if (s2 != "/") s2 += "/";
    s2 += ".";
  } else if (s.ends_with("/") && s2 != "/") {
    s2 += "/";
  }
  return s2;
}

absl::StatusOr<std::optional<FileOwner>> ResolveOwner(const pb::ChownOpt* chown,
                                                      const RootDir* user_root,
                                                      const RootDir* group_root) {
  if (chown == nullptr) return std::nullopt;
  FileOwner o;
  if (chown->has_user()) {
    const pb::UserOpt& u = chown->user();
    if (u.has_byname()) {
      if (user_root == nullptr) return absl::InvalidArgumentError("invalid missing user mount");
      if (auto e = LookupDb(*user_root, "/etc/passwd", u.byname().name(), true)) {
        o.uid = e->id;
        o.gid = e->gid;
      }
    } else if (u.user_case() == pb::UserOpt::kByID) {
      o.uid = u.byid();
      o.gid = u.byid();
    }
  }
  if (chown->has_group()) {
    const pb::UserOpt& g = chown->group();
    if (g.has_byname()) {
      if (group_root == nullptr) return absl::InvalidArgumentError("invalid missing group mount");
      if (auto e = LookupDb(*group_root, "/etc/group", g.byname().name(), false)) o.gid = e->id;
    } else if (g.user_case() == pb::UserOpt::kByID) {
      o.gid = g.byid();
    }
  }
  return o;
}

absl::Status DoMkdir(const RootDir& root, const pb::FileActionMkDir& a,
                     const std::optional<FileOwner>& owner) {
  const std::string what = StrCat("mkdir ", CleanPath(StrCat("/", a.path())));
  KILN_ASSIGN_OR_RETURN(std::string rel, root.Resolve(a.path(), true));
  const mode_t perm = static_cast<mode_t>(a.mode()) & 0777;
  if (a.makeparents()) {
    return Annotate(
        MkdirAllInRoot(root, rel, perm, owner, TimestampFromNanos(a.timestamp())).status(), what);
  }
  if (rel.empty()) return absl::OkStatus();  // the root exists
  KILN_ASSIGN_OR_RETURN(auto parent, root.OpenParent(rel));
  int dirfd = parent.first.get();
  const std::string& name = parent.second;
  if (::mkdirat(dirfd, name.c_str(), perm) != 0) {
    if (errno == EEXIST) return absl::OkStatus();
    return ErrnoStatus(what);
  }
  KILN_RETURN_IF_ERROR_CTX(ChownNew(dirfd, name, owner), what);
  return Annotate(UtimesNew(dirfd, name, a.timestamp()), what);
}

absl::Status DoMkfile(const RootDir& root, const pb::FileActionMkFile& a,
                      const std::optional<FileOwner>& owner) {
  const std::string what = StrCat("mkfile ", CleanPath(StrCat("/", a.path())));
  KILN_ASSIGN_OR_RETURN(std::string rel, root.Resolve(a.path(), true));
  if (rel.empty()) return absl::FailedPreconditionError(StrCat(what, ": is a directory"));
  KILN_ASSIGN_OR_RETURN(auto parent, root.OpenParent(rel));
  int dirfd = parent.first.get();
  const std::string& name = parent.second;
  UniqueFd fd(::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                       static_cast<mode_t>(a.mode()) & 0777));
  if (!fd) return ErrnoStatus(what);
  KILN_RETURN_IF_ERROR_CTX(snapshotter::WriteFull(fd.get(), a.data().data(), a.data().size(), what),
                           what);
  fd.Reset();
  KILN_RETURN_IF_ERROR_CTX(ChownNew(dirfd, name, owner), what);
  return Annotate(UtimesNew(dirfd, name, a.timestamp()), what);
}

namespace {

absl::Status RmPath(const RootDir& root, std::string_view src, bool allow_not_found) {
  std::string clean = CleanPath(src);
  auto [dir, base] = SplitPath(clean);
  if (base.empty()) return absl::InvalidArgumentError("rmPath: invalid empty path");
  KILN_ASSIGN_OR_RETURN(std::string dir_rel, root.Resolve(dir, true));
  auto parent = root.OpenResolved(dir_rel, O_RDONLY | O_DIRECTORY);
  if (!parent.ok()) {
    // os.RemoveAll of a path whose parent does not exist succeeds.
    if (absl::IsNotFound(parent.status())) return absl::OkStatus();
    if (allow_not_found && absl::IsNotFound(parent.status())) return absl::OkStatus();
    return Annotate(parent.status(), StrCat("rm ", clean));
  }
  return Annotate(RemoveEntry(parent->get(), base), StrCat("rm ", clean));
}

}  // namespace

absl::Status DoRm(const RootDir& root, const pb::FileActionRm& a) {
  if (a.allowwildcard()) {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> matches,
                          ResolveWildcards(root, CleanActionPath(a.path()), false));
    for (const std::string& m : matches) {
      KILN_RETURN_IF_ERROR(RmPath(root, StrCat("/", m), a.allownotfound()));
    }
    return absl::OkStatus();
  }
  return RmPath(root, StrCat("/", a.path()), a.allownotfound());
}

absl::Status DoSymlink(const RootDir& root, const pb::FileActionSymlink& a,
                       const std::optional<FileOwner>& owner) {
  const std::string what = StrCat("symlink ", CleanPath(StrCat("/", a.newpath())));
  KILN_ASSIGN_OR_RETURN(std::string rel, root.Resolve(a.newpath(), true));
  if (rel.empty()) return ErrnoStatus(EEXIST, what);
  KILN_ASSIGN_OR_RETURN(auto parent, root.OpenParent(rel));
  int dirfd = parent.first.get();
  const std::string& name = parent.second;
  if (::symlinkat(a.oldpath().c_str(), dirfd, name.c_str()) != 0) return ErrnoStatus(what);
  KILN_RETURN_IF_ERROR_CTX(ChownNew(dirfd, name, owner), what);
  return Annotate(UtimesNew(dirfd, name, a.timestamp()), what);
}

absl::Status DoCopy(const RootDir& src, const RootDir& dst, const pb::FileActionCopy& a,
                    const std::optional<FileOwner>& owner, const CancelToken& cancel) {
  const std::string src_path = CleanActionPath(a.src());
  const std::string dest_path = CleanActionPath(a.dest());

  if (!a.createdestpath()) {
    KILN_ASSIGN_OR_RETURN(std::string p, dst.Resolve(CleanPath(StrCat("/", a.dest())), true));
    std::string parent = p.rfind('/') == std::string::npos ? "" : p.substr(0, p.rfind('/'));
    KILN_ASSIGN_OR_RETURN(std::optional<struct stat> st, dst.Lstat(parent));
    if (!st) {
      return absl::NotFoundError(StrCat("failed to stat ", a.dest(), ": lstat ", Slash(parent),
                                        ": no such file or directory"));
    }
  }

  KILN_RETURN_IF_ERROR(CheckRequiredPaths(
      src, std::vector<std::string>(a.required_paths().begin(), a.required_paths().end())));

  std::optional<PathFilter> filter;
  if (a.include_patterns_size() > 0 || a.exclude_patterns_size() > 0) {
    std::vector<std::string> inc(a.include_patterns().begin(), a.include_patterns().end());
    std::vector<std::string> exc(a.exclude_patterns().begin(), a.exclude_patterns().end());
    KILN_ASSIGN_OR_RETURN(filter, PathFilter::Create(inc, exc));
  }
  CopyOptions o;
  o.owner = owner;
  o.time = TimestampFromNanos(a.timestamp());
  if (a.mode() != -1) o.mode = static_cast<uint32_t>(a.mode());
  if (!a.modestr().empty()) {
    KILN_ASSIGN_OR_RETURN(o.mode_str, SymbolicMode::Parse(a.modestr()));
  }
  o.filter = filter ? &*filter : nullptr;
  o.copy_dir_contents = a.dircopycontents();
  o.follow_links = a.followsymlink();
  o.always_replace_existing_dest_paths = a.alwaysreplaceexistingdestpaths();
  o.cancel = cancel;

  auto copy_one = [&](const std::string& s) -> absl::Status {
    if (a.attemptunpackdockercompatibility()) {
      KILN_ASSIGN_OR_RETURN(bool unpacked,
                            TryUnpack(src, s, dst, dest_path, owner, o.time, cancel));
      if (unpacked) return absl::OkStatus();
    }
    return CopyPath(src, s, dst, dest_path, o);
  };

  if (!a.allowwildcard()) return copy_one(src_path);
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> matches,
                        ResolveWildcards(src, src_path, a.followsymlink()));
  if (matches.empty()) {
    if (a.allowemptywildcard()) return absl::OkStatus();
    return absl::NotFoundError(StrCat(src_path, " not found"));
  }
  for (const std::string& m : matches) KILN_RETURN_IF_ERROR(copy_one(m));
  return absl::OkStatus();
}

}  // namespace kiln::engine
