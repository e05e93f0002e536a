#include "registry/credentials.h"

#include <cerrno>
#include <chrono>
#include <cstdlib>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "base/digest.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace kiln::registry {

namespace {

constexpr char kDockerHubConfigKey[] = "https://index.docker.io/v1/";
constexpr size_t kMaxHelperOutput = 1 << 20;

bool IsDockerHub(std::string_view host) {
  return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
}

// The key Docker uses for `host` in config.json and with credential helpers.
std::string ServerUrlFor(std::string_view host) {
  return IsDockerHub(host) ? kDockerHubConfigKey : std::string(host);
}

std::string NormalizedLookupHost(std::string_view host) {
  return IsDockerHub(host) ? "index.docker.io" : std::string(host);
}

// Helper names come from a config file: keep them to a plain file-name suffix.
bool IsValidHelperName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return name != "." && name != "..";
}

// A spawned child that is killed and reaped unless it was waited for.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The exit status (as from waitpid), reaping the child.
  absl::StatusOr<int> Wait() {
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0) {
      if (errno != EINTR) return ErrnoStatus("waitpid");
    }
    pid_ = -1;
    return st;
  }

 private:
  pid_t pid_;
};

absl::Status MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus("pipe2");
  read_end->Reset(fds[0]);
  write_end->Reset(fds[1]);
  return absl::OkStatus();
}

class ExecHelperRunner : public CredentialHelperRunner {
 public:
  ExecHelperRunner(std::string search_dir, int timeout_seconds)
      : search_dir_(std::move(search_dir)), timeout_seconds_(timeout_seconds) {}

  absl::StatusOr<std::string> Get(std::string_view helper, std::string_view server_url) override {
    if (!IsValidHelperName(helper)) {
      return absl::InvalidArgumentError(
          StrCat("credential helper name ", Quote(helper), " is not a plain name"));
    }
    const std::string program = StrCat("docker-credential-", helper);
    const std::string what = StrCat("run credential helper ", Quote(program));
    // stdin is a socket pair rather than a pipe so that writing to a helper that already
    // exited gives EPIPE (MSG_NOSIGNAL) instead of a SIGPIPE that would kill the daemon.
    UniqueFd in_r, in_w, out_r, out_w;
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return ErrnoStatus(StrCat(what, ": socketpair"));
    }
    in_r.Reset(sv[0]);
    in_w.Reset(sv[1]);
    KILN_RETURN_IF_ERROR_CTX(MakePipe(&out_r, &out_w), what);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_r.get(), 0);
    posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
    // The helper's stderr may describe the credential; it is discarded.
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    std::string path = search_dir_.empty() ? program : StrCat(search_dir_, "/", program);
    char* argv[] = {path.data(), const_cast<char*>("get"), nullptr};
    pid_t pid = -1;
    int rc = search_dir_.empty()
                 ? ::posix_spawnp(&pid, path.c_str(), &actions, nullptr, argv, environ)
                 : ::posix_spawn(&pid, path.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return ErrnoStatus(rc, what);
    Child child(pid);
    in_r.Reset();
    out_w.Reset();

    // The server URL is tiny: one write fits in the pipe buffer.
    std::string input(server_url);
    if (::send(in_w.get(), input.data(), input.size(), MSG_NOSIGNAL) < 0 && errno != EPIPE) {
      return ErrnoStatus(StrCat(what, ": write stdin"));
    }
    in_w.Reset();

    std::string output;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds_);
    char buf[4096];
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return absl::DeadlineExceededError(
            StrCat(what, ": no answer within ", timeout_seconds_, "s"));
      }
      pollfd pfd{out_r.get(), POLLIN, 0};
      int pr = ::poll(&pfd, 1, static_cast<int>(left.count()));
      if (pr < 0 && errno == EINTR) continue;
      if (pr < 0) return ErrnoStatus(StrCat(what, ": poll"));
      if (pr == 0) continue;
      ssize_t n = ::read(out_r.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(StrCat(what, ": read stdout"));
      if (n == 0) break;
      if (output.size() + n > kMaxHelperOutput) {
        return absl::ResourceExhaustedError(StrCat(what, ": output exceeds 1 MiB"));
      }
      output.append(buf, n);
    }
    KILN_ASSIGN_OR_RETURN(int st, child.Wait());
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return output;
    if (absl::StrContains(ToAbsl(output), "credentials not found")) {
      return absl::NotFoundError(StrCat(what, ": no credentials for ", Quote(server_url)));
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
      return absl::NotFoundError(StrCat(what, ": program not found"));
    }
    // The output of a failing helper is not shown: it may hold part of a secret.
    return absl::UnavailableError(StrCat(
        what, ": failed (",
        WIFEXITED(st) ? StrCat("exit status ", WEXITSTATUS(st)) : StrCat("signal ", WTERMSIG(st)),
        ")"));
  }

 private:
  std::string search_dir_;
  int timeout_seconds_;
};

std::string JsonString(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

}  // namespace

std::string Credential::RefreshToken() const {
  if (!identity_token.empty()) return identity_token;
  if (username == kAcrRefreshTokenUser) return password;
  return "";
}

std::vector<std::string> Credential::Secrets() const {
  std::vector<std::string> out;
  for (const std::string* s : {&password, &identity_token, &registry_token}) {
    if (!s->empty()) out.push_back(*s);
  }
  return out;
}

