#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "base/strings.h"
#include "registry/operations.h"

namespace kiln::registry::internal {

namespace {

constexpr char kOctetStream[] = "application/octet-stream";
constexpr int64_t kProgressStep = 1 << 20;

std::string UploadsPath(const std::string& repo) { return StrCat("/v2/", repo, "/blobs/uploads/"); }

// Calls `report` with a running byte count at most once per kProgressStep.
class ProgressThrottle {
 public:
  explicit ProgressThrottle(std::function<void(int64_t)> report) : report_(std::move(report)) {}
  void Update(int64_t done) {
    if (report_ && (done - last_ >= kProgressStep || done < last_)) {
      last_ = done;
      report_(done);
    }
  }

 private:
  std::function<void(int64_t)> report_;
  int64_t last_ = 0;
};

// A monolithic PUT's body: the blob from the provider, reopened when the request is resent.
class ProviderBody : public BodySource {
 public:
  ProviderBody(BlobProvider& provider, const oci::Descriptor& desc, ProgressThrottle& progress)
      : provider_(provider), desc_(desc), progress_(progress) {}

  int64_t Size() const override { return desc_.size; }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    const uint64_t size = static_cast<uint64_t>(desc_.size);
    if (pos_ >= size) return 0;
    if (!reader_) {
      KILN_ASSIGN_OR_RETURN(reader_, provider_.Open(desc_, 0));
    }
    KILN_ASSIGN_OR_RETURN(size_t got, reader_->Read(buf, std::min<uint64_t>(n, size - pos_)));
    if (got == 0) {
      return absl::InvalidArgumentError(
          StrCat("blob ", desc_.digest.str(), " ended after ", pos_, " of ", size, " bytes"));
    }
    pos_ += got;
    progress_.Update(static_cast<int64_t>(pos_));
    return got;
  }

  absl::Status Rewind() override {
    reader_.reset();
    pos_ = 0;
    return absl::OkStatus();
  }

 private:
  BlobProvider& provider_;
  const oci::Descriptor& desc_;
  ProgressThrottle& progress_;
  std::unique_ptr<BlobReader> reader_;
  uint64_t pos_ = 0;
};

// The bytes of a chunked upload from a given offset on.
class ChunkFeeder {
 public:
  virtual ~ChunkFeeder() = default;
  // Up to one chunk starting at `offset`; empty at the end of the blob.
  virtual absl::StatusOr<std::string_view> At(uint64_t offset) = 0;
};

// Fills `buf` from `reader` until it is full or the reader ends.
absl::StatusOr<size_t> Fill(BlobReader& reader, std::string& buf) {
  size_t filled = 0;
  while (filled < buf.size()) {
    KILN_ASSIGN_OR_RETURN(size_t n, reader.Read(buf.data() + filled, buf.size() - filled));
    if (n == 0) break;
    filled += n;
  }
  return filled;
}

// Chunks of a stored blob: any offset can be served by reopening the provider there.
class ProviderFeeder : public ChunkFeeder {
 public:
  ProviderFeeder(BlobProvider& provider, const oci::Descriptor& desc, uint64_t chunk)
      : provider_(provider), desc_(desc), chunk_(chunk) {}

  absl::StatusOr<std::string_view> At(uint64_t offset) override {
    const uint64_t size = static_cast<uint64_t>(desc_.size);
    if (offset >= size) return std::string_view();
    if (offset >= buf_start_ && offset < buf_start_ + buf_.size()) {
      return std::string_view(buf_).substr(offset - buf_start_);
    }
    if (!reader_ || reader_pos_ != offset) {
      KILN_ASSIGN_OR_RETURN(reader_, provider_.Open(desc_, offset));
      reader_pos_ = offset;
    }
    buf_.resize(std::min(chunk_, size - offset));
    KILN_ASSIGN_OR_RETURN(size_t n, Fill(*reader_, buf_));
    if (n != buf_.size()) {
      return absl::InvalidArgumentError(
          StrCat("blob ", desc_.digest.str(), " ended after ", offset + n, " of ", size, " bytes"));
    }
    buf_start_ = offset;
    reader_pos_ += n;
    return std::string_view(buf_);
  }

 private:
  BlobProvider& provider_;
  const oci::Descriptor& desc_;
  const uint64_t chunk_;
  std::unique_ptr<BlobReader> reader_;
  uint64_t reader_pos_ = 0;
  std::string buf_;
  uint64_t buf_start_ = 0;
};

// Chunks of a stream read once: the current chunk is kept so it can be resent, nothing older.
// The digest is computed as bytes arrive.
class StreamFeeder : public ChunkFeeder {
 public:
  StreamFeeder(BlobReader& producer, uint64_t chunk) : producer_(producer), chunk_(chunk) {}

