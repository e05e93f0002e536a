#include "snapshotter/differ.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/status.h"
#include "snapshotter/fs_util.h"
#include "snapshotter/pipeline.h"
#include "snapshotter/tar_writer.h"

namespace kiln::snapshotter {
namespace {

constexpr size_t kChunk = 1 << 20;
constexpr size_t kDepth = 4;

class HashingSink : public ByteSink {
 public:
  // `hash` false: only count (the caller knows the digest already, e.g. uncompressed layers
  // whose blob digest is the diffID).
  explicit HashingSink(ByteSink& out, bool hash = true) : out_(out), enabled_(hash) {}
  absl::Status Write(const void* data, size_t n) override {
    if (enabled_) hash_.Update(data, n);
    size_ += static_cast<int64_t>(n);
    return out_.Write(data, n);
  }
  Digest digest() const { return hash_.Peek(); }
  int64_t size() const { return size_; }

 private:
  ByteSink& out_;
  bool enabled_;
  Sha256State hash_;
  int64_t size_ = 0;
};

bool IsOpaque(const Xattrs& xattrs) {
  for (const auto& [k, v] : xattrs) {
    if ((k == "trusted.overlay.opaque" || k == "user.overlay.opaque") && v == "y") return true;
  }
  return false;
}

Xattrs WithoutOverlay(Xattrs x) {
  std::erase_if(x, [](const auto& kv) { return IsOverlayXattr(kv.first); });
  return x;
}

// Stage 1: tar entries into the pipe.
class TarEmitter {
 public:
  TarEmitter(PipeSink& sink, const DiffOptions& opts) : sink_(sink), opts_(opts) {}

  int64_t Clamp(int64_t mtime) const {
    if (opts_.source_date_epoch && mtime > *opts_.source_date_epoch)
      return *opts_.source_date_epoch;
    return mtime;
  }

  absl::Status Whiteout(const std::string& dir, const std::string& name, const struct stat& st) {
    TarHeader h;
    h.name = StrCat(dir, ".wh.", name);
    h.type = '0';
    h.mtime = Clamp(st.st_mtim.tv_sec);
    return Put(h);
  }

  absl::Status OpaqueMarker(const std::string& dir_path, const struct stat& st) {
    TarHeader h;
    h.name = StrCat(dir_path, ".wh..wh..opq");
    h.type = '0';
    h.mtime = Clamp(st.st_mtim.tv_sec);
    return Put(h);
  }

  // `path` is relative without a trailing slash.
  absl::Status Entry(int dirfd, const std::string& name, const std::string& path,
                     const struct stat& st, const Xattrs& xattrs) {
    KILN_RETURN_IF_ERROR(opts_.cancel.Check());
    TarHeader h;
    h.name = path;
    h.mode = st.st_mode & 07777;
    h.uid = st.st_uid;
    h.gid = st.st_gid;
    h.mtime = Clamp(st.st_mtim.tv_sec);
    h.xattrs = xattrs;
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto [it, fresh] = links_.try_emplace({st.st_dev, st.st_ino}, path);
      if (!fresh) {
        h.type = '1';
        h.linkname = it->second;
        return Put(h);
      }
    }
    KILN_ASSIGN_OR_RETURN(bool tarred, SetTarEntryType(dirfd, name, st, &h));
    if (!tarred) return absl::OkStatus();
    KILN_RETURN_IF_ERROR(Put(h));
    return S_ISREG(st.st_mode) ? FileData(dirfd, name, path, st.st_size) : absl::OkStatus();
  }

  absl::Status Finish() {
    static const char kZeros[kTarTrailerSize] = {};
    return sink_.Write(kZeros, sizeof(kZeros));
  }

 private:
  absl::Status Put(const TarHeader& h) {
    std::string bytes = EncodeTarHeader(h);
    return sink_.Write(bytes.data(), bytes.size());
  }

