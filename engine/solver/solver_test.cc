#include "engine/solver/solver.h"

#include <cstdio>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "engine/solver/cache_key.h"
#include "engine/solver/memory_cache_storage.h"
#include "engine/solver/test_ops.h"

namespace kiln::engine::testing {
namespace {

TestOpDef Def(std::string value) {
  TestOpDef d;
  d.value = std::move(value);
  return d;
}

class SolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("kiln-solver-test-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::move(*dir);
    worker_ = std::make_shared<TestWorker>(dir_.path());
    storage_ = std::make_shared<MemoryCacheStorage>();
    MakeSolver();
  }

  void TearDown() override {
    solver_.reset();
    EXPECT_EQ(worker_->live.load(), 0) << "results leaked";
  }

  void MakeSolver(size_t parallelism = 4) {
    solver_.reset();
    solver_ = std::make_unique<Solver>(storage_, worker_, SolverOptions{parallelism, 2});
  }

  std::unique_ptr<Job> NewJob(std::shared_ptr<ProgressSink> sink = nullptr,
                              bool ignore_cache = false, SessionGroup::Values values = {}) {
    JobOptions o;
    o.id = "job" + std::to_string(++jobs_);
    o.resolver = MakeResolver(worker_.get(), &counters_);
    o.progress = std::move(sink);
    o.ignore_cache = ignore_cache;
    o.values = std::move(values);
    return solver_->NewJob(std::move(o));
  }

  // Builds `target` in a fresh job and returns its value.
  absl::StatusOr<std::string> BuildValue(const Edge& target, BuildStats* stats = nullptr,
                                         std::shared_ptr<ProgressSink> sink = nullptr,
                                         bool ignore_cache = false) {
    auto job = NewJob(std::move(sink), ignore_cache);
    KILN_ASSIGN_OR_RETURN(ResultRef r, solver_->Build(*job, target, CancelToken(), stats));
    return ValueOf(r);
  }

  TempDir dir_;
  std::shared_ptr<TestWorker> worker_;
  std::shared_ptr<MemoryCacheStorage> storage_;
  TestCounters counters_;
  std::unique_ptr<Solver> solver_;
  int jobs_ = 0;
};

struct Diamond {
  std::shared_ptr<const Vertex> a, b, c, d;
};

Diamond MakeDiamond() {
  Diamond g;
  g.a = MakeVertex("a", Def("a"));
  g.b = MakeVertex("b", Def("b"), {E(g.a)});
  g.c = MakeVertex("c", Def("c"), {E(g.a)});
  g.d = MakeVertex("d", Def("d"), {E(g.b), E(g.c)});
  return g;
}

TEST_F(SolverTest, DiamondExecutesEachVertexOnce) {
  Diamond g = MakeDiamond();
  BuildStats stats;
  auto v = BuildValue(E(g.d), &stats);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "d(b(a()),c(a()))");
  for (const char* n : {"a", "b", "c", "d"}) EXPECT_EQ(counters_.Execs(n), 1) << n;
  EXPECT_EQ(stats.total, 4);
  EXPECT_EQ(stats.executed, 4);
  EXPECT_EQ(stats.cached, 0);
}

TEST_F(SolverTest, DistinctVertexObjectsWithOneDigestRunOnce) {
  auto a1 = MakeVertex("a", Def("a"));
  auto a2 = MakeVertex("a", Def("a"));  // same digest, another object
  ASSERT_EQ(a1->digest, a2->digest);
  auto t = MakeVertex("t", Def("t"), {E(a1), E(a2)});
  auto v = BuildValue(E(t));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "t(a(),a())");
  EXPECT_EQ(counters_.Execs("a"), 1);
}

TEST_F(SolverTest, IdenticalVerticesInConcurrentBuildsExecuteOnce) {
  Latch entered, release;
  TestOpDef vd = Def("v");
  vd.exec_hook = [&](const OpContext& ctx) {
    entered.Open();
    return release.WaitOrCancel(ctx.cancel);
  };
  auto v = MakeVertex("v", vd);
  auto t = MakeVertex("t", Def("t"), {E(v)});
  auto rec_b = std::make_shared<WaitableRecorder>();
  auto job_a = NewJob();
  auto job_b = NewJob(rec_b);
  absl::StatusOr<ResultRef> ra, rb;
  std::thread ta([&] { ra = solver_->Build(*job_a, E(t), CancelToken()); });
  entered.Wait();
  std::thread tb([&] { rb = solver_->Build(*job_b, E(t), CancelToken()); });
  // Job B has loaded the graph (and, in the same scheduler step, asked for t) while v runs.
  rec_b->WaitForVertex([&](const VertexStatus& s) { return s.digest == t->digest; });
  release.Open();
  ta.join();
  tb.join();
  ASSERT_TRUE(ra.ok()) << ra.status();
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(ValueOf(*ra), "t(v())");
  EXPECT_EQ(*ra, *rb);  // the very same result object
  EXPECT_EQ(counters_.Execs("v"), 1);
  EXPECT_EQ(counters_.Execs("t"), 1);
}

