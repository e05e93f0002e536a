#include "engine/ops/llb_op.h"

#include <any>

#include "absl/strings/str_join.h"
#include "base/strings.h"

namespace kiln::engine {

std::string LlbOp::Name() const {
  auto it = metadata.description().find("llb.customname");
  if (it != metadata.description().end()) return it->second;
  switch (op.op_case()) {
    case pb::Op::kExec:
      return StrCat("exec ", absl::StrJoin(op.exec().meta().args(), " "));
    case pb::Op::kSource:
      return op.source().identifier();
    case pb::Op::kFile:
      return "file";
    case pb::Op::kMerge:
      return "merge";
    case pb::Op::kDiff:
      return "diff";
    case pb::Op::kBuild:
      return "build";
    default:
      return digest.str();
  }
}

const LlbOp* LlbOpOf(const Vertex& vertex) { return std::any_cast<LlbOp>(&vertex.sys); }

}  // namespace kiln::engine
