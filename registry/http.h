// The HTTP exchange the registry client is built on.
//
// HttpTransport sends one request and returns the response; it knows nothing about registries,
// authentication or retries (those live above it).  CurlTransport (curl_transport.h) is the real
// one; tests wrap it to inject faults.  Bodies stream in both directions: a request body is
// pulled from a BodySource, and a 2xx response body may be pushed to a callback, so a blob is
// never held in memory.
//
// Thread-safety: an HttpTransport is used from many threads at once; a single HttpRequest and
// its BodySource belong to one call.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/cancel.h"

namespace kiln::registry {

// Header fields in arrival order; names compare case-insensitively.
class HttpHeaders {
 public:
  void Add(std::string name, std::string value) {
    items_.emplace_back(std::move(name), std::move(value));
  }
  // Replaces every field called `name` with one holding `value`.
  void Set(std::string_view name, std::string value);
  void Remove(std::string_view name);
  // The first value of `name`.
  std::optional<std::string> Get(std::string_view name) const;
  std::vector<std::string> GetAll(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }
  void Clear() { items_.clear(); }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// Supplies a request body.  Read() is called until it returns 0.
class BodySource {
 public:
  virtual ~BodySource() = default;
  // Exact size in bytes (sent as Content-Length), or -1 when unknown (sent chunked).
  virtual int64_t Size() const = 0;
  // Copies up to `n` bytes into `buf`; 0 means the end.
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
  // Starts the body over, so the request can be sent again (after a 401, say).  Unimplemented
  // when the body cannot be replayed.
  virtual absl::Status Rewind() = 0;
};

// A body held in memory (manifests, forms, small chunks).  Does not own `data`.
class StringViewBody : public BodySource {
 public:
  explicit StringViewBody(std::string_view data) : data_(data) {}
  int64_t Size() const override { return static_cast<int64_t>(data_.size()); }
  absl::StatusOr<size_t> Read(char* buf, size_t n) override;
  absl::Status Rewind() override {
    pos_ = 0;
    return absl::OkStatus();
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// Per-request connection settings; the registry layer fills them from the host's config.
struct ConnectionOptions {
  bool insecure_skip_verify = false;  // TLS without certificate checks (named registries only)
  // PEM certificates to trust instead of the system CAs (a registry with a private CA).
  std::string ca_pem;
  absl::Duration connect_timeout = absl::Seconds(30);
  // A transfer slower than low_speed_limit bytes/s for low_speed_time fails as a timeout, which
  // is how a stalled connection is noticed.
  int64_t low_speed_limit = 1024;
  absl::Duration low_speed_time = absl::Seconds(60);
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, PATCH, DELETE
  std::string url;
  HttpHeaders headers;
  BodySource* body = nullptr;  // not owned; nullptr sends no body
  // When set, the body of a 2xx response is passed here in pieces, with the response's status,
  // instead of being collected in HttpResponse::body.  A non-OK return aborts the transfer with
  // that status.
  std::function<absl::Status(int status, std::string_view data)> on_body;
  // Collected bodies (non-2xx, or 2xx without on_body) are cut off at this size; the rest is
  // discarded.  Registry responses are hostile input.
  size_t max_body_bytes = 4 << 20;
  bool follow_redirects = false;
  ConnectionOptions connection;
  // Called with the number of body bytes sent so far (uploads) or received (downloads).
  std::function<void(int64_t sent, int64_t received)> on_progress;
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;
  std::string body;  // see HttpRequest::max_body_bytes / on_body
  bool body_truncated = false;
  std::string effective_url;  // after redirects
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  HttpTransport() = default;
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Sends `request`.  Any HTTP status is a successful exchange; errors are transport failures:
  // Unavailable (connection refused/reset, nothing received), DeadlineExceeded (timeouts and
  // stalls), Cancelled (`cancel` fired), FailedPrecondition (TLS verification), or the status a
  // body callback returned.  Messages name the method and the URL without its query.
  virtual absl::StatusOr<HttpResponse> Do(const HttpRequest& request,
                                          const CancelToken& cancel) = 0;
};

// "METHOD scheme://host/path", the query dropped: upload URLs carry opaque state and signed
// storage URLs carry credentials, neither of which belongs in a message.
std::string DescribeRequest(std::string_view method, std::string_view url);

}  // namespace kiln::registry
