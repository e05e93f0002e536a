// LLB hot paths on a 10,000-op definition shaped like a big multi-stage Dockerfile build: 10
// stages of 1,000 ops each, alternating RUN (with a cache mount and a read-only bind of the build
// context) and COPY from the context, and every 100 ops a COPY --from an earlier stage (fan-in).
//
//   BM_BuildGraph           building the States (what a frontend does)
//   BM_MarshalDefinition    State::Marshal (op bytes + sha256 digests + metadata) and
//                           serializing the pb.Definition
//   BM_ReadAndValidate      parsing the marshaled bytes, hashing every op, validating the graph
//
// Run: build-*/benchmarks/llb_bench --benchmark_min_time=2
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "llb/definition.h"
#include "llb/llb.h"
#include "llb/validate.h"

namespace {

using namespace kiln::llb;

constexpr int kStages = 10;
constexpr int kOpsPerStage = 1000;

kiln::oci::Platform Amd64() {
  kiln::oci::Platform p;
  p.os = "linux";
  p.architecture = "amd64";
  return p;
}

State BuildGraph() {
  const State context = Local("context", {.session_id = "bench", .shared_key_hint = "context"});
  const CopyInfo copy{.follow_symlinks = true,
                      .copy_dir_contents_only = true,
                      .create_dest_path = true,
                      .allow_wildcard = true,
                      .allow_empty_wildcard = true};
  std::vector<State> stages;
  for (int s = 0; s < kStages; ++s) {
    State st =
        Image("docker.io/library/golang:1.21",
              {.constraints = Constraints().WithPlatform(Amd64()).WithCustomName("FROM golang")})
            .AddEnv("PATH", "/usr/local/go/bin:/usr/bin:/bin")
            .Dir("/src");
    for (int i = 0; i < kOpsPerStage; ++i) {
      const std::string n = std::to_string(s) + "/" + std::to_string(i);
      if (i % 100 == 99 && s > 0) {
        st = st.File(Copy(stages[s - 1], "/src/out", "/deps/" + n + "/", copy),
                     Constraints().WithCustomName("COPY --from=prev " + n));
      } else if (i % 2 == 0) {
        ExecInfo run;
        run.args = {"/bin/sh", "-c", "go build ./... # " + n};
        run.mounts = {
            {"/root/.cache/go-build", Scratch(), {.cache = MountOptions::Cache{"gocache"}}},
            {"/ctx", context, {.readonly = true, .selector = "/pkg"}}};
        run.constraints = Constraints().WithCustomName("RUN go build " + n);
        st = st.Run(run).Root();
      } else {
        st = st.File(Copy(context, "/file" + std::to_string(i), "./", copy),
                     Constraints().WithCustomName("COPY file " + n));
      }
    }
    stages.push_back(st);
  }
  return stages.back().SetMarshalDefaults(
      Constraints().WithPlatform(Amd64()).WithLocalUniqueID("bench"));
}

void BM_BuildGraph(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(BuildGraph());
  state.SetItemsProcessed(state.iterations() * kStages * kOpsPerStage);
}
BENCHMARK(BM_BuildGraph)->Unit(benchmark::kMillisecond);

void BM_MarshalDefinition(benchmark::State& state) {
  const State graph = BuildGraph();
  size_t ops = 0, bytes = 0;
  for (auto _ : state) {
    absl::StatusOr<pb::Definition> def = graph.Marshal();
    if (!def.ok()) state.SkipWithError(def.status().ToString().c_str());
    std::string wire = SerializeDeterministic(*def);
    ops = def->def_size();
    bytes = wire.size();
    benchmark::DoNotOptimize(wire);
  }
  state.counters["ops"] = static_cast<double>(ops);
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(state.iterations() * ops);
}
BENCHMARK(BM_MarshalDefinition)->Unit(benchmark::kMillisecond);

void BM_ReadAndValidate(benchmark::State& state) {
  const std::string wire = SerializeDeterministic(*BuildGraph().Marshal());
  size_t ops = 0;
  for (auto _ : state) {
    absl::StatusOr<ParsedDefinition> def = LoadDefinition(wire);
    if (!def.ok()) state.SkipWithError(def.status().ToString().c_str());
    ops = def->ops().size();
    benchmark::DoNotOptimize(def);
  }
  state.counters["ops"] = static_cast<double>(ops);
  state.SetBytesProcessed(state.iterations() * wire.size());
  state.SetItemsProcessed(state.iterations() * ops);
}
BENCHMARK(BM_ReadAndValidate)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
