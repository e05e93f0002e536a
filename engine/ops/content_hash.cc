#include "engine/ops/content_hash.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/pattern_match.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/copy_tree.h"
#include "engine/ops/copy_util.h"
#include "engine/worker/worker.h"

namespace kiln::engine {
namespace {

using Hash128 = XXH128_hash_t;

class Hasher {
 public:
  Hasher() : state_(XXH3_createState()) { XXH3_128bits_reset(state_); }
  ~Hasher() { XXH3_freeState(state_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void Bytes(const void* p, size_t n) { XXH3_128bits_update(state_, p, n); }
  void U64(uint64_t v) { Bytes(&v, sizeof(v)); }
  void Str(std::string_view s) {
    U64(s.size());
    Bytes(s.data(), s.size());
  }
  void H(const Hash128& h) {
    U64(h.low64);
    U64(h.high64);
  }
  Hash128 Finish() { return XXH3_128bits_digest(state_); }

 private:
  XXH3_state_t* state_;
};

std::string Hex(const Hash128& h) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  return HexEncode(c.digest, sizeof(c.digest));
}

absl::StatusOr<Hash128> FileContentHash(const EntryRef& e, const CancelToken& cancel) {
  UniqueFd fd(::openat(e.dir, e.name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(e.name)));
  Hasher h;
  std::string buf(1 << 20, '\0');
  for (;;) {
    KILN_RETURN_IF_ERROR(cancel.Check());
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(StrCat("read ", Quote(e.name)));
    }
    if (n == 0) break;
    h.Bytes(buf.data(), static_cast<size_t>(n));
  }
  return h.Finish();
}

// The metadata (and, for non-directories, content) record of one entry.
absl::StatusOr<Hash128> HeaderHash(const EntryRef& e, const struct stat& st,
                                   const CancelToken& cancel) {
  Hasher h;
  const mode_t type = st.st_mode & S_IFMT;
  h.U64(type);
  h.U64(S_ISLNK(st.st_mode) ? 0 : (st.st_mode & 07777));
  h.U64(st.st_uid);
  h.U64(st.st_gid);
  KILN_ASSIGN_OR_RETURN(XattrList xattrs, ReadXattrs(e));
  h.U64(xattrs.size());
  for (const auto& [k, v] : xattrs) {
    h.Str(k);
    h.Str(v);
  }
  if (S_ISREG(st.st_mode)) {
    KILN_ASSIGN_OR_RETURN(Hash128 content, FileContentHash(e, cancel));
    h.U64(static_cast<uint64_t>(st.st_size));
    h.H(content);
  } else if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlinkat(e.dir, e.name.c_str(), target.data(), target.size());
    if (n < 0) return ErrnoStatus(StrCat("read link ", Quote(e.name)));
    target.resize(static_cast<size_t>(n));
    h.Str(target);
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    h.U64(major(st.st_rdev));
    h.U64(minor(st.st_rdev));
  }
  return h.Finish();
}

// Full record: directories cover their children recursively.
absl::StatusOr<Hash128> TreeHash(const EntryRef& e, const struct stat& st,
                                 const CancelToken& cancel) {
  KILN_RETURN_IF_ERROR(cancel.Check());
  KILN_ASSIGN_OR_RETURN(Hash128 header, HeaderHash(e, st, cancel));
  if (!S_ISDIR(st.st_mode)) return header;
  Hasher h;
  h.H(header);
  KILN_ASSIGN_OR_RETURN(UniqueFd dir, OpenDirEntry(e));
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirSorted(dir.get()));
  for (const std::string& n : names) {
    EntryRef child{dir.get(), n};
    KILN_ASSIGN_OR_RETURN(struct stat cst, StatEntry(child));
    KILN_ASSIGN_OR_RETURN(Hash128 ch, TreeHash(child, cst, cancel));
    h.Str(n);
    h.H(ch);
  }
  return h.Finish();
}

// Entries of a filtered walk: fsutil/BuildKit include semantics with lazily included parents.
class FilteredWalk {
 public:
  FilteredWalk(const PathFilter* filter, const CancelToken& cancel, Hasher* out)
      : filter_(filter), cancel_(cancel), out_(out) {}

