#include "frontends/dockerfile/source_location.h"

#include <charconv>
#include <vector>

#include "absl/strings/cord.h"
#include "base/strings.h"

namespace kiln::frontends::dockerfile {
namespace {

constexpr char kPayloadUrl[] = "type.kiln.dev/kiln.frontends.dockerfile.SourceRange";

// "<start_line>:<start_col>:<end_line>:<end_col>:<file>"; the file goes last so it may hold ':'.
std::string Encode(const SourceRange& r) {
  return StrCat(r.start_line, ":", r.start_col, ":", r.end_line, ":", r.end_col, ":", r.file);
}

std::optional<SourceRange> Decode(std::string_view s) {
  int values[4];
  for (int& v : values) {
    size_t colon = s.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + colon, v);
    if (ec != std::errc() || ptr != s.data() + colon) return std::nullopt;
    s.remove_prefix(colon + 1);
  }
  return SourceRange{std::string(s), values[0], values[1], values[2], values[3]};
}

}  // namespace

std::string SourceRange::ToString() const {
  if (end_line > start_line) return StrCat(file, ":", start_line, "-", end_line);
  return StrCat(file, ":", start_line);
}

absl::Status LocatedError(const SourceRange& range, std::string_view message) {
  return WithLocation(absl::InvalidArgumentError(ToAbsl(message)), range);
}

absl::Status WithLocation(const absl::Status& status, const SourceRange& range) {
  if (status.ok() || status.GetPayload(kPayloadUrl).has_value()) return status;
  absl::Status out(status.code(), StrCat(range.ToString(), ": ", FromAbsl(status.message())));
  status.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  out.SetPayload(kPayloadUrl, absl::Cord(Encode(range)));
  return out;
}

std::optional<SourceRange> GetSourceRange(const absl::Status& status) {
  auto payload = status.GetPayload(kPayloadUrl);
  if (!payload.has_value()) return std::nullopt;
  return Decode(std::string(*payload));
}

}  // namespace kiln::frontends::dockerfile
