#include "engine/executor/linux_executor.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "engine/executor/cgroup.h"
#include "engine/executor/etc_files.h"
#include "engine/executor/init_protocol.h"

namespace kiln::engine {
namespace {

using internal::InitReport;

constexpr std::string_view kExitCodePayload = "type.kiln.dev/executor.exit-code";
// How long output is still drained after kiln-init is gone.  Every process of the step is dead
// by then, so the pipes close at once; this only bounds a descriptor smuggled out of the step.
constexpr int kDrainTimeoutMs = 10'000;
constexpr size_t kTailBytes = 16 << 10;

// ---------------------------------------------------------------------------------------------
// The kiln-init process, owned through its pidfd: killed and reaped if still running when the
// owner goes away.

class InitProcess {
 public:
  InitProcess(UniqueFd pidfd, pid_t pid) : pidfd_(std::move(pidfd)), pid_(pid) {}
  InitProcess(InitProcess&&) = default;
  ~InitProcess() {
    if (pidfd_ && !reaped_) {
      Kill();
      (void)Wait();
    }
  }

  int pidfd() const { return pidfd_.get(); }
  pid_t pid() const { return pid_; }
  void Kill() { ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0); }

  // Reaps the process (blocking until it exits).
  absl::StatusOr<siginfo_t> Wait() {
    siginfo_t info = {};
    for (;;) {
      // __WALL: the child was cloned without an exit signal, which keeps a daemon-wide
      // waitpid(-1) from stealing it.
      if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info,
                   WEXITED | __WALL) == 0) {
        reaped_ = true;
        return info;
      }
      if (errno != EINTR) return ErrnoStatus("wait for kiln-init");
    }
  }

 private:
  UniqueFd pidfd_;
  pid_t pid_;
  bool reaped_ = false;
};

// The descriptors kiln-init starts with, in order 0..4 (init_protocol.h).
struct ChildFds {
  int fds[5];
};

// Runs in the child between clone3 and execve, in a copy of a multi-threaded process: only
// async-signal-safe system calls, on data prepared before the clone.
[[noreturn]] void ExecInitChild(const char* path, char* const* argv, const ChildFds& child) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  int moved[5];
  for (int i = 0; i < 5; ++i) {
    moved[i] = ::fcntl(child.fds[i], F_DUPFD, 5);  // out of the 0..4 range first
    if (moved[i] < 0) ::_exit(126);
  }
  for (int i = 0; i < 5; ++i) {
    if (::dup2(moved[i], i) < 0) ::_exit(126);
  }
  ::close_range(5, ~0U, 0);
  char* const envp[] = {nullptr};
  ::execve(path, argv, envp);
  // A report by hand: no allocation, no stdio.  The parent turns the errno into words.
  int err = errno;
  char msg[160] = "{\"kind\":\"error\",\"value\":9,\"message\":\"exec kiln-init: errno ";
  size_t len = 0;
  while (msg[len] != '\0') ++len;
  char digits[12];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + err % 10);
    err /= 10;
  } while (err > 0 && n < 11);
  while (n > 0) msg[len++] = digits[--n];
  for (const char* tail = "\"}\n"; *tail != '\0'; ++tail) msg[len++] = *tail;
  ::send(internal::kInitReportFd, msg, len, MSG_NOSIGNAL);
  ::_exit(127);
}

absl::StatusOr<InitProcess> SpawnInit(const std::string& path, uint64_t ns_flags, int cgroup_fd,
                                      const ChildFds& child) {
  // Everything the child needs exists before the clone.
  std::string argv0 = "kiln-init";
  char* const argv[] = {argv0.data(), nullptr};
  int pidfd = -1;
  struct clone_args args = {};
  args.flags = ns_flags | CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = 0;
  args.cgroup = cgroup_fd >= 0 ? static_cast<uint64_t>(cgroup_fd) : 0;

  // No signal handler of the daemon may run in the child before execve resets them.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid = ::syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) ExecInitChild(path.c_str(), argv, child);
  int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return ErrnoStatus(err, "clone3 kiln-init into new namespaces");
  return InitProcess(UniqueFd(pidfd), static_cast<pid_t>(pid));
}