class ParallelismTest : public SolverTest, public ::testing::WithParamInterface<int> {};

TEST_P(ParallelismTest, ExecConcurrencyReachesButNeverExceedsTheLimit) {
  const int limit = GetParam();
  constexpr int kLeaves = 5;
  MakeSolver(limit);
  // Each Exec waits until `limit` Execs run at once (or all remaining ones are in), so overlap is
  // forced without sleeping.  The timeout is only a safety net turning a solver bug into a failure
  // instead of a hang; a correct run never reaches it.
  std::mutex mu;
  std::condition_variable cv;
  int running = 0, finished = 0;
  bool gate_timed_out = false;
  auto hook = [&](const OpContext&) {
    std::unique_lock<std::mutex> lock(mu);
    ++running;
    cv.notify_all();
    if (!cv.wait_for(lock, std::chrono::seconds(60),
                     [&] { return running >= limit || finished + running == kLeaves; })) {
      gate_timed_out = true;
    }
    --running;
    ++finished;
    cv.notify_all();
    return absl::OkStatus();
  };
  std::vector<Edge> inputs;
  std::string expected = "t(";
  for (int i = 0; i < kLeaves; ++i) {
    TestOpDef d = Def("l" + std::to_string(i));
    d.exec_hook = hook;
    inputs.push_back(E(MakeVertex("l" + std::to_string(i), d)));
    expected += (i ? ",l" : "l") + std::to_string(i) + "()";
  }
  auto t = MakeVertex("t", Def("t"), inputs);
  auto v = BuildValue(E(t));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, expected + ")");
  EXPECT_FALSE(gate_timed_out);
  EXPECT_EQ(counters_.max_running, limit);
}

INSTANTIATE_TEST_SUITE_P(Limits, ParallelismTest, ::testing::Values(1, 2, 3));

TEST_F(SolverTest, SecondBuildIsCachedWithoutEvaluatingInputs) {
  Diamond g = MakeDiamond();
  ASSERT_TRUE(BuildValue(E(g.d)).ok());
  ASSERT_EQ(counters_.TotalExecs(), 4);

  auto rec = std::make_shared<ProgressRecorder>();
  BuildStats stats;
  auto v = BuildValue(E(g.d), &stats, rec);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "d(b(a()),c(a()))");
  EXPECT_EQ(counters_.TotalExecs(), 4) << "nothing may run again";
  // Cache-fast: the target's key matched from definitions alone, so only it was loaded.
  EXPECT_EQ(worker_->loads.load(), 1);
  EXPECT_EQ(stats.total, 4);
  EXPECT_EQ(stats.cached, 4);
  EXPECT_EQ(stats.executed, 0);
  auto vertices = rec->vertices();
  ASSERT_EQ(vertices.size(), 4u);
  for (const auto& [d, s] : vertices) {
    EXPECT_TRUE(s.cached) << s.name;
    EXPECT_TRUE(s.completed.has_value()) << s.name;
  }
}

TEST_F(SolverTest, ChangingOneLeafRerunsOnlyItsDependents) {
  auto a = MakeVertex("a", Def("a"));
  auto b = MakeVertex("b", Def("b"));
  auto c = MakeVertex("c", Def("c"), {E(a)});
  auto d = MakeVertex("d", Def("d"), {E(b)});
  auto t = MakeVertex("t", Def("t"), {E(c), E(d)});
  ASSERT_TRUE(BuildValue(E(t)).ok());

  auto a2 = MakeVertex("a", Def("a2"));
  auto c2 = MakeVertex("c", Def("c"), {E(a2)});
  auto t2 = MakeVertex("t", Def("t"), {E(c2), E(d)});
  BuildStats stats;
  auto v = BuildValue(E(t2), &stats);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "t(c(a2()),d(b()))");
  EXPECT_EQ(counters_.Execs("a"), 2);
  EXPECT_EQ(counters_.Execs("c"), 2);
  EXPECT_EQ(counters_.Execs("t"), 2);
  EXPECT_EQ(counters_.Execs("b"), 1);
  EXPECT_EQ(counters_.Execs("d"), 1);
  EXPECT_EQ(stats.executed, 3);
  EXPECT_EQ(stats.cached, 2);
}