  absl::Status FileData(int dirfd, const std::string& name, const std::string& path, int64_t size) {
    UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return ErrnoStatus(StrCat("open ", Quote(path)));
    int64_t left = size;
    while (left > 0) {
      KILN_RETURN_IF_ERROR(opts_.cancel.Check());  // big files: check between chunks too
      KILN_ASSIGN_OR_RETURN(auto space, sink_.Reserve());
      size_t want =
          static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(space.second)));
      ssize_t n = ::read(fd.get(), space.first, want);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(StrCat("read ", Quote(path)));
      }
      if (n == 0) {
        return absl::AbortedError(StrCat("diff: ", Quote(path), " shrank while being read"));
      }
      sink_.Commit(static_cast<size_t>(n));
      left -= n;
    }
    static const char kZeros[512] = {};
    return sink_.Write(kZeros, TarPadding(size));
  }

  PipeSink& sink_;
  const DiffOptions& opts_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

struct Node {
  std::string name;
  struct stat st;
};

absl::StatusOr<std::vector<Node>> ReadNodes(int dirfd, const std::string& what) {
  std::vector<Node> out;
  if (dirfd < 0) return out;
  KILN_ASSIGN_OR_RETURN(auto names, ListSorted(dirfd, what));
  out.reserve(names.size());
  for (std::string& n : names) {
    Node node{std::move(n), {}};
    if (::fstatat(dirfd, node.name.c_str(), &node.st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoStatus(StrCat("stat ", Quote(node.name)));
    }
    out.push_back(std::move(node));
  }
  return out;
}

std::string Child(const std::string& rel, const std::string& name) {
  return rel.empty() ? name : StrCat(rel, "/", name);
}

class Walker {
 public:
  explicit Walker(TarEmitter& tar) : tar_(tar) {}

  // Overlay upper directory.
  absl::Status Upper(int dirfd, const std::string& rel) {
    KILN_ASSIGN_OR_RETURN(auto nodes, ReadNodes(dirfd, rel));
    std::string prefix = rel.empty() ? "" : rel + "/";
    for (const Node& n : nodes) {
      std::string path = Child(rel, n.name);
      if (S_ISCHR(n.st.st_mode) && n.st.st_rdev == makedev(0, 0)) {
        KILN_RETURN_IF_ERROR(tar_.Whiteout(prefix, n.name, n.st));
        continue;
      }
      KILN_ASSIGN_OR_RETURN(Xattrs x, ListXattrs(dirfd, n.name));
      KILN_RETURN_IF_ERROR(tar_.Entry(dirfd, n.name, path, n.st, WithoutOverlay(x)));
      if (S_ISDIR(n.st.st_mode)) {
        if (IsOpaque(x)) KILN_RETURN_IF_ERROR(tar_.OpaqueMarker(path + "/", n.st));
        KILN_ASSIGN_OR_RETURN(UniqueFd sub, OpenSubdir(dirfd, n.name, path));
        KILN_RETURN_IF_ERROR(Upper(sub.get(), path));
      }
    }
    return absl::OkStatus();
  }

  // Two plain trees; lfd < 0 means an empty lower.
  absl::Status Compare(int lfd, int ufd, const std::string& rel) {
    KILN_ASSIGN_OR_RETURN(auto lower, ReadNodes(lfd, rel));
    KILN_ASSIGN_OR_RETURN(auto upper, ReadNodes(ufd, rel));
    std::string prefix = rel.empty() ? "" : rel + "/";
    size_t i = 0, j = 0;
    while (i < lower.size() || j < upper.size()) {
      int cmp = i == lower.size()   ? 1
                : j == upper.size() ? -1
                                    : lower[i].name.compare(upper[j].name);
      if (cmp < 0) {
        KILN_RETURN_IF_ERROR(FlushParents());
        KILN_RETURN_IF_ERROR(tar_.Whiteout(prefix, lower[i].name, lower[i].st));
        ++i;
        continue;
      }
      const Node& u = upper[j];
      std::string path = Child(rel, u.name);
      if (cmp > 0) {
        KILN_RETURN_IF_ERROR(Added(ufd, u, path));
        ++j;
        continue;
      }
      const Node& l = lower[i];
      ++i;
      ++j;
      KILN_ASSIGN_OR_RETURN(Xattrs ux, ListXattrs(ufd, u.name));
      ux = WithoutOverlay(std::move(ux));
      bool both_dirs = S_ISDIR(l.st.st_mode) && S_ISDIR(u.st.st_mode);
      if (!both_dirs && S_ISDIR(u.st.st_mode)) {
        // A non-directory became a directory: the whole new subtree.
        KILN_RETURN_IF_ERROR(Added(ufd, u, path));
        continue;
      }
      KILN_ASSIGN_OR_RETURN(bool same, Same(lfd, l, ufd, u, ux));
      if (both_dirs) {
        pending_.push_back({path, u.st, ux, false});
        if (!same) KILN_RETURN_IF_ERROR(FlushParents());
        KILN_ASSIGN_OR_RETURN(UniqueFd ls, OpenSubdir(lfd, l.name, path));
        KILN_ASSIGN_OR_RETURN(UniqueFd us, OpenSubdir(ufd, u.name, path));
        KILN_RETURN_IF_ERROR(Compare(ls.get(), us.get(), path));
        pending_.pop_back();
        continue;
      }
      if (!same) {
        KILN_RETURN_IF_ERROR(FlushParents());
        KILN_RETURN_IF_ERROR(tar_.Entry(ufd, u.name, path, u.st, ux));
      }
    }
    return absl::OkStatus();
  }

 private:
  struct Pending {
    std::string path;
    struct stat st;
    Xattrs xattrs;
    bool emitted;
  };

  absl::Status FlushParents() {
    for (Pending& p : pending_) {
      if (p.emitted) continue;
      p.emitted = true;
      KILN_RETURN_IF_ERROR(tar_.Entry(-1, "", p.path, p.st, p.xattrs));
    }
    return absl::OkStatus();
  }

  absl::Status Added(int ufd, const Node& u, const std::string& path) {
    KILN_RETURN_IF_ERROR(FlushParents());
    KILN_ASSIGN_OR_RETURN(Xattrs x, ListXattrs(ufd, u.name));
    KILN_RETURN_IF_ERROR(tar_.Entry(ufd, u.name, path, u.st, WithoutOverlay(x)));
    if (!S_ISDIR(u.st.st_mode)) return absl::OkStatus();
    KILN_ASSIGN_OR_RETURN(UniqueFd sub, OpenSubdir(ufd, u.name, path));
    KILN_ASSIGN_OR_RETURN(auto children, ReadNodes(sub.get(), path));
    for (const Node& c : children) KILN_RETURN_IF_ERROR(Added(sub.get(), c, Child(path, c.name)));
    return absl::OkStatus();
  }

  absl::StatusOr<bool> Same(int lfd, const Node& l, int ufd, const Node& u, const Xattrs& ux) {
    const struct stat &a = l.st, &b = u.st;
    if (a.st_mode != b.st_mode || a.st_uid != b.st_uid || a.st_gid != b.st_gid) return false;
    if ((S_ISCHR(a.st_mode) || S_ISBLK(a.st_mode)) && a.st_rdev != b.st_rdev) return false;
    if (!S_ISDIR(a.st_mode) && a.st_size != b.st_size) return false;
    if (a.st_mtim.tv_sec != b.st_mtim.tv_sec || a.st_mtim.tv_nsec != b.st_mtim.tv_nsec)
      return false;
    KILN_ASSIGN_OR_RETURN(Xattrs lx, ListXattrs(lfd, l.name));
    if (WithoutOverlay(std::move(lx)) != ux) return false;
    if (S_ISLNK(a.st_mode)) {
      KILN_ASSIGN_OR_RETURN(std::string lt, ReadLinkAt(lfd, l.name, a));
      KILN_ASSIGN_OR_RETURN(std::string ut, ReadLinkAt(ufd, u.name, b));
      return lt == ut;
    }
    // Whole-second mtimes may hide a same-second rewrite: compare content.
    if (S_ISREG(a.st_mode) && a.st_mtim.tv_nsec == 0) return SameContent(lfd, l.name, ufd, u.name);
    return true;
  }

  static absl::StatusOr<bool> SameContent(int lfd, const std::string& ln, int ufd,
                                          const std::string& un) {
    UniqueFd a(::openat(lfd, ln.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    UniqueFd b(::openat(ufd, un.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!a || !b) return ErrnoStatus(StrCat("open ", Quote(un), " to compare"));
    std::string ba(1 << 16, '\0'), bb(1 << 16, '\0');
    for (;;) {
      ssize_t na = ::read(a.get(), ba.data(), ba.size());
      ssize_t nb = ::read(b.get(), bb.data(), bb.size());
      if (na < 0 || nb < 0) return ErrnoStatus(StrCat("read ", Quote(un), " to compare"));
      if (na != nb || std::memcmp(ba.data(), bb.data(), static_cast<size_t>(na)) != 0) return false;
      if (na == 0) return true;
    }
  }

  TarEmitter& tar_;
  std::vector<Pending> pending_;
};

std::optional<std::vector<std::string>> Layers(const std::vector<Mount>& mounts) {
  if (mounts.empty()) return std::vector<std::string>{};
  if (mounts.size() != 1 || !mounts[0].target.empty()) return std::nullopt;
  if (mounts[0].type == "bind") return std::vector<std::string>{mounts[0].source};
  if (mounts[0].type == "overlay" && ParseOverlayDirs(mounts[0]).upper.empty()) {
    return ParseOverlayDirs(mounts[0]).lower;
  }
  return std::nullopt;
}

std::atomic<uint64_t> ref_counter{0};

// Writes the layer into `out`.  With `store_writer` (which is `out`), the blob digest is the
// one the content store's writer computes anyway: hashing the compressed bytes here too would
// cost a second SHA-256 on the pipeline's busiest thread.
absl::StatusOr<LayerDescriptor> WriteLayerInto(const DiffSource& source, ByteSink& out,
                                               const DiffOptions& opts,
                                               ContentWriter* store_writer) {
  int level = opts.level;
  if (level < 0) level = opts.compression == Compression::kZstd ? 3 : 1;
  KILN_ASSIGN_OR_RETURN(auto compressor, Compressor::Create(opts.compression, level, opts.threads));
  KILN_ASSIGN_OR_RETURN(UniqueFd upper, OpenDirectory(source.upper));
  UniqueFd lower;
  if (source.kind == DiffSource::Kind::kTreeCompare && !source.lower.empty()) {
    KILN_ASSIGN_OR_RETURN(lower, OpenDirectory(source.lower));
  }

  ChunkPipe pipe(kChunk, kDepth);
  const bool uncompressed = opts.compression == Compression::kNone;
  HashingSink blob(out, /*hash=*/!uncompressed && store_writer == nullptr);
  absl::Status compressed;
  std::thread stage2([&] {
    PipeSource src(pipe);
    absl::Status s;
    for (;;) {
      auto piece = src.Next();
      if (!piece.ok()) {
        s = piece.status();
        break;
      }
      if (piece->empty()) break;
      if (s = compressor->Write(piece->data(), piece->size(), blob); !s.ok()) break;
    }
    if (s.ok()) s = compressor->Finish(blob);
    if (!s.ok()) pipe.CloseRead();
    compressed = s;
  });

  Sha256State diff;
  PipeSink sink(pipe, &diff);
  absl::Status walked;
  {
    TarEmitter tar(sink, opts);
    Walker walker(tar);
    walked = source.kind == DiffSource::Kind::kOverlayUpper
                 ? walker.Upper(upper.get(), "")
                 : walker.Compare(lower.valid() ? lower.get() : -1, upper.get(), "");
    if (walked.ok()) walked = tar.Finish();
  }
  sink.Close(walked);
  stage2.join();
  if (!walked.ok() && !absl::IsCancelled(walked))
    return Annotate(walked, StrCat("diff ", Quote(source.upper)));
  KILN_RETURN_IF_ERROR_CTX(compressed, StrCat("diff ", Quote(source.upper)));
  KILN_RETURN_IF_ERROR(walked);

  LayerDescriptor d;
  d.diff_id = diff.Peek();
  d.uncompressed_size = sink.bytes();
  d.digest = uncompressed              ? d.diff_id
             : store_writer != nullptr ? store_writer->digest()
                                       : blob.digest();
  d.size = blob.size();
  d.media_type = std::string(OciLayerMediaType(opts.compression));
  return d;
}

}  // namespace

absl::StatusOr<LayerDescriptor> WriteLayer(const DiffSource& source, ByteSink& out,
                                           const DiffOptions& opts) {
  return WriteLayerInto(source, out, opts, nullptr);
}

absl::StatusOr<LayerDescriptor> WriteLayerToStore(const DiffSource& source, ContentStore& store,
                                                  const DiffOptions& opts) {
  WriterOptions wo;
  wo.ref = opts.ref.empty() ? StrCat("diff-", ::getpid(), "-", ref_counter++, "-",
                                     std::chrono::steady_clock::now().time_since_epoch().count())
                            : opts.ref;
  KILN_ASSIGN_OR_RETURN(auto writer, store.OpenWriter(wo));
  if (writer->offset() != 0) KILN_RETURN_IF_ERROR(writer->Truncate(0));
  auto desc = WriteLayerInto(source, *writer, opts, writer.get());
  if (!desc.ok()) {
    writer.reset();
    (void)store.AbortIngest(wo.ref);
    return desc.status();
  }
  Labels labels = opts.labels;
  labels["containerd.io/uncompressed"] = desc->diff_id.str();
  KILN_RETURN_IF_ERROR(writer->Commit(desc->digest, desc->size, labels));
  return desc;
}

std::optional<DiffSource> FastDiffSource(const std::vector<Mount>& lower,
                                         const std::vector<Mount>& upper) {
  auto lower_layers = Layers(lower);
  if (!lower_layers) return std::nullopt;
  if (upper.size() == 1 && upper[0].type == "overlay" && upper[0].target.empty()) {
    OverlayDirs dirs = ParseOverlayDirs(upper[0]);
    if (!dirs.upper.empty()) {
      if (dirs.lower == *lower_layers)
        return DiffSource{DiffSource::Kind::kOverlayUpper, "", dirs.upper};
      return std::nullopt;
    }
    if (!dirs.lower.empty() &&
        std::vector<std::string>(dirs.lower.begin() + 1, dirs.lower.end()) == *lower_layers) {
      return DiffSource{DiffSource::Kind::kOverlayUpper, "", dirs.lower[0]};
    }
    return std::nullopt;
  }
  auto upper_layers = Layers(upper);
  if (upper_layers && upper_layers->size() == 1 && lower_layers->size() <= 1) {
    std::string l = lower_layers->empty() ? "" : (*lower_layers)[0];
    return DiffSource{DiffSource::Kind::kTreeCompare, l, (*upper_layers)[0]};
  }
  return std::nullopt;
}

namespace {

class MountDiffer : public Differ {
 public:
  MountDiffer(ContentStore& store, std::string scratch)
      : store_(store), scratch_(std::move(scratch)) {}

  absl::StatusOr<LayerDescriptor> Compare(const std::vector<Mount>& lower,
                                          const std::vector<Mount>& upper,
                                          const DiffOptions& options) override {
    if (auto fast = FastDiffSource(lower, upper)) return WriteLayerToStore(*fast, store_, options);
    absl::StatusOr<LayerDescriptor> result = absl::InternalError("diff did not run");
    absl::Status s = WithTempMount(lower, scratch_, [&](const std::string& lower_path) {
      return WithTempMount(upper, scratch_, [&](const std::string& upper_path) {
        result = WriteLayerToStore(
            {DiffSource::Kind::kTreeCompare, lower.empty() ? "" : lower_path, upper_path}, store_,
            options);
        return result.status();
      });
    });
    if (!s.ok()) return s;
    return result;
  }

 private:
  ContentStore& store_;
  std::string scratch_;
};

}  // namespace

std::unique_ptr<Differ> NewDiffer(ContentStore& store, std::string scratch_dir) {
  return std::make_unique<MountDiffer>(store, std::move(scratch_dir));
}

}  // namespace kiln::snapshotter
