#include "engine/worker/distribution_source.h"

#include "base/fs.h"
#include "base/strings.h"
#include "gtest/gtest.h"
#include "snapshotter/local_content_store.h"

namespace kiln::engine {
namespace {

class DistributionSourceTest : public testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("kiln-dist-source-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::move(*dir);
    auto store = snapshotter::LocalContentStore::Open(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto d = snapshotter::WriteBlob(*store_, "layer bytes");
    ASSERT_TRUE(d.ok()) << d.status();
    digest_ = *d;
  }

  ImageReference Ref(const std::string& text) { return *ParseNormalizedReference(text); }

  TempDir dir_;
  std::unique_ptr<snapshotter::LocalContentStore> store_;
  Digest digest_;
};

TEST_F(DistributionSourceTest, AppendsRepositoriesPerRegistryOnce) {
  EXPECT_TRUE(DistributionSources(*store_, digest_).empty());
  ASSERT_TRUE(AddDistributionSource(*store_, digest_, Ref("127.0.0.1:5000/a/b:1")).ok());
  ASSERT_TRUE(AddDistributionSource(*store_, digest_,
                                    Ref("127.0.0.1:5000/a/c@sha256:" + std::string(64, 'a')))
                  .ok());
  ASSERT_TRUE(AddDistributionSource(*store_, digest_, Ref("127.0.0.1:5000/a/b:2")).ok());
  ASSERT_TRUE(AddDistributionSource(*store_, digest_, Ref("busybox")).ok());
  auto info = store_->Info(digest_);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labels.at("containerd.io/distribution.source.127.0.0.1:5000"), "a/b,a/c");
  EXPECT_EQ(info->labels.at("containerd.io/distribution.source.docker.io"), "library/busybox");
  std::vector<std::string> names;
  for (const ImageReference& r : DistributionSources(*store_, digest_)) names.push_back(r.String());
  EXPECT_EQ(names, (std::vector<std::string>{"127.0.0.1:5000/a/b", "127.0.0.1:5000/a/c",
                                             "docker.io/library/busybox"}));
}

TEST_F(DistributionSourceTest, MissingBlobAndMalformedLabels) {
  Digest absent = Digest::Sha256Of("absent");
  EXPECT_EQ(AddDistributionSource(*store_, absent, Ref("r:1/x")).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(DistributionSources(*store_, absent).empty());
  // A hostile label value: bad names are skipped, good ones kept.
  ASSERT_TRUE(store_
                  ->UpdateLabels(digest_, {{"containerd.io/distribution.source.r:1",
                                            "UPPER,ok/repo,../x,,other/r@sha256:zz"}})
                  .ok());
  std::vector<std::string> names;
  for (const ImageReference& r : DistributionSources(*store_, digest_)) names.push_back(r.String());
  EXPECT_EQ(names, (std::vector<std::string>{"r:1/ok/repo"}));
}

}  // namespace
}  // namespace kiln::engine
