// ExecOp: an LLB RUN, as BuildKit's solver/llbsolver/ops/exec.go.
//
// Mounts (frontend/gateway PrepareMounts semantics):
//   * bind with an output: read-only and not "/" -> the output is the input itself; otherwise a
//     new active snapshot on the input (scratch: empty), committed as that output.  So the root
//     output's parent is the root input and each RUN is one layer.
//   * bind without an output: read-only -> a view of the input; writable (or scratch) -> a
//     throwaway active snapshot, dropped after the run.
//   * a selector mounts only that sub-path of the input, resolved inside the input's tree.
//   * cache: a persistent directory (mounts.h CacheMounts); with an output, the output is the
//     `from` input unchanged.  tmpfs: size option.  secret: a file on a private tmpfs, bound
//     read-only; missing and optional -> skipped; missing and required -> NotFound naming the id.
//     ssh: a relayed agent socket (the frontend sets SSH_AUTH_SOCK itself, not the op).
//   * relative destinations are taken relative to the working directory; mounts are made in
//     destination order after the root.
// Process: args, env (+ proxy variables, + PATH when missing, + secret env), cwd, user,
// hostname, extra hosts, network (UNSET/HOST: host, NONE: none), security, ulimits, valid exit
// codes, removeMountStubsRecursive.  Output goes to ctx.progress.Log(1|2, ...).
// Everything but the committed outputs (active snapshots, views, host mounts, cache leases,
// secret files, relays) is released on every path.
//
// Cache map: BuildKit's: sha256 of {"Type":"buildkit.exec.v0","Exec":<Go JSON of the ExecOp with
// mount selectors, extra-host IPs and proxy env cleared; the mounts dropped for a lone plain root
// mount>,"OS":..,"Arch":..,"Variant":..}; per input, the selector = sha256 of its mounts'
// selectors, and a content checksum of the selected paths unless the input is mounted writable
// with an output (or as the root with an output).  Secret values never enter it (only ids).
//
// Thread-safety: as engine::Op.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "engine/ops/llb_op.h"
#include "engine/solver/types.h"

namespace kiln::engine {

absl::StatusOr<std::unique_ptr<Op>> NewExecOp(const LlbOp& op, const OpEnv& env);

// The cache map of an exec op with `num_inputs` inputs on `platform` (content functions use
// `worker`, which may be null for a digest-only computation).
absl::StatusOr<CacheMap> ExecOpCacheMap(const pb::ExecOp& op, int num_inputs,
                                        const oci::Platform& platform, Worker* worker);

}  // namespace kiln::engine
