// The issue "Registry" end to end through kilnctl: build and push, read back with skopeo and
// umoci, pull into a fresh state and build FROM it, cross-repository mounts, compression options,
// credentials from config.json and from flags, and faults injected between kilnctl and the
// registry.  Every test runs kilnctl as a subprocess against Debian's docker-registry.
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <unistd.h>

#include "absl/strings/escaping.h"
#include "base/digest.h"
#include "base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/registry_e2e/e2e_fixture.h"

namespace kiln::registry_e2e {
namespace {

using registry_harness::FaultProxy;
using testing::HasSubstr;
using testing::Not;
using testing::StartsWith;

constexpr char kAppDockerfile[] =
    "FROM busybox\n"
    "RUN echo hello > /hello.txt\n"
    "COPY data.txt /data.txt\n";
constexpr char kRefreshToken[] = "kiln-e2e-refresh-token-5f2c";
constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";

std::string ReadOrEmpty(const std::string& path) { return ReadFileToString(path).value_or(""); }

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Names in a directory (none when it does not exist).
std::vector<std::string> DirNames(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    out.push_back(e.path().filename());
  }
  return out;
}

// The blobs of a manifest: config first, then the layers.
std::vector<std::string> BlobsOf(const Json& manifest) {
  std::vector<std::string> out;
  if (!manifest.is_object()) return out;
  out.push_back(manifest["config"]["digest"]);
  for (const Json& l : manifest["layers"]) out.push_back(l["digest"]);
  return out;
}

// Vertex names of a --progress rawjson stream.
std::vector<std::string> VertexNames(const std::string& rawjson) {
  std::vector<std::string> out;
  std::istringstream in(rawjson);
  for (std::string line; std::getline(in, line);) {
    Json j = Json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("vertexes")) continue;
    for (const Json& v : j["vertexes"]) out.push_back(v.value("name", ""));
  }
  return out;
}

const char* AuthName(LocalRegistry::Auth a) {
  switch (a) {
    case LocalRegistry::Auth::kBasic:
      return "basic";
    case LocalRegistry::Auth::kToken:
      return "token";
    default:
      return "plain";
  }
}

// One registry per test, in each of the three setups; kilnctl gets the credentials from a
// config.json the test writes (DOCKER_CONFIG).
class RegistryE2E : public E2ETest, public testing::WithParamInterface<LocalRegistry::Auth> {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    options_.auth = GetParam();
    options_.refresh_tokens = {kRefreshToken};
    auto reg = LocalRegistry::Start(options_);
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = std::move(*reg);
    if (Authenticated()) {
      WriteDockerConfig(Host(), options_.user, options_.password);
      skopeo_creds_ = StrCat("--creds ", options_.user, ":", options_.password);
    }
  }

  bool Authenticated() const { return options_.auth != LocalRegistry::Auth::kNone; }
  std::string Host() const { return registry_->host(); }
  std::string Ref(const std::string& repo_tag) const { return StrCat(Host(), "/", repo_tag); }

  // Builds kAppDockerfile in `state` and pushes it to `names` (comma-separated); returns the
  // metadata file.
  Json PushApp(const std::string& state, const std::string& names,
               const std::string& extra_attrs = "", const std::vector<std::string>& flags = {},
               ProcessResult* result = nullptr) {
    std::string ctx = WriteContext(StrCat("app-", ++contexts_),
                                   {{"Dockerfile", kAppDockerfile}, {"data.txt", "payload\n"}});
    std::vector<std::string> args = {
        "--output", StrCat("type=image,\"name=", names, "\",push=true", extra_attrs)};
    args.insert(args.end(), flags.begin(), flags.end());
    Json meta;
    ProcessResult r = Build(state, ctx, args, &meta);
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    if (result != nullptr) *result = std::move(r);
    return meta;
  }

  // `secret` is in no output of `r` and in no file of the state directory (cache keys,
  // metadata, labels, logs).
  void ExpectNoSecret(const std::string& secret, const ProcessResult& r, const std::string& state) {
    EXPECT_THAT(r.out, Not(HasSubstr(secret)));
    EXPECT_THAT(r.err, Not(HasSubstr(secret)));
    ProcessResult grep = RunProcess({"grep", "-rlF", "--", secret, state});
    EXPECT_EQ(grep.exit_code, 1) << "found in: " << grep.out << grep.err;
  }

  std::string SkopeoSrcCreds() const {
    return Authenticated() ? StrCat("--src-creds ", options_.user, ":", options_.password) : "";
  }

  LocalRegistry::Options options_;
  std::unique_ptr<LocalRegistry> registry_;
  int contexts_ = 0;
};