  absl::StatusOr<std::string_view> At(uint64_t offset) override {
    if (offset >= buf_start_ && offset < buf_start_ + buf_.size()) {
      return std::string_view(buf_).substr(offset - buf_start_);
    }
    if (offset != total_) {
      return absl::FailedPreconditionError(
          StrCat("the registry asks to resume a streamed upload at byte ", offset,
                 ", but only bytes from ", buf_start_, " on are still held"));
    }
    if (eof_) return std::string_view();
    buf_.resize(chunk_);
    KILN_ASSIGN_OR_RETURN(size_t n, Fill(producer_, buf_));
    buf_.resize(n);
    if (n < chunk_) eof_ = true;
    hasher_.Update(buf_);
    buf_start_ = offset;
    total_ += n;
    return std::string_view(buf_);
  }

  uint64_t total() const { return total_; }
  Digest Finish() { return hasher_.Finish(); }

 private:
  BlobReader& producer_;
  const uint64_t chunk_;
  Sha256Hasher hasher_;
  std::string buf_;
  uint64_t buf_start_ = 0;
  uint64_t total_ = 0;
  bool eof_ = false;
};

struct UploadState {
  std::string location;
  uint64_t offset = 0;
};

// GET <location>: where an upload session stands (Range "0-<last byte>").
absl::StatusOr<UploadState> QueryUpload(Session& s, const std::string& location) {
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, s.Call(
                                               [&](HttpRequest& r) {
                                                 r.method = "GET";
                                                 r.url = location;
                                                 r.max_body_bytes = 64 << 10;
                                               },
                                               {204, 200}));
  UploadState state;
  state.location = location;
  if (auto loc = resp.headers.Get("Location")) state.location = ResolveLocation(location, *loc);
  if (auto range = resp.headers.Get("Range")) {
    std::vector<std::string> parts = absl::StrSplit(*range, '-');
    uint64_t end = 0;
    // "0-0" is what distribution says for an empty session too; chunks are never 1 byte long
    // except for a 1-byte blob, which is then resent whole.
    if (parts.size() == 2 && absl::SimpleAtoi(parts[1], &end) && end > 0) state.offset = end + 1;
  }
  return state;
}

// PATCHes chunks from `feeder` to `location`, following every new Location.  A 416 or a
// transient failure asks the registry where the upload stands and resumes from there.
absl::Status SendChunks(Session& s, std::string& location, ChunkFeeder& feeder,
                        ProgressThrottle& progress) {
  uint64_t offset = 0;
  int failures = 0;
  Backoff backoff(s.env().retry);
  for (;;) {
    KILN_ASSIGN_OR_RETURN(std::string_view chunk, feeder.At(offset));
    if (chunk.empty()) return absl::OkStatus();
    StringViewBody body(chunk);
    HttpRequest req;
    req.method = "PATCH";
    req.url = location;
    req.body = &body;
    req.max_body_bytes = 64 << 10;
    req.headers.Set("Content-Type", kOctetStream);
    req.headers.Set("Content-Range", StrCat(offset, "-", offset + chunk.size() - 1));
    absl::StatusOr<HttpResponse> resp = s.Send(req);
    absl::Status st;
    if (resp.ok() && (resp->status == 202 || resp->status == 204)) {
      // The registry's Range is not trusted (GHCR may say 0-0): the bytes sent count.
      if (auto loc = resp->headers.Get("Location")) location = ResolveLocation(location, *loc);
      offset += chunk.size();
      progress.Update(static_cast<int64_t>(offset));
      continue;
    }
    st = resp.ok() ? s.ErrorFor(req, *resp) : resp.status();
    const bool out_of_sync = HttpStatusOf(st) == 416;
    if ((!out_of_sync && !IsRetriable(st)) || ++failures >= s.env().retry.max_attempts) return st;
    if (!out_of_sync) KILN_RETURN_IF_ERROR(s.Sleep(backoff.Next(st)));
    KILN_ASSIGN_OR_RETURN(UploadState state, QueryUpload(s, location));
    location = state.location;
    offset = state.offset;
  }
}

