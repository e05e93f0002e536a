#include "engine/executor/mount_util.h"

#include <cerrno>
#include <deque>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine::internal {
namespace {

constexpr int kMaxSymlinks = 40;
// fsconfig(2) copies at most 256 bytes of a string value, terminator included.
constexpr size_t kMaxFsconfigValue = 255;

std::deque<std::string> Components(std::string_view path) {
  std::deque<std::string> out;
  for (absl::string_view c : absl::StrSplit(ToAbsl(path), '/', absl::SkipEmpty())) {
    if (c != ".") out.emplace_back(c);
  }
  return out;
}

std::string JoinForMessage(const std::vector<std::string>& names) {
  return StrCat("/", absl::StrJoin(names, "/"));
}

// The directory stack of a walk: fds of every resolved directory from the root down, so ".."
// pops instead of asking the filesystem (which could lead out of the root).
class DirStack {
 public:
  explicit DirStack(UniqueFd root) { fds_.push_back(std::move(root)); }
  int top() const { return fds_.back().get(); }
  void Push(UniqueFd fd, std::string name) {
    fds_.push_back(std::move(fd));
    names_.push_back(std::move(name));
  }
  void Pop() {
    if (fds_.size() > 1) {
      fds_.pop_back();
      names_.pop_back();
    }
  }
  void ResetToRoot() {
    while (fds_.size() > 1) Pop();
  }
  UniqueFd TakeTop() { return std::move(fds_.back()); }
  std::string Path(std::string_view leaf = "") const {
    std::vector<std::string> all = names_;
    if (!leaf.empty()) all.emplace_back(leaf);
    return JoinForMessage(all);
  }

