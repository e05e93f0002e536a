// The OCI distribution (v1.1) client the engine uses: resolve, fetch, pull and push images.
//
// One Registry serves the whole process (the daemon creates one and shares it), because it owns
// what must be process-wide:
//   - connection reuse (through its HttpTransport) and, per registry host, a cap on concurrent
//     blob transfers (default 8);
//   - token caches per (registry, credential, scope set);
//   - in-flight maps keyed by (registry, digest): a blob pushed by several concurrent pushes and
//     to several repositories is uploaded once (the others wait, then find it or mount it), and
//     two pulls of one blob into the same BlobSink download it once;
//   - where each blob is known to live, so a push to another repository of the same registry
//     mounts instead of uploading.
//
// Pull: Resolve() picks the platform manifest (containerd's matcher) and returns it with its
// config; PullBlob() streams a layer into the caller's BlobWriter, resuming with Range requests
// after a dropped connection, and commits only after size and digest match (else DataLoss).
//
// Push: PushImage() checks each blob (HEAD), mounts it from a repository that has it, or uploads
// it (one streamed PUT by default, PATCH chunks when the host is configured so; ghcr.io never
// gets chunks above 4 MiB), retrying 429/5xx/connection failures with backoff and resuming after
// 416 from the upload status; only when every blob of a repository is present does its manifest
// go up, by tag and/or digest, as the exact bytes given.  PushStream() uploads a layer whose
// digest is known only at the end (the exporter compresses while uploading).
//
// Auth: anonymous, Basic and Bearer (see auth.h), with credentials from CallOptions or the
// Registry's default CredentialSource.  No secret appears in an error message.
//
// Thread-safety: every method may be called concurrently from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/digest.h"
#include "base/oci.h"
#include "base/reference.h"
#include "registry/blob_io.h"
#include "registry/clock.h"
#include "registry/credentials.h"
#include "registry/errors.h"
#include "registry/http.h"