// Two names in one push: every blob goes over the wire once (the second repository mounts it),
// skopeo reads the digest the metadata file reported, and the layers unpack to the files.
TEST_P(RegistryE2E, PushTwoNamesOnceAndReadBackWithSkopeoAndUmoci) {
  std::string state = NewState();
  std::string b = Ref("a/b:1"), c = Ref("a/c:1");
  Json meta = PushApp(state, StrCat(b, ",", c));
  ASSERT_TRUE(meta.is_object());

  // The exporter response.
  std::string digest = meta.value("containerimage.digest", "");
  EXPECT_THAT(digest, StartsWith("sha256:"));
  EXPECT_EQ(meta["image.name"], StrCat(b, ",", c));
  const Json& desc = meta["containerimage.descriptor"];
  ASSERT_TRUE(desc.is_object()) << meta.dump();
  EXPECT_EQ(desc["digest"], digest);
  EXPECT_EQ(desc["mediaType"], kDockerManifest);
  EXPECT_GT(desc.value("size", 0), 0);
  Json manifest = StoredBlobJson(state, digest);
  ASSERT_TRUE(manifest.is_object());
  EXPECT_EQ(meta["containerimage.config.digest"], manifest["config"]["digest"]);
  ASSERT_EQ(manifest["layers"].size(), 3u);  // busybox, RUN, COPY

  // Each blob uploaded exactly once, and mounted into the other repository.
  std::vector<LogLine> log = RegistryLog(*registry_);
  for (const std::string& blob : BlobsOf(manifest)) {
    EXPECT_EQ(CountUploads(log, "", blob), 1) << blob;
    EXPECT_EQ(CountMounts(log, "a/b", blob) + CountMounts(log, "a/c", blob), 1) << blob;
  }
  EXPECT_EQ(CountUploads(log, ""), 4);
  EXPECT_EQ(CountRequests(log, "PUT", "^/v2/a/b/manifests/1$", 201), 1);
  EXPECT_EQ(CountRequests(log, "PUT", "^/v2/a/c/manifests/1$", 201), 1);

  // skopeo reads both names back with the reported digest.
  EXPECT_EQ(SkopeoInspect(b)["Digest"], digest);
  EXPECT_EQ(SkopeoInspect(c)["Digest"], digest);

  // skopeo copies it unchanged into a directory: the manifest's bytes hash to the digest and
  // every blob is there (skopeo checked each against its digest while copying).
  std::string copied = Path("copied");
  ProcessResult to_dir = Sh(StrCat("skopeo copy --src-tls-verify=false ", SkopeoSrcCreds(),
                                   " docker://", c, " dir:", copied));
  ASSERT_EQ(to_dir.exit_code, 0) << to_dir.Describe();
  EXPECT_EQ(Digest::Sha256Of(ReadOrEmpty(copied + "/manifest.json")).str(), digest);
  for (const std::string& blob : BlobsOf(manifest)) {
    EXPECT_TRUE(Exists(StrCat(copied, "/", blob.substr(blob.find(':') + 1)))) << blob;
  }

  // skopeo copies it into an OCI layout (converting the manifest), umoci unpacks the layers.
  std::string layout = Path("layout"), bundle = Path("bundle");
  ProcessResult copy = Sh(StrCat("skopeo copy --src-tls-verify=false ", SkopeoSrcCreds(),
                                 " docker://", b, " oci:", layout, ":app"));
  ASSERT_EQ(copy.exit_code, 0) << copy.Describe();
  ProcessResult unpack = Sh(StrCat("umoci unpack --image ", layout, ":app ", bundle));
  ASSERT_EQ(unpack.exit_code, 0) << unpack.Describe();
  EXPECT_EQ(ReadOrEmpty(bundle + "/rootfs/hello.txt"), "hello\n");
  EXPECT_EQ(ReadOrEmpty(bundle + "/rootfs/data.txt"), "payload\n");
  EXPECT_EQ(Sh(StrCat("test -x ", bundle, "/rootfs/bin/busybox")).exit_code, 0);
}

