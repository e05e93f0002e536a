// Small filesystem helpers with Kiln's error and durability conventions.
//
// Errors name the operation and the path.  WriteFileAtomic is the durable-write primitive:
// temp file in the same directory, fsync, rename, fsync of the directory; a crash leaves either
// the old content or the new, never a torn file.
//
// Thread-safety: functions are safe to call concurrently on different paths.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kiln {

absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Reads `fd` from its current offset to its end; `what` names it in errors.  InvalidArgument
// ("larger than N MiB") as soon as it holds more than `max_size` bytes.
absl::StatusOr<std::string> ReadFdToString(int fd, std::string_view what,
                                           size_t max_size = SIZE_MAX);

// Writes `data` to `path` atomically and durably; `mode` applies to the new file.
absl::Status WriteFileAtomic(const std::string& path, std::string_view data, int mode = 0644);

// mkdir -p; existing directories are fine.
absl::Status MakeDirs(const std::string& path, int mode = 0755);

// rm -rf that never follows a symlink below `path`.  A missing `path` is OK.  A mount point
// below `path` makes it fail (EBUSY) rather than remove another filesystem's content.
absl::Status RemoveAll(const std::string& path);

// fsync of a directory, so a rename or create inside it is durable.
absl::Status SyncDir(const std::string& path);

// A fresh directory removed (recursively) when the owner is destroyed.
class TempDir {
 public:
  // Creates "<parent>/<prefix>XXXXXX".  parent defaults to $TMPDIR or /tmp.
  static absl::StatusOr<TempDir> Create(std::string_view prefix = "kiln-", std::string parent = "");
  TempDir() = default;
  ~TempDir();
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir& operator=(TempDir&& o) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Keeps the directory; the caller owns its removal now.
  std::string Release() { return std::exchange(path_, std::string()); }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace kiln
