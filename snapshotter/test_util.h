// Helpers shared by the snapshotter tests (not part of the library).
#pragma once

#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/status.h"
#include "gtest/gtest.h"
#include "snapshotter/overlay_snapshotter.h"

namespace kiln::snapshotter::testing {

inline void WriteFile(const std::string& path, std::string_view data, int mode = 0644) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << "open " << path << ": " << strerror(errno);
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(fd);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

inline std::string ReadOrEmpty(const std::string& path) {
  auto s = ReadFileToString(path);
  return s.ok() ? *s : std::string("<missing>");
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Empty string when overlayfs works here, else the reason to skip.
inline std::string OverlaySkipReason() {
  static std::string reason = [] {
    absl::Status s = CheckOverlaySupport("/tmp");
    return s.ok() ? std::string() : std::string(s.message());
  }();
  return reason;
}

#define KILN_SKIP_WITHOUT_OVERLAY()                                                    \
  do {                                                                                 \
    if (std::string r = ::kiln::snapshotter::testing::OverlaySkipReason(); !r.empty()) \
      GTEST_SKIP() << "overlayfs not available (needs root + overlay): " << r;         \
  } while (false)

#define KILN_SKIP_WITHOUT_ROOT()                                               \
  do {                                                                         \
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mounts, chown, mknod)"; \
  } while (false)

}  // namespace kiln::snapshotter::testing
