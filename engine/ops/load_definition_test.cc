// Loading LLB into the solver graph, and end-to-end builds through the real solver with the
// worker's cache storage and result loader.
#include "engine/ops/load_definition.h"

#include <mutex>

#include "engine/ops/file_op_testing.h"
#include "engine/ops/resolver.h"
#include "engine/ops/session.h"
#include "engine/solver/progress.h"
#include "engine/solver/solver.h"
#include "gtest/gtest.h"
#include "llb/llb.h"
#include "llb/validate.h"

namespace kiln::engine {
namespace {

using testing::WriteFile;

std::string Marshal(const llb::State& s) {
  auto def = s.Marshal();
  EXPECT_TRUE(def.ok()) << def.status();
  return def.ok() ? def->SerializeAsString() : "";
}

TEST(LoadDefinitionTest, OneVertexPerOpWithInputsOptionsAndPayload) {
  llb::State base =
      llb::Scratch().File(llb::Mkdir("/a", 0755), llb::Constraints().WithCustomName("make a"));
  llb::State other =
      llb::Scratch().File(llb::Mkfile("/b", 0644, "b"), llb::Constraints().WithIgnoreCache());
  llb::State merged = llb::Merge({base, other});
  std::string bytes = Marshal(merged);
  auto loaded = LoadDefinitionBytes(bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Vertex& m = *loaded->target.vertex;
  EXPECT_EQ(loaded->target.index, 0);
  ASSERT_EQ(m.inputs.size(), 2u);
  const LlbOp* op = LlbOpOf(m);
  ASSERT_NE(op, nullptr);
  EXPECT_TRUE(op->op.has_merge());
  EXPECT_EQ(op->digest, m.digest);
  EXPECT_EQ(op->platform, oci::HostPlatform());
  EXPECT_EQ(m.inputs[0].vertex->name, "make a");
  EXPECT_FALSE(m.inputs[0].vertex->options.ignore_cache);
  EXPECT_TRUE(m.inputs[1].vertex->options.ignore_cache);
  // The vertex digest is the LLB digest of the op's bytes.
  auto def = llb::LoadDefinition(bytes);
  ASSERT_TRUE(def.ok());
  EXPECT_NE(def->Find(m.inputs[0].vertex->digest), nullptr);

  // Build-wide no-cache.
  auto all = LoadDefinitionBytes(bytes, LoadOptions{.ignore_cache = true});
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->target.vertex->options.ignore_cache);
  EXPECT_TRUE(all->target.vertex->inputs[0].vertex->options.ignore_cache);
}

TEST(LoadDefinitionTest, EntitlementsAndNoCacheMounts) {
  llb::ExecInfo run;
  run.args = std::vector<std::string>{"true"};
  run.network = pb::HOST;
  run.mounts.push_back({"/cache", llb::Scratch(), {.cache = llb::MountOptions::Cache{"my-cache"}}});
  run.constraints = llb::Constraints().WithIgnoreCache();
  std::string bytes = Marshal(llb::Scratch().Run(run).Root());
  auto refused = LoadDefinitionBytes(bytes, LoadOptions{.allow_network_host = false});
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("network.host"), std::string::npos);
  auto ok = LoadDefinitionBytes(bytes);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->no_cache_mount_ids, (std::set<std::string>{"my-cache"}));
}

TEST(LoadDefinitionTest, RejectsInvalidDefinitions) {
  EXPECT_FALSE(LoadDefinitionBytes("not a definition").ok());
  pb::Definition empty;
  EXPECT_FALSE(LoadDefinitionBytes(empty.SerializeAsString()).ok());
}

// A root op standing in for a source: its output is a snapshot the test made.  Cacheable ones
// are named by their identifier (like an image pinned by digest); uncacheable ones behave like
// BuildKit v0.11's local source (dependents reach the cache only through content keys).
class TestSourceOp : public Op {
 public:
  TestSourceOp(std::string id, ResultRef r, bool cacheable)
      : id_(std::move(id)), r_(std::move(r)), cacheable_(cacheable) {}
  absl::StatusOr<CacheMap> GetCacheMap(const OpContext&) override {
    CacheMap cm;
    cm.digest = Digest::Sha256Of(StrCat("kiln-test-source ", id_));
    cm.uncacheable = !cacheable_;
    return cm;
  }
  absl::StatusOr<std::vector<ResultRef>> Exec(const OpContext&,
                                              std::span<const ResultRef>) override {
    return std::vector<ResultRef>{r_};
  }

 private:
  std::string id_;
  ResultRef r_;
  bool cacheable_;
};

class EndToEndTest : public testing::WorkerFixture {
 protected:
  void TearDown() override {
    sources_.clear();
    testing::WorkerFixture::TearDown();
  }

