// Internal to registry/: one registry endpoint and the authenticated exchange with it.
//
// An Endpoint is a registry's API origin with its connection settings, Authenticator and the
// cap on concurrent blob transfers.  A Session is one operation's view of an endpoint: the
// credential, the growing scope set (pull/push on targets, pull on mount sources), and the
// cancellation token.  Session::Send adds the Authorization header and re-authenticates once on
// a 401; Session::Call also retries transient failures with backoff.
//
// Thread-safety: Endpoint and Session may be used from many threads at once.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/strings.h"
#include "registry/auth.h"
#include "registry/clock.h"
#include "registry/errors.h"
#include "registry/http.h"
#include "registry/registry.h"

namespace kiln::registry::internal {

// A counting semaphore whose waits end on cancellation.
class Semaphore {
 public:
  explicit Semaphore(int slots) : free_(slots) {}
  absl::Status Acquire(const CancelToken& cancel);
  void Release();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int free_;
};

// Holds one slot of a Semaphore for its lifetime.
class SemaphoreSlot {
 public:
  SemaphoreSlot() = default;
  ~SemaphoreSlot() {
    if (sem_ != nullptr) sem_->Release();
  }
  SemaphoreSlot(const SemaphoreSlot&) = delete;
  SemaphoreSlot& operator=(const SemaphoreSlot&) = delete;
  static absl::StatusOr<std::unique_ptr<SemaphoreSlot>> Take(Semaphore& sem,
                                                             const CancelToken& cancel);

 private:
  Semaphore* sem_ = nullptr;
};

struct Endpoint {
  Endpoint(std::string host, std::string origin, ConnectionOptions connection, int slots,
           HttpTransport& transport, Clock& clock)
      : host(std::move(host)),
        origin(std::move(origin)),
        connection(connection),
        auth(this->origin, this->host, transport, clock, connection),
        slots(slots) {}

  const std::string host;    // registry name as in references ("docker.io")
  const std::string origin;  // "https://registry-1.docker.io"
  const ConnectionOptions connection;
  Authenticator auth;
  Semaphore slots;     // concurrent blob transfers
  std::mutex ping_mu;  // one /v2/ ping at a time
};

struct Env {
  HttpTransport& transport;
  Clock& clock;
  const RetryPolicy& retry;
};

class Session {
 public:
  Session(Env& env, Endpoint& endpoint, Credential credential, const CallOptions& call);

  Endpoint& endpoint() { return endpoint_; }
  Env& env() { return env_; }
  const CallOptions& call() const { return call_; }
  const CancelToken& cancel() const { return call_.cancel; }

  void AddScope(const std::string& scope);
  std::set<std::string> scopes() const;

  // origin + path ("/v2/...").
  std::string Url(std::string_view path) const { return StrCat(endpoint_.origin, path); }

  // One exchange: Authorization added for this endpoint's origin only; a 401 re-authenticates
  // (with the scopes the challenge asks for) and resends once, rewinding the body.  Returns the
  // response whatever its status; errors are transport failures.
  absl::StatusOr<HttpResponse> Send(HttpRequest& request);

  // Send, then: statuses in `accept` succeed; retriable failures are retried with backoff up
  // to the policy's attempts; anything else becomes the error (see ErrorFor).
  absl::StatusOr<HttpResponse> Call(const std::function<void(HttpRequest&)>& build,
                                    std::initializer_list<int> accept);

  // The error for an unexpected response, secrets redacted, a 401 explaining whether
  // credentials were sent.
  absl::Status ErrorFor(const HttpRequest& request, const HttpResponse& response) const;

  // Removes every secret this session knows of from `status`' message.
  absl::Status Redact(const absl::Status& status) const;

  // Waits `d` (through the injectable clock); Cancelled when the call is cancelled.
  absl::Status Sleep(absl::Duration d) { return env_.clock.SleepFor(d, call_.cancel); }

  void Report(BlobProgress::Phase phase, const std::string& repository, const Digest& digest,
              int64_t done, int64_t total) const;

 private:
  absl::Status EnsureChallenge();

  Env& env_;
  Endpoint& endpoint_;
  const Credential credential_;
  const CallOptions& call_;
  mutable std::mutex mu_;
  std::set<std::string> scopes_;
};

// Resolves a Location header against the URL of the request that returned it: absolute URLs
// stay, "/path" joins the request's origin, anything else is relative to the request path.
// Query parameters are kept.
std::string ResolveLocation(std::string_view request_url, std::string_view location);

// Appends "key=value" (value percent-encoded) to a URL that may already carry a query.
std::string AddQuery(std::string_view url, std::string_view key, std::string_view value);

}  // namespace kiln::registry::internal
