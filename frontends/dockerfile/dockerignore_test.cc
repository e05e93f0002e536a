#include "frontends/dockerfile/dockerignore.h"

#include <string>
#include <vector>

#include "base/pattern_match.h"
#include "gtest/gtest.h"

namespace kiln::frontends::dockerfile {
namespace {

TEST(Dockerignore, ReadAll) {
  const std::string content =
      "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! \n";
  EXPECT_EQ(ParseDockerignore(content),
            (std::vector<std::string>{"test1", "test2", "a/file/here", "lastfile",
                                      "!inverted/abs/path", "!", "!"}));
}

TEST(Dockerignore, CleaningAndWhitespace) {
  struct Case {
    const char* content;
    std::vector<std::string> expected;
  } cases[] = {
      {"", {}},
      {"\n\n   \n", {}},
      {"\xEF\xBB\xBFnode_modules\n", {"node_modules"}},
      {"./a/../b/\n", {"b"}},
      {"  spaced  \n", {"spaced"}},
      {"dir//sub/./x\n", {"dir/sub/x"}},
      {"/\n", {"/"}},
      {"//\n", {"/"}},
      {"**/*.go\n!**/keep.go\n", {"**/*.go", "!**/keep.go"}},
      {"  # not a comment (leading space)\n", {"# not a comment (leading space)"}},
      {"#comment\nfoo\r\nbar\r\n", {"foo", "bar"}},
      {"no-newline-at-end", {"no-newline-at-end"}},
      {"!  ./x/\n", {"!x"}},
      {"..\n../a\n", {"..", "../a"}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ParseDockerignore(c.content), c.expected) << c.content;
  }
}

TEST(Dockerignore, FeedsPatternMatcher) {
  std::vector<std::string> patterns = ParseDockerignore(
      "# build outputs\n"
      "/build\n"
      "**/*.log\n"
      "node_modules\n"
      "*.md\n"
      "!README.md\n"
      "docs/**\n"
      "!docs/keep/**\n");
  absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create(patterns);
  ASSERT_TRUE(pm.ok()) << pm.status();
  struct Case {
    const char* path;
    bool excluded;
  } cases[] = {
      {"build", true},      {"build/out.bin", true},    {"src/build", false},
      {"a.log", true},      {"deep/dir/x.log", true},   {"node_modules/x/y", true},
      {"CHANGES.md", true}, {"README.md", false},       {"sub/README.md", false},
      {"docs/a.txt", true}, {"docs/keep/a.txt", false}, {"main.go", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(pm->MatchesOrParentMatches(c.path), c.excluded) << c.path;
  }
  // A lone "!" is kept by the reader and rejected when compiled, as in BuildKit.
  EXPECT_FALSE(PatternMatcher::Create(ParseDockerignore("!\n")).ok());
}

}  // namespace
}  // namespace kiln::frontends::dockerfile
