// Hostile inputs, end to end through kilnctl: nothing outside a snapshot or the build context
// is written or read, whatever an image layer, a context or a Dockerfile says.  Sentinel files
// in a directory of the test (HOST) are what a successful escape would read or change; every
// test checks they are untouched and that their contents reach no output.
//  (a) An OCI layout made by hand (make_hostile_layout.py) whose layer holds absolute and
//      climbing relative symlinks to HOST, a file written "through" such a link and a link to
//      /etc/shadow: building FROM it (RUN reading and writing through the links, COPY into them,
//      WORKDIR under them, COPY --from and RUN --mount=type=bind from them, the local exporter
//      writing them out) stays inside the image.  Layers with `../` members, or hardlinks to
//      files outside the layer (relative climbing, or absolute), fail with a clear error
//      naming the entry.
//  (b) COPY of a context symlink to /etc/shadow (COPY follows a source symlink) and of a path
//      through a context symlink to /etc resolve inside the context: the context's own
//      etc/shadow, else "not found" (BuildKit's semantics); the same for RUN --mount=type=bind;
//      a directory copy keeps the symlinks as symlinks.
//  (c) COPY/ADD sources climbing out of the context are "not found"; a destination climbing out
//      of the image root lands inside it; ADD of a local tar whose member climbs out is refused.
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "base/digest.h"
#include "base/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/testing.h"

namespace kiln::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace fs = std::filesystem;

std::string RandomTag(const char* prefix) {
  std::random_device rd;
  uint64_t v = (uint64_t(rd()) << 32) | rd();
  return StrCat(prefix, HexEncode(&v, sizeof(v)));
}

// Every path under `dir` (relative), for "nothing was added".
std::set<std::string> Listing(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    out.insert(it->path().string().substr(dir.size()));
  }
  return out;
}

class HostileTest : public BuildTest {
 protected:
  void SetUp() override {
    BuildTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    host_ = Path("host");
    secret_ = RandomTag("HOST-SENTINEL-DIR-");
    file_secret_ = RandomTag("HOST-SENTINEL-FILE-");
    WriteFile(host_ + "/sentinel-dir/secret.txt", secret_ + "\n");
    WriteFile(host_ + "/sentinel-file", file_secret_ + "\n");
    before_ = Listing(host_);
  }

