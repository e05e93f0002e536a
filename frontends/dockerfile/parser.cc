#include "frontends/dockerfile/parser.h"

#include <set>
#include <utility>

#include "base/status.h"
#include "base/strings.h"
#include "frontends/dockerfile/go_compat.h"
#include "frontends/dockerfile/shell_lex.h"

namespace kiln::frontends::dockerfile {
namespace {

// bufio.Scanner's default limit: a longer line makes BuildKit fail.
constexpr size_t kMaxLineSize = 64 * 1024 - 1;
// ONBUILD ONBUILD ... nesting accepted before giving up (hostile input protection).
constexpr int kMaxOnbuildDepth = 64;

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

absl::Status Error(std::string_view msg) { return absl::InvalidArgumentError(ToAbsl(msg)); }

// The regexp class [\t\v\f\r ] BuildKit splits command lines with.
bool IsSplitSpace(char c) { return c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == ' '; }

bool IsAsciiSpace(char c) { return IsSplitSpace(c) || c == '\n'; }

// The regexp class \s: [\t\n\f\r ].
bool IsRegexpSpace(char c) { return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '; }

std::string_view TrimNewline(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool IsComment(std::string_view line) {
  std::string_view t = go::TrimLeftSpace(line);
  return !t.empty() && t[0] == '#';
}

bool IsEmptyContinuationLine(std::string_view line) {
  return go::TrimLeftSpace(TrimNewline(line)).empty();
}

// Splits on runs of [\t\v\f\r ]; `s` has no leading/trailing such characters.
std::vector<std::string> SplitWhitespace(std::string_view s, size_t max_parts = 0) {
  std::vector<std::string> out;
  size_t i = 0;
  while (true) {
    if (max_parts != 0 && out.size() + 1 == max_parts) {
      out.emplace_back(s.substr(i));
      return out;
    }
    size_t j = i;
    while (j < s.size() && !IsSplitSpace(s[j])) ++j;
    out.emplace_back(s.substr(i, j - i));
    if (j == s.size()) return out;
    while (j < s.size() && IsSplitSpace(s[j])) ++j;
    i = j;
  }
}

class Directives {
 public:
  char escape() const { return escape_; }

  // BuildKit's DirectiveParser.ParseLine plus escape handling.  Sets *is_directive when the
  // line was a recognised directive.
  absl::Status ParseLine(std::string_view line, int line_number, bool* is_directive,
                         std::vector<Directive>* out) {
    *is_directive = false;
    if (done_) return absl::OkStatus();
    if (line.empty() || line[0] != '#') {
      done_ = true;
      return absl::OkStatus();
    }
    line = go::TrimLeftSpace(line.substr(1));
    // ^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$
    size_t i = 0;
    auto is_alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    if (line.empty() || !is_alpha(line[0])) {
      done_ = true;
      return absl::OkStatus();
    }
    while (i < line.size() && (is_alpha(line[i]) || (line[i] >= '0' && line[i] <= '9'))) ++i;
    std::string key = go::AsciiLower(line.substr(0, i));
    while (i < line.size() && IsRegexpSpace(line[i])) ++i;
    if (i >= line.size() || line[i] != '=') {
      done_ = true;
      return absl::OkStatus();
    }
    std::string_view rest = line.substr(i + 1);
    size_t b = 0;
    while (b < rest.size() && IsRegexpSpace(rest[b])) ++b;
    std::string_view value;
    if (b == rest.size()) {
      if (rest.empty()) {
        done_ = true;
        return absl::OkStatus();
      }
      value = rest.substr(rest.size() - 1);  // (.+?) takes one space back from \s*
    } else {
      size_t e = rest.size();
      while (e > b && IsRegexpSpace(rest[e - 1])) --e;
      value = rest.substr(b, e - b);
    }
    if (key != "syntax" && key != "escape" && key != "check") {
      done_ = true;
      return absl::OkStatus();
    }
    if (!seen_.insert(key).second) {
      return Error(StrCat("only one ", key, " parser directive can be used"));
    }
    if (key == "escape") {
      if (value != "`" && value != "\\") {
        return Error(StrCat("invalid escape token '", value, "' does not match ` or \\"));
      }
      escape_ = value[0];
    }
    out->push_back(Directive{key, std::string(value), line_number});
    *is_directive = true;
    return absl::OkStatus();
  }

  // Removes a trailing line continuation: the escape character, optionally followed by spaces
  // and tabs, not itself escaped.  Returns true when the line continues.
  bool TrimContinuation(std::string* line) const {
    size_t end = line->size();
    while (end > 0 && ((*line)[end - 1] == ' ' || (*line)[end - 1] == '\t')) --end;
    if (end == 0 || (*line)[end - 1] != escape_) return false;
    size_t pos = end - 1;
    if (pos > 0 && (*line)[pos - 1] == escape_) return false;
    line->resize(pos);
    return true;
  }

 private:
  char escape_ = '\\';
  bool done_ = false;
  std::set<std::string> seen_;
};

// BuildKit's extractBuilderFlags: leading "--" words, with quotes and '\' escapes processed.
// Returns the rest of the line.
std::string_view ExtractBuilderFlags(std::string_view line, std::vector<std::string>* flags) {
  enum { kInSpaces, kInWord, kInQuote } phase = kInSpaces;
  std::string word;
  char quote = 0;
  bool blank_ok = false;
  for (size_t pos = 0; pos <= line.size(); ++pos) {
    char ch = pos != line.size() ? line[pos] : '\0';
    if (phase == kInSpaces) {
      if (pos == line.size()) break;
      if (IsAsciiSpace(ch)) continue;
      if (ch != '-' || pos + 1 == line.size() || line[pos + 1] != '-') return line.substr(pos);
      phase = kInWord;
    }
    if (pos == line.size()) {
      if (word != "--" && (blank_ok || !word.empty())) flags->push_back(word);
      break;
    }
    if (phase == kInWord) {
      if (IsAsciiSpace(ch)) {
        phase = kInSpaces;
        if (word == "--") return line.substr(pos);
        if (blank_ok || !word.empty()) flags->push_back(word);
        word.clear();
        blank_ok = false;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        blank_ok = true;
        phase = kInQuote;
        continue;
      }
      if (ch == '\\') {
        if (pos + 1 == line.size()) continue;
        ch = line[++pos];
      }
      word.push_back(ch);
      continue;
    }
    // kInQuote
    if (ch == quote) {
      phase = kInWord;
      continue;
    }
    if (ch == '\\') {
      if (pos + 1 == line.size()) {
        phase = kInWord;
        continue;
      }
      ch = line[++pos];
    }
    word.push_back(ch);
  }
  return {};
}

// BuildKit's parseWords: splits on unquoted whitespace, keeping quotes and escapes.
std::vector<std::string> ParseWords(std::string_view rest, char escape) {
  enum { kInSpaces, kInWord, kInQuote } phase = kInSpaces;
  std::vector<std::string> words;
  std::string word;
  char32_t quote = 0;
  bool blank_ok = false;
  size_t width = 0;
  for (size_t pos = 0; pos <= rest.size(); pos += width) {
    char32_t ch = 0;
    width = 0;
    if (pos != rest.size()) std::tie(ch, width) = DecodeRune(rest.substr(pos));
    std::string_view raw = rest.substr(pos, width);
    if (phase == kInSpaces) {
      if (pos == rest.size()) break;
      if (go::IsSpace(ch)) continue;
      phase = kInWord;
    }
    if (pos == rest.size()) {
      if (blank_ok || !word.empty()) words.push_back(word);
      break;
    }
    if (phase == kInWord) {
      if (go::IsSpace(ch)) {
        phase = kInSpaces;
        if (blank_ok || !word.empty()) words.push_back(word);
        word.clear();
        blank_ok = false;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        blank_ok = true;
        phase = kInQuote;
      }
      if (ch == static_cast<unsigned char>(escape)) {
        if (pos + width == rest.size()) continue;  // an escape at the very end is dropped
        word.append(raw);
        pos += width;
        std::tie(ch, width) = DecodeRune(rest.substr(pos));
        raw = rest.substr(pos, width);
      }
      word.append(raw);
      continue;
    }
    // kInQuote
    if (ch == quote) phase = kInWord;
    if (ch == static_cast<unsigned char>(escape) && quote != '\'') {
      if (pos + width == rest.size()) {
        phase = kInWord;
        continue;
      }
      pos += width;
      word.append(raw);
      std::tie(ch, width) = DecodeRune(rest.substr(pos));
      raw = rest.substr(pos, width);
    }
    word.append(raw);
  }
  return words;
}

// ---- JSON, as Go's encoding/json Decoder reads the first value of the input ----

class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}

  enum class ArrayResult { kOk, kNotJson, kNotStringArray };

  // Reads a JSON array at the start of the input; trailing input is ignored (Decoder.Decode).
  ArrayResult ReadStringArray(std::vector<std::string>* out) {
    SkipWs();
    if (!Consume('[')) return ArrayResult::kNotJson;
    bool all_strings = true;
    SkipWs();
    if (Consume(']')) return ArrayResult::kOk;
    while (true) {
      SkipWs();
      if (Peek() == '"') {
        std::string s;
        if (!ReadString(&s)) return ArrayResult::kNotJson;
        out->push_back(std::move(s));
      } else {
        all_strings = false;
        if (!SkipValue(1)) return ArrayResult::kNotJson;
      }
      SkipWs();
      if (Consume(',')) continue;
      if (Consume(']')) break;
      return ArrayResult::kNotJson;
    }
    return all_strings ? ArrayResult::kOk : ArrayResult::kNotStringArray;
  }

 private:
  static constexpr int kMaxDepth = 10000;

  int Peek() const { return i_ < s_.size() ? static_cast<unsigned char>(s_[i_]) : -1; }
  bool Consume(char c) {
    if (Peek() != static_cast<unsigned char>(c)) return false;
    ++i_;
    return true;
  }
  void SkipWs() {
    while (i_ < s_.size() &&
           (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }
  bool ConsumeWord(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }

  static int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool ReadHex4(char32_t* out) {
    if (i_ + 4 > s_.size()) return false;
    char32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      int h = HexValue(s_[i_ + static_cast<size_t>(k)]);
      if (h < 0) return false;
      v = (v << 4) | static_cast<char32_t>(h);
    }
    i_ += 4;
    *out = v;
    return true;
  }

  // A JSON string; invalid UTF-8 and unpaired surrogates become U+FFFD like Go's decoder.
  bool ReadString(std::string* out) {
    if (!Consume('"')) return false;
    while (true) {
      if (i_ >= s_.size()) return false;
      auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) return false;
        char e = s_[i_++];
        switch (e) {
          case '"':
          case '\\':
          case '/':
            out->push_back(e);
            break;
          case 'b':
            out->push_back('\b');
            break;
          case 'f':
            out->push_back('\f');
            break;
          case 'n':
            out->push_back('\n');
            break;
          case 'r':
            out->push_back('\r');
            break;
          case 't':
            out->push_back('\t');
            break;
          case 'u': {
            char32_t r;
            if (!ReadHex4(&r)) return false;
            if (r >= 0xD800 && r < 0xDC00) {
              // A high surrogate combines with an immediately following low one.
              size_t save = i_;
              char32_t lo;
              if (i_ + 1 < s_.size() && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
                i_ += 2;
                if (ReadHex4(&lo) && lo >= 0xDC00 && lo < 0xE000) {
                  go::AppendRune(out, 0x10000 + ((r - 0xD800) << 10) + (lo - 0xDC00));
                  break;
                }
              }
              i_ = save;
              go::AppendRune(out, kRuneError);
              break;
            }
            go::AppendRune(out, r);  // lone low surrogates become U+FFFD
            break;
          }
          default:
            return false;
        }
        continue;
      }
      auto [r, n] = DecodeRune(s_.substr(i_));
      if (r == kRuneError && n == 1) {
        go::AppendRune(out, kRuneError);
      } else {
        out->append(s_.substr(i_, n));
      }
      i_ += n;
    }
  }

