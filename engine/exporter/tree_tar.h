// A filesystem tree as a tar stream, and a tree copied into a directory through that stream
// (the `tar` and `local` exporters).
//
// The stream is what BuildKit's fsutil.WriteTar writes for an exported filesystem: entries
// sorted by name within each directory, depth first; names relative to the root without "./",
// directories ending in '/'; numeric uid/gid (no user names); permission bits with
// setuid/setgid/sticky; symlinks; hardlinks within the tree as tar hardlinks to the first
// path seen; character/block devices and fifos; xattrs as SCHILY.xattr records (overlayfs's
// own skipped); sockets left out; mtimes rounded to whole seconds, or all set to
// SOURCE_DATE_EPOCH when one is given (BuildKit's local/tar exporters set, not clamp).
// The walk never follows a symlink.  Memory is bounded: file data streams in 1 MiB pieces.
//
// CopyTreeToDir writes the tree into `dest` (created if missing; existing content is merged
// over, as buildctl's receiver does) by applying that stream with the snapshotter's hardened
// applier: nothing in the tree or in `dest` can make it write outside `dest` (a symlink in
// `dest` is replaced, never followed).  Owners are kept (we run as root); device nodes need
// CAP_MKNOD.  Because the applier reads `.wh.` names as whiteouts, a tree containing such a
// name is refused (an image could not carry it either) rather than deleting files in `dest`.
//
// Thread-safety: functions are independent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "base/cancel.h"
#include "snapshotter/byte_stream.h"
#include "snapshotter/tar_writer.h"

namespace kiln::engine {

struct TreeTarOptions {
  std::optional<int64_t> epoch;  // every entry's mtime
  bool refuse_whiteout_names = false;
  CancelToken cancel;
};

// snapshotter::EncodeTarHeader, with the ustar device fields filled ("0000000") as Go's
// archive/tar writes them for every entry, so single-block headers are byte-identical to the
// ones BuildKit's tarballs carry.
std::string EncodeGoTarHeader(const snapshotter::TarHeader& h);

absl::Status WriteTreeTar(const std::string& root, snapshotter::ByteSink& out,
                          const TreeTarOptions& options);

absl::Status CopyTreeToDir(const std::string& root, const std::string& dest,
                           const TreeTarOptions& options);

}  // namespace kiln::engine
