// The solver's engine room (internal to engine/solver; use solver.h).
//
// One scheduler thread owns every structure below.  Work is expressed as demand: a build request
// wants one output of its target; a vertex that needs its inputs' keys or results registers itself
// as a waiter on them.  Whenever something a vertex depends on changes (a demand, an input's keys
// or result, a completed task) the vertex is queued for Pump(), which is level-triggered: it looks
// at what is known and starts the next missing step (see Pump in scheduler.cc for the order).  When
// a vertex loses its last waiter it is deactivated: its running tasks are cancelled and its own
// demands on its inputs are withdrawn, which cascades.
//
// Pool tasks never touch this state; they capture what they need, run, and post a completion.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/cancel.h"
#include "base/thread_pool.h"
#include "engine/solver/cache_key.h"
#include "engine/solver/solver.h"

namespace kiln::engine::internal {

struct VertexState;
struct BuildRequest;

// Someone waiting on a vertex: a dependent vertex or a build request.
struct Waiter {
  explicit Waiter(bool request) : is_request(request) {}
  virtual ~Waiter() = default;
  const bool is_request;
  bool wake_queued = false;
};

struct JobState {
  uint64_t seq = 0;
  std::string id;
  OpResolver resolver;
  std::shared_ptr<ProgressSink> sink;
  std::shared_ptr<const SessionGroup::Values> values;
  bool ignore_cache = false;
  std::set<VertexState*> vertices;
  // Vertices whose final state (done, cached, failed) this job's sink has seen.
  std::set<VertexState*> reported_final;
};

struct OutputSlot {
  // Definition-based keys ("cache-fast"); `stored` when they came from the cache storage, so a
  // dependent can match through them.
  bool keys_ready = false;
  std::vector<std::string> fast_keys;
  bool fast_stored = false;
  // Keys found in the cache-slow phase.
  std::vector<std::string> slow_keys;
  // The output, and the keys it is recorded under.
  ResultRef result;
  std::vector<std::string> final_keys;
};

struct InputRef {
  VertexState* state = nullptr;
  int index = 0;
};

struct VertexState : Waiter {
  VertexState() : Waiter(false) {}

  std::string state_key;  // the digest, or a variant of it for no-cache vertices and dependents
  std::shared_ptr<const Vertex> vertex;
  bool ignore_cache = false;
  std::vector<InputRef> inputs;
  std::vector<JobState*> jobs;  // in the order they loaded the vertex
  OpResolver resolver;
  std::unique_ptr<Op> op;
  std::optional<CacheMap> cache_map;
  std::map<int, OutputSlot> outputs;

  // Who waits for this vertex, and for which outputs.
  std::map<Waiter*, std::set<int>> key_waiters;
  std::map<Waiter*, std::set<int>> result_waiters;
  // This vertex's own demands on its inputs.
  bool demands_input_keys = false;
  bool demands_input_results = false;

  // Progress of the current attempt; reset when the vertex is deactivated.
  absl::Status error;
  bool fast_load_tried = false;
  bool slow_done = false;
  std::vector<std::optional<std::string>> content_keys;  // per input: ContentKey or none
  std::vector<bool> content_done;

  // Tasks in flight (they outlive a deactivation: their completion is still posted).
  bool cache_map_running = false;
  bool load_running = false;
  bool content_running = false;
  bool exec_queued = false;
  bool exec_running = false;
  int inflight = 0;
  std::unique_ptr<CancelSource> work_cancel;
  bool orphaned = false;  // no job holds it any more: delete when `inflight` drops to 0

  VertexStatus status;  // progress snapshot
};

struct BuildRequest : Waiter {
  BuildRequest() : Waiter(true) {}

  JobState* job = nullptr;
  Edge edge;
  VertexState* target = nullptr;
  std::set<VertexState*> closure;
  std::set<VertexState*> executed;
  std::set<VertexState*> cached;
  bool finishing = false;

  // Shared with the Build() caller.
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool cancel_requested = false;
  bool cancel_posted = false;
  absl::Status status;
  ResultRef result;
  BuildStats stats;
};

class Scheduler {
 public:
  Scheduler(std::shared_ptr<CacheStorage> storage, std::shared_ptr<ResultLoader> loader,
            SolverOptions options);
  ~Scheduler();

