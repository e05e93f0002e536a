// The solver's vocabulary: vertices, the ops that run them, their results, and the worker that
// reloads cached results.
//
// The solver is generic (DESIGN.md): it knows vertices, cache keys and results, never LLB,
// Dockerfiles, snapshots or gRPC.  engine/ops supplies an OpResolver that turns a vertex (its
// `sys` payload, an LLB op) into an Op; the worker supplies Results (snapshot references) and a
// ResultLoader that reopens them by ID after a restart.
//
// Thread-safety: Vertex, Edge, CacheMap and SessionGroup are immutable values once built and may be
// shared between threads.  Op and ResultLoader implementations are called from the solver's pools;
// their contracts are given below.
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/digest.h"

namespace kiln::engine {

// One output of an op: for the engine, a reference to an immutable snapshot.  The object is the
// reference: it is released when the last shared_ptr to it goes away, so holding a ResultRef keeps
// the data alive.  Implementations must be safe to destroy on any thread.
class Result {
 public:
  virtual ~Result() = default;
  Result() = default;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;

  // Identifies the data to the worker, stably across restarts: ResultLoader::Load(ID()) reopens
  // it.  An empty ID means "cannot be reloaded": the solver then never records it in the cache.
  virtual std::string ID() const = 0;
};
using ResultRef = std::shared_ptr<const Result>;

struct Vertex;

// One output of a vertex, used as an input by another vertex or as a build's target.
struct Edge {
  std::shared_ptr<const Vertex> vertex;
  int index = 0;
};

// Metadata that does not change what a vertex computes, so it is not part of its digest.
struct VertexOptions {
  // Never satisfy this vertex from the cache; its fresh result is still recorded.  Dependents may
  // still match the cache through its (unchanged) cache key, as in BuildKit.
  bool ignore_cache = false;
  // Free-form text for progress and history (BuildKit's llb.customname and friends).
  std::map<std::string, std::string> description;
  std::string progress_group;
};

// A node of the build graph.  `digest` identifies the whole definition up to this vertex, inputs
// included: two vertices with the same digest are the same work and run once, within a build and
// across concurrent builds.  It is an identity for deduplication, not a cache key (an image tag in
// the definition may point to new content tomorrow); cache keys come from Op::GetCacheMap.
struct Vertex {
  Digest digest;
  std::string name;  // shown in progress and errors, e.g. "[2/4] RUN make"
  std::vector<Edge> inputs;
  VertexOptions options;
  // What the OpResolver turns into an Op; for the engine, the decoded LLB op.  Opaque here.
  std::any sys;
};

// Data a job carries for its ops: session handles, secrets, registry credentials.  A vertex shared
// by concurrent jobs sees the values of every job that currently holds it (as BuildKit's
// session.Group), so an op can fall back to another job's session when the first one is gone.
// Secrets live here and must never be copied into a cache key, a log or an error.
class SessionGroup {
 public:
  using Values = std::map<std::string, std::any, std::less<>>;

  SessionGroup() = default;
  explicit SessionGroup(std::vector<std::shared_ptr<const Values>> jobs) : jobs_(std::move(jobs)) {}

  // The value stored under `key` by each job that has one, in the order the jobs joined.
  std::vector<const std::any*> Find(std::string_view key) const;

  // The first job's value under `key` if it holds a T, else nullptr.
  template <typename T>
  const T* FindFirst(std::string_view key) const {
    for (const std::any* v : Find(key)) {
      if (const T* t = std::any_cast<T>(v)) return t;
    }
    return nullptr;
  }

 private:
  std::vector<std::shared_ptr<const Values>> jobs_;
};

struct StatusUpdate;

// Where an op reports what it is doing.  The solver routes it to the progress of every job that
// holds the vertex.  Thread-safe; cheap to copy.
class VertexProgress {
 public:
  struct Target;  // the solver's fan-out; opaque to ops
  VertexProgress() = default;
  explicit VertexProgress(std::shared_ptr<const Target> target) : target_(std::move(target)) {}

