#include "tests/integration/testing.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/status.h"
#include "base/strings.h"

extern char** environ;

namespace kiln::integration {
namespace fs = std::filesystem;

// ---- the programs under test ----

std::string KilnctlPath() {
  const char* env = std::getenv("KILN_IT_KILNCTL");
  return env && *env ? env : KILN_IT_KILNCTL;
}

std::string SourceDir() { return KILN_IT_SOURCE_DIR; }

std::string SkipReason() {
  if (::geteuid() != 0) return "integration tests need root (namespaces, overlayfs mounts)";
  if (ReadFile("/proc/filesystems").find("\toverlay\n") == std::string::npos) {
    return "integration tests need overlayfs (not in /proc/filesystems)";
  }
  if (::access("/bin/busybox", X_OK) != 0) {
    return "integration tests need /bin/busybox (apt-get install busybox-static)";
  }
  if (::access(KilnctlPath().c_str(), X_OK) != 0) {
    return StrCat("kilnctl not found at ", KilnctlPath());
  }
  return "";
}

// ---- processes ----

std::string ProcessResult::Describe() const {
  std::string what = timed_out     ? "timed out"
                     : term_signal ? StrCat("killed by signal ", term_signal)
                                   : StrCat("exit ", exit_code);
  std::string tail = out.size() > 2000 ? "..." + out.substr(out.size() - 2000) : out;
  return StrCat(what, "\n--- stderr ---\n", err, "\n--- stdout (end) ---\n", tail);
}

namespace {

std::vector<std::string> MergedEnv(const std::vector<std::string>& extra) {
  std::map<std::string, std::string> env;
  std::vector<std::string> order;
  auto put = [&](const std::string& kv) {
    std::string key = kv.substr(0, kv.find('='));
    if (!env.count(key)) order.push_back(key);
    env[key] = kv;
  };
  for (char** e = environ; e && *e; ++e) put(*e);
  for (const auto& kv : extra) put(kv);
  std::vector<std::string> out;
  for (const auto& k : order) out.push_back(env[k]);
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(const std::vector<std::string>& argv,
                                                              const ProcessOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("Subprocess: empty argv");
  std::unique_ptr<Subprocess> p(new Subprocess());
  KILN_ASSIGN_OR_RETURN(p->io_, TempDir::Create("kiln-it-io-"));
  std::string in = "/dev/null";
  if (!options.stdin_data.empty()) {
    in = p->io_.path() + "/stdin";
    KILN_RETURN_IF_ERROR(WriteFileAtomic(in, options.stdin_data, 0600));
  }
  std::string out = p->io_.path() + "/stdout", err = p->io_.path() + "/stderr";

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, options.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> args = argv;
  std::vector<std::string> env = MergedEnv(options.env);
  auto cargs = CStrings(args);
  auto cenv = CStrings(env);
  int rc = posix_spawnp(&p->pid_, args[0].c_str(), &fa, &attr, cargs.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    errno = rc;
    return ErrnoStatus(StrCat("spawn ", Quote(argv[0])));
  }
  p->pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, p->pid_, 0)));
  return p;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    Wait(std::chrono::minutes(1));
  }
}

bool Subprocess::Wait(std::chrono::milliseconds timeout) {
  if (reaped_) return true;
  auto try_reap = [this] {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      wait_status_ = st;
      reaped_ = true;
    }
    return reaped_;
  };
  if (pidfd_) {
    pollfd pfd{pidfd_.get(), POLLIN, 0};
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      int n = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
      if (n > 0) return try_reap();
      if (n == 0) return try_reap();
      if (errno != EINTR) break;
    }
  }
  return PollUntil(try_reap, timeout);
}

void Subprocess::Signal(int sig) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

std::string Subprocess::Stdout() const { return ReadFile(io_.path() + "/stdout"); }
std::string Subprocess::Stderr() const { return ReadFile(io_.path() + "/stderr"); }

ProcessResult Subprocess::Result() const {
  ProcessResult r;
  if (reaped_) {
    if (WIFEXITED(wait_status_)) r.exit_code = WEXITSTATUS(wait_status_);
    if (WIFSIGNALED(wait_status_)) r.term_signal = WTERMSIG(wait_status_);
  }
  r.out = Stdout();
  r.err = Stderr();
  return r;
}

ProcessResult Run(const std::vector<std::string>& argv, const ProcessOptions& options) {
  auto p = Subprocess::Start(argv, options);
  if (!p.ok()) {
    ProcessResult r;
    r.err = std::string(p.status().message());
    return r;
  }
  bool timed_out = !(*p)->Wait(options.timeout);
  if (timed_out) {
    (*p)->Signal(SIGKILL);
    (*p)->Wait(std::chrono::minutes(1));
  }
  ProcessResult r = (*p)->Result();
  r.timed_out = timed_out;
  return r;
}

