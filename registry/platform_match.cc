#include "registry/platform_match.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "absl/strings/numbers.h"
#include "base/strings.h"

namespace kiln::registry {

namespace {

// The numeric part of a "vN" (or "N") variant.
std::optional<int> VariantNumber(const std::string& variant) {
  std::string v = variant;
  if (!v.empty() && v[0] == 'v') v.erase(0, 1);
  int n = 0;
  if (!absl::SimpleAtoi(v, &n)) return std::nullopt;
  return n;
}

oci::Platform With(const oci::Platform& base, std::string arch, std::string variant) {
  oci::Platform p;
  p.os = base.os;
  p.os_version = base.os_version;
  p.os_features = base.os_features;
  p.architecture = std::move(arch);
  p.variant = std::move(variant);
  return p;
}

void AppendVector(const oci::Platform& p, std::vector<oci::Platform>* out) {
  out->push_back(p);
  if (p.architecture == "amd64") {
    if (auto n = VariantNumber(p.variant); n && *n > 1) {
      for (int v = *n - 1; v >= 1; --v) out->push_back(With(p, "amd64", StrCat("v", v)));
    }
    out->push_back(With(p, "386", ""));
  } else if (p.architecture == "arm") {
    if (auto n = VariantNumber(p.variant); n && *n > 5) {
      for (int v = *n - 1; v >= 5; --v) out->push_back(With(p, "arm", StrCat("v", v)));
    }
  } else if (p.architecture == "arm64") {
    AppendVector(With(p, "arm", p.variant.empty() ? "v8" : p.variant), out);
  }
}

}  // namespace

PlatformMatcher::PlatformMatcher(const oci::Platform& want) {
  // As containerd: the vector is built from the normalized platform and every entry becomes a
  // matcher of its own normalized form.
  AppendVector(oci::NormalizePlatform(want), &candidates_);
  for (auto& c : candidates_) c = oci::NormalizePlatform(c);
}

std::optional<size_t> PlatformMatcher::Rank(const oci::Platform& p) const {
  oci::Platform n = oci::NormalizePlatform(p);
  for (size_t i = 0; i < candidates_.size(); ++i) {
    const oci::Platform& c = candidates_[i];
    if (c.os == n.os && c.architecture == n.architecture && c.variant == n.variant) return i;
  }
  return std::nullopt;
}

bool PlatformMatcher::Match(const oci::Platform& p) const { return Rank(p).has_value(); }

bool PlatformMatcher::Less(const oci::Platform& a, const oci::Platform& b) const {
  std::optional<size_t> ra = Rank(a), rb = Rank(b);
  if (!ra) return false;
  return !rb || *ra < *rb;
}

std::optional<size_t> SelectIndexEntry(const std::vector<oci::Descriptor>& manifests,
                                       const PlatformMatcher& matcher) {
  std::vector<size_t> picks;
  for (size_t i = 0; i < manifests.size(); ++i) {
    const auto& p = manifests[i].platform;
    if (!p || matcher.Match(*p)) picks.push_back(i);
  }
  std::stable_sort(picks.begin(), picks.end(), [&](size_t a, size_t b) {
    const auto& pa = manifests[a].platform;
    const auto& pb = manifests[b].platform;
    if (!pa) return false;
    if (!pb) return true;
    return matcher.Less(*pa, *pb);
  });
  if (picks.empty()) return std::nullopt;
  return picks.front();
}

}  // namespace kiln::registry
