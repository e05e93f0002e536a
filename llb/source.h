// Source ops: where content comes from (BuildKit Go: client/llb source.go).
//
// Identifiers and attributes are exactly Go's:
//   Image("busybox")            -> docker-image://docker.io/library/busybox:latest
//   Image("x@sha256:..")        -> docker-image://docker.io/library/x@sha256:.. (no tag added)
//   Local("context")            -> local://context  (+ local.unique when no session id is given)
//   Git("https://github.com/o/r.git", "main") -> git://github.com/o/r.git#main
//                                  (+ git.fullurl, git.authtokensecret=GIT_AUTH_TOKEN, ...)
//   Http("https://x/y.tgz")     -> https://x/y.tgz
// Image and OCI-layout sources record their platform in the op; the others do not.  A source
// given a platform in its constraints passes it to states built on it (State::GetPlatform()).
// Errors (a reference that does not parse, an empty identifier) surface when marshaling, as
// in Go.
//
// Thread-safety: pure functions returning immutable States.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llb/state.h"

namespace kiln::llb {

struct ImageInfo {
  ResolveMode resolve_mode = ResolveMode::kDefault;  // non-default modes set image.resolvemode
  std::string record_type;                           // Go: MarkImageInternal = "internal"
  std::optional<int> layer_limit;
  // The image's config blob when already resolved (Go: what WithMetaResolver fetches): the state
  // then carries its Env, WorkingDir and platform, as State::WithImageConfig does (not User;
  // Go does not apply it either).  A blob that does not decode makes Marshal fail.
  std::optional<std::string> config_json;
  Constraints constraints;
};
State Image(std::string_view ref, const ImageInfo& info = {});

struct LocalInfo {
  std::string session_id;  // local.session; when empty local.unique is set at marshal time
  std::vector<std::string> include_patterns;
  std::vector<std::string> exclude_patterns;
  std::vector<std::string> follow_paths;
  std::string shared_key_hint;
  // Go: Differ(type, required): local.differ = "none" or "metadata".
  struct Differ {
    std::string type;
    bool required = false;
  };
  std::optional<Differ> differ;
  Constraints constraints;
};
State Local(std::string_view name, const LocalInfo& info = {});

struct GitInfo {
  bool keep_git_dir = false;
  // Secret names for HTTP auth; unset = Go's defaults GIT_AUTH_TOKEN / GIT_AUTH_HEADER without
  // the httpauth cap, set = that name plus the cap (empty removes the attr).
  std::optional<std::string> auth_token_secret;
  std::optional<std::string> auth_header_secret;
  // Go: KnownSSHHosts(key), once per call.  Go's client falls back to ssh-keyscan of the host
  // when none is given; Kiln does not reach out to the network (the attr is then absent, which
  // is also what Go produces when the scan fails).
  std::vector<std::string> known_ssh_hosts;
  std::string mount_ssh_sock;  // ssh remotes: default "default"
  Constraints constraints;
};
State Git(std::string_view remote, std::string_view ref, const GitInfo& info = {});

struct HttpInfo {
  std::string checksum;  // a digest string; empty = none
  std::string filename;
  uint32_t perm = 0;  // & 0777; 0 = unset
  int uid = 0;
  int gid = 0;
  Constraints constraints;
};
State Http(std::string_view url, const HttpInfo& info = {});

struct OCILayoutInfo {
  std::string session_id;
  std::string store_id;
  std::optional<int> layer_limit;
  Constraints constraints;
};
State OCILayout(std::string_view ref, const OCILayoutInfo& info = {});

// The empty filesystem.
State Scratch();

// A source op from an identifier and attributes as given (no normalization; caps from the
// constraints only).  Go: NewSource.
State Source(std::string identifier, std::map<std::string, std::string> attrs,
             const Constraints& constraints = {});

}  // namespace kiln::llb
