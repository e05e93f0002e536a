#include "frontends/dockerfile/instructions.h"

#include <map>
#include <string>
#include <vector>

#include "frontends/dockerfile/shell_lex.h"
#include "gtest/gtest.h"

namespace kiln::frontends::dockerfile {
namespace {

Dockerfile MustParse(std::string_view content) {
  absl::StatusOr<Dockerfile> df = ParseDockerfile(content);
  EXPECT_TRUE(df.ok()) << df.status() << "\n" << content;
  return df.ok() ? *std::move(df) : Dockerfile{};
}

// The single command of a one-stage Dockerfile "FROM x\n<line>".
Command MustCommand(std::string_view line) {
  Dockerfile df = MustParse(std::string("FROM x\n") + std::string(line));
  EXPECT_EQ(df.stages.size(), 1u);
  if (df.stages.empty() || df.stages[0].commands.empty()) return Command{};
  return df.stages[0].commands.back();
}

WordExpander ExpanderFor(std::map<std::string, std::string> env) {
  auto lookup = EnvFromMap(env);
  return [lookup](std::string_view word) { return ShellLex('\\').ProcessWord(word, lookup); };
}

WordExpander Identity() {
  return [](std::string_view word) -> absl::StatusOr<std::string> { return std::string(word); };
}

TEST(Instructions, StagesAndMetaArgs) {
  Dockerfile df = MustParse(
      "# syntax=docker/dockerfile:1\n"
      "# VERSION the version to build\n"
      "ARG VERSION=1.0 OTHER\n"
      "ARG BASE\n"
      "# builder compiles things\n"
      "FROM --platform=$BUILDPLATFORM golang:${VERSION} AS Builder\n"
      "RUN go build\n"
      "FROM scratch\n"
      "COPY --from=builder /out /\n");
  ASSERT_EQ(df.meta_args.size(), 2u);
  const ArgCommand* a = df.meta_args[0].As<ArgCommand>();
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->args.size(), 2u);
  EXPECT_EQ(a->args[0], (KeyValuePairOptional{"VERSION", "1.0", "the version to build"}));
  EXPECT_EQ(a->args[1], (KeyValuePairOptional{"OTHER", std::nullopt, ""}));
  EXPECT_EQ(df.meta_args[1].location.start_line, 4);
  ASSERT_EQ(df.stages.size(), 2u);
  const Stage& s0 = df.stages[0];
  EXPECT_EQ(s0.name, "builder");
  EXPECT_EQ(s0.base_name, "golang:${VERSION}");
  EXPECT_EQ(s0.platform, "$BUILDPLATFORM");
  EXPECT_EQ(s0.orig_cmd, "FROM");
  EXPECT_EQ(s0.doc_comment, "compiles things");
  EXPECT_EQ(s0.source_code, "FROM --platform=$BUILDPLATFORM golang:${VERSION} AS Builder");
  EXPECT_EQ(s0.location, (SourceRange{"Dockerfile", 6, 0, 6, 0}));
  ASSERT_EQ(s0.commands.size(), 1u);
  EXPECT_EQ(s0.commands[0].code, "RUN go build");
  EXPECT_EQ(df.stages[1].name, "");
  EXPECT_EQ(df.stages[1].commands[0].As<CopyCommand>()->from, "builder");
  EXPECT_EQ(FindStage(df.stages, "BUILDER"), 0);
  EXPECT_EQ(FindStage(df.stages, "nope"), -1);
  ASSERT_EQ(df.directives.size(), 1u);
  ASSERT_EQ(df.warnings.size(), 1u);
  EXPECT_EQ(df.warnings[0].rule, "StageNameCasing");
  EXPECT_EQ(df.warnings[0].short_message, "Stage name 'Builder' should be lowercase");
  EXPECT_EQ(df.warnings[0].location.start_line, 6);
}

TEST(Instructions, LintWarnings) {
  Dockerfile df = MustParse(
      "FROM a AS x\nFROM b AS x\nFROM c AS scratch\nfrom d AS e\nFROM f as g\nFrom h AS i\n"
      "MAINTAINER me\n");
  std::vector<std::string> got;
  for (const Warning& w : df.warnings) {
    got.push_back(w.rule + ":" + std::to_string(w.location.start_line) + ":" + w.short_message);
  }
  EXPECT_EQ(got,
            (std::vector<std::string>{
                "DuplicateStageName:2:Duplicate stage name \"x\", stage names should be unique",
                "ReservedStageName:3:Stage name should not use the same name as reserved stage "
                "\"scratch\"",
                "FromAsCasing:4:'AS' and 'from' keywords' casing do not match",
                "FromAsCasing:5:'as' and 'FROM' keywords' casing do not match",
                "MaintainerDeprecated:7:Maintainer instruction is deprecated in favor of using "
                "label",
            }));
}

TEST(Instructions, Run) {
  Command c = MustCommand(
      "RUN --mount=type=cache,target=/root/.cache,id=gomod,sharing=locked "
      "--mount=type=secret,id=tok,required --network=none --security=insecure go build ./...");
  const RunCommand* run = c.As<RunCommand>();
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->cmd.cmd_line, (std::vector<std::string>{"go build ./..."}));
  EXPECT_TRUE(run->cmd.prepend_shell);
  EXPECT_EQ(run->network, "none");
  EXPECT_EQ(run->security, "insecure");
  EXPECT_EQ(run->flags_used, (std::vector<std::string>{"mount", "network", "security"}));
  ASSERT_EQ(run->mount_specs.size(), 2u);
  EXPECT_TRUE(run->mounts.empty());  // filled by Expand
  ASSERT_TRUE(c.Expand(Identity()).ok());
  ASSERT_EQ(run->mounts.size(), 2u);
  EXPECT_EQ(run->mounts[0].type, MountType::kCache);
  EXPECT_EQ(run->mounts[0].target, "/root/.cache");
  EXPECT_EQ(run->mounts[0].cache_id, "gomod");
  EXPECT_EQ(run->mounts[0].sharing, ShareMode::kLocked);
  EXPECT_FALSE(run->mounts[0].read_only);
  EXPECT_EQ(run->mounts[1].type, MountType::kSecret);
  EXPECT_TRUE(run->mounts[1].required);
  EXPECT_TRUE(run->mounts[1].read_only);

