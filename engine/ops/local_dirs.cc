#include "engine/ops/local_dirs.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/fs.h"
#include "base/pattern_match.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"

namespace kiln::engine {

namespace {

// Version 2 added the hardlink field.  Any other header (version 1 included) is refused, and
// the sync then rebuilds the mirror from scratch.
constexpr char kIndexMagic[] = "KILNMIX2";
constexpr char kIndexMagicV1[] = "KILNMIX1";
constexpr size_t kCopyChunk = 1 << 20;

// ---- small fd helpers --------------------------------------------------------------------

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}
int64_t CtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
}
struct timespec ToTimespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (ts.tv_nsec < 0) ts.tv_nsec += 1000000000, ts.tv_sec -= 1;
  return ts;
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  return dir.empty() ? std::string(name) : StrCat(dir, "/", name);
}

std::pair<std::string, std::string> SplitPath(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

// Opens `rel` below the directory `root` without following any symlink ("" opens root itself).
absl::StatusOr<UniqueFd> OpenBeneath(int root, const std::string& rel, int flags,
                                     std::string_view what, int* err = nullptr) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const char* p = rel.empty() ? "." : rel.c_str();
  long fd = ::syscall(SYS_openat2, root, p, &how, sizeof(how));
  if (fd < 0) {
    int e = errno;
    if (err) *err = e;
    return ErrnoStatus(e, StrCat(what, " ", Quote(rel.empty() ? "." : rel)));
  }
  return UniqueFd(static_cast<int>(fd));
}

absl::StatusOr<std::vector<std::string>> ListDir(int dirfd, std::string_view what) {
  UniqueFd dup(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
  if (!dup) return ErrnoStatus(StrCat("dup ", what));
  DIR* d = ::fdopendir(dup.get());
  if (d == nullptr) return ErrnoStatus(StrCat("opendir ", what));
  dup.Release();  // the DIR owns it now
  std::unique_ptr<DIR, int (*)(DIR*)> owner(d, ::closedir);
  ::rewinddir(d);
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  if (errno != 0) return ErrnoStatus(StrCat("readdir ", what));
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::string> ReadLinkAt(int dirfd, const std::string& name, std::string_view what) {
  std::string buf(4096, '\0');
  ssize_t n = ::readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
  if (n < 0) return ErrnoStatus(StrCat("readlink ", what));
  buf.resize(static_cast<size_t>(n));
  return buf;
}

// rm -rf of `name` under `dirfd`, never following symlinks.  Missing is fine.
absl::Status RemoveTreeAt(int dirfd, const std::string& name, int depth = 0) {
  if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT || errno == ENOTDIR) {
    return absl::OkStatus();
  }
  if (errno != EISDIR && errno != EPERM) return ErrnoStatus(StrCat("remove ", Quote(name)));
  if (depth > 4096) return absl::FailedPreconditionError("remove: tree too deep");
  int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(StrCat("open ", Quote(name)));
  }
  UniqueFd sub(fd);
  KILN_ASSIGN_OR_RETURN(auto names, ListDir(sub.get(), name));
  for (const auto& n : names) KILN_RETURN_IF_ERROR(RemoveTreeAt(sub.get(), n, depth + 1));
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoStatus(StrCat("rmdir ", Quote(name)));
  }
  return absl::OkStatus();
}

// ---- hashing -----------------------------------------------------------------------------

class Xxh128 {
 public:
  Xxh128() : state_(XXH3_createState()) { XXH3_128bits_reset(state_); }
  ~Xxh128() { XXH3_freeState(state_); }
  Xxh128(const Xxh128&) = delete;
  Xxh128& operator=(const Xxh128&) = delete;
  void Update(const void* data, size_t n) { XXH3_128bits_update(state_, data, n); }
  std::array<uint8_t, 16> Finish() {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(state_));
    std::array<uint8_t, 16> out;
    std::memcpy(out.data(), c.digest, 16);
    return out;
  }

 private:
  XXH3_state_t* state_;
};

std::array<uint8_t, 32> RawSha256(const Digest& d) {
  std::array<uint8_t, 32> out{};
  std::string_view hex = d.hex();
  for (size_t i = 0; i < 32 && 2 * i + 1 < hex.size(); ++i) {
    auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    out[i] = static_cast<uint8_t>(nib(hex[2 * i]) << 4 | nib(hex[2 * i + 1]));
  }
  return out;
}

