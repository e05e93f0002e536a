#include "frontends/dockerfile/frontend.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "base/go_compat.h"
#include "base/reference.h"
#include "base/status.h"
#include "base/strings.h"
#include "frontends/dockerfile/convert.h"
#include "frontends/dockerfile/dockerignore.h"
#include "frontends/dockerfile/go_compat.h"
#include "llb/go_compat.h"

namespace kiln::frontends::dockerfile {
namespace {

constexpr char kDefaultLocalNameContext[] = "context";
constexpr char kDefaultLocalNameDockerfile[] = "dockerfile";
constexpr char kDefaultDockerfileName[] = "Dockerfile";
constexpr char kDockerignoreFilename[] = ".dockerignore";

using Opts = std::map<std::string, std::string>;

std::optional<std::string> Get(const Opts& opts, const std::string& key) {
  auto it = opts.find(key);
  if (it == opts.end()) return std::nullopt;
  return it->second;
}

std::string GetOr(const Opts& opts, const std::string& key) { return Get(opts, key).value_or(""); }

std::map<std::string, std::string> WithPrefix(const Opts& opts, std::string_view prefix) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : opts) {
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  }
  return out;
}

absl::Status Invalid(std::string_view msg) { return absl::InvalidArgumentError(ToAbsl(msg)); }

absl::StatusOr<std::vector<llb::HostIP>> ParseExtraHosts(const std::string& v) {
  std::vector<llb::HostIP> out;
  if (v.empty()) return out;
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> fields, go::ReadCsvRecord(v));
  for (const std::string& field : fields) {
    size_t eq = field.find('=');
    if (eq == std::string::npos) return Invalid(StrCat("invalid key-value pair ", field));
    std::string key = go::AsciiLower(field.substr(0, eq));
    std::string val = go::AsciiLower(field.substr(eq + 1));
    absl::StatusOr<std::string> ip = llb::FormatIP(val);
    if (!ip.ok()) return Invalid(StrCat("failed to parse IP ", val));
    out.push_back(llb::HostIP{key, *ip});
  }
  return out;
}

absl::StatusOr<std::vector<llb::Ulimit>> ParseUlimits(const std::string& v) {
  std::vector<llb::Ulimit> out;
  if (v.empty()) return out;
  static const std::set<std::string> kNames = {
      "core",   "cpu",   "data", "fsize",  "locks",  "memlock",    "msgqueue", "nice",
      "nofile", "nproc", "rss",  "rtprio", "rttime", "sigpending", "stack"};
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> fields, go::ReadCsvRecord(v));
  for (const std::string& field : fields) {
    size_t eq = field.find('=');
    if (eq == std::string::npos) return Invalid(StrCat("invalid ulimit argument: ", field));
    const std::string name = field.substr(0, eq);
    if (!kNames.count(name)) return Invalid(StrCat("invalid ulimit type: ", name));
    std::string vals = field.substr(eq + 1);
    std::vector<std::string> parts;
    for (size_t s = 0;;) {
      size_t c = vals.find(':', s);
      parts.push_back(vals.substr(s, c - s));
      if (c == std::string::npos) break;
      s = c + 1;
    }
    if (parts.size() > 2) {
      return Invalid(StrCat("too many limit value arguments - ", vals,
                            ", can only have up to two, `soft[:hard]`"));
    }
    std::string err;
    std::optional<int64_t> soft = go::ParseInt(parts[0], 64, &err);
    std::optional<int64_t> hard = soft;
    if (parts.size() == 2) hard = go::ParseInt(parts[1], 64, &err);
    if (!soft || !hard) return Invalid(err);
    if (*hard != -1 && *soft > *hard) {
      return Invalid(StrCat("ulimit soft limit must be less than or equal to hard limit: ", *soft,
                            " > ", *hard));
    }
    out.push_back(llb::Ulimit{name, *soft, *hard});
  }
  return out;
}

absl::StatusOr<llb::ResolveMode> ParseResolveMode(const std::string& v) {
  if (v.empty() || v == "default") return llb::ResolveMode::kDefault;
  if (v == "pull") return llb::ResolveMode::kPull;
  if (v == "local") return llb::ResolveMode::kLocal;
  return Invalid(StrCat("invalid image-resolve-mode: ", v));
}

