#include "llb/exec.h"

#include <algorithm>

#include "base/status.h"
#include "base/strings.h"
#include "llb/caps.h"
#include "llb/definition.h"
#include "llb/go_compat.h"

namespace kiln::llb {

// The exec vertex.  Mounts may be added after creation (ExecState::AddMount), so outputs refer
// to mounts by id and compute their index when asked, as Go's getMountIndexFn does.
class ExecOp : public Vertex, public std::enable_shared_from_this<ExecOp> {
 public:
  struct Mount {
    size_t id;
    std::string target;
    std::shared_ptr<const Output> source;  // null: scratch
    MountOptions options;

    bool IsCache() const { return options.cache && !options.cache->id.empty(); }
    bool HasOutput() const {
      return !options.force_no_output && !options.readonly && !options.tmpfs && !IsCache();
    }
  };

  ExecOp(State base, std::optional<ProxyEnv> proxy, Constraints c, std::vector<SecretInfo> secrets,
         std::vector<SshInfo> ssh)
      : base_(std::move(base)),
        proxy_env_(std::move(proxy)),
        constraints_(std::move(c)),
        secrets_(std::move(secrets)),
        ssh_(std::move(ssh)) {}

  // Adds a mount and returns its output (Go: ExecOp.AddMount).
  std::shared_ptr<const Output> AddMount(std::string_view target,
                                         std::shared_ptr<const Output> source,
                                         const MountOptions& options);
  std::shared_ptr<const Output> GetMount(std::string_view target) const;

  std::vector<std::shared_ptr<const Output>> Inputs() const override {
    std::vector<std::shared_ptr<const Output>> out;
    for (const Mount* m : SortedMounts()) {
      if (m->source) out.push_back(m->source);
    }
    return out;
  }

  absl::StatusOr<MarshaledVertex> Marshal(MarshalContext& ctx) const override;

  // Output index of mount `id` among the output mounts in target order.
  absl::StatusOr<int64_t> MountIndex(size_t id) const {
    int64_t i = 0;
    for (const Mount* m : SortedMounts()) {
      if (!m->HasOutput()) continue;
      if (m->id == id) return i;
      ++i;
    }
    return absl::InvalidArgumentError(StrCat("invalid mount: ", mounts_[id].target));
  }

  const Constraints& constraints() const { return constraints_; }

 private:
  // Go sorts the mounts in place by target before marshaling; the root "/" sorts first.
  std::vector<const Mount*> SortedMounts() const {
    std::vector<const Mount*> sorted;
    sorted.reserve(mounts_.size());
    for (const Mount& m : mounts_) sorted.push_back(&m);
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const Mount* a, const Mount* b) { return a->target < b->target; });
    return sorted;
  }

  State base_;
  std::optional<ProxyEnv> proxy_env_;
  Constraints constraints_;
  std::vector<SecretInfo> secrets_;
  std::vector<SshInfo> ssh_;
  std::vector<Mount> mounts_;
};

namespace {

// A writable mount's result.
class MountOutput : public Output {
 public:
  MountOutput(std::shared_ptr<const ExecOp> exec, size_t mount_id)
      : exec_(std::move(exec)), mount_id_(mount_id) {}
  const Vertex* vertex() const override { return exec_.get(); }
  absl::StatusOr<int64_t> index() const override { return exec_->MountIndex(mount_id_); }
  std::optional<oci::Platform> platform() const override { return exec_->constraints().platform; }

 private:
  std::shared_ptr<const ExecOp> exec_;
  size_t mount_id_;
};

// The "output" of a mount that has none (tmpfs, forced no-output): unusable as an input.
class ErrorOutput : public Output {
 public:
  ErrorOutput(std::shared_ptr<const ExecOp> exec, std::string message)
      : exec_(std::move(exec)), message_(std::move(message)) {}
  const Vertex* vertex() const override { return exec_.get(); }
  absl::StatusOr<int64_t> index() const override { return absl::InvalidArgumentError(message_); }

 private:
  std::shared_ptr<const ExecOp> exec_;
  std::string message_;
};

pb::CacheSharingOpt ToPb(CacheSharing s) {
  switch (s) {
    case CacheSharing::kPrivate:
      return pb::PRIVATE;
    case CacheSharing::kLocked:
      return pb::LOCKED;
    case CacheSharing::kShared:
      break;
  }
  return pb::SHARED;
}

}  // namespace

std::shared_ptr<const Output> ExecOp::AddMount(std::string_view target,
                                               std::shared_ptr<const Output> source,
                                               const MountOptions& options) {
  Mount m{mounts_.size(), std::string(target), source, options};
  mounts_.push_back(m);
  if (options.readonly) return source;
  if (options.tmpfs) {
    return std::make_shared<ErrorOutput>(
        shared_from_this(), StrCat("tmpfs mount for ", target, " can't be used as a parent"));
  }
  if (options.force_no_output) {
    return std::make_shared<ErrorOutput>(
        shared_from_this(),
        StrCat("mount marked no-output and ", target, " can't be used as a parent"));
  }
  // Go creates outputs for cache mounts too; their index lookup then fails ("invalid mount").
  return std::make_shared<MountOutput>(shared_from_this(), m.id);
}