TEST_F(SolverTest, ContentKeyHitsWhenDefinitionChangesButContentDoesNot) {
  auto chain = [](const std::string& definition) {
    TestOpDef ld = Def("src");
    ld.cache_definition = definition;
    auto l = MakeVertex("l", ld);
    TestOpDef dd = Def("d");
    dd.content_inputs = {true};
    auto d = MakeVertex("d", dd, {E(l)});
    return MakeVertex("t", Def("t"), {E(d)});
  };
  auto t1 = chain("v1");
  ASSERT_TRUE(BuildValue(E(t1)).ok());

  auto t2 = chain("v2");
  ASSERT_NE(t1->digest, t2->digest);
  auto v = BuildValue(E(t2));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "t(d(src()))");
  EXPECT_EQ(counters_.Execs("l"), 2) << "a new definition must run";
  EXPECT_EQ(counters_.Execs("d"), 1) << "same content: cached through the content key";
  EXPECT_EQ(counters_.Execs("t"), 1) << "its dependent keeps its identity, so it hits too";

  // The slow match linked the new definition key to the result: now nothing needs to run.
  ASSERT_TRUE(BuildValue(E(t2)).ok());
  EXPECT_EQ(counters_.Execs("l"), 2);
  EXPECT_EQ(counters_.TotalExecs(), 4);
}

TEST_F(SolverTest, ContentKeyMissesWhenContentChangesUnderTheSameDefinition) {
  // A local source: always read (uncacheable by definition); its content is what counts.
  std::mutex mu;
  std::string files = "v1";
  TestOpDef ld = Def("local");
  ld.uncacheable = true;
  ld.extra = [&](const OpContext&) {
    std::lock_guard<std::mutex> lock(mu);
    return ":" + files;
  };
  auto l = MakeVertex("l", ld);
  TestOpDef cd = Def("copy");
  cd.content_inputs = {true};
  auto copy = MakeVertex("copy", cd, {E(l)});
  auto t = MakeVertex("t", Def("t"), {E(copy)});

  auto v = BuildValue(E(t));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "t(copy(local:v1()))");

  v = BuildValue(E(t));  // same files
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(counters_.Execs("l"), 2);
  EXPECT_EQ(counters_.Execs("copy"), 1);
  EXPECT_EQ(counters_.Execs("t"), 1);

  {
    std::lock_guard<std::mutex> lock(mu);
    files = "v2";
  }
  v = BuildValue(E(t));  // same definition, new content
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "t(copy(local:v2()))");
  EXPECT_EQ(counters_.Execs("copy"), 2);
  EXPECT_EQ(counters_.Execs("t"), 2);
}

TEST_F(SolverTest, UncacheableInputWithoutContentKeyAlwaysReruns) {
  TestOpDef ld = Def("local");
  ld.uncacheable = true;
  auto l = MakeVertex("l", ld);
  auto d = MakeVertex("d", Def("d"), {E(l)});
  ASSERT_TRUE(BuildValue(E(d)).ok());
  ASSERT_TRUE(BuildValue(E(d)).ok());
  EXPECT_EQ(counters_.Execs("l"), 2);
  EXPECT_EQ(counters_.Execs("d"), 2);
}

TEST_F(SolverTest, AltDigestOfARootMatches) {
  auto chain = [](const std::string& manifest) {
    TestOpDef img = Def("image");
    img.cache_definition = manifest;
    img.alt_definitions = {"config-1"};
    auto i = MakeVertex("img", img);
    return MakeVertex("run", Def("run"), {E(i)});
  };
  ASSERT_TRUE(BuildValue(E(chain("manifest-1"))).ok());
  // Re-pushed image: new manifest, same config.  Nothing needs to run.
  auto v = BuildValue(E(chain("manifest-2")));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(counters_.Execs("img"), 1);
  EXPECT_EQ(counters_.Execs("run"), 1);
}

TEST_F(SolverTest, SolverRestartKeepsEverythingCached) {
  Diamond g = MakeDiamond();
  ASSERT_TRUE(BuildValue(E(g.d)).ok());
  // A new solver and a new worker over the same persisted results and cache records.
  solver_.reset();
  ASSERT_EQ(worker_->live.load(), 0);
  worker_ = std::make_shared<TestWorker>(dir_.path());
  MakeSolver();
  auto v = BuildValue(E(g.d));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "d(b(a()),c(a()))");
  EXPECT_EQ(counters_.TotalExecs(), 4);
}

TEST_F(SolverTest, PrunedResultIsRebuiltWithoutError) {
  Diamond g = MakeDiamond();
  ASSERT_TRUE(BuildValue(E(g.d)).ok());
  worker_->PruneAll();
  auto v = BuildValue(E(g.d));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "d(b(a()),c(a()))");
  for (const char* n : {"a", "b", "c", "d"}) EXPECT_EQ(counters_.Execs(n), 2) << n;
  // Records of lost results were dropped; the fresh ones are there.
  auto list = ListCachedResults(*storage_);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 4u);
  auto again = BuildValue(E(g.d));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(counters_.TotalExecs(), 8);
}