absl::StatusOr<pb::NetMode> ParseNetMode(const std::string& v) {
  if (v.empty() || v == "sandbox") return pb::UNSET;
  if (v == "none") return pb::NONE;
  if (v == "host") return pb::HOST;
  return Invalid(StrCat("invalid netmode ", v));
}

// BuildKit's contextByNameFunc / contextByName for the docker-image:// and local: forms.
class NamedContexts {
 public:
  NamedContexts(llb::FrontendClient& client, const Opts& opts, std::string session_id)
      : client_(client), opts_(opts), session_id_(std::move(session_id)) {}

  absl::StatusOr<std::optional<NamedContext>> Lookup(std::string_view name, llb::ResolveMode mode,
                                                     std::optional<oci::Platform> platform) {
    absl::StatusOr<ImageReference> named = ParseNormalizedReference(name);
    if (!named.ok()) return Invalid(StrCat("invalid context name ", name));
    std::string short_name = named->FamiliarString();
    if (short_name.size() > 7 && short_name.substr(short_name.size() - 7) == ":latest") {
      short_name.resize(short_name.size() - 7);
    }
    if (!platform) platform = llb::NormalizePlatform(llb::DefaultPlatform());
    const std::string pname =
        StrCat(short_name, "::", FormatPlatformSpecifier(llb::NormalizePlatform(*platform)));
    KILN_ASSIGN_OR_RETURN(std::optional<NamedContext> nc, ByName(pname, *platform, mode));
    if (nc) return nc;
    return ByName(short_name, *platform, mode);
  }

 private:
  absl::StatusOr<std::optional<NamedContext>> ByName(const std::string& pname,
                                                     const oci::Platform& platform,
                                                     llb::ResolveMode mode) {
    std::optional<std::string> v = Get(opts_, StrCat("context:", pname));
    if (!v) return std::nullopt;
    size_t colon = v->find(':');
    if (colon == std::string::npos) {
      return Invalid(StrCat("invalid context specifier ", *v, " for ", pname));
    }
    std::string kind = v->substr(0, colon);
    std::string rest = v->substr(colon + 1);
    if (kind == "docker-image") {
      std::string ref = rest.rfind("//", 0) == 0 ? rest.substr(2) : rest;
      if (ref == "scratch") return NamedContext{llb::Scratch(), std::nullopt, false};
      KILN_ASSIGN_OR_RETURN(ImageReference parsed, ParseNormalizedReference(ref));
      KILN_ASSIGN_OR_RETURN(
          llb::ResolvedImage resolved,
          client_.ResolveImageConfig(parsed.WithDefaultTag().String(), platform, mode));
      KILN_ASSIGN_OR_RETURN(oci::Image img, oci::DecodeImage(resolved.config_json));
      img.created.clear();
      llb::Constraints c;
      c.WithCustomName(StrCat("[context ", pname, "] ", ref));
      c.WithPlatform(platform);
      llb::State st = llb::Image(ref, {.constraints = c});
      KILN_ASSIGN_OR_RETURN(st, st.WithImageConfig(resolved.config_json));
      return NamedContext{st, img, ConfigHasDiffIds(resolved.config_json)};
    }
    if (kind == "local") {
      absl::StatusOr<std::string> ignore = client_.ReadFile(rest, kDockerignoreFilename);
      std::vector<std::string> excludes;
      if (ignore.ok() && !ignore->empty()) excludes = ParseDockerignore(*ignore);
      llb::LocalInfo li;
      li.session_id = session_id_;
      li.shared_key_hint = StrCat("context:", pname);
      li.exclude_patterns = excludes;
      li.constraints.WithCustomName(StrCat("[context ", pname, "] load from client"));
      return NamedContext{llb::Local(rest, li), std::nullopt, false};
    }
    if (kind == "git" || kind == "http" || kind == "https" || kind == "oci-layout" ||
        kind == "input" || kind.rfind("git@", 0) == 0) {
      return Invalid(StrCat("named context ", pname, "=", *v,
                            ": only docker-image:// and local: contexts are supported"));
    }
    return Invalid(StrCat("unsupported context source ", kind, " for ", pname));
  }

  llb::FrontendClient& client_;
  const Opts& opts_;
  std::string session_id_;
};

