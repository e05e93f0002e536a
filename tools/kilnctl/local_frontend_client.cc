#include "tools/kilnctl/local_frontend_client.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"

namespace kiln::tools::kilnctl {
namespace {

constexpr off_t kMaxFileSize = 64 << 20;

}  // namespace

absl::StatusOr<llb::ResolvedImage> LocalFrontendClient::ResolveImageConfig(
    const std::string& ref, const std::optional<oci::Platform>& platform, llb::ResolveMode mode) {
  return resolver_.Resolve(ref, platform, mode);
}

absl::StatusOr<std::string> LocalFrontendClient::ReadFile(const std::string& local_name,
                                                          const std::string& path) {
  auto it = locals_.find(local_name);
  if (it == locals_.end()) {
    return absl::NotFoundError(StrCat("local source ", Quote(local_name), " is not defined"));
  }
  const std::string where = StrCat(it->second, "/", path);
  UniqueFd dir(::open(it->second.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return ErrnoStatus(StrCat("open ", Quote(it->second)));
  struct open_how how = {};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, dir.get(), path.c_str(), &how, sizeof(how));
  if (fd < 0) return ErrnoStatus(StrCat("open ", Quote(where)));
  UniqueFd file(static_cast<int>(fd));
  struct stat st;
  if (::fstat(file.get(), &st) != 0) return ErrnoStatus(StrCat("stat ", Quote(where)));
  if (!S_ISREG(st.st_mode)) {
    return absl::NotFoundError(StrCat("read ", Quote(where), ": not a regular file"));
  }
  if (st.st_size > kMaxFileSize) {
    return absl::InvalidArgumentError(
        StrCat("read ", Quote(where), ": larger than ", kMaxFileSize >> 20, " MiB"));
  }
  // The size was checked above; a file that grows meanwhile stops at the same bound.
  return ReadFdToString(file.get(), where, static_cast<size_t>(kMaxFileSize));
}

}  // namespace kiln::tools::kilnctl
