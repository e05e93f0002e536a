// CacheStorage: the persistent cache-key graph (BuildKit's CacheKeyStorage).
//
// Nodes are cache keys (opaque strings; the solver uses "sha256:<hex>" digests, see
// cache_key.h).  Two kinds of records hang off them:
//   - results:  key -> {result ID, created}: the worker can reopen that result (ResultLoader) and
//               it is a valid output for the key.  A key may have several (rebuilt with
//               ignore-cache, or recorded by two machines).
//   - links:    (from, CacheLink{input, output, op digest, selector}) -> to: "an op with that
//               definition digest, given an input whose key is `from` at input index `input`
//               (narrowed by `selector`), produces a key `to` for its output `output`".
// A vertex with inputs matches the cache when, for every input, one of that input's keys links to
// the same `to` (the solver's Query, cache_key.h); `to` then names the vertex's output.
//
// Invariants every implementation keeps (the conformance suite checks them):
//   - Commit applies all of an update or none of it (one write batch).
//   - Adding an existing link or result again is a no-op.
//   - A key exists while it has a result or a link in either direction.
//   - Release(result) removes that result from every key, then removes each key left with no
//     result and no outgoing link, with the links pointing to it, and repeats upwards for the
//     keys those links came from.  So pruning a snapshot never leaves a dangling path, while a
//     key whose own result is gone but that still leads to other results is kept.
//
// Thread-safety: implementations are safe for concurrent use.  Walk callbacks run without any lock
// held and may call back into the storage; a walk sees the records present when it started.
#pragma once

#include <chrono>
#include <compare>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kiln::engine {

struct CacheLink {
  int input = 0;
  int output = 0;
  std::string op_digest;
  std::string selector;  // empty: none (also used for content keys)

  auto operator<=>(const CacheLink&) const = default;
};

struct CacheResultRecord {
  std::string id;
  std::chrono::system_clock::time_point created{};

  bool operator==(const CacheResultRecord&) const = default;
};

// A batch of additions applied atomically.
struct CacheUpdate {
  struct Link {
    std::string from;
    CacheLink link;
    std::string to;
  };
  struct Result {
    std::string key;
    CacheResultRecord record;
  };
  std::vector<Link> links;
  std::vector<Result> results;

  bool empty() const { return links.empty() && results.empty(); }
};

class CacheStorage {
 public:
  using KeyFn = std::function<absl::Status(const std::string& key)>;
  using ResultFn = std::function<absl::Status(const CacheResultRecord& result)>;
  using BacklinkFn = std::function<absl::Status(const std::string& from, const CacheLink& link)>;

  virtual ~CacheStorage() = default;
  CacheStorage() = default;
  CacheStorage(const CacheStorage&) = delete;
  CacheStorage& operator=(const CacheStorage&) = delete;

  virtual absl::StatusOr<bool> Exists(const std::string& key) = 0;
  // Every existing key.  A callback error stops the walk and is returned.
  virtual absl::Status Walk(const KeyFn& fn) = 0;
  // The results of `key`, newest first.
  virtual absl::Status WalkResults(const std::string& key, const ResultFn& fn) = 0;
  // The targets of links from `from` carrying exactly `link`.
  virtual absl::Status WalkLinks(const std::string& from, const CacheLink& link,
                                 const KeyFn& fn) = 0;
  // The links pointing to `to`.
  virtual absl::Status WalkBacklinks(const std::string& to, const BacklinkFn& fn) = 0;
  // The keys holding result `result_id`.
  virtual absl::Status WalkKeysByResult(const std::string& result_id, const KeyFn& fn) = 0;
  // Applies `update` atomically.  InvalidArgument (and nothing applied) when a key, result ID,
  // digest or selector is malformed: empty where required or containing a NUL byte.
  virtual absl::Status Commit(const CacheUpdate& update) = 0;
  // Forgets a result (its data was pruned), pruning the branches it leaves empty (see above).
  // Releasing an unknown result is OK.
  virtual absl::Status Release(const std::string& result_id) = 0;

  // Conveniences over the above.
  absl::Status AddLink(const std::string& from, const CacheLink& link, const std::string& to);
  absl::Status AddResult(const std::string& key, const CacheResultRecord& result);
  absl::StatusOr<bool> HasLink(const std::string& from, const CacheLink& link,
                               const std::string& to);
  // The record of `result_id` under `key`, or NotFound.
  absl::StatusOr<CacheResultRecord> Load(const std::string& key, const std::string& result_id);
};

// Validation shared by implementations, so they reject the same things.
absl::Status ValidateCacheUpdate(const CacheUpdate& update);

// One recorded result with every key it is stored under: what `du` and `prune` list.
struct CachedResultInfo {
  std::string id;
  std::chrono::system_clock::time_point created{};
  std::vector<std::string> keys;
};

// Every recorded result, oldest first.
absl::StatusOr<std::vector<CachedResultInfo>> ListCachedResults(CacheStorage& storage);

// The records that let another cache reach `keys`: every link on a path from a root key to one of
// them, and the results of `keys` (and, with `intermediate_results`, of every key on those paths:
// BuildKit's "max" export mode; without it, "min").  Committing it into another storage imports
// it; a remote cache exporter serializes it.  Keys whose only results are in `keys`' ancestors
// still travel as links, so a dependent's match keeps working.
absl::StatusOr<CacheUpdate> CollectCacheChain(CacheStorage& storage,
                                              const std::vector<std::string>& keys,
                                              bool intermediate_results);

// Releases every result for which `exists(id)` is false, e.g. at startup against the worker's
// snapshots, so records of data lost in a crash are dropped (BuildKit's ReleaseUnreferenced).
// Returns how many were released.
absl::StatusOr<int> ReleaseUnreferenced(CacheStorage& storage,
                                        const std::function<bool(const std::string& id)>& exists);

}  // namespace kiln::engine
