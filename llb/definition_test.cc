#include "llb/definition.h"

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "llb/llb.h"
#include "llb/testing.h"
#include "llb/validate.h"

namespace kiln::llb {
namespace {

using testing::ReadTestdata;

oci::Platform Amd64() {
  oci::Platform p;
  p.os = "linux";
  p.architecture = "amd64";
  return p;
}

// A small but branchy graph: image -> exec (with a local mount) -> file copy from the local.
pb::Definition BuildSample() {
  State local = Local("context", {.session_id = "s1"});
  ExecInfo run;
  run.args = {"/bin/sh", "-c", "make"};
  run.mounts = {{"/src", local, {.readonly = true}}, {"/out", Scratch(), {}}};
  ExecState es = Image("busybox").Run(run);
  State st = es.Root().File(Copy(local, "/a", "/b").Copy(es.GetMount("/out"), "/bin", "/usr/bin/"),
                            Constraints().WithCustomName("copy"));
  absl::StatusOr<pb::Definition> def = st.Marshal(Constraints().WithPlatform(Amd64()));
  EXPECT_TRUE(def.ok()) << def.status();
  return *def;
}

void ExpectTopological(const ParsedDefinition& def) {
  absl::StatusOr<std::vector<const ParsedOp*>> order = def.TopologicalOrder();
  ASSERT_TRUE(order.ok()) << order.status();
  EXPECT_EQ(order->size(), def.ops().size() - 1);  // all but the terminal
  std::set<std::string> seen;
  for (const ParsedOp* op : *order) {
    for (const pb::Input& in : op->op.inputs()) {
      EXPECT_TRUE(seen.count(in.digest()))
          << op->digest.str() << " before its input " << in.digest();
    }
    seen.insert(op->digest.str());
  }
}

TEST(ParsedDefinition, BuilderOutputReadsBackWithIdenticalBytesAndDigests) {
  const pb::Definition def = BuildSample();
  const std::string bytes = SerializeDeterministic(def);
  absl::StatusOr<ParsedDefinition> parsed = ParsedDefinition::Parse(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->ops().size(), static_cast<size_t>(def.def_size()));
  for (int i = 0; i < def.def_size(); ++i) {
    const ParsedOp& op = parsed->ops()[i];
    EXPECT_EQ(op.bytes, def.def(i));
    EXPECT_EQ(op.digest, Digest::Sha256Of(def.def(i)));
    EXPECT_EQ(SerializeDeterministic(op.op), op.bytes);
    EXPECT_EQ(parsed->Find(op.digest), &op);
    EXPECT_NE(parsed->Metadata(op.digest), nullptr) << "every op gets metadata";
  }
  EXPECT_EQ(parsed->terminal(), &parsed->ops().back());
  ASSERT_NE(parsed->result(), nullptr);
  const ParsedOp* result_op = parsed->Find(parsed->result()->digest());
  ASSERT_NE(result_op, nullptr);
  EXPECT_TRUE(result_op->op.has_file());
  EXPECT_EQ(parsed->Metadata(result_op->digest)->description().at("llb.customname"), "copy");
  EXPECT_EQ(SerializeDeterministic(parsed->proto()), bytes);
  EXPECT_TRUE(Validate(*parsed).ok());
  ExpectTopological(*parsed);
  EXPECT_EQ(parsed->Find("sha256:nope"), nullptr);
}

TEST(ParsedDefinition, ShuffledOpsReadTheSame) {
  const pb::Definition def = BuildSample();
  absl::StatusOr<ParsedDefinition> original = ParsedDefinition::FromProto(def);
  ASSERT_TRUE(original.ok());
  std::set<std::string> digests;
  for (const ParsedOp& op : original->ops()) digests.insert(op.digest.str());
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    pb::Definition shuffled = def;
    std::vector<std::string> ops(def.def().begin(), def.def().end());
    std::shuffle(ops.begin(), ops.end(), rng);
    shuffled.clear_def();
    for (const std::string& op : ops) shuffled.add_def(op);
    absl::StatusOr<ParsedDefinition> parsed =
        ParsedDefinition::Parse(SerializeDeterministic(shuffled));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    std::set<std::string> got;
    for (const ParsedOp& op : parsed->ops()) got.insert(op.digest.str());
    EXPECT_EQ(got, digests);
    EXPECT_EQ(parsed->terminal()->digest, original->terminal()->digest);
    EXPECT_EQ(parsed->result()->digest(), original->result()->digest());
    EXPECT_TRUE(Validate(*parsed).ok()) << Validate(*parsed);
    ExpectTopological(*parsed);
  }
}

TEST(ParsedDefinition, DuplicateOpsAreKeptOnce) {
  pb::Definition def = BuildSample();
  const std::string first = def.def(0);
  const std::string terminal = def.def(def.def_size() - 1);
  def.mutable_def()->RemoveLast();
  def.add_def(first);
  def.add_def(def.def(1));
  def.add_def(terminal);
  absl::StatusOr<ParsedDefinition> parsed = ParsedDefinition::FromProto(def);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->raw_op_count(), static_cast<size_t>(def.def_size()));
  EXPECT_EQ(parsed->ops().size(), static_cast<size_t>(def.def_size() - 2));
  EXPECT_TRUE(Validate(*parsed).ok());
}