  // Test sources are LLB source ops with a kiln-test:// identifier.
  OpResolver Resolver() {
    OpResolver real = MakeResolver(env_);
    return [this, real](const Vertex& v,
                        const OpContext& ctx) -> absl::StatusOr<std::unique_ptr<Op>> {
      const LlbOp* op = LlbOpOf(v);
      if (op && op->op.has_source() && op->op.source().identifier().starts_with("kiln-test://")) {
        std::lock_guard<std::mutex> lock(mu_);
        const std::string& id = op->op.source().identifier();
        auto it = sources_.find(id);
        if (it == sources_.end()) return absl::NotFoundError(id);
        return std::unique_ptr<Op>(new TestSourceOp(id, it->second.first, it->second.second));
      }
      return real(v, ctx);
    };
  }

  void SetSource(const std::string& id, ResultRef r, bool cacheable) {
    std::lock_guard<std::mutex> lock(mu_);
    sources_[id] = {std::move(r), cacheable};
  }

  absl::StatusOr<ResultRef> Build(const std::string& bytes, BuildStats* stats,
                                  std::shared_ptr<ProgressRecorder> progress = nullptr,
                                  SessionGroup::Values values = {}) {
    if (!solver_) {
      solver_ = std::make_unique<Solver>(worker_->cache_storage(), worker_->result_loader(),
                                         SolverOptions{.max_parallel_exec = 2});
    }
    auto loaded = LoadDefinitionBytes(bytes);
    if (!loaded.ok()) return loaded.status();
    auto job = solver_->NewJob(JobOptions{
        .id = "test", .resolver = Resolver(), .progress = progress, .values = std::move(values)});
    return solver_->Build(*job, loaded->target, CancelToken(), stats);
  }

  void RestartDaemon() {
    solver_.reset();
    Reopen();
  }

  std::mutex mu_;
  std::map<std::string, std::pair<ResultRef, bool>> sources_;
  std::unique_ptr<Solver> solver_;
};

TEST_F(EndToEndTest, FileOpsFromScratchBuildThenHitTheCache) {
  ResultRef ctx1 = MakeSnapshot([](const std::string& r) {
    WriteFile(r, "src/main.go", "package main");
    WriteFile(r, "src/util.go", "package util");
    WriteFile(r, "README.md", "readme");
  });
  SetSource("kiln-test://context", ctx1, /*cacheable=*/false);
  llb::State context = llb::Source("kiln-test://context", {});
  llb::State out = llb::Scratch().File(llb::Mkdir("/app", 0755, {.make_parents = true})
                                           .Copy(context, "/src/*.go", "/app/",
                                                 {.follow_symlinks = true,
                                                  .create_dest_path = true,
                                                  .allow_wildcard = true,
                                                  .allow_empty_wildcard = true})
                                           .Mkfile("/app/VERSION", 0644, "1"));
  std::string bytes = Marshal(out);

  BuildStats s1;
  auto r1 = Build(bytes, &s1);
  ASSERT_TRUE(r1.ok()) << r1.status();
  auto t = Tree(*r1);
  EXPECT_EQ(t["app/main.go"], "f 0644 0:0 package main");
  EXPECT_EQ(t["app/util.go"], "f 0644 0:0 package util");
  EXPECT_EQ(t["app/VERSION"], "f 0644 0:0 1");
  EXPECT_EQ(t.count("README.md") + t.count("app/README.md"), 0u);
  EXPECT_GE(s1.executed, 1);

  // Same definition again: the file op is cached.
  BuildStats s2;
  auto r2 = Build(bytes, &s2);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(SnapshotKeyOf(*r2), SnapshotKeyOf(*r1));

  // The context is re-transferred (a new snapshot) with the same copied files and a changed
  // file that is not copied: the COPY hits through its content key.
  ResultRef ctx2 = MakeSnapshot([](const std::string& r) {
    WriteFile(r, "src/main.go", "package main");
    WriteFile(r, "src/util.go", "package util");
    WriteFile(r, "README.md", "changed readme");
  });
  SetSource("kiln-test://context", ctx2, false);
  BuildStats s3;
  auto r3 = Build(bytes, &s3);
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(SnapshotKeyOf(*r3), SnapshotKeyOf(*r1)) << "content key hit";

  // A copied file changed: the COPY runs again.
  ResultRef ctx3 = MakeSnapshot([](const std::string& r) {
    WriteFile(r, "src/main.go", "package main // changed");
    WriteFile(r, "src/util.go", "package util");
  });
  SetSource("kiln-test://context", ctx3, false);
  BuildStats s4;
  auto r4 = Build(bytes, &s4);
  ASSERT_TRUE(r4.ok()) << r4.status();
  EXPECT_NE(SnapshotKeyOf(*r4), SnapshotKeyOf(*r1));
  EXPECT_EQ(Tree(*r4)["app/main.go"], "f 0644 0:0 package main // changed");
}

