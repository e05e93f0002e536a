// The content store as the source of a push: registry::BlobProvider over stored blobs, for the
// image exporter and `kilnctl image push`.
//
// Thread-safety: Open() may be called concurrently (one reader per call); each reader has one
// owner.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "base/oci.h"
#include "registry/blob_io.h"
#include "snapshotter/content_store.h"

namespace kiln::engine {

class ContentBlobProvider : public registry::BlobProvider {
 public:
  // `store` must outlive the provider.
  explicit ContentBlobProvider(snapshotter::ContentStore& store) : store_(store) {}
  // The stored blob from `offset` on; NotFound when it is not stored, DataLoss when its size is
  // not the descriptor's.
  absl::StatusOr<std::unique_ptr<registry::BlobReader>> Open(const oci::Descriptor& desc,
                                                             uint64_t offset) override;

 private:
  snapshotter::ContentStore& store_;
};

}  // namespace kiln::engine
