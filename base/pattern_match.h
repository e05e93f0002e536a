// Path pattern matching with the semantics of moby/patternmatcher and of tonistiigi/fsutil's
// include/exclude filtering, as BuildKit uses them for .dockerignore, local-source
// include/exclude patterns and copy include/exclude patterns (COPY --exclude).
//
// Patterns are '/'-separated, relative paths (the caller cleans leading '/'), in Go's
// filepath.Match syntax extended with "**":
//   *      any run of characters except '/'
//   ?      one character except '/'
//   [a-z]  a character class ([^...] negates), \x escapes x
//   **     any number of path components: "**/x" matches "x" and "a/b/x"; "a/**" matches
//          everything below "a"
//   !pat   (in a list) re-includes what earlier patterns matched
// A pattern also matches every path below a directory it matches ("a" matches "a/b/c").
// Patterns are compiled once; matching a path is linear in (pattern length x path length).
//
// moby matches a compiled regexp and, by an oversight in its escaping, leaves '|', '{' and '}'
// unescaped: in a pattern with wildcards '|' separates regexp alternatives, each anchored only
// on its outer side ("*.go|x" matches anything containing "x").  That is reproduced; '{m,n}'
// repetition is not (braces are literal here).  Other regexp-isms not reproduced: `\` before a
// letter or digit is a plain escape here (moby: a regexp class such as `\d`), '*' and '?' inside
// brackets are literal (moby rewrites them), and `[[:alpha:]]` is a plain class.
//
// Thread-safety: all types are immutable after creation and safe to share between threads.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
// Patterns and paths are cleaned with CleanPath; this header's users get it (and PathDir) here.
#include "base/go_compat.h"

namespace kiln {

// Checks `pattern` against Go's filepath.Match grammar (unterminated class, trailing '\', a
// class starting with ']' or '-', ...).  InvalidArgument "syntax error in pattern" otherwise.
absl::Status ValidateGlob(std::string_view pattern);

// Go's filepath.Match: whether `name` matches the shell pattern (no "**" support; '*' and '?'
// never match '/').  InvalidArgument on a malformed pattern.
absl::StatusOr<bool> GlobMatch(std::string_view pattern, std::string_view name);

// One compiled pattern of a PatternMatcher.
class CompiledPattern {
 public:
  // The cleaned pattern without its leading '!'.
  const std::string& text() const { return text_; }
  // True for a "!pattern" re-inclusion.
  bool exclusion() const { return exclusion_; }
  // Number of '/'-separated components of text().
  size_t component_count() const { return component_count_; }
  // Whether `path` (already '/'-separated, cleaned) matches this pattern exactly (no parent
  // matching).
  bool Match(std::string_view path) const;

 private:
  friend class PatternMatcher;
  enum class Kind { kExact, kPrefix, kSuffix, kGlob };
  enum class Op {
    kLiteral,
    kStar,
    kAnyChar,
    kClass,
    kDirPrefix,
    kAnySequence,
    kAnchor,
    kAlternate
  };
  struct Range {
    char32_t lo, hi;
  };
  struct Token {
    Op op;
    std::string literal;        // kLiteral
    std::vector<Range> ranges;  // kClass
    bool negated = false;       // kClass
  };
  static absl::StatusOr<CompiledPattern> Compile(std::string_view cleaned, bool exclusion);
  bool MatchTokens(std::string_view path) const;
  bool MatchAlternative(std::string_view path, size_t begin, size_t end, bool anchored_start,
                        bool anchored_end) const;

  std::string text_;
  bool exclusion_ = false;
  size_t component_count_ = 0;
  Kind kind_ = Kind::kExact;
  std::vector<Token> tokens_;
};

// An ordered list of patterns, evaluated like moby's patternmatcher: later patterns win, a
// "!" pattern can undo an earlier match.
class PatternMatcher {
 public:
  // Per-pattern results for a directory, handed to its children so they need not re-match
  // the parent directories (MatchesUsingParentResults).
  struct MatchInfo {
    std::vector<bool> parent_matched;
  };

  // Compiles `patterns`; each is trimmed, blank ones are skipped, the rest are cleaned.
  // InvalidArgument for "!" alone or a malformed glob.
  static absl::StatusOr<PatternMatcher> Create(const std::vector<std::string>& patterns);

  PatternMatcher() = default;

  // Whether `file` (relative, '/'-separated) is matched: by a pattern itself, or by a pattern
  // with as many components as one of its parent directories.
  bool Matches(std::string_view file) const;

  // Like Matches, but any parent directory of `file` matching a pattern counts.
  bool MatchesOrParentMatches(std::string_view file) const;

  // For a walk in directory order: `parent_matched` is the result for the parent directory.
  bool MatchesUsingParentResult(std::string_view file, bool parent_matched) const;

  // For a walk in directory order: `parent` holds the results of the parent directory (empty
  // for a top-level entry); `*info` receives this entry's results for its own children.
  bool MatchesUsingParentResults(std::string_view file, const MatchInfo& parent,
                                 MatchInfo* info) const;

  bool has_exclusions() const { return has_exclusions_; }
  bool empty() const { return patterns_.empty(); }
  const std::vector<CompiledPattern>& patterns() const { return patterns_; }

 private:
  std::vector<CompiledPattern> patterns_;
  bool has_exclusions_ = false;
};

// patternmatcher.MatchesOrParentMatches for a one-off check: cleans `file`, "." never matches.
absl::StatusOr<bool> MatchesOrParentMatches(std::string_view file,
                                            const std::vector<std::string>& patterns);

// The include/exclude filter of fsutil's directory walk (local sources) and copy (include and
// exclude patterns of a file copy).  The walker visits entries in directory order and keeps,
// for each directory, the State returned for it, to pass to the directory's children.
//
// When an entry is included but some of its parent directories were not (Decision::include
// false, descend true), the walker must emit those parents first: fsutil creates them lazily.
class PathFilter {
 public:
  struct State {
    PatternMatcher::MatchInfo include;
    PatternMatcher::MatchInfo exclude;
  };
  struct Decision {
    bool include = true;  // emit/copy this entry
    bool descend = true;  // for a directory: walk into it
    State state;          // hand to the children when descending
  };

  // Empty lists mean "no filter".  InvalidArgument names which list held a bad pattern.
  static absl::StatusOr<PathFilter> Create(const std::vector<std::string>& include_patterns,
                                           const std::vector<std::string>& exclude_patterns);

  PathFilter() = default;

  // `path` is relative to the walk root, '/'-separated, cleaned; `parent` is the State of its
  // parent directory (default State for top-level entries).
  Decision Check(std::string_view path, bool is_dir, const State& parent) const;

  // True when no pattern is set: every entry is included.
  bool empty() const { return !has_include_ && !has_exclude_; }

 private:
  bool has_include_ = false;
  bool has_exclude_ = false;
  PatternMatcher include_;
  PatternMatcher exclude_;
  bool only_prefix_includes_ = true;
  bool only_prefix_exclude_exceptions_ = true;
};

}  // namespace kiln
