// The layers of a build result: one blob per committed snapshot of its parent chain.
//
// A result's snapshot chain (worker.snapshots().Stat(key).parent, bottom to top) is its layer
// list: every build step committed one snapshot, and a snapshot's own changes relative to its
// parent are exactly one layer (BuildKit keeps a layer for every step, also when the step
// changed nothing: an empty diff is still a layer, as cache/blobs.go computes a blob per ref).
//
// For each snapshot, in parallel:
//   1. reuse: a LayerRecord of the worker's image store for that snapshot whose blob is still in
//      the content store, preferring the requested compression; without `force`, any other
//      compression Kiln reads is reused too (BuildKit reuses a ref's existing blob unless
//      force-compression);
//   2. convert: with `force` and a record of another compression, the stored blob is
//      decompressed and recompressed (the diffID stays, so base image layers keep theirs);
//   3. compute: otherwise the snapshot is diffed against its parent (snapshotter::Differ over
//      read-only views; with overlayfs this reads the snapshot's own upper directory) straight
//      into the content store.
// Converted and computed blobs are recorded (ImageStore::PutLayer), so exporting the same
// snapshot again costs nothing.
//
// rewrite-timestamp: with `rewrite_epoch`, file times later than the epoch are clamped to it.
// Such a blob no longer holds exactly the snapshot's changes, so it is recorded under the
// pseudo key "<snapshot>@sde=<epoch>" (never consulted for plain exports).  Layers whose
// diffID equals the base image's diffID at the same index (`immutable_diff_ids`) are kept as
// they are, as BuildKit does.
//
// Concurrent exports of one snapshot in this process compute it once.
//
// Thread-safety: ExportLayers may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/digest.h"
#include "base/oci.h"
#include "engine/solver/types.h"
#include "engine/worker/worker.h"
#include "snapshotter/compression.h"

namespace kiln::engine {

struct ExportedLayer {
  enum class Source { kReused, kConverted, kComputed };

  std::string snapshot_key;
  oci::Descriptor blob;  // media type: the OCI type of its compression
  Digest diff_id;
  std::string description;  // the step that made the snapshot
  snapshotter::Timestamp created;
  Source source = Source::kReused;
};

struct LayerExportOptions {
  snapshotter::Compression compression = snapshotter::Compression::kGzip;
  int level = -1;  // Kiln's level for the compressor (-1: gzip 1, zstd 3)
  bool force = false;
  std::optional<int64_t> rewrite_epoch;
  std::vector<Digest> immutable_diff_ids;
  int parallelism = 2;  // snapshots diffed at once
  CancelToken cancel;
  // Called once per layer as soon as its blob is in the content store, from export threads
  // (the image exporter starts uploading it while the other layers are still compressed).
  std::function<void(const ExportedLayer&)> on_layer;
};

// The layers of `result`, bottom first; empty for scratch.
absl::StatusOr<std::vector<ExportedLayer>> ExportLayers(Worker& worker, const ResultRef& result,
                                                        const LayerExportOptions& options);

// The record key layers rewritten for `epoch` are stored under.
std::string RewrittenLayerKey(const std::string& snapshot_key, int64_t epoch);

}  // namespace kiln::engine
