#include "base/pattern_match.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "base/go_compat.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln {
namespace {

absl::Status BadPattern() { return absl::InvalidArgumentError("syntax error in pattern"); }

// Go's getEsc: one (possibly escaped) character of a class; fails on '-', ']', a dangling '\',
// invalid UTF-8, or when nothing follows (the class is unterminated).
absl::Status ReadClassChar(std::string_view* chunk, char32_t* out) {
  std::string_view c = *chunk;
  if (c.empty() || c[0] == '-' || c[0] == ']') return BadPattern();
  if (c[0] == '\\') {
    c.remove_prefix(1);
    if (c.empty()) return BadPattern();
  }
  auto [r, n] = DecodeRune(c);
  if (r == kRuneError && n == 1) return BadPattern();
  c.remove_prefix(n);
  if (c.empty()) return BadPattern();
  *out = r;
  *chunk = c;
  return absl::OkStatus();
}

// Go's scanChunk: splits off leading stars and the chunk up to the next unbracketed star.
void ScanChunk(std::string_view* pattern, bool* star, std::string_view* chunk) {
  std::string_view p = *pattern;
  *star = false;
  while (!p.empty() && p[0] == '*') {
    p.remove_prefix(1);
    *star = true;
  }
  bool in_range = false;
  size_t i = 0;
  for (; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\') {
      if (i + 1 < p.size()) ++i;
    } else if (c == '[') {
      in_range = true;
    } else if (c == ']') {
      in_range = false;
    } else if (c == '*' && !in_range) {
      break;
    }
  }
  *chunk = p.substr(0, i);
  *pattern = p.substr(i);
}

// Go's matchChunk: matches `chunk` against the start of `s`; on success `*rest` is the
// remainder.  Keeps parsing after a mismatch so syntax errors are always reported.
absl::Status MatchChunk(std::string_view chunk, std::string_view s, bool* ok,
                        std::string_view* rest) {
  *ok = false;
  *rest = std::string_view();
  bool failed = false;
  while (!chunk.empty()) {
    if (!failed && s.empty()) failed = true;
    switch (chunk[0]) {
      case '[': {
        char32_t r = 0;
        if (!failed) {
          auto [rr, n] = DecodeRune(s);
          r = rr;
          s.remove_prefix(n);
        }
        chunk.remove_prefix(1);
        bool negated = false;
        if (!chunk.empty() && chunk[0] == '^') {
          negated = true;
          chunk.remove_prefix(1);
        }
        bool match = false;
        int nrange = 0;
        while (true) {
          if (!chunk.empty() && chunk[0] == ']' && nrange > 0) {
            chunk.remove_prefix(1);
            break;
          }
          char32_t lo, hi;
          if (auto st = ReadClassChar(&chunk, &lo); !st.ok()) return st;
          hi = lo;
          if (chunk[0] == '-') {
            chunk.remove_prefix(1);
            if (auto st = ReadClassChar(&chunk, &hi); !st.ok()) return st;
          }
          if (lo <= r && r <= hi) match = true;
          ++nrange;
        }
        if (match == negated) failed = true;
        break;
      }
      case '?':
        if (!failed) {
          if (s[0] == '/') failed = true;
          auto [r, n] = DecodeRune(s);
          s.remove_prefix(n);
        }
        chunk.remove_prefix(1);
        break;
      case '\\':
        chunk.remove_prefix(1);
        if (chunk.empty()) return BadPattern();
        [[fallthrough]];
      default:
        if (!failed) {
          if (chunk[0] != s[0]) failed = true;
          s.remove_prefix(1);
        }
        chunk.remove_prefix(1);
    }
  }
  *ok = !failed;
  *rest = failed ? std::string_view() : s;
  return absl::OkStatus();
}

// Go's patternWithoutTrailingGlob from fsutil.
std::string_view WithoutTrailingGlob(std::string_view p) {
  if (p.size() >= 3 && p.substr(p.size() - 3) == "/**") p.remove_suffix(3);
  if (p.size() >= 2 && p.substr(p.size() - 2) == "/*") p.remove_suffix(2);
  return p;
}

