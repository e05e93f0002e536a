#include "engine/exporter/options.h"

#include <charconv>
#include <regex>

#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine {
namespace {

absl::StatusOr<bool> BoolAttr(std::string_view key, std::string_view value) {
  if (value.empty()) return true;
  if (auto b = ParseGoBool(value)) return *b;
  return absl::InvalidArgumentError(StrCat("non-bool value specified for ", key,
                                           ": strconv.ParseBool: parsing \"", value,
                                           "\": invalid syntax"));
}

absl::StatusOr<int64_t> IntAttr(std::string_view key, std::string_view value) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || end != value.data() + value.size()) {
    return absl::InvalidArgumentError(StrCat("invalid ", key, ": ", value));
  }
  return v;
}

absl::StatusOr<std::optional<int64_t>> EpochAttr(const ExporterAttrs& attrs) {
  auto it = attrs.find("source-date-epoch");
  if (it == attrs.end() || it->second.empty()) return std::optional<int64_t>();
  KILN_ASSIGN_OR_RETURN(int64_t v, IntAttr("source-date-epoch", it->second));
  return std::optional<int64_t>(v);
}

absl::StatusOr<snapshotter::Compression> ParseCompression(std::string_view v) {
  if (v == "uncompressed") return snapshotter::Compression::kNone;
  if (v == "gzip") return snapshotter::Compression::kGzip;
  if (v == "zstd") return snapshotter::Compression::kZstd;
  return absl::InvalidArgumentError(StrCat("unsupported compression type ", v));
}

// BuildKit's `^annotation(?:-([a-z-]+))?(?:\[([A-Za-z0-9_/-]+)\])?\.(\S+)$`.
absl::StatusOr<bool> ParseAnnotation(const std::string& key, const std::string& value,
                                     AnnotationOptions* out) {
  static const std::regex re(R"(^annotation(?:-([a-z-]+))?(?:\[([A-Za-z0-9_/-]+)\])?\.(\S+)$)");
  std::smatch m;
  if (!std::regex_match(key, m, re)) return false;
  std::string type = m[1].str(), platform = m[2].str(), name = m[3].str();
  if (type.empty()) type = "manifest";
  AnnotationOptions::Set* set = &out->all;
  if (!platform.empty()) {
    KILN_ASSIGN_OR_RETURN(oci::Platform p, oci::ParsePlatform(platform));
    set = &out->by_platform[oci::FormatPlatform(p)];
  }
  if (type == "manifest") {
    set->manifest[name] = value;
  } else if (type == "manifest-descriptor") {
    set->manifest_descriptor[name] = value;
  } else if (type == "index" || type == "index-descriptor") {
    out->index = true;
  } else {
    return absl::InvalidArgumentError(StrCat("unrecognized annotation type ", type));
  }
  return true;
}

}  // namespace

std::optional<bool> ParseGoBool(std::string_view v) {
  if (v == "1" || v == "t" || v == "T" || v == "TRUE" || v == "true" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "FALSE" || v == "false" || v == "False") {
    return false;
  }
  return std::nullopt;
}

absl::StatusOr<int> MapCompressionLevel(snapshotter::Compression c, int64_t level) {
  switch (c) {
    case snapshotter::Compression::kGzip:
      if (level < 0 || level > 9) {
        return absl::InvalidArgumentError(StrCat("gzip: invalid compression level: ", level));
      }
      return level == 0 ? 0 : level <= 3 ? 1 : level <= 6 ? 2 : 3;
    case snapshotter::Compression::kZstd:
      if (level < 0 || level > 22) {
        return absl::InvalidArgumentError(StrCat("zstd: invalid compression level: ", level));
      }
      return level == 0 ? -1 : static_cast<int>(level);
    case snapshotter::Compression::kNone:
      return -1;
  }
  return -1;
}

AnnotationOptions::Set AnnotationOptions::For(const std::optional<oci::Platform>& platform) const {
  Set s = all;
  if (platform) {
    auto it = by_platform.find(oci::FormatPlatform(*platform));
    if (it != by_platform.end()) {
      for (const auto& [k, v] : it->second.manifest) s.manifest[k] = v;
      for (const auto& [k, v] : it->second.manifest_descriptor) s.manifest_descriptor[k] = v;
    }
  }
  return s;
}

absl::StatusOr<ImageExportOptions> ParseImageExportOptions(std::string_view type,
                                                           const ExporterAttrs& attrs) {
  ImageExportOptions o;
  o.oci_types = type == "oci";
  KILN_ASSIGN_OR_RETURN(o.epoch, EpochAttr(attrs));
  std::optional<int64_t> level;
  for (const auto& [k, v] : attrs) {
    KILN_ASSIGN_OR_RETURN(bool annotation, ParseAnnotation(k, v, &o.annotations));
    if (annotation) continue;
    bool* flag = nullptr;
    if (k == "name") {
      o.name = v;
    } else if (k == "compression") {
      KILN_ASSIGN_OR_RETURN(o.compression, ParseCompression(v));
    } else if (k == "compression-level") {
      KILN_ASSIGN_OR_RETURN(level, IntAttr(k, v));
    } else if (k == "force-compression") {
      flag = &o.force_compression;
    } else if (k == "oci-mediatypes") {
      flag = &o.oci_types;
    } else if (k == "rewrite-timestamp") {
      flag = &o.rewrite_timestamp;
    } else if (k == "push" && type == "image") {
      flag = &o.push;
    } else if (k == "push-by-digest" && type == "image") {
      flag = &o.push_by_digest;
    } else if (k == "registry.insecure" && type == "image") {
      flag = &o.insecure;
    } else if (k == "unpack" && type == "image") {
      flag = &o.unpack;
    } else if (k == "store" && type == "image") {
      flag = &o.store;
    } else if (k == "name-canonical" && type == "image") {
      flag = &o.name_canonical;
    } else if (k == "dangling-name-prefix" && type == "image") {
      o.dangling_prefix = v;
    } else if (k == "tar" && type != "image") {
      flag = &o.tar;
    }
    if (flag) {
      KILN_ASSIGN_OR_RETURN(*flag, BoolAttr(k, v));
    }
  }
  if (level) {
    KILN_ASSIGN_OR_RETURN(o.level, MapCompressionLevel(o.compression, *level));
  }
  // Annotations other than on the manifest itself exist only in OCI documents.
  bool descriptor_annotations = !o.annotations.all.manifest_descriptor.empty();
  for (const auto& [p, s] : o.annotations.by_platform) {
    descriptor_annotations |= !s.manifest_descriptor.empty();
  }
  if (o.annotations.index || descriptor_annotations) o.oci_types = true;
  return o;
}

absl::StatusOr<FsExportOptions> ParseFsExportOptions(const ExporterAttrs& attrs) {
  FsExportOptions o;
  KILN_ASSIGN_OR_RETURN(o.epoch, EpochAttr(attrs));
  return o;
}

}  // namespace kiln::engine
