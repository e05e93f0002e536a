// Per-run cgroups that carry a step's memory and pids limits.
//
// CgroupSetup detects once which hierarchy the machine has:
//   - cgroup v2 mounted at /sys/fs/cgroup: runs go to /sys/fs/cgroup/<parent>/<id>, the parent
//     enabling the memory and pids controllers; a run is started inside it with
//     clone3(CLONE_INTO_CGROUP) and ended with cgroup.kill.
//   - cgroup v1 (or hybrid, as on hosts whose memory/pids controllers are bound to v1): one
//     directory per needed controller, /sys/fs/cgroup/<memory|pids>/<parent>/<id>; the run's
//     init process is written into cgroup.procs before it does anything.
// RunCgroup owns the directories: its destructor kills whatever is still inside and removes
// them.
//
// Thread-safety: CgroupSetup is immutable after Detect() and may be shared; a RunCgroup belongs
// to one run.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"
#include "engine/executor/executor.h"

namespace kiln::engine::internal {

class RunCgroup {
 public:
  ~RunCgroup();
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;

  // cgroup v2: the directory fd for CLONE_INTO_CGROUP; -1 on v1.
  int clone_fd() const { return clone_fd_.get(); }

  // cgroup v1: moves `pid` into every per-run directory (v2: nothing to do).
  absl::Status AddProcess(pid_t pid);

  // The OOM killer killed a process of this cgroup.
  bool OomKilled() const;

  // Kills every process left inside and removes the directories (what the destructor does);
  // reports the first failure.
  absl::Status Remove();

 private:
  friend class CgroupSetup;
  RunCgroup() = default;
  bool v2_ = false;
  std::vector<std::string> dirs_;  // per-run directories, one per hierarchy
  UniqueFd clone_fd_;
  bool removed_ = false;
};

class CgroupSetup {
 public:
  // Never fails: an unusable machine gives a setup whose available() is false and whose
  // detail() says why.
  static CgroupSetup Detect(std::string parent, std::string root = "/sys/fs/cgroup");

  bool available() const { return available_; }
  const std::string& detail() const { return detail_; }
  bool v2() const { return v2_; }

  // A new cgroup `id` with `limits` applied.  FailedPrecondition when limits are not supported.
  // With no limits at all, v2 still makes a (controller-less) cgroup; v1 makes none.
  absl::StatusOr<std::unique_ptr<RunCgroup>> Create(const std::string& id,
                                                    const ResourceLimits& limits) const;

  // Removes per-run cgroups left under the parent (after killing their processes).
  absl::Status RemoveStale() const;

 private:
  bool available_ = false;
  bool v2_ = false;
  std::string detail_;
  std::string parent_;
  std::string v2_root_;      // the unified hierarchy, when it is mounted at the root
  std::string memory_root_;  // where the memory controller is usable ("" if nowhere)
  std::string pids_root_;
};

}  // namespace kiln::engine::internal
