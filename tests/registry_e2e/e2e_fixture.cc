#include "tests/registry_e2e/e2e_fixture.h"

#include <atomic>
#include <chrono>
#include <regex>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "absl/strings/escaping.h"
#include "base/strings.h"

#ifndef KILN_KILNCTL
#error "KILN_KILNCTL must name the kilnctl binary"
#endif
#ifndef KILN_SOURCE_DIR
#error "KILN_SOURCE_DIR must name the source tree"
#endif

namespace kiln::registry_e2e {

std::string* E2ETest::busybox_rootfs_ = nullptr;

namespace {

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      if (std::sscanf(s.substr(i + 1, 2).c_str(), "%2x", &v) == 1) {
        out += static_cast<char>(v);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// "mount=sha256:..&from=a/b" -> the value of `key`.
std::string QueryValue(const std::string& query, const std::string& key) {
  std::istringstream in(query);
  for (std::string kv; std::getline(in, kv, '&');) {
    if (kv.rfind(key + "=", 0) == 0) return kv.substr(key.size() + 1);
  }
  return "";
}

bool InRepo(const LogLine& l, const std::string& repo) {
  return repo.empty() || l.path.rfind(StrCat("/v2/", repo, "/blobs/"), 0) == 0;
}

}  // namespace

namespace {

std::vector<LogLine> ParseAccessLog(const std::string& text) {
  static const std::regex kLine(R"re("([A-Z]+) ([^ ?"]+)(\?[^ "]*)? HTTP/[0-9.]+" ([0-9]+))re");
  std::vector<LogLine> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, kLine)) continue;
    LogLine l;
    l.method = m[1];
    l.path = m[2];
    std::string q = m[3];
    l.query = PercentDecode(q.empty() ? q : q.substr(1));
    l.status = std::stoi(m[4]);
    out.push_back(std::move(l));
  }
  return out;
}

constexpr char kSentinelPrefix[] = "/v2/kiln-e2e-sentinel-";

}  // namespace

std::vector<LogLine> RegistryLog(const LocalRegistry& reg) {
  // The registry logs a request when it has answered it.  Every request of a finished kilnctl
  // was answered before this sentinel is sent, so once the sentinel's line is in the log, so are
  // theirs (an event to wait for, not a quiet period to hope for).
  static std::atomic<int> n{0};
  const std::string sentinel = StrCat(kSentinelPrefix, ++n, "/tags/list");
  ProcessResult curl = RunProcess({"curl", "-s", "-o", "/dev/null", "--max-time", "60",
                                   StrCat("http://", reg.host(), sentinel)});
  EXPECT_EQ(curl.exit_code, 0) << curl.Describe();
  const std::string path = StrCat(reg.dir(), "/access.log");
  std::vector<LogLine> all;
  for (int i = 0; i < 6000; ++i) {  // at most a minute: the line comes right after the answer
    all = ParseAccessLog(ReadFileToString(path).value_or(""));
    bool seen = false;
    for (const LogLine& l : all) seen = seen || l.path == sentinel;
    if (seen) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<LogLine> out;
  bool seen = false;
  for (LogLine& l : all) {
    seen = seen || l.path == sentinel;
    if (l.path.rfind(kSentinelPrefix, 0) != 0) out.push_back(std::move(l));
  }
  EXPECT_TRUE(seen) << "the registry never logged " << sentinel;
  return out;
}

int CountUploads(const std::vector<LogLine>& log, const std::string& repo,
                 const std::string& digest) {
  int n = 0;
  for (const LogLine& l : log) {
    if (l.method != "PUT" || l.status != 201 || !InRepo(l, repo)) continue;
    if (l.path.find("/blobs/uploads/") == std::string::npos) continue;
    if (!digest.empty() && QueryValue(l.query, "digest") != digest) continue;
    ++n;
  }
  return n;
}

int CountMounts(const std::vector<LogLine>& log, const std::string& repo,
                const std::string& digest) {
  int n = 0;
  for (const LogLine& l : log) {
    if (l.method != "POST" || l.status != 201 || !InRepo(l, repo)) continue;
    std::string mount = QueryValue(l.query, "mount");
    if (mount.empty() || (!digest.empty() && mount != digest)) continue;
    ++n;
  }
  return n;
}

int CountRequests(const std::vector<LogLine>& log, const std::string& method,
                  const std::string& path_regex, int status) {
  std::regex re(path_regex);
  int n = 0;
  for (const LogLine& l : log) {
    if (!method.empty() && l.method != method) continue;
    if (status != 0 && l.status != status) continue;
    if (std::regex_search(l.path, re)) ++n;
  }
  return n;
}

std::string Base64(const std::string& s) { return absl::Base64Escape(s); }

void E2ETest::SetUpTestSuite() {
  if (busybox_rootfs_ != nullptr || ::geteuid() != 0) return;
  // One rootfs serves every test of the run; the static owner removes it when the program
  // exits normally.
  static TempDir* owner = nullptr;
  if (owner == nullptr) {
    auto dir = TempDir::Create("kiln-e2e-busybox-");
    if (!dir.ok()) return;
    static TempDir kept(std::move(*dir));
    owner = &kept;
  }
  std::string root = StrCat(owner->path(), "/rootfs");
  ProcessResult r =
      RunProcess({"bash", StrCat(KILN_SOURCE_DIR, "/scripts/busybox-rootfs.sh"), root});
  if (r.exit_code == 0) busybox_rootfs_ = new std::string(root);
}

void E2ETest::SetUp() {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, overlayfs)";
  for (const char* tool : {"docker-registry", "skopeo", "umoci", "htpasswd"}) {
    if (Sh(StrCat("command -v ", tool)).exit_code != 0) GTEST_SKIP() << "needs " << tool;
  }
  ASSERT_NE(busybox_rootfs_, nullptr) << "scripts/busybox-rootfs.sh failed (busybox-static?)";
  auto dir = TempDir::Create("kiln-e2e-");
  ASSERT_TRUE(dir.ok()) << dir.status();
  tmp_ = std::make_unique<TempDir>(std::move(*dir));
  docker_config_dir_ = Path("docker-config");
  ASSERT_TRUE(MakeDirs(docker_config_dir_).ok());
}

