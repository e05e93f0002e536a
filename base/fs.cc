#include "base/fs.h"

#include <cerrno>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"

namespace kiln {
namespace {

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(StrCat("write ", Quote(path)));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Removes every entry inside the directory `dirfd` (named `path` for messages).
absl::Status RemoveContents(int dirfd, const std::string& path) {
  int dup_fd = ::dup(dirfd);
  if (dup_fd < 0) return ErrnoStatus(StrCat("dup ", Quote(path)));
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    ::close(dup_fd);
    return ErrnoStatus(StrCat("opendir ", Quote(path)));
  }
  std::vector<std::pair<std::string, bool>> entries;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    entries.emplace_back(name, e->d_type == DT_DIR);
  }
  ::closedir(dir);
  for (auto& [name, is_dir_hint] : entries) {
    std::string child = StrCat(path, "/", name);
    if (::unlinkat(dirfd, name.c_str(), 0) == 0) continue;
    if (errno == ENOENT) continue;
    if (errno != EISDIR && errno != EPERM) return ErrnoStatus(StrCat("unlink ", Quote(child)));
    UniqueFd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) return ErrnoStatus(StrCat("open ", Quote(child)));
    KILN_RETURN_IF_ERROR(RemoveContents(sub.get(), child));
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return ErrnoStatus(StrCat("rmdir ", Quote(child)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(path)));
  return ReadFdToString(fd.get(), path);
}

absl::StatusOr<std::string> ReadFdToString(int fd, std::string_view what, size_t max_size) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(StrCat("read ", Quote(what)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_size) {
      return absl::InvalidArgumentError(
          StrCat("read ", Quote(what), ": larger than ", max_size >> 20, " MiB"));
    }
  }
  return out;
}

absl::Status SyncDir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(path)));
  if (::fsync(fd.get()) != 0) return ErrnoStatus(StrCat("fsync ", Quote(path)));
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view data, int mode) {
  std::string tmp = StrCat(path, ".tmp-XXXXXX");
  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("create temp file for ", Quote(path)));
  auto fail = [&tmp](absl::Status s) {
    ::unlink(tmp.c_str());
    return s;
  };
  if (::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0) {
    return fail(ErrnoStatus(StrCat("chmod ", Quote(tmp))));
  }
  if (auto s = WriteAll(fd.get(), data, tmp); !s.ok()) return fail(s);
  if (::fsync(fd.get()) != 0) return fail(ErrnoStatus(StrCat("fsync ", Quote(tmp))));
  fd.Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail(ErrnoStatus(StrCat("rename ", Quote(tmp), " to ", Quote(path))));
  }
  return SyncDir(DirName(path));
}

absl::Status MakeDirs(const std::string& path, int mode) {
  if (path.empty()) return absl::OkStatus();
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::OkStatus();
    return absl::AlreadyExistsError(StrCat("mkdir ", Quote(path), ": not a directory"));
  }
  std::string parent = DirName(path);
  if (parent != path && parent != "." && parent != "/") {
    KILN_RETURN_IF_ERROR(MakeDirs(parent, mode));
  }
  if (::mkdir(path.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) {
    return ErrnoStatus(StrCat("mkdir ", Quote(path)));
  }
  return absl::OkStatus();
}

absl::Status RemoveAll(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(StrCat("stat ", Quote(path)));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(StrCat("unlink ", Quote(path)));
    }
    return absl::OkStatus();
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(path)));
  KILN_RETURN_IF_ERROR(RemoveContents(fd.get(), path));
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(StrCat("rmdir ", Quote(path)));
  }
  return absl::OkStatus();
}

absl::StatusOr<TempDir> TempDir::Create(std::string_view prefix, std::string parent) {
  if (parent.empty()) {
    const char* env = ::getenv("TMPDIR");
    parent = env && *env ? env : "/tmp";
  }
  std::string tmpl = StrCat(parent, "/", prefix, "XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return ErrnoStatus(StrCat("mkdtemp ", Quote(tmpl)));
  }
  return TempDir(std::move(tmpl));
}

TempDir::~TempDir() {
  if (!path_.empty()) (void)RemoveAll(path_);
}

TempDir& TempDir::operator=(TempDir&& o) noexcept {
  if (this != &o) {
    if (!path_.empty()) (void)RemoveAll(path_);
    path_ = std::exchange(o.path_, std::string());
  }
  return *this;
}

}  // namespace kiln
