#include "engine/ops/image_resolver.h"

#include <mutex>
#include <thread>

#include "base/status.h"
#include "base/strings.h"
#include "engine/worker/distribution_source.h"
#include "engine/worker/worker.h"
#include "nlohmann/json.hpp"
#include "registry/platform_match.h"

namespace kiln::engine {
namespace {

constexpr int64_t kMaxManifestSize = 16 << 20;
constexpr int kMaxIndexDepth = 4;

bool IsIndexMediaType(std::string_view mt) {
  return mt == oci::kMediaTypeImageIndex || mt == oci::kMediaTypeDockerManifestList;
}

// The media type of a manifest-like document: its declared one, else guessed from its shape
// (OCI allows manifests and indexes without mediaType).
std::string DocumentMediaType(std::string_view declared, const std::string& bytes) {
  if (!declared.empty()) return std::string(declared);
  auto sniffed = oci::SniffMediaType(bytes);
  if (sniffed.ok() && !sniffed->empty()) return *sniffed;
  auto j = nlohmann::json::parse(bytes, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("manifests")) {
    return oci::kMediaTypeImageIndex;
  }
  return oci::kMediaTypeImageManifest;
}

// Feeds a content store ingest from a registry download.
class ContentBlobWriter : public registry::BlobWriter {
 public:
  ContentBlobWriter(snapshotter::ContentStore& store, std::string ref,
                    std::unique_ptr<snapshotter::ContentWriter> writer)
      : store_(store), ref_(std::move(ref)), writer_(std::move(writer)) {}

  ~ContentBlobWriter() override {
    if (committed_) return;
    // A failed or corrupt download must leave nothing behind, not even a resumable ingest.
    writer_.reset();
    (void)store_.AbortIngest(ref_);
  }

  uint64_t Offset() const override { return static_cast<uint64_t>(writer_->offset()); }
  absl::Status Write(std::string_view data) override {
    return writer_->Write(data.data(), data.size());
  }
  absl::Status Truncate() override { return writer_->Truncate(0); }
  absl::Status ReadBack(const std::function<absl::Status(std::string_view)>&) override {
    if (writer_->offset() == 0) return absl::OkStatus();
    // The ingest cannot be read back; the client then restarts the download from zero.
    return absl::UnimplementedError("content ingest cannot be replayed");
  }
  absl::Status Commit(const oci::Descriptor& desc) override {
    absl::Status st = writer_->Commit(desc.digest, desc.size);
    committed_ = st.ok();
    return st;
  }

