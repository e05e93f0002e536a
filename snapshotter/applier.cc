#include "snapshotter/applier.h"

#include <cerrno>
#include <thread>
#include <unordered_set>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "absl/strings/str_join.h"
#include "base/status.h"
#include "snapshotter/fs_util.h"
#include "snapshotter/pipeline.h"
#include "snapshotter/sha256.h"

namespace kiln::snapshotter {
namespace {

constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kOpaqueMarker[] = ".wh..wh..opq";
constexpr char kWhiteoutMetaPrefix[] = ".wh..wh.";
constexpr size_t kChunk = 1 << 20;

using Components = std::vector<std::string>;

std::string Join(const Components& c, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i) out.push_back('/');
    out += c[i];
  }
  return out;
}

// Lexical cleaning; `..` above the root is an error, a leading `/` is dropped.
// `what` prefixes the error ("" for entry names, which the caller annotates already).
absl::StatusOr<Components> CleanPath(std::string_view name, std::string_view what) {
  Components out;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t slash = name.find('/', pos);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view comp = name.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      if (out.empty()) {
        return absl::InvalidArgumentError(StrCat(what, "path escapes the root with `..`"));
      }
      out.pop_back();
      continue;
    }
    out.emplace_back(comp);
  }
  return out;
}

// openat2 confined to `root`; returns the fd or -errno.
int OpenInRootRaw(int root, const std::string& rel, int flags) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  for (;;) {
    long fd = ::syscall(SYS_openat2, root, rel.empty() ? "." : rel.c_str(), &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == EAGAIN || errno == EINTR) continue;  // a concurrent rename; retry
    return -errno;
  }
}

absl::StatusOr<UniqueFd> OpenInRoot(int root, const std::string& rel, int flags) {
  int fd = OpenInRootRaw(root, rel, flags);
  if (fd < 0) return ErrnoStatus(-fd, StrCat("resolve ", Quote(rel), " in the layer root"));
  return UniqueFd(fd);
}

