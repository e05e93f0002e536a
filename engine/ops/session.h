// What a build's client lends its ops: local directories, secrets, SSH agents, registry
// credentials.
//
// The client is `kilnctl` in-process today and a BuildKit session tunnel later (FileSync,
// Secrets, SSH, Auth services); ops only see these small interfaces.  A job puts one
// shared_ptr of each into its SessionGroup values under the keys below; an op shared by several
// jobs uses the first job that has one (SessionGroup::FindFirst).
//
// Secrets: implementations must never log or put a secret's value into an error message.
//
// Thread-safety: implementations must be safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"

namespace kiln::engine {

inline constexpr char kSessionLocalDirs[] = "kiln.session.local-dirs";
inline constexpr char kSessionSecrets[] = "kiln.session.secrets";
inline constexpr char kSessionSsh[] = "kiln.session.ssh";
inline constexpr char kSessionRegistryAuth[] = "kiln.session.registry-auth";
inline constexpr char kSessionId[] = "kiln.session.id";

// Which files of a client directory a local source wants (LLB local.* attrs).
struct LocalDirFilter {
  std::vector<std::string> include_patterns;
  std::vector<std::string> exclude_patterns;
  std::vector<std::string> follow_paths;
};

// Client directories by name ("context", "dockerfile").
class LocalDirs {
 public:
  virtual ~LocalDirs() = default;
  // Brings `mirror_dir` (owned by the engine, persistent between builds) up to date with the
  // client's directory `name` under `filter`: new and changed files are (re)written, vanished
  // ones removed, unchanged ones left alone.  NotFound when the client has no such directory.
  virtual absl::Status Sync(const std::string& name, const LocalDirFilter& filter,
                            const std::string& mirror_dir, const CancelToken& cancel) = 0;
};

class Secrets {
 public:
  virtual ~Secrets() = default;
  // NotFound when the client has no secret `id` (the message names the id only).
  virtual absl::StatusOr<std::string> Get(const std::string& id) = 0;
};

class SshAgents {
 public:
  virtual ~SshAgents() = default;
  // The path of a unix socket speaking the SSH agent protocol for agent `id` ("default" when
  // empty); NotFound when not forwarded.
  virtual absl::StatusOr<std::string> SocketPath(const std::string& id) = 0;
};

}  // namespace kiln::engine
