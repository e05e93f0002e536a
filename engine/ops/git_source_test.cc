// Git sources against real remotes on this machine: a bare repository over file://, over
// `git daemon` (git://) and over smart HTTP behind a server that demands a token
// (engine/ops/testdata/git_http_server.py).
#include "engine/ops/git_source.h"

#include <cstdlib>
#include <fstream>

#include <sys/stat.h>

#include "absl/strings/escaping.h"
#include "engine/ops/source_op.h"
#include "engine/ops/source_op_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llb/caps.h"

namespace kiln::engine {
namespace {

using source_testing::Child;
using source_testing::Read;
using source_testing::Sh;
using source_testing::ShOut;
using source_testing::Write;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kGit[] =
    "git -c user.name=kiln -c user.email=kiln@example.com -c init.defaultBranch=main";

TEST(GitIdentifierTest, SplitsLikeBuildKit) {
  auto a = ParseGitIdentifier("github.com/moby/buildkit#v0.11.6:frontend/dockerfile");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->remote, "https://github.com/moby/buildkit");
  EXPECT_EQ(a->ref, "v0.11.6");
  EXPECT_EQ(a->subdir, "frontend/dockerfile");
  auto b = ParseGitIdentifier("git@github.com:moby/buildkit.git#main");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->remote, "git@github.com:moby/buildkit.git");
  EXPECT_EQ(b->ref, "main");
  auto c = ParseGitIdentifier("https://example.com/r.git#:/");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ref, "");
  EXPECT_EQ(c->subdir, "");
  auto d = ParseGitIdentifier("example.com/r.git#main:/a/./b/");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->subdir, "a/b");
  EXPECT_TRUE(absl::IsInvalidArgument(ParseGitIdentifier("example.com/r#main:../../etc").status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(ParseGitIdentifier("example.com/r#--upload-pack=x").status()));
}

class GitSourceTest : public source_testing::WorkerTest {
 protected:
  void SetUp() override {
    WorkerTest::SetUp();
    if (IsSkipped()) return;
    if (Sh("command -v git") != 0) GTEST_SKIP() << "needs git";
    const std::string work = dir_.path() + "/work";
    repos_ = dir_.path() + "/repos";
    log_ = dir_.path() + "/git.log";
    Write(work + "/README", "v1\n");
    Write(work + "/sub/inner.txt", "inner\n");
    Write(work + "/sub/deeper/x", "x\n");
    ASSERT_EQ(Sh(StrCat("cd ", work, " && ", kGit, " init -q . && ln -s /etc evil && ", kGit,
                        " add -A && ", kGit, " commit -qm one && ", kGit, " tag v1 && ", kGit,
                        " tag -a -m annotated v1-annotated && ", kGit,
                        " checkout -qb feature && echo f > feature.txt && ", kGit, " add -A && ",
                        kGit, " commit -qm feature && ", kGit,
                        " checkout -q main && echo v2 > README && ", kGit, " commit -qam two"),
                 log_),
              0)
        << Read(log_);
    c1_ = ShOut(StrCat("git -C ", work, " rev-parse v1"));
    c2_ = ShOut(StrCat("git -C ", work, " rev-parse main"));
    ASSERT_EQ(
        Sh(StrCat("mkdir -p ", repos_, " && git clone -q --bare ", work, " ", repos_, "/repo.git"),
           log_),
        0)
        << Read(log_);
  }

  std::string FileUrl() const { return StrCat("file://", repos_, "/repo.git"); }

  absl::StatusOr<std::unique_ptr<Op>> NewOp(const std::string& fragment,
                                            std::map<std::string, std::string> attrs,
                                            bool allow_file = true) {
    GitSourceOptions o;
    o.allow_file_protocol = allow_file;
    return NewGitSourceOp(
        source_testing::SourceOp("git://example.invalid/repo.git" + fragment, attrs), Env(), o);
  }

  // GetCacheMap + Exec; the snapshot's files by relative path.
  ResultRef Checkout(const std::string& fragment, std::map<std::string, std::string> attrs,
                     const OpContext& ctx = OpContext(), Digest* key = nullptr) {
    auto op = NewOp(fragment, attrs);
    EXPECT_TRUE(op.ok()) << op.status();
    if (!op.ok()) return nullptr;
    auto cm = (*op)->GetCacheMap(ctx);
    EXPECT_TRUE(cm.ok()) << cm.status();
    if (!cm.ok()) return nullptr;
    if (key) *key = cm->digest;
    auto r = (*op)->Exec(ctx, {});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? (*r)[0] : nullptr;
  }

  static bool Exists(const std::string& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0;
  }

  std::string repos_, log_, c1_, c2_;
};

