#include "base/oci.h"

#include <tuple>

#include <nlohmann/json.hpp>
#include <sys/utsname.h>

#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::oci {
namespace {

using OJson = nlohmann::ordered_json;
using Json = nlohmann::json;

// Go's encoding/json escapes <, > and & (and U+2028/2029) inside strings.  Those characters can
// only occur inside JSON strings, so escaping them after nlohmann's dump is exact.
std::string GoJsonDump(const OJson& j) {
  std::string s = j.dump(-1, ' ', false, OJson::error_handler_t::replace);
  return absl::StrReplaceAll(s, {{"<", "\\u003c"},
                                 {">", "\\u003e"},
                                 {"&", "\\u0026"},
                                 {"\xe2\x80\xa8", "\\u2028"},
                                 {"\xe2\x80\xa9", "\\u2029"}});
}

OJson StringSet(const std::map<std::string, bool>& set) {
  OJson o = OJson::object();
  for (const auto& [k, v] : set) o[k] = OJson::object();
  return o;
}

OJson ToJson(const HealthConfig& h) {
  OJson o = OJson::object();
  if (!h.test.empty()) o["Test"] = h.test;
  if (h.interval) o["Interval"] = h.interval;
  if (h.timeout) o["Timeout"] = h.timeout;
  if (h.start_period) o["StartPeriod"] = h.start_period;
  if (h.start_interval) o["StartInterval"] = h.start_interval;
  if (h.retries) o["Retries"] = h.retries;
  return o;
}

// Field order of BuildKit's image.ImageConfig (ocispecs.ImageConfig embedded first).
OJson ToJson(const ImageConfig& c) {
  OJson o = OJson::object();
  if (!c.user.empty()) o["User"] = c.user;
  if (!c.exposed_ports.empty()) o["ExposedPorts"] = StringSet(c.exposed_ports);
  if (!c.env.empty()) o["Env"] = c.env;
  if (c.entrypoint && !c.entrypoint->empty()) o["Entrypoint"] = *c.entrypoint;
  if (c.cmd && !c.cmd->empty()) o["Cmd"] = *c.cmd;
  if (!c.volumes.empty()) o["Volumes"] = StringSet(c.volumes);
  if (!c.working_dir.empty()) o["WorkingDir"] = c.working_dir;
  if (!c.labels.empty()) o["Labels"] = c.labels;
  if (!c.stop_signal.empty()) o["StopSignal"] = c.stop_signal;
  if (c.healthcheck) o["Healthcheck"] = ToJson(*c.healthcheck);
  if (c.args_escaped) o["ArgsEscaped"] = true;
  o["OnBuild"] = c.on_build.empty() ? OJson(nullptr) : OJson(c.on_build);
  if (!c.shell.empty()) o["Shell"] = c.shell;
  return o;
}

OJson ToJson(const History& h) {
  OJson o = OJson::object();
  if (!h.created.empty()) o["created"] = h.created;
  if (!h.created_by.empty()) o["created_by"] = h.created_by;
  if (!h.author.empty()) o["author"] = h.author;
  if (!h.comment.empty()) o["comment"] = h.comment;
  if (h.empty_layer) o["empty_layer"] = true;
  return o;
}

OJson ToJson(const Platform& p) {
  OJson o = OJson::object();
  o["architecture"] = p.architecture;
  o["os"] = p.os;
  if (!p.os_version.empty()) o["os.version"] = p.os_version;
  if (!p.os_features.empty()) o["os.features"] = p.os_features;
  if (!p.variant.empty()) o["variant"] = p.variant;
  return o;
}

OJson ToJson(const Descriptor& d) {
  OJson o = OJson::object();
  o["mediaType"] = d.media_type;
  o["digest"] = d.digest.str();
  o["size"] = d.size;
  if (!d.urls.empty()) o["urls"] = d.urls;
  if (!d.annotations.empty()) o["annotations"] = d.annotations;
  if (d.platform) o["platform"] = ToJson(*d.platform);
  return o;
}

// ---- decoding ----

class Reader {
 public:
  Reader(const Json& j, std::string where) : j_(j), where_(std::move(where)) {}

