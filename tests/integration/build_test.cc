// Whole builds through kilnctl, read back with real clients.  Proves that a multi-stage
// Dockerfile (named stages, COPY --from, RUN, COPY --chown/--chmod, relative and absolute
// symlinks, hardlinks, WORKDIR, USER, ENV, LABEL, EXPOSE, ENTRYPOINT/CMD) gives the files,
// contents, modes, owners and links BuildKit gives, that a stage the target does not need never
// runs, that the image config carries every instruction's effect and is consistent with its
// layers (history, rootfs.diff_ids = sha256 of each uncompressed layer, blob digests), that the
// docker exporter's tarball loads in podman, that the local exporter writes the tree, and that
// SOURCE_DATE_EPOCH (a build arg, as with buildctl) makes two builds on separate state
// directories byte-identical (with the exporters' rewrite-timestamp=true, which clamps file
// times in the layers).
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "base/digest.h"
#include "base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/testing.h"

namespace kiln::integration {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace fs = std::filesystem;

constexpr char kMultiStage[] = R"(FROM busybox AS base
ENV BASEVAR=base
RUN mkdir -p /data && echo from-base > /data/base.txt

# Never needed by the final stage: if it ran, the build would fail.
FROM busybox AS unused
RUN echo unused-stage-ran && exit 1

FROM base AS builder
WORKDIR /src
COPY --chmod=0750 tool.sh ./
RUN echo built > artifact && ln -s artifact rel-link && ln -s /src/artifact abs-link \
 && ln artifact hard-link && mkdir sub && ln -s ../artifact sub/up-link && chmod 0604 artifact \
 && echo "$BASEVAR" > from-env

FROM busybox AS final
COPY --from=builder /src /app
COPY --chown=1234:5678 --chmod=0640 conf.txt /etc/app/conf.txt
COPY --from=base /data/base.txt /base.txt
WORKDIR /app
RUN echo run > /app/run-file && ln /app/run-file /app/run-hard && id -u > /app/run-uid-root
USER 1000:1000
ENV APP_MODE=prod GREETING="hello world"
RUN id -u > /tmp/run-uid && id -g > /tmp/run-gid && echo "$APP_MODE/$GREETING" > /tmp/run-env \
 && pwd > /tmp/run-pwd
LABEL org.example.name="kiln test" version=1
EXPOSE 8080 53/udp
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
)";

std::vector<std::pair<std::string, std::string>> MultiStageContext() {
  return {{"Dockerfile", kMultiStage},
          {"tool.sh", "#!/bin/sh\necho tool\n"},
          {"conf.txt", "key=value\n"}};
}

struct stat LStat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

std::string Link(const std::string& path) {
  std::error_code ec;
  return fs::read_symlink(path, ec).string();
}

std::string Uncompressed(const std::string& blob, const std::string& media_type) {
  const char* tool = ContainsBytes(media_type, "zstd")   ? "zstd"
                     : ContainsBytes(media_type, "gzip") ? "gzip"
                                                         : nullptr;
  if (tool == nullptr) return ReadFile(blob);
  ProcessResult r = Run({tool, "-dc", blob});
  EXPECT_TRUE(r.ok()) << r.Describe();
  return r.out;
}