 private:
  std::vector<UniqueFd> fds_;
  std::vector<std::string> names_;
};

absl::StatusOr<UniqueFd> DupPath(int fd) {
  UniqueFd out(::openat(fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!out) return ErrnoStatus("reopen root directory");
  return out;
}

// Prepends the components of the symlink `dir`/`name` to `queue`; an absolute target restarts
// the walk at the root.
absl::Status FollowSymlink(DirStack& stack, const std::string& name, std::deque<std::string>& queue,
                           int& links) {
  if (++links > kMaxSymlinks) {
    return absl::InvalidArgumentError(
        StrCat("resolve ", Quote(stack.Path(name)), ": too many levels of symbolic links"));
  }
  char buf[PATH_MAX];
  ssize_t n = ::readlinkat(stack.top(), name.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) return ErrnoStatus(StrCat("readlink ", Quote(stack.Path(name))));
  std::string_view target(buf, static_cast<size_t>(n));
  if (!target.empty() && target.front() == '/') stack.ResetToRoot();
  std::deque<std::string> prefix = Components(target);
  queue.insert(queue.begin(), prefix.begin(), prefix.end());
  return absl::OkStatus();
}

void SetMountAttrs(uint64_t set, uint64_t clear, ParsedMountOptions& out) {
  out.attr_set = (out.attr_set & ~clear) | set;
  out.attr_clear = (out.attr_clear & ~set) | clear;
}

absl::Status FsconfigError(int fs_fd, std::string_view what) {
  int err = errno;
  std::string detail;
  char buf[512];
  // The filesystem context keeps the kernel's own explanation ("e overlay: ...").
  for (;;) {
    ssize_t n = ::read(fs_fd, buf, sizeof(buf) - 1);
    if (n <= 0) break;
    StrAppend(&detail, detail.empty() ? "" : "; ", std::string_view(buf, static_cast<size_t>(n)));
  }
  absl::Status st = ErrnoStatus(err, what);
  if (detail.empty()) return st;
  return absl::Status(st.code(), StrCat(st.message(), " (", detail, ")"));
}

unsigned long LegacyFlags(uint64_t attrs) {
  unsigned long flags = 0;
  if (attrs & MOUNT_ATTR_RDONLY) flags |= MS_RDONLY;
  if (attrs & MOUNT_ATTR_NOSUID) flags |= MS_NOSUID;
  if (attrs & MOUNT_ATTR_NODEV) flags |= MS_NODEV;
  if (attrs & MOUNT_ATTR_NOEXEC) flags |= MS_NOEXEC;
  if (attrs & MOUNT_ATTR_NODIRATIME) flags |= MS_NODIRATIME;
  if ((attrs & MOUNT_ATTR__ATIME) == MOUNT_ATTR_NOATIME) flags |= MS_NOATIME;
  if ((attrs & MOUNT_ATTR__ATIME) == MOUNT_ATTR_STRICTATIME) flags |= MS_STRICTATIME;
  return flags;
}

// mount(2) onto the fd through its /proc magic link; for data that fsconfig cannot take.
absl::Status LegacyMount(std::string_view type, std::string_view source,
                         const ParsedMountOptions& options, int target_fd) {
  std::vector<std::string> data;
  for (const auto& [k, v] : options.params) data.push_back(v.empty() ? k : StrCat(k, "=", v));
  std::string joined = absl::StrJoin(data, ",");
  std::string target = StrCat("/proc/self/fd/", target_fd);
  std::string src(source), fstype(type);
  if (::mount(src.c_str(), target.c_str(), fstype.c_str(), LegacyFlags(options.attr_set),
              joined.c_str()) != 0) {
    return ErrnoStatus(StrCat("mount ", type));
  }
  return absl::OkStatus();
}

}  // namespace

ParsedMountOptions ParseMountOptions(const std::vector<std::string>& options) {
  ParsedMountOptions out;
  for (const std::string& opt : options) {
    if (opt == "ro")
      SetMountAttrs(MOUNT_ATTR_RDONLY, 0, out);
    else if (opt == "rw")
      SetMountAttrs(0, MOUNT_ATTR_RDONLY, out);
    else if (opt == "nosuid")
      SetMountAttrs(MOUNT_ATTR_NOSUID, 0, out);
    else if (opt == "suid")
      SetMountAttrs(0, MOUNT_ATTR_NOSUID, out);
    else if (opt == "nodev")
      SetMountAttrs(MOUNT_ATTR_NODEV, 0, out);
    else if (opt == "dev")
      SetMountAttrs(0, MOUNT_ATTR_NODEV, out);
    else if (opt == "noexec")
      SetMountAttrs(MOUNT_ATTR_NOEXEC, 0, out);
    else if (opt == "exec")
      SetMountAttrs(0, MOUNT_ATTR_NOEXEC, out);
    else if (opt == "nodiratime")
      SetMountAttrs(MOUNT_ATTR_NODIRATIME, 0, out);
    else if (opt == "diratime")
      SetMountAttrs(0, MOUNT_ATTR_NODIRATIME, out);
    else if (opt == "nosymfollow")
      SetMountAttrs(MOUNT_ATTR_NOSYMFOLLOW, 0, out);
    else if (opt == "noatime" || opt == "relatime" || opt == "strictatime" || opt == "atime" ||
             opt == "norelatime" || opt == "nostrictatime") {
      uint64_t mode = opt == "noatime"       ? MOUNT_ATTR_NOATIME
                      : opt == "strictatime" ? MOUNT_ATTR_STRICTATIME
                                             : MOUNT_ATTR_RELATIME;
      out.attr_set = (out.attr_set & ~MOUNT_ATTR__ATIME) | mode;
      out.attr_clear |= MOUNT_ATTR__ATIME;
    } else if (opt == "bind") {
      out.bind = true;
    } else if (opt == "rbind") {
      out.bind = out.recursive = true;
    } else if (opt == "private" || opt == "rprivate" || opt == "shared" || opt == "rshared" ||
               opt == "slave" || opt == "rslave" || opt == "unbindable" || opt == "runbindable" ||
               opt == "defaults" || opt == "async" || opt.empty()) {
      // Propagation is always private to the step; the rest are defaults.
    } else if (size_t eq = opt.find('='); eq != std::string::npos) {
      out.params.emplace_back(opt.substr(0, eq), opt.substr(eq + 1));
    } else {
      out.params.emplace_back(opt, "");
    }
  }
  return out;
}

absl::StatusOr<ResolvedParent> ResolveParentInRoot(int root_fd, std::string_view path,
                                                   const ResolveOptions& options) {
  KILN_ASSIGN_OR_RETURN(UniqueFd root, DupPath(root_fd));
  DirStack stack(std::move(root));
  std::deque<std::string> queue = Components(path);
  int links = 0;
  while (!queue.empty()) {
    std::string name = std::move(queue.front());
    queue.pop_front();
    if (name == "..") {
      stack.Pop();
      continue;
    }
    struct stat st;
    bool exists = ::fstatat(stack.top(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) return ErrnoStatus(StrCat("stat ", Quote(stack.Path(name))));
    if (exists && S_ISLNK(st.st_mode)) {
      KILN_RETURN_IF_ERROR(FollowSymlink(stack, name, queue, links));
      continue;
    }
    if (queue.empty()) return ResolvedParent{stack.TakeTop(), std::move(name)};
    if (!exists) {
      if (!options.create_parents) {
        return absl::NotFoundError(
            StrCat("resolve ", Quote(stack.Path(name)), ": No such file or directory"));
      }
      if (::mkdirat(stack.top(), name.c_str(), 0755) != 0 && errno != EEXIST) {
        return ErrnoStatus(StrCat("mkdir ", Quote(stack.Path(name))));
      }
      if (options.owner_uid != static_cast<uid_t>(-1) &&
          ::fchownat(stack.top(), name.c_str(), options.owner_uid, options.owner_gid,
                     AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoStatus(StrCat("chown ", Quote(stack.Path(name))));
      }
      queue.push_front(std::move(name));  // look again: it may have raced into a symlink
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          StrCat("resolve ", Quote(stack.Path(name)), ": Not a directory"));
    }
    UniqueFd next(
        ::openat(stack.top(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return ErrnoStatus(StrCat("open ", Quote(stack.Path(name))));
    stack.Push(std::move(next), std::move(name));
  }
  return ResolvedParent{stack.TakeTop(), ""};
}

absl::StatusOr<UniqueFd> MakeMountTarget(int root_fd, std::string_view path, TargetKind kind) {
  ResolveOptions ro;
  ro.create_parents = true;
  KILN_ASSIGN_OR_RETURN(ResolvedParent p, ResolveParentInRoot(root_fd, path, ro));
  bool want_dir = kind == TargetKind::kDirectory;
  if (p.name.empty()) {
    if (!want_dir) {
      return absl::InvalidArgumentError(
          StrCat("mount target ", Quote(path), " is a directory, the source is a file"));
    }
    return std::move(p.dir);
  }
  const char* name = p.name.c_str();
  if (want_dir) {
    if (::mkdirat(p.dir.get(), name, 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(StrCat("mkdir ", Quote(path)));
    }
  } else {
    UniqueFd created(
        ::openat(p.dir.get(), name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0755));
    if (!created && errno != EEXIST) return ErrnoStatus(StrCat("create ", Quote(path)));
  }
  UniqueFd fd(::openat(p.dir.get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(path)));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(StrCat("stat ", Quote(path)));
  if (S_ISDIR(st.st_mode) != want_dir || S_ISLNK(st.st_mode)) {
    return absl::InvalidArgumentError(
        StrCat("mount target ", Quote(path),
               want_dir ? " is not a directory" : " is not a file (the source is one)"));
  }
  return fd;
}

absl::StatusOr<UniqueFd> MakeDirsInRoot(int root_fd, std::string_view path, uid_t uid, gid_t gid) {
  ResolveOptions ro;
  ro.create_parents = true;
  ro.owner_uid = uid;
  ro.owner_gid = gid;
  KILN_ASSIGN_OR_RETURN(ResolvedParent p, ResolveParentInRoot(root_fd, path, ro));
  if (p.name.empty()) return std::move(p.dir);
  const char* name = p.name.c_str();
  if (::mkdirat(p.dir.get(), name, 0755) == 0) {
    if (::fchownat(p.dir.get(), name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoStatus(StrCat("chown ", Quote(path)));
    }
  } else if (errno != EEXIST) {
    return ErrnoStatus(StrCat("mkdir ", Quote(path)));
  }
  UniqueFd fd(::openat(p.dir.get(), name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open directory ", Quote(path)));
  return fd;
}

bool ExistsInRoot(int root_fd, std::string_view path) {
  absl::StatusOr<ResolvedParent> p = ResolveParentInRoot(root_fd, path);
  if (!p.ok()) return false;
  if (p->name.empty()) return true;
  struct stat st;
  return ::fstatat(p->dir.get(), p->name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

absl::Status MountFilesystem(std::string_view type, std::string_view source,
                             const ParsedMountOptions& options, int target_fd) {
  std::string fstype(type);
  UniqueFd fs(::fsopen(fstype.c_str(), FSOPEN_CLOEXEC));
  if (!fs) return ErrnoStatus(StrCat("fsopen ", Quote(type)));
  std::string src(source);
  if (!src.empty() && ::fsconfig(fs.get(), FSCONFIG_SET_STRING, "source", src.c_str(), 0) != 0) {
    return FsconfigError(fs.get(), StrCat("set source of ", type, " mount"));
  }
  for (const auto& [key, value] : options.params) {
    int rc;
    if (value.empty()) {
      rc = ::fsconfig(fs.get(), FSCONFIG_SET_FLAG, key.c_str(), nullptr, 0);
    } else if (value.size() <= kMaxFsconfigValue) {
      rc = ::fsconfig(fs.get(), FSCONFIG_SET_STRING, key.c_str(), value.c_str(), 0);
    } else if (type == "overlay" && key == "lowerdir") {
      rc = 0;
      for (absl::string_view dir : absl::StrSplit(value, ':', absl::SkipEmpty())) {
        std::string d(dir);
        rc = d.size() > kMaxFsconfigValue
                 ? (errno = ENAMETOOLONG, -1)
                 : ::fsconfig(fs.get(), FSCONFIG_SET_STRING, "lowerdir+", d.c_str(), 0);
        if (rc != 0) break;
      }
      if (rc != 0) return LegacyMount(type, source, options, target_fd);
    } else {
      return LegacyMount(type, source, options, target_fd);
    }
    if (rc != 0) return FsconfigError(fs.get(), StrCat("set ", Quote(key), " of ", type, " mount"));
  }
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    return FsconfigError(fs.get(), StrCat("create ", type, " filesystem"));
  }
  UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, static_cast<unsigned>(options.attr_set)));
  if (!mnt) return ErrnoStatus(StrCat("fsmount ", type));
  if (::move_mount(mnt.get(), "", target_fd, "",
                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
    return ErrnoStatus(StrCat("attach ", type, " mount"));
  }
  return absl::OkStatus();
}

absl::Status BindMount(std::string_view source, int source_fd, const ParsedMountOptions& options,
                       int target_fd) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (options.recursive ? AT_RECURSIVE : 0);
  std::string src(source);
  UniqueFd tree(source_fd >= 0 ? ::open_tree(source_fd, "", flags | AT_EMPTY_PATH)
                               : ::open_tree(AT_FDCWD, src.c_str(), flags));
  if (!tree) return ErrnoStatus(StrCat("clone mount of ", Quote(source)));
  if (options.attr_set != 0 || options.attr_clear != 0) {
    struct mount_attr attr = {};
    attr.attr_set = options.attr_set;
    attr.attr_clr = options.attr_clear;
    if (::mount_setattr(tree.get(), "", AT_EMPTY_PATH | (options.recursive ? AT_RECURSIVE : 0),
                        &attr, sizeof(attr)) != 0) {
      return ErrnoStatus(StrCat("set attributes of bind mount of ", Quote(source)));
    }
  }
  if (::move_mount(tree.get(), "", target_fd, "",
                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) {
    return ErrnoStatus(StrCat("attach bind mount of ", Quote(source)));
  }
  return absl::OkStatus();
}

absl::Status RemountReadOnly(int target_fd) {
  ParsedMountOptions ro;
  ro.recursive = true;
  ro.attr_set = MOUNT_ATTR_RDONLY;
  return BindMount("(read-only path)", target_fd, ro, target_fd);
}

std::string DescribeMount(const MountSpec& spec) {
  return StrCat("type=", Quote(spec.type), " source=", Quote(spec.source),
                " target=", Quote(spec.target));
}

}  // namespace kiln::engine::internal
