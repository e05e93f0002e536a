// kilnctl killed with SIGKILL in the middle of a build (during a RUN step, during the export,
// at random points chosen by a seeded RNG whose seed is printed), and interrupted with SIGTERM.
// Proves that whatever the point:
//  - no process of the step survives (the step's processes carry a marker in their
//    environment, ENV in the Dockerfile, found through /proc);
//  - no mount is left under the state directory (this process's mount table);
//  - `kilnctl du` still works on the state directory;
//  - the next build on the same state directory succeeds and gives the same image digest as a
//    build on a clean state directory (SOURCE_DATE_EPOCH and rewrite-timestamp make the digest
//    depend on the content only).
// A kill may land before the build started or after it ended; the assertions hold either way,
// so the random points cannot make the test flaky, only more or less searching.
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>

#include "absl/strings/str_join.h"
#include "base/digest.h"
#include "base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/testing.h"

namespace kiln::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string RandomMarker() {
  std::random_device rd;
  uint64_t v = (uint64_t(rd()) << 32) | rd();
  return "kiln-it-kill-" + HexEncode(&v, sizeof(v));
}

std::string Describe(const std::vector<pid_t>& pids) {
  std::string out;
  for (pid_t p : pids) {
    std::string cmd = ReadFile(StrCat("/proc/", p, "/cmdline"));
    for (char& c : cmd) {
      if (c == '\0') c = ' ';
    }
    std::string status = ReadFile(StrCat("/proc/", p, "/status"));
    size_t pp = status.find("PPid:");
    out +=
        StrCat("  pid ", p, " [", cmd, "] ",
               pp == std::string::npos ? "" : status.substr(pp, status.find('\n', pp) - pp), "\n");
  }
  return out;
}

