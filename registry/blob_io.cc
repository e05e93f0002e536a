#include "registry/blob_io.h"

#include <algorithm>
#include <cstring>

#include "base/status.h"
#include "base/strings.h"

namespace kiln::registry {

absl::Status StringBlobWriter::Write(std::string_view data) {
  if (data_.size() + data.size() > max_size_) {
    return absl::ResourceExhaustedError(
        StrCat("blob exceeds the in-memory limit of ", max_size_, " bytes"));
  }
  data_.append(data);
  return absl::OkStatus();
}

absl::Status StringBlobWriter::Truncate() {
  data_.clear();
  return absl::OkStatus();
}

absl::Status StringBlobWriter::ReadBack(
    const std::function<absl::Status(std::string_view)>& consume) {
  return data_.empty() ? absl::OkStatus() : consume(data_);
}

absl::Status StringBlobWriter::Commit(const oci::Descriptor&) {
  committed_ = true;
  return absl::OkStatus();
}

absl::StatusOr<size_t> StringViewReader::Read(char* buf, size_t n) {
  size_t take = std::min(n, data_.size());
  std::memcpy(buf, data_.data(), take);
  data_.remove_prefix(take);
  return take;
}

namespace {
// Keeps the shared bytes alive for as long as the reader exists.
class SharedStringReader : public BlobReader {
 public:
  SharedStringReader(std::shared_ptr<const std::string> data, uint64_t offset)
      : data_(std::move(data)), reader_(std::string_view(*data_).substr(offset)) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override { return reader_.Read(buf, n); }

 private:
  std::shared_ptr<const std::string> data_;
  StringViewReader reader_;
};
}  // namespace

oci::Descriptor MemoryBlobProvider::Add(std::string data, std::string media_type) {
  oci::Descriptor desc;
  desc.media_type = std::move(media_type);
  desc.digest = Digest::Sha256Of(data);
  desc.size = static_cast<int64_t>(data.size());
  std::lock_guard<std::mutex> lock(mu_);
  blobs_[desc.digest] = std::make_shared<const std::string>(std::move(data));
  return desc;
}

absl::StatusOr<std::unique_ptr<BlobReader>> MemoryBlobProvider::Open(const oci::Descriptor& desc,
                                                                     uint64_t offset) {
  std::shared_ptr<const std::string> data;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blobs_.find(desc.digest);
    if (it == blobs_.end()) {
      return absl::NotFoundError(StrCat("blob ", desc.digest.str(), " is not in memory"));
    }
    data = it->second;
  }
  if (offset > data->size()) {
    return absl::OutOfRangeError(StrCat("open blob ", desc.digest.str(), " at ", offset,
                                        ": it has ", data->size(), " bytes"));
  }
  return std::make_unique<SharedStringReader>(std::move(data), offset);
}

absl::StatusOr<std::unique_ptr<BlobReader>> FallbackBlobProvider::Open(const oci::Descriptor& desc,
                                                                       uint64_t offset) {
  if (first_ != nullptr) {
    auto r = first_->Open(desc, offset);
    if (r.ok() || !absl::IsNotFound(r.status()) || second_ == nullptr) return r;
  }
  if (second_ == nullptr) return absl::NotFoundError(StrCat("blob ", desc.digest.str()));
  return second_->Open(desc, offset);
}

}  // namespace kiln::registry
