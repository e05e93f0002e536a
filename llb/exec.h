// Exec ops: State::Run (BuildKit Go: State.Run, ExecOp, ExecState, client/llb/exec.go).
//
// State::Run(info) builds an ExecOp on the state: the state's filesystem is the root mount "/",
// its values become ExecOp.meta (env order, cwd = dir, user, hostname, cgroup parent, extra
// hosts, ulimits; removeMountStubsRecursive is always set) and network/security.  The fields of
// ExecInfo act like Go's RunOptions: they apply to this exec only and do not flow into the
// returned state (Go applies them to a copy of the state).
//
// Marshaling follows exec.go: mounts are sorted by target (root first); each mount's input is
// deduplicated by (digest, index); outputs are numbered 0.. over the mounts that are writable,
// not cache, not tmpfs and not forced no-output; secrets and ssh sockets are appended after the
// sorted mounts; ssh sockets without target get /run/buildkit/ssh_agent.N and SSH_AUTH_SOCK is
// added to env if missing.  PATH is NOT defaulted unless the marshal constraints carry caps
// without "exec.meta.setsdefaultpath" (then PATH is set to the default for the platform's OS,
// as Go does); giving the image's PATH is the frontend's job.
//
// Thread-safety: see llb/state.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llb/state.h"

namespace kiln::llb {

class ExecOp;

// Go: llb.CacheMountSharingMode.
enum class CacheSharing { kShared, kPrivate, kLocked };

// Options of one mount (Go: MountOption values Readonly, SourcePath, ForceNoOutput,
// AsPersistentCacheDir, Tmpfs(TmpfsSize)).
struct MountOptions {
  bool readonly = false;
  std::string selector;  // Go: SourcePath: the path inside the source mounted at the target
  bool force_no_output = false;
  // Go: AsPersistentCacheDir(id, sharing).  A cache mount is never an output.
  struct Cache {
    std::string id;
    CacheSharing sharing = CacheSharing::kShared;
  };
  std::optional<Cache> cache;
  // Go: Tmpfs(TmpfsSize(size)).  Size 0 = kernel default.  Its source must be scratch.
  struct Tmpfs {
    int64_t size = 0;
  };
  std::optional<Tmpfs> tmpfs;
};

// Go: AddMount(target, state, options...).
struct MountInfo {
  std::string target;
  State source;  // Scratch() for an empty mount
  MountOptions options;
};

// Go: AddSecret(target, SecretID, SecretFileOpt, SecretOptional, SecretAsEnv).
struct SecretInfo {
  std::string id;      // empty: the target (as Go's default)
  std::string target;  // a path, or the variable name when is_env
  int mode = 0400;
  int uid = 0;
  int gid = 0;
  bool optional = false;
  bool is_env = false;
};

// Go: AddSSHSocket(SSHID, SSHSocketTarget/SSHSocketOpt, SSHOptional).
struct SshInfo {
  std::string id;      // empty: the client's default agent
  std::string target;  // empty: /run/buildkit/ssh_agent.<n>
  int mode = 0600;
  int uid = 0;
  int gid = 0;
  bool optional = false;
};

// Go: llb.ProxyEnv.
struct ProxyEnv {
  std::string http_proxy;
  std::string https_proxy;
  std::string ftp_proxy;
  std::string no_proxy;
  std::string all_proxy;
};

// Go: ExecInfo plus the RunOptions that modify it.
struct ExecInfo {
  // Go: llb.Args.  Replaces the state's args.  The shell form is the frontend's business
  // ({"/bin/sh", "-c", cmd}).
  std::optional<std::vector<std::string>> args;
  // Go: AddMount run options, in order.
  std::vector<MountInfo> mounts;
  std::vector<SecretInfo> secrets;
  std::vector<SshInfo> ssh;
  bool readonly_rootfs = false;       // Go: ReadonlyRootFS
  std::optional<ProxyEnv> proxy_env;  // Go: WithProxy
  // Go: Network(...), Security(...) given as run options.
  std::optional<pb::NetMode> network;
  std::optional<pb::SecurityMode> security;
  // Go: AddExtraHost / AddUlimit run options: appended to the state's.
  std::vector<HostIP> extra_hosts;
  std::vector<Ulimit> ulimits;
  std::optional<std::string> cgroup_parent;              // Go: WithCgroupParent
  std::optional<std::vector<int32_t>> valid_exit_codes;  // BuildKit HEAD: ValidExitCodes
  // Go: With(StateOption...): arbitrary changes to the exec's state (e.g. an extra env var),
  // applied before the fields above.
  std::vector<std::function<State(State)>> state_options;
  // Go: ConstraintsOpt run options (custom name, ignore cache, platform, location, ...).
  Constraints constraints;
};

// The state after a Run: its filesystem is the exec's root mount (Go: ExecState).
class ExecState : public State {
 public:
  ExecState(State root, std::shared_ptr<ExecOp> exec)
      : State(std::move(root)), exec_(std::move(exec)) {}

  State Root() const { return *this; }
  // Adds a mount to this exec (changes the op, as Go does) and returns the state of that
  // mount's result: `source` values with the mount's output (read-only mounts: source's own
  // output).
  State AddMount(std::string_view target, const State& source,
                 const MountOptions& options = {}) const;
  // The state of the mount at `target` (fresh values); scratch when there is none.
  State GetMount(std::string_view target) const;

 private:
  std::shared_ptr<ExecOp> exec_;
};

}  // namespace kiln::llb
