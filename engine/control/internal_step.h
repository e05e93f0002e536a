// A build step the engine performs outside the solver's graph (reading the Dockerfile,
// resolving an image's metadata, exporting), reported to the build's progress like a vertex,
// as BuildKit reports "[internal] load build definition" and "exporting to image".
//
// Thread-safety: one owner; the sink must be thread-safe (ProgressSink's contract).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "engine/solver/progress.h"

namespace kiln::engine {

class InternalStep {
 public:
  // Announces the step as started (nothing happens when `sink` is null).
  InternalStep(ProgressSink* sink, std::string name);
  // Announces it as completed, failed when Fail() was called.
  ~InternalStep();
  InternalStep(const InternalStep&) = delete;
  InternalStep& operator=(const InternalStep&) = delete;

  void Fail(const absl::Status& status) { vertex_.error = std::string(status.message()); }
  // A status line under this step ("exporting layers", "pushing manifest ...").
  void Status(StatusUpdate update);

 private:
  ProgressSink* sink_;
  VertexStatus vertex_;
};

}  // namespace kiln::engine
