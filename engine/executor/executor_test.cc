// LinuxExecutor against real namespaces, mounts and cgroups, on a busybox root filesystem.
// Every test skips (with the reason) when the machine cannot run namespaces as root.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
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

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/cancel.h"
#include "base/fs.h"
#include "base/status.h"
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

std::vector<std::string> ListDir(const std::string& path, bool dirs_only = false) {
  std::vector<std::string> out;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && (!dirs_only || e->d_type == DT_DIR)) out.push_back(n);
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

// Polls `done` until it holds or ten seconds pass; for states another process reaches.
bool WaitUntil(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
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

TEST_F(ExecutorTest, NonZeroExitNamesTheCommandAndShowsTheTail) {
  RunResult r = Run(Sh("echo first-line; echo second-line >&2; exit 3"));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnknown);
  EXPECT_THAT(std::string(r.status.message()),
              AllOf(StartsWith("process \"/bin/sh -c echo first-line; echo second-line >&2; exit "
                               "3\" did not complete successfully: exit code: 3"),
                    HasSubstr("first-line"), HasSubstr("second-line")));
  EXPECT_EQ(ExitCodeFromStatus(r.status), 3);
  EXPECT_EQ(ExitCodeFromStatus(absl::UnknownError("x")), std::nullopt);
}

TEST_F(ExecutorTest, ValidExitCodesAcceptOtherCodes) {
  ProcessSpec p = Sh("exit 3");
  p.valid_exit_codes = {0, 3};
  EXPECT_TRUE(Run(p).status.ok());
  p.valid_exit_codes = {1};
  EXPECT_EQ(ExitCodeFromStatus(Run(Sh("exit 0")).status), std::nullopt);
  ProcessSpec zero = Sh("exit 0");
  zero.valid_exit_codes = {1};
  EXPECT_EQ(ExitCodeFromStatus(Run(zero).status), 0);
}

TEST_F(ExecutorTest, ReportsDeathBySignal) {
  RunResult r = Run(Sh("kill -9 $$"));
  EXPECT_EQ(ExitCodeFromStatus(r.status), 137);
  EXPECT_THAT(std::string(r.status.message()),
              AllOf(HasSubstr("exit code: 137"), HasSubstr("SIGKILL")));
}

TEST_F(ExecutorTest, MissingExecutableIsReported) {
  ProcessSpec p;
  p.args = {"no-such-command", "arg"};
  RunResult r = Run(p);
  EXPECT_EQ(ExitCodeFromStatus(r.status), 127);
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr("process \"no-such-command arg\" did not complete successfully: exec: "
                        "\"no-such-command\": executable file not found in $PATH"));
}

TEST_F(ExecutorTest, ResolvesUsersLikeBuildKit) {
  struct Case {
    std::string user, id, home;
  };
  const Case cases[] = {
      {"", "uid=0(root) gid=0(root) groups=0(root),10(wheel)", "/root"},
      {"root", "uid=0(root) gid=0(root) groups=0(root),10(wheel)", "/root"},
      {"app", "uid=1000(app) gid=1000(app) groups=10(wheel),50(staff),1000(app)", "/home/app"},
      {"1000", "uid=1000(app) gid=1000(app) groups=10(wheel),50(staff),1000(app)", "/home/app"},
      {"1000:50", "uid=1000(app) gid=50(staff) groups=50(staff)", "/home/app"},
      {"app:staff", "uid=1000(app) gid=50(staff) groups=50(staff)", "/home/app"},
      {"nobody", "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)", "/nonexistent"},
      {"4242", "uid=4242 gid=0(root) groups=0(root)", "/"},
  };
  for (const Case& c : cases) {
    ProcessSpec p = Sh("id; echo $HOME");
    p.user = c.user;
    RunResult r = RunOk(p);
    EXPECT_EQ(r.out, StrCat(c.id, "\n", c.home, "\n")) << "user " << Quote(c.user);
  }
  ProcessSpec bogus = Sh("id");
  bogus.user = "bogus";
  RunResult r = Run(bogus);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status.message()),
              HasSubstr("process \"/bin/sh -c id\" did not complete successfully: unable to find "
                        "user bogus: no matching entries in passwd file"));
}