TEST(ParsedDefinition, TerminalIsTheBodylessOpWhereverItIs) {
  pb::Definition def = BuildSample();
  const std::string terminal = def.def(def.def_size() - 1);
  // Terminal first.
  pb::Definition moved;
  moved.add_def(terminal);
  for (int i = 0; i + 1 < def.def_size(); ++i) moved.add_def(def.def(i));
  absl::StatusOr<ParsedDefinition> parsed = ParsedDefinition::FromProto(moved);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->terminal()->bytes, terminal);
  // No bodyless op at all: the last element is taken (BuildKit's rule), and rejected.
  pb::Definition none = def;
  none.mutable_def()->RemoveLast();
  parsed = ParsedDefinition::FromProto(none);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->terminal()->bytes, none.def(none.def_size() - 1));
  EXPECT_FALSE(Validate(*parsed).ok());
  // Empty.
  parsed = ParsedDefinition::Parse("");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->terminal(), nullptr);
  EXPECT_EQ(parsed->result(), nullptr);
  EXPECT_TRUE(parsed->TopologicalOrder().ok());
}

TEST(ParsedDefinition, TruncatedAndGarbageBytesNeverCrash) {
  const std::string bytes = SerializeDeterministic(BuildSample());
  int parsed_ok = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::StatusOr<ParsedDefinition> def = ParsedDefinition::Parse(bytes.substr(0, n));
    if (!def.ok()) {
      EXPECT_EQ(def.status().code(), absl::StatusCode::kInvalidArgument);
      continue;
    }
    ++parsed_ok;
    absl::Status v = Validate(*def);  // must not crash; truncation can still be valid protobuf
    (void)def->TopologicalOrder();
    (void)v;
  }
  EXPECT_GT(parsed_ok, 0);
  std::mt19937 rng(42);
  for (int round = 0; round < 2000; ++round) {
    std::string garbage(rng() % 256, '\0');
    for (char& c : garbage) c = static_cast<char>(rng());
    if (round % 2 == 0 && bytes.size() > 8) {  // flip bytes of a valid definition
      garbage = bytes;
      for (int k = 0; k < 4; ++k) garbage[rng() % garbage.size()] = static_cast<char>(rng());
    }
    absl::StatusOr<ParsedDefinition> def = ParsedDefinition::Parse(garbage);
    if (def.ok()) {
      (void)Validate(*def);
      (void)def->TopologicalOrder();
    }
  }
}

TEST(ParsedDefinition, BadOpBytesAreRejectedWithTheirIndex) {
  pb::Definition def = BuildSample();
  def.set_def(1, "\xff\xff\xff");
  absl::StatusOr<ParsedDefinition> parsed = ParsedDefinition::FromProto(def);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("op #1"), std::string::npos) << parsed.status();
}

