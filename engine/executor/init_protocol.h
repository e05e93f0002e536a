// What the executor and kiln-init say to each other.
//
// kiln-init starts with these descriptors:
//   0 /dev/null, 1 and 2 the output pipes, 3 the spec channel, 4 the report channel.
// The executor writes one InitSpec (MessagePack) on fd 3 and closes it.  kiln-init writes JSON
// InitReport objects, one per line, on fd 4: at most one "error" (setup failed, nothing ran) or
// one "exit"/"signal"/"exec_error" (the process ran or could not be started), then exits.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/executor/executor.h"

namespace kiln::engine::internal {

inline constexpr int kInitSpecFd = 3;
inline constexpr int kInitReportFd = 4;

struct InitSpec {
  std::string rootfs_dir;         // host directory the root filesystem is mounted on
  std::vector<MountSpec> mounts;  // mounts[0] is the root filesystem
  std::string hosts_file;         // host paths of the generated files
  std::string resolv_conf_file;
  ProcessSpec process;  // hostname already defaulted; limits are the executor's
};

std::string EncodeInitSpec(const InitSpec& spec);
absl::StatusOr<InitSpec> DecodeInitSpec(std::string_view json);

struct InitReport {
  enum class Kind { kError, kExit, kSignal, kExecError };
  Kind kind = Kind::kError;
  int value = 0;        // exit code, signal number, or absl::StatusCode for kError
  std::string message;  // kError / kExecError
};

std::string EncodeInitReport(const InitReport& report);  // one line, '\n' terminated
absl::StatusOr<InitReport> DecodeInitReport(std::string_view line);

}  // namespace kiln::engine::internal
