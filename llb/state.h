// The LLB builder: a C++ rendering of BuildKit's Go client package client/llb (v0.11.6).
//
// A State is an immutable value: a filesystem result (an Output of some op, or scratch) plus the
// process context later ops inherit (env, working dir, user, hostname, network and security
// mode, platform, extra hosts, ulimits, cgroup parent).  Every setter returns a new State.  Ops
// are built by sources (Image, Local, Git, Http, Scratch in llb/source.h), State::Run
// (llb/exec.h), State::File (llb/fileop.h), Merge and Diff.  State::Marshal turns the graph
// behind a state into a pb::Definition whose op bytes are byte-identical to what Go's client
// produces for the same calls, so digests and cache keys agree with BuildKit.
//
// Semantics follow Go, including its quirks, unless llb/README notes a difference:
//   * values are resolved eagerly (Go resolves lazily at marshal time; the results agree
//     because no value here depends on the marshal constraints);
//   * Dir(relative) joins with the previous dir (empty counts as "/");
//   * AddEnv replaces an existing key by removing it and appending at the end;
//   * WithOutput keeps the values and takes the output's platform when it has one;
//     FromOutput (Go: NewState) starts from fresh values (dir "/", no env);
//   * marshal defaults (SetMarshalDefaults) belong to that State value only; states derived
//     from it do not carry them.
//
// Include "llb/llb.h" for the whole builder API.
//
// Thread-safety: a State may be read and marshaled from several threads only when no thread is
// adding mounts to an ExecState it depends on (ExecState::AddMount mutates its exec op, as in
// Go).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "base/oci.h"
#include "llb/constraints.h"
#include "llb/pb/ops.pb.h"

namespace kiln::llb {

class Vertex;
class MarshalContext;
class ExecState;
struct ExecInfo;
class FileAction;

// Image resolution mode (Go: llb.ResolveMode; attr image.resolvemode default/pull/local).
enum class ResolveMode { kDefault, kPull, kLocal };
// "default", "pull", "local".
std::string_view ResolveModeString(ResolveMode mode);

// One result of an op.  Implemented by the ops; a DeferredOutput can stand in for one that is
// built later.
class Output {
 public:
  Output() = default;
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;
  virtual ~Output() = default;
  // The op producing this output; nullptr for an unbound DeferredOutput.
  virtual const Vertex* vertex() const = 0;
  // The output index within the op.  Fails for outputs that cannot be used as inputs (tmpfs or
  // no-output mounts) with the same message Go gives.
  virtual absl::StatusOr<int64_t> index() const = 0;
  // The platform the producing op was explicitly given, if any (a State built on this output
  // takes it over).
  virtual std::optional<oci::Platform> platform() const { return std::nullopt; }
};

// What marshaling one op yields.
struct MarshaledVertex {
  Digest digest;
  std::string bytes;
  pb::OpMetadata metadata;
  std::vector<SourceLocation> locations;
};

// One op of the graph being built.
class Vertex {
 public:
  Vertex() = default;
  Vertex(const Vertex&) = delete;
  Vertex& operator=(const Vertex&) = delete;
  virtual ~Vertex() = default;
  // The outputs this op consumes, in the order of its pb.Op inputs (duplicates allowed).
  virtual std::vector<std::shared_ptr<const Output>> Inputs() const = 0;
  // Builds the op's bytes; input digests come from `ctx`.
  virtual absl::StatusOr<MarshaledVertex> Marshal(MarshalContext& ctx) const = 0;
};

// Marshal-time context: the marshal constraints and a memo of marshaled vertices.
class MarshalContext {
 public:
  explicit MarshalContext(Constraints constraints) : constraints_(std::move(constraints)) {}
  const Constraints& constraints() const { return constraints_; }
  // Marshals `v` once per context.
  absl::StatusOr<const MarshaledVertex*> MarshalVertex(const Vertex& v);
  // Go's Output.ToInput: the producer's digest and the output index.
  absl::StatusOr<pb::Input> ToInput(const Output& out);

 private:
  Constraints constraints_;
  std::unordered_map<const Vertex*, MarshaledVertex> memo_;
};

// Go: llb.EnvList.  Ordered KEY=value pairs.
class EnvList {
 public:
  // Removes `key` if present and appends it with `value`.
  EnvList AddOrReplace(std::string_view key, std::string_view value) const;
  // Appends only when `key` is absent.
  EnvList SetDefault(std::string_view key, std::string_view value) const;
  EnvList Delete(std::string_view key) const;
  std::optional<std::string> Get(std::string_view key) const;
  std::vector<std::string> ToArray() const;  // "KEY=value"
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }
  bool operator==(const EnvList&) const = default;

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// An /etc/hosts entry; `ip` is written as Go's net.IP.String() prints it.
struct HostIP {
  std::string host;
  std::string ip;
  bool operator==(const HostIP&) const = default;
};

struct Ulimit {
  std::string name;  // "nofile", "nproc", ...
  int64_t soft = 0;
  int64_t hard = 0;
  bool operator==(const Ulimit&) const = default;
};

// The process context a State carries (Go's keyEnv, keyDir, ... values).
struct StateValues {
  EnvList env;
  std::string dir;
  std::string user;
  std::string hostname;
  std::optional<oci::Platform> platform;
  pb::NetMode network = pb::UNSET;
  pb::SecurityMode security = pb::SANDBOX;
  std::vector<HostIP> extra_hosts;
  std::vector<Ulimit> ulimits;
  std::string cgroup_parent;
  std::vector<std::string> args;                         // Go: llb.Args as a state value
  std::optional<std::vector<int32_t>> valid_exit_codes;  // BuildKit HEAD
};

class State {
 public:
  // Scratch: no filesystem, dir "/".
  State();
  // Go: llb.NewState(output): fresh values (dir "/"), platform from the output if it has one.
  // A null output is scratch.
  static State FromOutput(std::shared_ptr<const Output> output);

