#include "snapshotter/differ.h"

#include <sys/xattr.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "snapshotter/applier.h"
#include "snapshotter/layer_test_util.h"
#include "snapshotter/local_content_store.h"
#include "snapshotter/overlay_snapshotter.h"
#include "snapshotter/test_util.h"

namespace kiln::snapshotter {
namespace {

using testing::DescribeTree;
using testing::ListTar;
using testing::Names;
using testing::ReadOrEmpty;
using testing::TarBuilder;
using testing::WriteFile;

class DifferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KILN_SKIP_WITHOUT_ROOT();
    auto dir = TempDir::Create("kiln-diff-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::move(*dir);
    auto store = LocalContentStore::Open(dir_.path());
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
  }
  std::string Path(const std::string& name) {
    std::string p = dir_.path() + "/" + name;
    EXPECT_TRUE(MakeDirs(p).ok());
    return p;
  }
  // A tree with every kind of entry the differ and applier handle.
  void MakeRichTree(const std::string& root) {
    ASSERT_EQ(mkdir((root + "/etc").c_str(), 0755), 0);
    WriteFile(root + "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    ASSERT_EQ(mkdir((root + "/tmp").c_str(), 01777), 0);
    ASSERT_EQ(chmod((root + "/tmp").c_str(), 01777), 0);
    ASSERT_EQ(mkdir((root + "/bin").c_str(), 0755), 0);
    WriteFile(root + "/bin/busybox", std::string(300000, 'b'), 0755);
    ASSERT_EQ(symlink("busybox", (root + "/bin/sh").c_str()), 0);
    ASSERT_EQ(link((root + "/bin/busybox").c_str(), (root + "/bin/hardlinked").c_str()), 0);
    WriteFile(root + "/bin/su", "su", 04755);
    ASSERT_EQ(chown((root + "/bin/su").c_str(), 0, 0), 0);
    ASSERT_EQ(chmod((root + "/bin/su").c_str(), 04755), 0);
    WriteFile(root + "/empty", "");
    WriteFile(root + "/owned", "o");
    ASSERT_EQ(lchown((root + "/owned").c_str(), 1000, 2000), 0);
    ASSERT_EQ(mkfifo((root + "/fifo").c_str(), 0600), 0);
    ASSERT_EQ(mknod((root + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_EQ(setxattr((root + "/bin/busybox").c_str(), "user.kiln", "v", 1, 0), 0);
    std::string deep = root + "/" + std::string(120, 'd');
    ASSERT_EQ(mkdir(deep.c_str(), 0700), 0);
    WriteFile(deep + "/" + std::string(120, 'f'), "long path");
    struct timespec t[2] = {{1500000000, 123}, {1500000000, 456000000}};
    ASSERT_EQ(utimensat(AT_FDCWD, (root + "/empty").c_str(), t, AT_SYMLINK_NOFOLLOW), 0);
  }

  TempDir dir_;
  std::unique_ptr<LocalContentStore> store_;
};

TEST_F(DifferTest, ApplyOfDiffReproducesTheTree) {
  std::string src = Path("src");
  MakeRichTree(src);
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    DiffOptions opts;
    opts.compression = c;
    StringSink out;
    auto d = WriteLayer({DiffSource::Kind::kTreeCompare, "", src}, out, opts);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->digest, Digest::Sha256Of(out.out));
    EXPECT_EQ(d->size, static_cast<int64_t>(out.out.size()));
    EXPECT_EQ(d->media_type, OciLayerMediaType(c));
    std::string dst = Path(StrCat("dst", static_cast<int>(c)));
    StringSource in(out.out);
    auto r = ApplyLayer(dst, in, {});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->diff_id, d->diff_id);
    EXPECT_EQ(r->uncompressed_size, d->uncompressed_size);
    EXPECT_EQ(DescribeTree(dst), DescribeTree(src)) << CompressionName(c);
  }
}

TEST_F(DifferTest, IdenticalTreesGiveIdenticalBytes) {
  std::string a = Path("a"), b = Path("b");
  MakeRichTree(a);
  ASSERT_TRUE(CopyTree(a, b).ok());  // different inodes, creation order and ctimes
  for (Compression c : {Compression::kGzip, Compression::kZstd}) {
    DiffOptions opts;
    opts.compression = c;
    StringSink out1, out2, out3;
    ASSERT_TRUE(WriteLayer({DiffSource::Kind::kTreeCompare, "", a}, out1, opts).ok());
    ASSERT_TRUE(WriteLayer({DiffSource::Kind::kTreeCompare, "", a}, out2, opts).ok());
    ASSERT_TRUE(WriteLayer({DiffSource::Kind::kTreeCompare, "", b}, out3, opts).ok());
    EXPECT_TRUE(out1.out == out2.out) << CompressionName(c);
    EXPECT_TRUE(out1.out == out3.out) << CompressionName(c);
  }
}

TEST_F(DifferTest, TarStreamShapeAndTimestampClamp) {
  std::string src = Path("src");
  MakeRichTree(src);
  DiffOptions opts;
  opts.compression = Compression::kNone;
  opts.source_date_epoch = 1600000000;
  StringSink out;
  ASSERT_TRUE(WriteLayer({DiffSource::Kind::kTreeCompare, "", src}, out, opts).ok());
  auto entries = ListTar(out.out);
  std::vector<std::string> names = Names(entries);
  std::string long_dir = std::string(120, 'd') + "/";
  EXPECT_EQ(names,
            (std::vector<std::string>{"bin/", "bin/busybox", "bin/hardlinked", "bin/sh", "bin/su",
                                      long_dir, long_dir + std::string(120, 'f'), "empty", "etc/",
                                      "etc/passwd", "fifo", "null", "owned", "tmp/"}));
  for (auto& e : entries) {
    EXPECT_LE(e.mtime, 1600000000) << e.name;
    if (e.name == "empty") {
      EXPECT_EQ(e.mtime, 1500000000) << "older times are kept";
    }
    if (e.name == "bin/hardlinked") {
      EXPECT_EQ(e.link, "hard:bin/busybox");
    }
    if (e.name == "bin/sh") {
      EXPECT_EQ(e.link, "sym:busybox");
    }
  }
  // Ends with exactly two zero blocks after 512-byte records.
  EXPECT_EQ(out.out.size() % 512, 0u);
  EXPECT_EQ(out.out.substr(out.out.size() - 1024), std::string(1024, '\0'));
}

TEST_F(DifferTest, GnuTarReadsOurLayers) {
  std::string src = Path("src");
  MakeRichTree(src);
  for (auto [c, flag] :
       {std::pair{Compression::kGzip, "-z"}, std::pair{Compression::kZstd, "--zstd"}}) {
    DiffOptions opts;
    opts.compression = c;
    std::string file = StrCat(dir_.path(), "/layer.", static_cast<int>(c));
    StringSink out;
    ASSERT_TRUE(WriteLayer({DiffSource::Kind::kTreeCompare, "", src}, out, opts).ok());
    ASSERT_TRUE(WriteFileAtomic(file, out.out).ok());
    std::string list = file + ".txt";
    std::string cmd = StrCat("tar ", flag, " -tvf ", file, " > ", list, " 2>&1");
    ASSERT_EQ(system(cmd.c_str()), 0) << ReadOrEmpty(list);
    std::string text = ReadOrEmpty(list);
    EXPECT_THAT(text, ::testing::HasSubstr(std::string(120, 'f')));
    EXPECT_THAT(text, ::testing::HasSubstr("bin/hardlinked link to bin/busybox"));
    EXPECT_THAT(text, ::testing::HasSubstr("1000/2000"));
    EXPECT_THAT(text, ::testing::HasSubstr("-rwsr-xr-x"));
  }
}

// Overlay upper dir: whiteouts and opaque directories become OCI markers.
TEST_F(DifferTest, OverlayUpperWhiteoutsAndOpaqueDirs) {
  KILN_SKIP_WITHOUT_OVERLAY();
  auto sn = OpenOverlaySnapshotter(dir_.path());
  ASSERT_TRUE(sn.ok());
  std::string base_layer = TarBuilder()
                               .File("a", "a")
                               .Dir("d/")
                               .File("d/x", "x")
                               .File("d/y", "y")
                               .File("gone", "g")
                               .Dir("keep/")
                               .File("keep/k", "k")
                               .Build();
  auto m = (*sn)->Prepare("base-a", "");
  ASSERT_TRUE(m.ok());
  StringSource bsrc(base_layer);
  ASSERT_TRUE(ApplyLayerToMounts(*m, bsrc, {}).ok());
  ASSERT_TRUE((*sn)->Commit("base", "base-a").ok());

  auto child = (*sn)->Prepare("child", "base");
  ASSERT_TRUE(child.ok());
  std::string mnt = Path("mnt");
  {
    auto mounted = ScopedMount::MountAll(*child, mnt);
    ASSERT_TRUE(mounted.ok()) << mounted.status();
    WriteFile(mnt + "/a", "changed");
    ASSERT_EQ(unlink((mnt + "/gone").c_str()), 0);
    ASSERT_TRUE(RemoveAll(mnt + "/d").ok());
    ASSERT_EQ(mkdir((mnt + "/d").c_str(), 0755), 0);
    WriteFile(mnt + "/d/z", "z");
    WriteFile(mnt + "/h1", "h");
    ASSERT_EQ(link((mnt + "/h1").c_str(), (mnt + "/h2").c_str()), 0);
  }
  auto view = (*sn)->View("base-view", "base");
  ASSERT_TRUE(view.ok());
  auto differ = NewDiffer(*store_, dir_.path() + "/scratch");
  ASSERT_TRUE(FastDiffSource(*view, *child).has_value());
  EXPECT_EQ(FastDiffSource(*view, *child)->kind, DiffSource::Kind::kOverlayUpper);
  auto desc = differ->Compare(*view, *child, {});
  ASSERT_TRUE(desc.ok()) << desc.status();
  auto blob = ReadBlob(*store_, desc->digest, 1 << 30);
  ASSERT_TRUE(blob.ok());
  auto entries = ListTar(*blob);
  EXPECT_EQ(Names(entries),
            (std::vector<std::string>{"a", "d/", "d/.wh..wh..opq", "d/z", ".wh.gone", "h1", "h2"}));
  EXPECT_EQ(entries.back().link, "hard:h1");
  auto info = store_->Info(desc->digest);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labels.at("containerd.io/uncompressed"), desc->diff_id.str());

