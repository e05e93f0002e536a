// Semantics of the State builder that the byte-compatibility tests do not pin down on their own.
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "llb/definition.h"
#include "llb/llb.h"
#include "llb/validate.h"

namespace kiln::llb {
namespace {

oci::Platform MakePlatform(std::string os, std::string arch, std::string variant = "") {
  oci::Platform p;
  p.os = std::move(os);
  p.architecture = std::move(arch);
  p.variant = std::move(variant);
  return p;
}

Constraints Fixed() {
  return Constraints().WithPlatform(MakePlatform("linux", "amd64")).WithLocalUniqueID("u");
}

pb::Definition MustMarshal(const State& st, const Constraints& c = Fixed()) {
  absl::StatusOr<pb::Definition> def = st.Marshal(c);
  EXPECT_TRUE(def.ok()) << def.status();
  return def.ok() ? *def : pb::Definition();
}

// The op the state's result comes from.
pb::Op ResultOp(const pb::Definition& def) {
  pb::Op terminal;
  terminal.ParseFromString(def.def(def.def_size() - 1));
  for (const std::string& bytes : def.def()) {
    if (OpDigest(bytes).str() == terminal.inputs(0).digest()) {
      pb::Op op;
      op.ParseFromString(bytes);
      return op;
    }
  }
  ADD_FAILURE() << "result op not found";
  return {};
}

std::string MarshalError(const State& st) {
  absl::StatusOr<pb::Definition> def = st.Marshal(Fixed());
  EXPECT_FALSE(def.ok());
  return def.ok() ? "" : std::string(def.status().message());
}

TEST(EnvList, AddOrReplaceMovesToTheEnd) {
  EnvList e = EnvList().AddOrReplace("A", "1").AddOrReplace("B", "2").AddOrReplace("A", "3");
  EXPECT_EQ(e.ToArray(), (std::vector<std::string>{"B=2", "A=3"}));
  EXPECT_EQ(e.SetDefault("B", "x").ToArray(), e.ToArray());
  EXPECT_EQ(e.SetDefault("C", "4").ToArray(), (std::vector<std::string>{"B=2", "A=3", "C=4"}));
  EXPECT_EQ(e.Delete("B").ToArray(), (std::vector<std::string>{"A=3"}));
  EXPECT_EQ(e.Get("A"), "3");
  EXPECT_EQ(e.Get("Z"), std::nullopt);
  EXPECT_EQ(EnvList().AddOrReplace("E", "").ToArray(), (std::vector<std::string>{"E="}));
}

TEST(State, ValuesAreImmutableAndDirJoins) {
  State a = Scratch();
  EXPECT_EQ(a.GetDir(), "/");
  State b = a.Dir("x/y").Dir("../z").AddEnv("K", "v");
  EXPECT_EQ(a.GetDir(), "/");
  EXPECT_TRUE(a.Env().empty());
  EXPECT_EQ(b.GetDir(), "/x/z");
  EXPECT_EQ(b.Dir("/abs/./p/").GetDir(), "/abs/./p/");  // absolute: kept as given, like Go
  EXPECT_EQ(b.Dir("..").Dir("..").Dir("..").GetDir(), "/");
  EXPECT_EQ(b.GetEnv("K"), "v");
  State c =
      b.User("u").Hostname("h").Network(pb::HOST).Security(pb::INSECURE).WithCgroupParent("cg");
  EXPECT_EQ(c.GetUser(), "u");
  EXPECT_EQ(c.GetHostname(), "h");
  EXPECT_EQ(c.GetNetwork(), pb::HOST);
  EXPECT_EQ(c.GetSecurity(), pb::INSECURE);
  EXPECT_EQ(c.values().cgroup_parent, "cg");
  EXPECT_EQ(c.Platform(MakePlatform("", "x86_64")).GetPlatform(), MakePlatform("linux", "amd64"));
  EXPECT_EQ(c.Platform(MakePlatform("Linux", "armhf")).GetPlatform(),
            MakePlatform("linux", "arm", "v7"));
}

TEST(State, WithOutputKeepsValuesFromOutputResets) {
  State img =
      Image("busybox", {.constraints = Constraints().WithPlatform(MakePlatform("linux", "arm64"))});
  EXPECT_EQ(img.GetPlatform(), MakePlatform("linux", "arm64"));
  State s = Scratch().AddEnv("A", "1").Dir("/w");
  State with = s.WithOutput(img.output());
  EXPECT_EQ(with.GetDir(), "/w");
  EXPECT_EQ(with.GetEnv("A"), "1");
  EXPECT_EQ(with.GetPlatform(), MakePlatform("linux", "arm64"));
  State fresh = State::FromOutput(s.File(Mkdir("/x", 0755)).output());
  EXPECT_EQ(fresh.GetDir(), "/");
  EXPECT_TRUE(fresh.Env().empty());
  EXPECT_FALSE(fresh.GetPlatform().has_value());
}

TEST(State, WithImageConfigTakesEnvDirAndPlatformButNotUser) {
  State s = Scratch().AddEnv("PATH", "/old").AddEnv("KEEP", "1");
  absl::StatusOr<State> got = s.WithImageConfig(
      R"({"architecture":"arm64","os":"linux","variant":"v8","config":{"Env":["PATH=/bin","=bad","NOVAL"],"WorkingDir":"/app","User":"nobody"}})");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->Env(), (std::vector<std::string>{"KEEP=1", "PATH=/bin", "NOVAL="}));
  EXPECT_EQ(got->GetDir(), "/app");
  EXPECT_EQ(got->GetUser(), "");
  EXPECT_EQ(got->GetPlatform(), MakePlatform("linux", "arm64"));
  EXPECT_FALSE(s.WithImageConfig("{not json").ok());
}

TEST(Sources, ImageWithResolvedConfig) {
  State st = Image(
      "busybox",
      {.config_json =
           R"({"os":"linux","architecture":"arm64","config":{"Env":["PATH=/x"],"WorkingDir":"/w","User":"u"}})"});
  EXPECT_EQ(st.Env(), (std::vector<std::string>{"PATH=/x"}));
  EXPECT_EQ(st.GetDir(), "/w");
  EXPECT_EQ(st.GetUser(), "");
  EXPECT_EQ(st.GetPlatform(), MakePlatform("linux", "arm64"));
  // The op itself does not change: the config only feeds the state's values.
  EXPECT_EQ(ResultOp(MustMarshal(st)).source().identifier(),
            "docker-image://docker.io/library/busybox:latest");
  EXPECT_NE(MarshalError(Image("busybox", {.config_json = "[1]"})).find("image config"),
            std::string::npos);
}

TEST(Exec, MountsAreSortedAndOutputsNumberedAsGo) {
  State img = Image("busybox");
  ExecInfo info;
  info.args = {"true"};
  info.mounts = {{"/z", Scratch(), {}},
                 {"/a/ro", img, {.readonly = true}},
                 {"/m", img, {}},
                 {"/cache", Scratch(), {.cache = MountOptions::Cache{"id"}}},
                 {"/t", Scratch(), {.tmpfs = MountOptions::Tmpfs{}}}};
  ExecState es = img.Run(info);
  pb::Op op = ResultOp(MustMarshal(Merge({es.Root(), es.GetMount("/z"), es.GetMount("/m")})));
  ASSERT_TRUE(op.has_merge());
  pb::Definition def = MustMarshal(es.GetMount("/m"));
  pb::Op exec = ResultOp(def);
  ASSERT_TRUE(exec.has_exec());
  std::vector<std::string> dests;
  for (const pb::Mount& m : exec.exec().mounts()) dests.push_back(m.dest());
  EXPECT_EQ(dests, (std::vector<std::string>{"/", "/a/ro", "/cache", "/m", "/t", "/z"}));
  // One input: every mount of the image shares it.
  EXPECT_EQ(exec.inputs_size(), 1);
  EXPECT_EQ(exec.exec().mounts(0).output(), 0);   // root
  EXPECT_EQ(exec.exec().mounts(1).output(), -1);  // read-only
  EXPECT_EQ(exec.exec().mounts(2).output(), -1);  // cache
  EXPECT_EQ(exec.exec().mounts(3).output(), 1);   // /m
  EXPECT_EQ(exec.exec().mounts(4).output(), -1);  // tmpfs
  EXPECT_EQ(exec.exec().mounts(5).output(), 2);   // /z
  pb::Op terminal;
  terminal.ParseFromString(def.def(def.def_size() - 1));
  EXPECT_EQ(terminal.inputs(0).index(), 1);
  // A read-only mount's "result" is its source.
  EXPECT_EQ(es.GetMount("/a/ro").output(), img.output());
  EXPECT_TRUE(es.GetMount("/nope").IsScratch());
  EXPECT_TRUE(LoadDefinition(SerializeDeterministic(def)).ok());
}

TEST(Exec, MountsWithoutOutputCannotBeUsed) {
  ExecInfo info;
  info.args = {"true"};
  info.mounts = {{"/t", Scratch(), {.tmpfs = MountOptions::Tmpfs{}}},
                 {"/n", Image("busybox"), {.force_no_output = true}}};
  ExecState es = Image("busybox").Run(info);
  EXPECT_NE(MarshalError(es.GetMount("/t")).find("can't be used as a parent"), std::string::npos);
  EXPECT_NE(MarshalError(es.GetMount("/n")).find("can't be used as a parent"), std::string::npos);
  State late = es.AddMount("/late", Scratch(), {.tmpfs = MountOptions::Tmpfs{}});
  EXPECT_NE(MarshalError(late).find("tmpfs mount for /late can't be used as a parent"),
            std::string::npos);
  ExecInfo bad;
  bad.args = {"true"};
  bad.mounts = {{"/t", Image("busybox"), {.tmpfs = MountOptions::Tmpfs{}}}};
  EXPECT_NE(MarshalError(Image("busybox").Run(bad).Root()).find("tmpfs mounts must use scratch"),
            std::string::npos);
  EXPECT_NE(MarshalError(Image("busybox").Run({}).Root()).find("arguments are required"),
            std::string::npos);
}

TEST(Exec, SshSecretsProxyAndCaps) {
  ExecInfo info;
  info.args = {"true"};
  info.ssh = {{}, {.target = "/s"}};
  info.secrets = {{.id = "tok", .target = "TOKEN", .is_env = true}};
  info.state_options = {[](State s) { return s.AddEnv("FROM_OPTION", "1"); }};
  info.valid_exit_codes = std::vector<int32_t>{0, 1};
  pb::Definition def =
      MustMarshal(Image("busybox").AddEnv("SSH_AUTH_SOCK", "/mine").Run(info).Root());
  pb::Op op = ResultOp(def);
  const pb::ExecOp& e = op.exec();
  EXPECT_EQ(e.meta().env(0), "SSH_AUTH_SOCK=/mine");  // not overridden
  EXPECT_EQ(e.meta().env(1), "FROM_OPTION=1");
  ASSERT_EQ(e.mounts_size(), 3);
  EXPECT_EQ(e.mounts(1).dest(), "/run/buildkit/ssh_agent.0");
  EXPECT_EQ(e.mounts(1).sshopt().mode(), 0600u);
  EXPECT_EQ(e.mounts(2).dest(), "/s");
  ASSERT_EQ(e.secretenv_size(), 1);
  EXPECT_EQ(e.secretenv(0).id(), "tok");
  EXPECT_EQ(e.secretenv(0).name(), "TOKEN");
  EXPECT_EQ(e.meta().validexitcodes_size(), 2);
  const pb::OpMetadata& md = def.metadata().at(OpDigest(def.def(def.def_size() - 2)).str());
  for (const char* cap : {kCapExecMountSSH, kCapExecMountSecret, kCapExecSecretEnv,
                          kCapExecValidExitCode, kCapExecMetaBase, kCapExecMountBind}) {
    EXPECT_TRUE(md.caps().count(cap)) << cap;
  }
  EXPECT_FALSE(md.caps().count(kCapExecMetaSetsDefaultPath));  // no caps given: no PATH logic
  for (const std::string& env : e.meta().env()) EXPECT_FALSE(env.starts_with("PATH="));
}

TEST(Exec, InvalidExtraHostIsAnError) {
  ExecInfo info;
  info.args = {"true"};
  info.extra_hosts = {{"h", "not-an-ip"}};
  EXPECT_NE(MarshalError(Image("busybox").Run(info).Root()).find("invalid IP address"),
            std::string::npos);
}

TEST(FileOp, ChainsIndexInputsAndActionsAsGo) {
  State base = Image("alpine").Dir("/work");
  State src = Local("src");
  FileAction other = Mkdir("/o", 0755).WithState(Scratch()).action();
  FileAction chain = Mkdir("a", 0755)
                         .Copy(src, "x", "b/")
                         .Copy(Mkfile("f", 0644, "d").WithState(Scratch().Dir("/in")), "f", "c/.")
                         .Copy(Scratch(), "/nothing", "/d")
                         .Rm("a");
  (void)other;
  pb::Op op = ResultOp(MustMarshal(base.File(chain)));
  ASSERT_TRUE(op.has_file());
  ASSERT_EQ(op.inputs_size(), 2);  // alpine, src (scratch adds none)
  const auto& a = op.file().actions();
  ASSERT_EQ(a.size(), 6);
  // 0 mkdir /work/a on alpine
  EXPECT_EQ(a[0].input(), 0);
  EXPECT_EQ(a[0].mkdir().path(), "/work/a");
  EXPECT_EQ(a[0].output(), -1);
  // 1 copy from src onto action 0
  EXPECT_EQ(a[1].input(), 2 + 0);
  EXPECT_EQ(a[1].secondaryinput(), 1);
  EXPECT_EQ(a[1].copy().src(), "/x");
  EXPECT_EQ(a[1].copy().dest(), "/work/b/");
  // 2 mkfile bound to scratch (the copy source chain), added before the copy using it
  EXPECT_EQ(a[2].input(), -1);
  EXPECT_EQ(a[2].mkfile().path(), "/in/f");
  // 3 copy from action 2
  EXPECT_EQ(a[3].input(), 2 + 1);
  EXPECT_EQ(a[3].secondaryinput(), 2 + 2);
  EXPECT_EQ(a[3].copy().src(), "/in/f");
  EXPECT_EQ(a[3].copy().dest(), "/work/c/.");
  // 4 copy from scratch: no secondary input
  EXPECT_EQ(a[4].secondaryinput(), -1);
  EXPECT_EQ(a[4].copy().mode(), -1);
  EXPECT_EQ(a[4].copy().timestamp(), -1);
  // 5 rm, the only output
  EXPECT_EQ(a[5].input(), 2 + 4);
  EXPECT_EQ(a[5].rm().path(), "/work/a");
  EXPECT_EQ(a[5].output(), 0);
}

TEST(FileOp, CopyModeStringAndRequiredPathsAsGoHead) {
  CopyInfo info;
  info.mode = 0755;
  info.mode_str = "u+x";  // wins over mode; Go then leaves mode 0
  info.required_paths = {"/a/b", "/c"};
  pb::Op op = ResultOp(MustMarshal(Scratch().File(Copy(Local("src"), "/a", "/", info))));
  const pb::FileActionCopy& c = op.file().actions(0).copy();
  EXPECT_EQ(c.modestr(), "u+x");
  EXPECT_EQ(c.mode(), 0);
  ASSERT_EQ(c.required_paths_size(), 2);
  EXPECT_EQ(c.required_paths(0), "/a/b");
  EXPECT_EQ(c.required_paths(1), "/c");
  info.mode_str.clear();
  info.required_paths.clear();
  const pb::FileActionCopy plain =
      ResultOp(MustMarshal(Scratch().File(Copy(Local("src"), "/a", "/", info))))
          .file()
          .actions(0)
          .copy();
  EXPECT_EQ(plain.mode(), 0755);
  EXPECT_EQ(plain.modestr(), "");
  EXPECT_EQ(plain.required_paths_size(), 0);
}

TEST(FileOp, ChownSpecs) {
  EXPECT_EQ(ChownFromSpec("root"), (ChownOpt{UserOpt{0, ""}, std::nullopt}));
  EXPECT_EQ(ChownFromSpec("1:2"), (ChownOpt{UserOpt{1, ""}, UserOpt{2, ""}}));
  EXPECT_EQ(ChownFromSpec("app:root"), (ChownOpt{UserOpt{0, "app"}, UserOpt{0, ""}}));
  EXPECT_EQ(ChownFromSpec("-1"), (ChownOpt{UserOpt{0xffffffffu, ""}, std::nullopt}));
  EXPECT_EQ(ChownFromSpec("99999999999"), (ChownOpt{UserOpt{0, "99999999999"}, std::nullopt}));
  EXPECT_EQ(ChownFromSpec("a:b:c"), (ChownOpt{UserOpt{0, "a"}, UserOpt{0, "b:c"}}));
  EXPECT_EQ(ChownFromIds(5, 6), (ChownOpt{UserOpt{5, ""}, UserOpt{6, ""}}));
}

TEST(FileOp, EmptyActionIsAnError) {
  EXPECT_NE(MarshalError(Scratch().File(FileAction())).find("action is required"),
            std::string::npos);
}

TEST(Sources, IdentifiersAndErrors) {
  EXPECT_TRUE(ResultOp(MustMarshal(Image("busybox"))).source().identifier() ==
              "docker-image://docker.io/library/busybox:latest");
  EXPECT_EQ(ResultOp(MustMarshal(Image("index.docker.io/foo/bar"))).source().identifier(),
            "docker-image://docker.io/foo/bar:latest");
  EXPECT_NE(MarshalError(Image("Busybox")).find("must be lowercase"), std::string::npos);
  EXPECT_NE(MarshalError(Source("", {})).find("source identifier can't be empty"),
            std::string::npos);
  pb::Op local = ResultOp(MustMarshal(Local("ctx")));
  EXPECT_EQ(local.source().attrs().at("local.unique"), "u");
  EXPECT_FALSE(local.has_platform());
  pb::Op img = ResultOp(MustMarshal(Image("busybox")));
  EXPECT_EQ(img.platform().os(), "linux");
  EXPECT_EQ(ResultOp(MustMarshal(Git("https://example.com/r.git", ""))).source().identifier(),
            "git://example.com/r.git");
  EXPECT_EQ(ResultOp(MustMarshal(Http("https://x", {.perm = 0755 | 01000})))
                .source()
                .attrs()
                .at("http.perm"),
            "0755");
}

TEST(Merge, ScratchInputsAreDropped) {
  State a = Image("a"), b = Image("b");
  EXPECT_TRUE(Merge({}).IsScratch());
  EXPECT_TRUE(Merge({Scratch(), Scratch()}).IsScratch());
  EXPECT_EQ(Merge({Scratch(), a}).output(), a.output());
  pb::Op op = ResultOp(MustMarshal(Merge({a, Scratch(), b, a})));
  ASSERT_TRUE(op.has_merge());
  EXPECT_EQ(op.merge().inputs_size(), 3);
  EXPECT_EQ(op.inputs_size(), 3);  // merge inputs are positional, not deduplicated
  EXPECT_FALSE(op.has_platform());
}

TEST(Marshal, ScratchGivesAnEmptyDefinition) {
  pb::Definition def = MustMarshal(Scratch());
  EXPECT_EQ(def.def_size(), 0);
  EXPECT_FALSE(def.has_source());
}

TEST(Marshal, UnboundDeferredOutputIsAnError) {
  auto out = std::make_shared<DeferredOutput>();
  State ctx = State::FromOutput(out);
  EXPECT_FALSE(ctx.Marshal().ok());
  State user = Image("busybox").File(Copy(ctx, "/a", "/b"));
  EXPECT_NE(MarshalError(user).find("never bound"), std::string::npos);
  out->Bind(Local("context"));
  EXPECT_TRUE(user.Marshal(Fixed()).ok());
}

TEST(Marshal, IsDeterministicAndDeduplicates) {
  State st = Merge({Image("busybox", {.constraints = Constraints().WithCustomName("one")}),
                    Image("busybox", {.constraints = Constraints().WithCustomName("two")})
                        .Run({.args = std::vector<std::string>{"x"}})
                        .Root()});
  pb::Definition a = MustMarshal(st), b = MustMarshal(st);
  EXPECT_EQ(SerializeDeterministic(a), SerializeDeterministic(b));
  EXPECT_EQ(a.def_size(), 4);  // busybox once, exec, merge, terminal
  // Both busybox vertices have one digest; their metadata merges (the later name wins, as Go).
  pb::Op img;
  img.ParseFromString(a.def(0));
  ASSERT_TRUE(img.has_source());
  EXPECT_EQ(a.metadata().at(OpDigest(a.def(0)).str()).description().at("llb.customname"), "two");
  EXPECT_TRUE(LoadDefinition(SerializeDeterministic(a)).ok());
}

TEST(Marshal, DefaultsApplyToTheStateTheyWereSetOn) {
  State st = Local("x").SetMarshalDefaults(Constraints().WithLocalUniqueID("fromdefaults"));
  absl::StatusOr<pb::Definition> def = st.Marshal();
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(ResultOp(*def).source().attrs().at("local.unique"), "fromdefaults");
  // Derived states do not carry them; a random 25-character id is drawn.
  def = st.Dir("/x").Marshal();
  ASSERT_TRUE(def.ok());
  std::string id = ResultOp(*def).source().attrs().at("local.unique");
  EXPECT_EQ(id.size(), 25u);
  EXPECT_NE(id, "fromdefaults");
}

TEST(Marshal, TerminalCapsReflectMetadata) {
  State st = Image("busybox")
                 .Run({.args = std::vector<std::string>{"x"},
                       .constraints = Constraints().WithIgnoreCache().WithExportCache(false)})
                 .Root();
  pb::Definition def = MustMarshal(st);
  const pb::OpMetadata& md = def.metadata().at(OpDigest(def.def(def.def_size() - 1)).str());
  EXPECT_TRUE(md.caps().count(kCapConstraints));
  EXPECT_TRUE(md.caps().count(kCapPlatform));
  EXPECT_TRUE(md.caps().count(kCapMetaIgnoreCache));
  EXPECT_TRUE(md.caps().count(kCapMetaExportCache));
  EXPECT_FALSE(md.caps().count(kCapMetaDescription));
}

TEST(Marshal, LongChainsDoNotRecurse) {
  State st = Image("busybox");
  for (int i = 0; i < 20000; ++i) {
    st = st.File(Mkdir("/d" + std::to_string(i), 0755));
  }
  pb::Definition def = MustMarshal(st);
  EXPECT_EQ(def.def_size(), 20002);
  EXPECT_TRUE(LoadDefinition(SerializeDeterministic(def)).ok());
}

TEST(FormatIP, MatchesGo) {
  EXPECT_EQ(*FormatIP("10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(*FormatIP("::ffff:10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(*FormatIP("::1.2.3.4"), "::102:304");
  EXPECT_EQ(*FormatIP("FE80:0:0:0:1:0:0:2"), "fe80::1:0:0:2");
  EXPECT_EQ(*FormatIP("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
  EXPECT_EQ(*FormatIP("1:0:2:0:3:0:4:0"), "1:0:2:0:3:0:4:0");
  EXPECT_EQ(*FormatIP("::"), "::");
  EXPECT_FALSE(FormatIP("1.2.3").ok());
}

}  // namespace
}  // namespace kiln::llb
