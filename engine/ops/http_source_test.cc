// HTTP sources against a real HTTP server on loopback (engine/ops/testdata/http_test_server.py).
#include "engine/ops/http_source.h"

#include <fstream>
#include <sstream>
#include <thread>

#include <sys/stat.h>

#include "engine/ops/source_op.h"
#include "engine/ops/source_op_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llb/caps.h"

namespace kiln::engine {
namespace {

using source_testing::Child;
using source_testing::Read;
using source_testing::Write;
using ::testing::HasSubstr;

class HttpSourceTest : public source_testing::WorkerTest {
 protected:
  void SetUp() override {
    WorkerTest::SetUp();
    if (IsSkipped()) return;
    www_ = dir_.path() + "/www";
    Write(www_ + "/app.tar", "tarball bytes\n");
    SetMtime(www_ + "/app.tar", 1600000000);
    const std::string port_file = dir_.path() + "/http.port";
    server_ = Child::Start(
        {source_testing::kPython, source_testing::OpsSourceDir() + "/testdata/http_test_server.py",
         "--root", www_, "--port-file", port_file, "--log", Log()},
        dir_.path() + "/http.stderr");
    ASSERT_NE(server_, nullptr);
    port_ = source_testing::WaitForPortFile(port_file, *server_);
    ASSERT_GT(port_, 0) << Read(dir_.path() + "/http.stderr");
  }

  static void SetMtime(const std::string& path, int64_t sec) {
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, 0), 0);
  }
  std::string Log() const { return dir_.path() + "/http.log"; }
  int Requests(const std::string& path) const {
    std::ifstream in(Log());
    int n = 0;
    for (std::string line; std::getline(in, line);) n += line == "GET " + path;
    return n;
  }
  std::string Url(const std::string& path) const {
    return StrCat("http://127.0.0.1:", port_, path);
  }
  std::unique_ptr<Op> NewOp(const std::string& path,
                            const std::map<std::string, std::string>& attrs = {}) {
    auto op = NewSourceOp(source_testing::SourceOp(Url(path), attrs), Env());
    EXPECT_TRUE(op.ok()) << op.status();
    return op.ok() ? std::move(*op) : nullptr;
  }
  static struct stat Stat(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st;
  }

  std::string www_;
  std::unique_ptr<Child> server_;
  int port_ = 0;
};

TEST_F(HttpSourceTest, ChecksumPinnedDownload) {
  const std::string sum = Digest::Sha256Of("tarball bytes\n").str();
  auto op = NewOp("/app.tar", {{llb::kAttrHTTPChecksum, sum}});
  auto cm = op->GetCacheMap(OpContext());
  ASSERT_TRUE(cm.ok()) << cm.status();
  EXPECT_EQ(Requests("/app.tar"), 0);  // the checksum is the key: nothing fetched yet
  auto r = op->Exec(OpContext(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Requests("/app.tar"), 1);
  WithSnapshot((*r)[0], [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/app.tar"), "tarball bytes\n");
    struct stat st = Stat(root + "/app.tar");
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);  // Last-Modified
  });
  // Same checksum and file attributes, same key; another checksum, another key.
  auto same = NewOp("/app.tar", {{llb::kAttrHTTPChecksum, sum}});
  EXPECT_EQ(same->GetCacheMap(OpContext())->digest, cm->digest);
  auto other = NewOp("/app.tar", {{llb::kAttrHTTPChecksum, Digest::Sha256Of("x").str()}});
  EXPECT_NE(other->GetCacheMap(OpContext())->digest, cm->digest);
}

TEST_F(HttpSourceTest, ChecksumMismatchNamesBothDigests) {
  const std::string wrong = Digest::Sha256Of("something else").str();
  auto op = NewOp("/app.tar", {{llb::kAttrHTTPChecksum, wrong}});
  ASSERT_TRUE(op->GetCacheMap(OpContext()).ok());
  auto r = op->Exec(OpContext(), {});
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr(wrong));
  EXPECT_THAT(r.status().message(), HasSubstr(Digest::Sha256Of("tarball bytes\n").str()));
  EXPECT_THAT(r.status().message(), HasSubstr("digest mismatch"));
}

TEST_F(HttpSourceTest, Sha512Checksum) {
  const std::string sha512 =
      "sha512:" + source_testing::ShOut(StrCat("sha512sum ", www_, "/app.tar | cut -d' ' -f1"));
  auto op = NewOp("/app.tar", {{llb::kAttrHTTPChecksum, sha512}});
  ASSERT_TRUE(op->GetCacheMap(OpContext()).ok());
  auto r = op->Exec(OpContext(), {});
  ASSERT_TRUE(r.ok()) << r.status();
}

