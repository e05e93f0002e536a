// Test harness: a real OCI registry (Debian's docker-registry, distribution v2.8) on a loopback
// port, optionally behind htpasswd Basic auth or token auth from a small JWT issuer, and a
// fault-injecting proxy to put between a client and it.
//
//   auto reg = LocalRegistry::Start({.auth = LocalRegistry::Auth::kToken});
//   // push to (*reg)->host() ("127.0.0.1:PORT"), then:
//   int uploads = (*reg)->Count("PUT", "^/v2/app/blobs/uploads/");
//
//   auto proxy = FaultProxy::Start((*reg)->host(),
//                                  {{.method = "PATCH", .path = "/blobs/uploads/", .nth = 2,
//                                    .action = "status", .status = 500}});
//   // point the client at (*proxy)->host()
//
// Every process is started by the harness, owned by a ChildProcess and stopped by its PID when
// the owner is destroyed (SIGTERM, then SIGKILL after 5 s).  Logs stay in the harness' temp
// directory (dir()) until then: the registry's access log (one line per request, which tests
// count), its error log, the token issuer's and the proxy's JSON request logs (no secrets).
// The helper scripts run under /usr/bin/python3 (Debian's, with python3-jwt and
// python3-cryptography).
//
// Thread-safety: the accessors may be called from any thread; Start/destruction from one.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/fs.h"
#include "base/strings.h"
#include "nlohmann/json.hpp"

namespace kiln::registry_harness {

// A process started by the harness; killed and reaped when destroyed.
class ChildProcess {
 public:
  // Runs argv[0] (searched on PATH) with stdout and stderr appended to the given files.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                             const std::string& stdout_path,
                                                             const std::string& stderr_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Whether the process has exited (reaps it if so).
  bool Exited();

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool reaped_ = false;
};

// A loopback TCP port that was free a moment ago.
absl::StatusOr<int> PickFreePort();

// Where the harness' scripts live (tests/registry_harness in the source tree).
std::string HarnessDir();

// The token issuer (token_issuer.py).
class TokenIssuer {
 public:
  struct Options {
    std::vector<std::pair<std::string, std::string>> users;  // user, password
    std::vector<std::string> refresh_tokens;                 // accepted by the refresh_token grant
    int expires_in = 300;
    bool anonymous_pull = false;
  };
  static absl::StatusOr<std::unique_ptr<TokenIssuer>> Start(const std::string& dir,
                                                            const Options& options);
  std::string realm() const;  // "http://127.0.0.1:PORT/token"
  const std::string& cert_path() const { return cert_path_; }
  // One object per token request, oldest first: method, grant, scopes, service, user, outcome.
  std::vector<nlohmann::json> Requests() const;

 private:
  TokenIssuer() = default;
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
  std::string cert_path_;
  std::string log_path_;
};

class LocalRegistry {
 public:
  enum class Auth { kNone, kBasic, kToken };
  struct Options {
    Auth auth = Auth::kNone;
    std::string user = "kiln";
    std::string password = "kiln-test-password-1234";
    int token_expires_in = 300;
    std::vector<std::string> refresh_tokens;  // token mode: accepted refresh tokens
    bool anonymous_pull = false;              // token mode
    std::string storage_dir;                  // default: <dir>/data
    bool tls = false;  // HTTPS with a fresh self-signed certificate for 127.0.0.1
  };

  static absl::StatusOr<std::unique_ptr<LocalRegistry>> Start(const Options& options);
  static absl::StatusOr<std::unique_ptr<LocalRegistry>> Start() { return Start(Options()); }
  ~LocalRegistry();

  std::string host() const { return StrHost(port_); }  // "127.0.0.1:PORT"
  int port() const { return port_; }
  const std::string& dir() const { return dir_.path(); }
  TokenIssuer* token_issuer() const { return issuer_.get(); }
  // The TLS certificate (PEM) when Options::tls; it is its own CA.
  std::string tls_cert_path() const { return StrCat(dir(), "/tls.crt"); }

  struct Request {
    std::string method;
    std::string path;  // without query
    int status = 0;
  };
  // The access log, parsed.  Waits until the log has been quiet for a moment, because the
  // registry writes a line just after answering.
  std::vector<Request> Requests() const;
  // Requests whose method equals `method` (any when empty), whose path matches the regex
  // `path_regex`, and whose status equals `status` (any when 0).
  int Count(const std::string& method, const std::string& path_regex, int status = 0) const;
  std::string ErrorLog() const;

  static std::string StrHost(int port);

 private:
  LocalRegistry() = default;
  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<TokenIssuer> issuer_;
  std::unique_ptr<ChildProcess> process_;
};

class FaultProxy {
 public:
  struct Rule {
    std::string method;       // empty: any
    std::string path;         // regex searched in the path (without query)
    std::string query;        // regex searched in the query string; empty matches any
    int nth = 1;              // the first matching request it fires on
    int count = 1;            // how many consecutive matching requests
    std::string action;       // drop, drop_mid_body, drop_after, status, stall, corrupt, truncate
    int status = 500;         // for "status"
    std::string retry_after;  // for "status"; empty: no header
    double stall_seconds = 30;
  };
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(const std::string& upstream,
                                                           const std::vector<Rule>& rules);
  std::string host() const { return LocalRegistry::StrHost(port_); }

  struct Logged {
    int n = 0;
    std::string method;
    std::string path;
    std::string action;
    int status = 0;  // 0: no answer was given
  };
  std::vector<Logged> Requests() const;

 private:
  FaultProxy() = default;
  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace kiln::registry_harness
