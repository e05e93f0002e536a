// The seccomp filter of sandboxed steps.
//
// BuildKit applies Docker's default seccomp profile to every sandboxed step (SecurityMode
// kSandbox; none in kInsecure).  Docker's profile is an allow-list evaluated against the
// process's capabilities; for BuildKit's default capability set it refuses (EPERM) the system
// calls listed in seccomp_filter.cc: namespace creation and joining (unshare, setns, clone with
// CLONE_NEW* flags), the mount API, keyrings, bpf, perf events, userfaultfd, module loading,
// kexec, reboot, swap, clock setting, NUMA policy, raw I/O ports, open_by_handle_at, syslog,
// AF_VSOCK sockets; clone3 fails with ENOSYS so libc falls back to clone, whose flags can be
// checked.  Kiln states the same decisions as a deny-list on a default-allow filter: system
// calls newer than the list are allowed (Docker's would refuse them until listed).
//
// Thread-safety: call from a single-threaded process (kiln-init's child).
#pragma once

namespace kiln::engine::internal {

// Installs the filter on the calling process; it survives fork and execve.  Must run while the
// caller still has CAP_SYS_ADMIN, since no_new_privs is left unset (as BuildKit does).
// Returns 0, or a negative errno.  A kernel without seccomp support gets no filter (0), like
// BuildKit when seccomp is unavailable.
int LoadSandboxSeccomp();

}  // namespace kiln::engine::internal
