#include "engine/executor/cgroup.h"

#include <cerrno>
#include <chrono>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine::internal {
namespace {

// How long removal waits for dying processes to leave a cgroup.  Only a failsafe: processes of
// a finished run are already gone when removal starts.
constexpr auto kRemoveDeadline = std::chrono::seconds(10);

absl::Status WriteCgroupFile(const std::string& path, std::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(path)));
  ssize_t n = ::write(fd.get(), value.data(), value.size());
  if (n < 0) return ErrnoStatus(StrCat("write ", Quote(value), " to ", Quote(path)));
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(StrCat("mkdir ", Quote(path)));
  }
  return absl::OkStatus();
}

// Sends SIGKILL to every process listed in `dir`/cgroup.procs; returns how many were listed.
int KillProcs(const std::string& dir) {
  absl::StatusOr<std::string> procs = ReadFileToString(StrCat(dir, "/cgroup.procs"));
  if (!procs.ok()) return 0;
  int count = 0;
  for (absl::string_view line : absl::StrSplit(*procs, '\n', absl::SkipEmpty())) {
    int pid = 0;
    if (absl::SimpleAtoi(line, &pid) && pid > 0) {
      ::kill(pid, SIGKILL);
      ++count;
    }
  }
  return count;
}

// Kills what is inside `dir` and removes it, waiting (bounded) for dying processes to leave.
absl::Status KillAndRemoveDir(const std::string& dir, bool v2) {
  bool has_kill_file = v2 && ::access(StrCat(dir, "/cgroup.kill").c_str(), W_OK) == 0;
  auto deadline = std::chrono::steady_clock::now() + kRemoveDeadline;
  for (int attempt = 0;; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return absl::OkStatus();
    if (errno != EBUSY) return ErrnoStatus(StrCat("remove cgroup ", Quote(dir)));
    if (has_kill_file) {
      (void)WriteCgroupFile(StrCat(dir, "/cgroup.kill"), "1");
    } else {
      KillProcs(dir);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::UnavailableError(
          StrCat("remove cgroup ", Quote(dir), ": processes are still inside after SIGKILL"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(attempt < 10 ? 1 : 20));
  }
}

bool ControllerListed(const std::string& list, std::string_view controller) {
  for (absl::string_view c : absl::StrSplit(list, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    if (FromAbsl(c) == controller) return true;
  }
  return false;
}

// "oom_kill N" from a memory.events (v2) or memory.oom_control (v1) file.
bool OomKillCountPositive(const std::string& path) {
  absl::StatusOr<std::string> content = ReadFileToString(path);
  if (!content.ok()) return false;
  for (absl::string_view line : absl::StrSplit(*content, '\n')) {
    std::vector<absl::string_view> kv = absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t n = 0;
    if (kv.size() == 2 && kv[0] == "oom_kill" && absl::SimpleAtoi(kv[1], &n)) return n > 0;
  }
  return false;
}

}  // namespace

RunCgroup::~RunCgroup() { (void)Remove(); }

absl::Status RunCgroup::AddProcess(pid_t pid) {
  if (v2_) return absl::OkStatus();
  for (const std::string& dir : dirs_) {
    KILN_RETURN_IF_ERROR(WriteCgroupFile(StrCat(dir, "/cgroup.procs"), StrCat(pid)));
  }
  return absl::OkStatus();
}

bool RunCgroup::OomKilled() const {
  for (const std::string& dir : dirs_) {
    if (OomKillCountPositive(StrCat(dir, v2_ ? "/memory.events" : "/memory.oom_control"))) {
      return true;
    }
  }
  return false;
}

absl::Status RunCgroup::Remove() {
  if (removed_) return absl::OkStatus();
  removed_ = true;
  clone_fd_.Reset();
  absl::Status first;
  for (const std::string& dir : dirs_) {
    absl::Status st = KillAndRemoveDir(dir, v2_);
    if (first.ok()) first = st;
  }
  return first;
}

CgroupSetup CgroupSetup::Detect(std::string parent, std::string root) {
  CgroupSetup s;
  s.parent_ = std::move(parent);
  struct statfs fs;
  if (::statfs(root.c_str(), &fs) != 0) {
    s.detail_ = StrCat("no cgroup filesystem at ", Quote(root));
    return s;
  }
  if (fs.f_type == CGROUP2_SUPER_MAGIC) {
    s.v2_ = true;
    s.v2_root_ = s.memory_root_ = s.pids_root_ = root;
    absl::StatusOr<std::string> controllers = ReadFileToString(StrCat(root, "/cgroup.controllers"));
    bool memory = controllers.ok() && ControllerListed(*controllers, "memory");
    bool pids = controllers.ok() && ControllerListed(*controllers, "pids");
    if (!memory) s.memory_root_.clear();
    if (!pids) s.pids_root_.clear();
    s.available_ = memory && pids;
    s.detail_ = s.available_
                    ? StrCat("cgroup v2 at ", root, " (memory, pids)")
                    : StrCat("cgroup v2 at ", root, " lacks the memory or pids controller");
    return s;
  }
  // cgroup v1 or hybrid: one hierarchy per controller, conventionally <root>/<controller>.
  for (const char* controller : {"memory", "pids"}) {
    std::string dir = StrCat(root, "/", controller);
    struct statfs cfs;
    if (::statfs(dir.c_str(), &cfs) == 0 && cfs.f_type == CGROUP_SUPER_MAGIC &&
        ::access(StrCat(dir, "/cgroup.procs").c_str(), W_OK) == 0) {
      (std::string_view(controller) == "memory" ? s.memory_root_ : s.pids_root_) = dir;
    }
  }
  s.available_ = !s.memory_root_.empty() && !s.pids_root_.empty();
  s.detail_ = s.available_
                  ? StrCat("cgroup v1 at ", root, " (memory, pids)")
                  : StrCat("cgroup v1 at ", root, " lacks a writable memory or pids hierarchy");
  return s;
}

absl::StatusOr<std::unique_ptr<RunCgroup>> CgroupSetup::Create(const std::string& id,
                                                               const ResourceLimits& limits) const {
  if ((limits.memory_bytes != 0 && memory_root_.empty()) ||
      (limits.pids_max != 0 && pids_root_.empty())) {
    return absl::FailedPreconditionError(
        StrCat("resource limits requested but unavailable: ", detail_));
  }
  std::unique_ptr<RunCgroup> cg(new RunCgroup());
  cg->v2_ = v2_;
  if (v2_) {
    const std::string& root = v2_root_;
    std::string parent = StrCat(root, "/", parent_);
    KILN_RETURN_IF_ERROR(MakeDir(parent));
    std::string enable =
        StrCat(limits.memory_bytes ? "+memory " : "", limits.pids_max ? "+pids" : "");
    for (const std::string& dir : {root, parent}) {
      if (enable.empty()) break;
      KILN_RETURN_IF_ERROR_CTX(WriteCgroupFile(StrCat(dir, "/cgroup.subtree_control"), enable),
                               "enable cgroup controllers");
    }
    std::string dir = StrCat(parent, "/", id);
    if (::mkdir(dir.c_str(), 0755) != 0) return ErrnoStatus(StrCat("mkdir ", Quote(dir)));
    cg->dirs_.push_back(dir);
    if (limits.memory_bytes) {
      KILN_RETURN_IF_ERROR(
          WriteCgroupFile(StrCat(dir, "/memory.max"), StrCat(limits.memory_bytes)));
    }
    if (limits.pids_max) {
      KILN_RETURN_IF_ERROR(WriteCgroupFile(StrCat(dir, "/pids.max"), StrCat(limits.pids_max)));
    }
    cg->clone_fd_.Reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg->clone_fd_) return ErrnoStatus(StrCat("open ", Quote(dir)));
    return cg;
  }
  auto make = [&](const std::string& root, std::string_view file, uint64_t value) -> absl::Status {
    std::string parent = StrCat(root, "/", parent_);
    KILN_RETURN_IF_ERROR(MakeDir(parent));
    std::string dir = StrCat(parent, "/", id);
    if (::mkdir(dir.c_str(), 0755) != 0) return ErrnoStatus(StrCat("mkdir ", Quote(dir)));
    cg->dirs_.push_back(dir);
    return WriteCgroupFile(StrCat(dir, "/", file), StrCat(value));
  };
  if (limits.memory_bytes) {
    KILN_RETURN_IF_ERROR(make(memory_root_, "memory.limit_in_bytes", limits.memory_bytes));
  }
  if (limits.pids_max) KILN_RETURN_IF_ERROR(make(pids_root_, "pids.max", limits.pids_max));
  return cg;
}

absl::Status CgroupSetup::RemoveStale() const {
  absl::Status first;
  std::vector<std::string> roots = {v2_ ? v2_root_ : memory_root_};
  if (!v2_) roots.push_back(pids_root_);
  for (const std::string& root : roots) {
    if (root.empty()) continue;
    std::string parent = StrCat(root, "/", parent_);
    DIR* d = ::opendir(parent.c_str());
    if (d == nullptr) continue;
    std::vector<std::string> children;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (e->d_type == DT_DIR && name != "." && name != "..") children.push_back(name);
    }
    ::closedir(d);
    for (const std::string& child : children) {
      absl::Status st = KillAndRemoveDir(StrCat(parent, "/", child), v2_);
      if (first.ok()) first = st;
    }
  }
  return first;
}

}  // namespace kiln::engine::internal