  // The same changes through the naive snapshotter (tree compare) apply to the same tree.
  std::string naive_root = Path("naive");
  auto nsn = OpenNaiveSnapshotter(naive_root);
  ASSERT_TRUE(nsn.ok());
  auto nm = (*nsn)->Prepare("base-a", "");
  StringSource bsrc2(base_layer);
  ASSERT_TRUE(ApplyLayerToMounts(*nm, bsrc2, {}).ok());
  ASSERT_TRUE((*nsn)->Commit("base", "base-a").ok());
  auto nchild = (*nsn)->Prepare("child", "base");
  ASSERT_TRUE(nchild.ok());
  {
    auto mounted = ScopedMount::MountAll(*nchild, mnt);
    ASSERT_TRUE(mounted.ok());
    WriteFile(mnt + "/a", "changed");
    ASSERT_EQ(unlink((mnt + "/gone").c_str()), 0);
    ASSERT_TRUE(RemoveAll(mnt + "/d").ok());
    ASSERT_EQ(mkdir((mnt + "/d").c_str(), 0755), 0);
    WriteFile(mnt + "/d/z", "z");
    WriteFile(mnt + "/h1", "h");
    ASSERT_EQ(link((mnt + "/h1").c_str(), (mnt + "/h2").c_str()), 0);
  }
  auto nview = (*nsn)->View("base-view", "base");
  ASSERT_TRUE(nview.ok());
  EXPECT_EQ(FastDiffSource(*nview, *nchild)->kind, DiffSource::Kind::kTreeCompare);
  auto ndesc = differ->Compare(*nview, *nchild, {});
  ASSERT_TRUE(ndesc.ok()) << ndesc.status();
  auto nblob = ReadBlob(*store_, ndesc->digest, 1 << 30);
  ASSERT_TRUE(nblob.ok());
  EXPECT_EQ(Names(ListTar(*nblob)), (std::vector<std::string>{"a", "d/", "d/.wh.x", "d/.wh.y",
                                                              "d/z", ".wh.gone", "h1", "h2"}));

