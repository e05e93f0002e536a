#include "frontends/dockerfile/go_compat.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include <locale.h>
#include <wctype.h>

#include "base/strings.h"

namespace kiln::frontends::dockerfile::go {
namespace {

// glibc's built-in C.UTF-8 locale gives Unicode character classes without touching the
// process-wide locale.
locale_t Utf8Locale() {
  static locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
  return loc;
}

std::string InvalidSyntax(std::string_view fn, std::string_view s, std::string_view what) {
  return std::string("strconv.") + std::string(fn) + ": parsing " + Quote(s) + ": " +
         std::string(what);
}

}  // namespace

void AppendRune(std::string* out, char32_t r) {
  if (r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) r = kRuneError;
  if (r < 0x80) {
    out->push_back(static_cast<char>(r));
  } else if (r < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (r >> 6)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else if (r < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (r >> 12)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (r >> 18)));
    out->push_back(static_cast<char>(0x80 | ((r >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (r & 0x3F)));
  }
}

bool IsSpace(char32_t r) {
  switch (r) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return r >= 0x2000 && r <= 0x200A;
  }
}

bool IsDigit(char32_t r) { return r >= '0' && r <= '9'; }

bool IsLetter(char32_t r) {
  if (r < 0x80) return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z');
  if (r == kRuneError) return false;
  locale_t loc = Utf8Locale();
  if (loc == static_cast<locale_t>(0)) return true;
  return iswalpha_l(static_cast<wint_t>(r), loc) != 0;
}

std::string_view TrimLeftSpace(std::string_view s) {
  while (!s.empty()) {
    auto [r, n] = DecodeRune(s);
    if (!IsSpace(r)) break;
    s.remove_prefix(n);
  }
  return s;
}

std::string_view TrimRightSpace(std::string_view s) {
  while (!s.empty()) {
    // Find the start of the last rune.
    size_t start = s.size() - 1;
    while (start > 0 && s.size() - start < 4 &&
           (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
      --start;
    }
    auto [r, n] = DecodeRune(s.substr(start));
    if (start + n != s.size()) {
      // Not a complete rune at the end: a stray byte, never a space.
      break;
    }
    if (!IsSpace(r)) break;
    s.remove_suffix(n);
  }
  return s;
}

std::string_view TrimSpace(std::string_view s) { return TrimRightSpace(TrimLeftSpace(s)); }

std::string Quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  while (!s.empty()) {
    auto [r, n] = DecodeRune(s);
    if (r == kRuneError && n == 1) {
      auto b = static_cast<unsigned char>(s[0]);
      out += "\\x";
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
      s.remove_prefix(1);
      continue;
    }
    std::string_view raw = s.substr(0, n);
    s.remove_prefix(n);
    if (r == '"' || r == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(r));
      continue;
    }
    bool printable;
    if (r < 0x80) {
      printable = r >= 0x20 && r < 0x7F;
    } else {
      locale_t loc = Utf8Locale();
      // Go's IsPrint: no spaces but U+0020 (so NBSP is escaped), no soft hyphen.
      printable = r != 0xAD && !IsSpace(r) &&
                  (loc == static_cast<locale_t>(0) || iswprint_l(static_cast<wint_t>(r), loc) != 0);
    }
    if (printable) {
      out.append(raw);
      continue;
    }
    switch (r) {
      case '\a':
        out += "\\a";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\v':
        out += "\\v";
        break;
      default:
        if (r < ' ' || r == 0x7F) {
          out += "\\x";
          out.push_back(kHex[r >> 4]);
          out.push_back(kHex[r & 15]);
        } else if (r > 0xFFFF) {
          out += "\\U";
          for (int shift = 28; shift >= 0; shift -= 4) out.push_back(kHex[(r >> shift) & 15]);
        } else {
          out += "\\u";
          for (int shift = 12; shift >= 0; shift -= 4) out.push_back(kHex[(r >> shift) & 15]);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string AsciiUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::optional<bool> ParseBool(std::string_view s) {
  if (s == "1" || s == "t" || s == "T" || s == "TRUE" || s == "true" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "FALSE" || s == "false" || s == "False") {
    return false;
  }
  return std::nullopt;
}

std::optional<uint64_t> ParseUint(std::string_view s, int base, int bits, std::string* error) {
  if (s.empty()) {
    *error = InvalidSyntax("ParseUint", s, "invalid syntax");
    return std::nullopt;
  }
  const uint64_t max = bits >= 64 ? UINT64_MAX : ((uint64_t{1} << bits) - 1);
  uint64_t n = 0;
  bool overflow = false;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'z') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'Z') {
      d = c - 'A' + 10;
    } else {
      d = 99;
    }
    if (d >= base) {
      *error = InvalidSyntax("ParseUint", s, "invalid syntax");
      return std::nullopt;
    }
    if (overflow) continue;
    if (n > (max - static_cast<uint64_t>(d)) / static_cast<uint64_t>(base)) {
      overflow = true;
      continue;
    }
    n = n * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  if (overflow) {
    *error = InvalidSyntax("ParseUint", s, "value out of range");
    return std::nullopt;
  }
  return n;
}

std::optional<int64_t> ParseInt(std::string_view s, int bits, std::string* error) {
  if (s.empty()) {
    *error = InvalidSyntax("ParseInt", s, "invalid syntax");
    return std::nullopt;
  }
  std::string_view digits = s;
  bool neg = false;
  if (digits[0] == '+' || digits[0] == '-') {
    neg = digits[0] == '-';
    digits.remove_prefix(1);
  }
  std::string sub_error;
  std::optional<uint64_t> u = ParseUint(digits, 10, 64, &sub_error);
  if (!u.has_value()) {
    bool range = sub_error.find("out of range") != std::string::npos;
    *error = InvalidSyntax("ParseInt", s, range ? "value out of range" : "invalid syntax");
    return std::nullopt;
  }
  const uint64_t cutoff = uint64_t{1} << (bits - 1);
  if ((!neg && *u >= cutoff) || (neg && *u > cutoff)) {
    *error = InvalidSyntax("ParseInt", s, "value out of range");
    return std::nullopt;
  }
  return neg ? static_cast<int64_t>(0 - *u) : static_cast<int64_t>(*u);
}

std::optional<int64_t> ParseDuration(std::string_view orig, std::string* error) {
  const std::string invalid = "time: invalid duration " + Quote(orig);
  std::string_view s = orig;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return 0;
  if (s.empty()) {
    *error = invalid;
    return std::nullopt;
  }
  constexpr uint64_t kLimit = uint64_t{1} << 63;
  uint64_t d = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || (s[0] >= '0' && s[0] <= '9'))) {
      *error = invalid;
      return std::nullopt;
    }
    uint64_t v = 0;
    size_t i = 0;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      if (v > kLimit / 10) {
        *error = invalid;
        return std::nullopt;
      }
      v = v * 10 + static_cast<uint64_t>(s[i] - '0');
      if (v > kLimit) {
        *error = invalid;
        return std::nullopt;
      }
    }
    bool pre = i > 0;
    s.remove_prefix(i);
    uint64_t f = 0;
    double scale = 1;
    bool post = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      size_t j = 0;
      bool overflow = false;
      for (; j < s.size() && s[j] >= '0' && s[j] <= '9'; ++j) {
        if (overflow) continue;
        if (f > (kLimit - 1) / 10) {
          overflow = true;
          continue;
        }
        uint64_t y = f * 10 + static_cast<uint64_t>(s[j] - '0');
        if (y > kLimit) {
          overflow = true;
          continue;
        }
        f = y;
        scale *= 10;
      }
      post = j > 0;
      s.remove_prefix(j);
    }
    if (!pre && !post) {
      *error = invalid;
      return std::nullopt;
    }
    size_t k = 0;
    for (; k < s.size() && s[k] != '.' && !(s[k] >= '0' && s[k] <= '9'); ++k) {
    }
    if (k == 0) {
      *error = "time: missing unit in duration " + Quote(orig);
      return std::nullopt;
    }
    std::string_view u = s.substr(0, k);
    s.remove_prefix(k);
    uint64_t unit;
    if (u == "ns") {
      unit = 1;
    } else if (u == "us" || u == "\u00b5s" || u == "\u03bcs") {
      unit = 1000;
    } else if (u == "ms") {
      unit = 1000000;
    } else if (u == "s") {
      unit = 1000000000;
    } else if (u == "m") {
      unit = 60ull * 1000000000;
    } else if (u == "h") {
      unit = 3600ull * 1000000000;
    } else {
      *error = "time: unknown unit " + Quote(u) + " in duration " + Quote(orig);
      return std::nullopt;
    }
    if (v > kLimit / unit) {
      *error = invalid;
      return std::nullopt;
    }
    v *= unit;
    if (f > 0) {
      v += static_cast<uint64_t>(static_cast<double>(f) * (static_cast<double>(unit) / scale));
      if (v > kLimit) {
        *error = invalid;
        return std::nullopt;
      }
    }
    d += v;
    if (d > kLimit) {
      *error = invalid;
      return std::nullopt;
    }
  }
  if (neg) return static_cast<int64_t>(0 - d);
  if (d > kLimit - 1) {
    *error = invalid;
    return std::nullopt;
  }
  return static_cast<int64_t>(d);
}

