#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "base/status.h"
#include "base/strings.h"
#include "nlohmann/json.hpp"
#include "registry/operations.h"

namespace kiln::registry::internal {

namespace {

constexpr char kManifestAccept[] =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json";

std::string ManifestPath(const std::string& repo, const std::string& ref) {
  return StrCat("/v2/", repo, "/manifests/", ref);
}

// "application/json; charset=utf-8" -> "application/json".
std::string BareMediaType(std::string_view content_type) {
  std::string_view v =
      content_type.substr(0, std::min(content_type.find(';'), content_type.size()));
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(ToAbsl(v)));
}

}  // namespace

std::string ManifestMediaType(std::string_view declared, std::string_view bytes) {
  std::string bare = BareMediaType(declared);
  if (!bare.empty() && bare != "application/json" && bare != "text/plain" &&
      bare != "application/octet-stream") {
    return bare;
  }
  nlohmann::json doc = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return bare;
  if (auto it = doc.find("mediaType"); it != doc.end() && it->is_string()) {
    return it->get<std::string>();
  }
  if (doc.contains("manifests")) return oci::kMediaTypeImageIndex;
  if (doc.contains("config") || doc.contains("layers")) return oci::kMediaTypeImageManifest;
  return bare;
}

absl::StatusOr<FetchedManifest> GetManifest(Session& s, const std::string& repo,
                                            const std::string& tag_or_digest,
                                            const std::optional<Digest>& expected) {
  const std::string url = s.Url(ManifestPath(repo, tag_or_digest));
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, s.Call(
                                               [&](HttpRequest& r) {
                                                 r.method = "GET";
                                                 r.url = url;
                                                 r.headers.Set("Accept", kManifestAccept);
                                                 r.max_body_bytes = kMaxManifestBytes;
                                               },
                                               {200}));
  const std::string where = DescribeRequest("GET", url);
  if (resp.body_truncated) {
    return absl::ResourceExhaustedError(
        StrCat(where, ": manifest larger than ", kMaxManifestBytes, " bytes"));
  }
  FetchedManifest out;
  out.digest = Digest::Sha256Of(resp.body);
  if (expected && *expected != out.digest) {
    return absl::DataLossError(
        StrCat(where, ": content has digest ", out.digest.str(), ", expected ", expected->str()));
  }
  out.media_type = ManifestMediaType(resp.headers.Get("Content-Type").value_or(""), resp.body);
  out.bytes = std::move(resp.body);
  return out;
}

absl::StatusOr<oci::Descriptor> HeadManifest(Session& s, const std::string& repo,
                                             const std::string& tag_or_digest) {
  const std::string url = s.Url(ManifestPath(repo, tag_or_digest));
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, s.Call(
                                               [&](HttpRequest& r) {
                                                 r.method = "HEAD";
                                                 r.url = url;
                                                 r.headers.Set("Accept", kManifestAccept);
                                               },
                                               {200}));
  auto digest_header = resp.headers.Get("Docker-Content-Digest");
  int64_t size = -1;
  if (auto len = resp.headers.Get("Content-Length")) {
    if (!absl::SimpleAtoi(*len, &size)) size = -1;
  }
  absl::StatusOr<Digest> digest =
      digest_header ? Digest::Parse(*digest_header) : absl::NotFoundError("");
  std::string content_type = BareMediaType(resp.headers.Get("Content-Type").value_or(""));
  if (!digest.ok() || size < 0 || content_type.empty() || content_type == "application/json") {
    // Not enough in the headers: read the document itself.
    std::optional<Digest> expected;
    if (auto d = Digest::Parse(tag_or_digest); d.ok()) expected = *d;
    KILN_ASSIGN_OR_RETURN(FetchedManifest m, GetManifest(s, repo, tag_or_digest, expected));
    oci::Descriptor desc;
    desc.digest = m.digest;
    desc.size = static_cast<int64_t>(m.bytes.size());
    desc.media_type = m.media_type;
    return desc;
  }
  oci::Descriptor desc;
  desc.digest = *digest;
  desc.size = size;
  desc.media_type = content_type;
  return desc;
}

absl::Status PutManifest(Session& s, const std::string& repo, const std::string& tag_or_digest,
                         const ManifestToPush& manifest) {
  const std::string url = s.Url(ManifestPath(repo, tag_or_digest));
  const std::string media_type =
      manifest.media_type.empty() ? ManifestMediaType("", manifest.bytes) : manifest.media_type;
  StringViewBody body(manifest.bytes);
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, s.Call(
                                               [&](HttpRequest& r) {
                                                 r.method = "PUT";
                                                 r.url = url;
                                                 body.Rewind().IgnoreError();
                                                 r.body = &body;
                                                 r.headers.Set("Content-Type", media_type);
                                                 r.max_body_bytes = 64 << 10;
                                               },
                                               {200, 201}));
  const Digest ours = Digest::Sha256Of(manifest.bytes);
  if (auto theirs = resp.headers.Get("Docker-Content-Digest")) {
    if (*theirs != ours.str()) {
      return absl::DataLossError(StrCat(DescribeRequest("PUT", url), ": registry stored digest ",
                                        Quote(std::string(absl::StripAsciiWhitespace(*theirs))),
                                        ", the manifest's is ", ours.str()));
    }
  }
  return absl::OkStatus();
}

}  // namespace kiln::registry::internal
