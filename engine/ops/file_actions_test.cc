// Table tests of the file actions (copy, mkdir, mkfile, rm, symlink) on plain directories, plus
// the hostile path cases.  The copy semantics are fsutil's (BuildKit v0.11.6).
#include "engine/ops/file_actions.h"

#include <cstdlib>
#include <functional>
#include <map>
#include <string>

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/strings.h"
#include "engine/ops/copy_tree.h"
#include "engine/ops/file_op_testing.h"
#include "gtest/gtest.h"

namespace kiln::engine {
namespace {

using testing::ListTree;
using testing::WriteFile;
using Tree = std::map<std::string, std::string>;

class FileActionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = TempDir::Create("kiln-fileactions-");
    ASSERT_TRUE(d.ok());
    dir_ = std::move(*d);
    src_ = dir_.path() + "/src";
    dst_ = dir_.path() + "/dst";
    ASSERT_TRUE(MakeDirs(src_).ok());
    ASSERT_TRUE(MakeDirs(dst_).ok());
    ::chmod(src_.c_str(), 0755);
    ::chmod(dst_.c_str(), 0755);
  }

  absl::Status Copy(const pb::FileActionCopy& a, std::optional<FileOwner> owner = std::nullopt) {
    auto s = RootDir::Open(src_);
    auto d = RootDir::Open(dst_);
    if (!s.ok()) return s.status();
    if (!d.ok()) return d.status();
    return DoCopy(*s, *d, a, owner, CancelToken());
  }

  static pb::FileActionCopy CopyAction(std::string src, std::string dest) {
    pb::FileActionCopy a;
    a.set_src(src);
    a.set_dest(dest);
    a.set_mode(-1);
    a.set_timestamp(-1);
    a.set_createdestpath(true);
    return a;
  }

  Tree Dst() { return ListTree(dst_); }

  TempDir dir_;
  std::string src_, dst_;
};

struct CopyCase {
  std::string name;
  std::function<void(const std::string& src, const std::string& dst)> setup;
  std::function<void(pb::FileActionCopy&)> tweak;
  std::string src, dest;
  Tree expect;  // entries that must be present, exactly as described
  std::vector<std::string> absent;
  bool fails = false;
};

