// ExecOp against real snapshots, the real Linux executor and a busybox root filesystem.
#include "engine/ops/exec_op.h"

#include <atomic>
#include <map>
#include <thread>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine/ops/file_op_testing.h"
#include "engine/ops/mounts.h"
#include "engine/ops/session.h"
#include "gtest/gtest.h"
#include "llb/dump.h"

namespace kiln::engine {
namespace {

using testing::MakeLlbOp;
using testing::WriteFile;

class MapSecrets : public Secrets {
 public:
  explicit MapSecrets(std::map<std::string, std::string> m) : m_(std::move(m)) {}
  absl::StatusOr<std::string> Get(const std::string& id) override {
    auto it = m_.find(id);
    if (it == m_.end()) return absl::NotFoundError(StrCat("secret ", id, " not found"));
    return it->second;
  }

 private:
  std::map<std::string, std::string> m_;
};

class FixedSsh : public SshAgents {
 public:
  explicit FixedSsh(std::string path) : path_(std::move(path)) {}
  absl::StatusOr<std::string> SocketPath(const std::string& id) override {
    if (id != "default") return absl::NotFoundError("no such agent");
    return path_;
  }

 private:
  std::string path_;
};

pb::Mount* AddMount(pb::ExecOp* e, int64_t input, const std::string& dest, int64_t output) {
  pb::Mount* m = e->add_mounts();
  m->set_input(input);
  m->set_dest(dest);
  m->set_output(output);
  return m;
}

// A RUN of `script` with the root mount on input 0 (output 0) and `inputs` op inputs.
pb::Op RunOp(const std::string& script, int inputs = 1) {
  pb::Op op;
  for (int i = 0; i < inputs; ++i) op.add_inputs()->set_digest(StrCat("sha256:in", i));
  pb::ExecOp* e = op.mutable_exec();
  e->mutable_meta()->add_args("/bin/sh");
  e->mutable_meta()->add_args("-c");
  e->mutable_meta()->add_args(script);
  e->mutable_meta()->set_cwd("/");
  AddMount(e, 0, "/", 0);
  return op;
}

pb::Mount* AddCache(pb::Op& op, const std::string& id, const std::string& dest,
                    pb::CacheSharingOpt sharing) {
  pb::Mount* m = AddMount(op.mutable_exec(), -1, dest, -1);
  m->set_mounttype(pb::CACHE);
  m->mutable_cacheopt()->set_id(id);
  m->mutable_cacheopt()->set_sharing(sharing);
  return m;
}

class ExecOpTest : public testing::WorkerFixture {
 protected:
  void SetUp() override {
    std::string why = engine::testing::NamespaceTestSkipReason();
    if (!why.empty()) GTEST_SKIP() << why;
    testing::WorkerFixture::SetUp();
    if (IsSkipped()) return;
    busybox_ = BusyboxSnapshot();
    ASSERT_TRUE(busybox_);
  }
  void TearDown() override {
    busybox_.reset();
    testing::WorkerFixture::TearDown();
  }

  OpContext Ctx(SessionGroup::Values values = {}, CancelToken cancel = CancelToken()) {
    OpContext ctx;
    ctx.cancel = cancel;
    ctx.session = SessionGroup({std::make_shared<const SessionGroup::Values>(std::move(values))});
    return ctx;
  }

  absl::StatusOr<std::vector<ResultRef>> Run(const pb::Op& op, std::vector<ResultRef> inputs,
                                             const OpContext& ctx) {
    auto o = NewExecOp(MakeLlbOp(op), env_);
    if (!o.ok()) return o.status();
    auto cm = (*o)->GetCacheMap(ctx);
    if (!cm.ok()) return cm.status();
    return (*o)->Exec(ctx, inputs);
  }
  absl::StatusOr<std::vector<ResultRef>> Run(const pb::Op& op, std::vector<ResultRef> inputs) {
    return Run(op, std::move(inputs), Ctx());
  }

  // The root output's file `path`.
  std::string OutFile(const absl::StatusOr<std::vector<ResultRef>>& out, const std::string& path) {
    if (!out.ok() || out->empty()) return "<no output>";
    std::string v;
    EXPECT_TRUE(
        worker_
            ->WithReadOnlyMount((*out)[0],
                                [&](const std::string& root) {
                                  v = ReadFileToString(root + "/" + path).value_or("<none>");
                                  return absl::OkStatus();
                                })
            .ok());
    return v;
  }