// The final stage's tree, wherever it was written (umoci bundle rootfs or local export).
void ExpectFinalStageTree(const std::string& root) {
  // COPY --from of a directory: contents, modes (RUN chmod, COPY --chmod), links as links.
  EXPECT_EQ(ReadFile(root + "/app/artifact"), "built\n");
  EXPECT_EQ(LStat(root + "/app/artifact").st_mode & 07777, 0604u);
  EXPECT_EQ(ReadFile(root + "/app/tool.sh"), "#!/bin/sh\necho tool\n");
  EXPECT_EQ(LStat(root + "/app/tool.sh").st_mode & 07777, 0750u);
  EXPECT_EQ(ReadFile(root + "/app/from-env"), "base\n") << "ENV of the parent stage reaches RUN";
  EXPECT_TRUE(S_ISLNK(LStat(root + "/app/rel-link").st_mode));
  EXPECT_EQ(Link(root + "/app/rel-link"), "artifact");
  EXPECT_EQ(Link(root + "/app/abs-link"), "/src/artifact") << "absolute targets are kept as is";
  EXPECT_EQ(Link(root + "/app/sub/up-link"), "../artifact");
  // A hardlink made by RUN in the copied stage stays a hardlink through COPY --from.
  struct stat a = LStat(root + "/app/artifact"), h = LStat(root + "/app/hard-link");
  EXPECT_EQ(a.st_ino, h.st_ino) << "hard-link is no longer a hardlink of artifact";
  // A hardlink made within one RUN layer of the final stage.
  struct stat rf = LStat(root + "/app/run-file"), rh = LStat(root + "/app/run-hard");
  EXPECT_EQ(rf.st_ino, rh.st_ino);
  EXPECT_EQ(rf.st_nlink, 2u);

  // COPY --chown --chmod: the file and (as BuildKit does) the parent it created.
  struct stat conf = LStat(root + "/etc/app/conf.txt");
  EXPECT_EQ(ReadFile(root + "/etc/app/conf.txt"), "key=value\n");
  EXPECT_EQ(conf.st_mode & 07777, 0640u);
  EXPECT_EQ(conf.st_uid, 1234u);
  EXPECT_EQ(conf.st_gid, 5678u);
  EXPECT_EQ(LStat(root + "/etc/app").st_uid, 1234u);
  EXPECT_EQ(ReadFile(root + "/base.txt"), "from-base\n");
  EXPECT_FALSE(Exists(root + "/data")) << "only the copied file comes from stage base";

  // RUN as root before USER, as 1000:1000 after it, in WORKDIR, with ENV.
  EXPECT_EQ(ReadFile(root + "/app/run-uid-root"), "0\n");
  EXPECT_EQ(ReadFile(root + "/tmp/run-uid"), "1000\n");
  EXPECT_EQ(ReadFile(root + "/tmp/run-gid"), "1000\n");
  EXPECT_EQ(ReadFile(root + "/tmp/run-env"), "prod/hello world\n");
  EXPECT_EQ(ReadFile(root + "/tmp/run-pwd"), "/app\n");
  EXPECT_EQ(LStat(root + "/tmp/run-uid").st_uid, 1000u);
  // The busybox base is there.
  EXPECT_TRUE(Exists(root + "/bin/busybox"));
}

class BuildOutputTest : public BuildTest {};

