#include "base/reference.h"

#include <algorithm>
#include <cctype>

#include "base/status.h"
#include "base/strings.h"

namespace kiln {
namespace {

constexpr size_t kNameTotalLengthMax = 255;
constexpr std::string_view kDefaultDomain = "docker.io";
constexpr std::string_view kLegacyDefaultDomain = "index.docker.io";
constexpr std::string_view kOfficialRepoName = "library";
constexpr std::string_view kDefaultTag = "latest";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
bool IsWordChar(char c) { return IsAlnum(c) || c == '_'; }
bool IsHexDigit(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool IsDomainComponent(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsAlnum(c) || c == '-'; });
}

// domain-component ("." domain-component)* [":" [0-9]+]
bool IsDomain(std::string_view s) {
  if (size_t colon = s.find(':'); colon != std::string_view::npos) {
    std::string_view port = s.substr(colon + 1);
    if (port.empty() ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    s = s.substr(0, colon);
  }
  while (true) {
    size_t dot = s.find('.');
    if (!IsDomainComponent(s.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    s = s.substr(dot + 1);
  }
}

// [a-z0-9]+ (separator [a-z0-9]+)* where separator is ".", "_", "__" or any run of "-" (the
// regexp's `[-]*` also allows an empty separator, i.e. adjacent alphanumeric runs).
bool IsPathComponent(std::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  size_t i = 0;
  while (i < s.size()) {
    if (IsLowerAlnum(s[i])) {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < s.size() && !IsLowerAlnum(s[i])) ++i;
    std::string_view sep = s.substr(start, i - start);
    bool dashes = std::all_of(sep.begin(), sep.end(), [](char c) { return c == '-'; });
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
  }
  return true;
}

bool IsPath(std::string_view s) {
  while (true) {
    size_t slash = s.find('/');
    if (!IsPathComponent(s.substr(0, slash))) return false;
    if (slash == std::string_view::npos) return true;
    s = s.substr(slash + 1);
  }
}

// [\w][\w.-]{0,127}
bool IsTag(std::string_view s) {
  if (s.empty() || s.size() > 128 || !IsWordChar(s.front())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsWordChar(c) || c == '.' || c == '-'; });
}

// [A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}
bool IsDigestSyntax(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view algo = s.substr(0, colon), hex = s.substr(colon + 1);
  if (hex.size() < 32 || !std::all_of(hex.begin(), hex.end(), IsHexDigit)) return false;
  bool need_alpha = true;
  for (char c : algo) {
    if (need_alpha) {
      if (!std::isalpha(static_cast<unsigned char>(c))) return false;
      need_alpha = false;
    } else if (c == '-' || c == '_' || c == '+' || c == '.') {
      need_alpha = true;
    } else if (!IsAlnum(c)) {
      return false;
    }
  }
  return !need_alpha;
}

absl::Status RefError(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(StrCat("parse image reference ", Quote(text), ": ", why));
}

// Go's reference.Parse: the full grammar, no normalization.
absl::StatusOr<ImageReference> ParseRaw(std::string_view original, std::string_view s) {
  ImageReference ref;
  std::string_view rest = s;
  std::string_view digest_text;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    digest_text = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (!IsDigestSyntax(digest_text)) return RefError(original, "invalid reference format");
  }
  size_t colon = rest.rfind(':');
  size_t slash = rest.rfind('/');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!IsTag(tag)) return RefError(original, "invalid reference format");
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return RefError(original, "repository name must have at least one component");
  size_t first_slash = rest.find('/');
  if (first_slash != std::string_view::npos && IsDomain(rest.substr(0, first_slash)) &&
      IsPath(rest.substr(first_slash + 1))) {
    ref.domain = std::string(rest.substr(0, first_slash));
    ref.path = std::string(rest.substr(first_slash + 1));
  } else if (IsPath(rest)) {
    ref.path = std::string(rest);
  } else {
    return RefError(original, "invalid reference format");
  }
  if (rest.size() > kNameTotalLengthMax) {
    return RefError(original, "repository name must not be more than 255 characters");
  }
  if (!digest_text.empty()) {
    auto d = Digest::Parse(digest_text);
    if (!d.ok()) return RefError(original, "invalid digest format");
    ref.digest = *d;
  }
  return ref;
}

bool IsHexIdentifier(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string ImageReference::Name() const {
  return domain.empty() ? path : StrCat(domain, "/", path);
}

std::string ImageReference::String() const {
  std::string out = Name();
  if (!tag.empty()) StrAppend(&out, ":", tag);
  if (digest) StrAppend(&out, "@", digest->str());
  return out;
}

std::string ImageReference::FamiliarString() const {
  ImageReference f = *this;
  if (f.domain == kDefaultDomain) {
    f.domain.clear();
    std::string_view p = f.path;
    if (p.starts_with(StrCat(kOfficialRepoName, "/")) &&
        p.find('/', kOfficialRepoName.size() + 1) == std::string_view::npos) {
      f.path = std::string(p.substr(kOfficialRepoName.size() + 1));
    }
  }
  return f.String();
}

ImageReference ImageReference::WithDefaultTag() const {
  ImageReference r = *this;
  if (r.NameOnly()) r.tag = std::string(kDefaultTag);
  return r;
}

ImageReference ImageReference::WithDigest(const Digest& d) const {
  ImageReference r = *this;
  r.digest = d;
  return r;
}

absl::StatusOr<ImageReference> ParseNormalizedReference(std::string_view text) {
  if (IsHexIdentifier(text)) {
    return RefError(text, "invalid repository name, cannot specify 64-byte hexadecimal strings");
  }
  // splitDockerDomain: the first component is a registry only if it looks like a host.
  std::string domain, remainder;
  size_t slash = text.find('/');
  std::string_view first = text.substr(0, slash);
  if (slash == std::string_view::npos ||
      (first.find_first_of(".:") == std::string_view::npos && first != "localhost")) {
    domain = std::string(kDefaultDomain);
    remainder = std::string(text);
  } else {
    domain = std::string(first);
    remainder = std::string(text.substr(slash + 1));
  }
  if (domain == kLegacyDefaultDomain) domain = std::string(kDefaultDomain);
  if (domain == kDefaultDomain && remainder.find('/') == std::string::npos) {
    remainder = StrCat(kOfficialRepoName, "/", remainder);
  }
  std::string_view remote_name = remainder;
  remote_name = remote_name.substr(0, remote_name.find(':'));
  if (ToLower(remote_name) != remote_name) {
    return RefError(text, "invalid reference format: repository name must be lowercase");
  }
  return ParseRaw(text, StrCat(domain, "/", remainder));
}

absl::StatusOr<ImageReference> ParseDockerRef(std::string_view text) {
  KILN_ASSIGN_OR_RETURN(ImageReference ref, ParseNormalizedReference(text));
  if (!ref.tag.empty() && ref.digest) ref.tag.clear();
  return ref.WithDefaultTag();
}

}  // namespace kiln
