#include "engine/executor/cgroup.h"

#include <cstdio>

#include <gtest/gtest.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/strings.h"

namespace kiln::engine::internal {
namespace {

bool IsCgroup2(const std::string& path) {
  struct statfs fs;
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

// A child that sleeps until killed; returns its pid.
pid_t SpawnSleeper() {
  pid_t pid = ::fork();
  if (pid == 0) {
    for (;;) ::pause();
  }
  return pid;
}

// cgroup files cannot be written through a temp file and rename.
bool WriteCgroupProcs(const std::string& dir, pid_t pid) {
  FILE* f = std::fopen(StrCat(dir, "/cgroup.procs").c_str(), "w");
  if (f == nullptr) return false;
  bool ok = std::fprintf(f, "%d", pid) > 0;
  return std::fclose(f) == 0 && ok;
}

std::string Parent() { return StrCat("kiln-cgtest-", ::getpid()); }

TEST(CgroupSetup, DetectsThisMachine) {
  CgroupSetup s = CgroupSetup::Detect(Parent());
  EXPECT_FALSE(s.detail().empty());
  EXPECT_EQ(s.v2(), IsCgroup2("/sys/fs/cgroup")) << s.detail();
  CgroupSetup none = CgroupSetup::Detect(Parent(), "/nonexistent");
  EXPECT_FALSE(none.available());
  EXPECT_EQ(none.Create("x", {0, 10}).status().code(), absl::StatusCode::kFailedPrecondition);
}

// The v2 code path (cgroup.kill, removal) on whichever cgroup2 mount this machine has, without
// controllers: hybrid hosts mount one at /sys/fs/cgroup/unified.
TEST(CgroupSetup, V2KillsWhatIsInsideAndRemovesIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string root = IsCgroup2("/sys/fs/cgroup") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
  if (!IsCgroup2(root)) GTEST_SKIP() << "no cgroup2 mount";
  CgroupSetup s = CgroupSetup::Detect(Parent(), root);
  ASSERT_TRUE(s.v2());
  auto cg = s.Create("run1", {});
  ASSERT_TRUE(cg.ok()) << cg.status();
  EXPECT_GE((*cg)->clone_fd(), 0);
  std::string dir = StrCat(root, "/", Parent(), "/run1");
  pid_t pid = SpawnSleeper();
  ASSERT_TRUE(WriteCgroupProcs(dir, pid));
  EXPECT_TRUE((*cg)->Remove().ok());
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_NE(::access(dir.c_str(), F_OK), 0);
  EXPECT_TRUE(s.RemoveStale().ok());
  ::rmdir(StrCat(root, "/", Parent()).c_str());
}

TEST(CgroupSetup, V1LimitsAndRemoval) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  CgroupSetup s = CgroupSetup::Detect(Parent());
  if (s.v2() || !s.available()) GTEST_SKIP() << s.detail();
  auto cg = s.Create("run2", {64 << 20, 7});
  ASSERT_TRUE(cg.ok()) << cg.status();
  EXPECT_EQ((*cg)->clone_fd(), -1);
  std::string pids = StrCat("/sys/fs/cgroup/pids/", Parent(), "/run2");
  std::string memory = StrCat("/sys/fs/cgroup/memory/", Parent(), "/run2");
  EXPECT_EQ(*ReadFileToString(StrCat(pids, "/pids.max")), "7\n");
  EXPECT_EQ(*ReadFileToString(StrCat(memory, "/memory.limit_in_bytes")), StrCat(64 << 20, "\n"));
  pid_t pid = SpawnSleeper();
  ASSERT_TRUE((*cg)->AddProcess(pid).ok());
  EXPECT_EQ(*ReadFileToString(StrCat(pids, "/cgroup.procs")), StrCat(pid, "\n"));
  EXPECT_FALSE((*cg)->OomKilled());
  EXPECT_TRUE((*cg)->Remove().ok());
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_NE(::access(pids.c_str(), F_OK), 0);
  EXPECT_NE(::access(memory.c_str(), F_OK), 0);
  ::rmdir(StrCat("/sys/fs/cgroup/pids/", Parent()).c_str());
  ::rmdir(StrCat("/sys/fs/cgroup/memory/", Parent()).c_str());
}

}  // namespace
}  // namespace kiln::engine::internal
