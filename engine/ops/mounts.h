// The special mounts of a RUN step: persistent cache directories, secret files and forwarded
// SSH agent sockets.  Each is an RAII object the exec op holds for the duration of the step.
//
// Cache mounts (RUN --mount=type=cache; BuildKit's solver/llbsolver/mounts):
//   * a cache is named by its id and, when the mount has a `from` input, that input's snapshot
//     (BuildKit keys it "id:refID"): the directory then starts as a copy of that input's tree
//     (the Dockerfile frontend makes such an input to give the cache its uid/gid/mode);
//   * instances live in <worker>/cachemounts/<sha256(id)[:32]>-<sha256(from)[:16] or 0>[.N], so
//     they survive builds and daemon restarts and show in `du` as exec.cachemount records;
//   * sharing SHARED: concurrent users share one instance; PRIVATE: a user gets an instance
//     nobody else uses, a new one when all are busy (a pool); LOCKED: a user waits until an
//     instance is free (a new one is made only when none exists).  Waiting honours cancellation.
// Only one process uses a worker's state directory (the worker's lock), so the bookkeeping is
// in memory, one registry per cache directory root.
//
// Secret files: the value is written to a file on a private tmpfs (never on disk), owned and
// moded as the mount asks, bind-mounted read-only; the tmpfs is unmounted and its directory
// removed when the object goes.  The value never appears in any message.
//
// SSH sockets: a unix socket in a private directory, owned and moded as the mount asks, whose
// connections are relayed to the client's agent socket (so the step sees the permissions it
// asked for without touching the session's socket).
//
// Thread-safety: CacheMounts is thread-safe; leases, secret files and relays have one owner.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cancel.h"
#include "base/fs.h"
#include "base/unique_fd.h"
#include "engine/solver/types.h"
#include "llb/pb/ops.pb.h"
#include "snapshotter/mount.h"

namespace kiln::engine {

class Worker;
class CacheMounts;

// One use of a cache instance; released when destroyed.
class CacheMountLease {
 public:
  ~CacheMountLease();
  CacheMountLease(const CacheMountLease&) = delete;
  CacheMountLease& operator=(const CacheMountLease&) = delete;
  // The host directory to mount.
  const std::string& path() const { return path_; }

 private:
  friend class CacheMounts;
  CacheMountLease(CacheMounts* owner, std::string key, int instance, std::string path)
      : owner_(owner), key_(std::move(key)), instance_(instance), path_(std::move(path)) {}
  CacheMounts* owner_;
  std::string key_;
  int instance_;
  std::string path_;
};

class CacheMounts {
 public:
  // The registry of a worker's cache directory (one per directory, process-wide).
  static CacheMounts& ForWorker(Worker& worker);

  // A lease on an instance of cache `id` (see the file comment).  `from` (nullptr or scratch:
  // none) seeds a new instance.  Cancelled when `cancel` fires while waiting.
  absl::StatusOr<std::unique_ptr<CacheMountLease>> Acquire(const std::string& id,
                                                           pb::CacheSharingOpt sharing,
                                                           const ResultRef& from,
                                                           const CancelToken& cancel);

  // BuildKit's no-cache handling of cache mounts: removes the instances of these ids (with any
  // `from`) that nobody is using.
  absl::Status Reset(const std::set<std::string>& ids);

  // How many Acquire calls are waiting for a locked cache right now (tests).
  int Waiting();

  // The directory name prefix of cache `id` (tests, du).
  static std::string DirPrefix(const std::string& id);

 private:
  friend class CacheMountLease;
  explicit CacheMounts(Worker& worker, std::string dir) : worker_(&worker), dir_(std::move(dir)) {}

  struct Instance {
    bool exists = false;
    bool creating = false;
    int users = 0;
    bool shared = false;
  };
  struct KeyState {
    bool scanned = false;
    std::map<int, Instance> instances;
  };

  std::string InstancePath(const std::string& key_dir, int n) const;
  void ScanLocked(const std::string& key_dir, KeyState& state);
  absl::Status CreateInstance(const std::string& path, const ResultRef& from);
  void Release(const std::string& key, int instance);

  Worker* worker_;
  std::string dir_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, KeyState> keys_;  // by key directory name
  int waiting_ = 0;
};

// A secret value as a file on a private tmpfs.
class SecretFile {
 public:
  static absl::StatusOr<std::unique_ptr<SecretFile>> Create(Worker& worker, std::string_view data,
                                                            uint32_t uid, uint32_t gid,
                                                            uint32_t mode);
  ~SecretFile();
  const std::string& path() const { return path_; }

 private:
  SecretFile() = default;
  TempDir dir_;
  snapshotter::ScopedMount tmpfs_;  // unmounted before dir_ is removed
  std::string path_;
};

// A unix socket relaying every connection to `agent_socket`.
class SshRelay {
 public:
  static absl::StatusOr<std::unique_ptr<SshRelay>> Start(Worker& worker,
                                                         const std::string& agent_socket,
                                                         uint32_t uid, uint32_t gid, uint32_t mode);
  ~SshRelay();
  const std::string& path() const { return path_; }

 private:
  SshRelay() = default;
  void AcceptLoop();
  void Relay(UniqueFd client);

  TempDir dir_;
  std::string path_;
  std::string agent_;
  UniqueFd listen_;
  UniqueFd stop_read_;
  UniqueFd stop_write_;
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace kiln::engine
