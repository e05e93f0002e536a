// A bounded hand-off of byte chunks between two threads, so one stage of a layer stream (tar +
// diffID hash, or decompression + hashes) overlaps the next (compression + blob digest + write,
// or tar parsing + filesystem writes).  Memory is bounded by depth x chunk size: buffers are
// recycled, never allocated per chunk.
//
// Thread-safety: one producer thread and one consumer thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "snapshotter/byte_stream.h"
#include "snapshotter/sha256.h"

namespace kiln::snapshotter {

struct Chunk {
  std::unique_ptr<char[]> buf;
  size_t len = 0;  // bytes of data in buf
  std::string_view view() const { return std::string_view(buf.get(), len); }
};

class ChunkPipe {
 public:
  ChunkPipe(size_t chunk_size, size_t depth);

  // Producer side.  Acquire returns nullptr once the consumer gave up.
  Chunk* Acquire();
  void Push(Chunk* chunk);
  // End of stream: OK, or the producer's failure (the consumer sees it).
  void CloseWrite(absl::Status status);

  // Consumer side.  Pop returns nullptr at the end of the stream (see producer_status()).
  Chunk* Pop();
  void Recycle(Chunk* chunk);
  void CloseRead();  // the consumer stops; the producer's Acquire returns nullptr
  absl::Status producer_status();

  size_t chunk_size() const { return chunk_size_; }

 private:
  size_t chunk_size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Chunk>> storage_;
  std::vector<Chunk*> free_;
  std::deque<Chunk*> full_;
  bool write_closed_ = false;
  bool read_closed_ = false;
  absl::Status status_;
};

// A ByteSink that fills the pipe's chunks.
class PipeSink : public ByteSink {
 public:
  // When `hash` is set, every byte pushed through is hashed (chunk by chunk, on this thread).
  explicit PipeSink(ChunkPipe& pipe, Sha256State* hash = nullptr) : pipe_(pipe), hash_(hash) {}
  absl::Status Write(const void* data, size_t n) override;
  int64_t bytes() const { return bytes_; }
  // Space in the current chunk for direct writes (e.g. read(2) straight into it); Commit(k)
  // marks k of those bytes written.
  absl::StatusOr<std::pair<char*, size_t>> Reserve();
  void Commit(size_t k) { cur_->len += k; }
  // Pushes the partial chunk and closes the stream.
  void Close(absl::Status status);

 private:
  absl::Status Ensure();
  void PushCurrent();
  ChunkPipe& pipe_;
  Sha256State* hash_;
  int64_t bytes_ = 0;
  Chunk* cur_ = nullptr;
};

// A ByteSource that reads the pipe's chunks.
class PipeSource : public ByteSource {
 public:
  explicit PipeSource(ChunkPipe& pipe) : pipe_(pipe) {}
  ~PipeSource() override;
  absl::StatusOr<size_t> Read(void* buf, size_t n) override;
  // Zero-copy: the next piece of data (empty at the end); valid until the next call.
  absl::StatusOr<std::string_view> Next();

 private:
  ChunkPipe& pipe_;
  Chunk* cur_ = nullptr;
  size_t pos_ = 0;
  bool eof_ = false;
};

}  // namespace kiln::snapshotter
