#include "tools/kilnctl/image_resolver.h"

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "base/reference.h"
#include "base/status.h"
#include "base/strings.h"
#include "llb/go_compat.h"

namespace kiln::tools::kilnctl {
namespace {

// The lookup key: normalized, default tag, no digest.
absl::StatusOr<std::pair<std::string, std::optional<Digest>>> Key(const std::string& ref) {
  KILN_ASSIGN_OR_RETURN(ImageReference r, ParseNormalizedReference(ref));
  std::optional<Digest> digest = r.digest;
  r.digest.reset();
  return std::make_pair(r.WithDefaultTag().String(), digest);
}

}  // namespace

absl::Status StaticImageResolver::AddFromSpec(const std::string& spec) {
  size_t eq = spec.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
    return absl::InvalidArgumentError(
        StrCat("--image-config ", Quote(spec), ": expected REF=FILE, e.g. busybox=busybox.json"));
  }
  const std::string file = spec.substr(eq + 1);
  absl::StatusOr<std::string> data = ReadFileToString(file);
  if (!data.ok()) return Annotate(data.status(), StrCat("--image-config ", Quote(spec)));
  return Add(spec.substr(0, eq), *std::move(data));
}

absl::Status StaticImageResolver::Add(const std::string& ref, std::string config_json) {
  absl::StatusOr<std::pair<std::string, std::optional<Digest>>> key = Key(ref);
  if (!key.ok()) return Annotate(key.status(), "image config reference");
  if (absl::StatusOr<oci::Image> img = oci::DecodeImage(config_json); !img.ok()) {
    return Annotate(img.status(), StrCat("image config for ", Quote(ref)));
  }
  entries_[key->first] = Entry{key->second, std::move(config_json)};
  return absl::OkStatus();
}

absl::StatusOr<llb::ResolvedImage> StaticImageResolver::Resolve(
    const std::string& ref, const std::optional<oci::Platform>& platform, llb::ResolveMode mode) {
  KILN_ASSIGN_OR_RETURN(auto key, Key(ref));
  auto it = entries_.find(key.first);
  if (it == entries_.end()) return absl::NotFoundError(StrCat(ref, ": no --image-config given"));
  llb::ResolvedImage out;
  out.ref = ref;
  out.config_json = it->second.config_json;
  // A digest in the request is what the registry would confirm; else the one given with
  // --image-config.
  if (key.second) {
    out.digest = *key.second;
  } else if (it->second.digest) {
    out.digest = *it->second.digest;
  }
  return out;
}

absl::StatusOr<llb::ResolvedImage> SyntheticImageResolver::Resolve(
    const std::string& ref, const std::optional<oci::Platform>& platform, llb::ResolveMode mode) {
  const oci::Platform p = platform ? *platform : llb::DefaultPlatform();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (noted_.insert(ref).second && note_) {
      note_(StrCat("no image config for ", ref,
                   " (give one with --image-config REF=FILE): using a "
                   "synthetic ",
                   oci::FormatPlatform(p),
                   " config with only PATH set; the reference is not pinned to a digest"));
    }
  }
  llb::ResolvedImage out;
  out.ref = ref;
  std::string variant =
      p.variant.empty() ? "" : StrCat(",\"variant\":", llb::GoJsonQuote(p.variant));
  out.config_json =
      StrCat("{\"architecture\":", llb::GoJsonQuote(p.architecture),
             ",\"os\":", llb::GoJsonQuote(p.os), variant, ",\"config\":{\"Env\":[",
             llb::GoJsonQuote(StrCat("PATH=", llb::DefaultPathEnv(p.os))),
             "]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"",
             Digest::Sha256Of(StrCat("kilnctl-synthetic-layer:", ref)).str(), "\"]}}");
  return out;
}

absl::StatusOr<llb::ResolvedImage> FallbackImageResolver::Resolve(
    const std::string& ref, const std::optional<oci::Platform>& platform, llb::ResolveMode mode) {
  absl::Status last = absl::NotFoundError(StrCat(ref, ": no image resolver"));
  for (ImageResolver* r : chain_) {
    absl::StatusOr<llb::ResolvedImage> res = r->Resolve(ref, platform, mode);
    if (res.ok() || res.status().code() != absl::StatusCode::kNotFound) return res;
    last = res.status();
  }
  return last;
}

}  // namespace kiln::tools::kilnctl
