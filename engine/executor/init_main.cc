#include "engine/executor/init_main.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "engine/executor/init_protocol.h"
#include "engine/executor/mount_util.h"
#include "engine/executor/seccomp_filter.h"
#include "engine/executor/user.h"

namespace kiln::engine {
namespace {

using internal::InitReport;
using internal::InitSpec;
using internal::ParsedMountOptions;
using internal::TargetKind;

constexpr uint64_t Cap(int c) { return uint64_t{1} << c; }

// containerd's defaultUnixCaps, which BuildKit uses for every sandboxed step.
constexpr uint64_t kDefaultCaps =
    Cap(CAP_CHOWN) | Cap(CAP_DAC_OVERRIDE) | Cap(CAP_FSETID) | Cap(CAP_FOWNER) | Cap(CAP_MKNOD) |
    Cap(CAP_NET_RAW) | Cap(CAP_SETGID) | Cap(CAP_SETUID) | Cap(CAP_SETFCAP) | Cap(CAP_SETPCAP) |
    Cap(CAP_NET_BIND_SERVICE) | Cap(CAP_SYS_CHROOT) | Cap(CAP_KILL) | Cap(CAP_AUDIT_WRITE);

// containerd's default MaskedPaths and ReadonlyPaths (dropped in insecure mode).
constexpr const char* kMaskedPaths[] = {
    "/proc/acpi",          "/proc/asound",     "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/sys/firmware",       "/proc/scsi"};
constexpr const char* kReadonlyPaths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                          "/proc/sysrq-trigger"};

struct Device {
  const char* path;  // under /dev
  bool block;
  unsigned major, minor;
};
// runc's default devices.
constexpr Device kDefaultDevices[] = {{"null", false, 1, 3},    {"zero", false, 1, 5},
                                      {"full", false, 1, 7},    {"random", false, 1, 8},
                                      {"urandom", false, 1, 9}, {"tty", false, 5, 0}};
// What BuildKit's insecure entitlement adds.
constexpr Device kInsecureDevices[] = {
    {"kmsg", false, 1, 11},  {"cuse", false, 10, 203},    {"fuse", false, 10, 229},
    {"kvm", false, 10, 232}, {"net/tun", false, 10, 200}, {"loop-control", false, 10, 237}};

const std::map<std::string, int>& RlimitNames() {
  static const auto* names = new std::map<std::string, int>{
      {"as", RLIMIT_AS},           {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
      {"data", RLIMIT_DATA},       {"fsize", RLIMIT_FSIZE},       {"locks", RLIMIT_LOCKS},
      {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
      {"nofile", RLIMIT_NOFILE},   {"nproc", RLIMIT_NPROC},       {"rss", RLIMIT_RSS},
      {"rtprio", RLIMIT_RTPRIO},   {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
      {"stack", RLIMIT_STACK}};
  return *names;
}

void SendReport(const InitReport& report) {
  std::string line = internal::EncodeInitReport(report);
  std::string_view rest = line;
  while (!rest.empty()) {
    ssize_t n = ::send(internal::kInitReportFd, rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

absl::StatusOr<std::string> ReadAllFd(int fd, size_t limit) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("read");
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) return absl::ResourceExhaustedError("input too large");
  }
}

// Every signal back to its default action and unblocked: the daemon's dispositions (an ignored
// SIGPIPE, say) must not leak into the step.
void ResetSignals() {
  struct sigaction sa = {};
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &sa, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

std::string UnescapeMountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t j = 1; j <= 3; ++j) {
        char c = s[i + j];
        if (c < '0' || c > '7') ok = false;
        v = v * 8 + (c - '0');
      }
      if (ok) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

struct MountinfoEntry {
  std::string root;
  std::string mount_point;
  std::string fstype;
  std::vector<std::string> super_options;
};

std::vector<MountinfoEntry> ReadMountinfo() {
  std::vector<MountinfoEntry> out;
  absl::StatusOr<std::string> content = ReadFileToString("/proc/self/mountinfo");
  if (!content.ok()) return out;
  for (absl::string_view line : absl::StrSplit(*content, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    size_t dash = 0;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 5 || dash + 3 >= f.size()) continue;
    MountinfoEntry e;
    e.root = UnescapeMountinfo(FromAbsl(f[3]));
    e.mount_point = UnescapeMountinfo(FromAbsl(f[4]));
    e.fstype = std::string(f[dash + 1]);
    for (absl::string_view o : absl::StrSplit(f[dash + 3], ',')) e.super_options.emplace_back(o);
    out.push_back(std::move(e));
  }
  return out;
}

struct Caps {
  uint64_t effective = 0, permitted = 0, inheritable = 0;
};

absl::StatusOr<Caps> GetOwnCaps() {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return ErrnoStatus("capget");
  Caps c;
  c.effective = data[0].effective | (uint64_t{data[1].effective} << 32);
  c.permitted = data[0].permitted | (uint64_t{data[1].permitted} << 32);
  c.inheritable = data[0].inheritable | (uint64_t{data[1].inheritable} << 32);
  return c;
}

int SetCaps(const Caps& c) {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; ++i) {
    data[i].effective = static_cast<uint32_t>(c.effective >> (32 * i));
    data[i].permitted = static_cast<uint32_t>(c.permitted >> (32 * i));
    data[i].inheritable = static_cast<uint32_t>(c.inheritable >> (32 * i));
  }
  return static_cast<int>(::syscall(SYS_capset, &header, data));
}

std::string CleanPath(std::string_view p) {
  std::vector<std::string> parts;
  for (absl::string_view c : absl::StrSplit(ToAbsl(p), '/', absl::SkipEmpty())) {
    if (c == ".") continue;
    if (c == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.emplace_back(c);
  }
  return StrCat("/", absl::StrJoin(parts, "/"));
}

std::string ParentPath(const std::string& clean) {
  size_t slash = clean.rfind('/');
  return slash == 0 ? "/" : clean.substr(0, slash);
}

bool HasEnv(const std::vector<std::string>& env, std::string_view key) {
  for (const auto& e : env) {
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=') {
      return true;
    }
  }
  return false;
}

std::string GetEnv(const std::vector<std::string>& env, std::string_view key) {
  std::string value;
  for (const auto& e : env) {
    if (e.size() > key.size() && e.compare(0, key.size(), key) == 0 && e[key.size()] == '=') {
      value = e.substr(key.size() + 1);  // the last one wins, as getenv in the child would see
    }
  }
  return value;
}

// A mount of the step's plan.
struct PlannedMount {
  enum class Origin { kDefault, kUser, kCgroupView };
  MountSpec spec;
  Origin origin = Origin::kDefault;
};

class Init {
 public:
  explicit Init(InitSpec spec)
      : spec_(std::move(spec)), sandbox_(spec_.process.security == SecurityMode::kSandbox) {}

  absl::Status Setup();
  InitReport RunProcess();

 private:
  absl::Status MountRootfs();
  void NoteStubs();
  std::vector<PlannedMount> PlanMounts() const;
  bool CannotCreate(const std::string& path) const;
  absl::Status MountOne(const PlannedMount& m);
  absl::Status MountCgroupView();
  absl::Status SetupDevices();
  absl::Status PivotRoot();
  absl::Status MaskPaths();
  absl::Status BringUpLoopback();
  absl::StatusOr<std::string> ReadRootFile(const std::string& path);
  absl::Status PrepareProcess();
  [[noreturn]] void ExecChild(int err_fd);
  void KillAndReapAll();
  void CleanupStubs();

  InitSpec spec_;
  bool sandbox_;
  UniqueFd root_fd_;
  UniqueFd devnull_;
  int cap_last_ = CAP_LAST_CAP;
  uint64_t own_caps_ = 0;
  int free_loop_ = 0;
  std::vector<std::string> stubs_;
  internal::Identity id_;
  std::vector<std::string> env_;
  std::vector<std::pair<int, rlimit>> rlimits_;
};

absl::Status Init::Setup() {
  ::umask(0);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
    return ErrnoStatus("make the mount tree a slave of the host's");
  }
  devnull_.Reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull_) return ErrnoStatus("open /dev/null");
  if (auto last = ReadFileToString("/proc/sys/kernel/cap_last_cap"); last.ok()) {
    int v = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(*last), &v) && v > 0 && v < 64) cap_last_ = v;
  }
  KILN_ASSIGN_OR_RETURN(Caps own, GetOwnCaps());
  own_caps_ = own.permitted;
  if (!sandbox_) {
    UniqueFd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
    int id = ctl ? ::ioctl(ctl.get(), LOOP_CTL_GET_FREE) : -1;
    free_loop_ = id < 0 ? 0 : id;
  }
  for (const Rlimit& r : spec_.process.rlimits) {
    auto it = RlimitNames().find(r.name);
    if (it == RlimitNames().end()) {
      return absl::InvalidArgumentError(StrCat("unknown rlimit ", Quote(r.name)));
    }
    rlimits_.emplace_back(it->second, rlimit{r.soft, r.hard});
  }

  KILN_RETURN_IF_ERROR(MountRootfs());
  NoteStubs();
  for (const PlannedMount& m : PlanMounts()) {
    KILN_RETURN_IF_ERROR_CTX(MountOne(m), StrCat("mount ", internal::DescribeMount(m.spec)));
  }
  KILN_RETURN_IF_ERROR_CTX(SetupDevices(), "set up /dev");
  KILN_RETURN_IF_ERROR_CTX(PivotRoot(), "pivot_root into the root filesystem");
  if (sandbox_) KILN_RETURN_IF_ERROR_CTX(MaskPaths(), "mask /proc and /sys paths");
  if (::sethostname(spec_.process.hostname.data(), spec_.process.hostname.size()) != 0) {
    return ErrnoStatus(StrCat("sethostname ", Quote(spec_.process.hostname)));
  }
  if (spec_.process.network == NetworkMode::kNone) {
    KILN_RETURN_IF_ERROR_CTX(BringUpLoopback(), "bring up the loopback interface");
  }
  return PrepareProcess();
}