  ResultRef busybox_;
};

TEST_F(ExecOpTest, RunWritesFilesIntoOneLayerOnTheInput) {
  auto out = Run(RunOp("echo hello > /out.txt && id -u > /uid"), {busybox_});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ(OutFile(out, "out.txt"), "hello\n");
  EXPECT_EQ(Parent((*out)[0]), SnapshotKeyOf(busybox_)) << "the root output's parent is the input";
  EXPECT_EQ(ActiveSnapshots(), 0);
}

TEST_F(ExecOpTest, MetaEnvUserCwdHostname) {
  pb::Op op =
      RunOp("echo \"$FOO:$(id -u):$(pwd):$(hostname)\" > /tmp/meta; echo $PATH > /tmp/path");
  pb::Meta* m = op.mutable_exec()->mutable_meta();
  m->add_env("FOO=bar");
  m->set_user("app");
  m->set_cwd("/home/app/work");
  m->set_hostname("kilnhost");
  auto out = Run(op, {busybox_});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(OutFile(out, "tmp/meta"), "bar:1000:/home/app/work:kilnhost\n");
  EXPECT_EQ(OutFile(out, "tmp/path"),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
}

TEST_F(ExecOpTest, ReadOnlyBindWithSelector) {
  ResultRef data = MakeSnapshot([](const std::string& r) {
    WriteFile(r, "sub/data.txt", "payload");
    WriteFile(r, "other/hidden", "no");
  });
  pb::Op op = RunOp(
      "cat /mnt/data.txt > /seen; ls /mnt > /listing; "
      "(touch /mnt/new 2>/dev/null && echo writable || echo readonly) > /mode",
      2);
  pb::Mount* m = AddMount(op.mutable_exec(), 1, "/mnt", -1);
  m->set_selector("/sub");
  m->set_readonly(true);
  auto out = Run(op, {busybox_, data});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(OutFile(out, "seen"), "payload");
  EXPECT_EQ(OutFile(out, "listing"), "data.txt\n");
  EXPECT_EQ(OutFile(out, "mode"), "readonly\n");
  EXPECT_EQ(ActiveSnapshots(), 0);
}

TEST_F(ExecOpTest, SelectorEscapingThroughSymlinkStaysInInput) {
  ResultRef data = MakeSnapshot([](const std::string& r) {
    ASSERT_EQ(::symlink("/etc", (r + "/link").c_str()), 0);
    WriteFile(r, "etc/only-in-input", "mine");
  });
  pb::Op op = RunOp("ls /mnt > /listing", 2);
  pb::Mount* m = AddMount(op.mutable_exec(), 1, "/mnt", -1);
  m->set_selector("/link");
  m->set_readonly(true);
  auto out = Run(op, {busybox_, data});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(OutFile(out, "listing"), "only-in-input\n");
}

TEST_F(ExecOpTest, WritableOutputMountIsCommittedAsSecondOutput) {
  ResultRef data = MakeSnapshot([](const std::string& r) { WriteFile(r, "a", "A"); });
  pb::Op op = RunOp("echo B > /work/b", 2);
  AddMount(op.mutable_exec(), 1, "/work", 1);
  auto out = Run(op, {busybox_, data});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  auto t = Tree((*out)[1]);
  EXPECT_EQ(t["a"], "f 0644 0:0 A");
  EXPECT_EQ(t["b"], "f 0644 0:0 B\n");
  EXPECT_EQ(Parent((*out)[1]), SnapshotKeyOf(data));
}

TEST_F(ExecOpTest, CacheMountPersistsAcrossRunsAndWorkerReopen) {
  pb::Op op = RunOp(
      "n=$(cat /cache/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /cache/n; "
      "echo $n > /count");
  AddCache(op, "counter", "/cache", pb::SHARED);
  EXPECT_EQ(OutFile(Run(op, {busybox_}), "count"), "1\n");
  EXPECT_EQ(OutFile(Run(op, {busybox_}), "count"), "2\n");
  std::string key = SnapshotKeyOf(busybox_);
  busybox_.reset();
  Reopen();
  auto ref = worker_->RefFor(key);
  ASSERT_TRUE(ref.ok());
  busybox_ = *ref;
  EXPECT_EQ(OutFile(Run(op, {busybox_}), "count"), "3\n");
  // The cache directory is not part of the layer.
  auto out = Run(op, {busybox_});
  EXPECT_EQ(Tree((*out)[0]).count("cache/n"), 0u);
}

TEST_F(ExecOpTest, NoCacheResetEmptiesCacheMounts) {
  pb::Op op = RunOp(
      "n=$(cat /cache/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /cache/n; "
      "echo $n > /count");
  AddCache(op, "reset-me", "/cache", pb::SHARED);
  EXPECT_EQ(OutFile(Run(op, {busybox_}), "count"), "1\n");
  EXPECT_EQ(OutFile(Run(op, {busybox_}), "count"), "2\n");
  ASSERT_TRUE(CacheMounts::ForWorker(*worker_).Reset({"reset-me", "unknown"}).ok());
  EXPECT_EQ(OutFile(Run(op, {busybox_}), "count"), "1\n");
}

TEST_F(ExecOpTest, CacheMountFromInputSeedsContent) {
  ResultRef seed = MakeSnapshot([](const std::string& r) {
    ASSERT_TRUE(MakeDirs(r + "/cache").ok());
    ASSERT_EQ(::chown((r + "/cache").c_str(), 1000, 1000), 0);
    ASSERT_EQ(::chmod((r + "/cache").c_str(), 0700), 0);
  });
  pb::Op op = RunOp("stat -c '%u %a' /c > /perm", 2);
  pb::Mount* m = AddCache(op, "seeded", "/c", pb::SHARED);
  m->set_input(1);
  m->set_selector("/cache");
  auto out = Run(op, {busybox_, seed});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(OutFile(out, "perm"), "1000 700\n");
}

// A cache instance with fifos the steps use to report and wait, shared with the test.
class SyncDir {
 public:
  explicit SyncDir(Worker& w) {
    auto lease = CacheMounts::ForWorker(w).Acquire("sync", pb::SHARED, nullptr, CancelToken());
    EXPECT_TRUE(lease.ok());
    lease_ = std::move(*lease);
    for (const char* f : {"started", "go"}) {
      std::string p = lease_->path() + "/" + f;
      ::unlink(p.c_str());
      EXPECT_EQ(::mkfifo(p.c_str(), 0666), 0);
    }
  }
  // Blocks until a step writes a line to `started`; returns it.
  std::string WaitStarted() {
    int fd = ::open((lease_->path() + "/started").c_str(), O_RDONLY | O_CLOEXEC);
    std::string s;
    char c;
    while (::read(fd, &c, 1) == 1 && c != '\n') s.push_back(c);
    ::close(fd);
    return s;
  }
  void Go() {
    int fd = ::open((lease_->path() + "/go").c_str(), O_WRONLY | O_CLOEXEC);
    EXPECT_EQ(::write(fd, "go\n", 3), 3);
    ::close(fd);
  }

 private:
  std::unique_ptr<CacheMountLease> lease_;
};

TEST_F(ExecOpTest, LockedCacheSerializesAndPrivateGivesDistinctDirs) {
  SyncDir sync(*worker_);
  auto step = [&](const std::string& name, pb::CacheSharingOpt sharing, bool block) {
    std::string script = StrCat("echo ", name, "-start >> /c/log; ls /c > /listing; ");
    if (block) script += StrCat("echo ", name, " > /sync/started; read x < /sync/go; ");
    script += StrCat("echo ", name, "-end >> /c/log; cat /c/log > /log");
    pb::Op op = RunOp(script);
    AddCache(op, "shared-id", "/c", sharing);
    AddCache(op, "sync", "/sync", pb::SHARED);
    return op;
  };
  // A holds the locked cache and waits; B (locked) must wait for it.
  absl::StatusOr<std::vector<ResultRef>> a_out, b_out;
  std::thread a([&] { a_out = Run(step("A", pb::LOCKED, true), {busybox_}); });
  EXPECT_EQ(sync.WaitStarted(), "A");
  std::atomic<bool> b_done{false};
  std::thread b([&] {
    b_out = Run(step("B", pb::LOCKED, false), {busybox_});
    b_done = true;
  });
  CacheMounts& cm = CacheMounts::ForWorker(*worker_);
  while (cm.Waiting() == 0 && !b_done) std::this_thread::yield();
  EXPECT_FALSE(b_done) << "a second LOCKED user must wait";
  sync.Go();
  a.join();
  b.join();
  ASSERT_TRUE(a_out.ok()) << a_out.status();
  ASSERT_TRUE(b_out.ok()) << b_out.status();
  EXPECT_EQ(OutFile(b_out, "log"), "A-start\nA-end\nB-start\nB-end\n");

  // PRIVATE: while A' holds the instance, B' gets a different one and finishes first.
  std::thread a2([&] { a_out = Run(step("C", pb::PRIVATE, true), {busybox_}); });
  EXPECT_EQ(sync.WaitStarted(), "C");
  b_out = Run(step("D", pb::PRIVATE, false), {busybox_});
  ASSERT_TRUE(b_out.ok()) << b_out.status();
  EXPECT_EQ(OutFile(b_out, "log"), "D-start\nD-end\n") << "a fresh private instance";
  sync.Go();
  a2.join();
  ASSERT_TRUE(a_out.ok()) << a_out.status();
  EXPECT_EQ(OutFile(a_out, "log"), "A-start\nA-end\nB-start\nB-end\nC-start\nC-end\n");
}

TEST_F(ExecOpTest, TmpfsMount) {
  pb::Op op = RunOp("echo x > /t/file; grep ' /t tmpfs' /proc/mounts | cut -d' ' -f4 > /opts");
  pb::Mount* m = AddMount(op.mutable_exec(), -1, "/t", -1);
  m->set_mounttype(pb::TMPFS);
  m->mutable_tmpfsopt()->set_size(1 << 20);
  auto out = Run(op, {busybox_});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NE(OutFile(out, "opts").find("size=1024k"), std::string::npos) << OutFile(out, "opts");
  EXPECT_EQ(Tree((*out)[0]).count("t/file"), 0u);
}

TEST_F(ExecOpTest, SecretMountReadableButNeverInLayerOrKey) {
  const std::string secret = "s3cr3t-value-42";
  SessionGroup::Values v;
  v[kSessionSecrets] = std::shared_ptr<Secrets>(
      std::make_shared<MapSecrets>(std::map<std::string, std::string>{{"tok", secret}}));
  pb::Op op = RunOp(
      "wc -c < /run/secrets/tok > /len; stat -c '%a %u' /run/secrets/tok > /perm; "
      "echo $TOKENV | wc -c > /envlen");
  pb::Mount* m = AddMount(op.mutable_exec(), -1, "/run/secrets/tok", -1);
  m->set_mounttype(pb::SECRET);
  m->mutable_secretopt()->set_id("tok");
  m->mutable_secretopt()->set_uid(1000);
  m->mutable_secretopt()->set_mode(0400);
  pb::SecretEnv* se = op.mutable_exec()->add_secretenv();
  se->set_id("tok");
  se->set_name("TOKENV");
  auto out = Run(op, {busybox_}, Ctx(v));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(OutFile(out, "len"), StrCat(secret.size(), "\n"));
  EXPECT_EQ(OutFile(out, "envlen"), StrCat(secret.size() + 1, "\n"));
  EXPECT_EQ(OutFile(out, "perm"), "400 1000\n");
  for (const auto& [path, desc] : Tree((*out)[0])) {
    EXPECT_EQ(desc.find(secret), std::string::npos) << path;
    EXPECT_FALSE(path.starts_with("run/secrets/")) << "mount stub left in the layer: " << path;
  }
  auto cm = ExecOpCacheMap(op.exec(), 1, oci::HostPlatform(), nullptr);
  ASSERT_TRUE(cm.ok());
  EXPECT_EQ(llb::GoJson(op.exec()).find(secret), std::string::npos);

  // Missing: required fails naming the id only; optional is skipped.
  SessionGroup::Values none;
  none[kSessionSecrets] =
      std::shared_ptr<Secrets>(std::make_shared<MapSecrets>(std::map<std::string, std::string>{}));
  op.mutable_exec()->clear_secretenv();
  auto missing = Run(op, {busybox_}, Ctx(none));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("tok"), std::string::npos) << missing.status();
  op.mutable_exec()->mutable_mounts(1)->mutable_secretopt()->set_optional(true);
  op.mutable_exec()->mutable_meta()->set_args(2, "test -e /run/secrets/tok || echo absent > /r");
  auto optional = Run(op, {busybox_}, Ctx(none));
  ASSERT_TRUE(optional.ok()) << optional.status();
  EXPECT_EQ(OutFile(optional, "r"), "absent\n");
  EXPECT_EQ(ActiveSnapshots(), 0);
}

TEST_F(ExecOpTest, SshSocketIsRelayedWithRequestedPermissions) {
  // A real unix socket server standing in for the client's agent: answers "agent:<request>".
  std::string sock = dir_.path() + "/agent.sock";
  int srv = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, sock.c_str());
  ASSERT_EQ(::bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(srv, 4), 0);
  std::thread server([srv] {
    int c = ::accept(srv, nullptr, nullptr);
    char buf[64];
    ssize_t n = ::read(c, buf, sizeof(buf));
    std::string reply = "agent:" + std::string(buf, n > 0 ? n : 0);
    (void)::write(c, reply.data(), reply.size());
    ::close(c);
  });

