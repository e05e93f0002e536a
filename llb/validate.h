// Validation of an LLB graph received from a client or a frontend.
//
// Validate() accepts every definition BuildKit's Go client marshals and rejects, with
// InvalidArgument naming the op digest and the problem, what BuildKit's solver would refuse
// (solver/llbsolver/vertex.go loadLLB, ops/opsutils, the exec and file op solvers) plus values no
// well-formed client produces and the engine should never see:
//   * an empty definition, fewer than 2 distinct ops, no terminal op (the last op has an op
//     body and no other op lacks one), a terminal op without inputs;
//   * an op without an op body other than the terminal ("unknown op");
//   * inputs naming a digest that is not in the definition (or the terminal op), cycles;
//   * Input.index beyond the producer's outputs (see OutputCount);
//   * exec: no meta, no args, no mounts, no "/" mount, a relative mount dest, a mount input that
//     is not -1 or an op input, output numbers of the output-producing mounts that are not
//     0..n-1 in mount order (BuildKit orders results by mount position), cache/secret/ssh mounts
//     without their options, unknown enum values;
//   * file: no actions, an action without a body, input/secondaryInput that is not -1, an op
//     input, or (op inputs + N) for an EARLIER action N, outputs that are not unique and
//     contiguous from 0, empty paths, a by-name owner whose input is negative or out of range;
//   * source: empty identifier; merge/diff/build/passthrough: input indexes out of range;
//   * a source-map location whose sourceIndex names no SourceInfo.
// Ops that the terminal cannot reach are validated too.
//
// Thread-safety: pure functions.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "llb/definition.h"

namespace kiln::llb {

absl::Status Validate(const ParsedDefinition& def);

// Parse + Validate: what a daemon does with LLB it receives.
absl::StatusOr<ParsedDefinition> LoadDefinition(std::string_view definition_bytes);

// Number of results an op produces (the valid range of Input.index for its users): exec ops
// produce one per mount that MountProducesOutput, in mount order; file ops one per action with
// output >= 0; passthrough ops one per listed output; other ops exactly one.
int64_t OutputCount(const pb::Op& op);

// Whether an exec mount yields a result, as BuildKit's exec decides it: a bind mount with
// output >= 0, or a cache mount with output >= 0 and an input.  Tmpfs, secret and ssh mounts
// never do, whatever their output field says (Go's client leaves it 0 for secrets and ssh).
bool MountProducesOutput(const pb::Mount& m);

}  // namespace kiln::llb
