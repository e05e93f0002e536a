// State::Marshal and the marshal context (BuildKit Go: state.go Marshal, marshal.go,
// sourcemap.go).
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "base/status.h"
#include "base/strings.h"
#include "llb/caps.h"
#include "llb/definition.h"
#include "llb/go_compat.h"
#include "llb/state.h"

namespace kiln::llb {

absl::StatusOr<const MarshaledVertex*> MarshalContext::MarshalVertex(const Vertex& v) {
  if (auto it = memo_.find(&v); it != memo_.end()) return &it->second;
  KILN_ASSIGN_OR_RETURN(MarshaledVertex mv, v.Marshal(*this));
  auto [it, inserted] = memo_.emplace(&v, std::move(mv));
  return &it->second;
}

absl::StatusOr<pb::Input> MarshalContext::ToInput(const Output& out) {
  const Vertex* v = out.vertex();
  if (v == nullptr) return absl::FailedPreconditionError("LLB output used before it was bound");
  KILN_ASSIGN_OR_RETURN(int64_t index, out.index());
  KILN_ASSIGN_OR_RETURN(const MarshaledVertex* mv, MarshalVertex(*v));
  pb::Input in;
  in.set_digest(mv->digest.str());
  in.set_index(index);
  return in;
}

namespace {

// Go's sourceMapCollector: source maps in order of first use, locations per op digest.
class SourceMapCollector {
 public:
  void Add(const Digest& digest, const std::vector<SourceLocation>& locations) {
    for (const SourceLocation& l : locations) {
      if (index_.emplace(l.source_map.get(), maps_.size()).second) maps_.push_back(l.source_map);
    }
    auto& list = locations_[digest.str()];
    list.insert(list.end(), locations.begin(), locations.end());
  }

  absl::Status MarshalInto(const Constraints& caller_constraints, pb::Source* out) const {
    for (const auto& sm : maps_) {
      pb::SourceInfo* info = out->add_infos();
      info->set_filename(sm->filename);
      info->set_data(sm->data);
      if (sm->definition) {
        *info->mutable_definition() = *sm->definition;
      } else if (sm->state) {
        KILN_ASSIGN_OR_RETURN(*info->mutable_definition(), sm->state->Marshal(caller_constraints));
      }
    }
    for (const auto& [digest, locations] : locations_) {
      pb::Locations& pl = (*out->mutable_locations())[digest];
      for (const SourceLocation& l : locations) {
        pb::Location* loc = pl.add_locations();
        loc->set_sourceindex(static_cast<int32_t>(index_.at(l.source_map.get())));
        for (const Range& r : l.ranges) {
          pb::Range* pr = loc->add_ranges();
          // Start and end are non-nullable in BuildKit's schema: always written.
          pr->mutable_start()->set_line(r.start.line);
          pr->mutable_start()->set_character(r.start.character);
          pr->mutable_end()->set_line(r.end.line);
          pr->mutable_end()->set_character(r.end.character);
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::shared_ptr<const SourceMap>> maps_;
  std::map<const SourceMap*, size_t> index_;
  // Unordered: the pb map is serialized sorted by key anyway.
  std::unordered_map<std::string, std::vector<SourceLocation>> locations_;
};

struct Frame {
  const Vertex* vertex;
  std::vector<std::shared_ptr<const Output>> inputs;
  size_t next = 0;
};

}  // namespace

absl::StatusOr<pb::Definition> State::Marshal(const Constraints& constraints) const {
  Constraints c;
  c.platform = DefaultPlatform();
  c.local_unique_id = NewRandomID();
  if (marshal_defaults_) c.Apply(*marshal_defaults_);
  c.Apply(constraints);

  pb::Definition def;
  if (output_ == nullptr) return def;
  if (output_->vertex() == nullptr) {
    return absl::FailedPreconditionError("marshal LLB: the state's output was never bound");
  }

  MarshalContext ctx(c);
  SourceMapCollector source_maps;
  std::unordered_set<const Vertex*> done, in_progress;
  std::unordered_set<std::string> emitted;
  std::vector<Frame> stack;
  stack.push_back({output_->vertex(), output_->vertex()->Inputs()});
  in_progress.insert(output_->vertex());
  // Depth-first, inputs before users (iterative so long chains cannot exhaust the stack).
  while (!stack.empty()) {
    Frame& top = stack.back();
    if (top.next < top.inputs.size()) {
      const Vertex* in = top.inputs[top.next++]->vertex();
      if (in == nullptr) {
        return absl::FailedPreconditionError(
            "marshal LLB: an op uses an output that was never bound");
      }
      if (done.count(in)) continue;
      if (!in_progress.insert(in).second) {
        return absl::InvalidArgumentError(
            "marshal LLB: the graph has a cycle (an exec mounts its own result)");
      }
      stack.push_back({in, in->Inputs()});
      continue;
    }
    const Vertex* v = top.vertex;
    absl::StatusOr<const MarshaledVertex*> mv = ctx.MarshalVertex(*v);
    if (!mv.ok()) return absl::InvalidArgumentError(StrCat("marshal LLB: ", mv.status().message()));
    const MarshaledVertex& m = **mv;
    auto& md = (*def.mutable_metadata())[m.digest.str()];
    md = MergeMetadata(std::move(md), m.metadata);
    source_maps.Add(m.digest, m.locations);
    if (emitted.insert(m.digest.str()).second) def.add_def(m.bytes);
    done.insert(v);
    in_progress.erase(v);
    stack.pop_back();
  }

  absl::StatusOr<pb::Input> result = ctx.ToInput(*output_);
  if (!result.ok())
    return absl::InvalidArgumentError(StrCat("marshal LLB: ", result.status().message()));
  pb::Op terminal;
  *terminal.add_inputs() = *std::move(result);
  std::string bytes = SerializeDeterministic(terminal);
  pb::OpMetadata md;
  (*md.mutable_caps())[kCapConstraints] = true;
  (*md.mutable_caps())[kCapPlatform] = true;
  for (const auto& [digest, m] : def.metadata()) {
    if (m.ignore_cache()) (*md.mutable_caps())[kCapMetaIgnoreCache] = true;
    if (m.description_size() > 0) (*md.mutable_caps())[kCapMetaDescription] = true;
    if (m.has_export_cache()) (*md.mutable_caps())[kCapMetaExportCache] = true;
  }
  (*def.mutable_metadata())[OpDigest(bytes).str()] = std::move(md);
  def.add_def(std::move(bytes));
  KILN_RETURN_IF_ERROR(source_maps.MarshalInto(constraints, def.mutable_source()));
  return def;
}

}  // namespace kiln::llb
