// Dockerfile frontend hot paths on a generated 500-instruction Dockerfile: 10 stages of 50
// instructions mixing ARG/ENV/LABEL/WORKDIR/USER/EXPOSE (config only), RUN (shell form, some
// with cache/bind/secret mounts and heredocs), COPY (context, --from an earlier stage, --link,
// --chown), ADD of a URL, and variable expansion in most words.
//
//   BM_ParseDockerfile     text -> AST -> typed instructions (parser + instructions)
//   BM_ConvertDockerfile   Convert(): stages, arguments, base image resolution (an in-memory
//                          client), dispatch of every instruction; no marshaling
//   BM_ConvertAndMarshal   Convert() then State::Marshal (op bytes, digests, source map)
//
// Run: build-*/benchmarks/dockerfile_bench --benchmark_min_time=2
#include <string>

#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "benchmark/benchmark.h"
#include "frontends/dockerfile/convert.h"
#include "frontends/dockerfile/instructions.h"

namespace {

using namespace kiln;
using namespace kiln::frontends::dockerfile;

constexpr int kStages = 10;
constexpr int kPerStage = 50;  // instructions per stage, FROM included

std::string Instruction(int stage, int i) {
  switch (i % 12) {
    case 0:
      return StrCat("ARG V", i, "=value-", stage, "-", i);
    case 1:
      return StrCat("ENV E", i, "=${V", i - 1, "} PATH=/opt/s", stage, "/bin:$PATH");
    case 2:
      return StrCat("RUN echo \"building $E", i - 1, "\" && make -C /src/s", stage, " target", i);
    case 3:
      return StrCat("COPY --chown=1000:1000 src/s", stage, "/f", i, ".txt ./data/");
    case 4:
      return StrCat("WORKDIR /work/s", stage, "/d", i);
    case 5:
      return StrCat(
          "RUN --mount=type=cache,target=/root/.cache/s", stage,
          " --mount=type=bind,source=go.mod,target=/src/go.mod --mount=type=secret,id=tok", i,
          " go build ./...");
    case 6:
      return StrCat("LABEL l", i, "=\"stage ", stage, "\" build=$V", i - 6);
    case 7:
      return stage > 0 ? StrCat("COPY --from=s", stage - 1, " /work /prev/s", stage - 1, "/", i)
                       : StrCat("COPY a", i, " b", i, " /dst/");
    case 8:
      return StrCat("RUN <<EOF\nset -e\necho heredoc ", i, "\nEOF");
    case 9:
      return StrCat("COPY --link conf/c", i, ".conf /etc/app/");
    case 10:
      return StrCat("EXPOSE ", 8000 + i, "/tcp");
    default:
      return StrCat("ADD https://example.com/s", stage, "/artifact-", i, ".tar.gz /downloads/");
  }
}

std::string GenerateDockerfile() {
  std::string out = "ARG BASE=busybox\n";
  for (int s = 0; s < kStages; ++s) {
    StrAppend(&out, "FROM ${BASE}:1.", s, " AS s", s, "\n");
    for (int i = 1; i < kPerStage; ++i) StrAppend(&out, Instruction(s, i), "\n");
  }
  return out;
}

class MemoryClient : public llb::FrontendClient {
 public:
  absl::StatusOr<llb::ResolvedImage> ResolveImageConfig(
      const std::string& ref, const std::optional<oci::Platform>& platform,
      llb::ResolveMode mode) override {
    llb::ResolvedImage r;
    r.ref = ref;
    r.digest = Digest::Sha256Of(ref);
    r.config_json =
        R"({"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin"],)"
        R"("WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:)" +
        std::string(64, 'a') + R"("]}})";
    return r;
  }
  absl::StatusOr<std::string> ReadFile(const std::string&, const std::string& path) override {
    return absl::NotFoundError(path);
  }
};

ConvertOptions Options(const std::string& text) {
  ConvertOptions o;
  o.session_id = "bench";
  o.source_map = llb::SourceMap::Create("Dockerfile", text);
  int id = 0;
  o.new_id = [id]() mutable { return StrCat("pg", ++id); };
  return o;
}

void BM_ParseDockerfile(benchmark::State& state) {
  const std::string text = GenerateDockerfile();
  for (auto _ : state) {
    absl::StatusOr<Dockerfile> df = ParseDockerfile(text);
    if (!df.ok()) state.SkipWithError(std::string(df.status().message()).c_str());
    benchmark::DoNotOptimize(df);
  }
  state.counters["instructions"] = kStages * kPerStage;
  state.SetBytesProcessed(state.iterations() * text.size());
}
BENCHMARK(BM_ParseDockerfile)->Unit(benchmark::kMillisecond);

void BM_ConvertDockerfile(benchmark::State& state) {
  const std::string text = GenerateDockerfile();
  MemoryClient client;
  for (auto _ : state) {
    absl::StatusOr<ConvertResult> r = Convert(text, Options(text), client);
    if (!r.ok()) state.SkipWithError(std::string(r.status().message()).c_str());
    benchmark::DoNotOptimize(r);
  }
  state.counters["instructions"] = kStages * kPerStage;
}
BENCHMARK(BM_ConvertDockerfile)->Unit(benchmark::kMillisecond);

void BM_ConvertAndMarshal(benchmark::State& state) {
  const std::string text = GenerateDockerfile();
  MemoryClient client;
  size_t ops = 0;
  for (auto _ : state) {
    absl::StatusOr<ConvertResult> r = Convert(text, Options(text), client);
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      break;
    }
    absl::StatusOr<pb::Definition> def = r->state.Marshal();
    if (!def.ok()) state.SkipWithError(std::string(def.status().message()).c_str());
    ops = def.ok() ? def->def_size() : 0;
    benchmark::DoNotOptimize(def);
  }
  state.counters["instructions"] = kStages * kPerStage;
  state.counters["ops"] = static_cast<double>(ops);
}
BENCHMARK(BM_ConvertAndMarshal)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
