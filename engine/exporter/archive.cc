#include "engine/exporter/archive.h"

#include <algorithm>
#include <functional>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/reference.h"
#include "base/status.h"
#include "base/strings.h"
#include "engine/exporter/go_json.h"
#include "engine/exporter/tree_tar.h"
#include "snapshotter/sha256.h"
#include "snapshotter/tar_writer.h"

namespace kiln::engine {
namespace {

constexpr size_t kCopyChunk = 1 << 20;
constexpr char kImageNameAnnotation[] = "io.containerd.image.name";
constexpr char kRefNameAnnotation[] = "org.opencontainers.image.ref.name";
constexpr char kOciLayout[] = R"({"imageLayoutVersion":"1.0.0"})";

std::string BlobPath(const Digest& d) { return StrCat("blobs/", d.algorithm(), "/", d.hex()); }

// Copies a stored blob to `out`, checking that its bytes still hash to the descriptor.
absl::Status CopyBlob(snapshotter::ContentStore& store, const oci::Descriptor& desc,
                      snapshotter::ByteSink& out, const CancelToken& cancel) {
  KILN_ASSIGN_OR_RETURN(auto reader, store.OpenReader(desc.digest));
  if (reader->size() != desc.size) {
    return absl::DataLossError(StrCat("blob ", desc.digest.str(), " has ", reader->size(),
                                      " bytes, expected ", desc.size));
  }
  snapshotter::Sha256State hash;
  std::string buf(kCopyChunk, '\0');
  int64_t total = 0;
  for (;;) {
    KILN_RETURN_IF_ERROR(cancel.Check());
    KILN_ASSIGN_OR_RETURN(size_t n, reader->Read(buf.data(), buf.size()));
    if (n == 0) break;
    hash.Update(buf.data(), n);
    total += static_cast<int64_t>(n);
    KILN_RETURN_IF_ERROR(out.Write(buf.data(), n));
  }
  if (total != desc.size || hash.Peek() != desc.digest) {
    return absl::DataLossError(StrCat("unexpected digest of blob ", desc.digest.str()));
  }
  return absl::OkStatus();
}

std::vector<oci::Descriptor> Blobs(const ArchiveImage& image) {
  std::vector<oci::Descriptor> blobs{image.manifest, image.config};
  blobs.insert(blobs.end(), image.layers.begin(), image.layers.end());
  return blobs;
}

std::vector<oci::Descriptor> IndexEntries(const ArchiveImage& image) {
  if (image.names.empty()) return {image.manifest};
  std::vector<oci::Descriptor> entries;
  for (const std::string& name : image.names) {
    oci::Descriptor d = image.manifest;
    d.annotations[kImageNameAnnotation] = name;
    d.annotations[kRefNameAnnotation] = OciReferenceName(name);
    entries.push_back(std::move(d));
  }
  return entries;
}

std::string IndexJson(std::vector<oci::Descriptor> manifests) {
  oci::Index index;
  index.manifests = std::move(manifests);
  return oci::EncodeIndex(index);
}

// containerd writes manifest.json for both variants; the oci one (WithSkipDockerManifest)
// only leaves out the names.
absl::StatusOr<std::string> DockerManifestJson(const ArchiveImage& image, ArchiveFormat format) {
  OrderedJson entry = OrderedJson::object();
  entry["Config"] = BlobPath(image.config.digest);
  if (image.names.empty() || format == ArchiveFormat::kOci) {
    entry["RepoTags"] = nullptr;
  } else {
    entry["RepoTags"] = OrderedJson::array();
    for (const std::string& name : image.names) {
      KILN_ASSIGN_OR_RETURN(ImageReference ref, ParseNormalizedReference(name));
      entry["RepoTags"].push_back(ref.WithDefaultTag().FamiliarString());
    }
  }
  entry["Layers"] = OrderedJson::array();
  for (const auto& l : image.layers) entry["Layers"].push_back(BlobPath(l.digest));
  return GoJsonCompact(OrderedJson::array({entry}));
}

struct Record {
  std::string name;
  char type = '0';
  uint32_t mode = 0444;
  int64_t size = 0;
  std::function<absl::Status(snapshotter::ByteSink&)> write;
};

Record Bytes(std::string name, uint32_t mode, std::string data) {
  Record r;
  r.name = std::move(name);
  r.mode = mode;
  r.size = static_cast<int64_t>(data.size());
  r.write = [data = std::move(data)](snapshotter::ByteSink& out) {
    return out.Write(data.data(), data.size());
  };
  return r;
}

absl::Status WriteRecord(const Record& r, snapshotter::ByteSink& out) {
  snapshotter::TarHeader h;
  h.name = r.name;
  h.type = r.type;
  h.mode = r.mode;
  h.size = r.size;
  std::string header = EncodeGoTarHeader(h);
  KILN_RETURN_IF_ERROR(out.Write(header.data(), header.size()));
  if (!r.write) return absl::OkStatus();
  KILN_RETURN_IF_ERROR(r.write(out));
  static const char kZeros[512] = {};
  return out.Write(kZeros, snapshotter::TarPadding(r.size));
}

// Writes `desc` into dir/blobs/... through a verified temporary file; an existing blob of the
// right size is kept.
absl::Status PutLayoutBlob(snapshotter::ContentStore& store, const oci::Descriptor& desc,
                           const std::string& dir, const CancelToken& cancel) {
  std::string blob_dir = StrCat(dir, "/blobs/", desc.digest.algorithm());
  std::string path = StrCat(blob_dir, "/", desc.digest.hex());
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size == desc.size) {
    return absl::OkStatus();
  }
  KILN_RETURN_IF_ERROR(MakeDirs(blob_dir));
  std::string temp = StrCat(blob_dir, "/.", desc.digest.hex(), ".kiln-XXXXXX");
  UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (!fd) return ErrnoStatus(StrCat("create a temporary file in ", Quote(blob_dir)));
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      if (!path.empty()) ::unlink(path.c_str());
    }
  } cleanup{temp};
  int raw = fd.get();
  {
    snapshotter::FdSink file(std::move(fd), temp);
    KILN_RETURN_IF_ERROR(CopyBlob(store, desc, file, cancel));
    if (::fchmod(raw, 0444) != 0 || ::fsync(raw) != 0) {
      return ErrnoStatus(StrCat("finish ", Quote(temp)));
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(StrCat("rename ", Quote(temp), " to ", Quote(path)));
  }
  cleanup.path.clear();
  return absl::OkStatus();
}

}  // namespace

