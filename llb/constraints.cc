#include "llb/constraints.h"

#include "base/strings.h"
#include "llb/caps.h"
#include "llb/go_compat.h"

namespace kiln::llb {

Constraints& Constraints::WithPlatform(const oci::Platform& p) {
  platform = p;
  return *this;
}

Constraints& Constraints::WithCustomName(std::string_view name) {
  (*metadata.mutable_description())[kCustomNameKey] = std::string(name);
  return *this;
}

Constraints& Constraints::WithDescription(const std::map<std::string, std::string>& description) {
  for (const auto& [k, v] : description) (*metadata.mutable_description())[k] = v;
  return *this;
}

Constraints& Constraints::WithIgnoreCache() {
  metadata.set_ignore_cache(true);
  return *this;
}

Constraints& Constraints::WithExportCache(bool export_cache) {
  metadata.mutable_export_cache()->set_value(export_cache);
  return *this;
}

Constraints& Constraints::WithProgressGroup(std::string_view id, std::string_view name, bool weak) {
  pb::ProgressGroup* pg = metadata.mutable_progress_group();
  pg->set_id(std::string(id));
  pg->set_name(std::string(name));
  pg->set_weak(weak);
  return *this;
}

Constraints& Constraints::Require(const std::vector<std::string>& filters) {
  worker_constraints.insert(worker_constraints.end(), filters.begin(), filters.end());
  return *this;
}

Constraints& Constraints::WithLocalUniqueID(std::string_view id) {
  local_unique_id = std::string(id);
  return *this;
}

Constraints& Constraints::WithCaps(CapSet c) {
  caps = std::move(c);
  return *this;
}

Constraints& Constraints::WithLocation(std::shared_ptr<const SourceMap> source_map,
                                       std::vector<Range> ranges) {
  if (source_map == nullptr) return *this;
  source_locations.push_back({std::move(source_map), std::move(ranges)});
  return *this;
}

Constraints& Constraints::AddCap(std::string_view cap) {
  (*metadata.mutable_caps())[std::string(cap)] = true;
  return *this;
}

Constraints& Constraints::Apply(const Constraints& other) {
  if (other.platform) platform = other.platform;
  worker_constraints.insert(worker_constraints.end(), other.worker_constraints.begin(),
                            other.worker_constraints.end());
  metadata = MergeMetadata(std::move(metadata), other.metadata);
  if (!other.local_unique_id.empty()) local_unique_id = other.local_unique_id;
  if (other.caps) caps = other.caps;
  source_locations.insert(source_locations.end(), other.source_locations.begin(),
                          other.source_locations.end());
  return *this;
}

pb::OpMetadata MergeMetadata(pb::OpMetadata m1, const pb::OpMetadata& m2) {
  if (m2.ignore_cache()) m1.set_ignore_cache(true);
  for (const auto& [k, v] : m2.description()) (*m1.mutable_description())[k] = v;
  if (m2.has_export_cache()) *m1.mutable_export_cache() = m2.export_cache();
  for (const auto& [k, v] : m2.caps()) (*m1.mutable_caps())[k] = true;
  if (m2.has_progress_group()) *m1.mutable_progress_group() = m2.progress_group();
  return m1;
}

MarshaledConstraints MarshalConstraints(const Constraints& base, const Constraints& override) {
  MarshaledConstraints out;
  const oci::Platform p = override.platform ? *override.platform
                          : base.platform   ? *base.platform
                                            : DefaultPlatform();
  pb::Platform* pp = out.op.mutable_platform();
  pp->set_os(p.os);
  pp->set_architecture(p.architecture);
  pp->set_variant(p.variant);
  pp->set_osversion(p.os_version);
  for (const std::string& f : p.os_features) pp->add_osfeatures(f);
  // Go always sets a WorkerConstraints message, so field 11 is present (possibly empty).
  pb::WorkerConstraints* wc = out.op.mutable_constraints();
  for (const std::string& f : base.worker_constraints) wc->add_filter(f);
  for (const std::string& f : override.worker_constraints) wc->add_filter(f);
  out.metadata = MergeMetadata(base.metadata, override.metadata);
  return out;
}

}  // namespace kiln::llb
