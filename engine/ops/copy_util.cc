#include "engine/ops/copy_util.h"

#include <algorithm>
#include <cerrno>

#include <dirent.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/status.h"
#include "base/strings.h"
#include "snapshotter/fs_util.h"

namespace kiln::engine {
namespace {

std::string What(const EntryRef& e) { return e.name.empty() ? std::string(".") : e.name; }

}  // namespace

absl::StatusOr<struct stat> StatEntry(const EntryRef& e) {
  struct stat st;
  int rc = e.name.empty() ? ::fstat(e.dir, &st)
                          : ::fstatat(e.dir, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW);
  if (rc != 0) return ErrnoStatus(StrCat("lstat ", Quote(What(e))));
  return st;
}

absl::StatusOr<UniqueFd> OpenDirEntry(const EntryRef& e) {
  UniqueFd fd(e.name.empty() ? ::openat(e.dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                             : ::openat(e.dir, e.name.c_str(),
                                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open directory ", Quote(What(e))));
  return fd;
}

absl::StatusOr<std::vector<std::string>> ListDirSorted(int dirfd) {
  UniqueFd dup(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dup) return ErrnoStatus("open directory");
  DIR* d = ::fdopendir(dup.get());
  if (d == nullptr) return ErrnoStatus("read directory");
  dup.Release();
  std::vector<std::string> names;
  errno = 0;
  while (dirent* ent = ::readdir(d)) {
    std::string_view n = ent->d_name;
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return ErrnoStatus(err, "read directory");
  std::sort(names.begin(), names.end());
  return names;
}

absl::Status CopyFileContent(const EntryRef& src, const EntryRef& dst, const CancelToken& cancel) {
  UniqueFd in(::openat(src.dir, src.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) return ErrnoStatus(StrCat("open ", Quote(What(src))));
  UniqueFd out(::openat(dst.dir, dst.name.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return ErrnoStatus(StrCat("create ", Quote(What(dst))));
  bool use_range = true;
  std::string buf;
  for (;;) {
    KILN_RETURN_IF_ERROR(cancel.Check());
    ssize_t n;
    if (use_range) {
      n = ::copy_file_range(in.get(), nullptr, out.get(), nullptr, 8 << 20, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL ||
                    errno == EPERM || errno == EIO)) {
        use_range = false;
        continue;
      }
      if (n < 0) return ErrnoStatus(StrCat("copy ", Quote(What(src))));
      if (n == 0) break;
      continue;
    }
    if (buf.empty()) buf.resize(1 << 20);
    n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(StrCat("read ", Quote(What(src))));
    }
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out.get(), buf.data() + off, n - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(StrCat("write ", Quote(What(dst))));
      }
      off += w;
    }
  }
  return absl::OkStatus();
}

absl::Status CreateSpecialLike(const EntryRef& src, const struct stat& st, const EntryRef& dst) {
  if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 1, '\0');
    for (;;) {
      ssize_t n = ::readlinkat(src.dir, src.name.c_str(), target.data(), target.size());
      if (n < 0) return ErrnoStatus(StrCat("read link ", Quote(What(src))));
      if (static_cast<size_t>(n) < target.size()) {
        target.resize(n);
        break;
      }
      target.resize(target.size() * 2);
    }
    if (::symlinkat(target.c_str(), dst.dir, dst.name.c_str()) != 0) {
      return ErrnoStatus(StrCat("create symlink ", Quote(What(dst))));
    }
    return absl::OkStatus();
  }
  if (::mknodat(dst.dir, dst.name.c_str(), st.st_mode & (S_IFMT | 07777), st.st_rdev) != 0) {
    return ErrnoStatus(StrCat("create device ", Quote(What(dst))));
  }
  return absl::OkStatus();
}

absl::Status ChownEntry(const EntryRef& e, uint32_t uid, uint32_t gid) {
  int flags = AT_SYMLINK_NOFOLLOW | (e.name.empty() ? AT_EMPTY_PATH : 0);
  if (::fchownat(e.dir, e.name.c_str(), uid, gid, flags) != 0) {
    return ErrnoStatus(StrCat("chown ", Quote(What(e))));
  }
  return absl::OkStatus();
}

absl::Status ChmodEntry(const EntryRef& e, mode_t mode) {
  int rc = e.name.empty() ? ::fchmod(e.dir, mode) : ::fchmodat(e.dir, e.name.c_str(), mode, 0);
  if (rc != 0) return ErrnoStatus(StrCat("chmod ", Quote(What(e))));
  return absl::OkStatus();
}

absl::Status SetEntryTimes(const EntryRef& e, const struct timespec& atime,
                           const struct timespec& mtime) {
  struct timespec ts[2] = {atime, mtime};
  int rc = e.name.empty() ? ::futimens(e.dir, ts)
                          : ::utimensat(e.dir, e.name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
  if (rc != 0) return ErrnoStatus(StrCat("set times of ", Quote(What(e))));
  return absl::OkStatus();
}

absl::StatusOr<XattrList> ReadXattrs(const EntryRef& e) {
  KILN_ASSIGN_OR_RETURN(snapshotter::Xattrs all, snapshotter::ListXattrs(e.dir, e.name));
  XattrList out;
  for (auto& [k, v] : all) {
    if (!snapshotter::IsOverlayXattr(k)) out.emplace_back(std::move(k), std::move(v));
  }
  return out;
}

void WriteXattrs(const EntryRef& e, const XattrList& xattrs) {
  std::string path = snapshotter::ProcFdPath(e.dir, e.name);
  for (const auto& [k, v] : xattrs) {
    (void)::lsetxattr(path.c_str(), k.c_str(), v.data(), v.size(), 0);
  }
}

absl::Status RemoveEntry(int dirfd, const std::string& name) {
  return snapshotter::RemoveAt(dirfd, name);
}

bool IsOpaqueDir(const EntryRef& e) {
  std::string path = snapshotter::ProcFdPath(e.dir, e.name);
  char v[4];
  for (const char* key : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    ssize_t n = ::lgetxattr(path.c_str(), key, v, sizeof(v));
    if (n == 1 && v[0] == 'y') return true;
  }
  return false;
}

}  // namespace kiln::engine