  bool SkipNumber() {
    Consume('-');
    if (Consume('0')) {
    } else if (Peek() >= '1' && Peek() <= '9') {
      while (Peek() >= '0' && Peek() <= '9') ++i_;
    } else {
      return false;
    }
    if (Consume('.')) {
      if (!(Peek() >= '0' && Peek() <= '9')) return false;
      while (Peek() >= '0' && Peek() <= '9') ++i_;
    }
    if (Peek() == 'e' || Peek() == 'E') {
      ++i_;
      if (Peek() == '+' || Peek() == '-') ++i_;
      if (!(Peek() >= '0' && Peek() <= '9')) return false;
      while (Peek() >= '0' && Peek() <= '9') ++i_;
    }
    return true;
  }

  bool SkipValue(int depth) {
    if (depth > kMaxDepth) return false;
    SkipWs();
    int c = Peek();
    if (c == '"') {
      std::string ignored;
      return ReadString(&ignored);
    }
    if (c == '[' || c == '{') {
      const char close = c == '[' ? ']' : '}';
      ++i_;
      SkipWs();
      if (Consume(close)) return true;
      while (true) {
        SkipWs();
        if (close == '}') {
          std::string key;
          if (!ReadString(&key)) return false;
          SkipWs();
          if (!Consume(':')) return false;
        }
        if (!SkipValue(depth + 1)) return false;
        SkipWs();
        if (Consume(',')) continue;
        return Consume(close);
      }
    }
    if (c == 't') return ConsumeWord("true");
    if (c == 'f') return ConsumeWord("false");
    if (c == 'n') return ConsumeWord("null");
    return SkipNumber();
  }

