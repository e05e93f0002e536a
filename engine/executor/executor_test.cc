// LinuxExecutor against real namespaces, mounts and cgroups, on a busybox root filesystem.
// Every test skips (with the reason) when the machine cannot run namespaces as root.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_split.h"
#include "base/cancel.h"
#include "base/fs.h"
#include "base/strings.h"
#include "engine/executor/linux_executor.h"
#include "engine/executor/testing/busybox_rootfs.h"

namespace kiln::engine {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Collects output; can wake a waiter when a marker appears.
class CollectSink : public OutputSink {
 public:
  void Write(OutputStream stream, std::string_view data) override {
    std::lock_guard<std::mutex> lock(mu_);
    (stream == OutputStream::kStdout ? out_ : err_).append(data);
    cv_.notify_all();
  }
  std::string out() {
    std::lock_guard<std::mutex> lock(mu_);
    return out_;
  }
  std::string err() {
    std::lock_guard<std::mutex> lock(mu_);
    return err_;
  }
  // Failsafe timeout only: returns false if `marker` never shows up.
  bool WaitFor(std::string_view marker) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(60),
                        [&] { return out_.find(marker) != std::string::npos; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string out_, err_;
};

struct RunResult {
  absl::Status status;
  std::string out, err;
};

std::string ReadFile(const std::string& path) {
  absl::StatusOr<std::string> s = ReadFileToString(path);
  return s.ok() ? *s : "";
}

std::string CapLine(const std::string& status, std::string_view key) {
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (absl::StartsWith(line, ToAbsl(key))) {
      std::string v(line.substr(key.size()));
      v.erase(0, v.find_first_not_of(" \t:"));
      return v;
    }
  }
  return "";
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// Processes whose command line contains `marker`.
std::vector<std::string> ProcessesWith(const std::string& marker) {
  std::vector<std::string> found;
  for (const std::string& pid : ListDir("/proc")) {
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadFile(StrCat("/proc/", pid, "/cmdline"));
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(marker) != std::string::npos) found.push_back(StrCat(pid, ": ", cmdline));
  }
  return found;
}

ProcessSpec Sh(std::string script) {
  ProcessSpec p;
  p.args = {"/bin/sh", "-c", std::move(script)};
  return p;
}

class ExecutorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = new std::string(testing::NamespaceTestSkipReason());
    if (!skip_reason_->empty()) return;
    auto dir = TempDir::Create("kiln-busybox-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    busybox_ = new TempDir(*std::move(dir));
    ASSERT_TRUE(testing::MakeBusyboxRootfs(busybox_->path()).ok());
  }
  static void TearDownTestSuite() {
    delete busybox_;
    busybox_ = nullptr;
  }

  void SetUp() override {
    if (!skip_reason_->empty()) GTEST_SKIP() << *skip_reason_;
    auto tmp = TempDir::Create("kiln-exec-test-");
    ASSERT_TRUE(tmp.ok()) << tmp.status();
    tmp_ = *std::move(tmp);
    upper_ = StrCat(tmp_.path(), "/upper");
    work_ = StrCat(tmp_.path(), "/work");
    ASSERT_TRUE(MakeDirs(upper_).ok());
    ASSERT_TRUE(MakeDirs(work_).ok());
    options_.init_path = KILN_TEST_INIT_PATH;
    options_.state_dir = StrCat(tmp_.path(), "/state");
    options_.cgroup_parent = StrCat("kiln-test-", ::getpid());
    options_.host_resolv_conf = StrCat(tmp_.path(), "/host-resolv.conf");
    ASSERT_TRUE(WriteFileAtomic(options_.host_resolv_conf,
                                "search example.com\nnameserver 127.0.0.53\nnameserver 10.1.2.3\n")
                    .ok());
    auto ex = NewLinuxExecutor(options_);
    ASSERT_TRUE(ex.ok()) << ex.status();
    executor_ = *std::move(ex);
  }

  void TearDown() override {
    executor_.reset();
    for (const char* h : {"memory", "pids", ""}) {
      std::string dir = StrCat("/sys/fs/cgroup/", h, *h ? "/" : "", options_.cgroup_parent);
      ::rmdir(dir.c_str());
    }
  }

  MountSpec RootOverlay() const {
    return MountSpec{"overlay",
                     "overlay",
                     "/",
                     {StrCat("lowerdir=", busybox_->path()), StrCat("upperdir=", upper_),
                      StrCat("workdir=", work_)}};
  }

  RunResult Run(const ProcessSpec& p, std::vector<MountSpec> extra = {},
                const CancelToken& cancel = CancelToken()) {
    std::vector<MountSpec> mounts = {RootOverlay()};
    for (auto& m : extra) mounts.push_back(std::move(m));
    CollectSink sink;
    RunResult r;
    r.status = executor_->Run(mounts, p, sink, cancel);
    r.out = sink.out();
    r.err = sink.err();
    return r;
  }

  RunResult RunOk(const ProcessSpec& p, std::vector<MountSpec> extra = {}) {
    RunResult r = Run(p, std::move(extra));
    EXPECT_TRUE(r.status.ok()) << r.status << "\nstdout: " << r.out << "\nstderr: " << r.err;
    return r;
  }

  static std::string* skip_reason_;
  static TempDir* busybox_;
  TempDir tmp_;
  std::string upper_, work_;
  LinuxExecutorOptions options_;
  std::unique_ptr<Executor> executor_;
};

std::string* ExecutorTest::skip_reason_ = nullptr;
TempDir* ExecutorTest::busybox_ = nullptr;

TEST_F(ExecutorTest, StreamsStdoutAndStderr) {
  RunResult r = RunOk(Sh("echo to-stdout; echo to-stderr >&2"));
  EXPECT_EQ(r.out, "to-stdout\n");
  EXPECT_EQ(r.err, "to-stderr\n");
}

}  // namespace
}  // namespace kiln::engine