  absl::Status Walk(const EntryRef& e, const struct stat& st, const std::string& rel,
                    const std::string& comps, const PathFilter::State& parent) {
    KILN_RETURN_IF_ERROR(cancel_.Check());
    const bool is_dir = S_ISDIR(st.st_mode);
    bool include = true;
    PathFilter::State state;
    if (!comps.empty() && filter_ != nullptr && !filter_->empty()) {
      PathFilter::Decision d = filter_->Check(comps, is_dir, parent);
      if (!d.include && !d.descend) return absl::OkStatus();
      include = d.include;
      state = std::move(d.state);
    }
    const bool filtering = filter_ != nullptr && !filter_->empty();
    if (!is_dir || !filtering) {
      if (include) {
        EmitParents();
        KILN_ASSIGN_OR_RETURN(Hash128 h, TreeHash(e, st, cancel_));
        Emit(rel, h);
      }
      return absl::OkStatus();
    }
    KILN_ASSIGN_OR_RETURN(Hash128 header, HeaderHash(e, st, cancel_));
    pending_.push_back({rel, header, false});
    if (include) EmitParents();
    KILN_ASSIGN_OR_RETURN(UniqueFd dir, OpenDirEntry(e));
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirSorted(dir.get()));
    absl::Status s;
    for (const std::string& n : names) {
      EntryRef child{dir.get(), n};
      auto cst = StatEntry(child);
      if (!cst.ok()) {
        s = cst.status();
        break;
      }
      s = Walk(child, *cst, StrCat(rel, "/", n), comps.empty() ? n : StrCat(comps, "/", n), state);
      if (!s.ok()) break;
    }
    pending_.pop_back();
    return s;
  }

  int emitted() const { return emitted_; }

 private:
  struct Pending {
    std::string rel;
    Hash128 header;
    bool emitted;
  };
  void EmitParents() {
    for (Pending& p : pending_) {
      if (p.emitted) continue;
      Emit(p.rel, p.header);
      p.emitted = true;
    }
  }
  void Emit(const std::string& rel, const Hash128& h) {
    out_->Str(rel);
    out_->H(h);
    ++emitted_;
  }

  const PathFilter* filter_;
  const CancelToken& cancel_;
  Hasher* out_;
  std::vector<Pending> pending_;
  int emitted_ = 0;
};

Digest FinalDigest(std::string_view kind, const Hash128& h) {
  return Digest::Sha256Of(StrCat("kiln.contenthash.v1 ", kind, " ", Hex(h)));
}

std::string MemoKey(const std::string& snapshot, const std::vector<ContentSelector>& sels) {
  std::string k = snapshot;
  for (const ContentSelector& s : sels) {
    StrAppend(&k, "\n", s.path, "\t", s.wildcard ? 1 : 0, s.follow_links ? 1 : 0);
    for (const auto& p : s.include_patterns) StrAppend(&k, "\t+", p);
    for (const auto& p : s.exclude_patterns) StrAppend(&k, "\t-", p);
    for (const auto& p : s.required_paths) StrAppend(&k, "\t!", p);
  }
  return k;
}

struct Memo {
  std::mutex mu;
  std::map<std::string, Digest> digests;
};
Memo& GlobalMemo() {
  static Memo* memo = new Memo();
  return *memo;
}
constexpr size_t kMemoCapacity = 20000;

}  // namespace

absl::Status CheckRequiredPaths(const RootDir& root, const std::vector<std::string>& paths) {
  for (const std::string& p : paths) {
    KILN_ASSIGN_OR_RETURN(std::string rel, root.Resolve(p, true));
    KILN_ASSIGN_OR_RETURN(std::optional<struct stat> st, root.Lstat(rel));
    if (!st) return absl::NotFoundError(StrCat(Quote(CleanPath(StrCat("/", p))), ": not found"));
  }
  return absl::OkStatus();
}

namespace {

// The entry `rel` of `root` ("" is the root itself), through its parent directory, which
// *parent keeps open for as long as the entry is used.
absl::StatusOr<EntryRef> OpenEntry(const RootDir& root, const std::string& rel, UniqueFd* parent) {
  if (rel.empty()) {
    KILN_ASSIGN_OR_RETURN(*parent, root.OpenResolved("", O_RDONLY | O_DIRECTORY));
    return EntryRef{parent->get(), ""};
  }
  KILN_ASSIGN_OR_RETURN(auto p, root.OpenParent(rel));
  *parent = std::move(p.first);
  return EntryRef{parent->get(), p.second};
}

}  // namespace

