#include "engine/worker/distribution_source.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine {
namespace {

std::vector<std::string> SplitRepos(const std::string& value) {
  std::vector<std::string> out;
  for (absl::string_view r : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    out.emplace_back(r.data(), r.size());
  }
  return out;
}

}  // namespace

std::vector<ImageReference> DistributionSources(snapshotter::ContentStore& store,
                                                const Digest& digest) {
  std::vector<ImageReference> out;
  auto info = store.Info(digest);
  if (!info.ok()) return out;
  constexpr std::string_view kPrefix = kDistributionSourceLabelPrefix;
  for (const auto& [key, value] : info->labels) {
    if (!key.starts_with(kPrefix)) continue;
    const std::string host = key.substr(kPrefix.size());
    for (const std::string& repo : SplitRepos(value)) {
      auto ref = ParseNormalizedReference(StrCat(host, "/", repo));
      if (ref.ok() && ref->domain == host && ref->NameOnly()) out.push_back(*std::move(ref));
    }
  }
  return out;
}

absl::Status AddDistributionSource(snapshotter::ContentStore& store, const Digest& digest,
                                   const ImageReference& repo) {
  KILN_ASSIGN_OR_RETURN(snapshotter::ContentInfo info, store.Info(digest));
  const std::string key = StrCat(kDistributionSourceLabelPrefix, repo.domain);
  std::vector<std::string> repos;
  if (auto it = info.labels.find(key); it != info.labels.end()) repos = SplitRepos(it->second);
  if (std::find(repos.begin(), repos.end(), repo.path) != repos.end()) return absl::OkStatus();
  repos.push_back(repo.path);
  return store.UpdateLabels(digest, {{key, absl::StrJoin(repos, ",")}});
}

}  // namespace kiln::engine
