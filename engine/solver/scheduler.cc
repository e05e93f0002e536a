#include "engine/solver/scheduler.h"

#include <algorithm>
#include <future>
#include <numeric>
#include <utility>

#include "absl/strings/cord.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine::internal {

// Outcomes of pool tasks, handed back to the scheduler thread.
struct CacheMapOutcome {
  std::unique_ptr<Op> op;
  absl::StatusOr<CacheMap> cache_map = absl::UnknownError("not run");
};

struct LoadOutcome {
  std::set<int> wanted;
  std::map<int, std::pair<ResultRef, std::string>> loaded;  // output -> result, key
  std::vector<std::string> gone;                            // result IDs the worker lost
};

struct ContentOutcome {
  std::vector<std::pair<size_t, Digest>> digests;
  absl::Status status;
  size_t failed_input = 0;
};

namespace {

constexpr char kNoCacheMarker[] = "#no-cache";

std::string DisplayName(const VertexState* v) {
  return v->vertex->name.empty() ? v->vertex->digest.str() : v->vertex->name;
}

// "<doing> `<vertex name>`: <cause>", carrying the vertex digest for the API layer.
absl::Status VertexError(const VertexState* v, const absl::Status& cause, std::string_view doing) {
  absl::Status out = Annotate(cause, StrCat(doing, " ", Quote(DisplayName(v))));
  if (!out.GetPayload(kVertexErrorPayload)) {
    out.SetPayload(kVertexErrorPayload, absl::Cord(ToAbsl(v->vertex->digest.str())));
  }
  return out;
}

bool HasContentFunc(const CacheMap& cm, size_t input) {
  return input < cm.deps.size() && static_cast<bool>(cm.deps[input].content);
}

std::string SelectorOf(const CacheMap& cm, size_t input) {
  if (input >= cm.deps.size() || !cm.deps[input].selector.valid()) return "";
  return cm.deps[input].selector.str();
}

absl::Status ValidateVertex(const Vertex& v) {
  if (!v.digest.valid()) {
    return absl::InvalidArgumentError(
        StrCat("load build graph: vertex ", Quote(v.name), " has no digest"));
  }
  for (const Edge& in : v.inputs) {
    if (!in.vertex) {
      return absl::InvalidArgumentError(
          StrCat("load build graph: vertex ", Quote(v.name), " has an input without a vertex"));
    }
    if (in.index < 0) {
      return absl::InvalidArgumentError(StrCat("load build graph: vertex ", Quote(v.name),
                                               " uses negative output index ", in.index, " of ",
                                               Quote(in.vertex->name)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction, plumbing

Scheduler::Scheduler(std::shared_ptr<CacheStorage> storage, std::shared_ptr<ResultLoader> loader,
                     SolverOptions options)
    : storage_(std::move(storage)), loader_(std::move(loader)) {
  exec_limit_ = options.max_parallel_exec;
  if (exec_limit_ == 0) exec_limit_ = std::max(1u, std::thread::hardware_concurrency());
  cache_pool_ = std::make_unique<ThreadPool>(std::max<size_t>(1, options.cache_threads));
  exec_pool_ = std::make_unique<ThreadPool>(exec_limit_);
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() {
  RunSync([this] {
    shutting_down_ = true;
    for (auto& [key, v] : states_) {
      if (v->work_cancel) v->work_cancel->Cancel("solver is shutting down");
      v->exec_queued = false;
    }
    exec_queue_.clear();
  });
  // Joining the pools lets every running task return; their completions land in the queue, which
  // the loop drains before it exits.
  cache_pool_.reset();
  exec_pool_.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  requests_.clear();
  states_.clear();
  jobs_.clear();
}

void Scheduler::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

void Scheduler::RunSync(const std::function<void()>& fn) {
  std::promise<void> done;
  std::future<void> finished = done.get_future();
  Post([&] {
    fn();
    DrainWakes();
    done.set_value();
  });
  finished.wait();
}

void Scheduler::Loop() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
    DrainWakes();
  }
}

void Scheduler::Wake(Waiter* w) {
  if (w->wake_queued) return;
  w->wake_queued = true;
  wakes_.push_back(w);
}

void Scheduler::DrainWakes() {
  while (!wakes_.empty()) {
    Waiter* w = wakes_.front();
    wakes_.pop_front();
    w->wake_queued = false;
    if (w->is_request) {
      CheckRequest(static_cast<BuildRequest*>(w));
    } else {
      Pump(static_cast<VertexState*>(w));
    }
  }
}

void Scheduler::ForgetWaiter(Waiter* w) {
  if (!w->wake_queued) return;
  std::erase(wakes_, w);
  w->wake_queued = false;
}

// ---------------------------------------------------------------------------------------------
// Jobs and build requests

JobState* Scheduler::NewJob(JobOptions options) {
  auto job = std::make_unique<JobState>();
  job->id = std::move(options.id);
  job->resolver = std::move(options.resolver);
  job->sink = std::move(options.progress);
  job->values = std::make_shared<const SessionGroup::Values>(std::move(options.values));
  job->ignore_cache = options.ignore_cache;
  JobState* raw = job.get();
  RunSync([&] {
    raw->seq = next_job_seq_++;
    jobs_[raw] = std::move(job);
  });
  return raw;
}

void Scheduler::DiscardJob(JobState* job) {
  RunSync([&] {
    auto it = jobs_.find(job);
    if (it == jobs_.end()) return;
    for (VertexState* v : job->vertices) {
      std::erase(v->jobs, job);
      if (v->jobs.empty()) DeleteState(v);
    }
    jobs_.erase(it);
  });
}

void Scheduler::DeleteState(VertexState* v) {
  if (v->inflight > 0 || Active(v)) {
    v->orphaned = true;  // deleted by TaskDone once its tasks have returned
    return;
  }
  ForgetWaiter(v);
  if (v->exec_queued) std::erase(exec_queue_, v);
  states_.erase(v->state_key);
}

absl::StatusOr<ResultRef> Scheduler::Build(JobState* job, const Edge& target,
                                           const CancelToken& cancel, BuildStats* stats) {
  if (!target.vertex) return absl::InvalidArgumentError("build: the target edge has no vertex");
  auto req = std::make_shared<BuildRequest>();
  req->job = job;
  req->edge = target;
  std::weak_ptr<BuildRequest> weak = req;
  // The callback only flags the request: this thread, which is alive until the request is done,
  // forwards the cancellation to the scheduler.
  CancelRegistration registration = cancel.OnCancel([weak] {
    if (auto r = weak.lock()) {
      {
        std::lock_guard<std::mutex> lock(r->mu);
        r->cancel_requested = true;
      }
      r->cv.notify_all();
    }
  });
  Post([this, req] { StartRequest(req); });

  std::unique_lock<std::mutex> lock(req->mu);
  while (!req->done) {
    if (req->cancel_requested && !req->cancel_posted) {
      req->cancel_posted = true;
      lock.unlock();
      std::string reason(cancel.Check().message());
      Post([this, req, reason] {
        FinishRequest(req.get(),
                      absl::CancelledError(
                          StrCat("build of job ", Quote(req->job->id), " cancelled: ", reason)),
                      nullptr);
      });
      lock.lock();
      continue;
    }
    req->cv.wait(lock);
  }
  if (stats) *stats = req->stats;
  if (!req->status.ok()) return req->status;
  return req->result;
}

void Scheduler::StartRequest(const std::shared_ptr<BuildRequest>& req) {
  requests_.insert(req);
  if (shutting_down_) {
    FinishRequest(req.get(), absl::CancelledError("build: the solver is shutting down"), nullptr);
    return;
  }
  absl::StatusOr<VertexState*> target = LoadGraph(req->job, req->edge.vertex, &req->closure);
  if (!target.ok()) {
    FinishRequest(req.get(), target.status(), nullptr);
    return;
  }
  req->target = *target;
  for (VertexState* v : req->closure) {
    if (v->exec_running) req->executed.insert(v);
  }
  AddWaiter(req->target, req.get(), req->edge.index, kResults);
}

absl::StatusOr<VertexState*> Scheduler::LoadGraph(JobState* job,
                                                  const std::shared_ptr<const Vertex>& root,
                                                  std::set<VertexState*>* closure) {
  // Iterative post-order walk: graphs can be deep.  `open` holds the vertices whose inputs are
  // being loaded; meeting one again means the graph has a cycle.
  struct Frame {
    std::shared_ptr<const Vertex> vertex;
    bool expanded;
  };
  std::unordered_map<const Vertex*, VertexState*> loaded;
  std::set<const Vertex*> open;
  std::vector<Frame> stack{{root, false}};
  while (!stack.empty()) {
    const Vertex* raw = stack.back().vertex.get();
    if (loaded.contains(raw)) {
      stack.pop_back();
      continue;
    }
    if (!stack.back().expanded) {
      if (open.contains(raw)) {
        return absl::InvalidArgumentError(
            StrCat("load build graph: vertex ", Quote(raw->name), " depends on itself"));
      }
      KILN_RETURN_IF_ERROR(ValidateVertex(*raw));
      stack.back().expanded = true;
      open.insert(raw);
      std::shared_ptr<const Vertex> keep = stack.back().vertex;
      for (auto it = keep->inputs.rbegin(); it != keep->inputs.rend(); ++it) {
        if (!loaded.contains(it->vertex.get())) stack.push_back({it->vertex, false});
      }
      continue;
    }
    std::shared_ptr<const Vertex> v = std::move(stack.back().vertex);
    stack.pop_back();
    open.erase(raw);
    std::vector<InputRef> inputs;
    for (const Edge& in : v->inputs) inputs.push_back({loaded.at(in.vertex.get()), in.index});
    VertexState* st =
        GetOrCreateState(job, v, job->ignore_cache || v->options.ignore_cache, std::move(inputs));
    loaded[raw] = st;
    closure->insert(st);
    st->orphaned = false;
    if (job->vertices.insert(st).second) {
      st->jobs.push_back(job);
      EmitTo(job, st->status);
    }
  }
  return loaded.at(root.get());
}

VertexState* Scheduler::GetOrCreateState(JobState* job, const std::shared_ptr<const Vertex>& v,
                                         bool ignore_cache, std::vector<InputRef> inputs) {
  // Vertices are shared by digest, except that a no-cache vertex, and everything built on one,
  // is its own state: sharing it with a cached twin another job loaded would skip the re-run.
  std::string key = v->digest.str();
  bool plain = !ignore_cache;
  for (const InputRef& in : inputs) {
    plain = plain && in.state->state_key == in.state->vertex->digest.str();
  }
  if (!plain) {
    std::string variant = ignore_cache ? "no-cache" : "";
    for (const InputRef& in : inputs) StrAppend(&variant, "\n", in.state->state_key);
    StrAppend(&key, kNoCacheMarker, Digest::Sha256Of(variant).hex().substr(0, 16));
  }
  auto it = states_.find(key);
  if (it != states_.end()) return it->second.get();
  auto st = std::make_unique<VertexState>();
  st->state_key = key;
  st->vertex = v;
  st->ignore_cache = ignore_cache;
  st->inputs = std::move(inputs);
  st->resolver = job->resolver;
  st->status.digest = v->digest;
  st->status.name = v->name;
  st->status.progress_group = v->options.progress_group;
  for (const Edge& in : v->inputs) st->status.inputs.push_back(in.vertex->digest);
  VertexState* raw = st.get();
  states_[key] = std::move(st);
  return raw;
}

void Scheduler::CheckRequest(BuildRequest* req) {
  if (req->finishing || !req->target) return;
  VertexState* t = req->target;
  if (!t->error.ok()) {
    FinishRequest(req, t->error, nullptr);
    return;
  }
  auto it = t->outputs.find(req->edge.index);
  if (it != t->outputs.end() && it->second.result) {
    FinishRequest(req, absl::OkStatus(), it->second.result);
  }
}

void Scheduler::FinishRequest(BuildRequest* req, absl::Status status, ResultRef result) {
  if (req->finishing) return;
  req->finishing = true;
  req->status = std::move(status);
  req->result = std::move(result);
  req->stats.total = static_cast<int>(req->closure.size());
  req->stats.executed = static_cast<int>(req->executed.size());
  if (req->status.ok()) {
    req->stats.target_cache_keys = req->target->outputs[req->edge.index].final_keys;
    // Everything this build did not run is cached: loaded, reused, or made unnecessary by a cached
    // dependent (BuildKit reports those as CACHED too).
    req->stats.cached = req->stats.total - req->stats.executed;
    const auto now = Clock::now();
    for (VertexState* v : req->closure) {
      if (req->executed.contains(v) || req->job->reported_final.contains(v)) continue;
      VertexStatus s = v->status;
      s.cached = true;
      if (!s.started) s.started = now;
      s.completed = now;
      s.error.clear();
      EmitTo(req->job, s);
      req->job->reported_final.insert(v);
    }
  } else {
    req->stats.cached = static_cast<int>(req->cached.size());
  }
  ForgetWaiter(req);
  if (req->target) RemoveWaiter(req->target, req, kBoth);
  draining_.insert(req);
  CheckDraining();
}

void Scheduler::CheckDraining() {
  for (auto it = draining_.begin(); it != draining_.end();) {
    BuildRequest* req = *it;
    // Done once every step it stopped has returned; steps other builds still need are theirs.
    bool quiet = std::all_of(req->closure.begin(), req->closure.end(),
                             [](const VertexState* v) { return Active(v) || v->inflight == 0; });
    if (!quiet) {
      ++it;
      continue;
    }
    it = draining_.erase(it);
    std::shared_ptr<BuildRequest> keep;
    for (const auto& r : requests_) {
      if (r.get() == req) keep = r;
    }
    requests_.erase(keep);
    {
      std::lock_guard<std::mutex> lock(req->mu);
      req->done = true;
    }
    req->cv.notify_all();
  }
}

// ---------------------------------------------------------------------------------------------
// Demand

bool Scheduler::Active(const VertexState* v) {
  return !v->key_waiters.empty() || !v->result_waiters.empty();
}

void Scheduler::AddWaiter(VertexState* v, Waiter* w, int output, Demand d) {
  bool added = false;
  if (d & kKeys) added |= v->key_waiters[w].insert(output).second;
  if (d & kResults) added |= v->result_waiters[w].insert(output).second;
  v->outputs.try_emplace(output);
  if (added) Wake(v);
}

void Scheduler::RemoveWaiter(VertexState* v, Waiter* w, Demand d) {
  if (d & kKeys) v->key_waiters.erase(w);
  if (d & kResults) v->result_waiters.erase(w);
  if (!Active(v)) pending_deactivate_.push_back(v);
  if (deactivating_) return;
  // Deactivation withdraws the vertex's own demands, which can deactivate its inputs: a worklist
  // instead of recursion, as graphs can be deep.
  deactivating_ = true;
  while (!pending_deactivate_.empty()) {
    VertexState* p = pending_deactivate_.back();
    pending_deactivate_.pop_back();
    if (!Active(p)) Deactivate(p);
  }
  deactivating_ = false;
}

void Scheduler::WithdrawInputs(VertexState* v, Demand d) {
  std::set<VertexState*> inputs;
  for (const InputRef& in : v->inputs) inputs.insert(in.state);
  if ((d & kKeys) && v->demands_input_keys) {
    v->demands_input_keys = false;
    for (VertexState* in : inputs) RemoveWaiter(in, v, kKeys);
  }
  if ((d & kResults) && v->demands_input_results) {
    v->demands_input_results = false;
    for (VertexState* in : inputs) RemoveWaiter(in, v, kResults);
  }
}

void Scheduler::Deactivate(VertexState* v) {
  if (v->work_cancel) {
    v->work_cancel->Cancel("no build needs this step any more");
    v->work_cancel.reset();
  }
  if (v->exec_queued) {
    std::erase(exec_queue_, v);
    v->exec_queued = false;
  }
  v->error = absl::OkStatus();
  v->fast_load_tried = false;
  v->slow_done = false;
  WithdrawInputs(v, kBoth);
}

void Scheduler::WakeWaiters(VertexState* v, Demand d) {
  if (d & kKeys) {
    for (const auto& [w, outs] : v->key_waiters) Wake(w);
  }
  if (d & kResults) {
    for (const auto& [w, outs] : v->result_waiters) Wake(w);
  }
}

void Scheduler::Fail(VertexState* v, absl::Status status) {
  v->error = std::move(status);
  WithdrawInputs(v, kBoth);
  WakeWaiters(v, kBoth);
}

// ---------------------------------------------------------------------------------------------
// The state machine

// Moves `v` one step towards what its waiters want.  In order:
//   1. the op and its CacheMap;
//   2. definition keys of the wanted outputs (needs the inputs' keys, not their results);
//   3. done if every wanted output has a result;
//   4. load a result recorded under a definition key ("cache-fast");
//   5. compute better keys from the inputs that need evaluating (their final keys, content keys)
//      and load a result recorded under those ("cache-slow");
//   6. evaluate all inputs and queue Exec.
// Each step that must wait starts the work (a task, or demand on inputs) and returns; whatever
// completes wakes the vertex again.
void Scheduler::Pump(VertexState* v) {
  if (shutting_down_ || !Active(v)) return;
  if (!v->error.ok()) {
    WakeWaiters(v, kBoth);
    return;
  }
  if (InputsFailed(v)) return;
  if (!v->cache_map) {
    if (!v->cache_map_running) StartCacheMap(v);
    return;
  }
  if (!EnsureFastKeys(v)) return;
  std::set<int> missing = MissingOutputs(v);
  if (missing.empty()) {
    WithdrawInputs(v, kResults);
    WakeWaiters(v, kResults);
    return;
  }
  if (v->load_running || v->content_running || v->exec_queued || v->exec_running) return;
  const bool lookup = LookupAllowed(v);
  if (lookup && !v->fast_load_tried) {
    v->fast_load_tried = true;
    if (StartLoad(v, missing, /*slow=*/false)) return;
  }
  if (lookup && !v->slow_done && !SlowPhase(v, missing)) return;
  std::vector<size_t> all(v->inputs.size());
  std::iota(all.begin(), all.end(), 0);
  if (!DemandInputResults(v, all)) return;
  if (!v->cache_map->uncacheable && !EnsureContentKeys(v, all)) return;
  EnqueueExec(v);
}

bool Scheduler::InputsFailed(VertexState* v) {
  if (!v->demands_input_keys && !v->demands_input_results) return false;
  for (const InputRef& in : v->inputs) {
    const VertexState* s = in.state;
    if (s->error.ok()) continue;
    if (s->key_waiters.contains(v) || s->result_waiters.contains(v)) {
      Fail(v, s->error);  // the failing vertex's own error, unchanged: it names that vertex
      return true;
    }
  }
  return false;
}

bool Scheduler::LookupAllowed(const VertexState* v) const {
  return !v->ignore_cache && !v->cache_map->uncacheable;
}

std::set<int> Scheduler::MissingOutputs(const VertexState* v) const {
  std::set<int> missing;
  for (const auto& [w, outs] : v->result_waiters) {
    for (int o : outs) {
      auto it = v->outputs.find(o);
      if (it == v->outputs.end() || !it->second.result) missing.insert(o);
    }
  }
  return missing;
}

bool Scheduler::EnsureFastKeys(VertexState* v) {
  std::set<int> need;
  for (const auto& [w, outs] : v->key_waiters) need.insert(outs.begin(), outs.end());
  if (LookupAllowed(v)) {
    for (int o : MissingOutputs(v)) need.insert(o);
  }
  std::vector<int> todo;
  for (int o : need) {
    if (!v->outputs[o].keys_ready) todo.push_back(o);
  }
  if (todo.empty()) return true;
  // A no-cache or uncacheable vertex offers no definition keys: dependents must wait for its
  // result (BuildKit does the same), so they never skip it through the cache.
  const bool offers_keys = LookupAllowed(v);
  if (offers_keys && !v->inputs.empty()) {
    bool ready = true;
    for (const InputRef& in : v->inputs) {
      if (!in.state->outputs[in.index].keys_ready) {
        AddWaiter(in.state, v, in.index, kKeys);
        v->demands_input_keys = true;
        ready = false;
      }
    }
    if (!ready) return false;
  }
  for (int o : todo) {
    OutputSlot& slot = v->outputs[o];
    slot.keys_ready = true;
    if (offers_keys) ComputeFastKeys(v, o);
    if (!v->error.ok()) return false;
  }
  WithdrawInputs(v, kKeys);
  WakeWaiters(v, kKeys);
  return true;
}

void Scheduler::ComputeFastKeys(VertexState* v, int output) {
  OutputSlot& slot = v->outputs[output];
  const CacheMap& cm = *v->cache_map;
  if (v->inputs.empty()) {
    std::vector<Digest> digests{cm.digest};
    digests.insert(digests.end(), cm.alt_digests.begin(), cm.alt_digests.end());
    for (const Digest& d : digests) {
      std::string key = RootKey(d, output);
      absl::StatusOr<bool> exists = storage_->Exists(key);
      if (!exists.ok()) {
        Fail(v, VertexError(v, exists.status(), "look up cache of"));
        return;
      }
      slot.fast_stored |= *exists;
      slot.fast_keys.push_back(std::move(key));
    }
    return;
  }
  InputKeySets sets = InputKeys(v, /*with_content=*/false);
  for (const auto& s : sets) {
    if (s.empty()) return;  // an input without keys: only its result can tell
  }
  absl::StatusOr<std::vector<std::string>> matches =
      QueryCacheKeys(*storage_, cm.digest, output, sets);
  if (!matches.ok()) {
    Fail(v, VertexError(v, matches.status(), "look up cache of"));
    return;
  }
  if (!matches->empty()) {
    slot.fast_keys = std::move(*matches);
    slot.fast_stored = true;
  } else {
    slot.fast_keys = {ComputedKey(cm.digest, output, sets)};
  }
}

InputKeySets Scheduler::InputKeys(const VertexState* v, bool with_content) const {
  const CacheMap& cm = *v->cache_map;
  InputKeySets sets(v->inputs.size());
  for (size_t i = 0; i < v->inputs.size(); ++i) {
    const InputRef& in = v->inputs[i];
    std::set<std::string> keys;
    auto it = in.state->outputs.find(in.index);
    if (it != in.state->outputs.end()) {
      const OutputSlot& s = it->second;
      // A computed (never stored) definition key is only worth using until the input has a
      // result; then the keys the result is recorded under replace it.
      if (!s.result || s.fast_stored) keys.insert(s.fast_keys.begin(), s.fast_keys.end());
      if (s.result) keys.insert(s.final_keys.begin(), s.final_keys.end());
    }
    const std::string selector = SelectorOf(cm, i);
    for (const std::string& k : keys) sets[i].push_back({k, selector});
    if (with_content && i < v->content_keys.size() && v->content_keys[i]) {
      sets[i].push_back({*v->content_keys[i], ""});
    }
  }
  return sets;
}

bool Scheduler::SlowPhase(VertexState* v, const std::set<int>& missing) {
  const CacheMap& cm = *v->cache_map;
  // Only inputs that can improve the keys are evaluated: those the cache does not know by
  // definition, and those the op reads content from.  An input matched by definition is left
  // alone (an image need not be pulled to find its dependent cached).
  std::vector<size_t> need;
  for (size_t i = 0; i < v->inputs.size(); ++i) {
    const OutputSlot& s = v->inputs[i].state->outputs[v->inputs[i].index];
    if (HasContentFunc(cm, i) || !s.fast_stored) need.push_back(i);
  }
  if (need.empty()) {
    v->slow_done = true;
    return true;
  }
  if (!DemandInputResults(v, need)) return false;
  if (!EnsureContentKeys(v, need)) return false;
  v->slow_done = true;
  InputKeySets sets = InputKeys(v, /*with_content=*/true);
  for (const auto& s : sets) {
    if (s.empty()) return true;
  }
  CacheUpdate connect;
  for (int o : missing) {
    absl::StatusOr<std::vector<std::string>> matches =
        QueryCacheKeys(*storage_, cm.digest, o, sets);
    if (!matches.ok()) {
      Fail(v, VertexError(v, matches.status(), "look up cache of"));
      return false;
    }
    v->outputs[o].slow_keys = *matches;
    // Link the inputs' other keys (their definition keys) to the match, so the next build finds it
    // without evaluating the inputs.
    for (const std::string& to : *matches) {
      for (auto& l : LinksTo(cm.digest, o, sets, to)) connect.links.push_back(std::move(l));
    }
  }
  if (!connect.empty()) {
    absl::Status st = storage_->Commit(connect);
    if (!st.ok()) {
      Fail(v, VertexError(v, st, "record cache links of"));
      return false;
    }
  }
  return !StartLoad(v, missing, /*slow=*/true);
}

bool Scheduler::DemandInputResults(VertexState* v, const std::vector<size_t>& which) {
  bool ready = true;
  for (size_t i : which) {
    const InputRef& in = v->inputs[i];
    if (in.state->outputs[in.index].result) continue;
    AddWaiter(in.state, v, in.index, kResults);
    v->demands_input_results = true;
    ready = false;
  }
  return ready;
}

bool Scheduler::EnsureContentKeys(VertexState* v, const std::vector<size_t>& which) {
  v->content_keys.resize(v->inputs.size());
  v->content_done.resize(v->inputs.size(), false);
  std::vector<size_t> todo;
  for (size_t i : which) {
    if (HasContentFunc(*v->cache_map, i) && !v->content_done[i]) todo.push_back(i);
  }
  if (todo.empty()) return true;
  if (!v->content_running) StartContent(v, todo);
  return false;
}

bool Scheduler::StartLoad(VertexState* v, const std::set<int>& missing, bool slow) {
  struct Candidate {
    std::string key;
    CacheResultRecord record;
  };
  std::map<int, std::vector<Candidate>> plan;
  for (int o : missing) {
    const OutputSlot& s = v->outputs[o];
    std::vector<std::string> keys;
    if (slow) {
      keys = s.slow_keys;
    } else if (s.fast_stored) {
      keys = s.fast_keys;
    }
    std::vector<Candidate> candidates;
    std::set<std::string> seen;
    for (const std::string& k : keys) {
      absl::Status st = storage_->WalkResults(k, [&](const CacheResultRecord& r) {
        if (seen.insert(r.id).second) candidates.push_back({k, r});
        return absl::OkStatus();
      });
      if (!st.ok()) {
        Fail(v, VertexError(v, st, "look up cache of"));
        return true;
      }
    }
    // Every wanted output must load, or the op runs anyway and produces them all.
    if (candidates.empty()) return false;
    std::stable_sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
      return a.record.created > b.record.created;
    });
    plan[o] = std::move(candidates);
  }
  v->load_running = true;
  ++v->inflight;
  CancelToken token = WorkToken(v);
  std::shared_ptr<ResultLoader> loader = loader_;
  cache_pool_->Submit([this, v, plan = std::move(plan), token, loader, slow] {
    auto out = std::make_shared<LoadOutcome>();
    for (const auto& [o, candidates] : plan) out->wanted.insert(o);
    for (const auto& [o, candidates] : plan) {
      for (const Candidate& c : candidates) {
        if (token.cancelled()) break;
        absl::StatusOr<ResultRef> r = loader->Load(c.record.id, token);
        if (r.ok() && *r) {
          out->loaded[o] = {std::move(*r), c.key};
          break;
        }
        if (absl::IsNotFound(r.status())) out->gone.push_back(c.record.id);
      }
      if (!out->loaded.contains(o)) break;
    }
    Post([this, v, out = std::move(out), token, slow]() mutable {
      v->load_running = false;
      for (const std::string& id : out->gone) {
        storage_->Release(id).IgnoreError();  // the worker lost it: forget the record
      }
      bool complete = !token.cancelled() && out->loaded.size() == out->wanted.size();
      if (complete) {
        for (auto& [o, loaded] : out->loaded) {
          OutputSlot& s = v->outputs[o];
          if (s.result) continue;
          s.result = std::move(loaded.first);
          std::set<std::string> keys{loaded.second};
          const auto& matched = slow ? s.slow_keys : s.fast_keys;
          keys.insert(matched.begin(), matched.end());
          s.final_keys.assign(keys.begin(), keys.end());
        }
        const auto now = Clock::now();
        if (!v->status.started || v->status.completed) v->status.started = now;
        v->status.completed = now;
        v->status.cached = true;
        v->status.error.clear();
        EmitVertex(v);
        MarkFinalReported(v);
        for (const auto& r : requests_) {
          if (!r->finishing && r->closure.contains(v)) r->cached.insert(v);
        }
      }
      out.reset();  // unused loads are released here, not later on some other thread
      TaskDone(v);
    });
  });
  return true;
}

void Scheduler::EnqueueExec(VertexState* v) {
  v->exec_queued = true;
  exec_queue_.push_back(v);
  DispatchExec();
}

void Scheduler::DispatchExec() {
  if (shutting_down_) return;
  while (execs_running_ < exec_limit_ && !exec_queue_.empty()) {
    VertexState* v = exec_queue_.front();
    exec_queue_.pop_front();
    v->exec_queued = false;
    if (!Active(v) || !v->error.ok() || MissingOutputs(v).empty()) {
      Wake(v);
      continue;
    }
    StartExec(v);
  }
}

absl::Status Scheduler::SaveOutputs(VertexState* v, const std::vector<ResultRef>& outputs) {
  const CacheMap& cm = *v->cache_map;
  if (cm.uncacheable) return absl::OkStatus();
  CacheUpdate update;
  const auto now = Clock::now();
  InputKeySets sets;
  if (!v->inputs.empty()) {
    sets = InputKeys(v, /*with_content=*/true);
    for (const auto& s : sets) {
      if (s.empty()) return absl::OkStatus();  // unreachable by any key: nothing to record
    }
  }
  for (size_t o = 0; o < outputs.size(); ++o) {
    const int out = static_cast<int>(o);
    std::vector<std::string> keys;
    if (v->inputs.empty()) {
      keys.push_back(RootKey(cm.digest, out));
      for (const Digest& d : cm.alt_digests) keys.push_back(RootKey(d, out));
    } else {
      // Reuse the key this output is already known by, so dependents' links keep matching.
      KILN_ASSIGN_OR_RETURN(std::vector<std::string> matches,
                            QueryCacheKeys(*storage_, cm.digest, out, sets));
      keys.push_back(matches.empty() ? ComputedKey(cm.digest, out, sets) : matches.front());
      for (auto& l : LinksTo(cm.digest, out, sets, keys.front())) {
        update.links.push_back(std::move(l));
      }
    }
    const std::string id = outputs[o]->ID();
    if (!id.empty()) {
      for (const std::string& k : keys) update.results.push_back({k, {id, now}});
    }
    OutputSlot& slot = v->outputs[out];
    if (slot.result == outputs[o]) slot.final_keys = keys;
  }
  return storage_->Commit(update);
}

// ---------------------------------------------------------------------------------------------
// Tasks

CancelToken Scheduler::WorkToken(VertexState* v) {
  if (!v->work_cancel) v->work_cancel = std::make_unique<CancelSource>();
  return v->work_cancel->token();
}

OpContext Scheduler::MakeContext(const VertexState* v, const CancelToken& token) const {
  auto target = std::make_shared<VertexProgress::Target>();
  target->vertex = v->vertex->digest;
  std::vector<std::shared_ptr<const SessionGroup::Values>> values;
  for (const JobState* job : v->jobs) {
    if (job->sink) target->sinks.push_back(job->sink);
    values.push_back(job->values);
  }
  return OpContext{token, VertexProgress(std::move(target)), SessionGroup(std::move(values))};
}

void Scheduler::StartCacheMap(VertexState* v) {
  v->cache_map_running = true;
  ++v->inflight;
  CancelToken token = WorkToken(v);
  OpContext ctx = MakeContext(v, token);
  Op* op = v->op.get();
  cache_pool_->Submit([this, v, op, resolver = v->resolver, vertex = v->vertex, ctx, token] {
    auto out = std::make_shared<CacheMapOutcome>();
    Op* use = op;
    if (!use) {
      absl::StatusOr<std::unique_ptr<Op>> resolved =
          resolver ? resolver(*vertex, ctx)
                   : absl::FailedPreconditionError("the job has no op resolver");
      if (!resolved.ok()) {
        out->cache_map = Annotate(resolved.status(), "resolve op");
      } else if (!*resolved) {
        out->cache_map = absl::InternalError("resolve op: the resolver returned no op");
      } else {
        out->op = std::move(*resolved);
        use = out->op.get();
      }
    }
    if (use) out->cache_map = use->GetCacheMap(ctx);
    Post([this, v, out = std::move(out), token] {
      v->cache_map_running = false;
      if (out->op && !v->op) v->op = std::move(out->op);
      absl::Status st = out->cache_map.status();
      if (st.ok()) {
        CacheMap& cm = *out->cache_map;
        if (!cm.uncacheable && !cm.digest.valid()) {
          st = absl::InternalError("the op returned no cache digest");
        } else if (cm.deps.size() > v->inputs.size()) {
          st = absl::InternalError(StrCat("the op describes ", cm.deps.size(),
                                          " inputs but the vertex has ", v->inputs.size()));
        } else {
          cm.deps.resize(v->inputs.size());
          v->cache_map = std::move(cm);
        }
      } else if (token.cancelled()) {
        st = absl::OkStatus();  // stopped on purpose; retried if wanted again
      }
      if (!st.ok() && Active(v)) {
        absl::Status err = VertexError(v, st, "compute cache key of");
        const auto now = Clock::now();
        if (!v->status.started) v->status.started = now;
        v->status.completed = now;
        v->status.error = std::string(st.message());
        EmitVertex(v);
        MarkFinalReported(v);
        Fail(v, err);
      }
      TaskDone(v);
    });
  });
}

void Scheduler::StartContent(VertexState* v, const std::vector<size_t>& which) {
  v->content_running = true;
  ++v->inflight;
  CancelToken token = WorkToken(v);
  OpContext ctx = MakeContext(v, token);
  struct Work {
    size_t input;
    ContentDigestFunc fn;
    ResultRef result;
  };
  std::vector<Work> work;
  for (size_t i : which) {
    const InputRef& in = v->inputs[i];
    work.push_back({i, v->cache_map->deps[i].content, in.state->outputs[in.index].result});
  }
  cache_pool_->Submit([this, v, work = std::move(work), ctx, token]() mutable {
    auto out = std::make_shared<ContentOutcome>();
    for (const Work& w : work) {
      if (token.cancelled()) {
        out->status = token.Check();
        break;
      }
      absl::StatusOr<Digest> d = w.fn(w.result, ctx);
      if (!d.ok()) {
        out->status = d.status();
        out->failed_input = w.input;
        break;
      }
      out->digests.push_back({w.input, *d});
    }
    work.clear();  // release the inputs before the scheduler hears we are done
    Post([this, v, out = std::move(out), token] {
      v->content_running = false;
      if (out->status.ok() && !token.cancelled()) {
        for (const auto& [i, d] : out->digests) {
          v->content_done[i] = true;
          if (d.valid()) v->content_keys[i] = ContentKey(d);
        }
      } else if (!token.cancelled() && Active(v)) {
        Fail(v,
             VertexError(v, out->status,
                         StrCat("compute content checksum of input ", out->failed_input, " of")));
      }
      TaskDone(v);
    });
  });
}

void Scheduler::StartExec(VertexState* v) {
  v->exec_running = true;
  ++v->inflight;
  ++execs_running_;
  v->status.started = Clock::now();
  v->status.completed.reset();
  v->status.cached = false;
  v->status.error.clear();
  EmitVertex(v);
  for (const auto& r : requests_) {
    if (!r->finishing && r->closure.contains(v)) r->executed.insert(v);
  }
  std::vector<ResultRef> inputs;
  for (const InputRef& in : v->inputs) inputs.push_back(in.state->outputs[in.index].result);
  CancelToken token = WorkToken(v);
  OpContext ctx = MakeContext(v, token);
  Op* op = v->op.get();
  exec_pool_->Submit([this, v, op, inputs = std::move(inputs), ctx, token]() mutable {
    auto out = std::make_shared<absl::StatusOr<std::vector<ResultRef>>>(op->Exec(ctx, inputs));
    inputs.clear();  // release the inputs before the scheduler hears we are done
    Post([this, v, out = std::move(out), token]() mutable {
      v->exec_running = false;
      --execs_running_;
      v->status.completed = Clock::now();
      absl::Status st = out->status();
      if (st.ok()) {
        const std::vector<ResultRef>& outputs = **out;
        for (const auto& [w, outs] : v->result_waiters) {
          for (int o : outs) {
            if (static_cast<size_t>(o) >= outputs.size()) {
              st = absl::InternalError(StrCat("the op returned ", outputs.size(),
                                              " outputs but output ", o, " is used"));
            }
          }
        }
        for (const ResultRef& r : outputs) {
          if (!r) st = absl::InternalError("the op returned a null output");
        }
        if (st.ok()) {
          // Results computed are kept and recorded even when no build wants them any more.
          for (size_t o = 0; o < outputs.size(); ++o) {
            OutputSlot& slot = v->outputs[static_cast<int>(o)];
            if (!slot.result) slot.result = outputs[o];
          }
          st = SaveOutputs(v, outputs);
          if (!st.ok()) st = Annotate(st, "record cache");
        }
        out.reset();
        if (!st.ok()) {
          v->status.error = std::string(st.message());
          if (Active(v)) Fail(v, VertexError(v, st, "step"));
        }
      } else if (token.cancelled()) {
        v->status.error = "cancelled";
      } else {
        v->status.error = std::string(st.message());
        if (Active(v)) Fail(v, VertexError(v, st, "step"));
      }
      EmitVertex(v);
      MarkFinalReported(v);
      TaskDone(v);
      DispatchExec();
    });
  });
}

void Scheduler::TaskDone(VertexState* v) {
  --v->inflight;
  if (v->orphaned && v->inflight == 0 && !Active(v)) {
    DeleteState(v);
  } else {
    Wake(v);
  }
  CheckDraining();
}

// ---------------------------------------------------------------------------------------------
// Progress

void Scheduler::EmitTo(JobState* job, const VertexStatus& status) {
  if (job->sink) job->sink->OnVertex(status);
}

void Scheduler::EmitVertex(VertexState* v) {
  for (JobState* job : v->jobs) EmitTo(job, v->status);
}

void Scheduler::MarkFinalReported(VertexState* v) {
  for (JobState* job : v->jobs) job->reported_final.insert(v);
}

}  // namespace kiln::engine::internal