  JobState* NewJob(JobOptions options);
  void DiscardJob(JobState* job);
  absl::StatusOr<ResultRef> Build(JobState* job, const Edge& target, const CancelToken& cancel,
                                  BuildStats* stats);

 private:
  enum Demand { kKeys = 1, kResults = 2, kBoth = 3 };

  // Scheduler-thread plumbing.
  void Post(std::function<void()> fn);
  void RunSync(const std::function<void()>& fn);
  void Loop();
  void Wake(Waiter* w);
  void DrainWakes();
  void ForgetWaiter(Waiter* w);

  // Graph loading and requests.
  absl::StatusOr<VertexState*> LoadGraph(JobState* job, const std::shared_ptr<const Vertex>& root,
                                         std::set<VertexState*>* closure);
  VertexState* GetOrCreateState(JobState* job, const std::shared_ptr<const Vertex>& v,
                                bool ignore_cache, std::vector<InputRef> inputs);
  void StartRequest(const std::shared_ptr<BuildRequest>& req);
  void CheckRequest(BuildRequest* req);
  void FinishRequest(BuildRequest* req, absl::Status status, ResultRef result);
  void CheckDraining();
  void DeleteState(VertexState* v);

  // Demand.
  static bool Active(const VertexState* v);
  void AddWaiter(VertexState* v, Waiter* w, int output, Demand d);
  void RemoveWaiter(VertexState* v, Waiter* w, Demand d);
  void WithdrawInputs(VertexState* v, Demand d);
  void Deactivate(VertexState* v);
  void WakeWaiters(VertexState* v, Demand d);

  // The state machine.
  void Pump(VertexState* v);
  bool InputsFailed(VertexState* v);
  bool EnsureFastKeys(VertexState* v);
  void ComputeFastKeys(VertexState* v, int output);
  std::set<int> MissingOutputs(const VertexState* v) const;
  bool LookupAllowed(const VertexState* v) const;
  bool SlowPhase(VertexState* v, const std::set<int>& missing);
  bool DemandInputResults(VertexState* v, const std::vector<size_t>& which);
  bool EnsureContentKeys(VertexState* v, const std::vector<size_t>& which);
  InputKeySets InputKeys(const VertexState* v, bool with_content) const;
  bool StartLoad(VertexState* v, const std::set<int>& missing, bool slow);
  void EnqueueExec(VertexState* v);
  void DispatchExec();
  absl::Status SaveOutputs(VertexState* v, const std::vector<ResultRef>& outputs);
  void Fail(VertexState* v, absl::Status status);

  // Tasks and their completions.
  CancelToken WorkToken(VertexState* v);
  OpContext MakeContext(const VertexState* v, const CancelToken& token) const;
  void StartCacheMap(VertexState* v);
  void StartContent(VertexState* v, const std::vector<size_t>& which);
  void StartExec(VertexState* v);
  void TaskDone(VertexState* v);

  // Progress.
  void EmitVertex(VertexState* v);
  void MarkFinalReported(VertexState* v);
  void EmitTo(JobState* job, const VertexStatus& status);

  std::shared_ptr<CacheStorage> storage_;
  std::shared_ptr<ResultLoader> loader_;
  size_t exec_limit_;

  // Only the scheduler thread touches what follows (until the thread is joined).
  std::unordered_map<std::string, std::unique_ptr<VertexState>> states_;
  std::map<JobState*, std::unique_ptr<JobState>> jobs_;
  uint64_t next_job_seq_ = 1;
  std::set<std::shared_ptr<BuildRequest>> requests_;
  std::set<BuildRequest*> draining_;
  std::deque<Waiter*> wakes_;
  std::deque<VertexState*> exec_queue_;
  size_t execs_running_ = 0;
  std::vector<VertexState*> pending_deactivate_;
  bool deactivating_ = false;
  bool shutting_down_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;

  std::unique_ptr<ThreadPool> cache_pool_;
  std::unique_ptr<ThreadPool> exec_pool_;
  std::thread thread_;
};

}  // namespace kiln::engine::internal
