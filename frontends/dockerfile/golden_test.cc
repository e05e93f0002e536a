// Golden tests of the Dockerfile frontend: every directory under testdata/golden/ holds a
// Dockerfile (plus optional opts.json with frontend attributes, .dockerignore files and other
// context files) and the expected output:
//   llb.json    `buildctl debug dump-llb` form of the Definition (llb/dump.h), or
//   error.txt   the expected error message when the build must fail;
//   image.json  the image config (containerimage.config), byte for byte.
// Base images come from testdata/golden/images.json (canned configs and digests) through a fake
// FrontendClient; the session id is fixed and COPY --link progress groups are numbered, so the
// output is deterministic.
//
// Every golden was checked against BuildKit v0.11.6's own frontend (see the comparison script
// referenced in README.md): the same Dockerfile, images and options give the same op digests.
//
//   KILN_UPDATE_GOLDEN=1   rewrite llb.json / image.json / error.txt from the current output
//   KILN_GOLDEN_PB_DIR=D   also write D/<name>.pb (the marshaled Definition) for comparisons
#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "base/fs.h"
#include "base/strings.h"
#include "frontends/dockerfile/frontend.h"
#include "gtest/gtest.h"
#include "llb/dump.h"
#include "llb/go_compat.h"
#include "nlohmann/json.hpp"

