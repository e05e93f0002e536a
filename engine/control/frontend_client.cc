#include "engine/control/frontend_client.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/digest.h"
#include "base/fs.h"
#include "base/pattern_match.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "engine/control/internal_step.h"
#include "engine/ops/local_dirs.h"

namespace kiln::engine {
namespace {

// Reads `rel` below `root` without ever leaving it: symlinks are resolved as if `root` were
// the filesystem root.
absl::StatusOr<std::string> ReadInRoot(const std::string& root, const std::string& rel) {
  UniqueFd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return ErrnoStatus(StrCat("open ", Quote(root)));
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, dir.get(), rel.c_str(), &how, sizeof(how))));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(rel)));
  return ReadFdToString(fd.get(), rel, 64u << 20);
}

}  // namespace

EngineFrontendClient::EngineFrontendClient(Worker* worker, const ImageResolver* resolver,
                                           std::shared_ptr<LocalDirs> local_dirs,
                                           std::shared_ptr<registry::CredentialSource> credentials,
                                           std::shared_ptr<ProgressSink> progress,
                                           CancelToken cancel)
    : worker_(worker),
      resolver_(resolver),
      local_dirs_(std::move(local_dirs)),
      credentials_(std::move(credentials)),
      progress_(std::move(progress)),
      cancel_(std::move(cancel)) {}

absl::StatusOr<llb::ResolvedImage> EngineFrontendClient::ResolveImageConfig(
    const std::string& ref, const std::optional<oci::Platform>& platform, llb::ResolveMode mode) {
  InternalStep step(progress_.get(), StrCat("[internal] load metadata for ", ref));
  ImageResolveOptions opts;
  opts.cancel = cancel_;
  opts.credentials = credentials_;
  auto resolved = resolver_->Resolve(ref, platform.value_or(oci::HostPlatform()), mode, opts);
  if (!resolved.ok()) {
    step.Fail(resolved.status());
    return resolved.status();
  }
  llb::ResolvedImage out;
  out.ref = resolved->ref.String();
  out.digest = resolved->target.digest;
  out.config_json = resolved->config_bytes;
  return out;
}

absl::StatusOr<std::string> EngineFrontendClient::ReadFile(const std::string& local_name,
                                                           const std::string& path) {
  std::string clean = CleanPath(StrCat("/", path));
  InternalStep step(progress_.get(), local_name == "dockerfile"
                                         ? StrCat("[internal] load build definition from ", path)
                                         : StrCat("[internal] load ", path));
  auto fail = [&step](absl::Status s) {
    // A missing optional file (.dockerignore) is normal, not a failed step.
    if (s.code() != absl::StatusCode::kNotFound) step.Fail(s);
    return s;
  };
  if (!local_dirs_) {
    return fail(
        absl::FailedPreconditionError(StrCat("read ", Quote(path), " from ", Quote(local_name),
                                             ": the client sent no local directories")));
  }
  // One mirror per client directory and file, so reading a Dockerfile never syncs the context.
  std::string shared_key;
  if (auto* support = dynamic_cast<LocalDirsMirrorSupport*>(local_dirs_.get())) {
    shared_key = support->SharedKey(local_name);
  }
  std::string mirror = StrCat(
      worker_->LocalMirrorsDir(), "/frontend-",
      Digest::Sha256Of(StrCat(shared_key, "\n", local_name, "\n", clean)).hex().substr(0, 32));
  std::string tree = mirror + "/tree";
  if (auto s = MakeDirs(tree, 0700); !s.ok()) return fail(s);
  LocalDirFilter filter;
  filter.follow_paths = {clean.substr(1)};
  auto lock = MirrorMutex(tree);
  std::lock_guard<std::mutex> guard(*lock);
  if (auto s = local_dirs_->Sync(local_name, filter, tree, cancel_); !s.ok()) {
    return fail(Annotate(s, StrCat("read ", Quote(path), " from ", Quote(local_name))));
  }
  auto data = ReadInRoot(tree, clean.substr(1));
  if (!data.ok()) {
    return fail(Annotate(data.status(), StrCat("read from local ", Quote(local_name))));
  }
  return data;
}

}  // namespace kiln::engine