TEST_F(BuildOutputTest, MultiStageImageFilesConfigAndLayers) {
  BuildOptions b;
  b.context = Context("ctx", MultiStageContext());
  b.progress = "rawjson";
  Unpacked u;
  ASSERT_NO_FATAL_FAILURE(BuildAndUnpack("multi", b, &u));
  ExpectFinalStageTree(u.rootfs);

  // The unused stage never ran (it would have failed the build) and is not even shown.
  auto vertexes = Vertexes(ParseJsonLines(u.build.err));
  ASSERT_FALSE(vertexes.empty()) << u.build.err;
  for (const auto& v : vertexes) {
    EXPECT_THAT(v.name, ::testing::Not(HasSubstr("unused"))) << "stage unused was scheduled";
    EXPECT_TRUE(v.error.empty()) << v.name << ": " << v.error;
  }
  EXPECT_FALSE(ContainsBytes(u.build.err, "unused-stage-ran"));
  auto executed = StepNames(vertexes, /*cached=*/false);
  EXPECT_THAT(executed, Contains(HasSubstr("[builder 3/3] RUN echo built")));
  EXPECT_THAT(executed, Contains(HasSubstr("[final 2/")));

  // The image config: every instruction's effect.
  const Json& cfg = u.image.config;
  const Json& c = cfg["config"];
  std::vector<std::string> env = c.value("Env", std::vector<std::string>());
  EXPECT_THAT(env, Contains("APP_MODE=prod"));
  EXPECT_THAT(env, Contains("GREETING=hello world"));
  EXPECT_THAT(env, Contains(HasSubstr("PATH=")));
  EXPECT_THAT(env, ::testing::Not(Contains("BASEVAR=base"))) << "ENV of another stage leaked";
  EXPECT_EQ(c["Entrypoint"], Json::parse(R"(["/bin/sh","-c"])"));
  EXPECT_EQ(c["Cmd"], Json::parse(R"(["echo hi"])"));
  EXPECT_EQ(c.value("WorkingDir", ""), "/app");
  EXPECT_EQ(c.value("User", ""), "1000:1000");
  EXPECT_EQ(c["Labels"], Json::parse(R"({"org.example.name":"kiln test","version":"1"})"));
  EXPECT_EQ(c["ExposedPorts"], Json::parse(R"({"8080/tcp":{},"53/udp":{}})"));
  EXPECT_EQ(cfg.value("os", ""), "linux");
  EXPECT_FALSE(cfg.value("architecture", "").empty());

  // Layers, diff_ids and history agree.
  const Json& layers = u.image.manifest["layers"];
  const Json& diff_ids = cfg["rootfs"]["diff_ids"];
  ASSERT_GE(layers.size(), 5u) << "base + COPY x3 + RUN x2 at least";
  ASSERT_EQ(diff_ids.size(), layers.size());
  size_t layer_entries = 0;
  for (const Json& h : cfg["history"]) {
    if (!h.value("empty_layer", false)) ++layer_entries;
  }
  EXPECT_EQ(layer_entries, layers.size()) << cfg["history"].dump(1);
  // ENV/USER/LABEL/EXPOSE/ENTRYPOINT/CMD of the final stage are history entries without layers.
  EXPECT_GE(cfg["history"].size() - layer_entries, 6u) << cfg["history"].dump(1);
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string blob = u.image.BlobPath(layers[i]["digest"]);
    std::string data = ReadFile(blob);
    EXPECT_EQ(Digest::Sha256Of(data).str(), layers[i]["digest"].get<std::string>()) << i;
    EXPECT_EQ(data.size(), layers[i]["size"].get<size_t>()) << i;
    std::string tar = Uncompressed(blob, layers[i]["mediaType"]);
    EXPECT_EQ(Digest::Sha256Of(tar).str(), diff_ids[i].get<std::string>()) << "layer " << i;
  }
  std::string config_blob = ReadFile(u.image.BlobPath(u.image.manifest["config"]["digest"]));
  EXPECT_EQ(Digest::Sha256Of(config_blob).str(),
            u.image.manifest["config"]["digest"].get<std::string>());
}

TEST_F(BuildOutputTest, DockerTarballLoadsInPodman) {
  if (::access("/usr/bin/podman", X_OK) != 0) GTEST_SKIP() << "podman is not installed";
  std::string podman_root = Path("podman"), podman_run = Path("podman-run");
  auto podman = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"podman",   "--root",           podman_root, "--runroot",
                                     podman_run, "--storage-driver", "vfs"};
    argv.insert(argv.end(), args.begin(), args.end());
    return integration::Run(argv);
  };
  ProcessResult probe = podman({"images"});
  if (!probe.ok()) GTEST_SKIP() << "podman does not work here: " << probe.Describe();

  BuildOptions b;
  b.context = Context("ctx", MultiStageContext());
  b.outputs = {StrCat("type=docker,dest=", Path("docker.tar"), ",name=it/docker:v1")};
  ProcessResult r = state_->Build(b);
  ASSERT_TRUE(r.ok()) << r.Describe();

  // The docker tarball's own index: manifest.json with the tag.
  ProcessResult manifest = integration::Run({"tar", "-xOf", Path("docker.tar"), "manifest.json"});
  ASSERT_TRUE(manifest.ok()) << manifest.Describe();
  Json m = Json::parse(manifest.out, nullptr, false);
  ASSERT_TRUE(m.is_array() && m.size() == 1) << manifest.out;
  EXPECT_THAT(m[0]["RepoTags"].dump(), HasSubstr("it/docker:v1"));

  ProcessResult load = podman({"load", "-i", Path("docker.tar")});
  ASSERT_TRUE(load.ok()) << load.Describe();
  EXPECT_THAT(load.out + load.err, HasSubstr("it/docker:v1"));
  ProcessResult inspect = podman({"image", "inspect", "docker.io/it/docker:v1"});
  ASSERT_TRUE(inspect.ok()) << inspect.Describe();
  Json info = Json::parse(inspect.out, nullptr, false);
  ASSERT_TRUE(info.is_array() && !info.empty()) << inspect.out;
  const Json& c = info[0]["Config"];
  EXPECT_THAT(c["Env"].dump(), HasSubstr("GREETING=hello world"));
  EXPECT_EQ(c["Cmd"], Json::parse(R"(["echo hi"])"));
  EXPECT_EQ(c.value("WorkingDir", ""), "/app");
  EXPECT_EQ(c.value("User", ""), "1000:1000");
  EXPECT_EQ(c["Labels"].value("version", ""), "1");
  // podman verified every layer against its diff_id while storing it; the count must match.
  EXPECT_EQ(info[0]["RootFS"]["Layers"].size(), m[0]["Layers"].size());
}