TEST_F(ExecutorTest, EnvironmentDefaultsAndWorkingDirectory) {
  ProcessSpec p = Sh("echo \"$FOO|$PATH|$HOME\"; pwd; stat -c '%u:%g %a' /work /work/sub");
  p.env = {"FOO=bar baz"};
  p.cwd = "/work/sub";
  p.user = "app";
  RunResult r = RunOk(p);
  EXPECT_EQ(r.out, StrCat("bar baz|", kDefaultPath,
                          "|/home/app\n/work/sub\n1000:1000 755\n1000:1000 755\n"));

  ProcessSpec own = Sh("echo \"$PATH|$HOME\"");
  own.env = {"PATH=/bin", "HOME=/elsewhere"};
  EXPECT_EQ(RunOk(own).out, "/bin|/elsewhere\n");
}

TEST_F(ExecutorTest, HostnameHostsAndResolvConf) {
  RunResult def = RunOk(Sh("hostname; cat /etc/hosts"));
  EXPECT_EQ(def.out,
            "buildkitsandbox\n127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost "
            "ip6-localhost ip6-loopback\n");

  ProcessSpec p = Sh("hostname; cat /etc/hosts; cat /etc/resolv.conf");
  p.hostname = "builder";
  p.extra_hosts = {{"db", "10.0.0.5"}, {"v6", "2001:db8:0:0::1"}};
  p.network = NetworkMode::kNone;
  RunResult r = RunOk(p);
  EXPECT_EQ(r.out,
            "builder\n127.0.0.1\tlocalhost builder\n::1\tlocalhost ip6-localhost "
            "ip6-loopback\n10.0.0.5\tdb\n2001:db8::1\tv6\n"
            "search example.com\nnameserver 10.1.2.3\n");

  ProcessSpec host = Sh("cat /etc/resolv.conf");
  host.network = NetworkMode::kHost;
  EXPECT_EQ(RunOk(host).out, "search example.com\nnameserver 127.0.0.53\nnameserver 10.1.2.3\n");

  ProcessSpec bad = Sh("true");
  bad.extra_hosts = {{"evil\nhost", "10.0.0.1"}};
  EXPECT_EQ(Run(bad).status.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ExecutorTest, RunsInItsOwnPidNamespace) {
  RunResult r =
      RunOk(Sh("echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; ls /proc | grep -c "
               "'^[0-9]'"));
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
  ASSERT_GE(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0], "2");  // kiln-init is PID 1
  EXPECT_THAT(lines[1], HasSubstr("kiln-init"));
  int count = 0;
  ASSERT_TRUE(absl::SimpleAtoi(lines[2], &count)) << r.out;
  EXPECT_LE(count, 4);  // init, sh, ls, grep
}

TEST_F(ExecutorTest, NetworkNoneHasOnlyLoopbackUp) {
  ProcessSpec p =
      Sh("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; echo ---; "
         "ip link show lo");
  p.network = NetworkMode::kNone;
  RunResult r = RunOk(p);
  EXPECT_THAT(r.out, StartsWith("lo\n---\n"));  // no other interface
  EXPECT_THAT(r.out, HasSubstr("<LOOPBACK,UP,LOWER_UP>"));
}

TEST_F(ExecutorTest, NetworkHostSeesHostInterfaces) {
  auto names = [](const std::string& dev) {
    std::set<std::string> out;
    std::vector<std::string> lines = absl::StrSplit(dev, '\n', absl::SkipEmpty());
    for (size_t i = 2; i < lines.size(); ++i) {
      std::string n = lines[i].substr(0, lines[i].find(':'));
      n.erase(0, n.find_first_not_of(' '));
      out.insert(n);
    }
    return out;
  };
  ProcessSpec p = Sh("cat /proc/net/dev");
  p.network = NetworkMode::kHost;
  EXPECT_EQ(names(RunOk(p).out), names(ReadFile("/proc/net/dev")));
}

