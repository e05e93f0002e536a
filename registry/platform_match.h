// Choosing a platform from an image index, with containerd's default matcher semantics.
//
// PlatformMatcher is containerd's platforms.Only(want): platforms are normalized (x86_64 ->
// amd64, aarch64 -> arm64, arm64/v8 -> arm64, arm -> arm/v7, ...), and a wanted platform also
// accepts the ones it can run, in order of preference: amd64/vN accepts amd64/v(N-1)..v1 then
// 386; arm/vN accepts arm/v(N-1)..v5; arm64 accepts arm/v8..v5.  Less() ranks a platform by the
// first entry of that list it matches.  OS version and OS features are not compared (as on
// Linux).
//
// Thread-safety: immutable values; pure functions.
#pragma once

#include <optional>
#include <vector>

#include "base/oci.h"

namespace kiln::registry {

class PlatformMatcher {
 public:
  explicit PlatformMatcher(const oci::Platform& want);
  bool Match(const oci::Platform& p) const;
  // True when `a` is preferred over `b`.
  bool Less(const oci::Platform& a, const oci::Platform& b) const;
  const std::vector<oci::Platform>& candidates() const { return candidates_; }

 private:
  std::optional<size_t> Rank(const oci::Platform& p) const;
  std::vector<oci::Platform> candidates_;  // normalized, most preferred first
};

// The entry of an index to use, as containerd's images.Manifest picks it: entries whose
// platform matches or that have none, sorted stably by preference with platform-less entries
// last; the first wins.  nullopt when nothing matches.
std::optional<size_t> SelectIndexEntry(const std::vector<oci::Descriptor>& manifests,
                                       const PlatformMatcher& matcher);

}  // namespace kiln::registry