  SessionGroup::Values v;
  v[kSessionSsh] = std::shared_ptr<SshAgents>(std::make_shared<FixedSsh>(sock));
  pb::Op op = RunOp("stat -c '%F %a %u' /run/buildkit/ssh_agent.0 > /sock");
  pb::Mount* m = AddMount(op.mutable_exec(), -1, "/run/buildkit/ssh_agent.0", -1);
  m->set_mounttype(pb::SSH);
  m->mutable_sshopt()->set_mode(0600);
  m->mutable_sshopt()->set_uid(1000);
  auto out = Run(op, {busybox_}, Ctx(v));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(OutFile(out, "sock"), "socket 600 1000\n");

  // The relay carries bytes both ways.
  auto relay = SshRelay::Start(*worker_, sock, 0, 0, 0600);
  ASSERT_TRUE(relay.ok()) << relay.status();
  int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un raddr = {};
  raddr.sun_family = AF_UNIX;
  std::strcpy(raddr.sun_path, (*relay)->path().c_str());
  ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&raddr), sizeof(raddr)), 0);
  ASSERT_EQ(::write(c, "ping", 4), 4);
  char buf[64];
  std::string got;
  ssize_t n;
  while ((n = ::read(c, buf, sizeof(buf))) > 0) got.append(buf, n);
  EXPECT_EQ(got, "agent:ping");
  ::close(c);
  server.join();
  ::close(srv);
  relay->reset();

  // Not forwarded: an error, unless optional.
  m->mutable_sshopt()->set_id("other");
  auto missing = Run(op, {busybox_}, Ctx(v));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("other"), std::string::npos);
}

