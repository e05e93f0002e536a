// Where a blob of the content store is known to live in registries: containerd's
// "containerd.io/distribution.source.<registry host>" label, whose value lists repositories
// ("a/b,library/busybox").  Pulls and pushes record it; a later push to the same registry mounts
// the blob from one of those repositories instead of uploading it (BuildKit does the same:
// containerd's AppendDistributionSourceLabel on pull, util/push's update after a push).  The label
// lives with the blob, so it outlives the process: the Registry's in-memory map does not.
//
// Thread-safety: as the content store's UpdateLabels (concurrent appends to one blob may lose one
// repository, which only costs an upload later).
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "base/digest.h"
#include "base/reference.h"
#include "snapshotter/content_store.h"

namespace kiln::engine {

inline constexpr char kDistributionSourceLabelPrefix[] = "containerd.io/distribution.source.";

// The repositories (domain + path, no tag) the label of `digest` names, for every registry.
// Empty when the blob is not stored or has no such label; malformed entries are skipped.
std::vector<ImageReference> DistributionSources(snapshotter::ContentStore& store,
                                                const Digest& digest);

// Adds `repo`'s repository (its tag and digest ignored) to the label of `digest`.  A blob that
// is not stored is NotFound; nothing is written when the repository is already listed.
absl::Status AddDistributionSource(snapshotter::ContentStore& store, const Digest& digest,
                                   const ImageReference& repo);

}  // namespace kiln::engine
