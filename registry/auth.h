// Registry authentication: WWW-Authenticate challenges and the token flow.
//
// An Authenticator serves one registry endpoint (scheme://host:port).  It learns the endpoint's
// challenge from a 401 (Basic, or Bearer with realm/service), then produces the Authorization
// header for each request:
//   - Basic: the credential's user and password;
//   - Bearer: a token from the realm, for the request's whole scope set at once
//     (`repository:app:pull,push` and `repository:base:pull` for a mount source), fetched
//       * with POST grant_type=refresh_token when the credential carries a refresh token
//         (Docker identity token, or ACR's null-GUID user with the refresh token as password),
//       * else with GET and Basic credentials (or anonymously);
//     or the credential's registry token sent as is.
// Tokens are cached per (credential, scope set) and replaced before they expire (a quarter of
// their lifetime, at least 5 s and at most 30 s ahead; expires_in defaults to 60 s), so a long
// upload never sends a stale token.  Concurrent requests for the same token fetch it once.
//
// Nothing here logs; errors name the realm (without query) and the registry, never a secret.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/cancel.h"
#include "registry/clock.h"
#include "registry/credentials.h"
#include "registry/http.h"

namespace kiln::registry {

struct AuthChallenge {
  std::string scheme;                         // lowercase: "bearer", "basic"
  std::map<std::string, std::string> params;  // names lowercase: realm, service, scope, error
};

// Parses WWW-Authenticate values (several challenges per value and several values allowed).
// Unparseable text yields what could be read before it.
std::vector<AuthChallenge> ParseAuthChallenges(const std::vector<std::string>& values);

// "repository:<name>:<actions>".
std::string RepositoryScope(std::string_view repository, std::string_view actions);

class Authenticator {
 public:
  // `origin` is the endpoint ("https://registry-1.docker.io"), `host` the name shown in errors.
  Authenticator(std::string origin, std::string host, HttpTransport& transport, Clock& clock,
                ConnectionOptions connection);

  // Whether the endpoint's challenge is known (after a ping or any 401).
  bool knows_challenge() const;

  // Records the challenge of a 401 response and forgets the token cached for
  // (`credential`, `scopes`) if it is the one that was refused (`sent_authorization`, the header
  // the failed request carried), so the next Header() call fetches a fresh one.  Returns the
  // scopes the challenge names (a registry may ask for one the caller did not think of).
  std::vector<std::string> OnUnauthorized(const HttpHeaders& headers, const Credential& credential,
                                          const std::set<std::string>& scopes,
                                          const std::string& sent_authorization);

  // Records that the endpoint answered without asking for credentials.
  void MarkOpen();

  // The Authorization header value for a request carrying `scopes`, or "" when the endpoint
  // wants none (or its challenge is not known yet).
  absl::StatusOr<std::string> Header(const Credential& credential,
                                     const std::set<std::string>& scopes,
                                     const CancelToken& cancel);

  // How many tokens were fetched from the realm (for tests and metrics).
  int tokens_fetched() const;

 private:
  struct TokenEntry {
    std::mutex mu;  // held while fetching, so concurrent users wait for one fetch
    std::string token;
    absl::Time refresh_at = absl::InfinitePast();
  };
  struct Token {
    std::string value;
    absl::Duration lifetime;
  };

  absl::StatusOr<Token> FetchToken(const AuthChallenge& challenge, const Credential& credential,
                                   const std::set<std::string>& scopes, const CancelToken& cancel);
  std::shared_ptr<TokenEntry> Entry(const std::string& key);
  static std::string CacheKey(const Credential& credential, const std::set<std::string>& scopes);

  const std::string origin_;
  const std::string host_;
  HttpTransport& transport_;
  Clock& clock_;
  const ConnectionOptions connection_;

  mutable std::mutex mu_;
  std::optional<AuthChallenge> challenge_;  // nullopt: unknown; scheme "" : no auth needed
  std::map<std::string, std::shared_ptr<TokenEntry>> tokens_;
  int tokens_fetched_ = 0;
};

}  // namespace kiln::registry
