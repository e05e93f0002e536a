#include "snapshotter/mount.h"

#include <cerrno>
#include <map>
#include <thread>

#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include "absl/strings/str_join.h"
#include "base/fs.h"
#include "base/status.h"
#include "base/unique_fd.h"

namespace kiln::snapshotter {
namespace {

struct ParsedOptions {
  unsigned long flags = 0;
  std::vector<std::string> data;  // filesystem-specific options
};

ParsedOptions ParseOptions(const std::vector<std::string>& options) {
  static const std::map<std::string, std::pair<bool, unsigned long>> kFlags = {
      {"ro", {false, MS_RDONLY}},        {"rw", {true, MS_RDONLY}},
      {"bind", {false, MS_BIND}},        {"rbind", {false, MS_BIND | MS_REC}},
      {"nosuid", {false, MS_NOSUID}},    {"suid", {true, MS_NOSUID}},
      {"nodev", {false, MS_NODEV}},      {"dev", {true, MS_NODEV}},
      {"noexec", {false, MS_NOEXEC}},    {"exec", {true, MS_NOEXEC}},
      {"noatime", {false, MS_NOATIME}},  {"relatime", {false, MS_RELATIME}},
      {"sync", {false, MS_SYNCHRONOUS}}, {"async", {true, MS_SYNCHRONOUS}},
  };
  ParsedOptions out;
  for (const std::string& o : options) {
    auto it = kFlags.find(o);
    if (it == kFlags.end()) {
      out.data.push_back(o);
    } else if (it->second.first) {
      out.flags &= ~it->second.second;
    } else {
      out.flags |= it->second.second;
    }
  }
  return out;
}

std::vector<std::string> SplitColon(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(':', start);
    out.emplace_back(
        s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}

std::string JoinColon(const std::vector<std::string>& v) { return absl::StrJoin(v, ":"); }

std::string DataString(const std::vector<std::string>& data) { return absl::StrJoin(data, ","); }

// Longest directory that contains every path (ends without '/'); "" when only "/" is shared.
std::string CommonDir(const std::vector<std::string>& paths) {
  if (paths.empty()) return "";
  std::string prefix = paths[0];
  for (const std::string& p : paths) {
    size_t n = 0;
    while (n < prefix.size() && n < p.size() && prefix[n] == p[n]) ++n;
    prefix.resize(n);
  }
  // Cut back to a directory boundary that is a proper parent of every path.
  size_t slash = prefix.rfind('/');
  if (slash == std::string::npos) return "";
  for (const std::string& p : paths) {
    if (p.size() <= slash || p[slash] != '/') return "";
  }
  return prefix.substr(0, slash);
}

absl::Status PlainMount(const std::string& source, const std::string& target,
                        const std::string& type, unsigned long flags, const std::string& data) {
  if (::mount(source.c_str(), target.c_str(), type.c_str(), flags,
              data.empty() ? nullptr : data.c_str()) != 0) {
    return ErrnoStatus(StrCat("mount ", type, " on ", Quote(target)));
  }
  return absl::OkStatus();
}

// mount(2) from a thread whose cwd is `dir` (unshare(CLONE_FS) keeps the process's cwd).
absl::Status MountFromDir(const std::string& dir, const std::string& target, unsigned long flags,
                          const std::string& data) {
  absl::Status result;
  std::thread helper([&] {
    if (::unshare(CLONE_FS) != 0) {
      result = ErrnoStatus("unshare(CLONE_FS) for overlay mount");
      return;
    }
    if (::chdir(dir.c_str()) != 0) {
      result = ErrnoStatus(StrCat("chdir ", Quote(dir)));
      return;
    }
    result = PlainMount("overlay", target, "overlay", flags, data);
  });
  helper.join();
  return result;
}

absl::Status FsconfigMount(const std::string& target, unsigned long flags,
                           const std::vector<std::string>& data,
                           const std::vector<std::string>& lowers) {
  UniqueFd fs(::fsopen("overlay", FSOPEN_CLOEXEC));
  if (!fs) return ErrnoStatus("fsopen overlay");
  auto set = [&](const std::string& key, const std::string* value) -> absl::Status {
    int rc = value ? ::fsconfig(fs.get(), FSCONFIG_SET_STRING, key.c_str(), value->c_str(), 0)
                   : ::fsconfig(fs.get(), FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0);
    if (rc != 0) return ErrnoStatus(StrCat("overlay fsconfig ", Quote(key)));
    return absl::OkStatus();
  };
  for (const std::string& opt : data) {
    if (opt.starts_with("lowerdir=")) continue;
    size_t eq = opt.find('=');
    if (eq == std::string::npos) {
      KILN_RETURN_IF_ERROR(set(opt, nullptr));
    } else {
      std::string value = opt.substr(eq + 1);
      KILN_RETURN_IF_ERROR(set(opt.substr(0, eq), &value));
    }
  }
  for (const std::string& lower : lowers) {
    KILN_RETURN_IF_ERROR(set("lowerdir+", &lower));
  }
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    return ErrnoStatus(StrCat("create overlay for ", Quote(target)));
  }
  unsigned int attrs = 0;
  if (flags & MS_RDONLY) attrs |= MOUNT_ATTR_RDONLY;
  if (flags & MS_NOSUID) attrs |= MOUNT_ATTR_NOSUID;
  if (flags & MS_NODEV) attrs |= MOUNT_ATTR_NODEV;
  if (flags & MS_NOEXEC) attrs |= MOUNT_ATTR_NOEXEC;
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, attrs));
  if (!mnt) return ErrnoStatus(StrCat("fsmount overlay for ", Quote(target)));
  if (::move_mount(mnt.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    return ErrnoStatus(StrCat("move_mount overlay to ", Quote(target)));
  }
  return absl::OkStatus();
}

absl::Status MountOverlay(const Mount& m, const std::string& target, OverlayMountMethod method) {
  ParsedOptions opts = ParseOptions(m.options);
  std::string data = DataString(opts.data);
  const size_t limit = static_cast<size_t>(::getpagesize()) - 1;
  if (method == OverlayMountMethod::kPlain ||
      (method == OverlayMountMethod::kAuto && data.size() <= limit)) {
    return PlainMount(m.source.empty() ? "overlay" : m.source, target, "overlay", opts.flags, data);
  }
  OverlayDirs dirs = ParseOverlayDirs(m);
  if (method != OverlayMountMethod::kFsconfigAppend) {
    std::string common = CommonDir(dirs.lower);
    if (!common.empty()) {
      std::vector<std::string> rel;
      for (const std::string& l : dirs.lower) rel.push_back(l.substr(common.size() + 1));
      std::vector<std::string> rel_data;
      for (const std::string& o : opts.data) {
        rel_data.push_back(o.starts_with("lowerdir=") ? StrCat("lowerdir=", JoinColon(rel)) : o);
      }
      std::string short_data = DataString(rel_data);
      if (short_data.size() <= limit || method == OverlayMountMethod::kRelativeLowerdirs) {
        return MountFromDir(common, target, opts.flags, short_data);
      }
    } else if (method == OverlayMountMethod::kRelativeLowerdirs) {
      return absl::InvalidArgumentError("overlay lowerdirs share no common directory");
    }
  }
  return FsconfigMount(target, opts.flags, opts.data, dirs.lower);
}

absl::Status MountOne(const Mount& m, const std::string& target, OverlayMountMethod method) {
  if (m.type == "overlay") return MountOverlay(m, target, method);
  ParsedOptions opts = ParseOptions(m.options);
  if (m.type == "bind") opts.flags |= MS_BIND;
  std::string data = DataString(opts.data);
  if (opts.flags & MS_BIND) {
    unsigned long bind_flags = opts.flags & (MS_BIND | MS_REC);
    KILN_RETURN_IF_ERROR(PlainMount(m.source, target, "none", bind_flags, ""));
    unsigned long rest = opts.flags & ~(MS_BIND | MS_REC);
    if (rest != 0) {
      // Bind mounts ignore other flags until remounted.
      if (::mount("none", target.c_str(), nullptr, MS_REMOUNT | MS_BIND | rest, nullptr) != 0) {
        absl::Status s = ErrnoStatus(StrCat("remount ", Quote(target)));
        (void)UnmountPath(target);
        return s;
      }
    }
    return absl::OkStatus();
  }
  return PlainMount(m.source, target, m.type, opts.flags, data);
}

}  // namespace