ProcessResult Sh(const std::string& cmd, const ProcessOptions& options) {
  return Run({"/bin/sh", "-c", cmd}, options);
}

bool PollUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

namespace {

struct ProcStat {
  pid_t pid = 0;
  pid_t ppid = 0;
  char state = '?';
  unsigned long long start_time = 0;
};

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  std::string s = ReadFile(StrCat("/proc/", pid, "/stat"));
  size_t close = s.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(s.substr(close + 2));
  ProcStat st;
  st.pid = pid;
  rest >> st.state >> st.ppid;
  // Fields 5..21 (pgrp .. itrealvalue), then starttime (22).
  std::string skip;
  for (int i = 5; i <= 21; ++i) rest >> skip;
  rest >> st.start_time;
  if (!rest) return std::nullopt;
  return st;
}

std::vector<ProcStat> AllProcesses() {
  std::vector<ProcStat> out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir("/proc"), ::closedir);
  if (!d) return out;
  while (dirent* e = ::readdir(d.get())) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    if (auto st = ReadProcStat(static_cast<pid_t>(pid))) out.push_back(*st);
  }
  return out;
}

}  // namespace

std::vector<ProcId> Descendants(pid_t root) {
  std::map<pid_t, std::vector<ProcStat>> children;
  for (const auto& p : AllProcesses()) children[p.ppid].push_back(p);
  std::vector<ProcId> out;
  std::vector<pid_t> queue = {root};
  while (!queue.empty()) {
    pid_t p = queue.back();
    queue.pop_back();
    for (const auto& c : children[p]) {
      if (c.state == 'Z') continue;
      out.push_back({c.pid, c.start_time});
      queue.push_back(c.pid);
    }
  }
  return out;
}

bool Alive(const ProcId& p) {
  auto st = ReadProcStat(p.pid);
  return st && st->start_time == p.start_time && st->state != 'Z' && st->state != 'X';
}

std::vector<pid_t> ProcessesMentioning(std::string_view marker) {
  std::vector<pid_t> out;
  for (const auto& p : AllProcesses()) {
    if (p.pid == ::getpid() || p.state == 'Z' || p.state == 'X') continue;
    std::string cmdline = ReadFile(StrCat("/proc/", p.pid, "/cmdline"));
    std::string environ_text = ReadFile(StrCat("/proc/", p.pid, "/environ"));
    if (ContainsBytes(cmdline, marker) || ContainsBytes(environ_text, marker)) {
      out.push_back(p.pid);
    }
  }
  return out;
}

void ReapZombieChildren() {
  for (const auto& p : AllProcesses()) {
    if (p.ppid == ::getpid() && p.state == 'Z') ::waitpid(p.pid, nullptr, WNOHANG);
  }
}

// ---- files ----

void WriteFile(const std::string& path, std::string_view content, int mode) {
  fs::create_directories(fs::path(path).parent_path());
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  ::chmod(path.c_str(), static_cast<mode_t>(mode));
}

void WriteTree(const std::string& dir,
               const std::vector<std::pair<std::string, std::string>>& files) {
  fs::create_directories(dir);
  for (const auto& [rel, content] : files) WriteFile(dir + "/" + rel, content);
}