  // Both layers, applied on the base, give the same tree.
  std::string t1 = Path("t1"), t2 = Path("t2");
  for (auto& t : {t1, t2}) {
    StringSource s(base_layer);
    ASSERT_TRUE(ApplyLayer(t, s, {}).ok());
  }
  StringSource s1(*blob), s2(*nblob);
  ASSERT_TRUE(ApplyLayer(t1, s1, {}).ok());
  ASSERT_TRUE(ApplyLayer(t2, s2, {}).ok());
  auto d1 = DescribeTree(t1), d2 = DescribeTree(t2);
  EXPECT_EQ(d1.size(), d2.size());
  for (auto& [k, v] : d1) EXPECT_TRUE(d2.count(k)) << k;
  EXPECT_FALSE(d1.count("gone"));
  EXPECT_EQ(ReadOrEmpty(t1 + "/d/z"), "z");
  EXPECT_FALSE(d1.count("d/x"));
}

TEST_F(DifferTest, SimpleChangesGiveTheSameEntriesOnBothSnapshotters) {
  KILN_SKIP_WITHOUT_OVERLAY();
  std::vector<std::vector<std::string>> listings;
  for (std::string kind : {"overlay", "naive"}) {
    std::string root = Path(kind);
    auto sn = kind == "overlay" ? OpenOverlaySnapshotter(root) : OpenNaiveSnapshotter(root);
    ASSERT_TRUE(sn.ok());
    auto m = (*sn)->Prepare("b", "");
    std::string layer =
        TarBuilder().File("a", "a").Dir("etc/").File("etc/x", "x").File("gone", "g").Build();
    StringSource src(layer);
    ASSERT_TRUE(ApplyLayerToMounts(*m, src, {}).ok());
    ASSERT_TRUE((*sn)->Commit("base", "b").ok());
    auto c = (*sn)->Prepare("c", "base");
    std::string mnt = Path(kind + "-mnt");
    {
      auto mounted = ScopedMount::MountAll(*c, mnt);
      ASSERT_TRUE(mounted.ok());
      WriteFile(mnt + "/etc/x", "x2");
      WriteFile(mnt + "/etc/new", "n");
      ASSERT_EQ(unlink((mnt + "/gone").c_str()), 0);
    }
    auto v = (*sn)->View("v", "base");
    auto desc = NewDiffer(*store_, dir_.path() + "/scratch")->Compare(*v, *c, {});
    ASSERT_TRUE(desc.ok()) << desc.status();
    auto blob = ReadBlob(*store_, desc->digest, 1 << 30);
    ASSERT_TRUE(blob.ok());
    std::vector<std::string> listing;
    for (auto& e : ListTar(*blob)) listing.push_back(StrCat(e.name, " ", e.type, " ", e.data));
    listings.push_back(listing);
  }
  EXPECT_EQ(listings[0], listings[1]);
  EXPECT_EQ(listings[0].size(), 4u);  // etc/, etc/new, etc/x, .wh.gone
}

}  // namespace
}  // namespace kiln::snapshotter

