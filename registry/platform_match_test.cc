#include "registry/platform_match.h"

#include <gtest/gtest.h>

namespace kiln::registry {
namespace {

oci::Platform P(std::string os, std::string arch, std::string variant = "") {
  oci::Platform p;
  p.os = std::move(os);
  p.architecture = std::move(arch);
  p.variant = std::move(variant);
  return p;
}

TEST(NormalizePlatform, ContainerdAliases) {
  EXPECT_EQ(NormalizePlatform(P("Linux", "x86_64")), P("linux", "amd64"));
  EXPECT_EQ(NormalizePlatform(P("linux", "amd64", "v1")), P("linux", "amd64"));
  EXPECT_EQ(NormalizePlatform(P("linux", "aarch64", "v8")), P("linux", "arm64"));
  EXPECT_EQ(NormalizePlatform(P("linux", "arm")), P("linux", "arm", "v7"));
  EXPECT_EQ(NormalizePlatform(P("linux", "armhf")), P("linux", "arm", "v7"));
  EXPECT_EQ(NormalizePlatform(P("linux", "armel")), P("linux", "arm", "v6"));
  EXPECT_EQ(NormalizePlatform(P("linux", "i386", "x")), P("linux", "386"));
  EXPECT_EQ(NormalizePlatform(P("macos", "arm64")), P("darwin", "arm64"));
}

TEST(PlatformMatcher, OnlySemantics) {
  PlatformMatcher amd64(P("linux", "amd64"));
  EXPECT_TRUE(amd64.Match(P("linux", "x86_64")));
  EXPECT_TRUE(amd64.Match(P("linux", "386")));
  EXPECT_FALSE(amd64.Match(P("linux", "arm64")));
  EXPECT_FALSE(amd64.Match(P("windows", "amd64")));
  EXPECT_FALSE(amd64.Match(P("linux", "amd64", "v2")));
  EXPECT_TRUE(amd64.Less(P("linux", "amd64"), P("linux", "386")));
  EXPECT_FALSE(amd64.Less(P("linux", "386"), P("linux", "amd64")));

  PlatformMatcher v3(P("linux", "amd64", "v3"));
  EXPECT_TRUE(v3.Match(P("linux", "amd64", "v2")));
  EXPECT_TRUE(v3.Match(P("linux", "amd64")));
  EXPECT_FALSE(v3.Match(P("linux", "amd64", "v4")));

  PlatformMatcher armv7(P("linux", "arm", "v7"));
  EXPECT_TRUE(armv7.Match(P("linux", "arm")));
  EXPECT_TRUE(armv7.Match(P("linux", "arm", "v6")));
  EXPECT_TRUE(armv7.Match(P("linux", "arm", "v5")));
  EXPECT_FALSE(armv7.Match(P("linux", "arm", "v8")));
  EXPECT_TRUE(armv7.Less(P("linux", "arm", "v7"), P("linux", "arm", "v6")));

  PlatformMatcher arm64(P("linux", "arm64"));
  EXPECT_TRUE(arm64.Match(P("linux", "arm64", "v8")));
  EXPECT_TRUE(arm64.Match(P("linux", "arm", "v8")));
  EXPECT_TRUE(arm64.Match(P("linux", "arm", "v7")));
  EXPECT_FALSE(arm64.Match(P("linux", "amd64")));
}

oci::Descriptor Entry(std::optional<oci::Platform> p, char fill) {
  oci::Descriptor d;
  d.media_type = oci::kMediaTypeImageManifest;
  d.digest = Digest::Sha256Of(std::string(1, fill));
  d.platform = std::move(p);
  return d;
}

TEST(SelectIndexEntry, PrefersBestMatchThenEntriesWithoutPlatform) {
  std::vector<oci::Descriptor> idx = {
      Entry(P("linux", "386"), 'a'),
      Entry(std::nullopt, 'b'),
      Entry(P("linux", "arm64"), 'c'),
      Entry(P("linux", "amd64"), 'd'),
  };
  EXPECT_EQ(SelectIndexEntry(idx, PlatformMatcher(P("linux", "amd64"))), 3u);
  EXPECT_EQ(SelectIndexEntry(idx, PlatformMatcher(P("linux", "arm64", "v8"))), 2u);
  // Nothing matches s390x but the platform-less entry.
  EXPECT_EQ(SelectIndexEntry(idx, PlatformMatcher(P("linux", "s390x"))), 1u);
  idx.erase(idx.begin() + 1);
  EXPECT_FALSE(SelectIndexEntry(idx, PlatformMatcher(P("linux", "s390x"))).has_value());
  // amd64 falls back to 386 when it is the only one.
  std::vector<oci::Descriptor> only386 = {Entry(P("linux", "arm64"), 'x'),
                                          Entry(P("linux", "386"), 'y')};
  EXPECT_EQ(SelectIndexEntry(only386, PlatformMatcher(P("linux", "amd64"))), 1u);
}

}  // namespace
}  // namespace kiln::registry
