#include "frontends/dockerfile/shell_lex.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <utility>

#include "base/status.h"
#include "base/strings.h"
#include "frontends/dockerfile/go_compat.h"

namespace kiln::frontends::dockerfile {
namespace {

constexpr int32_t kEof = -1;
// Nesting limit for ${...} inside ${...}: deep nesting is never useful and would otherwise
// exhaust the stack on hostile input.
constexpr int kMaxDepth = 200;

absl::Status Error(std::string_view msg) { return absl::InvalidArgumentError(ToAbsl(msg)); }

// A string split into characters: valid UTF-8 runes, or single invalid bytes.
std::vector<std::string_view> SplitChars(std::string_view s) {
  std::vector<std::string_view> out;
  out.reserve(s.size());
  while (!s.empty()) {
    size_t n = DecodeRune(s).second;
    out.push_back(s.substr(0, n));
    s.remove_prefix(n);
  }
  return out;
}

std::string JoinChars(const std::vector<std::string_view>& chars, size_t from, size_t to) {
  std::string out;
  for (size_t i = from; i < to; ++i) out.append(chars[i]);
  return out;
}

// A shell pattern of ${VAR#pattern} and friends, compiled the way BuildKit turns it into a
// regexp: '*' is ".*" (greedy or lazy), '?' is ".", everything else literal; '.' never
// matches a newline.
struct PatternToken {
  enum Kind { kLiteral, kAnyChar, kStar } kind;
  std::string_view ch;
};

absl::StatusOr<std::vector<PatternToken>> CompilePattern(
    const std::vector<std::string_view>& chars) {
  std::vector<PatternToken> out;
  for (size_t i = 0; i < chars.size(); ++i) {
    std::string_view c = chars[i];
    if (c == "*") {
      out.push_back({PatternToken::kStar, c});
    } else if (c == "?") {
      out.push_back({PatternToken::kAnyChar, c});
    } else if (c == "\\") {
      if (i + 1 < chars.size() && (chars[i + 1] == "}" || chars[i + 1] == "/")) continue;
      if (i + 1 >= chars.size()) return Error("invalid escape '\\'");
      std::string_view next = chars[++i];
      if (next != "*" && next != "?" && next != "\\") {
        return Error(StrCat("invalid escape '\\", next, "'"));
      }
      out.push_back({PatternToken::kLiteral, next});
    } else {
      out.push_back({PatternToken::kLiteral, c});
    }
  }
  return out;
}

constexpr size_t kNone = std::numeric_limits<size_t>::max();

// NFA simulation over `chars`: state k means tokens[0, k) matched; a star loops on its own
// state.  Each state carries the smallest start position that reaches it.
class PatternMatcher {
 public:
  PatternMatcher(const std::vector<PatternToken>& tokens,
                 const std::vector<std::string_view>& chars)
      : tokens_(tokens), chars_(chars) {}

  // The smallest start >= `from` at which some match begins, or kNone.
  size_t LeftmostStart(size_t from) const { return Run(from, /*anchored=*/false, nullptr); }

  // All end positions of matches that start exactly at `start`.
  std::vector<bool> EndsFrom(size_t start) const {
    std::vector<bool> ends(chars_.size() + 1, false);
    Run(start, /*anchored=*/true, &ends);
    return ends;
  }

