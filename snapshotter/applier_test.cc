#include "snapshotter/applier.h"

#include <random>
#include <thread>

#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "snapshotter/layer_test_util.h"
#include "snapshotter/test_util.h"

namespace kiln::snapshotter {
namespace {

using testing::Exists;
using testing::ReadOrEmpty;
using testing::TarBuilder;
using testing::WriteFile;

class ApplierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KILN_SKIP_WITHOUT_ROOT();
    auto dir = TempDir::Create("kiln-apply-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::move(*dir);
    root_ = dir_.path() + "/root";
    ASSERT_TRUE(MakeDirs(root_).ok());
  }
  absl::StatusOr<ApplyResult> Apply(const std::string& layer, ApplyOptions opts = {},
                                    std::string target = "") {
    StringSource src(layer);
    return ApplyLayer(target.empty() ? root_ : target, src, opts);
  }
  struct stat Lstat(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
    return st;
  }

  TempDir dir_;
  std::string root_;
};

TEST_F(ApplierTest, EntryTypesOwnersModesTimesXattrs) {
  std::string long_name = "dir/" + std::string(150, 'n');
  TarHeader owned;
  owned.name = "dir/suid";
  owned.type = '0';
  owned.mode = 04755;
  owned.uid = 1000;
  owned.gid = 1000;
  owned.size = 2;
  owned.mtime = 1600000000;
  TarHeader bigid = owned;
  bigid.name = "dir/bigid";
  bigid.mode = 0644;
  bigid.uid = 3000000;  // needs PAX
  std::string layer =
      TarBuilder()
          .Dir("dir/", 0750)
          .Raw(owned, "#!")
          .Raw(bigid, "id")
          .File("dir/caps", "bin", 0755,
                {{"security.capability", std::string("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00"
                                                     "\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                                                     20)},
                 {"user.note", "hi"}})
          .File(long_name, "long")
          .Symlink("dir/link", "suid")
          .Hardlink("dir/hard", "dir/suid")
          .Device("dir/fifo", '6', 0, 0)
          .Device("dir/null", '3', 1, 3)
          .Build();
  auto r = Apply(layer);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->entries, 9);
  EXPECT_EQ(r->diff_id, Digest::Sha256Of(layer));
  EXPECT_EQ(r->uncompressed_size, static_cast<int64_t>(layer.size()));
  EXPECT_EQ(r->compression, Compression::kNone);

  struct stat d = Lstat(root_ + "/dir");
  EXPECT_EQ(d.st_mode & 07777, 0750u);
  EXPECT_EQ(d.st_mtim.tv_sec, 1700000000) << "directory times are set after their children";
  struct stat s = Lstat(root_ + "/dir/suid");
  EXPECT_EQ(s.st_mode & 07777, 04755u) << "setuid survives chown";
  EXPECT_EQ(s.st_uid, 1000u);
  EXPECT_EQ(s.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(s.st_atim.tv_sec, 1600000000);
  EXPECT_EQ(s.st_nlink, 2u);
  EXPECT_EQ(Lstat(root_ + "/dir/hard").st_ino, s.st_ino);
  EXPECT_EQ(Lstat(root_ + "/dir/bigid").st_uid, 3000000u);
  EXPECT_EQ(ReadOrEmpty(root_ + "/" + long_name), "long");
  EXPECT_TRUE(S_ISLNK(Lstat(root_ + "/dir/link").st_mode));
  EXPECT_TRUE(S_ISFIFO(Lstat(root_ + "/dir/fifo").st_mode));
  struct stat n = Lstat(root_ + "/dir/null");
  EXPECT_TRUE(S_ISCHR(n.st_mode));
  EXPECT_EQ(n.st_rdev, makedev(1, 3));
  char buf[64];
  EXPECT_EQ(getxattr((root_ + "/dir/caps").c_str(), "security.capability", buf, sizeof(buf)), 20);
  ASSERT_EQ(getxattr((root_ + "/dir/caps").c_str(), "user.note", buf, sizeof(buf)), 2);
  EXPECT_EQ(std::string(buf, 2), "hi");
}

TEST_F(ApplierTest, NonAsciiNamesKeepTheirBytes) {
  std::string utf8 = "caf\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac";
  std::string latin1 = "na\xefve";                                      // not valid UTF-8
  std::string long_utf8 = "dir/" + std::string(90, 'x') + utf8 + utf8;  // PAX path record
  auto r = Apply(TarBuilder().File(utf8, "1").File(latin1, "2").File(long_utf8, "3").Build());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadOrEmpty(root_ + "/" + utf8), "1");
  EXPECT_EQ(ReadOrEmpty(root_ + "/" + latin1), "2");
  EXPECT_EQ(ReadOrEmpty(root_ + "/" + long_utf8), "3");
}

TEST_F(ApplierTest, CompressionsVerifyDigestAndSize) {
  std::string tar = TarBuilder().File("a", std::string(100000, 'a')).File("b", "b").Build();
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    std::string blob = c == Compression::kNone ? tar : testing::Compress(tar, c);
    std::string target = StrCat(dir_.path(), "/t", static_cast<int>(c));
    ASSERT_TRUE(MakeDirs(target).ok());
    ApplyOptions opts;
    opts.expected_digest = Digest::Sha256Of(blob);
    opts.expected_size = static_cast<int64_t>(blob.size());
    opts.media_type = std::string(OciLayerMediaType(c));
    auto r = Apply(blob, opts, target);
    ASSERT_TRUE(r.ok()) << CompressionName(c) << ": " << r.status();
    EXPECT_EQ(r->compression, c);
    EXPECT_EQ(r->diff_id, Digest::Sha256Of(tar));
    EXPECT_EQ(r->digest, Digest::Sha256Of(blob));
    EXPECT_EQ(ReadOrEmpty(target + "/b"), "b");

    opts.expected_digest = Digest::Sha256Of("something else");
    auto bad = Apply(blob, opts, target + "-bad");
    ASSERT_TRUE(MakeDirs(target + "-bad").ok());
    bad = Apply(blob, opts, target + "-bad");
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
    opts.expected_digest = Digest();
    opts.expected_size = static_cast<int64_t>(blob.size()) - 1;
    bad = Apply(blob, opts, target + "-bad");
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
  }
}

TEST_F(ApplierTest, CorruptAndMultiMemberStreams) {
  std::string tar1 = TarBuilder().File("a", std::string(5000, 'x')).Build();
  std::string gz = testing::Compress(tar1, Compression::kGzip);
  std::string corrupt = gz;
  corrupt[corrupt.size() / 2] ^= 0x55;
  EXPECT_EQ(Apply(corrupt).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Apply(gz.substr(0, gz.size() - 6)).status().code(), absl::StatusCode::kDataLoss);
  std::string zs = testing::Compress(tar1, Compression::kZstd);
  EXPECT_EQ(Apply(zs.substr(0, zs.size() - 3)).status().code(), absl::StatusCode::kDataLoss);
  // A gzip stream split in two members (as pigz/concatenation produce) is one layer.
  std::string tar2 = TarBuilder().File("a", "1").File("b", "2").Build();
  std::string multi = testing::Compress(tar2.substr(0, 700), Compression::kGzip) +
                      testing::Compress(tar2.substr(700), Compression::kGzip);
  auto r = Apply(multi);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->diff_id, Digest::Sha256Of(tar2));
  EXPECT_EQ(ReadOrEmpty(root_ + "/b"), "2");
  // Cut right after the last file's data (no padding, no trailer; umoci 0.4.7 writes these):
  // accepted.  Cut inside the data: an error, never a silently short file.
  std::string unpadded = TarBuilder().File("x", "complete").Build().substr(0, 512 + 8);
  auto cut = Apply(unpadded);
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_EQ(ReadOrEmpty(root_ + "/x"), "complete");
  EXPECT_EQ(cut->diff_id, Digest::Sha256Of(unpadded));
  // (The partial file stays: a failed apply's target is discarded by the caller.)
  EXPECT_EQ(Apply(TarBuilder().File("y", "complete").Build().substr(0, 512 + 4)).status().code(),
            absl::StatusCode::kDataLoss);
  ApplyOptions opts;
  opts.media_type = "application/vnd.oci.image.layer.v1.tar+encrypted";
  EXPECT_EQ(Apply(tar2, opts).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Apply("this is not a tar archive at all, not even close........").ok());
}