  // A chunk of the step's output; stream 1 is stdout, 2 is stderr (BuildKit's VertexLog).
  void Log(int stream, std::string_view data) const;
  // A status line: a transfer, an extraction ("id" names it; current/total in bytes or items).
  void Status(const StatusUpdate& update) const;

 private:
  std::shared_ptr<const Target> target_;
};

// What every op call receives.
struct OpContext {
  CancelToken cancel;
  VertexProgress progress;
  SessionGroup session;
};

// Computes a content-based cache key for one input from that input's result, e.g. the checksum of
// the files a COPY selects from its source.  Runs on the solver's cache pool after the input
// completed.  An invalid (empty) Digest means "no content key".
using ContentDigestFunc =
    std::function<absl::StatusOr<Digest>(const ResultRef& input, const OpContext& ctx)>;

// How one input contributes to the op's cache key.
struct DepCacheOptions {
  // Narrows which part of the input matters (e.g. a mount's selected path); merged with the
  // input's definition keys.  Invalid = the whole input.
  Digest selector;
  // Optional content key ("cache-slow" in BuildKit).  When set, the op can hit the cache whenever
  // the input's content is unchanged, even if the input's definition changed; and a result is only
  // reused when the content matches, for inputs whose definition key alone does not pin their
  // content (a local source read from a client session).
  ContentDigestFunc content;
};

// How an op's result is cached.  Computed once per vertex (per solver lifetime of the vertex).
struct CacheMap {
  // The op's own definition, already covering everything that determines its output besides its
  // inputs: for an LLB exec, a digest of the normalized op; for an image source, the resolved
  // manifest digest.  Combined with the inputs' cache keys into the vertex's keys.
  Digest digest;
  // Further digests naming the same output of a root op (e.g. an image's config digest besides
  // its manifest digest); each is looked up too.  BuildKit gets these from repeated CacheMap calls
  // (index 0, 1, .. until done); every source that uses them computes them from one resolution,
  // so Kiln asks once.  Only meaningful for ops without inputs.
  std::vector<Digest> alt_digests;
  // One entry per input, in input order (missing entries mean default options).
  std::vector<DepCacheOptions> deps;
  // The op's output cannot be named by its definition (a local source read through a session):
  // it is never looked up nor recorded, and dependents reach the cache only through content keys.
  bool uncacheable = false;
};

// How to evaluate one vertex.  One Op instance serves one vertex for as long as the solver holds
// the vertex, whatever jobs share it.  GetCacheMap is called first and at most once successfully;
// Exec only after it, never concurrently with it nor with another Exec of the same Op.  Both run on
// pool threads, must honour ctx.cancel and return Cancelled when stopped.
class Op {
 public:
  virtual ~Op() = default;
  Op() = default;
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;

  // Describes the op's cache key.  May do real work: an image source resolves its manifest; a
  // local source may transfer files and return their checksum as `digest`.
  virtual absl::StatusOr<CacheMap> GetCacheMap(const OpContext& ctx) = 0;

  // Runs the op on its inputs' results (one per vertex input, in order) and returns its outputs.
  // The inputs stay alive for the duration of the call.
  virtual absl::StatusOr<std::vector<ResultRef>> Exec(const OpContext& ctx,
                                                      std::span<const ResultRef> inputs) = 0;
};

// Turns a vertex into its Op; given per job.  Runs on a pool thread.
using OpResolver =
    std::function<absl::StatusOr<std::unique_ptr<Op>>(const Vertex& vertex, const OpContext& ctx)>;

// The worker side of the cache: reopens a recorded result by ID.  Thread-safe.
class ResultLoader {
 public:
  virtual ~ResultLoader() = default;
  ResultLoader() = default;
  ResultLoader(const ResultLoader&) = delete;
  ResultLoader& operator=(const ResultLoader&) = delete;

  // NotFound when the data no longer exists (pruned): the solver treats it as a cache miss and
  // drops the record.  Any other error is also treated as a miss.
  virtual absl::StatusOr<ResultRef> Load(const std::string& id, const CancelToken& cancel) = 0;
};

}  // namespace kiln::engine
