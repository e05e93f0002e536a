#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>

#include "base/cancel.h"
#include "base/digest.h"
#include "base/fs.h"
#include "base/status.h"
#include "base/thread_pool.h"
#include "gtest/gtest.h"

namespace kiln {
namespace {

TEST(Digest, Sha256OfKnownVector) {
  EXPECT_EQ(Digest::Sha256Of("abc").str(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Digest::Sha256Of("").hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Digest, IncrementalMatchesOneShot) {
  Sha256Hasher h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(h.Finish(), Digest::Sha256Of("abc"));
  h.Update("abc");  // Finish() resets
  EXPECT_EQ(h.Finish(), Digest::Sha256Of("abc"));
}

TEST(Digest, ParseRejectsBadInput) {
  EXPECT_TRUE(Digest::Parse("sha256:" + std::string(64, 'a')).ok());
  EXPECT_FALSE(Digest::Parse("sha256:" + std::string(63, 'a')).ok());
  EXPECT_FALSE(Digest::Parse("sha256:" + std::string(64, 'A')).ok());
  EXPECT_FALSE(Digest::Parse("md5:abc").ok());
  auto bad = Digest::Parse("nocolon");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("`nocolon`"), std::string_view::npos);
}

TEST(Status, ErrnoStatusNamesOperation) {
  absl::Status s = ErrnoStatus(ENOENT, "open `/x`");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "open `/x`: No such file or directory");
  EXPECT_EQ(Annotate(s, "load config").message(),
            "load config: open `/x`: No such file or directory");
  EXPECT_TRUE(Annotate(absl::OkStatus(), "x").ok());
}

absl::StatusOr<int> Half(int x) {
  if (x % 2) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::Status UseMacros(int x, int* out) {
  KILN_ASSIGN_OR_RETURN(int h, Half(x));
  KILN_RETURN_IF_ERROR_CTX(Half(h).status(), "second half");
  *out = h;
  return absl::OkStatus();
}

TEST(Status, Macros) {
  int out = 0;
  EXPECT_TRUE(UseMacros(8, &out).ok());
  EXPECT_EQ(out, 4);
  EXPECT_EQ(UseMacros(3, &out).message(), "odd");
  EXPECT_EQ(UseMacros(6, &out).message(), "second half: odd");
}

TEST(Cancel, CallbacksRunOnceAndChildrenFollowParent) {
  CancelSource parent;
  CancelSource child(parent.token());
  std::atomic<int> calls{0};
  auto reg = child.token().OnCancel([&] { calls++; });
  EXPECT_TRUE(child.token().Check().ok());
  parent.Cancel("user asked");
  parent.Cancel("again");
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(child.cancelled());
  EXPECT_EQ(child.token().Check().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(child.token().Check().message(), "user asked");
  // Registering after cancellation runs immediately.
  auto late = child.token().OnCancel([&] { calls++; });
  EXPECT_EQ(calls.load(), 2);
}

TEST(Cancel, UnregisteredCallbackDoesNotRun) {
  CancelSource src;
  int calls = 0;
  { auto reg = src.token().OnCancel([&] { calls++; }); }
  src.Cancel();
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(CancelToken().cancelled());
}

TEST(ThreadPool, RunsAllTasks) {
  ThreadPool pool(2);
  std::vector<std::future<int>> results;
  for (int i = 0; i < 100; ++i) results.push_back(pool.Submit([i] { return i * i; }));
  int sum = 0;
  for (auto& f : results) sum += f.get();
  EXPECT_EQ(sum, 328350);
}

TEST(Fs, AtomicWriteReadAndRemoveAll) {
  auto dir = TempDir::Create("kiln-test-");
  ASSERT_TRUE(dir.ok()) << dir.status();
  std::string sub = dir->path() + "/a/b/c";
  ASSERT_TRUE(MakeDirs(sub).ok());
  ASSERT_TRUE(WriteFileAtomic(sub + "/f", "hello", 0600).ok());
  auto content = ReadFileToString(sub + "/f");
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(*content, "hello");
  struct stat st;
  ASSERT_EQ(::stat((sub + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A symlink to outside must not be followed by RemoveAll.
  auto outside = TempDir::Create("kiln-outside-");
  ASSERT_TRUE(outside.ok());
  ASSERT_TRUE(WriteFileAtomic(outside->path() + "/keep", "x").ok());
  ASSERT_EQ(::symlink(outside->path().c_str(), (sub + "/link").c_str()), 0);
  ASSERT_TRUE(RemoveAll(dir->path() + "/a").ok());
  EXPECT_NE(::access((dir->path() + "/a").c_str(), F_OK), 0);
  EXPECT_EQ(::access((outside->path() + "/keep").c_str(), F_OK), 0);
  EXPECT_EQ(ReadFileToString(dir->path() + "/missing").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace kiln