TEST_F(ExecOpTest, NetworkNoneHasOnlyLoopback) {
  pb::Op op = RunOp("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /ifaces");
  op.mutable_exec()->set_network(pb::NONE);
  auto out = Run(op, {busybox_});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(OutFile(out, "ifaces"), "lo\n");
}

TEST_F(ExecOpTest, FailureNamesTheCommandAndLeavesNothing) {
  auto out = Run(RunOp("exit 3"), {busybox_});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("/bin/sh -c exit 3"), std::string::npos) << out.status();
  EXPECT_NE(out.status().message().find("exit code: 3"), std::string::npos) << out.status();
  EXPECT_EQ(ActiveSnapshots(), 0);
}

TEST_F(ExecOpTest, CancellationLeavesNoActiveSnapshot) {
  SyncDir sync(*worker_);
  pb::Op op = RunOp("echo run > /sync/started; read x < /sync/go; echo never > /x");
  AddCache(op, "sync", "/sync", pb::SHARED);
  CancelSource cancel;
  absl::StatusOr<std::vector<ResultRef>> out;
  std::thread t([&] { out = Run(op, {busybox_}, Ctx({}, cancel.token())); });
  EXPECT_EQ(sync.WaitStarted(), "run");
  cancel.Cancel("test cancels");
  t.join();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled) << out.status();
  EXPECT_EQ(ActiveSnapshots(), 0);
}