// ---------------------------------------------------------------------------------------------

struct Pipe {
  UniqueFd read, write;
};

absl::StatusOr<Pipe> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus("pipe");
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  ::fcntl(p.read.get(), F_SETFL, O_NONBLOCK);
  return p;
}

absl::StatusOr<Pipe> MakeSocketPair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return ErrnoStatus("socketpair");
  }
  // [0] stays with the executor, [1] goes to kiln-init.
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  ::fcntl(p.read.get(), F_SETFL, O_NONBLOCK);
  return p;
}

absl::Status WriteSmallFile(const std::string& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) return ErrnoStatus(StrCat("create ", Quote(path)));
  while (!data.empty()) {
    ssize_t n = ::write(fd.get(), data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(StrCat("write ", Quote(path)));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

std::string CleanTarget(std::string_view p) {
  std::vector<std::string> parts;
  for (absl::string_view c : absl::StrSplit(ToAbsl(p), '/', absl::SkipEmpty())) {
    if (c == ".") continue;
    if (c == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.emplace_back(c);
  }
  return StrCat("/", absl::StrJoin(parts, "/"));
}

absl::Status ValidateSpec(const std::vector<MountSpec>& mounts, const ProcessSpec& process) {
  if (mounts.empty()) return absl::InvalidArgumentError("no root filesystem mount");
  if (CleanTarget(mounts[0].target) != "/") {
    return absl::InvalidArgumentError(StrCat(
        "the first mount must be the root filesystem at \"/\", not ", Quote(mounts[0].target)));
  }
  for (size_t i = 0; i < mounts.size(); ++i) {
    const MountSpec& m = mounts[i];
    bool bad = HasNul(m.type) || HasNul(m.source) || HasNul(m.target) || m.type.empty();
    for (const auto& o : m.options) bad = bad || HasNul(o);
    if (bad) return absl::InvalidArgumentError(StrCat("invalid mount #", i));
    if (i > 0 && (m.target.empty() || m.target.front() != '/' || CleanTarget(m.target) == "/")) {
      return absl::InvalidArgumentError(
          StrCat("mount target ", Quote(m.target), " must be an absolute path other than \"/\""));
    }
  }
  if (process.args.empty()) return absl::InvalidArgumentError("no command to run");
  for (const auto& a : process.args) {
    if (HasNul(a)) return absl::InvalidArgumentError("an argument contains a NUL byte");
  }
  for (const auto& e : process.env) {
    if (HasNul(e) || e.find('=') == std::string::npos || e.front() == '=') {
      return absl::InvalidArgumentError(
          StrCat("environment entry ", Quote(e), " is not of the form KEY=value"));
    }
  }
  if (HasNul(process.cwd) || HasNul(process.user)) {
    return absl::InvalidArgumentError("working directory or user contains a NUL byte");
  }
  if (!process.hostname.empty()) KILN_RETURN_IF_ERROR(internal::ValidateHostname(process.hostname));
  return absl::OkStatus();
}

// The last bytes of the combined output, for error messages.
class OutputTail {
 public:
  void Append(std::string_view data) {
    if (data.size() >= kTailBytes) {
      buf_.assign(data.substr(data.size() - kTailBytes));
      return;
    }
    buf_.append(data);
    if (buf_.size() > 2 * kTailBytes) buf_.erase(0, buf_.size() - kTailBytes);
  }
  std::vector<std::string> LastLines(int n) const {
    std::vector<std::string> lines = absl::StrSplit(buf_, '\n', absl::SkipWhitespace());
    if (static_cast<int>(lines.size()) > n) lines.erase(lines.begin(), lines.end() - n);
    return lines;
  }

 private:
  std::string buf_;
};

std::string SignalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? StrCat("SIG", abbrev) : StrCat("signal ", sig);
}

class SinkTee {
 public:
  SinkTee(OutputSink& sink, OutputTail& tail) : sink_(sink), tail_(tail) {}
  void Write(OutputStream stream, std::string_view data) {
    tail_.Append(data);
    sink_.Write(stream, data);
  }

 private:
  OutputSink& sink_;
  OutputTail& tail_;
};

// What happened to one run, collected by the event loop.
struct RunOutcome {
  bool cancelled = false;
  bool reaped = false;
  siginfo_t init_status = {};
  std::string reports;  // raw report lines from kiln-init
};

// Feeds the spec to kiln-init, streams its output and waits for it, killing it on cancel.
class RunLoop {
 public:
  RunLoop(InitProcess& init, UniqueFd spec, std::string spec_data, UniqueFd report, UniqueFd out,
          UniqueFd err, int cancel_fd, SinkTee& sink)
      : init_(init),
        spec_(std::move(spec)),
        spec_data_(std::move(spec_data)),
        report_(std::move(report)),
        out_(std::move(out)),
        err_(std::move(err)),
        cancel_fd_(cancel_fd),
        sink_(sink) {}

  absl::StatusOr<RunOutcome> Run();

 private:
  void WriteSpec();
  void ReadStream(UniqueFd& fd, OutputStream stream);
  void ReadReport();

  InitProcess& init_;
  UniqueFd spec_;
  std::string spec_data_;
  size_t spec_written_ = 0;
  UniqueFd report_, out_, err_;
  int cancel_fd_;
  SinkTee& sink_;
  RunOutcome outcome_;
};

absl::StatusOr<RunOutcome> RunLoop::Run() {
  bool cancel_armed = true;
  for (;;) {
    if (outcome_.reaped && !out_ && !err_ && !report_) return std::move(outcome_);
    std::vector<pollfd> pfds;
    enum Slot { kOut, kErr, kReport, kSpec, kPid, kCancel };
    std::vector<Slot> slots;
    auto add = [&](int fd, short events, Slot slot) {
      pfds.push_back({fd, events, 0});
      slots.push_back(slot);
    };
    if (out_) add(out_.get(), POLLIN, kOut);
    if (err_) add(err_.get(), POLLIN, kErr);
    if (report_) add(report_.get(), POLLIN, kReport);
    if (spec_) add(spec_.get(), POLLOUT, kSpec);
    if (!outcome_.reaped) add(init_.pidfd(), POLLIN, kPid);
    if (cancel_armed && !outcome_.reaped) add(cancel_fd_, POLLIN, kCancel);
    int n = ::poll(pfds.data(), pfds.size(), outcome_.reaped ? kDrainTimeoutMs : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("poll");
    }
    if (n == 0) {  // drain timeout: something outside the step still holds a pipe
      out_.Reset();
      err_.Reset();
      report_.Reset();
      continue;
    }
    for (size_t i = 0; i < pfds.size(); ++i) {
      if (pfds[i].revents == 0) continue;
      switch (slots[i]) {
        case kOut:
          ReadStream(out_, OutputStream::kStdout);
          break;
        case kErr:
          ReadStream(err_, OutputStream::kStderr);
          break;
        case kReport:
          ReadReport();
          break;
        case kSpec:
          WriteSpec();
          break;
        case kCancel:
          cancel_armed = false;
          outcome_.cancelled = true;
          init_.Kill();
          break;
        case kPid: {
          KILN_ASSIGN_OR_RETURN(outcome_.init_status, init_.Wait());
          outcome_.reaped = true;
          spec_.Reset();
          break;
        }
      }
    }
  }
}

void RunLoop::WriteSpec() {
  while (spec_written_ < spec_data_.size()) {
    ssize_t n = ::send(spec_.get(), spec_data_.data() + spec_written_,
                       spec_data_.size() - spec_written_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) break;  // kiln-init is gone; its exit tells the rest
    spec_written_ += static_cast<size_t>(n);
  }
  spec_.Reset();  // EOF tells kiln-init the spec is complete
}

void RunLoop::ReadStream(UniqueFd& fd, OutputStream stream) {
  char buf[65536];
  ssize_t n = ::read(fd.get(), buf, sizeof(buf));
  if (n > 0) {
    sink_.Write(stream, std::string_view(buf, static_cast<size_t>(n)));
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    fd.Reset();
  }
}

void RunLoop::ReadReport() {
  char buf[4096];
  ssize_t n = ::read(report_.get(), buf, sizeof(buf));
  if (n > 0) {
    if (outcome_.reports.size() < (1 << 20)) outcome_.reports.append(buf, static_cast<size_t>(n));
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    report_.Reset();
  }
}

// ---------------------------------------------------------------------------------------------

class LinuxExecutor : public Executor {
 public:
  LinuxExecutor(LinuxExecutorOptions options, internal::CgroupSetup cgroups)
      : options_(std::move(options)), cgroups_(std::move(cgroups)) {}

  absl::Status Run(const std::vector<MountSpec>& mounts, const ProcessSpec& process,
                   OutputSink& out, const CancelToken& cancel) override;

 private:
  absl::StatusOr<internal::InitSpec> PrepareState(const std::string& dir,
                                                  const std::vector<MountSpec>& mounts,
                                                  const ProcessSpec& process) const;
  absl::Status Finish(const RunOutcome& outcome, const ProcessSpec& process, const OutputTail& tail,
                      const internal::RunCgroup* cgroup, const CancelToken& cancel) const;

  LinuxExecutorOptions options_;
  internal::CgroupSetup cgroups_;
};

absl::StatusOr<internal::InitSpec> LinuxExecutor::PrepareState(const std::string& dir,
                                                               const std::vector<MountSpec>& mounts,
                                                               const ProcessSpec& process) const {
  internal::InitSpec spec;
  spec.rootfs_dir = StrCat(dir, "/rootfs");
  if (::mkdir(spec.rootfs_dir.c_str(), 0755) != 0) {
    return ErrnoStatus(StrCat("mkdir ", Quote(spec.rootfs_dir)));
  }
  spec.mounts = mounts;
  spec.process = process;
  if (spec.process.hostname.empty()) spec.process.hostname = std::string(kDefaultHostname);
  if (spec.process.cwd.empty()) spec.process.cwd = "/";
  if (spec.process.cwd.front() != '/') spec.process.cwd = StrCat("/", spec.process.cwd);

  KILN_ASSIGN_OR_RETURN(std::string hosts,
                        internal::MakeHostsFile(spec.process.hostname, process.extra_hosts));
  spec.hosts_file = StrCat(dir, "/hosts");
  KILN_RETURN_IF_ERROR(WriteSmallFile(spec.hosts_file, hosts));

  absl::StatusOr<std::string> host_resolv = ReadFileToString(options_.host_resolv_conf);
  if (!host_resolv.ok() && !absl::IsNotFound(host_resolv.status())) return host_resolv.status();
  spec.resolv_conf_file = StrCat(dir, "/resolv.conf");
  KILN_RETURN_IF_ERROR(WriteSmallFile(
      spec.resolv_conf_file,
      internal::FilterResolvConf(host_resolv.ok() ? *host_resolv : "", process.network)));
  return spec;
}

absl::Status LinuxExecutor::Run(const std::vector<MountSpec>& mounts, const ProcessSpec& process,
                                OutputSink& out, const CancelToken& cancel) {
  KILN_RETURN_IF_ERROR(cancel.Check());
  KILN_RETURN_IF_ERROR(ValidateSpec(mounts, process));
  bool limited = process.limits.memory_bytes != 0 || process.limits.pids_max != 0;

  // Declaration order is teardown order in reverse: the process dies and is reaped before its
  // cgroup is removed, and both before the state directory goes.
  KILN_ASSIGN_OR_RETURN(TempDir state, TempDir::Create("run-", options_.state_dir));
  KILN_ASSIGN_OR_RETURN(internal::InitSpec spec, PrepareState(state.path(), mounts, process));
  std::unique_ptr<internal::RunCgroup> cgroup;
  if (limited) {
    std::string id = state.path().substr(state.path().rfind('/') + 1);
    KILN_ASSIGN_OR_RETURN(cgroup, cgroups_.Create(id, process.limits));
  }

  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) return ErrnoStatus("open /dev/null");
  KILN_ASSIGN_OR_RETURN(Pipe stdout_pipe, MakePipe());
  KILN_ASSIGN_OR_RETURN(Pipe stderr_pipe, MakePipe());
  KILN_ASSIGN_OR_RETURN(Pipe spec_channel, MakeSocketPair());
  KILN_ASSIGN_OR_RETURN(Pipe report_channel, MakeSocketPair());
  UniqueFd cancel_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!cancel_fd) return ErrnoStatus("eventfd");

  uint64_t ns_flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
  if (process.network == NetworkMode::kNone) ns_flags |= CLONE_NEWNET;
  ChildFds child{{devnull.get(), stdout_pipe.write.get(), stderr_pipe.write.get(),
                  spec_channel.write.get(), report_channel.write.get()}};
  KILN_ASSIGN_OR_RETURN(InitProcess init, SpawnInit(options_.init_path, ns_flags,
                                                    cgroup ? cgroup->clone_fd() : -1, child));
  // The child has its copies; ours would keep the pipes from ever reaching EOF.
  devnull.Reset();
  stdout_pipe.write.Reset();
  stderr_pipe.write.Reset();
  spec_channel.write.Reset();
  report_channel.write.Reset();
  if (cgroup) KILN_RETURN_IF_ERROR_CTX(cgroup->AddProcess(init.pid()), "join the step's cgroup");

  int raw_cancel_fd = cancel_fd.get();
  CancelRegistration on_cancel = cancel.OnCancel([raw_cancel_fd] {
    uint64_t one = 1;
    (void)!::write(raw_cancel_fd, &one, sizeof(one));
  });

  OutputTail tail;
  SinkTee tee(out, tail);
  RunLoop loop(init, std::move(spec_channel.read), internal::EncodeInitSpec(spec),
               std::move(report_channel.read), std::move(stdout_pipe.read),
               std::move(stderr_pipe.read), cancel_fd.get(), tee);
  KILN_ASSIGN_OR_RETURN(RunOutcome outcome, loop.Run());
  absl::Status result = Finish(outcome, process, tail, cgroup.get(), cancel);
  if (cgroup) {
    absl::Status removed = cgroup->Remove();
    if (result.ok() && !removed.ok()) result = removed;
  }
  return result;
}

