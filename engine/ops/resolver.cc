#include "engine/ops/resolver.h"

#include "base/status.h"
#include "base/strings.h"
#include "engine/ops/diff_op.h"
#include "engine/ops/exec_op.h"
#include "engine/ops/file_op.h"
#include "engine/ops/merge_op.h"

namespace kiln::engine {

OpResolver MakeResolver(const OpEnv& env) {
  return [env](const Vertex& vertex, const OpContext&) -> absl::StatusOr<std::unique_ptr<Op>> {
    const LlbOp* op = LlbOpOf(vertex);
    if (op == nullptr) {
      return absl::InvalidArgumentError(
          StrCat("vertex ", vertex.digest.str(), " carries no LLB op"));
    }
    switch (op->op.op_case()) {
      case pb::Op::kExec:
        return NewExecOp(*op, env);
      case pb::Op::kFile:
        return NewFileOp(*op, env);
      case pb::Op::kMerge:
        return NewMergeOp(*op, env);
      case pb::Op::kDiff:
        return NewDiffOp(*op, env);
      case pb::Op::kSource:
        return NewSourceOp(*op, env);
      case pb::Op::kBuild:
        return absl::UnimplementedError(
            StrCat("op ", op->digest.str(), ": build ops (nested LLB builds) are not supported"));
      default:
        return absl::InvalidArgumentError(StrCat("op ", op->digest.str(), ": unknown op type"));
    }
  };
}

}  // namespace kiln::engine
