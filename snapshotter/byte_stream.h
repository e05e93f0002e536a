// Minimal byte-stream contracts shared by the content store, the applier and the differ.
//
// A layer never sits in memory: it flows from a ByteSource (a content-store reader, a network
// body, a file) through decompression into the tar reader, or from the tar writer through
// compression into a ByteSink (a content-store writer, a file).
//
// Thread-safety: an implementation is used by one thread at a time unless it says otherwise.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/unique_fd.h"

namespace kiln::snapshotter {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `n` bytes into `buf`; returns how many were read, 0 only at the end of the
  // stream.  An error leaves the stream unusable.
  virtual absl::StatusOr<size_t> Read(void* buf, size_t n) = 0;
};

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Writes all `n` bytes or fails; a failed sink is unusable.
  virtual absl::Status Write(const void* data, size_t n) = 0;
};

// Reads a file descriptor (owned) sequentially.
class FdSource : public ByteSource {
 public:
  explicit FdSource(UniqueFd fd, std::string name = "")
      : fd_(std::move(fd)), name_(std::move(name)) {}
  static absl::StatusOr<std::unique_ptr<FdSource>> Open(const std::string& path);
  absl::StatusOr<size_t> Read(void* buf, size_t n) override;

 private:
  UniqueFd fd_;
  std::string name_;
};

// Writes to a file descriptor (owned).
class FdSink : public ByteSink {
 public:
  explicit FdSink(UniqueFd fd, std::string name = "")
      : fd_(std::move(fd)), name_(std::move(name)) {}
  absl::Status Write(const void* data, size_t n) override;
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  std::string name_;
};

// Reads from a string it does not own (tests, small blobs).
class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string_view data) : data_(data) {}
  absl::StatusOr<size_t> Read(void* buf, size_t n) override;

 private:
  std::string_view data_;
};

// Appends to a string (tests, small blobs).
class StringSink : public ByteSink {
 public:
  absl::Status Write(const void* data, size_t n) override {
    out.append(static_cast<const char*>(data), n);
    return absl::OkStatus();
  }
  std::string out;
};

// Discards everything (benchmarks, dry runs).
class NullSink : public ByteSink {
 public:
  absl::Status Write(const void*, size_t n) override {
    bytes += n;
    return absl::OkStatus();
  }
  size_t bytes = 0;
};

// Writes `n` bytes to `fd` retrying short writes and EINTR; `what` names the file for errors.
absl::Status WriteFull(int fd, const void* data, size_t n, std::string_view what);

}  // namespace kiln::snapshotter
