#include "engine/solver/cache_key.h"

#include <gtest/gtest.h>

#include "engine/solver/memory_cache_storage.h"

namespace kiln::engine {
namespace {

const Digest kOp = Digest::Sha256Of("op");

TEST(CacheKeyTest, RootKeysDependOnDigestAndOutput) {
  EXPECT_EQ(RootKey(kOp, 0), RootKey(kOp, 0));
  EXPECT_NE(RootKey(kOp, 0), RootKey(kOp, 1));
  EXPECT_NE(RootKey(kOp, 0), RootKey(Digest::Sha256Of("other"), 0));
  EXPECT_TRUE(Digest::Parse(RootKey(kOp, 0)).ok());
  EXPECT_NE(ContentKey(kOp), RootKey(kOp, 0));
}

TEST(CacheKeyTest, ComputedKeyIgnoresOrderWithinAnInputButNotAcrossInputs) {
  InputKeySets a{{{"k1", ""}, {"k2", ""}}, {{"k3", "s"}}};
  InputKeySets b{{{"k2", ""}, {"k1", ""}}, {{"k3", "s"}}};
  InputKeySets swapped{{{"k3", "s"}}, {{"k1", ""}, {"k2", ""}}};
  InputKeySets other_selector{{{"k1", ""}, {"k2", ""}}, {{"k3", "t"}}};
  EXPECT_EQ(ComputedKey(kOp, 0, a), ComputedKey(kOp, 0, b));
  EXPECT_NE(ComputedKey(kOp, 0, a), ComputedKey(kOp, 0, swapped));
  EXPECT_NE(ComputedKey(kOp, 0, a), ComputedKey(kOp, 0, other_selector));
  EXPECT_NE(ComputedKey(kOp, 0, a), ComputedKey(kOp, 1, a));
  // Key and selector boundaries are unambiguous.
  EXPECT_NE(ComputedKey(kOp, 0, {{{"ab", "c"}}}), ComputedKey(kOp, 0, {{{"abc", ""}}}));
}

TEST(CacheKeyTest, QueryNeedsEveryInputToReachTheSameTarget) {
  MemoryCacheStorage s;
  const std::string op = kOp.str();
  // Input 0 reaches t1 (by definition key) and t2 (by content key); input 1 reaches only t2.
  ASSERT_TRUE(s.AddLink("def0", {0, 0, op, "sel"}, "t1").ok());
  ASSERT_TRUE(s.AddLink("content0", {0, 0, op, ""}, "t2").ok());
  ASSERT_TRUE(s.AddLink("def1", {1, 0, op, ""}, "t2").ok());
  InputKeySets sets{{{"def0", "sel"}, {"content0", ""}}, {{"def1", ""}}};
  auto m = QueryCacheKeys(s, kOp, 0, sets);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, std::vector<std::string>{"t2"});
  // The selector is part of the link: without it, def0 reaches nothing.
  m = QueryCacheKeys(s, kOp, 0, {{{"def0", ""}}, {{"def1", ""}}});
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->empty());
  // Another output or op digest does not match.
  m = QueryCacheKeys(s, kOp, 1, sets);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->empty());
  m = QueryCacheKeys(s, Digest::Sha256Of("x"), 0, sets);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->empty());
}

TEST(CacheKeyTest, LinksToCoverEveryInputKey) {
  InputKeySets sets{{{"a", "s"}, {"b", ""}}, {{"c", ""}}};
  auto links = LinksTo(kOp, 2, sets, "to");
  ASSERT_EQ(links.size(), 3u);
  EXPECT_EQ(links[0].from, "a");
  EXPECT_EQ(links[0].link, (CacheLink{0, 2, kOp.str(), "s"}));
  EXPECT_EQ(links[2].from, "c");
  EXPECT_EQ(links[2].link, (CacheLink{1, 2, kOp.str(), ""}));
  MemoryCacheStorage s;
  CacheUpdate u;
  u.links = links;
  ASSERT_TRUE(s.Commit(u).ok());
  auto m = QueryCacheKeys(s, kOp, 2, sets);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, std::vector<std::string>{"to"});
}

}  // namespace
}  // namespace kiln::engine