std::optional<int64_t> RamInBytes(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == 0) return std::nullopt;
  if (i < s.size() && s[i] == '.') {
    size_t j = i + 1;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    if (j == i + 1) return std::nullopt;
    i = j;
  }
  std::string number(s.substr(0, i));
  std::string_view rest = s.substr(i);
  if (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
  double mult = 1;
  if (!rest.empty()) {
    switch (rest[0]) {
      case 'k':
      case 'K':
        mult = 1024.0;
        break;
      case 'm':
      case 'M':
        mult = 1024.0 * 1024;
        break;
      case 'g':
      case 'G':
        mult = 1024.0 * 1024 * 1024;
        break;
      case 't':
      case 'T':
        mult = 1024.0 * 1024 * 1024 * 1024;
        break;
      case 'p':
      case 'P':
        mult = 1024.0 * 1024 * 1024 * 1024 * 1024;
        break;
      default:
        break;
    }
    if (mult != 1) rest.remove_prefix(1);
  }
  if (!rest.empty() && (rest[0] == 'i' || rest[0] == 'I')) rest.remove_prefix(1);
  if (!rest.empty() && (rest[0] == 'b' || rest[0] == 'B')) rest.remove_prefix(1);
  if (!rest.empty()) return std::nullopt;
  double v = std::strtod(number.c_str(), nullptr) * mult;
  if (!std::isfinite(v) || v >= 9.2e18) return std::nullopt;
  return static_cast<int64_t>(v);
}

