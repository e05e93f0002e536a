#include "registry/session.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::registry::internal {

absl::Status Semaphore::Acquire(const CancelToken& cancel) {
  CancelRegistration reg = cancel.OnCancel([this] {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return free_ > 0 || cancel.cancelled(); });
  if (cancel.cancelled()) return cancel.Check();
  --free_;
  return absl::OkStatus();
}

void Semaphore::Release() {
  std::lock_guard<std::mutex> lock(mu_);
  ++free_;
  cv_.notify_one();
}

absl::StatusOr<std::unique_ptr<SemaphoreSlot>> SemaphoreSlot::Take(Semaphore& sem,
                                                                   const CancelToken& cancel) {
  KILN_RETURN_IF_ERROR(sem.Acquire(cancel));
  auto slot = std::make_unique<SemaphoreSlot>();
  slot->sem_ = &sem;
  return slot;
}

Session::Session(Env& env, Endpoint& endpoint, Credential credential, const CallOptions& call)
    : env_(env), endpoint_(endpoint), credential_(std::move(credential)), call_(call) {}

void Session::AddScope(const std::string& scope) {
  std::lock_guard<std::mutex> lock(mu_);
  scopes_.insert(scope);
}

std::set<std::string> Session::scopes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return scopes_;
}

absl::Status Session::Redact(const absl::Status& status) const {
  return RedactSecrets(status, credential_.Secrets());
}

void Session::Report(BlobProgress::Phase phase, const std::string& repository, const Digest& digest,
                     int64_t done, int64_t total) const {
  if (!call_.progress) return;
  call_.progress(BlobProgress{phase, repository, digest, done, total});
}

absl::Status Session::EnsureChallenge() {
  if (endpoint_.auth.knows_challenge()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(endpoint_.ping_mu);
  if (endpoint_.auth.knows_challenge()) return absl::OkStatus();
  Backoff backoff(env_.retry);
  for (int attempt = 1;; ++attempt) {
    HttpRequest req;
    req.url = Url("/v2/");
    req.connection = endpoint_.connection;
    req.max_body_bytes = 64 << 10;
    absl::StatusOr<HttpResponse> resp = env_.transport.Do(req, call_.cancel);
    absl::Status st;
    if (resp.ok()) {
      if (resp->status == 401) {
        endpoint_.auth.OnUnauthorized(resp->headers, credential_, {}, "");
        return absl::OkStatus();
      }
      if (resp->status < 500 && resp->status != 429) {
        // 200, or an odd answer from a mirror: requests will learn a challenge from their 401.
        endpoint_.auth.MarkOpen();
        return absl::OkStatus();
      }
      st = ErrorFromResponse(req.method, req.url, *resp);
    } else {
      st = resp.status();
    }
    if (!IsRetriable(st) || attempt >= env_.retry.max_attempts) {
      return Annotate(Redact(st), StrCat("reach registry ", Quote(endpoint_.host)));
    }
    KILN_RETURN_IF_ERROR(Sleep(backoff.Next(st)));
  }
}

absl::StatusOr<HttpResponse> Session::Send(HttpRequest& request) {
  KILN_RETURN_IF_ERROR(EnsureChallenge());
  request.connection = endpoint_.connection;
  const bool own_origin = absl::StartsWith(request.url, StrCat(endpoint_.origin, "/"));
  for (int attempt = 0;; ++attempt) {
    std::set<std::string> scopes = this->scopes();
    std::string header;
    if (own_origin) {
      KILN_ASSIGN_OR_RETURN(header, endpoint_.auth.Header(credential_, scopes, call_.cancel));
    }
    if (header.empty()) {
      request.headers.Remove("Authorization");
    } else {
      request.headers.Set("Authorization", header);
    }
    absl::StatusOr<HttpResponse> resp = env_.transport.Do(request, call_.cancel);
    if (!resp.ok()) return Redact(resp.status());
    if (resp->status != 401 || attempt > 0 || !own_origin) return resp;
    for (const std::string& s :
         endpoint_.auth.OnUnauthorized(resp->headers, credential_, scopes, header)) {
      AddScope(s);
    }
    if (request.body != nullptr && !request.body->Rewind().ok()) return resp;
  }
}

absl::Status Session::ErrorFor(const HttpRequest& request, const HttpResponse& response) const {
  absl::Status st = ErrorFromResponse(request.method, request.url, response);
  if (response.status == 401) {
    st = Annotate(st, credential_.empty()
                          ? StrCat("no credentials for ", Quote(endpoint_.host))
                          : StrCat("credentials for ", Quote(endpoint_.host), " were refused"));
  }
  return Redact(st);
}

absl::StatusOr<HttpResponse> Session::Call(const std::function<void(HttpRequest&)>& build,
                                           std::initializer_list<int> accept) {
  Backoff backoff(env_.retry);
  for (int attempt = 1;; ++attempt) {
    HttpRequest req;
    build(req);
    absl::StatusOr<HttpResponse> resp = Send(req);
    absl::Status st;
    if (resp.ok()) {
      if (std::find(accept.begin(), accept.end(), resp->status) != accept.end()) return resp;
      st = ErrorFor(req, *resp);
    } else {
      st = resp.status();
    }
    if (!IsRetriable(st) || attempt >= env_.retry.max_attempts) return st;
    KILN_RETURN_IF_ERROR(Sleep(backoff.Next(st)));
  }
}

std::string ResolveLocation(std::string_view request_url, std::string_view location) {
  if (absl::StartsWith(ToAbsl(location), "http://") ||
      absl::StartsWith(ToAbsl(location), "https://")) {
    return std::string(location);
  }
  size_t scheme_end = request_url.find("://");
  size_t origin_end = scheme_end == std::string_view::npos ? request_url.size()
                                                           : request_url.find('/', scheme_end + 3);
  if (origin_end == std::string_view::npos) origin_end = request_url.size();
  std::string_view origin = request_url.substr(0, origin_end);
  if (absl::StartsWith(ToAbsl(location), "//")) {
    return StrCat(request_url.substr(0, scheme_end + 1), location);
  }
  if (absl::StartsWith(ToAbsl(location), "/")) return StrCat(origin, location);
  std::string_view path = request_url.substr(origin_end);
  path = path.substr(0, std::min(path.find('?'), path.size()));
  path = path.substr(0, path.rfind('/') + 1);
  return StrCat(origin, path.empty() ? "/" : path, location);
}

std::string AddQuery(std::string_view url, std::string_view key, std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  for (unsigned char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      encoded += static_cast<char>(c);
    } else {
      encoded += '%';
      encoded += kHex[c >> 4];
      encoded += kHex[c & 15];
    }
  }
  char sep = url.find('?') == std::string_view::npos ? '?' : '&';
  return StrCat(url, std::string(1, sep), key, "=", encoded);
}

}  // namespace kiln::registry::internal
