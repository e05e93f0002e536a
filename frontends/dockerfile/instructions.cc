#include "frontends/dockerfile/instructions.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "base/status.h"
#include "base/strings.h"
#include "frontends/dockerfile/go_compat.h"

namespace kiln::frontends::dockerfile {
namespace {

absl::Status Error(std::string_view msg) { return absl::InvalidArgumentError(ToAbsl(msg)); }

// BuildKit's suggest.WrapError: appends " (did you mean X?)" when an option is within edit
// distance 2 of `value`.
std::string WithSuggestion(std::string msg, std::string_view value,
                           const std::vector<std::string_view>& options, bool case_sensitive) {
  std::string v = case_sensitive ? std::string(value) : go::AsciiLower(value);
  std::string match;
  int min_dist = 3;
  for (std::string_view opt : options) {
    std::string o = case_sensitive ? std::string(opt) : go::AsciiLower(opt);
    if (v == o) return msg;
    int d = go::Levenshtein(v, o);
    if (d < min_dist) {
      min_dist = d;
      match = o;
      // Go's matchCase: an all-upper-case spelling gets an upper-case suggestion.
      if (!case_sensitive && value == go::ToUpper(value)) match = go::AsciiUpper(o);
    }
  }
  if (match.empty()) return msg;
  return StrCat(msg, " (did you mean ", match, "?)");
}

// BuildKit's BFlags: declared flags of one instruction, then Parse() over the node's flags.
class Flags {
 public:
  enum class Type { kBool, kString, kStrings };
  struct Flag {
    Type type;
    std::string value;                // bool: "true"/"false"
    std::vector<std::string> values;  // kStrings
    bool used = false;
  };

  Flags(std::string_view instruction, const std::vector<std::string>& args)
      : instruction_(go::AsciiUpper(instruction)), args_(args) {}

  Flag* AddBool(const std::string& name, bool def) {
    return Add(name, Type::kBool, def ? "true" : "false");
  }
  Flag* AddString(const std::string& name, std::string def = "") {
    return Add(name, Type::kString, std::move(def));
  }
  Flag* AddStrings(const std::string& name) { return Add(name, Type::kStrings, ""); }

  absl::Status Parse() {
    for (const std::string& a : args_) {
      if (a == "--") return absl::OkStatus();
      if (a.rfind("--", 0) != 0) return Fail(StrCat("arg should start with -- : ", a));
      size_t eq = a.find('=');
      const bool has_value = eq != std::string::npos;
      std::string flag_name = a.substr(0, eq);
      std::string value = has_value ? a.substr(eq + 1) : "";
      std::string name = flag_name.substr(2);
      auto it = flags_.find(name);
      if (it == flags_.end()) {
        std::vector<std::string_view> names;
        for (const auto& [n, f] : flags_) names.push_back(n);
        return Fail(WithSuggestion(StrCat("unknown flag: ", flag_name), name, names, true));
      }
      Flag& flag = *it->second;
      if (flag.used && flag.type != Type::kStrings) {
        return Fail(StrCat("duplicate flag specified: ", flag_name));
      }
      flag.used = true;
      switch (flag.type) {
        case Type::kBool: {
          if (has_value && value.empty()) {
            return Fail(StrCat("missing a value on flag: ", flag_name));
          }
          std::string lower = go::AsciiLower(value);
          if (lower == "true" || lower.empty()) {
            flag.value = "true";
          } else if (lower == "false") {
            flag.value = "false";
          } else {
            return Fail(StrCat("expecting boolean value for flag ", flag_name, ", not: ", value));
          }
          break;
        }
        case Type::kString:
          if (!has_value) return Fail(StrCat("missing a value on flag: ", flag_name));
          flag.value = value;
          break;
        case Type::kStrings:
          if (!has_value) return Fail(StrCat("missing a value on flag: ", flag_name));
          flag.values.push_back(value);
          break;
      }
    }
    return absl::OkStatus();
  }

  std::vector<std::string> Used() const {
    std::vector<std::string> out;
    for (const auto& [n, f] : flags_) {
      if (f->used) out.push_back(n);
    }
    return out;
  }

 private:
  Flag* Add(const std::string& name, Type type, std::string def) {
    auto flag = std::make_unique<Flag>();
    flag->type = type;
    flag->value = std::move(def);
    Flag* raw = flag.get();
    flags_[name] = std::move(flag);
    return raw;
  }
  absl::Status Fail(std::string_view msg) const { return Error(StrCat(instruction_, ": ", msg)); }

