// How `kilnctl build --progress=...` shows a build, as buildctl does:
//   plain    BuildKit's plain lines (#5 [2/4] RUN make / #5 CACHED / #5 DONE 0.3s)
//   tty      a live view: finished steps scroll, running steps are redrawn in place with their
//            elapsed time and last log line, under a running "[+] Building 3.2s (5/9)" header
//   rawjson  one JSON object per event (BuildKit's SolveStatus fields), for tools
//   quiet    nothing
//   auto     tty when stderr is a terminal, else plain
//
// Thread-safety: the sinks are ProgressSinks (called from several threads at once).
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/solver/progress.h"

namespace kiln::tools::kilnctl {

// The sink for `mode`, writing to `out`; InvalidArgument for an unknown mode.
absl::StatusOr<std::shared_ptr<engine::ProgressSink>> NewProgressSink(const std::string& mode,
                                                                      std::FILE* out);

// Ends a live display (prints the final frame); a no-op for other sinks.
void FinishProgress(engine::ProgressSink& sink);

}  // namespace kiln::tools::kilnctl