  absl::Status Str(const char* key, std::string* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_string()) return TypeError(key, "a string");
    *out = it->get<std::string>();
    return absl::OkStatus();
  }
  absl::Status Int(const char* key, int64_t* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_number_integer()) return TypeError(key, "an integer");
    *out = it->get<int64_t>();
    return absl::OkStatus();
  }
  absl::Status Bool(const char* key, bool* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_boolean()) return TypeError(key, "a boolean");
    *out = it->get<bool>();
    return absl::OkStatus();
  }
  absl::Status Strings(const char* key, std::vector<std::string>* out,
                       bool* present = nullptr) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return absl::OkStatus();
    // Docker's strslice also accepts a single string.
    if (it->is_string()) {
      *out = {it->get<std::string>()};
    } else if (it->is_array()) {
      out->clear();
      for (const auto& e : *it) {
        if (!e.is_string()) return TypeError(key, "an array of strings");
        out->push_back(e.get<std::string>());
      }
    } else {
      return TypeError(key, "an array of strings");
    }
    if (present) *present = true;
    return absl::OkStatus();
  }
  absl::Status StringMap(const char* key, std::map<std::string, std::string>* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_object()) return TypeError(key, "an object");
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) return TypeError(key, "an object of strings");
      (*out)[k] = v.get<std::string>();
    }
    return absl::OkStatus();
  }
  absl::Status Set(const char* key, std::map<std::string, bool>* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_object()) return TypeError(key, "an object");
    for (const auto& [k, v] : it->items()) (*out)[k] = true;
    return absl::OkStatus();
  }
  const Json* Object(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end() || !it->is_object()) return nullptr;
    return &*it;
  }
  const Json* Array(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end() || !it->is_array()) return nullptr;
    return &*it;
  }
  const std::string& where() const { return where_; }

 private:
  absl::Status TypeError(const char* key, const char* want) const {
    return absl::InvalidArgumentError(
        StrCat("decode ", where_, ": field ", Quote(key), " must be ", want));
  }
  const Json& j_;
  std::string where_;
};

absl::StatusOr<Json> ParseObject(std::string_view text, std::string_view what) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(StrCat("decode ", what, ": not valid JSON"));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(StrCat("decode ", what, ": not a JSON object"));
  }
  return j;
}

absl::Status ReadHealth(const Json& j, HealthConfig* h) {
  Reader r(j, "image config Healthcheck");
  KILN_RETURN_IF_ERROR(r.Strings("Test", &h->test));
  KILN_RETURN_IF_ERROR(r.Int("Interval", &h->interval));
  KILN_RETURN_IF_ERROR(r.Int("Timeout", &h->timeout));
  KILN_RETURN_IF_ERROR(r.Int("StartPeriod", &h->start_period));
  KILN_RETURN_IF_ERROR(r.Int("StartInterval", &h->start_interval));
  int64_t retries = 0;
  KILN_RETURN_IF_ERROR(r.Int("Retries", &retries));
  h->retries = static_cast<int>(retries);
  return absl::OkStatus();
}

absl::Status ReadConfig(const Json& j, ImageConfig* c) {
  Reader r(j, "image config");
  KILN_RETURN_IF_ERROR(r.Str("User", &c->user));
  KILN_RETURN_IF_ERROR(r.Set("ExposedPorts", &c->exposed_ports));
  KILN_RETURN_IF_ERROR(r.Strings("Env", &c->env));
  bool has_ep = false, has_cmd = false;
  std::vector<std::string> ep, cmd;
  KILN_RETURN_IF_ERROR(r.Strings("Entrypoint", &ep, &has_ep));
  KILN_RETURN_IF_ERROR(r.Strings("Cmd", &cmd, &has_cmd));
  if (has_ep) c->entrypoint = ep;
  if (has_cmd) c->cmd = cmd;
  KILN_RETURN_IF_ERROR(r.Set("Volumes", &c->volumes));
  KILN_RETURN_IF_ERROR(r.Str("WorkingDir", &c->working_dir));
  KILN_RETURN_IF_ERROR(r.StringMap("Labels", &c->labels));
  KILN_RETURN_IF_ERROR(r.Str("StopSignal", &c->stop_signal));
  KILN_RETURN_IF_ERROR(r.Bool("ArgsEscaped", &c->args_escaped));
  if (const Json* h = r.Object("Healthcheck")) {
    HealthConfig hc;
    KILN_RETURN_IF_ERROR(ReadHealth(*h, &hc));
    c->healthcheck = hc;
  }
  KILN_RETURN_IF_ERROR(r.Strings("OnBuild", &c->on_build));
  KILN_RETURN_IF_ERROR(r.Strings("Shell", &c->shell));
  return absl::OkStatus();
}