TEST_F(SolverTest, ExecErrorFailsBuildNamesVertexAndCancelsOthers) {
  auto rec = std::make_shared<WaitableRecorder>();
  Latch c_entered, never;
  std::atomic<bool> c_cancelled{false};
  auto a = MakeVertex("a", Def("a"));
  TestOpDef cd = Def("c");
  cd.exec_hook = [&](const OpContext& ctx) {
    c_entered.Open();
    absl::Status st = never.WaitOrCancel(ctx.cancel);
    c_cancelled = absl::IsCancelled(st);
    return st;
  };
  auto c = MakeVertex("c", cd);
  TestOpDef bd = Def("b");
  bd.exec_hook = [&](const OpContext&) {
    c_entered.Wait();
    rec->WaitForVertex([&](const VertexStatus& s) { return s.digest == a->digest && s.completed; });
    return absl::InternalError("boom");
  };
  auto b = MakeVertex("[2/3] RUN b", bd);
  auto d = MakeVertex("d", Def("d"), {E(b)});
  auto t = MakeVertex("t", Def("t"), {E(a), E(d), E(c)});

  auto job = NewJob(rec);
  BuildStats stats;
  auto r = solver_->Build(*job, E(t), CancelToken(), &stats);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("`[2/3] RUN b`"), std::string_view::npos) << r.status();
  EXPECT_NE(r.status().message().find("boom"), std::string_view::npos) << r.status();
  auto payload = r.status().GetPayload(kVertexErrorPayload);
  ASSERT_TRUE(payload.has_value());
  EXPECT_EQ(std::string(*payload), b->digest.str());
  EXPECT_TRUE(c_cancelled.load()) << "an independent running step must be cancelled";
  EXPECT_EQ(counters_.Execs("d"), 0);
  EXPECT_EQ(counters_.Execs("t"), 0);
  EXPECT_EQ(stats.total, 5);

  auto vertices = rec->vertices();
  EXPECT_EQ(vertices.at(b->digest).error, "boom");
  EXPECT_EQ(vertices.at(c->digest).error, "cancelled");
  EXPECT_FALSE(vertices.at(d->digest).started.has_value());

  // What completed was recorded: a is cached now.
  job.reset();
  auto a_again = BuildValue(E(a));
  ASSERT_TRUE(a_again.ok());
  EXPECT_EQ(counters_.Execs("a"), 1);
}

TEST_F(SolverTest, CacheMapErrorNamesVertex) {
  TestOpDef bad = Def("bad");
  bad.cache_map_hook = [](const OpContext&) { return absl::NotFoundError("no such image"); };
  auto v = MakeVertex("[1/2] FROM nothing", bad);
  auto t = MakeVertex("t", Def("t"), {E(v)});
  auto r = BuildValue(E(t));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("`[1/2] FROM nothing`"), std::string_view::npos)
      << r.status();
  EXPECT_EQ(counters_.Execs("t"), 0);
}

TEST_F(SolverTest, CancelMidBuildStopsStepsAndReleasesEverything) {
  Latch entered, never;
  std::atomic<bool> saw_cancel{false};
  std::atomic<bool> block{true};
  auto a = MakeVertex("a", Def("a"));
  TestOpDef vd = Def("v");
  vd.exec_hook = [&](const OpContext& ctx) {
    if (!block) return absl::OkStatus();
    entered.Open();
    absl::Status st = never.WaitOrCancel(ctx.cancel);
    saw_cancel = absl::IsCancelled(st);
    return st;
  };
  auto v = MakeVertex("v", vd, {E(a)});
  auto job = NewJob();
  CancelSource cancel;
  absl::StatusOr<ResultRef> r;
  std::thread th([&] { r = solver_->Build(*job, E(v), cancel.token()); });
  entered.Wait();
  EXPECT_GT(worker_->live.load(), 0);  // a's result is alive and v's Exec holds it
  cancel.Cancel("interrupted by the user");
  th.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_NE(r.status().message().find("interrupted by the user"), std::string_view::npos);
  EXPECT_TRUE(saw_cancel.load());
  job.reset();
  EXPECT_EQ(worker_->live.load(), 0);

  // The solver is fine afterwards: the same graph builds, reusing a from the cache.
  block = false;
  auto again = BuildValue(E(v));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, "v(a())");
  EXPECT_EQ(counters_.Execs("a"), 1);
  EXPECT_EQ(counters_.Execs("v"), 2);
}

TEST_F(SolverTest, CancelBeforeStartReturnsCancelled) {
  CancelSource cancel;
  cancel.Cancel("too late");
  auto job = NewJob();
  auto r = solver_->Build(*job, E(MakeVertex("a", Def("a"))), cancel.token());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
}