std::string Credential::Fingerprint() const {
  if (empty()) return "anonymous";
  std::string all =
      StrCat(username.size(), ":", username, password.size(), ":", password, identity_token.size(),
             ":", identity_token, registry_token.size(), ":", registry_token);
  return Digest::Sha256Of(all).str();
}

absl::StatusOr<Credential> StaticCredentials::Lookup(std::string_view host) {
  auto it = by_host_.find(std::string(host));
  if (it == by_host_.end() && IsDockerHub(host)) {
    for (const char* alias : {"docker.io", "index.docker.io", "registry-1.docker.io"}) {
      it = by_host_.find(alias);
      if (it != by_host_.end()) break;
    }
  }
  return it == by_host_.end() ? Credential() : it->second;
}

absl::StatusOr<Credential> ChainCredentials::Lookup(std::string_view host) {
  for (const auto& source : sources_) {
    if (!source) continue;
    KILN_ASSIGN_OR_RETURN(Credential c, source->Lookup(host));
    if (!c.empty()) return c;
  }
  return Credential();
}

std::unique_ptr<CredentialHelperRunner> NewExecHelperRunner(std::string search_dir,
                                                            int timeout_seconds) {
  return std::make_unique<ExecHelperRunner>(std::move(search_dir), timeout_seconds);
}

std::string NormalizeConfigHost(std::string_view key) {
  std::string_view k = key;
  for (std::string_view scheme : {"https://", "http://"}) {
    if (absl::StartsWith(ToAbsl(k), ToAbsl(scheme))) {
      k.remove_prefix(scheme.size());
      break;
    }
  }
  k = k.substr(0, std::min(k.find('/'), k.size()));
  return std::string(k);
}

std::string DockerConfigPath() {
  if (const char* dir = std::getenv("DOCKER_CONFIG"); dir != nullptr && *dir != '\0') {
    return StrCat(dir, "/config.json");
  }
  const char* home = std::getenv("HOME");
  return StrCat(home != nullptr ? home : "", "/.docker/config.json");
}

absl::StatusOr<DockerConfig> ParseDockerConfig(std::string_view json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError("parse docker config: not a JSON object");
  }
  DockerConfig config;
  if (auto auths = doc.find("auths"); auths != doc.end() && auths->is_object()) {
    for (const auto& [key, entry] : auths->items()) {
      if (!entry.is_object()) continue;
      std::string host = NormalizeConfigHost(key);
      Credential c;
      c.username = JsonString(entry, "username");
      c.password = JsonString(entry, "password");
      c.identity_token = JsonString(entry, "identitytoken");
      c.registry_token = JsonString(entry, "registrytoken");
      std::string auth = JsonString(entry, "auth");
      if (!auth.empty()) {
        std::string decoded;
        size_t colon;
        if (!absl::Base64Unescape(auth, &decoded) ||
            (colon = decoded.find(':')) == std::string::npos) {
          return absl::InvalidArgumentError(StrCat("parse docker config: `auth` of ", Quote(key),
                                                   " is not base64 of user:password"));
        }
        c.username = decoded.substr(0, colon);
        c.password = decoded.substr(colon + 1);
      }
      if (!c.empty()) config.auths[host] = std::move(c);
    }
  }
  if (auto helpers = doc.find("credHelpers"); helpers != doc.end() && helpers->is_object()) {
    for (const auto& [key, name] : helpers->items()) {
      if (name.is_string()) config.cred_helpers[NormalizeConfigHost(key)] = name.get<std::string>();
    }
  }
  config.creds_store = JsonString(doc, "credsStore");
  return config;
}

absl::StatusOr<Credential> ParseHelperOutput(std::string_view json, std::string_view helper) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(
        StrCat("credential helper ", Quote(helper), " answered something other than JSON"));
  }
  Credential c;
  std::string user = JsonString(doc, "Username");
  std::string secret = JsonString(doc, "Secret");
  if (user == "<token>") {
    c.identity_token = std::move(secret);
  } else {
    c.username = std::move(user);
    c.password = std::move(secret);
  }
  return c;
}

absl::StatusOr<Credential> DockerConfigCredentials::FromHelper(const std::string& helper,
                                                               std::string_view host) {
  if (!runner_) {
    return absl::FailedPreconditionError(
        StrCat("credential helper ", Quote(helper), " configured but no runner given"));
  }
  absl::StatusOr<std::string> out = runner_->Get(helper, ServerUrlFor(host));
  if (absl::IsNotFound(out.status())) return Credential();
  if (!out.ok()) return Annotate(out.status(), StrCat("credentials for ", Quote(host)));
  return ParseHelperOutput(*out, helper);
}

absl::StatusOr<Credential> DockerConfigCredentials::Lookup(std::string_view host) {
  // Docker Hub is stored under its legacy name, but a hand-written "docker.io" works too.
  const std::vector<std::string> keys = {NormalizedLookupHost(host), std::string(host)};
  for (const std::string& key : keys) {
    if (auto it = config_.cred_helpers.find(key); it != config_.cred_helpers.end()) {
      return FromHelper(it->second, host);
    }
  }
  if (!config_.creds_store.empty()) {
    KILN_ASSIGN_OR_RETURN(Credential c, FromHelper(config_.creds_store, host));
    if (!c.empty()) return c;
  }
  for (const std::string& key : keys) {
    if (auto it = config_.auths.find(key); it != config_.auths.end()) return it->second;
  }
  return Credential();
}

}  // namespace kiln::registry