std::string ReadFile(const std::string& path) {
  auto s = ReadFileToString(path);
  return s.ok() ? *s : "";
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string UnescapeMountPath(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() + 0 &&
        std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::istringstream in(ReadFile("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    std::string mp = UnescapeMountPath(mount_point);
    if (mp == dir || mp.rfind(dir + "/", 0) == 0) out.push_back(mp);
  }
  return out;
}

bool ContainsBytes(std::string_view haystack, std::string_view needle) {
  return !needle.empty() && haystack.find(needle) != std::string_view::npos;
}

std::vector<std::string> FindBytes(const std::string& root, std::string_view needle,
                                   bool decompress) {
  std::vector<std::string> hits;
  std::error_code ec;
  auto check_file = [&](const std::string& path, const std::string& rel) {
    std::string data = ReadFile(path);
    if (ContainsBytes(data, needle)) hits.push_back(rel);
    if (!decompress || data.size() < 4) return;
    const char* tool = nullptr;
    if (static_cast<unsigned char>(data[0]) == 0x1f &&
        static_cast<unsigned char>(data[1]) == 0x8b) {
      tool = "gzip";
    } else if (data.compare(0, 4, "\x28\xb5\x2f\xfd") == 0) {
      tool = "zstd";
    }
    if (tool == nullptr) return;
    ProcessResult r = Run({tool, "-dc", path});
    if (ContainsBytes(r.out, needle)) hits.push_back(StrCat(rel, " (", tool, ")"));
  };
  struct stat st;
  if (::lstat(root.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    check_file(root, root);
    return hits;
  }
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::none, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::string path = it->path().string();
    std::string rel = path.substr(std::min(path.size(), root.size() + 1));
    if (ContainsBytes(it->path().filename().string(), needle)) hits.push_back(rel + " (name)");
    std::error_code e2;
    if (it->is_symlink(e2)) {
      if (ContainsBytes(fs::read_symlink(it->path(), e2).string(), needle)) {
        hits.push_back(rel + " (symlink target)");
      }
      continue;
    }
    if (it->is_regular_file(e2)) check_file(path, rel);
  }
  return hits;
}

// ---- OCI images ----

std::string OciImage::BlobPath(const std::string& digest) const {
  std::string d = digest;
  size_t colon = d.find(':');
  return StrCat(layout, "/blobs/", d.substr(0, colon), "/", d.substr(colon + 1));
}

namespace {

absl::StatusOr<Json> ReadJson(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) return absl::DataLossError(StrCat("parse JSON ", Quote(path)));
  return j;
}

}  // namespace

absl::StatusOr<OciImage> ReadOciLayout(const std::string& layout) {
  OciImage img;
  img.layout = layout;
  KILN_ASSIGN_OR_RETURN(img.index, ReadJson(layout + "/index.json"));
  if (!img.index.contains("manifests") || img.index["manifests"].empty()) {
    return absl::NotFoundError(StrCat("no manifest in ", Quote(layout + "/index.json")));
  }
  Json desc = img.index["manifests"][0];
  img.ref_name = desc.value("annotations", Json::object())
                     .value("org.opencontainers.image.ref.name", std::string());
  KILN_ASSIGN_OR_RETURN(img.manifest, ReadJson(img.BlobPath(desc["digest"])));
  // A nested index (multi-platform): its first manifest.
  if (img.manifest.contains("manifests")) {
    KILN_ASSIGN_OR_RETURN(img.manifest,
                          ReadJson(img.BlobPath(img.manifest["manifests"][0]["digest"])));
  }
  KILN_ASSIGN_OR_RETURN(img.config, ReadJson(img.BlobPath(img.manifest["config"]["digest"])));
  return img;
}

absl::StatusOr<OciImage> ExtractOciTarball(const std::string& tarball, const std::string& layout) {
  fs::create_directories(layout);
  ProcessResult r = Run({"tar", "-xf", tarball, "-C", layout});
  if (!r.ok()) {
    return absl::InternalError(StrCat("tar -xf ", tarball, ": ", r.Describe()));
  }
  return ReadOciLayout(layout);
}

absl::Status UmociUnpack(const std::string& layout, const std::string& tag,
                         const std::string& bundle) {
  ProcessResult r = Run({"umoci", "unpack", "--image", StrCat(layout, ":", tag), bundle});
  if (!r.ok()) return absl::InternalError(StrCat("umoci unpack: ", r.Describe()));
  return absl::OkStatus();
}

// ---- kilnctl ----

std::vector<std::string> KilnState::Argv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {KilnctlPath(), "--root", root_};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

ProcessResult KilnState::Kilnctl(const std::vector<std::string>& args,
                                 const ProcessOptions& options) const {
  return Run(Argv(args), options);
}

const std::string& BusyboxRootfs() {
  static std::once_flag once;
  static TempDir* dir = nullptr;  // lives as long as the program; removed at exit
  static std::string path;
  std::call_once(once, [] {
    auto t = TempDir::Create("kiln-it-busybox-");
    if (!t.ok()) return;
    static TempDir keep = std::move(*t);
    dir = &keep;
    path = dir->path() + "/rootfs";
    ProcessResult r = Run({"bash", SourceDir() + "/scripts/busybox-rootfs.sh", path});
    if (!r.ok()) path.clear();
  });
  return path;
}

absl::Status KilnState::ImportBusybox(const std::string& name) const {
  const std::string& rootfs = BusyboxRootfs();
  if (rootfs.empty()) return absl::InternalError("making the busybox rootfs failed");
  ProcessResult r = Kilnctl({"image", "import", "--rootfs", rootfs, name});
  if (!r.ok()) return absl::InternalError(StrCat("kilnctl image import: ", r.Describe()));
  return absl::OkStatus();
}

std::vector<std::string> KilnState::BuildArgv(const BuildOptions& b) const {
  std::vector<std::string> args = {
      "build",
      "--frontend",
      "dockerfile.v0",
      "--local",
      StrCat("context=", b.context),
      "--local",
      StrCat("dockerfile=", b.dockerfile_dir.empty() ? b.context : b.dockerfile_dir)};
  for (const auto& o : b.opts) args.insert(args.end(), {"--opt", o});
  for (const auto& o : b.outputs) args.insert(args.end(), {"--output", o});
  for (const auto& s : b.secrets) args.insert(args.end(), {"--secret", s});
  if (b.no_cache) args.push_back("--no-cache");
  args.insert(args.end(), {"--progress", b.progress});
  if (!b.metadata_file.empty()) args.insert(args.end(), {"--metadata-file", b.metadata_file});
  args.insert(args.end(), b.extra.begin(), b.extra.end());
  return Argv(args);
}

ProcessResult KilnState::Build(const BuildOptions& b) const {
  ProcessOptions po;
  po.timeout = b.timeout;
  return Run(BuildArgv(b), po);
}

std::map<std::string, std::string> KilnState::DiskUsage() const {
  std::map<std::string, std::string> out;
  ProcessResult r = Kilnctl({"du", "-v"});
  std::istringstream in(r.out);
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (header) {
      header = false;
      continue;
    }
    if (line.rfind("Reclaimable:", 0) == 0 || line.rfind("Total:", 0) == 0) continue;
    std::istringstream f(line);
    std::string id, reclaimable, size, kind;
    f >> id >> reclaimable >> size >> kind;
    if (!id.empty()) out[id] = kind;
  }
  return out;
}

