// Image documents for a build result: the config blob and the manifest, stored in the content
// store next to the layers (BuildKit's exporter/containerimage/writer.go, single platform).
//
// The config is the frontend's image config patched the way BuildKit patches it:
//  - rootfs.diff_ids = the diffIDs of the exported layers;
//  - history aligned with the layers (normalizeLayersAndHistory): entries the frontend marked
//    as layers beyond the real layer count become empty_layer; layers without an entry get one
//    ("created_by" = the step's description, comment "buildkit.exporter.image.v0"); a layer
//    entry without a time gets its snapshot's creation time, and entries still without one
//    take the first new layer's time (or the previous entry's);
//  - with a SOURCE_DATE_EPOCH, history times and `created` later than it are clamped to it;
//    a config without `created` gets the last history time;
//  - the deprecated buildinfo field is dropped;
//  - unknown fields are kept; the top-level keys come out sorted and everything is marshalled
//    as Go's encoding/json would (go_json.h), so identical inputs give identical digests.
// Deliberate difference: empty lists are written as [] where Go would write null (a config
// and manifest of an image without layers).
//
// The manifest is OCI (application/vnd.oci.image.manifest.v1+json, config
// application/vnd.oci.image.config.v1+json) or Docker schema 2, indented as BuildKit's
// json.MarshalIndent; layer media types follow (Docker zstd is BuildKit's
// application/vnd.docker.image.rootfs.diff.tar.zstd).
//
// Thread-safety: functions may be called concurrently.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "base/oci.h"
#include "engine/exporter/layers.h"
#include "engine/worker/worker.h"

namespace kiln::engine {

// What history normalization needs to know about each layer, bottom first.
struct LayerHistoryMeta {
  std::string description;
  snapshotter::Timestamp created;
};

// The config BuildKit uses when the frontend gave none.
std::string DefaultImageConfig(const oci::Platform& platform);

// Patches `config_json` (an image config object) for the given layers; see the file comment.
// InvalidArgument when the config is not a JSON object or its history/created are malformed.
absl::StatusOr<std::string> PatchImageConfig(std::string_view config_json,
                                             const std::vector<Digest>& diff_ids,
                                             const std::vector<LayerHistoryMeta>& layers,
                                             std::optional<int64_t> epoch);

// The layer media type for a compression in the OCI or Docker flavour.
std::string LayerMediaType(snapshotter::Compression c, bool oci_types);

struct ImageCommitOptions {
  LayerExportOptions layers;
  bool oci_types = false;
  std::optional<int64_t> epoch;
  // The manifest descriptor's platform (BuildKit sets it when the frontend names one).
  std::optional<oci::Platform> platform;
  std::map<std::string, std::string> manifest_annotations;
  std::map<std::string, std::string> descriptor_annotations;
};

struct CommittedImage {
  oci::Descriptor manifest;  // media type, digest, size, descriptor annotations, platform
  oci::Descriptor config;
  std::string manifest_json;
  std::string config_json;
  std::vector<ExportedLayer> layers;  // media types as written in the manifest
};

// Exports the layers of `result`, writes config and manifest into the content store (config
// first, so a stored manifest never names a missing blob) and returns their descriptors.
// `frontend_config` empty: DefaultImageConfig of the host platform.
absl::StatusOr<CommittedImage> CommitImage(Worker& worker, const ResultRef& result,
                                           std::string_view frontend_config,
                                           const ImageCommitOptions& options);

}  // namespace kiln::engine