 private:
  snapshotter::ContentStore& store_;
  std::string ref_;
  std::unique_ptr<snapshotter::ContentWriter> writer_;
  bool committed_ = false;
};

// Labels blobs downloaded from `repo` with it, so a later push to that registry (maybe by another
// process) mounts them instead of uploading them (containerd's AppendDistributionSourceLabel).
absl::Status RecordSource(snapshotter::ContentStore& store, const ImageReference& repo,
                          const std::vector<oci::Descriptor>& blobs) {
  for (const auto& b : blobs) {
    KILN_RETURN_IF_ERROR_CTX(AddDistributionSource(store, b.digest, repo),
                             StrCat("record where blob ", b.digest.str(), " came from"));
  }
  return absl::OkStatus();
}

absl::Status StoreDocument(snapshotter::ContentStore& store, const std::string& bytes,
                           const Digest& digest) {
  return snapshotter::WriteBlob(store, bytes, digest).status();
}

}  // namespace

absl::StatusOr<ImageResolveMode> ParseImageResolveMode(std::string_view text) {
  if (text.empty() || text == "default") return ImageResolveMode::kDefault;
  if (text == "pull") return ImageResolveMode::kPull;
  if (text == "local") return ImageResolveMode::kLocal;
  return absl::InvalidArgumentError(
      StrCat("invalid image resolve mode ", Quote(text), " (want default, pull or local)"));
}

std::string_view ImageResolveModeName(ImageResolveMode mode) {
  switch (mode) {
    case ImageResolveMode::kPull:
      return "pull";
    case ImageResolveMode::kLocal:
      return "local";
    default:
      return "default";
  }
}

absl::StatusOr<std::unique_ptr<registry::BlobWriter>> ContentStoreBlobSink::Writer(
    const oci::Descriptor& desc) {
  snapshotter::WriterOptions o;
  o.ref = StrCat("pull-", desc.digest.str());
  o.expected = desc.digest;
  auto w = snapshotter::OpenWriterWithRetry(store_, o, cancel_);
  if (absl::IsAlreadyExists(w.status())) return std::unique_ptr<registry::BlobWriter>();
  if (!w.ok()) return w.status();
  if ((*w)->offset() > 0) KILN_RETURN_IF_ERROR((*w)->Truncate(0));
  return std::unique_ptr<registry::BlobWriter>(new ContentBlobWriter(store_, o.ref, std::move(*w)));
}

absl::StatusOr<ImageResolution> ImageResolver::Resolve(std::string_view text,
                                                       const oci::Platform& platform,
                                                       ImageResolveMode mode,
                                                       const ImageResolveOptions& options) const {
  KILN_ASSIGN_OR_RETURN(ImageReference ref, ParseNormalizedReference(text));
  return Resolve(ref, platform, mode, options);
}

absl::StatusOr<ImageResolution> ImageResolver::Resolve(const ImageReference& in,
                                                       const oci::Platform& platform,
                                                       ImageResolveMode mode,
                                                       const ImageResolveOptions& options) const {
  const ImageReference ref = in.NameOnly() ? in.WithDefaultTag() : in;
  const std::string what =
      StrCat("resolve image ", Quote(ref.String()), " for ", oci::FormatPlatform(platform),
             " (resolve mode ", ImageResolveModeName(mode), ")");
  if (ref.digest) {
    oci::Descriptor pinned;
    pinned.digest = *ref.digest;
    auto local = FromContent(ref, pinned, platform);
    if (local.ok()) {
      local->origin = ImageResolution::Origin::kContentStore;
      return local;
    }
    if (!absl::IsNotFound(local.status())) return Annotate(local.status(), what);
  }
  std::string local_miss;  // why a stored name did not resolve, for the final message
  if (mode != ImageResolveMode::kPull) {
    auto record = worker_->images().Get(ref.String());
    if (record.ok()) {
      if (ref.digest && record->target.digest != *ref.digest) {
        // The name points elsewhere now; the pinned digest wins (and is not stored).
      } else {
        auto local = FromContent(ref, record->target, platform);
        if (local.ok()) {
          local->origin = ImageResolution::Origin::kImageStore;
          return local;
        }
        if (!absl::IsNotFound(local.status()) || mode == ImageResolveMode::kLocal) {
          return Annotate(local.status(), what);
        }
        local_miss = StrCat(" (", local.status().message(), ")");
      }
    } else if (!absl::IsNotFound(record.status())) {
      return Annotate(record.status(), what);
    }
  }
  if (mode == ImageResolveMode::kLocal) {
    return absl::NotFoundError(StrCat(what, ": not found in the local image store"));
  }
  if (registry_ == nullptr) {
    return absl::NotFoundError(StrCat(what, ": not found locally", local_miss,
                                      ", and this engine has no registry access"));
  }
  auto remote = FromRegistry(ref, platform, options);
  if (!remote.ok()) return Annotate(remote.status(), what);
  return remote;
}

absl::StatusOr<ImageResolution> ImageResolver::FromContent(const ImageReference& ref,
                                                           const oci::Descriptor& target,
                                                           const oci::Platform& platform) const {
  snapshotter::ContentStore& store = worker_->content();
  ImageResolution r;
  r.ref = ref;
  r.platform = platform;
  oci::Descriptor desc = target;
  KILN_ASSIGN_OR_RETURN(std::string bytes,
                        snapshotter::ReadBlob(store, desc.digest, kMaxManifestSize));
  std::string media_type = DocumentMediaType(desc.media_type, bytes);
  r.target = desc;
  r.target.media_type = media_type;
  r.target.size = static_cast<int64_t>(bytes.size());
  registry::PlatformMatcher matcher(platform);
  for (int depth = 0; IsIndexMediaType(media_type); ++depth) {
    if (depth >= kMaxIndexDepth) {
      return absl::FailedPreconditionError(
          StrCat("index ", desc.digest.str(), ": indexes nested too deep"));
    }
    KILN_ASSIGN_OR_RETURN(oci::Index index, oci::DecodeIndex(bytes));
    auto pick = registry::SelectIndexEntry(index.manifests, matcher);
    if (!pick) {
      return absl::NotFoundError(StrCat("index ", desc.digest.str(), " has no manifest for ",
                                        oci::FormatPlatform(platform)));
    }
    desc = index.manifests[*pick];
    KILN_ASSIGN_OR_RETURN(bytes, snapshotter::ReadBlob(store, desc.digest, kMaxManifestSize));
    media_type = DocumentMediaType(desc.media_type, bytes);
  }
  r.manifest_digest = desc.digest;
  r.manifest_bytes = std::move(bytes);
  KILN_ASSIGN_OR_RETURN(r.manifest, oci::DecodeManifest(r.manifest_bytes));
  if (r.manifest.media_type.empty()) r.manifest.media_type = media_type;
  r.config_digest = r.manifest.config.digest;
  KILN_ASSIGN_OR_RETURN(r.config_bytes,
                        snapshotter::ReadBlob(store, r.config_digest, kMaxManifestSize));
  auto config = oci::DecodeImage(r.config_bytes);
  if (!config.ok()) {
    return Annotate(config.status(), StrCat("image config ", r.config_digest.str()));
  }
  r.config = std::move(*config);
  return r;
}

absl::StatusOr<ImageResolution> ImageResolver::FromRegistry(
    const ImageReference& ref, const oci::Platform& platform,
    const ImageResolveOptions& options) const {
  registry::CallOptions call;
  call.cancel = options.cancel;
  call.credentials = options.credentials;
  KILN_ASSIGN_OR_RETURN(registry::ResolvedImage img, registry_->Resolve(ref, platform, call));
  snapshotter::ContentStore& store = worker_->content();
  ImageResolution r;
  r.ref = ref;
  r.platform = platform;
  r.origin = ImageResolution::Origin::kRegistry;
  if (img.index) {
    KILN_RETURN_IF_ERROR(StoreDocument(store, img.index->bytes, img.index->digest));
    r.target.media_type = DocumentMediaType(img.index->media_type, img.index->bytes);
    r.target.digest = img.index->digest;
    r.target.size = static_cast<int64_t>(img.index->bytes.size());
  } else {
    r.target.media_type = DocumentMediaType(img.media_type, img.manifest);
    r.target.digest = img.digest;
    r.target.size = static_cast<int64_t>(img.manifest.size());
  }
  KILN_RETURN_IF_ERROR(StoreDocument(store, img.manifest, img.digest));
  KILN_RETURN_IF_ERROR(StoreDocument(store, img.config, img.config_descriptor.digest));
  r.manifest_digest = img.digest;
  r.manifest_bytes = std::move(img.manifest);
  KILN_ASSIGN_OR_RETURN(r.manifest, oci::DecodeManifest(r.manifest_bytes));
  if (r.manifest.media_type.empty()) r.manifest.media_type = img.media_type;
  r.config_digest = img.config_descriptor.digest;
  r.config_bytes = std::move(img.config);
  auto config = oci::DecodeImage(r.config_bytes);
  if (!config.ok()) {
    return Annotate(config.status(), StrCat("image config ", r.config_digest.str()));
  }
  r.config = std::move(*config);
  return r;
}

absl::Status ImageResolver::FetchBlobs(const ImageReference& repo,
                                       const std::vector<oci::Descriptor>& blobs,
                                       const ImageResolveOptions& options) const {
  snapshotter::ContentStore& store = worker_->content();
  std::vector<oci::Descriptor> missing;
  auto stored = [&options](const Digest& d) {
    if (options.blob_stored) options.blob_stored(d);
  };
  for (const auto& b : blobs) {
    auto info = store.Info(b.digest);
    if (info.ok()) {
      stored(b.digest);
      continue;
    }
    if (!absl::IsNotFound(info.status())) return info.status();
    missing.push_back(b);
  }
  if (missing.empty()) return absl::OkStatus();
  if (registry_ == nullptr) {
    return absl::FailedPreconditionError(
        StrCat("blob ", missing[0].digest.str(), " of image ", Quote(repo.String()),
               " is not in the content store, and this engine has no registry access"));
  }
  ContentStoreBlobSink sink(store, options.cancel);
  registry::CallOptions call;
  call.cancel = options.cancel;
  call.credentials = options.credentials;
  call.progress = options.progress;
  // One thread per blob; the Registry caps concurrent transfers per host.
  std::mutex mu;
  absl::Status first;
  std::vector<std::thread> threads;
  threads.reserve(missing.size());
  for (const auto& desc : missing) {
    threads.emplace_back([&, desc] {
      absl::Status st = registry_->PullBlob(repo, desc, sink, call);
      if (st.ok()) stored(desc.digest);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = Annotate(st, StrCat("pull ", Quote(repo.Name())));
      }
    });
  }
  for (auto& t : threads) t.join();
  KILN_RETURN_IF_ERROR(first);
  return RecordSource(store, repo, missing);
}

