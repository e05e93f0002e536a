// File ops: chains of mkdir / mkfile / rm / copy / symlink actions (BuildKit Go: client/llb
// fileop.go).
//
//   State out = st.File(Mkdir("/app", 0755, {.make_parents = true})
//                           .Copy(context, "/src", "/app/", {.create_dest_path = true})
//                           .Mkfile("/app/VERSION", 0644, "1\n"),
//                       Constraints().WithCustomName("COPY src /app/"));
//
// A FileAction is an immutable chain; each call appends one action.  State::File binds the chain
// to the state (every action then reads the state's dir and uses its filesystem as base) and
// makes one FileOp.  Marshaling follows fileop.go: actions in chain order, each copy source
// added before the copy; op inputs deduplicated by (digest, index) in first-use order; the first
// action's input is the state (-1 for scratch), each later action's input is
// (number of op inputs + index of the previous action); a copy's secondaryInput is its source's
// input index, or (number of op inputs + index) of the last action of a chain given with
// WithState; only the last action is an output (0).  Relative paths are resolved against the
// bound state's dir (copy sources against the source state's dir) with Go's path.Clean; a copy
// destination keeps a trailing "/" or "/.".  Owners given by name are looked up in the bound
// state's filesystem (NamedUserOpt.input = its input index, -1 for scratch).  Modes of mkdir and
// mkfile keep the permission bits (& 0777); a copy mode is written as given (-1 when unset).
// Times are unix nanoseconds (-1 when unset).  As in Go (v0.11.6 and HEAD), the per-action caps
// (include/exclude patterns, symlink) are never recorded; the op records "file.base" only.
//
// Thread-safety: immutable values.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llb/state.h"

namespace kiln::llb {

// One side of an owner: by numeric id or by name (looked up in /etc/passwd or /etc/group).
struct UserOpt {
  uint32_t uid = 0;
  std::string name;  // non-empty: by name
  bool operator==(const UserOpt&) const = default;
};

// Go: llb.ChownOpt.
struct ChownOpt {
  std::optional<UserOpt> user;
  std::optional<UserOpt> group;
  bool operator==(const ChownOpt&) const = default;
};

// Go: llb.WithUser("user[:group]"): each part is an id when it parses as a 32-bit decimal
// number ("root" counts as 0), else a name.
ChownOpt ChownFromSpec(std::string_view spec);
// Go: llb.WithUIDGID.
ChownOpt ChownFromIds(uint32_t uid, uint32_t gid);

struct MkdirInfo {
  bool make_parents = false;
  std::optional<ChownOpt> chown;
  std::optional<int64_t> created_time_ns;
};

struct MkfileInfo {
  std::optional<ChownOpt> chown;
  std::optional<int64_t> created_time_ns;
};

struct RmInfo {
  bool allow_not_found = false;
  bool allow_wildcard = false;
};

struct CopyInfo {
  std::optional<uint32_t> mode;  // unset: keep the source's mode
  // BuildKit HEAD (ChmodOpt.ModeStr): a symbolic mode such as "u+x,g-w"; when set it is sent
  // instead of `mode`.
  std::string mode_str;
  // BuildKit HEAD: source paths that must exist (COPY --parents without wildcards).
  std::vector<std::string> required_paths;
  bool follow_symlinks = false;
  bool copy_dir_contents_only = false;
  bool attempt_unpack = false;
  bool create_dest_path = false;
  bool allow_wildcard = false;
  bool allow_empty_wildcard = false;
  bool always_replace_existing_dest_paths = false;  // BuildKit HEAD field 14
  std::vector<std::string> include_patterns;
  std::vector<std::string> exclude_patterns;
  std::optional<ChownOpt> chown;
  std::optional<int64_t> created_time_ns;
};

struct SymlinkInfo {  // BuildKit HEAD
  std::optional<ChownOpt> chown;
  std::optional<int64_t> created_time_ns;
};

class FileActionWithState;

class FileAction {
 public:
  FileAction Mkdir(std::string_view path, uint32_t mode, const MkdirInfo& info = {}) const;
  FileAction Mkfile(std::string_view path, uint32_t mode, std::string data,
                    const MkfileInfo& info = {}) const;
  FileAction Rm(std::string_view path, const RmInfo& info = {}) const;
  // Copies `src_path` of `source` to `dest_path`.
  FileAction Copy(const State& source, std::string_view src_path, std::string_view dest_path,
                  const CopyInfo& info = {}) const;
  // Copies from the result of another chain bound to its own state (Go: FileAction.WithState).
  FileAction Copy(const FileActionWithState& source, std::string_view src_path,
                  std::string_view dest_path, const CopyInfo& info = {}) const;
  // Creates a symlink at `newpath` pointing to `oldpath` (paths written as given, as Go HEAD).
  FileAction Symlink(std::string_view oldpath, std::string_view newpath,
                     const SymlinkInfo& info = {}) const;
  // Binds this chain to `state` so it can be the source of a Copy in another chain.
  FileActionWithState WithState(const State& state) const;

  bool empty() const { return node_ == nullptr; }

  struct Node;  // implementation detail (llb/fileop.cc)
  const std::shared_ptr<const Node>& node() const { return node_; }
  explicit FileAction(std::shared_ptr<const Node> node) : node_(std::move(node)) {}
  FileAction() = default;

 private:
  std::shared_ptr<const Node> node_;
};

class FileActionWithState {
 public:
  explicit FileActionWithState(FileAction bound) : bound_(std::move(bound)) {}
  const FileAction& action() const { return bound_; }

 private:
  FileAction bound_;
};

// Single-action chains (Go: llb.Mkdir, llb.Mkfile, llb.Rm, llb.Copy, llb.Symlink).
FileAction Mkdir(std::string_view path, uint32_t mode, const MkdirInfo& info = {});
FileAction Mkfile(std::string_view path, uint32_t mode, std::string data,
                  const MkfileInfo& info = {});
FileAction Rm(std::string_view path, const RmInfo& info = {});
FileAction Copy(const State& source, std::string_view src_path, std::string_view dest_path,
                const CopyInfo& info = {});
FileAction Copy(const FileActionWithState& source, std::string_view src_path,
                std::string_view dest_path, const CopyInfo& info = {});
FileAction Symlink(std::string_view oldpath, std::string_view newpath,
                   const SymlinkInfo& info = {});

}  // namespace kiln::llb
