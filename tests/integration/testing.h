// Helpers for black-box tests of whole builds: kilnctl runs as a subprocess on a state directory
// of its own, the results are read back with real clients (tar, umoci, skopeo, podman), and the
// host is inspected for what a build must not leave behind (mounts, processes, secret bytes).
//
// Library kiln_integration_testing (tests/integration/CMakeLists.txt).  Other test programs
// (registry end to end, benchmarks) may link it and add tests/integration to their include view;
// the library knows the paths of kilnctl and of the source tree (compile definitions).
//
// Nothing here depends on wall-clock speed: every wait is for a condition, with a generous
// deadline that only turns a hang into a failure.
//
// Thread-safety: free functions are safe to call concurrently; a Subprocess or KilnState has one
// owner.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/fs.h"
#include "base/unique_fd.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kiln::integration {

using Json = nlohmann::json;

// ---- the programs under test ----

// $KILN_IT_KILNCTL or the kilnctl the library was built with (kiln-init sits next to it).
std::string KilnctlPath();
// The repository (scripts/busybox-rootfs.sh, tests/integration/*.py).
std::string SourceDir();

// "" when builds can run here (root, overlayfs, busybox-static, kilnctl built); otherwise why
// not, for GTEST_SKIP().
std::string SkipReason();

// ---- processes ----

struct ProcessResult {
  int exit_code = -1;   // exit status; -1 when killed by a signal or not started
  int term_signal = 0;  // the signal that ended it, if any
  bool timed_out = false;
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0; }
  // "exit 1 / signal 9 / timed out" with stderr (and the end of stdout), for assertion messages.
  std::string Describe() const;
};

struct ProcessOptions {
  std::vector<std::string> env;  // "K=V": added to, or replacing, this process's environment
  std::string cwd;               // "" keeps ours
  std::string stdin_data;        // fed from a file; empty: /dev/null
  std::chrono::milliseconds timeout = std::chrono::minutes(5);  // Run() only
};

// A child process started with posix_spawn, its stdout and stderr captured in files (so a test
// can read what it printed so far while it runs).  The destructor SIGKILLs and reaps it if it
// still runs.
class Subprocess {
 public:
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                           const ProcessOptions& options = {});
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits for the exit; false when `timeout` passed first.
  bool Wait(std::chrono::milliseconds timeout);
  bool Exited() { return Wait(std::chrono::milliseconds(0)); }
  // Sends `sig` to the child (only while it is not reaped).
  void Signal(int sig);
  // What it printed so far.
  std::string Stdout() const;
  std::string Stderr() const;
  // Exit status and output; call after Wait() returned true.
  ProcessResult Result() const;

 private:
  Subprocess() = default;
  TempDir io_;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  bool reaped_ = false;
  int wait_status_ = 0;
};

// Runs argv to completion (killed at options.timeout).  Inside a TEST_F body write
// integration::Run(...): gtest's private Test::Run() hides this name there.
ProcessResult Run(const std::vector<std::string>& argv, const ProcessOptions& options = {});
// /bin/sh -c cmd.
ProcessResult Sh(const std::string& cmd, const ProcessOptions& options = {});