class KillTest : public BuildTest {
 protected:
  void SetUp() override {
    BuildTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    marker_ = RandomMarker();
    // Step 1 makes a layer of ~20 MB so that exporting takes a while; step 2 can be held
    // (HOLD=1) until it is killed.  Everything is deterministic.
    ctx_ = Context("ctx", {{"Dockerfile", StrCat(R"(FROM busybox
ENV KILN_IT_MARKER=)",
                                                 marker_, R"(
RUN seq 1 2500000 > /big && echo one > /one
ARG HOLD=0
RUN echo two > /two && if [ "$HOLD" = 1 ]; then touch /held; sleep 1000; fi
RUN echo three > /three
)")}});
  }

  BuildOptions Options(const std::string& name, bool hold) {
    BuildOptions b;
    b.context = ctx_;
    b.progress = "rawjson";
    b.opts = {"build-arg:SOURCE_DATE_EPOCH=1700000000", StrCat("build-arg:HOLD=", hold ? 1 : 0)};
    b.outputs = {StrCat("type=oci,dest=", Path(name + ".tar"),
                        ",name=it/kill:latest,rewrite-timestamp=true")};
    b.metadata_file = Path(name + ".json");
    return b;
  }

  std::string ImageDigest(const std::string& name) {
    Json meta = Json::parse(ReadFile(Path(name + ".json")), nullptr, false);
    return meta.is_object() ? meta.value("containerimage.digest", "") : "";
  }

  // The digest of the image built on a state directory of its own.
  void CleanDigest(std::string* digest) {
    KilnState clean(Path("clean-state"));
    absl::Status s = clean.ImportBusybox();
    ASSERT_TRUE(s.ok()) << s;
    ProcessResult r = clean.Build(Options("clean", false));
    ASSERT_TRUE(r.ok()) << r.Describe();
    *digest = ImageDigest("clean");
    ASSERT_FALSE(digest->empty());
  }

  // The held step's `sleep 1000` runs (step 1's processes carry the marker too).
  bool HeldStepRunning() {
    for (pid_t p : ProcessesMentioning(marker_)) {
      if (ContainsBytes(ReadFile(StrCat("/proc/", p, "/cmdline")), std::string_view("sleep\0"
                                                                                    "1000",
                                                                                    10))) {
        return true;
      }
    }
    return false;
  }

  std::unique_ptr<Subprocess> StartBuild(const BuildOptions& b) {
    auto p = Subprocess::Start(state_->BuildArgv(b));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  // What must hold after kilnctl died, however it died.
  void ExpectNothingLeft(const std::string& when) {
    SCOPED_TRACE(when);
    std::vector<pid_t> left;
    bool gone = PollUntil([&] {
      left = ProcessesMentioning(marker_);
      return left.empty();
    });
    EXPECT_TRUE(gone) << "processes of the build step survived kilnctl:\n" << Describe(left);
    std::vector<std::string> mounts;
    bool unmounted = PollUntil([&] {
      mounts = MountsUnder(state_->root());
      return mounts.empty();
    });
    EXPECT_TRUE(unmounted) << "mounts left under the state directory:\n"
                           << absl::StrJoin(mounts, "\n");
    ReapZombieChildren();
    ProcessResult du = state_->Kilnctl({"du"});
    EXPECT_TRUE(du.ok()) << du.Describe();
  }

  // The build after the kills: succeeds, same image as on a clean state directory.
  void ExpectNextBuildMatches(const std::string& clean_digest) {
    ProcessResult r = state_->Build(Options("after", false));
    ASSERT_TRUE(r.ok()) << r.Describe();
    EXPECT_EQ(ImageDigest("after"), clean_digest);
    auto img = ExtractOciTarball(Path("after.tar"), Path("after.layout"));
    ASSERT_TRUE(img.ok()) << img.status();
    absl::Status s = UmociUnpack(img->layout, "latest", Path("after.bundle"));
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(ReadFile(Path("after.bundle/rootfs/three")), "three\n");
    EXPECT_FALSE(Exists(Path("after.bundle/rootfs/held")));
    EXPECT_THAT(MountsUnder(state_->root()), IsEmpty());
  }

  std::string marker_, ctx_;
};

TEST_F(KillTest, SigkillDuringRun) {
  std::string clean;
  ASSERT_NO_FATAL_FAILURE(CleanDigest(&clean));
  auto build = StartBuild(Options("held", true));
  ASSERT_TRUE(build);
  // The held step is running once its sleep (carrying the marker) exists.
  bool running = PollUntil([&] { return HeldStepRunning(); });
  ASSERT_TRUE(running) << "the held step never started:\n" << build->Stderr();
  ASSERT_FALSE(build->Exited()) << build->Stderr();
  build->Signal(SIGKILL);
  ASSERT_TRUE(build->Wait(std::chrono::minutes(1)));
  EXPECT_EQ(build->Result().term_signal, SIGKILL);
  ExpectNothingLeft("after SIGKILL during RUN");
  ExpectNextBuildMatches(clean);
}

TEST_F(KillTest, SigkillDuringExport) {
  std::string clean;
  ASSERT_NO_FATAL_FAILURE(CleanDigest(&clean));
  auto build = StartBuild(Options("export", false));
  ASSERT_TRUE(build);
  bool exporting = PollUntil(
      [&] { return ContainsBytes(build->Stderr(), "\"name\":\"exporting to") || build->Exited(); });
  ASSERT_TRUE(exporting) << build->Stderr();
  build->Signal(SIGKILL);
  ASSERT_TRUE(build->Wait(std::chrono::minutes(1)));
  // Normally killed while exporting; had the export finished first, the checks still apply.
  if (build->Result().term_signal != SIGKILL) {
    std::printf("note: the build ended before the kill landed (%s)\n",
                build->Result().Describe().c_str());
  }
  ExpectNothingLeft("after SIGKILL during export");
  ExpectNextBuildMatches(clean);
}

TEST_F(KillTest, SigkillAtRandomPoints) {
  std::string clean;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(CleanDigest(&clean));
  auto clean_time =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  uint32_t seed = std::random_device{}();
  SCOPED_TRACE(StrCat("seed ", seed, " (std::mt19937), clean build ", clean_time.count(), " ms"));
  std::mt19937 rng(seed);
  // Up to the whole build's length, so points fall in every phase (start, steps, export).
  std::uniform_int_distribution<int64_t> delay_ms(0, std::max<int64_t>(50, clean_time.count()));
  for (int i = 0; i < 4; ++i) {
    int64_t delay = delay_ms(rng);
    SCOPED_TRACE(StrCat("kill ", i, " after ", delay, " ms"));
    BuildOptions b = Options(StrCat("random", i), false);
    b.no_cache = i % 2 == 0;  // alternately all executed, or continuing from what is cached
    auto build = StartBuild(b);
    ASSERT_TRUE(build);
    build->Wait(std::chrono::milliseconds(delay));
    build->Signal(SIGKILL);
    ASSERT_TRUE(build->Wait(std::chrono::minutes(1)));
    ProcessResult r = build->Result();
    EXPECT_TRUE(r.term_signal == SIGKILL || r.ok()) << r.Describe();
    ExpectNothingLeft(StrCat("after random kill ", i));
  }
  ExpectNextBuildMatches(clean);
}

TEST_F(KillTest, SigtermCancelsTheBuild) {
  auto build = StartBuild(Options("term", true));
  ASSERT_TRUE(build);
  bool running = PollUntil([&] { return HeldStepRunning(); });
  ASSERT_TRUE(running) << build->Stderr();
  build->Signal(SIGTERM);
  ASSERT_TRUE(build->Wait(std::chrono::minutes(1))) << "SIGTERM did not stop the build";
  ProcessResult r = build->Result();
  EXPECT_EQ(r.term_signal, 0) << "kilnctl handles SIGTERM itself";
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("interrupted")) << r.err;
  ExpectNothingLeft("after SIGTERM");
  ProcessResult again = state_->Build(Options("after-term", false));
  EXPECT_TRUE(again.ok()) << again.Describe();
}

}  // namespace
}  // namespace kiln::integration