TEST_F(ExecutorTest, DefaultCapabilitiesMatchBuildKit) {
  std::string own = ReadFile("/proc/self/status");
  uint64_t own_bounding = std::stoull(CapLine(own, "CapBnd"), nullptr, 16);
  char expected[17];
  std::snprintf(expected, sizeof(expected), "%016llx",
                static_cast<unsigned long long>(0xa80425fbULL & own_bounding));

  std::string root = RunOk(Sh("grep Cap /proc/self/status; grep NoNewPrivs /proc/self/status")).out;
  EXPECT_EQ(CapLine(root, "CapBnd"), expected);
  EXPECT_EQ(CapLine(root, "CapEff"), expected);
  EXPECT_EQ(CapLine(root, "CapPrm"), expected);
  EXPECT_EQ(CapLine(root, "CapInh"), "0000000000000000");
  EXPECT_EQ(CapLine(root, "CapAmb"), "0000000000000000");
  EXPECT_EQ(CapLine(root, "NoNewPrivs"), "0");  // BuildKit: oci.WithNewPrivileges

  ProcessSpec app = Sh("grep Cap /proc/self/status");
  app.user = "app";
  std::string user = RunOk(app).out;
  EXPECT_EQ(CapLine(user, "CapBnd"), expected);
  EXPECT_EQ(CapLine(user, "CapEff"), "0000000000000000");
  EXPECT_EQ(CapLine(user, "CapPrm"), "0000000000000000");
}

TEST_F(ExecutorTest, InsecureGetsEveryCapability) {
  std::string own = ReadFile("/proc/self/status");
  ProcessSpec p = Sh("grep Cap /proc/self/status");
  p.security = SecurityMode::kInsecure;
  std::string caps = RunOk(p).out;
  EXPECT_EQ(CapLine(caps, "CapBnd"), CapLine(own, "CapBnd"));
  EXPECT_EQ(CapLine(caps, "CapEff"), CapLine(own, "CapPrm"));
  EXPECT_EQ(CapLine(caps, "CapAmb"), CapLine(own, "CapPrm"));

  p.user = "app";  // ambient capabilities survive the uid change
  EXPECT_EQ(CapLine(RunOk(p).out, "CapEff"), CapLine(own, "CapPrm"));
}

TEST_F(ExecutorTest, SeccompRefusesNamespacesInTheSandboxOnly) {
  const char* script =
      "grep Seccomp: /proc/self/status | tr -d '\\t';"
      "unshare -U -r true 2>/dev/null && echo userns-allowed || echo userns-refused;"
      "unshare -m true 2>/dev/null && echo mountns-allowed || echo mountns-refused";
  EXPECT_EQ(RunOk(Sh(script)).out, "Seccomp:2\nuserns-refused\nmountns-refused\n");
  ProcessSpec insecure = Sh(script);
  insecure.security = SecurityMode::kInsecure;
  EXPECT_EQ(RunOk(insecure).out, "Seccomp:0\nuserns-allowed\nmountns-allowed\n");
}

TEST_F(ExecutorTest, ProcSysDevAreSetUp) {
  RunResult r =
      RunOk(Sh("test -r /proc/self/status && echo proc-ok;"
               "grep ' /sys ' /proc/self/mountinfo | grep -q ' ro,' && echo sys-ro;"
               "touch /sys/kernel/kiln 2>/dev/null || echo sys-not-writable;"
               "echo x > /dev/null && echo null-ok;"
               "head -c 4 /dev/zero | wc -c;"
               "test -d /dev/shm && touch /dev/shm/f && echo shm-ok;"
               "test -c /dev/pts/ptmx && readlink /dev/ptmx;"
               "for l in fd stdin stdout stderr; do readlink /dev/$l; done;"
               "wc -c < /proc/keys; test -d /proc/acpi && ls /proc/acpi | wc -l;"
               "echo 1 > /proc/sysrq-trigger 2>/dev/null || echo sysrq-ro;"
               "echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || echo procsys-ro"));
  EXPECT_EQ(r.out,
            "proc-ok\nsys-ro\nsys-not-writable\nnull-ok\n4\nshm-ok\npts/ptmx\n/proc/self/fd\n"
            "/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\n0\n0\nsysrq-ro\nprocsys-ro\n");
}