absl::StatusOr<Digest> ChecksumSelector(const RootDir& root, const ContentSelector& sel,
                                        const CancelToken& cancel) {
  KILN_RETURN_IF_ERROR(CheckRequiredPaths(root, sel.required_paths));
  std::string clean = CleanPath(StrCat("/", sel.path));
  if (!sel.HasWildcardOrFilters()) {
    KILN_ASSIGN_OR_RETURN(std::string rel, ResolveSourcePath(root, clean, sel.follow_links));
    KILN_ASSIGN_OR_RETURN(std::optional<struct stat> st, root.Lstat(rel));
    if (!st) return absl::NotFoundError(StrCat(Quote(clean), ": not found"));
    UniqueFd parent;
    KILN_ASSIGN_OR_RETURN(EntryRef e, OpenEntry(root, rel, &parent));
    KILN_ASSIGN_OR_RETURN(Hash128 h, TreeHash(e, *st, cancel));
    return FinalDigest("tree", h);
  }

  PathFilter filter;
  if (!sel.include_patterns.empty() || !sel.exclude_patterns.empty()) {
    KILN_ASSIGN_OR_RETURN(filter, PathFilter::Create(sel.include_patterns, sel.exclude_patterns));
  }
  std::vector<std::string> matches;
  if (sel.wildcard) {
    KILN_ASSIGN_OR_RETURN(matches, ResolveWildcards(root, clean, sel.follow_links));
  } else {
    matches.push_back(clean);
  }
  Hasher h;
  int emitted = 0;
  for (const std::string& m : matches) {
    KILN_ASSIGN_OR_RETURN(std::string rel, ResolveSourcePath(root, m, sel.follow_links));
    KILN_ASSIGN_OR_RETURN(std::optional<struct stat> st, root.Lstat(rel));
    if (!st) continue;
    UniqueFd parent;
    KILN_ASSIGN_OR_RETURN(EntryRef e, OpenEntry(root, rel, &parent));
    FilteredWalk walk(&filter, cancel, &h);
    KILN_RETURN_IF_ERROR(walk.Walk(e, *st, BasePath(m), "", PathFilter::State{}));
    emitted += walk.emitted();
  }
  if (emitted == 0) return Digest::Sha256Of("");
  return FinalDigest("selection", h.Finish());
}

absl::StatusOr<Digest> ContentChecksum(Worker& worker, const ResultRef& result,
                                       const std::vector<ContentSelector>& selectors_in,
                                       const CancelToken& cancel) {
  std::vector<ContentSelector> selectors = selectors_in;
  if (selectors.empty()) selectors.push_back(ContentSelector{});
  const std::string snapshot = SnapshotKeyOf(result);
  const std::string key = MemoKey(snapshot, selectors);
  if (!snapshot.empty()) {
    Memo& memo = GlobalMemo();
    std::lock_guard<std::mutex> lock(memo.mu);
    auto it = memo.digests.find(key);
    if (it != memo.digests.end()) return it->second;
  }
  std::vector<Digest> digests;
  KILN_RETURN_IF_ERROR(worker.WithReadOnlyMount(result, [&](const std::string& path) {
    KILN_ASSIGN_OR_RETURN(RootDir root, RootDir::Open(path));
    for (const ContentSelector& sel : selectors) {
      KILN_ASSIGN_OR_RETURN(Digest d, ChecksumSelector(root, sel, cancel));
      digests.push_back(d);
    }
    return absl::OkStatus();
  }));
  std::string joined;
  for (size_t i = 0; i < digests.size(); ++i) {
    if (i) joined.push_back('\0');
    joined += digests[i].str();
  }
  Digest d = Digest::Sha256Of(joined);
  if (!snapshot.empty()) {
    Memo& memo = GlobalMemo();
    std::lock_guard<std::mutex> lock(memo.mu);
    if (memo.digests.size() >= kMemoCapacity) memo.digests.clear();
    memo.digests.emplace(key, d);
  }
  return d;
}

ContentDigestFunc MakeContentDigestFunc(Worker* worker, std::vector<ContentSelector> selectors) {
  return [worker, selectors = std::move(selectors)](
             const ResultRef& input, const OpContext& ctx) -> absl::StatusOr<Digest> {
    auto d = ContentChecksum(*worker, input, selectors, ctx.cancel);
    if (!d.ok()) return Annotate(d.status(), "failed to calculate checksum of ref");
    return d;
  };
}

std::vector<std::string> DedupePaths(const std::vector<std::string>& in) {
  std::set<std::string> uniq(in.begin(), in.end());
  std::vector<std::string> out;
  for (const std::string& p1 : uniq) {
    bool skip = false;
    for (const std::string& p2 : uniq) {
      if (p1 != p2 && p1.starts_with(StrCat(p2, "/"))) {
        skip = true;
        break;
      }
    }
    if (!skip) out.push_back(p1);
  }
  return out;  // std::set iteration is already sorted
}

std::vector<ContentSelector> DedupeSelectors(const std::vector<ContentSelector>& in) {
  std::vector<std::string> paths, follow;
  for (const ContentSelector& s : in) {
    if (s.HasWildcardOrFilters()) continue;
    (s.follow_links ? follow : paths).push_back(s.path);
  }
  std::vector<ContentSelector> out;
  for (const std::string& p : DedupePaths(paths)) out.push_back(ContentSelector{.path = p});
  for (const std::string& p : DedupePaths(follow)) {
    out.push_back(ContentSelector{.path = p, .follow_links = true});
  }
  for (const ContentSelector& s : in) {
    if (s.HasWildcardOrFilters()) out.push_back(s);
  }
  std::stable_sort(out.begin(), out.end(), [](const ContentSelector& a, const ContentSelector& b) {
    return a.path < b.path;
  });
  return out;
}

size_t ContentChecksumMemoSize() {
  Memo& memo = GlobalMemo();
  std::lock_guard<std::mutex> lock(memo.mu);
  return memo.digests.size();
}

}  // namespace kiln::engine