  c = MustCommand("RUN [\"echo\", \"a b\"]");
  run = c.As<RunCommand>();
  EXPECT_EQ(run->cmd.cmd_line, (std::vector<std::string>{"echo", "a b"}));
  EXPECT_FALSE(run->cmd.prepend_shell);
  EXPECT_EQ(run->network, "default");
  EXPECT_EQ(run->security, "sandbox");
  EXPECT_TRUE(run->flags_used.empty());

  c = MustCommand("RUN <<EOF\necho hi\nEOF");
  run = c.As<RunCommand>();
  ASSERT_EQ(run->cmd.files.size(), 1u);
  EXPECT_EQ(run->cmd.files[0].name, "EOF");
  EXPECT_EQ(run->cmd.files[0].data, "echo hi\n");
  EXPECT_EQ(run->cmd.cmd_line, (std::vector<std::string>{"<<EOF"}));
}

TEST(Instructions, MountTable) {
  struct Case {
    const char* spec;
    Mount expected;
  };
  auto mount = [](MountType t) {
    Mount m;
    m.type = t;
    return m;
  };
  std::vector<Case> cases;
  {
    Mount m = mount(MountType::kBind);
    m.target = "/src";
    m.read_only = true;
    cases.push_back({"target=/src", m});
    m.source = "sub";
    m.from = "builder";
    cases.push_back({"type=bind,from=builder,src=sub,dst=/src", m});
    m.read_only = false;
    cases.push_back({"type=bind,from=builder,source=sub,destination=/src,rw", m});
    cases.push_back({"type=BIND,from=builder,source=sub,target=/src,readwrite=true", m});
    cases.push_back({"type=bind,from=builder,source=sub,target=/src,ro=false", m});
  }
  {
    Mount m = mount(MountType::kCache);
    m.target = "/c";
    m.mode = 0755;
    m.uid = 1000;
    m.gid = 1000;
    m.sharing = ShareMode::kPrivate;
    cases.push_back({"type=cache,target=/c,mode=0755,uid=1000,gid=1000,sharing=PRIVATE", m});
    Mount ro = mount(MountType::kCache);
    ro.target = "/c";
    ro.read_only = true;
    cases.push_back({"type=cache,target=/c,readonly", ro});
  }
  {
    Mount m = mount(MountType::kTmpfs);
    m.target = "/t";
    m.size_limit = 64 * 1024 * 1024;
    cases.push_back({"type=tmpfs,target=/t,size=64m", m});
    m.size_limit = 1536;
    cases.push_back({"type=tmpfs,target=/t,size=1.5k", m});
  }
  {
    Mount m = mount(MountType::kSecret);
    m.cache_id = "aws";
    m.target = "/root/.aws/credentials";
    m.read_only = true;
    m.env = "AWS";
    cases.push_back({"type=secret,id=aws,target=/root/.aws/credentials,env=AWS", m});
    Mount ssh = mount(MountType::kSsh);
    ssh.read_only = true;
    ssh.required = true;
    cases.push_back({"type=ssh,required=true", ssh});
  }
  {
    Mount m = mount(MountType::kBind);
    m.target = "/a,b";
    m.read_only = true;
    cases.push_back({"\"target=/a,b\"", m});
  }
  for (const Case& c : cases) {
    absl::StatusOr<Mount> m = ParseMount(c.spec, Identity());
    ASSERT_TRUE(m.ok()) << c.spec << ": " << m.status();
    EXPECT_EQ(m->type, c.expected.type) << c.spec;
    EXPECT_EQ(m->from, c.expected.from) << c.spec;
    EXPECT_EQ(m->source, c.expected.source) << c.spec;
    EXPECT_EQ(m->target, c.expected.target) << c.spec;
    EXPECT_EQ(m->read_only, c.expected.read_only) << c.spec;
    EXPECT_EQ(m->size_limit, c.expected.size_limit) << c.spec;
    EXPECT_EQ(m->cache_id, c.expected.cache_id) << c.spec;
    EXPECT_EQ(m->sharing, c.expected.sharing) << c.spec;
    EXPECT_EQ(m->required, c.expected.required) << c.spec;
    EXPECT_EQ(m->env, c.expected.env) << c.spec;
    EXPECT_EQ(m->mode, c.expected.mode) << c.spec;
    EXPECT_EQ(m->uid, c.expected.uid) << c.spec;
    EXPECT_EQ(m->gid, c.expected.gid) << c.spec;
  }
}

