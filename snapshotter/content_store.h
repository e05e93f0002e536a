// The content store: immutable blobs (layers, manifests, configs) addressed by digest.
//
// A blob becomes visible only after its bytes were fully written, fsynced and verified against
// the digest AND size the caller expected; then it is renamed into place atomically.  Ingests
// are named by a caller-chosen `ref` (e.g. "layer-sha256:…") and are resumable: opening a writer
// for a ref whose earlier writer was dropped uncommitted continues at the end of the partial
// data (offset()) with the hash state rebuilt by rehashing it.
//
// Concurrency contract (like containerd's local store):
//  - Only one writer per ref at a time.  OpenWriter for a ref that has a live writer returns
//    Unavailable at once; callers that want to wait retry (see OpenWriterWithRetry).
//  - Two writers (different refs) committing identical content: the first rename wins, the
//    second Commit finds the blob present, discards its copy and returns OK.  The blob is
//    stored exactly once.
//  - OpenWriter with `expected` set returns AlreadyExists when that blob is already stored, so
//    a download can be skipped.
//  - Every ContentStore method may be called from any thread.  A ContentWriter or
//    ContentReader is used by one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/digest.h"
#include "snapshotter/byte_stream.h"

namespace kiln::snapshotter {

using Labels = std::map<std::string, std::string>;
using Timestamp = std::chrono::system_clock::time_point;

struct ContentInfo {
  Digest digest;
  int64_t size = 0;
  Timestamp created;
  Timestamp updated;
  Labels labels;
};

struct IngestStatus {
  std::string ref;
  int64_t offset = 0;
  Timestamp started;
  Timestamp updated;
};

// Streams one blob into the store.  Dropping a writer without Commit keeps the partial data for
// a later resume (AbortIngest discards it).
class ContentWriter : public ByteSink {
 public:
  // Appends bytes at offset().
  absl::Status Write(const void* data, size_t n) override = 0;
  // Bytes written so far, including those of a resumed ingest.
  virtual int64_t offset() const = 0;
  // Digest of the bytes written so far.
  virtual Digest digest() = 0;
  // Drops the data after `size` bytes (only 0 is cheap; other sizes rehash) so a resumed
  // download can restart.  `size` > offset() is InvalidArgument.
  virtual absl::Status Truncate(int64_t size) = 0;
  // Verifies that what was written has exactly `expected_size` bytes (-1: any) and digest
  // `expected` (invalid Digest: whatever was written), then publishes it with `labels`.
  // Mismatch: DataLoss, the ingest is discarded and nothing is stored.  After Commit (OK or
  // not) the writer is finished; further calls fail with FailedPrecondition.
  virtual absl::Status Commit(const Digest& expected, int64_t expected_size,
                              const Labels& labels = {}) = 0;
};

// Reads one blob; Read() is sequential, ReadAt() positional and independent of Read().
class ContentReader : public ByteSource {
 public:
  virtual int64_t size() const = 0;
  // Reads up to `n` bytes at `offset`; 0 means offset is at or past the end.
  virtual absl::StatusOr<size_t> ReadAt(void* buf, size_t n, int64_t offset) = 0;
};

struct WriterOptions {
  std::string ref;  // required; any string
  // When set and that blob is already stored: AlreadyExists.
  std::optional<Digest> expected;
};

class ContentStore {
 public:
  virtual ~ContentStore() = default;
  ContentStore() = default;
  ContentStore(const ContentStore&) = delete;
  ContentStore& operator=(const ContentStore&) = delete;

  // NotFound when the blob is not stored.
  virtual absl::StatusOr<ContentInfo> Info(const Digest& digest) = 0;
  virtual absl::StatusOr<std::unique_ptr<ContentReader>> OpenReader(const Digest& digest) = 0;
  // Unavailable when the ref has a live writer; AlreadyExists: see WriterOptions::expected.
  virtual absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(const WriterOptions& opts) = 0;
  // NotFound when absent.  Readers already open keep reading the old bytes.
  virtual absl::Status Delete(const Digest& digest) = 0;
  // Calls `fn` for every stored blob (order unspecified); stops at the first error it returns.
  virtual absl::Status Walk(const std::function<absl::Status(const ContentInfo&)>& fn) = 0;
  // Sets labels (an empty value removes that label); durable when it returns.
  virtual absl::Status UpdateLabels(const Digest& digest, const Labels& labels) = 0;
  // Ingests that hold partial data (with or without a live writer, whose offset may move).
  virtual absl::StatusOr<std::vector<IngestStatus>> ListIngests() = 0;
  // Discards the partial data of `ref`; NotFound when there is none, Unavailable when a writer
  // is live.
  virtual absl::Status AbortIngest(std::string_view ref) = 0;
};

// Reads a whole blob, refusing blobs larger than `max_size` (manifests and configs are small;
// a hostile registry must not make us allocate gigabytes).  The bytes are re-verified against
// `digest`.
absl::StatusOr<std::string> ReadBlob(ContentStore& store, const Digest& digest,
                                     int64_t max_size = 16 << 20);

// Stores `data` under its sha256 (verified against `expected` when valid); OK when already
// stored.  Returns the digest.
absl::StatusOr<Digest> WriteBlob(ContentStore& store, std::string_view data,
                                 const Digest& expected = Digest(), const Labels& labels = {});

// Copies `source` into the store, verifying digest and size; OK when already stored.
absl::Status CopyToStore(ContentStore& store, ByteSource& source, const Digest& expected,
                         int64_t expected_size, const Labels& labels = {},
                         const CancelToken& cancel = {});

// OpenWriter that waits (with backoff) while another writer holds `ref`, until `cancel`.
absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriterWithRetry(ContentStore& store,
                                                                   const WriterOptions& opts,
                                                                   const CancelToken& cancel = {});

}  // namespace kiln::snapshotter
