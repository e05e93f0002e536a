// The image exporter pushing to a real registry (Debian's docker-registry through
// tests/registry_harness), checked with skopeo.
#include <set>
#include <string>

#include <unistd.h>

#include "absl/strings/str_cat.h"  // base/strings.h does not include it itself
#include "base/strings.h"
#include "engine/exporter/exporter.h"
#include "engine/exporter/layers.h"
#include "engine/exporter/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/registry_harness/harness.h"

namespace kiln::engine {
namespace {

using Json = nlohmann::json;
using testing::Sh;

class PushTest : public testing::ExporterFixture {
 protected:
  void SetUp() override {
    ExporterFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (Sh("command -v docker-registry").status != 0) GTEST_SKIP() << "needs docker-registry";
    auto reg = registry_harness::LocalRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = std::move(*reg);
    // Failures (the TLS attempt below) should fail fast.
    options_.retry.max_attempts = 1;
    client_ = std::make_unique<registry::Registry>(options_);
  }

  absl::StatusOr<ExportResponse> Push(const ExporterAttrs& attrs, const ResultRef& result) {
    ExporterAttrs a = attrs;
    a["push"] = "true";
    auto exp = NewExporter("image", a, {worker_.get(), client_.get(), &options_});
    if (!exp.ok()) return exp.status();
    ExportInput in;
    in.result = result;
    in.image_config = testing::kFrontendConfig;
    in.platform = oci::Platform{"amd64", "linux"};
    return (*exp)->Export(in, {}, CancelToken());
  }

  Json Inspect(const std::string& ref, const std::string& flags = "") {
    auto r = Sh(StrCat("skopeo inspect --tls-verify=false ", flags, " docker://", ref));
    EXPECT_EQ(r.status, 0) << ref;
    return r.status == 0 ? Json::parse(r.out) : Json();
  }

  std::string Host() const { return registry_->host(); }

  std::unique_ptr<registry_harness::LocalRegistry> registry_;
  registry::RegistryOptions options_;
  std::unique_ptr<registry::Registry> client_;
};

TEST_F(PushTest, PushesEveryNameAndSkopeoSeesTheDigest) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::string a = StrCat(Host(), "/kiln/app:v1"), b = StrCat(Host(), "/kiln/other:v2");
  auto resp = Push({{"name", StrCat(a, ",", b)}}, result);
  ASSERT_TRUE(resp.ok()) << resp.status();
  std::string digest = resp->at(kExporterImageDigest);
  EXPECT_EQ(Inspect(a)["Digest"], digest);
  EXPECT_EQ(Inspect(b)["Digest"], digest);
  // Docker media types by default (oci-mediatypes=false in BuildKit v0.11).
  Json raw = Inspect(a, "--raw");
  EXPECT_EQ(raw["mediaType"], oci::kMediaTypeDockerManifest);
  EXPECT_EQ(raw["layers"].size(), 4u);
  EXPECT_EQ(raw["layers"][0]["mediaType"], oci::kMediaTypeDockerLayerGzip);
  Json config = Inspect(a, "--config");
  EXPECT_EQ(config["config"]["User"], "app");
  EXPECT_EQ(config["rootfs"]["diff_ids"].size(), 4u);
  // The second repository got its layers by mount or upload, each blob went up once.
  EXPECT_EQ(registry_->Count("PUT", "^/v2/kiln/app/manifests/v1$", 201), 1);
  EXPECT_EQ(registry_->Count("PUT", "^/v2/kiln/other/manifests/v2$", 201), 1);
  // Also stored locally under both names.
  EXPECT_TRUE(worker_->images().Get(a).ok());
}

TEST_F(PushTest, EarlyLayerUploadsAndThePushUploadEachBlobOnce) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  const std::string name = StrCat(Host(), "/kiln/early:1");
  auto resp = Push({{"name", name}}, result);
  ASSERT_TRUE(resp.ok()) << resp.status();
  Json raw = Inspect(name, "--raw");
  std::set<std::string> blobs{raw["config"]["digest"].get<std::string>()};
  for (const auto& l : raw["layers"]) blobs.insert(l["digest"].get<std::string>());
  // Early uploads and PushImage together upload every blob exactly once.
  EXPECT_EQ(registry_->Count("PUT", "^/v2/kiln/early/blobs/uploads/", 201),
            static_cast<int>(blobs.size()));
  EXPECT_EQ(Inspect(name)["Digest"], resp->at(kExporterImageDigest));
}