TEST_F(HttpSourceTest, FilenamePermAndOwner) {
  auto op = NewOp("/app.tar", {{llb::kAttrHTTPFilename, "renamed.bin"},
                               {llb::kAttrHTTPPerm, "0755"},
                               {llb::kAttrHTTPUID, "1000"},
                               {llb::kAttrHTTPGID, "2000"}});
  ASSERT_TRUE(op->GetCacheMap(OpContext()).ok());
  auto r = op->Exec(OpContext(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  WithSnapshot((*r)[0], [&](const std::string& root) {
    struct stat st = Stat(root + "/renamed.bin");
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    EXPECT_EQ(st.st_uid, 1000u);
    EXPECT_EQ(st.st_gid, 2000u);
    struct stat missing;
    EXPECT_NE(::lstat((root + "/app.tar").c_str(), &missing), 0);
  });
}

TEST_F(HttpSourceTest, WithoutChecksumTheKeyIsTheContent) {
  auto op1 = NewOp("/app.tar");
  auto cm1 = op1->GetCacheMap(OpContext());
  ASSERT_TRUE(cm1.ok()) << cm1.status();
  EXPECT_EQ(Requests("/app.tar"), 1);
  auto r = op1->Exec(OpContext(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Requests("/app.tar"), 1);  // Exec used GetCacheMap's download
  auto op2 = NewOp("/app.tar");
  EXPECT_EQ(op2->GetCacheMap(OpContext())->digest, cm1->digest);
  Write(www_ + "/app.tar", "tarball bytes v2\n");
  SetMtime(www_ + "/app.tar", 1600000000);
  auto op3 = NewOp("/app.tar");
  EXPECT_NE(op3->GetCacheMap(OpContext())->digest, cm1->digest);
}

TEST_F(HttpSourceTest, RedirectsAndContentDisposition) {
  auto redirected = NewOp("/redirect/app.tar");
  ASSERT_TRUE(redirected->GetCacheMap(OpContext()).ok());
  auto r = redirected->Exec(OpContext(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  WithSnapshot((*r)[0], [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/app.tar"), "tarball bytes\n");
  });
  EXPECT_EQ(Requests("/app.tar"), 1);

  auto named = NewOp("/disposition/app.tar");
  ASSERT_TRUE(named->GetCacheMap(OpContext()).ok());
  auto r2 = named->Exec(OpContext(), {});
  ASSERT_TRUE(r2.ok()) << r2.status();
  WithSnapshot((*r2)[0], [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/app.tar.bin"), "tarball bytes\n");
  });
}

TEST_F(HttpSourceTest, MissingFileIsNotFound) {
  auto op = NewOp("/nothing-here");
  auto cm = op->GetCacheMap(OpContext());
  EXPECT_TRUE(absl::IsNotFound(cm.status())) << cm.status();
  EXPECT_THAT(cm.status().message(), HasSubstr("404"));
}

TEST_F(HttpSourceTest, CancellationStopsADownload) {
  Write(www_ + "/big", std::string(100, 'x'));  // served at 5 bytes/s
  auto op = NewOp("/slow/big");
  CancelSource cancel;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    cancel.Cancel("build cancelled");
  });
  OpContext ctx;
  ctx.cancel = cancel.token();
  auto cm = op->GetCacheMap(ctx);
  stopper.join();
  EXPECT_TRUE(absl::IsCancelled(cm.status())) << cm.status();
}

TEST_F(HttpSourceTest, BadAttrs) {
  for (const auto& attrs :
       std::vector<std::map<std::string, std::string>>{{{llb::kAttrHTTPChecksum, "md5:abc"}},
                                                       {{llb::kAttrHTTPPerm, "rw-r--r--"}},
                                                       {{llb::kAttrHTTPPerm, "077777"}},
                                                       {{llb::kAttrHTTPUID, "-1"}},
                                                       {{llb::kAttrHTTPFilename, "../escape"}},
                                                       {{llb::kAttrHTTPFilename, "a/b"}}}) {
    auto op = NewSourceOp(source_testing::SourceOp(Url("/app.tar"), attrs), Env());
    EXPECT_TRUE(absl::IsInvalidArgument(op.status())) << attrs.begin()->second;
  }
}

}  // namespace
}  // namespace kiln::engine