  void ExpectHostUntouched(const std::string& when) {
    SCOPED_TRACE(when);
    EXPECT_EQ(Listing(host_), before_) << "something was created in or removed from HOST";
    EXPECT_EQ(ReadFile(host_ + "/sentinel-dir/secret.txt"), secret_ + "\n");
    EXPECT_EQ(ReadFile(host_ + "/sentinel-file"), file_secret_ + "\n");
    struct stat st {};
    ASSERT_EQ(::stat((host_ + "/sentinel-file").c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u) << "something hardlinked the sentinel file";
    EXPECT_THAT(MountsUnder(state_->root()), IsEmpty());
  }
  void ExpectNoHostContents(const std::string& root, const std::string& what) {
    EXPECT_THAT(FindBytes(root, secret_), IsEmpty()) << "HOST's sentinel-dir read into " << what;
    EXPECT_THAT(FindBytes(root, file_secret_), IsEmpty())
        << "HOST's sentinel-file read into " << what;
  }

  // make_hostile_layout.py LAYOUT BUSYBOX HOST MODE, imported as hostile:latest.
  ProcessResult ImportHostile(const std::string& mode) {
    std::string layout = Path("layout-" + mode);
    ProcessResult py = integration::Run(
        {"/usr/bin/python3", StrCat(SourceDir(), "/tests/integration/make_hostile_layout.py"),
         layout, BusyboxRootfs(), host_, mode});
    EXPECT_TRUE(py.ok()) << py.Describe();
    return state_->Kilnctl({"image", "import", "--oci-layout", layout, "hostile:latest"});
  }

  std::string host_, secret_, file_secret_;
  std::set<std::string> before_;
};

TEST_F(HostileTest, ImageLinksOutOfTheSnapshotStayInside) {
  ProcessResult imp = ImportHostile("links");
  ASSERT_TRUE(imp.ok()) << imp.Describe();
  std::string dockerfile = StrCat(R"(FROM hostile AS h
FROM hostile
RUN (cat /evil-abs/secret.txt; cat /evil-rel/secret.txt; cat /shadow-link) > /reads 2>&1; \
    cat /hard-in > /hard-read; cat /evil-abs/through-link > /through-read; \
    echo pwned > /evil-abs/run-write; echo pwned > /evil-rel/run-write-rel; true
COPY f.txt /evil-abs/copied-abs
COPY f.txt /evil-rel/copied-rel
WORKDIR /evil-abs/wd
COPY --from=h /evil-abs/ /from-abs/
COPY --from=h /evil-rel/through-link /from-rel
RUN --mount=type=bind,from=h,source=/evil-rel,target=/m ls -A /m > /mount-listing
)");
  std::string out = Path("out");
  BuildOptions b;
  b.context = Context("ctx", {{"Dockerfile", dockerfile}, {"f.txt", "from the context\n"}});
  b.outputs = {StrCat("type=local,dest=", out)};
  ProcessResult r = state_->Build(b);
  ASSERT_TRUE(r.ok()) << r.Describe();

  ExpectHostUntouched("after building FROM the image");
  ExpectNoHostContents(out, "the exported tree");
  EXPECT_FALSE(ContainsBytes(r.out + r.err, secret_));
  // Reads through the links found the image's own (absent) files.
  std::string reads = ReadFile(out + "/reads");
  EXPECT_THAT(reads, HasSubstr("No such file"));
  EXPECT_EQ(ReadFile(out + "/hard-read"), "absolute member\n");
  EXPECT_EQ(ReadFile(out + "/through-read"), "written through a link\n");
  EXPECT_EQ(ReadFile(out + "/mount-listing"), "through-link\n");
  EXPECT_EQ(ReadFile(out + "/from-rel"), "written through a link\n");
  EXPECT_TRUE(Exists(out + "/from-abs/through-link"));
  EXPECT_FALSE(Exists(out + "/from-abs/secret.txt"));
  // Writes through the links landed inside the image, at the link's target resolved in it.
  std::string inside = out + host_ + "/sentinel-dir";
  EXPECT_EQ(ReadFile(inside + "/copied-abs"), "from the context\n");
  EXPECT_EQ(ReadFile(inside + "/copied-rel"), "from the context\n");
  EXPECT_EQ(ReadFile(inside + "/run-write"), "pwned\n");
  EXPECT_EQ(ReadFile(inside + "/run-write-rel"), "pwned\n");
  EXPECT_EQ(ReadFile(inside + "/through-link"), "written through a link\n");
  struct stat st {};
  EXPECT_EQ(::stat((inside + "/wd").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  // The links themselves are exported as links, unchanged.
  std::error_code ec;
  EXPECT_EQ(fs::read_symlink(out + "/evil-abs", ec).string(), host_ + "/sentinel-dir");
  EXPECT_EQ(fs::read_symlink(out + "/shadow-link", ec).string(), "/etc/shadow");

  // The same through the OCI exporter and umoci.
  BuildOptions o = b;
  o.outputs.clear();
  Unpacked u;
  ASSERT_NO_FATAL_FAILURE(BuildAndUnpack("oci", o, &u));
  ExpectNoHostContents(Path("oci.layout"), "the OCI layout");
  EXPECT_EQ(ReadFile(u.rootfs + host_ + "/sentinel-dir/copied-abs"), "from the context\n");
  ExpectHostUntouched("after the OCI export");
}

TEST_F(HostileTest, LayerEntriesEscapingTheRootAreRefused) {
  struct Case {
    const char* mode;
    const char* entry;  // what the error names
  };
  for (const Case& c : {Case{"dotdot", "escaped-dotdot"}, Case{"hardlink-rel", "hard-out"},
                        Case{"hardlink-abs", "hard-abs"}}) {
    SCOPED_TRACE(c.mode);
    ProcessResult imp = ImportHostile(c.mode);
    ProcessResult r;
    if (imp.ok()) {
      // Layers are unpacked when a build first needs them.
      BuildOptions b;
      b.context = Context(StrCat("ctx-", c.mode), {{"Dockerfile", "FROM hostile\nRUN true\n"}});
      b.outputs = {StrCat("type=local,dest=", Path(StrCat("out-", c.mode)))};
      r = state_->Build(b);
    } else {
      r = imp;
    }
    EXPECT_FALSE(r.ok()) << r.Describe();
    EXPECT_THAT(r.err, HasSubstr(c.entry)) << "the error names the entry";
    EXPECT_TRUE(ContainsBytes(r.err, "escapes the root") || ContainsBytes(r.err, "does not exist"))
        << r.err;
    EXPECT_FALSE(Exists(host_ + "/escaped-dotdot"));
    ExpectHostUntouched(StrCat("after the ", c.mode, " layer"));
  }
}

TEST_F(HostileTest, ContextSymlinksResolveInsideTheContext) {
  std::string shadow = ReadFile("/etc/shadow");
  std::string ctx = Context("ctx", {{"f.txt", "f\n"}});
  fs::create_symlink("/etc/shadow", ctx + "/shadow-link");
  fs::create_symlink("/etc", ctx + "/etc-link");
  fs::create_symlink(host_ + "/sentinel-file", ctx + "/host-link");

  // COPY follows a source symlink (Docker semantics), resolved inside the context root, which
  // has no etc/shadow: "not found", as BuildKit.
  BuildOptions b;
  b.context = ctx;
  for (const char* df : {"FROM busybox\nCOPY shadow-link /copied-link\n",
                         "FROM busybox\nCOPY etc-link/shadow /via-link\n",
                         "FROM busybox\nCOPY host-link /host-link-copy\n"}) {
    SCOPED_TRACE(df);
    WriteFile(ctx + "/Dockerfile", df);
    b.outputs = {StrCat("type=local,dest=", Path("out-fail"))};
    ProcessResult r = state_->Build(b);
    EXPECT_FALSE(r.ok()) << r.Describe();
    EXPECT_THAT(r.err, HasSubstr("not found"));
    if (shadow.size() > 8) {
      EXPECT_FALSE(ContainsBytes(r.err + r.out, shadow));
    }
    EXPECT_FALSE(ContainsBytes(r.err + r.out, file_secret_));
  }

  // With the context's own etc/shadow, that is what COPY and a bind mount see; a directory
  // copy keeps the symlinks as symlinks.
  WriteFile(ctx + "/etc/shadow", "CONTEXT-SHADOW\n");
  WriteFile(ctx + "/Dockerfile", R"(FROM busybox
COPY shadow-link /copied-link
COPY etc-link/shadow /via-link
COPY . /whole/
RUN --mount=type=bind,source=etc-link/shadow,target=/m cat /m > /bound
)");
  b.outputs = {StrCat("type=local,dest=", Path("out3"))};
  ProcessResult r = state_->Build(b);
  ASSERT_TRUE(r.ok()) << r.Describe();
  std::error_code ec;
  EXPECT_EQ(ReadFile(Path("out3/copied-link")), "CONTEXT-SHADOW\n");
  EXPECT_FALSE(fs::is_symlink(Path("out3/copied-link")));
  EXPECT_EQ(ReadFile(Path("out3/via-link")), "CONTEXT-SHADOW\n");
  EXPECT_EQ(ReadFile(Path("out3/bound")), "CONTEXT-SHADOW\n");
  EXPECT_EQ(fs::read_symlink(Path("out3/whole/shadow-link"), ec).string(), "/etc/shadow");
  EXPECT_EQ(fs::read_symlink(Path("out3/whole/host-link"), ec).string(), host_ + "/sentinel-file");
  EXPECT_EQ(ReadFile(Path("out3/whole/etc/shadow")), "CONTEXT-SHADOW\n");
  if (shadow.size() > 8) {
    EXPECT_THAT(FindBytes(Path("out3"), shadow), IsEmpty());
    EXPECT_THAT(FindBytes(state_->root(), shadow), IsEmpty());
  }
  ExpectNoHostContents(Path("out3"), "the exported tree");
  ExpectNoHostContents(state_->root(), "the state directory");
  ExpectHostUntouched("after the context symlink builds");
}

TEST_F(HostileTest, PathsEscapingTheContextOrTheRoot) {
  std::string outside = RandomTag("OUTSIDE-CONTEXT-");
  WriteFile(Path("outside.txt"), outside + "\n");
  std::string ctx = Context("ctx", {{"f.txt", "f\n"}});
  // A local tar (ADD extracts it) with a member climbing out towards HOST.
  std::string script = StrCat(
      "import io, sys, tarfile\n"
      "t = tarfile.open(sys.argv[1], 'w')\n"
      "for name, data in [('../' * 30 + sys.argv[2] + '/add-escape', b'escaped\\n'),\n"
      "                   ('ok.txt', b'ok\\n')]:\n"
      "    i = tarfile.TarInfo(name)\n"
      "    i.size = len(data)\n"
      "    t.addfile(i, io.BytesIO(data))\n"
      "t.close()\n");
  ProcessResult tar =
      integration::Run({"/usr/bin/python3", "-c", script, ctx + "/evil.tar", host_.substr(1)});
  ASSERT_TRUE(tar.ok()) << tar.Describe();

  struct Case {
    std::string instruction;
    std::string error;  // "" when it must succeed
  };
  std::vector<Case> cases = {
      {"COPY ../outside.txt /x", "not found"},
      {"ADD ../outside.txt /x", "not found"},
      {"COPY ../../../../../../../etc/passwd /x", "not found"},
      {StrCat("COPY f.txt ../../../../../../..", host_, "/dest-escape"), ""},
      {"ADD evil.tar /extracted/", "add-escape"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.instruction);
    WriteFile(ctx + "/Dockerfile", StrCat("FROM busybox\n", c.instruction, "\n"));
    BuildOptions b;
    b.context = ctx;
    std::string out = Path(StrCat("out", i));
    b.outputs = {StrCat("type=local,dest=", out)};
    ProcessResult r = state_->Build(b);
    if (c.error.empty()) {
      ASSERT_TRUE(r.ok()) << r.Describe();
      EXPECT_EQ(ReadFile(out + host_ + "/dest-escape"), "f\n") << "confined to the image root";
    } else {
      EXPECT_FALSE(r.ok()) << r.Describe();
      EXPECT_THAT(r.err, HasSubstr(c.error));
    }
    EXPECT_FALSE(ContainsBytes(r.out + r.err, outside));
    ExpectNoHostContents(out, "the exported tree");
    EXPECT_THAT(FindBytes(out, outside), IsEmpty());
    EXPECT_FALSE(Exists(host_ + "/dest-escape"));
    EXPECT_FALSE(Exists(host_ + "/add-escape"));
    ExpectHostUntouched(c.instruction);
  }
}

}  // namespace
}  // namespace kiln::integration
