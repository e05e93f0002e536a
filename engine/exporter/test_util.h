// Test fixture for the exporters: a real worker (overlay snapshots) and a result built the way
// engine ops build them, one committed snapshot per step:
//   1. a busybox root filesystem                       ("ADD rootfs")
//   2. changes: /app (0750, 1000:1000) with hello (0640, 1000:50), a symlink, a hardlink,
//      a setuid file, a fifo, an xattr, and /app/gone/x, /etc/motd   ("RUN change")
//   3. deletions: /etc/group, /app/gone (whiteouts)     ("RUN rm")
//   4. nothing (an empty diff)                          ("WORKDIR /app")
// plus the image config a Dockerfile frontend would return for it.
#pragma once

#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/strings.h"
#include "engine/executor/testing/busybox_rootfs.h"
#include "engine/worker/worker.h"
#include "gtest/gtest.h"

namespace kiln::engine::testing {

inline constexpr char kFrontendConfig[] = R"({
  "architecture": "amd64", "os": "linux",
  "config": {"User": "app", "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hi"],
             "Cmd": ["/bin/sh", "-c", "cat /app/hello"], "WorkingDir": "/app",
             "Labels": {"org.example.test": "exporter"}},
  "rootfs": {"type": "layers", "diff_ids": []},
  "history": [
    {"created_by": "ADD rootfs / # buildkit", "comment": "buildkit.dockerfile.v0"},
    {"created_by": "ENV GREETING=hi", "comment": "buildkit.dockerfile.v0", "empty_layer": true},
    {"created_by": "RUN change", "comment": "buildkit.dockerfile.v0"},
    {"created_by": "RUN rm", "comment": "buildkit.dockerfile.v0"},
    {"created_by": "WORKDIR /app", "comment": "buildkit.dockerfile.v0"},
    {"created_by": "USER app", "comment": "buildkit.dockerfile.v0", "empty_layer": true}
  ]
})";

// Runs a shell command, returning its exit status and stdout (stderr goes to the test log).
struct CommandResult {
  int status = -1;
  std::string out;
};
inline CommandResult Sh(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>>/tmp/kiln-exporter-test.log").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline void WriteFile(const std::string& path, const std::string& content, mode_t mode,
                      uid_t uid = 0, gid_t gid = 0) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  ASSERT_EQ(::chown(path.c_str(), uid, gid), 0) << path;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

class ExporterFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "exporter tests need root (overlay snapshots)";
    if (::access(kBusyboxPath, X_OK) != 0) GTEST_SKIP() << "needs busybox-static";
    auto dir = TempDir::Create("kiln-exporter-test-", "/var/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::move(*dir);
    WorkerOptions wo;
    wo.root = dir_.path() + "/state";
    wo.init_path = KILN_TEST_INIT_PATH;
    wo.sync = false;
    wo.force_naive_snapshotter = naive_;
    auto w = Worker::Open(wo);
    ASSERT_TRUE(w.ok()) << w.status();
    worker_ = std::move(*w);
  }

  void TearDown() override {
    results_.clear();
    worker_.reset();
  }

  std::string Path(const std::string& rel) const { return dir_.path() + "/" + rel; }

  // Prepare -> mount -> fn(root) -> unmount -> commit, like an engine op.
  ResultRef Step(const ResultRef& parent, const std::string& description,
                 const std::function<void(const std::string&)>& fn) {
    auto active = worker_->Prepare(parent, description);
    EXPECT_TRUE(active.ok()) << active.status();
    if (!active.ok()) return nullptr;
    auto mnt = TempDir::Create("mnt-", dir_.path());
    EXPECT_TRUE(mnt.ok());
    {
      auto m = snapshotter::ScopedMount::MountAll(active->mounts(), mnt->path());
      EXPECT_TRUE(m.ok()) << m.status();
      if (!m.ok()) return nullptr;
      fn(mnt->path());
    }
    auto ref = worker_->Commit(std::move(*active));
    EXPECT_TRUE(ref.ok()) << ref.status();
    if (ref.ok()) results_.push_back(*ref);
    return ref.ok() ? *ref : nullptr;
  }

  ResultRef BuildChain() {
    ResultRef base = Step(nullptr, "ADD rootfs", [](const std::string& root) {
      ASSERT_TRUE(MakeBusyboxRootfs(root).ok());
    });
    ResultRef change = Step(base, "RUN change", [](const std::string& r) {
      ASSERT_EQ(::mkdir((r + "/app").c_str(), 0750), 0);
      ASSERT_EQ(::chown((r + "/app").c_str(), 1000, 1000), 0);
      ASSERT_EQ(::chmod((r + "/app").c_str(), 0750), 0);
      WriteFile(r + "/app/hello", "hello from kiln\n", 0640, 1000, 50);
      ASSERT_EQ(::symlink("hello", (r + "/app/link").c_str()), 0);
      ASSERT_EQ(::link((r + "/app/hello").c_str(), (r + "/app/hard").c_str()), 0);
      WriteFile(r + "/app/setuid", "#!/bin/sh\n", 04755);
      ASSERT_EQ(::mkfifo((r + "/app/fifo").c_str(), 0600), 0);
      ASSERT_EQ(::lsetxattr((r + "/app/hello").c_str(), "user.kiln", "x", 1, 0), 0);
      ASSERT_EQ(::mkdir((r + "/app/gone").c_str(), 0755), 0);
      WriteFile(r + "/app/gone/x", "x", 0644);
      WriteFile(r + "/etc/motd", "welcome\n", 0644);
    });
    ResultRef removed = Step(change, "RUN rm", [](const std::string& r) {
      ASSERT_EQ(::unlink((r + "/etc/group").c_str()), 0);
      ASSERT_TRUE(RemoveAll(r + "/app/gone").ok());
    });
    return Step(removed, "WORKDIR /app", [](const std::string&) {});
  }

  bool naive_ = false;  // the copying snapshotter instead of overlayfs
  TempDir dir_;
  std::unique_ptr<Worker> worker_;
  std::vector<ResultRef> results_;
};

}  // namespace kiln::engine::testing