 private:
  size_t Run(size_t from, bool anchored, std::vector<bool>* ends) const {
    const size_t m = tokens_.size(), n = chars_.size();
    std::vector<size_t> cur(m + 1, kNone), next(m + 1, kNone);
    size_t best = kNone;
    for (size_t p = from; p <= n; ++p) {
      if (!anchored || p == from) cur[0] = std::min(cur[0], p);
      for (size_t k = 0; k < m; ++k) {
        if (tokens_[k].kind == PatternToken::kStar) cur[k + 1] = std::min(cur[k + 1], cur[k]);
      }
      if (cur[m] != kNone) {
        best = std::min(best, cur[m]);
        if (ends != nullptr) (*ends)[p] = true;
      }
      size_t live = *std::min_element(cur.begin(), cur.end());
      if (live == kNone && (anchored || p >= n)) break;
      if (ends == nullptr && best != kNone && best <= live) break;
      if (p == n) break;
      std::fill(next.begin(), next.end(), kNone);
      std::string_view c = chars_[p];
      for (size_t k = 0; k < m; ++k) {
        if (cur[k] == kNone) continue;
        const PatternToken& t = tokens_[k];
        switch (t.kind) {
          case PatternToken::kLiteral:
            if (c == t.ch) next[k + 1] = std::min(next[k + 1], cur[k]);
            break;
          case PatternToken::kAnyChar:
            if (c != "\n") next[k + 1] = std::min(next[k + 1], cur[k]);
            break;
          case PatternToken::kStar:
            if (c != "\n") next[k] = std::min(next[k], cur[k]);
            break;
        }
      }
      std::swap(cur, next);
    }
    return best;
  }

