// The build cache, end to end through kilnctl.  Every kilnctl run is a new process opening the
// same state directory, so every cache hit below is a hit across processes (nothing is kept in
// memory between builds).
//
// Execution is proven by side effects, not by progress flags alone: each RUN appends a line to a
// file in a shared cache mount (id it-runs), which lives outside the layers and survives builds;
// a separate "dump" build (cache-busted by a build arg) reads that file back.  So:
//  - a rebuild with no change has every step cached, executes nothing (no new line) and gives
//    the same image digest;
//  - after changing one context file only the steps depending on it rerun (its COPY and the
//    steps after it); an independent stage and the steps before it stay cached;
//  - an in-place edit that keeps the file's size and mtime is still detected;
//  - a cache mount persists across builds (a later build reads what an earlier one wrote);
//  - --no-cache executes every step (and, as in BuildKit, starts its cache mounts empty).
#include <algorithm>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>

#include "absl/strings/str_split.h"
#include "base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/testing.h"

namespace kiln::integration {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kDockerfile[] = R"(FROM busybox AS indep
RUN --mount=type=cache,id=it-runs,target=/cache echo indep >> /cache/runs && echo indep > /indep

FROM busybox
COPY stable.txt /stable.txt
RUN --mount=type=cache,id=it-runs,target=/cache echo after-stable >> /cache/runs \
 && cat /stable.txt > /s
COPY changing.txt /changing.txt
RUN --mount=type=cache,id=it-runs,target=/cache echo after-changing >> /cache/runs \
 && cat /changing.txt > /c
COPY --from=indep /indep /indep
RUN --mount=type=cache,id=it-runs,target=/cache echo last >> /cache/runs
)";

// Reads the cache mount back: ARG BUST is in the step's environment, so a new value reruns it.
constexpr char kDumpDockerfile[] = R"(FROM busybox
ARG BUST
RUN --mount=type=cache,id=it-runs,target=/cache mkdir /out && (cat /cache/runs || true) > /out/runs
)";

class CacheTest : public BuildTest {
 protected:
  void SetUp() override {
    BuildTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ctx_ = Context(
        "ctx",
        {{"Dockerfile", kDockerfile}, {"stable.txt", "stable\n"}, {"changing.txt", "version-1\n"}});
    dump_ctx_ = Context("dump", {{"Dockerfile", kDumpDockerfile}});
  }

  struct Outcome {
    ProcessResult build;
    std::vector<VertexInfo> vertexes;
    std::vector<std::string> executed;  // Dockerfile steps not cached
    std::vector<std::string> cached;
    std::string digest;
    std::string rootfs;
  };

  void Build(const std::string& name, bool no_cache, Outcome* o) {
    BuildOptions b;
    b.context = ctx_;
    b.progress = "rawjson";
    b.no_cache = no_cache;
    b.metadata_file = Path(name + ".json");
    Unpacked u;
    ASSERT_NO_FATAL_FAILURE(BuildAndUnpack(name, b, &u));
    o->build = u.build;
    o->vertexes = Vertexes(ParseJsonLines(u.build.err));
    o->executed = StepNames(o->vertexes, false);
    o->cached = StepNames(o->vertexes, true);
    o->rootfs = u.rootfs;
    Json meta = Json::parse(ReadFile(b.metadata_file), nullptr, false);
    ASSERT_TRUE(meta.is_object()) << ReadFile(b.metadata_file);
    o->digest = meta.value("containerimage.digest", "");
    ASSERT_FALSE(o->digest.empty()) << meta.dump(1);
  }

