// Tests of kilnctl's frontend client pieces and of `kilnctl debug dump-llb` end to end (the
// command runs in-process with stdout redirected to a file).
#include <map>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "base/strings.h"
#include "gtest/gtest.h"
#include "llb/dump.h"
#include "llb/validate.h"
#include "tools/kilnctl/client_session.h"
#include "tools/kilnctl/commands.h"
#include "tools/kilnctl/image_resolver.h"
#include "tools/kilnctl/local_frontend_client.h"

namespace kiln::tools::kilnctl {
namespace {

constexpr char kConfig[] =
    R"({"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"User":"app"},)"
    R"("rootfs":{"type":"layers","diff_ids":["sha256:)"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    R"("]}})";
const std::string kDigest = StrCat("sha256:", std::string(64, 'c'));

TEST(CsvAttrs, QuotedListedAndBareNames) {
  using Attrs = std::map<std::string, std::string>;
  auto quoted = ParseCsvAttrs("type=image,\"name=r/a:1,r/a:2\",push=true", "--output");
  ASSERT_TRUE(quoted.ok()) << quoted.status();
  EXPECT_EQ(*quoted, (Attrs{{"type", "image"}, {"name", "r/a:1,r/a:2"}, {"push", "true"}}));
  auto bare = ParseCsvAttrs("type=image,name=r/a:1,r/a:2,push=true", "--output");
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(*bare, *quoted);
  auto listed = ParseCsvAttrs("type=image,name=r/a:1,name=r/a:2,push=true", "--output");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(*listed, *quoted);
  // A bare field anywhere else is still an error that names it.
  auto bad = ParseCsvAttrs("type=oci,dest=x.tar,oops", "--output");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("oops"), std::string::npos);
}

TEST(StaticImageResolver, MatchesNormalizedReferencesAndPinsDigests) {
  StaticImageResolver r;
  ASSERT_TRUE(r.Add("busybox", kConfig).ok());
  ASSERT_TRUE(r.Add(StrCat("alpine:3.18@", kDigest), kConfig).ok());
  absl::StatusOr<llb::ResolvedImage> bb =
      r.Resolve("docker.io/library/busybox:latest", std::nullopt, llb::ResolveMode::kDefault);
  ASSERT_TRUE(bb.ok()) << bb.status();
  EXPECT_FALSE(bb->digest.valid());
  EXPECT_EQ(bb->config_json, kConfig);
  absl::StatusOr<llb::ResolvedImage> al =
      r.Resolve("docker.io/library/alpine:3.18", std::nullopt, llb::ResolveMode::kDefault);
  ASSERT_TRUE(al.ok());
  EXPECT_EQ(al->digest.str(), kDigest);
  EXPECT_EQ(r.Resolve("docker.io/library/debian:latest", std::nullopt, llb::ResolveMode::kDefault)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(r.Add("busybox", "not json").ok());
  EXPECT_EQ(r.AddFromSpec("busybox").message(),
            "--image-config `busybox`: expected REF=FILE, e.g. busybox=busybox.json");
}

TEST(SyntheticImageResolver, NotesEachImageOnceAndFallsBack) {
  std::vector<std::string> notes;
  SyntheticImageResolver synthetic([&](const std::string& n) { notes.push_back(n); });
  StaticImageResolver configs;
  ASSERT_TRUE(configs.Add("busybox", kConfig).ok());
  FallbackImageResolver chain({&configs, &synthetic});
  oci::Platform arm;
  arm.os = "linux";
  arm.architecture = "arm64";
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<llb::ResolvedImage> r =
        chain.Resolve("docker.io/library/alpine:latest", arm, llb::ResolveMode::kDefault);
    ASSERT_TRUE(r.ok());
    absl::StatusOr<oci::Image> img = oci::DecodeImage(r->config_json);
    ASSERT_TRUE(img.ok()) << r->config_json;
    EXPECT_EQ(img->platform.architecture, "arm64");
    EXPECT_EQ(img->rootfs.diff_ids.size(), 1u);
  }
  ASSERT_TRUE(
      chain.Resolve("docker.io/library/busybox:latest", std::nullopt, llb::ResolveMode::kDefault)
          .ok());
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("docker.io/library/alpine:latest"), std::string::npos);
}

