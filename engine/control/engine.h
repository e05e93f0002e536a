// Engine: one build request in, an exported result out.
//
// This is the layer `kilnctl` (in-process) and, later, the daemon's gRPC services call.  A Solve
// runs BuildKit's control flow:
//   1. a frontend (the Dockerfile frontend, passed in by the caller so the engine never depends
//      on frontends) turns the request into LLB through a FrontendClient backed by the engine
//      (image configs from the local store or a registry; files from the client's directories),
//      or the request carries a marshaled LLB definition itself;
//   2. the definition is validated and loaded into the solver's graph, and solved in a job whose
//      session holds the client's directories, secrets and SSH agents;
//   3. each requested exporter writes the result (image, oci, docker, local, tar).
// The build's cache hits and total steps come back with the exporter response.
//
// Thread-safety: Solve may be called concurrently; identical steps of concurrent builds run
// once.  The Engine must outlive every Solve.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "engine/ops/session.h"
#include "engine/solver/progress.h"
#include "engine/solver/solver.h"
#include "engine/worker/worker.h"
#include "llb/frontend.h"
#include "registry/credentials.h"
#include "registry/registry.h"

namespace kiln::engine {

struct EngineOptions {
  WorkerOptions worker;
  // Exec steps running at once (0: one per core).
  size_t max_parallelism = 0;
  // Registry access for FROM and pushes; nullopt: none (images come from the local store only).
  std::optional<registry::RegistryOptions> registry;
  // The daemon's own credentials (e.g. ~/.docker/config.json); a request may bring its own.
  std::shared_ptr<registry::CredentialSource> registry_credentials;
};

struct ExportRequest {
  std::string type;  // image, oci, docker, local, tar
  std::map<std::string, std::string> attrs;
  // Where file outputs go: a path ("-" = stdout) or a directory; empty uses attrs["dest"].
  std::string dest;
};

struct SolveRequest {
  std::string id;  // build id, for logs and errors
  // Either a frontend with its options...
  llb::Frontend* frontend = nullptr;
  std::map<std::string, std::string> frontend_opts;
  // ...or a marshaled pb.Definition.
  std::optional<std::string> definition;

  std::vector<ExportRequest> exports;
  bool no_cache = false;

  // What the client lends the build (all optional).
  std::shared_ptr<LocalDirs> local_dirs;
  std::shared_ptr<Secrets> secrets;
  std::shared_ptr<SshAgents> ssh;
  std::shared_ptr<registry::CredentialSource> credentials;
  std::string session_id;  // local.session of the LLB the frontend makes

  std::shared_ptr<ProgressSink> progress;
};

struct SolveResult {
  std::map<std::string, std::string> exporter_response;
  BuildStats stats;
  std::string image_config;  // the frontend's image config JSON ("" for raw LLB)
};

class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Open(EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  absl::StatusOr<SolveResult> Solve(const SolveRequest& request, const CancelToken& cancel);

  Worker& worker() { return *worker_; }
  // nullptr when registry access is off.
  registry::Registry* registry() { return registry_.get(); }

 private:
  Engine() = default;
  struct Solved;
  absl::StatusOr<Solved> RunFrontend(const SolveRequest& request, const CancelToken& cancel);
  absl::Status Export(const SolveRequest& request, const ResultRef& result, const Solved& solved,
                      SolveResult& out, const CancelToken& cancel);

  EngineOptions options_;
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<registry::Registry> registry_;
  std::unique_ptr<Solver> solver_;
};

}  // namespace kiln::engine
