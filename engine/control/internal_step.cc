#include "engine/control/internal_step.h"

#include "base/digest.h"
#include "base/strings.h"

namespace kiln::engine {

InternalStep::InternalStep(ProgressSink* sink, std::string name) : sink_(sink) {
  if (!sink_) return;
  vertex_.digest = Digest::Sha256Of(StrCat("kiln.internal\n", name));
  vertex_.name = std::move(name);
  vertex_.started = Clock::now();
  sink_->OnVertex(vertex_);
}

InternalStep::~InternalStep() {
  if (!sink_) return;
  vertex_.completed = Clock::now();
  sink_->OnVertex(vertex_);
}

void InternalStep::Status(StatusUpdate update) {
  if (!sink_) return;
  update.vertex = vertex_.digest;
  if (update.timestamp == Clock::time_point{}) update.timestamp = Clock::now();
  sink_->OnStatus(update);
}

}  // namespace kiln::engine
