#include "engine/exporter/tree_tar.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "snapshotter/applier.h"
#include "snapshotter/pipeline.h"
#include "snapshotter/tar_writer.h"

namespace kiln::engine {
namespace {

constexpr size_t kChunk = 1 << 20;

absl::StatusOr<std::vector<std::string>> SortedNames(int dirfd, const std::string& what) {
  UniqueFd dup(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
  if (!dup) return ErrnoStatus(StrCat("dup directory ", Quote(what)));
  DIR* d = ::fdopendir(dup.get());
  if (d == nullptr) return ErrnoStatus(StrCat("opendir ", Quote(what)));
  dup.Release();
  std::unique_ptr<DIR, int (*)(DIR*)> owner(d, ::closedir);
  ::rewinddir(d);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
    errno = 0;
  }
  if (errno != 0) return ErrnoStatus(StrCat("readdir ", Quote(what)));
  std::sort(names.begin(), names.end());
  return names;
}

std::string ProcPath(int dirfd, const std::string& name) {
  return StrCat("/proc/self/fd/", dirfd, "/", name);
}

bool IsOverlayXattr(std::string_view k) {
  return k.starts_with("trusted.overlay.") || k.starts_with("user.overlay.");
}

absl::StatusOr<snapshotter::Xattrs> ReadXattrs(int dirfd, const std::string& name,
                                               const std::string& what) {
  std::string path = ProcPath(dirfd, name);
  snapshotter::Xattrs out;
  ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
  if (n < 0) {
    if (errno == ENOTSUP || errno == EOPNOTSUPP) return out;
    return ErrnoStatus(StrCat("list xattrs of ", Quote(what)));
  }
  if (n == 0) return out;
  std::string list(static_cast<size_t>(n), '\0');
  n = ::llistxattr(path.c_str(), list.data(), list.size());
  if (n < 0) return ErrnoStatus(StrCat("list xattrs of ", Quote(what)));
  list.resize(static_cast<size_t>(n));
  for (size_t pos = 0; pos < list.size();) {
    std::string key = list.c_str() + pos;
    pos += key.size() + 1;
    if (key.empty() || IsOverlayXattr(key)) continue;
    ssize_t vn = ::lgetxattr(path.c_str(), key.c_str(), nullptr, 0);
    if (vn < 0) {
      if (errno == ENODATA) continue;
      return ErrnoStatus(StrCat("read xattr ", key, " of ", Quote(what)));
    }
    std::string value(static_cast<size_t>(vn), '\0');
    vn = ::lgetxattr(path.c_str(), key.c_str(), value.data(), value.size());
    if (vn < 0) return ErrnoStatus(StrCat("read xattr ", key, " of ", Quote(what)));
    value.resize(static_cast<size_t>(vn));
    out.emplace_back(std::move(key), std::move(value));
  }
  std::sort(out.begin(), out.end());
  return out;
}

class TreeWriter {
 public:
  TreeWriter(snapshotter::ByteSink& out, const TreeTarOptions& opts)
      : out_(out), opts_(opts), buf_(kChunk, '\0') {}