TEST(ExecCacheMapTest, StableAndSensitiveToTheOp) {
  oci::Platform p = oci::HostPlatform();
  pb::Op a = RunOp("make");
  auto ka = ExecOpCacheMap(a.exec(), 1, p, nullptr);
  auto ka2 = ExecOpCacheMap(a.exec(), 1, p, nullptr);
  pb::Op b = RunOp("make install");
  auto kb = ExecOpCacheMap(b.exec(), 1, p, nullptr);
  ASSERT_TRUE(ka.ok() && ka2.ok() && kb.ok());
  EXPECT_EQ(ka->digest, ka2->digest);
  EXPECT_NE(ka->digest, kb->digest);
  // Proxy env and extra-host IPs are not part of the key; host names are.
  pb::Op c = a;
  c.mutable_exec()->mutable_meta()->mutable_proxy_env()->set_http_proxy("http://proxy:3128");
  pb::HostIP* h = c.mutable_exec()->mutable_meta()->add_extrahosts();
  h->set_host("db");
  h->set_ip("10.0.0.1");
  pb::Op d = c;
  d.mutable_exec()->mutable_meta()->mutable_extrahosts(0)->set_ip("10.0.0.2");
  auto kc = ExecOpCacheMap(c.exec(), 1, p, nullptr);
  auto kd = ExecOpCacheMap(d.exec(), 1, p, nullptr);
  EXPECT_EQ(kc->digest, kd->digest);
  EXPECT_NE(kc->digest, ka->digest);
  // Platform.
  oci::Platform arm = p;
  arm.architecture = "arm64";
  EXPECT_NE(ExecOpCacheMap(a.exec(), 1, arm, nullptr)->digest, ka->digest);
  // Selectors: in the dep selector, not the digest; content keys only for read-only binds.
  pb::Op e = RunOp("make", 2);
  pb::Mount* m = AddMount(e.mutable_exec(), 1, "/src", -1);
  m->set_selector("/a");
  m->set_readonly(true);
  pb::Op f = e;
  f.mutable_exec()->mutable_mounts(1)->set_selector("/b");
  auto ke = ExecOpCacheMap(e.exec(), 2, p, reinterpret_cast<Worker*>(1));
  auto kf = ExecOpCacheMap(f.exec(), 2, p, reinterpret_cast<Worker*>(1));
  EXPECT_EQ(ke->digest, kf->digest);
  EXPECT_NE(ke->deps[1].selector, kf->deps[1].selector);
  EXPECT_TRUE(ke->deps[1].content);
  EXPECT_FALSE(ke->deps[0].content) << "the writable root with an output has no content key";
}

}  // namespace
}  // namespace kiln::engine

