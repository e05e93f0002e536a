#include "base/go_compat.h"

#include <string>

#include "gtest/gtest.h"

namespace kiln {
namespace {

TEST(CleanPath, GoSemantics) {
  struct Case {
    const char* in;
    const char* out;
  } cases[] = {
      {"", "."},
      {"abc", "abc"},
      {"abc/def", "abc/def"},
      {"a/b/c", "a/b/c"},
      {".", "."},
      {"..", ".."},
      {"../..", "../.."},
      {"../../abc", "../../abc"},
      {"/abc", "/abc"},
      {"/", "/"},
      {"abc/", "abc"},
      {"abc/def/", "abc/def"},
      {"a/b/c/", "a/b/c"},
      {"./", "."},
      {"../", ".."},
      {"../../", "../.."},
      {"/abc/", "/abc"},
      {"abc//def//ghi", "abc/def/ghi"},
      {"//abc", "/abc"},
      {"///abc", "/abc"},
      {"//abc//", "/abc"},
      {"abc//", "abc"},
      {"abc/./def", "abc/def"},
      {"/./abc/def", "/abc/def"},
      {"abc/.", "abc"},
      {"abc/def/ghi/../jkl", "abc/def/jkl"},
      {"abc/def/../ghi/../jkl", "abc/jkl"},
      {"abc/def/..", "abc"},
      {"abc/def/../..", "."},
      {"/abc/def/../..", "/"},
      {"abc/def/../../..", ".."},
      {"/abc/def/../../..", "/"},
      {"abc/def/../../../ghi/jkl/../../../mno", "../../mno"},
      {"abc/./../def", "def"},
      {"abc//./../def", "def"},
      {"abc/../../././../def", "../../def"},
      {"/..", "/"},
      {"/../a", "/a"},
  };
  for (const Case& c : cases) EXPECT_EQ(CleanPath(c.in), c.out) << c.in;
}

TEST(PathDir, GoSemantics) {
  EXPECT_EQ(PathDir("a"), ".");
  EXPECT_EQ(PathDir("a/b"), "a");
  EXPECT_EQ(PathDir("a/b/c"), "a/b");
  EXPECT_EQ(PathDir("/a"), "/");
  EXPECT_EQ(PathDir("a/b/"), "a/b");
  EXPECT_EQ(PathDir(""), ".");
}

TEST(PathJoin, SkipsEmptyElements) {
  EXPECT_EQ(PathJoin({}), "");
  EXPECT_EQ(PathJoin({"", ""}), "");
  EXPECT_EQ(PathJoin({"/", "", "a"}), "/a");
  EXPECT_EQ(PathJoin({"/", "/w", "../x/"}), "/x");
  EXPECT_EQ(PathJoin({"a", "b/../../.."}), "..");
}

TEST(PathIsAbs, LeadingSlash) {
  EXPECT_TRUE(PathIsAbs("/"));
  EXPECT_TRUE(PathIsAbs("/a/../b"));
  EXPECT_FALSE(PathIsAbs(""));
  EXPECT_FALSE(PathIsAbs("a/b"));
  EXPECT_FALSE(PathIsAbs("./a"));
}

TEST(DecodeRune, MatchesGoUtf8) {
  using R = std::pair<char32_t, size_t>;
  EXPECT_EQ(DecodeRune(""), R(kRuneError, 0));
  EXPECT_EQ(DecodeRune("a"), R('a', 1));
  EXPECT_EQ(DecodeRune(std::string("\0x", 2)), R(0, 1));
  EXPECT_EQ(DecodeRune("\u00e9!"), R(0xE9, 2));
  EXPECT_EQ(DecodeRune("\u20ac"), R(0x20AC, 3));
  EXPECT_EQ(DecodeRune("\U0001F600"), R(0x1F600, 4));
  EXPECT_EQ(DecodeRune("\ufffd"), R(kRuneError, 3));  // a real U+FFFD is 3 bytes wide
  EXPECT_EQ(DecodeRune("\xff"), R(kRuneError, 1));
  EXPECT_EQ(DecodeRune("\x80"), R(kRuneError, 1));      // stray continuation byte
  EXPECT_EQ(DecodeRune("\xc0\x80"), R(kRuneError, 1));  // overlong NUL
  EXPECT_EQ(DecodeRune("\xe0\x80\x80"), R(kRuneError, 1));
  EXPECT_EQ(DecodeRune("\xed\xa0\x80"), R(kRuneError, 1));      // surrogate
  EXPECT_EQ(DecodeRune("\xf4\x90\x80\x80"), R(kRuneError, 1));  // above U+10FFFF
  EXPECT_EQ(DecodeRune("\xe2\x82"), R(kRuneError, 1));          // truncated
  EXPECT_EQ(DecodeRune("\xe2(\xac"), R(kRuneError, 1));
}

}  // namespace
}  // namespace kiln
