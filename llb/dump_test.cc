#include "llb/dump.h"

#include <string>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "llb/testing.h"

namespace kiln::llb {
namespace {

using testing::ReadTestdata;

template <typename M>
M FromText(const std::string& text) {
  M m;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &m)) << text;
  return m;
}

TEST(GoJson, FollowsEncodingJsonOverBuildKitStructs) {
  // Zero scalars are omitted except the non-nullable ones; a oneof uint32 of 0 prints as {}.
  EXPECT_EQ(GoJson(FromText<pb::Input>("")), R"({"digest":"","index":0})");
  EXPECT_EQ(GoJson(FromText<pb::UserOpt>("byID: 0")), R"({"User":{}})");
  EXPECT_EQ(GoJson(FromText<pb::UserOpt>("byID: 7")), R"({"User":{"byID":7}})");
  EXPECT_EQ(GoJson(FromText<pb::UserOpt>("")), R"({"User":null})");
  EXPECT_EQ(GoJson(pb::OpMetadata()), R"({"caps":null})");
  EXPECT_EQ(GoJson(FromText<pb::OpMetadata>(
                R"(caps { key: "b" value: true } caps { key: "a" value: false })")),
            R"({"caps":{"a":false,"b":true}})");
  EXPECT_EQ(GoJson(FromText<pb::Range>("")), R"({"start":{},"end":{}})");
  // Bytes are base64, enums numbers, strings HTML-safe.
  EXPECT_EQ(GoJson(FromText<pb::FileActionMkFile>(R"(path: "<a&b>" mode: 420 data: "\000\377")")),
            R"({"path":"\u003ca\u0026b\u003e","mode":420,"data":"AP8="})");
  EXPECT_EQ(GoJson(FromText<pb::ExecOp>("network: HOST security: INSECURE")),
            R"({"network":1,"security":1})");
  EXPECT_EQ(GoJson(FromText<pb::Mount>("mountType: TMPFS TmpfsOpt {}")),
            R"({"input":0,"output":0,"mountType":4,"TmpfsOpt":{}})");
  EXPECT_EQ(GoJson(FromText<pb::Definition>("")), R"({"metadata":null})");
}

TEST(GoJson, HeadFieldsUseTheSameShape) {
  // Not printable by buildctl v0.11.6 (it drops unknown fields); Kiln names them after
  // BuildKit HEAD's proto with the same rules.
  pb::Op op;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      ReadTestdata("head_passthrough_op.txtpb"), &op));
  EXPECT_EQ(
      GoJson(op),
      R"({"inputs":[{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000001","index":0},)"
      R"({"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000002","index":1}],)"
      R"("Op":{"passthrough":{"id":"test.multi","outputs":[1,0]}}})");
  EXPECT_EQ(
      GoJson(FromText<pb::FileAction>(R"(input: 1 symlink { oldpath: "/a" newpath: "/b" })")),
      R"({"input":1,"secondaryInput":0,"output":0,"Action":{"symlink":{"oldpath":"/a","newpath":"/b"}}})");
}

TEST(DumpJson, RejectsBytesThatDoNotParse) {
  absl::StatusOr<std::string> dump = DumpJson(std::string("\x0a\x05\x01", 3));
  EXPECT_FALSE(dump.ok());
  EXPECT_EQ(DumpJson(std::string()).value(), "");
}

TEST(DumpJson, PrintsDuplicatesAsBuildctlDoes) {
  pb::Definition def;
  pb::Op src;
  src.mutable_source()->set_identifier("local://x");
  def.add_def(SerializeDeterministic(src));
  def.add_def(SerializeDeterministic(src));
  absl::StatusOr<std::string> dump = DumpJson(SerializeDeterministic(def));
  ASSERT_TRUE(dump.ok());
  const std::string line = R"({"Op":{"Op":{"source":{"identifier":"local://x"}}},"Digest":")" +
                           OpDigest(def.def(0)).str() + R"(","OpMetadata":{"caps":null}})" + "\n";
  EXPECT_EQ(*dump, line + line);
}

class DotFile : public ::testing::TestWithParam<std::string> {};

TEST_P(DotFile, MatchesBuildctl) {
  absl::StatusOr<std::string> dot = DumpDot(ReadTestdata(GetParam() + ".pb"));
  ASSERT_TRUE(dot.ok()) << dot.status();
  EXPECT_EQ(*dot, ReadTestdata(GetParam() + ".dot"));
}

INSTANTIATE_TEST_SUITE_P(Files, DotFile,
                         ::testing::Values("multistage", "mounts", "go_file", "go_diff",
                                           "heredoc"));

TEST(MarshalDefinition, IsTheDeterministicWireForm) {
  const std::string bytes = ReadTestdata("multistage.pb");
  pb::Definition def;
  ASSERT_TRUE(def.ParseFromString(bytes));
  EXPECT_EQ(MarshalDefinition(def), bytes);
}

}  // namespace
}  // namespace kiln::llb