  std::string instruction_;
  const std::vector<std::string>& args_;
  std::map<std::string, std::unique_ptr<Flag>> flags_;
};

absl::Status AtLeastOneArgument(std::string_view cmd) {
  return Error(StrCat(cmd, " requires at least one argument"));
}
absl::Status ExactlyOneArgument(std::string_view cmd) {
  return Error(StrCat(cmd, " requires exactly one argument"));
}
absl::Status NoDestinationArgument(std::string_view cmd) {
  return Error(StrCat(cmd,
                      " requires at least two arguments, but only one was provided. Destination "
                      "could not be determined"));
}

std::string DocComment(const std::vector<std::string>& comments, std::string_view name) {
  if (name.empty()) return "";
  std::string prefix = StrCat(name, " ");
  for (const std::string& line : comments) {
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  }
  return "";
}

absl::StatusOr<std::vector<KeyValuePair>> ParseKvps(const Node& node, std::string_view cmd) {
  const std::vector<std::string>& args = node.args;
  if (args.empty()) return AtLeastOneArgument(cmd);
  if (args.size() % 2 != 0) return Error(StrCat("Bad input to ", cmd, ", too many arguments"));
  std::vector<KeyValuePair> out;
  for (size_t j = 0; j < args.size(); j += 2) {
    if (args[j].empty()) return Error(StrCat(cmd, " names can not be blank"));
    out.push_back(KeyValuePair{args[j], args[j + 1], node.legacy_key_value});
  }
  return out;
}

std::vector<std::string> HandleJsonArgs(const Node& node) {
  if (node.args.empty()) return {};
  if (node.json) return node.args;
  std::string joined;
  for (size_t k = 0; k < node.args.size(); ++k) {
    if (k > 0) joined += " ";
    joined += node.args[k];
  }
  return {joined};
}

ShellDependantCmdLine ShellDependent(const Node& node) {
  ShellDependantCmdLine c;
  for (const Heredoc& h : node.heredocs) c.files.push_back({h.name, h.content, h.chomp});
  c.cmd_line = HandleJsonArgs(node);
  c.prepend_shell = !node.json;
  return c;
}

absl::StatusOr<SourcesAndDest> ParseSourcesAndDest(const Node& node, std::string_view cmd) {
  SourcesAndDest out;
  out.dest_path = node.args.back();
  Heredoc marker;
  absl::StatusOr<bool> dest_is_heredoc = ParseHeredocMarker(out.dest_path, &marker);
  if (dest_is_heredoc.ok() && *dest_is_heredoc) {
    return Error(StrCat(cmd, " cannot accept a heredoc as a destination"));
  }
  std::map<std::string, const Heredoc*> by_name;
  for (const Heredoc& h : node.heredocs) by_name[h.name] = &h;
  for (size_t k = 0; k + 1 < node.args.size(); ++k) {
    const std::string& src = node.args[k];
    absl::StatusOr<bool> is_heredoc = ParseHeredocMarker(src, &marker);
    if (is_heredoc.ok() && *is_heredoc) {
      auto it = by_name.find(marker.name);
      std::string content = it == by_name.end() ? "" : it->second->content;
      if (marker.chomp) content = ChompHeredocContent(content);
      out.source_contents.push_back(SourceContent{marker.name, std::move(content), marker.expand});
    } else {
      out.source_paths.push_back(src);
    }
  }
  return out;
}

absl::StatusOr<CommandValue> ParseAdd(const Node& node) {
  if (node.args.size() < 2) return NoDestinationArgument("ADD");
  Flags flags(node.keyword, node.flags);
  auto* chown = flags.AddString("chown");
  auto* chmod = flags.AddString("chmod");
  auto* link = flags.AddBool("link", false);
  auto* keep_git_dir = flags.AddBool("keep-git-dir", false);
  auto* checksum = flags.AddString("checksum");
  auto* unpack = flags.AddBool("unpack", false);
  auto* excludes = flags.AddStrings("exclude");
  KILN_RETURN_IF_ERROR(flags.Parse());
  KILN_ASSIGN_OR_RETURN(SourcesAndDest files, ParseSourcesAndDest(node, "ADD"));
  AddCommand c;
  c.files = std::move(files);
  c.chown = chown->value;
  c.chmod = chmod->value;
  c.link = link->value == "true";
  if (keep_git_dir->used) c.keep_git_dir = keep_git_dir->value == "true";
  c.checksum = checksum->value;
  if (unpack->used) c.unpack = unpack->value == "true";
  c.exclude_patterns = excludes->values;
  return c;
}

absl::StatusOr<CommandValue> ParseCopy(const Node& node) {
  if (node.args.size() < 2) return NoDestinationArgument("COPY");
  Flags flags(node.keyword, node.flags);
  auto* chown = flags.AddString("chown");
  auto* from = flags.AddString("from");
  auto* chmod = flags.AddString("chmod");
  auto* link = flags.AddBool("link", false);
  auto* excludes = flags.AddStrings("exclude");
  auto* parents = flags.AddBool("parents", false);
  KILN_RETURN_IF_ERROR(flags.Parse());
  KILN_ASSIGN_OR_RETURN(SourcesAndDest files, ParseSourcesAndDest(node, "COPY"));
  CopyCommand c;
  c.files = std::move(files);
  c.from = from->value;
  c.chown = chown->value;
  c.chmod = chmod->value;
  c.link = link->value == "true";
  c.parents = parents->value == "true";
  c.exclude_patterns = excludes->values;
  return c;
}

// The --mount values are checked before expansion only for what cannot depend on variables.
absl::Status PrecheckMount(std::string_view spec);

absl::StatusOr<CommandValue> ParseRun(const Node& node) {
  Flags flags(node.keyword, node.flags);
  auto* mount = flags.AddStrings("mount");
  auto* network = flags.AddString("network", "default");
  auto* security = flags.AddString("security", "sandbox");
  KILN_RETURN_IF_ERROR(flags.Parse());
  RunCommand c;
  c.flags_used = flags.Used();
  c.cmd = ShellDependent(node);
  c.mount_specs = mount->values;
  for (const std::string& spec : c.mount_specs) KILN_RETURN_IF_ERROR(PrecheckMount(spec));
  if (network->value != "default" && network->value != "none" && network->value != "host") {
    return Error(StrCat("invalid network mode ", go::Quote(network->value)));
  }
  c.network = network->value;
  if (security->value != "sandbox" && security->value != "insecure") {
    return Error(StrCat("security ", go::Quote(security->value), " is not valid"));
  }
  c.security = security->value;
  return c;
}

absl::StatusOr<int64_t> ParseOptInterval(const Flags::Flag& flag, std::string_view name) {
  if (flag.value.empty()) return 0;
  std::string err;
  std::optional<int64_t> d = go::ParseDuration(flag.value, &err);
  if (!d.has_value()) return Error(err);
  if (*d == 0) return 0;
  constexpr int64_t kMinimum = 1000000;  // 1ms
  if (*d < kMinimum) {
    return Error(StrCat("Interval ", go::Quote(name), " cannot be less than 1ms"));
  }
  return *d;
}

absl::StatusOr<CommandValue> ParseHealthcheck(const Node& node) {
  if (node.args.empty()) return AtLeastOneArgument("HEALTHCHECK");
  HealthCheckCommand c;
  std::string type = go::ToUpper(node.args[0]);
  if (type == "NONE") {
    if (node.args.size() != 1) return Error("HEALTHCHECK NONE takes no arguments");
    c.health.test = {type};
    return c;
  }
  Flags flags(node.keyword, node.flags);
  auto* interval = flags.AddString("interval");
  auto* timeout = flags.AddString("timeout");
  auto* start_period = flags.AddString("start-period");
  auto* start_interval = flags.AddString("start-interval");
  auto* retries = flags.AddString("retries");
  KILN_RETURN_IF_ERROR(flags.Parse());
  if (type != "CMD") {
    return Error(StrCat("Unknown type ", go::Quote(type), " in HEALTHCHECK (try CMD)"));
  }
  Node cmd_node = node;
  cmd_node.args.erase(cmd_node.args.begin());
  std::vector<std::string> cmd = HandleJsonArgs(cmd_node);
  if (cmd.empty()) return Error("Missing command after HEALTHCHECK CMD");
  c.health.test = {node.json ? "CMD" : "CMD-SHELL"};
  c.health.test.insert(c.health.test.end(), cmd.begin(), cmd.end());
  KILN_ASSIGN_OR_RETURN(c.health.interval, ParseOptInterval(*interval, "interval"));
  KILN_ASSIGN_OR_RETURN(c.health.timeout, ParseOptInterval(*timeout, "timeout"));
  KILN_ASSIGN_OR_RETURN(c.health.start_period, ParseOptInterval(*start_period, "start-period"));
  KILN_ASSIGN_OR_RETURN(c.health.start_interval,
                        ParseOptInterval(*start_interval, "start-interval"));
  if (!retries->value.empty()) {
    std::string err;
    std::optional<int64_t> r = go::ParseInt(retries->value, 32, &err);
    if (!r.has_value()) return Error(err);
    if (*r < 0) return Error(StrCat("--retries cannot be negative (", *r, ")"));
    c.health.retries = static_cast<int>(*r);
  }
  return c;
}

absl::StatusOr<CommandValue> ParseOnbuild(const Node& node) {
  if (node.args.empty()) return AtLeastOneArgument("ONBUILD");
  Flags flags(node.keyword, node.flags);
  KILN_RETURN_IF_ERROR(flags.Parse());
  std::string trigger = go::ToUpper(go::TrimSpace(node.args[0]));
  if (trigger == "ONBUILD") return Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  if (trigger == "MAINTAINER" || trigger == "FROM") {
    return Error(StrCat(trigger, " isn't allowed as an ONBUILD trigger"));
  }
  // (?i)^\s*ONBUILD\s*
  std::string_view expr = node.original;
  auto is_space = [](char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\f' || ch == '\r';
  };
  size_t p = 0;
  while (p < expr.size() && is_space(expr[p])) ++p;
  if (go::AsciiUpper(expr.substr(p, 7)) == "ONBUILD") {
    p += 7;
    while (p < expr.size() && is_space(expr[p])) ++p;
    expr.remove_prefix(p);
  }
  OnbuildCommand c;
  c.expression = std::string(expr);
  for (const Heredoc& h : node.heredocs) StrAppend(&c.expression, "\n", h.content, h.name);
  return c;
}

absl::StatusOr<CommandValue> ParseArg(const Node& node) {
  if (node.args.empty()) return AtLeastOneArgument("ARG");
  ArgCommand c;
  for (const std::string& arg : node.args) {
    KeyValuePairOptional kv;
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      if (eq == 0) return Error("ARG names can not be blank");
      kv.key = arg.substr(0, eq);
      kv.value = arg.substr(eq + 1);
    } else {
      kv.key = arg;
    }
    kv.doc_comment = DocComment(node.prev_comments, kv.key);
    c.args.push_back(std::move(kv));
  }
  return c;
}

absl::StatusOr<CommandValue> ParseValue(const Node& node) {
  const std::string lower = node.LowerKeyword();
  if (lower == "env") {
    Flags flags(node.keyword, node.flags);
    KILN_RETURN_IF_ERROR(flags.Parse());
    KILN_ASSIGN_OR_RETURN(auto env, ParseKvps(node, "ENV"));
    return EnvCommand{std::move(env)};
  }
  if (lower == "maintainer") {
    if (node.args.size() != 1) return ExactlyOneArgument("MAINTAINER");
    Flags flags(node.keyword, node.flags);
    KILN_RETURN_IF_ERROR(flags.Parse());
    return MaintainerCommand{node.args[0]};
  }
  if (lower == "label") {
    Flags flags(node.keyword, node.flags);
    KILN_RETURN_IF_ERROR(flags.Parse());
    KILN_ASSIGN_OR_RETURN(auto labels, ParseKvps(node, "LABEL"));
    return LabelCommand{std::move(labels)};
  }
  if (lower == "add") return ParseAdd(node);
  if (lower == "copy") return ParseCopy(node);
  if (lower == "onbuild") return ParseOnbuild(node);
  if (lower == "workdir" || lower == "user") {
    const bool workdir = lower == "workdir";
    if (node.args.size() != 1) return ExactlyOneArgument(workdir ? "WORKDIR" : "USER");
    Flags flags(node.keyword, node.flags);
    KILN_RETURN_IF_ERROR(flags.Parse());
    if (workdir) return WorkdirCommand{node.args[0]};
    return UserCommand{node.args[0]};
  }
  if (lower == "run") return ParseRun(node);
  if (lower == "cmd" || lower == "entrypoint") {
    Flags flags(node.keyword, node.flags);
    KILN_RETURN_IF_ERROR(flags.Parse());
    if (lower == "cmd") return CmdCommand{ShellDependent(node)};
    return EntrypointCommand{ShellDependent(node)};
  }
  if (lower == "healthcheck") return ParseHealthcheck(node);
  if (lower == "expose") {
    if (node.args.empty()) return AtLeastOneArgument("EXPOSE");
    Flags flags(node.keyword, node.flags);
    KILN_RETURN_IF_ERROR(flags.Parse());
    ExposeCommand c{node.args};
    std::sort(c.ports.begin(), c.ports.end());
    return c;
  }
  if (lower == "volume") {
    if (node.args.empty()) return AtLeastOneArgument("VOLUME");
    Flags flags(node.keyword, node.flags);
    KILN_RETURN_IF_ERROR(flags.Parse());
    VolumeCommand c;
    for (const std::string& v : node.args) {
      std::string_view t = go::TrimSpace(v);
      if (t.empty()) return Error("VOLUME specified can not be an empty string");
      c.volumes.emplace_back(t);
    }
    return c;
  }
  if (lower == "stopsignal") {
    // BuildKit never parses STOPSIGNAL's flags, so any are silently accepted.
    if (node.args.size() != 1) return ExactlyOneArgument("STOPSIGNAL");
    return StopSignalCommand{node.args[0]};
  }
  if (lower == "arg") return ParseArg(node);  // ARG's flags are not parsed either
  if (lower == "shell") {
    Flags flags(node.keyword, node.flags);
    KILN_RETURN_IF_ERROR(flags.Parse());
    std::vector<std::string> shell = HandleJsonArgs(node);
    if (shell.empty()) return AtLeastOneArgument("SHELL");
    if (!node.json) return Error("SHELL requires the arguments to be in JSON form");
    return ShellCommand{std::move(shell)};
  }
  static const std::vector<std::string_view> kNames = {
      "ADD",    "ARG",   "CMD",         "COPY",  "ENTRYPOINT", "ENV",
      "EXPOSE", "FROM",  "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD",
      "RUN",    "SHELL", "STOPSIGNAL",  "USER",  "VOLUME",     "WORKDIR"};
  return Error(
      WithSuggestion(StrCat("unknown instruction: ", node.keyword), node.keyword, kNames, false));
}

// ---- --mount ----

absl::Status PrecheckMount(std::string_view spec) {
  absl::StatusOr<std::vector<std::string>> fields = go::ReadCsvRecord(spec);
  if (!fields.ok()) {
    return Error(StrCat("failed to parse csv mounts: ", FromAbsl(fields.status().message())));
  }
  for (const std::string& field : *fields) {
    size_t eq = field.find('=');
    if (eq == std::string::npos) continue;
    if (go::AsciiLower(field.substr(0, eq)) != "from") continue;
    std::string_view value = std::string_view(field).substr(eq + 1);
    size_t dollar = value.find('$');
    if (dollar != std::string_view::npos && dollar != value.size() - 1) {
      return Error("'from' doesn't support variable expansion, define alias stage instead");
    }
  }
  return absl::OkStatus();
}

absl::Status ExpandSlice(std::vector<std::string>* values, const WordExpander& expander) {
  for (std::string& v : *values) {
    KILN_ASSIGN_OR_RETURN(v, expander(v));
  }
  return absl::OkStatus();
}

absl::Status ExpandKvps(std::vector<KeyValuePair>* kvps, const WordExpander& expander) {
  for (KeyValuePair& kv : *kvps) {
    KILN_ASSIGN_OR_RETURN(std::string key, expander(kv.key));
    KILN_ASSIGN_OR_RETURN(std::string value, expander(kv.value));
    kv.key = std::move(key);
    kv.value = std::move(value);
  }
  return absl::OkStatus();
}

absl::Status ExpandFiles(SourcesAndDest* files, const WordExpander& expander) {
  KILN_RETURN_IF_ERROR(ExpandSlice(&files->source_paths, expander));
  KILN_ASSIGN_OR_RETURN(files->dest_path, expander(files->dest_path));
  return absl::OkStatus();
}

struct ExpandVisitor {
  const WordExpander& expander;

