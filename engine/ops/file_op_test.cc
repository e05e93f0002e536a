#include "engine/ops/file_op.h"

#include "engine/ops/content_hash.h"
#include "engine/ops/file_op_testing.h"
#include "gtest/gtest.h"

namespace kiln::engine {
namespace {

using testing::MakeLlbOp;
using testing::WriteFile;

pb::FileAction* AddAction(pb::FileOp* f, int64_t input, int64_t secondary, int64_t output) {
  pb::FileAction* a = f->add_actions();
  a->set_input(input);
  a->set_secondaryinput(secondary);
  a->set_output(output);
  return a;
}

pb::FileActionCopy* CopyOf(pb::FileAction* a, std::string src, std::string dest) {
  pb::FileActionCopy* c = a->mutable_copy();
  c->set_src(src);
  c->set_dest(dest);
  c->set_mode(-1);
  c->set_timestamp(-1);
  c->set_createdestpath(true);
  c->set_allowwildcard(true);
  c->set_followsymlink(true);
  return c;
}

class FileOpTest : public testing::WorkerFixture {
 protected:
  absl::StatusOr<std::vector<ResultRef>> Run(const pb::Op& op, std::vector<ResultRef> inputs) {
    auto o = NewFileOp(MakeLlbOp(op), env_);
    if (!o.ok()) return o.status();
    OpContext ctx;
    auto cm = (*o)->GetCacheMap(ctx);
    if (!cm.ok()) return cm.status();
    return (*o)->Exec(ctx, inputs);
  }

  int Committed() {
    int n = 0;
    EXPECT_TRUE(worker_->snapshots()
                    .Walk([&](const snapshotter::SnapshotInfo& i) {
                      if (i.kind == snapshotter::SnapshotKind::kCommitted) ++n;
                      return absl::OkStatus();
                    })
                    .ok());
    return n;
  }
};

TEST_F(FileOpTest, ChainedActionsMakeOneLayerOnTheBase) {
  ResultRef base = MakeSnapshot([](const std::string& r) { WriteFile(r, "base.txt", "base"); });
  ResultRef ctx_src = MakeSnapshot([](const std::string& r) {
    WriteFile(r, "src/app.go", "code");
    WriteFile(r, "src/notes.md", "notes");
  });
  pb::Op op;
  op.add_inputs()->set_digest("sha256:a");
  op.add_inputs()->set_digest("sha256:b");
  pb::FileOp* f = op.mutable_file();
  pb::FileActionMkDir* md = AddAction(f, 0, -1, -1)->mutable_mkdir();
  md->set_path("/app");
  md->set_mode(0755);
  md->set_makeparents(true);
  md->set_timestamp(-1);
  CopyOf(AddAction(f, 2, 1, -1), "/src/*.go", "/app/");
  pb::FileActionMkFile* mf = AddAction(f, 3, -1, 0)->mutable_mkfile();
  mf->set_path("/app/VERSION");
  mf->set_mode(0644);
  mf->set_data("1");
  mf->set_timestamp(-1);
  int before = Committed();
  auto out = Run(op, {base, ctx_src});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ(Committed(), before + 1) << "a chain of actions is one snapshot";
  EXPECT_EQ(Parent((*out)[0]), SnapshotKeyOf(base));
  auto t = Tree((*out)[0]);
  EXPECT_EQ(t["base.txt"], "f 0644 0:0 base");
  EXPECT_EQ(t["app/app.go"], "f 0644 0:0 code");
  EXPECT_EQ(t["app/VERSION"], "f 0644 0:0 1");
  EXPECT_EQ(t.count("app/notes.md"), 0u);
  EXPECT_EQ(ActiveSnapshots(), 0);
}

TEST_F(FileOpTest, IntermediateOutputsAreCommittedAndStacked) {
  pb::Op op;
  pb::FileOp* f = op.mutable_file();
  pb::FileActionMkFile* a0 = AddAction(f, -1, -1, 0)->mutable_mkfile();
  a0->set_path("/one");
  a0->set_mode(0644);
  a0->set_data("1");
  a0->set_timestamp(-1);
  pb::FileActionMkFile* a1 = AddAction(f, 0, -1, 1)->mutable_mkfile();
  a1->set_path("/two");
  a1->set_mode(0644);
  a1->set_data("2");
  a1->set_timestamp(-1);
  auto out = Run(op, {});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ(Parent((*out)[0]), "");
  EXPECT_EQ(Parent((*out)[1]), SnapshotKeyOf((*out)[0]));
  EXPECT_EQ(Tree((*out)[0]).count("two"), 0u);
  EXPECT_EQ(Tree((*out)[1])["two"], "f 0644 0:0 2");
}

TEST_F(FileOpTest, ChownByNameReadsPasswdOfTheNamedInput) {
  ResultRef users = MakeSnapshot([](const std::string& r) {
    WriteFile(r, "etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
    WriteFile(r, "etc/group", "root:x:0:\nstaff:x:50:\n");
  });
  ResultRef src = MakeSnapshot([](const std::string& r) { WriteFile(r, "f", "F"); });
  pb::Op op;
  op.add_inputs()->set_digest("sha256:a");
  op.add_inputs()->set_digest("sha256:b");
  pb::FileActionCopy* c = CopyOf(AddAction(op.mutable_file(), 0, 1, 0), "/f", "/home/f");
  c->mutable_owner()->mutable_user()->mutable_byname()->set_name("app");
  c->mutable_owner()->mutable_user()->mutable_byname()->set_input(0);
  c->mutable_owner()->mutable_group()->mutable_byname()->set_name("staff");
  c->mutable_owner()->mutable_group()->mutable_byname()->set_input(0);
  auto out = Run(op, {users, src});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(Tree((*out)[0])["home/f"], "f 0644 1000:50 F");
}

TEST_F(FileOpTest, FailedActionLeavesNothingBehind) {
  pb::Op op;
  op.add_inputs()->set_digest("sha256:a");
  CopyOf(AddAction(op.mutable_file(), -1, 0, 0), "/missing", "/x")->set_allowwildcard(false);
  ResultRef src = MakeSnapshot([](const std::string& r) { WriteFile(r, "f", "F"); });
  int before = Committed();
  auto out = Run(op, {src});
  EXPECT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("/missing"), std::string::npos) << out.status();
  EXPECT_EQ(ActiveSnapshots(), 0);
  EXPECT_EQ(Committed(), before);
}

TEST_F(FileOpTest, CacheMapDigestSelectorsAndContentKeys) {
  auto make = [](const std::string& src, const std::string& dest) {
    pb::FileOp f;
    CopyOf(AddAction(&f, 0, 1, 0), src, dest);
    return f;
  };
  auto a = FileOpCacheMap(make("/src/app.go", "/app/"), 2, worker_.get());
  auto a2 = FileOpCacheMap(make("/src/app.go", "/app/"), 2, worker_.get());
  auto b = FileOpCacheMap(make("/src/app.go", "/other/"), 2, worker_.get());
  auto c = FileOpCacheMap(make("/elsewhere/app.go", "/app/"), 2, worker_.get());
  ASSERT_TRUE(a.ok() && a2.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->digest, a2->digest) << "stable";
  EXPECT_NE(a->digest, b->digest) << "dest is part of the op";
  EXPECT_EQ(a->digest, c->digest) << "only the base name of a copied source is in the digest";
  EXPECT_NE(a->deps[1].selector, c->deps[1].selector) << "...the path is in the selector";
  EXPECT_FALSE(a->deps[0].selector.valid()) << "the modified input has no selector";
  EXPECT_FALSE(a->deps[0].content);
  ASSERT_TRUE(a->deps[1].content);

  // Content keys: a re-made source with the same selected content matches; a change in the
  // copied file does not; a change elsewhere does.
  OpContext ctx;
  auto key = [&](const std::string& app, const std::string& other) {
    ResultRef r = MakeSnapshot([&](const std::string& root) {
      WriteFile(root, "src/app.go", app);
      WriteFile(root, "src/other.txt", other);
    });
    auto d = a->deps[1].content(r, ctx);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : Digest();
  };
  Digest k1 = key("code", "x");
  EXPECT_EQ(k1, key("code", "x"));
  EXPECT_EQ(k1, key("code", "changed"));
  EXPECT_NE(k1, key("new code", "x"));
}

}  // namespace
}  // namespace kiln::engine