namespace kiln::frontends::dockerfile {
namespace {

const std::string kGoldenDir = std::string(KILN_DOCKERFILE_TESTDATA) + "/golden";

std::vector<std::string> GoldenCases() {
  std::vector<std::string> out;
  DIR* dir = opendir(kGoldenDir.c_str());
  if (dir == nullptr) return out;
  while (struct dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (stat((kGoldenDir + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      out.push_back(name);
    }
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

// Serves files from the case directory and image configs from images.json.
class GoldenClient : public llb::FrontendClient {
 public:
  explicit GoldenClient(std::string dir) : dir_(std::move(dir)) {
    absl::StatusOr<std::string> images = ReadFileToString(kGoldenDir + "/images.json");
    EXPECT_TRUE(images.ok()) << images.status();
    images_ = nlohmann::json::parse(images.ok() ? *images : "[]");
  }

  absl::StatusOr<llb::ResolvedImage> ResolveImageConfig(
      const std::string& ref, const std::optional<oci::Platform>& platform,
      llb::ResolveMode mode) override {
    std::lock_guard<std::mutex> lock(mu_);
    resolved_.push_back(ref);
    // As the reference tool: platforms.Format(platforms.Normalize(p)).
    const std::string p = platform ? oci::FormatPlatform(llb::NormalizePlatform(*platform)) : "";
    for (const auto& e : images_) {
      if (e.value("ref", "") != ref) continue;
      const std::string ep = e.value("platform", "");
      if (!ep.empty() && ep != p) continue;
      llb::ResolvedImage r;
      r.ref = ref;
      if (std::string d = e.value("digest", ""); !d.empty()) {
        absl::StatusOr<Digest> digest = Digest::Parse(d);
        if (!digest.ok()) return digest.status();
        r.digest = *digest;
      }
      r.config_json = e["config"].dump();
      return r;
    }
    return absl::NotFoundError(StrCat(ref, ": not found"));
  }

  absl::StatusOr<std::string> ReadFile(const std::string& local_name,
                                       const std::string& path) override {
    std::string root = dir_;
    if (local_name != "dockerfile" && local_name != "context") root += "/" + local_name;
    std::string full = root + "/" + path;
    struct stat st;
    if (stat(full.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return absl::NotFoundError(StrCat("open ", path, ": no such file or directory"));
    }
    return ReadFileToString(full);
  }

  std::vector<std::string> resolved() {
    std::lock_guard<std::mutex> lock(mu_);
    return resolved_;
  }

 private:
  std::string dir_;
  nlohmann::json images_;
  std::mutex mu_;
  std::vector<std::string> resolved_;
};

struct GoldenOutput {
  absl::Status status;
  std::string llb_json;
  std::string image_json;
  std::string pb;
};

GoldenOutput RunCase(const std::string& name) {
  const std::string dir = kGoldenDir + "/" + name;
  llb::BuildOpts opts;
  opts.session_id = "kiln-golden-session";
  oci::Platform amd64;
  amd64.os = "linux";
  amd64.architecture = "amd64";
  opts.worker_platforms = {amd64};
  if (absl::StatusOr<std::string> o = ReadFileToString(dir + "/opts.json"); o.ok()) {
    const nlohmann::json j = nlohmann::json::parse(*o);
    for (const auto& item : j.items()) {
      opts.frontend_opts[item.key()] = item.value().get<std::string>();
    }
  }
  int pg = 0;
  DockerfileFrontend frontend(
      DockerfileFrontend::Options{.new_id = [&pg] { return StrCat("progress-group-", ++pg); }});
  GoldenClient client(dir);
  GoldenOutput out;
  absl::StatusOr<llb::FrontendResult> r = frontend.Build(client, opts);
  if (!r.ok()) {
    out.status = r.status();
    return out;
  }
  out.pb = llb::MarshalDefinition(r->definition);
  absl::StatusOr<std::string> dump = llb::DumpJson(out.pb);
  if (!dump.ok()) {
    out.status = dump.status();
    return out;
  }
  out.llb_json = *dump;
  out.image_json = r->image_config_json;
  return out;
}

void WriteOrRemove(const std::string& path, const std::optional<std::string>& content) {
  if (content) {
    ASSERT_TRUE(WriteFileAtomic(path, *content).ok()) << path;
  } else {
    ::unlink(path.c_str());
  }
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, MatchesExpectedOutput) {
  const std::string dir = kGoldenDir + "/" + GetParam();
  GoldenOutput out = RunCase(GetParam());
  if (const char* pb_dir = std::getenv("KILN_GOLDEN_PB_DIR"); pb_dir && out.status.ok()) {
    ASSERT_TRUE(WriteFileAtomic(StrCat(pb_dir, "/", GetParam(), ".pb"), out.pb).ok());
  }
  if (std::getenv("KILN_UPDATE_GOLDEN") != nullptr) {
    if (out.status.ok()) {
      WriteOrRemove(dir + "/llb.json", out.llb_json);
      WriteOrRemove(dir + "/image.json", out.image_json);
      WriteOrRemove(dir + "/error.txt", std::nullopt);
    } else {
      WriteOrRemove(dir + "/llb.json", std::nullopt);
      WriteOrRemove(dir + "/image.json", std::nullopt);
      WriteOrRemove(dir + "/error.txt", std::string(out.status.message()) + "\n");
    }
    return;
  }
  absl::StatusOr<std::string> want_error = ReadFileToString(dir + "/error.txt");
  if (want_error.ok()) {
    ASSERT_FALSE(out.status.ok()) << "expected the error: " << *want_error;
    EXPECT_EQ(std::string(out.status.message()) + "\n", *want_error);
    return;
  }
  ASSERT_TRUE(out.status.ok()) << out.status;
  absl::StatusOr<std::string> want_llb = ReadFileToString(dir + "/llb.json");
  ASSERT_TRUE(want_llb.ok()) << want_llb.status();
  EXPECT_EQ(out.llb_json, *want_llb);
  absl::StatusOr<std::string> want_image = ReadFileToString(dir + "/image.json");
  ASSERT_TRUE(want_image.ok()) << want_image.status();
  EXPECT_EQ(out.image_json, *want_image);
}

INSTANTIATE_TEST_SUITE_P(Corpus, Golden, ::testing::ValuesIn(GoldenCases()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(GoldenCorpus, IsLargeEnough) { EXPECT_GE(GoldenCases().size(), 60u); }

// Stages the target cannot reach are neither resolved nor converted.
TEST(GoldenCorpus, UnreachableStagesAreNotResolved) {
  const std::string name = "multistage-unused";
  GoldenClient client(kGoldenDir + "/" + name);
  llb::BuildOpts opts;
  opts.session_id = "s";
  DockerfileFrontend frontend;
  ASSERT_TRUE(frontend.Build(client, opts).ok());
  for (const std::string& ref : client.resolved()) {
    EXPECT_EQ(ref.find("unused"), std::string::npos) << ref;
  }
  EXPECT_FALSE(client.resolved().empty());
}

}  // namespace
}  // namespace kiln::frontends::dockerfile