TEST_F(FileActionsTest, CopyTable) {
  const std::vector<CopyCase> cases = {
      {"file to new name",
       [](auto& s, auto&) { WriteFile(s, "a.txt", "A"); },
       nullptr,
       "/a.txt",
       "/b.txt",
       {{"b.txt", "f 0644 0:0 A"}},
       {"a.txt"}},
      {"file into dir named with slash",
       [](auto& s, auto&) { WriteFile(s, "a.txt", "A"); },
       nullptr,
       "/a.txt",
       "/dir/",
       {{"dir", "d 0755 0:0"}, {"dir/a.txt", "f 0644 0:0 A"}},
       {}},
      {"file onto existing dir goes inside",
       [](auto& s, auto& d) {
         WriteFile(s, "a.txt", "A");
         WriteFile(d, "existing/keep", "K");
       },
       nullptr,
       "/a.txt",
       "/existing",
       {{"existing/a.txt", "f 0644 0:0 A"}},
       {}},
      {"dir to new dest is the dir itself",
       [](auto& s, auto&) { WriteFile(s, "d/x", "X"); },
       nullptr,
       "/d",
       "/out",
       {{"out/x", "f 0644 0:0 X"}},
       {"out/d"}},
      {"dir onto existing dir goes inside",
       [](auto& s, auto& d) {
         WriteFile(s, "d/x", "X");
         WriteFile(d, "out/keep", "K");
       },
       nullptr,
       "/d",
       "/out",
       {{"out/d/x", "f 0644 0:0 X"}, {"out/keep", "f 0644 0:0 K"}},
       {}},
      {"dir contents merge into existing dir",
       [](auto& s, auto& d) {
         WriteFile(s, "d/x", "X");
         WriteFile(d, "out/keep", "K");
       },
       [](auto& a) { a.set_dircopycontents(true); },
       "/d",
       "/out",
       {{"out/x", "f 0644 0:0 X"}, {"out/keep", "f 0644 0:0 K"}},
       {"out/d"}},
      {"wildcard copies every match",
       [](auto& s, auto&) {
         WriteFile(s, "a.txt", "A");
         WriteFile(s, "b.txt", "B");
         WriteFile(s, "c.md", "C");
       },
       [](auto& a) { a.set_allowwildcard(true); },
       "/*.txt",
       "/out/",
       {{"out/a.txt", "f 0644 0:0 A"}, {"out/b.txt", "f 0644 0:0 B"}},
       {"out/c.md"}},
      {"wildcard in a directory component",
       [](auto& s, auto&) {
         WriteFile(s, "p1/f", "1");
         WriteFile(s, "p2/f", "2");
         WriteFile(s, "q/f", "3");
       },
       [](auto& a) {
         a.set_allowwildcard(true);
         a.set_dircopycontents(true);
       },
       "/p*/f",
       "/out/",
       {{"out/f", "f 0644 0:0 2"}},
       {}},
      {"empty wildcard allowed",
       [](auto& s, auto&) { WriteFile(s, "a.txt", "A"); },
       [](auto& a) {
         a.set_allowwildcard(true);
         a.set_allowemptywildcard(true);
       },
       "/*.none",
       "/out/",
       {},
       {"out"}},
      {"empty wildcard refused",
       [](auto& s, auto&) { WriteFile(s, "a.txt", "A"); },
       [](auto& a) { a.set_allowwildcard(true); },
       "/*.none",
       "/out/",
       {},
       {},
       true},
      {"missing source", nullptr, nullptr, "/nope", "/out", {}, {}, true},
      {"symlink followed",
       [](auto& s, auto&) {
         WriteFile(s, "real.txt", "R");
         ::symlink("real.txt", (s + "/link").c_str());
       },
       [](auto& a) { a.set_followsymlink(true); },
       "/link",
       "/copy",
       {{"copy", "f 0644 0:0 R"}},
       {}},
      {"symlink not followed is copied as a symlink",
       [](auto& s, auto&) {
         WriteFile(s, "real.txt", "R");
         ::symlink("real.txt", (s + "/link").c_str());
       },
       nullptr,
       "/link",
       "/copy",
       {{"copy", "l 0:0 real.txt"}},
       {}},
      {"symlinks inside directories stay symlinks",
       [](auto& s, auto&) {
         WriteFile(s, "d/real", "R");
         ::symlink("/etc/passwd", (s + "/d/abs").c_str());
       },
       [](auto& a) { a.set_followsymlink(true); },
       "/d",
       "/out",
       {{"out/abs", "l 0:0 /etc/passwd"}, {"out/real", "f 0644 0:0 R"}},
       {}},
      {"chmod applies to files and directories",
       [](auto& s, auto&) { WriteFile(s, "d/x", "X", 0600); },
       [](auto& a) { a.set_mode(0751); },
       "/d",
       "/out",
       {{"out", "d 0751 0:0"}, {"out/x", "f 0751 0:0 X"}},
       {}},
      {"symbolic chmod (HEAD modeStr)",
       [](auto& s, auto&) {
         WriteFile(s, "d/x", "X", 0600);
         WriteFile(s, "d/run", "R", 0700);
       },
       [](auto& a) { a.set_modestr("go+rX,u-w"); },
       "/d",
       "/out",
       {{"out", "d 0555 0:0"}, {"out/x", "f 0444 0:0 X"}, {"out/run", "f 0555 0:0 R"}},
       {}},
      {"include and exclude patterns",
       [](auto& s, auto&) {
         WriteFile(s, "d/a.go", "A");
         WriteFile(s, "d/b.txt", "B");
         WriteFile(s, "d/sub/c.go", "C");
         WriteFile(s, "d/sub/skip_test.go", "T");
         WriteFile(s, "d/other/o.txt", "O");
       },
       [](auto& a) {
         a.add_include_patterns("**/*.go");
         a.add_exclude_patterns("**/*_test.go");
         a.set_dircopycontents(true);
       },
       "/d",
       "/out",
       {{"out/a.go", "f 0644 0:0 A"}, {"out/sub/c.go", "f 0644 0:0 C"}},
       {"out/b.txt", "out/sub/skip_test.go", "out/other"}},
      {"createDestPath false needs the parent",
       [](auto& s, auto&) { WriteFile(s, "a", "A"); },
       [](auto& a) { a.set_createdestpath(false); },
       "/a",
       "/missing/dir/a",
       {},
       {},
       true},
      {"createDestPath false with existing parent",
       [](auto& s, auto& d) {
         WriteFile(s, "a", "A");
         WriteFile(d, "there/keep", "K");
       },
       [](auto& a) { a.set_createdestpath(false); },
       "/a",
       "/there/a",
       {{"there/a", "f 0644 0:0 A"}},
       {}},
      {"file onto existing directory of the same path is refused",
       [](auto& s, auto& d) {
         WriteFile(s, "x/f", "new");
         WriteFile(d, "out/f/inside", "I");
       },
       [](auto& a) { a.set_dircopycontents(true); },
       "/x",
       "/out",
       {},
       {},
       true},
      {"always replace existing dest paths (HEAD)",
       [](auto& s, auto& d) {
         WriteFile(s, "x/f", "new");
         WriteFile(d, "out/f/inside", "I");
         ::symlink("elsewhere", (d + "/out/g").c_str());
         WriteFile(s, "x/g/h", "H");
       },
       [](auto& a) {
         a.set_dircopycontents(true);
         a.set_alwaysreplaceexistingdestpaths(true);
       },
       "/x",
       "/out",
       {{"out/f", "f 0644 0:0 new"}, {"out/g/h", "f 0644 0:0 H"}},
       {"out/f/inside"}},
      {"--parents as HEAD's frontend writes it (pivot, include, required path)",
       [](auto& s, auto&) {
         WriteFile(s, "a/b/c.txt", "C");
         WriteFile(s, "a/b/d.txt", "D");
         WriteFile(s, "a/x.txt", "X");
       },
       [](auto& a) {
         a.set_dircopycontents(true);
         a.set_allowwildcard(true);
         a.set_allowemptywildcard(true);
         a.set_followsymlink(true);
         a.add_include_patterns("a/b/c.txt");
         a.add_required_paths("/a/b/c.txt");
       },
       "/",
       "/dst/",
       {{"dst/a/b/c.txt", "f 0644 0:0 C"}},
       {"dst/a/b/d.txt", "dst/a/x.txt"}},
      {"--parents with a missing required path fails",
       [](auto& s, auto&) { WriteFile(s, "a/x.txt", "X"); },
       [](auto& a) {
         a.set_dircopycontents(true);
         a.add_include_patterns("a/nope.txt");
         a.add_required_paths("/a/nope.txt");
       },
       "/",
       "/dst/",
       {},
       {},
       true},
      {"dot-dot in paths is lexical and stays in the roots",
       [](auto& s, auto&) { WriteFile(s, "a", "A"); },
       nullptr,
       "/../../a",
       "/../../../b",
       {{"b", "f 0644 0:0 A"}},
       {}},
  };
  for (const CopyCase& c : cases) {
    SCOPED_TRACE(c.name);
    SetUp();
    if (c.setup) c.setup(src_, dst_);
    pb::FileActionCopy a = CopyAction(c.src, c.dest);
    if (c.tweak) c.tweak(a);
    absl::Status s = Copy(a);
    if (c.fails) {
      EXPECT_FALSE(s.ok());
      continue;
    }
    ASSERT_TRUE(s.ok()) << s;
    Tree t = Dst();
    for (const auto& [path, desc] : c.expect) EXPECT_EQ(t[path], desc) << path;
    for (const auto& path : c.absent) EXPECT_EQ(t.count(path), 0u) << path;
  }
}