TEST_F(ApplierTest, WhiteoutsDeleteMode) {
  ASSERT_TRUE(Apply(TarBuilder()
                        .File("a", "a")
                        .Dir("b/")
                        .File("b/c", "c")
                        .File("b/keep", "k")
                        .Dir("d/")
                        .File("d/e", "e")
                        .Dir("d/sub/")
                        .File("d/sub/f", "f")
                        .Build())
                  .ok());
  auto r = Apply(TarBuilder()
                     .File(".wh.a", "")
                     .File("b/.wh.c", "")
                     .Dir("d/")
                     .File("d/.wh..wh..opq", "")
                     .File("d/g", "g")
                     .File(".wh..wh.plnk", "")
                     .Build());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(Exists(root_ + "/a"));
  EXPECT_FALSE(Exists(root_ + "/b/c"));
  EXPECT_TRUE(Exists(root_ + "/b/keep"));
  EXPECT_FALSE(Exists(root_ + "/d/e"));
  EXPECT_FALSE(Exists(root_ + "/d/sub"));
  EXPECT_EQ(ReadOrEmpty(root_ + "/d/g"), "g");
  EXPECT_FALSE(Exists(root_ + "/.wh..wh.plnk"));
  ASSERT_TRUE(Apply(TarBuilder().File("nodir/.wh.x", "").Build()).ok());
  EXPECT_FALSE(Exists(root_ + "/nodir")) << "a whiteout must not create its directory";
  // Opaque after new children keeps the new children.
  ASSERT_TRUE(
      Apply(TarBuilder().Dir("d/").File("d/a-new", "n").File("d/.wh..wh..opq", "").Build()).ok());
  EXPECT_TRUE(Exists(root_ + "/d/a-new"));
  EXPECT_FALSE(Exists(root_ + "/d/g"));
}

