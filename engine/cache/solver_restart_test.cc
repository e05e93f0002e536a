// The solver over the leveldb storage across restarts: a new Solver, a reopened database and a new
// worker over the same persisted results must hit the cache.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/cache/leveldb_cache_storage.h"
#include "engine/solver/solver.h"
#include "engine/solver/test_ops.h"

namespace kiln::engine::testing {
namespace {

TestOpDef Def(std::string value) {
  TestOpDef d;
  d.value = std::move(value);
  return d;
}

// A diamond plus a local-source chain keyed by content:
//   a -> b, c -> d;   l (uncacheable) -> copy (content key on l) ;   t(d, copy)
std::shared_ptr<const Vertex> MakeGraph() {
  auto a = MakeVertex("a", Def("a"));
  auto b = MakeVertex("b", Def("b"), {E(a)});
  auto c = MakeVertex("c", Def("c"), {E(a)});
  auto d = MakeVertex("d", Def("d"), {E(b), E(c)});
  TestOpDef ld = Def("local");
  ld.uncacheable = true;
  auto l = MakeVertex("l", ld);
  TestOpDef cd = Def("copy");
  cd.content_inputs = {true};
  auto copy = MakeVertex("copy", cd, {E(l)});
  return MakeVertex("t", Def("t"), {E(d), E(copy)});
}

constexpr char kExpected[] = "t(d(b(a()),c(a())),copy(local()))";

class SolverRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("kiln-restart-");
    ASSERT_TRUE(dir.ok());
    state_ = std::move(*dir);
    ASSERT_TRUE(MakeDirs(ResultsDir()).ok());
  }
  void TearDown() override { Stop(); }

  std::string ResultsDir() const { return state_.path() + "/results"; }

  // A "daemon start": everything opened afresh from the state directory.
  void Start() {
    worker_ = std::make_shared<TestWorker>(ResultsDir());
    auto s = LevelDbCacheStorage::Open(state_.path() + "/cache");
    ASSERT_TRUE(s.ok()) << s.status();
    storage_ = std::move(*s);
    solver_ = std::make_unique<Solver>(storage_, worker_, SolverOptions{2, 2});
  }

  void Stop() {
    solver_.reset();
    storage_.reset();
    if (worker_) {
      EXPECT_EQ(worker_->live.load(), 0);
    }
    worker_.reset();
  }

  absl::StatusOr<std::string> Build(BuildStats* stats) {
    JobOptions o;
    o.id = "restart";
    o.resolver = MakeResolver(worker_.get(), &counters_);
    auto job = solver_->NewJob(std::move(o));
    KILN_ASSIGN_OR_RETURN(ResultRef r, solver_->Build(*job, E(MakeGraph()), CancelToken(), stats));
    return ValueOf(r);
  }

  TempDir state_;
  std::shared_ptr<TestWorker> worker_;
  std::shared_ptr<LevelDbCacheStorage> storage_;
  std::unique_ptr<Solver> solver_;
  TestCounters counters_;
};

TEST_F(SolverRestartTest, EverythingIsCachedAfterARestart) {
  Start();
  BuildStats stats;
  auto v = Build(&stats);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, kExpected);
  EXPECT_EQ(stats.executed, 7);
  Stop();

  Start();
  v = Build(&stats);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, kExpected);
  // Only the local source is read again (it cannot be named by definition); its unchanged content
  // makes everything else a hit.
  EXPECT_EQ(counters_.Execs("l"), 2);
  EXPECT_EQ(counters_.TotalExecs(), 8);
  EXPECT_EQ(stats.executed, 1);
  EXPECT_EQ(stats.cached, 6);
}

TEST_F(SolverRestartTest, ResultsPrunedWhileDownAreRebuilt) {
  Start();
  ASSERT_TRUE(Build(nullptr).ok());
  Stop();
  for (const auto& e : std::filesystem::directory_iterator(ResultsDir())) {
    std::filesystem::remove(e);
  }
  Start();
  auto v = Build(nullptr);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, kExpected);
  EXPECT_EQ(counters_.TotalExecs(), 14);
}

TEST_F(SolverRestartTest, StartupReconcileDropsRecordsOfLostResults) {
  Start();
  ASSERT_TRUE(Build(nullptr).ok());
  auto before = ListCachedResults(*storage_);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->size(), 6u);  // every output but the uncacheable source's
  Stop();
  std::string lost = (*before)[0].id;
  std::filesystem::remove(ResultsDir() + "/" + lost);

  Start();
  auto released = ReleaseUnreferenced(*storage_, [&](const std::string& id) {
    return std::filesystem::exists(ResultsDir() + "/" + id);
  });
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 1);
  auto after = ListCachedResults(*storage_);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), 5u);
  for (const auto& r : *after) EXPECT_NE(r.id, lost);
}

// A daemon killed right after a build (no destructor, no database close) restarts into a cache
// holding every record of that build: each commit was one synced write batch.
TEST_F(SolverRestartTest, RecordsSurviveAKilledProcess) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Start();
    auto v = Build(nullptr);
    _exit(v.ok() && *v == kExpected ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);

  Start();
  BuildStats stats;
  auto v = Build(&stats);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, kExpected);
  EXPECT_EQ(stats.executed, 1);  // the local source only
  EXPECT_EQ(counters_.Execs("copy"), 0);
  EXPECT_EQ(counters_.Execs("d"), 0);
}

}  // namespace
}  // namespace kiln::engine::testing
