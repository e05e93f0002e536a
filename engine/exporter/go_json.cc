#include "engine/exporter/go_json.h"

#include <cctype>
#include <ctime>

#include "absl/strings/str_replace.h"
#include "base/strings.h"

namespace kiln::engine {
namespace {

// Those characters only occur inside JSON strings, so escaping them after the dump is exact.
std::string GoEscape(const std::string& s) {
  return absl::StrReplaceAll(s, {{"<", "\\u003c"},
                                 {">", "\\u003e"},
                                 {"&", "\\u0026"},
                                 {"\xe2\x80\xa8", "\\u2028"},
                                 {"\xe2\x80\xa9", "\\u2029"}});
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  bool Digits(size_t n, int64_t* out) {
    if (pos_ + n > s_.size()) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; ++i) {
      char c = s_[pos_ + i];
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
      v = v * 10 + (c - '0');
    }
    pos_ += n;
    *out = v;
    return true;
  }
  bool Lit(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool LitAny(const char* cs, char* which) {
    if (pos_ < s_.size()) {
      for (const char* p = cs; *p; ++p) {
        if (s_[pos_] == *p) {
          *which = *p;
          ++pos_;
          return true;
        }
      }
    }
    return false;
  }
  bool AtEnd() const { return pos_ == s_.size(); }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

std::string GoJsonCompact(const OrderedJson& j) {
  return GoEscape(j.dump(-1, ' ', false, OrderedJson::error_handler_t::replace));
}

std::string GoJsonIndent(const OrderedJson& j) {
  return GoEscape(j.dump(2, ' ', false, OrderedJson::error_handler_t::replace));
}

absl::StatusOr<GoTime> ParseGoTime(std::string_view text) {
  Scanner sc(text);
  int64_t y, mo, d, h, mi, s;
  auto bad = [&] {
    return absl::InvalidArgumentError(StrCat("invalid RFC 3339 time `", text, "`"));
  };
  char sep;
  if (!sc.Digits(4, &y) || !sc.Lit('-') || !sc.Digits(2, &mo) || !sc.Lit('-') ||
      !sc.Digits(2, &d) || !sc.LitAny("Tt", &sep) || !sc.Digits(2, &h) || !sc.Lit(':') ||
      !sc.Digits(2, &mi) || !sc.Lit(':') || !sc.Digits(2, &s)) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return bad();
  GoTime t;
  if (sc.Lit('.')) {
    int64_t digit;
    int n = 0;
    int64_t frac = 0;
    while (sc.Digits(1, &digit)) {
      if (n < 9) frac = frac * 10 + digit;
      ++n;
    }
    if (n == 0) return bad();
    for (int i = n; i < 9; ++i) frac *= 10;
    t.nanos = static_cast<int32_t>(frac);
  }
  char zone;
  if (sc.LitAny("Zz", &zone)) {
    t.offset_seconds = 0;
  } else if (sc.LitAny("+-", &zone)) {
    int64_t oh, om;
    if (!sc.Digits(2, &oh) || !sc.Lit(':') || !sc.Digits(2, &om) || oh > 23 || om > 59) {
      return bad();
    }
    t.offset_seconds = static_cast<int32_t>((oh * 3600 + om * 60) * (zone == '-' ? -1 : 1));
  } else {
    return bad();
  }
  if (!sc.AtEnd()) return bad();
  int64_t local = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
                  h * 3600 + mi * 60 + s;
  t.seconds = local - t.offset_seconds;
  return t;
}

std::string FormatGoTime(const GoTime& t) {
  int64_t local = t.seconds + t.offset_seconds;
  int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
  int64_t rem = local - days * 86400;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02lld:%02lld:%02lld",
                static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600),
                static_cast<long long>(rem / 60 % 60), static_cast<long long>(rem % 60));
  std::string out = buf;
  if (t.nanos != 0) {
    std::snprintf(buf, sizeof(buf), ".%09d", t.nanos);
    std::string frac = buf;
    while (frac.back() == '0') frac.pop_back();
    out += frac;
  }
  if (t.offset_seconds == 0) {
    out += "Z";
  } else {
    int32_t off = t.offset_seconds;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    std::snprintf(buf, sizeof(buf), "%c%02d:%02d", sign, off / 3600, off / 60 % 60);
    out += buf;
  }
  return out;
}

std::string FormatRfc3339Utc(int64_t unix_seconds) {
  return FormatGoTime(GoTime::FromUnix(unix_seconds));
}

}  // namespace kiln::engine
