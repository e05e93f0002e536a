#include "engine/executor/testing/busybox_rootfs.h"

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_split.h"
#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine::testing {
namespace {

constexpr char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n";
constexpr char kGroup[] =
    "root:x:0:\n"
    "wheel:x:10:root,app\n"
    "staff:x:50:app\n"
    "app:x:1000:\n"
    "nogroup:x:65534:\n";

absl::StatusOr<std::string> BusyboxApplets() {
  std::string cmd = StrCat(kBusyboxPath, " --list-full");
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return ErrnoStatus(StrCat("run ", Quote(cmd)));
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = ::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  int status = ::pclose(f);
  if (status != 0) return absl::InternalError(StrCat(Quote(cmd), " failed"));
  return out;
}

absl::Status MakeDir(const std::string& path, mode_t mode, uid_t uid = 0, gid_t gid = 0) {
  KILN_RETURN_IF_ERROR(MakeDirs(path, 0755));
  if (::chmod(path.c_str(), mode) != 0) return ErrnoStatus(StrCat("chmod ", Quote(path)));
  if (::chown(path.c_str(), uid, gid) != 0) return ErrnoStatus(StrCat("chown ", Quote(path)));
  return absl::OkStatus();
}

absl::Status CopyFile(const std::string& from, const std::string& to, mode_t mode) {
  KILN_ASSIGN_OR_RETURN(std::string content, ReadFileToString(from));
  return WriteFileAtomic(to, content, static_cast<int>(mode));
}

}  // namespace

absl::Status MakeBusyboxRootfs(const std::string& dir) {
  KILN_RETURN_IF_ERROR(MakeDir(StrCat(dir, "/bin"), 0755));
  KILN_RETURN_IF_ERROR(CopyFile(kBusyboxPath, StrCat(dir, "/bin/busybox"), 0755));
  KILN_ASSIGN_OR_RETURN(std::string applets, BusyboxApplets());
  for (absl::string_view line : absl::StrSplit(applets, '\n', absl::SkipWhitespace())) {
    std::string rel(line);
    if (rel == "bin/busybox") continue;
    std::string path = StrCat(dir, "/", rel);
    KILN_RETURN_IF_ERROR(MakeDirs(path.substr(0, path.rfind('/')), 0755));
    if (::symlink("/bin/busybox", path.c_str()) != 0 && errno != EEXIST) {
      return ErrnoStatus(StrCat("symlink ", Quote(path)));
    }
  }
  KILN_RETURN_IF_ERROR(MakeDir(StrCat(dir, "/etc"), 0755));
  KILN_RETURN_IF_ERROR(WriteFileAtomic(StrCat(dir, "/etc/passwd"), kPasswd, 0644));
  KILN_RETURN_IF_ERROR(WriteFileAtomic(StrCat(dir, "/etc/group"), kGroup, 0644));
  KILN_RETURN_IF_ERROR(MakeDir(StrCat(dir, "/tmp"), 01777));
  KILN_RETURN_IF_ERROR(MakeDir(StrCat(dir, "/root"), 0700));
  KILN_RETURN_IF_ERROR(MakeDir(StrCat(dir, "/home/app"), 0755, 1000, 1000));
  return absl::OkStatus();
}

std::string NamespaceTestSkipReason() {
  if (::geteuid() != 0) return "needs root (namespaces, mounts, cgroups)";
  if (::access(kBusyboxPath, X_OK) != 0) return "needs busybox-static (/bin/busybox)";
  pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::_exit(::unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET) == 0
                ? 0
                : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return "cannot create mount/pid/uts/ipc/net namespaces here";
  }
  return "";
}

}  // namespace kiln::engine::testing
