// kilnctl build: buildctl's build command, running the engine in-process.
//
//   kilnctl build --frontend dockerfile.v0 --local context=. --local dockerfile=.
//       --opt target=app --output type=oci,dest=out.tar --progress plain
//   kilnctl build --output type=local,dest=out < definition.pb     (raw LLB, no frontend)
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>
#include <signal.h>
#include <unistd.h>

#include "absl/strings/escaping.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/local_dirs.h"
#include "frontends/dockerfile/frontend.h"
#include "tools/kilnctl/client_session.h"
#include "tools/kilnctl/commands.h"
#include "tools/kilnctl/engine_setup.h"
#include "tools/kilnctl/progress_ui.h"

namespace kiln::tools::kilnctl {
namespace {

struct BuildFlags {
  std::string frontend;
  std::vector<std::string> locals;
  std::vector<std::string> opts;
  std::vector<std::string> outputs;
  std::vector<std::string> secrets;
  std::vector<std::string> ssh;
  bool no_cache = false;
  std::string progress = "auto";
  std::string metadata_file;
  std::vector<std::string> registry_auth;
  std::vector<std::string> registry_tokens;
};

std::string RandomId() {
  std::random_device rd;
  uint64_t a = (uint64_t(rd()) << 32) | rd();
  uint64_t b = (uint64_t(rd()) << 32) | rd();
  return HexEncode(&a, sizeof(a)) + HexEncode(&b, sizeof(b));
}

absl::StatusOr<std::map<std::string, std::string>> ParseKeyValues(
    const std::vector<std::string>& flags, const char* flag) {
  std::map<std::string, std::string> out;
  for (const std::string& kv : flags) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(StrCat(flag, " ", Quote(kv), ": expected KEY=VALUE"));
    }
    out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

absl::StatusOr<std::vector<engine::ExportRequest>> ParseOutputs(
    const std::vector<std::string>& flags) {
  std::vector<engine::ExportRequest> out;
  for (const std::string& flag : flags) {
    KILN_ASSIGN_OR_RETURN(auto attrs, ParseCsvAttrs(flag, "--output"));
    auto type = attrs.find("type");
    if (type == attrs.end()) {
      return absl::InvalidArgumentError(StrCat("--output ", Quote(flag), ": type is required"));
    }
    engine::ExportRequest req;
    req.type = type->second;
    attrs.erase(type);
    req.attrs = std::move(attrs);
    out.push_back(std::move(req));
  }
  return out;
}

// buildctl's metadata file: the exporter response, with base64-encoded JSON values decoded.
nlohmann::json MetadataJson(const engine::SolveResult& result) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : result.exporter_response) {
    std::string decoded;
    if (absl::Base64Unescape(v, &decoded)) {
      nlohmann::json parsed = nlohmann::json::parse(decoded, nullptr, false);
      if (!parsed.is_discarded() && (parsed.is_object() || parsed.is_array())) {
        j[k] = parsed;
        continue;
      }
    }
    j[k] = v;
  }
  j["kiln.build.steps.total"] = result.stats.total;
  j["kiln.build.steps.cached"] = result.stats.cached;
  return j;
}

// Cancels the build on SIGINT/SIGTERM.  The signals are blocked in this thread before any other
// starts, so every thread inherits the mask, and one thread waits for them.
class SignalCanceller {
 public:
  explicit SignalCanceller(CancelSource& source) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    thread_ = std::thread([set, &source] {
      int sig = 0;
      if (sigwait(&set, &sig) == 0 && sig != SIGUSR1) source.Cancel("interrupted by a signal");
    });
  }
  ~SignalCanceller() {
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }

 private:
  std::thread thread_;
};