  std::string_view s_;
  size_t i_ = 0;
};

constexpr std::string_view kNotStringArray =
    "when using JSON array syntax, arrays must be comprised of strings only";

// ---- per-instruction argument parsers (BuildKit's line_parsers.go) ----

struct LineParseContext {
  const Directives& directives;
  int depth;
};

absl::StatusOr<Node> NewNodeFromLine(std::string_view line, const LineParseContext& ctx,
                                     std::vector<std::string> comments);

// Returns true when `rest` was a JSON array of strings (filling args); false when it is not
// JSON; an error for a JSON array with a non-string.
absl::StatusOr<bool> ParseJson(std::string_view rest, std::vector<std::string>* args) {
  rest = go::TrimLeftSpace(rest);
  if (rest.empty() || rest[0] != '[') return false;
  std::vector<std::string> values;
  switch (JsonReader(rest).ReadStringArray(&values)) {
    case JsonReader::ArrayResult::kOk:
      *args = std::move(values);
      return true;
    case JsonReader::ArrayResult::kNotStringArray:
      return Error(kNotStringArray);
    case JsonReader::ArrayResult::kNotJson:
      return false;
  }
  return false;
}

absl::Status ParseMaybeJson(std::string_view rest, Node* node) {
  if (rest.empty()) return absl::OkStatus();
  KILN_ASSIGN_OR_RETURN(bool json, ParseJson(rest, &node->args));
  if (json) {
    node->json = true;
  } else {
    node->args = {std::string(rest)};
  }
  return absl::OkStatus();
}

absl::Status ParseMaybeJsonToList(std::string_view rest, Node* node) {
  KILN_ASSIGN_OR_RETURN(bool json, ParseJson(rest, &node->args));
  if (json) {
    node->json = true;
  } else if (!rest.empty()) {
    node->args = SplitWhitespace(rest);
  }
  return absl::OkStatus();
}

absl::Status ParseNameVal(std::string_view rest, std::string_view key, char escape, Node* node) {
  std::vector<std::string> words = ParseWords(rest, escape);
  if (words.empty()) return absl::OkStatus();
  if (words[0].find('=') == std::string::npos) {
    std::vector<std::string> parts = SplitWhitespace(rest, 2);
    if (parts.size() < 2) return Error(StrCat(key, " must have two arguments"));
    node->args = std::move(parts);
    node->legacy_key_value = true;
    return absl::OkStatus();
  }
  for (const std::string& word : words) {
    size_t eq = word.find('=');
    if (eq == std::string::npos) {
      return Error(StrCat("Syntax error - can't find = in ", go::Quote(word),
                          ". Must be of the form: name=value"));
    }
    node->args.push_back(word.substr(0, eq));
    node->args.push_back(word.substr(eq + 1));
  }
  return absl::OkStatus();
}

absl::Status ParseHealthConfig(std::string_view rest, Node* node) {
  size_t sep = 0;
  while (sep < rest.size() && !IsAsciiSpace(rest[sep])) ++sep;
  size_t next = sep;
  while (next < rest.size() && IsAsciiSpace(rest[next])) ++next;
  if (sep == 0) return absl::OkStatus();
  Node cmd;
  KILN_RETURN_IF_ERROR(ParseMaybeJson(rest.substr(next), &cmd));
  node->args.emplace_back(rest.substr(0, sep));
  for (std::string& a : cmd.args) node->args.push_back(std::move(a));
  node->json = cmd.json;
  return absl::OkStatus();
}

absl::Status DispatchArgs(std::string_view lower, std::string_view rest,
                          const LineParseContext& ctx, Node* node) {
  const char escape = ctx.directives.escape();
  if (lower == "add" || lower == "copy" || lower == "volume") {
    return ParseMaybeJsonToList(rest, node);
  }
  if (lower == "cmd" || lower == "entrypoint" || lower == "run" || lower == "shell") {
    return ParseMaybeJson(rest, node);
  }
  if (lower == "arg") {
    node->args = ParseWords(rest, escape);
    return absl::OkStatus();
  }
  if (lower == "env") return ParseNameVal(rest, "ENV", escape, node);
  if (lower == "label") return ParseNameVal(rest, "LABEL", escape, node);
  if (lower == "expose" || lower == "from") {
    if (!rest.empty()) node->args = SplitWhitespace(rest);
    return absl::OkStatus();
  }
  if (lower == "maintainer" || lower == "stopsignal" || lower == "user" || lower == "workdir") {
    if (!rest.empty()) node->args = {std::string(rest)};
    return absl::OkStatus();
  }
  if (lower == "healthcheck") return ParseHealthConfig(rest, node);
  if (lower == "onbuild") {
    if (rest.empty()) return absl::OkStatus();
    if (ctx.depth >= kMaxOnbuildDepth) return Error("ONBUILD triggers nested too deeply");
    KILN_ASSIGN_OR_RETURN(
        Node child, NewNodeFromLine(rest, LineParseContext{ctx.directives, ctx.depth + 1}, {}));
    node->args.push_back(child.keyword);
    node->args.insert(node->args.end(), child.args.begin(), child.args.end());
    node->children.push_back(std::move(child));
    return absl::OkStatus();
  }
  // Unknown instruction: reported by the instruction parser.  BuildKit's parseIgnore leaves one
  // empty argument behind.
  node->args = {""};
  return absl::OkStatus();
}

absl::StatusOr<Node> NewNodeFromLine(std::string_view line, const LineParseContext& ctx,
                                     std::vector<std::string> comments) {
  std::string_view trimmed = go::TrimSpace(line);
  size_t split = 0;
  while (split < trimmed.size() && !IsSplitSpace(trimmed[split])) ++split;
  Node node;
  node.keyword = std::string(trimmed.substr(0, split));
  std::string_view rest;
  if (split < trimmed.size()) {
    size_t args_start = split;
    while (args_start < trimmed.size() && IsSplitSpace(trimmed[args_start])) ++args_start;
    rest = go::TrimSpace(ExtractBuilderFlags(trimmed.substr(args_start), &node.flags));
  }
  node.original = std::string(line);
  node.prev_comments = std::move(comments);
  KILN_RETURN_IF_ERROR(DispatchArgs(node.LowerKeyword(), rest, ctx, &node));
  return node;
}

bool CanContainHeredoc(const Node& node) {
  const Node* n = &node;
  if (n->LowerKeyword() == "onbuild" && !n->children.empty()) n = &n->children[0];
  std::string lower = n->LowerKeyword();
  if (lower != "add" && lower != "copy" && lower != "run") return false;
  return !n->json;
}

absl::StatusOr<std::vector<Heredoc>> HeredocsFromLine(std::string_view line) {
  ShellLexOptions opts;
  opts.raw_quotes = true;
  opts.raw_escapes = true;
  opts.skip_unset_env = true;
  absl::StatusOr<std::vector<std::string>> words =
      ShellLex('\\', opts).ProcessWords(line, EnvLookup());
  std::vector<Heredoc> docs;
  if (!words.ok()) return docs;  // BuildKit ignores lexing errors here
  for (const std::string& word : *words) {
    Heredoc h;
    KILN_ASSIGN_OR_RETURN(bool found, ParseHeredocMarker(word, &h));
    if (found) docs.push_back(std::move(h));
  }
  return docs;
}

std::vector<std::string_view> SplitLines(std::string_view content) {
  std::vector<std::string_view> lines;
  while (!content.empty()) {
    size_t nl = content.find('\n');
    size_t len = nl == std::string_view::npos ? content.size() : nl + 1;
    lines.push_back(content.substr(0, len));
    content.remove_prefix(len);
  }
  return lines;
}

SourceRange LineRange(std::string_view file, int start, int end) {
  if (start < 1) start = 1;
  if (end < start) end = start;
  return SourceRange{std::string(file), start, 0, end, 0};
}

}  // namespace

