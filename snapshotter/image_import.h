// Image import and unpack: the bridge between OCI images and snapshots.
//
//  - ImportOciLayout copies an OCI image layout directory (index.json -> [index ->] manifest
//    -> config + layers) into the content store, verifying every blob's digest and size.
//  - ImportRootfs turns a plain root filesystem directory into a single-layer image (the
//    differ's tree path against an empty lower).
//  - Unpack applies an image's layers into a chain of committed snapshots keyed by chainID
//    (OCI image spec: ChainID(L0) = DiffID(L0); ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) +
//    " " + DiffID(Ln))), reusing snapshots that already exist, so images sharing a prefix
//    share snapshots.  Each layer's diffID is checked against the image config.
//
// Thread-safety: functions may run concurrently; two unpacks of the same chain race safely
// (the loser's Commit finds the chainID present and drops its copy).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/oci.h"
#include "snapshotter/content_store.h"
#include "snapshotter/differ.h"
#include "snapshotter/snapshotter.h"

namespace kiln::snapshotter {

struct ImportedImage {
  Digest manifest_digest;
  oci::Manifest manifest;
  Digest config_digest;
  oci::Image config;
};

// `ref`: the org.opencontainers.image.ref.name annotation to pick in index.json ("" when the
// index has exactly one entry).  Nested indexes are resolved for `platform` (default: host).
absl::StatusOr<ImportedImage> ImportOciLayout(ContentStore& store, const std::string& layout_dir,
                                              const std::string& ref = "",
                                              const oci::Platform* platform = nullptr);

struct RootfsImportOptions {
  DiffOptions diff;         // compression etc. of the single layer
  oci::ImageConfig config;  // env, cmd, ...
  std::string created;      // RFC 3339; "" leaves it out (reproducible)
  oci::Platform platform = oci::HostPlatform();
};

absl::StatusOr<ImportedImage> ImportRootfs(ContentStore& store, const std::string& rootfs_dir,
                                           const RootfsImportOptions& options = {});

// Chain IDs of every prefix of `diff_ids`.
std::vector<Digest> ChainIds(const std::vector<Digest>& diff_ids);

struct UnpackOptions {
  Labels labels;  // on each committed snapshot
  CancelToken cancel;
};

// Returns the snapshot key (chainID) of the top layer; "" for an image with no layers.
absl::StatusOr<std::string> Unpack(ContentStore& store, Snapshotter& snapshotter,
                                   const ImportedImage& image, const UnpackOptions& options = {});

}  // namespace kiln::snapshotter
