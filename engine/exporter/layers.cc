#include "engine/exporter/layers.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <set>

#include <unistd.h>

#include "base/status.h"
#include "base/strings.h"
#include "base/thread_pool.h"
#include "snapshotter/differ.h"
#include "snapshotter/sha256.h"

namespace kiln::engine {
namespace {

using snapshotter::Compression;

// The label engine/worker puts on snapshots it prepares (worker.cc).
constexpr char kDescriptionLabel[] = "kiln.dev/description";
constexpr char kUncompressedLabel[] = "containerd.io/uncompressed";
constexpr size_t kCopyChunk = 1 << 20;

// zstd in libzstd's multithreaded mode: compression leaves the tar thread (about 1.35x faster
// per layer at level 3 on 2 cores, same CPU time).  Its output is the same for any worker
// count >= 1 but differs from single-threaded mode, so the count is fixed: computed and
// converted layers, here and on any other machine, stay byte-identical.
int CompressorThreads(Compression c) { return c == Compression::kZstd ? 2 : 1; }

struct Outcome {
  LayerRecord record;
  ExportedLayer::Source source = ExportedLayer::Source::kReused;
};

// Runs identical layer work of concurrent exports once.
class InFlight {
 public:
  absl::StatusOr<Outcome> Do(const std::string& key,
                             const std::function<absl::StatusOr<Outcome>()>& fn) {
    std::promise<absl::StatusOr<Outcome>> promise;
    std::shared_future<absl::StatusOr<Outcome>> shared;
    bool owner = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = calls_.find(key);
      if (it != calls_.end()) {
        shared = it->second;
      } else {
        shared = promise.get_future().share();
        calls_.emplace(key, shared);
        owner = true;
      }
    }
    if (!owner) {
      absl::StatusOr<Outcome> r = shared.get();
      // The other export's work, not ours: it reused nothing we can claim as reused.
      if (r.ok()) r->source = ExportedLayer::Source::kReused;
      return r;
    }
    absl::StatusOr<Outcome> r = fn();
    promise.set_value(r);
    std::lock_guard<std::mutex> lock(mu_);
    calls_.erase(key);
    return r;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_future<absl::StatusOr<Outcome>>> calls_;
};

InFlight& LayerCalls() {
  static InFlight* calls = new InFlight();
  return *calls;
}

absl::StatusOr<Compression> CompressionOf(std::string_view media_type) {
  // BuildKit's Docker-typed zstd layers (oci-mediatypes=false) are zstd too.
  if (media_type == "application/vnd.docker.image.rootfs.diff.tar.zstd") return Compression::kZstd;
  return snapshotter::CompressionOfMediaType(media_type);
}

absl::StatusOr<std::vector<snapshotter::SnapshotInfo>> Chain(Worker& worker, std::string key) {
  std::vector<snapshotter::SnapshotInfo> chain;
  std::set<std::string> seen;
  while (!key.empty()) {
    if (!seen.insert(key).second) {
      return absl::DataLossError(StrCat("snapshot chain of ", Quote(key), " has a cycle"));
    }
    KILN_ASSIGN_OR_RETURN(snapshotter::SnapshotInfo info, worker.snapshots().Stat(key));
    if (info.kind != snapshotter::SnapshotKind::kCommitted) {
      return absl::FailedPreconditionError(
          StrCat("export: snapshot ", Quote(key), " is not committed"));
    }
    key = info.parent;
    chain.push_back(std::move(info));
  }
  std::reverse(chain.begin(), chain.end());
  return chain;
}

// Records whose blob is still stored with the recorded size (a pruned blob must not end up
// in a manifest) and whose compression Kiln knows.
absl::StatusOr<std::vector<LayerRecord>> LiveRecords(Worker& worker, const std::string& key) {
  KILN_ASSIGN_OR_RETURN(std::vector<LayerRecord> records, worker.images().Layers(key));
  std::vector<LayerRecord> live;
  for (LayerRecord& r : records) {
    if (!CompressionOf(r.blob.media_type).ok()) continue;
    auto info = worker.content().Info(r.blob.digest);
    if (!info.ok() || info->size != r.blob.size) continue;
    live.push_back(std::move(r));
  }
  return live;
}

std::optional<LayerRecord> Pick(const std::vector<LayerRecord>& records, Compression want,
                                bool exact_only) {
  for (const LayerRecord& r : records) {
    if (*CompressionOf(r.blob.media_type) == want) return r;
  }
  if (!exact_only && !records.empty()) return records.front();
  return std::nullopt;
}

std::string IngestRef(std::string_view what, const std::string& key) {
  static std::atomic<uint64_t> counter{0};
  return StrCat("export-", what, "-", key, "-", ::getpid(), "-", counter++);
}

// Recompresses a stored layer blob; its uncompressed bytes (and diffID) stay the same.
absl::StatusOr<LayerRecord> Convert(Worker& worker, const std::string& key, const LayerRecord& from,
                                    const LayerExportOptions& o) {
  snapshotter::ContentStore& store = worker.content();
  int level = o.level;
  if (level < 0) level = o.compression == Compression::kZstd ? 3 : 1;
  KILN_ASSIGN_OR_RETURN(
      auto compressor,
      snapshotter::Compressor::Create(o.compression, level, CompressorThreads(o.compression)));
  KILN_ASSIGN_OR_RETURN(auto reader, store.OpenReader(from.blob.digest));
  snapshotter::DecompressingSource plain(*reader, from.blob.size);
  std::string ref = IngestRef("convert", key);
  KILN_ASSIGN_OR_RETURN(auto writer, store.OpenWriter({ref, std::nullopt}));
  auto abort = [&](absl::Status s) {
    writer.reset();
    (void)store.AbortIngest(ref);
    return Annotate(s, StrCat("recompress layer ", from.blob.digest.str()));
  };
  snapshotter::Sha256State diff;
  std::string buf(kCopyChunk, '\0');
  for (;;) {
    if (absl::Status s = o.cancel.Check(); !s.ok()) return abort(s);
    auto n = plain.Read(buf.data(), buf.size());
    if (!n.ok()) return abort(n.status());
    if (*n == 0) break;
    diff.Update(buf.data(), *n);
    if (absl::Status s = compressor->Write(buf.data(), *n, *writer); !s.ok()) return abort(s);
  }
  if (absl::Status s = compressor->Finish(*writer); !s.ok()) return abort(s);
  if (plain.compressed_digest() != from.blob.digest || diff.Peek() != from.diff_id) {
    return abort(absl::DataLossError("stored blob does not match its layer record"));
  }
  LayerRecord out;
  out.diff_id = from.diff_id;
  out.blob.media_type = std::string(snapshotter::OciLayerMediaType(o.compression));
  out.blob.digest = writer->digest();
  out.blob.size = writer->offset();
  KILN_RETURN_IF_ERROR(
      writer->Commit(out.blob.digest, out.blob.size, {{kUncompressedLabel, out.diff_id.str()}}));
  return out;
}

// Diffs the snapshot against its parent into the content store.
absl::StatusOr<LayerRecord> Compute(Worker& worker, const snapshotter::SnapshotInfo& info,
                                    bool rewrite, const LayerExportOptions& o) {
  KILN_ASSIGN_OR_RETURN(ResultRef self, worker.RefFor(info.key));
  ResultRef parent = worker.EmptyResult();
  if (!info.parent.empty()) {
    KILN_ASSIGN_OR_RETURN(parent, worker.RefFor(info.parent));
  }
  KILN_ASSIGN_OR_RETURN(ActiveSnapshot lower, worker.View(parent));
  KILN_ASSIGN_OR_RETURN(ActiveSnapshot upper, worker.View(self));
  snapshotter::DiffOptions d;
  d.compression = o.compression;
  d.level = o.level;
  if (rewrite) d.source_date_epoch = o.rewrite_epoch;
  d.ref = IngestRef("diff", info.key);
  d.threads = CompressorThreads(o.compression);
  d.cancel = o.cancel;
  auto differ = snapshotter::NewDiffer(worker.content(), worker.TempRoot());
  KILN_ASSIGN_OR_RETURN(snapshotter::LayerDescriptor desc,
                        differ->Compare(lower.mounts(), upper.mounts(), d));
  LayerRecord out;
  out.blob.media_type = desc.media_type;
  out.blob.digest = desc.digest;
  out.blob.size = desc.size;
  out.diff_id = desc.diff_id;
  return out;
}

absl::StatusOr<ExportedLayer> ExportOne(Worker& worker, const snapshotter::SnapshotInfo& info,
                                        size_t index, const LayerExportOptions& o) {
  ExportedLayer out;
  out.snapshot_key = info.key;
  out.created = info.created;
  if (auto it = info.labels.find(kDescriptionLabel); it != info.labels.end()) {
    out.description = it->second;
  }
  KILN_ASSIGN_OR_RETURN(std::vector<LayerRecord> raw, LiveRecords(worker, info.key));
  std::string record_key = info.key;
  bool rewrite = false;
  if (o.rewrite_epoch) {
    bool immutable = index < o.immutable_diff_ids.size() &&
                     std::any_of(raw.begin(), raw.end(), [&](const LayerRecord& r) {
                       return r.diff_id == o.immutable_diff_ids[index];
                     });
    if (!immutable) {
      rewrite = true;
      record_key = RewrittenLayerKey(info.key, *o.rewrite_epoch);
    }
  }

  auto decide = [&](const std::vector<LayerRecord>& records) -> std::optional<LayerRecord> {
    return Pick(records, o.compression, /*exact_only=*/o.force);
  };
  std::optional<LayerRecord> reuse;
  if (rewrite) {
    KILN_ASSIGN_OR_RETURN(auto rewritten, LiveRecords(worker, record_key));
    reuse = decide(rewritten);
  } else {
    reuse = decide(raw);
  }
  Outcome outcome;
  if (reuse) {
    outcome.record = *reuse;
  } else {
    std::string call = StrCat(record_key, "|", snapshotter::CompressionName(o.compression));
    for (;;) {
      auto r = LayerCalls().Do(call, [&]() -> absl::StatusOr<Outcome> {
        // Another export may have recorded it meanwhile.
        KILN_ASSIGN_OR_RETURN(auto records, LiveRecords(worker, record_key));
        if (auto again = decide(records)) return Outcome{*again, ExportedLayer::Source::kReused};
        Outcome made;
        if (!records.empty()) {
          KILN_ASSIGN_OR_RETURN(made.record, Convert(worker, info.key, records.front(), o));
          made.source = ExportedLayer::Source::kConverted;
        } else {
          KILN_ASSIGN_OR_RETURN(made.record, Compute(worker, info, rewrite, o));
          made.source = ExportedLayer::Source::kComputed;
        }
        KILN_RETURN_IF_ERROR(worker.images().PutLayer(record_key, made.record));
        return made;
      });
      // A concurrent export that was cancelled is not our failure: try again ourselves.
      if (!r.ok() && absl::IsCancelled(r.status()) && !o.cancel.cancelled()) continue;
      KILN_RETURN_IF_ERROR_CTX(r.status(), StrCat("export layer of snapshot ", Quote(info.key)));
      outcome = *r;
      break;
    }
  }
  out.blob = outcome.record.blob;
  out.diff_id = outcome.record.diff_id;
  out.source = outcome.source;
  // The media type names the compression the bytes have; the manifest's flavour (OCI or
  // Docker) is the caller's business.
  KILN_ASSIGN_OR_RETURN(Compression c, CompressionOf(out.blob.media_type));
  out.blob.media_type = std::string(snapshotter::OciLayerMediaType(c));
  out.blob.annotations.clear();
  return out;
}

}  // namespace

std::string RewrittenLayerKey(const std::string& snapshot_key, int64_t epoch) {
  return StrCat(snapshot_key, "@sde=", epoch);
}

absl::StatusOr<std::vector<ExportedLayer>> ExportLayers(Worker& worker, const ResultRef& result,
                                                        const LayerExportOptions& options) {
  KILN_ASSIGN_OR_RETURN(auto chain, Chain(worker, SnapshotKeyOf(result)));
  std::vector<ExportedLayer> layers(chain.size());
  if (chain.empty()) return layers;
  // The first failure stops the other layers' work.
  CancelSource stop(options.cancel);
  LayerExportOptions o = options;
  o.cancel = stop.token();
  std::vector<std::future<absl::Status>> done;
  {
    ThreadPool pool(static_cast<size_t>(
        std::clamp<int>(options.parallelism, 1, static_cast<int>(chain.size()))));
    for (size_t i = 0; i < chain.size(); ++i) {
      done.push_back(pool.Submit([&, i]() -> absl::Status {
        absl::Status s = o.cancel.Check();
        if (s.ok()) {
          auto layer = ExportOne(worker, chain[i], i, o);
          if (layer.ok() && o.on_layer) o.on_layer(*layer);
          if (layer.ok()) layers[i] = *std::move(layer);
          s = layer.status();
        }
        if (!s.ok()) stop.Cancel("another layer of the export failed");
        return s;
      }));
    }
  }
  absl::Status first;
  for (auto& f : done) {
    absl::Status s = f.get();
    // Report the failure that stopped the others, not their cancellation.
    if (!s.ok() && (first.ok() || (absl::IsCancelled(first) && !absl::IsCancelled(s)))) first = s;
  }
  if (!first.ok() && options.cancel.cancelled()) return options.cancel.Check();
  KILN_RETURN_IF_ERROR(first);
  return layers;
}

}  // namespace kiln::engine