TEST_F(ExecutorTest, DeviceNodesMadeInsideTheSandboxCannotBeOpened) {
  struct stat st;
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  // Without a device cgroup, CAP_MKNOD alone must not give access to a host device: every
  // writable mount of the sandbox is nodev.
  RunResult r = RunOk(
      Sh("mknod /tmp/mem c 1 1 && echo made; head -c 1 /tmp/mem >/dev/null 2>&1 || echo denied"));
  EXPECT_EQ(r.out, "made\ndenied\n");
}

TEST_F(ExecutorTest, SymlinkedMountTargetsStayInsideTheRoot) {
  std::string outside = StrCat(tmp_.path(), "/outside");
  ASSERT_TRUE(MakeDirs(outside).ok());
  // The image (here: the overlay's upper layer) has hostile symlinks at mount targets.
  ASSERT_EQ(::symlink(outside.c_str(), StrCat(upper_, "/abs").c_str()), 0);
  ASSERT_EQ(::symlink("../../../../../../../..", StrCat(upper_, "/rel").c_str()), 0);
  ASSERT_EQ(::symlink("/etc", StrCat(upper_, "/etclink").c_str()), 0);
  std::vector<MountSpec> mounts = {
      {"tmpfs", "tmpfs", "/abs/x", {"size=1m"}},
      {"tmpfs", "tmpfs", "/rel/y", {"size=1m"}},
      {"tmpfs", "tmpfs", "/etclink/z", {"size=1m"}},
  };
  RunResult r =
      RunOk(Sh(StrCat("cut -d' ' -f5 /proc/self/mountinfo | grep -E '/(x|y|z)$'")), mounts);
  EXPECT_EQ(r.out, StrCat(outside, "/x\n/y\n/etc/z\n"));
  struct stat st;
  EXPECT_NE(::stat(StrCat(outside, "/x").c_str(), &st), 0) << "a mount stub escaped the root";
}

TEST_F(ExecutorTest, MountTargetIntoProcIsRejected) {
  ASSERT_EQ(::symlink("/proc/sys", StrCat(upper_, "/procsys").c_str()), 0);
  RunResult r = Run(Sh("true"), {{"tmpfs", "tmpfs", "/procsys/kernel", {}}});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("resolves into /proc or /sys"));
}

TEST_F(ExecutorTest, BindMountsHonourReadOnly) {
  std::string data = StrCat(tmp_.path(), "/data");
  ASSERT_TRUE(MakeDirs(data).ok());
  ASSERT_TRUE(WriteFileAtomic(StrCat(data, "/file"), "content\n").ok());
  std::string rwdir = StrCat(tmp_.path(), "/rw");
  ASSERT_TRUE(MakeDirs(rwdir).ok());
  RunResult r = RunOk(Sh("cat /data/file; touch /data/new 2>/dev/null || echo ro; "
                         "echo written > /out/result; cat /single"),
                      {{"bind", data, "/data", {"rbind", "ro"}},
                       {"bind", rwdir, "/out", {"rbind"}},
                       {"bind", StrCat(data, "/file"), "/single", {"rbind", "ro"}}});
  EXPECT_EQ(r.out, "content\nro\ncontent\n");
  EXPECT_EQ(ReadFile(StrCat(rwdir, "/result")), "written\n");

  RunResult missing = Run(Sh("true"), {{"bind", StrCat(tmp_.path(), "/nope"), "/x", {"rbind"}}});
  EXPECT_EQ(missing.status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status.message()), HasSubstr("/nope"));
}

