// Import/unpack with real clients: layouts made by umoci are imported and unpacked into
// overlay snapshots (and a busybox shell runs in them); layouts made from our layers are
// unpacked by umoci.
#include "snapshotter/image_import.h"

#include <fstream>

#include <sys/wait.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "snapshotter/layer_test_util.h"
#include "snapshotter/local_content_store.h"
#include "snapshotter/overlay_snapshotter.h"
#include "snapshotter/test_util.h"

namespace kiln::snapshotter {
namespace {

using testing::Exists;
using testing::ReadOrEmpty;
using testing::WriteFile;

std::string LogPath() { return StrCat("/tmp/kiln-import-test-", ::getpid(), ".log"); }

int Shell(const std::string& cmd) {
  int rc = std::system((cmd + " >" + LogPath() + " 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

class ImageImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KILN_SKIP_WITHOUT_OVERLAY();
    if (Shell("command -v umoci") != 0 || !Exists("/bin/busybox")) {
      GTEST_SKIP() << "needs umoci and busybox-static (scripts/setup.sh installs them)";
    }
    auto dir = TempDir::Create("kiln-import-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::move(*dir);
    auto store = LocalContentStore::Open(dir_.path());
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    auto sn = OpenOverlaySnapshotter(dir_.path());
    ASSERT_TRUE(sn.ok());
    sn_ = std::move(*sn);
    rootfs_ = dir_.path() + "/rootfs";
    MakeBusyboxRootfs(rootfs_);
  }

  void TearDown() override { ::unlink(LogPath().c_str()); }

  // The base image of test-infrastructure.md: busybox, its applet links, passwd, group, /tmp.
  void MakeBusyboxRootfs(const std::string& root) {
    for (const char* d : {"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/etc", "/root"}) {
      ASSERT_TRUE(MakeDirs(root + d).ok());
    }
    ASSERT_EQ(Shell(StrCat("cp /bin/busybox ", root, "/bin/busybox")), 0);
    ASSERT_EQ(Shell(StrCat("cd ", root,
                           " && for p in $(/bin/busybox --list-full); do "
                           "[ \"$p\" = bin/busybox ] || ln -s /bin/busybox \"$p\"; done")),
              0);
    WriteFile(root + "/etc/passwd",
              "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n");
    WriteFile(root + "/etc/group", "root:x:0:\nnogroup:x:65534:\n");
    ASSERT_EQ(mkdir((root + "/tmp").c_str(), 01777), 0);
    ASSERT_EQ(chmod((root + "/tmp").c_str(), 01777), 0);
  }

  std::string MountView(const std::string& key, const std::string& parent,
                        std::optional<ScopedMount>& owner) {
    auto view = sn_->View(key, parent);
    EXPECT_TRUE(view.ok()) << view.status();
    std::string mnt = dir_.path() + "/mnt-" + key;
    EXPECT_TRUE(MakeDirs(mnt).ok());
    auto m = ScopedMount::MountAll(*view, mnt);
    EXPECT_TRUE(m.ok()) << m.status();
    owner.emplace(std::move(*m));
    return mnt;
  }

  int CountSnapshots() {
    int n = 0;
    EXPECT_TRUE(sn_->Walk([&](const SnapshotInfo&) {
                     ++n;
                     return absl::OkStatus();
                   })
                    .ok());
    return n;
  }

  TempDir dir_;
  std::unique_ptr<LocalContentStore> store_;
  std::unique_ptr<Snapshotter> sn_;
  std::string rootfs_;
};

TEST_F(ImageImportTest, UmociLayoutImportsAndUnpacksIntoARunnableSnapshot) {
  std::string layout = dir_.path() + "/layout";
  ASSERT_EQ(Shell(StrCat("umoci init --layout ", layout)), 0);
  ASSERT_EQ(Shell(StrCat("umoci new --image ", layout, ":base")), 0);
  ASSERT_EQ(Shell(StrCat("umoci insert --image ", layout, ":base ", rootfs_, " /")), 0)
      << ReadOrEmpty(LogPath());
  // A second layer that deletes and adds, as a build step would.
  std::string extra = dir_.path() + "/extra";
  ASSERT_TRUE(MakeDirs(extra + "/etc").ok());
  WriteFile(extra + "/etc/motd", "hello from layer 2\n");
  ASSERT_EQ(Shell(StrCat("umoci insert --image ", layout, ":base ", extra, " /")), 0);
  ASSERT_EQ(Shell(StrCat("umoci insert --image ", layout, ":base --whiteout /etc/group")), 0)
      << ReadOrEmpty(LogPath());
  ASSERT_EQ(Shell(StrCat("umoci config --image ", layout,
                         ":base --config.env PATH=/bin:/usr/bin "
                         "--config.cmd /bin/sh --architecture amd64 --os linux")),
            0);

  auto image = ImportOciLayout(*store_, layout, "base");
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->manifest.layers.size(), 3u);
  EXPECT_EQ(image->config.config.env, std::vector<std::string>{"PATH=/bin:/usr/bin"});
  for (auto& l : image->manifest.layers) EXPECT_TRUE(store_->Info(l.digest).ok());
  EXPECT_TRUE(store_->Info(image->manifest_digest).ok());

  auto top = Unpack(*store_, *sn_, *image);
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_EQ(*top, ChainIds(image->config.rootfs.diff_ids).back().str());
  int snapshots = CountSnapshots();
  EXPECT_EQ(snapshots, 3);
  // Unpacking again reuses every snapshot.
  auto again = Unpack(*store_, *sn_, *image);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(CountSnapshots(), snapshots);

  std::optional<ScopedMount> owner;
  std::string mnt = MountView("run", *top, owner);
  EXPECT_EQ(ReadOrEmpty(mnt + "/bin/busybox"), ReadOrEmpty("/bin/busybox"));
  EXPECT_EQ(ReadOrEmpty(mnt + "/etc/motd"), "hello from layer 2\n");
  EXPECT_FALSE(Exists(mnt + "/etc/group"));
  struct stat st;
  ASSERT_EQ(stat((mnt + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  EXPECT_EQ(Shell(StrCat("chroot ", mnt, " /bin/sh -c 'cat /etc/motd | grep -q \"layer 2\"'")), 0)
      << "busybox must run inside the unpacked snapshot";
}

TEST_F(ImageImportTest, OurLayersAreReadByUmoci) {
  RootfsImportOptions opts;
  opts.config.cmd = std::vector<std::string>{"/bin/sh"};
  auto image = ImportRootfs(*store_, rootfs_, opts);
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->manifest.layers.size(), 1u);
  EXPECT_EQ(image->manifest.layers[0].media_type, oci::kMediaTypeLayerGzip);

  // Write an OCI layout from the store, as an exporter would.
  std::string layout = dir_.path() + "/ours";
  ASSERT_TRUE(MakeDirs(layout + "/blobs/sha256").ok());
  ASSERT_TRUE(WriteFileAtomic(layout + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})").ok());
  for (const Digest& d :
       {image->manifest_digest, image->config_digest, image->manifest.layers[0].digest}) {
    auto blob = ReadBlob(*store_, d, 1 << 30);
    ASSERT_TRUE(blob.ok());
    ASSERT_TRUE(WriteFileAtomic(StrCat(layout, "/blobs/sha256/", d.hex()), *blob).ok());
  }
  oci::Index index;
  index.media_type = oci::kMediaTypeImageIndex;
  oci::Descriptor md;
  md.media_type = oci::kMediaTypeImageManifest;
  md.digest = image->manifest_digest;
  md.size = static_cast<int64_t>(ReadBlob(*store_, image->manifest_digest)->size());
  md.annotations["org.opencontainers.image.ref.name"] = "kiln";
  index.manifests = {md};
  ASSERT_TRUE(WriteFileAtomic(layout + "/index.json", oci::EncodeIndex(index)).ok());

  std::string bundle = dir_.path() + "/bundle";
  ASSERT_EQ(Shell(StrCat("umoci unpack --image ", layout, ":kiln ", bundle)), 0)
      << ReadOrEmpty(LogPath());
  EXPECT_EQ(ReadOrEmpty(bundle + "/rootfs/bin/busybox"), ReadOrEmpty("/bin/busybox"));
  EXPECT_EQ(ReadOrEmpty(bundle + "/rootfs/etc/passwd"), ReadOrEmpty(rootfs_ + "/etc/passwd"));
  char buf[64] = {};
  ASSERT_GT(readlink((bundle + "/rootfs/bin/sh").c_str(), buf, sizeof(buf)), 0);
  EXPECT_STREQ(buf, "/bin/busybox");
  struct stat st;
  ASSERT_EQ(stat((bundle + "/rootfs/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);

  // And the same image unpacks into our snapshots, reproducibly.
  auto top = Unpack(*store_, *sn_, *image);
  ASSERT_TRUE(top.ok()) << top.status();
  auto image2 = ImportRootfs(*store_, rootfs_, opts);
  ASSERT_TRUE(image2.ok());
  EXPECT_EQ(image2->manifest_digest, image->manifest_digest)
      << "rootfs import must be reproducible";
}

TEST_F(ImageImportTest, SharedPrefixesShareSnapshotsAndBadDiffIdsFail) {
  // Two images: [A] and [A, B]; B's config lies about its diffID in a third image.
  auto base = ImportRootfs(*store_, rootfs_);
  ASSERT_TRUE(base.ok());
  std::string extra = dir_.path() + "/extra";
  ASSERT_TRUE(MakeDirs(extra).ok());
  WriteFile(extra + "/added", "b");
  DiffOptions dopts;
  dopts.compression = Compression::kZstd;
  auto layer_b = WriteLayerToStore({DiffSource::Kind::kTreeCompare, "", extra}, *store_, dopts);
  ASSERT_TRUE(layer_b.ok());
  ImportedImage two = *base;
  oci::Descriptor bd;
  bd.media_type = layer_b->media_type;
  bd.digest = layer_b->digest;
  bd.size = layer_b->size;
  two.manifest.layers.push_back(bd);
  two.config.rootfs.diff_ids.push_back(layer_b->diff_id);

  auto top1 = Unpack(*store_, *sn_, *base);
  ASSERT_TRUE(top1.ok());
  auto top2 = Unpack(*store_, *sn_, two);
  ASSERT_TRUE(top2.ok()) << top2.status();
  EXPECT_EQ(CountSnapshots(), 2);
  auto st = sn_->Stat(*top2);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->parent, *top1);
  // chainID formula: sha256("<chainID(A)> <diffID(B)>").
  EXPECT_EQ(*top2, Digest::Sha256Of(
                       StrCat(base->config.rootfs.diff_ids[0].str(), " ", layer_b->diff_id.str()))
                       .str());

  ImportedImage liar = two;
  liar.config.rootfs.diff_ids[1] = Digest::Sha256Of("not the layer");
  auto bad = Unpack(*store_, *sn_, liar);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss) << bad.status();
  EXPECT_EQ(CountSnapshots(), 2) << "the half-applied active snapshot must be removed";
}

}  // namespace
}  // namespace kiln::snapshotter
