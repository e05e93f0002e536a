// Layer export (walk + tar + diffID + compression + blob digest) and apply throughput over a
// generated tree (default 200 MB in 5,000 files, half text-like, half incompressible).
//
//   build-*/benchmarks/snapshotter_bench
//   KILN_BENCH_DIR=/var/tmp/kiln-bench KILN_BENCH_MB=200 KILN_BENCH_FILES=5000 ...
// The tree is generated once under $KILN_BENCH_DIR (default /tmp/kiln-bench) and reused; the
// uncompressed layer tar is written next to it (tree.tar) so benchmarks/export_baseline.sh
// can time sha256sum / zstd / gzip over exactly the same bytes.
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/strings.h"
#include "snapshotter/applier.h"
#include "snapshotter/differ.h"
#include "snapshotter/local_content_store.h"

namespace kiln::snapshotter {

std::string Env(const char* name, const char* def) {
  const char* v = std::getenv(name);
  return v ? v : def;
}
std::string BenchDir() { return Env("KILN_BENCH_DIR", "/tmp/kiln-bench"); }

namespace {

// CPU seconds of the whole process (all threads): on a shared, loaded machine this is a steadier
// measure of the work done than wall time.
double ProcessCpuSeconds() {
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void SetCpuRate(benchmark::State& state, int64_t bytes, double cpu_seconds) {
  state.counters["cpu_MBps"] = static_cast<double>(bytes) / 1048576.0 / std::max(cpu_seconds, 1e-9);
}

std::string TreeDir() { return BenchDir() + "/tree"; }

std::string Corpus(size_t size) {
  static const char* kWords[] = {"layer",  "snapshot", "overlay", "kiln",  "build",  "image",
                                 "tar",    "digest",   "content", "store", "the",    "of",
                                 "and",    "a",        "to",      "in",    "static", "const",
                                 "return", "if",       "for",     "while", "int",    "void"};
  std::mt19937_64 rng(42);
  std::string out;
  out.reserve(size);
  while (out.size() < size) {
    if ((out.size() / 65536) % 2 == 0) {  // text-like 64 KiB stretch
      out += kWords[rng() % (sizeof(kWords) / sizeof(*kWords))];
      out.push_back(rng() % 8 == 0 ? '\n' : ' ');
    } else {  // incompressible 64 KiB stretch
      uint64_t r = rng();
      out.append(reinterpret_cast<const char*>(&r), 8);
    }
  }
  out.resize(size);
  return out;
}

// Generates the tree once; returns its total file bytes.
int64_t EnsureTree() {
  static int64_t total = [] {
    const int64_t mb = std::stoll(Env("KILN_BENCH_MB", "200"));
    const int files = std::stoi(Env("KILN_BENCH_FILES", "5000"));
    std::string marker = StrCat(BenchDir(), "/tree-", mb, "-", files, ".done");
    constexpr int64_t kCorpus = 64 << 20;
    std::mt19937_64 rng(7);
    // Sizes: log-uniform-ish; scaled so they sum to the target.
    std::vector<int64_t> sizes(files);
    double sum = 0;
    for (auto& s : sizes) {
      s = static_cast<int64_t>(std::exp2(8 + static_cast<double>(rng() % 1400) / 100.0));
      sum += static_cast<double>(s);
    }
    int64_t target = mb << 20, acc = 0;
    for (auto& s : sizes) {
      s = std::max<int64_t>(
          1, static_cast<int64_t>(static_cast<double>(s) * static_cast<double>(target) / sum));
      s = std::min<int64_t>(s, kCorpus - 1);
      acc += s;
    }
    if (::access(marker.c_str(), F_OK) == 0) return acc;
    std::string corpus = Corpus(kCorpus);
    (void)RemoveAll(TreeDir());
    for (int i = 0; i < files; ++i) {
      std::string dir = StrCat(TreeDir(), "/d", i % 50, "/s", i % 7);
      if (!MakeDirs(dir).ok()) std::abort();
      size_t off = static_cast<size_t>(rng() % (corpus.size() - static_cast<size_t>(sizes[i])));
      if (!WriteFileAtomic(StrCat(dir, "/f", i), std::string_view(corpus).substr(off, sizes[i]))
               .ok())
        std::abort();
    }
    // Keep the uncompressed layer for the baseline script.
    StringSink unused;
    DiffOptions opts;
    opts.compression = Compression::kNone;
    auto tar_sink = FdSink(
        UniqueFd(::open((BenchDir() + "/tree.tar").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644)));
    if (!WriteLayer({DiffSource::Kind::kTreeCompare, "", TreeDir()}, tar_sink, opts).ok())
      std::abort();
    (void)WriteFileAtomic(marker, "");
    return acc;
  }();
  return total;
}

void BM_Export(benchmark::State& state, Compression c, int level) {
  EnsureTree();
  DiffOptions opts;
  opts.compression = c;
  opts.level = level;
  int64_t bytes = 0, out = 0;
  double cpu0 = ProcessCpuSeconds();
  for (auto _ : state) {
    NullSink sink;
    auto d = WriteLayer({DiffSource::Kind::kTreeCompare, "", TreeDir()}, sink, opts);
    if (!d.ok()) state.SkipWithError(std::string(d.status().message()).c_str());
    bytes += d->uncompressed_size;
    out = d->size;
  }
  SetCpuRate(state, bytes, ProcessCpuSeconds() - cpu0);
  state.SetBytesProcessed(bytes);
  state.counters["ratio"] = static_cast<double>(bytes / std::max<int64_t>(1, state.iterations())) /
                            static_cast<double>(std::max<int64_t>(1, out));
}

// Into a real content store: includes the ingest file write, fsync, verify and rename.
void BM_ExportToStore(benchmark::State& state, Compression c, int level) {
  EnsureTree();
  auto dir = TempDir::Create("kiln-bench-store-", BenchDir());
  auto store = LocalContentStore::Open(dir->path());
  DiffOptions opts;
  opts.compression = c;
  opts.level = level;
  int64_t bytes = 0;
  for (auto _ : state) {
    auto d = WriteLayerToStore({DiffSource::Kind::kTreeCompare, "", TreeDir()}, **store, opts);
    if (!d.ok()) state.SkipWithError(std::string(d.status().message()).c_str());
    bytes += d->uncompressed_size;
    state.PauseTiming();
    (void)(*store)->Delete(d->digest);
    state.ResumeTiming();
  }
  state.SetBytesProcessed(bytes);
}

void BM_Apply(benchmark::State& state, Compression c) {
  EnsureTree();
  DiffOptions opts;
  opts.compression = c;
  StringSink blob;  // the compressed layer in memory: apply measures decompress + extract
  auto d = WriteLayer({DiffSource::Kind::kTreeCompare, "", TreeDir()}, blob, opts);
  if (!d.ok()) {
    state.SkipWithError("diff failed");
    return;
  }
  int64_t bytes = 0;
  // Fresh targets, removed only when the program ends: ext4 makes creating thousands of files
  // right after deleting thousands very slow (its allocator skips inodes freed in the last
  // 60-360 s: `recently_deleted`), which would measure the benchmark's own churn.  GNU tar
  // shows the same effect (0.5 s -> 7 s for this tree right after an rm -rf).
  static int variant = 0;
  std::string targets = StrCat(BenchDir(), "/apply/", variant++);
  int n = 0;
  double cpu = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::string target = StrCat(targets, "/", n++);
    (void)MakeDirs(target);
    StringSource src(blob.out);
    double cpu0 = ProcessCpuSeconds();
    state.ResumeTiming();
    auto r = ApplyLayer(target, src, {});
    state.PauseTiming();
    cpu += ProcessCpuSeconds() - cpu0;
    state.ResumeTiming();
    if (!r.ok()) state.SkipWithError(std::string(r.status().message()).c_str());
    bytes += r->uncompressed_size;
  }
  SetCpuRate(state, bytes, cpu);
  state.SetBytesProcessed(bytes);
}

BENCHMARK_CAPTURE(BM_Export, none, Compression::kNone, 0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Export, gzip_isal1, Compression::kGzip, 1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Export, zstd1, Compression::kZstd, 1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Export, zstd3, Compression::kZstd, 3)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_ExportToStore, gzip_isal1, Compression::kGzip, 1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Apply, none, Compression::kNone)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Apply, gzip, Compression::kGzip)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Apply, zstd, Compression::kZstd)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace kiln::snapshotter

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // export_baseline.sh keeps them until after its own `tar -x` runs (see BM_Apply).
  if (kiln::snapshotter::Env("KILN_BENCH_KEEP_APPLY", "") != "1") {
    (void)kiln::RemoveAll(kiln::snapshotter::BenchDir() + "/apply");
  }
  return 0;
}