absl::Status ReadPlatform(const Reader& r, Platform* p) {
  KILN_RETURN_IF_ERROR(r.Str("architecture", &p->architecture));
  KILN_RETURN_IF_ERROR(r.Str("os", &p->os));
  KILN_RETURN_IF_ERROR(r.Str("variant", &p->variant));
  KILN_RETURN_IF_ERROR(r.Str("os.version", &p->os_version));
  KILN_RETURN_IF_ERROR(r.Strings("os.features", &p->os_features));
  return absl::OkStatus();
}

absl::StatusOr<Descriptor> ReadDescriptor(const Json& j, std::string where) {
  Reader r(j, where);
  Descriptor d;
  KILN_RETURN_IF_ERROR(r.Str("mediaType", &d.media_type));
  std::string digest;
  KILN_RETURN_IF_ERROR(r.Str("digest", &digest));
  KILN_ASSIGN_OR_RETURN(d.digest, Digest::Parse(digest));
  KILN_RETURN_IF_ERROR(r.Int("size", &d.size));
  if (d.size < 0) {
    return absl::InvalidArgumentError(StrCat("decode ", where, ": negative size"));
  }
  KILN_RETURN_IF_ERROR(r.Strings("urls", &d.urls));
  KILN_RETURN_IF_ERROR(r.StringMap("annotations", &d.annotations));
  if (const Json* p = r.Object("platform")) {
    Platform plat;
    KILN_RETURN_IF_ERROR(ReadPlatform(Reader(*p, where + " platform"), &plat));
    d.platform = plat;
  }
  return d;
}

std::string NormalizeArch(std::string arch) {
  if (arch == "x86_64" || arch == "x86-64") return "amd64";
  if (arch == "aarch64") return "arm64";
  if (arch == "i386" || arch == "i686") return "386";
  return arch;
}

}  // namespace

absl::StatusOr<Platform> ParsePlatform(std::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(ToAbsl(text), '/');
  Platform p;
  if (parts.size() == 1) {
    p.os = "linux";
    p.architecture = NormalizeArch(parts[0]);
  } else if (parts.size() == 2 || parts.size() == 3) {
    p.os = parts[0];
    p.architecture = NormalizeArch(parts[1]);
    if (parts.size() == 3) p.variant = parts[2];
  } else {
    return absl::InvalidArgumentError(
        StrCat("invalid platform ", Quote(text), ": expected os/arch[/variant]"));
  }
  for (const auto& part : parts) {
    if (part.empty()) {
      return absl::InvalidArgumentError(
          StrCat("invalid platform ", Quote(text), ": empty component"));
    }
  }
  if (p.architecture == "arm64" && p.variant == "v8") p.variant.clear();
  if (p.architecture == "arm" && p.variant.empty()) p.variant = "v7";
  return p;
}

std::string FormatPlatform(const Platform& p) {
  std::string out = StrCat(p.os, "/", p.architecture);
  if (!p.variant.empty()) StrAppend(&out, "/", p.variant);
  return out;
}

Platform HostPlatform() {
  struct utsname u;
  Platform p;
  p.os = "linux";
  p.architecture = ::uname(&u) == 0 ? NormalizeArch(u.machine) : "amd64";
  return p;
}

namespace {
std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}
}  // namespace

std::string NormalizeOs(std::string_view os) {
  std::string out = AsciiLower(os);
  return out == "macos" ? "darwin" : out;
}

