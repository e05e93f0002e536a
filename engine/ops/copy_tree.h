// The copy of a FileOp's copy action: tonistiigi/fsutil's copy.Copy (the version vendored by
// BuildKit v0.11.6, plus HEAD's alwaysReplaceExistingDestPaths), confined to two roots.
//
// Semantics (`cp -a` like, as fsutil):
//   * `src` is resolved inside `src_root`: its parent directories always follow symlinks (inside
//     the root), its last component only with follow_links; a symlink in the source is otherwise
//     copied as a symlink, and symlinks inside copied directories are never followed.
//   * dest: a `dst` ending in "/" (or "/.") is a directory; its parents (and the directory itself
//     when it ends in "/") are created with mode 0755 (owner/time applied when given).  When the
//     destination exists and is a directory, a file is copied into it; a directory is copied into
//     it unless copy_dir_contents, which merges the source directory's contents into it.
//   * a file onto an existing directory of the same name fails ("cannot replace to directory"),
//     a directory onto an existing non-directory fails ("cannot copy to non-directory"), unless
//     always_replace_existing_dest_paths, which removes what is in the way.
//   * hardlinks between copied files are kept (within one CopyPath), xattrs are copied (best
//     effort; overlay's private ones never), owners kept unless `owner`, permission bits replaced
//     by `mode` when set (files and directories), times kept unless `time`.
//   * include/exclude patterns filter entries by their path relative to the copied source, with
//     parent directories of included entries created on demand (fsutil semantics, PathFilter).
// Every write happens under `dst_root` through descriptors and RootDir opens that refuse symlinks,
// so a symlink planted in the destination image is replaced or refused, never written through.
//
// Thread-safety: functions are independent; don't copy into one tree from two threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/pattern_match.h"
#include "engine/ops/copy_util.h"
#include "engine/ops/file_root.h"

namespace kiln::engine {

// A chmod(1) symbolic mode ("u+x,go-w", "a=rX", or octal), BuildKit HEAD's COPY
// --chmod=<symbolic> (FileActionCopy.modeStr), applied with a umask of 0.  The who/op/perm forms
// are supported; copying another class's bits ("g=u") is not (InvalidArgument).
class SymbolicMode {
 public:
  static absl::StatusOr<SymbolicMode> Parse(std::string_view spec);
  // The new permission and special bits for an entry whose current bits are `mode`.
  mode_t Apply(mode_t mode, bool is_dir) const;

 private:
  struct Clause {
    mode_t who;   // bits the clause may touch
    char op;      // '+', '-', '='
    mode_t perm;  // bits named (before masking with who)
    bool x_if_dir_or_exec;
  };
  std::vector<Clause> clauses_;
};

struct CopyOptions {
  std::optional<FileOwner> owner;
  std::optional<struct timespec> time;
  std::optional<uint32_t> mode;          // permission bits (& 0777) replacing the source's
  std::optional<SymbolicMode> mode_str;  // BuildKit HEAD modeStr: overrides `mode`
  const PathFilter* filter = nullptr;    // include/exclude; nullptr or empty = everything
  bool copy_dir_contents = false;
  bool follow_links = false;
  bool always_replace_existing_dest_paths = false;
  CancelToken cancel;
};

// fsutil copy.Copy for one source path (already wildcard-expanded).  NotFound when `src` does
// not exist.
absl::Status CopyPath(const RootDir& src_root, std::string_view src, const RootDir& dst_root,
                      std::string_view dst, const CopyOptions& options);

// fsutil's containsWildcards: '*', '?' or '[' not escaped by '\'.
bool ContainsWildcards(std::string_view name);

// fsutil copy.ResolveWildcards: the paths (relative to the root, no leading '/') matching `src`,
// whose wildcards may appear in any component (each wildcard component matches one name, as
// Go's filepath.Match); the non-wildcard prefix is resolved inside the root (its last component
// following a symlink only with follow_links).  A matching directory is not searched further.
// Without wildcards, returns {src cleaned}.  Errors when the prefix does not exist.
absl::StatusOr<std::vector<std::string>> ResolveWildcards(const RootDir& root, std::string_view src,
                                                          bool follow_links);

// fsutil's rootPath: `p` resolved inside the root, its last component followed only when
// `follow_links` ("" for the root itself).
absl::StatusOr<std::string> ResolveSourcePath(const RootDir& root, std::string_view p,
                                              bool follow_links);

}  // namespace kiln::engine

namespace kiln::engine {

// Copies entries with all their metadata (owner, mode, times, xattrs except overlay's own),
// directories recursively, keeping hardlinks between the files it copied.  Used by merge and
// diff, which reproduce trees exactly (no fsutil destination rules).
class TreeCloner {
 public:
  // `skip_whiteouts`: overlay whiteouts (char 0/0) met inside cloned directories are left out
  // (inside a directory being created they have nothing to hide).
  TreeCloner(const RootDir& dst_root, bool skip_whiteouts, CancelToken cancel)
      : dst_(dst_root), skip_whiteouts_(skip_whiteouts), cancel_(std::move(cancel)) {}

  // Copies `src` (any type) to `dst_rel`, which must not exist (its parent must).
  absl::Status Clone(const EntryRef& src, const std::string& dst_rel);
  // Owner, mode (not for symlinks), xattrs and times of `st`/`src` onto `dst`.
  absl::Status CopyMetadata(const EntryRef& src, const struct stat& st, const EntryRef& dst);

 private:
  const RootDir& dst_;
  bool skip_whiteouts_;
  CancelToken cancel_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

}  // namespace kiln::engine
