#include "engine/executor/seccomp_filter.h"

#include <cerrno>

#include <linux/sched.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>

namespace kiln::engine::internal {
namespace {

// What Docker's default profile refuses to a process holding only BuildKit's default
// capabilities (CAP_SYS_ADMIN, CAP_SYS_TIME, CAP_SYS_NICE, CAP_SYS_PTRACE, ... are not among
// them), plus calls it never allows.  Names unknown on this architecture are skipped.
constexpr const char* kRefused[] = {
    "acct",
    "add_key",
    "bpf",
    "clock_settime",
    "create_module",
    "delete_module",
    "fanotify_init",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "migrate_pages",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setdomainname",
    "sethostname",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "syslog",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "vm86",
    "vm86old",
};

constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
                                        CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};

class Filter {
 public:
  Filter() : ctx_(seccomp_init(SCMP_ACT_ALLOW)) {}
  ~Filter() {
    if (ctx_ != nullptr) seccomp_release(ctx_);
  }
  Filter(const Filter&) = delete;
  Filter& operator=(const Filter&) = delete;
  scmp_filter_ctx get() const { return ctx_; }

 private:
  scmp_filter_ctx ctx_;
};

int Build(const Filter& f) {
  // libseccomp sets no_new_privs by default; BuildKit's steps run without it (setuid works).
  if (int rc = seccomp_attr_set(f.get(), SCMP_FLTATR_CTL_NNP, 0); rc < 0) return rc;
  for (const char* name : kRefused) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr < 0) continue;  // not a system call of this architecture
    if (int rc = seccomp_rule_add(f.get(), SCMP_ACT_ERRNO(EPERM), nr, 0); rc < 0) return rc;
  }
  for (uint64_t flag : kNamespaceFlags) {
    if (int rc = seccomp_rule_add(f.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                  SCMP_A0_64(SCMP_CMP_MASKED_EQ, flag, flag));
        rc < 0) {
      return rc;
    }
  }
  if (int nr = seccomp_syscall_resolve_name("clone3"); nr >= 0) {
    if (int rc = seccomp_rule_add(f.get(), SCMP_ACT_ERRNO(ENOSYS), nr, 0); rc < 0) return rc;
  }
  return seccomp_rule_add(f.get(), SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                          SCMP_A0_64(SCMP_CMP_EQ, AF_VSOCK));
}

}  // namespace

int LoadSandboxSeccomp() {
  if (::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL) return 0;
  Filter f;
  if (f.get() == nullptr) return -ENOMEM;
  if (int rc = Build(f); rc < 0) return rc;
  return seccomp_load(f.get());
}

}  // namespace kiln::engine::internal
