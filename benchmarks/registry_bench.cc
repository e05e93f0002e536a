// Push/pull throughput of kiln::registry against a registry, for benchmarks/registry_push_bench.sh.
//
//   registry_bench push --layout DIR --tag TAG --target HOST:PORT/REPO:TAG [--chunk BYTES]
//   registry_bench pull --ref HOST:PORT/REPO:TAG --out DIR
//
// `push` reads an OCI image layout (index.json -> manifest -> blobs/sha256/...) and pushes the
// image with Registry::PushImage, blobs streamed from the files.  `pull` resolves the reference
// and pulls every layer concurrently into files under DIR, the way the engine's content store
// ingests them (temp file, fsync, rename).  Each prints one line:
//   push bytes=N seconds=S MBps=X uploaded=U mounted=M skipped=K
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/oci.h"
#include "base/reference.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "nlohmann/json.hpp"
#include "registry/registry.h"

namespace kiln::registry {
namespace {

std::string BlobPath(const std::string& layout, const Digest& d) {
  return StrCat(layout, "/blobs/", d.algorithm(), "/", d.hex());
}

class FileReader : public BlobReader {
 public:
  explicit FileReader(UniqueFd fd) : fd_(std::move(fd)) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    ssize_t got = ::read(fd_.get(), buf, n);
    if (got < 0) return ErrnoStatus("read blob");
    return static_cast<size_t>(got);
  }

 private:
  UniqueFd fd_;
};

// Blobs of an OCI layout on disk.
class LayoutProvider : public BlobProvider {
 public:
  explicit LayoutProvider(std::string layout) : layout_(std::move(layout)) {}
  absl::StatusOr<std::unique_ptr<BlobReader>> Open(const oci::Descriptor& desc,
                                                   uint64_t offset) override {
    std::string path = BlobPath(layout_, desc.digest);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return ErrnoStatus(StrCat("open ", Quote(path)));
    if (::lseek(fd.get(), static_cast<off_t>(offset), SEEK_SET) < 0) {
      return ErrnoStatus(StrCat("seek ", Quote(path)));
    }
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::unique_ptr<BlobReader>(new FileReader(std::move(fd)));
  }

 private:
  std::string layout_;
};

// Writes a pulled blob to <dir>/<hex>.tmp and renames it into place on Commit.
class FileWriter : public BlobWriter {
 public:
  static absl::StatusOr<std::unique_ptr<FileWriter>> Create(const std::string& dir,
                                                            const Digest& d) {
    std::unique_ptr<FileWriter> w(new FileWriter());
    w->final_ = StrCat(dir, "/", d.hex());
    w->tmp_ = StrCat(w->final_, ".tmp");
    w->fd_.Reset(::open(w->tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!w->fd_) return ErrnoStatus(StrCat("create ", Quote(w->tmp_)));
    return w;
  }
  uint64_t Offset() const override { return offset_; }
  absl::Status Write(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = ::write(fd_.get(), data.data(), data.size());
      if (n < 0) return ErrnoStatus(StrCat("write ", Quote(tmp_)));
      data.remove_prefix(n);
      offset_ += n;
    }
    return absl::OkStatus();
  }
  absl::Status Truncate() override {
    if (::ftruncate(fd_.get(), 0) != 0 || ::lseek(fd_.get(), 0, SEEK_SET) < 0) {
      return ErrnoStatus(StrCat("truncate ", Quote(tmp_)));
    }
    offset_ = 0;
    return absl::OkStatus();
  }
  absl::Status ReadBack(const std::function<absl::Status(std::string_view)>&) override {
    return offset_ == 0 ? absl::OkStatus() : absl::UnimplementedError("no read-back");
  }
  absl::Status Commit(const oci::Descriptor&) override {
    if (::fsync(fd_.get()) != 0) return ErrnoStatus(StrCat("fsync ", Quote(tmp_)));
    if (::rename(tmp_.c_str(), final_.c_str()) != 0) return ErrnoStatus("rename");
    return absl::OkStatus();
  }

