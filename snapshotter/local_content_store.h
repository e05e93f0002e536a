// ContentStore on a local directory.
//
// Layout under <root>/content:
//   blobs/sha256/<hex>          published blobs (read-only files, mtime = commit time)
//   labels/sha256/<hex>.json    labels of a blob, written atomically before the blob appears
//   ingest/<sha256(ref)>/       one in-progress ingest: `ref`, `startedat`, `data`
//   lock                        flock held by the one process that owns the store
//
// Crash safety: a blob path only ever appears by rename(2) of a verified, fsynced file, so a
// crash never exposes a partial blob.  Ingest directories survive a crash for resume; Open()
// removes ingests older than `stale_ingest_age`, half-created ingests, temp files and labels
// whose blob does not exist.
//
// Thread-safety: see ContentStore.  One process per root (enforced by the lock file).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "snapshotter/content_store.h"

namespace kiln::snapshotter {

struct LocalContentStoreOptions {
  // Ingests untouched for longer are removed by Open().
  std::chrono::seconds stale_ingest_age = std::chrono::hours(24 * 7);
};

class LocalContentStore : public ContentStore {
 public:
  // Creates the layout if needed, takes the root lock (Unavailable when another process or
  // store object holds it) and cleans crash leftovers.
  static absl::StatusOr<std::unique_ptr<LocalContentStore>> Open(
      const std::string& root, const LocalContentStoreOptions& options = {});
  ~LocalContentStore() override;

  absl::StatusOr<ContentInfo> Info(const Digest& digest) override;
  absl::StatusOr<std::unique_ptr<ContentReader>> OpenReader(const Digest& digest) override;
  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(const WriterOptions& opts) override;
  absl::Status Delete(const Digest& digest) override;
  absl::Status Walk(const std::function<absl::Status(const ContentInfo&)>& fn) override;
  absl::Status UpdateLabels(const Digest& digest, const Labels& labels) override;
  absl::StatusOr<std::vector<IngestStatus>> ListIngests() override;
  absl::Status AbortIngest(std::string_view ref) override;

  // Path of a stored blob's file (for zero-copy consumers such as sendfile); the file may be
  // deleted at any time by Delete().
  std::string BlobPath(const Digest& digest) const;

  struct Shared;  // state shared with live writers

 private:
  explicit LocalContentStore(std::shared_ptr<Shared> shared);
  absl::Status CleanLeftovers(const LocalContentStoreOptions& options);
  std::shared_ptr<Shared> shared_;
};

}  // namespace kiln::snapshotter