std::string OciReferenceName(std::string_view name) {
  size_t slash = name.find('/');
  if (slash == std::string_view::npos) return std::string(name);
  size_t split = name.find_first_of(":@", slash);
  if (split == std::string_view::npos) return std::string(name);
  std::string_view object = name.substr(split);
  if (object.front() == ':') object.remove_prefix(1);
  return std::string(object);
}

absl::Status WriteImageArchive(snapshotter::ContentStore& store, const ArchiveImage& image,
                               ArchiveFormat format, snapshotter::ByteSink& out,
                               const CancelToken& cancel) {
  std::vector<Record> records;
  records.push_back(Bytes("oci-layout", 0444, kOciLayout));
  records.push_back(Bytes("index.json", 0644, IndexJson(IndexEntries(image))));
  KILN_ASSIGN_OR_RETURN(std::string manifests, DockerManifestJson(image, format));
  records.push_back(Bytes("manifest.json", 0644, std::move(manifests)));
  Record blobs_dir;
  blobs_dir.name = "blobs/";
  blobs_dir.type = '5';
  blobs_dir.mode = 0755;
  records.push_back(blobs_dir);
  for (const oci::Descriptor& d : Blobs(image)) {
    Record alg = blobs_dir;
    alg.name = StrCat("blobs/", d.digest.algorithm(), "/");
    records.push_back(alg);
    Record r;
    r.name = BlobPath(d.digest);
    r.size = d.size;
    r.write = [&store, d, &cancel](snapshotter::ByteSink& sink) {
      return CopyBlob(store, d, sink, cancel);
    };
    records.push_back(std::move(r));
  }
  std::stable_sort(records.begin(), records.end(),
                   [](const Record& a, const Record& b) { return a.name < b.name; });
  const std::string* last = nullptr;
  for (const Record& r : records) {
    if (last != nullptr && *last == r.name) continue;  // a blob listed twice
    last = &r.name;
    KILN_RETURN_IF_ERROR(WriteRecord(r, out));
  }
  static const char kTrailer[snapshotter::kTarTrailerSize] = {};
  return out.Write(kTrailer, sizeof(kTrailer));
}

absl::Status WriteImageLayoutDir(snapshotter::ContentStore& store, const ArchiveImage& image,
                                 const std::string& dir, const std::string& tag,
                                 const CancelToken& cancel) {
  KILN_RETURN_IF_ERROR(MakeDirs(dir));
  for (const oci::Descriptor& d : Blobs(image)) {
    KILN_RETURN_IF_ERROR(PutLayoutBlob(store, d, dir, cancel));
  }
  std::string layout = dir + "/oci-layout";
  if (::access(layout.c_str(), F_OK) != 0) {
    KILN_RETURN_IF_ERROR(WriteFileAtomic(layout, kOciLayout, 0444));
  }
  std::string index_path = dir + "/index.json";
  oci::Index index;
  auto existing = ReadFileToString(index_path);
  if (existing.ok() && !existing->empty()) {
    KILN_ASSIGN_OR_RETURN(index, oci::DecodeIndex(*existing));
  } else if (!existing.ok() && !absl::IsNotFound(existing.status())) {
    return existing.status();
  }
  index.schema_version = 2;
  oci::Descriptor entry = image.manifest;
  if (!tag.empty()) {
    entry.annotations[kRefNameAnnotation] = tag;
    std::erase_if(index.manifests, [&](const oci::Descriptor& m) {
      auto it = m.annotations.find(kRefNameAnnotation);
      return it != m.annotations.end() && it->second == tag;
    });
  }
  index.manifests.push_back(std::move(entry));
  return WriteFileAtomic(index_path, oci::EncodeIndex(index), 0644);
}

}  // namespace kiln::engine