  absl::Status Dir(int dirfd, const std::string& rel) {
    KILN_ASSIGN_OR_RETURN(auto names, SortedNames(dirfd, rel.empty() ? "/" : rel));
    for (const std::string& name : names) {
      KILN_RETURN_IF_ERROR(opts_.cancel.Check());
      std::string path = rel.empty() ? name : StrCat(rel, "/", name);
      if (opts_.refuse_whiteout_names && name.starts_with(".wh.")) {
        return absl::InvalidArgumentError(
            StrCat("export: ", Quote(path), " has a whiteout name, which cannot be exported"));
      }
      struct stat st;
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus(StrCat("stat ", Quote(path)));
      }
      if (S_ISSOCK(st.st_mode)) continue;
      KILN_RETURN_IF_ERROR(Entry(dirfd, name, path, st));
      if (S_ISDIR(st.st_mode)) {
        UniqueFd sub(
            ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) return ErrnoStatus(StrCat("open directory ", Quote(path)));
        KILN_RETURN_IF_ERROR(Dir(sub.get(), path));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Finish() {
    static const char kZeros[snapshotter::kTarTrailerSize] = {};
    return out_.Write(kZeros, sizeof(kZeros));
  }

 private:
  absl::Status Entry(int dirfd, const std::string& name, const std::string& path,
                     const struct stat& st) {
    snapshotter::TarHeader h;
    h.name = path;
    h.mode = st.st_mode & 07777;
    h.uid = st.st_uid;
    h.gid = st.st_gid;
    // Go's tar writer rounds to the second.
    h.mtime = opts_.epoch ? *opts_.epoch : st.st_mtim.tv_sec + (st.st_mtim.tv_nsec >= 500000000);
    KILN_ASSIGN_OR_RETURN(h.xattrs, ReadXattrs(dirfd, name, path));
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto [it, fresh] = links_.try_emplace({st.st_dev, st.st_ino}, path);
      if (!fresh) {
        h.type = '1';
        h.linkname = it->second;
        return Put(h);
      }
    }
    KILN_ASSIGN_OR_RETURN(bool tarred, snapshotter::SetTarEntryType(dirfd, name, st, &h));
    if (!tarred) return absl::OkStatus();
    KILN_RETURN_IF_ERROR(Put(h));
    return S_ISREG(st.st_mode) ? Data(dirfd, name, path, st.st_size) : absl::OkStatus();
  }

  absl::Status Put(const snapshotter::TarHeader& h) {
    std::string bytes = EncodeGoTarHeader(h);
    return out_.Write(bytes.data(), bytes.size());
  }

  absl::Status Data(int dirfd, const std::string& name, const std::string& path, int64_t size) {
    UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return ErrnoStatus(StrCat("open ", Quote(path)));
    int64_t left = size;
    while (left > 0) {
      KILN_RETURN_IF_ERROR(opts_.cancel.Check());
      size_t want = static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(buf_.size())));
      ssize_t n = ::read(fd.get(), buf_.data(), want);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(StrCat("read ", Quote(path)));
      }
      if (n == 0) {
        return absl::AbortedError(StrCat("export: ", Quote(path), " shrank while being read"));
      }
      KILN_RETURN_IF_ERROR(out_.Write(buf_.data(), static_cast<size_t>(n)));
      left -= n;
    }
    static const char kZeros[512] = {};
    return out_.Write(kZeros, snapshotter::TarPadding(size));
  }

  snapshotter::ByteSink& out_;
  const TreeTarOptions& opts_;
  std::string buf_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

}  // namespace

std::string EncodeGoTarHeader(const snapshotter::TarHeader& h) {
  std::string b = snapshotter::EncodeTarHeader(h);
  if (b.size() != 512 || b.compare(329, 16, std::string(16, '\0')) != 0) return b;
  std::memcpy(b.data() + 329,
              "0000000\0"
              "0000000\0",
              16);
  std::memset(b.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : b) sum += c;
  std::snprintf(b.data() + 148, 8, "%06o", sum);
  b[155] = ' ';
  return b;
}

absl::Status WriteTreeTar(const std::string& root, snapshotter::ByteSink& out,
                          const TreeTarOptions& options) {
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(root)));
  TreeWriter w(out, options);
  KILN_RETURN_IF_ERROR(w.Dir(fd.get(), ""));
  return w.Finish();
}

absl::Status CopyTreeToDir(const std::string& root, const std::string& dest,
                           const TreeTarOptions& options) {
  KILN_RETURN_IF_ERROR(MakeDirs(dest));
  snapshotter::ChunkPipe pipe(kChunk, 4);
  TreeTarOptions o = options;
  o.refuse_whiteout_names = true;
  absl::Status produced;
  std::thread producer([&] {
    snapshotter::PipeSink sink(pipe);
    produced = WriteTreeTar(root, sink, o);
    sink.Close(produced);
  });
  absl::StatusOr<snapshotter::ApplyResult> applied;
  {
    snapshotter::PipeSource source(pipe);
    snapshotter::ApplyOptions ao;
    ao.whiteouts = snapshotter::WhiteoutMode::kDelete;
    ao.cancel = options.cancel;
    applied = snapshotter::ApplyLayer(dest, source, ao);
  }
  pipe.CloseRead();
  producer.join();
  // The walk's own error explains a failed apply better than "stream ended".
  if (!produced.ok() && !(applied.ok() && absl::IsCancelled(produced))) {
    return Annotate(produced, StrCat("export to ", Quote(dest)));
  }
  KILN_RETURN_IF_ERROR_CTX(applied.status(), StrCat("export to ", Quote(dest)));
  return absl::OkStatus();
}

}  // namespace kiln::engine