// Every LLB cap Kiln knows: what the frontend assumes when the engine does not say (BuildKit's
// gateway always passes the daemon's caps).
llb::CapSet AllLlbCaps() {
  return {llb::kCapSourceImage,
          llb::kCapSourceImageResolveMode,
          llb::kCapSourceImageLayerLimit,
          llb::kCapSourceLocal,
          llb::kCapSourceLocalUnique,
          llb::kCapSourceLocalSessionID,
          llb::kCapSourceLocalIncludePatterns,
          llb::kCapSourceLocalFollowPaths,
          llb::kCapSourceLocalExcludePatterns,
          llb::kCapSourceLocalSharedKeyHint,
          llb::kCapSourceLocalDiffer,
          llb::kCapSourceGit,
          llb::kCapSourceGitKeepDir,
          llb::kCapSourceGitFullURL,
          llb::kCapSourceGitHTTPAuth,
          llb::kCapSourceGitKnownSSHHosts,
          llb::kCapSourceGitMountSSHSock,
          llb::kCapSourceGitSubdir,
          llb::kCapSourceHTTP,
          llb::kCapSourceHTTPChecksum,
          llb::kCapSourceHTTPPerm,
          llb::kCapSourceHTTPUIDGID,
          llb::kCapSourceOCILayout,
          llb::kCapBuildOpLLBFileName,
          llb::kCapExecMetaBase,
          llb::kCapExecMetaCgroupParent,
          llb::kCapExecMetaNetwork,
          llb::kCapExecMetaProxy,
          llb::kCapExecMetaSecurity,
          llb::kCapExecMetaSecurityDeviceWhitelistV1,
          llb::kCapExecMetaSetsDefaultPath,
          llb::kCapExecMetaUlimit,
          llb::kCapExecMetaRemoveMountStubsRecursive,
          llb::kCapExecMountBind,
          llb::kCapExecMountBindReadWriteNoOutput,
          llb::kCapExecMountCache,
          llb::kCapExecMountCacheSharing,
          llb::kCapExecMountSelector,
          llb::kCapExecMountTmpfs,
          llb::kCapExecMountTmpfsSize,
          llb::kCapExecMountSecret,
          llb::kCapExecMountSSH,
          llb::kCapExecCgroupsMounted,
          llb::kCapExecSecretEnv,
          llb::kCapExecValidExitCode,
          llb::kCapFileBase,
          llb::kCapFileRmWildcard,
          llb::kCapFileCopyIncludeExcludePatterns,
          llb::kCapFileRmNoFollowSymlink,
          llb::kCapFileSymlinkCreate,
          llb::kCapConstraints,
          llb::kCapPlatform,
          llb::kCapMetaIgnoreCache,
          llb::kCapMetaDescription,
          llb::kCapMetaExportCache,
          llb::kCapMergeOp,
          llb::kCapDiffOp};
}

std::string PlatformsMetadata(const oci::Platform& p) {
  std::string platform = StrCat("{\"architecture\":", llb::GoJsonQuote(p.architecture),
                                ",\"os\":", llb::GoJsonQuote(p.os));
  if (!p.variant.empty()) StrAppend(&platform, ",\"variant\":", llb::GoJsonQuote(p.variant));
  platform += "}";
  return StrCat("{\"Platforms\":[{\"ID\":", llb::GoJsonQuote(FormatPlatformSpecifier(p)),
                ",\"Platform\":", platform, "}]}");
}

}  // namespace