TEST_F(ApplierTest, WhiteoutsOverlayModeAndHardlinkCopyUp) {
  KILN_SKIP_WITHOUT_OVERLAY();
  std::string lower = dir_.path() + "/lower", upper = dir_.path() + "/upper",
              work = dir_.path() + "/work", mnt = dir_.path() + "/mnt";
  for (auto& d : {lower, upper, work, mnt}) ASSERT_TRUE(MakeDirs(d).ok());
  ASSERT_TRUE(Apply(TarBuilder()
                        .File("a", "a")
                        .Dir("d/")
                        .File("d/old", "old")
                        .File("shared", "shared-content", 0640)
                        .Build(),
                    {}, lower)
                  .ok());
  ApplyOptions opts;
  opts.whiteouts = WhiteoutMode::kOverlay;
  opts.lower_dirs = {lower};
  auto r = Apply(TarBuilder()
                     .File(".wh.a", "")
                     .Dir("d/")
                     .File("d/.wh..wh..opq", "")
                     .File("d/new", "new")
                     .Hardlink("link-to-lower", "shared")
                     .Build(),
                 opts, upper);
  ASSERT_TRUE(r.ok()) << r.status();
  struct stat wh = Lstat(upper + "/a");
  EXPECT_TRUE(S_ISCHR(wh.st_mode));
  EXPECT_EQ(wh.st_rdev, makedev(0, 0));
  char v[4] = {};
  EXPECT_EQ(lgetxattr((upper + "/d").c_str(), "trusted.overlay.opaque", v, sizeof(v)), 1);
  EXPECT_EQ(Lstat(upper + "/shared").st_ino, Lstat(upper + "/link-to-lower").st_ino);

  std::vector<Mount> m = {{"overlay",
                           "overlay",
                           "",
                           {"index=off", "redirect_dir=off", "metacopy=off", "workdir=" + work,
                            "upperdir=" + upper, "lowerdir=" + lower}}};
  auto mounted = ScopedMount::MountAll(m, mnt);
  ASSERT_TRUE(mounted.ok()) << mounted.status();
  EXPECT_FALSE(Exists(mnt + "/a"));
  EXPECT_FALSE(Exists(mnt + "/d/old"));
  EXPECT_EQ(ReadOrEmpty(mnt + "/d/new"), "new");
  EXPECT_EQ(ReadOrEmpty(mnt + "/link-to-lower"), "shared-content");
  EXPECT_EQ(Lstat(mnt + "/shared").st_mode & 07777, 0640u);
}

TEST_F(ApplierTest, ApplyToMountsPicksTheMode) {
  std::string layer = TarBuilder().File("x", "1").Build();
  StringSource src(layer);
  auto r = ApplyLayerToMounts({{"bind", root_, "", {"rbind", "rw"}}}, src, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadOrEmpty(root_ + "/x"), "1");
  std::string layer2 = TarBuilder().File("y", "1").Build();
  StringSource src2(layer2);
  EXPECT_FALSE(ApplyLayerToMounts({{"bind", root_, "", {"rbind", "ro"}}}, src2, {}).ok());
}

// ---- hostile layers: nothing outside the target may be read or written ----