std::pair<std::string, std::string> NormalizeArchVariant(std::string_view arch_in,
                                                         std::string_view variant_in) {
  std::string arch = AsciiLower(arch_in), variant = AsciiLower(variant_in);
  if (arch == "i386") {
    arch = "386";
    variant.clear();
  } else if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
    arch = "amd64";
    if (variant == "v1") variant.clear();
  } else if (arch == "aarch64" || arch == "arm64") {
    arch = "arm64";
    if (variant == "8" || variant == "v8") variant.clear();
  } else if (arch == "armhf") {
    arch = "arm";
    variant = "v7";
  } else if (arch == "armel") {
    arch = "arm";
    variant = "v6";
  } else if (arch == "arm") {
    if (variant.empty() || variant == "7") {
      variant = "v7";
    } else if (variant == "5" || variant == "6" || variant == "8") {
      variant = "v" + variant;
    }
  }
  return {arch, variant};
}

Platform NormalizePlatform(Platform p) {
  p.os = NormalizeOs(p.os);
  std::tie(p.architecture, p.variant) = NormalizeArchVariant(p.architecture, p.variant);
  return p;
}

std::string EncodeImageConfig(const ImageConfig& config) { return GoJsonDump(ToJson(config)); }

// BuildKit's exporter rewrites the config blob through a map, so the top-level keys come out
// sorted; nested objects keep their struct order.
std::string EncodeImage(const Image& image) {
  OJson o = OJson::object();
  o["architecture"] = image.platform.architecture;
  o["author"] = image.author;
  o["config"] = ToJson(image.config);
  o["created"] = image.created;
  OJson history = OJson::array();
  for (const auto& h : image.history) history.push_back(ToJson(h));
  o["history"] = history;
  o["os"] = image.platform.os;
  o["os.features"] = image.platform.os_features;
  o["os.version"] = image.platform.os_version;
  OJson rootfs = OJson::object();
  rootfs["type"] = image.rootfs.type;
  OJson ids = OJson::array();
  for (const auto& d : image.rootfs.diff_ids) ids.push_back(d.str());
  rootfs["diff_ids"] = ids;
  o["rootfs"] = rootfs;
  o["variant"] = image.platform.variant;
  // omitempty fields
  for (const char* key : {"author", "created", "os.features", "os.version", "variant"}) {
    if (o[key].empty() || (o[key].is_string() && o[key].get<std::string>().empty())) o.erase(key);
  }
  if (image.history.empty()) o.erase("history");
  return GoJsonDump(o);
}

std::string EncodeDescriptor(const Descriptor& desc) { return GoJsonDump(ToJson(desc)); }

std::string EncodeManifest(const Manifest& m) {
  OJson o = OJson::object();
  o["schemaVersion"] = m.schema_version;
  if (!m.media_type.empty()) o["mediaType"] = m.media_type;
  o["config"] = ToJson(m.config);
  OJson layers = OJson::array();
  for (const auto& l : m.layers) layers.push_back(ToJson(l));
  o["layers"] = layers;
  if (!m.annotations.empty()) o["annotations"] = m.annotations;
  return GoJsonDump(o);
}

std::string EncodeIndex(const Index& idx) {
  OJson o = OJson::object();
  o["schemaVersion"] = idx.schema_version;
  if (!idx.media_type.empty()) o["mediaType"] = idx.media_type;
  OJson manifests = OJson::array();
  for (const auto& d : idx.manifests) manifests.push_back(ToJson(d));
  o["manifests"] = manifests;
  if (!idx.annotations.empty()) o["annotations"] = idx.annotations;
  return GoJsonDump(o);
}

absl::StatusOr<ImageConfig> DecodeImageConfig(std::string_view json) {
  KILN_ASSIGN_OR_RETURN(Json j, ParseObject(json, "image config"));
  ImageConfig c;
  KILN_RETURN_IF_ERROR(ReadConfig(j, &c));
  return c;
}