int Levenshtein(std::string_view a_bytes, std::string_view b_bytes) {
  // Over runes, like github.com/agext/levenshtein.
  auto runes = [](std::string_view s) {
    std::vector<char32_t> out;
    while (!s.empty()) {
      auto [r, n] = DecodeRune(s);
      out.push_back(r);
      s.remove_prefix(n);
    }
    return out;
  };
  const std::vector<char32_t> a = runes(a_bytes), b = runes(b_bytes);
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string ToUpper(std::string_view s) {
  std::string out;
  locale_t loc = Utf8Locale();
  while (!s.empty()) {
    auto [r, n] = DecodeRune(s);
    if (r < 0x80) {
      out.push_back(static_cast<char>(r >= 'a' && r <= 'z' ? r - 'a' + 'A' : r));
    } else if ((r == kRuneError && n == 1) || loc == static_cast<locale_t>(0)) {
      out.append(s.substr(0, n));
    } else {
      AppendRune(&out, static_cast<char32_t>(towupper_l(static_cast<wint_t>(r), loc)));
    }
    s.remove_prefix(n);
  }
  return out;
}

namespace {
absl::Status CsvError(std::string_view msg) { return absl::InvalidArgumentError(ToAbsl(msg)); }
}  // namespace

absl::StatusOr<std::vector<std::string>> ReadCsvRecord(std::string_view s) {
  std::vector<std::string> fields;
  size_t i = 0;
  while (true) {
    std::string field;
    if (i < s.size() && s[i] == '"') {
      ++i;
      while (true) {
        if (i >= s.size()) return CsvError("extraneous or missing \" in quoted-field");
        if (s[i] == '"') {
          if (i + 1 < s.size() && s[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field.push_back(s[i++]);
      }
      if (i < s.size() && s[i] != ',') return CsvError("extraneous or missing \" in quoted-field");
    } else {
      while (i < s.size() && s[i] != ',') {
        if (s[i] == '"') return CsvError("bare \" in non-quoted-field");
        field.push_back(s[i++]);
      }
    }
    fields.push_back(std::move(field));
    if (i >= s.size()) return fields;
    ++i;  // ','
  }
}

}  // namespace kiln::frontends::dockerfile::go
