// Byte-level compatibility with the documents BuildKit's Go code writes.
//
// BuildKit marshals manifests, configs and indexes with Go's encoding/json, so the bytes (and
// therefore the digests) depend on Go's habits: `<`, `>`, `&`, U+2028 and U+2029 escaped inside
// strings, MarshalIndent's two-space layout, and time.Time printed as RFC 3339 with nanoseconds
// whose trailing zeros are dropped and "Z" for a zero offset.  These helpers reproduce them over
// nlohmann::ordered_json (which keeps the key order a document was built or parsed with).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kiln::engine {

using OrderedJson = nlohmann::ordered_json;

// json.Marshal: compact.
std::string GoJsonCompact(const OrderedJson& j);
// json.MarshalIndent(v, "", "  ").
std::string GoJsonIndent(const OrderedJson& j);

// A time.Time as Go keeps it through a JSON round trip: the instant plus the zone offset it was
// written with.
struct GoTime {
  int64_t seconds = 0;  // Unix seconds
  int32_t nanos = 0;    // 0..999,999,999
  int32_t offset_seconds = 0;

  static GoTime FromUnix(int64_t seconds, int32_t nanos = 0) { return {seconds, nanos, 0}; }
  // Compares instants only (Go's Before/After).
  bool After(const GoTime& o) const {
    return seconds != o.seconds ? seconds > o.seconds : nanos > o.nanos;
  }
};

// Parses RFC 3339 ("2024-05-01T12:00:00.5+02:00", "...Z"); InvalidArgument otherwise.
absl::StatusOr<GoTime> ParseGoTime(std::string_view text);
// time.Time.MarshalJSON's text (RFC3339Nano), without the quotes.
std::string FormatGoTime(const GoTime& t);
// RFC 3339 with whole seconds in UTC (Go's t.UTC().Format(time.RFC3339)).
std::string FormatRfc3339Utc(int64_t unix_seconds);

}  // namespace kiln::engine