bool IsWhiteoutDevice(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

struct ReadContext {
  PipeSource* source;
  absl::Status error;
  bool at_eof = false;
};

struct DirTimes {
  Components path;
  struct timespec times[2];
};

class Extractor {
 public:
  Extractor(int root, const ApplyOptions& opts, const ReadContext& input)
      : root_(root), opts_(opts), input_(input) {}

  // The stream ended right after the last entry's data, without tar padding or end-of-archive
  // blocks.  Go's archive/tar accepts that and umoci 0.4.7 writes such layers; the data itself
  // is complete (and the digests cover exactly what was sent).
  bool ended_without_trailer() const { return ended_without_trailer_; }

  absl::Status Entry(archive* a, archive_entry* e, ApplyResult& result) {
    const char* raw = archive_entry_pathname(e);
    std::string name = raw ? raw : "";
    absl::Status s = EntryImpl(a, e, name, result);
    if (!s.ok()) return Annotate(s, StrCat("layer entry ", Quote(name)));
    return s;
  }

  // Directory times last: creating children changed them.
  absl::Status Finish() {
    for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
      if (it->path.empty()) {
        if (::utimensat(root_, ".", it->times, AT_SYMLINK_NOFOLLOW) != 0) {
          return ErrnoStatus("set times of the layer root");
        }
        continue;
      }
      Components parent(it->path.begin(), it->path.end() - 1);
      auto pfd = OpenInRoot(root_, Join(parent, parent.size()), O_PATH | O_DIRECTORY);
      if (!pfd.ok()) continue;  // removed by a later entry
      if (::utimensat(pfd->get(), it->path.back().c_str(), it->times, AT_SYMLINK_NOFOLLOW) != 0 &&
          errno != ENOENT) {
        return ErrnoStatus(StrCat("set times of ", Quote(Join(it->path, it->path.size()))));
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::Status EntryImpl(archive* a, archive_entry* e, const std::string& name,
                         ApplyResult& result) {
    KILN_ASSIGN_OR_RETURN(Components comps, CleanPath(name, ""));
    const char* hardlink = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);
    if (comps.empty()) {
      if (type != AE_IFDIR || hardlink)
        return absl::InvalidArgumentError("the root must be a directory");
      return ApplyDirMetadata(root_, ".", comps, e);
    }
    const std::string& base = comps.back();
    if (base.starts_with(kWhiteoutPrefix) && opts_.whiteouts == WhiteoutMode::kDelete) {
      // Nothing to delete under a directory that does not exist; don't create it.
      int probe = OpenInRootRaw(root_, Join(comps, comps.size() - 1), O_PATH | O_DIRECTORY);
      UniqueFd probe_owner(std::max(probe, -1));
      if (probe == -ENOENT || probe == -ENOTDIR) return absl::OkStatus();
    }
    KILN_ASSIGN_OR_RETURN(int pfd, Parent(comps));

    if (base.starts_with(kWhiteoutPrefix)) return Whiteout(pfd, comps);

    struct stat existing;
    bool exists = ::fstatat(pfd, base.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
    bool keep_dir = exists && S_ISDIR(existing.st_mode) && type == AE_IFDIR && !hardlink;
    if (exists && !keep_dir) {
      InvalidateParentCache();
      KILN_RETURN_IF_ERROR(RemoveAt(pfd, base));
    }
    written_.insert(Join(comps, comps.size()));

    if (hardlink) return Hardlink(pfd, base, hardlink);
    switch (type) {
      case AE_IFDIR:
        if (!keep_dir && ::mkdirat(pfd, base.c_str(), 0700) != 0) return ErrnoStatus("mkdir");
        return ApplyDirMetadata(pfd, base, comps, e);
      case AE_IFREG:
        return RegularFile(a, e, pfd, base);
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        if (::symlinkat(target ? target : "", pfd, base.c_str()) != 0)
          return ErrnoStatus("symlink");
        return ApplyMetadata(e, pfd, base, /*is_link=*/true);
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: {
        mode_t mode = type | (archive_entry_perm(e) & 07777);
        dev_t dev =
            type == AE_IFIFO ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
        if (::mknodat(pfd, base.c_str(), mode, dev) != 0) {
          if (errno == EPERM && type != AE_IFIFO) {
            result.skipped_devices++;  // no CAP_MKNOD: skip, as rootless containerd does
            return absl::OkStatus();
          }
          return ErrnoStatus("mknod");
        }
        return ApplyMetadata(e, pfd, base, false);
      }
      case AE_IFSOCK:
        return absl::OkStatus();  // sockets are not layer content
      default:
        return absl::InvalidArgumentError(StrCat("unsupported tar entry type ", type));
    }
  }

  // The parent directory of `comps`, resolved (and created) inside the root.
  absl::StatusOr<int> Parent(const Components& comps) {
    std::string path = Join(comps, comps.size() - 1);
    if (parent_path_valid_ && path == parent_path_) return parent_fd_.get();
    int raw = OpenInRootRaw(root_, path, O_PATH | O_DIRECTORY);
    absl::StatusOr<UniqueFd> fd = UniqueFd(raw);
    if (raw == -ENOENT) {
      fd = MakeParents(comps);
    } else if (raw < 0) {
      fd = ErrnoStatus(-raw, StrCat("resolve ", Quote(path), " in the layer root"));
    }
    if (!fd.ok()) return Annotate(fd.status(), "parent directory");
    parent_fd_ = std::move(*fd);
    parent_path_ = path;
    parent_path_valid_ = true;
    return parent_fd_.get();
  }

  // Creates the missing parents of `comps` inside the root.  A symlink met on the way is
  // followed the way RESOLVE_IN_ROOT would (absolute = from the root, `..` stops at the root)
  // and its missing target directories are created, as containerd does.
  absl::StatusOr<UniqueFd> MakeParents(const Components& comps, int depth = 0) {
    if (depth > 40) return absl::InvalidArgumentError("too many levels of symbolic links");
    KILN_ASSIGN_OR_RETURN(UniqueFd cur, OpenInRoot(root_, "", O_PATH | O_DIRECTORY));
    for (size_t i = 0; i + 1 < comps.size(); ++i) {
      std::string sub = Join(comps, i + 1);
      int next = OpenInRootRaw(root_, sub, O_PATH | O_DIRECTORY);
      if (next == -ENOENT) {
        struct stat st;
        if (::fstatat(cur.get(), comps[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(st.st_mode)) {
          std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
          ssize_t n = ::readlinkat(cur.get(), comps[i].c_str(), target.data(), target.size());
          if (n < 0) return ErrnoStatus(StrCat("readlink ", Quote(sub)));
          target.resize(static_cast<size_t>(n));
          Components redirected;
          if (!target.starts_with("/"))
            redirected.assign(comps.begin(), comps.begin() + static_cast<long>(i));
          for (const std::string& c : SplitClamped(target)) {
            if (c == "..") {
              if (!redirected.empty()) redirected.pop_back();
            } else {
              redirected.push_back(c);
            }
          }
          redirected.insert(redirected.end(), comps.begin() + static_cast<long>(i) + 1,
                            comps.end());
          return MakeParents(redirected, depth + 1);
        }
        if (::mkdirat(cur.get(), comps[i].c_str(), 0755) != 0 && errno != EEXIST) {
          return ErrnoStatus(StrCat("mkdir ", Quote(sub)));
        }
        next = OpenInRootRaw(root_, sub, O_PATH | O_DIRECTORY);
      }
      if (next < 0) return ErrnoStatus(-next, StrCat("resolve ", Quote(sub), " in the layer root"));
      cur.Reset(next);
    }
    return cur;
  }

  static Components SplitClamped(std::string_view path) {
    Components out;
    size_t pos = 0;
    while (pos <= path.size()) {
      size_t slash = path.find('/', pos);
      if (slash == std::string_view::npos) slash = path.size();
      std::string_view c = path.substr(pos, slash - pos);
      pos = slash + 1;
      if (!c.empty() && c != ".") out.emplace_back(c);
    }
    return out;
  }

  // The cached parent may no longer be what its path resolves to; the fd stays open for the
  // caller still using it.
  void InvalidateParentCache() { parent_path_valid_ = false; }

  absl::Status Whiteout(int pfd, const Components& comps) {
    const std::string& base = comps.back();
    if (base == kOpaqueMarker) {
      if (opts_.whiteouts == WhiteoutMode::kOverlay) {
        std::string path = ProcFdPath(pfd, ".");
        if (::lsetxattr(path.c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0) {
          return ErrnoStatus("set trusted.overlay.opaque");
        }
        return absl::OkStatus();
      }
      Components dir(comps.begin(), comps.end() - 1);
      std::string prefix = Join(dir, dir.size());
      KILN_ASSIGN_OR_RETURN(auto names, ListSorted(pfd, prefix));
      InvalidateParentCache();
      for (const std::string& n : names) {
        if (written_.count(prefix.empty() ? n : StrCat(prefix, "/", n))) continue;
        KILN_RETURN_IF_ERROR(RemoveAt(pfd, n));
      }
      return absl::OkStatus();
    }
    if (base.starts_with(kWhiteoutMetaPrefix)) return absl::OkStatus();  // aufs metadata
    std::string victim = base.substr(sizeof(kWhiteoutPrefix) - 1);
    if (victim.empty() || victim == "." || victim == ".." ||
        victim.find('/') != std::string::npos) {
      return absl::InvalidArgumentError("malformed whiteout");
    }
    InvalidateParentCache();
    KILN_RETURN_IF_ERROR(RemoveAt(pfd, victim));
    if (opts_.whiteouts == WhiteoutMode::kOverlay) {
      if (::mknodat(pfd, victim.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
        return ErrnoStatus("create overlay whiteout");
      }
    }
    return absl::OkStatus();
  }

  absl::Status RegularFile(archive* a, archive_entry* e, int pfd, const std::string& base) {
    UniqueFd fd(
        ::openat(pfd, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return ErrnoStatus("create");
    int64_t written = 0;
    for (;;) {
      const void* buf;
      size_t size;
      la_int64_t offset;
      int r = archive_read_data_block(a, &buf, &size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN && input_.at_eof && input_.error.ok() &&
          written == archive_entry_size(e)) {
        ended_without_trailer_ = true;
        break;
      }
      if (r < ARCHIVE_WARN)
        return absl::DataLossError(StrCat("read data: ", archive_error_string(a)));
      const char* p = static_cast<const char*>(buf);
      while (size > 0) {
        ssize_t w = ::pwrite(fd.get(), p, size, offset);
        if (w < 0) {
          if (errno == EINTR) continue;
          return ErrnoStatus("write");
        }
        p += w;
        size -= static_cast<size_t>(w);
        offset += w;
        written = std::max<int64_t>(written, offset);
      }
    }
    if (archive_entry_size_is_set(e) && ::ftruncate(fd.get(), archive_entry_size(e)) != 0) {
      return ErrnoStatus("truncate");
    }
    if (::fchown(fd.get(), archive_entry_uid(e), archive_entry_gid(e)) != 0 &&
        !IgnorableChownError()) {
      return ErrnoStatus("chown");
    }
    if (::fchmod(fd.get(), archive_entry_perm(e) & 07777) != 0) return ErrnoStatus("chmod");
    KILN_RETURN_IF_ERROR(SetXattrs(e, ProcFdPath(pfd, base)));
    struct timespec times[2];
    Times(e, times);
    if (::futimens(fd.get(), times) != 0) return ErrnoStatus("set times");
    return absl::OkStatus();
  }

  absl::Status ApplyDirMetadata(int pfd, const std::string& base, const Components& comps,
                                archive_entry* e) {
    if (::fchownat(pfd, base.c_str(), archive_entry_uid(e), archive_entry_gid(e),
                   AT_SYMLINK_NOFOLLOW) != 0 &&
        !IgnorableChownError()) {
      return ErrnoStatus("chown");
    }
    if (::fchmodat(pfd, base.c_str(), archive_entry_perm(e) & 07777, 0) != 0)
      return ErrnoStatus("chmod");
    KILN_RETURN_IF_ERROR(SetXattrs(e, ProcFdPath(pfd, base)));
    DirTimes t{comps, {}};
    Times(e, t.times);
    dir_times_.push_back(std::move(t));
    return absl::OkStatus();
  }

  absl::Status ApplyMetadata(archive_entry* e, int pfd, const std::string& base, bool is_link) {
    if (::fchownat(pfd, base.c_str(), archive_entry_uid(e), archive_entry_gid(e),
                   AT_SYMLINK_NOFOLLOW) != 0 &&
        !IgnorableChownError()) {
      return ErrnoStatus("chown");
    }
    if (!is_link && ::fchmodat(pfd, base.c_str(), archive_entry_perm(e) & 07777, 0) != 0) {
      return ErrnoStatus("chmod");
    }
    KILN_RETURN_IF_ERROR(SetXattrs(e, ProcFdPath(pfd, base)));
    struct timespec times[2];
    Times(e, times);
    if (::utimensat(pfd, base.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
      return ErrnoStatus("set times");
    return absl::OkStatus();
  }

  static bool IgnorableChownError() { return errno == EPERM && ::geteuid() != 0; }

  static void Times(archive_entry* e, struct timespec times[2]) {
    times[1].tv_sec = archive_entry_mtime(e);
    times[1].tv_nsec = archive_entry_mtime_nsec(e);
    if (archive_entry_atime_is_set(e)) {
      times[0].tv_sec = archive_entry_atime(e);
      times[0].tv_nsec = archive_entry_atime_nsec(e);
    } else {
      times[0] = times[1];
    }
  }

  absl::Status SetXattrs(archive_entry* e, const std::string& path) {
    archive_entry_xattr_reset(e);
    const char* key;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(e, &key, &value, &size) == ARCHIVE_OK) {
      if (key == nullptr || IsOverlayXattr(key)) continue;
      if (::lsetxattr(path.c_str(), key, value, size, 0) != 0) {
        if (errno == ENOTSUP || errno == EPERM) continue;  // e.g. user.* on a symlink
        return ErrnoStatus(StrCat("set xattr ", key));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Hardlink(int pfd, const std::string& base, const char* target_name) {
    KILN_ASSIGN_OR_RETURN(
        Components target,
        CleanPath(target_name, StrCat("hardlink target ", Quote(target_name), ": ")));
    if (target.empty()) return absl::InvalidArgumentError("hardlink to the root");
    Components tparent(target.begin(), target.end() - 1);
    std::string tpath = Join(tparent, tparent.size());
    auto tfd = OpenInRoot(root_, tpath, O_PATH | O_DIRECTORY);
    struct stat st;
    bool found = tfd.ok() &&
                 ::fstatat(tfd->get(), target.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                 !(opts_.whiteouts == WhiteoutMode::kOverlay && IsWhiteoutDevice(st));
    if (!found && opts_.whiteouts == WhiteoutMode::kOverlay) {
      KILN_RETURN_IF_ERROR(CopyUpFromLower(target));
      tfd = OpenInRoot(root_, tpath, O_PATH | O_DIRECTORY);
      found =
          tfd.ok() && ::fstatat(tfd->get(), target.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    }
    if (!found) {
      return absl::NotFoundError(
          StrCat("hardlink target ", Quote(target_name), " does not exist in the layer root"));
    }
    if (S_ISDIR(st.st_mode))
      return absl::InvalidArgumentError(StrCat("hardlink to directory ", Quote(target_name)));
    if (::linkat(tfd->get(), target.back().c_str(), pfd, base.c_str(), 0) != 0) {
      return ErrnoStatus(StrCat("link to ", Quote(target_name)));
    }
    return absl::OkStatus();
  }

  // Overlay mode: a hardlink to a file of an earlier layer needs that file in the upper dir.
  absl::Status CopyUpFromLower(const Components& target) {
    Components tparent(target.begin(), target.end() - 1);
    std::string tpath = Join(tparent, tparent.size());
    for (const std::string& lower : opts_.lower_dirs) {
      KILN_ASSIGN_OR_RETURN(UniqueFd lroot, OpenDirectory(lower));
      auto lp = OpenInRoot(lroot.get(), tpath, O_PATH | O_DIRECTORY);
      if (!lp.ok()) continue;
      struct stat st;
      if (::fstatat(lp->get(), target.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (IsWhiteoutDevice(st) || S_ISDIR(st.st_mode)) return absl::OkStatus();  // hidden / invalid
      KILN_ASSIGN_OR_RETURN(int upper_parent, Parent(target));
      const std::string& name = target.back();
      if (S_ISREG(st.st_mode)) {
        UniqueFd in(::openat(lp->get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!in) return ErrnoStatus("open lower file for copy-up");
        UniqueFd out(::openat(upper_parent, name.c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!out) return ErrnoStatus("create copy-up file");
        std::string buf(kChunk, '\0');
        for (;;) {
          ssize_t n = ::read(in.get(), buf.data(), buf.size());
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) return ErrnoStatus("read lower file");
          if (n == 0) break;
          KILN_RETURN_IF_ERROR(WriteFull(out.get(), buf.data(), static_cast<size_t>(n), name));
        }
      } else if (S_ISLNK(st.st_mode)) {
        std::string t(static_cast<size_t>(st.st_size) + 1, '\0');
        ssize_t n = ::readlinkat(lp->get(), name.c_str(), t.data(), t.size());
        if (n < 0) return ErrnoStatus("readlink lower");
        t.resize(static_cast<size_t>(n));
        if (::symlinkat(t.c_str(), upper_parent, name.c_str()) != 0)
          return ErrnoStatus("symlink copy-up");
      } else if (::mknodat(upper_parent, name.c_str(), st.st_mode, st.st_rdev) != 0) {
        return ErrnoStatus("mknod copy-up");
      }
      KILN_ASSIGN_OR_RETURN(Xattrs xattrs, ListXattrs(lp->get(), name));
      std::erase_if(xattrs, [](const auto& kv) { return IsOverlayXattr(kv.first); });
      return kiln::snapshotter::ApplyMetadata(upper_parent, name, st, &xattrs, name);
    }
    return absl::OkStatus();
  }

  int root_;
  const ApplyOptions& opts_;
  const ReadContext& input_;
  bool ended_without_trailer_ = false;
  UniqueFd parent_fd_;
  std::string parent_path_;
  bool parent_path_valid_ = false;
  std::unordered_set<std::string> written_;
  std::vector<DirTimes> dir_times_;
};

la_ssize_t ReadCallback(archive* a, void* ctx, const void** buf) {
  auto* c = static_cast<ReadContext*>(ctx);
  auto next = c->source->Next();
  if (!next.ok()) {
    c->error = next.status();
    archive_set_error(a, EIO, "layer stream failed");
    return -1;
  }
  if (next->empty()) c->at_eof = true;
  *buf = next->data();
  return static_cast<la_ssize_t>(next->size());
}

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};

absl::Status Extract(int root, PipeSource& source, const ApplyOptions& opts, ApplyResult& result) {
  std::unique_ptr<archive, ArchiveDeleter> a(archive_read_new());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_empty(a.get());
  ReadContext ctx{&source, absl::OkStatus()};
  if (archive_read_open(a.get(), &ctx, nullptr, ReadCallback, nullptr) != ARCHIVE_OK) {
    if (!ctx.error.ok()) return ctx.error;
    return absl::InvalidArgumentError(
        StrCat("layer is not a tar archive: ", archive_error_string(a.get())));
  }
  Extractor x(root, opts, ctx);
  for (;;) {
    KILN_RETURN_IF_ERROR(opts.cancel.Check());
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      if (!ctx.error.ok()) return ctx.error;
      return absl::InvalidArgumentError(StrCat("read layer tar: ", archive_error_string(a.get())));
    }
    KILN_RETURN_IF_ERROR(x.Entry(a.get(), e, result));
    if (!ctx.error.ok()) return ctx.error;
    result.entries++;
    if (x.ended_without_trailer()) break;
  }
  return x.Finish();
}

}  // namespace

absl::StatusOr<ApplyResult> ApplyLayer(const std::string& target_dir, ByteSource& layer,
                                       const ApplyOptions& opts) {
  if (!opts.media_type.empty())
    KILN_RETURN_IF_ERROR(CompressionOfMediaType(opts.media_type).status());
  UniqueFd root(::open(target_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoStatus(StrCat("open apply target ", Quote(target_dir)));

  ChunkPipe pipe(kChunk, 4);
  ApplyResult result;
  std::thread producer([&] {
    DecompressingSource dec(layer, opts.expected_size);
    Sha256State diff;
    PipeSink sink(pipe);
    absl::Status s;
    for (;;) {
      if (s = opts.cancel.Check(); !s.ok()) break;
      auto space = sink.Reserve();
      if (!space.ok()) {
        s = space.status();
        break;
      }
      auto n = dec.Read(space->first, space->second);
      if (!n.ok()) {
        s = n.status();
        break;
      }
      if (*n == 0) break;
      // Uncompressed: the stream's own hash is the diffID; don't hash twice.
      if (dec.compression() != Compression::kNone) diff.Update(space->first, *n);
      sink.Commit(*n);
      result.uncompressed_size += static_cast<int64_t>(*n);
    }
    result.digest = dec.compressed_digest();
    result.diff_id = dec.compression() == Compression::kNone ? result.digest : diff.Peek();
    result.size = dec.compressed_size();
    result.compression = dec.compression();
    sink.Close(s);
  });
  absl::Status extracted;
  {
    PipeSource source(pipe);
    extracted = Extract(root.get(), source, opts, result);
    if (extracted.ok()) {
      // Drain what follows the end-of-archive marker so both digests cover every byte.
      for (;;) {
        auto next = source.Next();
        if (!next.ok() || next->empty()) break;
      }
    } else {
      pipe.CloseRead();
    }
  }
  producer.join();
  absl::Status produced = pipe.producer_status();
  if (!produced.ok() && !absl::IsCancelled(produced)) return Annotate(produced, "apply layer");
  KILN_RETURN_IF_ERROR_CTX(extracted, StrCat("apply layer to ", Quote(target_dir)));
  KILN_RETURN_IF_ERROR(produced);
  if (opts.expected_size >= 0 && result.size != opts.expected_size) {
    return absl::DataLossError(StrCat("apply layer: size mismatch: expected ", opts.expected_size,
                                      " bytes, got ", result.size));
  }
  if (opts.expected_digest.valid() && result.digest != opts.expected_digest) {
    return absl::DataLossError(StrCat("apply layer: digest mismatch: expected ",
                                      opts.expected_digest.str(), ", got ", result.digest.str()));
  }
  return result;
}

absl::StatusOr<ApplyResult> ApplyLayerToMounts(const std::vector<Mount>& mounts, ByteSource& layer,
                                               ApplyOptions options) {
  if (mounts.size() != 1) {
    return absl::InvalidArgumentError(
        StrCat("apply layer: expected one mount, got ", mounts.size()));
  }
  const Mount& m = mounts[0];
  if (m.type == "overlay") {
    OverlayDirs dirs = ParseOverlayDirs(m);
    if (dirs.upper.empty())
      return absl::InvalidArgumentError("apply layer: overlay mount has no upperdir");
    options.whiteouts = WhiteoutMode::kOverlay;
    options.lower_dirs = dirs.lower;
    return ApplyLayer(dirs.upper, layer, options);
  }
  if (m.type == "bind") {
    for (const std::string& o : m.options) {
      if (o == "ro") return absl::InvalidArgumentError("apply layer: the mount is read-only");
    }
    options.whiteouts = WhiteoutMode::kDelete;
    return ApplyLayer(m.source, layer, options);
  }
  return absl::InvalidArgumentError(StrCat("apply layer: unsupported mount type ", Quote(m.type)));
}

}  // namespace kiln::snapshotter