TEST(Instructions, MountErrors) {
  struct Case {
    const char* spec;
    const char* message;
  } cases[] = {
      {"type=volume,target=/x", "unsupported mount type \"volume\""},
      {"type=cach,target=/x", "unsupported mount type \"cach\" (did you mean cache?)"},
      {"type=cache,target=/x,sharing=lock",
       "unsupported sharing value \"lock\" (did you mean locked?)"},
      {"type=bind,target=/x,sharing=locked", "invalid cache sharing set for bind mount"},
      {"type=bind,target=/x,mode=0644", "mode not allowed for \"bind\" type mounts"},
      {"type=tmpfs,target=/x,uid=1", "uid not allowed for \"tmpfs\" type mounts"},
      {"type=bind,target=/x,gid=1", "gid not allowed for \"bind\" type mounts"},
      {"type=cache,target=/x,uid=abc", "invalid value abc for uid"},
      {"type=cache,target=/x,mode=0899", "invalid value 0899 for mode"},
      {"type=cache,target=/x,gid=4294967296", "invalid value 4294967296 for gid"},
      {"type=bind,target=/x,size=1m", "unexpected key 'size' for mount type 'bind'"},
      {"type=tmpfs,target=/x,size=1z", "invalid value for size: 1z"},
      {"type=bind,target=/x,required", "unexpected key 'required' for mount type 'bind'"},
      {"type=bind,target=/x,ro=maybe", "invalid value for ro: maybe"},
      {"type=bind,target=/x,bogus", "invalid field 'bogus' must be a key=value pair"},
      {"type=bind,targte=/x", "unexpected key 'targte' in 'targte=/x' (did you mean target?)"},
      {"type=secret", "invalid secret mount. one of source, target required"},
      {"type=secret,id=a,from=b", "secret mount should not have a from"},
      {"type=secret,id=a,sharing=shared", "secret mount should not define sharing"},
      {"type=secret,id=a,source=b", "both source and id can't be set"},
      {"type=bind,\"target=/x",
       "failed to parse csv mounts: extraneous or missing \" in quoted-field"},
      {"type=bind,tar\"get=/x", "failed to parse csv mounts: bare \" in non-quoted-field"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Mount> m = ParseMount(c.spec, Identity());
    ASSERT_FALSE(m.ok()) << c.spec;
    EXPECT_EQ(m.status().message(), c.message) << c.spec;
  }
}

TEST(Instructions, MountValuesAreExpanded) {
  Command c = MustCommand("RUN --mount=type=$T,target=${DIR}/cache,id=$ID echo");
  ASSERT_TRUE(c.Expand(ExpanderFor({{"T", "cache"}, {"DIR", "/root"}, {"ID", "x"}})).ok());
  const RunCommand* run = c.As<RunCommand>();
  ASSERT_EQ(run->mounts.size(), 1u);
  EXPECT_EQ(run->mounts[0].type, MountType::kCache);
  EXPECT_EQ(run->mounts[0].target, "/root/cache");
  EXPECT_EQ(run->mounts[0].cache_id, "x");

  // Errors from Expand carry the command's location.
  c = MustCommand("RUN --mount=type=cache,target=/x,uid=$UID echo");
  absl::Status st = c.Expand(ExpanderFor({{"UID", "nope"}}));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "Dockerfile:2: invalid value nope for uid");
  EXPECT_EQ(GetSourceRange(st)->start_line, 2);
}

