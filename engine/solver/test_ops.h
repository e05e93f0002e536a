// Test-only: real in-process ops and a real worker for solver tests (solver_test.cc, and
// engine/cache's restart test).  The solver is generic, so ops that compute strings are genuine
// ops, not mocks: they concatenate their inputs' values, persist the result in a directory (the
// "worker"), and count what they did.
//
// Thread-safety: everything here is safe to use from the solver's pools and the test thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/solver/progress.h"
#include "engine/solver/solver.h"
#include "engine/solver/types.h"

namespace kiln::engine::testing {

// A value result; counts live instances so tests can prove everything was released.
class StringResult : public Result {
 public:
  StringResult(std::string id, std::string value, std::atomic<int>* live)
      : id_(std::move(id)), value_(std::move(value)), live_(live) {
    live_->fetch_add(1);
  }
  ~StringResult() override { live_->fetch_sub(1); }
  std::string ID() const override { return id_; }
  const std::string& value() const { return value_; }

 private:
  std::string id_;
  std::string value_;
  std::atomic<int>* live_;
};

inline const std::string& ValueOf(const ResultRef& r) {
  return static_cast<const StringResult&>(*r).value();
}

// Persists values as files named by their sha256, so a new TestWorker over the same directory
// (a "restarted daemon") reloads what an earlier one saved.
class TestWorker : public ResultLoader {
 public:
  explicit TestWorker(std::string dir) : dir_(std::move(dir)) {}

  absl::StatusOr<ResultRef> Save(const std::string& value) {
    std::string id(Digest::Sha256Of(value).hex());
    KILN_RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/" + id, value));
    return std::make_shared<StringResult>(id, value, &live);
  }

  absl::StatusOr<ResultRef> Load(const std::string& id, const CancelToken& cancel) override {
    KILN_RETURN_IF_ERROR(cancel.Check());
    loads.fetch_add(1);
    absl::StatusOr<std::string> data = ReadFileToString(dir_ + "/" + id);
    if (!data.ok()) return data.status();  // NotFound when pruned
    return std::make_shared<StringResult>(id, *data, &live);
  }

  // Deletes every saved value, as a worker pruning its snapshots would.
  void PruneAll() {
    for (const auto& e : std::filesystem::directory_iterator(dir_)) std::filesystem::remove(e);
  }

  std::atomic<int> live{0};
  std::atomic<int> loads{0};

 private:
  std::string dir_;
};

// One-shot event.
class Latch {
 public:
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return open_; });
  }
  // Waits until opened or `cancel` fires; returns the cancellation status in that case.
  absl::Status WaitOrCancel(const CancelToken& cancel) {
    CancelRegistration reg = cancel.OnCancel([this] { cv_.notify_all(); });
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return open_ || cancel.cancelled(); });
    if (!open_) return cancel.Check();
    return absl::OkStatus();
  }
  bool is_open() {
    std::lock_guard<std::mutex> lock(mu_);
    return open_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A ProgressRecorder that lets a test wait for an event.
class WaitableRecorder : public ProgressRecorder {
 public:
  void OnVertex(const VertexStatus& v) override {
    ProgressRecorder::OnVertex(v);
    Notify();
  }
  void OnLog(const LogChunk& l) override {
    ProgressRecorder::OnLog(l);
    Notify();
  }
  // Waits until some vertex event satisfies `pred`.
  void WaitForVertex(const std::function<bool(const VertexStatus&)>& pred) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] {
      for (const auto& e : events()) {
        if (e.kind == Event::Kind::kVertex && pred(e.vertex)) return true;
      }
      return false;
    });
  }

 private:
  void Notify() {
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
};

// What a test op does.  Output i of an op is "<value>[#i](<input values joined by ,>)".
struct TestOpDef {
  std::string value;
  // The definition the cache sees; defaults to `value`.  Lets a test change a vertex's definition
  // (and digest) while keeping its output, or the reverse.
  std::string cache_definition;
  bool uncacheable = false;            // like a local source read through a session
  std::vector<bool> content_inputs;    // per input: add a content key (sha256 of the value)
  bool content_fails = false;          // content checksums fail
  std::vector<std::string> selectors;  // per input
  std::vector<std::string> alt_definitions;
  int outputs = 1;
  // Runs at the start of Exec / GetCacheMap: barriers, failures, cancellation checks.
  std::function<absl::Status(const OpContext&)> exec_hook;
  std::function<absl::Status(const OpContext&)> cache_map_hook;
  // Extra output, e.g. from session values (not part of any key).
  std::function<std::string(const OpContext&)> extra;
};

// Counts per vertex name, and concurrency of Exec.
struct TestCounters {
  std::mutex mu;
  std::map<std::string, int> execs;
  std::map<std::string, int> cache_maps;
  std::map<std::string, int> content_digests;
  int running = 0;
  int max_running = 0;

  int Execs(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = execs.find(name);
    return it == execs.end() ? 0 : it->second;
  }
  int TotalExecs() {
    std::lock_guard<std::mutex> lock(mu);
    int n = 0;
    for (const auto& [k, v] : execs) n += v;
    return n;
  }
};

