#include "engine/ops/load_definition.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/llb_op.h"
#include "llb/validate.h"

namespace kiln::engine {
namespace {

oci::Platform PlatformOf(const pb::Op& op, const oci::Platform& fallback) {
  if (!op.has_platform()) return fallback;
  const pb::Platform& p = op.platform();
  oci::Platform out;
  out.architecture = p.architecture();
  out.os = p.os();
  out.variant = p.variant();
  out.os_version = p.osversion();
  for (const auto& f : p.osfeatures()) out.os_features.push_back(f);
  return out;
}

absl::Status CheckEntitlements(const llb::ParsedOp& p, const LoadOptions& options) {
  if (!p.op.has_exec()) return absl::OkStatus();
  const pb::ExecOp& e = p.op.exec();
  if (e.network() == pb::HOST && !options.allow_network_host) {
    return absl::InvalidArgumentError(
        StrCat("op ", p.digest.str(), ": network.host is not allowed"));
  }
  if (e.security() == pb::INSECURE && !options.allow_security_insecure) {
    return absl::InvalidArgumentError(
        StrCat("op ", p.digest.str(), ": security.insecure is not allowed"));
  }
  return absl::OkStatus();
}

void CollectNoCacheMounts(const pb::Op& op, std::set<std::string>* ids) {
  if (!op.has_exec()) return;
  for (const pb::Mount& m : op.exec().mounts()) {
    if (m.mounttype() != pb::CACHE || !m.has_cacheopt()) continue;
    ids->insert(m.cacheopt().id().empty() ? m.dest() : m.cacheopt().id());
  }
}

}  // namespace

absl::StatusOr<LoadedDefinition> LoadDefinition(const llb::ParsedDefinition& def,
                                                const LoadOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::vector<const llb::ParsedOp*> order, def.TopologicalOrder());
  const pb::Input* result = def.result();
  if (result == nullptr) return absl::InvalidArgumentError("invalid LLB: no result edge");

  LoadedDefinition out;
  std::map<std::string, std::shared_ptr<const Vertex>> loaded;
  for (const llb::ParsedOp* p : order) {
    KILN_RETURN_IF_ERROR(CheckEntitlements(*p, options));
    auto v = std::make_shared<Vertex>();
    v->digest = p->digest;
    for (const pb::Input& in : p->op.inputs()) {
      auto it = loaded.find(in.digest());
      if (it == loaded.end()) {
        return absl::InvalidArgumentError(
            StrCat("invalid LLB: op ", p->digest.str(), ": input ", in.digest(), " not loaded"));
      }
      const llb::ParsedOp* producer = def.Find(in.digest());
      if (in.index() < 0 || (producer && in.index() >= llb::OutputCount(producer->op))) {
        return absl::InvalidArgumentError(StrCat("invalid LLB: op ", p->digest.str(),
                                                 ": input index ", in.index(), " out of range"));
      }
      v->inputs.push_back(Edge{it->second, static_cast<int>(in.index())});
    }
    LlbOp llb_op;
    llb_op.digest = p->digest;
    llb_op.op = p->op;
    if (const pb::OpMetadata* md = def.Metadata(p->digest)) llb_op.metadata = *md;
    llb_op.platform = PlatformOf(p->op, options.default_platform);

    const pb::OpMetadata& md = llb_op.metadata;
    v->options.ignore_cache = md.ignore_cache() || options.ignore_cache;
    for (const auto& [k, val] : md.description()) v->options.description[k] = val;
    v->options.progress_group = md.progress_group().id();
    if (v->options.ignore_cache) CollectNoCacheMounts(p->op, &out.no_cache_mount_ids);
    v->name = llb_op.Name();
    v->sys = std::move(llb_op);
    loaded[p->digest.str()] = std::move(v);
  }

  auto it = loaded.find(result->digest());
  if (it == loaded.end()) {
    return absl::InvalidArgumentError(
        StrCat("invalid LLB: result ", result->digest(), " is not in the definition"));
  }
  out.target = Edge{it->second, static_cast<int>(result->index())};
  return out;
}

absl::StatusOr<LoadedDefinition> LoadDefinitionBytes(std::string_view definition_bytes,
                                                     const LoadOptions& options) {
  KILN_ASSIGN_OR_RETURN(llb::ParsedDefinition def, llb::LoadDefinition(definition_bytes));
  return LoadDefinition(def, options);
}

}  // namespace kiln::engine
