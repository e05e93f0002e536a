// Pieces shared by the source ops (image, local, git, http): attribute parsing, the cache digest
// BuildKit derives from a source's key, and writing a fresh snapshot.
//
// NewSourceOp (llb_op.h) dispatches on the identifier's scheme to NewImageSourceOp,
// NewLocalSourceOp, NewGitSourceOp and NewHttpSourceOp.
//
// Thread-safety: pure functions; WriteNewSnapshot may run concurrently (each call owns its
// snapshot).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "engine/solver/types.h"
#include "llb/pb/ops.pb.h"

namespace kiln::engine {

class Worker;

// The attributes of a SourceOp.  Unknown keys are ignored (as BuildKit does); a known key with
// a value the source cannot use is InvalidArgument naming the key, the value and the source.
class SourceAttrs {
 public:
  SourceAttrs(const pb::SourceOp& op);

  const std::string* Find(std::string_view key) const;
  std::string Get(std::string_view key, std::string_view fallback = "") const;
  // "true"/"false" ("" and absent: `fallback`).
  absl::StatusOr<bool> Bool(std::string_view key, bool fallback) const;
  // Go's strconv.ParseInt(v, 0, 64): decimal, 0x hex, 0 / 0o octal, 0b binary.
  absl::StatusOr<int64_t> Int(std::string_view key, int64_t fallback) const;
  // A JSON array of strings (local.includepattern and friends); absent: empty.
  absl::StatusOr<std::vector<std::string>> StringList(std::string_view key) const;

  absl::Status Invalid(std::string_view key, std::string_view why) const;

 private:
  std::string identifier_;
  std::map<std::string, std::string, std::less<>> attrs_;
};

// "scheme://rest" split; InvalidArgument without "://".
absl::StatusOr<std::pair<std::string, std::string>> SplitSourceIdentifier(std::string_view id);

// BuildKit's SourceOp.CacheMap digest: sha256("buildkit.source.v0:" + key).
Digest SourceCacheDigest(std::string_view key);

// Go's strconv.ParseInt(text, 0, 64) (underscores not accepted).
absl::StatusOr<int64_t> ParseGoInt(std::string_view text);

// Makes an empty writable snapshot, calls fn(dir) with a directory holding its root (the
// snapshot's own directory when the snapshotter exposes one, so files on the same filesystem
// can be hardlinked or renamed into it), and commits it.  Nothing is left behind on failure.
absl::StatusOr<ResultRef> WriteNewSnapshot(
    Worker& worker, std::string_view description,
    const std::function<absl::Status(const std::string&)>& fn);

// A source op's progress line that is started now and completed when Done() runs or the
// object goes away.
class ProgressTask {
 public:
  ProgressTask(const VertexProgress& progress, std::string id, int64_t total = 0);
  ~ProgressTask();
  ProgressTask(const ProgressTask&) = delete;
  ProgressTask& operator=(const ProgressTask&) = delete;
  void Update(int64_t current);
  void Done();

 private:
  VertexProgress progress_;
  std::string id_;
  int64_t total_;
  int64_t current_ = 0;
  bool done_ = false;
  std::chrono::system_clock::time_point started_;
};

}  // namespace kiln::engine
