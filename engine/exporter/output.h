// Where an exporter's bytes go.
//
// A tarball goes to the caller's stream (the session's file transfer), to stdout ("-"), or to
// a file, which is written atomically: a temporary file next to it, fsynced and renamed over
// the destination only when the export succeeded, so a half-written tarball never carries
// the final name.  A failed or cancelled export leaves nothing behind.
//
// Thread-safety: one owner; a TarballOutput is used by one thread at a time.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"
#include "snapshotter/byte_stream.h"

namespace kiln::engine {

struct ExportTarget {
  // A file (tarballs; "-" is stdout) or a directory (local, oci/docker with tar=false).
  std::string path;
  // For tarballs, instead of `path`: a stream the caller owns (e.g. the client session).
  snapshotter::ByteSink* stream = nullptr;
};

// Collects small writes (tar headers) into large ones.
class BufferedSink : public snapshotter::ByteSink {
 public:
  explicit BufferedSink(snapshotter::ByteSink& out, size_t size = 1 << 20) : out_(out) {
    buf_.reserve(size);
  }
  absl::Status Write(const void* data, size_t n) override;
  absl::Status Flush();

 private:
  snapshotter::ByteSink& out_;
  std::string buf_;
};

class TarballOutput {
 public:
  // InvalidArgument when the target names nothing, or a directory.
  static absl::StatusOr<std::unique_ptr<TarballOutput>> Open(const ExportTarget& target);
  ~TarballOutput();
  TarballOutput(const TarballOutput&) = delete;
  TarballOutput& operator=(const TarballOutput&) = delete;

  snapshotter::ByteSink& sink() { return buffered_; }
  // Flushes; a file is fsynced and renamed into place.
  absl::Status Commit();

 private:
  TarballOutput(snapshotter::ByteSink* base, std::unique_ptr<snapshotter::FdSink> owned,
                std::string final_path, std::string temp_path);
  std::unique_ptr<snapshotter::FdSink> owned_;
  snapshotter::ByteSink* base_;
  BufferedSink buffered_;
  std::string final_path_;
  std::string temp_path_;  // removed unless committed
};

}  // namespace kiln::engine