absl::StatusOr<std::string> ImageStoreName(std::string_view name) {
  KILN_ASSIGN_OR_RETURN(ImageReference ref, ParseNormalizedReference(name));
  if (ref.NameOnly()) ref = ref.WithDefaultTag();
  return ref.String();
}

namespace {

absl::StatusOr<ImportedImageInfo> NameImported(Worker& worker, std::string_view name,
                                               snapshotter::ImportedImage image) {
  ImportedImageInfo info;
  KILN_ASSIGN_OR_RETURN(info.name, ImageStoreName(name));
  KILN_ASSIGN_OR_RETURN(snapshotter::ContentInfo ci, worker.content().Info(image.manifest_digest));
  info.target.media_type =
      image.manifest.media_type.empty() ? oci::kMediaTypeImageManifest : image.manifest.media_type;
  info.target.digest = image.manifest_digest;
  info.target.size = ci.size;
  KILN_RETURN_IF_ERROR(worker.images().Put(info.name, info.target));
  info.image = std::move(image);
  return info;
}

}  // namespace

absl::StatusOr<ImportedImageInfo> ImportOciLayoutImage(Worker& worker,
                                                       const std::string& layout_dir,
                                                       std::string_view name,
                                                       const std::string& layout_ref,
                                                       const oci::Platform* platform) {
  const std::string what = StrCat("import OCI layout ", Quote(layout_dir), " as ", Quote(name));
  KILN_RETURN_IF_ERROR_CTX(ImageStoreName(name).status(), what);
  auto image = snapshotter::ImportOciLayout(worker.content(), layout_dir, layout_ref, platform);
  if (!image.ok()) return Annotate(image.status(), what);
  auto info = NameImported(worker, name, std::move(*image));
  if (!info.ok()) return Annotate(info.status(), what);
  return info;
}

absl::StatusOr<ImportedImageInfo> ImportRootfsImage(
    Worker& worker, const std::string& rootfs_dir, std::string_view name,
    const snapshotter::RootfsImportOptions& options) {
  const std::string what =
      StrCat("import root filesystem ", Quote(rootfs_dir), " as ", Quote(name));
  KILN_RETURN_IF_ERROR_CTX(ImageStoreName(name).status(), what);
  auto image = snapshotter::ImportRootfs(worker.content(), rootfs_dir, options);
  if (!image.ok()) return Annotate(image.status(), what);
  auto info = NameImported(worker, name, std::move(*image));
  if (!info.ok()) return Annotate(info.status(), what);
  return info;
}

}  // namespace kiln::engine