TEST_F(GitSourceTest, BranchTagAndCommit) {
  Digest by_branch, by_sha;
  ResultRef main = Checkout("#main", {{llb::kAttrFullRemoteURL, FileUrl()}}, {}, &by_branch);
  ASSERT_NE(main, nullptr);
  WithSnapshot(main, [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/README"), "v2\n");
    EXPECT_EQ(Read(root + "/sub/deeper/x"), "x\n");
    EXPECT_FALSE(Exists(root + "/.git"));
    EXPECT_FALSE(Exists(root + "/feature.txt"));
  });
  ResultRef sha = Checkout("#" + c2_, {{llb::kAttrFullRemoteURL, FileUrl()}}, {}, &by_sha);
  EXPECT_EQ(by_branch, by_sha);  // the key is the commit, however it was named
  for (const std::string& ref : std::vector<std::string>{"v1", "v1-annotated", c1_}) {
    ResultRef r = Checkout("#" + ref, {{llb::kAttrFullRemoteURL, FileUrl()}});
    ASSERT_NE(r, nullptr) << ref;
    WithSnapshot(r, [&](const std::string& root) { EXPECT_EQ(Read(root + "/README"), "v1\n"); });
  }
  ResultRef feature = Checkout("#feature", {{llb::kAttrFullRemoteURL, FileUrl()}});
  ASSERT_NE(feature, nullptr);
  WithSnapshot(feature,
               [&](const std::string& root) { EXPECT_EQ(Read(root + "/feature.txt"), "f\n"); });
  // No ref: the remote's default branch.
  ResultRef head = Checkout("", {{llb::kAttrFullRemoteURL, FileUrl()}});
  ASSERT_NE(head, nullptr);
  WithSnapshot(head, [&](const std::string& root) { EXPECT_EQ(Read(root + "/README"), "v2\n"); });
}

TEST_F(GitSourceTest, KeepGitDir) {
  Digest with, without;
  ResultRef r = Checkout(
      "#main", {{llb::kAttrFullRemoteURL, FileUrl()}, {llb::kAttrKeepGitDir, "true"}}, {}, &with);
  ASSERT_NE(r, nullptr);
  Checkout("#main", {{llb::kAttrFullRemoteURL, FileUrl()}}, {}, &without);
  EXPECT_NE(with, without);
  WithSnapshot(r, [&](const std::string& root) {
    EXPECT_TRUE(Exists(root + "/.git/HEAD"));
    EXPECT_EQ(ShOut(StrCat("git -C ", root, " rev-parse HEAD")), c2_);
    EXPECT_EQ(ShOut(StrCat("git -C ", root, " config remote.origin.url")), FileUrl());
    EXPECT_EQ(Read(root + "/README"), "v2\n");
  });
}

TEST_F(GitSourceTest, Subdir) {
  ResultRef r = Checkout("#main:sub", {{llb::kAttrFullRemoteURL, FileUrl()}});
  ASSERT_NE(r, nullptr);
  WithSnapshot(r, [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/inner.txt"), "inner\n");
    EXPECT_EQ(Read(root + "/deeper/x"), "x\n");
    EXPECT_FALSE(Exists(root + "/README"));
    EXPECT_FALSE(Exists(root + "/sub"));
  });
  // A subdirectory that is a symlink to /etc resolves inside the checkout (where there is no
  // etc), never to the host's /etc.
  auto op = NewOp("#main:evil", {{llb::kAttrFullRemoteURL, FileUrl()}});
  ASSERT_TRUE(op.ok());
  ASSERT_TRUE((*op)->GetCacheMap(OpContext()).ok());
  auto evil = (*op)->Exec(OpContext(), {});
  EXPECT_FALSE(evil.ok());
  EXPECT_THAT(evil.status().message(), HasSubstr("evil"));
}

TEST_F(GitSourceTest, MissingRefAndFileRemotesRefused) {
  auto op = NewOp("#no-such-branch", {{llb::kAttrFullRemoteURL, FileUrl()}});
  ASSERT_TRUE(op.ok());
  auto cm = (*op)->GetCacheMap(OpContext());
  EXPECT_TRUE(absl::IsNotFound(cm.status())) << cm.status();
  EXPECT_THAT(cm.status().message(), HasSubstr("no-such-branch"));
  // Through NewSourceOp (LLB from clients) file:// is not allowed.
  auto refused = NewSourceOp(
      source_testing::SourceOp("git://x/repo.git#main", {{llb::kAttrFullRemoteURL, FileUrl()}}),
      Env());
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  auto bad = NewSourceOp(
      source_testing::SourceOp("git://x/repo.git#main", {{llb::kAttrKeepGitDir, "yes"}}), Env());
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  auto ext = NewSourceOp(source_testing::SourceOp("git://x/repo.git#main",
                                                  {{llb::kAttrFullRemoteURL, "ext::sh -c id"}}),
                         Env());
  EXPECT_TRUE(ext.ok());  // becomes https://ext::sh -c id, which git cannot run as a command
}