TEST_F(ExecutorTest, RootfsLowerdirUnchangedAndStubsRemoved) {
  RunResult r = RunOk(Sh("echo hi > /newfile; rm /bin/ls; cat /etc/hosts > /dev/null"),
                      {{"tmpfs", "tmpfs", "/cache/dir", {}}});
  struct stat st;
  EXPECT_NE(::stat(StrCat(busybox_->path(), "/newfile").c_str(), &st), 0);
  EXPECT_EQ(::lstat(StrCat(busybox_->path(), "/bin/ls").c_str(), &st), 0);
  EXPECT_EQ(ReadFile(StrCat(upper_, "/newfile")), "hi\n");
  ASSERT_EQ(::lstat(StrCat(upper_, "/bin/ls").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << "expected an overlay whiteout";
  // BuildKit's mount stubs are gone from the layer; their parents stay.
  EXPECT_NE(::lstat(StrCat(upper_, "/etc/hosts").c_str(), &st), 0);
  EXPECT_NE(::lstat(StrCat(upper_, "/etc/resolv.conf").c_str(), &st), 0);
  EXPECT_NE(::lstat(StrCat(upper_, "/cache/dir").c_str(), &st), 0);
  EXPECT_EQ(::lstat(StrCat(upper_, "/cache").c_str(), &st), 0);

  ProcessSpec recursive = Sh("true");
  recursive.remove_mount_stubs_recursive = true;
  RunOk(recursive, {{"tmpfs", "tmpfs", "/deep/er/dir", {}}});
  EXPECT_NE(::lstat(StrCat(upper_, "/deep").c_str(), &st), 0);
}

TEST_F(ExecutorTest, OverlayWithManyLongLowerdirs) {
  // More than fsconfig's 255-byte value limit: the layers are passed one by one.
  std::vector<std::string> lowers;
  for (int i = 0; i < 6; ++i) {
    std::string dir = StrCat(tmp_.path(), "/a-rather-long-directory-name-for-layer-number-", i,
                             "-of-an-image/fs");
    ASSERT_TRUE(MakeDirs(StrCat(dir, "/layers")).ok());
    ASSERT_TRUE(WriteFileAtomic(StrCat(dir, "/layers/", i), StrCat(i)).ok());
    lowers.push_back(dir);
  }
  lowers.push_back(busybox_->path());
  std::string lowerdir = StrCat("lowerdir=", absl::StrJoin(lowers, ":"));
  ASSERT_GT(lowerdir.size(), 300u);
  std::vector<MountSpec> mounts = {
      {"overlay",
       "overlay",
       "/",
       {lowerdir, StrCat("upperdir=", upper_), StrCat("workdir=", work_)}}};
  CollectSink sink;
  absl::Status st = executor_->Run(mounts, Sh("ls /layers | tr '\\n' ' '"), sink, CancelToken());
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(sink.out(), "0 1 2 3 4 5 ");
}

TEST_F(ExecutorTest, RlimitsApply) {
  ProcessSpec p = Sh("ulimit -n");
  p.rlimits = {{"nofile", 123, 456}};
  EXPECT_EQ(RunOk(p).out, "123\n");
  p.rlimits = {{"bogus", 1, 1}};
  EXPECT_EQ(Run(p).status.code(), absl::StatusCode::kInvalidArgument);
}

std::string CgroupFileScript(std::string_view v1, std::string_view v2) {
  // Reads a limit through the step's own view of its cgroup (/sys/fs/cgroup).
  return StrCat("cat /sys/fs/cgroup/", v1, " 2>/dev/null || cat /sys/fs/cgroup/", v2);
}

TEST_F(ExecutorTest, PidsLimitStopsAForkBomb) {
  ExecutorSupport support = ProbeExecutorSupport(options_);
  if (!support.cgroup_limits) GTEST_SKIP() << support.cgroup_detail;
  // Only shell builtins once the limit is reached: a fork would fail.
  ProcessSpec p =
      Sh("[ -e /sys/fs/cgroup/pids/pids.max ] && d=/sys/fs/cgroup/pids || d=/sys/fs/cgroup;"
         "read max < $d/pids.max; echo $max;"
         "( i=0; while [ $i -lt 64 ]; do sleep 1000 & i=$((i+1)); done ) 2>/tmp/err;"
         "read cur < $d/pids.current; echo $cur;"
         "kill -9 -1;"
         "while read line; do case \"$line\" in *fork*) echo fork-failed; break;; esac; done "
         "< /tmp/err");
  p.limits.pids_max = 16;
  RunResult r = RunOk(p);
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << r.out << r.err;
  EXPECT_EQ(lines[0], "16");
  int current = 0;
  ASSERT_TRUE(absl::SimpleAtoi(lines[1], &current));
  EXPECT_LE(current, 16);
  EXPECT_EQ(lines[2], "fork-failed");
  for (const char* h : {"pids/", ""}) {  // the per-run cgroup is gone (v1 or v2 layout)
    EXPECT_THAT(ListDir(StrCat("/sys/fs/cgroup/", h, options_.cgroup_parent), true),
                ::testing::IsEmpty());
  }
}

TEST_F(ExecutorTest, MemoryLimitAppliesAndOomIsReported) {
  ExecutorSupport support = ProbeExecutorSupport(options_);
  if (!support.cgroup_limits) GTEST_SKIP() << support.cgroup_detail;
  ProcessSpec p = Sh(CgroupFileScript("memory/memory.limit_in_bytes", "memory.max"));
  p.limits.memory_bytes = 64 << 20;
  EXPECT_EQ(RunOk(p).out, StrCat(64 << 20, "\n"));

  // Doubling a string until the limit is hit: the OOM killer ends it.
  ProcessSpec hog = Sh("awk 'BEGIN { s = \"x\"; while (1) s = s s }'");
  hog.limits.memory_bytes = 32 << 20;
  RunResult r = Run(hog);
  EXPECT_EQ(ExitCodeFromStatus(r.status), 137) << r.status;
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("out of memory"));
}

TEST_F(ExecutorTest, CancelKillsTheWholeTreeAndLeavesNothing) {
  const std::string marker = StrCat("98765", ::getpid() % 1000);
  ProcessSpec p = Sh(StrCat("sh -c 'sleep ", marker, "1' & (sleep ", marker,
                            "2 &) ; echo ready; sleep ", marker, "3"));
  p.limits.pids_max = ProbeExecutorSupport(options_).cgroup_limits ? 100 : 0;
  CancelSource source;
  CollectSink sink;
  absl::Status status;
  std::thread runner([&] { status = executor_->Run({RootOverlay()}, p, sink, source.token()); });
  ASSERT_TRUE(sink.WaitFor("ready"));
  // "ready" comes before the last sleep is forked, and a background child may still be a
  // fork of the shell: wait until all three sleeps have exec'd.
  ASSERT_TRUE(WaitUntil([&] {
    for (const char* n : {"1", "2", "3"}) {
      if (ProcessesWith(StrCat("sleep ", marker, n)).empty()) return false;
    }
    return true;
  })) << absl::StrJoin(ProcessesWith(marker), "\n");
  source.Cancel("build cancelled by test");
  runner.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("build cancelled by test"));
  EXPECT_THAT(ProcessesWith(marker), ::testing::IsEmpty());
  EXPECT_THAT(ReadFile("/proc/self/mountinfo"), ::testing::Not(HasSubstr(tmp_.path())));
  EXPECT_THAT(ReadFile("/proc/self/mountinfo"), ::testing::Not(HasSubstr(busybox_->path())));
  EXPECT_THAT(ListDir(options_.state_dir), ::testing::IsEmpty());
  for (const char* h : {"pids/", ""}) {
    EXPECT_THAT(ListDir(StrCat("/sys/fs/cgroup/", h, options_.cgroup_parent), true),
                ::testing::IsEmpty());
  }
}

