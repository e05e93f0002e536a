// Layer compression: media types, detection by magic bytes, streaming (de)compressors.
//
// gzip uses ISA-L's igzip (levels 0-3; level 1 is ~libdeflate speed), zstd uses libzstd.  Output
// is deterministic: the gzip header carries mtime 0, no name, OS 255 ("unknown"), like Go's
// compress/gzip, so identical input always gives identical bytes.  Multi-member gzip and
// multi-frame zstd input are accepted.
//
// Thread-safety: a (de)compressor object is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "snapshotter/byte_stream.h"
#include "snapshotter/sha256.h"

namespace kiln::snapshotter {

enum class Compression { kNone, kGzip, kZstd };
std::string_view CompressionName(Compression c);

// The OCI layer media type for `c`.
std::string_view OciLayerMediaType(Compression c);
// Compression implied by a layer media type (OCI or Docker); InvalidArgument for a media type
// that is not a layer Kiln can read (e.g. foreign or encrypted layers).
absl::StatusOr<Compression> CompressionOfMediaType(std::string_view media_type);
// By magic bytes: gzip 1f 8b, zstd 28 b5 2f fd; anything else is treated as plain tar.
Compression DetectCompression(std::string_view head);

class Compressor {
 public:
  virtual ~Compressor() = default;
  // `level`: gzip 0-3 (ISA-L), zstd 1-19 (negative = fast modes); `threads` > 1 lets zstd use
  // worker threads.
  static absl::StatusOr<std::unique_ptr<Compressor>> Create(Compression c, int level,
                                                            int threads = 1);
  // Compresses `n` bytes, writing whatever output is ready to `out`.
  virtual absl::Status Write(const void* data, size_t n, ByteSink& out) = 0;
  // Flushes the end of the stream to `out`.
  virtual absl::Status Finish(ByteSink& out) = 0;
};

// Reads a possibly compressed stream, detecting the compression from its first bytes, and
// yields the uncompressed bytes.  It hashes the compressed bytes as they pass, counts them and
// refuses to read more than `max_compressed` (-1: no limit) so a hostile source cannot stream
// forever.
class DecompressingSource : public ByteSource {
 public:
  DecompressingSource(ByteSource& compressed, int64_t max_compressed = -1);
  ~DecompressingSource() override;
  absl::StatusOr<size_t> Read(void* buf, size_t n) override;

  Compression compression() const { return compression_; }
  Digest compressed_digest() const { return hash_.Peek(); }
  int64_t compressed_size() const { return consumed_; }

  class Engine;

 private:
  absl::Status Fill();

  ByteSource& in_;
  int64_t max_;
  Sha256State hash_;
  int64_t consumed_ = 0;
  Compression compression_ = Compression::kNone;
  bool started_ = false;
  bool in_eof_ = false;
  std::string buf_;
  size_t buf_pos_ = 0;
  size_t buf_len_ = 0;
  std::unique_ptr<Engine> engine_;
};

}  // namespace kiln::snapshotter
