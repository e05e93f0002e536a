// The git:// source op (BuildKit's source/git): a checkout of one commit of a remote
// repository, through the `git` command line.
//
//   identifier  git://<host/path>[#<ref>[:<subdir>]]   (the remote is https://<host/path>
//               unless the text already names a transport: http, https, git, ssh, user@host:)
//   attrs       git.fullurl           the remote's real URL (what BuildKit's client sends)
//               git.keepgitdir        "true": keep .git (a shallow clone) in the checkout
//               git.authtokensecret   secret id of a token (default GIT_AUTH_TOKEN), sent as
//                                     "Authorization: basic base64(x-access-token:TOKEN)"
//               git.authheadersecret  secret id of a whole Authorization value (default
//                                     GIT_AUTH_HEADER); "<id>.<host>" is tried before "<id>"
//               git.knownsshhosts     known_hosts lines for ssh remotes
//               git.mountsshsock      SSH agent id for ssh remotes ("default")
//
// GetCacheMap resolves the ref with `git ls-remote` (a 40-hex commit is used as is; no ref
// means the remote's default branch) and keys on commit + ".git" with keepgitdir +
// ":subdir", like BuildKit.  Exec fetches into a bare cache repository per remote
// (<state>/git/<hash of the URL>, shared by later builds: only new objects are fetched, shallow
// when possible), checks out the commit into a fresh snapshot (without .git unless keepgitdir),
// updates submodules when the checkout has .gitmodules, and keeps only `subdir` when one is
// given (resolved inside the checkout; a symlink cannot lead out of it).
//
// Secrets: the Authorization value reaches git only through GIT_CONFIG_COUNT/KEY/VALUE
// environment variables (never argv), and every message built from git's output has the
// secret (raw, as the header value and base64-encoded) and URL credentials replaced by
// "xxxxx".  The child environment is built from scratch (no GIT_TRACE* from the daemon).
//
// Differences from BuildKit: when the LLB carries no auth attrs, the default secret ids are
// still looked up (BuildKit's client always sends them); file:// remotes are refused unless
// GitSourceOptions::allow_file_protocol (BuildKit turns them into https://file://...).
//
// Thread-safety: an Op is driven by the solver as types.h says; the cache repository of one
// remote is used by one op at a time.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/ops/llb_op.h"
#include "engine/solver/types.h"

namespace kiln::engine {

struct GitSourceOptions {
  // Accept file:// remotes (tests, single-user setups).  Off for LLB from clients: it would
  // let a build read any repository on the engine's host.
  bool allow_file_protocol = false;
  // Where bare cache repositories live; "" = <worker root>/git.
  std::string cache_dir;
  // The git executable ("git" from PATH).
  std::string git = "git";
};

absl::StatusOr<std::unique_ptr<Op>> NewGitSourceOp(const LlbOp& op, const OpEnv& env);
absl::StatusOr<std::unique_ptr<Op>> NewGitSourceOp(const LlbOp& op, const OpEnv& env,
                                                   const GitSourceOptions& options);

// The parts of a git source identifier, as BuildKit's NewGitIdentifier splits them.
struct GitIdentifier {
  std::string remote;
  std::string ref;
  std::string subdir;  // cleaned; "" for the root
};
absl::StatusOr<GitIdentifier> ParseGitIdentifier(std::string_view rest);

}  // namespace kiln::engine