TEST_F(GitSourceTest, GitDaemon) {
  int port = source_testing::FreePort();
  auto daemon =
      Child::Start({"git", "daemon", "--reuseaddr", "--export-all", StrCat("--base-path=", repos_),
                    "--listen=127.0.0.1", StrCat("--port=", port), repos_},
                   dir_.path() + "/daemon.log");
  ASSERT_NE(daemon, nullptr);
  ASSERT_TRUE(source_testing::WaitForPort(port, *daemon)) << Read(dir_.path() + "/daemon.log");
  const std::string url = StrCat("git://127.0.0.1:", port, "/repo.git");
  ResultRef r = Checkout("#v1", {{llb::kAttrFullRemoteURL, url}});
  ASSERT_NE(r, nullptr);
  WithSnapshot(r, [&](const std::string& root) { EXPECT_EQ(Read(root + "/README"), "v1\n"); });
}

// Submodules are checked out, from their own (smart HTTP) remote.
TEST_F(GitSourceTest, Submodules) {
  const std::string port_file = dir_.path() + "/plain-http.port";
  auto server = Child::Start(
      {source_testing::kPython, source_testing::OpsSourceDir() + "/testdata/git_http_server.py",
       "--root", repos_, "--port-file", port_file, "--log", dir_.path() + "/plain-http.log"},
      dir_.path() + "/plain-http.stderr");
  ASSERT_NE(server, nullptr);
  int port = source_testing::WaitForPortFile(port_file, *server);
  ASSERT_GT(port, 0);
  const std::string sub = dir_.path() + "/subwork", super = dir_.path() + "/superwork";
  Write(sub + "/lib.txt", "from the submodule\n");
  Write(super + "/main.txt", "super\n");
  const std::string sub_url = StrCat("http://127.0.0.1:", port, "/sub.git");
  ASSERT_EQ(Sh(StrCat("cd ", sub, " && ", kGit, " init -q . && ", kGit, " add -A && ", kGit,
                      " commit -qm sub && git clone -q --bare ", sub, " ", repos_,
                      "/sub.git && cd ", super, " && ", kGit, " init -q . && ", kGit,
                      " -c protocol.file.allow=always submodule --quiet add ", repos_,
                      "/sub.git modules/sub && ", kGit,
                      " config -f .gitmodules submodule.modules/sub.url ", sub_url, " && ", kGit,
                      " add -A && ", kGit, " commit -qm super && git clone -q --bare ", super, " ",
                      repos_, "/super.git"),
               log_),
            0)
      << Read(log_);
  ResultRef r = Checkout(
      "#main", {{llb::kAttrFullRemoteURL, StrCat("http://127.0.0.1:", port, "/super.git")}});
  ASSERT_NE(r, nullptr);
  WithSnapshot(r, [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/main.txt"), "super\n");
    EXPECT_EQ(Read(root + "/modules/sub/lib.txt"), "from the submodule\n");
  });
}

class GitAuthTest : public GitSourceTest {
 protected:
  void SetUp() override {
    GitSourceTest::SetUp();
    if (IsSkipped()) return;
    header_ = StrCat("basic ",
                     std::string(absl::Base64Escape(ToAbsl(StrCat("x-access-token:", kToken)))));
    Write(dir_.path() + "/auth", header_);
    const std::string port_file = dir_.path() + "/git-http.port";
    server_ = Child::Start(
        {source_testing::kPython, source_testing::OpsSourceDir() + "/testdata/git_http_server.py",
         "--root", repos_, "--port-file", port_file, "--log", dir_.path() + "/git-http.log",
         "--auth-file", dir_.path() + "/auth"},
        dir_.path() + "/git-http.stderr");
    ASSERT_NE(server_, nullptr);
    port_ = source_testing::WaitForPortFile(port_file, *server_);
    ASSERT_GT(port_, 0) << Read(dir_.path() + "/git-http.stderr");
  }

  std::string Url() const { return StrCat("http://127.0.0.1:", port_, "/repo.git"); }
  OpContext WithSecrets(std::map<std::string, std::string> secrets) {
    OpContext ctx;
    ctx.session = source_testing::Session(
        {{kSessionSecrets, std::shared_ptr<Secrets>(
                               std::make_shared<source_testing::MapSecrets>(std::move(secrets)))}});
    return ctx;
  }
  void ExpectNoSecret(const absl::Status& st, const std::string& token) {
    std::string msg(st.message());
    EXPECT_THAT(msg, Not(HasSubstr(token)));
    EXPECT_THAT(
        msg,
        Not(HasSubstr(std::string(absl::Base64Escape(ToAbsl(StrCat("x-access-token:", token)))))));
  }

