#include "snapshotter/byte_stream.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include "base/status.h"

namespace kiln::snapshotter {

absl::Status WriteFull(int fd, const void* data, size_t n, std::string_view what) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(StrCat("write ", Quote(what)));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FdSource>> FdSource::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(path)));
  return std::make_unique<FdSource>(std::move(fd), path);
}

absl::StatusOr<size_t> FdSource::Read(void* buf, size_t n) {
  for (;;) {
    ssize_t r = ::read(fd_.get(), buf, n);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno != EINTR) return ErrnoStatus(StrCat("read ", Quote(name_)));
  }
}

absl::Status FdSink::Write(const void* data, size_t n) {
  return WriteFull(fd_.get(), data, n, name_);
}

absl::StatusOr<size_t> StringSource::Read(void* buf, size_t n) {
  size_t k = std::min(n, data_.size());
  std::memcpy(buf, data_.data(), k);
  data_.remove_prefix(k);
  return k;
}

}  // namespace kiln::snapshotter