namespace kiln::snapshotter {
namespace {

// Fault injection by wrapping: a content store whose writers fail on the Nth write.
class FailingStore : public ContentStore {
 public:
  FailingStore(ContentStore& inner, int fail_at) : inner_(inner), fail_at_(fail_at) {}
  absl::StatusOr<ContentInfo> Info(const Digest& d) override { return inner_.Info(d); }
  absl::StatusOr<std::unique_ptr<ContentReader>> OpenReader(const Digest& d) override {
    return inner_.OpenReader(d);
  }
  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(const WriterOptions& o) override {
    KILN_ASSIGN_OR_RETURN(auto w, inner_.OpenWriter(o));
    return std::unique_ptr<ContentWriter>(std::make_unique<Writer>(std::move(w), fail_at_));
  }
  absl::Status Delete(const Digest& d) override { return inner_.Delete(d); }
  absl::Status Walk(const std::function<absl::Status(const ContentInfo&)>& fn) override {
    return inner_.Walk(fn);
  }
  absl::Status UpdateLabels(const Digest& d, const Labels& l) override {
    return inner_.UpdateLabels(d, l);
  }
  absl::StatusOr<std::vector<IngestStatus>> ListIngests() override { return inner_.ListIngests(); }
  absl::Status AbortIngest(std::string_view ref) override { return inner_.AbortIngest(ref); }

 private:
  class Writer : public ContentWriter {
   public:
    Writer(std::unique_ptr<ContentWriter> w, int fail_at) : w_(std::move(w)), left_(fail_at) {}
    absl::Status Write(const void* d, size_t n) override {
      if (--left_ == 0) return absl::ResourceExhaustedError("injected: disk full");
      return w_->Write(d, n);
    }
    int64_t offset() const override { return w_->offset(); }
    Digest digest() override { return w_->digest(); }
    absl::Status Truncate(int64_t s) override { return w_->Truncate(s); }
    absl::Status Commit(const Digest& d, int64_t s, const Labels& l) override {
      return w_->Commit(d, s, l);
    }

   private:
    std::unique_ptr<ContentWriter> w_;
    int left_;
  };
  ContentStore& inner_;
  int fail_at_;
};

TEST_F(DifferTest, FailingStoreWriteStopsTheWholePipelineAndLeavesNothing) {
  std::string src = Path("src");
  MakeRichTree(src);
  WriteFile(src + "/big", std::string(6 << 20, 'x'));  // several 1 MiB chunks: several writes
  for (int fail_at : {1, 2, 5}) {
    FailingStore failing(*store_, fail_at);
    DiffOptions opts;
    opts.compression = Compression::kNone;  // many writes
    auto d = WriteLayerToStore({DiffSource::Kind::kTreeCompare, "", src}, failing, opts);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kResourceExhausted)
        << fail_at << ": " << d.status();
    EXPECT_THAT(std::string(d.status().message()), ::testing::HasSubstr("disk full"));
  }
  int blobs = 0;
  ASSERT_TRUE(store_
                  ->Walk([&](const ContentInfo&) {
                    ++blobs;
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(blobs, 0);
  auto ingests = store_->ListIngests();
  ASSERT_TRUE(ingests.ok());
  EXPECT_TRUE(ingests->empty()) << "failed diffs must abort their ingests";
  // A cancelled diff stops too.
  CancelSource cancel;
  cancel.Cancel("build cancelled");
  DiffOptions opts;
  opts.cancel = cancel.token();
  StringSink sink;
  EXPECT_EQ(WriteLayer({DiffSource::Kind::kTreeCompare, "", src}, sink, opts).status().code(),
            absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace kiln::snapshotter
