#include "base/oci.h"

#include "gtest/gtest.h"

namespace kiln::oci {
namespace {

TEST(Oci, ImageConfigEncodesInBuildKitFieldOrder) {
  ImageConfig c;
  c.env = {"PATH=/usr/bin", "A=<b>&"};
  c.cmd = std::vector<std::string>{"sh"};
  c.working_dir = "/";
  c.user = "app";
  c.exposed_ports["80/tcp"] = true;
  c.labels["k"] = "v";
  EXPECT_EQ(EncodeImageConfig(c),
            R"({"User":"app","ExposedPorts":{"80/tcp":{}},"Env":["PATH=/usr/bin",)"
            R"("A=\u003cb\u003e\u0026"],"Cmd":["sh"],"WorkingDir":"/","Labels":{"k":"v"},)"
            R"("OnBuild":null})");
}

TEST(Oci, ImageRoundTrip) {
  Image img;
  img.platform = {.architecture = "amd64", .os = "linux"};
  img.config.env = {"PATH=/bin"};
  img.config.entrypoint = std::vector<std::string>{};
  img.config.healthcheck = HealthConfig{.test = {"CMD", "true"}, .interval = 5000000000, .retries = 3};
  img.rootfs.diff_ids.push_back(Digest::Sha256Of("layer"));
  img.history.push_back({.created_by = "RUN x", .empty_layer = true});
  img.created = "2024-01-01T00:00:00Z";
  std::string json = EncodeImage(img);
  auto back = DecodeImage(json);
  ASSERT_TRUE(back.ok()) << back.status();
  // An explicitly empty entrypoint is not written, so it decodes as unset.
  img.config.entrypoint.reset();
  EXPECT_EQ(*back, img);
  EXPECT_EQ(json.find("\"architecture\""), 1u);
}

TEST(Oci, DecodeErrorsNameField) {
  auto bad = DecodeImageConfig(R"({"Env": 3})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("`Env`"), std::string::npos);
  EXPECT_FALSE(DecodeManifest("[]").ok());
  EXPECT_FALSE(DecodeManifest(R"({"schemaVersion":2})").ok());
  EXPECT_FALSE(DecodeImage("{not json").ok());
}

TEST(Oci, ManifestRoundTrip) {
  Manifest m;
  m.media_type = kMediaTypeImageManifest;
  m.config = {.media_type = kMediaTypeImageConfig, .digest = Digest::Sha256Of("c"), .size = 1};
  m.layers.push_back(
      {.media_type = kMediaTypeLayerGzip, .digest = Digest::Sha256Of("l"), .size = 10});
  auto back = DecodeManifest(EncodeManifest(m));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
}

TEST(Oci, ParsePlatform) {
  auto p = ParsePlatform("linux/arm64/v8");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(FormatPlatform(*p), "linux/arm64");
  EXPECT_EQ(FormatPlatform(*ParsePlatform("x86_64")), "linux/amd64");
  EXPECT_FALSE(ParsePlatform("a/b/c/d").ok());
  EXPECT_FALSE(ParsePlatform("linux/").ok());
}

}  // namespace
}  // namespace kiln::oci
