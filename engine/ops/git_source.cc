#include "engine/ops/git_source.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <regex>

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "base/fs.h"
#include "base/pattern_match.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"
#include "engine/ops/session.h"
#include "engine/ops/source_op.h"
#include "engine/worker/worker.h"
#include "llb/caps.h"

extern char** environ;

namespace kiln::engine {
namespace {

constexpr char kDefaultTokenSecret[] = "GIT_AUTH_TOKEN";
constexpr char kDefaultHeaderSecret[] = "GIT_AUTH_HEADER";
constexpr char kRedacted[] = "xxxxx";
constexpr size_t kMaxOutput = 16 << 20;

bool IsImplicitSsh(std::string_view s) {
  static const std::regex re("^[a-zA-Z0-9-_]+@[a-zA-Z0-9-.]+:.*$");
  return std::regex_match(s.begin(), s.end(), re);
}

bool IsGitTransport(std::string_view s) {
  return s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git://") ||
         s.starts_with("ssh://") || IsImplicitSsh(s);
}

bool IsCommitSha(std::string_view s) {
  if (s.size() != 40) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// "https://user:pass@host/x" -> "https://xxxxx@host/x".
std::string RedactCredentials(const std::string& text) {
  static const std::regex re("([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\\s]+@");
  return std::regex_replace(text, re, "$1xxxxx@");
}

// Go's url.Parse(remote).Host: "host[:port]" of a URL with a scheme, "" otherwise.
std::string UrlHost(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  size_t start = scheme + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string host = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (size_t at = host.rfind('@'); at != std::string::npos) host = host.substr(at + 1);
  return host;
}

// The URL an auth header is scoped to (BuildKit's tokenScope: all of github.com shares one).
std::string TokenScope(const std::string& remote) {
  for (const char* pfx : {"https://github.com/", "https://www.github.com/"}) {
    if (remote.starts_with(pfx)) return pfx;
  }
  return remote;
}

// ---- child processes --------------------------------------------------------------------

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Owns a child running in its own process group: the group is killed and the child reaped if
// it is still there when the owner goes away.
class ProcessGroup {
 public:
  explicit ProcessGroup(pid_t pid) : pid_(pid) {}
  ~ProcessGroup() {
    if (reaped_) return;
    Kill();
    Wait();
  }
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  void Kill() {
    if (!reaped_) ::kill(-pid_, SIGKILL);
  }
  int Wait() {
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  }

 private:
  pid_t pid_;
  bool reaped_ = false;
};

absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         const std::vector<std::string>& env,
                                         const std::string& cwd, const CancelToken& cancel) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoStatus("pipe");
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoStatus("pipe");
  UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.get(), 2);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return ErrnoStatus(rc, StrCat("run ", Quote(argv[0])));
  ProcessGroup child(pid);
  out_w.Reset();
  err_w.Reset();

  ProcessResult result;
  struct pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open = 2;
  bool killed = false;
  char buf[1 << 16];
  while (open > 0) {
    if (!killed && cancel.cancelled()) {
      child.Kill();
      killed = true;
    }
    int n = ::poll(fds, 2, 100);
    if (n < 0 && errno != EINTR) return ErrnoStatus("poll");
    for (int i = 0; i < 2 && n > 0; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t r = ::read(fds[i].fd, buf, sizeof(buf));
      if (r > 0) {
        if (sinks[i]->size() < kMaxOutput) sinks[i]->append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        fds[i].fd = -1;
        --open;
      }
    }
  }
  result.exit_code = child.Wait();
  if (killed) return cancel.Check();
  return result;
}

// ---- the op -----------------------------------------------------------------------------

std::mutex& RepoMutex(const std::string& dir) {
  static std::mutex mu;
  static auto* locks = new std::map<std::string, std::unique_ptr<std::mutex>>();
  std::lock_guard<std::mutex> lock(mu);
  auto& m = (*locks)[dir];
  if (!m) m = std::make_unique<std::mutex>();
  return *m;
}

struct GitAttrs {
  GitIdentifier id;
  bool keep_git_dir = false;
  std::string token_secret = kDefaultTokenSecret;
  std::string header_secret = kDefaultHeaderSecret;
  std::string known_ssh_hosts;
  std::string ssh_sock_id;
};