// ---- progress ----

std::vector<Json> ParseJsonLines(std::string_view text) {
  std::vector<Json> out;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;
    Json j = Json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

std::vector<VertexInfo> Vertexes(const std::vector<Json>& events) {
  std::vector<VertexInfo> out;
  std::map<std::string, size_t> index;
  for (const Json& e : events) {
    if (!e.contains("vertexes")) continue;
    for (const Json& v : e["vertexes"]) {
      std::string digest = v.value("digest", "");
      auto [it, inserted] = index.try_emplace(digest, out.size());
      if (inserted) out.push_back(VertexInfo{digest});
      VertexInfo& info = out[it->second];
      info.name = v.value("name", info.name);
      info.cached = info.cached || v.value("cached", false);
      info.started = info.started || v.contains("started");
      info.completed = info.completed || v.contains("completed");
      if (v.contains("error")) info.error = v["error"].get<std::string>();
    }
  }
  return out;
}

std::vector<std::string> StepNames(const std::vector<VertexInfo>& v, bool cached) {
  std::vector<std::string> out;
  for (const auto& x : v) {
    if (x.name.empty() || x.name[0] != '[' || x.name.rfind("[internal]", 0) == 0) continue;
    if (x.cached == cached) out.push_back(x.name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- gtest glue ----

void BuildTest::SetUp() {
  std::string reason = SkipReason();
  if (!reason.empty()) GTEST_SKIP() << reason;
  auto t = TempDir::Create("kiln-it-");
  ASSERT_TRUE(t.ok()) << t.status();
  tmp_ = std::move(*t);
  state_ = std::make_unique<KilnState>(Path("state"));
  absl::Status s = state_->ImportBusybox();
  ASSERT_TRUE(s.ok()) << s;
}

std::string BuildTest::Context(const std::string& name,
                               const std::vector<std::pair<std::string, std::string>>& files) {
  std::string dir = Path(name);
  WriteTree(dir, files);
  return dir;
}

void BuildTest::BuildAndUnpack(const std::string& name, BuildOptions b, Unpacked* u) {
  std::string tar = Path(name + ".tar");
  if (b.outputs.empty()) b.outputs = {StrCat("type=oci,dest=", tar, ",name=it/", name, ":latest")};
  u->build = state_->Build(b);
  ASSERT_TRUE(u->build.ok()) << u->build.Describe();
  auto img = ExtractOciTarball(tar, Path(name + ".layout"));
  ASSERT_TRUE(img.ok()) << img.status();
  u->image = *img;
  ASSERT_EQ(u->image.ref_name, "latest");
  absl::Status s = UmociUnpack(u->image.layout, "latest", Path(name + ".bundle"));
  ASSERT_TRUE(s.ok()) << s;
  u->rootfs = Path(name + ".bundle/rootfs");
}

}  // namespace kiln::integration