TEST(Instructions, CopyAndAdd) {
  Command c = MustCommand(
      "COPY --from=build --chown=1000:1000 --chmod=755 --link --parents --exclude=*.md "
      "--exclude=docs/ a b/ /dest/");
  const CopyCommand* copy = c.As<CopyCommand>();
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->from, "build");
  EXPECT_EQ(copy->chown, "1000:1000");
  EXPECT_EQ(copy->chmod, "755");
  EXPECT_TRUE(copy->link);
  EXPECT_TRUE(copy->parents);
  EXPECT_EQ(copy->exclude_patterns, (std::vector<std::string>{"*.md", "docs/"}));
  EXPECT_EQ(copy->files.source_paths, (std::vector<std::string>{"a", "b/"}));
  EXPECT_EQ(copy->files.dest_path, "/dest/");

  c = MustCommand("COPY --link=false [\"a b\", \"/c d\"]");
  copy = c.As<CopyCommand>();
  EXPECT_FALSE(copy->link);
  EXPECT_EQ(copy->files.source_paths, (std::vector<std::string>{"a b"}));
  EXPECT_EQ(copy->files.dest_path, "/c d");

  c = MustCommand(
      "ADD --keep-git-dir=true --checksum=sha256:abc --unpack=false --exclude=x "
      "https://example.com/a.tar.gz git@github.com:a/b.git /opt/");
  const AddCommand* add = c.As<AddCommand>();
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->keep_git_dir, true);
  EXPECT_EQ(add->unpack, false);
  EXPECT_EQ(add->checksum, "sha256:abc");
  EXPECT_EQ(add->exclude_patterns, (std::vector<std::string>{"x"}));
  EXPECT_EQ(add->files.source_paths.size(), 2u);

  c = MustCommand("ADD a /b");
  add = c.As<AddCommand>();
  EXPECT_EQ(add->keep_git_dir, std::nullopt);
  EXPECT_EQ(add->unpack, std::nullopt);
  EXPECT_FALSE(add->link);
}

TEST(Instructions, CopyHeredocSources) {
  Command c = MustCommand(
      "COPY <<one <<-\"two\" plain.txt /dest/\n"
      "hello $NAME\n"
      "one\n"
      "\t\tindented $NAME\n"
      "\ttwo");
  const CopyCommand* copy = c.As<CopyCommand>();
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->files.source_paths, (std::vector<std::string>{"plain.txt"}));
  ASSERT_EQ(copy->files.source_contents.size(), 2u);
  EXPECT_EQ(copy->files.source_contents[0].path, "one");
  EXPECT_EQ(copy->files.source_contents[0].data, "hello $NAME\n");
  EXPECT_TRUE(copy->files.source_contents[0].expand);
  EXPECT_EQ(copy->files.source_contents[1].path, "two");
  EXPECT_EQ(copy->files.source_contents[1].data, "indented $NAME\n");
  EXPECT_FALSE(copy->files.source_contents[1].expand);
  EXPECT_EQ(c.location.start_line, 2);
  EXPECT_EQ(c.location.end_line, 6);

  ASSERT_TRUE(c.ExpandRaw(ExpanderFor({{"NAME", "kiln"}})).ok());
  EXPECT_EQ(copy->files.source_contents[0].data, "hello kiln\n");
  EXPECT_EQ(copy->files.source_contents[1].data, "indented $NAME\n");
}

