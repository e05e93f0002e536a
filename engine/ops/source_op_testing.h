// Test-only helpers for the source op tests: a worker in a temporary state directory, LLB source
// ops, session values, snapshot reading, and real helper processes (python servers, git
// daemon, docker-registry) started on loopback and stopped by their PID.
//
// Thread-safety: test thread only.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "engine/ops/llb_op.h"
#include "engine/ops/session.h"
#include "engine/solver/types.h"
#include "engine/worker/worker.h"
#include "gtest/gtest.h"

extern char** environ;

namespace kiln::engine::source_testing {

inline constexpr char kPython[] = "/usr/bin/python3";

// engine/ops in the source tree (test scripts live in engine/ops/testdata).
inline std::string OpsSourceDir() {
  // __FILE__ is inside the include view, a symlink to the source folder.
  std::error_code ec;
  auto dir = std::filesystem::canonical(std::filesystem::path(__FILE__).parent_path(), ec);
  return ec ? std::filesystem::path(__FILE__).parent_path().string() : dir.string();
}
inline std::string RepoRoot() {
  return std::filesystem::path(OpsSourceDir()).parent_path().parent_path().string();
}

// Runs a shell command; returns its exit code (output to `log` when given, else discarded).
inline int Sh(const std::string& cmd, const std::string& log = "/dev/null") {
  int rc = std::system(StrCat("(", cmd, ") >>", log, " 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

inline std::string ShOut(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

inline void Write(const std::string& path, const std::string& data, mode_t mode = 0644) {
  ASSERT_TRUE(MakeDirs(std::filesystem::path(path).parent_path().string()).ok()) << path;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

inline std::string Read(const std::string& path) {
  return ReadFileToString(path).value_or("<missing>");
}

// A process started by a test; SIGTERM then SIGKILL by PID when destroyed.
class Child {
 public:
  static std::unique_ptr<Child> Start(const std::vector<std::string>& argv, const std::string& log,
                                      const std::string& cwd = "") {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return nullptr;
    return std::unique_ptr<Child>(new Child(pid));
  }
  ~Child() {
    if (Exited()) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100 && !Exited(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!Exited()) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
  }
  bool Exited() {
    if (reaped_) return true;
    int st;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) reaped_ = true;
    return reaped_;
  }

 private:
  explicit Child(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool reaped_ = false;
};

inline int FreePort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return -1;
  socklen_t len = sizeof(addr);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

inline bool Connects(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

// Waits until something accepts connections on `port` (or the child died / 20 s passed).
inline bool WaitForPort(int port, Child& child) {
  for (int i = 0; i < 1000; ++i) {
    if (Connects(port)) return true;
    if (child.Exited()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Waits for a script's port file.
inline int WaitForPortFile(const std::string& path, Child& child) {
  for (int i = 0; i < 1000; ++i) {
    auto text = ReadFileToString(path);
    if (text.ok() && !text->empty()) return std::atoi(text->c_str());
    if (child.Exited()) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

// A source op as the LLB loader would hand it over.
inline LlbOp SourceOp(const std::string& identifier,
                      const std::map<std::string, std::string>& attrs = {},
                      const oci::Platform& platform = oci::HostPlatform()) {
  LlbOp op;
  op.op.mutable_source()->set_identifier(identifier);
  for (const auto& [k, v] : attrs) (*op.op.mutable_source()->mutable_attrs())[k] = v;
  op.digest = Digest::Sha256Of(op.op.SerializeAsString());
  op.platform = platform;
  return op;
}

// A session holding `values` (one job).
inline SessionGroup Session(SessionGroup::Values values) {
  return SessionGroup({std::make_shared<const SessionGroup::Values>(std::move(values))});
}

class MapSecrets : public Secrets {
 public:
  explicit MapSecrets(std::map<std::string, std::string> values) : values_(std::move(values)) {}
  absl::StatusOr<std::string> Get(const std::string& id) override {
    auto it = values_.find(id);
    if (it == values_.end()) return absl::NotFoundError(StrCat("secret ", id, " not found"));
    return it->second;
  }

 private:
  std::map<std::string, std::string> values_;
};

// A worker in a fresh temporary state directory.  Tests that need snapshots skip without root.
class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "source op tests need root (snapshots, mounts)";
    auto dir = TempDir::Create("kiln-source-test-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::move(*dir);
    worker_ = OpenWorker(dir_.path() + "/state");
    ASSERT_NE(worker_, nullptr);
  }
  void TearDown() override { worker_.reset(); }

  static std::unique_ptr<Worker> OpenWorker(const std::string& root) {
    WorkerOptions o;
    o.root = root;
    o.init_path = KILN_TEST_INIT_PATH;
    o.sync = false;
    auto w = Worker::Open(o);
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? std::move(*w) : nullptr;
  }

  OpEnv Env(registry::Registry* reg = nullptr) { return OpEnv{worker_.get(), reg}; }

  // Mounts `ref` read-only and returns fn(path)'s result.
  template <typename Fn>
  void WithSnapshot(const ResultRef& ref, Fn fn) {
    absl::Status st = worker_->WithReadOnlyMount(ref, [&](const std::string& path) {
      fn(path);
      return absl::OkStatus();
    });
    ASSERT_TRUE(st.ok()) << st;
  }

  TempDir dir_;
  std::unique_ptr<Worker> worker_;
};

}  // namespace kiln::engine::source_testing