std::shared_ptr<const Output> ExecOp::GetMount(std::string_view target) const {
  for (const Mount* m : SortedMounts()) {
    if (m->target != target) continue;
    if (m->options.readonly) return m->source;
    if (m->options.tmpfs || m->options.force_no_output) {
      return std::make_shared<ErrorOutput>(shared_from_this(),
                                           StrCat("mount ", target, " can't be used as a parent"));
    }
    return std::make_shared<MountOutput>(shared_from_this(), m->id);
  }
  return nullptr;
}

absl::StatusOr<MarshaledVertex> ExecOp::Marshal(MarshalContext& ctx) const {
  const Constraints& c = ctx.constraints();
  const StateValues& v = base_.values();
  if (v.args.empty()) return absl::InvalidArgumentError("arguments are required");
  if (v.dir.empty()) return absl::InvalidArgumentError("working directory is required");

  Constraints own = constraints_;
  EnvList env = v.env;
  std::vector<SshInfo> ssh = ssh_;
  for (size_t i = 0; i < ssh.size(); ++i) {
    if (ssh[i].target.empty()) ssh[i].target = StrCat("/run/buildkit/ssh_agent.", i);
  }
  if (!ssh.empty() && !env.Get("SSH_AUTH_SOCK"))
    env = env.AddOrReplace("SSH_AUTH_SOCK", ssh[0].target);
  if (c.caps) {
    if (!c.caps->count(kCapExecMetaSetsDefaultPath)) {
      std::string os = "linux";
      if (c.platform) {
        os = c.platform->os;
      } else if (own.platform) {
        os = own.platform->os;
      }
      env = env.SetDefault("PATH", DefaultPathEnv(os));
    } else {
      own.AddCap(kCapExecMetaSetsDefaultPath);
    }
  }

  pb::ExecOp exec;
  pb::Meta* meta = exec.mutable_meta();
  for (const std::string& a : v.args) meta->add_args(a);
  for (const std::string& e : env.ToArray()) meta->add_env(e);
  meta->set_cwd(v.dir);
  meta->set_user(v.user);
  meta->set_hostname(v.hostname);
  meta->set_cgroupparent(v.cgroup_parent);
  meta->set_removemountstubsrecursive(true);
  for (const HostIP& h : v.extra_hosts) {
    KILN_ASSIGN_OR_RETURN(std::string ip, FormatIP(h.ip));
    pb::HostIP* ph = meta->add_extrahosts();
    ph->set_host(h.host);
    ph->set_ip(ip);
  }
  if (!v.ulimits.empty()) {
    own.AddCap(kCapExecMetaUlimit);
    for (const Ulimit& u : v.ulimits) {
      pb::Ulimit* pu = meta->add_ulimit();
      pu->set_name(u.name);
      pu->set_soft(u.soft);
      pu->set_hard(u.hard);
    }
  }
  if (v.valid_exit_codes) {
    for (int32_t code : *v.valid_exit_codes) meta->add_validexitcodes(code);
    own.AddCap(kCapExecValidExitCode);
  }
  exec.set_network(v.network);
  exec.set_security(v.security);
  if (v.network != pb::UNSET) own.AddCap(kCapExecMetaNetwork);
  if (v.security != pb::SANDBOX) own.AddCap(kCapExecMetaSecurity);
  if (proxy_env_) {
    pb::ProxyEnv* p = meta->mutable_proxy_env();
    p->set_http_proxy(proxy_env_->http_proxy);
    p->set_https_proxy(proxy_env_->https_proxy);
    p->set_ftp_proxy(proxy_env_->ftp_proxy);
    p->set_no_proxy(proxy_env_->no_proxy);
    p->set_all_proxy(proxy_env_->all_proxy);
    own.AddCap(kCapExecMetaProxy);
  }
  own.AddCap(kCapExecMetaBase);

  const std::vector<const Mount*> mounts = SortedMounts();
  for (const Mount* m : mounts) {
    if (!m->options.selector.empty()) own.AddCap(kCapExecMountSelector);
    if (m->IsCache()) {
      own.AddCap(kCapExecMountCache);
      own.AddCap(kCapExecMountCacheSharing);
    } else if (m->options.tmpfs) {
      own.AddCap(kCapExecMountTmpfs);
      if (m->options.tmpfs->size > 0) own.AddCap(kCapExecMountTmpfsSize);
    } else if (m->source) {
      own.AddCap(kCapExecMountBind);
    }
  }
  if (!secrets_.empty()) {
    own.AddCap(kCapExecMountSecret);
    for (const SecretInfo& s : secrets_) {
      if (s.is_env) {
        own.AddCap(kCapExecSecretEnv);
        break;
      }
    }
  }
  if (!ssh.empty()) own.AddCap(kCapExecMountSSH);
  if (!own.platform) own.platform = v.platform;

  MarshaledConstraints mc = MarshalConstraints(c, own);
  int64_t out_index = 0;
  for (const Mount* m : mounts) {
    int64_t input_index = -1;
    if (m->source) {
      if (m->options.tmpfs) return absl::InvalidArgumentError("tmpfs mounts must use scratch");
      KILN_ASSIGN_OR_RETURN(pb::Input in, ctx.ToInput(*m->source));
      input_index = mc.op.inputs_size();
      for (int i = 0; i < mc.op.inputs_size(); ++i) {
        if (mc.op.inputs(i).digest() == in.digest() && mc.op.inputs(i).index() == in.index()) {
          input_index = i;
          break;
        }
      }
      if (input_index == mc.op.inputs_size()) *mc.op.add_inputs() = std::move(in);
    }
    // A cache mount with an empty id is not a cache mount in Go either (it checks cacheID != "").
    const bool is_cache = m->IsCache();
    const int64_t output_index = m->HasOutput() ? out_index++ : -1;
    pb::Mount* pm = exec.add_mounts();
    pm->set_input(input_index);
    pm->set_dest(m->target);
    pm->set_readonly(m->options.readonly);
    pm->set_output(output_index);
    pm->set_selector(m->options.selector);
    if (is_cache) {
      pm->set_mounttype(pb::CACHE);
      pm->mutable_cacheopt()->set_id(m->options.cache->id);
      pm->mutable_cacheopt()->set_sharing(ToPb(m->options.cache->sharing));
    }
    if (m->options.tmpfs) {
      pm->set_mounttype(pb::TMPFS);
      pm->mutable_tmpfsopt()->set_size(m->options.tmpfs->size);
    }
  }
  for (const SecretInfo& s : secrets_) {
    std::string id = s.id.empty() ? s.target : s.id;
    if (s.is_env) {
      pb::SecretEnv* se = exec.add_secretenv();
      se->set_id(id);
      se->set_name(s.target);
      se->set_optional(s.optional);
      continue;
    }
    pb::Mount* pm = exec.add_mounts();
    pm->set_dest(s.target);
    pm->set_mounttype(pb::SECRET);
    pb::SecretOpt* so = pm->mutable_secretopt();
    so->set_id(id);
    so->set_uid(static_cast<uint32_t>(s.uid));
    so->set_gid(static_cast<uint32_t>(s.gid));
    so->set_optional(s.optional);
    so->set_mode(static_cast<uint32_t>(s.mode));
  }
  for (const SshInfo& s : ssh) {
    pb::Mount* pm = exec.add_mounts();
    pm->set_dest(s.target);
    pm->set_mounttype(pb::SSH);
    pb::SSHOpt* so = pm->mutable_sshopt();
    so->set_id(s.id);
    so->set_uid(static_cast<uint32_t>(s.uid));
    so->set_gid(static_cast<uint32_t>(s.gid));
    so->set_mode(static_cast<uint32_t>(s.mode));
    so->set_optional(s.optional);
  }
  *mc.op.mutable_exec() = std::move(exec);

  MarshaledVertex mv;
  mv.bytes = SerializeDeterministic(mc.op);
  mv.digest = OpDigest(mv.bytes);
  mv.metadata = std::move(mc.metadata);
  mv.locations = constraints_.source_locations;
  return mv;
}

