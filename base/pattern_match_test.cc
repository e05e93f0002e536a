#include "base/pattern_match.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kiln {
namespace {

// Go's filepath.Match table.
TEST(GlobMatch, GoFilepathMatchTable) {
  struct Case {
    const char* pattern;
    const char* name;
    bool match;
    bool bad;
  } cases[] = {
      {"abc", "abc", true, false},
      {"*", "abc", true, false},
      {"*c", "abc", true, false},
      {"a*", "a", true, false},
      {"a*", "abc", true, false},
      {"a*", "ab/c", false, false},
      {"a*/b", "abc/b", true, false},
      {"a*/b", "a/c/b", false, false},
      {"a*b*c*d*e*/f", "axbxcxdxe/f", true, false},
      {"a*b*c*d*e*/f", "axbxcxdxexxx/f", true, false},
      {"a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false, false},
      {"a*b*c*d*e*/f", "axbxcxdxexxx/fff", false, false},
      {"a*b?c*x", "abxbbxdbxebxczzx", true, false},
      {"a*b?c*x", "abxbbxdbxebxczzy", false, false},
      {"ab[c]", "abc", true, false},
      {"ab[b-d]", "abc", true, false},
      {"ab[e-g]", "abc", false, false},
      {"ab[^c]", "abc", false, false},
      {"ab[^b-d]", "abc", false, false},
      {"ab[^e-g]", "abc", true, false},
      {"a\\*b", "a*b", true, false},
      {"a\\*b", "ab", false, false},
      {"a?b", "a\u263Ab", true, false},
      {"a[^a]b", "a\u263Ab", true, false},
      {"a???b", "a\u263Ab", false, false},
      {"a[^a][^a][^a]b", "a\u263Ab", false, false},
      {"[a-\u03B6]*", "\u03B1", true, false},
      {"*[a-\u03B6]", "A", false, false},
      {"a?b", "a/b", false, false},
      {"a*b", "a/b", false, false},
      {"[\\]a]", "]", true, false},
      {"[\\-]", "-", true, false},
      {"[x\\-]", "x", true, false},
      {"[x\\-]", "-", true, false},
      {"[x\\-]", "z", false, false},
      {"[\\-x]", "x", true, false},
      {"[\\-x]", "-", true, false},
      {"[\\-x]", "a", false, false},
      {"[]a]", "]", false, true},
      {"[-]", "-", false, true},
      {"[x-]", "x", false, true},
      {"[x-]", "-", false, true},
      {"[-x]", "x", false, true},
      {"\\", "a", false, true},
      {"[a-b-c]", "a", false, true},
      {"[", "a", false, true},
      {"[^", "a", false, true},
      {"[^bc", "a", false, true},
      {"a[", "a", false, true},
      {"a[", "ab", false, true},
      {"a[", "x", false, true},
      {"a/b[", "x", false, true},
      {"*x", "xxx", true, false},
  };
  for (const Case& c : cases) {
    absl::StatusOr<bool> m = GlobMatch(c.pattern, c.name);
    if (c.bad) {
      EXPECT_FALSE(m.ok()) << c.pattern << " vs " << c.name;
      EXPECT_FALSE(ValidateGlob(c.pattern).ok()) << c.pattern;
    } else {
      ASSERT_TRUE(m.ok()) << c.pattern << ": " << m.status();
      EXPECT_EQ(*m, c.match) << c.pattern << " vs " << c.name;
      EXPECT_TRUE(ValidateGlob(c.pattern).ok()) << c.pattern;
    }
  }
}

// moby/patternmatcher's single-pattern table (through MatchesOrParentMatches).
TEST(PatternMatcher, SinglePatternTable) {
  struct Case {
    const char* pattern;
    const char* path;
    bool match;
  } cases[] = {
      {"**", "file", true},
      {"**", "file/", true},
      {"**/", "file", true},
      {"**/", "file/", true},
      {"**", "/", true},
      {"**/", "/", true},
      {"**", "dir/file", true},
      {"**/", "dir/file", true},
      {"**", "dir/file/", true},
      {"**/", "dir/file/", true},
      {"**/**", "dir/file", true},
      {"**/**", "dir/file/", true},
      {"dir/**", "dir/file", true},
      {"dir/**", "dir/file/", true},
      {"dir/**", "dir/dir2/file", true},
      {"dir/**", "dir/dir2/file/", true},
      {"**/dir", "dir", true},
      {"**/dir", "dir/file", true},
      {"**/dir2/*", "dir/dir2/file", true},
      {"**/dir2/*", "dir/dir2/file/", true},
      {"**/dir2/**", "dir/dir2/dir3/file", true},
      {"**/dir2/**", "dir/dir2/dir3/file/", true},
      {"**file", "file", true},
      {"**file", "dir/file", true},
      {"**/file", "dir/file", true},
      {"**file", "dir/dir/file", true},
      {"**/file", "dir/dir/file", true},
      {"**/file*", "dir/dir/file", true},
      {"**/file*", "dir/dir/file.txt", true},
      {"**/file*txt", "dir/dir/file.txt", true},
      {"**/file*.txt", "dir/dir/file.txt", true},
      {"**/file*.txt*", "dir/dir/file.txt", true},
      {"**/**/*.txt", "dir/dir/file.txt", true},
      {"**/**/*.txt2", "dir/dir/file.txt", false},
      {"**/*.txt", "file.txt", true},
      {"**/**/*.txt", "file.txt", true},
      {"a**/*.txt", "a/file.txt", true},
      {"a**/*.txt", "a/dir/file.txt", true},
      {"a**/*.txt", "a/dir/dir/file.txt", true},
      {"a/*.txt", "a/dir/file.txt", false},
      {"a/*.txt", "a/file.txt", true},
      {"a/*.txt**", "a/file.txt", true},
      {"a[b-d]e", "ae", false},
      {"a[b-d]e", "ace", true},
      {"a[b-d]e", "aae", false},
      {"a[^b-d]e", "aze", true},
      {".*", ".foo", true},
      {".*", "foo", false},
      {"abc.def", "abcdef", false},
      {"abc.def", "abc.def", true},
      {"abc.def", "abcZdef", false},
      {"abc?def", "abcZdef", true},
      {"abc?def", "abcdef", false},
      {"a\\\\", "a\\", true},
      {"**/foo/bar", "foo/bar", true},
      {"**/foo/bar", "dir/foo/bar", true},
      {"**/foo/bar", "dir/dir2/foo/bar", true},
      {"abc/**", "abc", false},
      {"abc/**", "abc/def", true},
      {"abc/**", "abc/def/ghi", true},
      {"**/.foo", ".foo", true},
      {"**/.foo", "bar.foo", false},
      {"a(b)c/def", "a(b)c/def", true},
      {"a(b)c/def", "a(b)c/xyz", false},
      {"a.|)$(}+{bc", "a.|)$(}+{bc", true},
      {"dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
       "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true},
      {"dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true},
      // moby quirks kept on purpose: a leading "**" is a plain suffix test, "**x" in the
      // middle means "(any dirs/)x", '^' anchors inside a glob pattern.
      {"**foo", "barfoo", true},
      {"a**b", "ab", true},
      {"a**b", "ax/b", true},
      {"a**b", "axb", false},
      {"*^b", "ab", false},
      {"^ab", "^ab", true},
      {"a*", "a\nb", true},
      {"a/**", "a/\nb", true},
      {"a/**/*.go", "a/x\ny/z.go", false},
      // '|' is a regexp alternation in moby once the pattern has a wildcard.
      {"*.go|vendor", "main.go", true},
      {"*.go|vendor", "a/vendor/b", true},
      {"*.go|vendor", "main.rs", false},
      {"a|b", "a|b", true},
      {"a|b", "a", false},
      {"x*|", "anything", true},
      {"a.{js,ts}", "a.{js,ts}", true},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create({c.pattern});
    ASSERT_TRUE(pm.ok()) << c.pattern << ": " << pm.status();
    ASSERT_EQ(pm->patterns().size(), 1u);
    EXPECT_EQ(pm->MatchesOrParentMatches(c.path), c.match) << c.pattern << " vs " << c.path;
  }
}

TEST(PatternMatcher, ParentDirectoriesAndExclusions) {
  struct Case {
    std::vector<std::string> patterns;
    const char* path;
    bool matches;
    bool matches_or_parent;
  } cases[] = {
      {{"a"}, "a", true, true},
      {{"a"}, "a/b/c", true, true},
      {{"a/b"}, "a/b/c/d", true, true},
      {{"*"}, "a/b", true, true},
      {{"b"}, "a/b/c", false, false},
      {{"a/b"}, "a/b", true, true},
      {{"a/*/c"}, "a/x/c/d", true, true},
      {{"*", "!a"}, "a", false, false},
      {{"*", "!a"}, "a/x", false, false},
      {{"*", "!a"}, "b", true, true},
      {{"docs", "!docs/README.md"}, "docs/README.md", false, false},
      {{"docs", "!docs/README.md"}, "docs/other.md", true, true},
      {{"docs", "!docs/README.md", "docs/README.md"}, "docs/README.md", true, true},
      {{"**/*.go"}, "a/b/c.go", true, true},
      {{"**/*.go", "!vendor/**"}, "vendor/x/y.go", false, false},
      {{"*.md", "!README*.md", "README-secret.md"}, "README-secret.md", true, true},
      {{"*.md", "!README*.md", "README-secret.md"}, "README-public.md", false, false},
      // Matches compares a pattern only with the parent of the same depth;
      // MatchesOrParentMatches tries every parent.
      {{"a/b*"}, "a/bc/d/e", true, true},
      {{"x/*"}, "x/y/z/w", true, true},
      {{"x"}, "y/x/z", false, false},
      {{"*/x"}, "y/x/z", true, true},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create(c.patterns);
    ASSERT_TRUE(pm.ok()) << pm.status();
    EXPECT_EQ(pm->Matches(c.path), c.matches) << c.path << " patterns[0]=" << c.patterns[0];
    EXPECT_EQ(pm->MatchesOrParentMatches(c.path), c.matches_or_parent) << c.path;
  }
}

TEST(PatternMatcher, MatchesOrParentMatchesDiffersFromMatchesForShallowPatterns) {
  // "a/b" has two components; for "a/b/c/d" Matches only looks at "a/b" (same depth) while
  // MatchesOrParentMatches looks at "a", "a/b", "a/b/c".
  absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create({"a/b/c"});
  ASSERT_TRUE(pm.ok());
  EXPECT_TRUE(pm->Matches("a/b/c/d/e"));
  EXPECT_TRUE(pm->MatchesOrParentMatches("a/b/c/d/e"));
  pm = PatternMatcher::Create({"a/b/c/d/e/f"});
  ASSERT_TRUE(pm.ok());
  EXPECT_FALSE(pm->Matches("a/b/c"));
  EXPECT_FALSE(pm->MatchesOrParentMatches("a/b/c"));
}

TEST(PatternMatcher, CreateCleansTrimsAndRejects) {
  absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create({"  ", "./a/../b/", " c "});
  ASSERT_TRUE(pm.ok());
  ASSERT_EQ(pm->patterns().size(), 2u);
  EXPECT_EQ(pm->patterns()[0].text(), "b");
  EXPECT_EQ(pm->patterns()[1].text(), "c");
  EXPECT_FALSE(pm->has_exclusions());

  pm = PatternMatcher::Create({"!"});
  ASSERT_FALSE(pm.ok());
  EXPECT_EQ(pm.status().message(), "illegal exclusion pattern: \"!\"");

  pm = PatternMatcher::Create({"a[", "b"});
  ASSERT_FALSE(pm.ok());
  EXPECT_EQ(pm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(pm.status().message().find("syntax error in pattern"), std::string::npos);

  pm = PatternMatcher::Create({"!x/y"});
  ASSERT_TRUE(pm.ok());
  EXPECT_TRUE(pm->has_exclusions());
  EXPECT_TRUE(pm->patterns()[0].exclusion());
  EXPECT_EQ(pm->patterns()[0].text(), "x/y");
  EXPECT_EQ(pm->patterns()[0].component_count(), 2u);
}

TEST(PatternMatcher, ParentResultsAgreeWithFullMatching) {
  const std::vector<std::vector<std::string>> pattern_sets = {
      {"a", "!a/b"},
      {"**/*.txt", "!keep/**"},
      {"x/*/z", "x/y"},
      {"*", "!b*", "b/c"},
  };
  const std::vector<std::string> tree = {"a",   "a/b",   "a/b/c.txt", "a/d",        "b",
                                         "b/c", "b/c/d", "keep",      "keep/e.txt", "x",
                                         "x/y", "x/y/z", "x/q/z",     "x/q/z/w"};
  for (const auto& patterns : pattern_sets) {
    absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create(patterns);
    ASSERT_TRUE(pm.ok());
    std::map<std::string, PatternMatcher::MatchInfo> infos;
    std::map<std::string, bool> results;
    for (const std::string& path : tree) {
      std::string parent = PathDir(path);
      PatternMatcher::MatchInfo parent_info;
      bool parent_matched = false;
      if (parent != ".") {
        parent_info = infos[parent];
        parent_matched = results[parent];
      }
      PatternMatcher::MatchInfo info;
      bool m = pm->MatchesUsingParentResults(path, parent_info, &info);
      infos[path] = info;
      results[path] = m;
      EXPECT_EQ(m, pm->MatchesOrParentMatches(path)) << patterns[0] << " " << path;
      (void)parent_matched;
    }
  }
}

TEST(PatternMatcher, MatchesUsingParentResultOnlyLooksAtThePathItself) {
  absl::StatusOr<PatternMatcher> pm = PatternMatcher::Create({"a", "!a/b"});
  ASSERT_TRUE(pm.ok());
  EXPECT_TRUE(pm->MatchesUsingParentResult("a", false));
  EXPECT_FALSE(pm->MatchesUsingParentResult("a/b", true));
  EXPECT_TRUE(pm->MatchesUsingParentResult("a/c", true));
  // Without the parent's result, "a/c" itself matches nothing.
  EXPECT_FALSE(pm->MatchesUsingParentResult("a/c", false));
}

TEST(MatchesOrParentMatches, OneShot) {
  EXPECT_TRUE(*MatchesOrParentMatches("./a/b/", {"a"}));
  EXPECT_FALSE(*MatchesOrParentMatches(".", {"*"}));
  EXPECT_FALSE(MatchesOrParentMatches("a", {"["}).ok());
}

// Walks a fixed tree the way fsutil does and returns the emitted paths (with lazily emitted
// parents).
std::vector<std::string> Walk(const PathFilter& f,
                              const std::vector<std::pair<std::string, bool>>& tree) {
  struct Open {
    std::string path;
    PathFilter::State state;
    bool emitted;
    bool descend;
  };
  std::vector<Open> stack;
  std::vector<std::string> out;
  for (const auto& [path, is_dir] : tree) {
    while (!stack.empty() && path.rfind(stack.back().path + "/", 0) != 0) stack.pop_back();
    if (!stack.empty() && !stack.back().descend) continue;
    // Skip entries under a directory that is not descended.
    PathFilter::State parent_state;
    if (!stack.empty()) parent_state = stack.back().state;
    PathFilter::Decision d = f.Check(path, is_dir, parent_state);
    if (d.include) {
      for (Open& o : stack) {
        if (!o.emitted) {
          out.push_back(o.path);
          o.emitted = true;
        }
      }
      out.push_back(path);
    }
    if (is_dir) stack.push_back(Open{path, d.state, d.include, d.descend});
  }
  return out;
}

TEST(PathFilter, FsutilWalkSemantics) {
  const std::vector<std::pair<std::string, bool>> tree = {
      {"a", true},
      {"a/b", true},
      {"a/b/c", false},
      {"a/b/d", false},
      {"a/keep", true},
      {"a/keep/x", false},
      {"foo", true},
      {"foo/bar", false},
      {"node_modules", true},
      {"node_modules/m", false},
      {"z.txt", false},
  };
  struct Case {
    std::vector<std::string> include, exclude;
    std::vector<std::string> expected;
  } cases[] = {
      {{},
       {},
       {"a", "a/b", "a/b/c", "a/b/d", "a/keep", "a/keep/x", "foo", "foo/bar", "node_modules",
        "node_modules/m", "z.txt"}},
      {{"foo"}, {}, {"foo", "foo/bar"}},
      {{"a/*/c"}, {}, {"a", "a/b", "a/b/c"}},
      {{"a/b/c"}, {}, {"a", "a/b", "a/b/c"}},
      {{},
       {"node_modules"},
       {"a", "a/b", "a/b/c", "a/b/d", "a/keep", "a/keep/x", "foo", "foo/bar", "z.txt"}},
      {{},
       {"a", "!a/keep"},
       {"a", "a/keep", "a/keep/x", "foo", "foo/bar", "node_modules", "node_modules/m", "z.txt"}},
      {{},
       {"**/*.txt", "a/b"},
       {"a", "a/keep", "a/keep/x", "foo", "foo/bar", "node_modules", "node_modules/m"}},
      {{"a", "foo"}, {"a/b/d", "foo"}, {"a", "a/b", "a/b/c", "a/keep", "a/keep/x"}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PathFilter> f = PathFilter::Create(c.include, c.exclude);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(Walk(*f, tree), c.expected) << "include=" << (c.include.empty() ? "" : c.include[0])
                                          << " exclude=" << (c.exclude.empty() ? "" : c.exclude[0]);
  }
}

TEST(PathFilter, SkipsWholeDirectoriesWhenPrefixOnly) {
  absl::StatusOr<PathFilter> f = PathFilter::Create({"src/app"}, {});
  ASSERT_TRUE(f.ok());
  PathFilter::Decision d = f->Check("docs", true, {});
  EXPECT_FALSE(d.include);
  EXPECT_FALSE(d.descend);
  d = f->Check("src", true, {});
  EXPECT_FALSE(d.include);
  EXPECT_TRUE(d.descend);

  f = PathFilter::Create({}, {"build"});
  ASSERT_TRUE(f.ok());
  d = f->Check("build", true, {});
  EXPECT_FALSE(d.include);
  EXPECT_FALSE(d.descend);

  EXPECT_FALSE(PathFilter::Create({"["}, {}).ok());
  absl::Status st = PathFilter::Create({}, {"!"}).status();
  EXPECT_NE(st.message().find("invalid exclude patterns"), std::string::npos) << st;
}

}  // namespace
}  // namespace kiln