std::string E2ETest::Path(const std::string& name) const { return StrCat(tmp_->path(), "/", name); }

std::string E2ETest::NewState(bool with_busybox) {
  static int n = 0;
  std::string state = Path(StrCat("state", ++n));
  if (with_busybox) {
    ProcessResult r =
        Kilnctl(state, {"image", "import", "--rootfs", *busybox_rootfs_, "busybox:latest"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
  }
  return state;
}

std::string E2ETest::WriteContext(const std::string& name,
                                  const std::vector<std::pair<std::string, std::string>>& files) {
  std::string dir = Path(name);
  EXPECT_TRUE(MakeDirs(dir).ok());
  for (const auto& [rel, content] : files) {
    EXPECT_TRUE(WriteFileAtomic(StrCat(dir, "/", rel), content, 0644).ok()) << rel;
  }
  return dir;
}

ProcessResult E2ETest::Kilnctl(const std::string& state, const std::vector<std::string>& args,
                               const std::vector<std::string>& env) {
  std::vector<std::string> argv = {KILN_KILNCTL, "--root", state};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions o;
  o.env = {StrCat("DOCKER_CONFIG=", docker_config_dir_)};
  o.env.insert(o.env.end(), env.begin(), env.end());
  return RunProcess(argv, o);
}

ProcessResult E2ETest::Build(const std::string& state, const std::string& context,
                             const std::vector<std::string>& extra, Json* metadata,
                             const std::vector<std::string>& env, const std::string& progress) {
  static int n = 0;
  std::string meta = Path(StrCat("metadata", ++n, ".json"));
  std::vector<std::string> args = {"build",
                                   "--frontend",
                                   "dockerfile.v0",
                                   "--local",
                                   StrCat("context=", context),
                                   "--local",
                                   StrCat("dockerfile=", context),
                                   "--progress",
                                   progress,
                                   "--metadata-file",
                                   meta};
  args.insert(args.end(), extra.begin(), extra.end());
  ProcessResult r = Kilnctl(state, args, env);
  if (metadata != nullptr) {
    *metadata = Json();
    if (r.exit_code == 0) {
      auto text = ReadFileToString(meta);
      if (text.ok()) *metadata = Json::parse(*text, nullptr, false);
    }
  }
  return r;
}

void E2ETest::WriteDockerConfig(const std::string& host, const std::string& user,
                                const std::string& password) {
  Json config = {{"auths", {{host, {{"auth", Base64(StrCat(user, ":", password))}}}}}};
  ASSERT_TRUE(
      WriteFileAtomic(StrCat(docker_config_dir_, "/config.json"), config.dump(), 0600).ok());
}

Json E2ETest::SkopeoInspect(const std::string& ref, const std::string& flags) {
  ProcessResult r = Sh(
      StrCat("skopeo inspect --tls-verify=false ", skopeo_creds_, " ", flags, " docker://", ref));
  EXPECT_EQ(r.exit_code, 0) << ref << ": " << r.Describe();
  if (r.exit_code != 0) return Json();
  return Json::parse(r.out, nullptr, false);
}

Json E2ETest::StoredBlobJson(const std::string& state, const std::string& digest) {
  std::string hex = digest.substr(digest.find(':') + 1);
  auto text = ReadFileToString(StrCat(state, "/content/blobs/sha256/", hex));
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? Json::parse(*text, nullptr, false) : Json();
}

}  // namespace kiln::registry_e2e