  const std::vector<PatternToken>& tokens_;
  const std::vector<std::string_view>& chars_;
};

absl::StatusOr<std::string> TrimPrefix(std::string_view pattern, std::string_view value,
                                       bool greedy) {
  std::vector<std::string_view> pchars = SplitChars(pattern);
  auto tokens = CompilePattern(pchars);
  if (!tokens.ok()) {
    return Error(StrCat("invalid pattern (", pattern,
                        ") in substitution: ", FromAbsl(tokens.status().message())));
  }
  std::vector<std::string_view> chars = SplitChars(value);
  std::vector<bool> ends = PatternMatcher(*tokens, chars).EndsFrom(0);
  size_t cut = kNone;
  for (size_t e = 0; e < ends.size(); ++e) {
    if (!ends[e]) continue;
    cut = e;
    if (!greedy) break;
  }
  if (cut == kNone) return std::string(value);
  return JoinChars(chars, cut, chars.size());
}

// "a\*c" reversed is "c\*a": an escape stays in front of the character it escapes.
std::string ReversePattern(std::string_view pattern) {
  std::vector<std::string_view> in = SplitChars(pattern);
  std::vector<std::string_view> out(in.size());
  const size_t last = in.size() == 0 ? 0 : in.size() - 1;
  for (size_t i = 0; i < in.size();) {
    size_t o = last - i;
    if (in[i] == "\\" && i != last) {
      out[o - 1] = in[i];
      out[o] = in[i + 1];
      i += 2;
    } else {
      out[o] = in[i];
      ++i;
    }
  }
  return JoinChars(out, 0, out.size());
}

std::string ReverseString(std::string_view s) {
  std::vector<std::string_view> chars = SplitChars(s);
  std::reverse(chars.begin(), chars.end());
  return JoinChars(chars, 0, chars.size());
}

absl::StatusOr<std::string> TrimSuffix(std::string_view pattern, std::string_view value,
                                       bool greedy) {
  KILN_ASSIGN_OR_RETURN(std::string trimmed,
                        TrimPrefix(ReversePattern(pattern), ReverseString(value), greedy));
  // Report the pattern as written, not reversed.
  return ReverseString(trimmed);
}

// Go's regexp template expansion for ReplaceAllString; the pattern has no groups, so only $0
// (the match) expands to something.
std::string ExpandTemplate(std::string_view tmpl, std::string_view match) {
  std::string out;
  while (!tmpl.empty()) {
    size_t dollar = tmpl.find('$');
    if (dollar == std::string_view::npos) break;
    out.append(tmpl.substr(0, dollar));
    tmpl.remove_prefix(dollar + 1);
    if (!tmpl.empty() && tmpl[0] == '$') {
      out.push_back('$');
      tmpl.remove_prefix(1);
      continue;
    }
    std::string_view s = tmpl;
    bool brace = false;
    if (!s.empty() && s[0] == '{') {
      brace = true;
      s.remove_prefix(1);
    }
    size_t i = 0;
    while (i < s.size()) {
      auto [r, w] = DecodeRune(s.substr(i));
      if (!go::IsLetter(r) && !go::IsDigit(r) && r != '_') break;
      i += w;
    }
    if (i == 0 || (brace && (i >= s.size() || s[i] != '}'))) {
      out.push_back('$');  // malformed: the '$' is literal text
      continue;
    }
    std::string_view name = s.substr(0, i);
    tmpl = s.substr(brace ? i + 1 : i);
    if (name == "0") out.append(match);
  }
  out.append(tmpl);
  return out;
}

absl::StatusOr<std::string> Replace(std::string_view pattern, std::string_view value,
                                    std::string_view replacement, bool all) {
  std::vector<std::string_view> pchars = SplitChars(pattern);
  auto tokens = CompilePattern(pchars);
  if (!tokens.ok()) {
    return Error(StrCat("invalid pattern (", pattern,
                        ") in substitution: ", FromAbsl(tokens.status().message())));
  }
  std::vector<std::string_view> chars = SplitChars(value);
  PatternMatcher pm(*tokens, chars);
  auto longest_end = [&](size_t start) {
    std::vector<bool> ends = pm.EndsFrom(start);
    size_t e = ends.size() - 1;
    while (!ends[e]) --e;
    return e;
  };
  const size_t n = chars.size();
  if (!all) {
    size_t start = pm.LeftmostStart(0);
    if (start == kNone) return std::string(value);
    size_t end = longest_end(start);
    return StrCat(JoinChars(chars, 0, start), replacement, JoinChars(chars, end, n));
  }
  std::string out;
  size_t last_end = 0, search = 0;
  while (search <= n) {
    size_t start = pm.LeftmostStart(search);
    if (start == kNone) break;
    size_t end = longest_end(start);
    out.append(JoinChars(chars, last_end, start));
    if (end > last_end || start == 0) {
      out.append(ExpandTemplate(replacement, JoinChars(chars, start, end)));
    }
    last_end = end;
    size_t width = search < n ? 1 : 0;
    if (search + width > end) {
      search += width;
    } else if (search + 1 > end) {
      ++search;
    } else {
      search = end;
    }
  }
  out.append(JoinChars(chars, last_end, n));
  return out;
}

bool IsSpecialParam(int32_t ch) {
  switch (ch) {
    case '@':
    case '*':
    case '#':
    case '?':
    case '-':
    case '$':
    case '!':
    case '0':
      return true;
    default:
      return false;
  }
}

// Accumulates the word split of ProcessWords.
class Words {
 public:
  void AddChar(int32_t ch, std::string_view raw) {
    bool space = ch >= 0 && go::IsSpace(static_cast<char32_t>(ch));
    if (space) {
      if (in_word_ && !buf_.empty()) Flush();
    } else {
      AddRaw(raw);
    }
  }
  void AddRaw(std::string_view s) {
    buf_.append(s);
    in_word_ = true;
  }
  void AddString(std::string_view s) {
    while (!s.empty()) {
      auto [r, n] = DecodeRune(s);
      AddChar(static_cast<int32_t>(r), s.substr(0, n));
      s.remove_prefix(n);
    }
  }
  std::vector<std::string> Take() {
    if (!buf_.empty()) Flush();
    return std::move(words_);
  }

 private:
  void Flush() {
    words_.push_back(std::move(buf_));
    buf_.clear();
    in_word_ = false;
  }
  std::string buf_;
  std::vector<std::string> words_;
  bool in_word_ = false;
};

class Processor {
 public:
  Processor(std::string_view src, char escape, const ShellLexOptions& options, const EnvLookup& env)
      : src_(src),
        escape_(static_cast<unsigned char>(escape)),
        options_(options),
        env_(env),
        raw_escapes_(options.raw_escapes) {}

  absl::Status Run(std::string* result, std::vector<std::string>* words) {
    return ProcessStopOn(kEof, raw_escapes_, result, words);
  }

