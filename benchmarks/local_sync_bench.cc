// The local source's incremental sync on a generated build context of 5,000 files / 200 MB
// (60 directories, file sizes from 1 KiB to 120 KiB), through the real op:
//
//   BM_NoChangeCacheMap      GetCacheMap of a fresh local source op on an unchanged context:
//                            walk + stat of the client, index load, content digest (what a
//                            no-change rebuild pays before its cache hit)
//   BM_OneFileChangeCacheMap one file rewritten (new content, same size), then GetCacheMap:
//                            the walk, one copy into the mirror, syncfs, index write
//   BM_FirstSync             the first transfer into an empty mirror (full copy + sha256)
//   BM_ExecSnapshot          Exec after a cache miss: a committed snapshot hardlinked from the
//                            mirror
//
// Run as root (snapshots):  build/benchmarks/local_sync_bench [--benchmark_filter=...]
// KILN_BENCH_DIR picks where the context and state live (default /var/tmp); it must be one
// filesystem for hardlinks.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/llb_op.h"
#include "engine/ops/local_dirs.h"
#include "engine/ops/session.h"
#include "engine/solver/types.h"
#include "engine/worker/worker.h"

namespace kiln::engine {
namespace {

constexpr int kFiles = 5000;
constexpr int kDirs = 60;
constexpr int64_t kTotalBytes = 200ll << 20;

struct Env {
  TempDir dir;
  std::string context;
  std::unique_ptr<Worker> worker;
  std::shared_ptr<HostLocalDirs> dirs;
  int64_t bytes = 0;
  std::string error;
};

void WriteBytes(const std::string& path, size_t n, std::mt19937_64& rng) {
  std::string data(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&data[i], &v, std::min<size_t>(8, n - i));
  }
  (void)WriteFileAtomic(path, data, 0644);
}

void Init(Env* e) {
  {
    const char* base = std::getenv("KILN_BENCH_DIR");
    auto dir = TempDir::Create("kiln-local-bench-", base ? base : "/var/tmp");
    if (!dir.ok()) {
      e->error = dir.status().ToString();
      return;
    }
    e->dir = std::move(*dir);
    e->context = e->dir.path() + "/context";
    std::mt19937_64 rng(42);
    // Sizes around the mean, scaled so the total is 200 MB.
    std::vector<size_t> sizes(kFiles);
    std::uniform_int_distribution<size_t> dist(1 << 10, 120 << 10);
    int64_t sum = 0;
    for (auto& s : sizes) sum += static_cast<int64_t>(s = dist(rng));
    for (auto& s : sizes) s = static_cast<size_t>(static_cast<double>(s) * kTotalBytes / sum);
    for (int d = 0; d < kDirs; ++d) {
      (void)MakeDirs(StrCat(e->context, "/pkg", d / 10, "/mod", d));
    }
    for (int i = 0; i < kFiles; ++i) {
      int d = i % kDirs;
      WriteBytes(StrCat(e->context, "/pkg", d / 10, "/mod", d, "/file", i, ".dat"), sizes[i], rng);
      e->bytes += static_cast<int64_t>(sizes[i]);
    }
    WorkerOptions o;
    o.root = e->dir.path() + "/state";
    o.init_path = "/bin/true";  // no process runs here
    o.sync = false;
    auto w = Worker::Open(o);
    if (!w.ok()) {
      e->error = w.status().ToString();
      return;
    }
    e->worker = std::move(*w);
    e->dirs = std::make_shared<HostLocalDirs>(
        std::map<std::string, std::string>{{"context", e->context}});
  }
}

// Destroyed at exit: the worker closes first, then the temporary directory goes.
Env& Shared() {
  static Env env;
  static const bool initialized = (Init(&env), true);
  (void)initialized;
  return env;
}

LlbOp LocalOp(const std::string& unique) {
  LlbOp op;
  op.op.mutable_source()->set_identifier("local://context");
  (*op.op.mutable_source()->mutable_attrs())["local.unique"] = unique;
  op.digest = Digest::Sha256Of(op.op.SerializeAsString());
  return op;
}

OpContext Ctx(Env& e) {
  OpContext ctx;
  SessionGroup::Values v;
  v[kSessionLocalDirs] = std::shared_ptr<LocalDirs>(e.dirs);
  ctx.session = SessionGroup({std::make_shared<const SessionGroup::Values>(std::move(v))});
  return ctx;
}

absl::StatusOr<CacheMap> CacheMapOnce(Env& e, int n) {
  KILN_ASSIGN_OR_RETURN(auto op, NewSourceOp(LocalOp(StrCat(n)), OpEnv{e.worker.get(), nullptr}));
  return op->GetCacheMap(Ctx(e));
}

bool Ready(benchmark::State& state, Env& e) {
  if (!e.error.empty()) {
    state.SkipWithError(e.error.c_str());
    return false;
  }
  return true;
}

void BM_FirstSync(benchmark::State& state) {
  Env& e = Shared();
  if (!Ready(state, e)) return;
  int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    (void)RemoveAll(e.worker->LocalMirrorsDir());
    (void)MakeDirs(e.worker->LocalMirrorsDir(), 0700);
    state.ResumeTiming();
    auto cm = CacheMapOnce(e, ++n);
    if (!cm.ok()) state.SkipWithError(cm.status().ToString().c_str());
  }
  state.SetBytesProcessed(state.iterations() * e.bytes);
  state.counters["files"] = kFiles;
}

