#include "tests/registry_harness/harness.h"

#include <cerrno>
#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/unique_fd.h"

extern char** environ;

#ifndef KILN_REGISTRY_HARNESS_DIR
#error "KILN_REGISTRY_HARNESS_DIR must name tests/registry_harness"
#endif

namespace kiln::registry_harness {

namespace {

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kRegistryBinary[] = "/usr/bin/docker-registry";

absl::StatusOr<std::string> ReadAll(const std::string& path) { return ReadFileToString(path); }

std::string ReadOrEmpty(const std::string& path) {
  absl::StatusOr<std::string> s = ReadFileToString(path);
  return s.ok() ? *s : std::string();
}

// Polls until `path` exists (the scripts write their port file atomically).
absl::StatusOr<std::string> WaitForFile(const std::string& path, ChildProcess& proc,
                                        const std::string& what, const std::string& log) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) return ReadAll(path);
    if (proc.Exited()) {
      return absl::FailedPreconditionError(
          StrCat(what, " exited during start-up: ", ReadOrEmpty(log).substr(0, 2000)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(StrCat(what, " did not start within 20 s"));
}

// Whether something on 127.0.0.1:port answers an HTTP request.
bool AnswersHttp(int port, const std::string& path) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return false;
  std::string req = StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (::write(fd.get(), req.data(), req.size()) != static_cast<ssize_t>(req.size())) return false;
  char buf[16];
  ssize_t n = ::read(fd.get(), buf, sizeof(buf));
  return n >= 8 && std::string_view(buf, 7) == "HTTP/1.";
}

absl::Status WaitForHttp(int port, ChildProcess& proc, const std::string& what,
                         const std::string& log) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (AnswersHttp(port, "/v2/")) return absl::OkStatus();
    if (proc.Exited()) {
      return absl::FailedPreconditionError(
          StrCat(what, " exited during start-up: ", ReadOrEmpty(log).substr(0, 2000)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(StrCat(what, " did not answer GET /v2/ within 20 s"));
}

// Runs a short command to completion, returning its stdout.
absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& argv,
                                       const std::string& dir) {
  std::string out = StrCat(dir, "/cmd.out"), err = StrCat(dir, "/cmd.err");
  ::unlink(out.c_str());
  ::unlink(err.c_str());
  KILN_ASSIGN_OR_RETURN(auto proc, ChildProcess::Start(argv, out, err));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!proc->Exited()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError(StrCat(argv[0], " did not finish"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return ReadAll(out);
}

absl::Status WriteFile(const std::string& path, std::string_view data) {
  return WriteFileAtomic(path, data, 0600);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const std::string& stdout_path,
    const std::string& stderr_path) {
  if (argv.empty()) return absl::InvalidArgumentError("ChildProcess: empty argv");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return ErrnoStatus(rc, StrCat("spawn ", Quote(argv[0])));
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid));
}

bool ChildProcess::Exited() {
  if (reaped_) return true;
  int st;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_ || (r < 0 && errno == ECHILD)) reaped_ = true;
  return reaped_;
}

ChildProcess::~ChildProcess() {
  if (Exited()) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 250 && !Exited(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!Exited()) {
    ::kill(pid_, SIGKILL);
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

absl::StatusOr<int> PickFreePort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus("bind 127.0.0.1:0");
  }
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoStatus("getsockname");
  }
  return ntohs(addr.sin_port);
}

std::string HarnessDir() { return KILN_REGISTRY_HARNESS_DIR; }

// ---------------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<TokenIssuer>> TokenIssuer::Start(const std::string& dir,
                                                                const Options& options) {
  std::unique_ptr<TokenIssuer> issuer(new TokenIssuer());
  issuer->cert_path_ = StrCat(dir, "/token-issuer.crt");
  issuer->log_path_ = StrCat(dir, "/token-issuer.log");
  const std::string port_file = StrCat(dir, "/token-issuer.port");
  const std::string stderr_path = StrCat(dir, "/token-issuer.stderr");
  std::vector<std::string> argv = {kPython,        StrCat(HarnessDir(), "/token_issuer.py"),
                                   "--port-file",  port_file,
                                   "--cert-out",   issuer->cert_path_,
                                   "--log",        issuer->log_path_,
                                   "--expires-in", StrCat(options.expires_in)};
  for (const auto& [user, password] : options.users) {
    argv.push_back("--user");
    argv.push_back(StrCat(user, ":", password));
  }
  for (const std::string& t : options.refresh_tokens) {
    argv.push_back("--refresh-token");
    argv.push_back(t);
  }
  if (options.anonymous_pull) argv.push_back("--anonymous-pull");
  KILN_ASSIGN_OR_RETURN(issuer->process_, ChildProcess::Start(argv, stderr_path, stderr_path));
  KILN_ASSIGN_OR_RETURN(std::string port_text,
                        WaitForFile(port_file, *issuer->process_, "token issuer", stderr_path));
  if (!absl::SimpleAtoi(port_text, &issuer->port_)) {
    return absl::InternalError("token issuer wrote a bad port file");
  }
  return issuer;
}

