// The image config JSON as BuildKit's Dockerfile frontend marshals it (json.Marshal of
// dockerfile2llb.Image): the embedded ocispecs.Image fields first, the Docker-extended config
// last, omitempty as declared there, map keys sorted, Go's HTML-safe string escaping.
#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "frontends/dockerfile/convert.h"
#include "llb/go_compat.h"
#include "nlohmann/json.hpp"

namespace kiln::frontends::dockerfile {
namespace {

using llb::GoJsonQuote;

class JsonObject {
 public:
  void Raw(std::string_view key, std::string_view value) {
    out_ += first_ ? "{" : ",";
    first_ = false;
    StrAppend(&out_, GoJsonQuote(key), ":", value);
  }
  void String(std::string_view key, std::string_view value) { Raw(key, GoJsonQuote(value)); }
  std::string Done() { return first_ ? "{}" : out_ + "}"; }

 private:
  std::string out_;
  bool first_ = true;
};

std::string StringArray(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) StrAppend(&out, i > 0 ? "," : "", GoJsonQuote(v[i]));
  return out + "]";
}

std::string StringSet(const std::map<std::string, bool>& set) {
  JsonObject o;
  for (const auto& [k, v] : set) o.Raw(k, "{}");
  return o.Done();
}

std::string Health(const oci::HealthConfig& h) {
  JsonObject o;
  if (!h.test.empty()) o.Raw("Test", StringArray(h.test));
  if (h.interval) o.Raw("Interval", std::to_string(h.interval));
  if (h.timeout) o.Raw("Timeout", std::to_string(h.timeout));
  if (h.start_period) o.Raw("StartPeriod", std::to_string(h.start_period));
  if (h.start_interval) o.Raw("StartInterval", std::to_string(h.start_interval));
  if (h.retries) o.Raw("Retries", std::to_string(h.retries));
  return o.Done();
}

std::string Config(const oci::ImageConfig& c) {
  JsonObject o;
  if (!c.user.empty()) o.String("User", c.user);
  if (!c.exposed_ports.empty()) o.Raw("ExposedPorts", StringSet(c.exposed_ports));
  if (!c.env.empty()) o.Raw("Env", StringArray(c.env));
  if (c.entrypoint && !c.entrypoint->empty()) o.Raw("Entrypoint", StringArray(*c.entrypoint));
  if (c.cmd && !c.cmd->empty()) o.Raw("Cmd", StringArray(*c.cmd));
  if (!c.volumes.empty()) o.Raw("Volumes", StringSet(c.volumes));
  if (!c.working_dir.empty()) o.String("WorkingDir", c.working_dir);
  if (!c.labels.empty()) {
    JsonObject labels;
    for (const auto& [k, v] : c.labels) labels.String(k, v);
    o.Raw("Labels", labels.Done());
  }
  if (!c.stop_signal.empty()) o.String("StopSignal", c.stop_signal);
  if (c.healthcheck) o.Raw("Healthcheck", Health(*c.healthcheck));
  if (c.args_escaped) o.Raw("ArgsEscaped", "true");
  o.Raw("OnBuild", c.on_build.empty() ? "null" : StringArray(c.on_build));
  if (!c.shell.empty()) o.Raw("Shell", StringArray(c.shell));
  return o.Done();
}

}  // namespace

std::string EncodeImageConfigJson(const oci::Image& img, bool diff_ids_set) {
  JsonObject o;
  if (!img.created.empty()) o.String("created", img.created);
  if (!img.author.empty()) o.String("author", img.author);
  o.String("architecture", img.platform.architecture);
  if (!img.platform.variant.empty()) o.String("variant", img.platform.variant);
  o.String("os", img.platform.os);
  if (!img.platform.os_version.empty()) o.String("os.version", img.platform.os_version);
  if (!img.platform.os_features.empty()) {
    o.Raw("os.features", StringArray(img.platform.os_features));
  }
  JsonObject rootfs;
  rootfs.String("type", img.rootfs.type);
  std::vector<std::string> ids;
  for (const Digest& d : img.rootfs.diff_ids) ids.push_back(d.str());
  // Go marshals a nil slice as null.
  rootfs.Raw("diff_ids", ids.empty() && !diff_ids_set ? "null" : StringArray(ids));
  o.Raw("rootfs", rootfs.Done());
  if (!img.history.empty()) {
    std::string hist = "[";
    for (size_t i = 0; i < img.history.size(); ++i) {
      const oci::History& h = img.history[i];
      JsonObject e;
      if (!h.created.empty()) e.String("created", h.created);
      if (!h.created_by.empty()) e.String("created_by", h.created_by);
      if (!h.author.empty()) e.String("author", h.author);
      if (!h.comment.empty()) e.String("comment", h.comment);
      if (h.empty_layer) e.Raw("empty_layer", "true");
      StrAppend(&hist, i > 0 ? "," : "", e.Done());
    }
    o.Raw("history", hist + "]");
  }
  o.Raw("config", Config(img.config));
  return o.Done();
}

bool ConfigHasDiffIds(std::string_view config_json) {
  nlohmann::json j = nlohmann::json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  auto rootfs = j.find("rootfs");
  if (rootfs == j.end() || !rootfs->is_object()) return false;
  auto ids = rootfs->find("diff_ids");
  return ids != rootfs->end() && ids->is_array();
}

}  // namespace kiln::frontends::dockerfile
