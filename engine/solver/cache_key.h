// Cache key formulas and the link query, in BuildKit's model.
//
// Every output of a vertex gets one or more cache keys (strings "sha256:<hex>"):
//
//   root op (no inputs), output o, for each digest d of its CacheMap (digest + alt_digests):
//       RootKey(d, o)     = sha256("kiln.cache.root.v1\n" d "@" o)
//   content key of an input, from ContentDigestFunc returning c:
//       ContentKey(c)     = sha256("kiln.cache.content.v1\n" c)
//   op with inputs, output o, op digest D, where input i offers the key set K_i (its definition
//   keys, each paired with the op's selector S_i for that input, plus its content key with an
//   empty selector):
//       a key found in storage: every `to` with, for each i, some (k, s) in K_i and a link
//           k --{input i, output o, D, s}--> to          (Query; BuildKit's cacheManager.Query)
//       otherwise a new key:
//       ComputedKey(D, o, K) = sha256("kiln.cache.key.v1\n" D "@" o, then per input i:
//                                     "\n" i ":" sorted "(s)k" pairs of K_i joined by ",")
//
// Found keys are preferred to new ones, so a vertex keeps the identity its output was recorded
// under when it is reached another way (through a content key after its input's definition
// changed): its dependents then match through their existing links.  ComputedKey is only a
// deterministic name for a key seen for the first time; matching always goes through links.
//
// Thread-safety: pure functions; Query reads the storage only.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "engine/solver/cache_storage.h"

namespace kiln::engine {

struct InputKey {
  std::string key;
  std::string selector;  // empty: none

  auto operator<=>(const InputKey&) const = default;
};

// K_i for each input i of one op.
using InputKeySets = std::vector<std::vector<InputKey>>;

std::string RootKey(const Digest& op_digest, int output);
std::string ContentKey(const Digest& content);
std::string ComputedKey(const Digest& op_digest, int output, const InputKeySets& inputs);

// The stored keys reachable from every input (see above), sorted.  Empty when any input has no
// key or nothing matches.
absl::StatusOr<std::vector<std::string>> QueryCacheKeys(CacheStorage& storage,
                                                        const Digest& op_digest, int output,
                                                        const InputKeySets& inputs);

// The links that record `to` as output `output` of op `op_digest` given these input keys.
std::vector<CacheUpdate::Link> LinksTo(const Digest& op_digest, int output,
                                       const InputKeySets& inputs, const std::string& to);

}  // namespace kiln::engine
