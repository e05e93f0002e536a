// Per-op constraints and metadata of the LLB builder (BuildKit Go: llb.Constraints and its
// ConstraintsOpt helpers such as WithCustomName, Platform, IgnoreCache, ProgressGroup, Require,
// LocalUniqueID, WithCaps and SourceMap.Location).
//
// A Constraints value collects options; every builder call that takes "constraints" accepts
// one.  Go applies a list of options in order; here the fluent setters do the same, and
// Apply(other) layers one Constraints on top of another the way appending other's options would
// (set platform/ids/caps replace, descriptions and caps merge, worker filters and source
// locations append, ignore-cache is sticky).
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/oci.h"
#include "llb/pb/ops.pb.h"

namespace kiln::llb {

class State;

// A position in a source file; lines are 1-based as the Dockerfile frontend records them.
struct Position {
  int32_t line = 0;
  int32_t character = 0;
  bool operator==(const Position&) const = default;
};

struct Range {
  Position start;
  Position end;
  bool operator==(const Range&) const = default;
};

// A source file (typically the Dockerfile) that ops point into.  Go: llb.SourceMap.  Its
// SourceInfo in the marshaled Definition carries `filename`, `data` and a definition: the
// explicit `definition` when set, else `state` marshaled with the caller's marshal constraints.
// Identity matters: all locations that share one SourceMap object share one SourceInfo.
struct SourceMap {
  std::string filename;
  std::string data;
  std::shared_ptr<const State> state;        // may be null
  std::optional<pb::Definition> definition;  // wins over `state`

  static std::shared_ptr<SourceMap> Create(std::string filename, std::string data,
                                           std::shared_ptr<const State> state = nullptr) {
    auto sm = std::make_shared<SourceMap>();
    sm->filename = std::move(filename);
    sm->data = std::move(data);
    sm->state = std::move(state);
    return sm;
  }
};

struct SourceLocation {
  std::shared_ptr<const SourceMap> source_map;
  std::vector<Range> ranges;
};

// The LLB caps a daemon supports (Go: apicaps.CapSet), e.g. from the LLBBridge Ping reply.
using CapSet = std::set<std::string, std::less<>>;

struct Constraints {
  // Platform of the op; unset = inherit (from the state, then the marshal defaults, then this
  // machine).  Stored as given, not normalized (as Go's llb.Platform does).
  std::optional<oci::Platform> platform;
  std::vector<std::string> worker_constraints;
  // Metadata recorded for the op: description (custom name), ignore_cache, export_cache,
  // progress_group, caps.
  pb::OpMetadata metadata;
  // Value of "local.unique" for local sources without a session id (Go: LocalUniqueID); empty =
  // unset.  State::Marshal draws a random one when no constraints set it.
  std::string local_unique_id;
  // Caps the target daemon supports.  Unset = unknown (Go: nil CapSet).  Only consulted by exec
  // ops: without "exec.meta.setsdefaultpath" support they add PATH themselves.
  std::optional<CapSet> caps;
  std::vector<SourceLocation> source_locations;

  Constraints& WithPlatform(const oci::Platform& p);
  Constraints& WithCustomName(std::string_view name);  // description["llb.customname"]
  Constraints& WithDescription(const std::map<std::string, std::string>& description);
  Constraints& WithIgnoreCache();
  Constraints& WithExportCache(bool export_cache);  // Go: WithExportCache / WithoutExportCache
  Constraints& WithProgressGroup(std::string_view id, std::string_view name, bool weak);
  Constraints& Require(const std::vector<std::string>& filters);  // worker filters
  Constraints& WithLocalUniqueID(std::string_view id);
  Constraints& WithCaps(CapSet caps);
  // Go: SourceMap.Location(ranges).  A null source map adds nothing, as in Go.
  Constraints& WithLocation(std::shared_ptr<const SourceMap> source_map, std::vector<Range> ranges);
  // Records a cap in metadata.caps (what an op requires from the daemon).
  Constraints& AddCap(std::string_view cap);
  // Layers `other` on top of this one (see the file comment).
  Constraints& Apply(const Constraints& other);
};

// Go's mergeMetadata(m1, m2): m2's ignore_cache/export_cache/progress_group/descriptions/caps
// layered over m1.
pb::OpMetadata MergeMetadata(pb::OpMetadata m1, const pb::OpMetadata& m2);

// Go's MarshalConstraints(base, override): the op skeleton (platform + worker constraints, both
// always present) and the metadata an op records.  The platform is override's, else base's,
// else DefaultPlatform().
struct MarshaledConstraints {
  pb::Op op;
  pb::OpMetadata metadata;
};
MarshaledConstraints MarshalConstraints(const Constraints& base, const Constraints& override);

}  // namespace kiln::llb
