// Per-instruction dispatch of the Dockerfile converter (BuildKit v0.11.6 dockerfile2llb
// dispatch*, except RUN in convert_run.cc and COPY/ADD in convert_copy.cc).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/go_compat.h"
#include "base/status.h"
#include "base/strings.h"
#include "frontends/dockerfile/convert_internal.h"
#include "frontends/dockerfile/go_compat.h"

namespace kiln::frontends::dockerfile::internal {
namespace {

// The raw `from=` value of a --mount flag (BuildKit reads it before expansion to find the
// stages a RUN depends on; the parser already refused variables in it).
std::string RawMountFrom(std::string_view spec) {
  std::string from;
  size_t i = 0;
  while (i <= spec.size()) {
    std::string field;
    if (i < spec.size() && spec[i] == '"') {
      ++i;
      while (i < spec.size()) {
        if (spec[i] == '"') {
          if (i + 1 < spec.size() && spec[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field.push_back(spec[i++]);
      }
      while (i < spec.size() && spec[i] != ',') ++i;
    } else {
      while (i < spec.size() && spec[i] != ',') field.push_back(spec[i++]);
    }
    size_t eq = field.find('=');
    if (eq != std::string::npos && go::AsciiLower(field.substr(0, eq)) == "from") {
      from = field.substr(eq + 1);
    }
    ++i;
  }
  return from;
}

absl::Status DispatchEnv(DispatchState& d, const EnvCommand& c, const DispatchOpt& opt) {
  std::string msg = "ENV";
  for (const KeyValuePair& e : c.env) {
    StrAppend(&msg, " ", e.key, "=", e.value);
    d.state = d.state.AddEnv(e.key, e.value);
    AddImageEnv(d.image.config.env, e.key, e.value);
  }
  CommitToHistory(d.image, msg, false, false, opt.epoch);
  return absl::OkStatus();
}

absl::Status DispatchLabel(DispatchState& d, const LabelCommand& c, const DispatchOpt& opt) {
  std::string msg = "LABEL";
  for (const KeyValuePair& l : c.labels) {
    d.image.config.labels[l.key] = l.value;
    StrAppend(&msg, " ", l.key, "=", l.value);
  }
  CommitToHistory(d.image, msg, false, false, opt.epoch);
  return absl::OkStatus();
}

std::vector<std::string> CommandArgs(const oci::Image& img, const ShellDependantCmdLine& c) {
  if (c.prepend_shell) return WithShell(img, c.cmd_line);
  return c.cmd_line;
}

absl::Status DispatchHealthcheck(DispatchState& d, const HealthCheckCommand& c,
                                 const DispatchOpt& opt) {
  oci::HealthConfig h;
  h.test = c.health.test;
  h.interval = c.health.interval;
  h.timeout = c.health.timeout;
  h.start_period = c.health.start_period;
  h.start_interval = c.health.start_interval;
  h.retries = c.health.retries;
  d.image.config.healthcheck = h;
  // fmt's %q of BuildKit's *HealthConfig; HEAD's struct has StartInterval, v0.11.6's does not.
  std::string msg =
      StrCat("HEALTHCHECK &{", GoQuoteSlice(h.test), " ", go::Quote(GoDuration(h.interval)), " ",
             go::Quote(GoDuration(h.timeout)), " ", go::Quote(GoDuration(h.start_period)), " ");
  if (h.start_interval != 0) StrAppend(&msg, go::Quote(GoDuration(h.start_interval)), " ");
  StrAppend(&msg, GoQuoteRune(h.retries), "}");
  CommitToHistory(d.image, msg, false, false, opt.epoch);
  return absl::OkStatus();
}

absl::Status DispatchExpose(DispatchState& d, const ExposeCommand& c, const DispatchOpt& opt) {
  std::vector<std::string> ports;
  const EnvLookup env = EnvFromList(d.state.Env());
  for (const std::string& p : c.ports) {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> words, opt.shlex.ProcessWords(p, env));
    ports.insert(ports.end(), words.begin(), words.end());
  }
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> exposed, ParsePortSpecs(ports));
  std::string msg = "EXPOSE map[";
  for (size_t i = 0; i < exposed.size(); ++i) {
    d.image.config.exposed_ports[exposed[i]] = true;
    StrAppend(&msg, i > 0 ? " " : "", exposed[i], ":{}");
  }
  msg += "]";
  CommitToHistory(d.image, msg, false, false, opt.epoch);
  return absl::OkStatus();
}

absl::Status DispatchVolume(DispatchState& d, const VolumeCommand& c, const DispatchOpt& opt) {
  for (const std::string& v : c.volumes) {
    if (v.empty()) return absl::InvalidArgumentError("VOLUME specified can not be an empty string");
    d.image.config.volumes[v] = true;
  }
  CommitToHistory(d.image, StrCat("VOLUME ", GoFormatSlice(c.volumes)), false, false, opt.epoch);
  return absl::OkStatus();
}

absl::Status DispatchArg(DispatchState& d, const ArgCommand& c, const DispatchOpt& opt) {
  std::vector<std::string> commit;
  for (const KeyValuePairOptional& arg : c.args) {
    ArgValue build_arg{arg.key, arg.value};
    if (auto it = opt.convert->build_args.find(arg.key); it != opt.convert->build_args.end()) {
      build_arg.value = it->second;
    }
    commit.push_back(arg.value ? StrCat(arg.key, "=", *arg.value) : arg.key);
    if (!build_arg.value) {
      for (const ArgValue& ma : opt.meta_args) {
        if (ma.key == build_arg.key) build_arg.value = ma.value;
      }
    }
    if (build_arg.value && build_arg.key != "BUILDKIT_SBOM_SCAN_CONTEXT" &&
        build_arg.key != "BUILDKIT_SBOM_SCAN_STAGE") {
      d.state = d.state.AddEnv(build_arg.key, *build_arg.value);
    }
    d.build_args.push_back(std::move(build_arg));
  }
  std::string msg = "ARG";
  for (const std::string& s : commit) StrAppend(&msg, " ", s);
  CommitToHistory(d.image, msg, false, false, opt.epoch);
  return absl::OkStatus();
}

// Removes the "<file>:<lines>: " prefix WithLocation put in front of a message.
std::string WithoutLocation(const absl::Status& st) {
  std::string msg(st.message());
  if (std::optional<SourceRange> r = GetSourceRange(st)) {
    const std::string prefix = StrCat(r->ToString(), ": ");
    if (msg.rfind(prefix, 0) == 0) msg = msg.substr(prefix.size());
  }
  return msg;
}

}  // namespace

absl::StatusOr<CommandEntry> ToCommand(Command cmd, DispatchStates& all, bool register_sources) {
  CommandEntry e;
  e.cmd = std::move(cmd);
  auto new_source = [&](const std::string& base, bool op_location) {
    auto ds = std::make_unique<DispatchState>();
    ds->stage.base_name = base;
    ds->stage.location = e.cmd.location;
    ds->unregistered = true;
    ds->op_location = op_location;
    return register_sources ? all.Add(std::move(ds)) : all.AddDetached(std::move(ds));
  };
  if (const CopyCommand* c = e.cmd.As<CopyCommand>(); c != nullptr && !c->from.empty()) {
    std::string err;
    std::optional<int64_t> index = go::ParseInt(c->from, 64, &err);
    DispatchState* st = nullptr;
    if (!index) {
      st = all.FindByName(c->from);
      if (st == nullptr) st = new_source(c->from, true);
    } else {
      absl::StatusOr<DispatchState*> found = all.FindByIndex(*index);
      if (!found.ok()) return WithLocation(found.status(), e.cmd.location);
      st = *found;
    }
    e.sources = {st};
  }
  if (const RunCommand* r = e.cmd.As<RunCommand>()) {
    for (const std::string& spec : r->mount_specs) {
      std::string from = RawMountFrom(spec);
      if (from.empty()) from = "scratch";
      DispatchState* st = all.FindByName(from);
      if (st == nullptr) st = new_source(from, false);
      e.sources.push_back(st);
    }
  }
  return e;
}

void DispatchUser(DispatchState& d, const std::string& user) {
  d.state = d.state.User(user);
  d.image.config.user = user;
}

absl::Status DispatchWorkdir(DispatchState& d, const std::string& path, bool commit,
                             const SourceRange* location, const std::string& code,
                             DispatchOpt* opt) {
  d.state = d.state.Dir(path);
  std::string wd = path;
  if (!PathIsAbs(path)) wd = PathJoin({"/", d.image.config.working_dir, wd});
  d.image.config.working_dir = wd;
  if (!commit) return absl::OkStatus();
  bool with_layer = false;
  if (wd != "/") {
    llb::MkdirInfo info{.make_parents = true};
    if (!d.image.config.user.empty()) info.chown = llb::ChownFromSpec(d.image.config.user);
    const oci::Platform platform = d.platform ? *d.platform : opt->target_platform;
    const std::vector<std::string> env = d.state.Env();
    llb::Constraints c;
    c.WithCustomName(PrefixCommand(d, UppercaseCmd(ProcessCmdEnv(opt->shlex, code, env)),
                                   d.prefix_platform, platform, env));
    c.WithLocation(opt->source_map, ToRanges(*location));
    d.state = d.state.File(llb::Mkdir(wd, 0755, info), c);
    with_layer = true;
  }
  CommitToHistory(d.image, StrCat("WORKDIR ", wd), with_layer, false, opt->epoch);
  return absl::OkStatus();
}

absl::Status DispatchOnBuildTriggers(DispatchState& d, const std::vector<std::string>& triggers,
                                     DispatchOpt& opt) {
  for (const std::string& trigger : triggers) {
    absl::Status st = [&]() -> absl::Status {
      KILN_ASSIGN_OR_RETURN(ParseResult ast, Parse(trigger, opt.filename()));
      if (ast.nodes.size() != 1) {
        return absl::InvalidArgumentError("onbuild trigger should be a single expression");
      }
      const std::string lower = ast.nodes[0].LowerKeyword();
      if (lower == "from") {
        return absl::InvalidArgumentError("FROM isn't allowed as an ONBUILD trigger");
      }
      KILN_ASSIGN_OR_RETURN(Command cmd, ParseCommand(ast.nodes[0], opt.filename()));
      KILN_ASSIGN_OR_RETURN(CommandEntry entry,
                            ToCommand(std::move(cmd), *opt.all_states, /*register_sources=*/false));
      return Dispatch(d, entry, opt);
    }();
    if (!st.ok()) {
      return LocatedError(d.stage.location, StrCat("ONBUILD trigger ", go::Quote(trigger),
                                                   " of the base image: ", WithoutLocation(st)));
    }
  }
  return absl::OkStatus();
}

absl::Status Dispatch(DispatchState& d, CommandEntry& entry, DispatchOpt& opt) {
  Command& cmd = entry.cmd;
  KILN_RETURN_IF_ERROR(cmd.Expand([&](std::string_view word) {
    return opt.shlex.ProcessWord(word, EnvFromList(d.state.Env()));
  }));
  const ShellLex raw_lex('\\', ShellLexOptions{.skip_process_quotes = true});
  KILN_RETURN_IF_ERROR(cmd.ExpandRaw([&](std::string_view word) {
    return raw_lex.ProcessWord(word, EnvFromList(d.state.Env()));
  }));

  if (const auto* c = cmd.As<MaintainerCommand>()) {
    d.image.author = c->maintainer;
    CommitToHistory(d.image, StrCat("MAINTAINER ", c->maintainer), false, false, opt.epoch);
    return absl::OkStatus();
  }
  if (const auto* c = cmd.As<EnvCommand>()) return DispatchEnv(d, *c, opt);
  if (const auto* c = cmd.As<RunCommand>()) return DispatchRun(d, cmd, *c, entry.sources, opt);
  if (const auto* c = cmd.As<WorkdirCommand>()) {
    return DispatchWorkdir(d, c->path, true, &cmd.location, cmd.code, &opt);
  }
  if (const auto* c = cmd.As<AddCommand>()) {
    CopyConfig cfg;
    cfg.params = &c->files;
    cfg.exclude_patterns = c->exclude_patterns;
    cfg.source = opt.build_context;
    cfg.is_add = true;
    cfg.code = cmd.code;
    cfg.chown = c->chown;
    cfg.chmod = c->chmod;
    cfg.link = c->link;
    cfg.keep_git_dir = c->keep_git_dir;
    cfg.checksum = c->checksum;
    cfg.unpack = c->unpack;
    cfg.location = cmd.location;
    KILN_RETURN_IF_ERROR(DispatchCopy(d, cfg, opt));
    for (const std::string& src : c->files.source_paths) {
      if (!IsHttpSource(src)) d.ctx_paths.insert(PathJoin({"/", src}));
    }
    return absl::OkStatus();
  }
  if (const auto* c = cmd.As<LabelCommand>()) return DispatchLabel(d, *c, opt);
  if (const auto* c = cmd.As<OnbuildCommand>()) {
    d.image.config.on_build.push_back(c->expression);
    return absl::OkStatus();
  }
  if (const auto* c = cmd.As<CmdCommand>()) {
    std::vector<std::string> args = CommandArgs(d.image, c->cmd);
    d.image.config.cmd = args;
    d.image.config.args_escaped = true;
    d.cmd_set = true;
    CommitToHistory(d.image, StrCat("CMD ", GoQuoteSlice(args)), false, false, opt.epoch);
    return absl::OkStatus();
  }
  if (const auto* c = cmd.As<EntrypointCommand>()) {
    std::vector<std::string> args = CommandArgs(d.image, c->cmd);
    d.image.config.entrypoint = args;
    if (!d.cmd_set) d.image.config.cmd.reset();
    CommitToHistory(d.image, StrCat("ENTRYPOINT ", GoQuoteSlice(args)), false, false, opt.epoch);
    return absl::OkStatus();
  }
  if (const auto* c = cmd.As<HealthCheckCommand>()) return DispatchHealthcheck(d, *c, opt);
  if (const auto* c = cmd.As<ExposeCommand>()) return DispatchExpose(d, *c, opt);
  if (const auto* c = cmd.As<UserCommand>()) {
    DispatchUser(d, c->user);
    CommitToHistory(d.image, StrCat("USER ", c->user), false, false, opt.epoch);
    return absl::OkStatus();
  }
  if (const auto* c = cmd.As<VolumeCommand>()) return DispatchVolume(d, *c, opt);
  if (const auto* c = cmd.As<StopSignalCommand>()) {
    KILN_RETURN_IF_ERROR(ValidateSignal(c->signal));
    d.image.config.stop_signal = c->signal;
    CommitToHistory(d.image, StrCat("STOPSIGNAL ", c->signal), false, false, opt.epoch);
    return absl::OkStatus();
  }
  if (const auto* c = cmd.As<ShellCommand>()) {
    d.image.config.shell = c->shell;
    CommitToHistory(d.image, StrCat("SHELL ", GoFormatSlice(c->shell)), false, false, opt.epoch);
    return absl::OkStatus();
  }
  if (const auto* c = cmd.As<ArgCommand>()) return DispatchArg(d, *c, opt);
  if (const auto* c = cmd.As<CopyCommand>()) {
    CopyConfig cfg;
    cfg.params = &c->files;
    cfg.exclude_patterns = c->exclude_patterns;
    cfg.source = entry.sources.empty() ? opt.build_context : entry.sources[0]->state;
    cfg.code = cmd.code;
    cfg.chown = c->chown;
    cfg.chmod = c->chmod;
    cfg.link = c->link;
    cfg.parents = c->parents;
    cfg.location = cmd.location;
    KILN_RETURN_IF_ERROR(DispatchCopy(d, cfg, opt));
    if (entry.sources.empty()) {
      for (const std::string& src : c->files.source_paths) {
        d.ctx_paths.insert(PathJoin({"/", src}));
      }
    }
    return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace kiln::frontends::dockerfile::internal
