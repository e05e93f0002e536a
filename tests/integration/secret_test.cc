// Build secrets (RUN --mount=type=secret), end to end through kilnctl.  Proves that the step
// reads the secret (from a file or from kilnctl's environment) while its bytes - a random value
// made per test - appear nowhere else: not in the exported image (every blob, decompressed),
// not anywhere in the state directory (snapshots, content store, cache database, cache mounts),
// not in kilnctl's output with plain or rawjson progress; and that error paths (a missing
// source file, a required secret not given, a step failing after copying the secret into its
// filesystem) report the secret's id without its value and leave no copy behind.
//
// What is not tested: a command that itself prints the secret (BuildKit shows a step's output
// as it is; so do we).  The state directory's leveldb cache database compresses its blocks
// (snappy), which could hide a leaked value from the byte search; the secret is therefore also
// checked not to reach a cache key by a second build with another value hitting the cache.
#include <random>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/testing.h"

namespace kiln::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string RandomSecret() {
  std::random_device rd;
  std::string hex;
  for (int i = 0; i < 4; ++i) {
    uint64_t v = (uint64_t(rd()) << 32) | rd();
    hex += HexEncode(&v, sizeof(v));
  }
  return "kiln-it-secret-" + hex;
}

// The step proves it read the secret by writing its length and a salted hash (so the plain
// hash of the secret is not in the layer either).
constexpr char kReadsSecret[] = R"(FROM busybox
RUN --mount=type=secret,id=s wc -c < /run/secrets/s > /len \
 && (cat /run/secrets/s; echo salt) | sha256sum | cut -d' ' -f1 > /salted
RUN ls -A /run/secrets > /after 2>&1 || true
)";

class SecretTest : public BuildTest {
 protected:
  void SetUp() override {
    BuildTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    secret_ = RandomSecret();
    secret_file_ = Path("secret.txt");
    WriteFile(secret_file_, secret_, 0600);
  }

  // The secret's bytes nowhere under `root` (decompressing blobs), in `what` for the message.
  void ExpectNoSecretUnder(const std::string& root, const std::string& what) {
    EXPECT_THAT(FindBytes(root, secret_), IsEmpty()) << "secret found in " << what;
    std::string plain_hash = Digest::Sha256Of(secret_).str().substr(7);
    EXPECT_THAT(FindBytes(root, plain_hash), IsEmpty()) << "secret's sha256 found in " << what;
  }
  void ExpectNoSecretIn(const ProcessResult& r, const std::string& what) {
    EXPECT_FALSE(ContainsBytes(r.out, secret_)) << what << " stdout:\n" << r.out;
    EXPECT_FALSE(ContainsBytes(r.err, secret_)) << what << " stderr:\n" << r.err;
  }

  std::string secret_, secret_file_;
};

TEST_F(SecretTest, StepReadsSecretFileButItIsNowhereElse) {
  BuildOptions b;
  b.context = Context("ctx", {{"Dockerfile", kReadsSecret}});
  b.secrets = {StrCat("id=s,src=", secret_file_)};
  b.progress = "plain";
  Unpacked u;
  ASSERT_NO_FATAL_FAILURE(BuildAndUnpack("plain", b, &u));
  EXPECT_EQ(ReadFile(u.rootfs + "/len"), StrCat(secret_.size(), "\n"));
  EXPECT_EQ(ReadFile(u.rootfs + "/salted"),
            Digest::Sha256Of(secret_ + "salt\n").str().substr(7) + "\n");
  // Mounted for its step only.
  EXPECT_THAT(ReadFile(u.rootfs + "/after"), ::testing::Not(HasSubstr("s\n")));
  ExpectNoSecretIn(u.build, "kilnctl --progress plain");
  ExpectNoSecretUnder(Path("plain.layout"), "the exported OCI layout");
  ExpectNoSecretUnder(u.rootfs, "the unpacked image");
  ExpectNoSecretUnder(state_->root(), "the state directory");
  EXPECT_THAT(MountsUnder(state_->root()), IsEmpty());

  // Again with rawjson progress, executing the step anew.
  b.progress = "rawjson";
  b.no_cache = true;
  Unpacked again;
  ASSERT_NO_FATAL_FAILURE(BuildAndUnpack("rawjson", b, &again));
  ASSERT_FALSE(Vertexes(ParseJsonLines(again.build.err)).empty()) << again.build.err;
  ExpectNoSecretIn(again.build, "kilnctl --progress rawjson");
  EXPECT_EQ(ReadFile(again.rootfs + "/len"), StrCat(secret_.size(), "\n"));
  ExpectNoSecretUnder(state_->root(), "the state directory");

  // The value is not part of the step's cache key: another value hits the cache (BuildKit).
  std::string other = Path("other-secret.txt");
  WriteFile(other, RandomSecret(), 0600);
  b.secrets = {StrCat("id=s,src=", other)};
  b.no_cache = false;
  Unpacked third;
  ASSERT_NO_FATAL_FAILURE(BuildAndUnpack("third", b, &third));
  auto executed = StepNames(Vertexes(ParseJsonLines(third.build.err)), false);
  EXPECT_THAT(executed, IsEmpty()) << third.build.err;
}

