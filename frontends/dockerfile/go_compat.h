// Small re-implementations of Go standard-library behaviour that BuildKit's Dockerfile
// frontend relies on (UTF-8 encoding, unicode.IsSpace, strings.TrimSpace, strconv.Quote,
// strconv.ParseBool/ParseUint/ParseInt, time.ParseDuration), so our parser agrees with it on
// edge cases.  Internal to frontends/dockerfile.  UTF-8 decoding (DecodeRune, kRuneError) and
// Go's path functions are base/go_compat.h's.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/go_compat.h"

namespace kiln::frontends::dockerfile::go {

// utf8.AppendRune: appends the UTF-8 encoding of `r` (kRuneError's for an invalid rune).
void AppendRune(std::string* out, char32_t r);

// unicode.IsSpace.
bool IsSpace(char32_t r);
// unicode.IsDigit / unicode.IsLetter (non-ASCII runes use the C.UTF-8 locale's tables).
bool IsDigit(char32_t r);
bool IsLetter(char32_t r);

// strings.TrimSpace / TrimLeftFunc(unicode.IsSpace) / TrimRightFunc.
std::string_view TrimSpace(std::string_view s);
std::string_view TrimLeftSpace(std::string_view s);
std::string_view TrimRightSpace(std::string_view s);

// strconv.Quote (the %q verb for strings).
std::string Quote(std::string_view s);

// strings.ToLower / ToUpper for ASCII letters (other bytes unchanged).
std::string AsciiLower(std::string_view s);
std::string AsciiUpper(std::string_view s);

// strings.ToUpper (Unicode simple case mapping from the C.UTF-8 locale).
std::string ToUpper(std::string_view s);

// strconv.ParseBool.
std::optional<bool> ParseBool(std::string_view s);

// strconv.ParseUint(s, base, bits) / ParseInt(s, 10, bits).  On failure, `*error` receives
// Go's message, e.g. `strconv.ParseInt: parsing "x": invalid syntax`.
std::optional<uint64_t> ParseUint(std::string_view s, int base, int bits, std::string* error);
std::optional<int64_t> ParseInt(std::string_view s, int bits, std::string* error);

// time.ParseDuration, in nanoseconds.  `*error` receives Go's message.
std::optional<int64_t> ParseDuration(std::string_view s, std::string* error);

// github.com/docker/go-units RAMInBytes ("64m", "1.5GiB", "1024"), binary multiples.
std::optional<int64_t> RamInBytes(std::string_view s);

// Levenshtein distance between byte strings.
int Levenshtein(std::string_view a, std::string_view b);

// encoding/csv's Reader for one line (BuildKit reads --mount specs, add-hosts and ulimits so):
// comma-separated fields, a field may be double-quoted with "" for a quote.  InvalidArgument
// with Go's wording for a bare or unterminated quote.
absl::StatusOr<std::vector<std::string>> ReadCsvRecord(std::string_view s);

}  // namespace kiln::frontends::dockerfile::go
