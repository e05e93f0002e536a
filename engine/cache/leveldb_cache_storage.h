// The persistent CacheStorage: the cache-key graph in leveldb, so cache hits survive restarts.
//
// The engine opens it at `<state dir>/cache/`.  Every Commit and every Release is one leveldb
// WriteBatch (synced by default), so a daemon killed at any moment finds either all of a step's
// records or none of them.  Records only name results; the data stays with the worker, and a
// record whose data is gone is dropped when the solver fails to load it (or at startup with
// ReleaseUnreferenced, cache_storage.h).
//
// On-disk layout (keys; every component is NUL-free, which Commit enforces):
//   "V"                                             format version ("1")
//   "N\0<key>"                                      the key exists
//   "R\0<key>\0<result id>"                         -> created, int64 ns since epoch, big-endian
//   "B\0<result id>\0<key>"                         by-result index
//   "L\0<from>\0<input>\0<output>\0<op>\0<sel>\0<to>"  links, prefix-scannable per (from, link)
//   "K\0<to>\0<from>\0<input>\0<output>\0<op>\0<sel>"  backlinks
//
// Thread-safety: safe for concurrent use.  Writers (Commit, Release) are serialized; readers use
// leveldb's implicit snapshots.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "engine/solver/cache_storage.h"

namespace leveldb {
class DB;
}

namespace kiln::engine {

class LevelDbCacheStorage : public CacheStorage {
 public:
  struct Options {
    // fsync each commit.  Off only where losing the last commits on power loss is acceptable
    // (tests, throwaway daemons); a process crash never loses a commit either way.
    bool sync = true;
  };

  // Opens (creating if needed) the database in directory `path`.  FailedPrecondition when it was
  // written by a newer format; Unavailable when another process holds it.
  static absl::StatusOr<std::unique_ptr<LevelDbCacheStorage>> Open(const std::string& path,
                                                                   Options options);
  static absl::StatusOr<std::unique_ptr<LevelDbCacheStorage>> Open(const std::string& path) {
    return Open(path, Options{});
  }
  ~LevelDbCacheStorage() override;

  absl::StatusOr<bool> Exists(const std::string& key) override;
  absl::Status Walk(const KeyFn& fn) override;
  absl::Status WalkResults(const std::string& key, const ResultFn& fn) override;
  absl::Status WalkLinks(const std::string& from, const CacheLink& link, const KeyFn& fn) override;
  absl::Status WalkBacklinks(const std::string& to, const BacklinkFn& fn) override;
  absl::Status WalkKeysByResult(const std::string& result_id, const KeyFn& fn) override;
  absl::Status Commit(const CacheUpdate& update) override;
  absl::Status Release(const std::string& result_id) override;

 private:
  LevelDbCacheStorage(std::string path, std::unique_ptr<leveldb::DB> db, Options options);

  std::string path_;
  std::unique_ptr<leveldb::DB> db_;
  Options options_;
  std::mutex write_mu_;
};

}  // namespace kiln::engine
