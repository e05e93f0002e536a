// Exporters: what happens to a build's result (`buildctl --output type=T,k=v,...`).
//
//   type=image   the image documents into the content store, the image store under `name`
//                (a comma-separated list), optionally pushed (`push=true`)
//   type=oci     an OCI image layout as a tarball (or a directory with tar=false)
//   type=docker  the same tarball plus docker-archive's manifest.json (`docker load`,
//                `podman load`); Docker media types by default
//   type=local   the final filesystem copied into a directory
//   type=tar     the final filesystem as one tar stream
//
// The control layer resolves an exporter once per build from the request's type and attrs
// (NewExporter validates the attrs, as BuildKit's Resolve does) and calls Export with the
// solved result, the frontend's metadata and where the bytes go:
//
//   KILN_ASSIGN_OR_RETURN(auto exp, NewExporter(req.exporter, req.exporter_attrs,
//                                               {&worker, &registry}));
//   ExportInput in{.result = ref, .image_config = meta["containerimage.config"], ...};
//   KILN_ASSIGN_OR_RETURN(ExportResponse resp, exp->Export(in, {.stream = &session_sink},
//                                                         cancel));
//
// ExportTarget: oci/docker (tar=true) and tar write a tarball to `stream` or to `path` (a file
// replaced atomically; "-" is stdout); local and oci/docker with tar=false write into the
// directory `path`; image ignores the target.  When the target is empty, the attr `dest` is
// used (in-process callers pass --output attrs through unchanged; buildctl keeps `dest` on
// the client).
//
// The response has BuildKit's keys (image, oci, docker): containerimage.digest (manifest),
// containerimage.config.digest, containerimage.descriptor (base64 of the manifest
// descriptor's JSON) and image.name; local and tar return an empty map.
//
// Attributes (BuildKit v0.11.6 names; unknown keys are ignored):
//   image/oci/docker: name, compression=gzip|zstd|uncompressed, compression-level,
//     force-compression, oci-mediatypes (default false for image and docker, true for oci),
//     source-date-epoch, rewrite-timestamp (newer BuildKit: clamp layer file times to the
//     epoch), annotation[-manifest|-manifest-descriptor][<platform>].<key>
//   image: push, push-by-digest, registry.insecure (plain HTTP to the names' registries),
//     store (default true), unpack, name-canonical, dangling-name-prefix
//   oci/docker: tar (default true)
//   local/tar: source-date-epoch (every file's mtime)
//
// Thread-safety: an Exporter may run several exports at once.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/oci.h"
#include "engine/exporter/options.h"
#include "engine/exporter/output.h"
#include "engine/solver/progress.h"
#include "engine/solver/types.h"
#include "engine/worker/worker.h"
#include "registry/credentials.h"
#include "registry/registry.h"

namespace kiln::engine {

inline constexpr char kExporterImageDigest[] = "containerimage.digest";
inline constexpr char kExporterImageConfigDigest[] = "containerimage.config.digest";
inline constexpr char kExporterImageDescriptor[] = "containerimage.descriptor";
inline constexpr char kExporterImageName[] = "image.name";

using ExportResponse = std::map<std::string, std::string>;

struct ExportInput {
  ResultRef result;  // nullptr or scratch: an empty filesystem, no layers
  // The frontend's metadata: containerimage.config (the full image config JSON; empty: a
  // default config), the platform of refs.platforms, source.date.epoch, image.name.
  std::string image_config;
  std::optional<oci::Platform> platform;
  std::optional<int64_t> source_date_epoch;
  std::string image_name;
  // Registry credentials for pushes (nullptr: the Registry's own source).
  std::shared_ptr<registry::CredentialSource> credentials;
  // Status lines ("exporting layers", "exporting manifest sha256:...", "naming to ...");
  // called from the exporting thread.
  std::function<void(const StatusUpdate&)> progress;
};

struct ExporterEnv {
  Worker* worker = nullptr;                // required
  registry::Registry* registry = nullptr;  // required for push
  // What registry.insecure's own client starts from (the shared client's options); its
  // target hosts get plain_http.  Default options when null.
  const registry::RegistryOptions* registry_options = nullptr;
  // The shared client's own credentials, for registry.insecure's client when a request brings
  // none (the shared client applies them itself).
  std::shared_ptr<registry::CredentialSource> registry_credentials;
  int layer_parallelism = 2;  // snapshots diffed at once
};

class Exporter {
 public:
  virtual ~Exporter() = default;
  Exporter() = default;
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // BuildKit's progress name ("exporting to image", "exporting to client directory", ...).
  virtual std::string Name() const = 0;
  virtual absl::StatusOr<ExportResponse> Export(const ExportInput& input,
                                                const ExportTarget& target,
                                                const CancelToken& cancel) = 0;
};

// InvalidArgument for an unknown type or a malformed attribute.
absl::StatusOr<std::unique_ptr<Exporter>> NewExporter(std::string_view type,
                                                      const ExporterAttrs& attrs,
                                                      const ExporterEnv& env);

}  // namespace kiln::engine