TEST_F(BuildOutputTest, LocalOutputWritesTheTree) {
  BuildOptions b;
  b.context = Context("ctx", MultiStageContext());
  std::string dest = Path("local-out");
  b.outputs = {StrCat("type=local,dest=", dest)};
  ProcessResult r = state_->Build(b);
  ASSERT_TRUE(r.ok()) << r.Describe();
  ExpectFinalStageTree(dest);
  EXPECT_THAT(MountsUnder(dest), IsEmpty());
}

TEST_F(BuildOutputTest, SourceDateEpochGivesByteIdenticalTarballs) {
  // Two state directories, so nothing is shared between the builds: not the cache, not the
  // snapshots, not the import time of the base image.
  KilnState other(Path("state2"));
  absl::Status s = other.ImportBusybox();
  ASSERT_TRUE(s.ok()) << s;
  std::string ctx = Context("ctx", MultiStageContext());
  std::vector<std::string> tars;
  for (const KilnState* state : {state_.get(), &other}) {
    BuildOptions b;
    b.context = ctx;
    b.opts = {"build-arg:SOURCE_DATE_EPOCH=1700000000"};
    std::string tar = Path(StrCat("sde", tars.size(), ".tar"));
    // rewrite-timestamp (BuildKit v0.13's exporter option) clamps the layers' file times too;
    // without it, files written by RUN keep their build-time mtimes, as in BuildKit v0.11.
    b.outputs = {StrCat("type=oci,dest=", tar, ",name=it/sde:latest,rewrite-timestamp=true")};
    ProcessResult r = state->Build(b);
    ASSERT_TRUE(r.ok()) << r.Describe();
    tars.push_back(tar);
  }
  std::string first = ReadFile(tars[0]), second = ReadFile(tars[1]);
  ASSERT_FALSE(first.empty());
  EXPECT_TRUE(first == second) << "the two tarballs differ (sizes " << first.size() << ", "
                               << second.size() << ")";
  auto img = ExtractOciTarball(tars[0], Path("sde.layout"));
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->config.value("created", ""), "2023-11-14T22:13:20Z");
  for (const Json& h : img->config["history"]) {
    EXPECT_LE(h.value("created", ""), std::string("2023-11-14T22:13:20Z")) << h.dump();
  }

  // Without it, a later build differs (created is the build time): the epoch is what made the
  // tarballs equal, not a cache hit.
  BuildOptions b;
  b.context = ctx;
  b.no_cache = true;
  b.outputs = {StrCat("type=oci,dest=", Path("nosde.tar"), ",name=it/sde:latest")};
  ProcessResult r = other.Build(b);
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_FALSE(ReadFile(Path("nosde.tar")) == first);
}

// Hardlinks between files of the build context are kept, as BuildKit keeps them (fsutil's
// walker sends Linkname for a second link of an inode, its DiskWriter re-links): `COPY d /d` of
// a context directory holding a and b = hardlink of a gives two links of one inode there.
TEST_F(BuildOutputTest, ContextHardlinksAreKept) {
  std::string ctx = Context("ctx", {{"Dockerfile", "FROM busybox\nCOPY d /d\n"}, {"d/a", "x\n"}});
  ASSERT_EQ(::link((ctx + "/d/a").c_str(), (ctx + "/d/b").c_str()), 0);
  BuildOptions b;
  b.context = ctx;
  std::string dest = Path("out");
  b.outputs = {StrCat("type=local,dest=", dest)};
  ProcessResult r = state_->Build(b);
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(LStat(dest + "/d/a").st_ino, LStat(dest + "/d/b").st_ino);
}

}  // namespace
}  // namespace kiln::integration
