#include "engine/ops/exec_op.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/pattern_match.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/executor/executor.h"
#include "engine/ops/content_hash.h"
#include "engine/ops/file_tree.h"
#include "engine/ops/mounts.h"
#include "engine/ops/session.h"
#include "engine/worker/worker.h"
#include "llb/dump.h"
#include "llb/go_compat.h"

namespace kiln::engine {
namespace {

constexpr char kExecCacheType[] = "buildkit.exec.v0";
constexpr char kRootMount[] = "/";

bool IsLonePlainRoot(const pb::ExecOp& op) {
  if (op.mounts_size() != 1) return false;
  const pb::Mount& m = op.mounts(0);
  return m.dest() == kRootMount && m.selector().empty() && !m.readonly() &&
         m.mounttype() == pb::BIND && !m.has_cacheopt() && !m.has_sshopt() && !m.has_secretopt() &&
         m.resultid().empty();
}

struct MountDep {
  std::vector<std::string> selectors;
  bool no_content_hash = false;
};

std::vector<std::string> ProxyEnvList(const pb::ProxyEnv& p) {
  std::vector<std::string> out;
  auto add = [&](const char* upper, const char* lower, const std::string& v) {
    if (v.empty()) return;
    out.push_back(StrCat(upper, "=", v));
    out.push_back(StrCat(lower, "=", v));
  };
  add("HTTP_PROXY", "http_proxy", p.http_proxy());
  add("HTTPS_PROXY", "https_proxy", p.https_proxy());
  add("FTP_PROXY", "ftp_proxy", p.ftp_proxy());
  add("NO_PROXY", "no_proxy", p.no_proxy());
  add("ALL_PROXY", "all_proxy", p.all_proxy());
  return out;
}

void AddDefaultEnv(std::vector<std::string>& env, std::string_view k, std::string_view v) {
  std::string prefix = StrCat(k, "=");
  for (const std::string& e : env) {
    if (e.starts_with(prefix)) return;
  }
  env.push_back(StrCat(prefix, v));
}

class LogSink : public OutputSink {
 public:
  explicit LogSink(const VertexProgress& p) : p_(p) {}
  void Write(OutputStream stream, std::string_view data) override {
    p_.Log(static_cast<int>(stream), data);
  }

 private:
  const VertexProgress& p_;
};

// Snapshot mount descriptions as executor mounts at `dest`.
std::vector<MountSpec> SpecsFor(const std::vector<snapshotter::Mount>& mounts,
                                const std::string& dest, bool readonly) {
  std::vector<MountSpec> out;
  for (const snapshotter::Mount& m : mounts) {
    MountSpec s{m.type, m.source, dest, {}};
    for (const std::string& o : m.options) {
      if (readonly && o == "rw") continue;
      s.options.push_back(o);
    }
    if (readonly) s.options.push_back("ro");
    out.push_back(std::move(s));
  }
  return out;
}

std::string AbsDest(const std::string& dest, const std::string& cwd) {
  std::string clean = CleanPath(dest);
  if (!clean.empty() && clean[0] == '/') return clean;
  return CleanPath(StrCat("/", cwd, "/", dest));
}

class ExecOp : public Op {
 public:
  ExecOp(LlbOp op, OpEnv env) : llb_(std::move(op)), env_(env) {}

  absl::StatusOr<CacheMap> GetCacheMap(const OpContext&) override {
    return ExecOpCacheMap(llb_.op.exec(), llb_.op.inputs_size(), llb_.platform, env_.worker);
  }

  absl::StatusOr<std::vector<ResultRef>> Exec(const OpContext& ctx,
                                              std::span<const ResultRef> inputs) override;

 private:
  // What one run holds; destroyed in reverse order of declaration (host mounts before the
  // snapshots they show).
  struct Run {
    std::vector<ActiveSnapshot> snapshots;  // actives and views
    std::vector<std::unique_ptr<MountedTree>> host_mounts;
    std::vector<std::unique_ptr<CacheMountLease>> leases;
    std::vector<std::unique_ptr<SecretFile>> secrets;
    std::vector<std::unique_ptr<SshRelay>> relays;
    // Output index -> the result (an input passed through) or the active snapshot to commit
    // (index into `snapshots`).
    std::map<int64_t, ResultRef> passthrough;
    std::map<int64_t, size_t> to_commit;
    std::optional<MountSpec> root;
    std::vector<MountSpec> mounts;
    bool root_readonly = false;
  };