TEST_F(SolverTest, CancellingOneOfTwoJobsKeepsTheSharedStepRunning) {
  Latch entered, release;
  std::atomic<bool> token_cancelled{false};
  TestOpDef vd = Def("v");
  vd.exec_hook = [&](const OpContext& ctx) {
    entered.Open();
    absl::Status st = release.WaitOrCancel(ctx.cancel);
    token_cancelled = ctx.cancel.cancelled();
    return st;
  };
  auto v = MakeVertex("v", vd);
  auto t = MakeVertex("t", Def("t"), {E(v)});
  auto rec_b = std::make_shared<WaitableRecorder>();
  auto job_a = NewJob();
  auto job_b = NewJob(rec_b);
  CancelSource cancel_a;
  absl::StatusOr<ResultRef> ra, rb;
  std::thread ta([&] { ra = solver_->Build(*job_a, E(t), cancel_a.token()); });
  entered.Wait();
  std::thread tb([&] { rb = solver_->Build(*job_b, E(t), CancelToken()); });
  rec_b->WaitForVertex([&](const VertexStatus& s) { return s.digest == t->digest; });
  cancel_a.Cancel();
  ta.join();  // returns while v keeps running for job B
  EXPECT_EQ(ra.status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(token_cancelled.load());
  release.Open();
  tb.join();
  ASSERT_TRUE(rb.ok()) << rb.status();
  EXPECT_EQ(ValueOf(*rb), "t(v())");
  EXPECT_FALSE(token_cancelled.load());
  EXPECT_EQ(counters_.Execs("v"), 1);
}

TEST_F(SolverTest, CancellingEveryJobCancelsTheSharedStep) {
  Latch entered, never;
  std::atomic<bool> token_cancelled{false};
  TestOpDef vd = Def("v");
  vd.exec_hook = [&](const OpContext& ctx) {
    entered.Open();
    absl::Status st = never.WaitOrCancel(ctx.cancel);
    token_cancelled = ctx.cancel.cancelled();
    return st;
  };
  auto v = MakeVertex("v", vd);
  auto rec_b = std::make_shared<WaitableRecorder>();
  auto job_a = NewJob();
  auto job_b = NewJob(rec_b);
  CancelSource cancel_a, cancel_b;
  absl::StatusOr<ResultRef> ra, rb;
  std::thread ta([&] { ra = solver_->Build(*job_a, E(v), cancel_a.token()); });
  entered.Wait();
  std::thread tb([&] { rb = solver_->Build(*job_b, E(v), cancel_b.token()); });
  rec_b->WaitForVertex([&](const VertexStatus& s) { return s.digest == v->digest; });
  cancel_a.Cancel();
  ta.join();
  EXPECT_FALSE(token_cancelled.load());
  cancel_b.Cancel();
  tb.join();
  EXPECT_TRUE(token_cancelled.load());
  EXPECT_EQ(ra.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(rb.status().code(), absl::StatusCode::kCancelled);
}

TEST_F(SolverTest, SharedFailureFailsEveryBuildThatNeedsIt) {
  Latch entered, release;
  TestOpDef vd = Def("v");
  vd.exec_hook = [&](const OpContext&) {
    entered.Open();
    release.Wait();
    return absl::FailedPreconditionError("exit code: 2");
  };
  auto v = MakeVertex("v", vd);
  auto t = MakeVertex("t", Def("t"), {E(v)});
  auto rec_b = std::make_shared<WaitableRecorder>();
  auto job_a = NewJob();
  auto job_b = NewJob(rec_b);
  absl::StatusOr<ResultRef> ra, rb;
  std::thread ta([&] { ra = solver_->Build(*job_a, E(t), CancelToken()); });
  entered.Wait();
  std::thread tb([&] { rb = solver_->Build(*job_b, E(v), CancelToken()); });
  rec_b->WaitForVertex([&](const VertexStatus& s) { return s.digest == v->digest; });
  release.Open();
  ta.join();
  tb.join();
  EXPECT_EQ(ra.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(rb.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(counters_.Execs("v"), 1);
}

TEST_F(SolverTest, ProgressEventsAreOrderedAndCachedVerticesReported) {
  Diamond g = MakeDiamond();
  auto rec = std::make_shared<ProgressRecorder>();
  ASSERT_TRUE(BuildValue(E(g.d), nullptr, rec).ok());
  auto events = rec->events();
  for (const auto& v : {g.a, g.b, g.c, g.d}) {
    int loaded = -1, started = -1, completed = -1;
    for (size_t i = 0; i < events.size(); ++i) {
      const auto& e = events[i];
      if (e.kind != ProgressRecorder::Event::Kind::kVertex || e.vertex.digest != v->digest) {
        continue;
      }
      if (loaded < 0) loaded = static_cast<int>(i);
      if (started < 0 && e.vertex.started && !e.vertex.completed) started = static_cast<int>(i);
      if (completed < 0 && e.vertex.completed) completed = static_cast<int>(i);
      EXPECT_FALSE(e.vertex.cached) << v->name;
      EXPECT_EQ(e.vertex.name, v->name);
    }
    EXPECT_GE(loaded, 0) << v->name;
    EXPECT_LT(loaded, started) << v->name;
    EXPECT_LT(started, completed) << v->name;
  }
  // Inputs complete before their dependents start.
  auto first = [&](const Digest& d, bool want_completed) {
    for (size_t i = 0; i < events.size(); ++i) {
      const auto& e = events[i];
      if (e.kind == ProgressRecorder::Event::Kind::kVertex && e.vertex.digest == d &&
          (want_completed ? e.vertex.completed.has_value() : e.vertex.started.has_value())) {
        return static_cast<int>(i);
      }
    }
    return -1;
  };
  EXPECT_LT(first(g.a->digest, true), first(g.b->digest, false));
  EXPECT_LT(first(g.b->digest, true), first(g.d->digest, false));
  EXPECT_LT(first(g.c->digest, true), first(g.d->digest, false));
  // Logs carry the vertex.
  bool saw_log = false;
  for (const auto& e : events) {
    if (e.kind == ProgressRecorder::Event::Kind::kLog && e.log.vertex == g.d->digest) {
      EXPECT_EQ(e.log.data, "exec d\n");
      EXPECT_EQ(e.log.stream, 1);
      saw_log = true;
    }
  }
  EXPECT_TRUE(saw_log);

  auto rec2 = std::make_shared<ProgressRecorder>();
  ASSERT_TRUE(BuildValue(E(g.d), nullptr, rec2).ok());
  for (const auto& [d, s] : rec2->vertices()) EXPECT_TRUE(s.cached) << s.name;
  for (const auto& e : rec2->events()) {
    if (e.kind == ProgressRecorder::Event::Kind::kVertex && e.vertex.started) {
      EXPECT_TRUE(e.vertex.cached) << e.vertex.name << " must not be reported as running";
    }
  }
}

TEST_F(SolverTest, NoCacheJobReexecutesEverythingAndStillRecords) {
  Diamond g = MakeDiamond();
  ASSERT_TRUE(BuildValue(E(g.d)).ok());
  BuildStats stats;
  ASSERT_TRUE(BuildValue(E(g.d), &stats, nullptr, /*ignore_cache=*/true).ok());
  for (const char* n : {"a", "b", "c", "d"}) EXPECT_EQ(counters_.Execs(n), 2) << n;
  EXPECT_EQ(stats.executed, 4);
  ASSERT_TRUE(BuildValue(E(g.d)).ok());
  EXPECT_EQ(counters_.TotalExecs(), 8);
}

TEST_F(SolverTest, NoCacheVertexRerunsWhileDependentsMatchItsKey) {
  Diamond g = MakeDiamond();
  ASSERT_TRUE(BuildValue(E(g.d)).ok());
  VertexOptions no_cache;
  no_cache.ignore_cache = true;
  auto b = MakeVertex("b", Def("b"), {E(g.a)}, no_cache);
  ASSERT_EQ(b->digest, g.b->digest);
  auto d = MakeVertex("d", Def("d"), {E(b), E(g.c)});
  ASSERT_TRUE(BuildValue(E(d)).ok());
  EXPECT_EQ(counters_.Execs("b"), 2);
  // As in BuildKit: b's re-run is recorded under its unchanged key, so d matches.
  EXPECT_EQ(counters_.Execs("d"), 1);
  EXPECT_EQ(counters_.Execs("a"), 1);
  EXPECT_EQ(counters_.Execs("c"), 1);
}

TEST_F(SolverTest, NoCacheVertexIsNotSharedWithACachedTwinOfAnotherJob) {
  Diamond g = MakeDiamond();
  auto job1 = NewJob();  // stays alive, holding every vertex of the cached graph
  ASSERT_TRUE(solver_->Build(*job1, E(g.d), CancelToken()).ok());
  VertexOptions no_cache;
  no_cache.ignore_cache = true;
  auto b = MakeVertex("b", Def("b"), {E(g.a)}, no_cache);
  auto d = MakeVertex("d", Def("d"), {E(b), E(g.c)});
  ASSERT_EQ(d->digest, g.d->digest);
  auto v = BuildValue(E(d));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(counters_.Execs("b"), 2);
  EXPECT_EQ(counters_.Execs("d"), 1);
  EXPECT_EQ(counters_.Execs("a"), 1);
}

// A worker whose first loads fail for a reason other than NotFound.
class FlakyLoader : public ResultLoader {
 public:
  FlakyLoader(std::shared_ptr<TestWorker> worker, int failures)
      : worker_(std::move(worker)), failures_(failures) {}
  absl::StatusOr<ResultRef> Load(const std::string& id, const CancelToken& cancel) override {
    if (failures_.fetch_sub(1) > 0) return absl::UnavailableError("snapshotter busy");
    return worker_->Load(id, cancel);
  }

 private:
  std::shared_ptr<TestWorker> worker_;
  std::atomic<int> failures_;
};

TEST_F(SolverTest, LoadErrorIsAMissAndKeepsTheRecord) {
  Diamond g = MakeDiamond();
  ASSERT_TRUE(BuildValue(E(g.d)).ok());
  {
    Solver flaky(storage_, std::make_shared<FlakyLoader>(worker_, 1), SolverOptions{2, 2});
    JobOptions o;
    o.resolver = MakeResolver(worker_.get(), &counters_);
    auto job = flaky.NewJob(std::move(o));
    auto r = flaky.Build(*job, E(g.d), CancelToken());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(ValueOf(*r), "d(b(a()),c(a()))");
  }
  // d could not be loaded, so it ran again on its inputs, which loaded fine.
  EXPECT_EQ(counters_.Execs("d"), 2);
  EXPECT_EQ(counters_.Execs("b"), 1);
  EXPECT_EQ(counters_.Execs("c"), 1);
  // The record was not dropped: a transient failure is not data loss.
  auto list = ListCachedResults(*storage_);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 4u);
}

TEST_F(SolverTest, ContentChecksumErrorNamesVertex) {
  auto l = MakeVertex("l", Def("src"));
  TestOpDef cd = Def("copy");
  cd.content_inputs = {true};
  cd.content_fails = true;
  auto copy = MakeVertex("[3/3] COPY . /app", cd, {E(l)});
  auto r = BuildValue(E(copy));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("`[3/3] COPY . /app`"), std::string_view::npos) << r.status();
  EXPECT_EQ(counters_.Execs("[3/3] COPY . /app"), 0);
}

TEST_F(SolverTest, ResolverErrorNamesVertex) {
  auto v = std::make_shared<Vertex>();
  v->name = "[1/1] UNKNOWN";
  v->digest = Digest::Sha256Of("unknown");
  v->sys = 42;  // not a test op
  auto r = BuildValue(E(v));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("`[1/1] UNKNOWN`"), std::string_view::npos) << r.status();
}

std::string ReadBack(std::FILE* f) {
  std::rewind(f);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

TEST_F(SolverTest, PlainProgressOfRealBuilds) {
  Diamond g = MakeDiamond();
  std::FILE* f1 = std::tmpfile();
  ASSERT_TRUE(BuildValue(E(g.d), nullptr, std::make_shared<PlainProgressPrinter>(f1)).ok());
  std::string first = ReadBack(f1);
  for (const char* name : {"a", "b", "c", "d"}) {
    std::smatch m;
    ASSERT_TRUE(std::regex_search(first, m, std::regex(StrCat("#([0-9]+) ", name, "\n")))) << first;
    std::string n = m[1];
    EXPECT_TRUE(std::regex_search(first, std::regex("#" + n + " DONE [0-9]+\\.[0-9]s\n"))) << first;
  }
  EXPECT_NE(first.find(" exec d\n"), std::string::npos) << first;

  std::FILE* f2 = std::tmpfile();
  ASSERT_TRUE(BuildValue(E(g.d), nullptr, std::make_shared<PlainProgressPrinter>(f2)).ok());
  std::string second = ReadBack(f2);
  for (const char* name : {"a", "b", "c", "d"}) {
    EXPECT_TRUE(
        std::regex_search(second, std::regex(StrCat("#([0-9]+) ", name, "\n#\\1 CACHED\n"))))
        << second;
  }
  EXPECT_EQ(second.find("DONE"), std::string::npos) << second;
}

TEST_F(SolverTest, ExportedCacheChainImportsIntoAnotherCache) {
  Diamond g = MakeDiamond();
  BuildStats stats;
  ASSERT_TRUE(BuildValue(E(g.d), &stats).ok());
  ASSERT_EQ(stats.target_cache_keys.size(), 1u);

  for (bool max_mode : {false, true}) {
    auto chain = CollectCacheChain(*storage_, stats.target_cache_keys, max_mode);
    ASSERT_TRUE(chain.ok()) << chain.status();
    EXPECT_EQ(chain->results.size(), max_mode ? 4u : 1u);
    EXPECT_EQ(chain->links.size(), 4u);  // a->b, a->c, b->d, c->d
    auto imported = std::make_shared<MemoryCacheStorage>();
    ASSERT_TRUE(imported->Commit(*chain).ok());
    Solver other(imported, worker_, SolverOptions{2, 2});
    JobOptions o;
    o.resolver = MakeResolver(worker_.get(), &counters_);
    auto job = other.NewJob(std::move(o));
    BuildStats other_stats;
    auto r = other.Build(*job, E(g.d), CancelToken(), &other_stats);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(ValueOf(*r), "d(b(a()),c(a()))");
    EXPECT_EQ(other_stats.executed, 0);
    EXPECT_EQ(other_stats.target_cache_keys, stats.target_cache_keys);
  }
  EXPECT_EQ(counters_.TotalExecs(), 4);
}

TEST_F(SolverTest, SessionValuesReachOps) {
  std::mutex mu;
  std::vector<std::string> seen;
  TestOpDef d = Def("s");
  d.exec_hook = [&](const OpContext& ctx) {
    std::lock_guard<std::mutex> lock(mu);
    const std::string* secret = ctx.session.FindFirst<std::string>("secret/token");
    seen.push_back(secret ? *secret : "<none>");
    return absl::OkStatus();
  };
  auto v = MakeVertex("s", d);
  SessionGroup::Values values;
  values["secret/token"] = std::string("s3cr3t");
  auto job = NewJob(nullptr, false, std::move(values));
  ASSERT_TRUE(solver_->Build(*job, E(v), CancelToken()).ok());
  EXPECT_EQ(seen, std::vector<std::string>{"s3cr3t"});
}

TEST_F(SolverTest, MultiOutputVertex) {
  TestOpDef md = Def("m");
  md.outputs = 2;
  auto m = MakeVertex("m", md);
  auto x = MakeVertex("x", Def("x"), {E(m, 1)});
  auto y = MakeVertex("y", Def("y"), {E(m, 0)});
  auto t = MakeVertex("t", Def("t"), {E(x), E(y)});
  auto v = BuildValue(E(t));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "t(x(m#1()),y(m#0()))");
  EXPECT_EQ(counters_.Execs("m"), 1);
  // Each output has its own key.
  auto direct = BuildValue(E(m, 1));
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(*direct, "m#1()");
  EXPECT_EQ(counters_.Execs("m"), 1);
  auto bad = BuildValue(E(m, 5));
  EXPECT_FALSE(bad.ok());
}

TEST_F(SolverTest, SelectorsSeparateKeys) {
  auto a = MakeVertex("a", Def("a"));
  TestOpDef d1 = Def("d");
  d1.selectors = {"/src"};
  TestOpDef d2 = Def("d");
  d2.selectors = {"/other"};
  d2.cache_definition = "d";
  ASSERT_TRUE(BuildValue(E(MakeVertex("d", d1, {E(a)}))).ok());
  // Same op definition, same input, another selector: a different key.
  auto v2 = MakeVertex("d2", d2, {E(a)});
  ASSERT_TRUE(BuildValue(E(v2)).ok());
  EXPECT_EQ(counters_.Execs("d"), 1);
  EXPECT_EQ(counters_.Execs("d2"), 1);
  ASSERT_TRUE(BuildValue(E(v2)).ok());
  EXPECT_EQ(counters_.Execs("d2"), 1);
}

TEST_F(SolverTest, DeepChainDoesNotRecurse) {
  constexpr int kDepth = 400;
  auto v = MakeVertex("n0", Def("n"));
  for (int i = 1; i < kDepth; ++i) v = MakeVertex("n" + std::to_string(i), Def("n"), {E(v)});
  BuildStats stats;
  ASSERT_TRUE(BuildValue(E(v), &stats).ok());
  EXPECT_EQ(stats.executed, kDepth);
  ASSERT_TRUE(BuildValue(E(v), &stats).ok());
  EXPECT_EQ(stats.cached, kDepth);
  EXPECT_EQ(counters_.TotalExecs(), kDepth);
}

TEST_F(SolverTest, InvalidGraphsAreRejected) {
  auto job = NewJob();
  EXPECT_EQ(solver_->Build(*job, Edge{}, CancelToken()).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto no_digest = std::make_shared<Vertex>();
  no_digest->name = "x";
  EXPECT_EQ(solver_->Build(*job, E(no_digest), CancelToken()).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto a = std::make_shared<Vertex>();
  a->name = "a";
  a->digest = Digest::Sha256Of("a");
  auto b = std::make_shared<Vertex>();
  b->name = "b";
  b->digest = Digest::Sha256Of("b");
  a->inputs = {Edge{b, 0}};
  b->inputs = {Edge{a, 0}};
  auto r = solver_->Build(*job, E(a), CancelToken());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  a->inputs.clear();  // break the cycle so the vertices can be freed
  b->inputs.clear();

  auto bad_index = MakeVertex("t", Def("t"), {E(MakeVertex("a", Def("a")), -1)});
  EXPECT_EQ(solver_->Build(*job, E(bad_index), CancelToken()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SolverTest, ResultsStayAliveUntilTheJobGoes) {
  Diamond g = MakeDiamond();
  auto job = NewJob();
  auto r = solver_->Build(*job, E(g.d), CancelToken());
  ASSERT_TRUE(r.ok());
  r = absl::CancelledError("drop");
  EXPECT_EQ(worker_->live.load(), 4);  // the job keeps every vertex's result
  job.reset();
  EXPECT_EQ(worker_->live.load(), 0);
}

}  // namespace
}  // namespace kiln::engine::testing
