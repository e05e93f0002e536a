// Unit tests of the Dockerfile converter: error messages and their locations, the Go-format
// helpers whose output ends up in image configs and progress names, and frontend behaviour
// that the golden corpus does not show (what is read and resolved).
#include "frontends/dockerfile/convert.h"

#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "base/strings.h"
#include "frontends/dockerfile/convert_internal.h"
#include "frontends/dockerfile/frontend.h"
#include "gtest/gtest.h"
#include "llb/dump.h"

namespace kiln::frontends::dockerfile {
namespace {

constexpr char kPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// In-memory client: files per local name, one config for every image.
class MemoryClient : public llb::FrontendClient {
 public:
  std::map<std::string, std::map<std::string, std::string>> files;  // local -> path -> data
  std::string config = StrCat(R"({"architecture":"amd64","os":"linux","config":{"Env":[")", kPath,
                              R"("]},"rootfs":{"type":"layers","diff_ids":["sha256:)",
                              std::string(64, 'a'), R"("]}})");

  absl::StatusOr<llb::ResolvedImage> ResolveImageConfig(
      const std::string& ref, const std::optional<oci::Platform>& platform,
      llb::ResolveMode mode) override {
    std::lock_guard<std::mutex> lock(mu_);
    resolved.push_back(ref);
    if (platform) platforms.push_back(oci::FormatPlatform(*platform));
    if (ref.find("missing") != std::string::npos) {
      return absl::NotFoundError(StrCat(ref, ": not found"));
    }
    llb::ResolvedImage r;
    r.ref = ref;
    r.digest = Digest::Sha256Of(ref);
    r.config_json = config;
    return r;
  }

  absl::StatusOr<std::string> ReadFile(const std::string& local_name,
                                       const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    reads.push_back(StrCat(local_name, ":", path));
    auto l = files.find(local_name);
    if (l != files.end()) {
      auto f = l->second.find(path);
      if (f != l->second.end()) return f->second;
    }
    return absl::NotFoundError(StrCat(path, ": no such file"));
  }

  std::vector<std::string> resolved, platforms, reads;

 private:
  std::mutex mu_;
};

absl::StatusOr<ConvertResult> ConvertText(std::string_view text, ConvertOptions opts = {}) {
  MemoryClient client;
  opts.session_id = "s";
  return Convert(text, opts, client);
}

// Expects conversion to fail with `message`, located at lines [start, end] of "Dockerfile".
void ExpectError(std::string_view text, std::string_view message, int start, int end,
                 absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  absl::StatusOr<ConvertResult> r = ConvertText(text);
  ASSERT_FALSE(r.ok()) << text;
  EXPECT_EQ(r.status().code(), code) << r.status();
  EXPECT_EQ(r.status().message(), start == end
                                      ? StrCat("Dockerfile:", start, ": ", message)
                                      : StrCat("Dockerfile:", start, "-", end, ": ", message));
  std::optional<SourceRange> range = GetSourceRange(r.status());
  ASSERT_TRUE(range.has_value()) << r.status();
  EXPECT_EQ(range->file, "Dockerfile");
  EXPECT_EQ(range->start_line, start);
  EXPECT_EQ(range->end_line, end);
}

TEST(ConvertErrors, ParserErrorsAreLocated) {
  ExpectError("FROM busybox\nRUNN echo\n", "unknown instruction: RUNN (did you mean RUN?)", 2, 2);
  ExpectError("FROM busybox\nRUN <<EOF\necho\n", "unterminated heredoc", 2, 3);
}

TEST(ConvertErrors, StageGraphErrors) {
  ExpectError("FROM busybox AS app\nCOPY --from=app /a /b\n",
              "circular dependency detected on stage: app", 1, 1);
  ExpectError("FROM busybox AS a\nCOPY --from=b /b /b\nFROM busybox AS b\nCOPY --from=a /a /a\n",
              "circular dependency detected on stage: a", 1, 1);
  ExpectError("FROM busybox\nFROM busybox\nCOPY --from=7 /x /x\n", "invalid stage index 7", 3, 3);
  ExpectError("ARG BASE\nFROM ${BASE}\n", "base name (${BASE}) should not be blank", 2, 2);
  ExpectError("FROM Busybox\n",
              "failed to parse stage name \"Busybox\": invalid reference format: repository name "
              "must be lowercase",
              1, 1);
}