  absl::Status AddSnapshotMount(Run& run, const pb::Mount& m, const std::string& dest,
                                ActiveSnapshot snap, bool readonly, int64_t commit_output);
  absl::Status PrepareMount(Run& run, const pb::Mount& m, std::span<const ResultRef> inputs,
                            const OpContext& ctx);
  absl::StatusOr<std::vector<std::string>> SecretEnv(const OpContext& ctx);

  LlbOp llb_;
  OpEnv env_;
  std::map<std::string, CacheMountLease*> op_leases_;  // per run: same cache twice in one exec
};

absl::Status ExecOp::AddSnapshotMount(Run& run, const pb::Mount& m, const std::string& dest,
                                      ActiveSnapshot snap, bool readonly, int64_t commit_output) {
  std::vector<MountSpec> specs;
  const bool direct = m.selector().empty() && snap.mounts().size() <= 1 &&
                      (snap.mounts().empty() || snap.mounts()[0].target.empty());
  if (direct && !snap.mounts().empty()) {
    specs = SpecsFor(snap.mounts(), dest, readonly);
  } else {
    // Scratch views and sub-path selections are mounted on the host and bound from there; the
    // selector is resolved inside the mounted tree, never outside it.
    KILN_ASSIGN_OR_RETURN(auto tree, MountedTree::Mount(*env_.worker, snap.mounts()));
    std::string sub;
    if (!m.selector().empty()) {
      KILN_ASSIGN_OR_RETURN(sub, tree->root().Resolve(m.selector(), true));
      KILN_ASSIGN_OR_RETURN(auto st, tree->root().Lstat(sub));
      if (!st) {
        return absl::NotFoundError(StrCat("mount ", dest, ": source path ",
                                          CleanPath(StrCat("/", m.selector())), " not found"));
      }
    }
    MountSpec s{"bind", tree->root().HostPath(sub), dest, {"rbind"}};
    if (readonly) s.options.push_back("ro");
    specs.push_back(std::move(s));
    run.host_mounts.push_back(std::move(tree));
  }
  run.snapshots.push_back(std::move(snap));
  if (commit_output >= 0) run.to_commit[commit_output] = run.snapshots.size() - 1;
  if (dest == kRootMount) {
    if (specs.size() != 1) return absl::InvalidArgumentError("root mount must be one mount");
    run.root = specs[0];
  } else {
    for (auto& s : specs) run.mounts.push_back(std::move(s));
  }
  return absl::OkStatus();
}

absl::Status ExecOp::PrepareMount(Run& run, const pb::Mount& m, std::span<const ResultRef> inputs,
                                  const OpContext& ctx) {
  Worker& w = *env_.worker;
  const pb::Meta& meta = llb_.op.exec().meta();
  const std::string dest =
      m.dest() == kRootMount ? std::string(kRootMount) : AbsDest(m.dest(), meta.cwd());
  if (m.dest() == kRootMount && m.mounttype() != pb::BIND) {
    return absl::InvalidArgumentError(StrCat("invalid mount type for ", m.dest()));
  }
  ResultRef ref;
  if (m.input() != -1) {
    if (m.input() < 0 || m.input() >= static_cast<int64_t>(inputs.size())) {
      return absl::InvalidArgumentError(StrCat("missing input ", m.input()));
    }
    ref = inputs[m.input()];
  }
  const bool has_ref = ref && !SnapshotKeyOf(ref).empty();
  const std::string desc = StrCat("mount ", m.dest(), " from ", llb_.Name());

  switch (m.mounttype()) {
    case pb::BIND: {
      if (m.output() != -1) {
        if (m.readonly() && ref && dest != kRootMount) {
          run.passthrough[m.output()] = ref;
          KILN_ASSIGN_OR_RETURN(ActiveSnapshot view, w.View(ref));
          return AddSnapshotMount(run, m, dest, std::move(view), true, -1);
        }
        KILN_ASSIGN_OR_RETURN(ActiveSnapshot active, w.Prepare(ref, desc));
        if (dest == kRootMount) run.root_readonly = m.readonly();
        return AddSnapshotMount(run, m, dest, std::move(active), m.readonly(), m.output());
      }
      if (!m.readonly() || !has_ref || dest == kRootMount) {
        // Throwaway writable layer (also a read-only root without output, and scratch).
        KILN_ASSIGN_OR_RETURN(ActiveSnapshot active, w.Prepare(ref, desc));
        if (dest == kRootMount) run.root_readonly = m.readonly();
        return AddSnapshotMount(run, m, dest, std::move(active), m.readonly(), -1);
      }
      KILN_ASSIGN_OR_RETURN(ActiveSnapshot view, w.View(ref));
      return AddSnapshotMount(run, m, dest, std::move(view), true, -1);
    }
    case pb::CACHE: {
      if (!m.has_cacheopt()) return absl::InvalidArgumentError("missing cache mount options");
      const std::string id = m.cacheopt().id().empty() ? m.dest() : m.cacheopt().id();
      const std::string lease_key = StrCat(id, "\n", SnapshotKeyOf(ref));
      std::string path;
      auto it = op_leases_.find(lease_key);
      if (it != op_leases_.end()) {
        path = it->second->path();
      } else {
        KILN_ASSIGN_OR_RETURN(auto lease, CacheMounts::ForWorker(w).Acquire(
                                              id, m.cacheopt().sharing(), ref, ctx.cancel));
        path = lease->path();
        op_leases_[lease_key] = lease.get();
        run.leases.push_back(std::move(lease));
      }
      if (m.output() != -1 && ref) run.passthrough[m.output()] = ref;
      std::string sub;
      if (!m.selector().empty()) {
        KILN_ASSIGN_OR_RETURN(RootDir root, RootDir::Open(path));
        KILN_ASSIGN_OR_RETURN(sub, root.Resolve(m.selector(), true));
        KILN_ASSIGN_OR_RETURN(auto st, root.Lstat(sub));
        if (!st) {
          return absl::NotFoundError(StrCat("cache mount ", dest, ": source path ",
                                            CleanPath(StrCat("/", m.selector())), " not found"));
        }
        path = root.HostPath(sub);
      }
      MountSpec s{"bind", path, dest, {"rbind"}};
      if (m.readonly()) s.options.push_back("ro");
      run.mounts.push_back(std::move(s));
      return absl::OkStatus();
    }
    case pb::TMPFS: {
      MountSpec s{"tmpfs", "tmpfs", dest, {"nosuid"}};
      if (m.readonly()) s.options.push_back("ro");
      if (m.has_tmpfsopt() && m.tmpfsopt().size() > 0) {
        s.options.push_back(StrCat("size=", m.tmpfsopt().size()));
      }
      run.mounts.push_back(std::move(s));
      return absl::OkStatus();
    }
    case pb::SECRET: {
      if (!m.has_secretopt()) return absl::InvalidArgumentError("invalid secret mount options");
      const pb::SecretOpt& o = m.secretopt();
      if (o.id().empty()) return absl::InvalidArgumentError("secret ID missing from mount options");
      absl::StatusOr<std::string> value = absl::NotFoundError("no secrets in the session");
      if (const auto* s = ctx.session.FindFirst<std::shared_ptr<Secrets>>(kSessionSecrets);
          s != nullptr && *s) {
        value = (*s)->Get(o.id());
      }
      if (!value.ok()) {
        if (absl::IsNotFound(value.status())) {
          if (o.optional()) return absl::OkStatus();
          return absl::NotFoundError(StrCat("secret ", o.id(), " not found"));
        }
        // Never pass the provider's message on: it is not ours to vouch for.
        return absl::Status(value.status().code(), StrCat("get secret ", o.id(), ": failed"));
      }
      KILN_ASSIGN_OR_RETURN(auto file, SecretFile::Create(w, *value, o.uid(), o.gid(), o.mode()));
      run.mounts.push_back(
          MountSpec{"bind", file->path(), dest, {"rbind", "ro", "nodev", "nosuid", "noexec"}});
      run.secrets.push_back(std::move(file));
      return absl::OkStatus();
    }
    case pb::SSH: {
      if (!m.has_sshopt()) return absl::InvalidArgumentError("invalid ssh mount options");
      const pb::SSHOpt& o = m.sshopt();
      absl::StatusOr<std::string> sock = absl::NotFoundError("no ssh agents in the session");
      if (const auto* s = ctx.session.FindFirst<std::shared_ptr<SshAgents>>(kSessionSsh);
          s != nullptr && *s) {
        sock = (*s)->SocketPath(o.id().empty() ? "default" : o.id());
      }
      if (!sock.ok()) {
        if (o.optional()) return absl::OkStatus();
        return absl::NotFoundError(StrCat("no SSH key ", Quote(o.id().empty() ? "default" : o.id()),
                                          " forwarded from the client"));
      }
      KILN_ASSIGN_OR_RETURN(auto relay, SshRelay::Start(w, *sock, o.uid(), o.gid(), o.mode()));
      run.mounts.push_back(MountSpec{"bind", relay->path(), dest, {"rbind"}});
      run.relays.push_back(std::move(relay));
      return absl::OkStatus();
    }
    default:
      return absl::UnimplementedError(
          StrCat("mount type ", int(m.mounttype()), " not implemented"));
  }
}

absl::StatusOr<std::vector<std::string>> ExecOp::SecretEnv(const OpContext& ctx) {
  std::vector<std::string> out;
  const auto* secrets = ctx.session.FindFirst<std::shared_ptr<Secrets>>(kSessionSecrets);
  for (const pb::SecretEnv& se : llb_.op.exec().secretenv()) {
    if (se.id().empty()) {
      return absl::InvalidArgumentError(
          StrCat("secret ID missing for ", Quote(se.name()), " environment variable"));
    }
    absl::StatusOr<std::string> v = absl::NotFoundError("no secrets");
    if (secrets != nullptr && *secrets) v = (*secrets)->Get(se.id());
    if (!v.ok()) {
      if (absl::IsNotFound(v.status())) {
        if (se.optional()) continue;
        return absl::NotFoundError(StrCat("secret ", se.id(), " not found"));
      }
      return absl::Status(v.status().code(), StrCat("get secret ", se.id(), ": failed"));
    }
    out.push_back(StrCat(se.name(), "=", *v));
  }
  return out;
}

absl::StatusOr<std::vector<ResultRef>> ExecOp::Exec(const OpContext& ctx,
                                                    std::span<const ResultRef> inputs) {
  const pb::ExecOp& e = llb_.op.exec();
  const pb::Meta& meta = e.meta();
  op_leases_.clear();
  Run run;
  for (const pb::Mount& m : e.mounts()) {
    KILN_RETURN_IF_ERROR(ctx.cancel.Check());
    absl::Status s = PrepareMount(run, m, inputs, ctx);
    if (!s.ok()) {
      op_leases_.clear();
      return s;
    }
  }
  op_leases_.clear();
  if (!run.root) return absl::InvalidArgumentError("exec has no root mount");

  std::vector<MountSpec> mounts;
  mounts.push_back(*run.root);
  std::stable_sort(run.mounts.begin(), run.mounts.end(),
                   [](const MountSpec& a, const MountSpec& b) { return a.target < b.target; });
  for (auto& m : run.mounts) mounts.push_back(std::move(m));

  ProcessSpec p;
  p.args.assign(meta.args().begin(), meta.args().end());
  p.env.assign(meta.env().begin(), meta.env().end());
  if (meta.has_proxy_env()) {
    for (std::string& v : ProxyEnvList(meta.proxy_env())) p.env.push_back(std::move(v));
  }
  AddDefaultEnv(p.env, "PATH", llb::DefaultPathEnv(llb_.platform.os));
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> secret_env, SecretEnv(ctx));
  for (std::string& v : secret_env) p.env.push_back(std::move(v));
  p.cwd = meta.cwd().empty() ? "/" : meta.cwd();
  p.user = meta.user();
  p.hostname = meta.hostname();
  for (const pb::HostIP& h : meta.extrahosts()) p.extra_hosts.emplace_back(h.host(), h.ip());
  p.network = e.network() == pb::NONE ? NetworkMode::kNone : NetworkMode::kHost;
  p.security = e.security() == pb::INSECURE ? SecurityMode::kInsecure : SecurityMode::kSandbox;
  for (const pb::Ulimit& u : meta.ulimit()) {
    std::string name = u.name();
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (name.starts_with("rlimit_")) name = name.substr(7);
    p.rlimits.push_back(Rlimit{name, u.soft() < 0 ? ~uint64_t{0} : static_cast<uint64_t>(u.soft()),
                               u.hard() < 0 ? ~uint64_t{0} : static_cast<uint64_t>(u.hard())});
  }
  p.valid_exit_codes.assign(meta.validexitcodes().begin(), meta.validexitcodes().end());
  p.remove_mount_stubs_recursive = meta.removemountstubsrecursive();

