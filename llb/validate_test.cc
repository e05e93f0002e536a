#include "llb/validate.h"

#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "llb/definition.h"

namespace kiln::llb {
namespace {

// Builds definitions op by op, computing digests as a sender would.
class DefBuilder {
 public:
  std::string Add(const pb::Op& op) {
    std::string bytes = SerializeDeterministic(op);
    def_.add_def(bytes);
    return OpDigest(bytes).str();
  }
  std::string Terminal(const std::string& digest, int64_t index = 0) {
    pb::Op t;
    pb::Input* in = t.add_inputs();
    in->set_digest(digest);
    in->set_index(index);
    return Add(t);
  }
  std::string Bytes() const { return SerializeDeterministic(def_); }

 private:
  pb::Definition def_;
};

pb::Op Source(const std::string& id = "docker-image://docker.io/library/busybox:latest") {
  pb::Op op;
  op.mutable_source()->set_identifier(id);
  return op;
}

pb::Input* AddInput(pb::Op* op, const std::string& digest, int64_t index = 0) {
  pb::Input* in = op->add_inputs();
  in->set_digest(digest);
  in->set_index(index);
  return in;
}

// exec on `root` with a root mount producing output 0.
pb::Op Exec(const std::string& root) {
  pb::Op op;
  AddInput(&op, root);
  pb::ExecOp* e = op.mutable_exec();
  e->mutable_meta()->add_args("true");
  e->mutable_meta()->set_cwd("/");
  pb::Mount* m = e->add_mounts();
  m->set_input(0);
  m->set_dest("/");
  m->set_output(0);
  return op;
}

pb::Op File(const std::string& base) {
  pb::Op op;
  AddInput(&op, base);
  pb::FileAction* a = op.mutable_file()->add_actions();
  a->set_input(0);
  a->set_secondaryinput(-1);
  a->set_output(0);
  a->mutable_mkdir()->set_path("/x");
  return op;
}

absl::Status ValidateBytes(const std::string& bytes) {
  absl::StatusOr<ParsedDefinition> def = ParsedDefinition::Parse(bytes);
  if (!def.ok()) return def.status();
  return Validate(*def);
}

// Builds source -> <op made by `make`> -> terminal and validates it.
absl::Status ValidateOne(const std::function<pb::Op(const std::string& src)>& make,
                         std::string* digest = nullptr) {
  DefBuilder b;
  std::string src = b.Add(Source());
  std::string d = b.Add(make(src));
  if (digest) *digest = d;
  b.Terminal(d);
  return ValidateBytes(b.Bytes());
}

void ExpectRejected(const absl::Status& s, const std::string& what,
                    const std::string& digest = "") {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(what), std::string::npos) << "want `" << what << "` in: " << s;
  if (!digest.empty()) {
    EXPECT_NE(s.message().find(digest), std::string::npos) << s;
  }
}

TEST(Validate, AcceptsWellFormedGraphs) {
  EXPECT_TRUE(ValidateOne(Exec).ok());
  EXPECT_TRUE(ValidateOne(File).ok());
}

TEST(Validate, RejectsEmptyAndTooSmallDefinitions) {
  ExpectRejected(ValidateBytes(""), "empty definition");
  DefBuilder one;
  one.Add(Source());
  ExpectRejected(ValidateBytes(one.Bytes()), "1 distinct op");
  DefBuilder dup;
  dup.Add(Source());
  dup.Add(Source());
  ExpectRejected(ValidateBytes(dup.Bytes()), "1 distinct op");
}

TEST(Validate, RejectsMissingTerminal) {
  DefBuilder b;
  std::string src = b.Add(Source());
  std::string exec = b.Add(Exec(src));
  ExpectRejected(ValidateBytes(b.Bytes()), "no terminal op", exec);
  DefBuilder c;
  c.Add(Source());
  pb::Op empty_terminal;
  std::string t = c.Add(empty_terminal);
  ExpectRejected(ValidateBytes(c.Bytes()), "has no inputs", t);
}

TEST(Validate, RejectsUnknownOps) {
  DefBuilder b;
  std::string src = b.Add(Source());
  pb::Op bodyless;
  AddInput(&bodyless, src);
  bodyless.mutable_platform()->set_os("linux");  // differs from the terminal
  std::string unknown = b.Add(bodyless);
  b.Terminal(src);
  ExpectRejected(ValidateBytes(b.Bytes()), "unknown op", unknown);
}

TEST(Validate, RejectsDanglingInputs) {
  const std::string missing = OpDigest("not here").str();
  std::string d;
  ExpectRejected(ValidateOne([&](const std::string&) { return Exec(missing); }, &d),
                 "not an op of the definition", missing);
  // The terminal is not a vertex others can use.
  DefBuilder c;
  std::string s2 = c.Add(Source());
  pb::Op term_like;
  AddInput(&term_like, s2);
  std::string term_digest = OpDigest(SerializeDeterministic(term_like)).str();
  std::string user = c.Add(Exec(term_digest));
  c.Add(term_like);  // the terminal, last
  (void)user;
  ExpectRejected(ValidateBytes(c.Bytes()), "not an op of the definition", term_digest);
}

TEST(Validate, RejectsCycles) {
  // Honest digests cannot form a cycle (an op's digest covers its inputs'), so trust two
  // made-up digests that point at each other.
  const Digest a = Digest::Sha256Of("a"), b = Digest::Sha256Of("b"), t = Digest::Sha256Of("t");
  std::vector<ParsedOp> ops(3);
  ops[0].digest = a;
  ops[0].op = Exec(b.str());
  ops[1].digest = b;
  ops[1].op = Exec(a.str());
  ops[2].digest = t;
  AddInput(&ops[2].op, a.str());
  for (ParsedOp& op : ops) op.bytes = SerializeDeterministic(op.op);
  ParsedDefinition def = ParsedDefinition::FromTrustedOpsForTest(std::move(ops));
  absl::Status s = Validate(def);
  ExpectRejected(s, "cycle");
  EXPECT_FALSE(def.TopologicalOrder().ok());
}

TEST(Validate, RejectsBadOutputIndexes) {
  DefBuilder b;
  std::string src = b.Add(Source());
  pb::Op exec = Exec(src);
  exec.mutable_inputs(0)->set_index(1);  // a source has one output
  std::string d = b.Add(exec);
  b.Terminal(d);
  ExpectRejected(ValidateBytes(b.Bytes()), "uses output 1 of", d);

  DefBuilder c;
  std::string s2 = c.Add(Source());
  std::string e = c.Add(Exec(s2));
  c.Terminal(e, 1);  // the exec has one output mount
  ExpectRejected(ValidateBytes(c.Bytes()), "which has 1 output(s)");

  DefBuilder n;
  std::string s3 = n.Add(Source());
  n.Terminal(s3, -1);
  ExpectRejected(ValidateBytes(n.Bytes()), "uses output -1");
}

TEST(Validate, ExecOutputsFollowBuildKitsMountRules) {
  // Secret and ssh mounts carry output 0 as Go's client leaves it; they produce nothing.
  DefBuilder b;
  std::string src = b.Add(Source());
  pb::Op exec = Exec(src);
  pb::Mount* secret = exec.mutable_exec()->add_mounts();
  secret->set_dest("/run/secrets/x");
  secret->set_mounttype(pb::SECRET);
  secret->mutable_secretopt()->set_id("x");
  pb::Mount* out = exec.mutable_exec()->add_mounts();
  out->set_input(-1);
  out->set_dest("/out");
  out->set_output(1);
  std::string d = b.Add(exec);
  b.Terminal(d, 1);
  EXPECT_TRUE(ValidateBytes(b.Bytes()).ok()) << ValidateBytes(b.Bytes());
  EXPECT_EQ(OutputCount(exec), 2);
}

TEST(Validate, RejectsMalformedExecs) {
  struct Case {
    std::string what;
    std::function<void(pb::Op*)> mutate;
  };
  const std::vector<Case> cases = {
      {"no meta", [](pb::Op* op) { op->mutable_exec()->clear_meta(); }},
      {"no args", [](pb::Op* op) { op->mutable_exec()->mutable_meta()->clear_args(); }},
      {"no mounts", [](pb::Op* op) { op->mutable_exec()->clear_mounts(); }},
      {"no rootfs", [](pb::Op* op) { op->mutable_exec()->mutable_mounts(0)->set_dest("/x"); }},
      {"not an absolute path",
       [](pb::Op* op) {
         pb::Mount* m = op->mutable_exec()->add_mounts();
         m->set_input(-1);
         m->set_dest("rel");
         m->set_output(-1);
       }},
      {"input index 3 is not -1",
       [](pb::Op* op) { op->mutable_exec()->mutable_mounts(0)->set_input(3); }},
      {"input index -2", [](pb::Op* op) { op->mutable_exec()->mutable_mounts(0)->set_input(-2); }},
      {"expected 0", [](pb::Op* op) { op->mutable_exec()->mutable_mounts(0)->set_output(1); }},
      {"invalid output index -3",
       [](pb::Op* op) { op->mutable_exec()->mutable_mounts(0)->set_output(-3); }},
      {"cache mount without cacheOpt",
       [](pb::Op* op) {
         pb::Mount* m = op->mutable_exec()->add_mounts();
         m->set_input(-1);
         m->set_dest("/c");
         m->set_output(-1);
         m->set_mounttype(pb::CACHE);
       }},
      {"secret mount without secretOpt",
       [](pb::Op* op) {
         pb::Mount* m = op->mutable_exec()->add_mounts();
         m->set_dest("/s");
         m->set_mounttype(pb::SECRET);
       }},
      {"unknown mount type 9",
       [](pb::Op* op) {
         op->mutable_exec()->mutable_mounts(0)->set_mounttype(static_cast<pb::MountType>(9));
       }},
      {"unknown network mode 7",
       [](pb::Op* op) { op->mutable_exec()->set_network(static_cast<pb::NetMode>(7)); }},
      {"unknown security mode 5",
       [](pb::Op* op) { op->mutable_exec()->set_security(static_cast<pb::SecurityMode>(5)); }},
      {"has no secret ID", [](pb::Op* op) { op->mutable_exec()->add_secretenv()->set_name("X"); }},
  };
  for (const Case& c : cases) {
    std::string digest;
    absl::Status s = ValidateOne(
        [&](const std::string& src) {
          pb::Op op = Exec(src);
          c.mutate(&op);
          return op;
        },
        &digest);
    ExpectRejected(s, c.what, digest);
  }
}

TEST(Validate, RejectsMalformedFileOps) {
  struct Case {
    std::string what;
    std::function<void(pb::Op*)> mutate;
  };
  auto action = [](pb::Op* op, int i) { return op->mutable_file()->mutable_actions(i); };
  auto add_action = [](pb::Op* op, int64_t input, int64_t output) {
    pb::FileAction* a = op->mutable_file()->add_actions();
    a->set_input(input);
    a->set_secondaryinput(-1);
    a->set_output(output);
    a->mutable_mkdir()->set_path("/y");
    return a;
  };
  const std::vector<Case> cases = {
      {"no actions", [](pb::Op* op) { op->mutable_file()->clear_actions(); }},
      {"has no action", [&](pb::Op* op) { action(op, 0)->clear_mkdir(); }},
      {"input 1 is not -1, an op input or an earlier action",
       [&](pb::Op* op) { action(op, 0)->set_input(1); }},  // 1 == inputs + own index
      {"input -2", [&](pb::Op* op) { action(op, 0)->set_input(-2); }},
      {"secondary input 5", [&](pb::Op* op) { action(op, 0)->set_secondaryinput(5); }},
      {"duplicate output index 0", [&](pb::Op* op) { add_action(op, 1, 0); }},
      {"missing output index 1", [&](pb::Op* op) { add_action(op, 1, 2); }},
      {"no outputs", [&](pb::Op* op) { action(op, 0)->set_output(-1); }},
      {"invalid output index -4", [&](pb::Op* op) { action(op, 0)->set_output(-4); }},
      {"empty mkdir path", [&](pb::Op* op) { action(op, 0)->mutable_mkdir()->clear_path(); }},
      {"empty copy source", [&](pb::Op* op) { action(op, 0)->mutable_copy()->set_dest("/d"); }},
      {"empty rm path", [&](pb::Op* op) { action(op, 0)->mutable_rm(); }},
      {"is looked up in input -1",
       [&](pb::Op* op) {
         pb::NamedUserOpt* n =
             action(op, 0)->mutable_mkdir()->mutable_owner()->mutable_user()->mutable_byname();
         n->set_name("u");
         n->set_input(-1);
       }},
      {"is looked up in input 9",
       [&](pb::Op* op) {
         pb::NamedUserOpt* n =
             action(op, 0)->mutable_mkdir()->mutable_owner()->mutable_group()->mutable_byname();
         n->set_name("g");
         n->set_input(9);
       }},
  };
  for (const Case& c : cases) {
    std::string digest;
    absl::Status s = ValidateOne(
        [&](const std::string& src) {
          pb::Op op = File(src);
          c.mutate(&op);
          return op;
        },
        &digest);
    ExpectRejected(s, c.what, digest);
  }
  // Chained actions referring to earlier actions are fine.
  absl::Status ok = ValidateOne([&](const std::string& src) {
    pb::Op op = File(src);
    action(&op, 0)->set_output(-1);
    pb::FileAction* a = add_action(&op, 1, 0);  // input = 1 input + action 0
    a->set_secondaryinput(0);
    return op;
  });
  EXPECT_TRUE(ok.ok()) << ok;
}

TEST(Validate, RejectsMalformedOtherOps) {
  std::string digest;
  ExpectRejected(ValidateOne([](const std::string&) { return Source(""); }, &digest),
                 "source identifier can't be empty", digest);
  ExpectRejected(ValidateOne(
                     [](const std::string& src) {
                       pb::Op op;
                       AddInput(&op, src);
                       op.mutable_merge()->add_inputs()->set_input(1);
                       return op;
                     },
                     &digest),
                 "merge input 0: input index 1 out of range", digest);
  ExpectRejected(ValidateOne(
                     [](const std::string& src) {
                       pb::Op op;
                       AddInput(&op, src);
                       op.mutable_diff()->mutable_upper()->set_input(0);
                       return op;
                     },
                     &digest),
                 "diff op without lower", digest);
  ExpectRejected(ValidateOne(
                     [](const std::string& src) {
                       pb::Op op;
                       AddInput(&op, src);
                       op.mutable_passthrough()->set_id("x");
                       op.mutable_passthrough()->add_outputs(2);
                       return op;
                     },
                     &digest),
                 "passthrough output references input 2", digest);
  EXPECT_TRUE(ValidateOne([](const std::string& src) {
                pb::Op op;
                AddInput(&op, src);
                op.mutable_diff()->mutable_lower()->set_input(-1);
                op.mutable_diff()->mutable_upper()->set_input(0);
                return op;
              }).ok());
}

TEST(Validate, RejectsSourceMapLocationsWithoutSource) {
  DefBuilder b;
  std::string src = b.Add(Source());
  b.Terminal(src);
  pb::Definition def;
  ASSERT_TRUE(def.ParseFromString(b.Bytes()));
  (*def.mutable_source()->mutable_locations())[src].add_locations()->set_sourceindex(0);
  ExpectRejected(ValidateBytes(SerializeDeterministic(def)), "refers to source #0");
  def.mutable_source()->add_infos()->set_filename("Dockerfile");
  EXPECT_TRUE(ValidateBytes(SerializeDeterministic(def)).ok());
}

TEST(Validate, LoadDefinitionReportsParseErrors) {
  absl::StatusOr<ParsedDefinition> def = LoadDefinition("\x0a\x05\x01");
  EXPECT_FALSE(def.ok());
  EXPECT_EQ(def.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::llb
