// Image resolution for the engine: a normalized reference + platform + resolve mode -> the
// image's manifest and verified config.  Used by the docker-image source op and by the engine's
// FrontendClient (ResolveImageConfig for the Dockerfile frontend), so a FROM resolves the same
// way in both.
//
// Where an image comes from (Kiln's modes; BuildKit's differ, see README "Source ops"):
//   1. A digest-pinned reference whose manifest (and, through an index, the platform's
//      manifest) and config are in the local content store resolves from there in every mode:
//      content addressed by digest cannot be stale, so the network is never touched.
//   2. mode `local`: the local image store only (names given by `kilnctl image import` and by
//      image exports); never the registry.  Missing -> NotFound naming the ref and the mode.
//   3. mode `default`: the local image store when it has the name (and its content), else the
//      registry.
//   4. mode `pull`: always the registry (a tag is re-resolved; blobs already stored are not
//      downloaded again).
// Without a registry (nullptr: no registry access configured) 3 and 4 end in NotFound.
//
// Pulled images are not named in the image store (BuildKit does not name them either): naming
// them would make `default` reuse a stale tag forever.  Their manifest, index and config are kept
// in the content store; layers are fetched by FetchBlobs (the image source op does it lazily in
// Exec, only for layers whose snapshot does not exist yet).
//
// ImportImage* fill the image store for `kilnctl image import`.
//
// Thread-safety: ImageResolver is stateless besides its pointers and may be used concurrently.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/digest.h"
#include "base/oci.h"
#include "base/reference.h"
#include "llb/state.h"
#include "registry/blob_io.h"
#include "registry/credentials.h"
#include "registry/registry.h"
#include "snapshotter/content_store.h"
#include "snapshotter/image_import.h"

namespace kiln::engine {

class Worker;

using ImageResolveMode = llb::ResolveMode;

// "default" / "" -> kDefault, "pull" -> kPull, "local" -> kLocal; else InvalidArgument.
absl::StatusOr<ImageResolveMode> ParseImageResolveMode(std::string_view text);
std::string_view ImageResolveModeName(ImageResolveMode mode);

struct ImageResolution {
  ImageReference ref;      // normalized, with the default tag when it had neither tag nor digest
  oci::Descriptor target;  // what the reference names: an index or a manifest
  Digest manifest_digest;  // the platform's image manifest
  std::string manifest_bytes;
  oci::Manifest manifest;
  Digest config_digest;
  std::string config_bytes;  // verified against config_digest
  oci::Image config;
  oci::Platform platform;  // the platform asked for
  enum class Origin { kContentStore, kImageStore, kRegistry } origin = Origin::kRegistry;
};

struct ImageResolveOptions {
  CancelToken cancel;
  // Registry credentials of the build's client (nullptr: the Registry's own).
  std::shared_ptr<registry::CredentialSource> credentials;
  // Blob transfer progress (FetchBlobs); called from transfer threads.
  std::function<void(const registry::BlobProgress&)> progress;
  // FetchBlobs calls it once per blob as soon as that blob is in the content store (already
  // there, or downloaded and verified), from transfer threads, so a caller can unpack layers as
  // they arrive instead of after the last one.
  std::function<void(const Digest&)> blob_stored;
};

class ImageResolver {
 public:
  // `registry` may be null (no registry access).  Both must outlive the resolver.
  ImageResolver(Worker* worker, registry::Registry* registry)
      : worker_(worker), registry_(registry) {}

  absl::StatusOr<ImageResolution> Resolve(const ImageReference& ref, const oci::Platform& platform,
                                          ImageResolveMode mode,
                                          const ImageResolveOptions& options = {}) const;

  // Parses `text` (Docker's short forms allowed) and resolves it.
  absl::StatusOr<ImageResolution> Resolve(std::string_view text, const oci::Platform& platform,
                                          ImageResolveMode mode,
                                          const ImageResolveOptions& options = {}) const;

  // Makes every blob of `blobs` present in the content store, downloading the missing ones
  // from `repo`'s repository concurrently.  Digest and size are verified before anything is
  // stored (DataLoss otherwise, and nothing is kept).  FailedPrecondition naming the blob when
  // one is missing and there is no registry.
  absl::Status FetchBlobs(const ImageReference& repo, const std::vector<oci::Descriptor>& blobs,
                          const ImageResolveOptions& options = {}) const;

 private:
  absl::StatusOr<ImageResolution> FromContent(const ImageReference& ref,
                                              const oci::Descriptor& target,
                                              const oci::Platform& platform) const;
  absl::StatusOr<ImageResolution> FromRegistry(const ImageReference& ref,
                                               const oci::Platform& platform,
                                               const ImageResolveOptions& options) const;

  Worker* worker_;
  registry::Registry* registry_;
};

// A registry::BlobSink over the content store's ingest: blobs already stored are skipped, a
// blob becomes visible only after digest and size matched, and a failed download leaves no
// partial ingest behind.
class ContentStoreBlobSink : public registry::BlobSink {
 public:
  ContentStoreBlobSink(snapshotter::ContentStore& store, CancelToken cancel)
      : store_(store), cancel_(std::move(cancel)) {}
  absl::StatusOr<std::unique_ptr<registry::BlobWriter>> Writer(
      const oci::Descriptor& desc) override;

 private:
  snapshotter::ContentStore& store_;
  CancelToken cancel_;
};

// --- kilnctl image import -------------------------------------------------------------------

struct ImportedImageInfo {
  std::string name;  // normalized ("docker.io/library/busybox:latest")
  oci::Descriptor target;
  snapshotter::ImportedImage image;
};

// The image store name for `name`: normalized, ":latest" added when it has no tag or digest.
absl::StatusOr<std::string> ImageStoreName(std::string_view name);

// Imports the OCI layout `layout_dir` (its entry `layout_ref`, "" when it has one; nested
// indexes resolved for `platform`, default host) and names it `name`.
absl::StatusOr<ImportedImageInfo> ImportOciLayoutImage(Worker& worker,
                                                       const std::string& layout_dir,
                                                       std::string_view name,
                                                       const std::string& layout_ref = "",
                                                       const oci::Platform* platform = nullptr);

// Turns the root filesystem `rootfs_dir` into a one-layer image (config from `options`) and
// names it `name`.
absl::StatusOr<ImportedImageInfo> ImportRootfsImage(
    Worker& worker, const std::string& rootfs_dir, std::string_view name,
    const snapshotter::RootfsImportOptions& options = {});

}  // namespace kiln::engine