TEST_F(PushTest, MountsBlobsFromTheirDistributionSource) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  auto first = Push({{"name", StrCat(Host(), "/kiln/base:1")}}, result);
  ASSERT_TRUE(first.ok()) << first.status();
  // As an image pull would have labelled them: the blobs came from kiln/base on this host.
  auto layers = ExportLayers(*worker_, result, {});
  ASSERT_TRUE(layers.ok());
  for (const auto& l : *layers) {
    ASSERT_TRUE(
        worker_->content()
            .UpdateLabels(l.blob.digest,
                          {{StrCat("containerd.io/distribution.source.", Host()), "kiln/base"}})
            .ok());
  }
  // A fresh client knows nothing about where blobs live except the labels.
  client_ = std::make_unique<registry::Registry>(options_);
  auto second = Push({{"name", StrCat(Host(), "/kiln/derived:1")}}, result);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(registry_->Count("POST", "^/v2/kiln/derived/blobs/uploads/$", 201), 4);
  EXPECT_EQ(Inspect(StrCat(Host(), "/kiln/derived:1"))["Digest"], second->at(kExporterImageDigest));
}

TEST_F(PushTest, ZstdWithOciMediaTypes) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::string ref = StrCat(Host(), "/kiln/zstd:latest");
  auto resp = Push({{"name", ref},
                    {"compression", "zstd"},
                    {"compression-level", "19"},
                    {"oci-mediatypes", "true"}},
                   result);
  ASSERT_TRUE(resp.ok()) << resp.status();
  Json raw = Inspect(ref, "--raw");
  EXPECT_EQ(raw["mediaType"], oci::kMediaTypeImageManifest);
  EXPECT_EQ(raw["config"]["mediaType"], oci::kMediaTypeImageConfig);
  for (const auto& l : raw["layers"]) EXPECT_EQ(l["mediaType"], oci::kMediaTypeLayerZstd);
  EXPECT_EQ(Inspect(ref)["Digest"], resp->at(kExporterImageDigest));
  // skopeo can copy it out (it reads every zstd blob).
  EXPECT_EQ(
      Sh(StrCat("skopeo copy --src-tls-verify=false docker://", ref, " oci:", Path("copied"), ":z"))
          .status,
      0);
}

TEST_F(PushTest, PushByDigestLeavesNoTag) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::string repo = StrCat(Host(), "/kiln/bydigest");
  auto resp =
      Push({{"name", repo + ":ignored"}, {"push-by-digest", "true"}, {"store", "false"}}, result);
  ASSERT_TRUE(resp.ok()) << resp.status();
  std::string digest = resp->at(kExporterImageDigest);
  EXPECT_EQ(Inspect(StrCat(repo, "@", digest), "--no-tags")["Digest"], digest);
  EXPECT_NE(Sh(StrCat("skopeo inspect --tls-verify=false docker://", repo, ":ignored")).status, 0);
  EXPECT_FALSE(worker_->images().Get(repo + ":ignored").ok());  // store=false
}

TEST_F(PushTest, InsecureRegistryUsesPlainHttp) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  // A host name other than localhost/127.0.0.1 gets HTTPS; registry.insecure makes it HTTP.
  // This machine's own name reaches the loopback registry when it resolves to 127.0.0.1.
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof(host) - 1), 0);
  if (Sh(StrCat("getent ahostsv4 ", host, " | grep -q '^127\\.0\\.0\\.1 '")).status != 0) {
    GTEST_SKIP() << "the host name does not resolve to 127.0.0.1 here";
  }
  std::string ref = StrCat(host, ":", registry_->port(), "/kiln/insecure:v1");
  auto secure = Push({{"name", ref}}, result);
  EXPECT_FALSE(secure.ok());  // TLS to a plain-HTTP registry
  auto resp = Push({{"name", ref}, {"registry.insecure", "true"}}, result);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(Inspect(ref)["Digest"], resp->at(kExporterImageDigest));
}

}  // namespace
}  // namespace kiln::engine
