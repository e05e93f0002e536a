// Exporter attributes (`buildctl --output type=T,k=v,...`) parsed into options, with BuildKit
// v0.11.6's keys, defaults and error texts.  Unknown keys are ignored, as BuildKit keeps them
// as metadata.  Booleans follow Go's strconv.ParseBool; an empty value means true.
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "base/oci.h"
#include "snapshotter/compression.h"

namespace kiln::engine {

using ExporterAttrs = std::map<std::string, std::string>;

// OCI annotations from `annotation[-<type>][<platform>].<key>=<value>` attributes.
struct AnnotationOptions {
  struct Set {
    std::map<std::string, std::string> manifest;
    std::map<std::string, std::string> manifest_descriptor;
  };
  Set all;                                 // keys without a platform
  std::map<std::string, Set> by_platform;  // "os/arch[/variant]"
  bool index = false;                      // index or index-descriptor annotations were given
  // The manifest and descriptor annotations for `platform` (nullopt: unqualified only).
  Set For(const std::optional<oci::Platform>& platform) const;
};

// Shared by the image, oci and docker exporters (BuildKit's ImageCommitOpts).
struct ImageExportOptions {
  std::string name;  // comma-separated; "*" takes the frontend's image.name
  snapshotter::Compression compression = snapshotter::Compression::kGzip;
  int level = -1;  // Kiln compressor level, -1 default
  bool force_compression = false;
  bool oci_types = false;
  std::optional<int64_t> epoch;  // source-date-epoch
  bool rewrite_timestamp = false;
  AnnotationOptions annotations;

  // image exporter
  bool push = false;
  bool push_by_digest = false;
  bool insecure = false;
  bool unpack = false;
  bool store = true;
  bool name_canonical = false;
  std::string dangling_prefix;

  // oci/docker exporters
  bool tar = true;
};

// `type` is "image", "oci" or "docker" (it sets the oci-mediatypes default: true for oci).
absl::StatusOr<ImageExportOptions> ParseImageExportOptions(std::string_view type,
                                                           const ExporterAttrs& attrs);

// local and tar exporters.
struct FsExportOptions {
  std::optional<int64_t> epoch;
};
absl::StatusOr<FsExportOptions> ParseFsExportOptions(const ExporterAttrs& attrs);

// Go's strconv.ParseBool.
std::optional<bool> ParseGoBool(std::string_view v);

// BuildKit's compression-level (gzip 0-9, zstd 0-22) as Kiln's compressor level: gzip maps
// onto ISA-L's 0-3 (0 -> 0, 1-3 -> 1, 4-6 -> 2, 7-9 -> 3), zstd passes through (0: default).
absl::StatusOr<int> MapCompressionLevel(snapshotter::Compression c, int64_t level);

}  // namespace kiln::engine