TEST(SymbolicModeTest, ParseAndApply) {
  auto m = SymbolicMode::Parse("u=rwx,g=rx,o=");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->Apply(0644, false), 0750u);
  EXPECT_EQ(SymbolicMode::Parse("a+x")->Apply(0644, false), 0755u);
  EXPECT_EQ(SymbolicMode::Parse("+X")->Apply(0644, false), 0644u);
  EXPECT_EQ(SymbolicMode::Parse("+X")->Apply(0644, true), 0755u);
  EXPECT_EQ(SymbolicMode::Parse("u+s")->Apply(0755, false), 04755u);
  EXPECT_EQ(SymbolicMode::Parse("0640")->Apply(04755, false), 0640u);
  EXPECT_EQ(SymbolicMode::Parse("u+x,g-r")->Apply(0644, false), 0704u);
  EXPECT_FALSE(SymbolicMode::Parse("q+x").ok());
  EXPECT_FALSE(SymbolicMode::Parse("u+z").ok());
  EXPECT_FALSE(SymbolicMode::Parse("").ok());
  EXPECT_FALSE(SymbolicMode::Parse("g=u").ok());
}

TEST_F(FileActionsTest, CopyChownTimestampHardlinksXattrs) {
  WriteFile(src_, "d/a", "A");
  ASSERT_EQ(::link((src_ + "/d/a").c_str(), (src_ + "/d/b").c_str()), 0);
  bool xattrs = ::setxattr((src_ + "/d/a").c_str(), "user.kiln", "v", 1, 0) == 0;
  pb::FileActionCopy a = CopyAction("/d", "/out");
  a.set_timestamp(int64_t{1700000000} * 1000000000 + 5);
  ASSERT_TRUE(Copy(a, FileOwner{1000, 50}).ok());
  struct stat sa, sb, sd;
  ASSERT_EQ(::lstat((dst_ + "/out/a").c_str(), &sa), 0);
  ASSERT_EQ(::lstat((dst_ + "/out/b").c_str(), &sb), 0);
  ASSERT_EQ(::lstat((dst_ + "/out").c_str(), &sd), 0);
  EXPECT_EQ(sa.st_ino, sb.st_ino) << "hardlinks are kept";
  EXPECT_EQ(sa.st_uid, 1000u);
  EXPECT_EQ(sa.st_gid, 50u);
  EXPECT_EQ(sd.st_uid, 1000u);
  EXPECT_EQ(sa.st_mtim.tv_sec, 1700000000);
  EXPECT_EQ(sa.st_mtim.tv_nsec, 5);
  EXPECT_EQ(sd.st_mtim.tv_sec, 1700000000);
  if (xattrs) {
    char v[8];
    EXPECT_EQ(::getxattr((dst_ + "/out/a").c_str(), "user.kiln", v, sizeof(v)), 1);
  }
}

