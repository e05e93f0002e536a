#include "registry/curl_transport.h"

#include <algorithm>
#include <array>
#include <map>
#include <mutex>
#include <vector>

#include <curl/curl.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "base/status.h"
#include "base/strings.h"

namespace kiln::registry {

namespace {

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// "scheme://authority" of a URL: handles are pooled per origin.
std::string OriginOf(std::string_view url) {
  size_t p = url.find("://");
  size_t start = p == std::string_view::npos ? 0 : p + 3;
  size_t end = url.find_first_of("/?#", start);
  return std::string(url.substr(0, end == std::string_view::npos ? url.size() : end));
}

struct CurlEasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
using EasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

// State shared with curl's callbacks for one transfer.
struct Transfer {
  const HttpRequest* request = nullptr;
  HttpResponse* response = nullptr;
  const CancelToken* cancel = nullptr;
  CURL* easy = nullptr;
  absl::Status callback_status;  // first error a callback hit
};

size_t OnHeader(char* data, size_t size, size_t nitems, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * nitems;
  std::string_view line(data, len);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  if (absl::StartsWith(ToAbsl(line), "HTTP/")) {
    // A new response begins (after a redirect or a 100 Continue): forget the previous headers.
    t->response->headers.Clear();
    return len;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return len;
  std::string name(absl::StripAsciiWhitespace(ToAbsl(line.substr(0, colon))));
  std::string value(absl::StripAsciiWhitespace(ToAbsl(line.substr(colon + 1))));
  t->response->headers.Add(std::move(name), std::move(value));
  return len;
}

size_t OnWrite(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * nmemb;
  long code = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
  if (code >= 200 && code < 300 && t->request->on_body) {
    absl::Status s = t->request->on_body(static_cast<int>(code), std::string_view(data, len));
    if (!s.ok()) {
      t->callback_status = std::move(s);
      return CURL_WRITEFUNC_ERROR;
    }
    return len;
  }
  std::string& body = t->response->body;
  size_t room =
      t->request->max_body_bytes > body.size() ? t->request->max_body_bytes - body.size() : 0;
  if (len > room) t->response->body_truncated = true;
  body.append(data, std::min(len, room));
  return len;
}

size_t OnRead(char* buf, size_t size, size_t nitems, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (t->cancel->cancelled()) return CURL_READFUNC_ABORT;
  absl::StatusOr<size_t> n = t->request->body->Read(buf, size * nitems);
  if (!n.ok()) {
    t->callback_status = n.status();
    return CURL_READFUNC_ABORT;
  }
  return *n;
}

int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (offset != 0 || origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
  return t->request->body->Rewind().ok() ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_CANTSEEK;
}

int OnProgress(void* user, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
  auto* t = static_cast<Transfer*>(user);
  if (t->cancel->cancelled()) return 1;
  if (t->request->on_progress) t->request->on_progress(ulnow, dlnow);
  return 0;
}

absl::StatusCode CodeForCurlError(CURLcode code) {
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP_RETURNED_ERROR:
      return absl::StatusCode::kUnavailable;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
      return absl::StatusCode::kFailedPrecondition;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return absl::StatusCode::kInvalidArgument;
    case CURLE_TOO_MANY_REDIRECTS:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kUnknown;
  }
}

}  // namespace

struct CurlTransport::Impl {
  Options options;
  CURLSH* share = nullptr;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> share_locks;
  std::mutex pool_mu;
  std::map<std::string, std::vector<EasyPtr>> idle;

  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Impl*>(user)->share_locks[data].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<Impl*>(user)->share_locks[data].unlock();
  }

  explicit Impl(Options o) : options(std::move(o)) {
    GlobalInitOnce();
    share = curl_share_init();
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Impl::Lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Impl::Unlock);
    curl_share_setopt(share, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }

  ~Impl() {
    idle.clear();  // handles first: they reference the share
    curl_share_cleanup(share);
  }

