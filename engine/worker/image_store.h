// The image store: image names ("docker.io/library/busybox:latest") mapped to the descriptor of
// their manifest (or index) in the content store.
//
// It is what `FROM busybox` resolves against in "local" mode, what `kilnctl image import` fills,
// and what the image exporter (without push) updates.  Records live in a leveldb database; each
// Put/Delete is one durable write.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/oci.h"

namespace leveldb {
class DB;
}

namespace kiln::engine {

// A layer blob known to hold exactly the changes of one committed snapshot (relative to its
// parent): the original blob of an unpacked image layer, or a blob the exporter computed.
// Exporting the snapshot again reuses it instead of diffing and compressing anew.
struct LayerRecord {
  oci::Descriptor blob;  // media type says the compression
  Digest diff_id;
};

struct ImageRecord {
  std::string name;  // normalized reference
  oci::Descriptor target;
  std::string created;  // RFC 3339, when the record was written
  std::string updated;
};

class ImageStore {
 public:
  // Opens (creating) the database in directory `path`.
  static absl::StatusOr<std::unique_ptr<ImageStore>> Open(const std::string& path);
  ~ImageStore();
  ImageStore(const ImageStore&) = delete;
  ImageStore& operator=(const ImageStore&) = delete;

  // NotFound when no image has that name.
  absl::StatusOr<ImageRecord> Get(const std::string& name) const;
  // Creates or replaces the record (keeps `created` of a replaced record).
  absl::Status Put(const std::string& name, const oci::Descriptor& target);
  absl::Status Delete(const std::string& name);
  absl::StatusOr<std::vector<ImageRecord>> List() const;

  // Layer blobs per snapshot key, one per media type.
  absl::Status PutLayer(const std::string& snapshot_key, const LayerRecord& layer);
  absl::StatusOr<std::vector<LayerRecord>> Layers(const std::string& snapshot_key) const;
  absl::Status DeleteLayers(const std::string& snapshot_key);

 private:
  explicit ImageStore(std::unique_ptr<leveldb::DB> db);
  std::unique_ptr<leveldb::DB> db_;
};

// The current UTC time in RFC 3339 with seconds ("2024-05-01T12:00:00Z").
std::string NowRfc3339();

}  // namespace kiln::engine
