#include "engine/ops/file_root.h"

#include <cerrno>
#include <string>
#include <vector>

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/pattern_match.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine {
namespace {

constexpr int kMaxSymlinks = 255;

std::vector<std::string> Components(std::string_view clean_abs) {
  std::vector<std::string> out;
  for (absl::string_view c : absl::StrSplit(ToAbsl(clean_abs), '/', absl::SkipEmpty())) {
    out.emplace_back(c.data(), c.size());
  }
  return out;
}

std::string JoinComponents(const std::vector<std::string>& c, size_t from = 0, size_t to = -1) {
  std::string out;
  to = std::min(to, c.size());
  for (size_t i = from; i < to; ++i) {
    if (!out.empty()) out.push_back('/');
    out += c[i];
  }
  return out;
}

absl::StatusOr<std::string> ReadLinkAt(int dirfd, const std::string& name) {
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
    if (n < 0) return ErrnoStatus(StrCat("readlink ", Quote(name)));
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(n);
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

}  // namespace

absl::StatusOr<RootDir> RootDir::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(path)));
  return RootDir(std::move(fd), path);
}

std::string RootDir::HostPath(std::string_view rel) const {
  if (rel.empty()) return path_;
  return StrCat(path_, "/", rel);
}

absl::StatusOr<std::string> RootDir::Resolve(std::string_view p, bool follow_final) const {
  std::string path = CleanPath(StrCat("/", p));
  int hops = 0;
  for (;;) {
    std::vector<std::string> comps = Components(path);
    std::vector<std::string> done;
    UniqueFd cur;
    int curfd = fd_.get();
    bool missing = false;
    bool restarted = false;
    for (size_t i = 0; i < comps.size(); ++i) {
      const std::string& c = comps[i];
      const bool last = i + 1 == comps.size();
      if (missing) {
        done.push_back(c);
        continue;
      }
      struct stat st;
      if (::fstatat(curfd, c.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
          missing = true;
          done.push_back(c);
          continue;
        }
        return ErrnoStatus(StrCat("resolve ", Quote(p)));
      }
      if (S_ISLNK(st.st_mode) && (!last || follow_final)) {
        if (++hops > kMaxSymlinks) return ErrnoStatus(ELOOP, StrCat("resolve ", Quote(p)));
        KILN_ASSIGN_OR_RETURN(std::string target, ReadLinkAt(curfd, c));
        std::string base = (!target.empty() && target[0] == '/') ? "" : JoinComponents(done);
        path = CleanPath(StrCat("/", base, "/", target, "/", JoinComponents(comps, i + 1)));
        restarted = true;
        break;
      }
      done.push_back(c);
      if (!last) {
        if (!S_ISDIR(st.st_mode)) return ErrnoStatus(ENOTDIR, StrCat("resolve ", Quote(p)));
        UniqueFd next(::openat(curfd, c.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!next) return ErrnoStatus(StrCat("resolve ", Quote(p)));
        cur = std::move(next);
        curfd = cur.get();
      }
    }
    if (!restarted) return JoinComponents(done);
  }
}

absl::StatusOr<UniqueFd> RootDir::OpenResolved(std::string_view rel, int flags, mode_t mode) const {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  if (flags & (O_CREAT | O_TMPFILE)) how.mode = mode;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  std::string p = rel.empty() ? std::string(".") : std::string(rel);
  long fd = ::syscall(SYS_openat2, fd_.get(), p.c_str(), &how, sizeof(how));
  if (fd < 0) return ErrnoStatus(StrCat("open ", Quote(StrCat("/", rel))));
  return UniqueFd(static_cast<int>(fd));
}

absl::StatusOr<std::pair<UniqueFd, std::string>> RootDir::OpenParent(std::string_view rel) const {
  if (rel.empty()) return absl::InvalidArgumentError("the root directory has no parent");
  size_t slash = rel.rfind('/');
  std::string dir = slash == std::string_view::npos ? "" : std::string(rel.substr(0, slash));
  std::string name(slash == std::string_view::npos ? rel : rel.substr(slash + 1));
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenResolved(dir, O_RDONLY | O_DIRECTORY));
  return std::make_pair(std::move(fd), std::move(name));
}

