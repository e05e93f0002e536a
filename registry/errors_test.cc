#include "registry/errors.h"

#include <gtest/gtest.h>

#include "base/strings.h"

namespace kiln::registry {
namespace {

HttpResponse Response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

TEST(ErrorFromResponse, ParsesRegistryErrorsIntoCodeAndMessage) {
  absl::Status st = ErrorFromResponse(
      "PUT", "https://r.example/v2/app/manifests/v1?x=secret-query",
      Response(400, R"({"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to )"
                    R"(registry","detail":"sha256:abc"}]})"));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.message(),
            "PUT https://r.example/v2/app/manifests/v1: HTTP 400: MANIFEST_BLOB_UNKNOWN: blob "
            "unknown to registry");
  EXPECT_EQ(RegistryErrorCode(st), "MANIFEST_BLOB_UNKNOWN");
  EXPECT_EQ(HttpStatusOf(st), 400);
  EXPECT_FALSE(IsRetriable(st));
}

TEST(ErrorFromResponse, MapsStatusesAndCodes) {
  struct Case {
    int http;
    std::string code;
    absl::StatusCode want;
    bool retriable;
  };
  for (const Case& c : std::vector<Case>{
           {401, "UNAUTHORIZED", absl::StatusCode::kUnauthenticated, false},
           {403, "DENIED", absl::StatusCode::kPermissionDenied, false},
           {404, "NAME_UNKNOWN", absl::StatusCode::kNotFound, false},
           {400, "DIGEST_INVALID", absl::StatusCode::kInvalidArgument, false},
           {429, "TOOMANYREQUESTS", absl::StatusCode::kResourceExhausted, true},
           {500, "", absl::StatusCode::kUnavailable, true},
           {503, "UNAVAILABLE", absl::StatusCode::kUnavailable, true},
           {502, "", absl::StatusCode::kUnavailable, true},
           {501, "", absl::StatusCode::kUnimplemented, false},
           {416, "", absl::StatusCode::kOutOfRange, false},
           // A 5xx that carries a semantic code is not retried.
           {500, "DENIED", absl::StatusCode::kPermissionDenied, false},
       }) {
    std::string body =
        c.code.empty() ? "" : StrCat(R"({"errors":[{"code":")", c.code, R"(","message":"m"}]})");
    absl::Status st = ErrorFromResponse("GET", "http://h/v2/", Response(c.http, body));
    EXPECT_EQ(st.code(), c.want) << c.http << " " << c.code;
    EXPECT_EQ(IsRetriable(st), c.retriable) << c.http << " " << c.code;
  }
}

TEST(ErrorFromResponse, NonJsonBodiesAreShortAndPrintable) {
  std::string body(1000, 'x');
  body[3] = '\n';
  absl::Status st = ErrorFromResponse("GET", "http://h/v2/", Response(502, body));
  EXPECT_LT(st.message().size(), 200u);
  EXPECT_EQ(std::string(st.message()).find('\n'), std::string::npos);
  absl::Status html =
      ErrorFromResponse("GET", "http://h/v2/", Response(503, "<html><body>oops</body></html>"));
  EXPECT_EQ(html.message(), "GET http://h/v2/: HTTP 503: service unavailable");
}

TEST(ErrorFromResponse, CarriesRetryAfter) {
  HttpResponse r = Response(429, "");
  r.headers.Add("Retry-After", "7");
  absl::Status st = ErrorFromResponse("HEAD", "http://h/v2/a/blobs/sha256:1", r);
  ASSERT_TRUE(RetryAfterOf(st).has_value());
  EXPECT_EQ(*RetryAfterOf(st), absl::Seconds(7));
  Backoff backoff(RetryPolicy{}, 1);
  EXPECT_EQ(backoff.Next(st), absl::Seconds(7));
}

TEST(ParseRetryAfter, SecondsAndHttpDates) {
  absl::Time now = absl::FromUnixSeconds(1700000000);  // Tue, 14 Nov 2023 22:13:20 GMT
  EXPECT_EQ(ParseRetryAfter("0", now), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter(" 12 ", now), absl::Seconds(12));
  EXPECT_EQ(ParseRetryAfter("Tue, 14 Nov 2023 22:13:50 GMT", now), absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Tue, 14 Nov 2023 22:00:00 GMT", now), absl::ZeroDuration());
  EXPECT_FALSE(ParseRetryAfter("soon", now).has_value());
  EXPECT_FALSE(ParseRetryAfter("-3", now).has_value());
}

TEST(Backoff, GrowsExponentiallyWithBoundedJitter) {
  RetryPolicy p;
  p.initial_backoff = absl::Seconds(1);
  p.max_backoff = absl::Seconds(10);
  p.jitter = 0.25;
  Backoff b(p, 42);
  absl::Status transient = absl::UnavailableError("reset");
  absl::Duration base = absl::Seconds(1);
  for (int i = 0; i < 6; ++i) {
    absl::Duration d = b.Next(transient);
    absl::Duration capped = std::min(base, p.max_backoff);
    EXPECT_GE(d, capped * 0.75 - absl::Milliseconds(1)) << i;
    EXPECT_LE(d, std::min(capped * 1.25, p.max_backoff)) << i;
    base *= 2;
  }
}

TEST(IsRetriable, TransportFailures) {
  EXPECT_TRUE(IsRetriable(absl::UnavailableError("connection reset")));
  EXPECT_TRUE(IsRetriable(absl::DeadlineExceededError("stalled")));
  EXPECT_FALSE(IsRetriable(absl::CancelledError("stop")));
  EXPECT_FALSE(IsRetriable(absl::DataLossError("digest")));
  EXPECT_FALSE(IsRetriable(absl::OkStatus()));
}

TEST(RedactSecrets, RemovesEveryOccurrenceKeepsPayloads) {
  absl::Status st = ErrorFromResponse(
      "GET", "http://h/token",
      Response(
          401,
          R"({"errors":[{"code":"UNAUTHORIZED","message":"bad hunter2hunter2 x hunter2hunter2"}]})"));
  absl::Status red = RedactSecrets(st, {"hunter2hunter2", "ab"});
  EXPECT_EQ(std::string(red.message()).find("hunter2"), std::string::npos);
  EXPECT_NE(std::string(red.message()).find("<redacted>"), std::string::npos);
  EXPECT_EQ(RegistryErrorCode(red), "UNAUTHORIZED");
  EXPECT_EQ(red.code(), st.code());
}

TEST(DescribeRequest, DropsQueryAndUserinfo) {
  EXPECT_EQ(
      DescribeRequest("PUT", "https://user:pw@r.io:5000/v2/a/blobs/uploads/u?_state=x&digest=d"),
      "PUT https://r.io:5000/v2/a/blobs/uploads/u");
  EXPECT_EQ(DescribeRequest("GET", "https://s3.example/blob#frag"), "GET https://s3.example/blob");
}

}  // namespace
}  // namespace kiln::registry
