#include "engine/solver/solver.h"

#include "engine/solver/scheduler.h"

namespace kiln::engine {

Job::~Job() { scheduler_->DiscardJob(state_); }

Solver::Solver(std::shared_ptr<CacheStorage> storage, std::shared_ptr<ResultLoader> loader,
               SolverOptions options)
    : scheduler_(
          std::make_unique<internal::Scheduler>(std::move(storage), std::move(loader), options)) {}

Solver::~Solver() = default;

std::unique_ptr<Job> Solver::NewJob(JobOptions options) {
  std::string id = options.id;
  internal::JobState* state = scheduler_->NewJob(std::move(options));
  return std::unique_ptr<Job>(new Job(scheduler_.get(), state, std::move(id)));
}

absl::StatusOr<ResultRef> Solver::Build(Job& job, const Edge& target, const CancelToken& cancel,
                                        BuildStats* stats) {
  return scheduler_->Build(job.state_, target, cancel, stats);
}

}  // namespace kiln::engine