// A fresh state has no busybox and no a/b: FROM resolves through the registry (mode default),
// pins the digest, RUNs on the pulled layers; pushing the result to a/d mounts the base layers.
TEST_P(RegistryE2E, FreshStateBuildsFromThePushedImageAndMountsItsLayers) {
  Json meta = PushApp(NewState(), Ref("a/b:1"));
  std::string digest = meta.value("containerimage.digest", "");
  ASSERT_THAT(digest, StartsWith("sha256:"));
  Json base = SkopeoInspect(Ref("a/b:1"), "--raw");
  ASSERT_TRUE(base.is_object());

  std::string fresh = NewState(/*with_busybox=*/false);
  std::string ctx = WriteContext(
      "derived", {{"Dockerfile",
                   StrCat("FROM ", Ref("a/b:1"), "\nRUN cat /hello.txt /data.txt > /both.txt\n")}});
  std::string out = Path("out");
  Json derived;
  ProcessResult r = Build(fresh, ctx,
                          {"--output", StrCat("type=local,dest=", out), "--output",
                           StrCat("type=image,name=", Ref("a/d:1"), ",push=true")},
                          &derived, {}, "rawjson");
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(ReadOrEmpty(out + "/both.txt"), "hello\npayload\n");
  // The LLB the frontend made names the base by digest.
  std::vector<std::string> names = VertexNames(r.err);
  EXPECT_THAT(names, testing::Contains(HasSubstr(StrCat(Ref("a/b:1"), "@", digest))))
      << r.err.substr(0, 3000);

  std::vector<LogLine> log = RegistryLog(*registry_);
  EXPECT_GE(CountRequests(log, "GET", "^/v2/a/b/manifests/1$", 200), 1);
  // The base image's layers were mounted from a/b into a/d, never uploaded there.
  for (const Json& layer : base["layers"]) {
    std::string d = layer["digest"];
    EXPECT_EQ(CountMounts(log, "a/d", d), 1) << d;
    EXPECT_EQ(CountUploads(log, "a/d", d), 0) << d;
  }
  EXPECT_EQ(CountRequests(log, "PATCH", "^/v2/a/d/blobs/uploads/"), 0);
  // Its own layer and config went up.
  EXPECT_EQ(CountUploads(log, "a/d"), 2);
  EXPECT_EQ(SkopeoInspect(Ref("a/d:1"))["Digest"], derived["containerimage.digest"]);

  // image-resolve-mode=pull asks the registry again even though the content is stored.
  int before = CountRequests(log, "", "^/v2/a/b/manifests/1$");
  ProcessResult again = Build(
      fresh, ctx,
      {"--opt", "image-resolve-mode=pull", "--output", StrCat("type=local,dest=", Path("out2"))});
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  EXPECT_GT(CountRequests(RegistryLog(*registry_), "", "^/v2/a/b/manifests/1$"), before);
  EXPECT_EQ(ReadOrEmpty(Path("out2") + "/both.txt"), "hello\npayload\n");
}

// Another kilnctl process on the same state pushes an image sharing the busybox layer to
// another repository: the layer is mounted from where the first push put it.
TEST_P(RegistryE2E, LaterPushFromTheSameStateMountsTheSharedBaseLayer) {
  std::string state = NewState();
  Json meta = PushApp(state, Ref("a/b:1"));
  Json manifest = StoredBlobJson(state, meta.value("containerimage.digest", ""));
  ASSERT_TRUE(manifest.is_object());
  std::string busybox_layer = manifest["layers"][0]["digest"];

  std::string ctx =
      WriteContext("other", {{"Dockerfile", "FROM busybox\nRUN echo other > /other.txt\n"}});
  ProcessResult r =
      Build(state, ctx, {"--output", StrCat("type=image,name=", Ref("a/e:1"), ",push=true")});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<LogLine> log = RegistryLog(*registry_);
  EXPECT_EQ(CountMounts(log, "a/e", busybox_layer), 1);
  EXPECT_EQ(CountUploads(log, "a/e", busybox_layer), 0);
  EXPECT_EQ(CountUploads(log, "", busybox_layer), 1);
}

// A second process pushing an image built FROM a pulled base mounts the base layers: the pull
// recorded where they came from.
TEST_P(RegistryE2E, LaterPushOfAnImageFromAPulledBaseMountsItsLayers) {
  PushApp(NewState(), Ref("a/b:1"));
  Json base = SkopeoInspect(Ref("a/b:1"), "--raw");
  ASSERT_TRUE(base.is_object());
  std::string fresh = NewState(/*with_busybox=*/false);
  std::string ctx = WriteContext(
      "derived", {{"Dockerfile", StrCat("FROM ", Ref("a/b:1"), "\nRUN echo d > /d.txt\n")}});
  ProcessResult first = Build(fresh, ctx, {"--output", StrCat("type=local,dest=", Path("o"))});
  ASSERT_EQ(first.exit_code, 0) << first.Describe();
  ProcessResult push =
      Build(fresh, ctx, {"--output", StrCat("type=image,name=", Ref("a/g:1"), ",push=true")});
  ASSERT_EQ(push.exit_code, 0) << push.Describe();
  std::vector<LogLine> log = RegistryLog(*registry_);
  for (const Json& layer : base["layers"]) {
    std::string d = layer["digest"];
    EXPECT_EQ(CountMounts(log, "a/g", d), 1) << d;
    EXPECT_EQ(CountUploads(log, "a/g", d), 0) << d;
  }
}