TEST_F(FileActionsTest, CopyKeepsTimesAndOwnersWithoutOptions) {
  WriteFile(src_, "f", "F");
  ASSERT_EQ(::chown((src_ + "/f").c_str(), 123, 456), 0);
  struct timespec ts[2] = {{1000, 0}, {2000, 7}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (src_ + "/f").c_str(), ts, 0), 0);
  ASSERT_TRUE(Copy(CopyAction("/f", "/g")).ok());
  struct stat st;
  ASSERT_EQ(::lstat((dst_ + "/g").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 123u);
  EXPECT_EQ(st.st_gid, 456u);
  EXPECT_EQ(st.st_mtim.tv_sec, 2000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 7);
}

TEST_F(FileActionsTest, UnpacksTarAndTarGz) {
  std::string stage = dir_.path() + "/stage";
  WriteFile(stage, "inner/x.txt", "inside");
  ASSERT_EQ(std::system(StrCat("tar -C ", stage, " -cf ", src_, "/a.tar inner").c_str()), 0);
  ASSERT_EQ(std::system(StrCat("tar -C ", stage, " -czf ", src_, "/b.tar.gz inner").c_str()), 0);
  WriteFile(src_, "plain.gz.txt", "not an archive");
  for (const char* name : {"/a.tar", "/b.tar.gz"}) {
    std::string dest = StrCat("/unpacked", name, "/");
    pb::FileActionCopy a = CopyAction(name, dest);
    a.set_attemptunpackdockercompatibility(true);
    ASSERT_TRUE(Copy(a).ok()) << name;
    Tree t = Dst();
    EXPECT_EQ(t[StrCat(dest.substr(1), "inner/x.txt")], "f 0644 0:0 inside") << name;
  }
  // Without the flag, or for a non-archive, the file is copied as is.
  WriteFile(src_, "plain.txt", "not an archive");
  pb::FileActionCopy a = CopyAction("/plain.txt", "/unpacked/");
  a.set_attemptunpackdockercompatibility(true);
  ASSERT_TRUE(Copy(a).ok());
  EXPECT_EQ(Dst()["unpacked/plain.txt"], "f 0644 0:0 not an archive");
}

