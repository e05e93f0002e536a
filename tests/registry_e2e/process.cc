#include "tests/registry_e2e/process.h"

#include <chrono>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/strings.h"

extern char** environ;

namespace kiln::registry_e2e {

std::string ProcessResult::Describe() const {
  return StrCat("exit ", exit_code, "\n--- stderr ---\n", err, "\n--- stdout ---\n",
                out.substr(0, 4000));
}

namespace {

std::vector<std::string> MergedEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  auto key = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    bool replaced = false;
    for (const std::string& x : extra) replaced = replaced || key(x) == key(kv);
    if (!replaced) out.push_back(std::move(kv));
  }
  for (const std::string& x : extra) out.push_back(x);
  return out;
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv, const ProcessOptions& options) {
  ProcessResult r;
  auto dir = TempDir::Create("kiln-e2e-proc-");
  if (!dir.ok() || argv.empty()) {
    r.err = "could not create a temp dir or empty argv";
    return r;
  }
  const std::string in = StrCat(dir->path(), "/in"), out = StrCat(dir->path(), "/out"),
                    err = StrCat(dir->path(), "/err");
  if (!WriteFileAtomic(in, options.stdin_data, 0600).ok()) return r;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  // Its own process group, so nothing it leaves running shares our terminal signals.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<std::string> env = MergedEnvironment(options.env);
  std::vector<char*> args, envp;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    r.err = StrCat("spawn ", argv[0], ": ", std::strerror(rc));
    return r;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(options.timeout_seconds);
  int status = 0;
  bool timed_out = false;
  while (true) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (!timed_out && std::chrono::steady_clock::now() > deadline) {
      timed_out = true;
      ::kill(pid, SIGKILL);  // our own child, by its PID
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(timed_out ? 1 : 10));
  }
  r.out = ReadFileToString(out).value_or("");
  r.err = ReadFileToString(err).value_or("");
  if (timed_out) {
    StrAppend(&r.err, "\n[killed after ", options.timeout_seconds, " s]");
  } else if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  }
  return r;
}

ProcessResult Sh(const std::string& cmd, const ProcessOptions& options) {
  return RunProcess({"/bin/sh", "-c", cmd}, options);
}

}  // namespace kiln::registry_e2e