class GitSourceOp : public Op {
 public:
  GitSourceOp(const OpEnv& env, GitAttrs attrs, GitSourceOptions options)
      : worker_(env.worker), a_(std::move(attrs)), options_(std::move(options)) {
    if (options_.cache_dir.empty()) options_.cache_dir = worker_->root() + "/git";
  }

  absl::StatusOr<CacheMap> GetCacheMap(const OpContext& ctx) override {
    KILN_RETURN_IF_ERROR(Prepare(ctx));
    if (IsCommitSha(a_.id.ref)) {
      sha_ = a_.id.ref;
    } else {
      KILN_RETURN_IF_ERROR(ResolveRef(ctx));
    }
    std::string key = sha_;
    if (a_.keep_git_dir) key += ".git";
    if (!a_.id.subdir.empty()) key += ":" + a_.id.subdir;
    CacheMap cm;
    cm.digest = SourceCacheDigest(key);
    return cm;
  }

  absl::StatusOr<std::vector<ResultRef>> Exec(const OpContext& ctx,
                                              std::span<const ResultRef>) override {
    if (sha_.empty()) KILN_RETURN_IF_ERROR(GetCacheMap(ctx).status());
    KILN_RETURN_IF_ERROR(Prepare(ctx));
    const std::string repo =
        StrCat(options_.cache_dir, "/", Digest::Sha256Of(a_.id.remote).hex().substr(0, 32));
    std::lock_guard<std::mutex> lock(RepoMutex(repo));
    {
      ProgressTask task(ctx.progress, StrCat("fetching ", Redacted(a_.id.remote)));
      KILN_RETURN_IF_ERROR(EnsureRepo(ctx, repo));
      KILN_RETURN_IF_ERROR(FetchCommit(ctx, repo));
    }
    KILN_ASSIGN_OR_RETURN(std::string commit, Git(ctx, {"--git-dir", repo, "rev-parse", "--verify",
                                                        "--end-of-options", sha_ + "^{commit}"}));
    commit = std::string(absl::StripAsciiWhitespace(commit));
    ProgressTask task(ctx.progress, StrCat("checkout ", Redacted(a_.id.remote), "#", sha_));
    auto ref = WriteNewSnapshot(*worker_,
                                StrCat("git snapshot for ", Redacted(a_.id.remote), "#", a_.id.ref),
                                [&](const std::string& dir) {
                                  if (a_.keep_git_dir && a_.id.subdir.empty())
                                    return CheckoutWithGitDir(ctx, repo, commit, dir);
                                  return CheckoutTree(ctx, repo, commit, dir);
                                });
    if (!ref.ok()) return ref.status();
    return std::vector<ResultRef>{std::move(*ref)};
  }

 private:
  std::string Redacted(const std::string& text) const { return Scrub(RedactCredentials(text)); }

  // Secrets and SSH settings from the session; once.
  absl::Status Prepare(const OpContext& ctx) {
    if (prepared_) return absl::OkStatus();
    env_ = BaseEnv();
    if (const auto* s = ctx.session.FindFirst<std::shared_ptr<Secrets>>(kSessionSecrets); s && *s) {
      KILN_RETURN_IF_ERROR(LoadAuth(**s));
    }
    if (!a_.id.remote.starts_with("http://") && !a_.id.remote.starts_with("https://") &&
        !a_.id.remote.starts_with("git://") && !a_.id.remote.starts_with("file://")) {
      KILN_RETURN_IF_ERROR(PrepareSsh(ctx));
    }
    prepared_ = true;
    return absl::OkStatus();
  }

