#include "snapshotter/local_content_store.h"

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <set>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/status.h"
#include "base/unique_fd.h"
#include "nlohmann/json.hpp"
#include "snapshotter/sha256.h"

namespace kiln::snapshotter {

namespace {

constexpr size_t kIoChunk = 1 << 20;

Timestamp FromTimespec(const struct timespec& ts) {
  return Timestamp(std::chrono::duration_cast<Timestamp::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  ::closedir(d);
  return names;
}

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status CheckSha256(const Digest& d) {
  if (!d.valid() || d.algorithm() != "sha256") {
    return absl::InvalidArgumentError(StrCat("content store: unsupported digest ", Quote(d.str())));
  }
  return absl::OkStatus();
}

absl::StatusOr<Labels> ReadLabelsFile(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return Labels{};
    return text.status();
  }
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::DataLossError(StrCat("labels file ", Quote(path), " is not a JSON object"));
  }
  Labels labels;
  for (auto& [k, v] : j.items()) {
    if (v.is_string()) labels[k] = v.get<std::string>();
  }
  return labels;
}

absl::Status WriteLabelsFile(const std::string& path, const Labels& labels) {
  if (labels.empty()) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(StrCat("remove ", Quote(path)));
    }
    return absl::OkStatus();
  }
  nlohmann::json j = nlohmann::json::object();
  for (auto& [k, v] : labels) j[k] = v;
  return WriteFileAtomic(path, j.dump(), 0644);
}

}  // namespace

struct LocalContentStore::Shared {
  std::string root;  // <root>/content
  UniqueFd lock_fd;
  std::mutex mu;  // guards active_refs and label read-modify-write
  std::set<std::string> active_refs;

  std::string BlobDir() const { return root + "/blobs/sha256"; }
  std::string LabelDir() const { return root + "/labels/sha256"; }
  std::string IngestRoot() const { return root + "/ingest"; }
  std::string BlobPath(const Digest& d) const { return StrCat(BlobDir(), "/", d.hex()); }
  std::string LabelPath(const Digest& d) const { return StrCat(LabelDir(), "/", d.hex(), ".json"); }
  std::string IngestDir(std::string_view ref) const {
    return StrCat(IngestRoot(), "/", Digest::Sha256Of(ref).hex());
  }

  // Merges `update` into the stored labels of `d` (empty value deletes).
  absl::Status MergeLabels(const Digest& d, const Labels& update) {
    if (update.empty()) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(mu);
    KILN_ASSIGN_OR_RETURN(Labels labels, ReadLabelsFile(LabelPath(d)));
    for (auto& [k, v] : update) {
      if (v.empty()) {
        labels.erase(k);
      } else {
        labels[k] = v;
      }
    }
    return WriteLabelsFile(LabelPath(d), labels);
  }

  void ReleaseRef(const std::string& ref) {
    std::lock_guard<std::mutex> lock(mu);
    active_refs.erase(ref);
  }
};

namespace {

class LocalWriter : public ContentWriter {
 public:
  LocalWriter(std::shared_ptr<LocalContentStore::Shared> shared, std::string ref, std::string dir,
              UniqueFd fd, int64_t offset)
      : shared_(std::move(shared)),
        ref_(std::move(ref)),
        dir_(std::move(dir)),
        fd_(std::move(fd)),
        offset_(offset) {}

  ~LocalWriter() override { shared_->ReleaseRef(ref_); }

  absl::Status Rehash(int64_t upto) {
    hash_.Reset();
    std::string buf(kIoChunk, '\0');
    int64_t pos = 0;
    while (pos < upto) {
      size_t want = static_cast<size_t>(std::min<int64_t>(kIoChunk, upto - pos));
      ssize_t n = ::pread(fd_.get(), buf.data(), want, pos);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(StrCat("read ingest ", Quote(ref_)));
      }
      if (n == 0) break;
      hash_.Update(buf.data(), static_cast<size_t>(n));
      pos += n;
    }
    offset_ = pos;
    return absl::OkStatus();
  }

  absl::Status Write(const void* data, size_t n) override {
    KILN_RETURN_IF_ERROR(CheckOpen());
    absl::Status s = WriteFull(fd_.get(), data, n, DataPath());
    if (!s.ok()) {
      // The file may hold a prefix of this write; resync so a retry is consistent.
      off_t end = ::lseek(fd_.get(), 0, SEEK_END);
      if (end >= 0) (void)Rehash(end);
      return s;
    }
    hash_.Update(data, n);
    offset_ += static_cast<int64_t>(n);
    StartWriteback();
    return absl::OkStatus();
  }

