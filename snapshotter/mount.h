// Mount descriptions and the one place in Kiln that mounts and unmounts them.
//
// Snapshotters return a description of how to mount a snapshot (a list of Mount); the executor
// and the engine turn it into a real mount with ScopedMount, which unmounts in its destructor.
//
// Overlay mounts whose options exceed the kernel's one-page limit for mount(2) data (deep
// parent chains: `lowerdir=` lists hundreds of directories) are still mounted:
//  1. the lowerdir entries are rewritten relative to their longest common directory and the
//     mount is done from a helper thread that unshare(CLONE_FS)s and chdir()s there (so the
//     process's cwd never changes) - containerd's trick;
//  2. if even that does not fit, the new mount API is used: fsopen("overlay") and one
//     fsconfig("lowerdir+", dir) per layer (Linux >= 6.8), which has no total-size limit.
// The kernel still caps the number of lower layers (OVL_MAX_STACK = 500); snapshotters flatten
// deeper chains (see overlay_snapshotter.h).
//
// Thread-safety: functions are safe to call concurrently; a ScopedMount has one owner.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kiln::snapshotter {

struct Mount {
  std::string type;    // "overlay", "bind", "tmpfs", ...
  std::string source;  // a path for bind, a name for filesystems ("overlay")
  // Relative path under the mount root for stacked mounts; empty for the root itself.
  std::string target;
  // Flags (ro, rw, bind, rbind, nosuid, nodev, noexec, ...) and filesystem data
  // ("lowerdir=...", "upperdir=...") in order.
  std::vector<std::string> options;

  bool operator==(const Mount&) const = default;
};

// For an overlay Mount: the value of its "lowerdir=" option split on ':' (top first), upperdir
// and workdir ("" when absent).
struct OverlayDirs {
  std::vector<std::string> lower;
  std::string upper;
  std::string work;
};
OverlayDirs ParseOverlayDirs(const Mount& m);

// How an overlay mount passes its lowerdir list (kAuto picks the first that fits).
enum class OverlayMountMethod { kAuto, kPlain, kRelativeLowerdirs, kFsconfigAppend };

class ScopedMount {
 public:
  ScopedMount() = default;
  ~ScopedMount();
  ScopedMount(ScopedMount&& o) noexcept : mounted_(std::exchange(o.mounted_, {})) {}
  ScopedMount& operator=(ScopedMount&& o) noexcept;
  ScopedMount(const ScopedMount&) = delete;
  ScopedMount& operator=(const ScopedMount&) = delete;

  // Mounts `mounts` in order at `target` (an existing directory).  On failure nothing stays
  // mounted.
  static absl::StatusOr<ScopedMount> MountAll(
      const std::vector<Mount>& mounts, const std::string& target,
      OverlayMountMethod method = OverlayMountMethod::kAuto);

  // Unmounts now (reverse order).  A busy mount is retried, then detached (MNT_DETACH).
  absl::Status Unmount();
  // The caller takes over unmounting.
  std::vector<std::string> Release() { return std::exchange(mounted_, {}); }
  bool mounted() const { return !mounted_.empty(); }

 private:
  std::vector<std::string> mounted_;  // mount points, in mount order
};

// Unmounts one mount point (retry on EBUSY, then MNT_DETACH).  Not mounted is OK.
absl::Status UnmountPath(const std::string& path);

// Mounts `mounts` read-only-as-described on a fresh temporary directory under `parent_dir`,
// calls fn(path), unmounts and removes the directory.  A single plain bind mount is not
// mounted at all: fn gets its source directly.
absl::Status WithTempMount(const std::vector<Mount>& mounts, const std::string& parent_dir,
                           const std::function<absl::Status(const std::string& path)>& fn);

}  // namespace kiln::snapshotter
