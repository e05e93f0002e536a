// Solver: evaluates build graphs with deduplication, caching and bounded parallelism.
//
// A build is run inside a Job (BuildKit's solver.Job): the job carries the op resolver, the
// client's progress sink, session data for ops, and the no-cache switch, and it keeps the
// vertices its builds loaded (and their results) alive until it is destroyed.  Vertices are shared
// by digest across all live jobs, so identical work runs once, whether it appears twice in one
// graph or in two concurrent builds.
//
// Evaluation follows BuildKit's model (docs/dev/solver.md, and cache_key.h for the formulas):
//   1. every vertex's cache keys are computed from definitions only ("cache-fast"): each op's
//      CacheMap plus its inputs' keys, without running anything;
//   2. a vertex whose key has a recorded result that the ResultLoader can reopen is CACHED: its
//      Exec does not run and its inputs are not evaluated;
//   3. on a miss, inputs that can give better keys are evaluated first ("cache-slow"): inputs whose
//      definition keys are unknown to the cache, and inputs the op computes a content key from;
//      a vertex matching through those keys is still CACHED;
//   4. otherwise its inputs are evaluated and it runs; its outputs are recorded under its keys
//   (also
//      in no-cache mode), in one CacheStorage commit.
//
// Threading (DESIGN.md): all graph state belongs to one scheduler thread, which never blocks.
// Resolving ops, CacheMap, cache loads and content checksums run on a cache pool; Exec runs on an
// exec pool whose size is the parallelism limit.  Completions are posted back to the scheduler.
// Build() blocks its caller only.
//
// Failure and cancellation: the first failing vertex fails every build that needs it, with an
// error naming the vertex; the build then withdraws its demand, which cancels (through the op's
// CancelToken) every running step that no other build needs.  Cancelling a build does the same.
// Build returns only once the steps it stopped have returned, so when it returns nothing of that
// build is still running (unless another build shares it).
//
// Thread-safety: all methods are thread-safe.  A Job must not be destroyed while a Build on it is
// running.  The Solver must outlive its Jobs.  An Op must not call Build synchronously from Exec
// (it would hold an exec slot while waiting for others).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "engine/solver/cache_storage.h"
#include "engine/solver/progress.h"
#include "engine/solver/types.h"

namespace kiln::engine {

namespace internal {
class Scheduler;
struct JobState;
}  // namespace internal

struct SolverOptions {
  // How many Exec calls may run at once.  0 = one per hardware core.
  size_t max_parallel_exec = 0;
  // Threads for op resolution, CacheMap, cache loads and content checksums.
  size_t cache_threads = 4;
};

struct JobOptions {
  std::string id;                          // for errors and logs
  OpResolver resolver;                     // required
  std::shared_ptr<ProgressSink> progress;  // optional
  SessionGroup::Values values;             // session data for this job's ops
  bool ignore_cache = false;               // no-cache for every vertex this job loads
};

// What one build did.  Every vertex of the build graph counts once: executed if its Exec ran (or
// was already running) for this build, cached otherwise (loaded from the cache, reused from an
// earlier build of the job, or not needed because a dependent was cached).
struct BuildStats {
  int total = 0;
  int cached = 0;
  int executed = 0;
  // The cache keys the target output is recorded under (empty when it cannot be cached): where
  // a cache export starts (CollectCacheChain).
  std::vector<std::string> target_cache_keys;
};

class Solver;

// A build context.  Destroying it releases what its builds loaded (results included) unless
// another live job holds the same vertices.
class Job {
 public:
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  const std::string& id() const { return id_; }

 private:
  friend class Solver;
  Job(internal::Scheduler* scheduler, internal::JobState* state, std::string id)
      : scheduler_(scheduler), state_(state), id_(std::move(id)) {}

  internal::Scheduler* scheduler_;
  internal::JobState* state_;
  std::string id_;
};

class Solver {
 public:
  // `storage` holds the cache-key graph; `loader` reopens recorded results.  Both required.
  Solver(std::shared_ptr<CacheStorage> storage, std::shared_ptr<ResultLoader> loader,
         SolverOptions options = {});
  // All Builds must have returned and all Jobs must be destroyed first.
  ~Solver();
  Solver(const Solver&) = delete;
  Solver& operator=(const Solver&) = delete;

  std::unique_ptr<Job> NewJob(JobOptions options);

  // Evaluates `target` in `job` and returns that output.  Errors: InvalidArgument for a malformed
  // graph (missing vertex, bad digest, a cycle), Cancelled when `cancel` fired, otherwise the
  // failing vertex's error, annotated with its name.  `stats` (optional) receives what this build
  // did, also on failure.
  absl::StatusOr<ResultRef> Build(Job& job, const Edge& target, const CancelToken& cancel,
                                  BuildStats* stats = nullptr);

 private:
  std::unique_ptr<internal::Scheduler> scheduler_;
};

// The payload key under which a build error carries the digest of the vertex that failed, so the
// API layer can attach it to BuildKit's error details.
inline constexpr char kVertexErrorPayload[] = "kiln.dev/solver/vertex";

}  // namespace kiln::engine