  absl::Status operator()(EnvCommand& c) const { return ExpandKvps(&c.env, expander); }
  absl::Status operator()(LabelCommand& c) const { return ExpandKvps(&c.labels, expander); }
  absl::Status operator()(AddCommand& c) const {
    KILN_ASSIGN_OR_RETURN(c.chown, expander(c.chown));
    KILN_ASSIGN_OR_RETURN(c.chmod, expander(c.chmod));
    KILN_ASSIGN_OR_RETURN(c.checksum, expander(c.checksum));
    return ExpandFiles(&c.files, expander);
  }
  absl::Status operator()(CopyCommand& c) const {
    KILN_ASSIGN_OR_RETURN(c.chown, expander(c.chown));
    KILN_ASSIGN_OR_RETURN(c.chmod, expander(c.chmod));
    return ExpandFiles(&c.files, expander);
  }
  absl::Status operator()(WorkdirCommand& c) const {
    KILN_ASSIGN_OR_RETURN(c.path, expander(c.path));
    return absl::OkStatus();
  }
  absl::Status operator()(RunCommand& c) const {
    std::vector<Mount> mounts;
    for (const std::string& spec : c.mount_specs) {
      KILN_ASSIGN_OR_RETURN(Mount m, ParseMount(spec, expander));
      mounts.push_back(std::move(m));
    }
    c.mounts = std::move(mounts);
    return absl::OkStatus();
  }
  absl::Status operator()(UserCommand& c) const {
    KILN_ASSIGN_OR_RETURN(c.user, expander(c.user));
    return absl::OkStatus();
  }
  absl::Status operator()(VolumeCommand& c) const { return ExpandSlice(&c.volumes, expander); }
  absl::Status operator()(StopSignalCommand& c) const {
    KILN_ASSIGN_OR_RETURN(c.signal, expander(c.signal));
    return absl::OkStatus();
  }
  absl::Status operator()(ArgCommand& c) const {
    for (KeyValuePairOptional& kv : c.args) {
      KILN_ASSIGN_OR_RETURN(kv.key, expander(kv.key));
      if (kv.value.has_value()) {
        KILN_ASSIGN_OR_RETURN(*kv.value, expander(*kv.value));
      }
    }
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status operator()(T&) const {
    return absl::OkStatus();
  }
};

absl::Status ExpandContents(SourcesAndDest* files, const WordExpander& expander) {
  for (SourceContent& sc : files->source_contents) {
    if (!sc.expand) continue;
    KILN_ASSIGN_OR_RETURN(sc.data, expander(sc.data));
  }
  return absl::OkStatus();
}

// BuildKit's StageNameCasing and FromAsCasing lint rules.
void AddFromCasingWarnings(const Node& node, const SourceRange& location,
                           std::vector<Warning>* warnings) {
  const std::vector<std::string>& args = node.args;
  if (args.size() == 3 && args[2] != go::AsciiLower(args[2])) {
    warnings->push_back(
        Warning{"StageNameCasing", StrCat("Stage name '", args[2], "' should be lowercase"), "",
                "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/", location});
  }
  if (args.size() < 3) return;
  const bool from_lower = node.keyword == go::AsciiLower(node.keyword);
  const bool from_upper = node.keyword == go::AsciiUpper(node.keyword);
  if (!from_lower && !from_upper) return;
  const bool matches =
      from_lower ? args[1] == go::AsciiLower(args[1]) : args[1] == go::AsciiUpper(args[1]);
  if (!matches) {
    warnings->push_back(
        Warning{"FromAsCasing",
                StrCat("'", args[1], "' and '", node.keyword, "' keywords' casing do not match"),
                "", "https://docs.docker.com/go/dockerfile/rule/from-as-casing/", location});
  }
}

}  // namespace

std::string_view MountTypeName(MountType t) {
  switch (t) {
    case MountType::kBind:
      return "bind";
    case MountType::kCache:
      return "cache";
    case MountType::kTmpfs:
      return "tmpfs";
    case MountType::kSecret:
      return "secret";
    case MountType::kSsh:
      return "ssh";
  }
  return "bind";
}

std::string_view ShareModeName(ShareMode m) {
  switch (m) {
    case ShareMode::kShared:
      return "shared";
    case ShareMode::kPrivate:
      return "private";
    case ShareMode::kLocked:
      return "locked";
  }
  return "shared";
}

absl::StatusOr<Mount> ParseMount(std::string_view spec, const WordExpander& expander) {
  absl::StatusOr<std::vector<std::string>> fields = go::ReadCsvRecord(spec);
  if (!fields.ok()) {
    return Error(StrCat("failed to parse csv mounts: ", FromAbsl(fields.status().message())));
  }
  Mount m;
  bool ro_auto = true;
  auto secret_or_ssh = [&] { return m.type == MountType::kSecret || m.type == MountType::kSsh; };
  auto unexpected_key = [&](std::string_view key) {
    return Error(StrCat("unexpected key '", key, "' for mount type '", MountTypeName(m.type), "'"));
  };
  auto invalid_value = [](std::string_view key, std::string_view value) {
    return Error(StrCat("invalid value for ", key, ": ", value));
  };
  for (const std::string& field : *fields) {
    size_t eq = field.find('=');
    std::string key = go::AsciiLower(field.substr(0, eq));
    if (eq == std::string::npos) {
      if (key == "readonly" || key == "ro") {
        m.read_only = true;
        ro_auto = false;
      } else if (key == "readwrite" || key == "rw") {
        m.read_only = false;
        ro_auto = false;
      } else if (key == "required") {
        if (!secret_or_ssh()) return unexpected_key(key);
        m.required = true;
      } else {
        return Error(StrCat("invalid field '", field, "' must be a key=value pair"));
      }
      continue;
    }
    KILN_ASSIGN_OR_RETURN(std::string value, expander(field.substr(eq + 1)));
    if (key == "type") {
      std::string lower = go::AsciiLower(value);
      static const std::vector<std::string_view> kTypes = {"bind", "cache", "tmpfs", "secret",
                                                           "ssh"};
      auto it = std::find(kTypes.begin(), kTypes.end(), lower);
      if (it == kTypes.end()) {
        return Error(WithSuggestion(StrCat("unsupported mount type ", go::Quote(value)), value,
                                    kTypes, true));
      }
      m.type = static_cast<MountType>(it - kTypes.begin());
    } else if (key == "from") {
      m.from = value;
    } else if (key == "source" || key == "src") {
      m.source = value;
    } else if (key == "target" || key == "dst" || key == "destination") {
      m.target = value;
    } else if (key == "readonly" || key == "ro") {
      std::optional<bool> b = go::ParseBool(value);
      if (!b.has_value()) return invalid_value(key, value);
      m.read_only = *b;
      ro_auto = false;
    } else if (key == "readwrite" || key == "rw") {
      std::optional<bool> b = go::ParseBool(value);
      if (!b.has_value()) return invalid_value(key, value);
      m.read_only = !*b;
      ro_auto = false;
    } else if (key == "required") {
      if (!secret_or_ssh()) return unexpected_key(key);
      std::optional<bool> b = go::ParseBool(value);
      if (!b.has_value()) return invalid_value(key, value);
      m.required = *b;
    } else if (key == "size") {
      if (m.type != MountType::kTmpfs) return unexpected_key(key);
      std::optional<int64_t> size = go::RamInBytes(value);
      if (!size.has_value()) return invalid_value(key, value);
      m.size_limit = *size;
    } else if (key == "id") {
      m.cache_id = value;
    } else if (key == "sharing") {
      std::string lower = go::AsciiLower(value);
      static const std::vector<std::string_view> kModes = {"shared", "private", "locked"};
      auto it = std::find(kModes.begin(), kModes.end(), lower);
      if (it == kModes.end()) {
        return Error(WithSuggestion(StrCat("unsupported sharing value ", go::Quote(value)), value,
                                    kModes, true));
      }
      m.sharing = static_cast<ShareMode>(it - kModes.begin());
    } else if (key == "mode" || key == "uid" || key == "gid") {
      std::string err;
      std::optional<uint64_t> v = go::ParseUint(value, key == "mode" ? 8 : 10, 32, &err);
      if (!v.has_value()) return Error(StrCat("invalid value ", value, " for ", key));
      (key == "mode" ? m.mode : key == "uid" ? m.uid : m.gid) = *v;
    } else if (key == "env") {
      m.env = value;
    } else {
      static const std::vector<std::string_view> kKeys = {
          "type",        "from", "source", "target",    "readonly", "id",  "sharing",
          "required",    "size", "mode",   "uid",       "gid",      "src", "dst",
          "destination", "ro",   "rw",     "readwrite", "env"};
      return Error(
          WithSuggestion(StrCat("unexpected key '", key, "' in '", field, "'"), key, kKeys, true));
    }
  }
  const bool file_info_allowed =
      m.type == MountType::kSecret || m.type == MountType::kSsh || m.type == MountType::kCache;
  if (!file_info_allowed) {
    const std::string type = go::Quote(MountTypeName(m.type));
    if (m.mode.has_value()) return Error(StrCat("mode not allowed for ", type, " type mounts"));
    if (m.uid.has_value()) return Error(StrCat("uid not allowed for ", type, " type mounts"));
    if (m.gid.has_value()) return Error(StrCat("gid not allowed for ", type, " type mounts"));
  }
  if (ro_auto) m.read_only = !(m.type == MountType::kCache || m.type == MountType::kTmpfs);
  if (m.type == MountType::kSecret) {
    if (!m.from.empty()) return Error("secret mount should not have a from");
    if (m.sharing.has_value()) return Error("secret mount should not define sharing");
    if (m.source.empty() && m.target.empty() && m.cache_id.empty()) {
      return Error("invalid secret mount. one of source, target required");
    }
    if (!m.source.empty() && !m.cache_id.empty()) {
      return Error("both source and id can't be set");
    }
  }
  if (m.sharing.has_value() && m.type != MountType::kCache) {
    return Error(StrCat("invalid cache sharing set for ", MountTypeName(m.type), " mount"));
  }
  return m;
}

absl::Status Command::Expand(const WordExpander& expander) {
  return WithLocation(std::visit(ExpandVisitor{expander}, value), location);
}

absl::Status Command::ExpandRaw(const WordExpander& expander) {
  absl::Status st;
  if (auto* add = As<AddCommand>()) st = ExpandContents(&add->files, expander);
  if (auto* copy = As<CopyCommand>()) st = ExpandContents(&copy->files, expander);
  return WithLocation(st, location);
}

absl::StatusOr<Command> ParseCommand(const Node& node, std::string_view file) {
  const SourceRange location = node.Range(file);
  absl::StatusOr<CommandValue> value = ParseValue(node);
  if (!value.ok()) return WithLocation(value.status(), location);
  Command c;
  c.name = node.keyword;
  c.code = std::string(go::TrimSpace(node.original));
  c.location = location;
  c.comments = node.prev_comments;
  c.value = *std::move(value);
  return c;
}

absl::StatusOr<Stage> ParseStage(const Node& node, std::string_view file) {
  const SourceRange location = node.Range(file);
  Stage s;
  const std::vector<std::string>& args = node.args;
  if (args.size() == 3 && go::AsciiLower(args[1]) == "as") {
    s.name = go::AsciiLower(args[2]);
    bool valid = !s.name.empty() && s.name[0] >= 'a' && s.name[0] <= 'z';
    for (char ch : s.name) {
      valid = valid && ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                        ch == '_' || ch == '.');
    }
    if (!valid) {
      return LocatedError(location, StrCat("invalid name for build stage: ", go::Quote(args[2]),
                                           ", name can't start with a number or contain symbols"));
    }
  } else if (args.size() != 1) {
    return LocatedError(location, "FROM requires either one or three arguments");
  }
  Flags flags(node.keyword, node.flags);
  auto* platform = flags.AddString("platform");
  if (absl::Status st = flags.Parse(); !st.ok()) return WithLocation(st, location);
  s.base_name = args[0];
  s.orig_cmd = node.keyword;
  s.platform = platform->value;
  s.source_code = std::string(go::TrimSpace(node.original));
  s.location = location;
  s.comments = node.prev_comments;
  s.doc_comment = DocComment(node.prev_comments, s.name);
  return s;
}

