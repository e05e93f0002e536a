#include "llb/go_compat.h"

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>

#include <sys/random.h>

namespace kiln::llb {

std::string GoPathClean(std::string_view path) {
  if (path.empty()) return ".";
  const bool rooted = path[0] == '/';
  const size_t n = path.size();
  std::string out;
  out.reserve(n);
  size_t r = 0, dotdot = 0;
  if (rooted) {
    out.push_back('/');
    r = dotdot = 1;
  }
  while (r < n) {
    if (path[r] == '/') {
      ++r;
    } else if (path[r] == '.' && (r + 1 == n || path[r + 1] == '/')) {
      ++r;
    } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == n || path[r + 2] == '/')) {
      r += 2;
      if (out.size() > dotdot) {
        // Back up over the last element and the slash before it (Go checks the byte it has
        // just dropped, so the separating slash goes too).
        size_t w = out.size() - 1;
        while (w > dotdot && out[w] != '/') --w;
        out.resize(w);
      } else if (!rooted) {
        if (!out.empty()) out.push_back('/');
        out += "..";
        dotdot = out.size();
      }
    } else {
      if ((rooted && out.size() != 1) || (!rooted && !out.empty())) out.push_back('/');
      for (; r < n && path[r] != '/'; ++r) out.push_back(path[r]);
    }
  }
  if (out.empty()) return ".";
  return out;
}

std::string GoPathJoin(std::initializer_list<std::string_view> elems) {
  std::string joined;
  bool any = false;
  for (std::string_view e : elems) {
    if (e.empty()) continue;
    if (any) joined.push_back('/');
    joined.append(e);
    any = true;
  }
  if (!any) return "";
  return GoPathClean(joined);
}

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when it is invalid (Go's DecodeRune rules:
// no overlongs, no surrogates, nothing above U+10FFFF).
size_t Utf8SequenceLength(std::string_view s, size_t i, uint32_t* rune) {
  auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t b0 = byte(i);
  size_t len;
  uint32_t r;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 < 0x80) {
    *rune = b0;
    return 1;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    r = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    r = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    r = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    uint8_t b = byte(i + k);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
    r = (r << 6) | (b & 0x3F);
  }
  *rune = r;
  return len;
}

}  // namespace

std::string GoJsonQuote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    uint32_t rune = 0;
    size_t len = Utf8SequenceLength(s, i, &rune);
    if (len == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (len == 1) {
      char c = s[i];
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
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
        case '<':
        case '>':
        case '&':
          out += "\\u00";
          out.push_back(kHex[static_cast<uint8_t>(c) >> 4]);
          out.push_back(kHex[c & 0xF]);
          break;
        default:
          if (static_cast<uint8_t>(c) < 0x20) {
            out += "\\u00";
            out.push_back(kHex[static_cast<uint8_t>(c) >> 4]);
            out.push_back(kHex[c & 0xF]);
          } else {
            out.push_back(c);
          }
      }
    } else if (rune == 0x2028 || rune == 0x2029) {
      out += rune == 0x2028 ? "\\u2028" : "\\u2029";
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  out.push_back('"');
  return out;
}

std::string GoJsonStringArray(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(',');
    out += GoJsonQuote(items[i]);
  }
  out.push_back(']');
  return out;
}

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

oci::Platform NormalizePlatform(oci::Platform p) {
  p.os = p.os.empty() ? "linux" : Lower(p.os);
  if (p.os == "macos") p.os = "darwin";
  std::string arch = Lower(p.architecture), variant = Lower(p.variant);
  if (arch == "i386") {
    arch = "386";
    variant.clear();
  } else if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
    arch = "amd64";
    if (variant == "v1") variant.clear();
  } else if (arch == "aarch64" || arch == "arm64") {
    arch = "arm64";
    if (variant == "8" || variant == "v8") variant.clear();
  } else if (arch == "armhf") {
    arch = "arm";
    variant = "v7";
  } else if (arch == "armel") {
    arch = "arm";
    variant = "v6";
  } else if (arch == "arm") {
    if (variant.empty() || variant == "7") {
      variant = "v7";
    } else if (variant == "5" || variant == "6" || variant == "8") {
      variant = "v" + variant;
    }
  }
  p.architecture = arch;
  p.variant = variant;
  return p;
}

oci::Platform DefaultPlatform() { return NormalizePlatform(oci::HostPlatform()); }

std::string DefaultPathEnv(std::string_view os) {
  if (os == "windows") return "c:\\Windows\\System32;c:\\Windows";
  return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

std::string NewRandomID() {
  std::array<uint8_t, 17> bytes{};
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // getrandom cannot fail on Linux >= 3.17 once the pool is initialized; an id that is
      // merely unique enough is still better than aborting a build.
      bytes[got] = static_cast<uint8_t>(reinterpret_cast<uintptr_t>(&bytes) >> (got % 8));
      n = 1;
    }
    got += static_cast<size_t>(n);
  }
  bytes[0] |= 0x80;  // as Go does, so the base-36 text always has 26 digits
  // Big-endian base-36 conversion by repeated division.
  std::string digits;
  std::array<uint8_t, 17> num = bytes;
  auto is_zero = [&] {
    for (uint8_t b : num)
      if (b) return false;
    return true;
  };
  while (!is_zero()) {
    uint32_t rem = 0;
    for (uint8_t& b : num) {
      uint32_t cur = (rem << 8) | b;
      b = static_cast<uint8_t>(cur / 36);
      rem = cur % 36;
    }
    digits.push_back("0123456789abcdefghijklmnopqrstuvwxyz"[rem]);
  }
  std::string text(digits.rbegin(), digits.rend());
  return text.substr(1, 25);
}

}  // namespace kiln::llb
