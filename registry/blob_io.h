// How blob bytes enter and leave the registry client.
//
// registry/ never touches disk: a pulled blob goes into a BlobWriter the caller provides (the
// engine backs it with the content store's ingest), and a pushed blob comes from a BlobProvider
// (the content store, or an exporter producing the layer on the fly).  The in-memory
// implementations here serve small documents (configs, manifests) and tests.
//
// Thread-safety: one BlobWriter / BlobReader is used by one thread at a time.  BlobSink and
// BlobProvider are called from many threads at once (one call per blob).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "base/oci.h"

namespace kiln::registry {

// Receives one blob being downloaded.  The client verifies size and digest of everything
// written before it calls Commit(); on any mismatch it never does, and the caller discards the
// writer (the content store aborts the ingest).
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  BlobWriter() = default;
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  // Bytes already held, from an interrupted earlier download; the download resumes there
  // (with a Range request) after ReadBack() has replayed them through the digest.
  virtual uint64_t Offset() const = 0;
  // Appends `data` at Offset().  Either all of it is kept or an error is returned.
  virtual absl::Status Write(std::string_view data) = 0;
  // Drops everything written (the server ignored a Range request and sent the whole blob).
  virtual absl::Status Truncate() = 0;
  // Feeds the bytes [0, Offset()) to `consume` in order.
  virtual absl::Status ReadBack(const std::function<absl::Status(std::string_view)>& consume) = 0;
  // Makes the blob durable and visible; `desc` has been verified against the bytes written.
  virtual absl::Status Commit(const oci::Descriptor& desc) = 0;
};

// A content store seen from a pull: hands out writers and says what it already has.  Two
// concurrent pulls of one blob through Registry::PullBlob(…, BlobSink&) download it once; the
// second caller's Writer() then finds it present.
class BlobSink {
 public:
  virtual ~BlobSink() = default;
  BlobSink() = default;
  BlobSink(const BlobSink&) = delete;
  BlobSink& operator=(const BlobSink&) = delete;

  // A writer for `desc`, or nullptr (with OK) when the blob is already stored.
  virtual absl::StatusOr<std::unique_ptr<BlobWriter>> Writer(const oci::Descriptor& desc) = 0;
};

// Sequential reader over one blob's bytes.
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  BlobReader() = default;
  BlobReader(const BlobReader&) = delete;
  BlobReader& operator=(const BlobReader&) = delete;

  // Copies up to `n` bytes into `buf`; 0 means the end.
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
};

// Opens blobs to push, by descriptor.  A provider may read stored content or produce it again
// on demand; either way the bytes from `offset` on must be the same every time (a retried or
// resumed upload reopens the blob).
class BlobProvider {
 public:
  virtual ~BlobProvider() = default;
  BlobProvider() = default;
  BlobProvider(const BlobProvider&) = delete;
  BlobProvider& operator=(const BlobProvider&) = delete;

  virtual absl::StatusOr<std::unique_ptr<BlobReader>> Open(const oci::Descriptor& desc,
                                                           uint64_t offset) = 0;
};

// Collects a blob in memory (configs and other small documents).
class StringBlobWriter : public BlobWriter {
 public:
  explicit StringBlobWriter(size_t max_size = 64 << 20) : max_size_(max_size) {}
  uint64_t Offset() const override { return data_.size(); }
  absl::Status Write(std::string_view data) override;
  absl::Status Truncate() override;
  absl::Status ReadBack(const std::function<absl::Status(std::string_view)>& consume) override;
  absl::Status Commit(const oci::Descriptor& desc) override;

  bool committed() const { return committed_; }
  const std::string& data() const { return data_; }
  std::string Take() { return std::move(data_); }

 private:
  size_t max_size_;
  std::string data_;
  bool committed_ = false;
};

// Reads from a string it does not own.
class StringViewReader : public BlobReader {
 public:
  explicit StringViewReader(std::string_view data) : data_(data) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override;

 private:
  std::string_view data_;
};

// Blobs held in memory, by digest (configs, test layers).
class MemoryBlobProvider : public BlobProvider {
 public:
  // Stores `data` and returns its descriptor.
  oci::Descriptor Add(std::string data, std::string media_type);
  absl::StatusOr<std::unique_ptr<BlobReader>> Open(const oci::Descriptor& desc,
                                                   uint64_t offset) override;

 private:
  std::mutex mu_;
  std::map<Digest, std::shared_ptr<const std::string>> blobs_;
};

// Serves a blob from one provider if it has it, else from the next (e.g. a config kept in
// memory, layers from the content store).
class FallbackBlobProvider : public BlobProvider {
 public:
  FallbackBlobProvider(BlobProvider* first, BlobProvider* second)
      : first_(first), second_(second) {}
  absl::StatusOr<std::unique_ptr<BlobReader>> Open(const oci::Descriptor& desc,
                                                   uint64_t offset) override;

 private:
  BlobProvider* first_;
  BlobProvider* second_;
};

}  // namespace kiln::registry