  std::set<std::string> matched, unmatched;

 private:
  int32_t Peek() const {
    if (pos_ >= src_.size()) return kEof;
    return static_cast<int32_t>(DecodeRune(src_.substr(pos_)).first);
  }

  // Consumes one character; `*raw` is its bytes.
  int32_t Next(std::string_view* raw = nullptr) {
    if (pos_ >= src_.size()) {
      if (raw != nullptr) *raw = {};
      return kEof;
    }
    auto [r, n] = DecodeRune(src_.substr(pos_));
    if (raw != nullptr) *raw = src_.substr(pos_, n);
    pos_ += n;
    return static_cast<int32_t>(r);
  }

  static std::string RuneString(int32_t ch) {
    std::string s;
    go::AppendRune(&s, ch < 0 ? kRuneError : static_cast<char32_t>(ch));
    return s;
  }

  absl::Status ProcessStopOn(int32_t stop, bool raw_escapes, std::string* result,
                             std::vector<std::string>* words_out) {
    if (++depth_ > kMaxDepth) return Error("syntax error: substitutions nested too deeply");
    const bool saved_raw_escapes = raw_escapes_;
    raw_escapes_ = raw_escapes;
    absl::Status st = ProcessStopOnInner(stop, result, words_out);
    raw_escapes_ = saved_raw_escapes;
    --depth_;
    return st;
  }

  absl::Status ProcessStopOnInner(int32_t stop, std::string* result,
                                  std::vector<std::string>* words_out) {
    Words words;
    while (Peek() != kEof) {
      int32_t ch = Peek();
      if (stop != kEof && ch == stop) {
        Next();
        if (words_out != nullptr) *words_out = words.Take();
        return absl::OkStatus();
      }
      if (ch == '$' || (!options_.skip_process_quotes && (ch == '\'' || ch == '"'))) {
        std::string tmp;
        if (ch == '$') {
          KILN_RETURN_IF_ERROR(ProcessDollar(&tmp));
          words.AddString(tmp);
        } else {
          KILN_RETURN_IF_ERROR(ch == '\'' ? ProcessSingleQuote(&tmp) : ProcessDoubleQuote(&tmp));
          words.AddRaw(tmp);
        }
        result->append(tmp);
        continue;
      }
      std::string_view raw;
      ch = Next(&raw);
      if (ch == escape_) {
        if (raw_escapes_) {
          words.AddRaw(raw);
          result->append(raw);
        }
        ch = Next(&raw);
        if (ch == kEof) break;
        words.AddRaw(raw);
      } else {
        words.AddChar(ch, raw);
      }
      result->append(raw);
    }
    if (stop != kEof) {
      return Error(
          StrCat("unexpected end of statement while looking for matching ", RuneString(stop)));
    }
    if (words_out != nullptr) *words_out = words.Take();
    return absl::OkStatus();
  }

  absl::Status ProcessSingleQuote(std::string* out) {
    std::string_view raw;
    Next(&raw);
    if (options_.raw_quotes) out->append(raw);
    while (true) {
      int32_t ch = Next(&raw);
      if (ch == kEof) {
        return Error("unexpected end of statement while looking for matching single-quote");
      }
      if (ch == '\'') {
        if (options_.raw_quotes) out->append(raw);
        return absl::OkStatus();
      }
      out->append(raw);
    }
  }

  absl::Status ProcessDoubleQuote(std::string* out) {
    std::string_view raw;
    Next(&raw);
    if (options_.raw_quotes) out->append(raw);
    while (true) {
      int32_t peek = Peek();
      if (peek == kEof) {
        return Error("unexpected end of statement while looking for matching double-quote");
      }
      if (peek == '"') {
        Next(&raw);
        if (options_.raw_quotes) out->append(raw);
        return absl::OkStatus();
      }
      if (peek == '$') {
        std::string value;
        KILN_RETURN_IF_ERROR(ProcessDollar(&value));
        out->append(value);
        continue;
      }
      int32_t ch = Next(&raw);
      if (ch == escape_) {
        if (raw_escapes_) out->append(raw);
        int32_t after = Peek();
        if (after == kEof) continue;
        if (after == '"' || after == '$' || after == escape_) Next(&raw);
      }
      out->append(raw);
    }
  }

