#include "engine/exporter/output.h"

#include <cstring>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::engine {
namespace {

// Directory and file name of a path ("." for a bare name, "/" for a file in the root).
std::pair<std::string, std::string> SplitPath(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {std::string("."), path};
  return {slash == 0 ? std::string(1, '/') : path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace

absl::Status BufferedSink::Write(const void* data, size_t n) {
  if (buf_.size() + n > buf_.capacity()) {
    KILN_RETURN_IF_ERROR(Flush());
    if (n >= buf_.capacity()) return out_.Write(data, n);
  }
  buf_.append(static_cast<const char*>(data), n);
  return absl::OkStatus();
}

absl::Status BufferedSink::Flush() {
  if (buf_.empty()) return absl::OkStatus();
  absl::Status s = out_.Write(buf_.data(), buf_.size());
  buf_.clear();
  return s;
}

TarballOutput::TarballOutput(snapshotter::ByteSink* base,
                             std::unique_ptr<snapshotter::FdSink> owned, std::string final_path,
                             std::string temp_path)
    : owned_(std::move(owned)),
      base_(base != nullptr ? base : owned_.get()),
      buffered_(*base_),
      final_path_(std::move(final_path)),
      temp_path_(std::move(temp_path)) {}

TarballOutput::~TarballOutput() {
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
}

absl::StatusOr<std::unique_ptr<TarballOutput>> TarballOutput::Open(const ExportTarget& target) {
  if (target.stream != nullptr) {
    return std::unique_ptr<TarballOutput>(new TarballOutput(target.stream, nullptr, "", ""));
  }
  if (target.path.empty()) {
    return absl::InvalidArgumentError("export: no destination for the tarball (dest=...)");
  }
  if (target.path == "-") {
    UniqueFd out(::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0));
    if (!out) return ErrnoStatus("dup stdout");
    return std::unique_ptr<TarballOutput>(new TarballOutput(
        nullptr, std::make_unique<snapshotter::FdSink>(std::move(out), "stdout"), "", ""));
  }
  struct stat st;
  if (::stat(target.path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        StrCat("export: destination file ", Quote(target.path), " is a directory"));
  }
  auto [dir, base] = SplitPath(target.path);
  std::string temp = StrCat(dir, "/.", base, ".kiln-XXXXXX");
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("create a temporary file next to ", Quote(target.path)));
  if (::fchmod(fd.get(), 0644) != 0) {
    absl::Status s = ErrnoStatus(StrCat("chmod ", Quote(temp)));
    ::unlink(temp.c_str());
    return s;
  }
  return std::unique_ptr<TarballOutput>(new TarballOutput(
      nullptr, std::make_unique<snapshotter::FdSink>(std::move(fd), temp), target.path, temp));
}

absl::Status TarballOutput::Commit() {
  KILN_RETURN_IF_ERROR(buffered_.Flush());
  if (temp_path_.empty()) return absl::OkStatus();
  if (::fsync(owned_->fd()) != 0) return ErrnoStatus(StrCat("fsync ", Quote(temp_path_)));
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    return ErrnoStatus(StrCat("rename ", Quote(temp_path_), " to ", Quote(final_path_)));
  }
  temp_path_.clear();
  return SyncDir(SplitPath(final_path_).first);
}

}  // namespace kiln::engine
