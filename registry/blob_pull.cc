#include "base/status.h"
#include "base/strings.h"
#include "registry/operations.h"

namespace kiln::registry::internal {

namespace {

constexpr int64_t kProgressStep = 1 << 20;

absl::Status CheckDescriptor(const oci::Descriptor& desc) {
  if (!desc.digest.valid() || desc.digest.algorithm() != "sha256") {
    return absl::InvalidArgumentError(
        StrCat("blob digest ", Quote(desc.digest.str()), " is not a sha256 digest"));
  }
  if (desc.size < 0) {
    return absl::InvalidArgumentError(StrCat("blob ", desc.digest.str(), " has a negative size"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DownloadBlob(Session& s, const std::string& repo, const oci::Descriptor& desc,
                          BlobWriter& writer) {
  KILN_RETURN_IF_ERROR(CheckDescriptor(desc));
  const uint64_t size = static_cast<uint64_t>(desc.size);
  const std::string url = s.Url(StrCat("/v2/", repo, "/blobs/", desc.digest.str()));
  const std::string what = StrCat("pull blob ", desc.digest.str(), " from ",
                                  Quote(StrCat(s.endpoint().host, "/", repo)));
  const std::string repo_name = StrCat(s.endpoint().host, "/", repo);

  Sha256Hasher hasher;
  uint64_t have = writer.Offset();
  auto restart = [&]() -> absl::Status {
    KILN_RETURN_IF_ERROR_CTX(writer.Truncate(), what);
    hasher.Finish();  // resets
    have = 0;
    return absl::OkStatus();
  };
  if (have > size) KILN_RETURN_IF_ERROR(restart());
  if (have > 0) {
    absl::Status replay = writer.ReadBack([&](std::string_view data) {
      hasher.Update(data);
      return absl::OkStatus();
    });
    if (!replay.ok()) KILN_RETURN_IF_ERROR(restart());
  }

  s.Report(BlobProgress::Phase::kStarted, repo_name, desc.digest, static_cast<int64_t>(have),
           desc.size);
  Backoff backoff(s.env().retry);
  for (int attempt = 1; have < size || size == 0; ++attempt) {
    HttpRequest req;
    req.method = "GET";
    req.url = url;
    req.follow_redirects = true;  // blobs are often served from storage behind a redirect
    req.max_body_bytes = 64 << 10;
    if (have > 0) req.headers.Set("Range", StrCat("bytes=", have, "-"));
    bool first = true;
    int64_t reported = static_cast<int64_t>(have);
    req.on_body = [&](int status, std::string_view data) -> absl::Status {
      if (first) {
        first = false;
        if (status != 206 && have > 0) KILN_RETURN_IF_ERROR(restart());  // Range ignored
      }
      if (have + data.size() > size) {
        return absl::DataLossError(StrCat(what, ": the registry sent more than the ", size,
                                          " bytes the descriptor declares"));
      }
      KILN_RETURN_IF_ERROR_CTX(writer.Write(data), what);
      hasher.Update(data);
      have += data.size();
      if (static_cast<int64_t>(have) - reported >= kProgressStep) {
        reported = static_cast<int64_t>(have);
        s.Report(BlobProgress::Phase::kTransferring, repo_name, desc.digest, reported, desc.size);
      }
      return absl::OkStatus();
    };
    absl::StatusOr<HttpResponse> resp = s.Send(req);
    absl::Status st;
    if (resp.ok()) {
      if (resp->status == 200 || resp->status == 206) {
        if (have == size) break;
        st = absl::UnavailableError(StrCat(DescribeRequest("GET", url), ": the body ended after ",
                                           have, " of ", size, " bytes"));
      } else {
        st = s.ErrorFor(req, *resp);
      }
    } else {
      st = resp.status();
    }
    if (!IsRetriable(st) || attempt >= s.env().retry.max_attempts) return Annotate(st, what);
    s.Report(BlobProgress::Phase::kRetrying, repo_name, desc.digest, static_cast<int64_t>(have),
             desc.size);
    KILN_RETURN_IF_ERROR(s.Sleep(backoff.Next(st)));
  }

  Digest got = hasher.Finish();
  if (got != desc.digest) {
    return absl::DataLossError(
        StrCat(what, ": the content's digest is ", got.str(), " (", size, " bytes)"));
  }
  KILN_RETURN_IF_ERROR_CTX(writer.Commit(desc), what);
  s.Report(BlobProgress::Phase::kDone, repo_name, desc.digest, desc.size, desc.size);
  return absl::OkStatus();
}

}  // namespace kiln::registry::internal
