// An in-memory CacheStorage: for tests and for builds that must not persist anything.
//
// Thread-safety: every method may be called concurrently (one mutex).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>

#include "engine/solver/cache_storage.h"

namespace kiln::engine {

class MemoryCacheStorage : public CacheStorage {
 public:
  MemoryCacheStorage() = default;

  absl::StatusOr<bool> Exists(const std::string& key) override;
  absl::Status Walk(const KeyFn& fn) override;
  absl::Status WalkResults(const std::string& key, const ResultFn& fn) override;
  absl::Status WalkLinks(const std::string& from, const CacheLink& link, const KeyFn& fn) override;
  absl::Status WalkBacklinks(const std::string& to, const BacklinkFn& fn) override;
  absl::Status WalkKeysByResult(const std::string& result_id, const KeyFn& fn) override;
  absl::Status Commit(const CacheUpdate& update) override;
  absl::Status Release(const std::string& result_id) override;

 private:
  // Removes `key` if it holds no result and no outgoing link, then re-checks its parents.
  void PruneLocked(const std::string& key);

  std::mutex mu_;
  std::map<std::string, std::map<std::string, CacheResultRecord>> results_;  // key -> id -> rec
  std::map<std::string, std::set<std::string>> by_result_;                   // id -> keys
  std::map<std::string, std::map<CacheLink, std::set<std::string>>> links_;  // from -> link -> to
  std::map<std::string, std::set<std::pair<std::string, CacheLink>>> backlinks_;  // to -> from,link
};

}  // namespace kiln::engine
