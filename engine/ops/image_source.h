// The docker-image:// source op (BuildKit's source/containerimage): resolves the image in
// GetCacheMap and unpacks its layers into snapshots in Exec.
//
//   identifier  docker-image://<reference>   (a name without tag gets ":latest")
//   attrs       image.resolvemode  default | pull | local   (see image_resolver.h)
//               image.recordtype   "" | regular | internal | frontend   (validated; du only)
//               image.layerlimit   N > 0: only the first N layers
//
// Cache keys (BuildKit v0.11's puller): `digest` = sha256 of {Digest: what the reference names
// (index or manifest), OS, Arch, Variant, Limit}; `alt_digests` = the chainID of the (limited)
// layers, so images with the same layers share results whatever their config.  Both go through
// SourceCacheDigest.
//
// Exec: layers whose chainID snapshot exists are not touched; the others are downloaded (only
// then: a cached build never pulls layers) concurrently, verified, and applied in order as they
// arrive (layer n as soon as its blob is stored and layer n-1 is committed), each committed
// under its chainID.  Every layer's snapshot gets a LayerRecord (original blob + diffID) so the
// exporter reuses the blob instead of diffing again.  The result is the top chainID snapshot
// (scratch for an image without layers).
//
// Thread-safety: an Op is driven by the solver as types.h says.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "engine/ops/llb_op.h"
#include "engine/solver/types.h"

namespace kiln::engine {

// InvalidArgument for a bad reference or attribute.
absl::StatusOr<std::unique_ptr<Op>> NewImageSourceOp(const LlbOp& op, const OpEnv& env);

}  // namespace kiln::engine
