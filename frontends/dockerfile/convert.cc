// Dockerfile -> LLB: stages, arguments, base image resolution and the dispatch loop (BuildKit
// v0.11.6 dockerfile2llb.toDispatchState).  The per-instruction work is in
// convert_dispatch.cc, convert_run.cc and convert_copy.cc.
#include "frontends/dockerfile/convert.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/go_compat.h"
#include "base/reference.h"
#include "base/status.h"
#include "base/strings.h"
#include "frontends/dockerfile/convert_internal.h"
#include "frontends/dockerfile/go_compat.h"
#include "llb/go_compat.h"

namespace kiln::frontends::dockerfile {
namespace {

using internal::ArgValue;
using internal::CommandEntry;
using internal::DispatchOpt;
using internal::DispatchState;
using internal::DispatchStates;

constexpr char kEmptyImageName[] = "scratch";

struct PlatformOpt {
  oci::Platform target;
  std::vector<oci::Platform> build;
  bool implicit_target = false;
};

PlatformOpt BuildPlatformOpt(const ConvertOptions& opt) {
  PlatformOpt po;
  po.build = opt.build_platforms;
  if (opt.target_platform && po.build.empty()) po.build = {*opt.target_platform};
  if (po.build.empty()) po.build = {llb::DefaultPlatform()};
  if (!opt.target_platform) {
    po.implicit_target = true;
    po.target = po.build[0];
  } else {
    po.target = *opt.target_platform;
  }
  return po;
}

std::vector<ArgValue> PlatformArgs(const PlatformOpt& po) {
  const oci::Platform& bp = po.build[0];
  const oci::Platform& tp = po.target;
  return {{"BUILDPLATFORM", FormatPlatformSpecifier(bp)},
          {"BUILDOS", bp.os},
          {"BUILDARCH", bp.architecture},
          {"BUILDVARIANT", bp.variant},
          {"TARGETPLATFORM", FormatPlatformSpecifier(tp)},
          {"TARGETOS", tp.os},
          {"TARGETARCH", tp.architecture},
          {"TARGETVARIANT", tp.variant}};
}

// Go's metaArgsToMap: later entries win; an ARG without value is set to "".
EnvLookup MetaArgsEnv(const std::vector<ArgValue>& args) {
  std::map<std::string, std::string> m;
  for (const ArgValue& a : args) m[a.key] = a.ValueString();
  return EnvFromMap(m);
}

std::optional<llb::ProxyEnv> ProxyEnvFromBuildArgs(const std::map<std::string, std::string>& args) {
  llb::ProxyEnv pe;
  bool set = false;
  for (const auto& [k, v] : args) {
    const std::string lower = go::AsciiLower(k);
    if (lower == "http_proxy") {
      pe.http_proxy = v;
      set = true;
    } else if (lower == "https_proxy") {
      pe.https_proxy = v;
      set = true;
    } else if (lower == "ftp_proxy") {
      pe.ftp_proxy = v;
      set = true;
    } else if (lower == "no_proxy") {
      pe.no_proxy = v;
      set = true;
    } else if (lower == "all_proxy") {
      pe.all_proxy = v;
      set = true;
    }
  }
  if (!set) return std::nullopt;
  return pe;
}

// Go's isReachable(target, x) for every x at once: the states `target` reaches through bases
// and dependencies.  (Go walks every path again per query, which is exponential on a hostile
// Dockerfile whose stages all copy from all earlier ones.)
std::set<const DispatchState*> ReachableFrom(const DispatchState* target) {
  std::set<const DispatchState*> seen;
  std::vector<const DispatchState*> todo = {target};
  while (!todo.empty()) {
    const DispatchState* s = todo.back();
    todo.pop_back();
    if (s == nullptr || !seen.insert(s).second) continue;
    todo.push_back(s->base);
    todo.insert(todo.end(), s->deps.begin(), s->deps.end());
  }
  return seen;
}

// Go's hasCircularDependency: the first state (in order) from which a cycle can be reached.
// Iterative, so a hostile chain of stages cannot exhaust the stack.
DispatchState* FindCircularDependency(const DispatchStates& all) {
  std::set<const DispatchState*> visited, on_path;
  struct Frame {
    const DispatchState* state;
    size_t next = 0;
  };
  for (const auto& root : all.states()) {
    std::vector<Frame> stack;
    if (visited.insert(root.get()).second) {
      stack.push_back({root.get()});
      on_path.insert(root.get());
    }
    while (!stack.empty()) {
      Frame& top = stack.back();
      if (top.next < top.state->deps.size()) {
        const DispatchState* dep = top.state->deps[top.next++];
        if (on_path.count(dep)) return root.get();
        if (visited.insert(dep).second) {
          on_path.insert(dep);
          stack.push_back({dep});
        }
        continue;
      }
      on_path.erase(top.state);
      stack.pop_back();
    }
  }
  return nullptr;
}

std::string EpochString(int64_t seconds) {
  time_t t = static_cast<time_t>(seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The error text of a reference parse error without our "parse image reference `x`: " prefix.
std::string ReferenceWhy(const absl::Status& st) {
  std::string msg(st.message());
  size_t p = msg.find("`: ");
  return p == std::string::npos ? msg : msg.substr(p + 3);
}

// BuildKit's suggest.WrapError over stage and common image names.
std::string SuggestName(std::string msg, std::string_view value,
                        const std::vector<std::string>& options) {
  int best = 3;
  std::string match;
  for (const std::string& o : options) {
    if (o == value) return msg;
    int d = go::Levenshtein(value, o);
    if (d < best) {
      best = d;
      match = o;
    }
  }
  if (match.empty()) return msg;
  return StrCat(msg, " (did you mean ", match, "?)");
}

std::vector<std::string> CommonImageNames() {
  std::vector<std::string> out;
  for (const char* name : {"alpine", "busybox", "centos", "debian", "golang", "ubuntu", "fedora"}) {
    // BuildKit forgets the "/" after library; kept for identical suggestions.
    out.push_back(name);
    out.push_back(StrCat("docker.io/library", name));
    out.push_back(StrCat(name, ":latest"));
    out.push_back(StrCat("docker.io/library", name, ":latest"));
  }
  return out;
}

// Go's autoDetectPlatform.
oci::Platform AutoDetectPlatform(const oci::Image& img, const oci::Platform& target,
                                 const std::vector<oci::Platform>& supported) {
  if (target.os == img.platform.os && target.architecture == img.platform.architecture) {
    return target;
  }
  for (const oci::Platform& p : supported) {
    if (p.os == img.platform.os && p.architecture == img.platform.architecture) return p;
  }
  return target;
}

class Converter {
 public:
  Converter(std::string_view dockerfile, const ConvertOptions& opts, llb::FrontendClient& client)
      : text_(dockerfile), opts_(opts), client_(client) {}

  absl::StatusOr<ConvertResult> Run();

 private:
  absl::Status ParseAndSetupStages();
  absl::Status ComputeDependencies();
  absl::Status ResolveBases();
  absl::Status ResolveBase(DispatchState& d, bool reachable);
  absl::Status DispatchStages();
  absl::StatusOr<std::optional<NamedContext>> ContextByName(std::string_view name,
                                                            std::optional<oci::Platform> platform);
  void Finalize();

  std::string_view text_;
  ConvertOptions opts_;
  llb::FrontendClient& client_;

  PlatformOpt po_;
  Dockerfile df_;
  DispatchStates all_;
  DispatchState* target_ = nullptr;
  std::vector<std::string> all_stage_names_;
  std::set<const DispatchState*> reachable_;  // from target_, once dependencies are known
  DispatchOpt dopt_;
  std::shared_ptr<llb::DeferredOutput> context_out_ = std::make_shared<llb::DeferredOutput>();
  std::set<std::string> ctx_paths_;
};

absl::StatusOr<std::optional<NamedContext>> Converter::ContextByName(
    std::string_view name, std::optional<oci::Platform> platform) {
  if (!opts_.named_context) return std::nullopt;
  if (go::AsciiLower(name) == "scratch" || go::AsciiLower(name) == "context") return std::nullopt;
  if (!platform) platform = opts_.target_platform;
  return opts_.named_context(name, opts_.image_resolve_mode, platform);
}

absl::Status Converter::ParseAndSetupStages() {
  if (text_.empty()) return absl::InvalidArgumentError("the Dockerfile cannot be empty");
  po_ = BuildPlatformOpt(opts_);
  std::vector<ArgValue> meta_args = PlatformArgs(po_);
  for (ArgValue& a : meta_args) {
    if (auto it = opts_.build_args.find(a.key); it != opts_.build_args.end()) a.value = it->second;
  }
  KILN_ASSIGN_OR_RETURN(df_, ParseDockerfile(text_, opts_.filename));
  dopt_.shlex = ShellLex(df_.escape_token);

  for (const Command& cmd : df_.meta_args) {
    for (const KeyValuePairOptional& kv : cmd.As<ArgCommand>()->args) {
      ArgValue a{kv.key, kv.value};
      if (auto it = opts_.build_args.find(kv.key); it != opts_.build_args.end()) {
        a.value = it->second;
      } else if (a.value) {
        // BuildKit ignores expansion errors here (the value becomes empty).
        absl::StatusOr<std::string> v = dopt_.shlex.ProcessWord(*a.value, MetaArgsEnv(meta_args));
        a.value = v.ok() ? *v : "";
      }
      meta_args.push_back(std::move(a));
    }
  }
  dopt_.meta_args = meta_args;

  for (size_t i = 0; i < df_.stages.size(); ++i) {
    Stage st = df_.stages[i];
    const EnvLookup meta_env = MetaArgsEnv(meta_args);
    absl::StatusOr<std::string> name = dopt_.shlex.ProcessWord(st.base_name, meta_env);
    if (!name.ok()) return WithLocation(name.status(), st.location);
    if (name->empty()) {
      return LocatedError(st.location,
                          StrCat("base name (", st.base_name, ") should not be blank"));
    }
    st.base_name = *name;
    auto ds = std::make_unique<DispatchState>();
    ds->stage = st;
    ds->stage_name = st.name;
    ds->prefix_platform = opts_.prefix_platform;
    if (!st.platform.empty()) {
      absl::StatusOr<std::string> v = dopt_.shlex.ProcessWord(st.platform, meta_env);
      if (!v.ok()) {
        return LocatedError(st.location, StrCat("failed to process arguments for platform ",
                                                st.platform, ": ", v.status().message()));
      }
      absl::StatusOr<oci::Platform> p = ParsePlatformSpecifier(*v);
      if (!p.ok()) {
        return LocatedError(st.location,
                            StrCat("failed to parse platform ", *v, ": ", p.status().message()));
      }
      ds->platform = *p;
    }
    if (!st.name.empty()) {
      absl::StatusOr<std::optional<NamedContext>> nc = ContextByName(st.name, ds->platform);
      if (!nc.ok()) return WithLocation(nc.status(), st.location);
      if (nc->has_value()) {
        ds->noinit = true;
        ds->state = (*nc)->state;
        if ((*nc)->image) {
          ds->image = *(*nc)->image;
          ds->diff_ids_set = (*nc)->image_diff_ids_set;
          const oci::Platform& ip = ds->image.platform;
          if (!ip.architecture.empty() && !ip.os.empty()) {
            ds->platform = oci::Platform{ip.architecture, ip.os, ip.variant, "", {}};
          }
        }
        all_.Add(std::move(ds));
        continue;
      }
    }
    if (st.name.empty()) ds->stage_name = StrCat("stage-", i);
    DispatchState* d = all_.Add(std::move(ds));
    int total = (d->stage.base_name != kEmptyImageName && d->base == nullptr) ? 1 : 0;
    for (const Command& c : d->stage.commands) {
      if (c.As<AddCommand>() || c.As<CopyCommand>() || c.As<RunCommand>() ||
          c.As<WorkdirCommand>()) {
        ++total;
      }
    }
    d->cmd_total = total;
    if (opts_.ignore_cache) {
      if (opts_.ignore_cache->empty()) {
        d->ignore_cache = true;
      } else if (!st.name.empty()) {
        for (const std::string& n : *opts_.ignore_cache) {
          if (go::AsciiLower(n) == go::AsciiLower(st.name)) d->ignore_cache = true;
        }
      }
    }
  }
  if (all_.size() == 0) return absl::InvalidArgumentError("the Dockerfile has no build stage");

  if (opts_.target.empty()) {
    target_ = all_.states().back().get();
  } else {
    target_ = all_.FindByName(opts_.target);
    if (target_ == nullptr) {
      return absl::InvalidArgumentError(
          StrCat("target stage ", opts_.target, " could not be found"));
    }
  }
  return absl::OkStatus();
}

absl::Status Converter::ComputeDependencies() {
  const size_t n = all_.size();
  for (size_t i = 0; i < n; ++i) {
    DispatchState* d = all_.states()[i].get();
    d->commands.clear();
    for (const Command& cmd : d->stage.commands) {
      KILN_ASSIGN_OR_RETURN(CommandEntry entry,
                            internal::ToCommand(cmd, all_, /*register_sources=*/true));
      for (DispatchState* src : entry.sources) {
        if (src == nullptr) continue;
        d->AddDep(src);
      }
      d->commands.push_back(std::move(entry));
    }
  }
  if (DispatchState* c = FindCircularDependency(all_)) {
    return LocatedError(c->stage.location,
                        StrCat("circular dependency detected on stage: ", c->stage_name));
  }
  if (all_.size() == 1) all_.states()[0]->stage_name.clear();
  reachable_ = ReachableFrom(target_);
  for (const auto& s : all_.states()) {
    if (!s->stage_name.empty()) all_stage_names_.push_back(s->stage_name);
  }
  return absl::OkStatus();
}

absl::Status Converter::ResolveBase(DispatchState& d, bool reachable) {
  const std::string orig_name = d.stage.base_name;
  absl::StatusOr<ImageReference> ref = ParseNormalizedReference(d.stage.base_name);
  if (!ref.ok()) {
    return absl::InvalidArgumentError(StrCat("failed to parse stage name ",
                                             go::Quote(d.stage.base_name), ": ",
                                             ReferenceWhy(ref.status())));
  }
  oci::Platform platform = d.platform ? *d.platform : po_.target;
  d.stage.base_name = ref->WithDefaultTag().String();

  KILN_ASSIGN_OR_RETURN(std::optional<NamedContext> nc, ContextByName(d.stage.base_name, platform));
  if (nc) {
    d.image = nc->image ? *nc->image : internal::EmptyImage(po_.target);
    d.diff_ids_set = nc->image && nc->image_diff_ids_set;
    d.state = nc->state.Platform(platform);
    d.platform = platform;
    return absl::OkStatus();
  }
  bool is_scratch = false;
  if (reachable) {
    absl::StatusOr<llb::ResolvedImage> resolved =
        client_.ResolveImageConfig(d.stage.base_name, platform, opts_.image_resolve_mode);
    if (!resolved.ok()) {
      std::vector<std::string> options = all_stage_names_;
      for (std::string& n : CommonImageNames()) options.push_back(std::move(n));
      return absl::Status(
          resolved.status().code(),
          SuggestName(StrCat(orig_name, ": ", resolved.status().message()), orig_name, options));
    }
    absl::StatusOr<oci::Image> img = oci::DecodeImage(resolved->config_json);
    if (!img.ok()) {
      return absl::InvalidArgumentError(
          StrCat("failed to parse image config: ", img.status().message()));
    }
    img->created.clear();
    if (!d.platform && po_.implicit_target) {
      platform = AutoDetectPlatform(*img, platform, po_.build);
    }
    if (resolved->digest.valid()) *ref = ref->WithDigest(resolved->digest);
    d.stage.base_name = ref->String();
    if (img->rootfs.diff_ids.empty()) {
      is_scratch = true;
      for (const oci::History& h : img->history) {
        if (!h.empty_layer) {
          is_scratch = false;
          break;
        }
      }
    }
    d.image = *std::move(img);
    d.diff_ids_set = ConfigHasDiffIds(resolved->config_json);
  }
  if (is_scratch) {
    d.state = llb::Scratch();
  } else {
    llb::Constraints c = internal::DfCmd(d.stage.source_code);
    c.WithPlatform(platform);
    c.WithCustomName(internal::PrefixCommand(d, StrCat("FROM ", d.stage.base_name),
                                             opts_.prefix_platform, platform, {}));
    c.WithLocation(opts_.source_map, d.op_location ? internal::ToRanges(d.stage.location)
                                                   : std::vector<llb::Range>{});
    d.state = llb::Image(d.stage.base_name,
                         {.resolve_mode = opts_.image_resolve_mode, .constraints = std::move(c)});
  }
  d.platform = platform;
  return absl::OkStatus();
}

absl::Status Converter::ResolveBases() {
  std::vector<std::pair<DispatchState*, bool>> jobs;
  for (const auto& ds : all_.states()) {
    DispatchState* d = ds.get();
    const bool reachable = reachable_.count(d) > 0;
    if (d->base != nullptr || d->noinit) continue;
    if (d->stage.base_name == kEmptyImageName) {
      d->state = llb::Scratch();
      d->image = internal::EmptyImage(po_.target);
      continue;
    }
    jobs.emplace_back(d, reachable);
  }
  // BuildKit resolves every stage concurrently; a few threads suffice (the client serializes
  // nothing), and a hostile Dockerfile with thousands of stages cannot start thousands.
  std::vector<absl::Status> errors(jobs.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < jobs.size(); i = next++) {
      DispatchState& d = *jobs[i].first;
      absl::Status st = ResolveBase(d, jobs[i].second);
      if (!st.ok()) errors[i] = WithLocation(st, d.stage.location);
    }
  };
  const size_t threads = std::min<size_t>(jobs.size(), 8);
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (std::thread& t : pool) t.join();
  }
  for (const absl::Status& st : errors) KILN_RETURN_IF_ERROR(st);
  return absl::OkStatus();
}

absl::Status Converter::DispatchStages() {
  dopt_.convert = &opts_;
  dopt_.all_states = &all_;
  dopt_.build_context = llb::State::FromOutput(context_out_);
  dopt_.proxy_env = ProxyEnvFromBuildArgs(opts_.build_args);
  dopt_.target_platform = po_.target;
  dopt_.build_platforms = po_.build;
  dopt_.source_map = opts_.source_map;
  if (opts_.source_date_epoch) dopt_.epoch = EpochString(*opts_.source_date_epoch);
  dopt_.new_id = opts_.new_id ? opts_.new_id : [] { return llb::NewRandomID(); };

  const size_t n = all_.size();
  for (size_t i = 0; i < n; ++i) {
    DispatchState& d = *all_.states()[i];
    if (!reachable_.count(&d) || d.noinit) continue;
    if (d.base != nullptr) {
      d.state = d.base->state;
      d.platform = d.base->platform;
      d.image = d.base->image;
      d.diff_ids_set = d.base->diff_ids_set;
    }
    bool has_path = false;
    for (const std::string& kv : d.image.config.env) {
      if (internal::ParseKeyValue(kv).first == "PATH") has_path = true;
    }
    if (!has_path) {
      d.image.config.env.push_back(
          StrCat("PATH=", llb::DefaultPathEnv(d.platform ? d.platform->os : "")));
    }
    for (const std::string& kv : d.image.config.env) {
      auto [k, v] = internal::ParseKeyValue(kv);
      d.state = d.state.AddEnv(k, v);
    }
    if (!opts_.hostname.empty()) d.state = d.state.Hostname(opts_.hostname);
    if (!d.image.config.working_dir.empty()) {
      KILN_RETURN_IF_ERROR(WithLocation(
          internal::DispatchWorkdir(d, d.image.config.working_dir, false, nullptr, "", nullptr),
          d.stage.location));
    }
    if (!d.image.config.user.empty()) internal::DispatchUser(d, d.image.config.user);
    d.state = d.state.Network(opts_.force_network_mode);

    std::vector<std::string> triggers = d.image.config.on_build;
    KILN_RETURN_IF_ERROR(internal::DispatchOnBuildTriggers(d, triggers, dopt_));
    d.image.config.on_build.clear();

    for (CommandEntry& entry : d.commands) {
      KILN_RETURN_IF_ERROR(WithLocation(internal::Dispatch(d, entry, dopt_), entry.cmd.location));
    }
    ctx_paths_.insert(d.ctx_paths.begin(), d.ctx_paths.end());
  }
  return absl::OkStatus();
}

void Converter::Finalize() {
  for (const auto& [k, v] : opts_.labels) target_->image.config.labels[k] = v;

  llb::LocalInfo local;
  local.session_id = opts_.session_id;
  local.exclude_patterns = opts_.excludes;
  local.shared_key_hint = opts_.context_local_name;
  local.constraints.WithCustomName("[internal] load build context");
  // Go's normalizeContextPaths: no follow paths as soon as "/" (the whole context) is used.
  if (!ctx_paths_.empty() && !ctx_paths_.count("/")) {
    for (const std::string& p : ctx_paths_) local.follow_paths.push_back(PathJoin({".", p}));
    std::sort(local.follow_paths.begin(), local.follow_paths.end());
  }
  llb::State bc = llb::Local(opts_.context_local_name, local);
  if (opts_.build_context) bc = *opts_.build_context;
  context_out_->Bind(bc);

  llb::Constraints defaults;
  defaults.WithPlatform(po_.target);
  if (opts_.llb_caps) defaults.WithCaps(*opts_.llb_caps);
  target_->state = target_->state.SetMarshalDefaults(defaults);

  if (!po_.implicit_target) {
    target_->image.platform.os = po_.target.os;
    target_->image.platform.architecture = po_.target.architecture;
    target_->image.platform.variant = po_.target.variant;
  }
}

absl::StatusOr<ConvertResult> Converter::Run() {
  KILN_RETURN_IF_ERROR(ParseAndSetupStages());
  KILN_RETURN_IF_ERROR(ComputeDependencies());
  KILN_RETURN_IF_ERROR(ResolveBases());
  KILN_RETURN_IF_ERROR(DispatchStages());
  Finalize();
  ConvertResult out;
  out.state = target_->state;
  out.image = target_->image;
  out.image_diff_ids_set = target_->diff_ids_set;
  out.warnings = df_.warnings;
  return out;
}

}  // namespace

absl::StatusOr<ConvertResult> Convert(std::string_view dockerfile, const ConvertOptions& opts,
                                      llb::FrontendClient& client) {
  Converter c(dockerfile, opts, client);
  return c.Run();
}

}  // namespace kiln::frontends::dockerfile
