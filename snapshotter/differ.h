// Layer diff: turns the changes of a snapshot into an OCI layer blob in one streaming pass.
//
// Two ways to find the changes, with the same output format:
//  - from an overlay upper directory (the fast path): entries are emitted as they are, 0/0
//    character devices become `.wh.<name>` and directories with trusted.overlay.opaque=y (or
//    user.overlay.opaque=y) get a `.wh..wh..opq` entry right after them.  The snapshotter
//    mounts with redirect_dir=off, index=off, metacopy=off, so an upper directory never
//    depends on its lowers.
//  - tree compare (naive snapshotter, any non-overlay case): lower and upper are two plain
//    trees; entries only in upper or whose metadata (type, mode, owner, size, mtime, link
//    target, device, xattrs) or - when the mtime has no sub-second part - content differ are
//    emitted; entries only in lower become `.wh.<name>`.  Parent directories of a change are
//    emitted too, as in an overlay upper.
//
// The stream: walk (sorted, depth first) -> tar (tar_writer.h; hardlinks within the diff as
// tar hardlinks, numeric ids, mtimes optionally clamped to SOURCE_DATE_EPOCH) -> diffID hash
// [thread 1] | compression -> blob digest -> sink [thread 2], with a bounded pipe of 1 MiB
// chunks between them.  Nothing is held in memory beyond those chunks.  Identical trees give
// byte-identical blobs.
//
// Thread-safety: functions are independent; a Differ may be used from several threads.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/digest.h"
#include "snapshotter/byte_stream.h"
#include "snapshotter/compression.h"
#include "snapshotter/content_store.h"
#include "snapshotter/mount.h"

namespace kiln::snapshotter {

struct DiffOptions {
  Compression compression = Compression::kGzip;
  int level = -1;   // -1: gzip 1 (ISA-L), zstd 3
  int threads = 1;  // zstd worker threads
  // "rewrite-timestamp": mtimes later than this are clamped to it.
  std::optional<int64_t> source_date_epoch;
  // Content-store ingest ref; default derived from a process-unique counter.
  std::string ref;
  Labels labels;  // extra labels on the committed blob
  CancelToken cancel;
};

struct LayerDescriptor {
  Digest digest;  // of the blob as stored
  int64_t size = 0;
  Digest diff_id;  // sha256 of the uncompressed tar
  int64_t uncompressed_size = 0;
  std::string media_type;
};

// Where the changes come from.
struct DiffSource {
  enum class Kind { kOverlayUpper, kTreeCompare } kind = Kind::kTreeCompare;
  std::string lower;  // tree compare only; "" = empty lower
  std::string upper;
};

// Writes the layer for `source` to `out`.
absl::StatusOr<LayerDescriptor> WriteLayer(const DiffSource& source, ByteSink& out,
                                           const DiffOptions& options);

// Writes the layer into `store` (committed under its computed digest, labelled with
// containerd.io/uncompressed = diffID).
absl::StatusOr<LayerDescriptor> WriteLayerToStore(const DiffSource& source, ContentStore& store,
                                                  const DiffOptions& options);

// containerd's diff.Comparer: the layer that turns `lower` into `upper` (mount descriptions
// from a Snapshotter, e.g. View(parent) and Prepare/View(child)).
class Differ {
 public:
  Differ() = default;
  virtual ~Differ() = default;
  Differ(const Differ&) = delete;
  Differ& operator=(const Differ&) = delete;

  virtual absl::StatusOr<LayerDescriptor> Compare(const std::vector<Mount>& lower,
                                                  const std::vector<Mount>& upper,
                                                  const DiffOptions& options) = 0;
};

// Uses the overlay upper fast path when `upper` is an overlay whose lowers are exactly
// `lower`'s layers (or a lowers-only overlay whose top directory sits on `lower`'s layers);
// otherwise mounts both read-only under `scratch_dir` and compares trees.
std::unique_ptr<Differ> NewDiffer(ContentStore& store, std::string scratch_dir);

// Picks the DiffSource for two mount lists without mounting, when possible.
std::optional<DiffSource> FastDiffSource(const std::vector<Mount>& lower,
                                         const std::vector<Mount>& upper);

}  // namespace kiln::snapshotter
