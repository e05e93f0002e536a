// Local sources: HostLocalDirs' incremental mirror (what is re-read, what keeps its inode,
// filters, symlinks) and the local source op (content cache key, hardlinked snapshots that keep
// their content when the mirror changes).
#include "engine/ops/local_source.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "engine/ops/local_dirs.h"
#include "engine/ops/source_op.h"
#include "engine/ops/source_op_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llb/caps.h"

namespace kiln::engine {
namespace {

using source_testing::Read;
using source_testing::Sh;
using source_testing::Write;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

ino_t Inode(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

struct stat Lstat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

void SetMtime(const std::string& path, int64_t sec) {
  struct timespec ts[2] = {{sec, 0}, {sec, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << path;
}

std::vector<std::string> Paths(const MirrorIndex& index) {
  std::vector<std::string> out;
  for (const auto& e : index.entries) out.push_back(e.path);
  return out;
}

// A client directory and a mirror, synced through HostLocalDirs.
class HostLocalDirsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("kiln-localdirs-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::move(*dir);
    client_ = dir_.path() + "/client";
    mirror_ = dir_.path() + "/mirrors/m1/tree";
    ASSERT_TRUE(MakeDirs(client_).ok());
    dirs_ =
        std::make_unique<HostLocalDirs>(std::map<std::string, std::string>{{"context", client_}});
  }

  void Sync(const LocalDirFilter& filter = {}) {
    absl::Status st = dirs_->Sync("context", filter, mirror_, CancelToken());
    ASSERT_TRUE(st.ok()) << st;
  }
  MirrorIndex Index() {
    auto index = LoadMirrorIndex(mirror_);
    EXPECT_TRUE(index.ok()) << index.status();
    return index.ok() ? *index : MirrorIndex();
  }
  Digest ContentDigest() { return MirrorContentDigest(Index()); }

  // A small project: files in nested directories, an executable, a symlink.
  void MakeProject() {
    Write(client_ + "/README.md", "hello\n");
    Write(client_ + "/src/main.c", "int main() { return 0; }\n");
    Write(client_ + "/src/lib/util.c", "void util(void) {}\n");
    Write(client_ + "/run.sh", "#!/bin/sh\necho hi\n", 0755);
    ASSERT_EQ(::symlink("src/main.c", (client_ + "/main-link").c_str()), 0);
  }

  TempDir dir_;
  std::string client_, mirror_;
  std::unique_ptr<HostLocalDirs> dirs_;
};

TEST_F(HostLocalDirsTest, FirstSyncMirrorsFilesModesTimesAndResetsOwners) {
  MakeProject();
  SetMtime(client_ + "/src/main.c", 1000000000);
  ASSERT_EQ(::lchown((client_ + "/README.md").c_str(), 1234, 5678), 0);
  Sync();
  EXPECT_EQ(Read(mirror_ + "/src/main.c"), "int main() { return 0; }\n");
  EXPECT_EQ(Read(mirror_ + "/src/lib/util.c"), "void util(void) {}\n");
  EXPECT_EQ(Lstat(mirror_ + "/run.sh").st_mode & 07777, 0755u);
  EXPECT_EQ(Lstat(mirror_ + "/src/main.c").st_mtim.tv_sec, 1000000000);
  EXPECT_EQ(Lstat(mirror_ + "/README.md").st_uid, 0u);  // buildctl maps owners to 0:0
  EXPECT_EQ(Lstat(mirror_ + "/README.md").st_gid, 0u);
  EXPECT_TRUE(S_ISLNK(Lstat(mirror_ + "/main-link").st_mode));
  EXPECT_THAT(Paths(Index()), ElementsAre("README.md", "main-link", "run.sh", "src", "src/lib",
                                          "src/lib/util.c", "src/main.c"));
  EXPECT_EQ(dirs_->stats().files_copied, 4);
}

TEST_F(HostLocalDirsTest, OwnersKeptWhenNotReset) {
  Write(client_ + "/a", "x");
  ASSERT_EQ(::lchown((client_ + "/a").c_str(), 1234, 5678), 0);
  HostLocalDirs keep({{"context", client_}}, HostLocalDirsOptions{.reset_owner = false});
  ASSERT_TRUE(keep.Sync("context", {}, mirror_, CancelToken()).ok());
  EXPECT_EQ(Lstat(mirror_ + "/a").st_uid, 1234u);
  EXPECT_EQ(Lstat(mirror_ + "/a").st_gid, 5678u);
}

TEST_F(HostLocalDirsTest, SecondSyncWithoutChangesRewritesNothing) {
  MakeProject();
  Sync();
  Digest before = ContentDigest();
  ino_t main_ino = Inode(mirror_ + "/src/main.c");
  ino_t link_ino = Inode(mirror_ + "/main-link");
  struct stat index_before = Lstat(MirrorIndexPath(mirror_));
  LocalSyncStats s0 = dirs_->stats();
  Sync();
  LocalSyncStats s1 = dirs_->stats();
  EXPECT_EQ(s1.files_copied, s0.files_copied);
  EXPECT_EQ(s1.files_rehashed, s0.files_rehashed);
  EXPECT_EQ(s1.entries_removed, s0.entries_removed);
  EXPECT_EQ(Inode(mirror_ + "/src/main.c"), main_ino);
  EXPECT_EQ(Inode(mirror_ + "/main-link"), link_ino);
  EXPECT_EQ(Lstat(MirrorIndexPath(mirror_)).st_ino, index_before.st_ino);  // not even rewritten
  EXPECT_EQ(ContentDigest(), before);
}

TEST_F(HostLocalDirsTest, EditKeepingSizeAndMtimeIsSeen) {
  MakeProject();
  SetMtime(client_ + "/src/main.c", 1500000000);
  Sync();
  Digest before = ContentDigest();
  ino_t old_ino = Inode(mirror_ + "/src/main.c");
  // Same length, same mtime (touch -d back): only ctime tells.
  Write(client_ + "/src/main.c", "int main() { return 1; }\n");
  SetMtime(client_ + "/src/main.c", 1500000000);
  LocalSyncStats s0 = dirs_->stats();
  Sync();
  LocalSyncStats s1 = dirs_->stats();
  EXPECT_EQ(Read(mirror_ + "/src/main.c"), "int main() { return 1; }\n");
  EXPECT_EQ(s1.files_rehashed - s0.files_rehashed, 1);
  EXPECT_EQ(s1.files_copied - s0.files_copied, 1);
  EXPECT_NE(Inode(mirror_ + "/src/main.c"), old_ino);  // a new inode, never an in-place write
  EXPECT_NE(ContentDigest(), before);
}

TEST_F(HostLocalDirsTest, CtimeOnlyChangeIsRehashedButNotCopied) {
  MakeProject();
  Sync();
  Digest before = ContentDigest();
  ino_t old_ino = Inode(mirror_ + "/README.md");
  ASSERT_EQ(::chmod((client_ + "/README.md").c_str(), 0600), 0);
  ASSERT_EQ(::chmod((client_ + "/README.md").c_str(), 0644), 0);  // back: only ctime moved
  LocalSyncStats s0 = dirs_->stats();
  Sync();
  LocalSyncStats s1 = dirs_->stats();
  EXPECT_EQ(s1.files_rehashed - s0.files_rehashed, 1);
  EXPECT_EQ(s1.files_copied - s0.files_copied, 0);
  EXPECT_EQ(Inode(mirror_ + "/README.md"), old_ino);
  EXPECT_EQ(ContentDigest(), before);
}

TEST_F(HostLocalDirsTest, ModeChangeMakesANewInodeAndLeavesTheOldOneAlone) {
  MakeProject();
  Sync();
  // Another name for the old inode, as a snapshot would hold it.
  ASSERT_EQ(::link((mirror_ + "/README.md").c_str(), (dir_.path() + "/held").c_str()), 0);
  ASSERT_EQ(::chmod((client_ + "/README.md").c_str(), 0600), 0);
  Sync();
  EXPECT_EQ(Lstat(mirror_ + "/README.md").st_mode & 07777, 0600u);
  EXPECT_EQ(Lstat(dir_.path() + "/held").st_mode & 07777, 0644u);
  EXPECT_NE(Inode(mirror_ + "/README.md"), Inode(dir_.path() + "/held"));
  EXPECT_EQ(dirs_->stats().metadata_only, 1);
}

TEST_F(HostLocalDirsTest, DeleteAndRenameAreSeen) {
  MakeProject();
  Sync();
  ASSERT_EQ(::rename((client_ + "/src/lib").c_str(), (client_ + "/src/library").c_str()), 0);
  ASSERT_EQ(::unlink((client_ + "/README.md").c_str()), 0);
  Sync();
  EXPECT_THAT(Paths(Index()), ElementsAre("main-link", "run.sh", "src", "src/library",
                                          "src/library/util.c", "src/main.c"));
  struct stat st;
  EXPECT_NE(::lstat((mirror_ + "/README.md").c_str(), &st), 0);
  EXPECT_NE(::lstat((mirror_ + "/src/lib").c_str(), &st), 0);
  EXPECT_EQ(Read(mirror_ + "/src/library/util.c"), "void util(void) {}\n");
}

TEST_F(HostLocalDirsTest, TypeChangesReplaceEntries) {
  Write(client_ + "/x", "file");
  Write(client_ + "/d/inner", "inner");
  Sync();
  ASSERT_EQ(::unlink((client_ + "/x").c_str()), 0);
  Write(client_ + "/x/now-a-dir", "y");
  ASSERT_EQ(Sh(StrCat("rm -rf ", client_, "/d && ln -s /etc ", client_, "/d")), 0);
  Sync();
  EXPECT_EQ(Read(mirror_ + "/x/now-a-dir"), "y");
  EXPECT_TRUE(S_ISLNK(Lstat(mirror_ + "/d").st_mode));
  EXPECT_THAT(Paths(Index()), ElementsAre("d", "x", "x/now-a-dir"));
}

TEST_F(HostLocalDirsTest, SymlinksAreCopiedNeverFollowed) {
  Write(client_ + "/ok", "ok");
  ASSERT_EQ(::symlink("/etc/shadow", (client_ + "/shadow").c_str()), 0);
  ASSERT_EQ(::symlink("/etc", (client_ + "/etcdir").c_str()), 0);
  Sync();
  char buf[64] = {0};
  ASSERT_GT(::readlink((mirror_ + "/shadow").c_str(), buf, sizeof(buf) - 1), 0);
  EXPECT_STREQ(buf, "/etc/shadow");
  EXPECT_TRUE(S_ISLNK(Lstat(mirror_ + "/etcdir").st_mode));
  EXPECT_THAT(Paths(Index()), ElementsAre("etcdir", "ok", "shadow"));  // nothing below etcdir
  for (const auto& e : Index().entries) {
    if (e.path == "shadow") {
      EXPECT_EQ(e.type, MirrorEntry::Type::kSymlink);
      EXPECT_EQ(e.link, "/etc/shadow");
    }
  }
}

TEST_F(HostLocalDirsTest, SpecialFilesAreSkipped) {
  Write(client_ + "/a", "a");
  ASSERT_EQ(::mkfifo((client_ + "/fifo").c_str(), 0644), 0);
  ASSERT_EQ(::mknod((client_ + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  Sync();
  EXPECT_THAT(Paths(Index()), ElementsAre("a"));
}

TEST_F(HostLocalDirsTest, IncludeAndExcludePatternsWithFsutilSemantics) {
  Write(client_ + "/Dockerfile", "FROM x");
  Write(client_ + "/app/main.go", "package main");
  Write(client_ + "/app/debug.log", "noise");
  Write(client_ + "/app/keep.log", "keep");
  Write(client_ + "/node_modules/m/index.js", "x");
  Write(client_ + "/docs/readme", "docs");
  LocalDirFilter f;
  f.exclude_patterns = {"**/*.log", "!app/keep.log", "node_modules"};
  Sync(f);
  EXPECT_THAT(Paths(Index()), ElementsAre("Dockerfile", "app", "app/keep.log", "app/main.go",
                                          "docs", "docs/readme"));

  // Include patterns: the parent directories of included files come along.
  f = {};
  f.include_patterns = {"app/*.go", "docs"};
  Sync(f);
  EXPECT_THAT(Paths(Index()), ElementsAre("app", "app/main.go", "docs", "docs/readme"));
  struct stat st;
  EXPECT_NE(::lstat((mirror_ + "/app/debug.log").c_str(), &st), 0);
}

TEST_F(HostLocalDirsTest, FollowPathsResolveSymlinksInsideTheDirectory) {
  Write(client_ + "/build/Dockerfile.real", "FROM busybox");
  Write(client_ + "/other", "not wanted");
  ASSERT_EQ(::symlink("build/Dockerfile.real", (client_ + "/Dockerfile").c_str()), 0);
  LocalDirFilter f;
  f.include_patterns = {"Dockerfile"};
  f.follow_paths = {"Dockerfile"};
  Sync(f);
  EXPECT_THAT(Paths(Index()), ElementsAre("Dockerfile", "build", "build/Dockerfile.real"));
  EXPECT_EQ(Read(mirror_ + "/Dockerfile"), "FROM busybox");  // through the mirror's own link
}

TEST_F(HostLocalDirsTest, DirtyOrCorruptMirrorIsRebuilt) {
  MakeProject();
  Sync();
  Write(MirrorDirtyPath(mirror_), "");
  EXPECT_TRUE(absl::IsDataLoss(LoadMirrorIndex(mirror_).status()));
  Sync();
  EXPECT_EQ(dirs_->stats().full_rebuilds, 2);  // the first sync and this one
  EXPECT_EQ(Read(mirror_ + "/src/main.c"), "int main() { return 0; }\n");
  std::string index = Read(MirrorIndexPath(mirror_));
  index[index.size() / 2] ^= 0x55;
  Write(MirrorIndexPath(mirror_), index, 0600);
  EXPECT_TRUE(absl::IsDataLoss(LoadMirrorIndex(mirror_).status()));
  Sync();
  EXPECT_EQ(dirs_->stats().full_rebuilds, 3);
  EXPECT_TRUE(LoadMirrorIndex(mirror_).ok());
}

TEST_F(HostLocalDirsTest, FailedSyncKeepsWhatWasDone) {
  MakeProject();
  Sync();
  Write(client_ + "/a-new", "1");
  Write(client_ + "/src/new", "2");
  Write(client_ + "/z-new", "3");
  // Creating anything in the mirror's src/ fails (even for root) while it is immutable.
  if (Sh(StrCat("chattr +i ", mirror_, "/src")) != 0) GTEST_SKIP() << "needs chattr";
  absl::Status failed = dirs_->Sync("context", {}, mirror_, CancelToken());
  Sh(StrCat("chattr -i ", mirror_, "/src"));
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(LoadMirrorIndex(mirror_).ok());  // not left dirty: the index says what is there
  LocalSyncStats s0 = dirs_->stats();
  Sync();
  LocalSyncStats s1 = dirs_->stats();
  EXPECT_EQ(s1.full_rebuilds, s0.full_rebuilds);
  EXPECT_EQ(s1.files_copied - s0.files_copied, 2);  // src/new and z-new; a-new was kept
  EXPECT_EQ(Read(mirror_ + "/a-new"), "1");
  EXPECT_EQ(Read(mirror_ + "/src/new"), "2");
  auto scanned = ScanMirror(mirror_, CancelToken());
  ASSERT_TRUE(scanned.ok());
  EXPECT_EQ(MirrorContentDigest(*scanned), ContentDigest());
}

TEST_F(HostLocalDirsTest, CancelledFirstSyncResumes) {
  MakeProject();
  CancelSource cancel;
  cancel.Cancel("stop");
  EXPECT_TRUE(absl::IsCancelled(dirs_->Sync("context", {}, mirror_, cancel.token())));
  Sync();
  EXPECT_EQ(dirs_->stats().full_rebuilds, 0);  // the cancelled sync left a clean (empty) index
  EXPECT_EQ(Read(mirror_ + "/src/main.c"), "int main() { return 0; }\n");
}

TEST_F(HostLocalDirsTest, UnknownNameIsNotFound) {
  absl::Status st = dirs_->Sync("nope", {}, mirror_, CancelToken());
  EXPECT_TRUE(absl::IsNotFound(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("nope"));
}

TEST_F(HostLocalDirsTest, ScanMirrorAgreesWithTheIndex) {
  MakeProject();
  Sync();
  auto scanned = ScanMirror(mirror_, CancelToken());
  ASSERT_TRUE(scanned.ok()) << scanned.status();
  EXPECT_EQ(MirrorContentDigest(*scanned), ContentDigest());
}

// ---- hardlinks ---------------------------------------------------------------------------

const MirrorEntry* Find(const MirrorIndex& index, const std::string& path) {
  for (const auto& e : index.entries) {
    if (e.path == path) return &e;
  }
  return nullptr;
}

std::string HardlinkOf(const MirrorIndex& index, const std::string& path) {
  const MirrorEntry* e = Find(index, path);
  return e ? e->hardlink : "<missing>";
}

void Link(const std::string& from, const std::string& to) {
  ASSERT_EQ(::link(from.c_str(), to.c_str()), 0) << from << " -> " << to;
}

TEST_F(HostLocalDirsTest, HardlinkGroupIsOneMirrorInode) {
  Write(client_ + "/a", "shared\n", 0750);
  Write(client_ + "/d/x", "plain\n");
  Link(client_ + "/a", client_ + "/d/b");
  Link(client_ + "/a", client_ + "/d/c");
  Sync();
  MirrorIndex index = Index();
  EXPECT_THAT(Paths(index), ElementsAre("a", "d", "d/b", "d/c", "d/x"));
  EXPECT_EQ(HardlinkOf(index, "a"), "");
  EXPECT_EQ(HardlinkOf(index, "d/b"), "a");
  EXPECT_EQ(HardlinkOf(index, "d/c"), "a");
  EXPECT_EQ(HardlinkOf(index, "d/x"), "");
  EXPECT_EQ(Inode(mirror_ + "/d/b"), Inode(mirror_ + "/a"));
  EXPECT_EQ(Inode(mirror_ + "/d/c"), Inode(mirror_ + "/a"));
  EXPECT_NE(Inode(mirror_ + "/d/x"), Inode(mirror_ + "/a"));
  EXPECT_EQ(Lstat(mirror_ + "/a").st_nlink, 3u);
  EXPECT_EQ(Read(mirror_ + "/d/c"), "shared\n");
  EXPECT_EQ(Find(index, "d/b")->mode, 0750u);
  EXPECT_EQ(Find(index, "d/b")->sha256, Find(index, "a")->sha256);
  LocalSyncStats s0 = dirs_->stats();
  EXPECT_EQ(s0.files_copied, 2);  // a and d/x: the other names are links
  EXPECT_EQ(s0.links_made, 2);

  // Nothing changed: nothing is touched, the index is not even rewritten.
  Digest before = ContentDigest();
  struct stat index_before = Lstat(MirrorIndexPath(mirror_));
  Sync();
  LocalSyncStats s1 = dirs_->stats();
  EXPECT_EQ(s1.files_copied, s0.files_copied);
  EXPECT_EQ(s1.links_made, s0.links_made);
  EXPECT_EQ(s1.files_rehashed, s0.files_rehashed);
  EXPECT_EQ(Lstat(MirrorIndexPath(mirror_)).st_ino, index_before.st_ino);
  EXPECT_EQ(ContentDigest(), before);

  // A LocalDirs without an index sees the same groups in the mirror, so the same digest.
  auto scanned = ScanMirror(mirror_, CancelToken());
  ASSERT_TRUE(scanned.ok()) << scanned.status();
  EXPECT_EQ(HardlinkOf(*scanned, "d/c"), "a");
  EXPECT_EQ(MirrorContentDigest(*scanned), before);
}

TEST_F(HostLocalDirsTest, RewriteOfOneNameKeepsTheGroupLinkedWithTheNewContent) {
  Write(client_ + "/a", "version 1\n");
  Link(client_ + "/a", client_ + "/b");
  Sync();
  Digest v1 = ContentDigest();
  // What a snapshot holds.
  Link(mirror_ + "/a", dir_.path() + "/held");
  Write(client_ + "/b", "version 2, longer\n");  // in place: both client names see it
  Sync();
  EXPECT_EQ(Read(mirror_ + "/a"), "version 2, longer\n");
  EXPECT_EQ(Inode(mirror_ + "/a"), Inode(mirror_ + "/b"));
  EXPECT_NE(Inode(mirror_ + "/a"), Inode(dir_.path() + "/held"));
  EXPECT_EQ(Read(dir_.path() + "/held"), "version 1\n");  // never modified in place
  EXPECT_EQ(HardlinkOf(Index(), "b"), "a");
  EXPECT_NE(ContentDigest(), v1);

  // Metadata only: a new inode for the first name, the later one follows.
  Digest v2 = ContentDigest();
  ino_t before = Inode(mirror_ + "/a");
  ASSERT_EQ(::chmod((client_ + "/a").c_str(), 0600), 0);
  Sync();
  EXPECT_NE(Inode(mirror_ + "/a"), before);
  EXPECT_EQ(Inode(mirror_ + "/b"), Inode(mirror_ + "/a"));
  EXPECT_EQ(Lstat(mirror_ + "/b").st_mode & 07777, 0600u);
  EXPECT_EQ(Find(Index(), "b")->mode, 0600u);
  EXPECT_NE(ContentDigest(), v2);
}

TEST_F(HostLocalDirsTest, BreakingTheLinkIsSeen) {
  Write(client_ + "/a", "same\n");
  Link(client_ + "/a", client_ + "/b");
  Sync();
  Digest linked = ContentDigest();
  // b replaced by a copy with the same content, mode and mtime: only the link structure differs.
  ASSERT_EQ(Sh(StrCat("cp -p ", client_, "/a ", client_, "/b.tmp && mv ", client_, "/b.tmp ",
                      client_, "/b")),
            0);
  Sync();
  EXPECT_EQ(HardlinkOf(Index(), "b"), "");
  EXPECT_NE(Inode(mirror_ + "/a"), Inode(mirror_ + "/b"));
  EXPECT_EQ(Lstat(mirror_ + "/a").st_nlink, 1u);
  EXPECT_EQ(Read(mirror_ + "/b"), "same\n");
  Digest separate = ContentDigest();
  EXPECT_NE(separate, linked);

  // Linked again: the digest of the first state again (it does not depend on history).
  ASSERT_EQ(::unlink((client_ + "/b").c_str()), 0);
  Link(client_ + "/a", client_ + "/b");
  Sync();
  EXPECT_EQ(Inode(mirror_ + "/a"), Inode(mirror_ + "/b"));
  EXPECT_EQ(ContentDigest(), linked);

  // The first name replaced by a file of its own: b keeps the old content in its own inode.
  ASSERT_EQ(
      Sh(StrCat("echo other > ", client_, "/a.tmp && mv ", client_, "/a.tmp ", client_, "/a")), 0);
  Sync();
  EXPECT_EQ(Read(mirror_ + "/a"), "other\n");
  EXPECT_EQ(Read(mirror_ + "/b"), "same\n");
  EXPECT_NE(Inode(mirror_ + "/a"), Inode(mirror_ + "/b"));
  EXPECT_EQ(HardlinkOf(Index(), "b"), "");
  auto scanned = ScanMirror(mirror_, CancelToken());
  ASSERT_TRUE(scanned.ok());
  EXPECT_EQ(MirrorContentDigest(*scanned), ContentDigest());
}

TEST_F(HostLocalDirsTest, FailedSyncAfterTheFirstNameChangedRelinksTheGroupNextTime) {
  Write(client_ + "/a", "version 1\n");
  Write(client_ + "/m/keep", "k");
  ASSERT_TRUE(MakeDirs(client_ + "/z").ok());
  Link(client_ + "/a", client_ + "/z/b");
  Sync();
  Write(client_ + "/a", "version 2\n");  // in place: z/b too
  Write(client_ + "/m/new", "n");
  // The sync rewrites a, then fails in m/ before it reaches z/b.
  if (Sh(StrCat("chattr +i ", mirror_, "/m")) != 0) GTEST_SKIP() << "needs chattr";
  absl::Status failed = dirs_->Sync("context", {}, mirror_, CancelToken());
  Sh(StrCat("chattr -i ", mirror_, "/m"));
  ASSERT_FALSE(failed.ok());
  ASSERT_NE(Inode(mirror_ + "/a"), Inode(mirror_ + "/z/b"));  // the state being tested
  // The saved index must not claim z/b is still a name of a's inode.
  MirrorIndex recovered = Index();
  const MirrorEntry* b = Find(recovered, "z/b");
  EXPECT_TRUE(b == nullptr || b->hardlink.empty());
  Sync();
  EXPECT_EQ(Inode(mirror_ + "/a"), Inode(mirror_ + "/z/b"));
  EXPECT_EQ(Read(mirror_ + "/z/b"), "version 2\n");
  EXPECT_EQ(HardlinkOf(Index(), "z/b"), "a");
  auto scanned = ScanMirror(mirror_, CancelToken());
  ASSERT_TRUE(scanned.ok());
  EXPECT_EQ(MirrorContentDigest(*scanned), ContentDigest());
}

TEST_F(HostLocalDirsTest, LinkToAFileOutsideTheDirectoryIsAPlainFile) {
  Write(client_ + "/in", "x\n");
  Link(client_ + "/in", dir_.path() + "/outside");
  Sync();
  EXPECT_EQ(HardlinkOf(Index(), "in"), "");
  EXPECT_EQ(Lstat(mirror_ + "/in").st_nlink, 1u);
  EXPECT_EQ(dirs_->stats().links_made, 0);
}

TEST_F(HostLocalDirsTest, ExcludedFirstNameMakesTheNextNameFirst) {
  Write(client_ + "/a", "x\n");
  Link(client_ + "/a", client_ + "/b");
  Link(client_ + "/a", client_ + "/c");
  Sync();
  Link(mirror_ + "/a", dir_.path() + "/held");
  LocalDirFilter f;
  f.exclude_patterns = {"a"};
  Sync(f);
  MirrorIndex index = Index();
  EXPECT_THAT(Paths(index), ElementsAre("b", "c"));
  EXPECT_EQ(HardlinkOf(index, "b"), "");
  EXPECT_EQ(HardlinkOf(index, "c"), "b");
  EXPECT_EQ(Inode(mirror_ + "/b"), Inode(mirror_ + "/c"));
  EXPECT_EQ(Lstat(mirror_ + "/b").st_nlink, 2u);  // the old group's inode is not reused
  EXPECT_EQ(Lstat(dir_.path() + "/held").st_nlink, 1u);
  EXPECT_EQ(Read(mirror_ + "/c"), "x\n");

  // The same from scratch.
  HostLocalDirs fresh({{"context", client_}});
  std::string other = dir_.path() + "/mirrors/m2/tree";
  ASSERT_TRUE(fresh.Sync("context", f, other, CancelToken()).ok());
  auto fresh_index = LoadMirrorIndex(other);
  ASSERT_TRUE(fresh_index.ok());
  EXPECT_EQ(HardlinkOf(*fresh_index, "c"), "b");
  EXPECT_EQ(MirrorContentDigest(*fresh_index), ContentDigest());
}

TEST_F(HostLocalDirsTest, IndexOfAnOlderVersionIsRebuilt) {
  Write(client_ + "/a", "x\n");
  Link(client_ + "/a", client_ + "/b");
  Sync();
  std::string index = Read(MirrorIndexPath(mirror_));
  index.replace(0, 8, "KILNMIX1");
  Write(MirrorIndexPath(mirror_), index, 0600);
  auto loaded = LoadMirrorIndex(mirror_);
  EXPECT_TRUE(absl::IsDataLoss(loaded.status())) << loaded.status();
  EXPECT_THAT(loaded.status().message(), HasSubstr("older version"));
  int64_t rebuilds = dirs_->stats().full_rebuilds;
  Sync();
  EXPECT_EQ(dirs_->stats().full_rebuilds, rebuilds + 1);
  EXPECT_EQ(HardlinkOf(Index(), "b"), "a");
  EXPECT_EQ(Inode(mirror_ + "/a"), Inode(mirror_ + "/b"));
}

TEST_F(HostLocalDirsTest, IndexWithABadHardlinkIsCorrupt) {
  MirrorIndex bad;
  MirrorEntry dir;
  dir.path = "d";
  dir.type = MirrorEntry::Type::kDir;
  MirrorEntry file;
  file.path = "f";
  file.hardlink = "d";  // not a file
  bad.entries = {dir, file};
  ASSERT_TRUE(MakeDirs(dir_.path() + "/mirrors/m1").ok());
  ASSERT_TRUE(SaveMirrorIndex(mirror_, bad).ok());
  EXPECT_TRUE(absl::IsDataLoss(LoadMirrorIndex(mirror_).status()));
  bad.entries[1].hardlink = "later";  // not an earlier entry
  MirrorEntry later;
  later.path = "later";
  bad.entries.push_back(later);
  ASSERT_TRUE(SaveMirrorIndex(mirror_, bad).ok());
  EXPECT_TRUE(absl::IsDataLoss(LoadMirrorIndex(mirror_).status()));
  file.hardlink = "later";
  bad.entries = {later, file};  // valid
  ASSERT_TRUE(SaveMirrorIndex(mirror_, bad).ok());
  EXPECT_TRUE(LoadMirrorIndex(mirror_).ok());
}

TEST_F(HostLocalDirsTest, CancelledSyncStops) {
  MakeProject();
  CancelSource cancel;
  cancel.Cancel("stop");
  absl::Status st = dirs_->Sync("context", {}, mirror_, cancel.token());
  EXPECT_TRUE(absl::IsCancelled(st)) << st;
}

// ---- the op ------------------------------------------------------------------------------

// Delegates to HostLocalDirs but hides its mirror promises, like a LocalDirs that keeps no
// index would.
class PlainLocalDirs : public LocalDirs {
 public:
  explicit PlainLocalDirs(std::shared_ptr<HostLocalDirs> inner) : inner_(std::move(inner)) {}
  absl::Status Sync(const std::string& name, const LocalDirFilter& filter,
                    const std::string& mirror_dir, const CancelToken& cancel) override {
    return inner_->Sync(name, filter, mirror_dir, cancel);
  }

 private:
  std::shared_ptr<HostLocalDirs> inner_;
};

class LocalSourceOpTest : public source_testing::WorkerTest {
 protected:
  void SetUp() override {
    WorkerTest::SetUp();
    if (IsSkipped()) return;
    client_ = dir_.path() + "/client";
    Write(client_ + "/a.txt", "version 1\n");
    Write(client_ + "/dir/b.txt", "bee\n", 0600);
    ASSERT_EQ(::symlink("/etc/shadow", (client_ + "/shadow").c_str()), 0);
    dirs_ =
        std::make_shared<HostLocalDirs>(std::map<std::string, std::string>{{"context", client_}});
  }

  OpContext Ctx(std::shared_ptr<LocalDirs> dirs = nullptr) {
    OpContext ctx;
    ctx.session = source_testing::Session(
        {{kSessionLocalDirs, std::shared_ptr<LocalDirs>(dirs ? dirs : dirs_)},
         {kSessionId, std::string("session-1")}});
    return ctx;
  }

  std::unique_ptr<Op> NewOp(const std::map<std::string, std::string>& attrs = {}) {
    auto op = NewSourceOp(source_testing::SourceOp("local://context", attrs), Env());
    EXPECT_TRUE(op.ok()) << op.status();
    return op.ok() ? std::move(*op) : nullptr;
  }

  std::string client_;
  std::shared_ptr<HostLocalDirs> dirs_;
};

TEST_F(LocalSourceOpTest, UnchangedContextGivesTheSameKeyWithoutCopying) {
  auto op1 = NewOp();
  auto cm1 = op1->GetCacheMap(Ctx());
  ASSERT_TRUE(cm1.ok()) << cm1.status();
  int64_t copied = dirs_->stats().files_copied;
  // A new build, a new session, another op: the mirror is found by the directory's shared key.
  auto op2 = NewOp({{llb::kAttrLocalSessionID, "session-2"}, {llb::kAttrLocalUniqueID, "u2"}});
  auto cm2 = op2->GetCacheMap(Ctx());
  ASSERT_TRUE(cm2.ok()) << cm2.status();
  EXPECT_EQ(cm1->digest, cm2->digest);
  EXPECT_TRUE(cm2->alt_digests.empty());
  EXPECT_FALSE(cm2->uncacheable);
  EXPECT_EQ(dirs_->stats().files_copied, copied);

  Write(client_ + "/a.txt", "version 2\n");
  auto op3 = NewOp();
  auto cm3 = op3->GetCacheMap(Ctx());
  ASSERT_TRUE(cm3.ok());
  EXPECT_NE(cm3->digest, cm1->digest);
  EXPECT_EQ(dirs_->stats().files_copied, copied + 1);
}

TEST_F(LocalSourceOpTest, SnapshotsAreHardlinkedAndKeepTheirContentAfterTheMirrorChanges) {
  auto op1 = NewOp();
  ASSERT_TRUE(op1->GetCacheMap(Ctx()).ok());
  auto r1 = op1->Exec(Ctx(), {});
  ASSERT_TRUE(r1.ok()) << r1.status();
  WithSnapshot((*r1)[0], [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/a.txt"), "version 1\n");
    EXPECT_EQ(Read(root + "/dir/b.txt"), "bee\n");
    EXPECT_EQ(Lstat(root + "/dir/b.txt").st_mode & 07777, 0600u);
    EXPECT_EQ(Lstat(root + "/a.txt").st_uid, 0u);
    EXPECT_GE(Lstat(root + "/a.txt").st_nlink, 2u);  // shared with the mirror
    EXPECT_TRUE(S_ISLNK(Lstat(root + "/shadow").st_mode));
  });

  Write(client_ + "/a.txt", "version 2\n");
  ASSERT_EQ(::chmod((client_ + "/dir/b.txt").c_str(), 0640), 0);
  auto op2 = NewOp();
  ASSERT_TRUE(op2->GetCacheMap(Ctx()).ok());
  auto r2 = op2->Exec(Ctx(), {});
  ASSERT_TRUE(r2.ok()) << r2.status();
  WithSnapshot((*r2)[0], [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/a.txt"), "version 2\n");
    EXPECT_EQ(Lstat(root + "/dir/b.txt").st_mode & 07777, 0640u);
  });
  WithSnapshot((*r1)[0], [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/a.txt"), "version 1\n");
    EXPECT_EQ(Lstat(root + "/dir/b.txt").st_mode & 07777, 0600u);
  });
}

TEST_F(LocalSourceOpTest, MirrorChangedBetweenCacheMapAndExecIsAborted) {
  auto op1 = NewOp();
  ASSERT_TRUE(op1->GetCacheMap(Ctx()).ok());
  Write(client_ + "/a.txt", "changed by another build\n");
  auto op2 = NewOp();
  ASSERT_TRUE(op2->GetCacheMap(Ctx()).ok());
  auto r1 = op1->Exec(Ctx(), {});
  EXPECT_TRUE(absl::IsAborted(r1.status())) << r1.status();
  auto r2 = op2->Exec(Ctx(), {});
  EXPECT_TRUE(r2.ok()) << r2.status();
}

TEST_F(LocalSourceOpTest, WithoutMirrorPromisesFilesAreCopied) {
  auto plain = std::make_shared<PlainLocalDirs>(dirs_);
  auto op = NewOp();
  auto cm = op->GetCacheMap(Ctx(plain));
  ASSERT_TRUE(cm.ok()) << cm.status();
  auto r = op->Exec(Ctx(plain), {});
  ASSERT_TRUE(r.ok()) << r.status();
  WithSnapshot((*r)[0], [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/a.txt"), "version 1\n");
    EXPECT_EQ(Lstat(root + "/a.txt").st_nlink, 1u);
  });
  // Same content, same key, whichever LocalDirs delivered it.
  auto op2 = NewOp();
  auto cm2 = op2->GetCacheMap(Ctx());
  ASSERT_TRUE(cm2.ok());
  EXPECT_EQ(cm->digest, cm2->digest);
}

TEST_F(LocalSourceOpTest, HardlinksReachTheSnapshotAndTheKey) {
  Link(client_ + "/a.txt", client_ + "/dir/a-again.txt");
  auto op = NewOp();
  auto cm = op->GetCacheMap(Ctx());
  ASSERT_TRUE(cm.ok()) << cm.status();
  auto r = op->Exec(Ctx(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  WithSnapshot((*r)[0], [&](const std::string& root) {
    EXPECT_EQ(Inode(root + "/a.txt"), Inode(root + "/dir/a-again.txt"));
    EXPECT_EQ(Read(root + "/dir/a-again.txt"), "version 1\n");
  });
  // Copied rather than hardlinked from the mirror: still one inode with exactly two names.
  auto plain = std::make_shared<PlainLocalDirs>(dirs_);
  auto op2 = NewOp();
  auto cm2 = op2->GetCacheMap(Ctx(plain));
  ASSERT_TRUE(cm2.ok()) << cm2.status();
  EXPECT_EQ(cm2->digest, cm->digest);
  auto r2 = op2->Exec(Ctx(plain), {});
  ASSERT_TRUE(r2.ok()) << r2.status();
  WithSnapshot((*r2)[0], [&](const std::string& root) {
    EXPECT_EQ(Inode(root + "/a.txt"), Inode(root + "/dir/a-again.txt"));
    EXPECT_EQ(Lstat(root + "/a.txt").st_nlink, 2u);
  });
  // The link broken, content unchanged: another key.
  ASSERT_EQ(Sh(StrCat("cp -p ", client_, "/a.txt ", client_, "/dir/t && mv ", client_, "/dir/t ",
                      client_, "/dir/a-again.txt")),
            0);
  auto op3 = NewOp();
  auto cm3 = op3->GetCacheMap(Ctx());
  ASSERT_TRUE(cm3.ok()) << cm3.status();
  EXPECT_NE(cm3->digest, cm->digest);
  auto r3 = op3->Exec(Ctx(), {});
  ASSERT_TRUE(r3.ok()) << r3.status();
  WithSnapshot((*r3)[0], [&](const std::string& root) {
    EXPECT_NE(Inode(root + "/a.txt"), Inode(root + "/dir/a-again.txt"));
  });
  WithSnapshot((*r)[0], [&](const std::string& root) {  // the first snapshot is unchanged
    EXPECT_EQ(Inode(root + "/a.txt"), Inode(root + "/dir/a-again.txt"));
  });
}

TEST_F(LocalSourceOpTest, FiltersAndDifferAttrs) {
  auto op = NewOp({{llb::kAttrExcludePatterns, R"(["dir"])"},
                   {llb::kAttrLocalDiffer, llb::kAttrLocalDifferNone}});
  ASSERT_TRUE(op->GetCacheMap(Ctx()).ok());
  auto r = op->Exec(Ctx(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  WithSnapshot((*r)[0], [&](const std::string& root) {
    struct stat st;
    EXPECT_NE(::lstat((root + "/dir").c_str(), &st), 0);
    EXPECT_EQ(Read(root + "/a.txt"), "version 1\n");
  });
  // differ=none transfers everything again.
  int64_t copied = dirs_->stats().files_copied;
  auto again = NewOp({{llb::kAttrExcludePatterns, R"(["dir"])"},
                      {llb::kAttrLocalDiffer, llb::kAttrLocalDifferNone}});
  ASSERT_TRUE(again->GetCacheMap(Ctx()).ok());
  EXPECT_EQ(dirs_->stats().files_copied, copied + 1);
}

TEST_F(LocalSourceOpTest, SessionErrors) {
  auto op = NewOp();
  auto cm = op->GetCacheMap(OpContext());
  EXPECT_TRUE(absl::IsFailedPrecondition(cm.status())) << cm.status();
  EXPECT_THAT(cm.status().message(), HasSubstr("without a session"));
  // "prefix:id" renames the directory asked for, as BuildKit does.
  auto renamed = NewOp({{llb::kAttrLocalSessionID, "other:session-1"}});
  auto cm2 = renamed->GetCacheMap(Ctx());
  EXPECT_TRUE(absl::IsNotFound(cm2.status())) << cm2.status();
  EXPECT_THAT(cm2.status().message(), HasSubstr("other-context"));
}

TEST_F(LocalSourceOpTest, BadAttrsAreInvalidArgument) {
  for (const auto& attrs : std::vector<std::map<std::string, std::string>>{
           {{llb::kAttrIncludePatterns, "not json"}},
           {{llb::kAttrExcludePatterns, R"([1,2])"}},
           {{llb::kAttrLocalDiffer, "content"}},
           {{llb::kAttrIncludePatterns, R"(["[unterminated"])"}}}) {
    auto op = NewSourceOp(source_testing::SourceOp("local://context", attrs), Env());
    if (op.ok()) {
      // Pattern syntax is checked when the filter is built.
      auto cm = (*op)->GetCacheMap(Ctx());
      EXPECT_TRUE(absl::IsInvalidArgument(cm.status())) << cm.status();
    } else {
      EXPECT_TRUE(absl::IsInvalidArgument(op.status())) << op.status();
    }
  }
}

}  // namespace
}  // namespace kiln::engine
