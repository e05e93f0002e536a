// HttpTransport over libcurl.
//
// Connections are reused: finished easy handles go back to a pool keyed by scheme://host:port,
// and an easy handle keeps its connections open across curl_easy_reset().  DNS and TLS sessions
// are shared between all handles.  Every transfer uses HTTP/1.1 (large blobs over HTTP/2 are
// slow with some registries), verifies TLS against the system CAs unless the request says
// otherwise, and takes proxies from the environment (http_proxy, https_proxy, no_proxy), which
// libcurl reads itself.  Cancellation aborts a transfer from curl's progress callback, which
// curl calls at least once a second even on an idle connection.
//
// Thread-safety: Do() may be called from any number of threads.
#pragma once

#include <memory>
#include <string>

#include "registry/http.h"

namespace kiln::registry {

class CurlTransport : public HttpTransport {
 public:
  struct Options {
    std::string user_agent = "kiln/0.1";
    size_t max_idle_handles_per_host = 16;
  };
  CurlTransport();
  explicit CurlTransport(Options options);
  ~CurlTransport() override;

  absl::StatusOr<HttpResponse> Do(const HttpRequest& request, const CancelToken& cancel) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::registry
