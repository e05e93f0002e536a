#include "snapshotter/fs_util.h"

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/status.h"

namespace kiln::snapshotter {

absl::StatusOr<UniqueFd> OpenDirectory(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open directory ", Quote(path)));
  return fd;
}

absl::StatusOr<UniqueFd> OpenSubdir(int dirfd, const std::string& name, std::string_view what) {
  UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open directory ", Quote(what)));
  return fd;
}

absl::StatusOr<std::vector<std::string>> ListSorted(int dirfd, std::string_view what) {
  UniqueFd dup_fd(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dup_fd) return ErrnoStatus(StrCat("open directory ", Quote(what)));
  DIR* dir = ::fdopendir(dup_fd.get());
  if (dir == nullptr) return ErrnoStatus(StrCat("opendir ", Quote(what)));
  dup_fd.Release();  // owned by `dir` now
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(dir)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return ErrnoStatus(err, StrCat("readdir ", Quote(what)));
  std::sort(names.begin(), names.end());
  return names;
}

std::string ProcFdPath(int dirfd, const std::string& name) {
  return StrCat("/proc/self/fd/", dirfd, "/", name);
}

bool IsOverlayXattr(std::string_view name) {
  return name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.");
}

absl::StatusOr<Xattrs> ListXattrs(int dirfd, const std::string& name) {
  std::string path = ProcFdPath(dirfd, name);
  Xattrs out;
  std::string list(1024, '\0');
  ssize_t n;
  for (;;) {
    n = ::llistxattr(path.c_str(), list.data(), list.size());
    if (n >= 0) break;
    if (errno == ERANGE) {
      ssize_t need = ::llistxattr(path.c_str(), nullptr, 0);
      if (need < 0) return ErrnoStatus(StrCat("list xattrs of ", Quote(name)));
      list.resize(static_cast<size_t>(need) + 1);
      continue;
    }
    if (errno == ENOTSUP) return out;
    return ErrnoStatus(StrCat("list xattrs of ", Quote(name)));
  }
  list.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < list.size();) {
    std::string key = list.c_str() + pos;
    pos += key.size() + 1;
    if (key.empty()) continue;
    std::string value(256, '\0');
    for (;;) {
      ssize_t v = ::lgetxattr(path.c_str(), key.c_str(), value.data(), value.size());
      if (v >= 0) {
        value.resize(static_cast<size_t>(v));
        break;
      }
      if (errno == ERANGE) {
        ssize_t need = ::lgetxattr(path.c_str(), key.c_str(), nullptr, 0);
        if (need < 0) return ErrnoStatus(StrCat("get xattr ", key, " of ", Quote(name)));
        value.resize(static_cast<size_t>(need));
        continue;
      }
      if (errno == ENODATA) break;  // removed meanwhile
      return ErrnoStatus(StrCat("get xattr ", key, " of ", Quote(name)));
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status RemoveAt(int dirfd, const std::string& name) {
  if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno != EISDIR && errno != EPERM) return ErrnoStatus(StrCat("remove ", Quote(name)));
  UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!sub) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(StrCat("open ", Quote(name)));
  }
  KILN_ASSIGN_OR_RETURN(auto names, ListSorted(sub.get(), name));
  for (const std::string& child : names) {
    absl::Status s = RemoveAt(sub.get(), child);
    if (!s.ok()) return Annotate(s, name);
  }
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoStatus(StrCat("rmdir ", Quote(name)));
  }
  return absl::OkStatus();
}

