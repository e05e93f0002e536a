// Snapshotters on a local directory: overlayfs (production) and naive copies (reference and
// conformance baseline).  Both keep the same layout under <root>/snapshots:
//   metadata.db/       leveldb: snapshot records, children index, id counter
//   <id>/fs            the snapshot's own layer (overlay upperdir / full tree for naive)
//   <id>/work          overlay workdir (active overlay snapshots)
//   <id>/flat          a flattened copy of the whole chain (overlay, deep chains only)
//   trash/<id>         removed snapshots being deleted
// Directories are created before the metadata batch that refers to them and renamed to the
// trash after the batch that drops them, so a crash leaves only unreferenced directories,
// which Cleanup() removes.
//
// Overlay mounts: an active snapshot with a parent is
//   overlay upperdir=<id>/fs,workdir=<id>/work,lowerdir=<parent chain, top first>
// with index=off,redirect_dir=off,metacopy=off so every upper directory is self-contained (a
// layer diff never depends on lower-layer redirects or metacopy stubs).  Without a parent it is
// a bind mount of <id>/fs.  A view of a single-directory chain is a read-only bind mount;
// deeper chains are an overlay with only lowerdirs (read-only by construction).
//
// Deep chains: lowerdir lists longer than a page are mounted by ScopedMount (relative
// lowerdirs from a chdir'ed helper thread, then fsconfig lowerdir+).  The kernel refuses more
// than OVL_MAX_STACK (500) lower layers: when Prepare/View would need `max_lower_layers` or
// more lowers, the parent's chain is flattened once - its merged tree is copied into
// <parent>/flat - and from then on the parent contributes one lower directory.  Flattening
// costs a full copy of the tree, once per 500 layers.
//
// Thread-safety: every method may be called from any thread; metadata transitions are
// serialized by one mutex (flattening and naive copies hold it too).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "snapshotter/snapshotter.h"

namespace kiln::snapshotter {

inline constexpr int kOverlayMaxStack = 500;  // the kernel's OVL_MAX_STACK

struct OverlaySnapshotterOptions {
  // Chains needing this many lower layers are flattened (<= kOverlayMaxStack).
  int max_lower_layers = kOverlayMaxStack;
  // syncfs() on Commit so a committed snapshot survives power loss (not just a daemon kill).
  bool sync_on_commit = false;
};

absl::StatusOr<std::unique_ptr<Snapshotter>> OpenOverlaySnapshotter(
    const std::string& root, const OverlaySnapshotterOptions& options = {});

// Every snapshot is a full copy of its parent; mounts are bind mounts.  Slow, but needs no
// overlayfs, and its diffs go through the tree-compare path.
absl::StatusOr<std::unique_ptr<Snapshotter>> OpenNaiveSnapshotter(const std::string& root);

// OK when overlayfs with the options the snapshotter needs can be mounted under `scratch_dir`
// (root, the module loaded, a filesystem that supports trusted xattrs).
absl::Status CheckOverlaySupport(const std::string& scratch_dir);

}  // namespace kiln::snapshotter