  EasyPtr Acquire(const std::string& origin) {
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      auto it = idle.find(origin);
      if (it != idle.end() && !it->second.empty()) {
        EasyPtr h = std::move(it->second.back());
        it->second.pop_back();
        curl_easy_reset(h.get());  // keeps the handle's open connections
        return h;
      }
    }
    return EasyPtr(curl_easy_init());
  }

  void Release(const std::string& origin, EasyPtr h) {
    std::lock_guard<std::mutex> lock(pool_mu);
    auto& list = idle[origin];
    if (list.size() < options.max_idle_handles_per_host) list.push_back(std::move(h));
  }
};

CurlTransport::CurlTransport() : CurlTransport(Options()) {}
CurlTransport::CurlTransport(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
CurlTransport::~CurlTransport() = default;

absl::StatusOr<HttpResponse> CurlTransport::Do(const HttpRequest& request,
                                               const CancelToken& cancel) {
  KILN_RETURN_IF_ERROR(cancel.Check());
  const std::string origin = OriginOf(request.url);
  EasyPtr easy = impl_->Acquire(origin);
  if (!easy) return absl::ResourceExhaustedError("curl_easy_init failed");
  CURL* h = easy.get();

  HttpResponse response;
  Transfer t{&request, &response, &cancel, h, absl::OkStatus()};
  std::array<char, CURL_ERROR_SIZE> errbuf{};

  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_SHARE, impl_->share);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf.data());
  curl_easy_setopt(h, CURLOPT_USERAGENT, impl_->options.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
  curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
  const ConnectionOptions& conn = request.connection;
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(conn.connect_timeout)));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(conn.low_speed_limit));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                   std::max<long>(1, absl::ToInt64Seconds(conn.low_speed_time)));
  curl_blob ca_blob{};
  if (!conn.ca_pem.empty()) {
    ca_blob.data = const_cast<char*>(conn.ca_pem.data());
    ca_blob.len = conn.ca_pem.size();
    ca_blob.flags = CURL_BLOB_NOCOPY;
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca_blob);
  }
  if (conn.insecure_skip_verify) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (request.follow_redirects) {
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
  }

  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnWrite);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &OnProgress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);

  if (request.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (request.method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else if (request.body != nullptr) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, &OnRead);
    curl_easy_setopt(h, CURLOPT_READDATA, &t);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &OnSeek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
    if (request.body->Size() >= 0) {
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body->Size()));
    }
    if (request.method != "PUT") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
  } else if (request.method == "DELETE") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
  } else {
    // A body-less POST/PUT/PATCH still says Content-Length: 0, which registries expect.
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  curl_slist* raw_headers = nullptr;
  for (const auto& [name, value] : request.headers.items()) {
    raw_headers = curl_slist_append(raw_headers, StrCat(name, ": ", value).c_str());
  }
  // curl waits up to a second for "100 Continue" before sending a large body; registries don't
  // need the handshake.
  raw_headers = curl_slist_append(raw_headers, "Expect:");
  SlistPtr headers(raw_headers);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());

  CURLcode rc = curl_easy_perform(h);
  // The header list must outlive the transfer but not the handle's next use.
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);

  if (rc != CURLE_OK) {
    absl::Status status;
    if (!t.callback_status.ok()) {
      status = t.callback_status;
    } else if (cancel.cancelled()) {
      status = Annotate(cancel.Check(), DescribeRequest(request.method, request.url));
    } else {
      std::string detail = errbuf[0] != '\0' ? std::string(errbuf.data()) : "";
      status = absl::Status(
          CodeForCurlError(rc),
          StrCat(DescribeRequest(request.method, request.url), ": ", curl_easy_strerror(rc),
                 detail.empty() ? "" : StrCat(" (", detail, ")")));
    }
    // A handle whose transfer failed may hold a half-used connection; curl closes those itself,
    // so the handle is still fine to pool.
    impl_->Release(origin, std::move(easy));
    return status;
  }

  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  response.status = static_cast<int>(code);
  char* effective = nullptr;
  curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &effective);
  if (effective != nullptr) response.effective_url = effective;
  impl_->Release(origin, std::move(easy));
  return response;
}

}  // namespace kiln::registry