TEST(Instructions, ExpandWords) {
  const WordExpander ex = ExpanderFor({{"A", "1"}, {"D", "/data"}, {"U", "app"}});
  struct Case {
    const char* line;
    std::function<void(const Command&)> check;
  } cases[] = {
      {"ENV K_$A=v$A OLD=\"$D x\"",
       [](const Command& c) {
         const EnvCommand* e = c.As<EnvCommand>();
         EXPECT_EQ(e->env,
                   (std::vector<KeyValuePair>{{"K_1", "v1", false}, {"OLD", "/data x", false}}));
       }},
      {"ENV LEGACY $D and more",
       [](const Command& c) {
         EXPECT_EQ(c.As<EnvCommand>()->env,
                   (std::vector<KeyValuePair>{{"LEGACY", "/data and more", true}}));
       }},
      {"LABEL l=$A",
       [](const Command& c) {
         EXPECT_EQ(c.As<LabelCommand>()->labels, (std::vector<KeyValuePair>{{"l", "1", false}}));
       }},
      {"WORKDIR $D/w",
       [](const Command& c) { EXPECT_EQ(c.As<WorkdirCommand>()->path, "/data/w"); }},
      {"USER $U:$A", [](const Command& c) { EXPECT_EQ(c.As<UserCommand>()->user, "app:1"); }},
      {"VOLUME $D /x",
       [](const Command& c) {
         EXPECT_EQ(c.As<VolumeCommand>()->volumes, (std::vector<std::string>{"/data", "/x"}));
       }},
      {"STOPSIGNAL SIG$A",
       [](const Command& c) { EXPECT_EQ(c.As<StopSignalCommand>()->signal, "SIG1"); }},
      {"ARG X=$A Y",
       [](const Command& c) {
         const ArgCommand* a = c.As<ArgCommand>();
         EXPECT_EQ(a->args[0].value, "1");
         EXPECT_EQ(a->args[1].value, std::nullopt);
       }},
      {"COPY --chown=$U --chmod=$A --from=$A $D/src $D/",
       [](const Command& c) {
         const CopyCommand* cp = c.As<CopyCommand>();
         EXPECT_EQ(cp->chown, "app");
         EXPECT_EQ(cp->chmod, "1");
         EXPECT_EQ(cp->from, "$A");  // --from is not expanded here
         EXPECT_EQ(cp->files.source_paths, (std::vector<std::string>{"/data/src"}));
         EXPECT_EQ(cp->files.dest_path, "/data/");
       }},
      {"ADD --checksum=$A --chown=$U src $D",
       [](const Command& c) {
         const AddCommand* ad = c.As<AddCommand>();
         EXPECT_EQ(ad->checksum, "1");
         EXPECT_EQ(ad->chown, "app");
         EXPECT_EQ(ad->files.dest_path, "/data");
       }},
      {"RUN echo $A",
       [](const Command& c) {
         EXPECT_EQ(c.As<RunCommand>()->cmd.cmd_line, (std::vector<std::string>{"echo $A"}));
       }},
      {"EXPOSE $A",
       [](const Command& c) {
         EXPECT_EQ(c.As<ExposeCommand>()->ports, (std::vector<std::string>{"$A"}));
       }},
  };
  for (const Case& tc : cases) {
    Command c = MustCommand(tc.line);
    ASSERT_TRUE(c.Expand(ex).ok()) << tc.line;
    tc.check(c);
  }
  Command bad = MustCommand("WORKDIR ${D");
  absl::Status st = bad.Expand(ex);
  EXPECT_EQ(st.message(), "Dockerfile:2: failed to process \"${D\": syntax error: missing '}'");
}

