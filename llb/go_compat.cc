#include "llb/go_compat.h"

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>

#include <sys/random.h>

#include "base/go_compat.h"

namespace kiln::llb {

std::string GoJsonQuote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    auto [rune, len] = DecodeRune(s.substr(i));
    if (rune == kRuneError && len == 1) {
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

oci::Platform NormalizePlatform(oci::Platform p) {
  if (p.os.empty()) p.os = "linux";
  return oci::NormalizePlatform(std::move(p));
}

oci::Platform DefaultPlatform() { return llb::NormalizePlatform(oci::HostPlatform()); }

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