// zstd with OCI media types, recompressing the reused gzip base layer, pushed by digest only.
TEST_P(RegistryE2E, ZstdOciForceCompressionPushByDigest) {
  std::string state = NewState();
  std::string repo = Ref("a/z");
  Json meta = PushApp(state, repo + ":1",
                      ",compression=zstd,oci-mediatypes=true,force-compression=true,"
                      "push-by-digest=true");
  std::string digest = meta.value("containerimage.digest", "");
  ASSERT_THAT(digest, StartsWith("sha256:"));
  EXPECT_EQ(meta["containerimage.descriptor"]["mediaType"],
            "application/vnd.oci.image.manifest.v1+json");
  Json raw = SkopeoInspect(StrCat(repo, "@", digest), "--raw");
  ASSERT_TRUE(raw.is_object());
  EXPECT_EQ(raw["mediaType"], "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(raw["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
  ASSERT_EQ(raw["layers"].size(), 3u);
  for (const Json& l : raw["layers"]) {
    EXPECT_EQ(l["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");
  }
  // No tag was pushed.
  std::vector<LogLine> log = RegistryLog(*registry_);
  EXPECT_EQ(CountRequests(log, "PUT", "^/v2/a/z/manifests/1$"), 0);
  EXPECT_EQ(CountRequests(log, "PUT", StrCat("^/v2/a/z/manifests/", digest, "$"), 201), 1);
  ProcessResult tag =
      Sh(StrCat("skopeo inspect --tls-verify=false ", skopeo_creds_, " docker://", repo, ":1"));
  EXPECT_NE(tag.exit_code, 0);
  // skopeo reads every zstd blob when copying it out.
  ProcessResult copy = Sh(StrCat("skopeo copy --src-tls-verify=false ", SkopeoSrcCreds(),
                                 " docker://", repo, "@", digest, " oci:", Path("zlayout"), ":z"));
  EXPECT_EQ(copy.exit_code, 0) << copy.Describe();
}

// registry.insecure=true pushes through a client of the exporter's own; it must still use the
// credentials of config.json.
TEST_P(RegistryE2E, RegistryInsecurePushUsesTheDockerConfig) {
  Json meta = PushApp(NewState(), Ref("a/insecure:1"), ",registry.insecure=true");
  std::string digest = meta.value("containerimage.digest", "");
  ASSERT_THAT(digest, StartsWith("sha256:"));
  EXPECT_EQ(SkopeoInspect(Ref("a/insecure:1"))["Digest"], digest);
}

// The kilnctl image commands against each setup.
TEST_P(RegistryE2E, ImageInspectCopyPushPull) {
  std::string state = NewState();
  Json meta = PushApp(state, Ref("a/b:1"));
  std::string digest = meta.value("containerimage.digest", "");
  ASSERT_THAT(digest, StartsWith("sha256:"));

  // inspect: summary, --raw bytes, --config.
  ProcessResult in = Kilnctl(state, {"image", "inspect", Ref("a/b:1")});
  ASSERT_EQ(in.exit_code, 0) << in.Describe();
  Json summary = Json::parse(in.out, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << in.out;
  EXPECT_EQ(summary["Digest"], digest);
  EXPECT_EQ(summary["Name"], Ref("a/b"));
  EXPECT_EQ(summary["MediaType"], kDockerManifest);
  EXPECT_EQ(summary["Os"], "linux");
  EXPECT_EQ(summary["Layers"].size(), 3u);
  EXPECT_EQ(summary["Config"]["Digest"], meta["containerimage.config.digest"]);
  ProcessResult raw = Kilnctl(state, {"image", "inspect", "--raw", Ref("a/b:1")});
  ASSERT_EQ(raw.exit_code, 0) << raw.Describe();
  EXPECT_EQ(Digest::Sha256Of(raw.out).str(), digest);
  ProcessResult config = Kilnctl(state, {"image", "inspect", "--config", Ref("a/b:1")});
  ASSERT_EQ(config.exit_code, 0) << config.Describe();
  EXPECT_EQ(Digest::Sha256Of(config.out).str(), meta["containerimage.config.digest"]);

  // copy within the registry: mounts only, same digest.
  ProcessResult cp = Kilnctl(state, {"image", "copy", Ref("a/b:1"), Ref("x/copy")});
  ASSERT_EQ(cp.exit_code, 0) << cp.Describe();
  EXPECT_EQ(SkopeoInspect(Ref("x/copy:1"))["Digest"], digest);
  std::vector<LogLine> log = RegistryLog(*registry_);
  EXPECT_EQ(CountMounts(log, "x/copy"), 4);
  EXPECT_EQ(CountUploads(log, "x/copy"), 0);

  // push from the local store: busybox:latest as imported, then again elsewhere (mounted).
  ProcessResult ls = Kilnctl(state, {"image", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.Describe();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(ls.out, m,
                                std::regex("docker.io/library/busybox:latest +(sha256:[0-9a-f]+)")))
      << ls.out;
  std::string busybox_digest = m[1];
  ProcessResult push = Kilnctl(state, {"image", "push", "busybox", Ref("lib/busybox:1")});
  ASSERT_EQ(push.exit_code, 0) << push.Describe();
  EXPECT_EQ(SkopeoInspect(Ref("lib/busybox:1"))["Digest"], busybox_digest);
  ProcessResult push2 = Kilnctl(state, {"image", "push", "busybox", Ref("lib/other:2")});
  ASSERT_EQ(push2.exit_code, 0) << push2.Describe();
  log = RegistryLog(*registry_);
  EXPECT_EQ(CountUploads(log, "lib/other"), 0);
  EXPECT_EQ(CountMounts(log, "lib/other"), 2);  // layer and config

  // pull into a fresh state, then FROM it in local mode: no registry request at all.
  std::string fresh = NewState(/*with_busybox=*/false);
  ProcessResult pull = Kilnctl(fresh, {"image", "pull", Ref("a/b:1")});
  ASSERT_EQ(pull.exit_code, 0) << pull.Describe();
  EXPECT_THAT(pull.out, HasSubstr(StrCat(Ref("a/b:1"), " ", digest)));
  int before = static_cast<int>(RegistryLog(*registry_).size());
  std::string ctx = WriteContext(
      "fromlocal", {{"Dockerfile", StrCat("FROM ", Ref("a/b:1"), "\nRUN cat /hello.txt\n")}});
  ProcessResult local = Build(fresh, ctx,
                              {"--opt", "image-resolve-mode=local", "--output",
                               StrCat("type=local,dest=", Path("local-out"))});
  ASSERT_EQ(local.exit_code, 0) << local.Describe();
  EXPECT_EQ(static_cast<int>(RegistryLog(*registry_).size()), before);
  EXPECT_EQ(ReadOrEmpty(Path("local-out") + "/data.txt"), "payload\n");
}

INSTANTIATE_TEST_SUITE_P(Setups, RegistryE2E,
                         testing::Values(LocalRegistry::Auth::kNone, LocalRegistry::Auth::kBasic,
                                         LocalRegistry::Auth::kToken),
                         [](const auto& info) { return std::string(AuthName(info.param)); });

// --- credentials
// ----------------------------------------------------------------------------------

class AuthE2E : public RegistryE2E {
 protected:
  void SetUp() override {
    RegistryE2E::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // No config.json: only flags (or nothing) bring credentials.
    ASSERT_EQ(::unlink(StrCat(docker_config_dir_, "/config.json").c_str()), 0);
  }

  // A push with `flags` that must fail on authentication: clear error, no secret, nothing pushed.
  void ExpectRefusedPush(const std::vector<std::string>& flags, const std::string& secret,
                         const std::string& repo) {
    std::string state = NewState();
    std::string ctx = WriteContext(StrCat("refused-", repo.substr(repo.rfind('/') + 1)),
                                   {{"Dockerfile", kAppDockerfile}, {"data.txt", "payload\n"}});
    std::vector<std::string> args = flags;
    args.insert(args.end(),
                {"--output", StrCat("type=image,name=", Ref(repo + ":1"), ",push=true")});
    ProcessResult r = Build(state, ctx, args);
    EXPECT_NE(r.exit_code, 0) << r.Describe();
    EXPECT_THAT(r.err, testing::ContainsRegex("(UNAUTHORIZED|[Uu]nauthenticated|unauthorized)"))
        << r.err;
    if (!secret.empty()) {
      EXPECT_THAT(r.err, Not(HasSubstr(secret)));
      EXPECT_THAT(r.out, Not(HasSubstr(secret)));
    }
    std::vector<LogLine> log = RegistryLog(*registry_);
    EXPECT_EQ(CountRequests(log, "PUT", "/manifests/"), 0);
    EXPECT_EQ(CountUploads(log, ""), 0);
  }
};

TEST_P(AuthE2E, RegistryAuthFlagPushesAndInspects) {
  std::string state = NewState();
  std::string flag = StrCat(Host(), "=", options_.user, ":", options_.password);
  ProcessResult push;
  Json meta = PushApp(state, Ref("f/auth:1"), "", {"--registry-auth", flag}, &push);
  std::string digest = meta.value("containerimage.digest", "");
  ASSERT_THAT(digest, StartsWith("sha256:"));
  EXPECT_EQ(SkopeoInspect(Ref("f/auth:1"))["Digest"], digest);
  ExpectNoSecret(options_.password, push, state);
  // The global form, before the command.
  ProcessResult in = Kilnctl(state, {"--registry-auth", flag, "image", "inspect", Ref("f/auth:1")});
  ASSERT_EQ(in.exit_code, 0) << in.Describe();
  EXPECT_EQ(Json::parse(in.out, nullptr, false)["Digest"], digest);
  // A pull with it into another state.
  std::string fresh = NewState(/*with_busybox=*/false);
  ProcessResult pull = Kilnctl(fresh, {"image", "pull", "--registry-auth", flag, Ref("f/auth:1")});
  ASSERT_EQ(pull.exit_code, 0) << pull.Describe();
  ExpectNoSecret(options_.password, pull, fresh);
  // Without any credential the same inspect is refused.
  ProcessResult anon = Kilnctl(state, {"image", "inspect", Ref("f/auth:1")});
  EXPECT_NE(anon.exit_code, 0);
  EXPECT_THAT(anon.err, testing::ContainsRegex("(UNAUTHORIZED|[Uu]nauthenticated)")) << anon.err;
}

TEST_P(AuthE2E, WrongPasswordIsRefusedClearlyWithoutLeakingIt) {
  const std::string wrong = "wrong-password-e2e-7d1b";
  ExpectRefusedPush({"--registry-auth", StrCat(Host(), "=", options_.user, ":", wrong)}, wrong,
                    "f/wrong");
}

TEST_P(AuthE2E, WrongPasswordInDockerConfigIsRefusedToo) {
  const std::string wrong = "wrong-config-password-e2e-91aa";
  WriteDockerConfig(Host(), options_.user, wrong);
  ExpectRefusedPush({}, wrong, "f/wrongconfig");
}

TEST_P(AuthE2E, NoCredentialsAreRefused) { ExpectRefusedPush({}, "", "f/anonymous"); }

TEST_P(AuthE2E, MalformedFlagDoesNotEchoItsValue) {
  const std::string value = StrCat(Host(), "-secretish-no-colon-value");
  ProcessResult r =
      Kilnctl(NewState(false), {"image", "inspect", "--registry-auth", value, Ref("f/x:1")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("HOST=USER:PASSWORD"));
  EXPECT_THAT(r.err, Not(HasSubstr("secretish")));
  // A space typed for '=': the parser's complaint about the stray argument is redacted.
  ProcessResult typo = Kilnctl(NewState(false), {"build", "--registry-auth", Host(),
                                                 StrCat(options_.user, ":", options_.password)});
  EXPECT_NE(typo.exit_code, 0);
  EXPECT_THAT(typo.err, HasSubstr("not expected"));
  EXPECT_THAT(typo.err, Not(HasSubstr(options_.password)));
  EXPECT_THAT(typo.out, Not(HasSubstr(options_.password)));
}

INSTANTIATE_TEST_SUITE_P(Setups, AuthE2E,
                         testing::Values(LocalRegistry::Auth::kBasic, LocalRegistry::Auth::kToken),
                         [](const auto& info) { return std::string(AuthName(info.param)); });

// --registry-token: an OAuth2 refresh token traded at the token realm (ACR, Docker identity
// tokens).
class TokenE2E : public AuthE2E {};

TEST_P(TokenE2E, RegistryTokenFlagIsTradedAtTheRealm) {
  std::string state = NewState();
  ProcessResult push;
  Json meta = PushApp(state, Ref("t/tok:1"), "",
                      {"--registry-token", StrCat(Host(), "=", kRefreshToken)}, &push);
  std::string digest = meta.value("containerimage.digest", "");
  ASSERT_THAT(digest, StartsWith("sha256:"));
  ExpectNoSecret(kRefreshToken, push, state);
  EXPECT_EQ(SkopeoInspect(Ref("t/tok:1"))["Digest"], digest);
  bool refresh_grant = false;
  for (const Json& req : registry_->token_issuer()->Requests()) {
    refresh_grant = refresh_grant || req.value("grant", "") == "refresh_token";
  }
  EXPECT_TRUE(refresh_grant);
  // ACR's form: the refresh token as the password of the null-GUID user.
  ProcessResult acr =
      Kilnctl(state, {"image", "inspect", "--registry-auth",
                      StrCat(Host(), "=00000000-0000-0000-0000-000000000000:", kRefreshToken),
                      Ref("t/tok:1")});
  ASSERT_EQ(acr.exit_code, 0) << acr.Describe();
}

TEST_P(TokenE2E, WrongRegistryTokenIsRefusedWithoutLeakingIt) {
  const std::string wrong = "wrong-refresh-token-e2e-c3";
  ExpectRefusedPush({"--registry-token", StrCat(Host(), "=", wrong)}, wrong, "t/wrong");
}

INSTANTIATE_TEST_SUITE_P(Setups, TokenE2E, testing::Values(LocalRegistry::Auth::kToken),
                         [](const auto& info) { return std::string(AuthName(info.param)); });

// --- faults -------------------------------------------------------------------------------------

// kilnctl pushes through the harness' FaultProxy to a plain registry.
class FaultE2E : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto reg = LocalRegistry::Start();
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = std::move(*reg);
    state_ = NewState();
    ctx_ = WriteContext("app", {{"Dockerfile", kAppDockerfile}, {"data.txt", "payload\n"}});
    // Built once without a push, so the test knows the blobs the push will send (the push
    // reuses the same layer blobs).
    Json meta;
    ProcessResult r = Build(state_, ctx_, {"--output", "type=image,name=local/app:1"}, &meta);
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    manifest_ = StoredBlobJson(state_, meta.value("containerimage.digest", ""));
    ASSERT_EQ(BlobsOf(manifest_).size(), 4u);
  }

  void StartProxy(const std::vector<FaultProxy::Rule>& rules) {
    auto proxy = FaultProxy::Start(registry_->host(), rules);
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxy_ = std::move(*proxy);
  }

  ProcessResult PushThroughProxy(const std::string& repo, Json* meta = nullptr) {
    return Build(state_, ctx_,
                 {"--output", StrCat("type=image,name=", proxy_->host(), "/", repo, ",push=true")},
                 meta);
  }

  // Blob upload attempts the proxy saw (PUTs to an upload session; one per blob attempt).
  int UploadAttempts() const {
    int n = 0;
    for (const auto& l : proxy_->Requests()) {
      if (l.method == "PUT" && l.path.find("/blobs/uploads/") != std::string::npos) ++n;
    }
    return n;
  }

  // No manifest PUT reached the proxy before the last blob request had (the registry's log
  // orders by completion, the proxy's by arrival: the proxy's is the stricter witness).
  void ExpectManifestAfterBlobs() {
    int last_blob = 0, first_manifest = 1 << 30;
    for (const auto& l : proxy_->Requests()) {
      if (l.method == "PUT" && l.path.find("/manifests/") != std::string::npos) {
        first_manifest = std::min(first_manifest, l.n);
      } else if (l.path.find("/blobs/") != std::string::npos) {
        last_blob = std::max(last_blob, l.n);
      }
    }
    EXPECT_LT(last_blob, first_manifest);
  }

  // Every blob is in `repo` exactly once (no duplicate completed upload), the manifest went up
  // once after all of them, and skopeo reads the digest kilnctl reported.
  void ExpectCompletePush(const std::string& repo, const Json& meta) {
    std::vector<LogLine> log = RegistryLog(*registry_);
    for (const std::string& blob : BlobsOf(manifest_)) {
      EXPECT_EQ(CountUploads(log, repo, blob), 1) << blob;
    }
    EXPECT_EQ(CountRequests(log, "PUT", StrCat("^/v2/", repo, "/manifests/1$"), 201), 1);
    ExpectManifestAfterBlobs();
    EXPECT_EQ(SkopeoInspect(StrCat(registry_->host(), "/", repo, ":1"))["Digest"],
              meta["containerimage.digest"]);
  }

  // The image built in SetUp, pushed straight to the registry (no proxy) as `repo`:1.
  void PushDirect(const std::string& repo) {
    ProcessResult r = Kilnctl(
        state_, {"image", "push", "local/app:1", StrCat(registry_->host(), "/", repo, ":1")});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }

  std::unique_ptr<LocalRegistry> registry_;
  std::unique_ptr<FaultProxy> proxy_;
  std::string state_, ctx_;
  Json manifest_;
};

TEST_F(FaultE2E, ServerErrorAtABlobUploadCostsOneMoreUpload) {
  StartProxy(
      {{.method = "PUT", .path = "/blobs/uploads/", .nth = 2, .action = "status", .status = 500}});
  Json meta;
  ProcessResult r = PushThroughProxy("f/e500:1", &meta);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_LE(UploadAttempts(), 4 + 1);
  ExpectCompletePush("f/e500", meta);
}

TEST_F(FaultE2E, DroppedConnectionMidUploadCostsOneMoreUpload) {
  StartProxy({{.method = "PUT", .path = "/blobs/uploads/", .nth = 1, .action = "drop_mid_body"}});
  Json meta;
  ProcessResult r = PushThroughProxy("f/drop:1", &meta);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_LE(UploadAttempts(), 4 + 1);
  ExpectCompletePush("f/drop", meta);
}

TEST_F(FaultE2E, AnswerLostAfterTheRegistryStoredTheBlob) {
  StartProxy({{.method = "PUT", .path = "/blobs/uploads/", .nth = 3, .action = "drop_after"}});
  Json meta;
  ProcessResult r = PushThroughProxy("f/lost:1", &meta);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_LE(UploadAttempts(), 4 + 1);
  std::vector<LogLine> log = RegistryLog(*registry_);
  EXPECT_EQ(CountRequests(log, "PUT", "^/v2/f/lost/manifests/1$", 201), 1);
  ExpectManifestAfterBlobs();
  EXPECT_EQ(SkopeoInspect(StrCat(registry_->host(), "/f/lost:1"))["Digest"],
            meta["containerimage.digest"]);
}

TEST_F(FaultE2E, ThrottlingIsRetriedAfterRetryAfter) {
  // 429 at the start of an upload session and at a blob's PUT, each with Retry-After: 1.
  StartProxy({{.method = "POST",
               .path = "/blobs/uploads/",
               .nth = 1,
               .action = "status",
               .status = 429,
               .retry_after = "1"},
              {.method = "PUT",
               .path = "/blobs/uploads/",
               .nth = 2,
               .action = "status",
               .status = 429,
               .retry_after = "1"}});
  Json meta;
  ProcessResult r = PushThroughProxy("f/throttled:1", &meta);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_LE(UploadAttempts(), 4 + 1);
  ExpectCompletePush("f/throttled", meta);
}

TEST_F(FaultE2E, RangeErrorAtABlobUploadRestartsItsSession) {
  // 416 means the registry and the client disagree about the session: start a new one.
  StartProxy(
      {{.method = "PUT", .path = "/blobs/uploads/", .nth = 2, .action = "status", .status = 416}});
  Json meta;
  ProcessResult r = PushThroughProxy("f/range:1", &meta);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_LE(UploadAttempts(), 4 + 1);
  ExpectCompletePush("f/range", meta);
}

// The proxy holds one upload silent for longer than the client's stall detection (libcurl's
// low-speed limit, 60 s by default in kilnctl), so the client must give up on it by itself and
// retry.  Slow (about a minute) but not timing-dependent: the stall outlasts the detection
// whatever the machine's speed.
TEST_F(FaultE2E, StalledUploadIsAbandonedAndRetried) {
  StartProxy({{.method = "PUT",
               .path = "/blobs/uploads/",
               .nth = 2,
               .action = "stall",
               .stall_seconds = 600}});
  Json meta;
  ProcessResult r = PushThroughProxy("f/stall:1", &meta);
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_LE(UploadAttempts(), 4 + 1);
  ExpectCompletePush("f/stall", meta);
}

TEST_F(FaultE2E, PersistentFailureOfOneBlobFailsThePushWithoutAManifest) {
  std::string layer = manifest_["layers"][2]["digest"];  // the COPY layer
  std::string hex = layer.substr(layer.find(':') + 1);
  StartProxy({{.method = "PUT",
               .path = "/blobs/uploads/",
               .query = hex,
               .nth = 1,
               .count = 1000,
               .action = "status",
               .status = 500}});
  ProcessResult r = PushThroughProxy("f/broken:1");
  EXPECT_NE(r.exit_code, 0) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("push")) << r.err;
  EXPECT_THAT(r.err, testing::ContainsRegex("500|Internal Server Error")) << r.err;
  EXPECT_THAT(r.err, HasSubstr(hex.substr(0, 12))) << r.err;  // names the blob
  std::vector<LogLine> log = RegistryLog(*registry_);
  EXPECT_EQ(CountRequests(log, "PUT", "/manifests/"), 0);
  EXPECT_EQ(CountUploads(log, "f/broken", layer), 0);
}

// A registry (or something on the way) serving a layer whose bytes do not match its digest:
// `kilnctl image pull` and a build FROM the image both fail naming the digest, and neither
// stores the blob or the image.
TEST_F(FaultE2E, CorruptedLayerOnPullIsRefusedAndNothingIsStored) {
  PushDirect("f/src");
  std::string layer = manifest_["layers"][2]["digest"];  // the COPY layer
  std::string hex = layer.substr(layer.find(':') + 1);
  StartProxy({{.method = "GET",
               .path = StrCat("/blobs/sha256:", hex),
               .nth = 1,
               .count = 1000,
               .action = "corrupt"}});
  std::string ref = StrCat(proxy_->host(), "/f/src:1");

  std::string fresh = NewState(/*with_busybox=*/false);
  ProcessResult pull = Kilnctl(fresh, {"image", "pull", ref});
  EXPECT_NE(pull.exit_code, 0) << pull.Describe();
  EXPECT_THAT(pull.err, HasSubstr(layer)) << pull.err;
  // Names what arrived instead (the registry client's DataLoss).
  EXPECT_THAT(pull.err, testing::ContainsRegex("digest is sha256:[0-9a-f]{64}")) << pull.err;
  EXPECT_FALSE(Exists(StrCat(fresh, "/content/blobs/sha256/", hex)));
  EXPECT_THAT(DirNames(StrCat(fresh, "/content/ingest")), testing::IsEmpty());
  ProcessResult ls = Kilnctl(fresh, {"image", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.Describe();
  EXPECT_THAT(ls.out, Not(HasSubstr("f/src")));

  std::string ctx =
      WriteContext("from-corrupt", {{"Dockerfile", StrCat("FROM ", ref, "\nRUN true\n")}});
  ProcessResult build =
      Build(fresh, ctx, {"--output", StrCat("type=local,dest=", Path("corrupt-out"))});
  EXPECT_NE(build.exit_code, 0) << build.Describe();
  EXPECT_THAT(build.err, HasSubstr(layer)) << build.err.substr(0, 3000);
  EXPECT_FALSE(Exists(StrCat(fresh, "/content/blobs/sha256/", hex)));
  EXPECT_THAT(DirNames(StrCat(fresh, "/content/ingest")), testing::IsEmpty());
  // The other blobs were fine: the proxy corrupted only that layer, every time it was asked.
  int corrupted = 0;
  for (const auto& l : proxy_->Requests()) corrupted += l.action == "corrupt" ? 1 : 0;
  EXPECT_GE(corrupted, 2);
}

}  // namespace
}  // namespace kiln::registry_e2e
