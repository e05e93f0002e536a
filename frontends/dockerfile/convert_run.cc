// RUN: heredocs, the shell, --mount (bind, cache, tmpfs, secret, ssh), --network, --security
// (BuildKit v0.11.6 dispatchRun, convert_runmount.go, convert_secrets.go, convert_ssh.go;
// RUN --security and secret env= as BuildKit HEAD).
#include "absl/strings/str_cat.h"
#include "base/go_compat.h"
#include "base/status.h"
#include "base/strings.h"
#include "frontends/dockerfile/convert_internal.h"
#include "frontends/dockerfile/go_compat.h"

namespace kiln::frontends::dockerfile::internal {
namespace {

constexpr char kFrontendCommandKey[] = "com.docker.dockerfile.v1.command";

// Go's summarizeHeredoc: the first line, "..." when there are more.
std::string SummarizeHeredoc(std::string_view doc) {
  std::string d(go::TrimSpace(doc));
  std::string unix;
  for (size_t i = 0; i < d.size(); ++i) {
    if (d[i] == '\r' && i + 1 < d.size() && d[i + 1] == '\n') continue;
    unix.push_back(d[i]);
  }
  size_t nl = unix.find('\n');
  if (nl == std::string::npos) return unix;
  return unix.substr(0, nl) + "...";
}

// Go's runCommandString: the history text of a RUN ("|2 A=1 B=2 /bin/sh -c make").
std::string RunCommandString(const std::vector<std::string>& args,
                             const std::vector<ArgValue>& build_args,
                             const std::vector<std::string>& env) {
  std::map<std::string, std::string> env_map;
  for (const std::string& kv : env) {
    auto [k, v] = ParseKeyValue(kv);
    env_map[k] = v;
  }
  std::vector<std::string> parts;
  for (const ArgValue& a : build_args) {
    auto it = env_map.find(a.key);
    parts.push_back(StrCat(a.key, "=", it != env_map.end() ? it->second : a.ValueString()));
  }
  if (!parts.empty()) parts.insert(parts.begin(), StrCat("|", parts.size()));
  parts.insert(parts.end(), args.begin(), args.end());
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += " ";
    out += parts[i];
  }
  return out;
}

llb::State SetCacheUidGid(const Mount& m, const llb::State& st) {
  const uint32_t uid = static_cast<uint32_t>(m.uid.value_or(0));
  const uint32_t gid = static_cast<uint32_t>(m.gid.value_or(0));
  const uint32_t mode = static_cast<uint32_t>(m.mode.value_or(0755));
  return st.File(llb::Mkdir("/cache", mode, {.chown = llb::ChownFromIds(uid, gid)}),
                 llb::Constraints().WithCustomName("[internal] settings cache mount permissions"));
}

// Go's path.Base (no cleaning besides trailing slashes).
std::string PathBase(std::string p) {
  if (p.empty()) return ".";
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  if (slash != std::string::npos && p.size() > 1) p = p.substr(slash + 1);
  return p.empty() ? "/" : p;
}

absl::Status AddSecret(const Mount& m, llb::ExecInfo& info) {
  std::string id = m.cache_id;
  if (!m.source.empty()) id = m.source;
  if (id.empty()) {
    if (m.target.empty()) return absl::InvalidArgumentError("one of source, target required");
    id = PathBase(m.target);
  }
  llb::SecretInfo s;
  s.id = id;
  s.optional = !m.required;
  if (m.uid || m.gid || m.mode) {
    s.uid = static_cast<int>(m.uid.value_or(0));
    s.gid = static_cast<int>(m.gid.value_or(0));
    s.mode = static_cast<int>(m.mode.value_or(0400));
  }
  // BuildKit HEAD: env= exposes the secret as a variable; a file is mounted only when a target
  // is given too.
  if (!m.env || !m.target.empty()) {
    llb::SecretInfo file = s;
    file.target = m.target.empty() ? StrCat("/run/secrets/", PathBase(id)) : m.target;
    info.secrets.push_back(std::move(file));
  }
  if (m.env) {
    llb::SecretInfo env = s;
    env.target = *m.env;
    env.is_env = true;
    info.secrets.push_back(std::move(env));
  }
  return absl::OkStatus();
}

absl::Status AddSsh(const Mount& m, llb::ExecInfo& info) {
  if (!m.source.empty()) return absl::InvalidArgumentError("ssh does not support source");
  llb::SshInfo s;
  s.id = m.cache_id;
  s.target = m.target;
  s.optional = !m.required;
  if (m.uid || m.gid || m.mode) {
    s.uid = static_cast<int>(m.uid.value_or(0));
    s.gid = static_cast<int>(m.gid.value_or(0));
    s.mode = static_cast<int>(m.mode.value_or(0600));
  }
  info.ssh.push_back(std::move(s));
  return absl::OkStatus();
}

// Go's dispatchRunMounts.
absl::Status AddRunMounts(DispatchState& d, const RunCommand& run,
                          const std::vector<DispatchState*>& sources, const DispatchOpt& opt,
                          llb::ExecInfo& info) {
  for (size_t i = 0; i < run.mounts.size(); ++i) {
    Mount mount = run.mounts[i];
    if (mount.from.empty() && mount.type == MountType::kCache) mount.from = "scratch";
    llb::State st = opt.build_context;
    if (!mount.from.empty()) {
      if (i >= sources.size() || sources[i] == nullptr) {
        return absl::InternalError("RUN --mount: source stage missing");
      }
      st = sources[i]->state;
    }
    llb::MountOptions mo;
    if (mount.type == MountType::kTmpfs) {
      st = llb::Scratch();
      mo.tmpfs = llb::MountOptions::Tmpfs{mount.size_limit};
    }
    if (mount.type == MountType::kSecret) {
      KILN_RETURN_IF_ERROR(AddSecret(mount, info));
      continue;
    }
    if (mount.type == MountType::kSsh) {
      KILN_RETURN_IF_ERROR(AddSsh(mount, info));
      continue;
    }
    if (mount.read_only) {
      mo.readonly = true;
    } else if (mount.type == MountType::kBind &&
               opt.CapSupported(llb::kCapExecMountBindReadWriteNoOutput)) {
      mo.force_no_output = true;
    }
    if (mount.type == MountType::kCache) {
      llb::CacheSharing sharing = llb::CacheSharing::kShared;
      if (mount.sharing == ShareMode::kPrivate) sharing = llb::CacheSharing::kPrivate;
      if (mount.sharing == ShareMode::kLocked) sharing = llb::CacheSharing::kLocked;
      if (mount.cache_id.empty()) mount.cache_id = CleanPath(mount.target);
      mo.cache = llb::MountOptions::Cache{
          StrCat(opt.convert->cache_id_namespace, "/", mount.cache_id), sharing};
    }
    std::string target = mount.target;
    if (!PathIsAbs(CleanPath(mount.target))) {
      target = PathJoin({"/", d.state.GetDir(), mount.target});
    }
    if (target == "/") {
      return absl::InvalidArgumentError(StrCat("invalid mount target ", go::Quote(target)));
    }
    const std::string src = PathJoin({"/", mount.source});
    if (src != "/") {
      mo.selector = src;
    } else if (mount.uid || mount.gid || mount.mode) {
      st = SetCacheUidGid(mount, st);
      mo.selector = "/cache";
    }
    info.mounts.push_back(llb::MountInfo{target, st, mo});
    if (mount.from.empty()) d.ctx_paths.insert(src);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DispatchRun(DispatchState& d, const Command& cmd, const RunCommand& run,
                         const std::vector<DispatchState*>& sources, DispatchOpt& opt) {
  llb::ExecInfo info;
  std::string custom_name = cmd.code;
  std::vector<std::string> args = run.cmd.cmd_line;
  const std::vector<ShellInlineFile>& files = run.cmd.files;
  if (!files.empty()) {
    if (args.size() != 1 || !run.cmd.prepend_shell) {
      return absl::InvalidArgumentError(
          StrCat("parsing produced an invalid run command: ", GoFormatSlice(args)));
    }
    Heredoc marker;
    absl::StatusOr<bool> is_heredoc = ParseHeredocMarker(args[0], &marker);
    if (is_heredoc.ok() && *is_heredoc) {
      std::string data = files[0].data;
      if (files[0].chomp) data = ChompHeredocContent(data);
      if (d.image.platform.os != "windows" && files[0].data.rfind("#!", 0) == 0) {
        // A script with a shebang: written to a file and executed.
        const std::string& name = files[0].name;
        llb::State script = llb::Scratch().Dir("/").File(
            llb::Mkfile(name, 0755, data),
            llb::Constraints().WithCustomName("[internal] preparing inline document"));
        info.mounts.push_back(llb::MountInfo{"/dev/pipes/", script,
                                             llb::MountOptions{.readonly = true, .selector = "/"}});
        args = {PathJoin({"/dev/pipes/", name})};
      } else {
        args = {data};
      }
      StrAppend(&custom_name, " (", SummarizeHeredoc(files[0].data), ")");
    } else {
      std::string full = args[0];
      for (const ShellInlineFile& f : files) StrAppend(&full, "\n", f.data, f.name);
      args = {full};
    }
  }
  if (run.cmd.prepend_shell) args = WithShell(d.image, args);

  const std::vector<std::string> env = d.state.Env();
  info.args = args;
  info.constraints.WithDescription({{kFrontendCommandKey, cmd.code}});
  info.constraints.WithLocation(opt.source_map, ToRanges(cmd.location));
  if (d.ignore_cache) info.constraints.WithIgnoreCache();
  info.proxy_env = opt.proxy_env;

  KILN_RETURN_IF_ERROR(AddRunMounts(d, run, sources, opt, info));

  if (run.security == "insecure") {
    info.security = pb::INSECURE;
  } else if (run.security == "sandbox" && std::find(run.flags_used.begin(), run.flags_used.end(),
                                                    "security") != run.flags_used.end()) {
    info.security = pb::SANDBOX;
  }
  if (run.network == "none") {
    info.network = pb::NONE;
  } else if (run.network == "host") {
    info.network = pb::HOST;
  }
  if (opt.CapSupported(llb::kCapExecMetaUlimit)) {
    info.ulimits.insert(info.ulimits.end(), opt.convert->ulimits.begin(),
                        opt.convert->ulimits.end());
  }

  ShellLex name_lex(opt.shlex.escape_token(),
                    ShellLexOptions{.raw_quotes = true, .skip_unset_env = true});
  info.constraints.WithCustomName(
      PrefixCommand(d, UppercaseCmd(ProcessCmdEnv(name_lex, custom_name, env)), d.prefix_platform,
                    d.state.GetPlatform(), env));
  info.extra_hosts = opt.convert->extra_hosts;
  if (opt.CapSupported(llb::kCapExecMountTmpfsSize) && opt.convert->shm_size > 0) {
    info.mounts.push_back(llb::MountInfo{
        "/dev/shm", llb::Scratch(),
        llb::MountOptions{.tmpfs = llb::MountOptions::Tmpfs{opt.convert->shm_size}}});
  }
  if (opt.CapSupported(llb::kCapExecMetaCgroupParent) && !opt.convert->cgroup_parent.empty()) {
    info.cgroup_parent = opt.convert->cgroup_parent;
  }

  d.state = d.state.Run(info).Root();
  CommitToHistory(d.image, StrCat("RUN ", RunCommandString(args, d.build_args, env)), true, true,
                  opt.epoch);
  return absl::OkStatus();
}

}  // namespace kiln::frontends::dockerfile::internal