  std::optional<std::string> GetEnv(const std::string& name) {
    std::optional<std::string> v = env_ ? env_(name) : std::nullopt;
    (v.has_value() ? matched : unmatched).insert(name);
    return v;
  }

  std::string ProcessName() {
    std::string name;
    std::string_view raw;
    while (Peek() != kEof) {
      int32_t ch = Peek();
      auto rune = static_cast<char32_t>(ch);
      if (name.empty() && go::IsDigit(rune)) {
        while (Peek() != kEof && go::IsDigit(static_cast<char32_t>(Peek()))) {
          Next(&raw);
          name.append(raw);
        }
        return name;
      }
      if (name.empty() && IsSpecialParam(ch)) {
        Next(&raw);
        return std::string(raw);
      }
      if (!go::IsLetter(rune) && !go::IsDigit(rune) && ch != '_') break;
      Next(&raw);
      name.append(raw);
    }
    return name;
  }

  absl::Status ProcessDollar(std::string* out) {
    Next();  // '$'
    if (Peek() != '{') {
      std::string name = ProcessName();
      if (name.empty()) {
        *out = "$";
        return absl::OkStatus();
      }
      std::optional<std::string> value = GetEnv(name);
      if (!value.has_value() && options_.skip_unset_env) {
        *out = StrCat("$", name);
      } else {
        *out = value.value_or("");
      }
      return absl::OkStatus();
    }
    Next();  // '{'
    switch (Peek()) {
      case kEof:
        return Error("syntax error: missing '}'");
      case '{':
      case '}':
      case ':':
        return Error("syntax error: bad substitution");
      default:
        break;
    }
    std::string name = ProcessName();
    int32_t ch = Next();
    if (ch == kEof) return Error("syntax error: missing '}'");
    std::string chs = RuneString(ch);
    bool null_is_unset = false;
    if (ch == '}') {
      std::optional<std::string> value = GetEnv(name);
      if (!value.has_value() && options_.skip_unset_env) {
        *out = StrCat("${", name, "}");
      } else {
        *out = value.value_or("");
      }
      return absl::OkStatus();
    }
    if (ch == '/') return ProcessReplace(name, out);
    if (ch == ':') {
      null_is_unset = true;
      ch = Next();
      chs += RuneString(ch);
    } else if (ch != '+' && ch != '-' && ch != '?' && ch != '#' && ch != '%') {
      return Error(StrCat("unsupported modifier (", chs, ") in substitution"));
    }
    const bool pattern_op = ch == '#' || ch == '%';
    if (null_is_unset && pattern_op) {
      return Error(StrCat("unsupported modifier (", chs, ") in substitution"));
    }
    std::string word;
    if (absl::Status st = ProcessStopOn('}', pattern_op, &word, nullptr); !st.ok()) {
      if (Peek() == kEof) return Error("syntax error: missing '}'");
      return st;
    }
    std::optional<std::string> value = GetEnv(name);
    if (options_.skip_unset_env && !value.has_value()) {
      *out = StrCat("${", name, chs, word, "}");
      return absl::OkStatus();
    }
    const bool set = value.has_value();
    const std::string v = value.value_or("");
    switch (ch) {
      case '-':
        *out = (!set || (null_is_unset && v.empty())) ? word : v;
        return absl::OkStatus();
      case '+':
        *out = (!set || (null_is_unset && v.empty())) ? "" : word;
        return absl::OkStatus();
      case '?':
        if (!set) {
          return Error(StrCat(name, ": ", word.empty() ? "is not allowed to be unset" : word));
        }
        if (null_is_unset && v.empty()) {
          return Error(StrCat(name, ": ", word.empty() ? "is not allowed to be empty" : word));
        }
        *out = v;
        return absl::OkStatus();
      case '#':
      case '%': {
        bool greedy = false;
        std::string_view pattern = word;
        if (!pattern.empty() && pattern[0] == static_cast<char>(ch)) {
          greedy = true;
          pattern.remove_prefix(1);
        }
        KILN_ASSIGN_OR_RETURN(
            *out, ch == '%' ? TrimSuffix(pattern, v, greedy) : TrimPrefix(pattern, v, greedy));
        return absl::OkStatus();
      }
      default:
        return Error(StrCat("unsupported modifier (", chs, ") in substitution"));
    }
  }