  const std::shared_ptr<const Output>& output() const { return output_; }
  bool IsScratch() const { return output_ == nullptr; }
  // Same values, another filesystem (Go: State.WithOutput).
  State WithOutput(std::shared_ptr<const Output> output) const;

  // Value setters (Go: AddEnv, Dir, User, Hostname, Network, Security, Platform, AddExtraHost,
  // AddUlimit, WithCgroupParent).
  State AddEnv(std::string_view key, std::string_view value) const;
  State Dir(std::string_view dir) const;  // relative: joined onto the current dir
  State User(std::string_view user) const;
  State Hostname(std::string_view hostname) const;
  State Network(pb::NetMode mode) const;
  State Security(pb::SecurityMode mode) const;
  State Platform(const oci::Platform& platform) const;  // stored normalized
  State AddExtraHost(std::string_view host, std::string_view ip) const;
  State AddUlimit(std::string_view name, int64_t soft, int64_t hard) const;
  State WithCgroupParent(std::string_view cgroup_parent) const;
  State Args(std::vector<std::string> args) const;
  State ValidExitCodes(std::vector<int32_t> codes) const;
  // Go: State.WithImageConfig(json): adds the config's Env, sets Dir(WorkingDir) and, when the
  // config names os and architecture, the platform.  The user is NOT taken (Go does not either;
  // the Dockerfile frontend sets it itself).  InvalidArgument when the JSON is not an image
  // config.
  absl::StatusOr<State> WithImageConfig(std::string_view config_json) const;

  const StateValues& values() const { return *values_; }
  const EnvList& env() const { return values_->env; }
  std::optional<std::string> GetEnv(std::string_view key) const { return values_->env.Get(key); }
  std::vector<std::string> Env() const { return values_->env.ToArray(); }
  const std::string& GetDir() const { return values_->dir; }
  const std::string& GetUser() const { return values_->user; }
  const std::string& GetHostname() const { return values_->hostname; }
  const std::optional<oci::Platform>& GetPlatform() const { return values_->platform; }
  pb::NetMode GetNetwork() const { return values_->network; }
  pb::SecurityMode GetSecurity() const { return values_->security; }
  const std::vector<std::string>& GetArgs() const { return values_->args; }

  // Runs a process on this state's filesystem (llb/exec.h).
  ExecState Run(const ExecInfo& info) const;
  // Applies a chain of file actions (llb/fileop.h); the result is the chain's last action.
  State File(const FileAction& action, const Constraints& constraints = {}) const;

  // Constraints applied by Marshal before the caller's (Go: SetMarshalDefaults).
  State SetMarshalDefaults(Constraints defaults) const;

  // Go: State.Marshal.  The ops reachable from this state, inputs before users and duplicates
  // dropped, then the terminal op {inputs: [this state's output]}; metadata for every op; the
  // source map.  Marshal constraints: this machine's platform and a random local unique id,
  // then the marshal defaults, then `constraints`.  Scratch gives an empty Definition.  Errors
  // of any op (bad image reference, exec without args, ...) are returned as InvalidArgument.
  absl::StatusOr<pb::Definition> Marshal(const Constraints& constraints = {}) const;

 private:
  State WithValues(StateValues values) const;

  std::shared_ptr<const Output> output_;
  std::shared_ptr<const StateValues> values_;
  std::shared_ptr<const Constraints> marshal_defaults_;
};

// An output whose op is chosen later (the Dockerfile frontend's build context: it is used by
// COPY instructions before the patterns of the local source are known).  Marshaling fails while
// it is unbound.
class DeferredOutput : public Output {
 public:
  void Bind(const State& state) { target_ = state.output(); }
  bool bound() const { return target_ != nullptr; }
  const Vertex* vertex() const override { return target_ ? target_->vertex() : nullptr; }
  absl::StatusOr<int64_t> index() const override;

 private:
  std::shared_ptr<const Output> target_;
};

// Go: llb.Merge.  Scratch inputs are dropped; none left gives scratch, one gives that state;
// otherwise a MergeOp (cap "mergeop") on a fresh state.
State Merge(const std::vector<State>& inputs, const Constraints& constraints = {});

// Go: llb.Diff.  Scratch lower: upper itself (scratch if both are).  Otherwise a DiffOp (cap
// "diffop") on a fresh state; a scratch upper is input -1.
State Diff(const State& lower, const State& upper, const Constraints& constraints = {});

// Go's net.IP.String() of a textual IPv4/IPv6 address (IPv4-mapped IPv6 prints as IPv4).
absl::StatusOr<std::string> FormatIP(std::string_view ip);

}  // namespace kiln::llb
