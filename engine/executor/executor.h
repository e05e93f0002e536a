// Executor: runs one build step's process (a RUN) in a fresh, isolated Linux sandbox.
//
// The caller describes the filesystem as a list of mounts (the first one is the root filesystem,
// target "/") and the process to run.  The executor knows nothing about LLB or snapshots: it
// mounts what it is told, runs the process, streams its output and reports how it ended.
//
// Contract of Run():
//   - OK when the process exits with a code in `valid_exit_codes` (default: only 0).
//   - Unknown, with a message in BuildKit's wording and the last lines of output,
//       process "/bin/sh -c make" did not complete successfully: exit code: 2
//     when it exits with another code or is killed by a signal (ExitCodeFromStatus() gives the
//     code; a signal N is reported as 128+N like runc does).
//   - Cancelled when `cancel` fires before the process ends; the whole process tree is killed.
//   - Another code when the sandbox cannot be set up (InvalidArgument for a bad spec or an
//     unknown user, NotFound for a missing mount source, Internal/FailedPrecondition otherwise).
//   Whatever the outcome, when Run() returns no process, mount, cgroup or state directory of the
//   step is left behind.
//
// Thread-safety: Run() may be called concurrently from many threads; each call is independent.
// The OutputSink is called only from the thread inside Run().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "base/cancel.h"

namespace kiln::engine {

// One mount, fstab-style.  `options` holds flags ("ro", "rbind", "nosuid", ...) and data
// ("size=65536k", "lowerdir=/a:/b", ...); the executor tells them apart.  Examples:
//   {"overlay", "overlay", "/", {"lowerdir=/l1:/l2", "upperdir=/u", "workdir=/w"}}
//   {"bind", "/var/lib/kiln/snapshots/12/fs", "/src", {"rbind", "ro"}}
//   {"tmpfs", "tmpfs", "/tmp", {"size=65536k"}}
// `source` of a bind mount is a host path the caller vouches for; `target` is a path inside the
// container and is resolved inside the root filesystem (symlinks cannot lead outside it).
// Missing targets are created (and removed again after the run if they are still empty, like
// BuildKit's mount stubs).  Propagation flags (shared, slave, ...) are ignored: every mount is
// private to the step.
struct MountSpec {
  std::string type;
  std::string source;
  std::string target;
  std::vector<std::string> options;
};

enum class NetworkMode {
  kHost,  // share the host's network namespace (BuildKit's default "host" provider)
  kNone,  // a new network namespace with only the loopback interface, up
};

enum class SecurityMode {
  kSandbox,   // BuildKit's default capability set, masked /proc paths, read-only /sys
  kInsecure,  // every capability the daemon has, writable /sys, all devices (security.insecure)
};

struct ResourceLimits {
  uint64_t memory_bytes = 0;  // 0: no limit
  uint64_t pids_max = 0;      // 0: no limit
};

// A POSIX resource limit applied to the process, e.g. {"nofile", 1024, 1024}.  Without any, the
// process inherits the daemon's limits (as BuildKit does).
struct Rlimit {
  std::string name;  // "nofile", "nproc", "core", ... (RLIMIT_<NAME> in lower case)
  uint64_t soft = 0;
  uint64_t hard = 0;
};

struct ProcessSpec {
  std::vector<std::string> args;  // args[0] is looked up in the PATH of `env` unless it has '/'
  std::vector<std::string> env;   // "KEY=value"; PATH and HOME are added when absent
  std::string cwd = "/";          // created (owned by the process's uid:gid) when missing
  // "", "name", "uid", "uid:gid", "name:group", "uid:group", "name:gid"; resolved against the
  // root filesystem's /etc/passwd and /etc/group like BuildKit.  "" means root.
  std::string user;
  std::string hostname;                                          // "" means "buildkitsandbox"
  std::vector<std::pair<std::string, std::string>> extra_hosts;  // {host, ip}
  NetworkMode network = NetworkMode::kHost;
  SecurityMode security = SecurityMode::kSandbox;
  ResourceLimits limits;
  std::vector<Rlimit> rlimits;
  std::vector<int> valid_exit_codes;  // empty means {0}
  // Also remove missing parent directories that were created for mount targets (BuildKit's
  // Meta.RemoveMountStubsRecursive).
  bool remove_mount_stubs_recursive = false;
};

enum class OutputStream { kStdout = 1, kStderr = 2 };

// Receives the process's output as it arrives.  Chunks are not split on line boundaries.
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void Write(OutputStream stream, std::string_view data) = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;
  Executor() = default;
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Runs `process` on `mounts` (mounts[0] is the root filesystem, target "/").  See the contract
  // at the top of this file.
  virtual absl::Status Run(const std::vector<MountSpec>& mounts, const ProcessSpec& process,
                           OutputSink& out, const CancelToken& cancel) = 0;
};

// The exit code carried by an error from Run() when the process ran and failed (128+N for a
// signal N); nullopt for any other status.
std::optional<int> ExitCodeFromStatus(const absl::Status& status);

// The hostname a step gets when ProcessSpec::hostname is empty.
inline constexpr std::string_view kDefaultHostname = "buildkitsandbox";

// The PATH a step gets when its environment has none.
inline constexpr std::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

}  // namespace kiln::engine
