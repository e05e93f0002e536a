// OCI image-spec value types and their JSON codecs.
//
// These are the documents Kiln reads from base images and writes for the images it builds: the
// image config blob, manifests, indexes and descriptors.  Encoding follows the field order of
// the Go structs BuildKit marshals (encoding/json writes struct fields in declaration order and
// map keys sorted), so a config Kiln writes is byte-identical to BuildKit's for the same values.
//
// Decoding accepts any field order, ignores unknown fields and rejects wrong types with
// InvalidArgument naming the field.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/digest.h"

namespace kiln::oci {

inline constexpr char kMediaTypeImageManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kMediaTypeImageIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kMediaTypeImageConfig[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kMediaTypeLayer[] = "application/vnd.oci.image.layer.v1.tar";
inline constexpr char kMediaTypeLayerGzip[] = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr char kMediaTypeLayerZstd[] = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr char kMediaTypeDockerManifest[] =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kMediaTypeDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kMediaTypeDockerConfig[] = "application/vnd.docker.container.image.v1+json";
inline constexpr char kMediaTypeDockerLayerGzip[] =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr char kMediaTypeDockerLayer[] = "application/vnd.docker.image.rootfs.diff.tar";

struct Platform {
  std::string architecture;
  std::string os;
  std::string variant;
  std::string os_version;
  std::vector<std::string> os_features;

  bool operator==(const Platform&) const = default;
};

// "linux/amd64", "linux/arm64/v8", "amd64" (os defaults to linux).  Architecture aliases are
// normalized as containerd does (x86_64 -> amd64, aarch64 -> arm64; arm64 drops variant v8).
absl::StatusOr<Platform> ParsePlatform(std::string_view text);
// "os/arch[/variant]".
std::string FormatPlatform(const Platform& p);
// The platform of this machine (linux and the build's architecture).
Platform HostPlatform();

// containerd's platforms normalizeOS: lower case, "macos" -> "darwin".
std::string NormalizeOs(std::string_view os);
// containerd's platforms normalizeArch: lower case, the aliases and their default variants
// (i386 -> 386, x86_64 -> amd64 without v1, aarch64 -> arm64 without v8, armhf -> arm/v7,
// armel -> arm/v6, arm -> arm/v7, "5"/"6"/"8" -> "v5"/"v6"/"v8").  {architecture, variant}.
std::pair<std::string, std::string> NormalizeArchVariant(std::string_view arch,
                                                         std::string_view variant);
// containerd's platforms.Normalize (os and architecture; an empty os stays empty).
Platform NormalizePlatform(Platform p);

// Docker's HEALTHCHECK configuration; durations are nanoseconds as in Go's time.Duration.
struct HealthConfig {
  std::vector<std::string> test;
  int64_t interval = 0;
  int64_t timeout = 0;
  int64_t start_period = 0;
  int64_t start_interval = 0;
  int retries = 0;

  bool operator==(const HealthConfig&) const = default;
};

// The execution parameters of an image: OCI ImageConfig plus Docker's extensions, as BuildKit's
// dockerfile frontend keeps them.
struct ImageConfig {
  std::string user;
  std::map<std::string, bool> exposed_ports;           // "80/tcp" -> present
  std::vector<std::string> env;                        // "K=V", in order
  std::optional<std::vector<std::string>> entrypoint;  // nullopt: not set; empty: set to []
  std::optional<std::vector<std::string>> cmd;
  std::map<std::string, bool> volumes;
  std::string working_dir;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  bool args_escaped = false;
  std::optional<HealthConfig> healthcheck;
  std::vector<std::string> on_build;
  std::vector<std::string> shell;

  bool operator==(const ImageConfig&) const = default;
};

struct History {
  std::string created;  // RFC 3339; empty when unknown
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;

  bool operator==(const History&) const = default;
};

struct RootFS {
  std::string type = "layers";
  std::vector<Digest> diff_ids;

  bool operator==(const RootFS&) const = default;
};

// The image config blob.
struct Image {
  std::string created;  // RFC 3339
  std::string author;
  Platform platform;
  ImageConfig config;
  RootFS rootfs;
  std::vector<History> history;

  bool operator==(const Image&) const = default;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::vector<std::string> urls;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform;

  bool operator==(const Descriptor&) const = default;
};

// An image manifest (OCI or Docker schema 2; `media_type` tells which).
struct Manifest {
  int schema_version = 2;
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::map<std::string, std::string> annotations;

  bool operator==(const Manifest&) const = default;
};

// An image index or Docker manifest list.
struct Index {
  int schema_version = 2;
  std::string media_type;
  std::vector<Descriptor> manifests;
  std::map<std::string, std::string> annotations;

  bool operator==(const Index&) const = default;
};

std::string EncodeImage(const Image& image);
std::string EncodeImageConfig(const ImageConfig& config);
std::string EncodeManifest(const Manifest& manifest);
std::string EncodeIndex(const Index& index);
std::string EncodeDescriptor(const Descriptor& desc);

absl::StatusOr<Image> DecodeImage(std::string_view json);
absl::StatusOr<ImageConfig> DecodeImageConfig(std::string_view json);
absl::StatusOr<Manifest> DecodeManifest(std::string_view json);
absl::StatusOr<Index> DecodeIndex(std::string_view json);
absl::StatusOr<Descriptor> DecodeDescriptor(std::string_view json);

// The "mediaType" field of a manifest-like document, or "" when absent.
absl::StatusOr<std::string> SniffMediaType(std::string_view json);

}  // namespace kiln::oci