TEST_F(ExecutorTest, CancelledBeforeStartRunsNothing) {
  CancelSource source;
  source.Cancel("early");
  CollectSink sink;
  absl::Status st = executor_->Run({RootOverlay()}, Sh("echo ran"), sink, source.token());
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(sink.out(), "");
}

TEST_F(ExecutorTest, BackgroundProcessesDieWithTheStep) {
  const std::string marker = StrCat("87654", ::getpid() % 1000);
  RunOk(Sh(StrCat("sleep ", marker, " & echo started")));
  EXPECT_THAT(ProcessesWith(marker), ::testing::IsEmpty());
}

TEST_F(ExecutorTest, ManyRunsLeakNothing) {
  RunOk(Sh("true"));  // warm up lazily opened descriptors (e.g. of the libraries)
  size_t fds_before = ListDir("/proc/self/fd").size();
  for (int i = 0; i < 20; ++i) {
    ProcessSpec p = Sh(i % 2 ? "echo $$" : "exit 1");
    p.network = i % 3 ? NetworkMode::kHost : NetworkMode::kNone;
    (void)Run(p, {{"tmpfs", "tmpfs", "/scratch", {}}});
  }
  EXPECT_EQ(ListDir("/proc/self/fd").size(), fds_before);
  EXPECT_EQ(ReadFile(StrCat("/proc/self/task/", ::getpid(), "/children")), "");
  EXPECT_THAT(ListDir(options_.state_dir), ::testing::IsEmpty());
}