// The final PUT <location>?digest=.  A lost response is recognized by the blob being there.
absl::Status FinishUpload(Session& s, const std::string& repo, const std::string& location,
                          const Digest& digest) {
  const std::string url = AddQuery(location, "digest", digest.str());
  Backoff backoff(s.env().retry);
  for (int attempt = 1;; ++attempt) {
    HttpRequest req;
    req.method = "PUT";
    req.url = url;
    req.max_body_bytes = 64 << 10;
    req.headers.Set("Content-Type", kOctetStream);
    absl::StatusOr<HttpResponse> resp = s.Send(req);
    absl::Status st;
    if (resp.ok() && (resp->status == 201 || resp->status == 204)) {
      auto theirs = resp->headers.Get("Docker-Content-Digest");
      if (theirs && *theirs != digest.str()) {
        return absl::DataLossError(
            StrCat(DescribeRequest("PUT", url), ": registry stored the blob as ", Quote(*theirs)));
      }
      return absl::OkStatus();
    }
    st = resp.ok() ? s.ErrorFor(req, *resp) : resp.status();
    if (!IsRetriable(st) || attempt >= s.env().retry.max_attempts) return st;
    KILN_RETURN_IF_ERROR(s.Sleep(backoff.Next(st)));
    KILN_ASSIGN_OR_RETURN(bool exists, BlobExists(s, repo, digest));
    if (exists) return absl::OkStatus();
  }
}

// POST <repo>/blobs/uploads/: a new upload session's location.
absl::StatusOr<std::string> StartUpload(Session& s, const std::string& repo) {
  const std::string url = s.Url(UploadsPath(repo));
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, s.Call(
                                               [&](HttpRequest& r) {
                                                 r.method = "POST";
                                                 r.url = url;
                                                 r.max_body_bytes = 64 << 10;
                                               },
                                               {202}));
  auto loc = resp.headers.Get("Location");
  if (!loc || loc->empty()) {
    return absl::UnavailableError(
        StrCat(DescribeRequest("POST", url), ": 202 without a Location header"));
  }
  return ResolveLocation(url, *loc);
}

// One streamed PUT of the whole blob to `location`.
absl::Status PutWhole(Session& s, const std::string& location, const oci::Descriptor& desc,
                      BlobProvider& provider, ProgressThrottle& progress) {
  ProviderBody body(provider, desc, progress);
  HttpRequest req;
  req.method = "PUT";
  req.url = AddQuery(location, "digest", desc.digest.str());
  req.body = &body;
  req.max_body_bytes = 64 << 10;
  req.headers.Set("Content-Type", kOctetStream);
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, s.Send(req));
  if (resp.status != 201 && resp.status != 204) return s.ErrorFor(req, resp);
  auto theirs = resp.headers.Get("Docker-Content-Digest");
  if (theirs && *theirs != desc.digest.str()) {
    return absl::DataLossError(
        StrCat(DescribeRequest("PUT", req.url), ": registry stored the blob as ", Quote(*theirs)));
  }
  return absl::OkStatus();
}

absl::Status PutChunked(Session& s, std::string location, const std::string& repo,
                        const oci::Descriptor& desc, BlobProvider& provider, uint64_t chunk,
                        ProgressThrottle& progress) {
  ProviderFeeder feeder(provider, desc, chunk);
  KILN_RETURN_IF_ERROR(SendChunks(s, location, feeder, progress));
  return FinishUpload(s, repo, location, desc.digest);
}

bool SessionLost(const absl::Status& st) {
  return HttpStatusOf(st) == 416 || RegistryErrorCode(st) == "BLOB_UPLOAD_UNKNOWN" ||
         RegistryErrorCode(st) == "BLOB_UPLOAD_INVALID";
}

}  // namespace

absl::StatusOr<bool> BlobExists(Session& s, const std::string& repo, const Digest& digest) {
  const std::string url = s.Url(StrCat("/v2/", repo, "/blobs/", digest.str()));
  KILN_ASSIGN_OR_RETURN(HttpResponse resp, s.Call(
                                               [&](HttpRequest& r) {
                                                 r.method = "HEAD";
                                                 r.url = url;
                                               },
                                               {200, 404}));
  return resp.status == 200;
}