std::string TokenIssuer::realm() const { return StrCat("http://127.0.0.1:", port_, "/token"); }

std::vector<nlohmann::json> TokenIssuer::Requests() const {
  std::vector<nlohmann::json> out;
  std::istringstream in(ReadOrEmpty(log_path_));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

std::string LocalRegistry::StrHost(int port) { return StrCat("127.0.0.1:", port); }

absl::StatusOr<std::unique_ptr<LocalRegistry>> LocalRegistry::Start(const Options& options) {
  std::unique_ptr<LocalRegistry> reg(new LocalRegistry());
  KILN_ASSIGN_OR_RETURN(reg->dir_, TempDir::Create("kiln-registry-"));
  const std::string& dir = reg->dir_.path();
  KILN_ASSIGN_OR_RETURN(reg->port_, PickFreePort());
  std::string storage = options.storage_dir.empty() ? StrCat(dir, "/data") : options.storage_dir;
  KILN_RETURN_IF_ERROR(MakeDirs(storage));

  std::string config = StrCat(
      "version: 0.1\n"
      "log:\n  level: info\n  accesslog:\n    disabled: false\n"
      "storage:\n  filesystem:\n    rootdirectory: ",
      storage,
      "\n"
      "  delete:\n    enabled: true\n"
      "http:\n  addr: 127.0.0.1:",
      reg->port_, "\n  secret: kiln-harness-http-secret\n");
  if (options.tls) {
    KILN_RETURN_IF_ERROR(
        RunCommand(
            {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", StrCat(dir, "/tls.key"), "-out", reg->tls_cert_path(), "-days",
             "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"},
            dir)
            .status());
    StrAppend(&config, "  tls:\n    certificate: ", reg->tls_cert_path(), "\n    key: ", dir,
              "/tls.key\n");
  }
  if (options.auth == Auth::kBasic) {
    KILN_ASSIGN_OR_RETURN(std::string line,
                          RunCommand({"htpasswd", "-Bbn", options.user, options.password}, dir));
    KILN_RETURN_IF_ERROR(WriteFile(StrCat(dir, "/htpasswd"), line));
    StrAppend(&config, "auth:\n  htpasswd:\n    realm: kiln-test\n    path: ", dir, "/htpasswd\n");
  } else if (options.auth == Auth::kToken) {
    TokenIssuer::Options io;
    io.users.emplace_back(options.user, options.password);
    io.refresh_tokens = options.refresh_tokens;
    io.expires_in = options.token_expires_in;
    io.anonymous_pull = options.anonymous_pull;
    KILN_ASSIGN_OR_RETURN(reg->issuer_, TokenIssuer::Start(dir, io));
    StrAppend(&config, "auth:\n  token:\n    realm: ", reg->issuer_->realm(),
              "\n    service: kiln-test-registry\n    issuer: kiln-test-issuer\n"
              "    rootcertbundle: ",
              reg->issuer_->cert_path(), "\n");
  }
  const std::string config_path = StrCat(dir, "/config.yml");
  KILN_RETURN_IF_ERROR(WriteFile(config_path, config));
  const std::string error_log = StrCat(dir, "/registry.log");
  KILN_ASSIGN_OR_RETURN(reg->process_, ChildProcess::Start({kRegistryBinary, "serve", config_path},
                                                           StrCat(dir, "/access.log"), error_log));
  KILN_RETURN_IF_ERROR(WaitForHttp(reg->port_, *reg->process_, "docker-registry", error_log));
  return reg;
}

LocalRegistry::~LocalRegistry() {
  process_.reset();  // the registry before the issuer it points at
  issuer_.reset();
}

std::vector<LocalRegistry::Request> LocalRegistry::Requests() const {
  const std::string path = StrCat(dir(), "/access.log");
  std::string text = ReadOrEmpty(path);
  for (int quiet = 0, i = 0; quiet < 3 && i < 60; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::string again = ReadOrEmpty(path);
    quiet = again.size() == text.size() ? quiet + 1 : 0;
    text = std::move(again);
  }
  static const std::regex kLine(R"re("([A-Z]+) ([^ ?"]+)[^ "]* HTTP/[0-9.]+" ([0-9]+))re");
  std::vector<Request> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, kLine)) continue;
    Request r;
    r.method = m[1];
    r.path = m[2];
    r.status = std::stoi(m[3]);
    out.push_back(std::move(r));
  }
  return out;
}

