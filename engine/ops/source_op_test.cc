// NewSourceOp's dispatch on the identifier scheme, and the shared attribute helpers.
#include "engine/ops/source_op.h"

#include "engine/ops/source_op_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kiln::engine {
namespace {

using ::testing::HasSubstr;

TEST(SourceAttrsTest, GoIntegers) {
  EXPECT_EQ(*ParseGoInt("420"), 420);
  EXPECT_EQ(*ParseGoInt("0644"), 0644);
  EXPECT_EQ(*ParseGoInt("0o755"), 0755);
  EXPECT_EQ(*ParseGoInt("0x1ff"), 0x1ff);
  EXPECT_EQ(*ParseGoInt("0b101"), 5);
  EXPECT_EQ(*ParseGoInt("-12"), -12);
  EXPECT_EQ(*ParseGoInt("0"), 0);
  for (const char* bad : {"", "0x", "12a", "08", " 1", "1_000", "+"}) {
    EXPECT_FALSE(ParseGoInt(bad).ok()) << bad;
  }
}

TEST(SourceAttrsTest, JsonListsAndBooleans) {
  pb::SourceOp op;
  op.set_identifier("local://context");
  (*op.mutable_attrs())["list"] = R"(["a","b"])";
  (*op.mutable_attrs())["null"] = "null";
  (*op.mutable_attrs())["bad"] = R"({"a":1})";
  (*op.mutable_attrs())["yes"] = "true";
  (*op.mutable_attrs())["maybe"] = "maybe";
  SourceAttrs attrs(op);
  EXPECT_EQ(*attrs.StringList("list"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(attrs.StringList("null")->empty());
  EXPECT_TRUE(attrs.StringList("absent")->empty());
  auto bad = attrs.StringList("bad");
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_THAT(bad.status().message(), HasSubstr("local://context"));
  EXPECT_THAT(bad.status().message(), HasSubstr("bad"));
  EXPECT_TRUE(*attrs.Bool("yes", false));
  EXPECT_FALSE(*attrs.Bool("absent", false));
  EXPECT_TRUE(absl::IsInvalidArgument(attrs.Bool("maybe", false).status()));
}

TEST(SourceAttrsTest, CacheDigestIsBuildKits) {
  // sha256("buildkit.source.v0:" + key), as solver/llbsolver/ops/source.go computes it.
  EXPECT_EQ(SourceCacheDigest("abc"), Digest::Sha256Of("buildkit.source.v0:abc"));
}

class SourceDispatchTest : public source_testing::WorkerTest {};

TEST_F(SourceDispatchTest, SchemesAndErrors) {
  for (const char* id : {"docker-image://busybox", "local://context", "https://example.com/f",
                         "http://example.com/f", "git://github.com/moby/buildkit#v0.11.6"}) {
    auto op = NewSourceOp(source_testing::SourceOp(id), Env());
    EXPECT_TRUE(op.ok()) << id << ": " << op.status();
  }
  auto oci = NewSourceOp(source_testing::SourceOp("oci-layout://store/img:1"), Env());
  EXPECT_TRUE(absl::IsUnimplemented(oci.status())) << oci.status();
  EXPECT_THAT(oci.status().message(), HasSubstr("oci-layout"));
  auto unknown = NewSourceOp(source_testing::SourceOp("ftp://x/y"), Env());
  EXPECT_TRUE(absl::IsInvalidArgument(unknown.status())) << unknown.status();
  EXPECT_THAT(unknown.status().message(), HasSubstr("ftp"));
  auto noscheme = NewSourceOp(source_testing::SourceOp("busybox"), Env());
  EXPECT_TRUE(absl::IsInvalidArgument(noscheme.status())) << noscheme.status();
  LlbOp exec;
  exec.op.mutable_exec();
  EXPECT_TRUE(absl::IsInvalidArgument(NewSourceOp(exec, Env()).status()));
}

}  // namespace
}  // namespace kiln::engine