class HostileLayerTest : public ApplierTest {
 protected:
  void SetUp() override {
    ApplierTest::SetUp();
    if (IsSkipped()) return;
    canary_ = dir_.path() + "/canary";
    WriteFile(canary_, "canary");
  }
  void TearDown() override {
    if (canary_.empty()) return;
    EXPECT_EQ(ReadOrEmpty(canary_), "canary") << "the canary outside the root was modified";
    struct stat st;
    ASSERT_EQ(lstat(canary_.c_str(), &st), 0);
    EXPECT_EQ(st.st_nlink, 1u) << "something hardlinked the canary";
    auto names = ListSorted(open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY), dir_.path());
    ASSERT_TRUE(names.ok());
    EXPECT_EQ(*names, (std::vector<std::string>{"canary", "root"}))
        << "a file appeared outside the root";
    EXPECT_FALSE(Exists("/etc/kiln-apply-escape")) << "wrote into the host's /etc";
    ::unlink("/etc/kiln-apply-escape");
  }
  std::string canary_;
};

TEST_F(HostileLayerTest, DotDotNameIsRejected) {
  auto r = Apply(TarBuilder().File("../canary", "pwned").Build());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("`../canary`"));
  r = Apply(TarBuilder().File("a/../../canary", "pwned").Build());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
}

TEST_F(HostileLayerTest, AbsoluteNameIsConfined) {
  auto r = Apply(TarBuilder().File("/etc/kiln-apply-escape", "x").Build());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadOrEmpty(root_ + "/etc/kiln-apply-escape"), "x");
}

TEST_F(HostileLayerTest, AbsoluteSymlinkParentIsConfined) {
  auto r = Apply(TarBuilder()
                     .Symlink("a", "/etc")
                     .File("a/kiln-apply-escape", "x")
                     .Symlink("s", dir_.path())
                     .File("s/canary", "pwned")
                     .Build());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadOrEmpty(root_ + "/etc/kiln-apply-escape"), "x");
  EXPECT_EQ(ReadOrEmpty(root_ + dir_.path() + "/canary"), "pwned");
}

TEST_F(HostileLayerTest, ClimbingSymlinkParentIsConfined) {
  auto r = Apply(TarBuilder().Symlink("b", "../../..").File("b/escaped", "x").Build());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadOrEmpty(root_ + "/escaped"), "x");
}

TEST_F(HostileLayerTest, HardlinkOutsideIsRejected) {
  auto r = Apply(TarBuilder().Hardlink("h", "../canary").Build());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("`h`"));
  // Through a symlink that points outside: resolved inside the root, where it does not exist.
  r = Apply(TarBuilder().Symlink("s", dir_.path()).Hardlink("h2", "s/canary").Build());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  EXPECT_FALSE(Exists(root_ + "/h2"));
}

TEST_F(HostileLayerTest, HardlinkToSymlinkLinksTheSymlink) {
  auto r = Apply(TarBuilder().Symlink("sl", canary_).Hardlink("hl", "sl").Build());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(S_ISLNK(Lstat(root_ + "/hl").st_mode));
  EXPECT_EQ(Lstat(root_ + "/hl").st_ino, Lstat(root_ + "/sl").st_ino);
}

TEST_F(HostileLayerTest, WriteThroughPlantedSymlinkReplacesIt) {
  auto r = Apply(TarBuilder().Symlink("w", canary_).File("w", "pwned").Build());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(S_ISREG(Lstat(root_ + "/w").st_mode));
  EXPECT_EQ(ReadOrEmpty(root_ + "/w"), "pwned");
  // Same across two layers (the symlink comes from an earlier layer).
  ASSERT_TRUE(Apply(TarBuilder().Symlink("w2", canary_).Build()).ok());
  ASSERT_TRUE(Apply(TarBuilder().File("w2", "pwned").Build()).ok());
  EXPECT_TRUE(S_ISREG(Lstat(root_ + "/w2").st_mode));
}

TEST_F(HostileLayerTest, DirectoryReplacedBySymlinkMidLayer) {
  auto r = Apply(TarBuilder()
                     .Dir("d/")
                     .File("d/one", "1")
                     .Symlink("d", dir_.path())
                     .File("d/canary", "pwned")
                     .Build());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadOrEmpty(root_ + dir_.path() + "/canary"), "pwned");
}

TEST_F(HostileLayerTest, WhiteoutCannotDeleteOutside) {
  auto r = Apply(TarBuilder().File("../.wh.canary", "").Build());
  EXPECT_FALSE(r.ok());
  r = Apply(TarBuilder().Symlink("s", dir_.path()).File("s/.wh.canary", "").Build());
  ASSERT_TRUE(r.ok()) << r.status();
}