absl::Status ApplyMetadata(int dirfd, const std::string& name, const struct stat& st,
                           const Xattrs* xattrs, std::string_view what) {
  if (::fchownat(dirfd, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(StrCat("chown ", Quote(what)));
  }
  if (!S_ISLNK(st.st_mode)) {
    // After chown, which clears setuid/setgid.
    if (::fchmodat(dirfd, name.c_str(), st.st_mode & 07777, 0) != 0) {
      return ErrnoStatus(StrCat("chmod ", Quote(what)));
    }
  }
  if (xattrs != nullptr && !xattrs->empty()) {
    std::string path = ProcFdPath(dirfd, name);
    for (const auto& [key, value] : *xattrs) {
      if (::lsetxattr(path.c_str(), key.c_str(), value.data(), value.size(), 0) != 0) {
        if (errno == ENOTSUP || (errno == EPERM && S_ISLNK(st.st_mode))) continue;
        return ErrnoStatus(StrCat("set xattr ", key, " on ", Quote(what)));
      }
    }
  }
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(dirfd, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(StrCat("set times of ", Quote(what)));
  }
  return absl::OkStatus();
}

namespace {

absl::Status CopyFileData(int src, int dst, off_t size, std::string_view what) {
  off_t done = 0;
  bool use_cfr = true;
  std::string buf;
  while (done < size) {
    ssize_t n;
    if (use_cfr) {
      n = ::copy_file_range(src, nullptr, dst, nullptr, static_cast<size_t>(size - done), 0);
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        use_cfr = false;
        buf.resize(1 << 20);
        continue;
      }
    } else {
      n = ::read(src, buf.data(), buf.size());
      if (n > 0) {
        const char* p = buf.data();
        ssize_t left = n;
        while (left > 0) {
          ssize_t w = ::write(dst, p, static_cast<size_t>(left));
          if (w < 0) {
            if (errno == EINTR) continue;
            return ErrnoStatus(StrCat("write ", Quote(what)));
          }
          p += w;
          left -= w;
        }
      }
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(StrCat("copy ", Quote(what)));
    }
    if (n == 0) break;  // the source shrank
    done += n;
  }
  return absl::OkStatus();
}

struct CopyState {
  int dst_root;
  std::map<std::pair<dev_t, ino_t>, std::string> links;  // -> path relative to dst root
};

absl::Status CopyDir(CopyState& state, int src, int dst, const std::string& rel);

absl::Status CopyEntry(CopyState& state, int src, int dst, const std::string& name,
                       const std::string& rel) {
  struct stat st;
  if (::fstatat(src, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(StrCat("stat ", Quote(rel)));
  }
  if (S_ISSOCK(st.st_mode)) return absl::OkStatus();
  if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
    auto it = state.links.find({st.st_dev, st.st_ino});
    if (it != state.links.end()) {
      if (::linkat(state.dst_root, it->second.c_str(), dst, name.c_str(), 0) != 0) {
        return ErrnoStatus(StrCat("link ", Quote(rel)));
      }
      return absl::OkStatus();
    }
    state.links[{st.st_dev, st.st_ino}] = rel;
  }
  if (S_ISDIR(st.st_mode)) {
    if (::mkdirat(dst, name.c_str(), 0700) != 0) return ErrnoStatus(StrCat("mkdir ", Quote(rel)));
    KILN_ASSIGN_OR_RETURN(UniqueFd s, OpenSubdir(src, name, rel));
    KILN_ASSIGN_OR_RETURN(UniqueFd d, OpenSubdir(dst, name, rel));
    KILN_RETURN_IF_ERROR(CopyDir(state, s.get(), d.get(), rel));
  } else if (S_ISREG(st.st_mode)) {
    UniqueFd in(::openat(src, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!in) return ErrnoStatus(StrCat("open ", Quote(rel)));
    UniqueFd out(
        ::openat(dst, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!out) return ErrnoStatus(StrCat("create ", Quote(rel)));
    KILN_RETURN_IF_ERROR(CopyFileData(in.get(), out.get(), st.st_size, rel));
  } else if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlinkat(src, name.c_str(), target.data(), target.size());
    if (n < 0) return ErrnoStatus(StrCat("readlink ", Quote(rel)));
    target.resize(static_cast<size_t>(n));
    if (::symlinkat(target.c_str(), dst, name.c_str()) != 0)
      return ErrnoStatus(StrCat("symlink ", Quote(rel)));
  } else {
    if (::mknodat(dst, name.c_str(), st.st_mode, st.st_rdev) != 0) {
      return ErrnoStatus(StrCat("mknod ", Quote(rel)));
    }
  }
  KILN_ASSIGN_OR_RETURN(Xattrs xattrs, ListXattrs(src, name));
  std::erase_if(xattrs, [](const auto& kv) { return IsOverlayXattr(kv.first); });
  return ApplyMetadata(dst, name, st, &xattrs, rel);
}

absl::Status CopyDir(CopyState& state, int src, int dst, const std::string& rel) {
  KILN_ASSIGN_OR_RETURN(auto names, ListSorted(src, rel));
  for (const std::string& name : names) {
    KILN_RETURN_IF_ERROR(
        CopyEntry(state, src, dst, name, rel.empty() ? name : StrCat(rel, "/", name)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CopyTree(const std::string& src, const std::string& dst) {
  KILN_ASSIGN_OR_RETURN(UniqueFd s, OpenDirectory(src));
  KILN_ASSIGN_OR_RETURN(UniqueFd d, OpenDirectory(dst));
  CopyState state{d.get(), {}};
  KILN_RETURN_IF_ERROR_CTX(CopyDir(state, s.get(), d.get(), ""), StrCat("copy ", Quote(src)));
  // The root directory's own metadata.
  struct stat st;
  if (::fstat(s.get(), &st) != 0) return ErrnoStatus(StrCat("stat ", Quote(src)));
  KILN_ASSIGN_OR_RETURN(Xattrs xattrs, ListXattrs(s.get(), "."));
  std::erase_if(xattrs, [](const auto& kv) { return IsOverlayXattr(kv.first); });
  return ApplyMetadata(d.get(), ".", st, &xattrs, dst);
}

namespace {
absl::Status Usage(int dirfd, std::set<std::pair<dev_t, ino_t>>& seen, SnapshotUsage& u,
                   const std::string& rel) {
  KILN_ASSIGN_OR_RETURN(auto names, ListSorted(dirfd, rel));
  for (const std::string& name : names) {
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoStatus(StrCat("stat ", Quote(name)));
    }
    if (seen.insert({st.st_dev, st.st_ino}).second) {
      u.inodes++;
      u.size += static_cast<int64_t>(st.st_blocks) * 512;
    }
    if (S_ISDIR(st.st_mode)) {
      KILN_ASSIGN_OR_RETURN(UniqueFd sub, OpenSubdir(dirfd, name, name));
      KILN_RETURN_IF_ERROR(Usage(sub.get(), seen, u, name));
    }
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<SnapshotUsage> DiskUsage(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenDirectory(path));
  SnapshotUsage u;
  std::set<std::pair<dev_t, ino_t>> seen;
  struct stat st;
  if (::fstat(fd.get(), &st) == 0) {
    seen.insert({st.st_dev, st.st_ino});
    u.inodes = 1;
    u.size = static_cast<int64_t>(st.st_blocks) * 512;
  }
  KILN_RETURN_IF_ERROR(Usage(fd.get(), seen, u, path));
  return u;
}

}  // namespace kiln::snapshotter
