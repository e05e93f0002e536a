// Registry errors as absl::Status, and the retry policy that reads them.
//
// A failed registry response becomes a Status whose message names the request and carries the
// registry's own error codes and messages (from the JSON body `{"errors":[{"code","message"}]}`):
//   "PUT https://r.example/v2/app/manifests/v1: HTTP 400: MANIFEST_BLOB_UNKNOWN: blob unknown"
// The status code follows the HTTP status and the registry code (401 -> Unauthenticated, 403 ->
// PermissionDenied, 404 -> NotFound, 429 -> ResourceExhausted, 5xx -> Unavailable, ...).  The
// first registry code and a Retry-After delay ride along as Status payloads, so the retry loop
// can decide without parsing messages.
//
// Retry rules: 429, 5xx (except 501), 408 and transport failures (connection refused/reset,
// timeouts, stalls) are retried with exponential backoff and jitter; semantic errors
// (DENIED, UNAUTHORIZED, NAME_UNKNOWN, DIGEST_INVALID, MANIFEST_BLOB_UNKNOWN, ...) never are.
//
// Thread-safety: pure functions; RetryPolicy is a value; Backoff is single-threaded.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "registry/http.h"

namespace kiln::registry {

// Builds the Status for a response the caller did not expect.  Registry-supplied text is cut
// short and stripped of control characters; callers that know secrets pass the result through
// RedactSecrets.
absl::Status ErrorFromResponse(std::string_view method, std::string_view url,
                               const HttpResponse& response);

// The first registry error code carried by `status` ("BLOB_UNKNOWN"), or "".
std::string RegistryErrorCode(const absl::Status& status);

// The HTTP status carried by `status`, or 0 for transport failures and non-registry errors.
int HttpStatusOf(const absl::Status& status);

// The server's Retry-After, when it sent one.
std::optional<absl::Duration> RetryAfterOf(const absl::Status& status);

// Whether another attempt may succeed (see the rules above).
bool IsRetriable(const absl::Status& status);

// Parses a Retry-After value: delta-seconds or an HTTP date (relative to `now`).
std::optional<absl::Duration> ParseRetryAfter(std::string_view value, absl::Time now);

// Replaces every occurrence of each secret in `text` with "<redacted>".  Secrets shorter than
// 4 characters are ignored (they would redact innocent text and hide nothing).
std::string RedactSecrets(std::string text, const std::vector<std::string>& secrets);

// Same on a Status' message; code and payloads are kept.
absl::Status RedactSecrets(const absl::Status& status, const std::vector<std::string>& secrets);

struct RetryPolicy {
  int max_attempts = 5;  // per blob or request, including the first
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(30);
  double multiplier = 2.0;
  double jitter = 0.25;  // each delay is scaled by a random factor in [1 - jitter, 1 + jitter]
  absl::Duration max_retry_after = absl::Minutes(2);  // cap on what a server may ask for
};

// Delays for successive retries of one operation.
class Backoff {
 public:
  explicit Backoff(const RetryPolicy& policy, uint64_t seed = std::random_device{}());
  // The delay before the next attempt after `failure`: the server's Retry-After (capped) when
  // it gave one, else the exponential step with jitter.
  absl::Duration Next(const absl::Status& failure);

 private:
  RetryPolicy policy_;
  absl::Duration step_;
  std::mt19937_64 rng_;
};

}  // namespace kiln::registry