TEST(ParsedDefinition, DeepChainsNeedNoRecursion) {
  // 100000 file ops in a chain, built directly so the test does not depend on the builder.
  pb::Definition def;
  pb::Op src;
  src.mutable_source()->set_identifier("local://x");
  std::string prev = SerializeDeterministic(src);
  def.add_def(prev);
  for (int i = 0; i < 100000; ++i) {
    pb::Op op;
    pb::Input* in = op.add_inputs();
    in->set_digest(OpDigest(prev).str());
    pb::FileAction* a = op.mutable_file()->add_actions();
    a->set_input(0);
    a->set_secondaryinput(-1);
    a->set_output(0);
    a->mutable_mkdir()->set_path("/d" + std::to_string(i));
    prev = SerializeDeterministic(op);
    def.add_def(prev);
  }
  pb::Op terminal;
  terminal.add_inputs()->set_digest(OpDigest(prev).str());
  def.add_def(SerializeDeterministic(terminal));
  absl::StatusOr<ParsedDefinition> parsed = ParsedDefinition::FromProto(def);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(Validate(*parsed).ok());
  absl::StatusOr<std::vector<const ParsedOp*>> order = parsed->TopologicalOrder();
  ASSERT_TRUE(order.ok());
  EXPECT_EQ(order->size(), 100001u);
  EXPECT_TRUE(order->front()->op.has_source());
}

// Field names, numbers and types against BuildKit HEAD's own ops.proto: head_*.pb were encoded
// by protoc from head_*.txtpb with HEAD's schema; our schema must read the same text into the
// same bytes.
class HeadSchema : public ::testing::TestWithParam<std::pair<std::string, bool>> {};

TEST_P(HeadSchema, TextAndWireAgreeWithBuildKitHead) {
  const auto& [name, is_definition] = GetParam();
  std::string text = ReadTestdata(name + ".txtpb");
  const std::string wire = ReadTestdata(name + ".pb");
  pb::Op op;
  pb::Definition def;
  google::protobuf::Message& msg =
      is_definition ? static_cast<google::protobuf::Message&>(def) : op;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &msg)) << name;
  EXPECT_EQ(SerializeDeterministic(msg), wire) << name;
  std::unique_ptr<google::protobuf::Message> back(msg.New());
  ASSERT_TRUE(back->ParseFromString(wire));
  EXPECT_TRUE(back->GetReflection()->GetUnknownFields(*back).empty()) << "fields unknown to Kiln";
}

INSTANTIATE_TEST_SUITE_P(Files, HeadSchema,
                         ::testing::Values(std::make_pair("head_exec_op", false),
                                           std::make_pair("head_file_op", false),
                                           std::make_pair("head_passthrough_op", false),
                                           std::make_pair("head_definition", true)));

TEST(ParsedDefinition, HeadOpsValidate) {
  // A definition using HEAD-only ops: passthrough of a source, then an exec with valid exit
  // codes, CDI devices and content-cache mounts.
  pb::Op exec;
  ASSERT_TRUE(
      google::protobuf::TextFormat::ParseFromString(ReadTestdata("head_exec_op.txtpb"), &exec));
  pb::Op src;
  src.mutable_source()->set_identifier("docker-image://docker.io/library/busybox:latest");
  const std::string src_bytes = SerializeDeterministic(src);
  pb::Op pass;
  pass.add_inputs()->set_digest(OpDigest(src_bytes).str());
  pass.mutable_passthrough()->set_id("p");
  pass.mutable_passthrough()->add_outputs(0);
  const std::string pass_bytes = SerializeDeterministic(pass);
  exec.mutable_inputs(0)->set_digest(OpDigest(pass_bytes).str());
  const std::string exec_bytes = SerializeDeterministic(exec);
  pb::Op terminal;
  terminal.add_inputs()->set_digest(OpDigest(exec_bytes).str());
  pb::Definition def;
  for (const std::string* b : {&src_bytes, &pass_bytes, &exec_bytes}) def.add_def(*b);
  def.add_def(SerializeDeterministic(terminal));
  absl::StatusOr<ParsedDefinition> parsed = LoadDefinition(SerializeDeterministic(def));
  EXPECT_TRUE(parsed.ok()) << parsed.status();
}

}  // namespace
}  // namespace kiln::llb