std::string Node::LowerKeyword() const { return go::AsciiLower(keyword); }

SourceRange Node::Range(std::string_view file) const {
  return LineRange(file, start_line, end_line);
}

absl::StatusOr<bool> ParseHeredocMarker(std::string_view word, Heredoc* out) {
  // ^(\d*)<<(-?)([^<]*)$
  size_t i = 0;
  while (i < word.size() && word[i] >= '0' && word[i] <= '9') ++i;
  std::string_view digits = word.substr(0, i);
  if (word.substr(i, 2) != "<<") return false;
  i += 2;
  bool chomp = false;
  if (i < word.size() && word[i] == '-') {
    chomp = true;
    ++i;
  }
  std::string_view rest = word.substr(i);
  if (rest.find('<') != std::string_view::npos) return false;
  if (rest.empty()) return false;

  uint64_t fd = 0;
  if (!digits.empty()) {
    std::string ignored;
    std::optional<uint64_t> v = go::ParseUint(digits, 10, 64, &ignored);
    fd = v.value_or(UINT64_MAX);
  }
  ShellLexOptions opts;
  opts.skip_unset_env = true;
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> words,
                        ShellLex('\\', opts).ProcessWords(rest, EnvLookup()));
  if (words.size() != 1) return false;
  opts.raw_quotes = true;
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> raw_words,
                        ShellLex('\\', opts).ProcessWords(rest, EnvLookup()));
  if (raw_words.size() != words.size()) {
    return Error(StrCat("internal lexing of heredoc produced inconsistent results: ", rest));
  }
  auto count_quotes = [](std::string_view s) {
    size_t n = 0;
    for (char c : s) n += (c == '\'' || c == '"') ? 1 : 0;
    return n;
  };
  out->name = words[0];
  out->file_descriptor = fd;
  out->chomp = chomp;
  out->expand = count_quotes(words[0]) == count_quotes(raw_words[0]);
  out->content.clear();
  return true;
}