  absl::Status ProcessReplace(const std::string& name, std::string* out) {
    const bool all = Peek() == '/';
    if (all) Next();
    std::string pattern, replacement;
    if (absl::Status st = ProcessStopOn('/', true, &pattern, nullptr); !st.ok()) {
      if (Peek() == kEof) return Error("syntax error: missing '/' in ${}");
      return st;
    }
    if (absl::Status st = ProcessStopOn('}', true, &replacement, nullptr); !st.ok()) {
      if (Peek() == kEof) return Error("syntax error: missing '}'");
      return st;
    }
    std::optional<std::string> value = GetEnv(name);
    if (options_.skip_unset_env && !value.has_value()) {
      *out = StrCat("${", name, "/", pattern, "/", replacement, "}");
      return absl::OkStatus();
    }
    KILN_ASSIGN_OR_RETURN(*out, Replace(pattern, value.value_or(""), replacement, all));
    return absl::OkStatus();
  }

  std::string_view src_;
  size_t pos_ = 0;
  int32_t escape_;
  const ShellLexOptions& options_;
  const EnvLookup& env_;
  bool raw_escapes_;
  int depth_ = 0;
};

}  // namespace

EnvLookup EnvFromList(const std::vector<std::string>& entries) {
  auto env = std::make_shared<std::map<std::string, std::string, std::less<>>>();
  for (const std::string& e : entries) {
    size_t eq = e.find('=');
    if (eq == std::string::npos) {
      (*env)[e] = "";
    } else {
      (*env)[e.substr(0, eq)] = e.substr(eq + 1);
    }
  }
  return [env](std::string_view name) -> std::optional<std::string> {
    auto it = env->find(name);
    if (it == env->end()) return std::nullopt;
    return it->second;
  };
}

EnvLookup EnvFromMap(const std::map<std::string, std::string>& env) {
  auto copy =
      std::make_shared<std::map<std::string, std::string, std::less<>>>(env.begin(), env.end());
  return [copy](std::string_view name) -> std::optional<std::string> {
    auto it = copy->find(name);
    if (it == copy->end()) return std::nullopt;
    return it->second;
  };
}

absl::StatusOr<ShellWordResult> ShellLex::ProcessWordWithMatches(std::string_view word,
                                                                 const EnvLookup& env) const {
  Processor p(word, escape_, options_, env);
  ShellWordResult r;
  if (absl::Status st = p.Run(&r.result, &r.words); !st.ok()) {
    return absl::InvalidArgumentError(
        ToAbsl(StrCat("failed to process ", go::Quote(word), ": ", FromAbsl(st.message()))));
  }
  r.matched = std::move(p.matched);
  r.unmatched = std::move(p.unmatched);
  return r;
}

absl::StatusOr<std::string> ShellLex::ProcessWord(std::string_view word,
                                                  const EnvLookup& env) const {
  KILN_ASSIGN_OR_RETURN(ShellWordResult r, ProcessWordWithMatches(word, env));
  return std::move(r.result);
}

absl::StatusOr<std::vector<std::string>> ShellLex::ProcessWords(std::string_view word,
                                                                const EnvLookup& env) const {
  KILN_ASSIGN_OR_RETURN(ShellWordResult r, ProcessWordWithMatches(word, env));
  return std::move(r.words);
}

}  // namespace kiln::frontends::dockerfile
