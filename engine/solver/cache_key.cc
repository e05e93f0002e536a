#include "engine/solver/cache_key.h"

#include <algorithm>
#include <set>

#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine {

std::string RootKey(const Digest& op_digest, int output) {
  return Digest::Sha256Of(StrCat("kiln.cache.root.v1\n", op_digest.str(), "@", output)).str();
}

std::string ContentKey(const Digest& content) {
  return Digest::Sha256Of(StrCat("kiln.cache.content.v1\n", content.str())).str();
}

std::string ComputedKey(const Digest& op_digest, int output, const InputKeySets& inputs) {
  Sha256Hasher h;
  h.Update(StrCat("kiln.cache.key.v1\n", op_digest.str(), "@", output));
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::vector<InputKey> sorted = inputs[i];
    std::sort(sorted.begin(), sorted.end());
    h.Update(StrCat("\n", i, ":"));
    for (size_t j = 0; j < sorted.size(); ++j) {
      // Lengths make the encoding unambiguous whatever the strings contain.
      h.Update(StrCat(j ? "," : "", "(", sorted[j].selector.size(), ":", sorted[j].selector, ")",
                      sorted[j].key.size(), ":", sorted[j].key));
    }
  }
  return h.Finish().str();
}

absl::StatusOr<std::vector<std::string>> QueryCacheKeys(CacheStorage& storage,
                                                        const Digest& op_digest, int output,
                                                        const InputKeySets& inputs) {
  std::set<std::string> matches;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::set<std::string> reachable;
    for (const InputKey& k : inputs[i]) {
      CacheLink link{static_cast<int>(i), output, op_digest.str(), k.selector};
      KILN_RETURN_IF_ERROR(storage.WalkLinks(k.key, link, [&](const std::string& to) {
        if (i == 0 || matches.contains(to)) reachable.insert(to);
        return absl::OkStatus();
      }));
    }
    matches = std::move(reachable);
    if (matches.empty()) break;
  }
  return std::vector<std::string>(matches.begin(), matches.end());
}

std::vector<CacheUpdate::Link> LinksTo(const Digest& op_digest, int output,
                                       const InputKeySets& inputs, const std::string& to) {
  std::vector<CacheUpdate::Link> links;
  for (size_t i = 0; i < inputs.size(); ++i) {
    for (const InputKey& k : inputs[i]) {
      links.push_back(
          {k.key, CacheLink{static_cast<int>(i), output, op_digest.str(), k.selector}, to});
    }
  }
  return links;
}

}  // namespace kiln::engine