// --- hostile paths ---

TEST_F(FileActionsTest, ContextSymlinkToShadowReadsInsideTheContext) {
  // The context holds a symlink to /etc/shadow; COPY follows it inside the context only.
  ::symlink("/etc/shadow", (src_ + "/secret").c_str());
  pb::FileActionCopy a = CopyAction("/secret", "/out");
  a.set_followsymlink(true);
  absl::Status s = Copy(a);
  EXPECT_FALSE(s.ok()) << "must not read the host's /etc/shadow";
  EXPECT_EQ(Dst().count("out"), 0u);
  // With a context-local etc/shadow, that file is what gets copied.
  WriteFile(src_, "etc/shadow", "context shadow");
  ASSERT_TRUE(Copy(a).ok());
  EXPECT_EQ(Dst()["out"], "f 0644 0:0 context shadow");
}

TEST_F(FileActionsTest, SymlinkDirectoryEscapeStaysInRoot) {
  ::symlink("../../..", (src_ + "/a").c_str());
  WriteFile(src_, "x", "root x");
  pb::FileActionCopy a = CopyAction("/a/x", "/out");
  ASSERT_TRUE(Copy(a).ok());
  EXPECT_EQ(Dst()["out"], "f 0644 0:0 root x");
  // And through wildcards.
  SetUp();
  ::symlink("../../..", (src_ + "/a").c_str());
  a = CopyAction("/a/*", "/out/");
  a.set_allowwildcard(true);
  a.set_allowemptywildcard(true);
  ASSERT_TRUE(Copy(a).ok());
  for (const auto& [path, desc] : Dst()) EXPECT_TRUE(path.starts_with("out")) << path;
}

TEST_F(FileActionsTest, DestinationSymlinkPointingOutsideIsConfined) {
  std::string outside = dir_.path() + "/outside";
  ASSERT_TRUE(MakeDirs(outside).ok());
  ::symlink(outside.c_str(), (dst_ + "/evil").c_str());  // absolute: re-rooted
  ::symlink("../../../..", (dst_ + "/up").c_str());      // climbing: clamped
  WriteFile(src_, "f", "payload");
  ASSERT_TRUE(Copy(CopyAction("/f", "/evil/f")).ok());
  ASSERT_TRUE(Copy(CopyAction("/f", "/up/g")).ok());
  EXPECT_TRUE(ListTree(outside).empty()) << "nothing may be written outside the root";
  Tree t = Dst();
  EXPECT_EQ(t[outside.substr(1) + "/f"], "f 0644 0:0 payload");
  EXPECT_EQ(t["g"], "f 0644 0:0 payload");
  // A file target that is a symlink to the outside is replaced, never written through.
  std::string victim = outside + "/victim";
  WriteFile(outside, "victim", "original");
  pb::FileActionCopy a = CopyAction("/f", "/");
  ::symlink(victim.c_str(), (dst_ + "/f").c_str());
  ASSERT_TRUE(Copy(a).ok());
  EXPECT_EQ(*ReadFileToString(victim), "original");
}