TEST_F(HostileLayerTest, OverlayXattrsInLayerAreIgnored) {
  auto r = Apply(TarBuilder()
                     .File("f", "x", 0644, {{"trusted.overlay.redirect", "/etc"}, {"user.ok", "1"}})
                     .Build());
  ASSERT_TRUE(r.ok()) << r.status();
  char buf[16];
  EXPECT_LT(lgetxattr((root_ + "/f").c_str(), "trusted.overlay.redirect", buf, sizeof(buf)), 0);
  EXPECT_EQ(lgetxattr((root_ + "/f").c_str(), "user.ok", buf, sizeof(buf)), 1);
}

// Without CAP_MKNOD (a rootless apply) device nodes are skipped, other entries applied.
TEST_F(HostileLayerTest, DeviceNodeWithoutCapMknodIsSkipped) {
  std::string layer =
      TarBuilder().Device("dev-null", '3', 1, 3).Device("fifo", '6', 0, 0).File("f", "1").Build();
  absl::StatusOr<ApplyResult> r = absl::UnknownError("not run");
  std::thread t([&] {
    // Capabilities are per thread: drop CAP_MKNOD from this one only.
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &hdr, data) != 0) return;
    data[0].effective &= ~(1u << CAP_MKNOD);
    if (syscall(SYS_capset, &hdr, data) != 0) return;
    StringSource src(layer);
    r = ApplyLayer(root_, src, {});
  });
  t.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->skipped_devices, 1);
  EXPECT_FALSE(Exists(root_ + "/dev-null"));
  EXPECT_TRUE(Exists(root_ + "/fifo"));
  EXPECT_EQ(ReadOrEmpty(root_ + "/f"), "1");
}

}  // namespace
}  // namespace kiln::snapshotter

namespace kiln::snapshotter {
namespace {

// Randomized hostile layers: names, symlink targets and hardlink targets drawn from a small
// alphabet full of `..`, `/`, absolute paths and names of earlier entries.  Whatever each layer
// does (apply or fail), nothing outside the root may change.
TEST_F(HostileLayerTest, RandomHostileLayersStayConfined) {
  // `..` is rare enough that many layers apply (an escaping `..` fails the whole layer).
  const std::vector<std::string> parts = {"a",
                                          "b",
                                          "a",
                                          "b",
                                          "c",
                                          "..",
                                          ".",
                                          "",
                                          "etc",
                                          "kiln-apply-escape",
                                          dir_.path().substr(1),
                                          "canary",
                                          "/",
                                          ".wh.a",
                                          ".wh..wh..opq",
                                          "a",
                                          "b",
                                          "etc",
                                          "c",
                                          "d"};
  std::mt19937 rng(1234);
  auto pick_path = [&](int max_parts) {
    std::string p;
    int n = 1 + static_cast<int>(rng() % static_cast<unsigned>(max_parts));
    if (rng() % 4 == 0) p = "/";
    for (int i = 0; i < n; ++i) {
      if (i) p += "/";
      std::string part = parts[rng() % parts.size()];
      if (part == ".." && rng() % 3 != 0) part = "a";
      p += part;
    }
    return p;
  };
  int applied = 0;
  for (int layer = 0; layer < 300; ++layer) {
    TarBuilder b;
    int entries = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < entries; ++e) {
      std::string name = pick_path(4);
      switch (rng() % 5) {
        case 0:
          b.File(name, "pwned");
          break;
        case 1:
          b.Dir(name + "/");
          break;
        case 2:
          b.Symlink(name, rng() % 2 ? dir_.path() : pick_path(5));
          break;
        case 3:
          b.Hardlink(name, rng() % 8 == 0 ? "../canary" : pick_path(5));
          break;
        default:
          b.File(name + "/x", "pwned");
          break;
      }
    }
    std::string tar = b.Build();
    StringSource src(tar);
    ApplyOptions opts;
    opts.whiteouts = rng() % 2 ? WhiteoutMode::kDelete : WhiteoutMode::kOverlay;
    auto result = ApplyLayer(root_, src, opts);
    applied += result.ok();
    ASSERT_EQ(ReadOrEmpty(canary_), "canary") << "layer " << layer;
    struct stat st;
    ASSERT_EQ(lstat(canary_.c_str(), &st), 0);
    ASSERT_EQ(st.st_nlink, 1u) << "layer " << layer;
  }
  EXPECT_GT(applied, 30) << "the generator should also produce layers that apply";
}

}  // namespace
}  // namespace kiln::snapshotter