int LocalRegistry::Count(const std::string& method, const std::string& path_regex,
                         int status) const {
  std::regex re(path_regex);
  int n = 0;
  for (const Request& r : Requests()) {
    if (!method.empty() && r.method != method) continue;
    if (status != 0 && r.status != status) continue;
    if (std::regex_search(r.path, re)) ++n;
  }
  return n;
}

std::string LocalRegistry::ErrorLog() const { return ReadOrEmpty(StrCat(dir(), "/registry.log")); }

// ---------------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(const std::string& upstream,
                                                              const std::vector<Rule>& rules) {
  std::unique_ptr<FaultProxy> proxy(new FaultProxy());
  KILN_ASSIGN_OR_RETURN(proxy->dir_, TempDir::Create("kiln-fault-proxy-"));
  const std::string& dir = proxy->dir_.path();
  nlohmann::json spec = nlohmann::json::array();
  for (const Rule& r : rules) {
    nlohmann::json j = {{"method", r.method}, {"path", r.path},          {"query", r.query},
                        {"nth", r.nth},       {"count", r.count},        {"action", r.action},
                        {"status", r.status}, {"stall", r.stall_seconds}};
    if (!r.retry_after.empty()) j["retry_after"] = r.retry_after;
    spec.push_back(std::move(j));
  }
  const std::string port_file = StrCat(dir, "/port");
  const std::string stderr_path = StrCat(dir, "/stderr");
  KILN_ASSIGN_OR_RETURN(proxy->process_,
                        ChildProcess::Start({kPython, StrCat(HarnessDir(), "/fault_proxy.py"),
                                             "--upstream", upstream, "--port-file", port_file,
                                             "--log", StrCat(dir, "/log"), "--rules", spec.dump()},
                                            stderr_path, stderr_path));
  KILN_ASSIGN_OR_RETURN(std::string port_text,
                        WaitForFile(port_file, *proxy->process_, "fault proxy", stderr_path));
  if (!absl::SimpleAtoi(port_text, &proxy->port_)) {
    return absl::InternalError("fault proxy wrote a bad port file");
  }
  return proxy;
}

std::vector<FaultProxy::Logged> FaultProxy::Requests() const {
  std::vector<Logged> out;
  std::istringstream in(ReadOrEmpty(StrCat(dir_.path(), "/log")));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    Logged l;
    l.n = j.value("n", 0);
    l.method = j.value("method", "");
    l.path = j.value("path", "");
    l.action = j.value("action", "");
    l.status = j.value("status", 0);
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace kiln::registry_harness