namespace kiln::engine {
namespace {

// Digests printed by BuildKit v0.11.6's own fileOp.CacheMap for the same ops.
TEST(FileOpCacheMapGoldenTest, MatchesBuildKit) {
  pb::FileOp f1;
  pb::FileActionCopy* c = CopyOf(AddAction(&f1, 0, 1, 0), "/src/app.go", "/app/");
  c->set_dircopycontents(true);
  c->set_allowemptywildcard(true);
  auto k1 = FileOpCacheMap(f1, 2, nullptr);
  ASSERT_TRUE(k1.ok());
  EXPECT_EQ(k1->digest.str(),
            "sha256:f146236e1f464d611b96b8f6a962fa529b67d4793935e8102f0e12dd3690a363");
  EXPECT_EQ(k1->deps[1].selector.str(),
            "sha256:47409305918c70862f71e4ff0708abe054fad1670c15a0ca44008b26614a270e");

  pb::FileOp f2;
  pb::FileActionMkDir* md = AddAction(&f2, 0, -1, -1)->mutable_mkdir();
  md->set_path("/app");
  md->set_mode(0755);
  md->set_makeparents(true);
  md->set_timestamp(-1);
  md->mutable_owner()->mutable_user()->mutable_byname()->set_name("app");
  md->mutable_owner()->mutable_user()->mutable_byname()->set_input(0);
  pb::FileActionCopy* c2 = AddAction(&f2, 2, 1, 0)->mutable_copy();
  c2->set_src("/x/*.go");
  c2->set_dest("/app/");
  c2->set_mode(0755);
  c2->set_timestamp(1000);
  c2->set_allowwildcard(true);
  c2->add_include_patterns("a");
  c2->add_exclude_patterns("b");
  c2->mutable_owner()->mutable_user()->set_byid(1000);
  pb::FileActionMkFile* mf = AddAction(&f2, 3, -1, 1)->mutable_mkfile();
  mf->set_path("/f");
  mf->set_mode(0644);
  mf->set_data(std::string("hi\0<>", 5));
  mf->set_timestamp(-1);
  pb::FileActionRm* rm = AddAction(&f2, 4, -1, 2)->mutable_rm();
  rm->set_path("/tmp");
  rm->set_allownotfound(true);
  rm->set_allowwildcard(true);
  auto k2 = FileOpCacheMap(f2, 2, nullptr);
  ASSERT_TRUE(k2.ok());
  EXPECT_EQ(k2->digest.str(),
            "sha256:972934bd4a5498f988d8a2188df6fffd4c5c6b963677acbbeb701684b392c10e");
  EXPECT_EQ(k2->deps[1].selector.str(),
            "sha256:9ea10285e7c80f5dd8b7346b11a046b3f372d01ab85900c1f1fede0874b65ad4");
  EXPECT_FALSE(k2->deps[0].selector.valid()) << "input 0 is modified: no selector";
}

}  // namespace
}  // namespace kiln::engine
