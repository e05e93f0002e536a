// OCI image layouts of an exported image: as a tarball (the oci and docker exporters) or as a
// directory (tar=false).
//
// The tarball is what containerd's images/archive exporter writes for BuildKit v0.11.6:
//   oci-layout          {"imageLayoutVersion":"1.0.0"}                      0444
//   index.json          one entry per image name (annotations io.containerd.image.name and
//                       org.opencontainers.image.ref.name = the tag), or one without names  0644
//   blobs/, blobs/sha256/                                                    0755 directories
//   blobs/sha256/<hex>  manifest, config and layers, streamed from the content store and
//                       verified against their digests on the way                    0444
//   manifest.json       docker-archive's [{"Config","RepoTags","Layers"}] pointing into
//                       blobs/, so `docker load` / `podman load` read the same tarball;
//                       RepoTags: the familiar names (docker) or null (oci)            0644
// entries sorted by name, mtime 0, owner 0:0, ustar headers byte-identical to Go's.  Nothing is
// held in memory beyond a 1 MiB copy buffer.
//
// The directory is what buildctl builds from BuildKit's content-store session for tar=false:
// blobs/sha256/<hex> (each written to a temporary file, verified, renamed), index.json where
// an entry tagged `tag` (org.opencontainers.image.ref.name) replaces an earlier one with the
// same tag and other entries are kept; Kiln also writes oci-layout (buildctl does not, but
// tools need it).
//
// Thread-safety: functions are independent; two writers must not share a directory.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/cancel.h"
#include "base/oci.h"
#include "snapshotter/byte_stream.h"
#include "snapshotter/content_store.h"

namespace kiln::engine {

struct ArchiveImage {
  oci::Descriptor manifest;        // as index.json lists it (created annotation, platform)
  std::vector<std::string> names;  // normalized references with a tag
  oci::Descriptor config;
  std::vector<oci::Descriptor> layers;
};

enum class ArchiveFormat { kOci, kDocker };

absl::Status WriteImageArchive(snapshotter::ContentStore& store, const ArchiveImage& image,
                               ArchiveFormat format, snapshotter::ByteSink& out,
                               const CancelToken& cancel);

absl::Status WriteImageLayoutDir(snapshotter::ContentStore& store, const ArchiveImage& image,
                                 const std::string& dir, const std::string& tag,
                                 const CancelToken& cancel);

// containerd's ociReferenceName: the object part of a reference ("latest" for
// "docker.io/library/x:latest", "@sha256:..." for a digest reference).
std::string OciReferenceName(std::string_view name);

}  // namespace kiln::engine