absl::Status LinuxExecutor::Finish(const RunOutcome& outcome, const ProcessSpec& process,
                                   const OutputTail& tail, const internal::RunCgroup* cgroup,
                                   const CancelToken& cancel) const {
  if (outcome.cancelled) {
    absl::Status st = cancel.Check();
    return st.ok() ? absl::CancelledError("cancelled") : st;
  }
  std::string command = absl::StrJoin(process.args, " ");
  std::string prefix = StrCat("process \"", command, "\" did not complete successfully: ");

  std::optional<InitReport> report;
  for (absl::string_view line : absl::StrSplit(outcome.reports, '\n', absl::SkipEmpty())) {
    absl::StatusOr<InitReport> r = internal::DecodeInitReport(FromAbsl(line));
    if (r.ok()) report = *std::move(r);
  }
  auto with_tail = [&](std::string message) {
    std::vector<std::string> lines = tail.LastLines(options_.error_tail_lines);
    if (!lines.empty()) {
      StrAppend(&message, "\nlast ", lines.size(), " lines of output:");
      for (const auto& l : lines) StrAppend(&message, "\n  ", l);
    }
    return message;
  };
  auto exit_error = [&](int code, std::string message) {
    absl::Status st = absl::UnknownError(with_tail(std::move(message)));
    st.SetPayload(ToAbsl(kExitCodePayload), absl::Cord(StrCat(code)));
    return st;
  };
  if (!report) {
    const siginfo_t& si = outcome.init_status;
    std::string how = si.si_code == CLD_EXITED ? StrCat("exit status ", si.si_status)
                                               : StrCat("killed by ", SignalName(si.si_status));
    return absl::InternalError(
        with_tail(StrCat(prefix, "kiln-init ended without a report (", how, ")")));
  }
  const std::vector<int>& valid = process.valid_exit_codes;
  auto is_valid = [&](int code) {
    if (valid.empty()) return code == 0;
    return std::find(valid.begin(), valid.end(), code) != valid.end();
  };
  switch (report->kind) {
    case InitReport::Kind::kError: {
      auto code = static_cast<absl::StatusCode>(report->value);
      if (code == absl::StatusCode::kOk) code = absl::StatusCode::kInternal;
      return absl::Status(code, StrCat(prefix, report->message));
    }
    case InitReport::Kind::kExecError:
      return exit_error(127, StrCat(prefix, report->message));
    case InitReport::Kind::kExit:
      if (is_valid(report->value)) return absl::OkStatus();
      return exit_error(report->value, StrCat(prefix, "exit code: ", report->value));
    case InitReport::Kind::kSignal: {
      int code = 128 + report->value;
      if (is_valid(code)) return absl::OkStatus();
      std::string message =
          StrCat(prefix, "exit code: ", code, " (killed by ", SignalName(report->value), ")");
      if (report->value == SIGKILL && cgroup != nullptr && cgroup->OomKilled()) {
        StrAppend(&message, ": out of memory (limit ", process.limits.memory_bytes, " bytes)");
      }
      return exit_error(code, std::move(message));
    }
  }
  return absl::InternalError("unreachable");
}

}  // namespace

