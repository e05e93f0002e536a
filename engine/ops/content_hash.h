// Content checksums of a selection of a snapshot: the content keys ("cache-slow") of COPY and RUN
// bind mounts, BuildKit's cache/contenthash.
//
// A selector names a path of the tree (wildcards optional), whether its last component follows
// symlinks, and include/exclude patterns (fsutil semantics, relative to each selected path).
// The checksum covers, for each selected entry: its type, permission and special mode bits,
// owner, xattrs (except overlay's private ones), symlink target, device numbers and file content
// (XXH3-128); a directory is the digest of its own metadata and its children's names and
// checksums, in name order.  Modification times are NOT covered (as BuildKit's tarsum-like
// headers), so a re-transferred build context whose files did not change gives the same key.
// The digest format is Kiln's own (content keys never leave the daemon).
//
// Semantics per selector, as BuildKit's contenthash.Checksum:
//   * plain path: the entry's checksum; parent symlinks are followed inside the root, the last
//     component too with follow_links; a missing path is NotFound ("`/p`: not found"), which
//     fails the step like BuildKit's "failed to calculate checksum of ref".
//   * wildcard and/or include/exclude patterns: the digest of the list of included entries
//     (paths relative to the match's parent, with their own metadata-only checksums for
//     directories when patterns filter, full checksums otherwise); no match gives the digest
//     of nothing.
// Several selectors: sha256 of their checksums joined by NUL, in order.
//
// Memoization: committed snapshots never change, so checksums are cached in memory per
// (snapshot key, selectors); repeated builds do not rehash.
//
// Thread-safety: all functions are thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/digest.h"
#include "engine/ops/file_root.h"
#include "engine/solver/types.h"

namespace kiln::engine {

class Worker;

struct ContentSelector {
  std::string path = "/";
  bool wildcard = false;
  bool follow_links = false;
  std::vector<std::string> include_patterns;
  std::vector<std::string> exclude_patterns;
  // BuildKit HEAD (COPY --parents): paths that must exist in the tree, else NotFound.
  std::vector<std::string> required_paths;

  bool HasWildcardOrFilters() const {
    return wildcard || !include_patterns.empty() || !exclude_patterns.empty() ||
           !required_paths.empty();
  }
  bool operator==(const ContentSelector&) const = default;
};

// NotFound naming the first of `paths` missing from the tree (symlinks followed inside it).
absl::Status CheckRequiredPaths(const RootDir& root, const std::vector<std::string>& paths);

// The checksum of one selector over an open tree.
absl::StatusOr<Digest> ChecksumSelector(const RootDir& root, const ContentSelector& selector,
                                        const CancelToken& cancel);

// The checksum of `selectors` (none = the whole tree) of a worker result, mounted read-only;
// memoized per snapshot.
absl::StatusOr<Digest> ContentChecksum(Worker& worker, const ResultRef& result,
                                       const std::vector<ContentSelector>& selectors,
                                       const CancelToken& cancel);

// A solver ContentDigestFunc computing ContentChecksum over `selectors`.
ContentDigestFunc MakeContentDigestFunc(Worker* worker, std::vector<ContentSelector> selectors);

// BuildKit's dedupePaths: drops paths below another one in the list, sorted.
std::vector<std::string> DedupePaths(const std::vector<std::string>& paths);
// BuildKit's dedupeSelectors (file op): plain selectors deduplicated by path (separately with
// and without follow_links), wildcard/filter ones kept, all sorted by path.
std::vector<ContentSelector> DedupeSelectors(const std::vector<ContentSelector>& selectors);

// How many checksums the memo currently holds (tests).
size_t ContentChecksumMemoSize();

}  // namespace kiln::engine