absl::StatusOr<llb::FrontendResult> DockerfileFrontend::Build(llb::FrontendClient& client,
                                                              const llb::BuildOpts& build_opts) {
  Opts opts = build_opts.frontend_opts;
  if (build_opts.llb_caps && !build_opts.llb_caps->count(llb::kCapFileBase)) {
    return Invalid("the engine does not support file ops (cap file.base)");
  }
  if (!GetOr(opts, "override-copy-image").empty()) {
    return Invalid("support for \"override-copy-image\" was removed in BuildKit 0.11");
  }
  if (std::optional<std::string> v = Get(opts, "build-arg:BUILDKIT_DISABLE_FILEOP")) {
    if (go::ParseBool(*v).value_or(false)) {
      return Invalid(
          "support for \"build-arg:BUILDKIT_DISABLE_FILEOP\" was removed in BuildKit 0.11");
    }
  }
  if (Get(opts, "requestid")) {
    return Invalid(StrCat("frontend subrequest ", GetOr(opts, "requestid"), " is not supported"));
  }

  const std::string local_context = Get(opts, "contextkey").value_or(kDefaultLocalNameContext);
  const std::string local_dockerfile =
      Get(opts, "dockerfilekey").value_or(kDefaultLocalNameDockerfile);
  {
    const std::string ctx = GetOr(opts, local_context);
    if (!ctx.empty()) {
      return Invalid(
          StrCat("build context ", Quote(ctx), ": git and http build contexts are not supported"));
    }
  }

  const oci::Platform default_build_platform =
      build_opts.worker_platforms.empty() ? llb::DefaultPlatform() : build_opts.worker_platforms[0];
  std::optional<oci::Platform> target_platform;
  if (std::string v = GetOr(opts, "platform"); !v.empty()) {
    std::vector<oci::Platform> platforms;
    for (size_t s = 0;;) {
      size_t c = v.find(',', s);
      std::string one = v.substr(s, c - s);
      absl::StatusOr<oci::Platform> p = ParsePlatformSpecifier(one);
      if (!p.ok()) {
        return Invalid(StrCat("failed to parse target platform ", one, ": ", p.status().message()));
      }
      platforms.push_back(llb::NormalizePlatform(*p));
      if (c == std::string::npos) break;
      s = c + 1;
    }
    if (platforms.size() > 1) {
      return Invalid(StrCat("building for several platforms at once (", v,
                            ") is not supported: build each platform separately"));
    }
    target_platform = platforms[0];
  }
  KILN_ASSIGN_OR_RETURN(llb::ResolveMode resolve_mode,
                        ParseResolveMode(GetOr(opts, "image-resolve-mode")));
  absl::StatusOr<std::vector<llb::HostIP>> extra_hosts = ParseExtraHosts(GetOr(opts, "add-hosts"));
  if (!extra_hosts.ok()) {
    return Invalid(StrCat("failed to parse additional hosts: ", extra_hosts.status().message()));
  }
  int64_t shm_size = 0;
  if (std::string v = GetOr(opts, "shm-size"); !v.empty()) {
    std::string err;
    std::optional<int64_t> n = go::ParseInt(v, 64, &err);
    if (!n) return Invalid(StrCat("failed to parse shm size: ", err));
    shm_size = *n;
  }
  absl::StatusOr<std::vector<llb::Ulimit>> ulimits = ParseUlimits(GetOr(opts, "ulimit"));
  if (!ulimits.ok()) {
    return Invalid(StrCat("failed to parse ulimit: ", ulimits.status().message()));
  }
  KILN_ASSIGN_OR_RETURN(pb::NetMode net_mode, ParseNetMode(GetOr(opts, "force-network-mode")));
  std::string filename = GetOr(opts, "filename");
  if (filename.empty()) filename = kDefaultDockerfileName;
  std::optional<std::vector<std::string>> ignore_cache;
  if (std::optional<std::string> v = Get(opts, "no-cache")) {
    ignore_cache.emplace();
    if (!v->empty()) {
      for (size_t s = 0;;) {
        size_t c = v->find(',', s);
        ignore_cache->push_back(v->substr(s, c - s));
        if (c == std::string::npos) break;
        s = c + 1;
      }
    }
  }

  // The dockerfile local source as BuildKit marshals it; it becomes the source map's
  // definition.
  std::vector<std::string> follow = {filename, filename + ".dockerignore"};
  const std::string base = CleanPath(filename).substr(
      CleanPath(filename).rfind('/') == std::string::npos ? 0 : CleanPath(filename).rfind('/') + 1);
  std::string lower_path;
  if (base == kDefaultDockerfileName) {
    std::string dir = CleanPath(filename);
    size_t slash = dir.rfind('/');
    dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : dir.substr(0, slash));
    lower_path = PathJoin({dir, "dockerfile"});
    follow.push_back(lower_path);
  }
  llb::LocalInfo df_local;
  df_local.session_id = build_opts.session_id;
  df_local.follow_paths = follow;
  df_local.shared_key_hint = local_dockerfile;
  df_local.differ = llb::LocalInfo::Differ{llb::kAttrLocalDifferNone, false};
  df_local.constraints.WithCustomName(StrCat("[internal] load build definition from ", filename));
  llb::State src = llb::Local(local_dockerfile, df_local);
  const llb::CapSet caps = build_opts.llb_caps.value_or(AllLlbCaps());
  llb::Constraints marshal_opts;
  marshal_opts.WithCaps(caps);
  KILN_ASSIGN_OR_RETURN(pb::Definition src_def, src.Marshal(marshal_opts));

  absl::StatusOr<std::string> dockerfile = client.ReadFile(local_dockerfile, filename);
  if (!dockerfile.ok() && !lower_path.empty()) {
    absl::StatusOr<std::string> lower = client.ReadFile(local_dockerfile, lower_path);
    if (lower.ok()) dockerfile = std::move(lower);
  }
  if (!dockerfile.ok()) {
    return absl::Status(dockerfile.status().code(),
                        StrCat("failed to read dockerfile: ", dockerfile.status().message()));
  }
  std::optional<std::string> dockerignore;
  if (absl::StatusOr<std::string> dt =
          client.ReadFile(local_dockerfile, filename + ".dockerignore");
      dt.ok()) {
    dockerignore = *std::move(dt);
  } else if (dt.status().code() != absl::StatusCode::kNotFound) {
    return Annotate(dt.status(), StrCat("read ", filename, ".dockerignore"));
  }
  if (!dockerignore) {
    absl::StatusOr<std::string> dt = client.ReadFile(local_context, kDockerignoreFilename);
    if (dt.ok()) {
      dockerignore = *std::move(dt);
    } else if (dt.status().code() != absl::StatusCode::kNotFound) {
      return Annotate(dt.status(), "read .dockerignore");
    }
  }

  auto source_map = llb::SourceMap::Create(filename, *dockerfile);
  source_map->definition = src_def;

  bool export_map = false;
  if (std::optional<std::string> v = Get(opts, "build-arg:BUILDKIT_MULTI_PLATFORM")) {
    if (!v->empty()) opts["multi-platform"] = *v;
  }
  if (std::string v = GetOr(opts, "multi-platform"); !v.empty()) {
    std::optional<bool> b = go::ParseBool(v);
    if (!b) return Invalid(StrCat("invalid boolean value ", v));
    export_map = *b;
  }
  if (std::string v = GetOr(opts, "build-arg:BUILDKIT_SANDBOX_HOSTNAME"); !v.empty()) {
    opts["hostname"] = v;
  }

  ConvertOptions co;
  co.filename = filename;
  co.target = GetOr(opts, "target");
  co.build_args = WithPrefix(opts, "build-arg:");
  co.labels = WithPrefix(opts, "label:");
  co.session_id = build_opts.session_id;
  if (dockerignore) co.excludes = ParseDockerignore(*dockerignore);
  co.ignore_cache = ignore_cache;
  co.cache_id_namespace = GetOr(opts, "build-arg:BUILDKIT_CACHE_MOUNT_NS");
  co.image_resolve_mode = resolve_mode;
  co.target_platform = target_platform;
  co.build_platforms = {default_build_platform};
  co.prefix_platform = export_map;
  co.extra_hosts = *extra_hosts;
  co.shm_size = shm_size;
  co.ulimits = *ulimits;
  co.cgroup_parent = GetOr(opts, "cgroup-parent");
  co.force_network_mode = net_mode;
  co.llb_caps = caps;
  co.context_local_name = local_context;
  co.source_map = source_map;
  co.hostname = GetOr(opts, "hostname");
  if (std::string v = GetOr(opts, "build-arg:SOURCE_DATE_EPOCH"); !v.empty()) {
    std::string err;
    std::optional<int64_t> epoch = go::ParseInt(v, 64, &err);
    if (!epoch) return Invalid(StrCat("invalid SOURCE_DATE_EPOCH: ", v, ": ", err));
    co.source_date_epoch = *epoch;
  }
  auto named = std::make_shared<NamedContexts>(client, opts, build_opts.session_id);
  co.named_context = [named](std::string_view name, llb::ResolveMode mode,
                             const std::optional<oci::Platform>& platform) {
    return named->Lookup(name, mode, platform);
  };
  co.new_id = options_.new_id;

  KILN_ASSIGN_OR_RETURN(ConvertResult converted, Convert(*dockerfile, co, client));
  llb::FrontendResult result;
  KILN_ASSIGN_OR_RETURN(result.definition, converted.state.Marshal());
  result.image_config_json = EncodeImageConfigJson(converted.image, converted.image_diff_ids_set);
  result.metadata["containerimage.config"] = result.image_config_json;
  const oci::Platform p =
      llb::NormalizePlatform(target_platform ? *target_platform : llb::DefaultPlatform());
  result.metadata["refs.platforms"] = PlatformsMetadata(p);
  return result;
}

}  // namespace kiln::frontends::dockerfile