  int64_t offset() const override { return offset_; }
  Digest digest() override { return hash_.Peek(); }

  // Starts the disk writes of every full 8 MiB written since the last call, without waiting,
  // so Commit's fsync finds little left to flush instead of the whole blob.  Advisory only: a
  // failure here is caught by that fsync.
  void StartWriteback() {
    constexpr int64_t kWritebackChunk = 8 << 20;
    if (offset_ - writeback_from_ < kWritebackChunk) return;
    const int64_t len = (offset_ - writeback_from_) / kWritebackChunk * kWritebackChunk;
    (void)::sync_file_range(fd_.get(), writeback_from_, len, SYNC_FILE_RANGE_WRITE);
    writeback_from_ += len;
  }

  absl::Status Truncate(int64_t size) override {
    KILN_RETURN_IF_ERROR(CheckOpen());
    if (size < 0 || size > offset_) {
      return absl::InvalidArgumentError(
          StrCat("truncate ingest ", Quote(ref_), " to ", size, ": offset is ", offset_));
    }
    if (::ftruncate(fd_.get(), size) != 0)
      return ErrnoStatus(StrCat("truncate ", Quote(DataPath())));
    if (::lseek(fd_.get(), size, SEEK_SET) < 0) return ErrnoStatus("lseek");
    writeback_from_ = std::min(writeback_from_, size);
    return Rehash(size);
  }

  absl::Status Commit(const Digest& expected, int64_t expected_size,
                      const Labels& labels) override {
    KILN_RETURN_IF_ERROR(CheckOpen());
    done_ = true;
    Digest actual = hash_.Peek();
    if (expected_size >= 0 && offset_ != expected_size) {
      Discard();
      return absl::DataLossError(StrCat("commit ", Quote(ref_), ": size mismatch: expected ",
                                        expected_size, " bytes, got ", offset_));
    }
    if (expected.valid() && expected != actual) {
      Discard();
      return absl::DataLossError(StrCat("commit ", Quote(ref_), ": digest mismatch: expected ",
                                        expected.str(), ", got ", actual.str()));
    }
    if (::fsync(fd_.get()) != 0) return ErrnoStatus(StrCat("fsync ", Quote(DataPath())));
    if (::fchmod(fd_.get(), 0444) != 0) return ErrnoStatus(StrCat("chmod ", Quote(DataPath())));
    fd_.Reset();
    // Labels first: a crash between the two leaves labels without a blob, which Open() removes;
    // the other order could lose a GC-root label.
    KILN_RETURN_IF_ERROR(shared_->MergeLabels(actual, labels));
    std::string blob = shared_->BlobPath(actual);
    if (::renameat2(AT_FDCWD, DataPath().c_str(), AT_FDCWD, blob.c_str(), RENAME_NOREPLACE) != 0) {
      if (errno != EEXIST)
        return ErrnoStatus(StrCat("rename ", Quote(DataPath()), " to ", Quote(blob)));
      // Identical content committed concurrently (or earlier): it is stored once.
    }
    KILN_RETURN_IF_ERROR(SyncDir(shared_->BlobDir()));
    Discard();
    return absl::OkStatus();
  }

 private:
  std::string DataPath() const { return dir_ + "/data"; }
  absl::Status CheckOpen() const {
    if (done_) return absl::FailedPreconditionError(StrCat("ingest ", Quote(ref_), " is finished"));
    return absl::OkStatus();
  }
  void Discard() {
    fd_.Reset();
    (void)RemoveAll(dir_);
  }

  std::shared_ptr<LocalContentStore::Shared> shared_;
  std::string ref_;
  std::string dir_;
  UniqueFd fd_;
  int64_t offset_ = 0;
  int64_t writeback_from_ = 0;  // StartWriteback() started the disk writes below this offset
  Sha256State hash_;
  bool done_ = false;
};

class LocalReader : public ContentReader {
 public:
  LocalReader(UniqueFd fd, int64_t size, std::string name)
      : fd_(std::move(fd)), size_(size), name_(std::move(name)) {}
  int64_t size() const override { return size_; }
  absl::StatusOr<size_t> Read(void* buf, size_t n) override {
    KILN_ASSIGN_OR_RETURN(size_t got, ReadAt(buf, n, pos_));
    pos_ += static_cast<int64_t>(got);
    return got;
  }
  absl::StatusOr<size_t> ReadAt(void* buf, size_t n, int64_t offset) override {
    for (;;) {
      ssize_t r = ::pread(fd_.get(), buf, n, offset);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno != EINTR) return ErrnoStatus(StrCat("read blob ", Quote(name_)));
    }
  }

 private:
  UniqueFd fd_;
  int64_t size_;
  std::string name_;
  int64_t pos_ = 0;
};

}  // namespace