  static constexpr char kToken[] = "s3cr3t-token-value-123";
  std::string header_;
  std::unique_ptr<Child> server_;
  int port_ = 0;
};

TEST_F(GitAuthTest, TokenFromTheDefaultSecret) {
  // Without a token the server refuses; the error says so without any secret.
  auto op = NewOp("#main", {{llb::kAttrFullRemoteURL, Url()}});
  ASSERT_TRUE(op.ok());
  auto denied = (*op)->GetCacheMap(OpContext());
  EXPECT_FALSE(denied.ok());

  ResultRef r = Checkout("#main", {{llb::kAttrFullRemoteURL, Url()}},
                         WithSecrets({{"GIT_AUTH_TOKEN", kToken}}));
  ASSERT_NE(r, nullptr);
  WithSnapshot(r, [&](const std::string& root) { EXPECT_EQ(Read(root + "/README"), "v2\n"); });
}

TEST_F(GitAuthTest, HostScopedTokenAndHeaderSecrets) {
  const std::string host = StrCat("127.0.0.1:", port_);
  ResultRef r =
      Checkout("#v1", {{llb::kAttrFullRemoteURL, Url()}, {llb::kAttrAuthTokenSecret, "MY_TOKEN"}},
               WithSecrets({{"MY_TOKEN." + host, kToken}, {"MY_TOKEN", "wrong"}}));
  ASSERT_NE(r, nullptr);
  ResultRef h = Checkout("#v1", {{llb::kAttrFullRemoteURL, Url()}},
                         WithSecrets({{"GIT_AUTH_HEADER", header_}}));
  ASSERT_NE(h, nullptr);
}

TEST_F(GitAuthTest, SecretNeverAppearsInErrors) {
  // Tracing asked for in the engine's environment must not reach git.
  ::setenv("GIT_TRACE", "1", 1);
  ::setenv("GIT_CURL_VERBOSE", "1", 1);
  ::setenv("GIT_TRACE_CURL", "1", 1);
  const std::string wrong = "wrong-token-value-456";
  auto op = NewOp("#main", {{llb::kAttrFullRemoteURL, Url()}});
  ASSERT_TRUE(op.ok());
  auto cm = (*op)->GetCacheMap(WithSecrets({{"GIT_AUTH_TOKEN", wrong}}));
  ASSERT_FALSE(cm.ok());
  ExpectNoSecret(cm.status(), wrong);
  EXPECT_THAT(cm.status().message(), HasSubstr("ls-remote"));

  // Credentials in the URL are redacted too, wherever git prints it.
  const std::string in_url =
      StrCat("http://x-access-token:", kToken, "@127.0.0.1:", port_, "/missing.git");
  auto op2 = NewOp("#main", {{llb::kAttrFullRemoteURL, in_url}});
  ASSERT_TRUE(op2.ok());
  auto cm2 = (*op2)->GetCacheMap(WithSecrets({{"GIT_AUTH_TOKEN", kToken}}));
  ASSERT_FALSE(cm2.ok());
  ExpectNoSecret(cm2.status(), kToken);

  // git's own output quoting the secret (here the token is also the repository's name).
  const std::string named = "token-named-repo-789";
  auto op4 = NewOp(
      "#main", {{llb::kAttrFullRemoteURL, StrCat("http://127.0.0.1:", port_, "/", named, ".git")}});
  ASSERT_TRUE(op4.ok());
  auto cm4 = (*op4)->GetCacheMap(WithSecrets({{"GIT_AUTH_HEADER", named}}));
  ASSERT_FALSE(cm4.ok());
  EXPECT_THAT(cm4.status().message(), Not(HasSubstr(named)));
  EXPECT_THAT(cm4.status().message(), HasSubstr("xxxxx"));

  // A ref that does not exist, fetched with the right token: the fetch error is scrubbed.
  auto op3 = NewOp("#" + std::string(40, 'e'), {{llb::kAttrFullRemoteURL, Url()}});
  ASSERT_TRUE(op3.ok());
  OpContext ctx = WithSecrets({{"GIT_AUTH_TOKEN", kToken}});
  ASSERT_TRUE((*op3)->GetCacheMap(ctx).ok());  // a full sha is its own key
  auto r3 = (*op3)->Exec(ctx, {});
  EXPECT_TRUE(absl::IsNotFound(r3.status())) << r3.status();
  ExpectNoSecret(r3.status(), kToken);
  ::unsetenv("GIT_TRACE");
  ::unsetenv("GIT_CURL_VERBOSE");
  ::unsetenv("GIT_TRACE_CURL");
}

}  // namespace
}  // namespace kiln::engine
