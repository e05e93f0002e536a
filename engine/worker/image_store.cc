#include "engine/worker/image_store.h"

#include <ctime>

#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#include <nlohmann/json.hpp>

#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine {
namespace {

constexpr char kPrefix[] = "image/";

std::string EncodeRecord(const ImageRecord& r) {
  nlohmann::json j;
  j["name"] = r.name;
  j["target"] = nlohmann::json::parse(oci::EncodeDescriptor(r.target));
  j["created"] = r.created;
  j["updated"] = r.updated;
  return j.dump();
}

absl::StatusOr<ImageRecord> DecodeRecord(const std::string& data) {
  nlohmann::json j = nlohmann::json::parse(data, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("target")) {
    return absl::DataLossError("image store: corrupt record");
  }
  ImageRecord r;
  r.name = j.value("name", "");
  r.created = j.value("created", "");
  r.updated = j.value("updated", "");
  KILN_ASSIGN_OR_RETURN(r.target, oci::DecodeDescriptor(j["target"].dump()));
  return r;
}

absl::Status LevelDbStatus(const leveldb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNotFound()) return absl::NotFoundError(StrCat(what, ": not found"));
  return absl::UnavailableError(StrCat(what, ": ", s.ToString()));
}

constexpr char kLayerPrefix[] = "layer/";

std::string LayerKey(const std::string& snapshot_key, const std::string& media_type) {
  return StrCat(kLayerPrefix, snapshot_key, "/", media_type);
}

}  // namespace

std::string NowRfc3339() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

ImageStore::ImageStore(std::unique_ptr<leveldb::DB> db) : db_(std::move(db)) {}
ImageStore::~ImageStore() = default;

absl::StatusOr<std::unique_ptr<ImageStore>> ImageStore::Open(const std::string& path) {
  leveldb::Options options;
  options.create_if_missing = true;
  // Append to the existing MANIFEST and log at open instead of writing (and syncing) new
  // ones: every kilnctl run opens this database, and a fresh manifest costs three fsyncs.
  options.reuse_logs = true;
  leveldb::DB* raw = nullptr;
  KILN_RETURN_IF_ERROR(LevelDbStatus(leveldb::DB::Open(options, path, &raw),
                                     StrCat("open image store ", Quote(path))));
  return std::unique_ptr<ImageStore>(new ImageStore(std::unique_ptr<leveldb::DB>(raw)));
}

absl::StatusOr<ImageRecord> ImageStore::Get(const std::string& name) const {
  std::string data;
  leveldb::Status s = db_->Get(leveldb::ReadOptions(), StrCat(kPrefix, name), &data);
  if (s.IsNotFound()) {
    return absl::NotFoundError(StrCat("image ", Quote(name), " not found in the local store"));
  }
  KILN_RETURN_IF_ERROR(LevelDbStatus(s, StrCat("read image ", Quote(name))));
  return DecodeRecord(data);
}

absl::Status ImageStore::Put(const std::string& name, const oci::Descriptor& target) {
  ImageRecord r;
  r.name = name;
  r.target = target;
  r.updated = NowRfc3339();
  auto old = Get(name);
  r.created = old.ok() ? old->created : r.updated;
  leveldb::WriteOptions wo;
  wo.sync = true;
  return LevelDbStatus(db_->Put(wo, StrCat(kPrefix, name), EncodeRecord(r)),
                       StrCat("write image ", Quote(name)));
}

absl::Status ImageStore::Delete(const std::string& name) {
  leveldb::WriteOptions wo;
  wo.sync = true;
  return LevelDbStatus(db_->Delete(wo, StrCat(kPrefix, name)),
                       StrCat("delete image ", Quote(name)));
}

absl::StatusOr<std::vector<ImageRecord>> ImageStore::List() const {
  std::vector<ImageRecord> out;
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(kPrefix); it->Valid() && it->key().starts_with(kPrefix); it->Next()) {
    KILN_ASSIGN_OR_RETURN(ImageRecord r, DecodeRecord(it->value().ToString()));
    out.push_back(std::move(r));
  }
  KILN_RETURN_IF_ERROR(LevelDbStatus(it->status(), "list images"));
  return out;
}

absl::Status ImageStore::PutLayer(const std::string& snapshot_key, const LayerRecord& layer) {
  nlohmann::json j;
  j["blob"] = nlohmann::json::parse(oci::EncodeDescriptor(layer.blob));
  j["diff_id"] = layer.diff_id.str();
  leveldb::WriteOptions wo;
  wo.sync = true;
  return LevelDbStatus(db_->Put(wo, LayerKey(snapshot_key, layer.blob.media_type), j.dump()),
                       StrCat("record layer of snapshot ", Quote(snapshot_key)));
}

absl::StatusOr<std::vector<LayerRecord>> ImageStore::Layers(const std::string& snapshot_key) const {
  std::vector<LayerRecord> out;
  std::string prefix = StrCat(kLayerPrefix, snapshot_key, "/");
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    nlohmann::json j = nlohmann::json::parse(it->value().ToString(), nullptr, false);
    if (j.is_discarded() || !j.contains("blob")) {
      return absl::DataLossError(StrCat("corrupt layer record of ", Quote(snapshot_key)));
    }
    LayerRecord r;
    KILN_ASSIGN_OR_RETURN(r.blob, oci::DecodeDescriptor(j["blob"].dump()));
    KILN_ASSIGN_OR_RETURN(r.diff_id, Digest::Parse(j.value("diff_id", "")));
    out.push_back(std::move(r));
  }
  KILN_RETURN_IF_ERROR(LevelDbStatus(it->status(), "list layers"));
  return out;
}

absl::Status ImageStore::DeleteLayers(const std::string& snapshot_key) {
  std::string prefix = StrCat(kLayerPrefix, snapshot_key, "/");
  leveldb::WriteBatch batch;
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(leveldb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    batch.Delete(it->key());
  }
  leveldb::WriteOptions wo;
  wo.sync = true;
  return LevelDbStatus(db_->Write(wo, &batch), "delete layer records");
}

}  // namespace kiln::engine