LocalContentStore::LocalContentStore(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
LocalContentStore::~LocalContentStore() = default;

std::string LocalContentStore::BlobPath(const Digest& digest) const {
  return shared_->BlobPath(digest);
}

absl::StatusOr<std::unique_ptr<LocalContentStore>> LocalContentStore::Open(
    const std::string& root, const LocalContentStoreOptions& options) {
  auto shared = std::make_shared<Shared>();
  shared->root = root + "/content";
  for (const std::string& d : {shared->BlobDir(), shared->LabelDir(), shared->IngestRoot()}) {
    KILN_RETURN_IF_ERROR(MakeDirs(d, 0700));
  }
  std::string lock_path = shared->root + "/lock";
  shared->lock_fd.Reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!shared->lock_fd) return ErrnoStatus(StrCat("open ", Quote(lock_path)));
  if (::flock(shared->lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::UnavailableError(
          StrCat("content store ", Quote(root), " is in use by another store instance"));
    }
    return ErrnoStatus(StrCat("lock ", Quote(lock_path)));
  }
  std::unique_ptr<LocalContentStore> store(new LocalContentStore(std::move(shared)));
  KILN_RETURN_IF_ERROR(store->CleanLeftovers(options));
  return store;
}

absl::Status LocalContentStore::CleanLeftovers(const LocalContentStoreOptions& options) {
  auto now = std::chrono::system_clock::now();
  for (const std::string& name : ListDir(shared_->IngestRoot())) {
    std::string dir = StrCat(shared_->IngestRoot(), "/", name);
    struct stat st;
    bool complete = ::stat((dir + "/ref").c_str(), &st) == 0;
    bool stale = true;
    if (complete && ::stat((dir + "/data").c_str(), &st) == 0) {
      stale = now - FromTimespec(st.st_mtim) > options.stale_ingest_age;
    }
    if (!complete || stale) KILN_RETURN_IF_ERROR(RemoveAll(dir));
  }
  for (const std::string& name : ListDir(shared_->LabelDir())) {
    std::string path = StrCat(shared_->LabelDir(), "/", name);
    bool keep = name.size() == 69 && name.ends_with(".json") && IsHex64(name.substr(0, 64)) &&
                ::access(StrCat(shared_->BlobDir(), "/", name.substr(0, 64)).c_str(), F_OK) == 0;
    if (!keep && ::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(StrCat("remove ", Quote(path)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ContentInfo> LocalContentStore::Info(const Digest& digest) {
  KILN_RETURN_IF_ERROR(CheckSha256(digest));
  std::string path = shared_->BlobPath(digest);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return absl::NotFoundError(StrCat("content ", digest.str(), ": not found"));
    return ErrnoStatus(StrCat("stat ", Quote(path)));
  }
  ContentInfo info;
  info.digest = digest;
  info.size = st.st_size;
  info.created = FromTimespec(st.st_mtim);
  info.updated = info.created;
  std::string lpath = shared_->LabelPath(digest);
  struct stat lst;
  if (::stat(lpath.c_str(), &lst) == 0)
    info.updated = std::max(info.updated, FromTimespec(lst.st_mtim));
  KILN_ASSIGN_OR_RETURN(info.labels, ReadLabelsFile(lpath));
  return info;
}

absl::StatusOr<std::unique_ptr<ContentReader>> LocalContentStore::OpenReader(const Digest& digest) {
  KILN_RETURN_IF_ERROR(CheckSha256(digest));
  std::string path = shared_->BlobPath(digest);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT)
      return absl::NotFoundError(StrCat("content ", digest.str(), ": not found"));
    return ErrnoStatus(StrCat("open ", Quote(path)));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(StrCat("stat ", Quote(path)));
  return std::unique_ptr<ContentReader>(
      std::make_unique<LocalReader>(std::move(fd), st.st_size, digest.str()));
}

absl::StatusOr<std::unique_ptr<ContentWriter>> LocalContentStore::OpenWriter(
    const WriterOptions& opts) {
  if (opts.ref.empty()) return absl::InvalidArgumentError("open content writer: empty ref");
  if (opts.expected) {
    KILN_RETURN_IF_ERROR(CheckSha256(*opts.expected));
    if (::access(shared_->BlobPath(*opts.expected).c_str(), F_OK) == 0) {
      return absl::AlreadyExistsError(StrCat("content ", opts.expected->str(), ": already exists"));
    }
  }
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (!shared_->active_refs.insert(opts.ref).second) {
      return absl::UnavailableError(
          StrCat("ingest ", Quote(opts.ref), " is locked by another writer"));
    }
  }
  // From here the writer (or this guard) releases the ref.
  struct RefGuard {
    Shared* s;
    const std::string* ref;
    bool armed = true;
    ~RefGuard() {
      if (armed) s->ReleaseRef(*ref);
    }
  } guard{shared_.get(), &opts.ref};

  std::string dir = shared_->IngestDir(opts.ref);
  KILN_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  std::string ref_path = dir + "/ref";
  auto existing_ref = ReadFileToString(ref_path);
  if (!existing_ref.ok() || *existing_ref != opts.ref) {
    // New ingest (or a half-created one): start from nothing.
    std::string data_path = dir + "/data";
    if (::unlink(data_path.c_str()) != 0 && errno != ENOENT)
      return ErrnoStatus(StrCat("remove ", Quote(data_path)));
    auto now = std::chrono::system_clock::now().time_since_epoch();
    KILN_RETURN_IF_ERROR(WriteFileAtomic(
        dir + "/startedat",
        std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count())));
    KILN_RETURN_IF_ERROR(WriteFileAtomic(ref_path, opts.ref));
  }
  std::string data_path = dir + "/data";
  UniqueFd fd(::open(data_path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) return ErrnoStatus(StrCat("open ", Quote(data_path)));
  auto writer = std::make_unique<LocalWriter>(shared_, opts.ref, dir, std::move(fd), 0);
  guard.armed = false;
  struct stat st;
  if (::stat(data_path.c_str(), &st) != 0) return ErrnoStatus(StrCat("stat ", Quote(data_path)));
  KILN_RETURN_IF_ERROR(writer->Rehash(st.st_size));
  return std::unique_ptr<ContentWriter>(std::move(writer));
}

absl::Status LocalContentStore::Delete(const Digest& digest) {
  KILN_RETURN_IF_ERROR(CheckSha256(digest));
  std::string path = shared_->BlobPath(digest);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT)
      return absl::NotFoundError(StrCat("delete content ", digest.str(), ": not found"));
    return ErrnoStatus(StrCat("remove ", Quote(path)));
  }
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    std::string lpath = shared_->LabelPath(digest);
    if (::unlink(lpath.c_str()) != 0 && errno != ENOENT)
      return ErrnoStatus(StrCat("remove ", Quote(lpath)));
  }
  return SyncDir(shared_->BlobDir());
}