bool ContainsAny(std::string_view s, std::string_view chars) {
  return s.find_first_of(chars) != std::string_view::npos;
}

std::string TrimSpaceAscii(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\v\f\r";
  size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(kSpace);
  return std::string(s.substr(b, e - b + 1));
}

std::vector<std::string_view> SplitSlash(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find('/', start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

// The first `n` components of `parts` joined by '/' (as a view into the original path).
std::string_view JoinFirst(std::string_view whole, const std::vector<std::string_view>& parts,
                           size_t n) {
  const std::string_view& last = parts[n - 1];
  return whole.substr(0, static_cast<size_t>(last.data() + last.size() - whole.data()));
}

}  // namespace

absl::Status ValidateGlob(std::string_view pattern) {
  while (!pattern.empty()) {
    bool star;
    std::string_view chunk;
    ScanChunk(&pattern, &star, &chunk);
    bool ok = false;
    std::string_view rest;
    if (auto st = MatchChunk(chunk, "", &ok, &rest); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> GlobMatch(std::string_view pattern, std::string_view name) {
  while (!pattern.empty()) {
    bool star;
    std::string_view chunk;
    ScanChunk(&pattern, &star, &chunk);
    if (star && chunk.empty()) return name.find('/') == std::string_view::npos;
    bool ok = false;
    std::string_view t;
    absl::Status st = MatchChunk(chunk, name, &ok, &t);
    if (ok && (t.empty() || !pattern.empty())) {
      name = t;
      continue;
    }
    if (!st.ok()) return st;
    bool advanced = false;
    if (star) {
      for (size_t i = 0; i < name.size() && name[i] != '/'; ++i) {
        st = MatchChunk(chunk, name.substr(i + 1), &ok, &t);
        if (ok) {
          if (pattern.empty() && !t.empty()) continue;
          name = t;
          advanced = true;
          break;
        }
        if (!st.ok()) return st;
      }
    }
    if (advanced) continue;
    KILN_RETURN_IF_ERROR(ValidateGlob(pattern));
    return false;
  }
  return name.empty();
}

absl::StatusOr<CompiledPattern> CompiledPattern::Compile(std::string_view cleaned, bool exclusion) {
  CompiledPattern p;
  p.text_ = std::string(cleaned);
  p.exclusion_ = exclusion;
  p.component_count_ = SplitSlash(cleaned).size();
  Kind kind = Kind::kExact;
  std::vector<Token> tokens;
  auto add_literal = [&](std::string_view s) {
    if (!tokens.empty() && tokens.back().op == Op::kLiteral) {
      tokens.back().literal.append(s);
    } else {
      tokens.push_back(Token{Op::kLiteral, std::string(s), {}, false});
    }
  };
  std::string_view s = cleaned;
  for (size_t i = 0; !s.empty(); ++i) {
    char ch = s[0];
    s.remove_prefix(1);
    if (ch == '*') {
      if (!s.empty() && s[0] == '*') {
        s.remove_prefix(1);
        if (!s.empty() && s[0] == '/') s.remove_prefix(1);
        if (s.empty()) {
          if (kind == Kind::kExact) {
            kind = Kind::kPrefix;
          } else {
            tokens.push_back(Token{Op::kAnySequence, {}, {}, false});
            kind = Kind::kGlob;
          }
        } else {
          tokens.push_back(Token{Op::kDirPrefix, {}, {}, false});
          kind = Kind::kGlob;
        }
        // A leading "**" turns the whole pattern into a suffix test unless a later wildcard
        // forces a full match (moby's suffixMatch).
        if (i == 0) kind = Kind::kSuffix;
      } else {
        tokens.push_back(Token{Op::kStar, {}, {}, false});
        kind = Kind::kGlob;
      }
    } else if (ch == '?') {
      tokens.push_back(Token{Op::kAnyChar, {}, {}, false});
      kind = Kind::kGlob;
    } else if (ch == '\\') {
      if (!s.empty()) {
        auto [r, n] = DecodeRune(s);
        add_literal(s.substr(0, n));
        s.remove_prefix(n);
        kind = Kind::kGlob;
      } else {
        add_literal("\\");
      }
    } else if (ch == '[') {
      // ValidateGlob already proved the class well formed.
      Token t{Op::kClass, {}, {}, false};
      if (!s.empty() && s[0] == '^') {
        t.negated = true;
        s.remove_prefix(1);
      }
      while (true) {
        if (!s.empty() && s[0] == ']' && !t.ranges.empty()) {
          s.remove_prefix(1);
          break;
        }
        char32_t lo, hi;
        KILN_RETURN_IF_ERROR(ReadClassChar(&s, &lo));
        hi = lo;
        if (s[0] == '-') {
          s.remove_prefix(1);
          KILN_RETURN_IF_ERROR(ReadClassChar(&s, &hi));
        }
        t.ranges.push_back(Range{lo, hi});
      }
      tokens.push_back(std::move(t));
      kind = Kind::kGlob;
    } else if (ch == ']') {
      add_literal("]");
      kind = Kind::kGlob;
    } else if (ch == '|') {
      // Left unescaped by moby: a regexp alternation once the pattern is a regexp.
      tokens.push_back(Token{Op::kAlternate, {}, {}, false});
    } else if (ch == '^') {
      // moby passes '^' to the regexp unescaped, where it anchors at the start of the path.
      tokens.push_back(Token{Op::kAnchor, {}, {}, false});
    } else {
      add_literal(std::string_view(&ch, 1));
    }
  }
  p.kind_ = kind;
  if (kind == Kind::kGlob) p.tokens_ = std::move(tokens);
  return p;
}

bool CompiledPattern::Match(std::string_view path) const {
  switch (kind_) {
    case Kind::kExact:
      return path == text_;
    case Kind::kPrefix:
      return path.substr(0, text_.size() - 2) ==
             std::string_view(text_).substr(0, text_.size() - 2);
    case Kind::kSuffix: {
      std::string_view suffix = std::string_view(text_).substr(2);
      if (path.size() >= suffix.size() && path.substr(path.size() - suffix.size()) == suffix) {
        return true;
      }
      return !suffix.empty() && suffix[0] == '/' && path == suffix.substr(1);
    }
    case Kind::kGlob:
      return MatchTokens(path);
  }
  return false;
}

bool CompiledPattern::MatchTokens(std::string_view path) const {
  // "^A|B|C$" searched anywhere: A anchored at the start, C at the end, B nowhere.
  size_t begin = 0;
  bool first = true;
  for (size_t i = 0; i <= tokens_.size(); ++i) {
    if (i < tokens_.size() && tokens_[i].op != Op::kAlternate) continue;
    const bool last = i == tokens_.size();
    if (MatchAlternative(path, begin, i, first, last)) return true;
    first = false;
    begin = i + 1;
  }
  return false;
}

// Simulates one alternative of the regexp moby builds, as a set of reachable positions per
// token.
bool CompiledPattern::MatchAlternative(std::string_view path, size_t begin, size_t end,
                                       bool anchored_start, bool anchored_end) const {
  const size_t n = path.size();
  std::vector<uint8_t> cur(n + 1, anchored_start ? 0 : 1), next(n + 1, 0);
  cur[0] = 1;
  for (size_t ti = begin; ti < end; ++ti) {
    const Token& t = tokens_[ti];
    std::fill(next.begin(), next.end(), 0);
    bool any = false;
    switch (t.op) {
      case Op::kLiteral: {
        const size_t len = t.literal.size();
        for (size_t i = 0; i + len <= n; ++i) {
          if (cur[i] && path.compare(i, len, t.literal) == 0) next[i + len] = any = true;
        }
        break;
      }
      case Op::kStar: {  // [^/]*
        bool reach = false;
        for (size_t i = 0; i <= n; ++i) {
          reach = cur[i] || (reach && path[i - 1] != '/');
          if (reach) next[i] = any = true;
        }
        break;
      }
      case Op::kAnyChar:  // [^/]
      case Op::kClass:
        for (size_t i = 0; i < n; ++i) {
          if (!cur[i]) continue;
          auto [r, w] = DecodeRune(path.substr(i));
          bool ok = false;
          if (t.op == Op::kAnyChar) {
            ok = r != '/';
          } else {
            bool in = false;
            for (const Range& rg : t.ranges) in = in || (rg.lo <= r && r <= rg.hi);
            ok = in != t.negated;
          }
          if (ok) next[i + w] = any = true;
        }
        break;
      case Op::kDirPrefix: {  // (.*/)?  ('.' does not match '\n')
        bool open = false;
        for (size_t k = 0; k <= n; ++k) {
          if (cur[k]) next[k] = any = true;
          open = open || cur[k];
          if (k == n) break;
          if (open && path[k] == '/') next[k + 1] = any = true;
          if (path[k] == '\n') open = false;
        }
        break;
      }
      case Op::kAnySequence: {  // .*
        bool open = false;
        for (size_t k = 0; k <= n; ++k) {
          open = open || cur[k];
          if (open) next[k] = any = true;
          if (k < n && path[k] == '\n') open = false;
        }
        break;
      }
      case Op::kAnchor:
        if (cur[0]) next[0] = any = true;
        break;
      case Op::kAlternate:
        break;  // never inside an alternative
    }
    if (!any) return false;
    std::swap(cur, next);
  }
  if (anchored_end) return cur[n] != 0;
  return std::find(cur.begin(), cur.end(), 1) != cur.end();
}

absl::StatusOr<PatternMatcher> PatternMatcher::Create(const std::vector<std::string>& patterns) {
  PatternMatcher pm;
  pm.patterns_.reserve(patterns.size());
  for (const std::string& raw : patterns) {
    std::string p = TrimSpaceAscii(raw);
    if (p.empty()) continue;
    p = CleanPath(p);
    bool exclusion = false;
    if (p[0] == '!') {
      if (p.size() == 1) return absl::InvalidArgumentError("illegal exclusion pattern: \"!\"");
      exclusion = true;
      p.erase(0, 1);
      pm.has_exclusions_ = true;
    }
    if (auto st = ValidateGlob(p); !st.ok()) {
      return absl::InvalidArgumentError(StrCat("syntax error in pattern ", Quote(p)));
    }
    KILN_ASSIGN_OR_RETURN(CompiledPattern cp, CompiledPattern::Compile(p, exclusion));
    pm.patterns_.push_back(std::move(cp));
  }
  return pm;
}

bool PatternMatcher::Matches(std::string_view file) const {
  bool matched = false;
  const std::string parent = PathDir(file);
  const std::vector<std::string_view> parent_dirs = SplitSlash(parent);
  for (const CompiledPattern& p : patterns_) {
    if (p.exclusion() != matched) continue;
    bool match = p.Match(file);
    if (!match && parent != "." && p.component_count() <= parent_dirs.size()) {
      match = p.Match(JoinFirst(parent, parent_dirs, p.component_count()));
    }
    if (match) matched = !p.exclusion();
  }
  return matched;
}

bool PatternMatcher::MatchesOrParentMatches(std::string_view file) const {
  bool matched = false;
  const std::string parent = PathDir(file);
  const std::vector<std::string_view> parent_dirs = SplitSlash(parent);
  for (const CompiledPattern& p : patterns_) {
    if (p.exclusion() != matched) continue;
    bool match = p.Match(file);
    if (!match && parent != ".") {
      for (size_t i = 1; i <= parent_dirs.size() && !match; ++i) {
        match = p.Match(JoinFirst(parent, parent_dirs, i));
      }
    }
    if (match) matched = !p.exclusion();
  }
  return matched;
}

bool PatternMatcher::MatchesUsingParentResult(std::string_view file, bool parent_matched) const {
  bool matched = parent_matched;
  for (const CompiledPattern& p : patterns_) {
    if (p.exclusion() != matched) continue;
    if (p.Match(file)) matched = !p.exclusion();
  }
  return matched;
}

bool PatternMatcher::MatchesUsingParentResults(std::string_view file, const MatchInfo& parent,
                                               MatchInfo* info) const {
  // A MatchInfo from another matcher (wrong size) is treated as absent.
  const bool have_parent = parent.parent_matched.size() == patterns_.size() && !patterns_.empty();
  bool matched = false;
  std::vector<bool> results(patterns_.size(), false);
  std::string parent_path;
  std::vector<std::string_view> parent_dirs;
  bool parents_split = false;
  for (size_t i = 0; i < patterns_.size(); ++i) {
    const CompiledPattern& p = patterns_[i];
    bool match = have_parent && parent.parent_matched[i];
    if (!match) {
      if (p.exclusion() != matched) continue;
      match = p.Match(file);
      if (!match && !have_parent) {
        if (!parents_split) {
          parent_path = PathDir(file);
          parent_dirs = SplitSlash(parent_path);
          parents_split = true;
        }
        if (parent_path != ".") {
          for (size_t k = 1; k <= parent_dirs.size() && !match; ++k) {
            match = p.Match(JoinFirst(parent_path, parent_dirs, k));
          }
        }
      }
    }
    results[i] = match;
    if (match) matched = !p.exclusion();
  }
  if (info != nullptr) info->parent_matched = std::move(results);
  return matched;
}

absl::StatusOr<bool> MatchesOrParentMatches(std::string_view file,
                                            const std::vector<std::string>& patterns) {
  KILN_ASSIGN_OR_RETURN(PatternMatcher pm, PatternMatcher::Create(patterns));
  std::string cleaned = CleanPath(file);
  if (cleaned == ".") return false;
  return pm.MatchesOrParentMatches(cleaned);
}

absl::StatusOr<PathFilter> PathFilter::Create(const std::vector<std::string>& include_patterns,
                                              const std::vector<std::string>& exclude_patterns) {
  // fsutil treats '\' as a pattern character on Unix, alongside the glob metacharacters.
  constexpr std::string_view kPatternChars = "*[]?^\\";
  PathFilter f;
  if (!include_patterns.empty()) {
    auto pm = PatternMatcher::Create(include_patterns);
    if (!pm.ok()) return Annotate(pm.status(), "invalid include patterns");
    f.include_ = *std::move(pm);
    f.has_include_ = true;
    for (const CompiledPattern& p : f.include_.patterns()) {
      if (!p.exclusion() && ContainsAny(WithoutTrailingGlob(p.text()), kPatternChars)) {
        f.only_prefix_includes_ = false;
        break;
      }
    }
  }
  if (!exclude_patterns.empty()) {
    auto pm = PatternMatcher::Create(exclude_patterns);
    if (!pm.ok()) return Annotate(pm.status(), "invalid exclude patterns");
    f.exclude_ = *std::move(pm);
    f.has_exclude_ = !f.exclude_.empty();
    for (const CompiledPattern& p : f.exclude_.patterns()) {
      if (p.exclusion() && ContainsAny(WithoutTrailingGlob(p.text()), kPatternChars)) {
        f.only_prefix_exclude_exceptions_ = false;
        break;
      }
    }
  }
  return f;
}

PathFilter::Decision PathFilter::Check(std::string_view path, bool is_dir,
                                       const State& parent) const {
  Decision d;
  d.descend = is_dir;
  auto prefix_of_some = [&](const PatternMatcher& pm, bool want_exclusion) {
    std::string dir_slash = StrCat(path, "/");
    for (const CompiledPattern& p : pm.patterns()) {
      if (p.exclusion() != want_exclusion) continue;
      std::string pat = StrCat(WithoutTrailingGlob(p.text()), "/");
      if (pat.compare(0, dir_slash.size(), dir_slash) == 0) return true;
    }
    return false;
  };
  if (has_include_) {
    bool m = include_.MatchesUsingParentResults(path, parent.include, &d.state.include);
    if (!m) {
      if (is_dir && only_prefix_includes_ && !prefix_of_some(include_, false)) {
        return Decision{false, false, {}};
      }
      d.include = false;
    }
  }
  if (has_exclude_) {
    bool m = exclude_.MatchesUsingParentResults(path, parent.exclude, &d.state.exclude);
    if (m) {
      if (is_dir && only_prefix_exclude_exceptions_ &&
          (!exclude_.has_exclusions() || !prefix_of_some(exclude_, true))) {
        return Decision{false, false, {}};
      }
      d.include = false;
    }
  }
  return d;
}

}  // namespace kiln