  // The lines the RUN steps appended to the cache mount so far, sorted (independent steps may
  // run in parallel).
  std::vector<std::string> Runs() {
    BuildOptions b;
    b.context = dump_ctx_;
    b.opts = {StrCat("build-arg:BUST=", ++dumps_)};
    std::string out = Path(StrCat("dump-", dumps_));
    b.outputs = {StrCat("type=local,dest=", out)};
    ProcessResult r = state_->Build(b);
    EXPECT_TRUE(r.ok()) << r.Describe();
    std::vector<std::string> lines;
    for (auto piece : absl::StrSplit(ReadFile(out + "/out/runs"), '\n', absl::SkipEmpty())) {
      lines.emplace_back(piece);
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  }

  std::string ctx_, dump_ctx_;
  int dumps_ = 0;
};

TEST_F(CacheTest, NoChangeRebuildExecutesNothing) {
  Outcome first, second;
  ASSERT_NO_FATAL_FAILURE(Build("first", false, &first));
  EXPECT_THAT(Runs(), ElementsAre("after-changing", "after-stable", "indep", "last"));
  EXPECT_THAT(first.executed, Contains(HasSubstr("RUN --mount=type=cache")));

  ASSERT_NO_FATAL_FAILURE(Build("second", false, &second));
  EXPECT_THAT(second.executed, IsEmpty()) << second.build.err;
  EXPECT_EQ(second.cached.size(), first.executed.size() + first.cached.size());
  Json meta = Json::parse(ReadFile(Path("second.json")), nullptr, false);
  EXPECT_EQ(meta.value("kiln.build.steps.cached", -1), meta.value("kiln.build.steps.total", -2))
      << meta.dump(1);
  // Nothing ran: no step appended to the cache mount.
  EXPECT_THAT(Runs(), ElementsAre("after-changing", "after-stable", "indep", "last"));
  EXPECT_EQ(second.digest, first.digest);
  EXPECT_EQ(ReadFile(second.rootfs + "/c"), "version-1\n");
}

TEST_F(CacheTest, ChangedFileRerunsOnlyItsDependents) {
  Outcome first, second;
  ASSERT_NO_FATAL_FAILURE(Build("first", false, &first));
  WriteFile(ctx_ + "/changing.txt", "version-2, longer\n");
  ASSERT_NO_FATAL_FAILURE(Build("second", false, &second));

  EXPECT_THAT(second.executed, Contains(HasSubstr("COPY changing.txt")));
  EXPECT_THAT(second.executed, Contains(HasSubstr("after-changing")));
  EXPECT_THAT(second.executed, Contains(HasSubstr("echo last")));
  EXPECT_THAT(second.executed, Not(Contains(HasSubstr("COPY stable.txt"))));
  EXPECT_THAT(second.executed, Not(Contains(HasSubstr("after-stable"))));
  EXPECT_THAT(second.executed, Not(Contains(HasSubstr("[indep"))));
  EXPECT_THAT(second.cached, Contains(HasSubstr("[indep 2/2] RUN")));
  EXPECT_THAT(second.cached, Contains(HasSubstr("after-stable")));
  // Exactly the dependent RUN steps executed again.
  EXPECT_THAT(Runs(), ElementsAre("after-changing", "after-changing", "after-stable", "indep",
                                  "last", "last"));
  EXPECT_EQ(ReadFile(second.rootfs + "/c"), "version-2, longer\n");
  EXPECT_EQ(ReadFile(second.rootfs + "/s"), "stable\n");
  EXPECT_EQ(ReadFile(second.rootfs + "/indep"), "indep\n");
  EXPECT_NE(second.digest, first.digest);
}

TEST_F(CacheTest, InPlaceEditKeepingSizeAndMtimeIsDetected) {
  Outcome first, second;
  std::string file = ctx_ + "/changing.txt";
  struct stat before {};
  ASSERT_EQ(::stat(file.c_str(), &before), 0);
  ASSERT_NO_FATAL_FAILURE(Build("first", false, &first));

  // Same size, same mtime (to the nanosecond), same inode: only the bytes differ.
  {
    UniqueFd fd(::open(file.c_str(), O_WRONLY));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::pwrite(fd.get(), "VERSION-1\n", 10, 0), 10);
    const struct timespec times[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ(::futimens(fd.get(), times), 0);
  }
  struct stat after {};
  ASSERT_EQ(::stat(file.c_str(), &after), 0);
  ASSERT_EQ(after.st_size, before.st_size);
  ASSERT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  ASSERT_EQ(after.st_ino, before.st_ino);

  ASSERT_NO_FATAL_FAILURE(Build("second", false, &second));
  EXPECT_EQ(ReadFile(second.rootfs + "/changing.txt"), "VERSION-1\n");
  EXPECT_EQ(ReadFile(second.rootfs + "/c"), "VERSION-1\n");
  EXPECT_THAT(second.executed, Contains(HasSubstr("COPY changing.txt")));
  EXPECT_NE(second.digest, first.digest);
}

TEST_F(CacheTest, CacheMountPersistsAcrossBuilds) {
  // The first build leaves a file in the cache mount; a second, different build (other
  // Dockerfile, same cache id) copies it into its image.
  std::string writer = Context("writer", {{"Dockerfile", R"(FROM busybox
RUN --mount=type=cache,id=it-persist,target=/var/cache/app echo from-build-one > /var/cache/app/seen
)"}});
  std::string reader = Context("reader", {{"Dockerfile", R"(FROM busybox
RUN --mount=type=cache,id=it-persist,target=/mnt/c cp /mnt/c/seen /seen && ls /mnt/c > /listing
)"}});
  BuildOptions w;
  w.context = writer;
  w.outputs = {StrCat("type=local,dest=", Path("writer-out"))};
  ProcessResult r = state_->Build(w);
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_FALSE(Exists(Path("writer-out/var/cache/app/seen"))) << "a cache mount is not a layer";

  BuildOptions b;
  b.context = reader;
  Unpacked u;
  ASSERT_NO_FATAL_FAILURE(BuildAndUnpack("reader", b, &u));
  EXPECT_EQ(ReadFile(u.rootfs + "/seen"), "from-build-one\n");
  EXPECT_EQ(ReadFile(u.rootfs + "/listing"), "seen\n");
  EXPECT_FALSE(Exists(u.rootfs + "/mnt/c/seen"));
}

TEST_F(CacheTest, NoCacheExecutesEverything) {
  Outcome first, second;
  ASSERT_NO_FATAL_FAILURE(Build("first", false, &first));
  ASSERT_NO_FATAL_FAILURE(Build("second", true, &second));
  EXPECT_THAT(second.executed, Contains(HasSubstr("COPY stable.txt")));
  EXPECT_THAT(second.executed, Contains(HasSubstr("[indep 2/2] RUN")));
  EXPECT_THAT(second.cached, Not(Contains(HasSubstr("RUN"))));
  // --no-cache also starts the build's cache mounts afresh (BuildKit: "--no-cache clears the
  // cache mounts", moby/buildkit#2447), so the mount holds exactly one line per RUN: all four
  // ran again (had none run, it would be empty).
  EXPECT_THAT(Runs(), ElementsAre("after-changing", "after-stable", "indep", "last"));
  EXPECT_EQ(ReadFile(second.rootfs + "/c"), "version-1\n");
}

}  // namespace
}  // namespace kiln::integration
