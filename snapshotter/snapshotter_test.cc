// Conformance suite for the Snapshotter interface, run against the overlay and naive
// implementations, plus overlay-specific tests (mount options, deep chains, flattening).
#include <atomic>
#include <set>
#include <thread>

#include <dirent.h>
#include <sys/stat.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "snapshotter/mount.h"
#include "snapshotter/overlay_snapshotter.h"
#include "snapshotter/test_util.h"

namespace kiln::snapshotter {
namespace {

using testing::Exists;
using testing::ReadOrEmpty;
using testing::WriteFile;

class SnapshotterConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    KILN_SKIP_WITHOUT_ROOT();
    if (GetParam() == "overlay") KILN_SKIP_WITHOUT_OVERLAY();
    auto dir = TempDir::Create("kiln-snap-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::move(*dir);
    Reopen();
  }
  void Reopen() {
    sn_.reset();
    auto s = GetParam() == "overlay" ? OpenOverlaySnapshotter(dir_.path())
                                     : OpenNaiveSnapshotter(dir_.path());
    ASSERT_TRUE(s.ok()) << s.status();
    sn_ = std::move(*s);
  }
  // Mounts `mounts` on a fresh directory; the returned owner unmounts.
  std::pair<std::string, ScopedMount> MountAt(const absl::StatusOr<std::vector<Mount>>& mounts) {
    EXPECT_TRUE(mounts.ok()) << mounts.status();
    std::string target = StrCat(dir_.path(), "/mnt", counter_++);
    EXPECT_TRUE(MakeDirs(target).ok());
    auto m = ScopedMount::MountAll(*mounts, target);
    EXPECT_TRUE(m.ok()) << m.status();
    return {target, std::move(*m)};
  }
  std::vector<std::string> SnapshotDirs() {
    std::vector<std::string> out;
    if (DIR* d = opendir((dir_.path() + "/snapshots").c_str())) {
      while (dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (!n.empty() && isdigit(static_cast<unsigned char>(n[0]))) out.push_back(n);
      }
      closedir(d);
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Snapshotter> sn_;
  int counter_ = 0;
};

TEST_P(SnapshotterConformance, PrepareCommitViewAndChildChanges) {
  {
    auto [root, m] = MountAt(sn_->Prepare("a", ""));
    WriteFile(root + "/keep", "keep");
    WriteFile(root + "/change", "old");
    WriteFile(root + "/gone", "gone");
    ASSERT_EQ(mkdir((root + "/dir").c_str(), 0750), 0);
    WriteFile(root + "/dir/inner", "inner");
    ASSERT_EQ(symlink("keep", (root + "/link").c_str()), 0);
  }
  ASSERT_TRUE(sn_->Commit("base", "a").ok());
  EXPECT_TRUE(absl::IsNotFound(sn_->Stat("a").status()));
  auto st = sn_->Stat("base");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->kind, SnapshotKind::kCommitted);

  {
    auto [root, m] = MountAt(sn_->Prepare("b", "base"));
    EXPECT_EQ(ReadOrEmpty(root + "/dir/inner"), "inner");
    WriteFile(root + "/change", "new");
    ASSERT_EQ(unlink((root + "/gone").c_str()), 0);
    WriteFile(root + "/added", "added");
    ASSERT_EQ(rename((root + "/dir/inner").c_str(), (root + "/dir/moved").c_str()), 0);
  }
  ASSERT_TRUE(sn_->Commit("layer2", "b").ok());
  auto st2 = sn_->Stat("layer2");
  ASSERT_TRUE(st2.ok());
  EXPECT_EQ(st2->parent, "base");

  {
    auto [root, m] = MountAt(sn_->View("v2", "layer2"));
    EXPECT_EQ(ReadOrEmpty(root + "/keep"), "keep");
    EXPECT_EQ(ReadOrEmpty(root + "/change"), "new");
    EXPECT_FALSE(Exists(root + "/gone"));
    EXPECT_FALSE(Exists(root + "/dir/inner"));
    EXPECT_EQ(ReadOrEmpty(root + "/dir/moved"), "inner");
    EXPECT_EQ(ReadOrEmpty(root + "/added"), "added");
    char buf[16] = {};
    ASSERT_GT(readlink((root + "/link").c_str(), buf, sizeof(buf)), 0);
    EXPECT_STREQ(buf, "keep");
    struct stat s;
    ASSERT_EQ(stat((root + "/dir").c_str(), &s), 0);
    EXPECT_EQ(s.st_mode & 07777, 0750u);
    // Views are read-only.
    EXPECT_LT(open((root + "/new").c_str(), O_CREAT | O_WRONLY, 0644), 0);
    EXPECT_EQ(errno, EROFS);
  }
  {
    // The committed parent is unchanged.
    auto [root, m] = MountAt(sn_->View("v1", "base"));
    EXPECT_EQ(ReadOrEmpty(root + "/change"), "old");
    EXPECT_EQ(ReadOrEmpty(root + "/gone"), "gone");
    EXPECT_EQ(ReadOrEmpty(root + "/dir/inner"), "inner");
    EXPECT_FALSE(Exists(root + "/added"));
  }
  auto vst = sn_->Stat("v1");
  ASSERT_TRUE(vst.ok());
  EXPECT_EQ(vst->kind, SnapshotKind::kView);
}

TEST_P(SnapshotterConformance, ErrorsAreClear) {
  ASSERT_TRUE(sn_->Prepare("a", "").ok());
  EXPECT_EQ(sn_->Prepare("a", "").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(sn_->Prepare("x", "missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(sn_->Prepare("x", "a").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sn_->View("x", "a").status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(sn_->Commit("c", "a").ok());
  EXPECT_EQ(sn_->Commit("c2", "a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(sn_->Mounts("c").status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(sn_->View("v", "c").ok());
  EXPECT_EQ(sn_->Commit("c3", "v").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(sn_->Prepare("b", "c").ok());
  EXPECT_EQ(sn_->Commit("c", "b").code(), absl::StatusCode::kAlreadyExists);
  absl::Status rm = sn_->Remove("c");
  EXPECT_EQ(rm.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(rm.message()), ::testing::HasSubstr("child"));
  EXPECT_THAT(std::string(rm.message()), ::testing::HasSubstr("`b`"));
  EXPECT_EQ(sn_->Remove("nope").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(sn_->Prepare("", "").status().code(), absl::StatusCode::kInvalidArgument);
  // Children gone: the parent can go.
  ASSERT_TRUE(sn_->Remove("b").ok());
  ASSERT_TRUE(sn_->Remove("v").ok());
  EXPECT_TRUE(sn_->Remove("c").ok());
  EXPECT_TRUE(SnapshotDirs().empty());
}

TEST_P(SnapshotterConformance, MountsStatWalkAndLabels) {
  auto m1 = sn_->Prepare("a", "", {{"l", "1"}});
  ASSERT_TRUE(m1.ok());
  auto again = sn_->Mounts("a");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *m1);
  ASSERT_TRUE(sn_->Commit("c", "a", {{"m", "2"}}).ok());
  ASSERT_TRUE(sn_->Prepare("b", "c").ok());
  ASSERT_TRUE(sn_->View("v", "c").ok());
  auto st = sn_->Stat("c");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->labels, (Labels{{"l", "1"}, {"m", "2"}}));
  std::map<std::string, SnapshotKind> seen;
  ASSERT_TRUE(sn_->Walk([&](const SnapshotInfo& i) {
                   seen[i.key] = i.kind;
                   return absl::OkStatus();
                 })
                  .ok());
  EXPECT_EQ(seen, (std::map<std::string, SnapshotKind>{{"b", SnapshotKind::kActive},
                                                       {"c", SnapshotKind::kCommitted},
                                                       {"v", SnapshotKind::kView}}));
}

TEST_P(SnapshotterConformance, UsageCountsOwnLayer) {
  {
    auto [root, m] = MountAt(sn_->Prepare("a", ""));
    WriteFile(root + "/big", std::string(1 << 20, 'x'));
    WriteFile(root + "/small", "s");
    ASSERT_EQ(link((root + "/small").c_str(), (root + "/small2").c_str()), 0);
  }
  auto u = sn_->Usage("a");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_GE(u->size, 1 << 20);
  EXPECT_EQ(u->inodes, 3);  // root dir, big, small (hardlinked once)
  ASSERT_TRUE(sn_->Commit("c", "a").ok());
  auto uc = sn_->Usage("c");
  ASSERT_TRUE(uc.ok());
  EXPECT_EQ(uc->inodes, 3);
  EXPECT_EQ(uc->size, u->size);
}

TEST_P(SnapshotterConformance, MetadataSurvivesReopen) {
  {
    auto [root, m] = MountAt(sn_->Prepare("a", ""));
    WriteFile(root + "/f", "persist");
  }
  ASSERT_TRUE(sn_->Commit("c", "a").ok());
  ASSERT_TRUE(sn_->Prepare("b", "c").ok());
  Reopen();
  auto st = sn_->Stat("b");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->parent, "c");
  auto [root, m] = MountAt(sn_->Mounts("b"));
  EXPECT_EQ(ReadOrEmpty(root + "/f"), "persist");
  // New ids never collide with old ones.
  ASSERT_TRUE(sn_->Prepare("d", "c").ok());
  EXPECT_EQ(SnapshotDirs().size(), 3u);
}

TEST_P(SnapshotterConformance, CleanupRemovesOrphansOnly) {
  ASSERT_TRUE(sn_->Prepare("a", "").ok());
  std::string snaps = dir_.path() + "/snapshots";
  // Crash leftovers: a directory made before its metadata batch, and a half-deleted one.
  ASSERT_TRUE(MakeDirs(snaps + "/9999/fs/deep").ok());
  ASSERT_TRUE(MakeDirs(snaps + "/trash/77/fs").ok());
  Reopen();
  ASSERT_TRUE(sn_->Cleanup().ok());
  EXPECT_FALSE(Exists(snaps + "/9999"));
  EXPECT_FALSE(Exists(snaps + "/trash/77"));
  EXPECT_TRUE(sn_->Stat("a").ok());
  EXPECT_EQ(SnapshotDirs().size(), 1u);
  // A new snapshot after the crash never reuses the orphan's id range in a confusing way.
  ASSERT_TRUE(sn_->Prepare("b", "").ok());
}

TEST_P(SnapshotterConformance, ConcurrentPreparesGetDistinctSnapshots) {
  ASSERT_TRUE(sn_->Prepare("base-a", "").ok());
  ASSERT_TRUE(sn_->Commit("base", "base-a").ok());
  constexpr int kThreads = 8;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      if (sn_->Prepare(StrCat("k", i), "base").ok()) ok++;
      // Everyone also races for one key: exactly one wins.
      if (sn_->Prepare("shared", "base").ok()) ok += 100;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads + 100);
  EXPECT_EQ(SnapshotDirs().size(), static_cast<size_t>(kThreads + 2));
}

INSTANTIATE_TEST_SUITE_P(Impls, SnapshotterConformance, ::testing::Values("overlay", "naive"),
                         [](const auto& info) { return info.param; });

// ---- overlay-specific ----

class OverlaySnapshotterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KILN_SKIP_WITHOUT_OVERLAY();
    auto dir = TempDir::Create("kiln-ovl-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::move(*dir);
  }
  TempDir dir_;
};

TEST_F(OverlaySnapshotterTest, MountsAreSelfContainedOverlays) {
  auto sn = OpenOverlaySnapshotter(dir_.path());
  ASSERT_TRUE(sn.ok());
  auto base = (*sn)->Prepare("a", "");
  ASSERT_TRUE(base.ok());
  ASSERT_EQ(base->size(), 1u);
  EXPECT_EQ((*base)[0].type, "bind");
  ASSERT_TRUE((*sn)->Commit("c", "a").ok());
  auto child = (*sn)->Prepare("b", "c");
  ASSERT_TRUE(child.ok());
  ASSERT_EQ(child->size(), 1u);
  EXPECT_EQ((*child)[0].type, "overlay");
  EXPECT_THAT((*child)[0].options,
              ::testing::IsSupersetOf({"index=off", "redirect_dir=off", "metacopy=off"}));
  OverlayDirs dirs = ParseOverlayDirs((*child)[0]);
  EXPECT_EQ(dirs.lower.size(), 1u);
  EXPECT_FALSE(dirs.upper.empty());
  // A single-directory view is a read-only bind mount.
  auto view = (*sn)->View("v", "c");
  ASSERT_TRUE(view.ok());
  EXPECT_EQ((*view)[0].type, "bind");
  EXPECT_THAT((*view)[0].options, ::testing::Contains("ro"));
}

// Builds a chain of `depth` layers; layer i adds file i and deletes file i-2.
void BuildChain(Snapshotter& sn, const std::string& mnt_dir, int depth) {
  std::string parent;
  for (int i = 0; i < depth; ++i) {
    std::string key = StrCat("active-", i);
    auto mounts = sn.Prepare(key, parent);
    ASSERT_TRUE(mounts.ok()) << "layer " << i << ": " << mounts.status();
    {
      auto m = ScopedMount::MountAll(*mounts, mnt_dir);
      ASSERT_TRUE(m.ok()) << "layer " << i << ": " << m.status();
      WriteFile(StrCat(mnt_dir, "/f", i), std::to_string(i));
      if (i >= 2) {
        ASSERT_EQ(unlink(StrCat(mnt_dir, "/f", i - 2).c_str()), 0) << i;
      }
      if (i > 0) WriteFile(mnt_dir + "/top", std::to_string(i));
    }
    parent = StrCat("layer-", i);
    ASSERT_TRUE(sn.Commit(parent, key).ok());
  }
}

void ExpectChainTop(const std::string& root, int depth) {
  for (int i = 0; i < depth; ++i) {
    bool present = i >= depth - 2;
    EXPECT_EQ(Exists(StrCat(root, "/f", i)), present) << "f" << i;
  }
  EXPECT_EQ(ReadOrEmpty(root + "/top"), std::to_string(depth - 1));
}

TEST_F(OverlaySnapshotterTest, DeepChainBeyondOnePageOfMountOptions) {
  constexpr int kDepth = 160;
  auto sn = OpenOverlaySnapshotter(dir_.path());
  ASSERT_TRUE(sn.ok());
  std::string mnt = dir_.path() + "/mnt";
  ASSERT_TRUE(MakeDirs(mnt).ok());
  BuildChain(**sn, mnt, kDepth);
  if (HasFatalFailure()) return;
  auto view = (*sn)->View("top", StrCat("layer-", kDepth - 1));
  ASSERT_TRUE(view.ok());
  OverlayDirs dirs = ParseOverlayDirs((*view)[0]);
  EXPECT_EQ(dirs.lower.size(), static_cast<size_t>(kDepth));
  size_t option_bytes = 0;
  for (auto& o : (*view)[0].options) option_bytes += o.size() + 1;
  EXPECT_GT(option_bytes, 4096u) << "the chain must overflow one page of mount options";

  // Plain mount(2) cannot take it: the fallback is needed, not decorative.
  auto plain = ScopedMount::MountAll(*view, mnt, OverlayMountMethod::kPlain);
  EXPECT_FALSE(plain.ok());
  for (auto method : {OverlayMountMethod::kAuto, OverlayMountMethod::kRelativeLowerdirs,
                      OverlayMountMethod::kFsconfigAppend}) {
    auto m = ScopedMount::MountAll(*view, mnt, method);
    ASSERT_TRUE(m.ok()) << static_cast<int>(method) << ": " << m.status();
    ExpectChainTop(mnt, kDepth);
  }
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
  EXPECT_EQ(std::string(cwd).find("snapshots"), std::string::npos) << "process cwd changed";
}

TEST_F(OverlaySnapshotterTest, ChainsPastTheStackLimitAreFlattened) {
  constexpr int kDepth = 14;
  OverlaySnapshotterOptions opts;
  opts.max_lower_layers = 5;
  auto sn = OpenOverlaySnapshotter(dir_.path(), opts);
  ASSERT_TRUE(sn.ok());
  std::string mnt = dir_.path() + "/mnt";
  ASSERT_TRUE(MakeDirs(mnt).ok());
  BuildChain(**sn, mnt, kDepth);
  if (HasFatalFailure()) return;
  auto view = (*sn)->View("top", StrCat("layer-", kDepth - 1));
  ASSERT_TRUE(view.ok());
  EXPECT_LE(ParseOverlayDirs((*view)[0]).lower.size(), 5u);
  {
    auto m = ScopedMount::MountAll(*view, mnt);
    ASSERT_TRUE(m.ok()) << m.status();
    ExpectChainTop(mnt, kDepth);
  }
  // The logical chain is intact.
  auto st = (*sn)->Stat(StrCat("layer-", kDepth - 1));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->parent, StrCat("layer-", kDepth - 2));
  // Flattened copies survive a restart's Cleanup, and intermediate layers still mount.
  sn->reset();
  sn = OpenOverlaySnapshotter(dir_.path(), opts);
  ASSERT_TRUE(sn.ok());
  ASSERT_TRUE((*sn)->Cleanup().ok());
  auto mid = (*sn)->View("mid", "layer-6");
  ASSERT_TRUE(mid.ok());
  auto m = ScopedMount::MountAll(*mid, mnt);
  ASSERT_TRUE(m.ok()) << m.status();
  ExpectChainTop(mnt, 7);
}

}  // namespace
}  // namespace kiln::snapshotter
