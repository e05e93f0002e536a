// Layer apply: streams an OCI layer (tar, tar+gzip, tar+zstd; detected by magic bytes) into a
// directory.
//
// Two whiteout modes:
//  - kOverlay: the target is an overlay upper directory.  `.wh.name` becomes a 0/0 character
//    device `name`; `.wh..wh..opq` sets trusted.overlay.opaque=y on its directory.  Hardlinks
//    to files of earlier layers (which live in `lower_dirs`) copy the file up first.
//  - kDelete: the target is a plain, flattened tree.  `.wh.name` deletes `name`;
//    `.wh..wh..opq` deletes every entry of its directory not written by this layer.
//
// Security model (every layer is hostile):
//  - Each entry's name is cleaned lexically.  A leading `/` is dropped (confined, like GNU tar
//    and containerd).  A `..` that would climb above the root is an error naming the entry
//    (InvalidArgument), for names and hardlink targets alike: a well-formed layer never has one.
//  - Parent directories are resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
//    RESOLVE_NO_XDEV) from the target root, so symlinks met on the way - absolute (`a -> /etc`)
//    or climbing (`b -> ../../..`) - are resolved as if the target were `/`: `a/passwd` lands in
//    <target>/etc/passwd, never in the host's /etc (confined, as containerd/BuildKit do).
//  - The final component is never followed: existing entries are removed (directories kept
//    when the entry is a directory) and new ones created with O_CREAT|O_EXCL|O_NOFOLLOW,
//    mknodat, symlinkat, linkat without AT_SYMLINK_FOLLOW; so writing through a symlink
//    planted by an earlier entry is impossible, and a hardlink to a symlink links the symlink.
//  - Hardlink targets are resolved inside the root the same way; a missing target is an
//    error naming the entry.
//  - Device nodes are created only with CAP_MKNOD; without it they are skipped and counted.
//  - overlay's private xattrs (trusted.overlay.*, user.overlay.*) in a layer are ignored, so a
//    layer cannot forge opaque directories or redirects.
//  - Owners and modes are applied after content; setuid/setgid after chown; directory times
//    after all their children.
//  The tar is parsed by libarchive (PAX, GNU, ustar); every filesystem write is ours.
//
// Verification: the compressed bytes are hashed and counted as they stream; a digest or size
// mismatch (or more bytes than expected) is DataLoss after the fact - the target then holds a
// partial layer and the caller must discard it (remove the active snapshot).  The diffID
// (sha256 of the uncompressed tar, including trailing padding) is returned.
//
// Pipelining: decompression and both hashes run on a helper thread, tar parsing and
// filesystem writes on the calling thread; memory is bounded (a few 1 MiB chunks).
//
// Thread-safety: ApplyLayer calls are independent; don't apply two layers into one target at
// the same time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/digest.h"
#include "snapshotter/byte_stream.h"
#include "snapshotter/compression.h"
#include "snapshotter/mount.h"

namespace kiln::snapshotter {

enum class WhiteoutMode { kOverlay, kDelete };

struct ApplyOptions {
  WhiteoutMode whiteouts = WhiteoutMode::kDelete;
  // kOverlay: the lower directories under the target, top first (hardlink copy-up).
  std::vector<std::string> lower_dirs;
  // Optional; when set it must name a layer type Kiln reads (the data's magic decides the
  // actual decompression).
  std::string media_type;
  // When valid / >= 0: the compressed stream must match (DataLoss otherwise).
  Digest expected_digest;
  int64_t expected_size = -1;
  CancelToken cancel;
};

struct ApplyResult {
  Digest diff_id;
  int64_t uncompressed_size = 0;
  Digest digest;  // of the compressed stream as read
  int64_t size = 0;
  Compression compression = Compression::kNone;
  int64_t entries = 0;
  int64_t skipped_devices = 0;  // device nodes skipped for lack of CAP_MKNOD
};

absl::StatusOr<ApplyResult> ApplyLayer(const std::string& target_dir, ByteSource& layer,
                                       const ApplyOptions& options);

// Applies into a snapshot's mounts without mounting: an overlay's upperdir in kOverlay mode
// (lower_dirs from its lowerdir list) or a bind mount's source in kDelete mode.
absl::StatusOr<ApplyResult> ApplyLayerToMounts(const std::vector<Mount>& mounts, ByteSource& layer,
                                               ApplyOptions options);

}  // namespace kiln::snapshotter
