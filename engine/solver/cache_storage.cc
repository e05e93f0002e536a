#include "engine/solver/cache_storage.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine {
namespace {

absl::Status CheckField(std::string_view what, std::string_view value, bool required) {
  if (required && value.empty()) {
    return absl::InvalidArgumentError(StrCat("cache update: empty ", what));
  }
  if (value.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat("cache update: ", what, " contains a NUL byte"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateCacheUpdate(const CacheUpdate& update) {
  for (const auto& l : update.links) {
    KILN_RETURN_IF_ERROR(CheckField("link source key", l.from, true));
    KILN_RETURN_IF_ERROR(CheckField("link target key", l.to, true));
    KILN_RETURN_IF_ERROR(CheckField("link op digest", l.link.op_digest, true));
    KILN_RETURN_IF_ERROR(CheckField("link selector", l.link.selector, false));
    if (l.link.input < 0 || l.link.output < 0) {
      return absl::InvalidArgumentError("cache update: negative link input or output index");
    }
  }
  for (const auto& r : update.results) {
    KILN_RETURN_IF_ERROR(CheckField("result key", r.key, true));
    KILN_RETURN_IF_ERROR(CheckField("result ID", r.record.id, true));
  }
  return absl::OkStatus();
}

absl::Status CacheStorage::AddLink(const std::string& from, const CacheLink& link,
                                   const std::string& to) {
  CacheUpdate u;
  u.links.push_back({from, link, to});
  return Commit(u);
}

absl::Status CacheStorage::AddResult(const std::string& key, const CacheResultRecord& result) {
  CacheUpdate u;
  u.results.push_back({key, result});
  return Commit(u);
}

absl::StatusOr<bool> CacheStorage::HasLink(const std::string& from, const CacheLink& link,
                                           const std::string& to) {
  bool found = false;
  KILN_RETURN_IF_ERROR(WalkLinks(from, link, [&](const std::string& target) {
    if (target == to) found = true;
    return absl::OkStatus();
  }));
  return found;
}

absl::StatusOr<CacheResultRecord> CacheStorage::Load(const std::string& key,
                                                     const std::string& result_id) {
  std::optional<CacheResultRecord> found;
  KILN_RETURN_IF_ERROR(WalkResults(key, [&](const CacheResultRecord& r) {
    if (r.id == result_id) found = r;
    return absl::OkStatus();
  }));
  if (!found) {
    return absl::NotFoundError(
        StrCat("cache result ", Quote(result_id), " of key ", Quote(key), ": not found"));
  }
  return *found;
}

absl::StatusOr<std::vector<CachedResultInfo>> ListCachedResults(CacheStorage& storage) {
  std::map<std::string, CachedResultInfo> by_id;
  KILN_RETURN_IF_ERROR(storage.Walk([&](const std::string& key) {
    return storage.WalkResults(key, [&](const CacheResultRecord& r) {
      CachedResultInfo& info = by_id[r.id];
      info.id = r.id;
      if (info.keys.empty() || r.created < info.created) info.created = r.created;
      info.keys.push_back(key);
      return absl::OkStatus();
    });
  }));
  std::vector<CachedResultInfo> out;
  out.reserve(by_id.size());
  for (auto& [id, info] : by_id) out.push_back(std::move(info));
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.created < b.created; });
  return out;
}

absl::StatusOr<CacheUpdate> CollectCacheChain(CacheStorage& storage,
                                              const std::vector<std::string>& keys,
                                              bool intermediate_results) {
  CacheUpdate out;
  std::set<std::string> visited;
  std::vector<std::pair<std::string, bool>> work;  // key, whether its results are wanted
  for (const auto& k : keys) work.push_back({k, true});
  while (!work.empty()) {
    auto [key, want_results] = std::move(work.back());
    work.pop_back();
    if (!visited.insert(key).second) continue;
    if (want_results) {
      KILN_RETURN_IF_ERROR(storage.WalkResults(key, [&](const CacheResultRecord& r) {
        out.results.push_back({key, r});
        return absl::OkStatus();
      }));
    }
    KILN_RETURN_IF_ERROR(
        storage.WalkBacklinks(key, [&](const std::string& from, const CacheLink& link) {
          out.links.push_back({from, link, key});
          work.push_back({from, intermediate_results});
          return absl::OkStatus();
        }));
  }
  return out;
}

absl::StatusOr<int> ReleaseUnreferenced(CacheStorage& storage,
                                        const std::function<bool(const std::string& id)>& exists) {
  KILN_ASSIGN_OR_RETURN(std::vector<CachedResultInfo> all, ListCachedResults(storage));
  int released = 0;
  for (const auto& info : all) {
    if (exists(info.id)) continue;
    KILN_RETURN_IF_ERROR(storage.Release(info.id));
    ++released;
  }
  return released;
}

}  // namespace kiln::engine