namespace kiln::registry {

// Settings for one registry host (keyed by the name used in references: "docker.io",
// "ghcr.io", "127.0.0.1:5000").
struct HostConfig {
  // Plain HTTP.  Hosts "localhost", "127.0.0.1" and "[::1]" (any port) use it unless a
  // HostConfig for them says otherwise, as BuildKit does.
  std::optional<bool> plain_http;
  bool insecure_skip_verify = false;  // HTTPS without certificate verification
  std::string ca_pem;  // PEM CA certificates trusted for this host instead of the system's
  // Pull mirrors tried in order before the host itself ("mirror:5000", "http://10.0.0.2:5000").
  // Only pulls use them.
  std::vector<std::string> mirrors;
  // PATCH size for blobs of known digest; 0 uploads each blob in one streamed PUT.
  uint64_t chunk_size = 0;
  int max_concurrency = 0;  // 0: RegistryOptions::max_concurrency_per_registry
};

struct RegistryOptions {
  std::map<std::string, HostConfig> hosts;
  int max_concurrency_per_registry = 8;
  // PATCH size for PushStream (digest unknown until the end); one chunk is buffered to resend
  // it after a failure.  Capped at 4 MiB for ghcr.io.
  uint64_t stream_chunk_size = 8 << 20;
  RetryPolicy retry;
  ConnectionOptions connection;  // timeouts; insecure_skip_verify comes from HostConfig
  int io_threads = 32;           // pool running the blob transfers of PushImage
};

// One step of a blob's transfer, for progress lines (no secrets in here).
struct BlobProgress {
  enum class Phase { kStarted, kTransferring, kSkipped, kMounted, kDone, kRetrying };
  Phase phase;
  std::string repository;  // "host/path"
  Digest digest;
  int64_t done = 0;   // bytes
  int64_t total = 0;  // -1 when unknown (streams)
};

struct CallOptions {
  CancelToken cancel;
  // Credentials for this call (the platform's GHCR / ACR token); nullptr uses the Registry's.
  std::shared_ptr<CredentialSource> credentials;
  // Called from the transfer threads, concurrently; must be quick and thread-safe.
  std::function<void(const BlobProgress&)> progress;
};

// A manifest or index as the registry served it.
struct FetchedManifest {
  Digest digest;           // sha256 of `bytes`, checked against the reference's digest
  std::string media_type;  // Content-Type, or the document's mediaType
  std::string bytes;
};

struct ResolvedImage {
  Digest digest;           // of `manifest`, the platform's image manifest
  std::string media_type;  // of `manifest`
  std::string manifest;    // exact bytes
  // The index the reference named, when it named one (digest and bytes); empty otherwise.
  std::optional<FetchedManifest> index;
  oci::Descriptor config_descriptor;
  std::string config;  // the image config blob, verified
};

struct ManifestToPush {
  std::string bytes;       // exact bytes; their sha256 is the manifest digest
  std::string media_type;  // empty: the document's mediaType
};

struct PushRequest {
  // Where to push.  A reference with a tag is pushed by tag, one with a digest by digest (which
  // must match the manifest), one with both both ways; several names may share a registry
  // (blobs then go up once and are mounted into the other repositories) or not.
  std::vector<ImageReference> targets;
  ManifestToPush manifest;
  // Manifests an index refers to: pushed by digest to every target before `manifest`.
  std::vector<ManifestToPush> children;
  // Blobs to make present (configs and layers).  Empty: every blob the manifests reference.
  std::vector<oci::Descriptor> blobs;
  BlobProvider* provider = nullptr;  // not owned
  // Repositories known to hold some blobs (e.g. the base image's), tried as mount sources
  // when they are on a target's registry.
  std::map<Digest, std::vector<ImageReference>> mount_sources;
};

struct PushStats {
  int uploaded = 0;  // blobs whose bytes went over the wire
  int mounted = 0;
  int skipped = 0;  // already present
  int deduped = 0;  // waited for another push of the same blob
};

struct PushResult {
  Digest digest;  // of PushRequest::manifest
  PushStats stats;
};

class Registry {
 public:
  // `credentials` may be null (anonymous unless CallOptions bring some).  `transport` null means
  // a CurlTransport.  `clock` must outlive the Registry.
  explicit Registry(RegistryOptions options,
                    std::shared_ptr<CredentialSource> credentials = nullptr,
                    std::shared_ptr<HttpTransport> transport = nullptr,
                    Clock* clock = &RealClock());
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The manifest `ref` names and, through an index, the one for `platform` (nullopt: this
  // machine's), with its config.  NotFound when no entry matches.
  absl::StatusOr<ResolvedImage> Resolve(const ImageReference& ref,
                                        const std::optional<oci::Platform>& platform,
                                        const CallOptions& call = {});

  // The manifest or index `ref` names (by tag or digest), without following an index.
  absl::StatusOr<FetchedManifest> FetchManifest(const ImageReference& ref,
                                                const CallOptions& call = {});

  // HEAD of `ref`: the descriptor (digest, size, media type) without the body.
  absl::StatusOr<oci::Descriptor> HeadManifest(const ImageReference& ref,
                                               const CallOptions& call = {});

  // A small blob (config, attestation) in memory, verified; `desc.size` must be at most
  // `max_size`.
  absl::StatusOr<std::string> FetchBlob(const ImageReference& repo, const oci::Descriptor& desc,
                                        const CallOptions& call = {}, size_t max_size = 64 << 20);

  // Downloads `desc` from `repo` (its tag/digest are ignored) into `writer`, resuming from
  // writer.Offset().  DataLoss when size or digest differ (the writer is then not committed).
  absl::Status PullBlob(const ImageReference& repo, const oci::Descriptor& desc, BlobWriter& writer,
                        const CallOptions& call = {});

  // Same through a content store: concurrent pulls of one blob run once.
  absl::Status PullBlob(const ImageReference& repo, const oci::Descriptor& desc, BlobSink& sink,
                        const CallOptions& call = {});

  // Makes `desc` present in `repo`: HEAD, mount from a known repository, or upload from
  // `provider`.  Deduplicated against concurrent pushes of the same blob.
  absl::Status PushBlob(const ImageReference& repo, const oci::Descriptor& desc,
                        BlobProvider& provider, const CallOptions& call = {});

  // Uploads a blob whose digest is unknown until `producer` ends, in PATCH chunks; returns its
  // descriptor (with `media_type`).  A blob that turns out to exist already is fine.
  absl::StatusOr<oci::Descriptor> PushStream(const ImageReference& repo, BlobReader& producer,
                                             std::string media_type, const CallOptions& call = {});

  // Pushes an image (or index with `children`) to every target; see PushRequest.
  absl::StatusOr<PushResult> PushImage(const PushRequest& request, const CallOptions& call = {});

  // Copies the image `src` names to `dst` (a tag or digest).  With a platform, only that
  // platform's manifest is copied; without, the whole index.  Blobs are mounted when both are on
  // one registry, else streamed through memory (bounded).
  absl::StatusOr<PushResult> Copy(const ImageReference& src, const ImageReference& dst,
                                  const std::optional<oci::Platform>& platform,
                                  const CallOptions& call = {});

  // The host ("docker.io" -> "registry-1.docker.io") and scheme the API of a registry name is
  // reached at, e.g. "https://registry-1.docker.io".
  std::string EndpointFor(const std::string& registry_host) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::registry
