// Internal to registry/: the distribution-spec requests, one function per protocol step.
//
// Each takes a Session for the repository's endpoint and a repository path ("library/alpine").
// Small requests retry through Session::Call; blob transfers run their own retry loops because
// they resume rather than repeat.
//
// Thread-safety: the functions are reentrant; arguments belong to the caller.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "registry/blob_io.h"
#include "registry/registry.h"
#include "registry/session.h"

namespace kiln::registry::internal {

inline constexpr size_t kMaxManifestBytes = 8 << 20;

// GET /v2/<repo>/manifests/<tag or digest>.  With `expected`, the bytes must hash to it
// (DataLoss otherwise).
absl::StatusOr<FetchedManifest> GetManifest(Session& s, const std::string& repo,
                                            const std::string& tag_or_digest,
                                            const std::optional<Digest>& expected);

// HEAD /v2/<repo>/manifests/<tag or digest>; falls back to GET when the registry sends no
// Docker-Content-Digest.
absl::StatusOr<oci::Descriptor> HeadManifest(Session& s, const std::string& repo,
                                             const std::string& tag_or_digest);

// PUT /v2/<repo>/manifests/<tag or digest> with the exact bytes; the registry's
// Docker-Content-Digest, when sent, must equal their sha256.
absl::Status PutManifest(Session& s, const std::string& repo, const std::string& tag_or_digest,
                         const ManifestToPush& manifest);

// The media type of a manifest document: `declared` (a Content-Type) unless it is generic, else
// the document's mediaType, else guessed from its fields.
std::string ManifestMediaType(std::string_view declared, std::string_view bytes);

// GET /v2/<repo>/blobs/<digest> into `writer`, resuming from writer.Offset() and after
// interrupted transfers; commits only after size and digest match.
absl::Status DownloadBlob(Session& s, const std::string& repo, const oci::Descriptor& desc,
                          BlobWriter& writer);

// HEAD /v2/<repo>/blobs/<digest>.
absl::StatusOr<bool> BlobExists(Session& s, const std::string& repo, const Digest& digest);

enum class BlobOutcome { kSkipped, kMounted, kUploaded };

// The PATCH size to use with `host` when `wanted` is configured (0: no chunks).  GHCR refuses
// PATCH bodies above 4 MiB, so its chunks are capped there; a single streamed PUT is fine.
inline uint64_t EffectiveChunkSize(std::string_view host, uint64_t wanted) {
  constexpr uint64_t kGhcrMaxChunk = 4 << 20;
  return host == "ghcr.io" && wanted > kGhcrMaxChunk ? kGhcrMaxChunk : wanted;
}

struct UploadSettings {
  uint64_t chunk_size = 0;  // 0: one streamed PUT
};

// Makes `desc` present in `repo`: HEAD, then a mount from each of `mount_from` (same
// registry), then an upload from `provider` with retries.
absl::StatusOr<BlobOutcome> PushBlob(Session& s, const std::string& repo,
                                     const oci::Descriptor& desc, BlobProvider& provider,
                                     const std::vector<std::string>& mount_from,
                                     const UploadSettings& settings);

// Uploads a blob of unknown digest in chunks of `chunk_size`, hashing as it goes.
absl::StatusOr<oci::Descriptor> PushStream(Session& s, const std::string& repo,
                                           BlobReader& producer, std::string media_type,
                                           uint64_t chunk_size);

}  // namespace kiln::registry::internal
