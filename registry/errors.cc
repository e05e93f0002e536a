#include "registry/errors.h"

#include <algorithm>
#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "base/strings.h"
#include "nlohmann/json.hpp"

namespace kiln::registry {

namespace {

constexpr char kCodePayload[] = "kiln.dev/registry/error-code";
constexpr char kHttpStatusPayload[] = "kiln.dev/registry/http-status";
constexpr char kRetryAfterPayload[] = "kiln.dev/registry/retry-after-ms";

constexpr size_t kMaxRegistryText = 300;
constexpr size_t kMaxErrorsShown = 3;

// Registry text goes into our messages: printable ASCII only, bounded.
std::string Sanitize(std::string_view text, size_t limit = kMaxRegistryText) {
  std::string out;
  for (char c : text) {
    if (out.size() >= limit) {
      out += "...";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : ' ';
  }
  return std::string(absl::StripAsciiWhitespace(out));
}

struct RegistryErrorEntry {
  std::string code;
  std::string message;
};

std::vector<RegistryErrorEntry> ParseErrorBody(std::string_view body) {
  std::vector<RegistryErrorEntry> out;
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return out;
  auto errors = doc.find("errors");
  if (errors == doc.end() || !errors->is_array()) return out;
  for (const auto& e : *errors) {
    if (!e.is_object()) continue;
    RegistryErrorEntry entry;
    if (auto c = e.find("code"); c != e.end() && c->is_string()) {
      entry.code = Sanitize(c->get<std::string>(), 64);
    }
    if (auto m = e.find("message"); m != e.end() && m->is_string()) {
      entry.message = Sanitize(m->get<std::string>());
    }
    if (!entry.code.empty() || !entry.message.empty()) out.push_back(std::move(entry));
  }
  return out;
}

absl::StatusCode CodeForHttp(int status) {
  switch (status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 405:
    case 501:
      return absl::StatusCode::kUnimplemented;
    case 408:
      return absl::StatusCode::kDeadlineExceeded;
    case 409:
      return absl::StatusCode::kFailedPrecondition;
    case 413:
      return absl::StatusCode::kInvalidArgument;
    case 416:
      return absl::StatusCode::kOutOfRange;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    default:
      if (status >= 500) return absl::StatusCode::kUnavailable;
      return absl::StatusCode::kFailedPrecondition;
  }
}

// The registry's code refines the HTTP status where they disagree (a 400 DENIED, say).
std::optional<absl::StatusCode> CodeForRegistryCode(std::string_view code) {
  if (code == "UNAUTHORIZED") return absl::StatusCode::kUnauthenticated;
  if (code == "DENIED") return absl::StatusCode::kPermissionDenied;
  if (code == "NAME_UNKNOWN" || code == "MANIFEST_UNKNOWN" || code == "BLOB_UNKNOWN" ||
      code == "BLOB_UPLOAD_UNKNOWN") {
    return absl::StatusCode::kNotFound;
  }
  if (code == "TOOMANYREQUESTS") return absl::StatusCode::kResourceExhausted;
  if (code == "UNSUPPORTED") return absl::StatusCode::kUnimplemented;
  if (code == "MANIFEST_BLOB_UNKNOWN") return absl::StatusCode::kFailedPrecondition;
  return std::nullopt;
}

// Codes that say the request itself is wrong; repeating it cannot help.
bool IsSemanticCode(std::string_view code) {
  static constexpr std::array<std::string_view, 14> kCodes = {
      "DENIED",           "UNAUTHORIZED",       "NAME_UNKNOWN",
      "NAME_INVALID",     "DIGEST_INVALID",     "MANIFEST_BLOB_UNKNOWN",
      "MANIFEST_INVALID", "MANIFEST_UNKNOWN",   "MANIFEST_UNVERIFIED",
      "SIZE_INVALID",     "TAG_INVALID",        "UNSUPPORTED",
      "BLOB_UNKNOWN",     "BLOB_UPLOAD_INVALID"};
  return std::find(kCodes.begin(), kCodes.end(), code) != kCodes.end();
}

std::string StatusText(int status) {
  switch (status) {
    case 401:
      return "unauthorized";
    case 403:
      return "forbidden";
    case 404:
      return "not found";
    case 416:
      return "range not satisfiable";
    case 429:
      return "too many requests";
    case 500:
      return "internal server error";
    case 502:
      return "bad gateway";
    case 503:
      return "service unavailable";
    case 504:
      return "gateway timeout";
    default:
      return "";
  }
}

}  // namespace

absl::Status ErrorFromResponse(std::string_view method, std::string_view url,
                               const HttpResponse& response) {
  std::vector<RegistryErrorEntry> entries = ParseErrorBody(response.body);
  std::string msg = StrCat(DescribeRequest(method, url), ": HTTP ", response.status);
  if (entries.empty()) {
    std::string text = StatusText(response.status);
    std::string snippet = Sanitize(response.body, 120);
    if (!snippet.empty() && snippet.front() != '<') text = snippet;  // skip HTML pages
    if (!text.empty()) StrAppend(&msg, ": ", text);
  }
  for (size_t i = 0; i < entries.size() && i < kMaxErrorsShown; ++i) {
    StrAppend(&msg, i == 0 ? ": " : "; ", entries[i].code,
              entries[i].code.empty() || entries[i].message.empty() ? "" : ": ",
              entries[i].message);
  }
  absl::StatusCode code = CodeForHttp(response.status);
  if (!entries.empty()) {
    if (auto c = CodeForRegistryCode(entries[0].code)) code = *c;
  }
  absl::Status status(code, msg);
  status.SetPayload(kHttpStatusPayload, absl::Cord(absl::StrCat(response.status)));
  if (!entries.empty() && !entries[0].code.empty()) {
    status.SetPayload(kCodePayload, absl::Cord(entries[0].code));
  }
  if (auto ra = response.headers.Get("Retry-After")) {
    if (auto d = ParseRetryAfter(*ra, absl::Now())) {
      status.SetPayload(kRetryAfterPayload,
                        absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(*d))));
    }
  }
  return status;
}