TEST(Instructions, OtherCommands) {
  Command c = MustCommand(
      "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=1.5s "
      "--start-interval=2s --retries=3 CMD curl -f http://localhost/");
  const HealthCheckCommand* hc = c.As<HealthCheckCommand>();
  ASSERT_NE(hc, nullptr);
  EXPECT_EQ(hc->health.test, (std::vector<std::string>{"CMD-SHELL", "curl -f http://localhost/"}));
  EXPECT_EQ(hc->health.interval, 30'000'000'000);
  EXPECT_EQ(hc->health.timeout, 90'000'000'000);
  EXPECT_EQ(hc->health.start_period, 1'500'000'000);
  EXPECT_EQ(hc->health.start_interval, 2'000'000'000);
  EXPECT_EQ(hc->health.retries, 3);

  c = MustCommand("HEALTHCHECK CMD [\"/bin/check\", \"-v\"]");
  EXPECT_EQ(c.As<HealthCheckCommand>()->health.test,
            (std::vector<std::string>{"CMD", "/bin/check", "-v"}));
  c = MustCommand("HEALTHCHECK none");
  EXPECT_EQ(c.As<HealthCheckCommand>()->health.test, (std::vector<std::string>{"NONE"}));

  c = MustCommand("CMD [\"a\", \"b\"]");
  EXPECT_EQ(c.As<CmdCommand>()->cmd.cmd_line, (std::vector<std::string>{"a", "b"}));
  c = MustCommand("ENTRYPOINT exec app");
  EXPECT_EQ(c.As<EntrypointCommand>()->cmd.cmd_line, (std::vector<std::string>{"exec app"}));
  EXPECT_TRUE(c.As<EntrypointCommand>()->cmd.prepend_shell);
  c = MustCommand("ENTRYPOINT []");
  EXPECT_TRUE(c.As<EntrypointCommand>()->cmd.cmd_line.empty());
  c = MustCommand("SHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]");
  EXPECT_EQ(c.As<ShellCommand>()->shell.size(), 4u);
  c = MustCommand("EXPOSE 8080 80/udp 443");
  EXPECT_EQ(c.As<ExposeCommand>()->ports, (std::vector<std::string>{"443", "80/udp", "8080"}));
  c = MustCommand("MAINTAINER someone");
  EXPECT_EQ(c.As<MaintainerCommand>()->maintainer, "someone");
  c = MustCommand("ONBUILD RUN echo hi");
  EXPECT_EQ(c.As<OnbuildCommand>()->expression, "RUN echo hi");
  c = MustCommand("onbuild  COPY <<EOF /x\nhi\nEOF");
  EXPECT_EQ(c.As<OnbuildCommand>()->expression, "COPY <<EOF /x\nhi\nEOF");
  c = MustCommand("STOPSIGNAL --ignored=1 SIGTERM");  // BuildKit never parses these flags
  EXPECT_EQ(c.As<StopSignalCommand>()->signal, "SIGTERM");
  c = MustCommand("LABEL a=b c=\"d e\"");
  EXPECT_EQ(c.As<LabelCommand>()->labels,
            (std::vector<KeyValuePair>{{"a", "b", false}, {"c", "\"d e\"", false}}));
  EXPECT_EQ(c.name, "LABEL");
  EXPECT_EQ(c.code, "LABEL a=b c=\"d e\"");
}

struct ErrorCase {
  const char* dockerfile;
  const char* message;
  int start_line;
  int end_line;
};

TEST(Instructions, Errors) {
  const ErrorCase cases[] = {
      {"FROM x\nRUNN echo\n", "Dockerfile:2: unknown instruction: RUNN (did you mean RUN?)", 2, 2},
      {"FROM x\ncopyy a b\n", "Dockerfile:2: unknown instruction: copyy (did you mean copy?)", 2,
       2},
      {"FROM x\nFOOBAR\n", "Dockerfile:2: unknown instruction: FOOBAR", 2, 2},
      {"FROM x\nRUN --mout=type=cache echo\n",
       "Dockerfile:2: RUN: unknown flag: --mout (did you mean mount?)", 2, 2},
      {"FROM x\nCOPY --chmod a b\n", "Dockerfile:2: COPY: missing a value on flag: --chmod", 2, 2},
      {"FROM x\nCOPY --link=maybe a b\n",
       "Dockerfile:2: COPY: expecting boolean value for flag --link, not: maybe", 2, 2},
      {"FROM x\nCOPY --link= a b\n", "Dockerfile:2: COPY: missing a value on flag: --link", 2, 2},
      {"FROM x\nCOPY --from=a --from=b a b\n",
       "Dockerfile:2: COPY: duplicate flag specified: --from", 2, 2},
      {"FROM x\nENV --foo=1 A=b\n", "Dockerfile:2: ENV: unknown flag: --foo", 2, 2},
      {"FROM --platfrom=x y\n",
       "Dockerfile:1: FROM: unknown flag: --platfrom (did you mean platform?)", 1, 1},
      {"FROM x\nRUN --network=bogus echo\n", "Dockerfile:2: invalid network mode \"bogus\"", 2, 2},
      {"FROM x\nRUN --security=weird echo\n", "Dockerfile:2: security \"weird\" is not valid", 2,
       2},
      {"FROM x\nRUN --mount=type=bind,from=$X,target=/x echo\n",
       "Dockerfile:2: 'from' doesn't support variable expansion, define alias stage instead", 2, 2},
      {"FROM x\nCOPY a\n",
       "Dockerfile:2: COPY requires at least two arguments, but only one was provided. "
       "Destination could not be determined",
       2, 2},
      {"FROM x\nADD a\n",
       "Dockerfile:2: ADD requires at least two arguments, but only one was provided. "
       "Destination could not be determined",
       2, 2},
      {"FROM x\nCOPY a <<EOF\nx\nEOF\n",
       "Dockerfile:2-4: COPY cannot accept a heredoc as a destination", 2, 4},
      {"FROM x AS 1abc\n",
       "Dockerfile:1: invalid name for build stage: \"1abc\", name can't start with a number or "
       "contain symbols",
       1, 1},
      {"FROM x AS a$b\n",
       "Dockerfile:1: invalid name for build stage: \"a$b\", name can't start with a number or "
       "contain symbols",
       1, 1},
      {"FROM x y\n", "Dockerfile:1: FROM requires either one or three arguments", 1, 1},
      {"FROM\n", "Dockerfile:1: FROM requires either one or three arguments", 1, 1},
      {"RUN x\n", "Dockerfile:1: no build stage in current context", 1, 1},
      {"ARG A\nENV B=c\n", "Dockerfile:2: no build stage in current context", 2, 2},
      {"FROM x\nENV\n", "Dockerfile:2: ENV requires at least one argument", 2, 2},
      {"FROM x\nENV =b\n", "Dockerfile:2: ENV names can not be blank", 2, 2},
      {"FROM x\nARG =b\n", "Dockerfile:2: ARG names can not be blank", 2, 2},
      {"FROM x\nARG\n", "Dockerfile:2: ARG requires at least one argument", 2, 2},
      {"FROM x\nLABEL\n", "Dockerfile:2: LABEL requires at least one argument", 2, 2},
      {"FROM x\nMAINTAINER\n", "Dockerfile:2: MAINTAINER requires exactly one argument", 2, 2},
      {"FROM x\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument", 2, 2},
      {"FROM x\nUSER\n", "Dockerfile:2: USER requires exactly one argument", 2, 2},
      {"FROM x\nSTOPSIGNAL\n", "Dockerfile:2: STOPSIGNAL requires exactly one argument", 2, 2},
      {"FROM x\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument", 2, 2},
      {"FROM x\nVOLUME\n", "Dockerfile:2: VOLUME requires at least one argument", 2, 2},
      {"FROM x\nVOLUME [\"\"]\n", "Dockerfile:2: VOLUME specified can not be an empty string", 2,
       2},
      {"FROM x\nSHELL /bin/sh -c\n",
       "Dockerfile:2: SHELL requires the arguments to be in JSON form", 2, 2},
      {"FROM x\nSHELL []\n", "Dockerfile:2: SHELL requires at least one argument", 2, 2},
      {"FROM x\nONBUILD\n", "Dockerfile:2: ONBUILD requires at least one argument", 2, 2},
      {"FROM x\nONBUILD ONBUILD RUN x\n",
       "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", 2, 2},
      {"FROM x\nONBUILD FROM y\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger", 2, 2},
      {"FROM x\nONBUILD maintainer y\n",
       "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger", 2, 2},
      {"FROM x\nHEALTHCHECK\n", "Dockerfile:2: HEALTHCHECK requires at least one argument", 2, 2},
      {"FROM x\nHEALTHCHECK NONE x\n", "Dockerfile:2: HEALTHCHECK NONE takes no arguments", 2, 2},
      {"FROM x\nHEALTHCHECK CMD\n", "Dockerfile:2: Missing command after HEALTHCHECK CMD", 2, 2},
      {"FROM x\nHEALTHCHECK RUN x\n", "Dockerfile:2: Unknown type \"RUN\" in HEALTHCHECK (try CMD)",
       2, 2},
      {"FROM x\nHEALTHCHECK --interval=1ns CMD x\n",
       "Dockerfile:2: Interval \"interval\" cannot be less than 1ms", 2, 2},
      {"FROM x\nHEALTHCHECK --timeout=xyz CMD x\n", "Dockerfile:2: time: invalid duration \"xyz\"",
       2, 2},
      {"FROM x\nHEALTHCHECK --timeout=5 CMD x\n",
       "Dockerfile:2: time: missing unit in duration \"5\"", 2, 2},
      {"FROM x\nHEALTHCHECK --start-period=5y CMD x\n",
       "Dockerfile:2: time: unknown unit \"y\" in duration \"5y\"", 2, 2},
      {"FROM x\nHEALTHCHECK --retries=-1 CMD x\n",
       "Dockerfile:2: --retries cannot be negative (-1)", 2, 2},
      {"FROM x\nHEALTHCHECK --retries=a CMD x\n",
       "Dockerfile:2: strconv.ParseInt: parsing \"a\": invalid syntax", 2, 2},
      {"FROM x\nHEALTHCHECK --retries=9999999999 CMD x\n",
       "Dockerfile:2: strconv.ParseInt: parsing \"9999999999\": value out of range", 2, 2},
      {"FROM x\nRUN a \\\n  b\nRUN --foo c\n", "Dockerfile:4: RUN: unknown flag: --foo", 4, 4},
      {"FROM x\nRUN --foo a \\\n  b\n", "Dockerfile:2-3: RUN: unknown flag: --foo", 2, 3},
  };
  for (const ErrorCase& c : cases) {
    absl::StatusOr<Dockerfile> df = ParseDockerfile(c.dockerfile, "Dockerfile");
    ASSERT_FALSE(df.ok()) << c.dockerfile;
    EXPECT_EQ(df.status().code(), absl::StatusCode::kInvalidArgument) << c.dockerfile;
    EXPECT_EQ(df.status().message(), c.message) << c.dockerfile;
    std::optional<SourceRange> r = GetSourceRange(df.status());
    ASSERT_TRUE(r.has_value()) << c.dockerfile;
    EXPECT_EQ(r->file, "Dockerfile");
    EXPECT_EQ(r->start_line, c.start_line) << c.dockerfile;
    EXPECT_EQ(r->end_line, c.end_line) << c.dockerfile;
  }
}

TEST(SourceLocation, PayloadRoundTripAndNoDoubleWrap) {
  SourceRange r{"dir:with:colons/Dockerfile", 3, 5, 7, 9};
  absl::Status st = LocatedError(r, "boom");
  EXPECT_EQ(st.message(), "dir:with:colons/Dockerfile:3-7: boom");
  EXPECT_EQ(GetSourceRange(st), r);
  absl::Status again = WithLocation(st, SourceRange{"other", 1, 0, 1, 0});
  EXPECT_EQ(again.message(), st.message());
  EXPECT_EQ(GetSourceRange(again), r);
  EXPECT_FALSE(GetSourceRange(absl::InternalError("x")).has_value());
  EXPECT_TRUE(WithLocation(absl::OkStatus(), r).ok());
  absl::Status not_found = WithLocation(absl::NotFoundError("gone"), r);
  EXPECT_EQ(not_found.code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace kiln::frontends::dockerfile