TEST(ConvertErrors, MissingImageNamesTheStageLine) {
  // The resolver's code is kept (NotFound, not InvalidArgument).
  ExpectError("FROM busybox\nFROM missing:1\n", "missing:1: docker.io/library/missing:1: not found",
              2, 2, absl::StatusCode::kNotFound);
}

TEST(ConvertErrors, InstructionErrors) {
  ExpectError("FROM busybox\nCOPY --chmod=999 a /a\n",
              "invalid chmod parameter: '999'. it should be octal string and between 0 and 07777",
              2, 2);
  ExpectError("FROM busybox\nCOPY --chmod=u+q a /a\n", "invalid chmod parameter: 'u+q'", 2, 2);
  ExpectError("FROM busybox\nEXPOSE 80/http\n", "Invalid proto: http", 2, 2);
  ExpectError("FROM busybox\nEXPOSE 70000\n", "Invalid containerPort: 70000", 2, 2);
  ExpectError("FROM busybox\nSTOPSIGNAL SIGNOPE\n", "invalid signal: SIGNOPE", 2, 2);
  ExpectError("FROM busybox\nRUN --mount=target=/ ls\n", "invalid mount target \"/\"", 2, 2);
  ExpectError("FROM busybox\nCOPY https://x/y /y\n", "source can't be a URL for COPY", 2, 2);
  ExpectError("FROM busybox\nADD --checksum=sha256:00 https://x/y /y\n",
              "invalid checksum digest format: sha256:00", 2, 2);
  ExpectError("FROM --platform=linux/a/b/c busybox\n",
              "failed to parse platform linux/a/b/c: \"linux/a/b/c\": cannot parse platform "
              "specifier: invalid argument",
              1, 1);
  // Multi-line instructions report their whole range.
  ExpectError("FROM busybox\nRUN --mount=type=ssh,source=x \\\n  ls\n",
              "ssh does not support source", 2, 3);
}

TEST(ConvertErrors, UnlocatedErrors) {
  ConvertOptions opts;
  opts.target = "nope";
  absl::StatusOr<ConvertResult> r = ConvertText("FROM busybox AS a\n", opts);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "target stage nope could not be found");
  EXPECT_EQ(ConvertText("").status().message(), "the Dockerfile cannot be empty");
}

TEST(ConvertErrors, OnbuildTriggerErrorsPointAtTheFromLine) {
  MemoryClient client;
  client.config = R"({"architecture":"amd64","os":"linux","config":{"OnBuild":["RUNN x"]},)"
                  R"("rootfs":{"type":"layers","diff_ids":["sha256:)" +
                  std::string(64, 'b') + R"("]}})";
  ConvertOptions opts;
  absl::StatusOr<ConvertResult> r = Convert("# comment\nFROM base\nRUN true\n", opts, client);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "Dockerfile:2: ONBUILD trigger \"RUNN x\" of the base image: unknown instruction: "
            "RUNN (did you mean RUN?)");
  EXPECT_EQ(GetSourceRange(r.status())->start_line, 2);
}

TEST(Convert, ResolvesOnlyReachableStagesWithTheirPlatform) {
  MemoryClient client;
  ConvertOptions opts;
  opts.target = "b";
  absl::StatusOr<ConvertResult> r = Convert(
      "FROM missing AS a\nFROM --platform=linux/arm64 busybox AS b\nFROM alpine\n", opts, client);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(client.resolved, std::vector<std::string>{"docker.io/library/busybox:latest"});
  EXPECT_EQ(client.platforms, std::vector<std::string>{"linux/arm64"});
  absl::StatusOr<pb::Definition> def = r->state.Marshal();
  ASSERT_TRUE(def.ok()) << def.status();
  absl::StatusOr<std::string> dump = llb::DumpJson(llb::MarshalDefinition(*def));
  ASSERT_TRUE(dump.ok());
  // Pinned like BuildKit: the name as written plus the digest (no ":latest").
  EXPECT_NE(dump->find("docker-image://docker.io/library/busybox@sha256:"), std::string::npos)
      << *dump;
  EXPECT_NE(dump->find("\"Architecture\":\"arm64\""), std::string::npos) << *dump;
}

