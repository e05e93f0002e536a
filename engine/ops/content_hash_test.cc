#include "engine/ops/content_hash.h"

#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "engine/ops/file_op_testing.h"
#include "gtest/gtest.h"

namespace kiln::engine {
namespace {

using testing::WriteFile;

class ContentHashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::Create("kiln-contenthash-");
    ASSERT_TRUE(d.ok());
    dir_ = std::move(*d);
  }
  // A fresh tree from `fill`, checksummed with `sel`.
  Digest Sum(const std::function<void(const std::string&)>& fill, const ContentSelector& sel) {
    std::string root = StrCat(dir_.path(), "/t", n_++);
    EXPECT_TRUE(MakeDirs(root).ok());
    ::chmod(root.c_str(), 0755);
    fill(root);
    auto r = RootDir::Open(root);
    EXPECT_TRUE(r.ok());
    auto d = ChecksumSelector(*r, sel, CancelToken());
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : Digest();
  }
  TempDir dir_;
  int n_ = 0;
};

void Base(const std::string& r) {
  WriteFile(r, "app/main.go", "package main");
  WriteFile(r, "app/README", "docs");
  WriteFile(r, "other/x", "x");
}

TEST_F(ContentHashTest, SameContentSameKeyEvenWithNewMtimes) {
  ContentSelector sel{.path = "/app"};
  Digest a = Sum(Base, sel);
  Digest b = Sum(
      [](const std::string& r) {
        Base(r);
        struct timespec ts[2] = {{5, 0}, {5, 0}};
        ::utimensat(AT_FDCWD, (r + "/app/main.go").c_str(), ts, 0);
      },
      sel);
  EXPECT_EQ(a, b);
}

TEST_F(ContentHashTest, SelectedChangeChangesKeyUnselectedDoesNot) {
  ContentSelector sel{.path = "/app"};
  Digest base = Sum(Base, sel);
  EXPECT_NE(base, Sum(
                      [](const std::string& r) {
                        Base(r);
                        WriteFile(r, "app/main.go", "package other");
                      },
                      sel));
  EXPECT_NE(base, Sum(
                      [](const std::string& r) {
                        Base(r);
                        ::chmod((r + "/app/README").c_str(), 0600);
                      },
                      sel));
  EXPECT_NE(base, Sum(
                      [](const std::string& r) {
                        Base(r);
                        ::chown((r + "/app/README").c_str(), 1, 1);
                      },
                      sel));
  EXPECT_NE(base, Sum(
                      [](const std::string& r) {
                        Base(r);
                        WriteFile(r, "app/new", "");
                      },
                      sel));
  EXPECT_EQ(base, Sum(
                      [](const std::string& r) {
                        Base(r);
                        WriteFile(r, "other/x", "changed");
                        WriteFile(r, "other/y", "added");
                      },
                      sel));
}

TEST_F(ContentHashTest, WildcardsAndFilters) {
  ContentSelector go{.path = "/app/*.go", .wildcard = true};
  Digest a = Sum(Base, go);
  EXPECT_EQ(a, Sum(
                   [](const std::string& r) {
                     Base(r);
                     WriteFile(r, "app/README", "changed docs");
                   },
                   go));
  EXPECT_NE(a, Sum(
                   [](const std::string& r) {
                     Base(r);
                     WriteFile(r, "app/main.go", "changed");
                   },
                   go));
  ContentSelector inc{.path = "/app", .include_patterns = {"*.go"}};
  Digest b = Sum(Base, inc);
  EXPECT_EQ(b, Sum(
                   [](const std::string& r) {
                     Base(r);
                     WriteFile(r, "app/README", "changed docs");
                   },
                   inc));
  EXPECT_NE(b, Sum(
                   [](const std::string& r) {
                     Base(r);
                     WriteFile(r, "app/extra.go", "new");
                   },
                   inc));
  ContentSelector exc{.path = "/app", .exclude_patterns = {"README"}};
  Digest c = Sum(Base, exc);
  EXPECT_EQ(c, Sum(
                   [](const std::string& r) {
                     Base(r);
                     WriteFile(r, "app/README", "changed docs");
                   },
                   exc));
  // No match: the digest of nothing (a COPY with allowEmptyWildcard).
  ContentSelector none{.path = "/app/*.none", .wildcard = true};
  EXPECT_EQ(Sum(Base, none), Digest::Sha256Of(""));
}

TEST_F(ContentHashTest, FollowLinksAndMissingPath) {
  auto with_link = [](const std::string& r) {
    Base(r);
    ::symlink("app", (r + "/link").c_str());
  };
  ContentSelector follow{.path = "/link", .follow_links = true};
  ContentSelector direct{.path = "/app"};
  EXPECT_EQ(Sum(with_link, follow), Sum(Base, direct));
  ContentSelector nofollow{.path = "/link"};
  EXPECT_NE(Sum(with_link, nofollow), Sum(Base, direct));

  std::string root = dir_.path() + "/missing";
  ASSERT_TRUE(MakeDirs(root).ok());
  auto r = RootDir::Open(root);
  auto d = ChecksumSelector(*r, ContentSelector{.path = "/nope"}, CancelToken());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(d.status().message().find("/nope"), std::string::npos);
}

TEST(DedupeTest, PathsAndSelectors) {
  EXPECT_EQ(DedupePaths({"/a/b", "/a", "/c", "/a", "/ab"}),
            (std::vector<std::string>{"/a", "/ab", "/c"}));
  std::vector<ContentSelector> in = {{.path = "/x/y"},
                                     {.path = "/x"},
                                     {.path = "/w", .follow_links = true},
                                     {.path = "/v*", .wildcard = true}};
  auto out = DedupeSelectors(in);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].path, "/v*");
  EXPECT_EQ(out[1].path, "/w");
  EXPECT_TRUE(out[1].follow_links);
  EXPECT_EQ(out[2].path, "/x");
}

class ContentChecksumWorkerTest : public testing::WorkerFixture {};

TEST_F(ContentChecksumWorkerTest, MemoizedPerSnapshot) {
  ResultRef r = MakeSnapshot([](const std::string& root) { Base(root); });
  ASSERT_TRUE(r);
  size_t before = ContentChecksumMemoSize();
  auto a = ContentChecksum(*worker_, r, {ContentSelector{.path = "/app"}}, CancelToken());
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(ContentChecksumMemoSize(), before + 1);
  auto b = ContentChecksum(*worker_, r, {ContentSelector{.path = "/app"}}, CancelToken());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(ContentChecksumMemoSize(), before + 1);
  // The same content in another snapshot gives the same key.
  ResultRef r2 = MakeSnapshot([](const std::string& root) { Base(root); });
  auto c = ContentChecksum(*worker_, r2, {ContentSelector{.path = "/app"}}, CancelToken());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*a, *c);
}

}  // namespace
}  // namespace kiln::engine
