#include "snapshotter/pipeline.h"

#include <cstring>

#include "base/status.h"

namespace kiln::snapshotter {

ChunkPipe::ChunkPipe(size_t chunk_size, size_t depth) : chunk_size_(chunk_size) {
  for (size_t i = 0; i < depth; ++i) {
    storage_.push_back(std::make_unique<Chunk>());
    storage_.back()->buf.reset(new char[chunk_size]);
    free_.push_back(storage_.back().get());
  }
}

Chunk* ChunkPipe::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !free_.empty() || read_closed_; });
  if (read_closed_) return nullptr;
  Chunk* c = free_.back();
  free_.pop_back();
  c->len = 0;
  return c;
}

void ChunkPipe::Push(Chunk* chunk) {
  std::lock_guard<std::mutex> lock(mu_);
  full_.push_back(chunk);
  cv_.notify_all();
}

void ChunkPipe::CloseWrite(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  write_closed_ = true;
  status_ = std::move(status);
  cv_.notify_all();
}

Chunk* ChunkPipe::Pop() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !full_.empty() || write_closed_; });
  if (full_.empty()) return nullptr;
  Chunk* c = full_.front();
  full_.pop_front();
  return c;
}

void ChunkPipe::Recycle(Chunk* chunk) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(chunk);
  cv_.notify_all();
}

void ChunkPipe::CloseRead() {
  std::lock_guard<std::mutex> lock(mu_);
  read_closed_ = true;
  for (Chunk* c : full_) free_.push_back(c);
  full_.clear();
  cv_.notify_all();
}

absl::Status ChunkPipe::producer_status() {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

void PipeSink::PushCurrent() {
  if (hash_ != nullptr) hash_->Update(cur_->buf.get(), cur_->len);
  bytes_ += static_cast<int64_t>(cur_->len);
  pipe_.Push(cur_);
  cur_ = nullptr;
}

absl::Status PipeSink::Ensure() {
  if (cur_ != nullptr && cur_->len < pipe_.chunk_size()) return absl::OkStatus();
  if (cur_ != nullptr) PushCurrent();
  cur_ = pipe_.Acquire();
  if (cur_ == nullptr) return absl::CancelledError("layer stream consumer stopped");
  return absl::OkStatus();
}

absl::Status PipeSink::Write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    KILN_RETURN_IF_ERROR(Ensure());
    size_t k = std::min(n, pipe_.chunk_size() - cur_->len);
    std::memcpy(cur_->buf.get() + cur_->len, p, k);
    cur_->len += k;
    p += k;
    n -= k;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<char*, size_t>> PipeSink::Reserve() {
  KILN_RETURN_IF_ERROR(Ensure());
  return std::make_pair(cur_->buf.get() + cur_->len, pipe_.chunk_size() - cur_->len);
}

void PipeSink::Close(absl::Status status) {
  if (cur_ != nullptr) {
    if (status.ok() && cur_->len > 0) {
      PushCurrent();
    } else {
      pipe_.Recycle(cur_);
      cur_ = nullptr;
    }
  }
  pipe_.CloseWrite(std::move(status));
}

PipeSource::~PipeSource() {
  if (cur_ != nullptr) pipe_.Recycle(cur_);
}

absl::StatusOr<std::string_view> PipeSource::Next() {
  if (cur_ != nullptr && pos_ < cur_->len) {
    std::string_view v(cur_->buf.get() + pos_, cur_->len - pos_);
    pos_ = cur_->len;
    return v;
  }
  if (cur_ != nullptr) {
    pipe_.Recycle(cur_);
    cur_ = nullptr;
  }
  if (eof_) return std::string_view();
  cur_ = pipe_.Pop();
  if (cur_ == nullptr) {
    eof_ = true;
    KILN_RETURN_IF_ERROR(pipe_.producer_status());
    return std::string_view();
  }
  pos_ = cur_->len;
  return cur_->view();
}

absl::StatusOr<size_t> PipeSource::Read(void* buf, size_t n) {
  if (cur_ == nullptr || pos_ == cur_->len) {
    if (cur_ != nullptr) {
      pipe_.Recycle(cur_);
      cur_ = nullptr;
    }
    if (eof_) return 0;
    cur_ = pipe_.Pop();
    pos_ = 0;
    if (cur_ == nullptr) {
      eof_ = true;
      KILN_RETURN_IF_ERROR(pipe_.producer_status());
      return 0;
    }
  }
  size_t k = std::min(n, cur_->len - pos_);
  std::memcpy(buf, cur_->buf.get() + pos_, k);
  pos_ += k;
  return k;
}

}  // namespace kiln::snapshotter
