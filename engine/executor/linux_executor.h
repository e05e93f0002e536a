// LinuxExecutor: the Executor that runs each step in new Linux namespaces, without runc.
//
// Process model.  Run() creates a per-run state directory (hosts, resolv.conf), an optional
// per-run cgroup, and then clone3()s the `kiln-init` helper (see init_main.h) straight into new
// mount, pid, ipc, uts (and, for NetworkMode::kNone, net) namespaces.  Between clone and exec
// the child only makes async-signal-safe system calls, so a multi-threaded daemon can use it.
// kiln-init, single-threaded and PID 1 of the new pid namespace, reads the serialized spec,
// builds the root filesystem, pivots into it, forks the user's process with the requested
// identity and capabilities, reaps orphans, and reports how the process ended.  When it exits the
// kernel kills everything left in the pid namespace, and its mount namespace (holding every mount
// of the step) disappears with it.  Cancelling SIGKILLs kiln-init through a pidfd.
//
// Requirements: root in the initial user namespace, Linux >= 5.12 (clone3, pidfd,
// close_range, the new mount API).  Limits need cgroup v2 (memory and pids controllers
// delegable at the root) or cgroup v1 memory/pids hierarchies.
//
// Thread-safety: Run() may be called concurrently.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/executor/executor.h"

namespace kiln::engine {

struct LinuxExecutorOptions {
  // The kiln-init helper binary (FindInitBinary() finds the installed one).
  std::string init_path;
  // Host directory for per-run state directories ("<state_dir>/<run id>/"); created if missing.
  // It must not be inside any root filesystem handed to Run().
  std::string state_dir;
  // Name of the cgroup (relative to each hierarchy's root) under which per-run cgroups are made.
  std::string cgroup_parent = "kiln";
  // The host resolver configuration that steps inherit (filtered like BuildKit).
  std::string host_resolv_conf = "/etc/resolv.conf";
  // How many trailing output lines an error message quotes.
  int error_tail_lines = 10;
};

absl::StatusOr<std::unique_ptr<Executor>> NewLinuxExecutor(LinuxExecutorOptions options);

// The kiln-init binary: $KILN_INIT_PATH if set, else "kiln-init" next to the running executable.
absl::StatusOr<std::string> FindInitBinary();

// What the executor can do on this machine, for the daemon's startup log and `debug workers`.
struct ExecutorSupport {
  bool namespaces = false;  // running as root with the needed kernel features
  bool cgroup_limits = false;
  std::string cgroup_detail;  // e.g. "cgroup v1 (memory, pids)", or why limits are unavailable
};
ExecutorSupport ProbeExecutorSupport(const LinuxExecutorOptions& options);

// Removes state directories and empty per-run cgroups left by a daemon that crashed.  Call once
// at daemon start, before any Run(), and only when no other daemon shares `options`.
absl::Status CleanupStaleExecutorState(const LinuxExecutorOptions& options);

}  // namespace kiln::engine