 private:
  FileWriter() = default;
  UniqueFd fd_;
  std::string tmp_, final_;
  uint64_t offset_ = 0;
};

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::map<std::string, std::string> Flags(int argc, char** argv) {
  std::map<std::string, std::string> out;
  for (int i = 2; i + 1 < argc; i += 2) out[argv[i]] = argv[i + 1];
  return out;
}

absl::Status Push(std::map<std::string, std::string> flags) {
  const std::string layout = flags["--layout"];
  KILN_ASSIGN_OR_RETURN(std::string index_text, ReadFileToString(StrCat(layout, "/index.json")));
  KILN_ASSIGN_OR_RETURN(oci::Index index, oci::DecodeIndex(index_text));
  if (index.manifests.empty()) return absl::InvalidArgumentError("layout has no manifest");
  const oci::Descriptor& mdesc = index.manifests[0];
  KILN_ASSIGN_OR_RETURN(std::string manifest, ReadFileToString(BlobPath(layout, mdesc.digest)));
  KILN_ASSIGN_OR_RETURN(oci::Manifest m, oci::DecodeManifest(manifest));
  int64_t total = m.config.size;
  for (const auto& l : m.layers) total += l.size;

  RegistryOptions options;
  std::string host = flags["--target"].substr(0, flags["--target"].find('/'));
  if (flags.count("--chunk")) options.hosts[host].chunk_size = std::stoull(flags["--chunk"]);
  if (flags.count("--concurrency"))
    options.max_concurrency_per_registry = std::stoi(flags["--concurrency"]);
  Registry registry(options);
  LayoutProvider provider(layout);
  KILN_ASSIGN_OR_RETURN(ImageReference target, ParseNormalizedReference(flags["--target"]));
  PushRequest req;
  req.targets = {target};
  req.manifest = {manifest, mdesc.media_type};
  req.provider = &provider;
  auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(PushResult result, registry.PushImage(req));
  double s = Seconds(start);
  std::printf(
      "push bytes=%lld seconds=%.3f MBps=%.1f uploaded=%d mounted=%d skipped=%d digest=%s\n",
      static_cast<long long>(total), s, total / s / 1e6, result.stats.uploaded,
      result.stats.mounted, result.stats.skipped, result.digest.str().c_str());
  return absl::OkStatus();
}

absl::Status Pull(std::map<std::string, std::string> flags) {
  const std::string out = flags["--out"];
  KILN_RETURN_IF_ERROR(MakeDirs(out));
  KILN_ASSIGN_OR_RETURN(ImageReference ref, ParseNormalizedReference(flags["--ref"]));
  RegistryOptions options;
  if (flags.count("--concurrency")) {
    options.max_concurrency_per_registry = std::stoi(flags["--concurrency"]);
  }
  Registry registry(options);
  auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(ResolvedImage image, registry.Resolve(ref, std::nullopt));
  KILN_ASSIGN_OR_RETURN(oci::Manifest m, oci::DecodeManifest(image.manifest));
  int64_t total = 0;
  std::vector<std::future<absl::Status>> pulls;
  for (const auto& layer : m.layers) {
    total += layer.size;
    pulls.push_back(std::async(std::launch::async, [&, layer]() -> absl::Status {
      KILN_ASSIGN_OR_RETURN(auto writer, FileWriter::Create(out, layer.digest));
      return registry.PullBlob(ref, layer, *writer);
    }));
  }
  absl::Status first;
  for (auto& p : pulls) {
    absl::Status st = p.get();
    if (first.ok()) first = st;
  }
  KILN_RETURN_IF_ERROR(first);
  double s = Seconds(start);
  std::printf("pull bytes=%lld seconds=%.3f MBps=%.1f layers=%zu\n", static_cast<long long>(total),
              s, total / s / 1e6, m.layers.size());
  return absl::OkStatus();
}

}  // namespace
}  // namespace kiln::registry

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: registry_bench push|pull --flag value ...\n");
    return 2;
  }
  std::string mode = argv[1];
  auto flags = kiln::registry::Flags(argc, argv);
  absl::Status st = mode == "push"   ? kiln::registry::Push(flags)
                    : mode == "pull" ? kiln::registry::Pull(flags)
                                     : absl::InvalidArgumentError("mode must be push or pull");
  if (!st.ok()) {
    std::fprintf(stderr, "registry_bench: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