absl::Status LocalContentStore::Walk(const std::function<absl::Status(const ContentInfo&)>& fn) {
  for (const std::string& name : ListDir(shared_->BlobDir())) {
    if (!IsHex64(name)) continue;
    auto digest = Digest::Parse(StrCat("sha256:", name));
    if (!digest.ok()) continue;
    auto info = Info(*digest);
    if (absl::IsNotFound(info.status())) continue;  // deleted meanwhile
    if (!info.ok()) return info.status();
    KILN_RETURN_IF_ERROR(fn(*info));
  }
  return absl::OkStatus();
}

absl::Status LocalContentStore::UpdateLabels(const Digest& digest, const Labels& labels) {
  KILN_RETURN_IF_ERROR(CheckSha256(digest));
  if (::access(shared_->BlobPath(digest).c_str(), F_OK) != 0) {
    return absl::NotFoundError(StrCat("update labels of ", digest.str(), ": not found"));
  }
  return shared_->MergeLabels(digest, labels);
}

absl::StatusOr<std::vector<IngestStatus>> LocalContentStore::ListIngests() {
  std::vector<IngestStatus> out;
  for (const std::string& name : ListDir(shared_->IngestRoot())) {
    std::string dir = StrCat(shared_->IngestRoot(), "/", name);
    auto ref = ReadFileToString(dir + "/ref");
    if (!ref.ok()) continue;
    IngestStatus st;
    st.ref = *ref;
    struct stat s;
    if (::stat((dir + "/data").c_str(), &s) == 0) {
      st.offset = s.st_size;
      st.updated = FromTimespec(s.st_mtim);
    }
    if (auto started = ReadFileToString(dir + "/startedat"); started.ok()) {
      st.started = Timestamp(std::chrono::duration_cast<Timestamp::duration>(
          std::chrono::nanoseconds(std::strtoll(started->c_str(), nullptr, 10))));
    }
    out.push_back(std::move(st));
  }
  return out;
}