TEST_F(ExecutorTest, ConcurrentRuns) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3; ++i) {
        std::string upper = StrCat(tmp_.path(), "/u", t, "-", i);
        std::string work = StrCat(tmp_.path(), "/w", t, "-", i);
        if (!MakeDirs(upper).ok() || !MakeDirs(work).ok()) return;
        std::vector<MountSpec> mounts = {{"overlay",
                                          "overlay",
                                          "/",
                                          {StrCat("lowerdir=", busybox_->path()),
                                           StrCat("upperdir=", upper), StrCat("workdir=", work)}}};
        CollectSink sink;
        ProcessSpec p = Sh(StrCat("echo ", t, "-", i));
        if (executor_->Run(mounts, p, sink, CancelToken()).ok() &&
            sink.out() == StrCat(t, "-", i, "\n")) {
          ++ok;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 12);
}

TEST_F(ExecutorTest, ReadOnlyRootWithoutMountPoints) {
  // The busybox image has no /proc, /dev or /sys and the root is read-only: the step still
  // runs, without those mounts, and cannot write.
  std::vector<MountSpec> mounts = {{"bind", busybox_->path(), "/", {"rbind", "ro"}}};
  CollectSink sink;
  absl::Status st = executor_->Run(mounts,
                                   Sh("head -1 /etc/group; test -e /proc/self || echo no-proc; "
                                      "touch /etc/x 2>/dev/null || echo read-only"),
                                   sink, CancelToken());
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(sink.out(), "root:x:0:\nno-proc\nread-only\n");
  struct stat sb;
  EXPECT_NE(::stat(StrCat(busybox_->path(), "/proc").c_str(), &sb), 0);
}

TEST_F(ExecutorTest, MissingInitBinaryIsReported) {
  std::string init = StrCat(tmp_.path(), "/kiln-init");
  ASSERT_TRUE(WriteFileAtomic(init, *ReadFileToString(KILN_TEST_INIT_PATH), 0755).ok());
  LinuxExecutorOptions options = options_;
  options.init_path = init;
  auto executor = NewLinuxExecutor(options);
  ASSERT_TRUE(executor.ok());
  ASSERT_EQ(::unlink(init.c_str()), 0);
  CollectSink sink;
  absl::Status st = (*executor)->Run({RootOverlay()}, Sh("true"), sink, CancelToken());
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), HasSubstr("exec kiln-init: errno 2"));
  EXPECT_THAT(ListDir(options_.state_dir), ::testing::IsEmpty());
}

TEST_F(ExecutorTest, RejectsBadSpecs) {
  CollectSink sink;
  EXPECT_EQ(executor_->Run({}, Sh("true"), sink, CancelToken()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(executor_->Run({{"tmpfs", "tmpfs", "/x", {}}}, Sh("true"), sink, CancelToken()).code(),
            absl::StatusCode::kInvalidArgument);
  ProcessSpec bad_env = Sh("true");
  bad_env.env = {"NOEQUALS"};
  EXPECT_EQ(Run(bad_env).status.code(), absl::StatusCode::kInvalidArgument);
  ProcessSpec no_args;
  EXPECT_EQ(Run(no_args).status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Run(Sh("true"), {{"tmpfs", "tmpfs", "relative", {}}}).status.code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::engine