// Every stage copies from every earlier one: walking all paths (as BuildKit does) would never
// end; the converter visits each stage once.
TEST(Convert, DenseStageGraph) {
  std::string text;
  constexpr int kStages = 40;
  for (int i = 0; i < kStages; ++i) {
    StrAppend(&text, "FROM busybox AS s", i, "\n");
    for (int j = 0; j < i; ++j) StrAppend(&text, "COPY --from=s", j, " /", j, " /", j, "\n");
  }
  absl::StatusOr<ConvertResult> r = ConvertText(text);
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<pb::Definition> def = r->state.Marshal();
  ASSERT_TRUE(def.ok()) << def.status();
  // Stage i is stage i-1 plus one copy, so identical ops collapse: the image, one file op per
  // COPY of the last stage, the terminal op.
  EXPECT_EQ(def->def_size(), 1 + (kStages - 1) + 1);
}

TEST(Convert, ImageConfigJsonHasGoFieldOrder) {
  oci::Image img;
  img.platform.architecture = "arm";
  img.platform.variant = "v7";
  img.platform.os = "linux";
  img.author = "me <me@x>";
  img.config.env = {"A=<b>&"};
  img.config.exposed_ports = {{"80/tcp", true}, {"443/tcp", true}};
  img.config.cmd = std::vector<std::string>{"x"};
  img.config.healthcheck = oci::HealthConfig{{"NONE"}, 0, 0, 0, 0, 0};
  img.history.push_back({"", "RUN x", "", "buildkit.dockerfile.v0", true});
  EXPECT_EQ(EncodeImageConfigJson(img),
            R"({"author":"me \u003cme@x\u003e","architecture":"arm","variant":"v7","os":"linux",)"
            R"("rootfs":{"type":"layers","diff_ids":null},"history":[{"created_by":"RUN x",)"
            R"("comment":"buildkit.dockerfile.v0","empty_layer":true}],"config":{"ExposedPorts":)"
            R"({"443/tcp":{},"80/tcp":{}},"Env":["A=\u003cb\u003e\u0026"],"Cmd":["x"],)"
            R"("Healthcheck":{"Test":["NONE"]},"OnBuild":null}})");
  EXPECT_NE(EncodeImageConfigJson(img, /*diff_ids_set=*/true).find("\"diff_ids\":[]"),
            std::string::npos);
}

TEST(GoFormat, Duration) {
  using internal::GoDuration;
  EXPECT_EQ(GoDuration(0), "0s");
  EXPECT_EQ(GoDuration(1), "1ns");
  EXPECT_EQ(GoDuration(1500), "1.5\xc2\xb5s");
  EXPECT_EQ(GoDuration(500000000), "500ms");
  EXPECT_EQ(GoDuration(3000000000), "3s");
  EXPECT_EQ(GoDuration(90000000000), "1m30s");
  EXPECT_EQ(GoDuration(300000000000), "5m0s");
  EXPECT_EQ(GoDuration(3600000000000), "1h0m0s");
  EXPECT_EQ(GoDuration(3601500000000), "1h0m1.5s");
  EXPECT_EQ(GoDuration(-2000000000), "-2s");
}

TEST(GoFormat, QuotedRuneAndSlices) {
  using internal::GoQuoteRune;
  EXPECT_EQ(GoQuoteRune(0), "'\\x00'");
  EXPECT_EQ(GoQuoteRune(3), "'\\x03'");
  EXPECT_EQ(GoQuoteRune(10), "'\\n'");
  EXPECT_EQ(GoQuoteRune('A'), "'A'");
  EXPECT_EQ(GoQuoteRune('\''), "'\\''");
  EXPECT_EQ(GoQuoteRune(0x7f), "'\\x7f'");
  EXPECT_EQ(GoQuoteRune(0xe9), "'\xc3\xa9'");
  EXPECT_EQ(internal::GoQuoteSlice({"a b", "c\"d"}), "[\"a b\" \"c\\\"d\"]");
  EXPECT_EQ(internal::GoFormatSlice({"/a", "/b"}), "[/a /b]");
}

