#include "engine/control/engine.h"

#include "absl/strings/numbers.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/control/frontend_client.h"
#include "engine/control/internal_step.h"
#include "engine/exporter/exporter.h"
#include "engine/ops/image_resolver.h"
#include "engine/ops/llb_op.h"
#include "engine/ops/load_definition.h"
#include "engine/ops/mounts.h"
#include "engine/ops/resolver.h"
#include "llb/dump.h"

namespace kiln::engine {

struct Engine::Solved {
  std::string definition;    // marshaled pb.Definition
  std::string image_config;  // "" for raw LLB
  std::optional<int64_t> source_date_epoch;
};

namespace {

// BuildKit's frontends pass SOURCE_DATE_EPOCH as a build arg; the exporters clamp times to it.
absl::StatusOr<std::optional<int64_t>> SourceDateEpoch(
    const std::map<std::string, std::string>& opts) {
  auto it = opts.find("build-arg:SOURCE_DATE_EPOCH");
  if (it == opts.end() || it->second.empty()) return std::nullopt;
  int64_t v = 0;
  if (!absl::SimpleAtoi(ToAbsl(it->second), &v) || v < 0) {
    return absl::InvalidArgumentError(
        StrCat("invalid SOURCE_DATE_EPOCH ", Quote(it->second), ": expected seconds since 1970"));
  }
  return v;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(EngineOptions options) {
  std::unique_ptr<Engine> e(new Engine());
  e->options_ = std::move(options);
  KILN_ASSIGN_OR_RETURN(e->worker_, Worker::Open(e->options_.worker));
  if (e->options_.registry) {
    e->registry_ = std::make_unique<registry::Registry>(*e->options_.registry,
                                                        e->options_.registry_credentials);
  }
  SolverOptions so;
  so.max_parallel_exec = e->options_.max_parallelism;
  e->solver_ =
      std::make_unique<Solver>(e->worker_->cache_storage(), e->worker_->result_loader(), so);
  return e;
}

Engine::~Engine() {
  // The solver's jobs hold results, which reference the worker's snapshots.
  solver_.reset();
  registry_.reset();
  worker_.reset();
}

absl::StatusOr<Engine::Solved> Engine::RunFrontend(const SolveRequest& request,
                                                   const CancelToken& cancel) {
  if (request.definition) return Solved{*request.definition, ""};
  if (!request.frontend) {
    return absl::InvalidArgumentError("solve: the request has neither a frontend nor a definition");
  }
  ImageResolver resolver(worker_.get(), registry_.get());
  EngineFrontendClient client(worker_.get(), &resolver, request.local_dirs, request.credentials,
                              request.progress, cancel);
  llb::BuildOpts opts;
  opts.session_id = request.session_id;
  opts.frontend_opts = request.frontend_opts;
  if (request.no_cache && !opts.frontend_opts.count("no-cache"))
    opts.frontend_opts["no-cache"] = "";
  opts.worker_platforms = {oci::HostPlatform()};
  KILN_ASSIGN_OR_RETURN(llb::FrontendResult result, request.frontend->Build(client, opts));
  Solved out;
  KILN_ASSIGN_OR_RETURN(out.source_date_epoch, SourceDateEpoch(request.frontend_opts));
  out.definition = llb::MarshalDefinition(result.definition);
  out.image_config = result.image_config_json;
  if (out.image_config.empty()) {
    auto it = result.metadata.find("containerimage.config");
    if (it != result.metadata.end()) out.image_config = it->second;
  }
  return out;
}

absl::StatusOr<SolveResult> Engine::Solve(const SolveRequest& request, const CancelToken& cancel) {
  CancelSource build_cancel(cancel);
  KILN_ASSIGN_OR_RETURN(Solved solved, RunFrontend(request, build_cancel.token()));

  LoadOptions load;
  load.ignore_cache = request.no_cache;
  KILN_ASSIGN_OR_RETURN(LoadedDefinition graph, LoadDefinitionBytes(solved.definition, load));
  KILN_RETURN_IF_ERROR(CacheMounts::ForWorker(*worker_).Reset(graph.no_cache_mount_ids));

  OpEnv env{.worker = worker_.get(), .registry = registry_.get()};
  JobOptions job_options;
  job_options.id = request.id;
  job_options.resolver = MakeResolver(env);
  job_options.progress = request.progress;
  job_options.ignore_cache = request.no_cache;
  if (request.local_dirs) job_options.values[kSessionLocalDirs] = request.local_dirs;
  if (request.secrets) job_options.values[kSessionSecrets] = request.secrets;
  if (request.ssh) job_options.values[kSessionSsh] = request.ssh;
  if (request.credentials) job_options.values[kSessionRegistryAuth] = request.credentials;
  job_options.values[kSessionId] = request.session_id;
  std::unique_ptr<Job> job = solver_->NewJob(std::move(job_options));

  SolveResult out;
  out.image_config = solved.image_config;
  KILN_ASSIGN_OR_RETURN(ResultRef result,
                        solver_->Build(*job, graph.target, build_cancel.token(), &out.stats));
  KILN_RETURN_IF_ERROR(Export(request, result, solved, out, build_cancel.token()));
  return out;
}

absl::Status Engine::Export(const SolveRequest& request, const ResultRef& result,
                            const Solved& solved, SolveResult& out, const CancelToken& cancel) {
  ExporterEnv env;
  env.worker = worker_.get();
  env.registry = registry_.get();
  if (options_.registry) env.registry_options = &*options_.registry;
  env.registry_credentials = options_.registry_credentials;
  for (const ExportRequest& req : request.exports) {
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<Exporter> exporter,
                          NewExporter(req.type, req.attrs, env));
    InternalStep step(request.progress.get(), exporter->Name());
    ExportInput in;
    in.result = result;
    in.image_config = solved.image_config;
    in.source_date_epoch = solved.source_date_epoch;
    if (auto image = oci::DecodeImage(solved.image_config);
        image.ok() && !image->platform.architecture.empty()) {
      in.platform = image->platform;
    }
    in.credentials = request.credentials;
    in.progress = [&step](const StatusUpdate& update) { step.Status(update); };
    auto response = exporter->Export(in, ExportTarget{.path = req.dest}, cancel);
    if (!response.ok()) {
      step.Fail(response.status());
      return Annotate(response.status(), StrCat("export ", req.type));
    }
    for (auto& [k, v] : *response) out.exporter_response[k] = v;
  }
  return absl::OkStatus();
}

}  // namespace kiln::engine