OverlayDirs ParseOverlayDirs(const Mount& m) {
  OverlayDirs dirs;
  for (const std::string& o : m.options) {
    if (o.starts_with("lowerdir=")) dirs.lower = SplitColon(std::string_view(o).substr(9));
    if (o.starts_with("upperdir=")) dirs.upper = o.substr(9);
    if (o.starts_with("workdir=")) dirs.work = o.substr(8);
  }
  return dirs;
}

absl::Status UnmountPath(const std::string& path) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (::umount2(path.c_str(), UMOUNT_NOFOLLOW) == 0) return absl::OkStatus();
    if (errno == EINVAL || errno == ENOENT) return absl::OkStatus();  // not mounted
    if (errno != EBUSY) return ErrnoStatus(StrCat("unmount ", Quote(path)));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (::umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL) {
    return ErrnoStatus(StrCat("detach ", Quote(path)));
  }
  return absl::OkStatus();
}

ScopedMount::~ScopedMount() { (void)Unmount(); }

ScopedMount& ScopedMount::operator=(ScopedMount&& o) noexcept {
  if (this != &o) {
    (void)Unmount();
    mounted_ = std::exchange(o.mounted_, {});
  }
  return *this;
}

absl::StatusOr<ScopedMount> ScopedMount::MountAll(const std::vector<Mount>& mounts,
                                                  const std::string& target,
                                                  OverlayMountMethod method) {
  ScopedMount owner;
  for (const Mount& m : mounts) {
    std::string where = target;
    if (!m.target.empty()) {
      if (m.target.find("..") != std::string::npos) {
        return absl::InvalidArgumentError(StrCat("mount target ", Quote(m.target), " has `..`"));
      }
      where = StrCat(target, "/", m.target);
    }
    KILN_RETURN_IF_ERROR(MountOne(m, where, method));
    owner.mounted_.push_back(where);
  }
  return owner;
}

absl::Status ScopedMount::Unmount() {
  absl::Status first;
  while (!mounted_.empty()) {
    absl::Status s = UnmountPath(mounted_.back());
    if (!s.ok() && first.ok()) first = s;
    mounted_.pop_back();
  }
  return first;
}

absl::Status WithTempMount(const std::vector<Mount>& mounts, const std::string& parent_dir,
                           const std::function<absl::Status(const std::string& path)>& fn) {
  if (mounts.size() == 1 && mounts[0].type == "bind" && mounts[0].target.empty()) {
    return fn(mounts[0].source);
  }
  KILN_RETURN_IF_ERROR(MakeDirs(parent_dir, 0700));
  KILN_ASSIGN_OR_RETURN(TempDir dir, TempDir::Create("mnt-", parent_dir));
  absl::Status result;
  {
    KILN_ASSIGN_OR_RETURN(ScopedMount mounted, ScopedMount::MountAll(mounts, dir.path()));
    result = fn(dir.path());
    absl::Status u = mounted.Unmount();
    if (!u.ok()) {
      // Never let TempDir's recursive removal run into a still-mounted tree.
      dir.Release();
      return result.ok() ? u : result;
    }
  }
  return result;
}

}  // namespace kiln::snapshotter