absl::Status LocalContentStore::AbortIngest(std::string_view ref) {
  std::string r(ref);
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->active_refs.count(r)) {
      return absl::UnavailableError(StrCat("abort ingest ", Quote(r), ": a writer is live"));
    }
    shared_->active_refs.insert(r);  // keep writers out while removing
  }
  std::string dir = shared_->IngestDir(r);
  absl::Status s = absl::OkStatus();
  if (::access(dir.c_str(), F_OK) != 0) {
    s = absl::NotFoundError(StrCat("abort ingest ", Quote(r), ": not found"));
  } else {
    s = RemoveAll(dir);
  }
  shared_->ReleaseRef(r);
  return s;
}

// ---- helpers over the interface ----

absl::StatusOr<std::string> ReadBlob(ContentStore& store, const Digest& digest, int64_t max_size) {
  KILN_ASSIGN_OR_RETURN(auto reader, store.OpenReader(digest));
  if (reader->size() > max_size) {
    return absl::ResourceExhaustedError(StrCat("read blob ", digest.str(), ": ", reader->size(),
                                               " bytes exceeds the limit of ", max_size));
  }
  std::string out(static_cast<size_t>(reader->size()), '\0');
  size_t pos = 0;
  while (pos < out.size()) {
    KILN_ASSIGN_OR_RETURN(size_t n, reader->ReadAt(out.data() + pos, out.size() - pos, pos));
    if (n == 0) break;
    pos += n;
  }
  if (pos != out.size() || Digest::Sha256Of(out) != digest) {
    return absl::DataLossError(StrCat("read blob ", digest.str(), ": stored bytes do not match"));
  }
  return out;
}

absl::StatusOr<Digest> WriteBlob(ContentStore& store, std::string_view data, const Digest& expected,
                                 const Labels& labels) {
  Digest actual = Digest::Sha256Of(data);
  if (expected.valid() && expected != actual) {
    return absl::DataLossError(
        StrCat("write blob: digest mismatch: expected ", expected.str(), ", got ", actual.str()));
  }
  StringSource src(data);
  KILN_RETURN_IF_ERROR(CopyToStore(store, src, actual, static_cast<int64_t>(data.size()), labels));
  return actual;
}

absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriterWithRetry(ContentStore& store,
                                                                   const WriterOptions& opts,
                                                                   const CancelToken& cancel) {
  auto delay = std::chrono::milliseconds(1);
  for (;;) {
    auto w = store.OpenWriter(opts);
    if (!absl::IsUnavailable(w.status())) return w;
    KILN_RETURN_IF_ERROR(cancel.Check());
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::milliseconds(100));
  }
}

absl::Status CopyToStore(ContentStore& store, ByteSource& source, const Digest& expected,
                         int64_t expected_size, const Labels& labels, const CancelToken& cancel) {
  WriterOptions opts;
  opts.ref = StrCat("copy-", expected.str());
  if (expected.valid()) opts.expected = expected;
  auto writer_or = OpenWriterWithRetry(store, opts, cancel);
  if (absl::IsAlreadyExists(writer_or.status())) {
    return labels.empty() ? absl::OkStatus() : store.UpdateLabels(expected, labels);
  }
  if (!writer_or.ok()) return writer_or.status();
  auto& writer = *writer_or;
  // A resumed ingest of a non-seekable source cannot skip ahead: restart it.
  if (writer->offset() != 0) KILN_RETURN_IF_ERROR(writer->Truncate(0));
  std::string buf(kIoChunk, '\0');
  for (;;) {
    KILN_RETURN_IF_ERROR(cancel.Check());
    KILN_ASSIGN_OR_RETURN(size_t n, source.Read(buf.data(), buf.size()));
    if (n == 0) break;
    if (expected_size >= 0 && writer->offset() + static_cast<int64_t>(n) > expected_size) {
      (void)writer->Commit(expected, expected_size);  // discards the ingest
      return absl::DataLossError(
          StrCat("copy ", expected.str(), ": more than the expected ", expected_size, " bytes"));
    }
    KILN_RETURN_IF_ERROR(writer->Write(buf.data(), n));
  }
  return writer->Commit(expected, expected_size, labels);
}

}  // namespace kiln::snapshotter
