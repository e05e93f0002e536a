// Test-only helpers for engine/ops tests: a real worker in a temporary state directory, real
// committed snapshots made by writing files into an active snapshot, a busybox root filesystem
// snapshot, and a way to list a tree.
//
// Thread-safety: test thread only (the worker itself is thread-safe).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/executor/testing/busybox_rootfs.h"
#include "engine/ops/file_tree.h"
#include "engine/ops/llb_op.h"
#include "engine/worker/worker.h"
#include "gtest/gtest.h"

namespace kiln::engine::testing {

// Writes `content` to `root`/`rel` (parents created), with `mode`.
inline void WriteFile(const std::string& root, const std::string& rel, const std::string& content,
                      mode_t mode = 0644) {
  std::string path = root + "/" + rel;
  ASSERT_TRUE(MakeDirs(std::filesystem::path(path).parent_path().string()).ok());
  ASSERT_TRUE(WriteFileAtomic(path, content, mode).ok()) << path;
  ::chmod(path.c_str(), mode);
}

// "<type> <mode> <uid>:<gid> <content or target>" for every entry below `root`, by relative path.
// Types: f file, d dir, l symlink, c char device, p fifo.  Content of files is included.
inline std::map<std::string, std::string> ListTree(const std::string& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::string path = it->path().string();
    std::string rel = path.substr(root.size() + 1);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) continue;
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
    std::string desc;
    if (S_ISREG(st.st_mode)) {
      desc = StrCat("f ", mode, " ", st.st_uid, ":", st.st_gid, " ",
                    ReadFileToString(path).value_or("?"));
    } else if (S_ISDIR(st.st_mode)) {
      desc = StrCat("d ", mode, " ", st.st_uid, ":", st.st_gid);
    } else if (S_ISLNK(st.st_mode)) {
      desc = StrCat("l ", st.st_uid, ":", st.st_gid, " ",
                    std::filesystem::read_symlink(path, ec).string());
    } else if (S_ISCHR(st.st_mode)) {
      desc = StrCat("c ", major(st.st_rdev), ",", minor(st.st_rdev));
    } else {
      desc = "other";
    }
    out[rel] = desc;
  }
  return out;
}

// A worker in a fresh temporary state directory (tests run as root).
class WorkerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "engine/ops tests need root (snapshots, mounts)";
    auto dir = TempDir::Create("kiln-ops-test-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::move(*dir);
    options_.root = dir_.path() + "/state";
    options_.init_path = KILN_TEST_INIT_PATH;
    options_.sync = false;
    // KILN_TEST_NAIVE_SNAPSHOTTER=1 runs the same tests on the copying snapshotter.
    options_.force_naive_snapshotter = std::getenv("KILN_TEST_NAIVE_SNAPSHOTTER") != nullptr;
    Reopen();
  }
  void TearDown() override { worker_.reset(); }

  void Reopen() {
    worker_.reset();
    auto w = Worker::Open(options_);
    ASSERT_TRUE(w.ok()) << w.status();
    worker_ = std::move(*w);
    env_.worker = worker_.get();
  }

  // A committed snapshot on `parent` whose new content `fill(root)` writes (a real snapshot, as a
  // source op would make it).
  ResultRef MakeSnapshot(const std::function<void(const std::string&)>& fill,
                         const ResultRef& parent = nullptr) {
    auto tree = WriteTree::Prepare(*worker_, parent, "test source");
    EXPECT_TRUE(tree.ok()) << tree.status();
    if (!tree.ok()) return nullptr;
    fill((*tree)->path());
    auto ref = (*tree)->Commit();
    EXPECT_TRUE(ref.ok()) << ref.status();
    return ref.ok() ? *ref : nullptr;
  }

  ResultRef BusyboxSnapshot() {
    ResultRef r = MakeSnapshot([](const std::string& root) {
      absl::Status s = MakeBusyboxRootfs(root);
      ASSERT_TRUE(s.ok()) << s;
    });
    return r;
  }

  std::map<std::string, std::string> Tree(const ResultRef& r) {
    std::map<std::string, std::string> out;
    absl::Status s = worker_->WithReadOnlyMount(r, [&](const std::string& root) {
      out = ListTree(root);
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  std::string Parent(const ResultRef& r) {
    auto info = worker_->snapshots().Stat(SnapshotKeyOf(r));
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? info->parent : "";
  }

  int ActiveSnapshots() {
    int n = 0;
    EXPECT_TRUE(worker_->snapshots()
                    .Walk([&](const snapshotter::SnapshotInfo& info) {
                      if (info.kind != snapshotter::SnapshotKind::kCommitted) ++n;
                      return absl::OkStatus();
                    })
                    .ok());
    return n;
  }

  TempDir dir_;
  WorkerOptions options_;
  std::unique_ptr<Worker> worker_;
  OpEnv env_;
};

inline LlbOp MakeLlbOp(const pb::Op& op) {
  LlbOp l;
  l.op = op;
  l.digest = Digest::Sha256Of(op.SerializeAsString());
  l.platform = oci::HostPlatform();
  return l;
}

}  // namespace kiln::engine::testing
