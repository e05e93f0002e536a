#include "engine/exporter/image_writer.h"

#include <algorithm>
#include <cctype>
#include <chrono>

#include "base/status.h"
#include "base/strings.h"
#include "engine/exporter/go_json.h"
#include "snapshotter/content_store.h"

namespace kiln::engine {
namespace {

using snapshotter::Compression;

constexpr char kBuildInfoField[] = "moby.buildkit.buildinfo.v1";
constexpr char kHistoryComment[] = "buildkit.exporter.image.v0";
constexpr char kDefaultDescription[] = "created by kiln";
constexpr char kDockerZstdLayer[] = "application/vnd.docker.image.rootfs.diff.tar.zstd";
constexpr char kDefaultPathEnv[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct HistoryEntry {
  std::optional<GoTime> created;
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;
};

bool EqualFold(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// encoding/json matches object keys to fields exactly first, then case-insensitively.
const OrderedJson* Field(const OrderedJson& obj, std::string_view name) {
  const OrderedJson* folded = nullptr;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (it.key() == name) return &it.value();
    if (!folded && EqualFold(it.key(), name)) folded = &it.value();
  }
  return folded;
}

absl::Status HistoryError(std::string_view why) {
  return absl::InvalidArgumentError(StrCat("failed to unmarshal history from config: ", why));
}

absl::StatusOr<std::string> StringField(const OrderedJson& obj, std::string_view name) {
  const OrderedJson* v = Field(obj, name);
  if (!v || v->is_null()) return std::string();
  if (!v->is_string()) return HistoryError(StrCat(name, " is not a string"));
  return v->get<std::string>();
}

absl::StatusOr<std::vector<HistoryEntry>> ParseHistory(const OrderedJson& config) {
  std::vector<HistoryEntry> out;
  const OrderedJson* h = Field(config, "history");
  if (!h || h->is_null()) return out;
  if (!h->is_array()) return HistoryError("history is not an array");
  for (const OrderedJson& e : *h) {
    HistoryEntry entry;
    if (e.is_null()) {
      out.push_back(entry);
      continue;
    }
    if (!e.is_object()) return HistoryError("a history entry is not an object");
    if (const OrderedJson* c = Field(e, "created"); c && !c->is_null()) {
      if (!c->is_string()) return HistoryError("created is not a string");
      KILN_ASSIGN_OR_RETURN(entry.created, ParseGoTime(c->get<std::string>()));
    }
    KILN_ASSIGN_OR_RETURN(entry.created_by, StringField(e, "created_by"));
    KILN_ASSIGN_OR_RETURN(entry.author, StringField(e, "author"));
    KILN_ASSIGN_OR_RETURN(entry.comment, StringField(e, "comment"));
    if (const OrderedJson* el = Field(e, "empty_layer"); el && !el->is_null()) {
      if (!el->is_boolean()) return HistoryError("empty_layer is not a boolean");
      entry.empty_layer = el->get<bool>();
    }
    out.push_back(std::move(entry));
  }
  return out;
}

GoTime ToGoTime(snapshotter::Timestamp t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  int64_t s = ns / 1000000000;
  int64_t rem = ns % 1000000000;
  if (rem < 0) {
    rem += 1000000000;
    --s;
  }
  return GoTime::FromUnix(s, static_cast<int32_t>(rem));
}

// BuildKit's normalizeLayersAndHistory (exporter/containerimage/writer.go).
std::vector<HistoryEntry> NormalizeHistory(std::vector<HistoryEntry> history,
                                           const std::vector<LayerHistoryMeta>& layers) {
  const size_t n = layers.size();
  size_t history_layers = 0;
  for (const auto& h : history) history_layers += h.empty_layer ? 0 : 1;
  if (history_layers > n) {
    // More layer entries than layers: the extra ones (from the bottom) become empty.
    size_t l = 0;
    for (auto& h : history) {
      if (l >= n) h.empty_layer = true;
      if (!h.empty_layer) ++l;
    }
  }
  if (n > history_layers) {
    for (size_t i = history_layers; i < n; ++i) {
      HistoryEntry h;
      h.created = ToGoTime(layers[i].created);
      h.created_by = layers[i].description.empty() ? kDefaultDescription : layers[i].description;
      h.comment = kHistoryComment;
      history.push_back(std::move(h));
    }
  }
  size_t layer_index = 0;
  for (auto& h : history) {
    if (h.empty_layer) continue;
    if (!h.created && layer_index < n) h.created = ToGoTime(layers[layer_index].created);
    ++layer_index;
  }
  // The first new layer's time (after the first entry without one), else the last known time.
  std::optional<GoTime> created;
  bool gap = false;
  for (const auto& h : history) {
    if (h.created) {
      created = h.created;
      if (gap) break;
    } else {
      gap = true;
    }
  }
  gap = false;
  for (auto& h : history) {
    if (h.created) {
      if (gap) created = h.created;
    } else {
      gap = true;
      h.created = created;
    }
  }
  return history;
}

OrderedJson HistoryJson(const std::vector<HistoryEntry>& history) {
  OrderedJson arr = OrderedJson::array();
  for (const auto& h : history) {
    OrderedJson o = OrderedJson::object();
    if (h.created) o["created"] = FormatGoTime(*h.created);
    if (!h.created_by.empty()) o["created_by"] = h.created_by;
    if (!h.author.empty()) o["author"] = h.author;
    if (!h.comment.empty()) o["comment"] = h.comment;
    if (h.empty_layer) o["empty_layer"] = true;
    arr.push_back(std::move(o));
  }
  return arr;
}

absl::StatusOr<OrderedJson> ParseConfigObject(std::string_view text) {
  OrderedJson j = OrderedJson::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("failed to parse image config for patch: not a JSON object");
  }
  return j;
}

std::vector<Digest> BaseDiffIds(std::string_view config) {
  std::vector<Digest> out;
  auto j = ParseConfigObject(config);
  if (!j.ok()) return out;
  const OrderedJson* rootfs = Field(*j, "rootfs");
  if (!rootfs || !rootfs->is_object()) return out;
  const OrderedJson* ids = Field(*rootfs, "diff_ids");
  if (!ids || !ids->is_array()) return out;
  for (const auto& id : *ids) {
    if (!id.is_string()) return {};
    auto d = Digest::Parse(id.get<std::string>());
    if (!d.ok()) return {};
    out.push_back(*d);
  }
  return out;
}

OrderedJson DescriptorJson(const oci::Descriptor& d) {
  return OrderedJson::parse(oci::EncodeDescriptor(d));
}

}  // namespace

std::string DefaultImageConfig(const oci::Platform& platform) {
  OrderedJson img = OrderedJson::object();
  img["architecture"] = platform.architecture;
  if (!platform.variant.empty()) img["variant"] = platform.variant;
  img["os"] = platform.os;
  OrderedJson config = OrderedJson::object();
  config["Env"] = OrderedJson::array({StrCat("PATH=", kDefaultPathEnv)});
  config["WorkingDir"] = "/";
  img["config"] = std::move(config);
  OrderedJson rootfs = OrderedJson::object();
  rootfs["type"] = "layers";
  rootfs["diff_ids"] = nullptr;
  img["rootfs"] = std::move(rootfs);
  return GoJsonCompact(img);
}

absl::StatusOr<std::string> PatchImageConfig(std::string_view config_json,
                                             const std::vector<Digest>& diff_ids,
                                             const std::vector<LayerHistoryMeta>& layers,
                                             std::optional<int64_t> epoch) {
  KILN_ASSIGN_OR_RETURN(OrderedJson config, ParseConfigObject(config_json));
  KILN_ASSIGN_OR_RETURN(std::vector<HistoryEntry> history, ParseHistory(config));
  history = NormalizeHistory(std::move(history), layers);

  // Go decodes the config into a map: later duplicates win and the keys come out sorted.
  std::map<std::string, OrderedJson> top;
  for (auto it = config.begin(); it != config.end(); ++it) top[it.key()] = it.value();

  OrderedJson rootfs = OrderedJson::object();
  rootfs["type"] = "layers";
  rootfs["diff_ids"] = OrderedJson::array();
  for (const Digest& d : diff_ids) rootfs["diff_ids"].push_back(d.str());
  top["rootfs"] = std::move(rootfs);

  std::optional<GoTime> clamp;
  if (epoch) {
    clamp = GoTime::FromUnix(*epoch);
    for (auto& h : history) {
      if (!h.created || h.created->After(*clamp)) h.created = clamp;
    }
  }
  top["history"] = HistoryJson(history);

  auto created = top.find("created");
  if (created != top.end() && clamp && !created->second.is_null()) {
    if (!created->second.is_string()) {
      return absl::InvalidArgumentError("failed to unmarshal creation time: not a string");
    }
    KILN_ASSIGN_OR_RETURN(GoTime t, ParseGoTime(created->second.get<std::string>()));
    if (t.After(*clamp)) created->second = FormatGoTime(*clamp);
  }
  if (created == top.end()) {
    std::optional<GoTime> last;
    for (const auto& h : history) {
      if (h.created) last = h.created;
    }
    top["created"] = last ? OrderedJson(FormatGoTime(*last)) : OrderedJson(nullptr);
  }
  top.erase(kBuildInfoField);

  OrderedJson out = OrderedJson::object();
  for (auto& [k, v] : top) out[k] = std::move(v);
  return GoJsonCompact(out);
}

std::string LayerMediaType(Compression c, bool oci_types) {
  if (oci_types) return std::string(snapshotter::OciLayerMediaType(c));
  switch (c) {
    case Compression::kNone:
      return oci::kMediaTypeDockerLayer;
    case Compression::kGzip:
      return oci::kMediaTypeDockerLayerGzip;
    case Compression::kZstd:
      return kDockerZstdLayer;
  }
  return oci::kMediaTypeDockerLayerGzip;
}

absl::StatusOr<CommittedImage> CommitImage(Worker& worker, const ResultRef& result,
                                           std::string_view frontend_config,
                                           const ImageCommitOptions& options) {
  std::string config_in = frontend_config.empty() ? DefaultImageConfig(oci::HostPlatform())
                                                  : std::string(frontend_config);
  LayerExportOptions lo = options.layers;
  if (lo.rewrite_epoch && lo.immutable_diff_ids.empty())
    lo.immutable_diff_ids = BaseDiffIds(config_in);

  CommittedImage image;
  KILN_ASSIGN_OR_RETURN(image.layers, ExportLayers(worker, result, lo));
  std::vector<Digest> diff_ids;
  std::vector<LayerHistoryMeta> metas;
  for (ExportedLayer& l : image.layers) {
    KILN_ASSIGN_OR_RETURN(Compression c, snapshotter::CompressionOfMediaType(l.blob.media_type));
    l.blob.media_type = LayerMediaType(c, options.oci_types);
    diff_ids.push_back(l.diff_id);
    metas.push_back({l.description, l.created});
  }
  KILN_ASSIGN_OR_RETURN(image.config_json,
                        PatchImageConfig(config_in, diff_ids, metas, options.epoch));

  image.config.media_type =
      options.oci_types ? oci::kMediaTypeImageConfig : oci::kMediaTypeDockerConfig;
  image.config.digest = Digest::Sha256Of(image.config_json);
  image.config.size = static_cast<int64_t>(image.config_json.size());

  // Field order of BuildKit's manifest struct: its own mediaType first, then the embedded
  // ocispecs.Manifest's fields.
  OrderedJson m = OrderedJson::object();
  m["mediaType"] = options.oci_types ? oci::kMediaTypeImageManifest : oci::kMediaTypeDockerManifest;
  m["schemaVersion"] = 2;
  m["config"] = DescriptorJson(image.config);
  m["layers"] = OrderedJson::array();
  for (const ExportedLayer& l : image.layers) m["layers"].push_back(DescriptorJson(l.blob));
  if (!options.manifest_annotations.empty()) {
    OrderedJson a = OrderedJson::object();
    for (const auto& [k, v] : options.manifest_annotations) a[k] = v;
    m["annotations"] = std::move(a);
  }
  image.manifest_json = GoJsonIndent(m);

  snapshotter::ContentStore& store = worker.content();
  KILN_RETURN_IF_ERROR_CTX(
      snapshotter::WriteBlob(store, image.config_json, image.config.digest).status(),
      "error writing config blob");
  snapshotter::Labels labels{{"containerd.io/gc.ref.content.0", image.config.digest.str()}};
  for (size_t i = 0; i < image.layers.size(); ++i) {
    labels[StrCat("containerd.io/gc.ref.content.", i + 1)] = image.layers[i].blob.digest.str();
  }
  image.manifest.media_type = m["mediaType"].get<std::string>();
  image.manifest.digest = Digest::Sha256Of(image.manifest_json);
  image.manifest.size = static_cast<int64_t>(image.manifest_json.size());
  image.manifest.annotations = options.descriptor_annotations;
  image.manifest.platform = options.platform;
  KILN_RETURN_IF_ERROR_CTX(
      snapshotter::WriteBlob(store, image.manifest_json, image.manifest.digest, labels).status(),
      StrCat("error writing manifest blob ", image.manifest.digest.str()));
  return image;
}

}  // namespace kiln::engine