absl::Status RunBuild(const Context& ctx, const BuildFlags& flags) {
  engine::SolveRequest req;
  req.id = RandomId();
  req.session_id = RandomId();
  req.no_cache = flags.no_cache;
  KILN_ASSIGN_OR_RETURN(auto locals, ParseKeyValues(flags.locals, "--local"));
  for (auto& [name, dir] : locals) {
    if (!std::filesystem::is_directory(dir)) {
      return absl::InvalidArgumentError(StrCat("--local ", name, "=", dir, ": not a directory"));
    }
  }
  req.local_dirs = std::make_shared<engine::HostLocalDirs>(locals);
  KILN_ASSIGN_OR_RETURN(req.frontend_opts, ParseKeyValues(flags.opts, "--opt"));
  KILN_ASSIGN_OR_RETURN(req.exports, ParseOutputs(flags.outputs));
  KILN_ASSIGN_OR_RETURN(req.secrets, FlagSecrets::FromFlags(flags.secrets));
  KILN_ASSIGN_OR_RETURN(req.ssh, FlagSsh::FromFlags(flags.ssh));
  KILN_ASSIGN_OR_RETURN(req.credentials,
                        RequestCredentials(ctx, flags.registry_auth, flags.registry_tokens));

  frontends::dockerfile::DockerfileFrontend dockerfile;
  if (flags.frontend == "dockerfile.v0") {
    req.frontend = &dockerfile;
  } else if (flags.frontend.empty()) {
    if (::isatty(STDIN_FILENO)) {
      return absl::InvalidArgumentError(
          "no --frontend given and stdin is a terminal: pipe a marshaled LLB definition in, or "
          "use --frontend dockerfile.v0");
    }
    std::string def((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    req.definition = std::move(def);
  } else {
    return absl::InvalidArgumentError(
        StrCat("--frontend ", Quote(flags.frontend), ": only dockerfile.v0 is built in"));
  }

  // Before any thread starts, so they all inherit the blocked signals.
  CancelSource cancel;
  SignalCanceller signals(cancel);
  KILN_ASSIGN_OR_RETURN(req.progress, NewProgressSink(flags.progress, stderr));
  KILN_ASSIGN_OR_RETURN(auto engine, OpenEngine(ctx));
  auto result = engine->Solve(req, cancel.token());
  FinishProgress(*req.progress);
  if (!result.ok()) return result.status();

  std::fprintf(stderr, "kilnctl: %d/%d steps cached\n", result->stats.cached, result->stats.total);
  auto digest = result->exporter_response.find("containerimage.digest");
  if (digest != result->exporter_response.end()) {
    std::fprintf(stderr, "kilnctl: image digest %s\n", digest->second.c_str());
  }
  if (!flags.metadata_file.empty()) {
    KILN_RETURN_IF_ERROR(
        WriteFileAtomic(flags.metadata_file, MetadataJson(*result).dump(2) + "\n", 0644));
  }
  return absl::OkStatus();
}

}  // namespace

void AddBuildCommands(CLI::App& app, Context& ctx) {
  auto flags = std::make_shared<BuildFlags>();
  CLI::App* build = app.add_subcommand("build", "Build an image (buildctl build flags)");
  build->add_option("--frontend", flags->frontend,
                    "Frontend (dockerfile.v0); without one, read marshaled LLB from stdin");
  build->add_option("--local", flags->locals, "Client directory NAME=DIR (context, dockerfile)");
  build->add_option("--opt", flags->opts,
                    "Frontend option KEY=VALUE (filename, target, build-arg:K=V, platform, ...)");
  build->add_option("-o,--output", flags->outputs,
                    "Output type=image|oci|docker|local|tar[,dest=PATH][,name=...][,push=true]...");
  build->add_option("--secret", flags->secrets, "Secret id=ID[,src=FILE|env=VAR]");
  build->add_option("--ssh", flags->ssh, "SSH agent to forward: default or ID=SOCKET");
  build->add_flag("--no-cache", flags->no_cache, "Do not use the build cache");
  build->add_option("--progress", flags->progress, "auto, tty, plain, rawjson or quiet")
      ->capture_default_str();
  build->add_option("--metadata-file", flags->metadata_file,
                    "Write the build's result metadata (JSON) to this file");
  AddRegistryCredentialFlags(*build, flags->registry_auth, flags->registry_tokens);
  build->callback([&ctx, flags] { Report(ctx, RunBuild(ctx, *flags)); });
}

}  // namespace kiln::tools::kilnctl
