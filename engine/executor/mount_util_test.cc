#include "engine/executor/mount_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/strings.h"

namespace kiln::engine::internal {
namespace {

TEST(ParseMountOptions, SplitsAttributesFromParameters) {
  ParsedMountOptions o = ParseMountOptions(
      {"rbind", "ro", "nosuid", "nodev", "size=65536k", "newinstance", "rprivate", "noatime"});
  EXPECT_TRUE(o.bind);
  EXPECT_TRUE(o.recursive);
  EXPECT_EQ(o.attr_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOATIME);
  EXPECT_EQ(o.attr_clear & MOUNT_ATTR__ATIME, MOUNT_ATTR__ATIME);
  ASSERT_EQ(o.params.size(), 2u);
  EXPECT_EQ(o.params[0], (std::pair<std::string, std::string>{"size", "65536k"}));
  EXPECT_EQ(o.params[1], (std::pair<std::string, std::string>{"newinstance", ""}));

  ParsedMountOptions rw = ParseMountOptions({"ro", "rw", "exec", "bind"});
  EXPECT_TRUE(rw.bind);
  EXPECT_FALSE(rw.recursive);
  EXPECT_EQ(rw.attr_set & MOUNT_ATTR_RDONLY, 0u);
  EXPECT_NE(rw.attr_clear & MOUNT_ATTR_RDONLY, 0u);
  EXPECT_NE(rw.attr_clear & MOUNT_ATTR_NOEXEC, 0u);
}

class InRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tmp = TempDir::Create("kiln-inroot-");
    ASSERT_TRUE(tmp.ok());
    tmp_ = *std::move(tmp);
    root_ = StrCat(tmp_.path(), "/root");
    outside_ = StrCat(tmp_.path(), "/outside");
    ASSERT_TRUE(MakeDirs(StrCat(root_, "/etc")).ok());
    ASSERT_TRUE(MakeDirs(outside_).ok());
    root_fd_.Reset(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root_fd_);
  }
  void Link(const std::string& target, const std::string& name) {
    ASSERT_EQ(::symlink(target.c_str(), StrCat(root_, "/", name).c_str()), 0);
  }
  bool Exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }
  // The host path an fd names.
  std::string PathOf(int fd) {
    char buf[PATH_MAX];
    ssize_t n = ::readlink(StrCat("/proc/self/fd/", fd).c_str(), buf, sizeof(buf));
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

  TempDir tmp_;
  std::string root_, outside_;
  UniqueFd root_fd_;
};

TEST_F(InRootTest, AbsoluteSymlinksResolveInsideTheRoot) {
  Link(outside_, "abs");  // a host path, meaningless inside the root
  auto fd = MakeMountTarget(root_fd_.get(), "/abs/x", TargetKind::kDirectory);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(PathOf(fd->get()), StrCat(root_, outside_, "/x"));
  EXPECT_FALSE(Exists(StrCat(outside_, "/x")));
}

TEST_F(InRootTest, DotDotIsClampedAtTheRoot) {
  Link("../../../../..", "up");
  auto fd = MakeMountTarget(root_fd_.get(), "/up/../../y", TargetKind::kDirectory);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(PathOf(fd->get()), StrCat(root_, "/y"));
  auto parent = ResolveParentInRoot(root_fd_.get(), "/../..");
  ASSERT_TRUE(parent.ok());
  EXPECT_EQ(parent->name, "");
  EXPECT_EQ(PathOf(parent->dir.get()), root_);
}

TEST_F(InRootTest, SymlinkInLastComponentIsFollowed) {
  Link("/etc/real", "etc/hosts");  // dangling: the stub is made at the link's target
  auto fd = MakeMountTarget(root_fd_.get(), "/etc/hosts", TargetKind::kFile);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(PathOf(fd->get()), StrCat(root_, "/etc/real"));
  struct stat st;
  ASSERT_EQ(::stat(StrCat(root_, "/etc/real").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(InRootTest, LoopsAndNonDirectoriesFail) {
  Link("loop2", "loop1");
  Link("loop1", "loop2");
  EXPECT_EQ(MakeMountTarget(root_fd_.get(), "/loop1/x", TargetKind::kDirectory).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(WriteFileAtomic(StrCat(root_, "/file"), "x").ok());
  EXPECT_EQ(MakeMountTarget(root_fd_.get(), "/file/x", TargetKind::kDirectory).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeMountTarget(root_fd_.get(), "/file", TargetKind::kDirectory).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeMountTarget(root_fd_.get(), "/etc", TargetKind::kFile).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(InRootTest, ResolveWithoutCreateReportsMissingParents) {
  EXPECT_EQ(ResolveParentInRoot(root_fd_.get(), "/a/b/c").status().code(),
            absl::StatusCode::kNotFound);
  auto leaf = ResolveParentInRoot(root_fd_.get(), "/etc/missing");
  ASSERT_TRUE(leaf.ok());
  EXPECT_EQ(leaf->name, "missing");
  EXPECT_TRUE(ExistsInRoot(root_fd_.get(), "/etc"));
  EXPECT_FALSE(ExistsInRoot(root_fd_.get(), "/etc/missing"));
  EXPECT_FALSE(ExistsInRoot(root_fd_.get(), "/a/b"));
}

TEST_F(InRootTest, MakeDirsOwnsWhatItCreates) {
  if (::geteuid() != 0) GTEST_SKIP() << "chown needs root";
  Link("/etc", "etclink");
  auto fd = MakeDirsInRoot(root_fd_.get(), "/etclink/a/b", 1000, 1001);
  ASSERT_TRUE(fd.ok()) << fd.status();
  struct stat st;
  ASSERT_EQ(::stat(StrCat(root_, "/etc/a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
  ASSERT_EQ(::stat(StrCat(root_, "/etc/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  ASSERT_EQ(::stat(StrCat(root_, "/etc").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);  // existing directories keep their owner
}

}  // namespace
}  // namespace kiln::engine::internal