// Calls `cond` until it returns true (a few milliseconds apart); false when `timeout` passed.
bool PollUntil(const std::function<bool()>& cond,
               std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A process identity that survives PID reuse: the PID and its start time (/proc/PID/stat).
struct ProcId {
  pid_t pid = 0;
  unsigned long long start_time = 0;
  bool operator<(const ProcId& o) const { return pid < o.pid; }
};
// Every live descendant of `root` (children, grandchildren, ...), from /proc.
std::vector<ProcId> Descendants(pid_t root);
// True when that process still exists and is not a zombie.
bool Alive(const ProcId& p);
// Live (non-zombie) processes whose command line or environment contains `marker`.
std::vector<pid_t> ProcessesMentioning(std::string_view marker);
// Reaps zombies among this process's own children (orphans reparented to us when we are a
// child subreaper).  Call only when no Subprocess of ours waits to be reaped.
void ReapZombieChildren();

// ---- files ----

// Writes `content` to dir/rel (parents created) with `mode`.
void WriteFile(const std::string& path, std::string_view content, int mode = 0644);
void WriteTree(const std::string& dir,
               const std::vector<std::pair<std::string, std::string>>& files);
std::string ReadFile(const std::string& path);  // "" when unreadable
bool Exists(const std::string& path);           // lstat succeeds

// Mount points at or below `dir` in this process's mount namespace (/proc/self/mountinfo).
std::vector<std::string> MountsUnder(const std::string& dir);

// Where `needle` occurs under `root` (never following symlinks): file contents, file names and
// symlink targets; with `decompress`, also inside gzip and zstd files (read with gzip -dc /
// zstd -dc) and tar archives' names.  Returns "path" or "path (gzip)" entries.
std::vector<std::string> FindBytes(const std::string& root, std::string_view needle,
                                   bool decompress = true);
// Binary-safe substring test (an empty needle is never found).
bool ContainsBytes(std::string_view haystack, std::string_view needle);

// ---- OCI images ----

struct OciImage {
  std::string layout;  // directory of the OCI layout
  Json index;
  Json manifest;
  Json config;
  std::string ref_name;  // org.opencontainers.image.ref.name of the (first) manifest, if any
  std::string BlobPath(const std::string& digest) const;
};

// Reads the single image of the OCI layout `layout` (index.json -> manifest -> config).
absl::StatusOr<OciImage> ReadOciLayout(const std::string& layout);
// Extracts the tarball (oci exporter output) into `layout` with tar(1), then ReadOciLayout.
absl::StatusOr<OciImage> ExtractOciTarball(const std::string& tarball, const std::string& layout);
// umoci unpack --image LAYOUT:TAG BUNDLE; the filesystem ends up in BUNDLE/rootfs.
absl::Status UmociUnpack(const std::string& layout, const std::string& tag,
                         const std::string& bundle);

// ---- kilnctl ----

struct BuildOptions {
  std::string context;               // --local context=
  std::string dockerfile_dir;        // --local dockerfile= ("": the context)
  std::vector<std::string> opts;     // --opt K=V
  std::vector<std::string> outputs;  // --output ...
  std::vector<std::string> secrets;  // --secret ...
  std::vector<std::string> extra;    // any other build flags
  std::string progress = "plain";
  std::string metadata_file;  // --metadata-file
  bool no_cache = false;
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
};

// A kilnctl state directory (--root).
class KilnState {
 public:
  explicit KilnState(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }

  std::vector<std::string> Argv(const std::vector<std::string>& args) const;
  ProcessResult Kilnctl(const std::vector<std::string>& args,
                        const ProcessOptions& options = {}) const;
  // image import --rootfs <a busybox rootfs made once per test program> NAME.
  absl::Status ImportBusybox(const std::string& name = "busybox:latest") const;

  std::vector<std::string> BuildArgv(const BuildOptions& b) const;
  ProcessResult Build(const BuildOptions& b) const;

  // `du -v` rows: id -> kind.
  std::map<std::string, std::string> DiskUsage() const;

 private:
  std::string root_;
};

// A busybox root filesystem (scripts/busybox-rootfs.sh), made on first use and kept for the life
// of the test program.
const std::string& BusyboxRootfs();

// ---- progress (--progress rawjson) ----

std::vector<Json> ParseJsonLines(std::string_view text);

struct VertexInfo {
  std::string digest;
  std::string name;
  bool cached = false;
  bool started = false;
  bool completed = false;
  std::string error;
};
// The last state of every vertex in a rawjson stream, by digest, in order of first appearance.
std::vector<VertexInfo> Vertexes(const std::vector<Json>& events);
// Names of the Dockerfile steps ("[stage n/m] ..."; not "[internal] ...") by cache state.
std::vector<std::string> StepNames(const std::vector<VertexInfo>& v, bool cached);

// ---- gtest glue ----

// A test with its own temp directory and kilnctl state directory (busybox:latest imported), or
// skipped with the reason when builds cannot run here.
class BuildTest : public ::testing::Test {
 protected:
  void SetUp() override;
  // tmp/rel.
  std::string Path(const std::string& rel) const { return tmp_.path() + "/" + rel; }
  // A context directory tmp/name holding `files` (Dockerfile included).
  std::string Context(const std::string& name,
                      const std::vector<std::pair<std::string, std::string>>& files);
  // Builds with the OCI exporter (unless b.outputs says otherwise: then it must write
  // tmp/<name>.tar as an OCI tarball tagged "latest") into tmp/<name>.tar, extracts it into
  // tmp/<name>.layout and unpacks it with umoci into tmp/<name>.bundle.  A fatal failure on
  // error: call it inside ASSERT_NO_FATAL_FAILURE.
  struct Unpacked {
    ProcessResult build;
    OciImage image;
    std::string rootfs;
  };
  void BuildAndUnpack(const std::string& name, BuildOptions b, Unpacked* u);

  TempDir tmp_;
  std::unique_ptr<KilnState> state_;
};

}  // namespace kiln::integration