std::optional<int> ExitCodeFromStatus(const absl::Status& status) {
  auto payload = status.GetPayload(ToAbsl(kExitCodePayload));
  if (!payload) return std::nullopt;
  int code = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &code)) return std::nullopt;
  return code;
}

absl::StatusOr<std::unique_ptr<Executor>> NewLinuxExecutor(LinuxExecutorOptions options) {
  if (::access(options.init_path.c_str(), X_OK) != 0) {
    return ErrnoStatus(StrCat("kiln-init helper ", Quote(options.init_path)));
  }
  if (options.state_dir.empty()) return absl::InvalidArgumentError("no executor state directory");
  KILN_RETURN_IF_ERROR(MakeDirs(options.state_dir, 0711));
  internal::CgroupSetup cgroups = internal::CgroupSetup::Detect(options.cgroup_parent);
  return std::unique_ptr<Executor>(new LinuxExecutor(std::move(options), std::move(cgroups)));
}

absl::StatusOr<std::string> FindInitBinary() {
  if (const char* env = ::getenv("KILN_INIT_PATH"); env != nullptr && *env != '\0') {
    if (::access(env, X_OK) != 0) return ErrnoStatus(StrCat("KILN_INIT_PATH ", Quote(env)));
    return std::string(env);
  }
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n < 0) return ErrnoStatus("readlink /proc/self/exe");
  std::string exe(self, static_cast<size_t>(n));
  std::string path = StrCat(exe.substr(0, exe.rfind('/')), "/kiln-init");
  if (::access(path.c_str(), X_OK) != 0) {
    return ErrnoStatus(StrCat("find kiln-init next to ", Quote(exe), " (set KILN_INIT_PATH)"));
  }
  return path;
}

ExecutorSupport ProbeExecutorSupport(const LinuxExecutorOptions& options) {
  ExecutorSupport s;
  s.namespaces = ::geteuid() == 0;
  internal::CgroupSetup cg = internal::CgroupSetup::Detect(options.cgroup_parent);
  s.cgroup_limits = cg.available();
  s.cgroup_detail = cg.detail();
  return s;
}

absl::Status CleanupStaleExecutorState(const LinuxExecutorOptions& options) {
  absl::Status first = internal::CgroupSetup::Detect(options.cgroup_parent).RemoveStale();
  absl::Status removed = RemoveAll(options.state_dir);
  if (first.ok()) first = removed;
  absl::Status made = MakeDirs(options.state_dir, 0711);
  return first.ok() ? made : first;
}

}  // namespace kiln::engine
