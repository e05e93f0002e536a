// Status helpers shared by every folder.
//
// Kiln reports failure with absl::Status / absl::StatusOr<T> at every boundary.  A message says
// what was being done, to what, and why: "open `/var/lib/kiln/x`: No such file or directory".
// These helpers keep that habit cheap: one place turns errno into a Status, and the macros below
// propagate errors with added context.
//
// Thread-safety: all functions are pure.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/strings.h"

namespace kiln {

// Maps an errno value to the closest absl::StatusCode (ENOENT -> NotFound, EACCES ->
// PermissionDenied, ...).
absl::StatusCode ErrnoToCode(int err);

// "<what>: <strerror(err)>" with the code from ErrnoToCode.  `what` names the operation and its
// object, e.g. "open `/tmp/x`".
absl::Status ErrnoStatus(int err, std::string_view what);

// Same, reading the thread's current errno.
absl::Status ErrnoStatus(std::string_view what);

// Returns `status` with "<context>: " put in front of its message; OK stays OK.  The code and
// payloads are kept.
absl::Status Annotate(const absl::Status& status, std::string_view context);

// Quotes a path or name for a message the way every Kiln message does: `x`.
inline std::string Quote(std::string_view s) { return StrCat("`", s, "`"); }

}  // namespace kiln

#define KILN_STATUS_CONCAT_INNER(a, b) a##b
#define KILN_STATUS_CONCAT(a, b) KILN_STATUS_CONCAT_INNER(a, b)

// Returns from the current function if `expr` (a Status) is not OK.
#define KILN_RETURN_IF_ERROR(expr)                  \
  do {                                              \
    ::absl::Status kiln_status_ = (expr);           \
    if (!kiln_status_.ok()) return kiln_status_;    \
  } while (false)

// Like KILN_RETURN_IF_ERROR, adding "<context>: " to the message on the way up.
#define KILN_RETURN_IF_ERROR_CTX(expr, context)                             \
  do {                                                                      \
    ::absl::Status kiln_status_ = (expr);                                   \
    if (!kiln_status_.ok()) return ::kiln::Annotate(kiln_status_, context); \
  } while (false)

// `lhs = value of expr` (a StatusOr), or returns its error.  lhs may declare a variable:
//   KILN_ASSIGN_OR_RETURN(auto fd, OpenFile(path));
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL(KILN_STATUS_CONCAT(kiln_statusor_, __LINE__), lhs, expr)

#define KILN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return std::move(tmp).status();   \
  lhs = std::move(tmp).value()
