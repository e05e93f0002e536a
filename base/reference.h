// Docker image references ("busybox", "ghcr.io/o/r:1.2@sha256:...") in their normalized form.
//
// Parsing follows docker/distribution's reference package as BuildKit v0.11 vendors it
// (ParseNormalizedNamed): a name without a registry domain gets "docker.io", a single-component
// name on docker.io gets the "library/" prefix, "index.docker.io" becomes "docker.io", the
// repository path must be lowercase, and a bare 64-hex identifier is refused.  Nothing defaults
// the tag here; call WithDefaultTag() (Go's TagNameOnly) to get ":latest" on a name-only
// reference.  String() prints the same text Go's Named.String() does, which is what ends up in
// LLB source identifiers (docker-image://<String()>), so it must not change.
//
// Digests: sha256 and sha512 are accepted (see base/digest.h); go-digest also knows sha384, which
// no registry uses, so it is refused with the same InvalidArgument as any bad digest.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/digest.h"

namespace kiln {

struct ImageReference {
  std::string domain;  // "docker.io", "localhost:5000"; empty only for references parsed raw
  std::string path;    // "library/busybox"
  std::string tag;     // empty when the reference has none
  std::optional<Digest> digest;

  // "domain/path" (or just path when domain is empty).
  std::string Name() const;
  // Name()[":" tag]["@" digest], exactly as Go prints a reference.
  std::string String() const;
  // The short form Docker shows: "busybox", "user/app:1" (docker.io and library/ dropped).
  std::string FamiliarString() const;

  bool NameOnly() const { return tag.empty() && !digest.has_value(); }
  // Go's reference.TagNameOnly: adds ":latest" when there is neither tag nor digest.
  ImageReference WithDefaultTag() const;
  // Go's reference.WithDigest: keeps the tag, sets the digest.
  ImageReference WithDigest(const Digest& d) const;

  bool operator==(const ImageReference&) const = default;
};

// Parses and normalizes a reference as ParseNormalizedNamed does.  Errors are InvalidArgument and
// carry Go's wording ("invalid reference format", "invalid reference format: repository name
// must be lowercase", ...) after a quoted copy of the input.
absl::StatusOr<ImageReference> ParseNormalizedReference(std::string_view text);

// ParseNormalizedReference + WithDefaultTag, except that a reference with both a tag and a digest
// keeps only the digest (Go's reference.ParseDockerRef; what registries are asked for).
absl::StatusOr<ImageReference> ParseDockerRef(std::string_view text);

}  // namespace kiln
