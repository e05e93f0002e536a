// Byte compatibility with BuildKit v0.11.6.
//
// testdata/<name>.pb were produced by BuildKit's own Go client (dockerfile2llb-offline, built from
// BuildKit v0.11.6, with testdata/<name>.Dockerfile on stdin); <name>.dump.json is
// `buildctl debug dump-llb` of that file.  The tests prove that
//   * our pb classes parse those bytes and re-marshal every op and the whole Definition to the
//     identical bytes (field order, map ordering, varint encoding);
//   * the State builder, driven the way BuildKit's Dockerfile frontend drives Go's llb package,
//     produces the same ops (bytes and digests), metadata and terminal op;
//   * the dump has buildctl's exact shape.
// local.unique and progress-group ids are random in BuildKit; the tests reuse the reference's.
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "llb/definition.h"
#include "llb/dump.h"
#include "llb/llb.h"
#include "llb/testing.h"
#include "llb/validate.h"

namespace kiln::llb {
namespace {

using testing::ExpectSameDefinition;
using testing::LocalUniqueOf;
using testing::ParseDefinitionProto;
using testing::ReadTestdata;

const char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

oci::Platform Amd64() {
  oci::Platform p;
  p.os = "linux";
  p.architecture = "amd64";
  return p;
}

// The offline tool passes every cap BuildKit knows; only "exec.meta.setsdefaultpath" changes
// what the builder emits.
CapSet AllCaps() {
  return {kCapExecMetaSetsDefaultPath,
          kCapExecMountBindReadWriteNoOutput,
          kCapMergeOp,
          kCapExecMountTmpfsSize,
          kCapExecMetaUlimit,
          kCapExecMetaCgroupParent};
}

// What the Dockerfile frontend's dfCmd() adds.
Constraints Cmd(const std::string& cmd) {
  return Constraints().WithDescription({{"com.docker.dockerfile.v1.command", cmd}});
}

// A stage based on an image, set up as the frontend does with the offline tool's stub config
// (PATH only).
State FromImage(const std::string& ref, const std::string& cmd, const std::string& name) {
  State s = Image(ref, {.constraints = Cmd(cmd).WithPlatform(Amd64()).WithCustomName(name)});
  return s.AddEnv("PATH", kDefaultPath).Network(pb::UNSET);
}

CopyInfo ContextCopy() {
  return {.follow_symlinks = true,
          .copy_dir_contents_only = true,
          .create_dest_path = true,
          .allow_wildcard = true,
          .allow_empty_wildcard = true};
}

pb::Definition MarshalLikeFrontend(const State& target, const pb::Definition& ref) {
  State st = target.SetMarshalDefaults(Constraints().WithPlatform(Amd64()).WithCaps(AllCaps()));
  absl::StatusOr<pb::Definition> def =
      st.Marshal(Constraints().WithLocalUniqueID(LocalUniqueOf(ref)));
  EXPECT_TRUE(def.ok()) << def.status();
  return def.ok() ? *def : pb::Definition();
}

class ReferenceFile : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceFile, OpsAndDefinitionRemarshalToIdenticalBytes) {
  const std::string bytes = ReadTestdata(GetParam() + ".pb");
  absl::StatusOr<ParsedDefinition> def = ParsedDefinition::Parse(bytes);
  ASSERT_TRUE(def.ok()) << def.status();
  for (const ParsedOp& op : def->ops()) {
    EXPECT_EQ(SerializeDeterministic(op.op), op.bytes) << op.digest.str();
    EXPECT_EQ(op.digest, Digest::Sha256Of(op.bytes));
  }
  EXPECT_EQ(SerializeDeterministic(def->proto()), bytes);
  EXPECT_EQ(MarshalDefinition(def->proto()), bytes);
}

TEST_P(ReferenceFile, Validates) {
  absl::StatusOr<ParsedDefinition> def = LoadDefinition(ReadTestdata(GetParam() + ".pb"));
  EXPECT_TRUE(def.ok()) << def.status();
}

TEST_P(ReferenceFile, DumpMatchesBuildctl) {
  absl::StatusOr<std::string> dump = DumpJson(ReadTestdata(GetParam() + ".pb"));
  ASSERT_TRUE(dump.ok()) << dump.status();
  EXPECT_EQ(*dump, ReadTestdata(GetParam() + ".dump.json"));
}

INSTANTIATE_TEST_SUITE_P(Dockerfiles, ReferenceFile,
                         ::testing::Values("basic", "mounts", "multistage", "heredoc"));

TEST(BuilderMatchesGo, BasicDockerfile) {
  const pb::Definition ref = ParseDefinitionProto(ReadTestdata("basic.pb"));
  auto context = std::make_shared<DeferredOutput>();
  const State build_context = State::FromOutput(context);

  State st = FromImage("busybox", "FROM busybox", "[1/4] FROM docker.io/library/busybox");
  st = st.AddEnv("FOO", "bar").AddEnv("A", "b");
  st = st.Dir("/app").File(Mkdir("/app", 0755, {.make_parents = true}),
                           Constraints().WithCustomName("[2/4] WORKDIR /app"));
  st = st.User("nobody");
  st = st.Run({.args = std::vector<std::string>{"/bin/sh", "-c", "echo hi > /tmp/x"},
               .constraints =
                   Cmd("RUN echo hi > /tmp/x").WithCustomName("[3/4] RUN echo hi > /tmp/x")})
           .Root();
  st = st.File(Copy(build_context, "/a", "/app/", ContextCopy())
                   .Copy(build_context, "/b", "/app/", ContextCopy()),
               Constraints().WithCustomName("[4/4] COPY a b ./"));
  context->Bind(Local(
      "context", {.follow_paths = {"a", "b"},
                  .shared_key_hint = "context",
                  .constraints = Constraints().WithCustomName("[internal] load build context")}));

  const pb::Definition ours = MarshalLikeFrontend(st, ref);
  ExpectSameDefinition(ours, ref);
  // Single-input chains have one possible order: it must be Go's.
  for (int i = 0; i < ref.def_size(); ++i) EXPECT_EQ(ours.def(i), ref.def(i)) << i;
}

TEST(BuilderMatchesGo, RunMounts) {
  const pb::Definition ref = ParseDefinitionProto(ReadTestdata("mounts.pb"));
  auto context = std::make_shared<DeferredOutput>();
  const State build_context = State::FromOutput(context);

  const std::string sep = "     ";
  const std::string run1 =
      "RUN --mount=type=cache,target=/root/.cache,id=gocache,sharing=locked" + sep +
      "--mount=type=tmpfs,target=/scratch" + sep +
      "--mount=type=secret,id=token,target=/run/secrets/token,mode=0440,uid=10,gid=20,"
      "required=true" +
      sep + "--mount=type=ssh,id=default" + sep +
      "--mount=type=bind,source=go.mod,target=/src/go.mod" + sep + "--network=none" + sep +
      "make build";
  State base = FromImage("alpine:3.18", "FROM alpine:3.18 AS base",
                         "[base 1/2] FROM docker.io/library/alpine:3.18");
  ExecInfo run;
  run.args = {"/bin/sh", "-c", "make build"};
  run.mounts.push_back({"/root/.cache",
                        Scratch(),
                        {.cache = MountOptions::Cache{"/gocache", CacheSharing::kLocked}}});
  run.mounts.push_back({"/scratch", Scratch(), {.tmpfs = MountOptions::Tmpfs{0}}});
  run.mounts.push_back({"/src/go.mod", build_context, {.readonly = true, .selector = "/go.mod"}});
  run.secrets.push_back(
      {.id = "token", .target = "/run/secrets/token", .mode = 0440, .uid = 10, .gid = 20});
  run.ssh.push_back({.id = "default", .optional = true});
  run.network = pb::NONE;
  run.constraints = Cmd(run1).WithCustomName("[base 2/2] " + run1);
  base = base.Run(run).Root();

  const std::string run2 =
      "RUN --mount=type=bind,from=base,source=/etc,target=/hostetc,rw ls /hostetc";
  State second = base.AddEnv("PATH", kDefaultPath).Network(pb::UNSET);
  ExecInfo run_second;
  run_second.args = {"/bin/sh", "-c", "ls /hostetc"};
  run_second.mounts.push_back({"/hostetc", base, {.selector = "/etc", .force_no_output = true}});
  run_second.constraints = Cmd(run2).WithCustomName("[second 1/1] " + run2);
  second = second.Run(run_second).Root();

  context->Bind(Local(
      "context", {.shared_key_hint = "context",
                  .constraints = Constraints().WithCustomName("[internal] load build context")}));
  ExpectSameDefinition(MarshalLikeFrontend(second, ref), ref);
}

TEST(BuilderMatchesGo, MultiStageCopyFromHttpAndLink) {
  const pb::Definition ref = ParseDefinitionProto(ReadTestdata("multistage.pb"));
  auto context = std::make_shared<DeferredOutput>();
  const State build_context = State::FromOutput(context);

  State build = FromImage("golang:1.21", "FROM golang:1.21 AS build",
                          "[build 1/4] FROM docker.io/library/golang:1.21");
  build = build.Dir("/src").File(Mkdir("/src", 0755, {.make_parents = true}),
                                 Constraints().WithCustomName("[build 2/4] WORKDIR /src"));
  CopyInfo chowned = ContextCopy();
  chowned.mode = 0755;
  chowned.chown = ChownFromSpec("1000:1000");
  build = build.File(
      Copy(build_context, "/main.go", "/src/", chowned),
      Constraints().WithCustomName("[build 3/4] COPY --chown=1000:1000 --chmod=0755 main.go ./"));
  const std::string run = R"(RUN ["go", "build", "-o", "/out/app", "."])";
  build = build
              .Run({.args = std::vector<std::string>{"go", "build", "-o", "/out/app", "."},
                    .constraints = Cmd(run).WithCustomName("[build 4/4] " + run)})
              .Root();

  State st = Scratch().AddEnv("PATH", kDefaultPath).Network(pb::UNSET);
  st = st.File(
      Copy(build, "/out/app", "/usr/bin/app", ContextCopy()),
      Constraints().WithCustomName("[stage-1 1/3] COPY --from=build /out/app /usr/bin/app"));
  State http =
      Http("https://example.com/file.tar.gz", {.filename = "file.tar.gz", .constraints = Cmd("")});
  st = st.File(
      Copy(http, "file.tar.gz", "/opt/", {.create_dest_path = true}),
      Constraints().WithCustomName("[stage-1 2/3] ADD https://example.com/file.tar.gz /opt/"));
  const std::string pg_id = "32ydy1cwyznv8gsvn0884316x";
  const std::string pg_name = "[stage-1 3/3] COPY --link --from=build /src /src";
  State linked = Scratch().File(Copy(build, "/src", "/src", ContextCopy()),
                                Constraints().WithProgressGroup(pg_id, pg_name, true));
  st = st.WithOutput(
      Merge({st, linked},
            Constraints()
                .WithProgressGroup(pg_id, pg_name, false)
                .WithCustomName("[stage-1 3/3] LINK COPY --link --from=build /src /src"))
          .output());
  context->Bind(Local(
      "context", {.follow_paths = {"main.go"},
                  .shared_key_hint = "context",
                  .constraints = Constraints().WithCustomName("[internal] load build context")}));
  ExpectSameDefinition(MarshalLikeFrontend(st, ref), ref);
}

TEST(BuilderMatchesGo, HeredocsCacheMountAndRelativeWorkdir) {
  const pb::Definition ref = ParseDefinitionProto(ReadTestdata("heredoc.pb"));
  State st = FromImage("debian:bookworm", "FROM debian:bookworm",
                       "[stage-0 1/6] FROM docker.io/library/debian:bookworm");
  st = st.Run({.args = std::vector<std::string>{"/bin/sh", "-c", "set -e\napt-get update\n"},
               .constraints =
                   Cmd("RUN <<EOT").WithCustomName("[stage-0 2/6] RUN <<EOT (set -e...)")})
           .Root();
  st = st.Run({.args =
                   std::vector<std::string>{
                       "/bin/sh", "-c", "<<EOT bash\n#!/usr/bin/env bash\necho from script\nEOT"},
               .constraints = Cmd("RUN <<EOT bash").WithCustomName("[stage-0 3/6] RUN <<EOT bash")})
           .Root();
  State doc = Scratch().File(Mkfile("EOF", 0664, "key=value\n"),
                             Constraints().WithCustomName("[internal] preparing inline document"));
  st = st.File(Copy(doc, "EOF", "/etc/app.conf", {.create_dest_path = true}),
               Constraints().WithCustomName("[stage-0 4/6] COPY <<EOF /etc/app.conf"));
  st = st.Dir("rel/dir");
  EXPECT_EQ(st.GetDir(), "/rel/dir");
  st = st.File(Mkdir("/rel/dir", 0755, {.make_parents = true}),
               Constraints().WithCustomName("[stage-0 5/6] WORKDIR rel/dir"));
  const std::string run = "RUN --mount=type=cache,target=/var/cache/apt echo done";
  ExecInfo info;
  info.args = {"/bin/sh", "-c", "echo done"};
  info.mounts.push_back(
      {"/var/cache/apt", Scratch(), {.cache = MountOptions::Cache{"//var/cache/apt"}}});
  info.constraints = Cmd(run).WithCustomName("[stage-0 6/6] " + run);
  st = st.Run(info).Root();
  const pb::Definition ours = MarshalLikeFrontend(st, ref);
  ExpectSameDefinition(ours, ref);
}

}  // namespace
}  // namespace kiln::llb
