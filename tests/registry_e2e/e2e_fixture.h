// The fixture of the registry end-to-end tests: kilnctl run as a subprocess on state directories
// of its own, a busybox base image made from Debian's busybox-static, Debian's docker-registry
// (tests/registry_harness) and skopeo/umoci to read back what was pushed.
//
// The registry's access log is the witness of what went over the wire: RegistryLog() parses it
// with query strings (the harness' own parser drops them), so a test can tell a mount
// (POST ...?mount=D&from=R) from an upload (PUT ...?digest=D).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/fs.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/registry_e2e/process.h"
#include "tests/registry_harness/harness.h"

namespace kiln::registry_e2e {

using Json = nlohmann::json;
using registry_harness::LocalRegistry;

struct LogLine {
  std::string method;
  std::string path;
  std::string query;  // percent-decoded
  int status = 0;
};

// The registry's access log, complete up to now: every request answered before the call is in
// it (a sentinel request is sent and waited for; its lines are left out).
std::vector<LogLine> RegistryLog(const LocalRegistry& reg);

// Completed blob uploads (PUT .../blobs/uploads/...?digest=D answered 201) into repository
// `repo` ("a/b"; empty: any) of blob `digest` (empty: any).
int CountUploads(const std::vector<LogLine>& log, const std::string& repo,
                 const std::string& digest = "");
// Successful cross-repository mounts (POST ...?mount=D answered 201) into `repo`.
int CountMounts(const std::vector<LogLine>& log, const std::string& repo,
                const std::string& digest = "");
// Requests with `method` whose path matches the regex.
int CountRequests(const std::vector<LogLine>& log, const std::string& method,
                  const std::string& path_regex, int status = 0);

std::string Base64(const std::string& s);

class E2ETest : public testing::Test {
 protected:
  static void SetUpTestSuite();
  void SetUp() override;

  std::string Path(const std::string& name) const;
  // A fresh kilnctl state directory; with busybox: busybox:latest imported.
  std::string NewState(bool with_busybox = true);
  // A build context `name` holding `files` (relative path, content), Dockerfile included.
  std::string WriteContext(const std::string& name,
                           const std::vector<std::pair<std::string, std::string>>& files);

  // kilnctl --root STATE ARGS... with DOCKER_CONFIG=docker_config_dir_ (empty unless written).
  ProcessResult Kilnctl(const std::string& state, const std::vector<std::string>& args,
                        const std::vector<std::string>& env = {});
  // kilnctl build of `context` with the Dockerfile frontend; the metadata file goes to
  // `metadata` when non-null.  `extra` holds --output and the like.
  ProcessResult Build(const std::string& state, const std::string& context,
                      const std::vector<std::string>& extra, Json* metadata = nullptr,
                      const std::vector<std::string>& env = {},
                      const std::string& progress = "plain");

  // Writes $DOCKER_CONFIG/config.json with one `auths` entry.
  void WriteDockerConfig(const std::string& host, const std::string& user,
                         const std::string& password);

  // skopeo inspect [flags] docker://REF (plain HTTP); JSON or null on failure (with a failure).
  Json SkopeoInspect(const std::string& ref, const std::string& flags = "");

  // The manifest JSON `digest` names in the state's content store.
  Json StoredBlobJson(const std::string& state, const std::string& digest);

  std::unique_ptr<TempDir> tmp_;
  std::string docker_config_dir_;
  std::string skopeo_creds_;  // "--creds U:P" for the auth setups, else empty
  static std::string* busybox_rootfs_;
};

}  // namespace kiln::registry_e2e