namespace kiln::engine {
namespace {

// Digests printed by BuildKit v0.11.6's own ExecOp.CacheMap for the same ops (a throwaway Go
// test in the ops package of /work/ref/buildkit), so Kiln's keys are BuildKit's.
TEST(ExecCacheMapTest, MatchesBuildKit) {
  oci::Platform amd64{.architecture = "amd64", .os = "linux"};
  pb::ExecOp e1;
  e1.mutable_meta()->add_args("/bin/sh");
  e1.mutable_meta()->add_args("-c");
  e1.mutable_meta()->add_args("make");
  e1.mutable_meta()->add_env("PATH=/usr/bin");
  e1.mutable_meta()->set_cwd("/");
  AddMount(&e1, 0, "/", 0);
  auto k1 = ExecOpCacheMap(e1, 1, amd64, nullptr);
  ASSERT_TRUE(k1.ok());
  EXPECT_EQ(k1->digest.str(),
            "sha256:3a6b2c04691cc9c72776b07032b75ce996a047ce7a7a30f5d0dc4172e74ebcbe");

  pb::ExecOp e2;
  pb::Meta* m = e2.mutable_meta();
  m->add_args("/bin/sh");
  m->add_args("-c");
  m->add_args("make");
  m->add_env("A=1");
  m->set_cwd("/w");
  m->set_user("app");
  pb::HostIP* h = m->add_extrahosts();
  h->set_host("db");
  h->set_ip("10.0.0.1");
  m->mutable_proxy_env()->set_http_proxy("http://p");
  m->set_hostname("h");
  AddMount(&e2, 0, "/", 0);
  pb::Mount* src = AddMount(&e2, 1, "/src", -1);
  src->set_selector("/a");
  src->set_readonly(true);
  pb::Mount* cache = AddMount(&e2, -1, "/cache", -1);
  cache->set_mounttype(pb::CACHE);
  cache->mutable_cacheopt()->set_id("c");
  cache->mutable_cacheopt()->set_sharing(pb::LOCKED);
  pb::Mount* secret = AddMount(&e2, -1, "/run/secrets/tok", -1);
  secret->set_mounttype(pb::SECRET);
  secret->mutable_secretopt()->set_id("tok");
  secret->mutable_secretopt()->set_mode(0400);
  e2.set_network(pb::NONE);
  auto k2 = ExecOpCacheMap(e2, 2, amd64, nullptr);
  ASSERT_TRUE(k2.ok());
  EXPECT_EQ(k2->digest.str(),
            "sha256:ec72e2e2dad75ca5b4660c46bd962722d2c527496090e45c502086eb27884e7e");
  EXPECT_EQ(k2->deps[1].selector.str(),
            "sha256:6a50dc8584134c7de537c0052ff6d236bf874355e050c90523e0c5ff2a543a28");
}

}  // namespace
}  // namespace kiln::engine