TEST_F(FileActionsTest, MkdirMkfileRmSymlink) {
  auto root = RootDir::Open(dst_);
  ASSERT_TRUE(root.ok());
  pb::FileActionMkDir md;
  md.set_path("/a/b/c");
  md.set_mode(0750);
  md.set_makeparents(true);
  md.set_timestamp(-1);
  ASSERT_TRUE(DoMkdir(*root, md, FileOwner{7, 8}).ok());
  md.set_path("/single");
  md.set_makeparents(false);
  ASSERT_TRUE(DoMkdir(*root, md, std::nullopt).ok());
  ASSERT_TRUE(DoMkdir(*root, md, std::nullopt).ok()) << "existing is fine";
  md.set_path("/no/parent");
  EXPECT_FALSE(DoMkdir(*root, md, std::nullopt).ok());

  pb::FileActionMkFile mf;
  mf.set_path("/a/b/c/file");
  mf.set_mode(0640);
  mf.set_data("hello");
  mf.set_timestamp(int64_t{1600000000} * 1000000000);
  ASSERT_TRUE(DoMkfile(*root, mf, FileOwner{5, 6}).ok());

  pb::FileActionSymlink sl;
  sl.set_oldpath("c/file");
  sl.set_newpath("/a/b/link");
  sl.set_timestamp(-1);
  ASSERT_TRUE(DoSymlink(*root, sl, std::nullopt).ok());
  EXPECT_FALSE(DoSymlink(*root, sl, std::nullopt).ok()) << "exists";

  Tree t = ListTree(dst_);
  EXPECT_EQ(t["a/b/c"], "d 0750 7:8");
  EXPECT_EQ(t["a/b/c/file"], "f 0640 5:6 hello");
  EXPECT_EQ(t["a/b/link"], "l 0:0 c/file");
  EXPECT_EQ(t["single"].substr(0, 6), "d 0750");
  struct stat st;
  ASSERT_EQ(::lstat((dst_ + "/a/b/c/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);

  pb::FileActionRm rm;
  rm.set_path("/a/b");
  ASSERT_TRUE(DoRm(*root, rm).ok());
  EXPECT_EQ(ListTree(dst_).count("a/b"), 0u);
  rm.set_path("/does/not/exist");
  EXPECT_TRUE(DoRm(*root, rm).ok()) << "os.RemoveAll semantics";
  WriteFile(dst_, "w/x1", "1");
  WriteFile(dst_, "w/x2", "2");
  WriteFile(dst_, "w/y", "3");
  rm.set_path("/w/x*");
  rm.set_allowwildcard(true);
  ASSERT_TRUE(DoRm(*root, rm).ok());
  t = ListTree(dst_);
  EXPECT_EQ(t.count("w/x1") + t.count("w/x2"), 0u);
  EXPECT_EQ(t.count("w/y"), 1u);
}

TEST_F(FileActionsTest, MkfileThroughOutsideSymlinkIsConfined) {
  std::string outside = dir_.path() + "/outside";
  WriteFile(outside, "target", "original");
  ::symlink((outside + "/target").c_str(), (dst_ + "/link").c_str());
  auto root = RootDir::Open(dst_);
  ASSERT_TRUE(root.ok());
  pb::FileActionMkFile mf;
  mf.set_path("/link");
  mf.set_mode(0644);
  mf.set_data("evil");
  mf.set_timestamp(-1);
  absl::Status s = DoMkfile(*root, mf, std::nullopt);
  EXPECT_EQ(*ReadFileToString(outside + "/target"), "original");
  if (s.ok()) {
    // Confined: written at <root>/<outside path>/target.
    EXPECT_EQ(*ReadFileToString(dst_ + outside + "/target"), "evil");
  }
  pb::FileActionRm rm;
  rm.set_path("/link/../../../../" + outside.substr(1) + "/target");
  ASSERT_TRUE(DoRm(*root, rm).ok());
  EXPECT_TRUE(ReadFileToString(outside + "/target").ok()) << "rm must stay in the root";
}

TEST_F(FileActionsTest, ResolveOwnerByNameAndId) {
  WriteFile(src_, "etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n");
  WriteFile(src_, "etc/group", "root:x:0:\nstaff:x:50:app\n");
  auto root = RootDir::Open(src_);
  ASSERT_TRUE(root.ok());
  pb::ChownOpt c;
  c.mutable_user()->mutable_byname()->set_name("app");
  auto o = ResolveOwner(&c, &*root, &*root);
  ASSERT_TRUE(o.ok() && o->has_value());
  EXPECT_EQ((*o)->uid, 1000u);
  EXPECT_EQ((*o)->gid, 1001u);
  c.mutable_group()->mutable_byname()->set_name("staff");
  o = ResolveOwner(&c, &*root, &*root);
  EXPECT_EQ((*o)->gid, 50u);
  c.mutable_group()->set_byid(77);
  o = ResolveOwner(&c, &*root, &*root);
  EXPECT_EQ((*o)->gid, 77u);
  c.mutable_user()->mutable_byname()->set_name("nobody-here");
  c.clear_group();
  o = ResolveOwner(&c, &*root, &*root);
  EXPECT_EQ((*o)->uid, 0u) << "BuildKit: an unknown name is 0";
  EXPECT_FALSE(ResolveOwner(nullptr, nullptr, nullptr)->has_value());
}

}  // namespace
}  // namespace kiln::engine