ExecState State::Run(const ExecInfo& info) const {
  State base = *this;
  for (const auto& opt : info.state_options) base = opt(base);
  if (info.args) base = base.Args(*info.args);
  if (info.network) base = base.Network(*info.network);
  if (info.security) base = base.Security(*info.security);
  for (const HostIP& h : info.extra_hosts) base = base.AddExtraHost(h.host, h.ip);
  for (const Ulimit& u : info.ulimits) base = base.AddUlimit(u.name, u.soft, u.hard);
  if (info.cgroup_parent) base = base.WithCgroupParent(*info.cgroup_parent);
  if (info.valid_exit_codes) base = base.ValidExitCodes(*info.valid_exit_codes);

  auto exec =
      std::make_shared<ExecOp>(base, info.proxy_env, info.constraints, info.secrets, info.ssh);
  // The root mount: the state's own filesystem (Go: NewExecOp).
  MountOptions root_opts;
  root_opts.readonly = info.readonly_rootfs;
  std::shared_ptr<const Output> root = exec->AddMount(kRootMount, base.output(), root_opts);
  for (const MountInfo& m : info.mounts) exec->AddMount(m.target, m.source.output(), m.options);
  return ExecState(WithOutput(root), std::move(exec));
}

State ExecState::AddMount(std::string_view target, const State& source,
                          const MountOptions& options) const {
  return source.WithOutput(exec_->AddMount(target, source.output(), options));
}

State ExecState::GetMount(std::string_view target) const {
  return State::FromOutput(exec_->GetMount(target));
}

}  // namespace kiln::llb
