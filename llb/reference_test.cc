// Tests of base/reference.h (kept with llb, its first user).
#include "base/reference.h"

#include <string>

#include "gtest/gtest.h"

namespace kiln {
namespace {

const std::string kHex = std::string(64, 'a');

std::string Normalized(const std::string& in) {
  absl::StatusOr<ImageReference> r = ParseNormalizedReference(in);
  return r.ok() ? r->String() : "error: " + std::string(r.status().message());
}

TEST(ImageReference, NormalizesLikeDockerDistribution) {
  EXPECT_EQ(Normalized("busybox"), "docker.io/library/busybox");
  EXPECT_EQ(Normalized("busybox:1.36"), "docker.io/library/busybox:1.36");
  EXPECT_EQ(Normalized("library/busybox"), "docker.io/library/busybox");
  EXPECT_EQ(Normalized("user/app"), "docker.io/user/app");
  EXPECT_EQ(Normalized("docker.io/busybox"), "docker.io/library/busybox");
  EXPECT_EQ(Normalized("index.docker.io/busybox"), "docker.io/library/busybox");
  EXPECT_EQ(Normalized("localhost/app"), "localhost/app");
  EXPECT_EQ(Normalized("localhost:5000/app:v1"), "localhost:5000/app:v1");
  EXPECT_EQ(Normalized("127.0.0.1:5001/base/busybox:1"), "127.0.0.1:5001/base/busybox:1");
  EXPECT_EQ(Normalized("ghcr.io/o/r/x:1@sha256:" + kHex), "ghcr.io/o/r/x:1@sha256:" + kHex);
  EXPECT_EQ(Normalized("busybox@sha256:" + kHex), "docker.io/library/busybox@sha256:" + kHex);
  EXPECT_EQ(Normalized("Registry.Example.COM/app"), "Registry.Example.COM/app");
  EXPECT_EQ(Normalized("a-b.c/x__y/z-_q"),
            "error: parse image reference `a-b.c/x__y/z-_q`: invalid reference format");
  EXPECT_EQ(Normalized("a.io/x--y/z---w.v"), "a.io/x--y/z---w.v");
  EXPECT_EQ(Normalized("foo:tag_with.dots-1"), "docker.io/library/foo:tag_with.dots-1");
}

TEST(ImageReference, RejectsWhatGoRejects) {
  for (const std::string& bad :
       {std::string(""), std::string("Busybox"), std::string("user/App"), kHex,
        std::string("busybox:"), std::string("busybox@sha256:abc"), std::string("a//b"),
        std::string("-a"), std::string("a-"), std::string("a..b"), std::string("a:b:c"),
        std::string("busybox:" + std::string(129, 't')), std::string("example.com:port/x"),
        std::string("busybox@sha256:" + std::string(64, 'A')), std::string("busybox@md5:" + kHex),
        std::string(250, 'a') + "/" + std::string(10, 'b'), std::string("a b")}) {
    absl::StatusOr<ImageReference> r = ParseNormalizedReference(bad);
    EXPECT_FALSE(r.ok()) << bad << " -> " << (r.ok() ? r->String() : "");
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  EXPECT_NE(Normalized("Busybox").find("repository name must be lowercase"), std::string::npos);
  EXPECT_NE(Normalized(kHex).find("64-byte hexadecimal"), std::string::npos);
}

TEST(ImageReference, PartsTagsAndFamiliarForm) {
  absl::StatusOr<ImageReference> r = ParseNormalizedReference("localhost:5000/a/b:v2");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->domain, "localhost:5000");
  EXPECT_EQ(r->path, "a/b");
  EXPECT_EQ(r->tag, "v2");
  EXPECT_FALSE(r->digest.has_value());
  EXPECT_EQ(r->Name(), "localhost:5000/a/b");
  EXPECT_EQ(r->FamiliarString(), "localhost:5000/a/b:v2");
  EXPECT_EQ(ParseNormalizedReference("busybox")->FamiliarString(), "busybox");
  EXPECT_EQ(ParseNormalizedReference("user/x")->FamiliarString(), "user/x");
  EXPECT_EQ(ParseNormalizedReference("library/a/b")->FamiliarString(), "library/a/b");
  EXPECT_EQ(ParseNormalizedReference("busybox")->WithDefaultTag().String(),
            "docker.io/library/busybox:latest");
  EXPECT_EQ(ParseNormalizedReference("busybox:1")->WithDefaultTag().String(),
            "docker.io/library/busybox:1");
  const Digest d = *Digest::Parse("sha256:" + kHex);
  EXPECT_EQ(ParseNormalizedReference("busybox@sha256:" + kHex)->WithDefaultTag().String(),
            "docker.io/library/busybox@sha256:" + kHex);
  EXPECT_EQ(ParseNormalizedReference("busybox")->WithDigest(d).String(),
            "docker.io/library/busybox@sha256:" + kHex);
  EXPECT_EQ(ParseNormalizedReference("busybox:1")->WithDigest(d).String(),
            "docker.io/library/busybox:1@sha256:" + kHex);
  EXPECT_EQ(ParseDockerRef("busybox:1@sha256:" + kHex)->String(),
            "docker.io/library/busybox@sha256:" + kHex);
  EXPECT_EQ(ParseDockerRef("busybox")->String(), "docker.io/library/busybox:latest");
}

}  // namespace
}  // namespace kiln