absl::StatusOr<Dockerfile> ParseStages(const ParseResult& ast) {
  Dockerfile df;
  df.directives = ast.directives;
  df.escape_token = ast.escape_token;
  df.warnings = ast.warnings;
  std::map<std::string, int> first_stage_line;
  for (const Node& node : ast.nodes) {
    const std::string lower = node.LowerKeyword();
    const SourceRange location = node.Range(ast.file);
    if (lower == "from") {
      KILN_ASSIGN_OR_RETURN(Stage stage, ParseStage(node, ast.file));
      if (!stage.name.empty()) {
        if (stage.name == "scratch" || stage.name == "context") {
          df.warnings.push_back(Warning{
              "ReservedStageName",
              StrCat("Stage name should not use the same name as reserved stage ",
                     go::Quote(stage.name)),
              "", "https://docs.docker.com/go/dockerfile/rule/reserved-stage-name/", location});
        }
        if (!first_stage_line.emplace(stage.name, location.start_line).second) {
          df.warnings.push_back(Warning{
              "DuplicateStageName",
              StrCat("Duplicate stage name ", go::Quote(stage.name),
                     ", stage names should be unique"),
              "", "https://docs.docker.com/go/dockerfile/rule/duplicate-stage-name/", location});
        }
      }
      AddFromCasingWarnings(node, location, &df.warnings);
      df.stages.push_back(std::move(stage));
      continue;
    }
    if (lower == "maintainer") {
      df.warnings.push_back(Warning{
          "MaintainerDeprecated", "Maintainer instruction is deprecated in favor of using label",
          "", "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/", location});
    }
    KILN_ASSIGN_OR_RETURN(Command cmd, ParseCommand(node, ast.file));
    if (df.stages.empty()) {
      if (cmd.As<ArgCommand>() != nullptr) {
        df.meta_args.push_back(std::move(cmd));
        continue;
      }
      return LocatedError(location, "no build stage in current context");
    }
    df.stages.back().commands.push_back(std::move(cmd));
  }
  return df;
}

absl::StatusOr<Dockerfile> ParseDockerfile(std::string_view content, std::string_view file) {
  KILN_ASSIGN_OR_RETURN(ParseResult ast, Parse(content, file));
  return ParseStages(ast);
}

int FindStage(const std::vector<Stage>& stages, std::string_view name) {
  const std::string lower = go::AsciiLower(name);
  for (size_t i = 0; i < stages.size(); ++i) {
    if (go::AsciiLower(stages[i].name) == lower) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace kiln::frontends::dockerfile
