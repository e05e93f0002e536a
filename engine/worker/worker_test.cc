#include "engine/worker/worker.h"

#include <fstream>

#include <unistd.h>

#include "base/fs.h"
#include "gtest/gtest.h"

namespace kiln::engine {
namespace {

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the worker needs root (snapshots, namespaces)";
    auto dir = TempDir::Create("kiln-worker-test-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::move(*dir);
    options_.root = dir_.path() + "/state";
    options_.init_path = KILN_TEST_INIT_PATH;
    options_.sync = false;
  }

  std::unique_ptr<Worker> Open() {
    auto w = Worker::Open(options_);
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? std::move(*w) : nullptr;
  }

  // Writes `content` to `path` inside the active snapshot and commits it.
  ResultRef WriteAndCommit(Worker& w, const ResultRef& parent, const std::string& path,
                           const std::string& content) {
    auto active = w.Prepare(parent, "test step");
    EXPECT_TRUE(active.ok()) << active.status();
    auto mnt = TempDir::Create("kiln-mnt-");
    EXPECT_TRUE(mnt.ok());
    {
      auto m = snapshotter::ScopedMount::MountAll(active->mounts(), mnt->path());
      EXPECT_TRUE(m.ok()) << m.status();
      std::ofstream(mnt->path() + "/" + path) << content;
    }
    auto ref = w.Commit(std::move(*active));
    EXPECT_TRUE(ref.ok()) << ref.status();
    return *ref;
  }

  TempDir dir_;
  WorkerOptions options_;
};

TEST_F(WorkerTest, CommitsChainAndReadsBack) {
  auto w = Open();
  ASSERT_TRUE(w);
  ResultRef base = WriteAndCommit(*w, nullptr, "a", "1");
  ResultRef top = WriteAndCommit(*w, base, "b", "2");
  std::string seen;
  ASSERT_TRUE(w->WithReadOnlyMount(top, [&](const std::string& root) {
                 seen = *ReadFileToString(root + "/a") + *ReadFileToString(root + "/b");
                 return absl::OkStatus();
               }).ok());
  EXPECT_EQ(seen, "12");
  // Scratch mounts as an empty directory.
  ASSERT_TRUE(w->WithReadOnlyMount(w->EmptyResult(), [&](const std::string& root) {
                 EXPECT_NE(::access((root + "/a").c_str(), F_OK), 0);
                 return absl::OkStatus();
               }).ok());
}

TEST_F(WorkerTest, SecondOpenOfSameStateDirIsRefused) {
  auto w = Open();
  ASSERT_TRUE(w);
  auto again = Worker::Open(options_);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(WorkerTest, ReopenKeepsCommittedAndDropsActive) {
  std::string committed;
  {
    auto w = Open();
    ASSERT_TRUE(w);
    committed = WriteAndCommit(*w, nullptr, "f", "x")->ID();
    auto active = w->Prepare(nullptr, "abandoned");
    ASSERT_TRUE(active.ok());
    active->Release();  // as if the process died before removing it
  }
  auto w = Open();
  ASSERT_TRUE(w);
  int active = 0;
  ASSERT_TRUE(w->snapshots()
                  .Walk([&](const snapshotter::SnapshotInfo& info) {
                    if (info.kind != snapshotter::SnapshotKind::kCommitted) active++;
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(active, 0);
  auto loaded = w->result_loader()->Load(committed, CancelToken());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->ID(), committed);
  EXPECT_EQ(w->result_loader()->Load("snap-missing", CancelToken()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(WorkerTest, PruneSkipsLiveRefsAndRemovesLeavesFirst) {
  auto w = Open();
  ASSERT_TRUE(w);
  std::string base_id, top_id;
  {
    ResultRef base = WriteAndCommit(*w, nullptr, "a", std::string(1000, 'a'));
    ResultRef top = WriteAndCommit(*w, base, "b", "b");
    base_id = base->ID();
    top_id = top->ID();
    auto removed = w->Prune({});
    ASSERT_TRUE(removed.ok()) << removed.status();
    EXPECT_TRUE(removed->empty()) << "live results must survive prune";
  }
  auto removed = w->Prune({});
  ASSERT_TRUE(removed.ok()) << removed.status();
  ASSERT_EQ(removed->size(), 2u);
  EXPECT_EQ((*removed)[0].id, top_id);
  EXPECT_EQ((*removed)[1].id, base_id);
  auto usage = w->DiskUsage();
  ASSERT_TRUE(usage.ok());
  EXPECT_TRUE(usage->empty());
}

TEST_F(WorkerTest, ImageStoreRoundTrip) {
  auto w = Open();
  ASSERT_TRUE(w);
  oci::Descriptor d{
      .media_type = oci::kMediaTypeImageManifest, .digest = Digest::Sha256Of("m"), .size = 1};
  ASSERT_TRUE(w->images().Put("docker.io/library/busybox:latest", d).ok());
  auto r = w->images().Get("docker.io/library/busybox:latest");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->target, d);
  EXPECT_EQ(w->images().Get("nope").status().code(), absl::StatusCode::kNotFound);
  auto all = w->images().List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
}

}  // namespace
}  // namespace kiln::engine