TEST_F(EndToEndTest, RunOnBusyboxCachedAcrossJobsAndRestart) {
  std::string why = engine::testing::NamespaceTestSkipReason();
  if (!why.empty()) GTEST_SKIP() << why;
  SetSource("kiln-test://busybox", BusyboxSnapshot(), /*cacheable=*/true);
  llb::ExecInfo run;
  run.args = std::vector<std::string>{"/bin/sh", "-c", "echo built > /hello; echo step-output"};
  llb::State img = llb::Source("kiln-test://busybox", {}).Run(run).Root();
  llb::State final_state = img.File(llb::Copy(img, "/hello", "/copy", {}));
  std::string bytes = Marshal(final_state);

  auto progress = std::make_shared<ProgressRecorder>();
  BuildStats s1;
  auto r1 = Build(bytes, &s1, progress);
  ASSERT_TRUE(r1.ok()) << r1.status();
  auto t = Tree(*r1);
  EXPECT_EQ(t["hello"], "f 0644 0:0 built\n");
  EXPECT_EQ(t["copy"], "f 0644 0:0 built\n");
  EXPECT_EQ(s1.executed, 3);
  std::string logs;
  for (const auto& e : progress->events()) {
    if (e.kind == ProgressRecorder::Event::Kind::kLog) logs += e.log.data;
  }
  EXPECT_NE(logs.find("step-output"), std::string::npos);
  // Layers: final -> run -> busybox.
  std::string run_key = Parent(*r1);
  EXPECT_NE(run_key, "");
  auto run_info = worker_->snapshots().Stat(run_key);
  ASSERT_TRUE(run_info.ok());
  std::string base_key = sources_["kiln-test://busybox"].first
                             ? SnapshotKeyOf(sources_["kiln-test://busybox"].first)
                             : "";
  EXPECT_EQ(run_info->parent, base_key);

  BuildStats s2;
  auto r2 = Build(bytes, &s2);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(s2.executed, 0);
  EXPECT_EQ(s2.cached, s2.total);
  EXPECT_EQ(SnapshotKeyOf(*r2), SnapshotKeyOf(*r1));

  // A restarted daemon finds the results in the persistent cache.
  std::string key = SnapshotKeyOf(*r1);
  r1 = absl::StatusOr<ResultRef>(nullptr);
  r2 = absl::StatusOr<ResultRef>(nullptr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    sources_.clear();
  }
  RestartDaemon();
  auto base = worker_->RefFor(base_key);
  ASSERT_TRUE(base.ok());
  SetSource("kiln-test://busybox", *base, true);
  BuildStats s3;
  auto r3 = Build(bytes, &s3);
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(s3.executed, 0);
  EXPECT_EQ(SnapshotKeyOf(*r3), key);
}

class OneSecret : public Secrets {
 public:
  absl::StatusOr<std::string> Get(const std::string& id) override {
    if (id == "token") return std::string("TOP-SECRET-0xC0FFEE");
    return absl::NotFoundError(StrCat("secret ", id, " not found"));
  }
};

TEST_F(EndToEndTest, SecretsNeverReachLogsKeysOrLayers) {
  std::string why = engine::testing::NamespaceTestSkipReason();
  if (!why.empty()) GTEST_SKIP() << why;
  const std::string secret = "TOP-SECRET-0xC0FFEE";
  SetSource("kiln-test://busybox", BusyboxSnapshot(), true);
  auto build = [&](const std::string& id, bool optional) {
    llb::ExecInfo run;
    run.args = std::vector<std::string>{
        "/bin/sh", "-c", "test -f /run/secrets/s && wc -c < /run/secrets/s > /len; echo step-ran"};
    run.secrets.push_back(
        llb::SecretInfo{.id = id, .target = "/run/secrets/s", .optional = optional});
    std::string bytes = Marshal(llb::Source("kiln-test://busybox", {}).Run(run).Root());
    auto progress = std::make_shared<ProgressRecorder>();
    SessionGroup::Values values;
    values[kSessionSecrets] = std::shared_ptr<Secrets>(std::make_shared<OneSecret>());
    BuildStats stats;
    auto r = Build(bytes, &stats, progress, values);
    std::string seen;
    for (const auto& e : progress->events()) {
      seen += e.log.data + e.vertex.name + e.vertex.error + e.status.id;
    }
    for (const auto& k : stats.target_cache_keys) seen += k;
    EXPECT_EQ(seen.find(secret), std::string::npos);
    return std::make_pair(r, seen);
  };
  auto [ok, seen] = build("token", false);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_NE(seen.find("step-ran"), std::string::npos);
  auto t = Tree(*ok);
  EXPECT_EQ(t["len"], StrCat("f 0644 0:0 ", secret.size(), "\n"));
  for (const auto& [path, desc] : t) EXPECT_EQ(desc.find(secret), std::string::npos) << path;

  auto [missing, seen2] = build("absent-id", false);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("absent-id"), std::string::npos) << missing.status();
  EXPECT_EQ(std::string(missing.status().message()).find(secret), std::string::npos);
}

}  // namespace
}  // namespace kiln::engine