TEST(Expose, PortSpecs) {
  using internal::ParsePortSpecs;
  EXPECT_EQ(*ParsePortSpecs({"80", "443/TCP", "53/udp", "8000-8002", "1.2.3.4:9000:90/sctp"}),
            (std::vector<std::string>{"443/tcp", "53/udp", "80/tcp", "8000/tcp", "8001/tcp",
                                      "8002/tcp", "90/sctp"}));
  EXPECT_EQ(*ParsePortSpecs({"[::1]:80:80"}), std::vector<std::string>{"80/tcp"});
  EXPECT_EQ(ParsePortSpecs({"x"}).status().message(), "Invalid containerPort: x");
  EXPECT_EQ(ParsePortSpecs({"90-80"}).status().message(), "Invalid containerPort: 90-80");
  EXPECT_EQ(ParsePortSpecs({"80/quic"}).status().message(), "Invalid proto: quic");
  EXPECT_EQ(ParsePortSpecs({"/tcp"}).status().message(), "No port specified: /tcp<empty>");
  EXPECT_EQ(ParsePortSpecs({"999.1.1.1:80:80"}).status().message(),
            "Invalid ip address: 999.1.1.1");
}

TEST(StopSignal, Names) {
  EXPECT_TRUE(internal::ValidateSignal("SIGTERM").ok());
  EXPECT_TRUE(internal::ValidateSignal("term").ok());
  EXPECT_TRUE(internal::ValidateSignal("RTMIN+3").ok());
  EXPECT_TRUE(internal::ValidateSignal("9").ok());
  EXPECT_FALSE(internal::ValidateSignal("0").ok());
  EXPECT_FALSE(internal::ValidateSignal("SIGRTMIN+16").ok());
}

TEST(AddSources, GitRefsAndUrls) {
  using internal::ParseGitRef;
  std::optional<internal::GitRef> g = ParseGitRef("https://github.com/o/r.git#v1:sub/dir");
  ASSERT_TRUE(g.has_value());
  EXPECT_EQ(g->remote, "https://github.com/o/r.git");
  EXPECT_EQ(g->commit, "v1");
  EXPECT_EQ(g->subdir, "sub/dir");
  EXPECT_TRUE(ParseGitRef("git@github.com:o/r.git").has_value());
  EXPECT_TRUE(ParseGitRef("github.com/o/r")->indistinguishable_from_local);
  EXPECT_FALSE(ParseGitRef("https://example.com/file.tar.gz").has_value());
  EXPECT_FALSE(ParseGitRef("src/dir").has_value());
  EXPECT_EQ(internal::HttpSourceFilename("https://x.io/a/b.tgz?q=1#f"), "b.tgz");
  EXPECT_EQ(internal::HttpSourceFilename("https://x.io/a%20b"), "a b");
  EXPECT_EQ(internal::HttpSourceFilename("https://x.io/"), "__unnamed__");
  EXPECT_EQ(internal::HttpSourceFilename("https://x.io"), "__unnamed__");
}

TEST(Platforms, ContainerdParse) {
  EXPECT_EQ(FormatPlatformSpecifier(*ParsePlatformSpecifier("linux/arm64")), "linux/arm64");
  EXPECT_EQ(FormatPlatformSpecifier(*ParsePlatformSpecifier("linux/arm64/v8")), "linux/arm64/v8");
  EXPECT_EQ(FormatPlatformSpecifier(*ParsePlatformSpecifier("linux/arm")), "linux/arm");
  EXPECT_EQ(FormatPlatformSpecifier(*ParsePlatformSpecifier("linux/armhf")), "linux/arm");
  EXPECT_EQ(FormatPlatformSpecifier(*ParsePlatformSpecifier("Linux/x86_64")), "linux/amd64");
  EXPECT_EQ(ParsePlatformSpecifier("arm64")->os, "linux");
  EXPECT_EQ(ParsePlatformSpecifier("nope").status().message(),
            "\"nope\": unknown operating system or architecture: invalid argument");
  EXPECT_FALSE(ParsePlatformSpecifier("linux/*").ok());
  EXPECT_FALSE(ParsePlatformSpecifier("linux//amd64").ok());
}

