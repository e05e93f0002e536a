// Test fixtures for anything that runs build steps: a busybox root filesystem made from
// Debian's busybox-static, and checks for the privileges namespace tests need.
//
// Library engine/executor/testing (link kiln_engine_executor_testing from a TESTS target).
// Thread-safety: functions are independent; do not build two rootfs in the same directory.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace kiln::engine::testing {

inline constexpr char kBusyboxPath[] = "/bin/busybox";

// Fills the existing empty directory `dir` with a minimal image:
//   /bin/busybox and a symlink to it for every applet (`busybox --list-full`),
//   /etc/passwd  root (0:0, /root), nobody (65534:65534, /nonexistent), app (1000:1000, /home/app)
//   /etc/group   root 0, wheel 10 (root, app), staff 50 (app), app 1000, nogroup 65534
//   /tmp (1777), /root (0700), /home/app (owned by app).
// No /etc/hosts or /etc/resolv.conf: the executor provides them.
absl::Status MakeBusyboxRootfs(const std::string& dir);

// "" when namespace tests can run here (root, busybox-static installed, unshare works);
// otherwise why not, for GTEST_SKIP().
std::string NamespaceTestSkipReason();

}  // namespace kiln::engine::testing
