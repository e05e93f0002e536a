#include "engine/solver/memory_cache_storage.h"

#include <algorithm>
#include <vector>

#include "base/status.h"

namespace kiln::engine {
namespace {

absl::Status Each(const std::vector<std::string>& keys, const CacheStorage::KeyFn& fn) {
  for (const auto& k : keys) KILN_RETURN_IF_ERROR(fn(k));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<bool> MemoryCacheStorage::Exists(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  return results_.contains(key) || links_.contains(key) || backlinks_.contains(key);
}

absl::Status MemoryCacheStorage::Walk(const KeyFn& fn) {
  std::set<std::string> keys;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [k, v] : results_) keys.insert(k);
    for (const auto& [k, v] : links_) keys.insert(k);
    for (const auto& [k, v] : backlinks_) keys.insert(k);
  }
  return Each(std::vector<std::string>(keys.begin(), keys.end()), fn);
}

absl::Status MemoryCacheStorage::WalkResults(const std::string& key, const ResultFn& fn) {
  std::vector<CacheResultRecord> records;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = results_.find(key);
    if (it != results_.end()) {
      for (const auto& [id, rec] : it->second) records.push_back(rec);
    }
  }
  std::stable_sort(records.begin(), records.end(),
                   [](const auto& a, const auto& b) { return a.created > b.created; });
  for (const auto& r : records) KILN_RETURN_IF_ERROR(fn(r));
  return absl::OkStatus();
}

absl::Status MemoryCacheStorage::WalkLinks(const std::string& from, const CacheLink& link,
                                           const KeyFn& fn) {
  std::vector<std::string> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = links_.find(from);
    if (it != links_.end()) {
      auto lit = it->second.find(link);
      if (lit != it->second.end()) targets.assign(lit->second.begin(), lit->second.end());
    }
  }
  return Each(targets, fn);
}

absl::Status MemoryCacheStorage::WalkBacklinks(const std::string& to, const BacklinkFn& fn) {
  std::vector<std::pair<std::string, CacheLink>> back;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = backlinks_.find(to);
    if (it != backlinks_.end()) back.assign(it->second.begin(), it->second.end());
  }
  for (const auto& [from, link] : back) KILN_RETURN_IF_ERROR(fn(from, link));
  return absl::OkStatus();
}

absl::Status MemoryCacheStorage::WalkKeysByResult(const std::string& result_id, const KeyFn& fn) {
  std::vector<std::string> keys;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_result_.find(result_id);
    if (it != by_result_.end()) keys.assign(it->second.begin(), it->second.end());
  }
  return Each(keys, fn);
}

absl::Status MemoryCacheStorage::Commit(const CacheUpdate& update) {
  KILN_RETURN_IF_ERROR(ValidateCacheUpdate(update));
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& l : update.links) {
    links_[l.from][l.link].insert(l.to);
    backlinks_[l.to].insert({l.from, l.link});
  }
  for (const auto& r : update.results) {
    results_[r.key].emplace(r.record.id, r.record);  // an existing record is kept as is
    by_result_[r.record.id].insert(r.key);
  }
  return absl::OkStatus();
}

absl::Status MemoryCacheStorage::Release(const std::string& result_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_result_.find(result_id);
  if (it == by_result_.end()) return absl::OkStatus();
  std::set<std::string> keys = std::move(it->second);
  by_result_.erase(it);
  for (const auto& key : keys) {
    auto rit = results_.find(key);
    if (rit == results_.end()) continue;
    rit->second.erase(result_id);
    if (rit->second.empty()) results_.erase(rit);
    PruneLocked(key);
  }
  return absl::OkStatus();
}

void MemoryCacheStorage::PruneLocked(const std::string& start) {
  std::vector<std::string> work{start};
  while (!work.empty()) {
    std::string key = std::move(work.back());
    work.pop_back();
    if (results_.contains(key) || links_.contains(key)) continue;
    auto bit = backlinks_.find(key);
    if (bit == backlinks_.end()) continue;
    for (const auto& [from, link] : bit->second) {
      auto fit = links_.find(from);
      if (fit == links_.end()) continue;
      auto lit = fit->second.find(link);
      if (lit != fit->second.end()) {
        lit->second.erase(key);
        if (lit->second.empty()) fit->second.erase(lit);
      }
      if (fit->second.empty()) links_.erase(fit);
      work.push_back(from);
    }
    backlinks_.erase(bit);
  }
}

}  // namespace kiln::engine