absl::Status Init::MountRootfs() {
  const MountSpec& root = spec_.mounts.front();
  UniqueFd target(::open(spec_.rootfs_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!target) return ErrnoStatus(StrCat("open ", Quote(spec_.rootfs_dir)));
  ParsedMountOptions opts = internal::ParseMountOptions(root.options);
  if (sandbox_) opts.attr_set |= MOUNT_ATTR_NODEV;
  absl::Status st = opts.bind
                        ? internal::BindMount(root.source, -1, opts, target.get())
                        : internal::MountFilesystem(root.type, root.source, opts, target.get());
  KILN_RETURN_IF_ERROR_CTX(
      st, StrCat("mount the root filesystem (", internal::DescribeMount(root), ")"));
  // Reopen: the old fd still names the directory underneath the new mount.
  root_fd_.Reset(::open(spec_.rootfs_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd_) return ErrnoStatus(StrCat("open ", Quote(spec_.rootfs_dir)));
  return absl::OkStatus();
}

// BuildKit's MountStubsCleaner: remember which mount targets do not exist in the image, so they
// can be removed after the run if they are still empty.
void Init::NoteStubs() {
  std::vector<std::string> targets = {"/etc/resolv.conf", "/etc/hosts"};
  for (size_t i = 1; i < spec_.mounts.size(); ++i) targets.push_back(spec_.mounts[i].target);
  for (const std::string& t : targets) {
    std::string p = CleanPath(t);
    while (p != "/" && !internal::ExistsInRoot(root_fd_.get(), p)) {
      stubs_.push_back(p);
      if (!spec_.process.remove_mount_stubs_recursive) break;
      p = ParentPath(p);
    }
  }
}

std::vector<PlannedMount> Init::PlanMounts() const {
  using O = PlannedMount::Origin;
  std::vector<PlannedMount> plan = {
      {{"proc", "proc", "/proc", {"nosuid", "noexec", "nodev"}}, O::kDefault},
      {{"tmpfs", "tmpfs", "/dev", {"nosuid", "strictatime", "mode=755", "size=65536k"}},
       O::kDefault},
      {{"devpts",
        "devpts",
        "/dev/pts",
        {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
       O::kDefault},
      {{"tmpfs", "shm", "/dev/shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
       O::kDefault},
      {{"mqueue", "mqueue", "/dev/mqueue", {"nosuid", "noexec", "nodev"}}, O::kDefault},
      {{"sysfs", "sysfs", "/sys", {"nosuid", "noexec", "nodev", sandbox_ ? "ro" : "rw"}},
       O::kDefault},
      {{"bind",
        spec_.resolv_conf_file,
        "/etc/resolv.conf",
        {"nosuid", "noexec", "nodev", "rbind", "ro"}},
       O::kDefault},
      {{"bind", spec_.hosts_file, "/etc/hosts", {"nosuid", "noexec", "nodev", "rbind", "ro"}},
       O::kDefault},
      {{"cgroup", "cgroup", "/sys/fs/cgroup", {}}, O::kCgroupView},
  };
  if (sandbox_) plan[1].spec.options.push_back("nodev");  // device nodes come as bind mounts
  // BuildKit's dedupMounts: a later mount on the same target replaces the earlier one in place.
  for (size_t i = 1; i < spec_.mounts.size(); ++i) {
    PlannedMount m{spec_.mounts[i], O::kUser};
    std::string target = CleanPath(m.spec.target);
    bool replaced = false;
    for (auto& existing : plan) {
      if (CleanPath(existing.spec.target) == target) {
        existing = m;
        replaced = true;
        break;
      }
    }
    if (!replaced) plan.push_back(std::move(m));
  }
  return plan;
}

// True when `path` is missing and would have to be created on a read-only filesystem (a
// read-only root without /proc, say): the executor's own mounts are then left out, as there is
// nothing the step could see them on.
bool Init::CannotCreate(const std::string& path) const {
  if (internal::ExistsInRoot(root_fd_.get(), path)) return false;
  absl::StatusOr<internal::ResolvedParent> p = internal::ResolveParentInRoot(root_fd_.get(), path);
  struct statvfs sv;
  return ::fstatvfs(p.ok() ? p->dir.get() : root_fd_.get(), &sv) == 0 &&
         (sv.f_flag & ST_RDONLY) != 0;
}

absl::Status Init::MountOne(const PlannedMount& m) {
  if (m.origin != PlannedMount::Origin::kUser && CannotCreate(m.spec.target)) {
    return absl::OkStatus();
  }
  if (m.origin == PlannedMount::Origin::kCgroupView) return MountCgroupView();
  ParsedMountOptions opts = internal::ParseMountOptions(m.spec.options);
  bool bind = opts.bind || m.spec.type == "bind";
  TargetKind kind = TargetKind::kDirectory;
  if (bind) {
    struct stat st;
    if (::stat(m.spec.source.c_str(), &st) != 0) {
      return ErrnoStatus(StrCat("stat mount source ", Quote(m.spec.source)));
    }
    if (!S_ISDIR(st.st_mode)) kind = TargetKind::kFile;
  }
  KILN_ASSIGN_OR_RETURN(UniqueFd target,
                        internal::MakeMountTarget(root_fd_.get(), m.spec.target, kind));
  if (m.origin == PlannedMount::Origin::kUser) {
    struct statfs fs;
    if (::fstatfs(target.get(), &fs) != 0) return ErrnoStatus("statfs mount target");
    if (fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC) {
      return absl::InvalidArgumentError(
          StrCat("mount target ", Quote(m.spec.target), " resolves into /proc or /sys"));
    }
    if (sandbox_) opts.attr_set |= MOUNT_ATTR_NODEV;
  }
  if (bind) return internal::BindMount(m.spec.source, -1, opts, target.get());
  return internal::MountFilesystem(m.spec.type, m.spec.source, opts, target.get());
}

// /sys/fs/cgroup as runc shows it without a cgroup namespace: the step's own cgroup of each
// hierarchy, read-only in the sandbox.
absl::Status Init::MountCgroupView() {
  ParsedMountOptions bind_opts;
  bind_opts.bind = bind_opts.recursive = true;
  bind_opts.attr_set =
      MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC | (sandbox_ ? MOUNT_ATTR_RDONLY : 0);
  absl::StatusOr<std::string> self = ReadFileToString("/proc/self/cgroup");
  if (!self.ok()) return self.status();
  struct statfs fs;
  if (::statfs("/sys/fs/cgroup", &fs) != 0) return absl::OkStatus();  // nothing to show
  KILN_ASSIGN_OR_RETURN(UniqueFd target, internal::MakeMountTarget(root_fd_.get(), "/sys/fs/cgroup",
                                                                   TargetKind::kDirectory));
  std::vector<std::pair<std::vector<std::string>, std::string>> own;  // controllers -> path
  for (absl::string_view line : absl::StrSplit(*self, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (f.size() != 3) continue;
    if (fs.f_type == CGROUP2_SUPER_MAGIC && f[0] == "0" && f[1].empty()) {
      return internal::BindMount(StrCat("/sys/fs/cgroup", f[2]), -1, bind_opts, target.get());
    }
    if (!f[1].empty()) own.emplace_back(absl::StrSplit(f[1], ','), f[2]);
  }
  if (fs.f_type == CGROUP2_SUPER_MAGIC) return absl::OkStatus();

  ParsedMountOptions tmpfs_opts =
      internal::ParseMountOptions({"nosuid", "nodev", "noexec", "mode=755"});
  KILN_RETURN_IF_ERROR(internal::MountFilesystem("tmpfs", "tmpfs", tmpfs_opts, target.get()));
  KILN_ASSIGN_OR_RETURN(UniqueFd view, internal::MakeMountTarget(root_fd_.get(), "/sys/fs/cgroup",
                                                                 TargetKind::kDirectory));
  for (const MountinfoEntry& e : ReadMountinfo()) {
    constexpr std::string_view kPrefix = "/sys/fs/cgroup/";
    if (e.fstype != "cgroup" || e.mount_point.compare(0, kPrefix.size(), kPrefix) != 0) continue;
    std::string name = e.mount_point.substr(kPrefix.size());
    if (name.empty() || name.find('/') != std::string::npos) continue;
    for (const auto& [controllers, path] : own) {
      bool all = true;
      for (const auto& c : controllers) {
        all = all &&
              std::find(e.super_options.begin(), e.super_options.end(), c) != e.super_options.end();
      }
      if (!all) continue;
      if (path.compare(0, e.root.size(), e.root) != 0) break;
      std::string rel = e.root == "/" ? path : path.substr(e.root.size());
      KILN_ASSIGN_OR_RETURN(UniqueFd dir,
                            internal::MakeMountTarget(view.get(), name, TargetKind::kDirectory));
      KILN_RETURN_IF_ERROR(internal::BindMount(StrCat(e.mount_point, rel == "/" ? "" : rel), -1,
                                               bind_opts, dir.get()));
      break;
    }
  }
  return absl::OkStatus();
}

absl::Status Init::SetupDevices() {
  if (CannotCreate("/dev")) return absl::OkStatus();
  KILN_ASSIGN_OR_RETURN(UniqueFd dev,
                        internal::MakeMountTarget(root_fd_.get(), "/dev", TargetKind::kDirectory));
  struct statvfs sv;
  if (::fstatvfs(dev.get(), &sv) == 0 && (sv.f_flag & ST_RDONLY)) return absl::OkStatus();
  // O_PATH fds cannot be used with mknodat/symlinkat; reopen as a real directory.
  UniqueFd dir(::openat(dev.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return ErrnoStatus("open /dev");
  auto make_node = [&](const Device& d) -> absl::Status {
    std::string path = d.path;
    if (size_t slash = path.find('/'); slash != std::string::npos) {
      ::mkdirat(dir.get(), path.substr(0, slash).c_str(), 0755);
    }
    mode_t mode = (d.block ? S_IFBLK : S_IFCHR) | 0666;
    if (::mknodat(dir.get(), path.c_str(), mode, makedev(d.major, d.minor)) != 0 &&
        errno != EEXIST) {
      return ErrnoStatus(StrCat("mknod /dev/", path));
    }
    return absl::OkStatus();
  };
  for (const Device& d : kDefaultDevices) {
    if (!sandbox_) {
      KILN_RETURN_IF_ERROR(make_node(d));
      continue;
    }
    // The sandbox's /dev is nodev (so CAP_MKNOD cannot open host disks without a device
    // cgroup); the few allowed devices are bind mounts of the host's nodes instead.
    std::string host = StrCat("/dev/", d.path);
    struct stat st;
    if (::stat(host.c_str(), &st) != 0 || !S_ISCHR(st.st_mode)) {
      if (std::string_view(d.path) == "tty") continue;
      return absl::FailedPreconditionError(StrCat("host device ", Quote(host), " is missing"));
    }
    KILN_ASSIGN_OR_RETURN(UniqueFd target,
                          internal::MakeMountTarget(dir.get(), d.path, TargetKind::kFile));
    ParsedMountOptions opts;
    opts.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
    KILN_RETURN_IF_ERROR(internal::BindMount(host, -1, opts, target.get()));
  }
  if (!sandbox_) {
    for (const Device& d : kInsecureDevices) KILN_RETURN_IF_ERROR(make_node(d));
    for (int i = 0; i <= free_loop_ + 7; ++i) {
      std::string name = StrCat("loop", i);
      KILN_RETURN_IF_ERROR(make_node(Device{name.c_str(), true, 7, static_cast<unsigned>(i)}));
    }
  }
  const std::pair<const char*, const char*> links[] = {{"/proc/self/fd", "fd"},
                                                       {"/proc/self/fd/0", "stdin"},
                                                       {"/proc/self/fd/1", "stdout"},
                                                       {"/proc/self/fd/2", "stderr"},
                                                       {"pts/ptmx", "ptmx"}};
  for (const auto& [to, name] : links) {
    if (::symlinkat(to, dir.get(), name) != 0 && errno != EEXIST) {
      return ErrnoStatus(StrCat("symlink /dev/", name));
    }
  }
  return absl::OkStatus();
}

absl::Status Init::PivotRoot() {
  if (::fchdir(root_fd_.get()) != 0) return ErrnoStatus("chdir into the root filesystem");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return ErrnoStatus("pivot_root");
  // The old root is now stacked on "/"; detaching it drops every host mount from this namespace.
  if (::umount2(".", MNT_DETACH) != 0) return ErrnoStatus("detach the old root");
  if (::chdir("/") != 0) return ErrnoStatus("chdir /");
  root_fd_.Reset(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd_) return ErrnoStatus("open /");
  return absl::OkStatus();
}

absl::Status Init::MaskPaths() {
  UniqueFd null_fd;
  if (auto null_dev = internal::ResolveParentInRoot(root_fd_.get(), "/dev/null"); null_dev.ok()) {
    null_fd.Reset(
        ::openat(null_dev->dir.get(), null_dev->name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  }
  for (const char* path : kMaskedPaths) {
    absl::StatusOr<internal::ResolvedParent> p =
        internal::ResolveParentInRoot(root_fd_.get(), path);
    if (!p.ok()) continue;
    UniqueFd fd(::openat(p->dir.get(), p->name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) continue;  // absent on this kernel
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(StrCat("stat ", path));
    absl::Status s;
    if (S_ISDIR(st.st_mode)) {
      ParsedMountOptions ro;
      ro.attr_set = MOUNT_ATTR_RDONLY;
      s = internal::MountFilesystem("tmpfs", "tmpfs", ro, fd.get());
    } else if (null_fd) {
      s = internal::BindMount("/dev/null", null_fd.get(), ParsedMountOptions{}, fd.get());
    }
    KILN_RETURN_IF_ERROR_CTX(s, StrCat("mask ", path));
  }
  for (const char* path : kReadonlyPaths) {
    absl::StatusOr<internal::ResolvedParent> p =
        internal::ResolveParentInRoot(root_fd_.get(), path);
    if (!p.ok()) continue;
    UniqueFd fd(::openat(p->dir.get(), p->name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) continue;
    KILN_RETURN_IF_ERROR_CTX(internal::RemountReadOnly(fd.get()),
                             StrCat("make ", path, " read-only"));
  }
  return absl::OkStatus();
}

absl::Status Init::BringUpLoopback() {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return ErrnoStatus("socket");
  struct ifreq ifr = {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) return ErrnoStatus("get flags of lo");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) return ErrnoStatus("set lo up");
  return absl::OkStatus();
}

// A small regular file of the root filesystem ("" when missing).  Non-blocking open and the
// type check keep a hostile image (a FIFO or /dev/zero as /etc/passwd) from hanging the init.
absl::StatusOr<std::string> Init::ReadRootFile(const std::string& path) {
  constexpr size_t kMaxSize = 16 << 20;
  absl::StatusOr<internal::ResolvedParent> p = internal::ResolveParentInRoot(root_fd_.get(), path);
  if (!p.ok()) return std::string();
  UniqueFd fd(
      ::openat(p->dir.get(), p->name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::string();
    return ErrnoStatus(StrCat("open ", Quote(path)));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(StrCat("stat ", Quote(path)));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(StrCat(Quote(path), " is not a regular file"));
  }
  absl::StatusOr<std::string> content = ReadAllFd(fd.get(), kMaxSize);
  if (!content.ok()) return Annotate(content.status(), StrCat("read ", Quote(path)));
  return content;
}

absl::Status Init::PrepareProcess() {
  KILN_ASSIGN_OR_RETURN(std::string passwd, ReadRootFile("/etc/passwd"));
  KILN_ASSIGN_OR_RETURN(std::string group, ReadRootFile("/etc/group"));
  KILN_ASSIGN_OR_RETURN(id_, internal::ResolveUser(spec_.process.user, passwd, group));
  env_ = spec_.process.env;
  if (!HasEnv(env_, "PATH")) env_.push_back(StrCat("PATH=", kDefaultPath));
  if (!HasEnv(env_, "HOME")) env_.push_back(StrCat("HOME=", id_.home));
  // BuildKit creates a missing working directory owned by the process's user.
  absl::StatusOr<UniqueFd> cwd =
      internal::MakeDirsInRoot(root_fd_.get(), spec_.process.cwd, id_.uid, id_.gid);
  if (!cwd.ok()) {
    return Annotate(cwd.status(), StrCat("create working directory ", Quote(spec_.process.cwd)));
  }
  return absl::OkStatus();
}

// Runs in the forked child: becomes the step's process or reports why not on `err_fd`.
[[noreturn]] void Init::ExecChild(int err_fd) {
  auto fail = [&](std::string_view what) {
    std::string msg = StrCat(what, ": ", std::strerror(errno));
    (void)!::write(err_fd, msg.data(), msg.size());
    ::_exit(127);
  };
  if (::setsid() < 0) fail("setsid");
  ::umask(022);
  for (const auto& [resource, limit] : rlimits_) {
    if (::setrlimit(resource, &limit) != 0) fail("setrlimit");
  }
  if (::chdir(spec_.process.cwd.c_str()) != 0) {
    fail(StrCat("chdir to working directory ", Quote(spec_.process.cwd)));
  }
  // Loaded while still root with CAP_SYS_ADMIN (no_new_privs stays off); nothing it refuses is
  // needed from here to execve.
  if (sandbox_) {
    if (int rc = internal::LoadSandboxSeccomp(); rc < 0) {
      errno = -rc;
      fail("load the seccomp filter");
    }
  }
  uint64_t caps = sandbox_ ? (kDefaultCaps & own_caps_) : own_caps_;
  for (int c = 0; c <= cap_last_; ++c) {
    if (!(caps & Cap(c)) && ::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0 && errno != EINVAL) {
      fail(StrCat("drop capability ", c, " from the bounding set"));
    }
  }
  if (::setgroups(id_.groups.size(), id_.groups.data()) != 0) fail("setgroups");
  if (::setresgid(id_.gid, id_.gid, id_.gid) != 0) fail(StrCat("setgid ", id_.gid));
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) fail("keep capabilities");
  if (::setresuid(id_.uid, id_.uid, id_.uid) != 0) fail(StrCat("setuid ", id_.uid));
  Caps want{caps, caps, sandbox_ ? 0 : caps};
  if (SetCaps(want) != 0) fail("set capabilities");
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) fail("clear ambient caps");
  if (!sandbox_) {
    for (int c = 0; c <= cap_last_; ++c) {
      if ((caps & Cap(c)) && ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) != 0) {
        fail(StrCat("raise ambient capability ", c));
      }
    }
  }
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) fail("reset keep-capabilities");

  std::vector<char*> argv, envp;
  for (auto& a : spec_.process.args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_) envp.push_back(e.data());
  envp.push_back(nullptr);
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  ResetSignals();

  const std::string& name = spec_.process.args.front();
  if (name.find('/') != std::string::npos) {
    ::execve(name.c_str(), argv.data(), envp.data());
    fail(StrCat("exec ", Quote(name)));
  }
  // Go's exec.LookPath over the step's PATH, which runc uses.
  int last_error = ENOENT;
  for (absl::string_view dir : absl::StrSplit(GetEnv(env_, "PATH"), ':')) {
    std::string candidate = StrCat(dir.empty() ? "." : FromAbsl(dir), "/", name);
    struct stat st;
    if (::stat(candidate.c_str(), &st) != 0 || S_ISDIR(st.st_mode) || !(st.st_mode & 0111)) {
      continue;
    }
    ::execve(candidate.c_str(), argv.data(), envp.data());
    last_error = errno;
    if (errno != ENOENT && errno != EACCES) fail(StrCat("exec ", Quote(candidate)));
  }
  if (last_error == ENOENT) {
    std::string msg = StrCat("exec: \"", name, "\": executable file not found in $PATH");
    (void)!::write(err_fd, msg.data(), msg.size());
    ::_exit(127);
  }
  errno = last_error;
  fail(StrCat("exec ", Quote(name)));
  ::_exit(127);
}

void Init::KillAndReapAll() {
  ::kill(-1, SIGKILL);  // every process of the namespace except this one
  for (;;) {
    pid_t r = ::waitpid(-1, nullptr, 0);
    if (r > 0 || (r < 0 && errno == EINTR)) continue;
    break;
  }
}

InitReport Init::RunProcess() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return {InitReport::Kind::kError, static_cast<int>(absl::StatusCode::kInternal),
            StrCat("pipe: ", std::strerror(errno))};
  }
  UniqueFd err_read(fds[0]), err_write(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) {
    return {InitReport::Kind::kError, static_cast<int>(absl::StatusCode::kInternal),
            StrCat("fork: ", std::strerror(errno))};
  }
  if (pid == 0) {
    err_read.Reset();
    ExecChild(err_write.get());
  }
  err_write.Reset();
  absl::StatusOr<std::string> exec_error = ReadAllFd(err_read.get(), 1 << 16);
  err_read.Reset();
  // Drop our copies of the output pipes: they close once the step's processes are gone.
  for (int fd = 0; fd <= 2; ++fd) ::dup2(devnull_.get(), fd);

  int status = 0;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(-1, &st, 0);
    if (r == pid) {
      status = st;
      break;
    }
    if (r < 0 && errno != EINTR) break;  // cannot happen while `pid` is unreaped
  }
  KillAndReapAll();
  CleanupStubs();
  if (exec_error.ok() && !exec_error->empty()) {
    return {InitReport::Kind::kExecError, 0, *exec_error};
  }
  if (WIFSIGNALED(status)) return {InitReport::Kind::kSignal, WTERMSIG(status), ""};
  return {InitReport::Kind::kExit, WEXITSTATUS(status), ""};
}

// Unmounts each stub's mounts and removes the stub if it is still an empty file or directory,
// keeping the parent directory's timestamps (BuildKit's MountStubsCleaner).
void Init::CleanupStubs() {
  for (const std::string& stub : stubs_) {
    absl::StatusOr<internal::ResolvedParent> p =
        internal::ResolveParentInRoot(root_fd_.get(), stub);
    if (!p.ok() || p->name.empty()) continue;
    std::string magic = StrCat("/proc/self/fd/", p->dir.get(), "/", p->name);
    for (int i = 0; i < 64 && ::umount2(magic.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0; ++i) {
    }
    struct stat st;
    if (::fstatat(p->dir.get(), p->name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    bool empty_file = S_ISREG(st.st_mode) && st.st_size == 0;
    if (!empty_file && !S_ISDIR(st.st_mode)) continue;
    UniqueFd parent(::openat(p->dir.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat pst;
    if (!parent || ::fstat(parent.get(), &pst) != 0) continue;
    if (::unlinkat(p->dir.get(), p->name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0) {
      continue;  // a non-empty directory stays, as in BuildKit
    }
    struct timespec times[2] = {pst.st_atim, pst.st_mtim};
    ::futimens(parent.get(), times);
  }
}

int Fail(const absl::Status& status) {
  SendReport(
      {InitReport::Kind::kError, static_cast<int>(status.code()), std::string(status.message())});
  return 1;
}

}  // namespace

int InitMain(int argc, char** argv) {
  (void)argc;
  (void)argv;
  ::fcntl(internal::kInitSpecFd, F_SETFD, FD_CLOEXEC);
  ::fcntl(internal::kInitReportFd, F_SETFD, FD_CLOEXEC);
  ResetSignals();
  // Keeps the step's processes from reading this process's memory or descriptors via /proc.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (::getpid() != 1) {
    return Fail(absl::FailedPreconditionError(
        "kiln-init must be started by the executor as PID 1 of a new pid namespace"));
  }
  absl::StatusOr<std::string> raw;
  {
    UniqueFd spec_fd(internal::kInitSpecFd);
    raw = ReadAllFd(spec_fd.get(), 64 << 20);
  }
  if (!raw.ok()) return Fail(Annotate(raw.status(), "read the spec"));
  absl::StatusOr<InitSpec> spec = internal::DecodeInitSpec(*raw);
  if (!spec.ok()) return Fail(spec.status());
  if (spec->mounts.empty() || spec->process.args.empty()) {
    return Fail(absl::InvalidArgumentError("spec without a root filesystem or arguments"));
  }
  Init init(*std::move(spec));
  if (absl::Status st = init.Setup(); !st.ok()) return Fail(st);
  SendReport(init.RunProcess());
  return 0;
}

}  // namespace kiln::engine
