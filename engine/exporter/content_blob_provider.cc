#include "engine/exporter/content_blob_provider.h"

#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine {
namespace {

class ContentBlobReader : public registry::BlobReader {
 public:
  ContentBlobReader(std::unique_ptr<snapshotter::ContentReader> r, uint64_t offset)
      : reader_(std::move(r)), pos_(static_cast<int64_t>(offset)) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    KILN_ASSIGN_OR_RETURN(size_t got, reader_->ReadAt(buf, n, pos_));
    pos_ += static_cast<int64_t>(got);
    return got;
  }

 private:
  std::unique_ptr<snapshotter::ContentReader> reader_;
  int64_t pos_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<registry::BlobReader>> ContentBlobProvider::Open(
    const oci::Descriptor& desc, uint64_t offset) {
  KILN_ASSIGN_OR_RETURN(auto reader, store_.OpenReader(desc.digest));
  if (reader->size() != desc.size) {
    return absl::DataLossError(StrCat("stored blob ", desc.digest.str(), " has size ",
                                      reader->size(), ", its descriptor says ", desc.size));
  }
  return std::unique_ptr<registry::BlobReader>(
      std::make_unique<ContentBlobReader>(std::move(reader), offset));
}

}  // namespace kiln::engine