absl::StatusOr<std::optional<struct stat>> RootDir::Lstat(std::string_view rel) const {
  struct stat st;
  if (rel.empty()) {
    if (::fstat(fd_.get(), &st) != 0) return ErrnoStatus(StrCat("stat ", Quote(path_)));
    return st;
  }
  auto parent = OpenParent(rel);
  if (!parent.ok()) {
    if (absl::IsNotFound(parent.status())) return std::nullopt;
    return parent.status();
  }
  if (::fstatat(parent->first.get(), parent->second.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return std::nullopt;
    return ErrnoStatus(StrCat("lstat ", Quote(StrCat("/", rel))));
  }
  return st;
}

std::pair<std::string, std::string> SplitPath(std::string_view p) {
  size_t slash = p.rfind('/');
  if (slash == std::string_view::npos) return {"", std::string(p)};
  return {std::string(p.substr(0, slash + 1)), std::string(p.substr(slash + 1))};
}

std::string BasePath(std::string_view p) {
  if (p.empty()) return ".";
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  if (p == "/") return "/";
  size_t slash = p.rfind('/');
  if (slash != std::string_view::npos) p = p.substr(slash + 1);
  return std::string(p);
}

std::string JoinRel(std::string_view dir, std::string_view name) {
  std::string joined = CleanPath(StrCat("/", dir, "/", name));
  return joined == "/" ? "" : joined.substr(1);
}

absl::Status SetTimes(int dirfd, const std::string& name, const struct timespec& atime,
                      const struct timespec& mtime) {
  struct timespec ts[2] = {atime, mtime};
  int rc = name.empty() ? ::futimens(dirfd, ts)
                        : ::utimensat(dirfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
  if (rc != 0) return ErrnoStatus(StrCat("set times of ", Quote(name)));
  return absl::OkStatus();
}

std::optional<struct timespec> TimestampFromNanos(int64_t ns) {
  if (ns == -1) return std::nullopt;
  struct timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    ts.tv_sec -= 1;
  }
  return ts;
}

absl::StatusOr<UniqueFd> MkdirAllInRoot(const RootDir& root, std::string_view rel, mode_t perm,
                                        const std::optional<FileOwner>& owner,
                                        const std::optional<struct timespec>& time) {
  UniqueFd cur(::fcntl(root.fd(), F_DUPFD_CLOEXEC, 0));
  if (!cur) return ErrnoStatus("dup root directory");
  std::string done;
  for (const std::string& c : Components(StrCat("/", rel))) {
    done = done.empty() ? c : StrCat(done, "/", c);
    struct stat st;
    bool exists = ::fstatat(cur.get(), c.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) return ErrnoStatus(StrCat("mkdir ", Quote(StrCat("/", done))));
    if (exists && !S_ISDIR(st.st_mode)) {
      return ErrnoStatus(ENOTDIR, StrCat("mkdir ", Quote(StrCat("/", done))));
    }
    if (!exists) {
      if (::mkdirat(cur.get(), c.c_str(), perm) != 0 && errno != EEXIST) {
        return ErrnoStatus(StrCat("mkdir ", Quote(StrCat("/", done))));
      }
      if (owner &&
          ::fchownat(cur.get(), c.c_str(), owner->uid, owner->gid, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus(StrCat("chown ", Quote(StrCat("/", done))));
      }
      if (time) KILN_RETURN_IF_ERROR(SetTimes(cur.get(), c, *time, *time));
    }
    UniqueFd next(::openat(cur.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return ErrnoStatus(StrCat("open ", Quote(StrCat("/", done))));
    cur = std::move(next);
  }
  return cur;
}

}  // namespace kiln::engine