// Reads `fd` to the end into the given hashers (either may be null), optionally writing the
// bytes to `out_fd`.  Returns the byte count.
absl::StatusOr<int64_t> Pump(int fd, Sha256Hasher* sha, Xxh128* xxh, int out_fd,
                             const CancelToken& cancel, std::string_view what) {
  std::unique_ptr<char[]> buf(new char[kCopyChunk]);
  int64_t total = 0;
  for (;;) {
    KILN_RETURN_IF_ERROR(cancel.Check());
    ssize_t n = ::read(fd, buf.get(), kCopyChunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(StrCat("read ", what));
    }
    if (n == 0) return total;
    if (sha) sha->Update(buf.get(), static_cast<size_t>(n));
    if (xxh) xxh->Update(buf.get(), static_cast<size_t>(n));
    for (ssize_t off = 0; out_fd >= 0 && off < n;) {
      ssize_t w = ::write(out_fd, buf.get() + off, static_cast<size_t>(n - off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(StrCat("write copy of ", what));
      }
      off += w;
    }
    total += n;
  }
}

// ---- index encoding ----------------------------------------------------------------------

class Encoder {
 public:
  template <typename T>
  void Int(T v) {
    for (size_t i = 0; i < sizeof(T); ++i)
      out_.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
  }
  void Str(std::string_view s) {
    Int<uint32_t>(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void Bytes(const uint8_t* p, size_t n) { out_.append(reinterpret_cast<const char*>(p), n); }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}
  template <typename T>
  bool Int(T* v) {
    if (in_.size() - pos_ < sizeof(T)) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      x |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    }
    pos_ += sizeof(T);
    *v = static_cast<T>(x);
    return true;
  }
  bool Str(std::string* s, size_t max) {
    uint32_t n;
    if (!Int(&n) || n > max || in_.size() - pos_ < n) return false;
    s->assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool Bytes(uint8_t* p, size_t n) {
    if (in_.size() - pos_ < n) return false;
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

bool ValidRelativePath(std::string_view path) {
  if (path.empty() || path.size() > 4096) return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view c = path.substr(start, end - start);
    if (c.empty() || c == "." || c == ".." || c.find('\0') != std::string_view::npos) return false;
    start = end + 1;
  }
  return true;
}

// ---- the client walk ---------------------------------------------------------------------

struct ClientEntry {
  std::string path;
  struct stat st;
  std::string link;
};

bool IsCopied(mode_t m) { return S_ISDIR(m) || S_ISREG(m) || S_ISLNK(m); }

class ClientWalker {
 public:
  ClientWalker(const PathFilter& filter, const CancelToken& cancel, std::vector<ClientEntry>* out)
      : filter_(filter), cancel_(cancel), out_(out) {}

  absl::Status Walk(int dirfd, const std::string& prefix, const PathFilter::State& state,
                    int depth = 0) {
    if (depth > 1024) return absl::FailedPreconditionError("local directory nested too deep");
    KILN_ASSIGN_OR_RETURN(auto names, ListDir(dirfd, Quote(prefix.empty() ? "." : prefix)));
    for (const std::string& name : names) {
      if ((++count_ & 255) == 0) KILN_RETURN_IF_ERROR(cancel_.Check());
      ClientEntry e;
      e.path = JoinPath(prefix, name);
      if (::fstatat(dirfd, name.c_str(), &e.st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // vanished while we walked
        return ErrnoStatus(StrCat("stat ", Quote(e.path)));
      }
      const bool is_dir = S_ISDIR(e.st.st_mode);
      PathFilter::Decision d = filter_.Check(e.path, is_dir, state);
      if (is_dir) {
        if (!d.include && !d.descend) continue;
        if (d.include) Emit(e);
        if (!d.descend) continue;
        int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
          if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) continue;
          return ErrnoStatus(StrCat("open ", Quote(e.path)));
        }
        UniqueFd sub(fd);
        const std::string path = e.path;  // pending_ may reallocate during the recursion
        pending_.push_back({std::move(e), d.include});
        absl::Status st = Walk(sub.get(), path, d.state, depth + 1);
        pending_.pop_back();
        KILN_RETURN_IF_ERROR(st);
        continue;
      }
      if (!d.include || !IsCopied(e.st.st_mode)) continue;
      if (S_ISLNK(e.st.st_mode)) {
        auto link = ReadLinkAt(dirfd, name, Quote(e.path));
        if (!link.ok()) {
          if (absl::IsNotFound(link.status())) continue;
          return link.status();
        }
        e.link = std::move(*link);
      }
      Emit(std::move(e));
    }
    return absl::OkStatus();
  }

 private:
  struct Pending {
    ClientEntry entry;
    bool emitted;
  };
  // fsutil emits the not-included parents of an included entry just before it.
  void Emit(ClientEntry e) {
    for (auto& p : pending_) {
      if (p.emitted) continue;
      out_->push_back(p.entry);
      p.emitted = true;
    }
    out_->push_back(std::move(e));
  }

  const PathFilter& filter_;
  const CancelToken& cancel_;
  std::vector<ClientEntry>* out_;
  std::vector<Pending> pending_;
  uint64_t count_ = 0;
};

// fsutil's FollowLinks: the symlinks on the way to each follow path, and their targets, all
// resolved inside the root, become include patterns.
class SymlinkResolver {
 public:
  explicit SymlinkResolver(int root) : root_(root) {}

  absl::Status Append(const std::string& in, int depth = 0) {
    if (depth > 255) return absl::OkStatus();  // a symlink loop: stop following
    std::string p = CleanPath(in);
    while (!p.empty() && p[0] == '/') p = CleanPath(p.substr(1));
    if (p == ".." || p.rfind("../", 0) == 0) return absl::OkStatus();  // outside the root
    std::string current = ".";
    for (;;) {
      size_t slash = p.find('/');
      std::string head = slash == std::string::npos ? p : p.substr(0, slash);
      p = slash == std::string::npos ? "" : p.substr(slash + 1);
      current = current == "." ? head : JoinPath(current, head);
      if (current == ".") {
        resolved_.insert(".");
        return absl::OkStatus();
      }
      KILN_ASSIGN_OR_RETURN(std::optional<std::vector<std::string>> targets,
                            ReadSymlink(current, true));
      if ((p.empty() || targets) && resolved_.count(current)) return absl::OkStatus();
      if (targets) {
        resolved_.insert(current);
        for (const auto& t : *targets) KILN_RETURN_IF_ERROR(Append(JoinPath(t, p), depth + 1));
        return absl::OkStatus();
      }
      if (p.empty()) {
        resolved_.insert(current);
        return absl::OkStatus();
      }
    }
  }

  // Sorted and deduplicated as fsutil's dedupePaths; empty when "." is among them.
  std::vector<std::string> Result() const {
    std::vector<std::string> sorted(resolved_.begin(), resolved_.end());
    return DedupePaths(sorted);
  }

  static std::vector<std::string> DedupePaths(const std::vector<std::string>& in) {
    std::vector<std::string> out;
    std::string last;
    bool have_last = false;
    for (const auto& s : in) {
      if (s == ".") return {};
      if (have_last && s.rfind(last + "/", 0) == 0) continue;
      out.push_back(s);
      last = s;
      have_last = true;
    }
    return out;
  }

 private:
  static bool ContainsWildcards(std::string_view name) {
    for (size_t i = 0; i < name.size(); ++i) {
      if (name[i] == '\\') {
        ++i;
      } else if (name[i] == '*' || name[i] == '?' || name[i] == '[') {
        return true;
      }
    }
    return false;
  }

  // nullopt when `p` is not a symlink (or does not exist); the targets as root-relative
  // absolute paths otherwise.
  absl::StatusOr<std::optional<std::vector<std::string>>> ReadSymlink(const std::string& p,
                                                                      bool allow_wildcard) {
    auto [dir, base] = SplitPath(p);
    auto parent = OpenBeneath(root_, dir, O_RDONLY | O_DIRECTORY, "open");
    if (!parent.ok()) {
      // Missing, or through a symlink we do not follow: not a symlink to resolve.
      return std::optional<std::vector<std::string>>();
    }
    if (allow_wildcard && ContainsWildcards(base)) {
      auto names = ListDir(parent->get(), Quote(dir));
      if (!names.ok()) return std::optional<std::vector<std::string>>();
      std::optional<std::vector<std::string>> out;
      for (const auto& n : *names) {
        auto m = GlobMatch(base, n);
        if (!m.ok() || !*m) continue;
        KILN_ASSIGN_OR_RETURN(auto r, ReadSymlink(JoinPath(dir, n), false));
        if (r) {
          if (!out) out.emplace();
          out->insert(out->end(), r->begin(), r->end());
        }
      }
      return out;
    }
    struct stat st;
    if (::fstatat(parent->get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISLNK(st.st_mode)) {
      return std::optional<std::vector<std::string>>();
    }
    KILN_ASSIGN_OR_RETURN(std::string link, ReadLinkAt(parent->get(), base, Quote(p)));
    link = CleanPath(link);
    if (!link.empty() && link[0] == '/') return std::optional<std::vector<std::string>>({link});
    return std::optional<std::vector<std::string>>({CleanPath(StrCat("/", JoinPath(dir, link)))});
  }

  int root_;
  std::set<std::string> resolved_;
};

// ---- the sync ----------------------------------------------------------------------------

class MirrorSync {
 public:
  MirrorSync(int client_root, const std::string& mirror_dir, const HostLocalDirsOptions& options,
             const CancelToken& cancel)
      : client_root_(client_root), mirror_dir_(mirror_dir), options_(options), cancel_(cancel) {}

  struct Result {
    int64_t files_copied = 0, bytes_copied = 0, files_rehashed = 0, entries_removed = 0,
            metadata_only = 0, links_made = 0;
    bool full_rebuild = false;
  };

  absl::StatusOr<Result> Run(const std::vector<ClientEntry>& client) {
    KILN_RETURN_IF_ERROR(MakeDirs(PathDir(mirror_dir_), 0700));
    auto old = LoadMirrorIndex(mirror_dir_);
    if (!old.ok()) {
      if (!absl::IsNotFound(old.status()) && !absl::IsDataLoss(old.status())) return old.status();
      // No trustworthy index: start the mirror over (snapshots keep their own inodes).
      result_.full_rebuild = true;
      KILN_RETURN_IF_ERROR(MarkDirty());
      KILN_RETURN_IF_ERROR(RemoveAll(mirror_dir_));
      old = MirrorIndex();
    }
    old_ = std::move(*old);
    KILN_RETURN_IF_ERROR(MakeDirs(mirror_dir_, 0755));
    int root_fd = ::open(mirror_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root_fd < 0) return ErrnoStatus(StrCat("open mirror ", Quote(mirror_dir_)));
    mirror_root_ = UniqueFd(root_fd);

    absl::Status st = Apply(client);
    if (!st.ok()) {
      // Every change is atomic per entry, so what was done can be kept: a cancelled or failed
      // sync does not cost a full transfer next time.
      if (dirty_) SaveRecoveryIndex();
      return st;
    }
    if (staging_) {
      staging_.Reset();
      (void)RemoveAll(StagingPath());
    }
    return result_;
  }

 private:
  enum EntryState : uint8_t { kUntouched, kDone, kUnknown };

  absl::Status Apply(const std::vector<ClientEntry>& client) {
    std::unordered_map<std::string_view, size_t> old_pos;
    old_pos.reserve(old_.entries.size());
    for (size_t i = 0; i < old_.entries.size(); ++i) old_pos[old_.entries[i].path] = i;
    state_.assign(old_.entries.size(), kUntouched);
    next_.entries.reserve(client.size());
    bool index_changed = old_.entries.size() != client.size();

    // The first name (an index into next_) of each client inode with several names.
    std::map<std::pair<dev_t, ino_t>, size_t> firsts;
    for (const ClientEntry& ce : client) {
      KILN_RETURN_IF_ERROR(cancel_.Check());
      MirrorEntry want = FromClient(ce);
      const bool multi_link = want.type == MirrorEntry::Type::kFile && ce.st.st_nlink > 1;
      const std::pair<dev_t, ino_t> inode{ce.st.st_dev, ce.st.st_ino};
      if (multi_link) {
        // Only a first name that made it into the mirror counts (not one that vanished).
        if (auto it = firsts.find(inode); it != firsts.end()) {
          TakeLinkTarget(next_.entries[it->second], want);
        }
      }
      const MirrorEntry* prev = nullptr;
      size_t pos = 0;
      if (auto it = old_pos.find(ce.path); it != old_pos.end()) {
        pos = it->second;
        prev = &old_.entries[pos];
      }
      auto outcome = Reconcile(ce, prev, want);
      if (!outcome.ok()) {
        if (prev) state_[pos] = kUnknown;
        gone_dirs_.insert(ce.path);
        return outcome.status();
      }
      if (prev) state_[pos] = kDone;
      index_changed = index_changed || *outcome != Outcome::kUnchanged;
      if (*outcome == Outcome::kVanished) continue;
      if (multi_link && want.hardlink.empty()) firsts.emplace(inode, next_.entries.size());
      next_.entries.push_back(std::move(want));
    }
    // Vanished entries, children before their parents.
    for (size_t i = old_.entries.size(); i-- > 0;) {
      if (state_[i] != kUntouched) continue;
      const MirrorEntry& e = old_.entries[i];
      if (e.type == MirrorEntry::Type::kDir) gone_dirs_.insert(e.path);
      absl::Status st = RemoveEntry(e.path);
      state_[i] = st.ok() ? kDone : kUnknown;
      KILN_RETURN_IF_ERROR(st);
      ++result_.entries_removed;
      index_changed = true;
    }
    if (mutated_ || !dirs_to_fix_.empty()) KILN_RETURN_IF_ERROR(FixDirectories(next_));
    if (mutated_ || index_changed || result_.full_rebuild) {
      if (mutated_ && ::syncfs(mirror_root_.get()) != 0) {
        return ErrnoStatus(StrCat("syncfs ", Quote(mirror_dir_)));
      }
      KILN_RETURN_IF_ERROR(SaveMirrorIndex(mirror_dir_, next_));
      if (dirty_ && ::unlink(MirrorDirtyPath(mirror_dir_).c_str()) != 0 && errno != ENOENT) {
        return ErrnoStatus(StrCat("remove ", Quote(MirrorDirtyPath(mirror_dir_))));
      }
    }
    return absl::OkStatus();
  }

  bool UnderGoneDir(const std::string& path) const {
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      if (gone_dirs_.count(path.substr(0, slash))) return true;
    }
    return false;
  }

  // After a failure: the entries brought up to date, plus the old ones nothing touched (and
  // whose directory was not removed or replaced).  Best effort: if this fails the mirror stays
  // dirty and is rebuilt next time.
  void SaveRecoveryIndex() {
    MirrorIndex merged = next_;
    // A later name whose first name was visited may no longer share its inode: left out (its
    // mirror file is then a stray the next sync replaces or ignores).
    std::set<std::string_view> kept_firsts;
    for (size_t i = 0; i < old_.entries.size(); ++i) {
      const MirrorEntry& e = old_.entries[i];
      if (state_.size() > i && state_[i] == kUntouched && !gone_dirs_.count(e.path) &&
          !UnderGoneDir(e.path)) {
        if (!e.hardlink.empty() && !kept_firsts.count(e.hardlink)) continue;
        if (e.type == MirrorEntry::Type::kFile && e.hardlink.empty()) kept_firsts.insert(e.path);
        merged.entries.push_back(e);
      }
    }
    for (const auto& e : next_.entries) {
      if (UnderGoneDir(e.path)) return;  // cannot happen in walk order; stay dirty if it does
    }
    if (::syncfs(mirror_root_.get()) != 0) return;
    if (!SaveMirrorIndex(mirror_dir_, merged).ok()) return;
    (void)::unlink(MirrorDirtyPath(mirror_dir_).c_str());
  }

  std::string StagingPath() const { return mirror_dir_ + ".staging"; }

  MirrorEntry FromClient(const ClientEntry& ce) const {
    MirrorEntry e;
    e.path = ce.path;
    const mode_t m = ce.st.st_mode;
    e.type = S_ISDIR(m)   ? MirrorEntry::Type::kDir
             : S_ISLNK(m) ? MirrorEntry::Type::kSymlink
                          : MirrorEntry::Type::kFile;
    e.mode = static_cast<uint32_t>(m & 07777);
    e.uid = options_.reset_owner ? 0 : ce.st.st_uid;
    e.gid = options_.reset_owner ? 0 : ce.st.st_gid;
    e.size = e.type == MirrorEntry::Type::kFile ? static_cast<int64_t>(ce.st.st_size) : 0;
    e.mtime_ns = MtimeNs(ce.st);
    e.link = ce.link;
    e.src_ino = ce.st.st_ino;
    e.src_ctime_ns = CtimeNs(ce.st);
    e.src_mode = m;
    e.src_uid = ce.st.st_uid;
    e.src_gid = ce.st.st_gid;
    return e;
  }

  static bool SameSource(const MirrorEntry& a, const MirrorEntry& b) {
    return a.src_ino == b.src_ino && a.src_ctime_ns == b.src_ctime_ns && a.src_mode == b.src_mode &&
           a.src_uid == b.src_uid && a.src_gid == b.src_gid && a.size == b.size &&
           a.mtime_ns == b.mtime_ns && a.link == b.link;
  }
  static bool SameMirrorMeta(const MirrorEntry& a, const MirrorEntry& b) {
    return a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.mtime_ns == b.mtime_ns;
  }

  static bool SameIndexEntry(const MirrorEntry& a, const MirrorEntry& b) {
    return a.type == b.type && SameMirrorMeta(a, b) && a.size == b.size && a.link == b.link &&
           a.hardlink == b.hardlink && a.sha256 == b.sha256 && a.xxh128 == b.xxh128 &&
           a.src_ino == b.src_ino && a.src_ctime_ns == b.src_ctime_ns && a.src_mode == b.src_mode &&
           a.src_uid == b.src_uid && a.src_gid == b.src_gid;
  }

  // `want` becomes another name of `first`: the same inode, so the same metadata and content.
  static void TakeLinkTarget(const MirrorEntry& first, MirrorEntry& want) {
    want.hardlink = first.path;
    want.mode = first.mode;
    want.uid = first.uid;
    want.gid = first.gid;
    want.size = first.size;
    want.mtime_ns = first.mtime_ns;
    want.sha256 = first.sha256;
    want.xxh128 = first.xxh128;
  }

  enum class Outcome { kUnchanged, kChanged, kVanished };
  static Outcome ChangedIf(bool changed) {
    return changed ? Outcome::kChanged : Outcome::kUnchanged;
  }

  // Brings one mirror entry in line with `want` (whose content hashes it fills in).  Returns
  // whether the index entry differs from `prev`, or that the client's file went away.
  absl::StatusOr<Outcome> Reconcile(const ClientEntry& ce, const MirrorEntry* prev,
                                    MirrorEntry& want) {
    if (prev && prev->type != want.type) {
      if (prev->type == MirrorEntry::Type::kDir) gone_dirs_.insert(prev->path);
      KILN_RETURN_IF_ERROR(RemoveEntry(prev->path));
      prev = nullptr;
    }
    switch (want.type) {
      case MirrorEntry::Type::kDir:
        if (!prev) {
          KILN_RETURN_IF_ERROR(MakeDir(want.path));
        } else if (!(SameMirrorMeta(*prev, want))) {
          dirs_to_fix_.insert(want.path);
        }
        return ChangedIf(!prev || !SameSource(*prev, want) || !SameMirrorMeta(*prev, want));
      case MirrorEntry::Type::kSymlink:
        if (prev && prev->link == want.link && SameMirrorMeta(*prev, want)) {
          return ChangedIf(!SameSource(*prev, want));
        }
        KILN_RETURN_IF_ERROR(WriteSymlink(want));
        return Outcome::kChanged;
      case MirrorEntry::Type::kFile:
        break;
    }
    if (!want.hardlink.empty()) return ReconcileLink(prev, want);
    // A name that was a later name of a link group shares its mirror inode with the group's
    // first name: it gets an inode of its own even when its content and metadata are the same.
    const bool was_shared = prev && !prev->hardlink.empty();
    if (prev && !was_shared && SameSource(*prev, want)) {
      want.sha256 = prev->sha256;
      want.xxh128 = prev->xxh128;
      return Outcome::kUnchanged;
    }
    if (prev && prev->size == want.size && prev->mtime_ns == want.mtime_ns) {
      // Same size and mtime but a new ctime or inode: compare content before rewriting.
      KILN_ASSIGN_OR_RETURN(auto xxh, HashClientFile(ce.path));
      ++result_.files_rehashed;
      if (xxh && *xxh == prev->xxh128) {
        want.sha256 = prev->sha256;
        want.xxh128 = prev->xxh128;
        if (!was_shared && SameMirrorMeta(*prev, want)) {
          return Outcome::kChanged;  // only the index learns
        }
        KILN_RETURN_IF_ERROR(RewriteMetadata(want, want.path));
        ++result_.metadata_only;
        return Outcome::kChanged;
      }
    }
    absl::Status copied = CopyFile(want);
    if (absl::IsNotFound(copied)) {
      // Deleted since the walk: as if the walk had not seen it.
      if (prev) KILN_RETURN_IF_ERROR(RemoveEntry(prev->path));
      return Outcome::kVanished;
    }
    KILN_RETURN_IF_ERROR(copied);
    return Outcome::kChanged;
  }

  // A later name of a link group: checked against the mirror itself (the first name's inode may
  // have been replaced, in this sync or in one that failed), linked again when it differs.
  absl::StatusOr<Outcome> ReconcileLink(const MirrorEntry* prev, MirrorEntry& want) {
    KILN_ASSIGN_OR_RETURN(bool linked, SameMirrorInode(want.hardlink, want.path));
    if (!linked) {
      KILN_ASSIGN_OR_RETURN(linked, LinkFile(want));
      if (!linked) {
        // The first name's inode has too many links: a copy of it, as a plain file.
        const std::string first = want.hardlink;
        want.hardlink.clear();
        KILN_RETURN_IF_ERROR(RewriteMetadata(want, first));
      }
      return Outcome::kChanged;
    }
    return ChangedIf(!prev || !SameIndexEntry(*prev, want));
  }

  // Whether two mirror paths are names of one regular file.
  absl::StatusOr<bool> SameMirrorInode(const std::string& a, const std::string& b) {
    struct stat sa, sb;
    for (auto [path, st] : {std::make_pair(&a, &sa), std::make_pair(&b, &sb)}) {
      KILN_ASSIGN_OR_RETURN(int parent, MirrorParent(*path));
      if (::fstatat(parent, SplitPath(*path).second.c_str(), st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return false;
        return ErrnoStatus(StrCat("stat mirror entry ", Quote(*path)));
      }
      if (!S_ISREG(st->st_mode)) return false;
    }
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  }

  // Makes want.path another name of the mirror file want.hardlink (replacing whatever is there
  // atomically).  False when that inode cannot take another link.
  absl::StatusOr<bool> LinkFile(const MirrorEntry& want) {
    KILN_RETURN_IF_ERROR(BeginMutation(want.path));
    KILN_ASSIGN_OR_RETURN(int staging, Staging());
    std::string name = StrCat("h", ++staged_);
    KILN_ASSIGN_OR_RETURN(int first_parent, MirrorParent(want.hardlink));
    const std::string first_base = SplitPath(want.hardlink).second;
    if (::linkat(first_parent, first_base.c_str(), staging, name.c_str(), 0) != 0) {
      if (errno == EMLINK) return false;
      return ErrnoStatus(
          StrCat("link ", Quote(want.path), " to ", Quote(want.hardlink), " in the mirror"));
    }
    KILN_RETURN_IF_ERROR(RenameIn(name, want.path));
    ++result_.links_made;
    return true;
  }

  absl::Status MarkDirty() {
    if (dirty_) return absl::OkStatus();
    const std::string path = MirrorDirtyPath(mirror_dir_);
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) return ErrnoStatus(StrCat("create ", Quote(path)));
    KILN_RETURN_IF_ERROR(SyncDir(PathDir(path)));
    dirty_ = true;
    return absl::OkStatus();
  }

  absl::Status BeginMutation(const std::string& path) {
    KILN_RETURN_IF_ERROR(MarkDirty());
    mutated_ = true;
    dirs_to_fix_.insert(SplitPath(path).first);
    return absl::OkStatus();
  }

  absl::StatusOr<int> Staging() {
    if (!staging_) {
      KILN_RETURN_IF_ERROR(RemoveAll(StagingPath()));
      KILN_RETURN_IF_ERROR(MakeDirs(StagingPath(), 0700));
      int fd = ::open(StagingPath().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return ErrnoStatus(StrCat("open ", Quote(StagingPath())));
      staging_ = UniqueFd(fd);
    }
    return staging_.get();
  }

  // The mirror directory holding `path` (never through a symlink).
  absl::StatusOr<int> MirrorParent(const std::string& path) {
    std::string dir = SplitPath(path).first;
    if (!parent_fd_ || parent_path_ != dir) {
      parent_fd_.Reset();
      KILN_ASSIGN_OR_RETURN(parent_fd_, OpenBeneath(mirror_root_.get(), dir, O_RDONLY | O_DIRECTORY,
                                                    "open mirror dir"));
      parent_path_ = dir;
    }
    return parent_fd_.get();
  }

  absl::Status MakeDir(const std::string& path) {
    KILN_RETURN_IF_ERROR(BeginMutation(path));
    KILN_ASSIGN_OR_RETURN(int parent, MirrorParent(path));
    const std::string base = SplitPath(path).second;
    if (::mkdirat(parent, base.c_str(), 0700) != 0) {
      if (errno != EEXIST) return ErrnoStatus(StrCat("mkdir ", Quote(path), " in the mirror"));
      struct stat st;
      if (::fstatat(parent, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
        // Left over from an interrupted sync: not in the index, so not in any snapshot.
        KILN_RETURN_IF_ERROR(RemoveTreeAt(parent, base));
        if (::mkdirat(parent, base.c_str(), 0700) != 0) {
          return ErrnoStatus(StrCat("mkdir ", Quote(path), " in the mirror"));
        }
      }
    }
    dirs_to_fix_.insert(path);
    return absl::OkStatus();
  }

  absl::Status RemoveEntry(const std::string& path) {
    KILN_RETURN_IF_ERROR(BeginMutation(path));
    parent_fd_.Reset();  // the cached directory may be the one being removed
    auto parent = OpenBeneath(mirror_root_.get(), SplitPath(path).first, O_RDONLY | O_DIRECTORY,
                              "open mirror dir");
    // A parent already removed or replaced (a type change above it) holds nothing any more.
    if (!parent.ok()) return absl::OkStatus();
    return RemoveTreeAt(parent->get(), SplitPath(path).second);
  }

  // Sets owner, mode and times on a fresh inode, then renames it over `path`.
  absl::Status Publish(int fd, const std::string& tmp, const MirrorEntry& e) {
    KILN_RETURN_IF_ERROR(ApplyEntryMetadata(fd, e));
    return RenameIn(tmp, e.path);
  }

  absl::Status RenameIn(const std::string& tmp, const std::string& path) {
    KILN_ASSIGN_OR_RETURN(int parent, MirrorParent(path));
    const std::string base = SplitPath(path).second;
    if (::renameat(staging_.get(), tmp.c_str(), parent, base.c_str()) != 0) {
      if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST) {
        KILN_RETURN_IF_ERROR(RemoveTreeAt(parent, base));
        if (::renameat(staging_.get(), tmp.c_str(), parent, base.c_str()) == 0) {
          return absl::OkStatus();
        }
      }
      return ErrnoStatus(StrCat("rename into mirror ", Quote(path)));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::pair<std::string, UniqueFd>> NewStagingFile() {
    KILN_ASSIGN_OR_RETURN(int staging, Staging());
    std::string name = StrCat("f", ++staged_);
    int fd = ::openat(staging, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoStatus("create staging file");
    return std::make_pair(std::move(name), UniqueFd(fd));
  }

  // NotFound when the file is gone (or a directory on its path became something else).
  absl::StatusOr<UniqueFd> OpenClientFile(const std::string& path) {
    int err = 0;
    auto fd = OpenBeneath(client_root_, path, O_RDONLY, "open", &err);
    if (fd.ok()) return fd;
    if (err == ENOENT || err == ENOTDIR || err == ELOOP || err == EXDEV) {
      return absl::NotFoundError(StrCat(Quote(path), " vanished during the transfer"));
    }
    return fd.status();
  }

  // XXH3-128 of the client file; nullopt when it is no longer a regular file.
  absl::StatusOr<std::optional<std::array<uint8_t, 16>>> HashClientFile(const std::string& path) {
    auto fd = OpenClientFile(path);
    if (!fd.ok()) return std::optional<std::array<uint8_t, 16>>();
    struct stat st;
    if (::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return std::optional<std::array<uint8_t, 16>>();
    }
    Xxh128 xxh;
    KILN_RETURN_IF_ERROR(Pump(fd->get(), nullptr, &xxh, -1, cancel_, Quote(path)).status());
    return std::optional<std::array<uint8_t, 16>>(xxh.Finish());
  }

  absl::Status CopyFile(MirrorEntry& want) {
    KILN_RETURN_IF_ERROR(BeginMutation(want.path));
    KILN_ASSIGN_OR_RETURN(UniqueFd src, OpenClientFile(want.path));
    struct stat before;
    if (::fstat(src.get(), &before) != 0) return ErrnoStatus(StrCat("stat ", Quote(want.path)));
    if (!S_ISREG(before.st_mode)) {
      return absl::AbortedError(StrCat(Quote(want.path), " changed type during the transfer"));
    }
    // What we copy is what we record, even if the file changed since the walk.
    want.size = before.st_size;
    want.mtime_ns = MtimeNs(before);
    want.mode = before.st_mode & 07777;
    want.src_ino = before.st_ino;
    want.src_ctime_ns = CtimeNs(before);
    want.src_mode = before.st_mode;
    KILN_ASSIGN_OR_RETURN(auto tmp, NewStagingFile());
    Sha256Hasher sha;
    Xxh128 xxh;
    KILN_ASSIGN_OR_RETURN(int64_t n,
                          Pump(src.get(), &sha, &xxh, tmp.second.get(), cancel_, Quote(want.path)));
    struct stat after;
    if (::fstat(src.get(), &after) != 0) return ErrnoStatus(StrCat("stat ", Quote(want.path)));
    if (n != before.st_size || MtimeNs(after) != MtimeNs(before) ||
        CtimeNs(after) != CtimeNs(before)) {
      // Written to while we copied: record what we read, and look again next time.
      want.size = n;
      want.src_ctime_ns = -1;
    }
    want.sha256 = RawSha256(sha.Finish());
    want.xxh128 = xxh.Finish();
    KILN_RETURN_IF_ERROR(Publish(tmp.second.get(), tmp.first, want));
    ++result_.files_copied;
    result_.bytes_copied += n;
    return absl::OkStatus();
  }

  // Same content, new metadata (or an inode of its own): a new inode for want.path copied from
  // the mirror file `from` (want.path itself, or the first name of its former link group).
  absl::Status RewriteMetadata(const MirrorEntry& want, const std::string& from) {
    KILN_RETURN_IF_ERROR(BeginMutation(want.path));
    KILN_ASSIGN_OR_RETURN(int parent, MirrorParent(from));
    const std::string base = SplitPath(from).second;
    int sfd = ::openat(parent, base.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (sfd < 0) return ErrnoStatus(StrCat("open mirror file ", Quote(from)));
    UniqueFd src(sfd);
    KILN_ASSIGN_OR_RETURN(auto tmp, NewStagingFile());
    for (;;) {
      ssize_t n = ::copy_file_range(src.get(), nullptr, tmp.second.get(), nullptr, kCopyChunk, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
        KILN_RETURN_IF_ERROR(
            Pump(src.get(), nullptr, nullptr, tmp.second.get(), cancel_, Quote(want.path))
                .status());
        break;
      }
      if (n < 0) return ErrnoStatus(StrCat("copy ", Quote(want.path)));
      if (n == 0) break;
    }
    return Publish(tmp.second.get(), tmp.first, want);
  }

  absl::Status WriteSymlink(const MirrorEntry& want) {
    KILN_RETURN_IF_ERROR(BeginMutation(want.path));
    KILN_ASSIGN_OR_RETURN(int staging, Staging());
    std::string name = StrCat("l", ++staged_);
    KILN_RETURN_IF_ERROR(CreateEntrySymlink(staging, name, want));
    return RenameIn(name, want.path);
  }

  // Owners, modes and mtimes of directories whose content or metadata changed, children first
  // (creating an entry changes its directory's mtime).
  absl::Status FixDirectories(const MirrorIndex& next) {
    parent_fd_.Reset();
    for (size_t i = next.entries.size(); i-- > 0;) {
      const MirrorEntry& e = next.entries[i];
      if (e.type != MirrorEntry::Type::kDir || !dirs_to_fix_.count(e.path)) continue;
      KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenBeneath(mirror_root_.get(), e.path,
                                                     O_RDONLY | O_DIRECTORY, "open mirror dir"));
      KILN_RETURN_IF_ERROR(ApplyEntryMetadata(fd.get(), e));
    }
    return absl::OkStatus();
  }

  int client_root_;
  std::string mirror_dir_;
  MirrorIndex old_;
  MirrorIndex next_;
  std::vector<uint8_t> state_;       // per old entry
  std::set<std::string> gone_dirs_;  // old directories removed or replaced, failed paths
  const HostLocalDirsOptions& options_;
  const CancelToken& cancel_;
  UniqueFd mirror_root_;
  UniqueFd staging_;
  UniqueFd parent_fd_;
  std::string parent_path_;
  uint64_t staged_ = 0;
  bool dirty_ = false;
  bool mutated_ = false;
  std::set<std::string> dirs_to_fix_;
  Result result_;
};

// A walk of the mirror itself, for ScanMirror.  `firsts`: the first name (an index into out) of
// each inode with several names.
absl::Status ScanDir(int dirfd, const std::string& prefix, MirrorIndex& out,
                     std::map<std::pair<dev_t, ino_t>, size_t>& firsts, const CancelToken& cancel,
                     int depth) {
  if (depth > 1024) return absl::FailedPreconditionError("mirror nested too deep");
  KILN_ASSIGN_OR_RETURN(auto names, ListDir(dirfd, Quote(prefix.empty() ? "." : prefix)));
  for (const auto& name : names) {
    KILN_RETURN_IF_ERROR(cancel.Check());
    MirrorEntry e;
    e.path = JoinPath(prefix, name);
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoStatus(StrCat("stat ", Quote(e.path)));
    }
    if (!IsCopied(st.st_mode)) continue;
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.mtime_ns = MtimeNs(st);
    if (S_ISDIR(st.st_mode)) {
      e.type = MirrorEntry::Type::kDir;
      out.entries.push_back(e);
      int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return ErrnoStatus(StrCat("open ", Quote(e.path)));
      UniqueFd sub(fd);
      KILN_RETURN_IF_ERROR(ScanDir(sub.get(), e.path, out, firsts, cancel, depth + 1));
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      e.type = MirrorEntry::Type::kSymlink;
      KILN_ASSIGN_OR_RETURN(e.link, ReadLinkAt(dirfd, name, Quote(e.path)));
      out.entries.push_back(std::move(e));
      continue;
    }
    e.type = MirrorEntry::Type::kFile;
    e.size = st.st_size;
    const std::pair<dev_t, ino_t> inode{st.st_dev, st.st_ino};
    if (st.st_nlink > 1) {
      if (auto it = firsts.find(inode); it != firsts.end()) {
        const MirrorEntry& first = out.entries[it->second];
        e.hardlink = first.path;
        e.sha256 = first.sha256;
        e.xxh128 = first.xxh128;
        out.entries.push_back(std::move(e));
        continue;
      }
      firsts.emplace(inode, out.entries.size());
    }
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(StrCat("open ", Quote(e.path)));
    UniqueFd f(fd);
    Sha256Hasher sha;
    Xxh128 xxh;
    KILN_RETURN_IF_ERROR(Pump(f.get(), &sha, &xxh, -1, cancel, Quote(e.path)).status());
    e.sha256 = RawSha256(sha.Finish());
    e.xxh128 = xxh.Finish();
    out.entries.push_back(std::move(e));
  }
  return absl::OkStatus();
}

}  // namespace

// ---- index ------------------------------------------------------------------------------

absl::Status ApplyEntryMetadata(int fd, const MirrorEntry& e) {
  if (::fchown(fd, e.uid, e.gid) != 0) return ErrnoStatus(StrCat("chown ", Quote(e.path)));
  if (::fchmod(fd, e.mode) != 0) return ErrnoStatus(StrCat("chmod ", Quote(e.path)));
  struct timespec ts[2] = {ToTimespec(e.mtime_ns), ToTimespec(e.mtime_ns)};
  if (::futimens(fd, ts) != 0) return ErrnoStatus(StrCat("set times of ", Quote(e.path)));
  return absl::OkStatus();
}

absl::Status CreateEntrySymlink(int dirfd, const std::string& name, const MirrorEntry& e) {
  if (::symlinkat(e.link.c_str(), dirfd, name.c_str()) != 0) {
    return ErrnoStatus(StrCat("symlink ", Quote(e.path)));
  }
  if (::fchownat(dirfd, name.c_str(), e.uid, e.gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(StrCat("chown ", Quote(e.path)));
  }
  struct timespec ts[2] = {ToTimespec(e.mtime_ns), ToTimespec(e.mtime_ns)};
  if (::utimensat(dirfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(StrCat("set times of ", Quote(e.path)));
  }
  return absl::OkStatus();
}

std::string MirrorIndexPath(const std::string& mirror_dir) { return mirror_dir + ".index"; }
std::string MirrorDirtyPath(const std::string& mirror_dir) { return mirror_dir + ".dirty"; }

absl::Status SaveMirrorIndex(const std::string& mirror_dir, const MirrorIndex& index) {
  Encoder enc;
  enc.out().append(kIndexMagic, 8);
  enc.Int<uint64_t>(index.entries.size());
  for (const auto& e : index.entries) {
    enc.Str(e.path);
    enc.Int<uint8_t>(static_cast<uint8_t>(e.type));
    enc.Int<uint32_t>(e.mode);
    enc.Int<uint32_t>(e.uid);
    enc.Int<uint32_t>(e.gid);
    enc.Int<int64_t>(e.size);
    enc.Int<int64_t>(e.mtime_ns);
    enc.Str(e.link);
    enc.Str(e.hardlink);
    enc.Bytes(e.sha256.data(), e.sha256.size());
    enc.Bytes(e.xxh128.data(), e.xxh128.size());
    enc.Int<uint64_t>(e.src_ino);
    enc.Int<int64_t>(e.src_ctime_ns);
    enc.Int<uint32_t>(e.src_mode);
    enc.Int<uint32_t>(e.src_uid);
    enc.Int<uint32_t>(e.src_gid);
  }
  enc.Int<uint64_t>(XXH3_64bits(enc.out().data(), enc.out().size()));
  return WriteFileAtomic(MirrorIndexPath(mirror_dir), enc.out(), 0600);
}

absl::StatusOr<MirrorIndex> LoadMirrorIndex(const std::string& mirror_dir) {
  const std::string path = MirrorIndexPath(mirror_dir);
  struct stat st;
  if (::stat(MirrorDirtyPath(mirror_dir).c_str(), &st) == 0) {
    return absl::DataLossError(StrCat("mirror ", Quote(mirror_dir), " was left mid-sync"));
  }
  KILN_ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
  auto corrupt = [&](std::string_view why) {
    return absl::DataLossError(StrCat("mirror index ", Quote(path), ": ", why));
  };
  if (data.size() >= 8 && data.compare(0, 8, kIndexMagicV1) == 0) {
    return corrupt("written by an older version (no hardlink groups)");
  }
  if (data.size() < 8 + 8 + 8 || data.compare(0, 8, kIndexMagic) != 0) return corrupt("bad header");
  uint64_t sum = 0;
  Decoder tail(std::string_view(data).substr(data.size() - 8));
  tail.Int(&sum);
  if (sum != XXH3_64bits(data.data(), data.size() - 8)) return corrupt("checksum mismatch");
  Decoder d(std::string_view(data).substr(8, data.size() - 16));
  uint64_t n = 0;
  if (!d.Int(&n) || n > (uint64_t{1} << 32)) return corrupt("bad count");
  MirrorIndex index;
  index.entries.reserve(std::min<uint64_t>(n, 1 << 20));
  for (uint64_t i = 0; i < n; ++i) {
    MirrorEntry e;
    uint8_t type = 0;
    bool ok = d.Str(&e.path, 4096) && d.Int(&type) && d.Int(&e.mode) && d.Int(&e.uid) &&
              d.Int(&e.gid) && d.Int(&e.size) && d.Int(&e.mtime_ns) && d.Str(&e.link, 4096) &&
              d.Str(&e.hardlink, 4096) && d.Bytes(e.sha256.data(), 32) &&
              d.Bytes(e.xxh128.data(), 16) && d.Int(&e.src_ino) && d.Int(&e.src_ctime_ns) &&
              d.Int(&e.src_mode) && d.Int(&e.src_uid) && d.Int(&e.src_gid);
    if (!ok) return corrupt("truncated entry");
    if (type != 'd' && type != 'f' && type != 'l') return corrupt("bad entry type");
    if (!ValidRelativePath(e.path)) return corrupt(StrCat("bad path ", Quote(e.path)));
    e.type = static_cast<MirrorEntry::Type>(type);
    if (!e.hardlink.empty() && e.type != MirrorEntry::Type::kFile) {
      return corrupt(StrCat("hardlink on a non-file ", Quote(e.path)));
    }
    index.entries.push_back(std::move(e));
  }
  if (!d.done()) return corrupt("trailing bytes");
  // Every later name points at an earlier plain file entry (MaterializeMirror relies on it).
  std::unordered_map<std::string_view, size_t> firsts;
  for (size_t i = 0; i < index.entries.size(); ++i) {
    const MirrorEntry& e = index.entries[i];
    if (e.type != MirrorEntry::Type::kFile) continue;
    if (e.hardlink.empty()) {
      firsts.emplace(e.path, i);
    } else if (!firsts.count(e.hardlink)) {
      return corrupt(StrCat("hardlink ", Quote(e.path), " to an unknown file"));
    }
  }
  return index;
}

Digest MirrorContentDigest(const MirrorIndex& index) {
  Sha256Hasher h;
  Encoder enc;
  // v1 (no hardlink field) for an index without link groups, so such digests stay as they were.
  const bool links = std::any_of(index.entries.begin(), index.entries.end(),
                                 [](const MirrorEntry& e) { return !e.hardlink.empty(); });
  enc.out().append(links ? "kiln.local-mirror.v2" : "kiln.local-mirror.v1");
  for (const auto& e : index.entries) {
    enc.Str(e.path);
    enc.Int<uint8_t>(static_cast<uint8_t>(e.type));
    enc.Int<uint32_t>(e.mode);
    enc.Int<uint32_t>(e.uid);
    enc.Int<uint32_t>(e.gid);
    enc.Int<int64_t>(e.mtime_ns);
    if (e.type == MirrorEntry::Type::kFile) {
      enc.Int<int64_t>(e.size);
      enc.Bytes(e.sha256.data(), e.sha256.size());
      if (links) enc.Str(e.hardlink);
    } else if (e.type == MirrorEntry::Type::kSymlink) {
      enc.Str(e.link);
    }
    if (enc.out().size() > (1 << 16)) {
      h.Update(enc.out());
      enc.out().clear();
    }
  }
  h.Update(enc.out());
  return h.Finish();
}

absl::StatusOr<MirrorIndex> ScanMirror(const std::string& mirror_dir, const CancelToken& cancel) {
  int fd = ::open(mirror_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(StrCat("open mirror ", Quote(mirror_dir)));
  UniqueFd root(fd);
  MirrorIndex index;
  std::map<std::pair<dev_t, ino_t>, size_t> firsts;
  KILN_RETURN_IF_ERROR(ScanDir(root.get(), "", index, firsts, cancel, 0));
  return index;
}

std::shared_ptr<std::mutex> MirrorMutex(const std::string& mirror_dir) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<std::mutex>>* locks =
      new std::map<std::string, std::shared_ptr<std::mutex>>();
  std::lock_guard<std::mutex> lock(mu);
  auto& m = (*locks)[mirror_dir];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

// ---- HostLocalDirs ------------------------------------------------------------------------

HostLocalDirs::HostLocalDirs(std::map<std::string, std::string> dirs, HostLocalDirsOptions options)
    : dirs_(std::move(dirs)), options_(options) {}

std::string HostLocalDirs::SharedKey(const std::string& name) const {
  auto it = dirs_.find(name);
  if (it == dirs_.end()) return "";
  char* real = ::realpath(it->second.c_str(), nullptr);
  std::string path = real ? real : it->second;
  ::free(real);
  return StrCat("host:", path);
}

LocalSyncStats HostLocalDirs::stats() const {
  LocalSyncStats s;
  s.syncs = counters_->syncs;
  s.entries_walked = counters_->entries_walked;
  s.files_copied = counters_->files_copied;
  s.bytes_copied = counters_->bytes_copied;
  s.files_rehashed = counters_->files_rehashed;
  s.entries_removed = counters_->entries_removed;
  s.metadata_only = counters_->metadata_only;
  s.full_rebuilds = counters_->full_rebuilds;
  s.links_made = counters_->links_made;
  return s;
}

absl::Status HostLocalDirs::Sync(const std::string& name, const LocalDirFilter& filter,
                                 const std::string& mirror_dir, const CancelToken& cancel) {
  auto it = dirs_.find(name);
  if (it == dirs_.end()) {
    return absl::NotFoundError(StrCat("local directory ", Quote(name), " was not provided"));
  }
  const std::string what = StrCat("sync local directory ", Quote(name));
  char* real = ::realpath(it->second.c_str(), nullptr);
  if (real == nullptr) return ErrnoStatus(StrCat(what, ": resolve ", Quote(it->second)));
  std::string root_path = real;
  ::free(real);
  int fd = ::open(root_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(StrCat(what, ": open ", Quote(root_path)));
  UniqueFd root(fd);

  std::vector<std::string> includes = filter.include_patterns;
  if (!filter.follow_paths.empty()) {
    SymlinkResolver resolver(root.get());
    for (const auto& p : filter.follow_paths) {
      KILN_RETURN_IF_ERROR_CTX(resolver.Append(p), what);
    }
    std::vector<std::string> targets = resolver.Result();
    if (!targets.empty()) {
      includes.insert(includes.end(), targets.begin(), targets.end());
      includes = SymlinkResolver::DedupePaths(includes);
    }
  }
  auto path_filter = PathFilter::Create(includes, filter.exclude_patterns);
  if (!path_filter.ok()) return Annotate(path_filter.status(), what);

  std::vector<ClientEntry> entries;
  ClientWalker walker(*path_filter, cancel, &entries);
  KILN_RETURN_IF_ERROR_CTX(walker.Walk(root.get(), "", PathFilter::State()), what);

  MirrorSync sync(root.get(), mirror_dir, options_, cancel);
  auto r = sync.Run(entries);
  if (!r.ok()) return Annotate(r.status(), what);
  counters_->syncs++;
  counters_->entries_walked += static_cast<int64_t>(entries.size());
  counters_->files_copied += r->files_copied;
  counters_->bytes_copied += r->bytes_copied;
  counters_->files_rehashed += r->files_rehashed;
  counters_->entries_removed += r->entries_removed;
  counters_->metadata_only += r->metadata_only;
  counters_->links_made += r->links_made;
  if (r->full_rebuild) counters_->full_rebuilds++;
  return absl::OkStatus();
}

}  // namespace kiln::engine