void BM_NoChangeCacheMap(benchmark::State& state) {
  Env& e = Shared();
  if (!Ready(state, e)) return;
  auto warm = CacheMapOnce(e, 0);
  if (!warm.ok()) return state.SkipWithError(warm.status().ToString().c_str());
  int64_t copied = e.dirs->stats().files_copied;
  int n = 0;
  for (auto _ : state) {
    auto cm = CacheMapOnce(e, ++n);
    if (!cm.ok() || cm->digest != warm->digest) {
      state.SkipWithError("no-change sync changed the key");
      break;
    }
  }
  state.counters["files_copied"] = static_cast<double>(e.dirs->stats().files_copied - copied);
  state.counters["files"] = kFiles;
}

void BM_OneFileChangeCacheMap(benchmark::State& state) {
  Env& e = Shared();
  if (!Ready(state, e)) return;
  if (auto warm = CacheMapOnce(e, 0); !warm.ok()) {
    return state.SkipWithError(warm.status().ToString().c_str());
  }
  const std::string victim = StrCat(e.context, "/pkg0/mod0/file0.dat");
  struct stat st;
  ::stat(victim.c_str(), &st);
  std::mt19937_64 rng(7);
  int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    WriteBytes(victim, static_cast<size_t>(st.st_size), rng);
    state.ResumeTiming();
    auto cm = CacheMapOnce(e, ++n);
    if (!cm.ok()) state.SkipWithError(cm.status().ToString().c_str());
  }
}

void BM_ExecSnapshot(benchmark::State& state) {
  Env& e = Shared();
  if (!Ready(state, e)) return;
  int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto op = NewSourceOp(LocalOp(StrCat("exec", ++n)), OpEnv{e.worker.get(), nullptr});
    if (!op.ok()) return state.SkipWithError(op.status().ToString().c_str());
    if (auto cm = (*op)->GetCacheMap(Ctx(e)); !cm.ok()) {
      return state.SkipWithError(cm.status().ToString().c_str());
    }
    state.ResumeTiming();
    auto r = (*op)->Exec(Ctx(e), {});
    if (!r.ok()) return state.SkipWithError(r.status().ToString().c_str());
  }
  state.counters["files"] = kFiles;
}

BENCHMARK(BM_FirstSync)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_NoChangeCacheMap)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_OneFileChangeCacheMap)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ExecSnapshot)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace
}  // namespace kiln::engine

BENCHMARK_MAIN();