class TestOp : public Op {
 public:
  TestOp(std::string name, std::shared_ptr<const TestOpDef> def, TestWorker* worker,
         TestCounters* counters)
      : name_(std::move(name)), def_(std::move(def)), worker_(worker), counters_(counters) {}

  absl::StatusOr<CacheMap> GetCacheMap(const OpContext& ctx) override {
    {
      std::lock_guard<std::mutex> lock(counters_->mu);
      counters_->cache_maps[name_]++;
    }
    if (def_->cache_map_hook) KILN_RETURN_IF_ERROR(def_->cache_map_hook(ctx));
    CacheMap cm;
    const std::string& definition =
        def_->cache_definition.empty() ? def_->value : def_->cache_definition;
    cm.digest = Digest::Sha256Of(StrCat("test-op:", definition, ":", def_->outputs));
    for (const auto& alt : def_->alt_definitions) {
      cm.alt_digests.push_back(Digest::Sha256Of(StrCat("test-op:", alt, ":", def_->outputs)));
    }
    cm.uncacheable = def_->uncacheable;
    size_t n = std::max(def_->content_inputs.size(), def_->selectors.size());
    cm.deps.resize(n);
    for (size_t i = 0; i < n; ++i) {
      if (i < def_->selectors.size() && !def_->selectors[i].empty()) {
        cm.deps[i].selector = Digest::Sha256Of(def_->selectors[i]);
      }
      if (i < def_->content_inputs.size() && def_->content_inputs[i]) {
        TestCounters* counters = counters_;
        std::string name = name_;
        bool fails = def_->content_fails;
        cm.deps[i].content = [counters, name, fails](const ResultRef& in,
                                                     const OpContext&) -> absl::StatusOr<Digest> {
          std::lock_guard<std::mutex> lock(counters->mu);
          counters->content_digests[name]++;
          if (fails) return absl::DataLossError("checksum of the source failed");
          return Digest::Sha256Of(ValueOf(in));
        };
      }
    }
    return cm;
  }

  absl::StatusOr<std::vector<ResultRef>> Exec(const OpContext& ctx,
                                              std::span<const ResultRef> inputs) override {
    {
      std::lock_guard<std::mutex> lock(counters_->mu);
      counters_->execs[name_]++;
      counters_->running++;
      counters_->max_running = std::max(counters_->max_running, counters_->running);
    }
    absl::Status hook = def_->exec_hook ? def_->exec_hook(ctx) : absl::OkStatus();
    {
      std::lock_guard<std::mutex> lock(counters_->mu);
      counters_->running--;
    }
    KILN_RETURN_IF_ERROR(hook);
    KILN_RETURN_IF_ERROR(ctx.cancel.Check());
    std::string joined;
    for (size_t i = 0; i < inputs.size(); ++i) {
      StrAppend(&joined, i ? "," : "", ValueOf(inputs[i]));
    }
    std::string extra = def_->extra ? def_->extra(ctx) : "";
    ctx.progress.Log(1, StrCat("exec ", name_, "\n"));
    std::vector<ResultRef> outs;
    for (int o = 0; o < def_->outputs; ++o) {
      std::string v = def_->value;
      if (def_->outputs > 1) StrAppend(&v, "#", o);
      StrAppend(&v, extra, "(", joined, ")");
      KILN_ASSIGN_OR_RETURN(ResultRef r, worker_->Save(v));
      outs.push_back(std::move(r));
    }
    return outs;
  }

 private:
  std::string name_;
  std::shared_ptr<const TestOpDef> def_;
  TestWorker* worker_;
  TestCounters* counters_;
};

using TestDefPtr = std::shared_ptr<const TestOpDef>;

// A vertex whose digest covers its name, definition and inputs, as an LLB digest would.
inline std::shared_ptr<const Vertex> MakeVertex(const std::string& name, TestOpDef def,
                                                std::vector<Edge> inputs = {},
                                                VertexOptions options = {}) {
  auto v = std::make_shared<Vertex>();
  v->name = name;
  std::string id = StrCat("vertex:", name, ":", def.value, ":", def.cache_definition, ":",
                          def.outputs, ":", def.uncacheable);
  for (const Edge& in : inputs) StrAppend(&id, ":", in.vertex->digest.str(), "@", in.index);
  v->digest = Digest::Sha256Of(id);
  v->inputs = std::move(inputs);
  v->options = std::move(options);
  v->sys = TestDefPtr(std::make_shared<TestOpDef>(std::move(def)));
  return v;
}

inline Edge E(std::shared_ptr<const Vertex> v, int index = 0) { return Edge{std::move(v), index}; }

inline OpResolver MakeResolver(TestWorker* worker, TestCounters* counters) {
  return
      [worker, counters](const Vertex& v, const OpContext&) -> absl::StatusOr<std::unique_ptr<Op>> {
        const TestDefPtr* def = std::any_cast<TestDefPtr>(&v.sys);
        if (!def) return absl::InvalidArgumentError("not a test op");
        return std::make_unique<TestOp>(v.name, *def, worker, counters);
      };
}

}  // namespace kiln::engine::testing
