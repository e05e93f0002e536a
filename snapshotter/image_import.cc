#include "snapshotter/image_import.h"

#include <atomic>
#include <chrono>

#include "base/fs.h"
#include "base/status.h"
#include "snapshotter/applier.h"

namespace kiln::snapshotter {
namespace {

constexpr int64_t kMaxDocument = 4 << 20;  // index/manifest/config size limit

absl::Status CopyBlobFromLayout(ContentStore& store, const std::string& layout,
                                const oci::Descriptor& d) {
  if (d.digest.algorithm() != "sha256") {
    return absl::InvalidArgumentError(
        StrCat("OCI layout blob ", Quote(d.digest.str()), ": unsupported digest"));
  }
  if (d.size < 0)
    return absl::InvalidArgumentError(
        StrCat("OCI layout blob ", d.digest.str(), ": negative size"));
  if (store.Info(d.digest).ok()) return absl::OkStatus();
  // Digest::Parse guarantees a hex name: the path cannot leave blobs/sha256.
  std::string path = StrCat(layout, "/blobs/sha256/", d.digest.hex());
  KILN_ASSIGN_OR_RETURN(auto src, FdSource::Open(path));
  return Annotate(CopyToStore(store, *src, d.digest, d.size), StrCat("import ", Quote(path)));
}

absl::StatusOr<std::string> ReadSmallBlob(ContentStore& store, const std::string& layout,
                                          const oci::Descriptor& d) {
  if (d.size > kMaxDocument) {
    return absl::InvalidArgumentError(
        StrCat("document ", d.digest.str(), " is too large (", d.size, " bytes)"));
  }
  KILN_RETURN_IF_ERROR(CopyBlobFromLayout(store, layout, d));
  return ReadBlob(store, d.digest, kMaxDocument);
}

bool IsIndex(std::string_view mt) {
  return mt == oci::kMediaTypeImageIndex || mt == oci::kMediaTypeDockerManifestList;
}

bool PlatformMatches(const std::optional<oci::Platform>& have, const oci::Platform& want) {
  if (!have) return false;
  return have->os == want.os && have->architecture == want.architecture &&
         (want.variant.empty() || have->variant == want.variant);
}

std::atomic<uint64_t> unpack_counter{0};

}  // namespace

absl::StatusOr<ImportedImage> ImportOciLayout(ContentStore& store, const std::string& layout_dir,
                                              const std::string& ref,
                                              const oci::Platform* platform) {
  oci::Platform want = platform ? *platform : oci::HostPlatform();
  KILN_ASSIGN_OR_RETURN(std::string index_json, ReadFileToString(layout_dir + "/index.json"));
  if (index_json.size() > static_cast<size_t>(kMaxDocument))
    return absl::InvalidArgumentError("index.json is too large");
  KILN_ASSIGN_OR_RETURN(oci::Index index, oci::DecodeIndex(index_json));

  const oci::Descriptor* chosen = nullptr;
  for (const oci::Descriptor& d : index.manifests) {
    auto it = d.annotations.find("org.opencontainers.image.ref.name");
    if (ref.empty() ? index.manifests.size() == 1
                    : (it != d.annotations.end() && it->second == ref)) {
      chosen = &d;
      break;
    }
  }
  if (chosen == nullptr) {
    return absl::NotFoundError(StrCat("OCI layout ", Quote(layout_dir), ": no image ",
                                      ref.empty() ? "(index has several; name one)" : Quote(ref)));
  }
  oci::Descriptor desc = *chosen;
  for (int depth = 0; IsIndex(desc.media_type); ++depth) {
    if (depth > 4) return absl::InvalidArgumentError("OCI layout: indexes nested too deeply");
    KILN_ASSIGN_OR_RETURN(std::string json, ReadSmallBlob(store, layout_dir, desc));
    KILN_ASSIGN_OR_RETURN(oci::Index nested, oci::DecodeIndex(json));
    const oci::Descriptor* match = nullptr;
    for (const oci::Descriptor& m : nested.manifests) {
      if (PlatformMatches(m.platform, want)) {
        match = &m;
        break;
      }
    }
    if (match == nullptr) {
      return absl::NotFoundError(
          StrCat("OCI layout: no manifest for platform ", oci::FormatPlatform(want)));
    }
    desc = *match;
  }
  ImportedImage out;
  out.manifest_digest = desc.digest;
  KILN_ASSIGN_OR_RETURN(std::string manifest_json, ReadSmallBlob(store, layout_dir, desc));
  KILN_ASSIGN_OR_RETURN(out.manifest, oci::DecodeManifest(manifest_json));
  out.config_digest = out.manifest.config.digest;
  KILN_ASSIGN_OR_RETURN(std::string config_json,
                        ReadSmallBlob(store, layout_dir, out.manifest.config));
  KILN_ASSIGN_OR_RETURN(out.config, oci::DecodeImage(config_json));
  if (out.config.rootfs.diff_ids.size() != out.manifest.layers.size()) {
    return absl::InvalidArgumentError(StrCat("image ", desc.digest.str(), ": ",
                                             out.manifest.layers.size(), " layers but ",
                                             out.config.rootfs.diff_ids.size(), " diff_ids"));
  }
  for (const oci::Descriptor& layer : out.manifest.layers) {
    KILN_RETURN_IF_ERROR(CompressionOfMediaType(layer.media_type).status());
    KILN_RETURN_IF_ERROR(CopyBlobFromLayout(store, layout_dir, layer));
  }
  return out;
}

absl::StatusOr<ImportedImage> ImportRootfs(ContentStore& store, const std::string& rootfs_dir,
                                           const RootfsImportOptions& options) {
  KILN_ASSIGN_OR_RETURN(
      LayerDescriptor layer,
      WriteLayerToStore({DiffSource::Kind::kTreeCompare, "", rootfs_dir}, store, options.diff));
  ImportedImage out;
  out.config.created = options.created;
  out.config.platform = options.platform;
  out.config.config = options.config;
  out.config.rootfs.diff_ids = {layer.diff_id};
  oci::History h;
  h.created = options.created;
  h.created_by = "kiln: import root filesystem";
  out.config.history = {h};
  std::string config_json = oci::EncodeImage(out.config);
  KILN_ASSIGN_OR_RETURN(out.config_digest, WriteBlob(store, config_json));

  out.manifest.media_type = oci::kMediaTypeImageManifest;
  out.manifest.config = {oci::kMediaTypeImageConfig, out.config_digest,
                         static_cast<int64_t>(config_json.size())};
  oci::Descriptor ld;
  ld.media_type = layer.media_type;
  ld.digest = layer.digest;
  ld.size = layer.size;
  out.manifest.layers = {ld};
  std::string manifest_json = oci::EncodeManifest(out.manifest);
  KILN_ASSIGN_OR_RETURN(out.manifest_digest, WriteBlob(store, manifest_json));
  return out;
}

std::vector<Digest> ChainIds(const std::vector<Digest>& diff_ids) {
  std::vector<Digest> out;
  for (const Digest& d : diff_ids) {
    out.push_back(out.empty() ? d : Digest::Sha256Of(StrCat(out.back().str(), " ", d.str())));
  }
  return out;
}

absl::StatusOr<std::string> Unpack(ContentStore& store, Snapshotter& snapshotter,
                                   const ImportedImage& image, const UnpackOptions& options) {
  const auto& layers = image.manifest.layers;
  const auto& diff_ids = image.config.rootfs.diff_ids;
  if (layers.size() != diff_ids.size()) {
    return absl::InvalidArgumentError(
        StrCat("unpack: ", layers.size(), " layers but ", diff_ids.size(), " diff_ids"));
  }
  std::vector<Digest> chain = ChainIds(diff_ids);
  std::string parent;
  for (size_t i = 0; i < layers.size(); ++i) {
    KILN_RETURN_IF_ERROR(options.cancel.Check());
    std::string key = chain[i].str();
    auto st = snapshotter.Stat(key);
    if (st.ok() && st->kind == SnapshotKind::kCommitted) {
      parent = key;
      continue;
    }
    std::string active = StrCat("unpack-", ::getpid(), "-", unpack_counter++, "-", key);
    KILN_ASSIGN_OR_RETURN(auto mounts, snapshotter.Prepare(active, parent));
    auto applied = [&]() -> absl::Status {
      KILN_ASSIGN_OR_RETURN(auto reader, store.OpenReader(layers[i].digest));
      ApplyOptions ao;
      ao.media_type = layers[i].media_type;
      ao.expected_digest = layers[i].digest;
      ao.expected_size = layers[i].size;
      ao.cancel = options.cancel;
      KILN_ASSIGN_OR_RETURN(ApplyResult r, ApplyLayerToMounts(mounts, *reader, ao));
      if (r.diff_id != diff_ids[i]) {
        return absl::DataLossError(StrCat("layer ", layers[i].digest.str(), ": diffID ",
                                          r.diff_id.str(), " does not match the image config's ",
                                          diff_ids[i].str()));
      }
      absl::Status c = snapshotter.Commit(key, active, options.labels);
      if (absl::IsAlreadyExists(c)) return snapshotter.Remove(active);  // a concurrent unpack won
      return c;
    }();
    if (!applied.ok()) {
      (void)snapshotter.Remove(active);  // never leave a half-applied layer behind
      return Annotate(applied, StrCat("unpack layer ", i, " (", layers[i].digest.str(), ")"));
    }
    parent = key;
  }
  return parent;
}

}  // namespace kiln::snapshotter