TEST_F(SecretTest, SecretFromEnvironment) {
  BuildOptions b;
  b.context = Context("ctx", {{"Dockerfile", kReadsSecret}});
  b.secrets = {"id=s,env=KILN_IT_SECRET_VALUE"};
  b.outputs = {StrCat("type=local,dest=", Path("out"))};
  ProcessOptions po;
  po.env = {StrCat("KILN_IT_SECRET_VALUE=", secret_)};
  ProcessResult r = integration::Run(state_->BuildArgv(b), po);
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(ReadFile(Path("out/len")), StrCat(secret_.size(), "\n"));
  ExpectNoSecretIn(r, "kilnctl");
  ExpectNoSecretUnder(Path("out"), "the local export");
  ExpectNoSecretUnder(state_->root(), "the state directory");
}

TEST_F(SecretTest, ErrorsNameTheSecretButNotItsValue) {
  // A second, required secret whose source file is missing, next to a good one.
  BuildOptions b;
  b.context = Context("ctx", {{"Dockerfile", R"(FROM busybox
RUN --mount=type=secret,id=s --mount=type=secret,id=gone,required=true cat /run/secrets/s
)"}});
  b.secrets = {StrCat("id=s,src=", secret_file_), StrCat("id=gone,src=", Path("no-such-file"))};
  b.outputs = {StrCat("type=local,dest=", Path("out1"))};
  ProcessResult r = state_->Build(b);
  EXPECT_FALSE(r.ok()) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("gone")) << "the error names the secret";
  ExpectNoSecretIn(r, "missing source file");

  // A required secret not given at all.
  b.context = Context("ctx2", {{"Dockerfile", R"(FROM busybox
RUN --mount=type=secret,id=s --mount=type=secret,id=absent,required=true true
)"}});
  b.secrets = {StrCat("id=s,src=", secret_file_)};
  b.outputs = {StrCat("type=local,dest=", Path("out2"))};
  r = state_->Build(b);
  EXPECT_FALSE(r.ok()) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("absent"));
  ExpectNoSecretIn(r, "required secret missing");

  // The step copies the secret into its filesystem, then fails: the error shows the command,
  // not the value, and the failed step's filesystem is discarded.
  for (const char* progress : {"plain", "rawjson"}) {
    b.context = Context(StrCat("ctx3-", progress), {{"Dockerfile", R"(FROM busybox
RUN --mount=type=secret,id=s cp /run/secrets/s /tmp/copied && echo failing-on-purpose >&2 && false
)"}});
    b.progress = progress;
    b.outputs = {StrCat("type=local,dest=", Path(StrCat("out3-", progress)))};
    r = state_->Build(b);
    EXPECT_FALSE(r.ok()) << r.Describe();
    EXPECT_THAT(r.err, HasSubstr("failing-on-purpose"));
    ExpectNoSecretIn(r, StrCat("failing step, progress ", progress));
  }
  ExpectNoSecretUnder(state_->root(), "the state directory after failed builds");
  EXPECT_THAT(MountsUnder(state_->root()), IsEmpty());
}

// As buildctl (secretsprovider.NewStore stats every src file): a --secret whose source file
// does not exist fails the build before it starts, even when the mount is not required.
TEST_F(SecretTest, MissingSourceFileFailsEvenIfNotRequired) {
  BuildOptions b;
  b.context = Context("ctx", {{"Dockerfile", R"(FROM busybox
RUN --mount=type=secret,id=s --mount=type=secret,id=gone cat /run/secrets/s > /dev/null
)"}});
  b.secrets = {StrCat("id=s,src=", secret_file_), StrCat("id=gone,src=", Path("no-such-file"))};
  b.outputs = {StrCat("type=local,dest=", Path("out"))};
  ProcessResult r = state_->Build(b);
  EXPECT_FALSE(r.ok()) << r.Describe();
  EXPECT_THAT(r.err, HasSubstr("no-such-file"));
  ExpectNoSecretIn(r, "missing source file");
}

}  // namespace
}  // namespace kiln::integration