// ---- the frontend ----

llb::BuildOpts Opts(std::map<std::string, std::string> frontend_opts = {}) {
  llb::BuildOpts o;
  o.session_id = "session";
  o.frontend_opts = std::move(frontend_opts);
  return o;
}

std::string DumpOf(const llb::FrontendResult& r) {
  absl::StatusOr<std::string> dump = llb::DumpJson(llb::MarshalDefinition(r.definition));
  EXPECT_TRUE(dump.ok());
  return dump.ok() ? *dump : "";
}

TEST(Frontend, DockerfileSpecificIgnoreFileWins) {
  MemoryClient client;
  client.files["dockerfile"]["Dockerfile"] = "FROM busybox\nCOPY . /\n";
  client.files["dockerfile"]["Dockerfile.dockerignore"] = "specific\n";
  client.files["context"][".dockerignore"] = "general\n";
  DockerfileFrontend fe;
  absl::StatusOr<llb::FrontendResult> r = fe.Build(client, Opts());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(DumpOf(*r).find(R"(\"specific\")"), std::string::npos);
  EXPECT_EQ(DumpOf(*r).find(R"(\"general\")"), std::string::npos);
  EXPECT_EQ(r->metadata.at("containerimage.config"), r->image_config_json);

  client.files["dockerfile"].erase("Dockerfile.dockerignore");
  r = fe.Build(client, Opts());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(DumpOf(*r).find(R"(\"general\")"), std::string::npos);
}

TEST(Frontend, ReadsRenamedLocalsAndLowercaseDockerfile) {
  MemoryClient client;
  client.files["df"]["sub/dockerfile"] = "FROM busybox\n";
  DockerfileFrontend fe;
  absl::StatusOr<llb::FrontendResult> r = fe.Build(
      client,
      Opts({{"dockerfilekey", "df"}, {"contextkey", "ctx"}, {"filename", "sub/Dockerfile"}}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(client.reads,
            (std::vector<std::string>{"df:sub/Dockerfile", "df:sub/dockerfile",
                                      "df:sub/Dockerfile.dockerignore", "ctx:.dockerignore"}));
}

TEST(Frontend, RejectsWhatItCannotDo) {
  MemoryClient client;
  client.files["dockerfile"]["Dockerfile"] = "FROM busybox\n";
  DockerfileFrontend fe;
  EXPECT_EQ(fe.Build(client, Opts({{"platform", "linux/amd64,linux/arm64"}})).status().message(),
            "building for several platforms at once (linux/amd64,linux/arm64) is not supported: "
            "build each platform separately");
  EXPECT_EQ(fe.Build(client, Opts({{"force-network-mode", "bridge"}})).status().message(),
            "invalid netmode bridge");
  EXPECT_EQ(fe.Build(client, Opts({{"context:x", "git://github.com/o/r"}})).status().code(),
            absl::StatusCode::kOk);  // unused named contexts are never looked at
  client.files["dockerfile"]["Dockerfile"] = "FROM x\n";
  EXPECT_EQ(fe.Build(client, Opts({{"context:x", "https://example.com/x.tar"}})).status().message(),
            "Dockerfile:1: named context x=https://example.com/x.tar: only docker-image:// and "
            "local: contexts are supported");
  EXPECT_EQ(fe.Build(client, Opts({{"ulimit", "nofile=10:5"}})).status().message(),
            "failed to parse ulimit: ulimit soft limit must be less than or equal to hard limit: "
            "10 > 5");
  EXPECT_EQ(fe.Build(client, Opts({{"add-hosts", "db=not-an-ip"}})).status().message(),
            "failed to parse additional hosts: failed to parse IP not-an-ip");
  EXPECT_EQ(fe.Build(client, Opts({{"requestid", "frontend.outline"}})).status().message(),
            "frontend subrequest frontend.outline is not supported");
}

TEST(Frontend, MissingDockerfile) {
  MemoryClient client;
  DockerfileFrontend fe;
  absl::StatusOr<llb::FrontendResult> r = fe.Build(client, Opts());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "failed to read dockerfile: Dockerfile: no such file");
}

}  // namespace
}  // namespace kiln::frontends::dockerfile