absl::StatusOr<Image> DecodeImage(std::string_view json) {
  KILN_ASSIGN_OR_RETURN(Json j, ParseObject(json, "image"));
  Reader r(j, "image");
  Image img;
  KILN_RETURN_IF_ERROR(r.Str("created", &img.created));
  KILN_RETURN_IF_ERROR(r.Str("author", &img.author));
  KILN_RETURN_IF_ERROR(ReadPlatform(r, &img.platform));
  if (const Json* c = r.Object("config")) KILN_RETURN_IF_ERROR(ReadConfig(*c, &img.config));
  if (const Json* rootfs = r.Object("rootfs")) {
    Reader rr(*rootfs, "image rootfs");
    KILN_RETURN_IF_ERROR(rr.Str("type", &img.rootfs.type));
    std::vector<std::string> ids;
    KILN_RETURN_IF_ERROR(rr.Strings("diff_ids", &ids));
    for (const auto& id : ids) {
      KILN_ASSIGN_OR_RETURN(Digest d, Digest::Parse(id));
      img.rootfs.diff_ids.push_back(d);
    }
  }
  if (const Json* hist = r.Array("history")) {
    for (const auto& e : *hist) {
      if (!e.is_object()) return absl::InvalidArgumentError("decode image: history entry");
      Reader hr(e, "image history");
      History h;
      KILN_RETURN_IF_ERROR(hr.Str("created", &h.created));
      KILN_RETURN_IF_ERROR(hr.Str("created_by", &h.created_by));
      KILN_RETURN_IF_ERROR(hr.Str("author", &h.author));
      KILN_RETURN_IF_ERROR(hr.Str("comment", &h.comment));
      KILN_RETURN_IF_ERROR(hr.Bool("empty_layer", &h.empty_layer));
      img.history.push_back(std::move(h));
    }
  }
  return img;
}

absl::StatusOr<Descriptor> DecodeDescriptor(std::string_view json) {
  KILN_ASSIGN_OR_RETURN(Json j, ParseObject(json, "descriptor"));
  return ReadDescriptor(j, "descriptor");
}

absl::StatusOr<Manifest> DecodeManifest(std::string_view json) {
  KILN_ASSIGN_OR_RETURN(Json j, ParseObject(json, "manifest"));
  Reader r(j, "manifest");
  Manifest m;
  int64_t version = 0;
  KILN_RETURN_IF_ERROR(r.Int("schemaVersion", &version));
  if (version != 2) {
    return absl::InvalidArgumentError(
        StrCat("decode manifest: unsupported schemaVersion ", version));
  }
  m.schema_version = 2;
  KILN_RETURN_IF_ERROR(r.Str("mediaType", &m.media_type));
  const Json* config = r.Object("config");
  if (!config) return absl::InvalidArgumentError("decode manifest: missing config descriptor");
  KILN_ASSIGN_OR_RETURN(m.config, ReadDescriptor(*config, "manifest config"));
  if (const Json* layers = r.Array("layers")) {
    for (const auto& l : *layers) {
      if (!l.is_object()) return absl::InvalidArgumentError("decode manifest: bad layer entry");
      KILN_ASSIGN_OR_RETURN(Descriptor d, ReadDescriptor(l, "manifest layer"));
      m.layers.push_back(std::move(d));
    }
  }
  KILN_RETURN_IF_ERROR(r.StringMap("annotations", &m.annotations));
  return m;
}

absl::StatusOr<Index> DecodeIndex(std::string_view json) {
  KILN_ASSIGN_OR_RETURN(Json j, ParseObject(json, "index"));
  Reader r(j, "index");
  Index idx;
  int64_t version = 0;
  KILN_RETURN_IF_ERROR(r.Int("schemaVersion", &version));
  if (version != 2) {
    return absl::InvalidArgumentError(StrCat("decode index: unsupported schemaVersion ", version));
  }
  KILN_RETURN_IF_ERROR(r.Str("mediaType", &idx.media_type));
  if (const Json* ms = r.Array("manifests")) {
    for (const auto& e : *ms) {
      if (!e.is_object()) return absl::InvalidArgumentError("decode index: bad manifest entry");
      KILN_ASSIGN_OR_RETURN(Descriptor d, ReadDescriptor(e, "index manifest"));
      idx.manifests.push_back(std::move(d));
    }
  }
  KILN_RETURN_IF_ERROR(r.StringMap("annotations", &idx.annotations));
  return idx;
}

absl::StatusOr<std::string> SniffMediaType(std::string_view json) {
  KILN_ASSIGN_OR_RETURN(Json j, ParseObject(json, "manifest"));
  std::string mt;
  KILN_RETURN_IF_ERROR(Reader(j, "manifest").Str("mediaType", &mt));
  return mt;
}

}  // namespace kiln::oci
