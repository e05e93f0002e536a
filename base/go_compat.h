// Exact ports of the small Go standard-library functions whose results Kiln must reproduce
// byte for byte: path.Clean/Join/Dir/IsAbs (BuildKit bakes cleaned paths into op bytes, cache
// keys and pattern matching) and utf8.DecodeRuneInString (the parsers and matchers BuildKit
// uses walk strings rune by rune, with Go's handling of invalid UTF-8).
//
// These are ports of Go's behaviour, not general-purpose path or text utilities: "" cleans to
// ".", ".." above the root is dropped, every path is '/'-separated whatever the host.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace kiln {

// Go's path.Clean: collapses "//", removes "." components, resolves ".." lexically ("/.." is
// "/"), drops a trailing '/'; "" becomes ".".
std::string CleanPath(std::string_view path);

// Go's path.Join: the non-empty elements joined by '/', cleaned; "" when all are empty.
std::string PathJoin(std::initializer_list<std::string_view> elems);

// Go's path.Dir: everything but the last element, cleaned ("a" -> ".", "/a" -> "/").
std::string PathDir(std::string_view path);

// Go's path.IsAbs.
inline bool PathIsAbs(std::string_view path) { return !path.empty() && path[0] == '/'; }

// Go's utf8.RuneError (U+FFFD).
inline constexpr char32_t kRuneError = 0xFFFD;

// Go's utf8.DecodeRuneInString: {rune, width in bytes} of the first rune of `s`.  An invalid
// or truncated sequence (overlong, surrogate, above U+10FFFF) decodes as {kRuneError, 1}, an
// empty string as {kRuneError, 0}; a correctly encoded U+FFFD is {kRuneError, 3}.
std::pair<char32_t, size_t> DecodeRune(std::string_view s);

}  // namespace kiln
