// kilnctl debug dump-llb: converts a Dockerfile with the Dockerfile frontend and prints the LLB
// (as `buildctl debug dump-llb` prints it, or the raw Definition BuildKit reads), or dumps a
// Definition read from a file or stdin.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "frontends/dockerfile/frontend.h"
#include "llb/dump.h"
#include "llb/go_compat.h"
#include "tools/kilnctl/commands.h"
#include "tools/kilnctl/image_resolver.h"
#include "tools/kilnctl/local_frontend_client.h"

namespace kiln::tools::kilnctl {
namespace {

struct DumpLlbOptions {
  std::string format = "json";
  std::string dockerfile;
  std::vector<std::string> opts;
  std::string target;
  std::vector<std::string> build_args;
  std::string platform;
  std::vector<std::string> image_configs;
  std::string session_id;
  std::string from_pb;
  bool from_pb_set = false;
  std::string context = ".";
};

void Note(const std::string& msg) { std::cerr << "kilnctl: note: " << msg << "\n"; }

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  if (path != "-") return ReadFileToString(path);
  std::string data((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (std::cin.bad()) return absl::DataLossError("read stdin failed");
  return data;
}

absl::Status WriteStdout(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(STDOUT_FILENO, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write stdout");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status SplitKeyValue(const std::string& kv, const char* flag, std::string* k,
                           std::string* v) {
  size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(StrCat(flag, " ", Quote(kv), ": expected KEY=VALUE"));
  }
  *k = kv.substr(0, eq);
  *v = kv.substr(eq + 1);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ConvertDockerfile(const DumpLlbOptions& o) {
  llb::BuildOpts build;
  build.session_id = o.session_id;
  build.worker_platforms = {llb::DefaultPlatform()};
  std::string k, v;
  for (const std::string& kv : o.opts) {
    KILN_RETURN_IF_ERROR(SplitKeyValue(kv, "--opt", &k, &v));
    build.frontend_opts[k] = v;
  }
  for (const std::string& kv : o.build_args) {
    KILN_RETURN_IF_ERROR(SplitKeyValue(kv, "--build-arg", &k, &v));
    build.frontend_opts["build-arg:" + k] = v;
  }
  if (!o.target.empty()) build.frontend_opts["target"] = o.target;
  if (!o.platform.empty()) build.frontend_opts["platform"] = o.platform;

  std::map<std::string, std::string> locals = {{"context", o.context}, {"dockerfile", o.context}};
  if (!o.dockerfile.empty()) {
    size_t slash = o.dockerfile.rfind('/');
    locals["dockerfile"] = slash == std::string::npos ? "." : o.dockerfile.substr(0, slash + 1);
    build.frontend_opts["filename"] =
        slash == std::string::npos ? o.dockerfile : o.dockerfile.substr(slash + 1);
  }
  // Named local contexts (--opt context:NAME=local:DIR) read from DIR.
  for (const auto& [key, value] : build.frontend_opts) {
    if (key.rfind("context:", 0) == 0 && value.rfind("local:", 0) == 0) {
      locals[value.substr(6)] = value.substr(6);
    }
  }

  StaticImageResolver configs;
  for (const std::string& spec : o.image_configs) KILN_RETURN_IF_ERROR(configs.AddFromSpec(spec));
  SyntheticImageResolver synthetic(Note);
  FallbackImageResolver resolver({&configs, &synthetic});
  LocalFrontendClient client(locals, resolver);

  frontends::dockerfile::DockerfileFrontend frontend;
  KILN_ASSIGN_OR_RETURN(llb::FrontendResult result, frontend.Build(client, build));
  return llb::MarshalDefinition(result.definition);
}

absl::Status RunDumpLlb(const DumpLlbOptions& o) {
  if (o.format != "json" && o.format != "pb") {
    return absl::InvalidArgumentError(
        StrCat("--format ", Quote(o.format), ": expected json or pb"));
  }
  std::string definition;
  if (o.from_pb_set) {
    KILN_ASSIGN_OR_RETURN(definition, ReadAll(o.from_pb.empty() ? "-" : o.from_pb));
  } else {
    KILN_ASSIGN_OR_RETURN(definition, ConvertDockerfile(o));
  }
  if (o.format == "pb") {
    if (o.from_pb_set) {
      // Re-emit only what parses as a Definition.
      KILN_RETURN_IF_ERROR(llb::DumpJson(definition).status());
    }
    return WriteStdout(definition);
  }
  KILN_ASSIGN_OR_RETURN(std::string dump, llb::DumpJson(definition));
  return WriteStdout(dump);
}

}  // namespace

void AddDebugCommands(CLI::App& app, Context& ctx) {
  CLI::App* debug = app.add_subcommand("debug", "Debugging tools");
  debug->require_subcommand(1);

  auto o = std::make_shared<DumpLlbOptions>();
  CLI::App* dump = debug->add_subcommand(
      "dump-llb",
      "Convert a Dockerfile to LLB and print it, or print an LLB definition.\n"
      "The JSON form is one object per op, as `buildctl debug dump-llb` prints it; the pb form is\n"
      "the marshaled Definition that `buildctl build` and `buildctl debug dump-llb` read.\n"
      "Base images are resolved from --image-config files; any other image gets a synthetic\n"
      "config (linux/<host arch>, PATH only) and is not pinned to a digest (noted on stderr).\n"
      "Examples:\n"
      "  kilnctl debug dump-llb .\n"
      "  kilnctl debug dump-llb -f build/Dockerfile --build-arg V=1 --target app ctx/\n"
      "  kilnctl debug dump-llb --image-config alpine:3.18=alpine.json --format pb . > def.pb\n"
      "  kilnctl debug dump-llb --from-pb < def.pb");
  dump->add_option("--format", o->format, "Output format: json (default) or pb")
      ->check(CLI::IsMember({"json", "pb"}));
  dump->add_option("-f,--file", o->dockerfile,
                   "Dockerfile to convert (default: CONTEXT_DIR/Dockerfile)");
  dump->add_option("--opt", o->opts,
                   "Frontend option KEY=VALUE, as for buildctl --opt (filename, target,\n"
                   "build-arg:NAME, label:NAME, platform, no-cache, context:NAME, ...); repeatable")
      ->allow_extra_args(false);
  dump->add_option("--target", o->target, "Stage to build (frontend option target)");
  dump->add_option("--build-arg", o->build_args, "Build argument NAME=VALUE; repeatable")
      ->allow_extra_args(false);
  dump->add_option("--platform", o->platform, "Target platform, e.g. linux/arm64");
  dump->add_option("--image-config", o->image_configs,
                   "Use the image config in FILE for REF (REF=FILE; REF may carry @sha256:... to\n"
                   "pin that manifest digest); repeatable")
      ->allow_extra_args(false);
  dump->add_option("--session-id", o->session_id,
                   "Session id recorded in local sources (default: none, so each local source\n"
                   "gets a random local.unique id as with dockerfile2llb)");
  dump->add_option("--from-pb", o->from_pb,
                   "Do not convert: read a marshaled Definition from FILE (\"-\" or no value:\n"
                   "stdin) and dump it")
      ->expected(0, 1);
  dump->add_option("CONTEXT_DIR", o->context, "Build context directory (default: .)");
  dump->callback([o, dump, &ctx] {
    o->from_pb_set = dump->count("--from-pb") > 0;
    absl::Status st = RunDumpLlb(*o);
    if (!st.ok()) {
      std::cerr << "kilnctl: error: " << st.message() << "\n";
      ctx.exit_code = 1;
    }
  });
}

}  // namespace kiln::tools::kilnctl