  LogSink sink(ctx.progress);
  absl::Status run_status = env_.worker->executor().Run(mounts, p, sink, ctx.cancel);
  secret_env.clear();
  p.env.clear();
  // Unmount host views and drop leases, secrets and relays before committing.
  run.host_mounts.clear();
  run.relays.clear();
  run.secrets.clear();
  run.leases.clear();
  KILN_RETURN_IF_ERROR(run_status);

  const size_t outputs = run.passthrough.size() + run.to_commit.size();
  std::vector<ResultRef> results(outputs);
  for (auto& [idx, ref] : run.passthrough) {
    if (idx < 0 || idx >= static_cast<int64_t>(outputs)) {
      return absl::InvalidArgumentError(StrCat("invalid output index ", idx));
    }
    results[idx] = ref;
  }
  for (auto& [idx, snap] : run.to_commit) {
    if (idx < 0 || idx >= static_cast<int64_t>(outputs)) {
      return absl::InvalidArgumentError(StrCat("invalid output index ", idx));
    }
    KILN_ASSIGN_OR_RETURN(results[idx], env_.worker->Commit(std::move(run.snapshots[snap])));
  }
  return results;
}

}  // namespace

absl::StatusOr<CacheMap> ExecOpCacheMap(const pb::ExecOp& in, int num_inputs,
                                        const oci::Platform& platform, Worker* worker) {
  pb::ExecOp op = in;
  pb::Meta* meta = op.mutable_meta();
  for (pb::HostIP& h : *meta->mutable_extrahosts()) h.clear_ip();
  for (pb::Mount& m : *op.mutable_mounts()) m.clear_selector();
  meta->clear_proxy_env();
  if (IsLonePlainRoot(op)) op.clear_mounts();
  oci::Platform plat = platform;
  if (plat.os.empty() && plat.architecture.empty()) plat = llb::DefaultPlatform();
  std::string json = StrCat("{\"Type\":\"", kExecCacheType, "\",\"Exec\":", llb::GoJson(op),
                            ",\"OS\":", llb::GoJsonQuote(plat.os),
                            ",\"Arch\":", llb::GoJsonQuote(plat.architecture));
  if (!plat.variant.empty()) StrAppend(&json, ",\"Variant\":", llb::GoJsonQuote(plat.variant));
  json.push_back('}');

  CacheMap cm;
  cm.digest = Digest::Sha256Of(json);
  cm.deps.resize(num_inputs);
  std::vector<MountDep> deps(num_inputs);
  for (const pb::Mount& m : in.mounts()) {
    if (m.input() == -1) continue;
    if (m.input() < 0 || m.input() >= num_inputs) {
      return absl::InvalidArgumentError(StrCat("invalid mount input ", m.input()));
    }
    MountDep& d = deps[m.input()];
    if (!m.selector().empty()) d.selectors.push_back(CleanPath(StrCat("/", m.selector())));
    if ((!m.readonly() || m.dest() == kRootMount) && m.output() != -1) d.no_content_hash = true;
  }
  for (int i = 0; i < num_inputs; ++i) {
    const MountDep& d = deps[i];
    if (!d.selectors.empty()) {
      std::string joined;
      for (size_t j = 0; j < d.selectors.size(); ++j) {
        if (j) joined.push_back('\0');
        joined += d.selectors[j];
      }
      cm.deps[i].selector = Digest::Sha256Of(joined);
    }
    if (!d.no_content_hash && worker != nullptr) {
      std::vector<ContentSelector> sels;
      for (const std::string& p : DedupePaths(d.selectors)) {
        sels.push_back(ContentSelector{.path = p, .follow_links = true});
      }
      cm.deps[i].content = MakeContentDigestFunc(worker, std::move(sels));
    }
  }
  return cm;
}

absl::StatusOr<std::unique_ptr<Op>> NewExecOp(const LlbOp& op, const OpEnv& env) {
  if (!op.op.has_exec()) return absl::InvalidArgumentError("not an exec op");
  if (env.worker == nullptr) return absl::FailedPreconditionError("exec op needs a worker");
  return std::unique_ptr<Op>(new ExecOp(op, env));
}

}  // namespace kiln::engine