absl::StatusOr<BlobOutcome> PushBlob(Session& s, const std::string& repo,
                                     const oci::Descriptor& desc, BlobProvider& provider,
                                     const std::vector<std::string>& mount_from,
                                     const UploadSettings& settings) {
  if (!desc.digest.valid() || desc.size < 0) {
    return absl::InvalidArgumentError(
        StrCat("push blob ", Quote(desc.digest.str()), ": invalid descriptor"));
  }
  const std::string repo_name = StrCat(s.endpoint().host, "/", repo);
  const std::string what = StrCat("push blob ", desc.digest.str(), " to ", Quote(repo_name));
  absl::StatusOr<bool> exists = BlobExists(s, repo, desc.digest);
  if (!exists.ok()) return Annotate(exists.status(), what);
  if (*exists) {
    s.Report(BlobProgress::Phase::kSkipped, repo_name, desc.digest, desc.size, desc.size);
    return BlobOutcome::kSkipped;
  }

  std::optional<std::string> location;
  for (const std::string& source : mount_from) {
    if (source == repo) continue;
    s.AddScope(RepositoryScope(source, "pull"));
    const std::string url =
        AddQuery(AddQuery(s.Url(UploadsPath(repo)), "mount", desc.digest.str()), "from", source);
    absl::StatusOr<HttpResponse> resp = s.Call(
        [&](HttpRequest& r) {
          r.method = "POST";
          r.url = url;
          r.max_body_bytes = 64 << 10;
        },
        {201, 202});
    if (!resp.ok()) {
      if (absl::IsCancelled(resp.status())) return resp.status();
      continue;  // a refused mount only means uploading
    }
    if (resp->status == 201) {
      s.Report(BlobProgress::Phase::kMounted, repo_name, desc.digest, desc.size, desc.size);
      return BlobOutcome::kMounted;
    }
    if (auto loc = resp->headers.Get("Location"); loc && !loc->empty()) {
      location = ResolveLocation(url, *loc);  // the registry started an upload instead
      break;
    }
  }

  s.Report(BlobProgress::Phase::kStarted, repo_name, desc.digest, 0, desc.size);
  ProgressThrottle progress([&](int64_t done) {
    s.Report(BlobProgress::Phase::kTransferring, repo_name, desc.digest, done, desc.size);
  });
  Backoff backoff(s.env().retry);
  for (int attempt = 1;; ++attempt) {
    if (!location) {
      absl::StatusOr<std::string> started = StartUpload(s, repo);
      if (!started.ok()) return Annotate(started.status(), what);
      location = *std::move(started);
    }
    absl::Status st = settings.chunk_size > 0 ? PutChunked(s, *location, repo, desc, provider,
                                                           settings.chunk_size, progress)
                                              : PutWhole(s, *location, desc, provider, progress);
    if (st.ok()) {
      s.Report(BlobProgress::Phase::kDone, repo_name, desc.digest, desc.size, desc.size);
      return BlobOutcome::kUploaded;
    }
    location.reset();
    const bool lost = SessionLost(st);
    if ((!lost && !IsRetriable(st)) || attempt >= s.env().retry.max_attempts) {
      return Annotate(st, what);
    }
    s.Report(BlobProgress::Phase::kRetrying, repo_name, desc.digest, 0, desc.size);
    if (!lost) KILN_RETURN_IF_ERROR(s.Sleep(backoff.Next(st)));
    // The registry may have finished the upload even though its answer got lost.
    absl::StatusOr<bool> done = BlobExists(s, repo, desc.digest);
    if (done.ok() && *done) {
      s.Report(BlobProgress::Phase::kDone, repo_name, desc.digest, desc.size, desc.size);
      return BlobOutcome::kUploaded;
    }
  }
}

absl::StatusOr<oci::Descriptor> PushStream(Session& s, const std::string& repo,
                                           BlobReader& producer, std::string media_type,
                                           uint64_t chunk_size) {
  const std::string repo_name = StrCat(s.endpoint().host, "/", repo);
  const std::string what = StrCat("push a streamed blob to ", Quote(repo_name));
  absl::StatusOr<std::string> started = StartUpload(s, repo);
  if (!started.ok()) return Annotate(started.status(), what);
  std::string location = *std::move(started);
  StreamFeeder feeder(producer, std::max<uint64_t>(chunk_size, 1));
  ProgressThrottle progress([&](int64_t done) {
    s.Report(BlobProgress::Phase::kTransferring, repo_name, Digest(), done, -1);
  });
  KILN_RETURN_IF_ERROR_CTX(SendChunks(s, location, feeder, progress), what);
  oci::Descriptor desc;
  desc.media_type = std::move(media_type);
  desc.digest = feeder.Finish();
  desc.size = static_cast<int64_t>(feeder.total());
  KILN_RETURN_IF_ERROR_CTX(FinishUpload(s, repo, location, desc.digest),
                           StrCat("push blob ", desc.digest.str(), " to ", Quote(repo_name)));
  s.Report(BlobProgress::Phase::kDone, repo_name, desc.digest, desc.size, desc.size);
  return desc;
}

}  // namespace kiln::registry::internal