std::string RegistryErrorCode(const absl::Status& status) {
  auto p = status.GetPayload(kCodePayload);
  return p ? std::string(*p) : std::string();
}

int HttpStatusOf(const absl::Status& status) {
  auto p = status.GetPayload(kHttpStatusPayload);
  int v = 0;
  if (p && absl::SimpleAtoi(std::string(*p), &v)) return v;
  return 0;
}

std::optional<absl::Duration> RetryAfterOf(const absl::Status& status) {
  auto p = status.GetPayload(kRetryAfterPayload);
  int64_t ms = 0;
  if (p && absl::SimpleAtoi(std::string(*p), &ms)) return absl::Milliseconds(ms);
  return std::nullopt;
}

bool IsRetriable(const absl::Status& status) {
  if (status.ok()) return false;
  int http = HttpStatusOf(status);
  if (http == 0) {
    return status.code() == absl::StatusCode::kUnavailable ||
           status.code() == absl::StatusCode::kDeadlineExceeded;
  }
  std::string code = RegistryErrorCode(status);
  if (IsSemanticCode(code)) return false;
  if (http == 408 || http == 429) return true;
  return http >= 500 && http != 501 && http != 505;
}

std::optional<absl::Duration> ParseRetryAfter(std::string_view value, absl::Time now) {
  std::string v(absl::StripAsciiWhitespace(ToAbsl(value)));
  int64_t seconds = 0;
  if (absl::SimpleAtoi(v, &seconds)) {
    if (seconds < 0) return std::nullopt;
    return absl::Seconds(seconds);
  }
  absl::Time when;
  std::string err;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S", v.substr(0, v.rfind(' ')), absl::UTCTimeZone(),
                      &when, &err)) {
    return std::max(absl::ZeroDuration(), when - now);
  }
  return std::nullopt;
}

std::string RedactSecrets(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.size() < 4) continue;
    size_t pos = 0;
    while ((pos = text.find(secret, pos)) != std::string::npos) {
      text.replace(pos, secret.size(), "<redacted>");
      pos += 10;
    }
  }
  return text;
}

absl::Status RedactSecrets(const absl::Status& status, const std::vector<std::string>& secrets) {
  if (status.ok()) return status;
  std::string msg = RedactSecrets(std::string(status.message()), secrets);
  if (msg == status.message()) return status;
  absl::Status out(status.code(), msg);
  status.ForEachPayload(
      [&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

Backoff::Backoff(const RetryPolicy& policy, uint64_t seed)
    : policy_(policy), step_(policy.initial_backoff), rng_(seed) {}

absl::Duration Backoff::Next(const absl::Status& failure) {
  if (auto ra = RetryAfterOf(failure)) return std::min(*ra, policy_.max_retry_after);
  std::uniform_real_distribution<double> dist(1.0 - policy_.jitter, 1.0 + policy_.jitter);
  absl::Duration delay = step_ * dist(rng_);
  step_ = std::min(policy_.max_backoff, step_ * policy_.multiplier);
  return std::min(delay, policy_.max_backoff);
}

}  // namespace kiln::registry