std::string ChompHeredocContent(std::string_view content) {
  std::string out;
  out.reserve(content.size());
  bool line_start = true;
  for (char c : content) {
    if (line_start && c == '\t') continue;
    line_start = c == '\n';
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<ParseResult> Parse(std::string_view content, std::string_view file) {
  ParseResult result;
  result.file = std::string(file);
  std::vector<std::string_view> lines = SplitLines(content);
  // A line over bufio.Scanner's limit stops BuildKit's scanner; what came before still parses.
  bool too_long = false;
  for (size_t k = 0; k < lines.size(); ++k) {
    if (lines[k].size() - (lines[k].back() == '\n' ? 1 : 0) > kMaxLineSize) {
      lines.resize(k);
      too_long = true;
      break;
    }
  }

  Directives directives;
  std::vector<std::string> comments;
  int current_line = 0;
  size_t i = 0;
  auto located = [&](const absl::Status& st, int start, int end) {
    return WithLocation(st, LineRange(file, start, end));
  };

  while (i < lines.size()) {
    std::string_view raw = lines[i++];
    if (current_line == 0 && raw.substr(0, kUtf8Bom.size()) == kUtf8Bom) {
      raw.remove_prefix(kUtf8Bom.size());
    }
    const bool is_comment = IsComment(raw);
    if (is_comment) {
      std::string comment(go::TrimSpace(raw.substr(1)));
      if (comment.empty()) {
        comments.clear();
      } else {
        comments.push_back(std::move(comment));
      }
    }
    std::string_view token = go::TrimLeftSpace(TrimNewline(raw));
    bool is_directive = false;
    if (absl::Status st =
            directives.ParseLine(token, current_line + 1, &is_directive, &result.directives);
        !st.ok()) {
      return located(st, current_line + 1, current_line + 1);
    }
    if (is_directive && !comments.empty()) comments.pop_back();
    current_line++;
    const int start_line = current_line;

    std::string line = IsComment(token) ? std::string() : std::string(token);
    bool continues = directives.TrimContinuation(&line);
    if (!continues && line.empty()) continue;

    bool has_empty_continuation = false;
    while (continues && i < lines.size()) {
      std::string_view next_raw = lines[i++];
      std::string_view next = TrimNewline(next_raw);
      bool ignored;
      if (absl::Status st =
              directives.ParseLine(next, current_line + 1, &ignored, &result.directives);
          !st.ok()) {
        return located(st, current_line + 1, current_line + 1);
      }
      current_line++;
      if (IsComment(next_raw)) continue;
      if (IsEmptyContinuationLine(next)) {
        has_empty_continuation = true;
        continue;
      }
      std::string part(next);
      continues = directives.TrimContinuation(&part);
      line += part;
    }

    if (has_empty_continuation) {
      result.warnings.push_back(
          Warning{"NoEmptyContinuation", StrCat("Empty continuation line found in: ", line),
                  "Empty continuation lines will become errors in a future release",
                  "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/",
                  LineRange(file, current_line, current_line)});
    }

    absl::StatusOr<Node> node =
        NewNodeFromLine(line, LineParseContext{directives, 0}, std::move(comments));
    comments.clear();
    if (!node.ok()) return located(node.status(), start_line, current_line);

    if (CanContainHeredoc(*node) && line.find("<<") != std::string::npos) {
      absl::StatusOr<std::vector<Heredoc>> heredocs = HeredocsFromLine(line);
      if (!heredocs.ok()) return located(heredocs.status(), start_line, current_line);
      for (Heredoc& h : *heredocs) {
        bool terminated = false;
        while (i < lines.size()) {
          std::string_view body_line = lines[i++];
          current_line++;
          std::string_view candidate = TrimNewline(body_line);
          if (h.chomp) {
            while (!candidate.empty() && candidate[0] == '\t') candidate.remove_prefix(1);
          }
          if (candidate == h.name) {
            terminated = true;
            break;
          }
          h.content.append(body_line);
        }
        if (!terminated) return located(Error("unterminated heredoc"), start_line, current_line);
        node->heredocs.push_back(std::move(h));
      }
    }
    node->start_line = start_line;
    node->end_line = current_line;
    for (Node& child : node->children) {
      child.start_line = start_line;
      child.end_line = current_line;
    }
    result.nodes.push_back(*std::move(node));
  }

  if (result.nodes.empty()) {
    return located(Error("file with no instructions"), current_line, current_line);
  }
  if (too_long) {
    return located(Error(StrCat("dockerfile line greater than max allowed size of ", kMaxLineSize)),
                   current_line + 1, current_line + 1);
  }
  result.escape_token = directives.escape();
  return result;
}

std::string Dump(const Node& node) {
  std::string out = node.LowerKeyword();
  if (!node.flags.empty()) {
    out += " [";
    for (size_t k = 0; k < node.flags.size(); ++k) {
      if (k > 0) out += " ";
      out += go::Quote(node.flags[k]);
    }
    out += "]";
  }
  if (!node.children.empty()) {
    out += " (" + Dump(node.children[0]) + ")";
    return out;
  }
  for (const std::string& a : node.args) out += " " + go::Quote(a);
  return out;
}

}  // namespace kiln::frontends::dockerfile
