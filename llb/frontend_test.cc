// The frontend contract in use: a minimal frontend ("FROM <image>\nRUN <cmd>" only) written
// against FrontendClient, driven by a client serving canned data, as the engine and tests will.
#include "llb/frontend.h"

#include <map>
#include <string>

#include "base/reference.h"
#include "gtest/gtest.h"
#include "llb/llb.h"
#include "llb/validate.h"

namespace kiln::llb {
namespace {

class CannedClient : public FrontendClient {
 public:
  absl::StatusOr<ResolvedImage> ResolveImageConfig(const std::string& ref,
                                                   const std::optional<oci::Platform>& platform,
                                                   ResolveMode mode) override {
    last_mode = mode;
    last_platform = platform;
    auto it = images.find(ref);
    if (it == images.end()) return absl::NotFoundError("image " + ref + " not found");
    return it->second;
  }
  absl::StatusOr<std::string> ReadFile(const std::string& local_name,
                                       const std::string& path) override {
    auto it = files.find(local_name + ":" + path);
    if (it == files.end()) return absl::NotFoundError(path + " not found");
    return it->second;
  }

  std::map<std::string, ResolvedImage> images;
  std::map<std::string, std::string> files;
  ResolveMode last_mode = ResolveMode::kDefault;
  std::optional<oci::Platform> last_platform;
};

class TwoLineFrontend : public Frontend {
 public:
  absl::StatusOr<FrontendResult> Build(FrontendClient& client, const BuildOpts& opts) override {
    auto df = client.ReadFile("dockerfile", opts.frontend_opts.count("filename")
                                                ? opts.frontend_opts.at("filename")
                                                : "Dockerfile");
    if (!df.ok()) return df.status();
    size_t nl = df->find('\n');
    std::string from = df->substr(5, nl - 5), run = df->substr(nl + 5);
    while (!run.empty() && run.back() == '\n') run.pop_back();
    absl::StatusOr<ImageReference> ref = ParseNormalizedReference(from);
    if (!ref.ok()) return ref.status();
    const std::string name = ref->WithDefaultTag().String();
    auto img = client.ResolveImageConfig(name, opts.worker_platforms.front(), ResolveMode::kPull);
    if (!img.ok()) return img.status();
    State st = Image(ref->WithDigest(img->digest).String(),
                     {.resolve_mode = ResolveMode::kPull,
                      .config_json = img->config_json,
                      .constraints = Constraints().WithPlatform(opts.worker_platforms.front())});
    st = st.Run({.args = std::vector<std::string>{"/bin/sh", "-c", run}}).Root();
    absl::StatusOr<pb::Definition> def =
        st.Marshal(Constraints().WithPlatform(opts.worker_platforms.front()));
    if (!def.ok()) return def.status();
    return FrontendResult{*def, img->config_json, {}};
  }
};

TEST(Frontend, ContractCarriesWhatAFrontendNeeds) {
  oci::Platform p;
  p.os = "linux";
  p.architecture = "amd64";
  CannedClient client;
  const Digest manifest = Digest::Sha256Of("manifest");
  client.images["docker.io/library/busybox:latest"] = {
      "docker.io/library/busybox:latest", manifest,
      R"({"os":"linux","architecture":"amd64","config":{"Env":["PATH=/bin"],"WorkingDir":"/home"}})"};
  client.files["dockerfile:Dockerfile"] = "FROM busybox\nRUN echo hi\n";
  TwoLineFrontend frontend;
  BuildOpts opts{.session_id = "s", .frontend_opts = {}, .worker_platforms = {p}, .llb_caps = {}};
  absl::StatusOr<FrontendResult> result = frontend.Build(client, opts);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(client.last_mode, ResolveMode::kPull);
  EXPECT_EQ(client.last_platform, p);
  absl::StatusOr<ParsedDefinition> def = LoadDefinition(SerializeDeterministic(result->definition));
  ASSERT_TRUE(def.ok()) << def.status();
  const ParsedOp* exec = def->Find(def->result()->digest());
  ASSERT_TRUE(exec && exec->op.has_exec());
  EXPECT_EQ(exec->op.exec().meta().cwd(), "/home");
  EXPECT_EQ(exec->op.exec().meta().env(0), "PATH=/bin");
  const ParsedOp* src = def->Find(exec->op.inputs(0).digest());
  ASSERT_TRUE(src && src->op.has_source());
  EXPECT_EQ(
      src->op.source().identifier(),
      "docker-image://docker.io/library/busybox@" + manifest.str());  // as dockerfile2llb pins
  EXPECT_EQ(src->op.source().attrs().at("image.resolvemode"), "pull");

  client.files.clear();
  EXPECT_EQ(frontend.Build(client, opts).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace kiln::llb
