// The http:// and https:// source op (BuildKit's source/http): one downloaded file in a fresh
// snapshot.
//
//   identifier  https://host/path  (or http://)
//   attrs       http.checksum  "sha256:..." / "sha512:...": the content must match (checked
//                              after the download; a mismatch names both digests)
//               http.filename  the file's name (one path component); default: the response's
//                              Content-Disposition filename, else the URL path's last element,
//                              else "download"
//               http.perm      mode (Go integer syntax, e.g. 0644; default 0600)
//               http.uid, http.gid   owner (default 0:0)
//
// The file's mtime is the response's Last-Modified (else the Unix epoch), as in BuildKit.
// Downloads go through libcurl: redirects followed (http/https only, at most 10), connect
// timeout 30 s, a transfer stalled for 120 s fails, cancellation aborts the transfer.
//
// Cache keys: with a checksum, GetCacheMap does not download (key from filename, perm, owner and
// checksum, like BuildKit).  Without one, GetCacheMap downloads the file to the worker's temp
// directory and keys on its sha256 (+ Last-Modified); Exec then reuses that download.  BuildKit
// instead remembers ETags of earlier downloads and asks with If-None-Match, so an unchanged URL
// is not transferred twice; Kiln always transfers (simpler, same keys for same content).
//
// Thread-safety: an Op is driven by the solver as types.h says.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "engine/ops/llb_op.h"
#include "engine/solver/types.h"

namespace kiln::engine {

absl::StatusOr<std::unique_ptr<Op>> NewHttpSourceOp(const LlbOp& op, const OpEnv& env);

}  // namespace kiln::engine