TEST(LocalFrontendClient, ReadsInsideTheDirectoryOnly) {
  absl::StatusOr<TempDir> dir = TempDir::Create("kilnctl-test-");
  ASSERT_TRUE(dir.ok());
  const std::string root = dir->path() + "/ctx";
  ASSERT_TRUE(MakeDirs(root + "/sub").ok());
  ASSERT_TRUE(WriteFileAtomic(root + "/sub/Dockerfile", "FROM x\n").ok());
  ASSERT_TRUE(WriteFileAtomic(dir->path() + "/secret", "outside").ok());
  ASSERT_EQ(::symlink("../secret", (root + "/escape").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/passwd", (root + "/abs").c_str()), 0);
  SyntheticImageResolver resolver(nullptr);
  LocalFrontendClient client({{"context", root}}, resolver);
  EXPECT_EQ(*client.ReadFile("context", "sub/Dockerfile"), "FROM x\n");
  // ".." and symlinks resolve inside the root, where these files do not exist.
  EXPECT_EQ(client.ReadFile("context", "../secret").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client.ReadFile("context", "escape").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client.ReadFile("context", "abs").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client.ReadFile("context", "sub").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client.ReadFile("other", "x").status().code(), absl::StatusCode::kNotFound);
}

// Runs kilnctl with `args`, returning (exit code, stdout).
std::pair<int, std::string> RunKilnctl(std::vector<std::string> args) {
  absl::StatusOr<TempDir> out_dir = TempDir::Create("kilnctl-out-");
  EXPECT_TRUE(out_dir.ok());
  const std::string out_path = out_dir->path() + "/stdout";
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int saved = ::dup(STDOUT_FILENO);
  ::dup2(out, STDOUT_FILENO);
  ::close(out);
  Context ctx;
  CLI::App app{"kilnctl", "kilnctl"};
  AddDebugCommands(app, ctx);
  std::vector<std::string> argv = {"kilnctl"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<const char*> cargv;
  for (const std::string& a : argv) cargv.push_back(a.c_str());
  int code = 0;
  try {
    app.parse(static_cast<int>(cargv.size()), cargv.data());
    code = ctx.exit_code;
  } catch (const CLI::ParseError& e) {
    code = e.get_exit_code();
  }
  ::fflush(stdout);
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  absl::StatusOr<std::string> data = ReadFileToString(out_path);
  return {code, data.ok() ? *data : ""};
}

TEST(DumpLlb, ConvertsADockerfileToPbAndJson) {
  absl::StatusOr<TempDir> dir = TempDir::Create("kilnctl-ctx-");
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(WriteFileAtomic(dir->path() + "/Dockerfile",
                              "FROM busybox AS b\nARG V\nRUN echo $V\nFROM alpine\nCOPY a /a\n")
                  .ok());
  ASSERT_TRUE(WriteFileAtomic(dir->path() + "/busybox.json", kConfig).ok());
  ASSERT_TRUE(WriteFileAtomic(dir->path() + "/.dockerignore", "*.tmp\n").ok());
  auto [code, pb] =
      RunKilnctl({"debug", "dump-llb", "--format", "pb", "--target", "b", "--build-arg", "V=42",
                  "--image-config", StrCat("busybox@", kDigest, "=", dir->path(), "/busybox.json"),
                  "--session-id", "sess", dir->path()});
  ASSERT_EQ(code, 0);
  absl::StatusOr<llb::ParsedDefinition> def = llb::LoadDefinition(pb);
  ASSERT_TRUE(def.ok()) << def.status();
  absl::StatusOr<std::string> dump = llb::DumpJson(pb);
  ASSERT_TRUE(dump.ok());
  EXPECT_NE(dump->find(StrCat("docker-image://docker.io/library/busybox@", kDigest)),
            std::string::npos)
      << *dump;
  EXPECT_NE(dump->find("echo $V"), std::string::npos);
  EXPECT_NE(dump->find("\"V=42\""), std::string::npos);

  // --from-pb dumps a definition given as a file, in buildctl's JSON form.
  ASSERT_TRUE(WriteFileAtomic(dir->path() + "/def.pb", pb).ok());
  auto [code2, json] = RunKilnctl({"debug", "dump-llb", "--from-pb", dir->path() + "/def.pb"});
  EXPECT_EQ(code2, 0);
  EXPECT_EQ(json, *dump);

  // -f names the Dockerfile; the context still gives .dockerignore.
  ASSERT_TRUE(MakeDirs(dir->path() + "/df").ok());
  ASSERT_TRUE(WriteFileAtomic(dir->path() + "/df/app.Dockerfile", "FROM scratch\nCOPY . /\n").ok());
  auto [code3, json3] =
      RunKilnctl({"debug", "dump-llb", "-f", dir->path() + "/df/app.Dockerfile", dir->path()});
  EXPECT_EQ(code3, 0);
  EXPECT_NE(json3.find(R"("local.excludepatterns":"[\"*.tmp\"]")"), std::string::npos) << json3;
}

TEST(DumpLlb, ReportsErrors) {
  absl::StatusOr<TempDir> dir = TempDir::Create("kilnctl-ctx-");
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(WriteFileAtomic(dir->path() + "/Dockerfile", "FROM busybox\nRUNN x\n").ok());
  EXPECT_EQ(RunKilnctl({"debug", "dump-llb", dir->path()}).first, 1);
  EXPECT_EQ(RunKilnctl({"debug", "dump-llb", "--format", "yaml", dir->path()}).first, 105);
  EXPECT_EQ(RunKilnctl({"debug", "dump-llb", "--opt", "novalue", dir->path()}).first, 1);
}

}  // namespace
}  // namespace kiln::tools::kilnctl