  std::vector<std::string> BaseEnv() const {
    const char* path = ::getenv("PATH");
    return {StrCat("PATH=",
                   path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            "GIT_TERMINAL_PROMPT=0",
            "GIT_CONFIG_NOSYSTEM=1",
            "GIT_CONFIG_GLOBAL=/dev/null",
            "HOME=/dev/null",
            "LC_ALL=C"};
  }

  absl::Status LoadAuth(Secrets& secrets) {
    std::string host = UrlHost(a_.id.remote);
    if (host.empty()) return absl::OkStatus();  // BuildKit cannot scope one either
    struct Candidate {
      std::string id;
      bool token;
    };
    std::vector<Candidate> candidates;
    if (!a_.header_secret.empty()) candidates.push_back({a_.header_secret + "." + host, false});
    if (!a_.token_secret.empty()) candidates.push_back({a_.token_secret + "." + host, true});
    if (!a_.header_secret.empty()) candidates.push_back({a_.header_secret, false});
    if (!a_.token_secret.empty()) candidates.push_back({a_.token_secret, true});
    for (const auto& c : candidates) {
      auto value = secrets.Get(c.id);
      if (absl::IsNotFound(value.status())) continue;
      if (!value.ok()) return value.status();
      std::string header;
      if (c.token) {
        std::string b64 = absl::Base64Escape(ToAbsl(StrCat("x-access-token:", *value)));
        header = StrCat("basic ", b64);
        secrets_.push_back(b64);
      } else {
        header = *value;
      }
      secrets_.push_back(*value);
      secrets_.push_back(header);
      // Base64 of a Basic credential in a header value the user gave.
      if (size_t sp = header.find(' '); sp != std::string::npos && sp + 1 < header.size()) {
        secrets_.push_back(header.substr(sp + 1));
      }
      auth_env_ = {"GIT_CONFIG_COUNT=1",
                   StrCat("GIT_CONFIG_KEY_0=http.", TokenScope(a_.id.remote), ".extraheader"),
                   StrCat("GIT_CONFIG_VALUE_0=Authorization: ", header)};
      std::sort(secrets_.begin(), secrets_.end(),
                [](const std::string& x, const std::string& y) { return x.size() > y.size(); });
      secrets_.erase(std::remove_if(secrets_.begin(), secrets_.end(),
                                    [](const std::string& s) { return s.size() < 4; }),
                     secrets_.end());
      break;
    }
    return absl::OkStatus();
  }

  absl::Status PrepareSsh(const OpContext& ctx) {
    std::string ssh = "ssh -F /dev/null";
    if (!a_.known_ssh_hosts.empty()) {
      KILN_ASSIGN_OR_RETURN(known_hosts_, TempDir::Create("git-known-hosts-", worker_->TempRoot()));
      const std::string file = known_hosts_.path() + "/known_hosts";
      KILN_RETURN_IF_ERROR(WriteFileAtomic(file, a_.known_ssh_hosts, 0600));
      ssh += " -o UserKnownHostsFile=" + file;
    } else {
      ssh += " -o StrictHostKeyChecking=no";
    }
    env_.push_back("GIT_SSH_COMMAND=" + ssh);
    if (!a_.ssh_sock_id.empty()) {
      const auto* agents = ctx.session.FindFirst<std::shared_ptr<SshAgents>>(kSessionSsh);
      if (!agents || !*agents) {
        return absl::FailedPreconditionError(
            StrCat("no SSH key ", Quote(a_.ssh_sock_id), " forwarded from the client"));
      }
      KILN_ASSIGN_OR_RETURN(std::string sock, (*agents)->SocketPath(a_.ssh_sock_id));
      env_.push_back("SSH_AUTH_SOCK=" + sock);
    }
    return absl::OkStatus();
  }

  std::string Scrub(std::string text) const {
    for (const auto& s : secrets_) {
      for (size_t pos = text.find(s); pos != std::string::npos; pos = text.find(s, pos)) {
        text.replace(pos, s.size(), kRedacted);
        pos += sizeof(kRedacted) - 1;
      }
    }
    return RedactCredentials(text);
  }

  struct GitResult {
    int exit_code = 0;
    std::string out;
    std::string err;  // scrubbed
    absl::Status error;
  };

  // Runs git; stdout on success, an error with git's (scrubbed) stderr otherwise.
  absl::StatusOr<std::string> Git(const OpContext& ctx, std::vector<std::string> args,
                                  const std::string& cwd = "", bool auth = false,
                                  const std::vector<std::string>& extra_env = {}) {
    KILN_ASSIGN_OR_RETURN(GitResult r, GitRaw(ctx, std::move(args), cwd, auth, extra_env));
    if (r.exit_code != 0) return r.error;
    return r.out;
  }

  static std::string Subcommand(const std::vector<std::string>& args) {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--git-dir" || a == "--work-tree" || a == "-C" || a == "-c") {
        ++i;
        continue;
      }
      if (!a.starts_with("-")) return a;
    }
    return "";
  }

  absl::StatusOr<GitResult> GitRaw(const OpContext& ctx, std::vector<std::string> args,
                                   const std::string& cwd, bool auth,
                                   const std::vector<std::string>& extra_env) {
    std::vector<std::string> argv = {options_.git, "-c", "protocol.file.allow=user"};
    if (!options_.allow_file_protocol) {
      argv.insert(argv.end(), {"-c", "protocol.file.allow=never"});
    }
    const std::string sub = Subcommand(args);
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> env = env_;
    if (auth) env.insert(env.end(), auth_env_.begin(), auth_env_.end());
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    KILN_ASSIGN_OR_RETURN(ProcessResult p, RunProcess(argv, env, cwd, ctx.cancel));
    GitResult r;
    r.exit_code = p.exit_code;
    r.out = std::move(p.out);
    r.err = Scrub(std::move(p.err));
    if (r.exit_code != 0) {
      std::string tail = r.err.size() > 4000 ? r.err.substr(r.err.size() - 4000) : r.err;
      r.error =
          absl::UnavailableError(StrCat("git ", sub, " ", Redacted(a_.id.remote), " failed (exit ",
                                        r.exit_code, "): ", absl::StripAsciiWhitespace(tail)));
    }
    return r;
  }

  absl::Status ResolveRef(const OpContext& ctx) {
    ProgressTask task(ctx.progress, StrCat("resolve ", Redacted(a_.id.remote), "#", a_.id.ref));
    std::string ref = a_.id.ref;
    if (ref.empty()) {
      KILN_ASSIGN_OR_RETURN(
          std::string out,
          Git(ctx, {"ls-remote", "--symref", "--end-of-options", a_.id.remote, "HEAD"}, "", true));
      static const std::regex re("refs/heads/(\\S+)");
      std::smatch m;
      if (!std::regex_search(out, m, re)) {
        return absl::NotFoundError(
            StrCat("could not find the default branch of repository ", Redacted(a_.id.remote)));
      }
      ref = m[1];
    }
    KILN_ASSIGN_OR_RETURN(std::string out,
                          Git(ctx, {"ls-remote", "--end-of-options", a_.id.remote, ref}, "", true));
    size_t tab = out.find('\t');
    if (tab == std::string::npos) {
      return absl::NotFoundError(
          StrCat("repository ", Redacted(a_.id.remote), " does not contain ref ", Quote(ref)));
    }
    std::string sha = out.substr(0, tab);
    if (!IsCommitSha(sha)) {
      return absl::DataLossError(
          StrCat("git ls-remote ", Redacted(a_.id.remote), ": invalid commit sha ", Quote(sha)));
    }
    size_t eol = out.find('\n', tab);
    full_ref_ = out.substr(tab + 1, eol == std::string::npos ? std::string::npos : eol - tab - 1);
    ref_ = ref;
    sha_ = sha;
    return absl::OkStatus();
  }

  absl::Status EnsureRepo(const OpContext& ctx, const std::string& repo) {
    struct stat st;
    if (::stat((repo + "/HEAD").c_str(), &st) == 0) return absl::OkStatus();
    KILN_RETURN_IF_ERROR(RemoveAll(repo));
    KILN_RETURN_IF_ERROR(MakeDirs(repo, 0700));
    KILN_RETURN_IF_ERROR(
        Git(ctx, {"-c", "init.defaultBranch=master", "init", "--bare", "--quiet", repo}).status());
    return Git(ctx, {"--git-dir", repo, "remote", "add", "origin", a_.id.remote}).status();
  }

  bool HasObject(const OpContext& ctx, const std::string& repo) {
    auto r = GitRaw(ctx, {"--git-dir", repo, "cat-file", "-e", sha_ + "^{commit}"}, "", false, {});
    return r.ok() && r->exit_code == 0;
  }

  absl::Status FetchCommit(const OpContext& ctx, const std::string& repo) {
    if (!HasObject(ctx, repo)) {
      (void)::unlink((repo + "/shallow.lock").c_str());
      if (!ref_.empty()) {
        std::string local = StrCat("refs/kiln/fetch/", Digest::Sha256Of(ref_).hex().substr(0, 16));
        std::vector<std::string> args = {
            "--git-dir", repo,      "fetch",  "--depth=1",
            "--no-tags", "--force", "origin", StrCat("+", ref_, ":", local)};
        KILN_ASSIGN_OR_RETURN(GitResult r, GitRaw(ctx, args, "", true, {}));
        if (r.exit_code != 0 && (r.err.find("--depth") != std::string::npos ||
                                 r.err.find("shallow") != std::string::npos)) {
          args.erase(std::find(args.begin(), args.end(), "--depth=1"));
          KILN_ASSIGN_OR_RETURN(r, GitRaw(ctx, args, "", true, {}));
        }
        if (r.exit_code != 0) return r.error;
      } else {
        // A commit by sha: ask for it directly (servers allow reachable commits), else fetch
        // every branch and tag.
        KILN_ASSIGN_OR_RETURN(
            GitResult r,
            GitRaw(ctx, {"--git-dir", repo, "fetch", "--depth=1", "--no-tags", "origin", sha_}, "",
                   true, {}));
        if (r.exit_code != 0 || !HasObject(ctx, repo)) {
          std::vector<std::string> args = {"--git-dir", repo, "fetch", "--no-tags", "--force"};
          struct stat st;
          if (::stat((repo + "/shallow").c_str(), &st) == 0) args.push_back("--unshallow");
          args.insert(args.end(), {"origin", "+refs/heads/*:refs/kiln/heads/*",
                                   "+refs/tags/*:refs/kiln/tags/*"});
          KILN_ASSIGN_OR_RETURN(r, GitRaw(ctx, args, "", true, {}));
          if (r.exit_code != 0) return r.error;
        }
      }
      if (!HasObject(ctx, repo)) {
        if (ref_.empty()) {
          return absl::NotFoundError(
              StrCat("repository ", Redacted(a_.id.remote), ": commit ", sha_, " not found"));
        }
        return absl::AbortedError(StrCat("repository ", Redacted(a_.id.remote), ": ref ",
                                         Quote(ref_), " no longer points to ", sha_,
                                         "; run the build again"));
      }
    }
    // Keeps the objects reachable for later builds and for keepgitdir fetches.
    return Git(ctx, {"--git-dir", repo, "update-ref", StrCat("refs/kiln/pin/", sha_), sha_})
        .status();
  }

  absl::Status UpdateSubmodules(const OpContext& ctx, const std::vector<std::string>& git_dir_args,
                                const std::string& work, const std::vector<std::string>& env) {
    struct stat st;
    if (::lstat((work + "/.gitmodules").c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return absl::OkStatus();
    }
    std::vector<std::string> args = git_dir_args;
    args.insert(args.end(), {"submodule", "update", "--init", "--recursive", "--depth=1"});
    auto r = Git(ctx, args, work, true, env);
    if (!r.ok()) return Annotate(r.status(), "update submodules");
    return absl::OkStatus();
  }

  absl::Status CheckoutTree(const OpContext& ctx, const std::string& repo,
                            const std::string& commit, const std::string& dir) {
    std::string work = dir;
    TempDir work_owner;
    if (!a_.id.subdir.empty()) {
      KILN_ASSIGN_OR_RETURN(work_owner, TempDir::Create(".kiln-checkout-", dir));
      work = work_owner.path();
    }
    KILN_ASSIGN_OR_RETURN(TempDir index_dir, TempDir::Create("git-index-", worker_->TempRoot()));
    // A private index, so the shared cache repository's own index is never touched.
    std::vector<std::string> env = {StrCat("GIT_INDEX_FILE=", index_dir.path(), "/index")};
    std::vector<std::string> git_dir = {"--git-dir", repo, "--work-tree", work};
    std::vector<std::string> args = git_dir;
    args.insert(args.end(), {"checkout", commit, "--", "."});
    KILN_RETURN_IF_ERROR(Git(ctx, args, work, false, env).status());
    KILN_RETURN_IF_ERROR(UpdateSubmodules(ctx, git_dir, work, env));
    if (a_.id.subdir.empty()) return absl::OkStatus();
    return MoveSubdir(work, dir);
  }

  // Moves the entries of <work>/<subdir> (resolved inside <work>) up into `dir`.
  absl::Status MoveSubdir(const std::string& work, const std::string& dir) {
    UniqueFd wfd(::open(work.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!wfd) return ErrnoStatus(StrCat("open ", Quote(work)));
    struct open_how how;
    std::memset(&how, 0, sizeof(how));
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    long sfd = ::syscall(SYS_openat2, wfd.get(), a_.id.subdir.c_str(), &how, sizeof(how));
    if (sfd < 0) {
      return ErrnoStatus(StrCat("open subdirectory ", Quote(a_.id.subdir), " of ",
                                Redacted(a_.id.remote), "#", a_.id.ref));
    }
    UniqueFd sub(static_cast<int>(sfd));
    UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dfd) return ErrnoStatus(StrCat("open ", Quote(dir)));
    UniqueFd dup(::fcntl(sub.get(), F_DUPFD_CLOEXEC, 0));
    if (!dup) return ErrnoStatus("dup");
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(dup.get()), ::closedir);
    if (!d) return ErrnoStatus("opendir subdirectory");
    dup.Release();
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d.get())) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
        names.emplace_back(e->d_name);
      }
    }
    for (const auto& n : names) {
      if (::renameat(sub.get(), n.c_str(), dfd.get(), n.c_str()) != 0) {
        return ErrnoStatus(StrCat("move ", Quote(n), " out of subdirectory ", Quote(a_.id.subdir)));
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckoutWithGitDir(const OpContext& ctx, const std::string& repo,
                                  const std::string& commit, const std::string& dir) {
    KILN_RETURN_IF_ERROR(
        Git(ctx, {"-c", "init.defaultBranch=master", "init", "--quiet", dir}).status());
    std::string refspec = StrCat("refs/kiln/pin/", sha_);
    if (full_ref_.starts_with("refs/heads/") || full_ref_.starts_with("refs/tags/")) {
      refspec += ":" + full_ref_;
    }
    // The file protocol (not a local clone) so nothing but the fetched objects is copied.
    auto fetched = RunInCheckout(
        ctx, dir, {"fetch", "--quiet", "--depth=1", "--no-tags", StrCat("file://", repo), refspec},
        /*allow_file=*/true);
    KILN_RETURN_IF_ERROR(fetched);
    KILN_RETURN_IF_ERROR(RunInCheckout(ctx, dir, {"checkout", "--quiet", commit}, false));
    KILN_RETURN_IF_ERROR(RunInCheckout(
        ctx, dir, {"remote", "add", "origin", RedactCredentials(a_.id.remote)}, false));
    KILN_RETURN_IF_ERROR(
        RunInCheckout(ctx, dir, {"reflog", "expire", "--all", "--expire=now"}, false));
    if (::unlink((dir + "/.git/FETCH_HEAD").c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus("remove FETCH_HEAD");
    }
    return UpdateSubmodules(ctx, {"-C", dir}, dir, {});
  }

  absl::Status RunInCheckout(const OpContext& ctx, const std::string& dir,
                             std::vector<std::string> args, bool allow_file) {
    std::vector<std::string> full = {"-C", dir};
    if (allow_file) full.insert(full.end(), {"-c", "protocol.file.allow=always"});
    full.insert(full.end(), args.begin(), args.end());
    return Git(ctx, full).status();
  }

  Worker* worker_;
  GitAttrs a_;
  GitSourceOptions options_;
  bool prepared_ = false;
  std::vector<std::string> env_;
  std::vector<std::string> auth_env_;
  std::vector<std::string> secrets_;  // strings scrubbed from every message
  TempDir known_hosts_;
  // Set by GetCacheMap.
  std::string sha_;
  std::string ref_;       // the ref asked for (after the default-branch lookup); "" for a sha
  std::string full_ref_;  // as ls-remote named it ("refs/heads/main")
};

absl::Status CheckRemote(const SourceAttrs& attrs, const std::string& remote,
                         const GitSourceOptions& options) {
  if (remote.starts_with("-")) return attrs.Invalid("git remote", "must not start with '-'");
  if (remote.starts_with("file://")) {
    if (options.allow_file_protocol) return absl::OkStatus();
    return attrs.Invalid(llb::kAttrFullRemoteURL, "file:// remotes are not allowed");
  }
  if (!IsGitTransport(remote)) {
    return attrs.Invalid(llb::kAttrFullRemoteURL, "want an http, https, git or ssh remote");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GitIdentifier> ParseGitIdentifier(std::string_view rest) {
  GitIdentifier id;
  std::string remote(rest);
  if (!IsGitTransport(remote)) remote = "https://" + remote;
  std::string fragment;
  if (size_t hash = remote.find('#'); hash != std::string::npos) {
    fragment = remote.substr(hash + 1);
    remote.resize(hash);
  }
  id.remote = remote;
  size_t colon = fragment.find(':');
  id.ref = fragment.substr(0, colon);
  if (colon != std::string::npos) id.subdir = fragment.substr(colon + 1);
  if (!id.subdir.empty()) {
    std::string sd = CleanPath(id.subdir);
    while (!sd.empty() && sd[0] == '/') sd = CleanPath(sd.substr(1));
    if (sd == "." || sd.empty()) sd.clear();
    if (sd == ".." || sd.starts_with("../")) {
      return absl::InvalidArgumentError(
          StrCat("git source subdirectory ", Quote(id.subdir), " leaves the repository"));
    }
    id.subdir = sd;
  }
  if (id.ref.starts_with("-")) {
    return absl::InvalidArgumentError(
        StrCat("git ref ", Quote(id.ref), " must not start with '-'"));
  }
  return id;
}

absl::StatusOr<std::unique_ptr<Op>> NewGitSourceOp(const LlbOp& op, const OpEnv& env) {
  return NewGitSourceOp(op, env, GitSourceOptions());
}

absl::StatusOr<std::unique_ptr<Op>> NewGitSourceOp(const LlbOp& op, const OpEnv& env,
                                                   const GitSourceOptions& options) {
  const pb::SourceOp& src = op.op.source();
  KILN_ASSIGN_OR_RETURN(auto parts, SplitSourceIdentifier(src.identifier()));
  SourceAttrs attrs(src);
  GitAttrs a;
  auto id = ParseGitIdentifier(parts.second);
  if (!id.ok()) return Annotate(id.status(), StrCat("source ", Quote(src.identifier())));
  a.id = std::move(*id);
  if (const std::string* url = attrs.Find(llb::kAttrFullRemoteURL); url && !url->empty()) {
    if (url->starts_with("file://") && !options.allow_file_protocol) {
      return attrs.Invalid(llb::kAttrFullRemoteURL, "file:// remotes are not allowed");
    }
    a.id.remote = *url;
    if (!IsGitTransport(*url) && !(options.allow_file_protocol && url->starts_with("file://"))) {
      a.id.remote = "https://" + *url;
    }
  }
  KILN_RETURN_IF_ERROR(CheckRemote(attrs, a.id.remote, options));
  KILN_ASSIGN_OR_RETURN(a.keep_git_dir, attrs.Bool(llb::kAttrKeepGitDir, false));
  if (const std::string* v = attrs.Find(llb::kAttrAuthTokenSecret)) a.token_secret = *v;
  if (const std::string* v = attrs.Find(llb::kAttrAuthHeaderSecret)) a.header_secret = *v;
  a.known_ssh_hosts = attrs.Get(llb::kAttrKnownSSHHosts);
  a.ssh_sock_id = attrs.Get(llb::kAttrMountSSHSock);
  return std::unique_ptr<Op>(new GitSourceOp(env, std::move(a), options));
}

}  // namespace kiln::engine
