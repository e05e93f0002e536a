// Where registry credentials come from.
//
// A CredentialSource answers "which credential for this registry host?".  Implementations:
//   - StaticCredentials: credentials handed over with a request (the platform passes the user's
//     GHCR personal access token or ACR refresh token this way);
//   - DockerConfigCredentials: Docker's config.json (`auths` with a base64 `auth`, `username` /
//     `password`, `identitytoken`, `registrytoken`; `credHelpers` and `credsStore`, which run
//     `docker-credential-<name> get` through a CredentialHelperRunner);
//   - ChainCredentials: the first source that has something wins.
// registry/ never reads files: the caller reads config.json and passes its text.
//
// Hosts are registry names as written in references ("docker.io", "ghcr.io",
// "127.0.0.1:5000"); docker.io is looked up under Docker's legacy key
// "https://index.docker.io/v1/", as docker login stores it.
//
// Secrets (password, tokens) must never reach a log line or an error message: errors here name
// the host and the helper, never the credential.
//
// Thread-safety: Lookup() may be called from any thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::registry {

// ACR's `docker login` user for a refresh token passed as the password.
inline constexpr char kAcrRefreshTokenUser[] = "00000000-0000-0000-0000-000000000000";

struct Credential {
  std::string username;
  std::string password;        // password or personal access token
  std::string identity_token;  // OAuth2 refresh token (Docker's "identitytoken")
  std::string registry_token;  // a bearer token sent as is (Docker's "registrytoken")

  bool empty() const {
    return username.empty() && password.empty() && identity_token.empty() && registry_token.empty();
  }
  // The refresh token to trade at the token realm: the identity token, or the password when
  // the username is ACR's null GUID.  Empty for plain username/password credentials.
  std::string RefreshToken() const;
  // The secret strings this credential holds, for redaction.
  std::vector<std::string> Secrets() const;
  // A digest of the whole credential (never the credential itself) to key caches with.
  std::string Fingerprint() const;
};

class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  CredentialSource() = default;
  CredentialSource(const CredentialSource&) = delete;
  CredentialSource& operator=(const CredentialSource&) = delete;

  // The credential for `host`; an empty Credential means anonymous.  Errors only when a source
  // that should answer cannot (a helper that fails for a reason other than "not found").
  virtual absl::StatusOr<Credential> Lookup(std::string_view host) = 0;
};

// Fixed credentials per host.
class StaticCredentials : public CredentialSource {
 public:
  StaticCredentials() = default;
  explicit StaticCredentials(std::map<std::string, Credential> by_host)
      : by_host_(std::move(by_host)) {}
  void Set(std::string host, Credential c) { by_host_[std::move(host)] = std::move(c); }
  absl::StatusOr<Credential> Lookup(std::string_view host) override;

 private:
  std::map<std::string, Credential> by_host_;
};

// Asks each source in turn; the first non-empty credential wins.
class ChainCredentials : public CredentialSource {
 public:
  explicit ChainCredentials(std::vector<std::shared_ptr<CredentialSource>> sources)
      : sources_(std::move(sources)) {}
  absl::StatusOr<Credential> Lookup(std::string_view host) override;

 private:
  std::vector<std::shared_ptr<CredentialSource>> sources_;
};

// Runs a Docker credential helper: `docker-credential-<helper> get` with the server URL on
// stdin, returning its stdout.  NotFound when the helper reports "credentials not found".
class CredentialHelperRunner {
 public:
  virtual ~CredentialHelperRunner() = default;
  CredentialHelperRunner() = default;
  CredentialHelperRunner(const CredentialHelperRunner&) = delete;
  CredentialHelperRunner& operator=(const CredentialHelperRunner&) = delete;
  virtual absl::StatusOr<std::string> Get(std::string_view helper, std::string_view server_url) = 0;
};

// The real runner: spawns the helper (found on PATH, or in `search_dir` when given), feeds it
// the server URL, reads at most 1 MiB of output, kills it after `timeout_seconds`.
std::unique_ptr<CredentialHelperRunner> NewExecHelperRunner(std::string search_dir = "",
                                                            int timeout_seconds = 30);

struct DockerConfig {
  std::map<std::string, Credential> auths;          // by host (normalized key)
  std::map<std::string, std::string> cred_helpers;  // host -> helper name
  std::string creds_store;                          // default helper, may be empty
};

// Parses config.json text.  Malformed JSON or a bad base64 `auth` is InvalidArgument naming
// the entry's host (never its content).
absl::StatusOr<DockerConfig> ParseDockerConfig(std::string_view json);

// "https://index.docker.io/v1/" -> "index.docker.io"; "http://r:5000/v2/" -> "r:5000".
std::string NormalizeConfigHost(std::string_view key);

// The path Docker reads: $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json.  Only the
// path; reading it is the caller's business.
std::string DockerConfigPath();

class DockerConfigCredentials : public CredentialSource {
 public:
  DockerConfigCredentials(DockerConfig config, std::shared_ptr<CredentialHelperRunner> runner)
      : config_(std::move(config)), runner_(std::move(runner)) {}
  absl::StatusOr<Credential> Lookup(std::string_view host) override;

 private:
  absl::StatusOr<Credential> FromHelper(const std::string& helper, std::string_view host);
  DockerConfig config_;
  std::shared_ptr<CredentialHelperRunner> runner_;
};

// Decodes a credential helper's JSON answer ({"Username","Secret"}; Username "<token>" means
// the secret is an identity token).
absl::StatusOr<Credential> ParseHelperOutput(std::string_view json, std::string_view helper);

}  // namespace kiln::registry
