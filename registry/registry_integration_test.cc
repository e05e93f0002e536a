// The registry client against a real registry (Debian's docker-registry) on loopback, with
// Basic and token auth, a fault-injecting proxy, skopeo as an independent reader, and an
// injected clock so retries never sleep for real.
#include <atomic>
#include <random>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdio.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "base/fs.h"
#include "base/reference.h"
#include "base/status.h"
#include "base/strings.h"
#include "nlohmann/json.hpp"
#include "registry/registry.h"
#include "tests/registry_harness/harness.h"

namespace kiln::registry {
namespace {

using registry_harness::FaultProxy;
using registry_harness::LocalRegistry;
using ::testing::HasSubstr;
using ::testing::Not;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return out;
}

struct TestImage {
  std::shared_ptr<MemoryBlobProvider> blobs = std::make_shared<MemoryBlobProvider>();
  oci::Descriptor config;
  std::string config_bytes;
  std::vector<oci::Descriptor> layers;
  std::vector<std::string> layer_data;
  ManifestToPush manifest;
  Digest digest;
};

// An image made in memory: random "layers" (tar media type; nothing here unpacks them) and a
// config whose diff_ids name them.  `shared` layers come first, so two images can share one.
TestImage MakeImage(uint64_t seed, const std::vector<size_t>& layer_sizes,
                    const std::string& arch = "amd64",
                    const std::vector<std::string>& shared = {}) {
  TestImage img;
  std::vector<std::string> datas = shared;
  for (size_t i = 0; i < layer_sizes.size(); ++i) {
    datas.push_back(RandomBytes(layer_sizes[i], seed * 1000 + i));
  }
  oci::Image config;
  config.created = "2024-01-01T00:00:00Z";
  config.platform.os = "linux";
  config.platform.architecture = arch;
  config.config.env = {StrCat("SEED=", seed)};
  for (const std::string& d : datas) {
    img.layers.push_back(img.blobs->Add(d, oci::kMediaTypeLayer));
    img.layer_data.push_back(d);
    config.rootfs.diff_ids.push_back(img.layers.back().digest);
  }
  img.config_bytes = oci::EncodeImage(config);
  img.config = img.blobs->Add(img.config_bytes, oci::kMediaTypeImageConfig);
  oci::Manifest m;
  m.media_type = oci::kMediaTypeImageManifest;
  m.config = img.config;
  m.layers = img.layers;
  img.manifest.bytes = oci::EncodeManifest(m);
  img.manifest.media_type = oci::kMediaTypeImageManifest;
  img.digest = Digest::Sha256Of(img.manifest.bytes);
  return img;
}

ImageReference Ref(const std::string& text) {
  auto r = ParseNormalizedReference(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status();
  return *r;
}

PushRequest Push(const TestImage& img, std::vector<ImageReference> targets) {
  PushRequest req;
  req.targets = std::move(targets);
  req.manifest = img.manifest;
  req.provider = img.blobs.get();
  return req;
}

// Options that never wait: the ManualClock absorbs every backoff.
RegistryOptions TestOptions() {
  RegistryOptions o;
  o.retry.max_attempts = 5;
  o.connection.low_speed_time = absl::Seconds(30);
  return o;
}

std::string RunShell(const std::string& cmd, int* exit_code = nullptr) {
  std::string out;
  FILE* f = ::popen(StrCat(cmd, " 2>&1").c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  int rc = ::pclose(f);
  if (exit_code != nullptr) *exit_code = WEXITSTATUS(rc);
  return out;
}

void ExpectNoSecret(const absl::Status& st, const std::string& secret) {
  EXPECT_THAT(std::string(st.message()), Not(HasSubstr(secret))) << "secret leaked";
}

int CountProxy(const FaultProxy& proxy, const std::string& method, const std::string& path_part) {
  int n = 0;
  for (const auto& r : proxy.Requests()) {
    if (r.method == method && absl::StrContains(r.path, path_part)) ++n;
  }
  return n;
}

class RegistryTest : public ::testing::Test {
 protected:
  void StartRegistry(LocalRegistry::Options options = {}) {
    auto reg = LocalRegistry::Start(options);
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = std::move(*reg);
  }
  std::unique_ptr<Registry> Client(RegistryOptions options = TestOptions(),
                                   std::shared_ptr<CredentialSource> creds = nullptr) {
    return std::make_unique<Registry>(std::move(options), std::move(creds), nullptr, &clock_);
  }
  std::string R(const std::string& rest) { return StrCat(registry_->host(), "/", rest); }

  ManualClock clock_;
  std::unique_ptr<LocalRegistry> registry_;
};

// ---------------------------------------------------------------------------------------------
// Push, read back by skopeo and by us.

TEST_F(RegistryTest, PushedImageIsReadBySkopeoAndPulledBackIdentical) {
  StartRegistry();
  TestImage img = MakeImage(1, {1 << 20, 300 << 10});
  auto client = Client();
  std::vector<BlobProgress> progress;
  std::mutex mu;
  CallOptions call;
  call.progress = [&](const BlobProgress& p) {
    std::lock_guard<std::mutex> lock(mu);
    progress.push_back(p);
  };
  auto pushed = client->PushImage(Push(img, {Ref(R("app:v1"))}), call);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->digest, img.digest);
  EXPECT_EQ(pushed->stats.uploaded, 3);
  EXPECT_FALSE(progress.empty());

  int rc = 0;
  std::string inspect =
      RunShell(StrCat("skopeo inspect --tls-verify=false docker://", R("app:v1")), &rc);
  ASSERT_EQ(rc, 0) << inspect;
  auto j = nlohmann::json::parse(inspect, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << inspect;
  EXPECT_EQ(j["Digest"], img.digest.str());
  EXPECT_EQ(j["Layers"].size(), 2u);

  auto oci_dir = TempDir::Create("kiln-skopeo-oci-");
  ASSERT_TRUE(oci_dir.ok());
  std::string copy = RunShell(StrCat("skopeo copy --insecure-policy --preserve-digests "
                                     "--dest-oci-accept-uncompressed-layers "
                                     "--src-tls-verify=false docker://",
                                     R("app:v1"), " oci:", oci_dir->path(), ":v1"),
                              &rc);
  ASSERT_EQ(rc, 0) << copy;
  auto copied_layer =
      ReadFileToString(StrCat(oci_dir->path(), "/blobs/sha256/", img.layers[0].digest.hex()));
  ASSERT_TRUE(copied_layer.ok()) << copied_layer.status();
  auto oci_index = ReadFileToString(StrCat(oci_dir->path(), "/index.json"));
  ASSERT_TRUE(oci_index.ok());
  EXPECT_THAT(*oci_index, HasSubstr(img.digest.str()));
  EXPECT_EQ(*copied_layer == img.layer_data[0], true);

  auto resolved = client->Resolve(Ref(R("app:v1")), std::nullopt);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->digest, img.digest);
  EXPECT_EQ(resolved->manifest, img.manifest.bytes);
  EXPECT_EQ(resolved->config, img.config_bytes);
  EXPECT_EQ(resolved->media_type, oci::kMediaTypeImageManifest);
  EXPECT_FALSE(resolved->index.has_value());

  auto head = client->HeadManifest(Ref(R("app:v1")));
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->digest, img.digest);
  EXPECT_EQ(head->size, static_cast<int64_t>(img.manifest.bytes.size()));

  auto by_digest = client->FetchManifest(Ref(StrCat(R("app@"), img.digest.str())));
  ASSERT_TRUE(by_digest.ok()) << by_digest.status();
  EXPECT_EQ(by_digest->bytes, img.manifest.bytes);

  for (size_t i = 0; i < img.layers.size(); ++i) {
    StringBlobWriter w;
    ASSERT_TRUE(client->PullBlob(Ref(R("app")), img.layers[i], w).ok());
    EXPECT_TRUE(w.committed());
    EXPECT_TRUE(w.data() == img.layer_data[i]);
  }
}

TEST_F(RegistryTest, PullResumesFromTheWritersOffset) {
  StartRegistry();
  TestImage img = MakeImage(2, {2 << 20});
  auto client = Client();
  ASSERT_TRUE(client->PushImage(Push(img, {Ref(R("app:v1"))})).ok());
  // A writer holding the first 700 KiB from an earlier, interrupted download.
  StringBlobWriter w;
  ASSERT_TRUE(w.Write(std::string_view(img.layer_data[0]).substr(0, 700 << 10)).ok());
  ASSERT_TRUE(client->PullBlob(Ref(R("app")), img.layers[0], w).ok());
  EXPECT_TRUE(w.committed());
  EXPECT_TRUE(w.data() == img.layer_data[0]);
  bool ranged = false;
  for (const auto& r : registry_->Requests()) {
    if (r.method == "GET" && absl::StrContains(r.path, img.layers[0].digest.str())) {
      ranged = r.status == 206;
    }
  }
  EXPECT_TRUE(ranged) << "the download should have asked for the missing range only";
}

TEST_F(RegistryTest, PullOfWrongSizeIsDataLossAndNotCommitted) {
  StartRegistry();
  TestImage img = MakeImage(3, {100 << 10});
  auto client = Client();
  ASSERT_TRUE(client->PushImage(Push(img, {Ref(R("app:v1"))})).ok());
  oci::Descriptor lying = img.layers[0];
  lying.size -= 10;
  StringBlobWriter w;
  absl::Status st = client->PullBlob(Ref(R("app")), lying, w);
  EXPECT_TRUE(absl::IsDataLoss(st)) << st;
  EXPECT_FALSE(w.committed());
}

// ---------------------------------------------------------------------------------------------
// Mounts and several names.

TEST_F(RegistryTest, SecondRepositoryMountsInsteadOfUploading) {
  StartRegistry();
  TestImage img = MakeImage(4, {512 << 10, 256 << 10});
  auto client = Client();
  ASSERT_TRUE(client->PushImage(Push(img, {Ref(R("team/one:v1"))})).ok());
  auto second = client->PushImage(Push(img, {Ref(R("team/two:v1"))}));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->stats.mounted, 3);
  EXPECT_EQ(second->stats.uploaded, 0);
  EXPECT_EQ(registry_->Count("PUT", "^/v2/team/two/blobs/uploads/"), 0);
  EXPECT_EQ(registry_->Count("PATCH", "^/v2/team/two/blobs/uploads/"), 0);
  EXPECT_EQ(registry_->Count("POST", "^/v2/team/two/blobs/uploads/", 201), 3);
}

TEST_F(RegistryTest, MountSourceHintWorksForAFreshClient) {
  StartRegistry();
  TestImage img = MakeImage(5, {256 << 10});
  ASSERT_TRUE(Client()->PushImage(Push(img, {Ref(R("base/img:1"))})).ok());
  // A new client knows nothing; the request says where the blobs live (e.g. the base image).
  PushRequest req = Push(img, {Ref(R("derived/img:1"))});
  for (const auto& d : img.layers) req.mount_sources[d.digest].push_back(Ref(R("base/img")));
  req.mount_sources[img.config.digest].push_back(Ref(R("base/img")));
  auto pushed = Client()->PushImage(req);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->stats.mounted, 2);
  EXPECT_EQ(registry_->Count("PUT", "^/v2/derived/img/blobs/uploads/"), 0);
}

TEST_F(RegistryTest, SeveralNamesUploadEachBlobOnceAndTagEveryName) {
  StartRegistry();
  TestImage img = MakeImage(6, {300 << 10, 200 << 10});
  auto client = Client();
  auto pushed = client->PushImage(
      Push(img, {Ref(R("a/x:1")), Ref(R("b/y:2")), Ref(StrCat(R("a/x@"), img.digest.str()))}));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(registry_->Count("PUT", "/blobs/uploads/"), 3);  // config + 2 layers, once
  EXPECT_EQ(pushed->stats.uploaded, 3);
  EXPECT_EQ(pushed->stats.mounted, 3);
  for (const char* name : {"a/x:1", "b/y:2"}) {
    auto m = client->FetchManifest(Ref(R(name)));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->digest, img.digest);
  }
  EXPECT_EQ(registry_->Count("PUT", StrCat("^/v2/a/x/manifests/", img.digest.str())), 1);
}

TEST_F(RegistryTest, DifferentRegistriesInOnePush) {
  StartRegistry();
  auto other = LocalRegistry::Start();
  ASSERT_TRUE(other.ok()) << other.status();
  TestImage img = MakeImage(7, {128 << 10});
  auto pushed = Client()->PushImage(
      Push(img, {Ref(R("app:1")), Ref(StrCat((*other)->host(), "/mirror/app:1"))}));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->stats.uploaded, 4);
  EXPECT_EQ((*other)->Count("PUT", "^/v2/mirror/app/manifests/1$", 201), 1);
  EXPECT_EQ(registry_->Count("PUT", "^/v2/app/manifests/1$", 201), 1);
}

TEST_F(RegistryTest, DigestTargetMustMatchTheManifest) {
  StartRegistry();
  TestImage img = MakeImage(8, {1000});
  auto st =
      Client()->PushImage(Push(img, {Ref(StrCat(R("app@"), Digest::Sha256Of("other").str()))}));
  EXPECT_TRUE(absl::IsInvalidArgument(st.status())) << st.status();
}

// ---------------------------------------------------------------------------------------------
// Indexes, Copy, mirrors.

TEST_F(RegistryTest, IndexResolvesByPlatformAndCopiesWhole) {
  StartRegistry();
  TestImage amd = MakeImage(10, {64 << 10}, "amd64");
  TestImage arm = MakeImage(11, {64 << 10}, "arm64");
  FallbackBlobProvider both(amd.blobs.get(), arm.blobs.get());
  oci::Index index;
  index.media_type = oci::kMediaTypeImageIndex;
  for (const TestImage* t : {&amd, &arm}) {
    oci::Descriptor d;
    d.media_type = oci::kMediaTypeImageManifest;
    d.digest = t->digest;
    d.size = static_cast<int64_t>(t->manifest.bytes.size());
    oci::Platform p;
    p.os = "linux";
    p.architecture = t == &amd ? "amd64" : "arm64";
    d.platform = p;
    index.manifests.push_back(d);
  }
  PushRequest req;
  req.targets = {Ref(R("multi:1"))};
  req.manifest = {oci::EncodeIndex(index), oci::kMediaTypeImageIndex};
  req.children = {amd.manifest, arm.manifest};
  req.provider = &both;
  auto client = Client();
  auto pushed = client->PushImage(req);
  ASSERT_TRUE(pushed.ok()) << pushed.status();

  auto arm64 = oci::ParsePlatform("linux/arm64/v8");
  ASSERT_TRUE(arm64.ok());
  auto r = client->Resolve(Ref(R("multi:1")), *arm64);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->digest, arm.digest);
  EXPECT_EQ(r->config, arm.config_bytes);
  ASSERT_TRUE(r->index.has_value());
  EXPECT_EQ(r->index->digest, pushed->digest);

  auto s390 = oci::ParsePlatform("linux/s390x");
  auto none = client->Resolve(Ref(R("multi:1")), *s390);
  EXPECT_TRUE(absl::IsNotFound(none.status())) << none.status();
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("linux/s390x"));

  auto copied = client->Copy(Ref(R("multi:1")), Ref(R("copy/multi:1")), std::nullopt);
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(copied->digest, pushed->digest);
  EXPECT_EQ(copied->stats.uploaded, 0);  // same registry: everything mounted
  auto fetched = client->FetchManifest(Ref(R("copy/multi:1")));
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(fetched->bytes, req.manifest.bytes);
  int rc = 0;
  std::string raw =
      RunShell(StrCat("skopeo inspect --raw --tls-verify=false docker://", R("copy/multi:1")), &rc);
  EXPECT_EQ(rc, 0) << raw;
}

TEST_F(RegistryTest, CopyAcrossRegistriesStreamsOnePlatform) {
  StartRegistry();
  auto other = LocalRegistry::Start();
  ASSERT_TRUE(other.ok()) << other.status();
  TestImage img = MakeImage(12, {3 << 20, 100 << 10});
  auto client = Client();
  ASSERT_TRUE(client->PushImage(Push(img, {Ref(R("src:1"))})).ok());
  auto amd64 = oci::ParsePlatform("linux/amd64");
  auto copied = client->Copy(Ref(R("src:1")), Ref(StrCat((*other)->host(), "/dst:1")), *amd64);
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(copied->digest, img.digest);
  EXPECT_EQ(copied->stats.uploaded, 3);
  StringBlobWriter w;
  ASSERT_TRUE(client->PullBlob(Ref(StrCat((*other)->host(), "/dst")), img.layers[0], w).ok());
  EXPECT_TRUE(w.data() == img.layer_data[0]);
}

TEST_F(RegistryTest, CopyWithinARegistryThatRefusesMountsStreamsUnderOneSlot) {
  StartRegistry();
  TestImage img = MakeImage(14, {1 << 20, 200 << 10});
  ASSERT_TRUE(Client()->PushImage(Push(img, {Ref(R("src:1"))})).ok());
  auto proxy = FaultProxy::Start(registry_->host(), {{.method = "POST",
                                                      .query = "mount=",
                                                      .nth = 1,
                                                      .count = 1000,
                                                      .action = "status",
                                                      .status = 403}});
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  RegistryOptions o = TestOptions();
  o.max_concurrency_per_registry = 1;  // the upload holds the only slot while it downloads
  auto client = Client(o);
  const std::string host = (*proxy)->host();
  auto copied =
      client->Copy(Ref(StrCat(host, "/src:1")), Ref(StrCat(host, "/dst:1")), std::nullopt);
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(copied->stats.uploaded, 3);
  EXPECT_EQ(CountProxy(**proxy, "POST", "/v2/dst/blobs/uploads/"), 3 + 3);  // refused + started
}

TEST_F(RegistryTest, PullsGoThroughAMirrorFirst) {
  StartRegistry();
  TestImage img = MakeImage(13, {10 << 10});
  ASSERT_TRUE(Client()->PushImage(Push(img, {Ref(R("app:1"))})).ok());
  RegistryOptions o = TestOptions();
  o.hosts["mirrored.invalid"].mirrors = {StrCat("http://", registry_->host())};
  o.retry.max_attempts = 1;
  auto client = Client(o);
  auto r = client->Resolve(Ref("mirrored.invalid/app:1"), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->digest, img.digest);
  EXPECT_EQ(client->EndpointFor("docker.io"), "https://registry-1.docker.io");
  EXPECT_EQ(client->EndpointFor("127.0.0.1:5000"), "http://127.0.0.1:5000");
  EXPECT_EQ(client->EndpointFor("ghcr.io"), "https://ghcr.io");
}

TEST_F(RegistryTest, TlsIsVerifiedUnlessTheHostIsMarkedInsecure) {
  LocalRegistry::Options lo;
  lo.tls = true;
  StartRegistry(lo);
  TestImage img = MakeImage(15, {10 << 10});
  RegistryOptions o = TestOptions();
  o.hosts[registry_->host()].plain_http = false;
  auto refused = Client(o)->PushImage(Push(img, {Ref(R("app:1"))}));
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("https://"));
  EXPECT_TRUE(clock_.sleeps().empty()) << "a certificate error is not retried";
  // Trusting the registry's own CA works...
  auto ca = ReadFileToString(registry_->tls_cert_path());
  ASSERT_TRUE(ca.ok());
  o.hosts[registry_->host()].ca_pem = *ca;
  auto trusted = Client(o)->PushImage(Push(img, {Ref(R("app:0"))}));
  ASSERT_TRUE(trusted.ok()) << trusted.status();
  // ...and so does skipping verification for this host only.
  o.hosts[registry_->host()].ca_pem.clear();
  o.hosts[registry_->host()].insecure_skip_verify = true;
  auto pushed = Client(o)->PushImage(Push(img, {Ref(R("app:1"))}));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  int rc = 0;
  std::string inspect =
      RunShell(StrCat("skopeo inspect --tls-verify=false docker://", R("app:1")), &rc);
  EXPECT_EQ(rc, 0) << inspect;
}

// ---------------------------------------------------------------------------------------------
// Auth.

TEST_F(RegistryTest, BasicAuthPushAndPull) {
  LocalRegistry::Options o;
  o.auth = LocalRegistry::Auth::kBasic;
  StartRegistry(o);
  auto creds = std::make_shared<StaticCredentials>();
  creds->Set(registry_->host(), Credential{o.user, o.password, "", ""});
  auto client = Client(TestOptions(), creds);
  TestImage img = MakeImage(20, {64 << 10});
  auto pushed = client->PushImage(Push(img, {Ref(R("app:1"))}));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  auto r = client->Resolve(Ref(R("app:1")), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->digest, img.digest);
}

TEST_F(RegistryTest, BasicAuthWrongPasswordIsUnauthenticatedWithoutThePassword) {
  LocalRegistry::Options o;
  o.auth = LocalRegistry::Auth::kBasic;
  StartRegistry(o);
  const std::string wrong = "wrong-password-5f2a9c";
  CallOptions call;
  auto creds = std::make_shared<StaticCredentials>();
  creds->Set(registry_->host(), Credential{o.user, wrong, "", ""});
  call.credentials = creds;
  TestImage img = MakeImage(21, {1000});
  auto pushed = Client()->PushImage(Push(img, {Ref(R("app:1"))}), call);
  ASSERT_FALSE(pushed.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(pushed.status())) << pushed.status();
  EXPECT_THAT(std::string(pushed.status().message()), HasSubstr("401"));
  EXPECT_THAT(std::string(pushed.status().message()), HasSubstr("refused"));
  ExpectNoSecret(pushed.status(), wrong);
  ExpectNoSecret(pushed.status(), absl::Base64Escape(StrCat(o.user, ":", wrong)));
  // No credentials at all says so.
  auto anon = Client()->Resolve(Ref(R("app:1")), std::nullopt);
  EXPECT_TRUE(absl::IsUnauthenticated(anon.status())) << anon.status();
  EXPECT_THAT(std::string(anon.status().message()), HasSubstr("no credentials"));
}

TEST_F(RegistryTest, TokenAuthAsksOnceForEveryScopeOfThePush) {
  LocalRegistry::Options o;
  o.auth = LocalRegistry::Auth::kToken;
  StartRegistry(o);
  auto creds = std::make_shared<StaticCredentials>();
  creds->Set(registry_->host(), Credential{o.user, o.password, "", ""});
  TestImage img = MakeImage(22, {64 << 10});
  ASSERT_TRUE(Client(TestOptions(), creds)->PushImage(Push(img, {Ref(R("base/img:1"))})).ok());

  PushRequest req = Push(img, {Ref(R("app/one:1")), Ref(R("app/two:1"))});
  for (const auto& d : img.layers) req.mount_sources[d.digest].push_back(Ref(R("base/img")));
  req.mount_sources[img.config.digest].push_back(Ref(R("base/img")));
  auto client = Client(TestOptions(), creds);
  auto pushed = client->PushImage(req);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->stats.uploaded, 0);  // everything mounted from base/img

  bool combined = false;
  for (const auto& r : registry_->token_issuer()->Requests()) {
    std::set<std::string> scopes;
    for (const auto& s : r["scopes"]) scopes.insert(s.get<std::string>());
    if (scopes.count("repository:app/one:pull,push") &&
        scopes.count("repository:app/two:pull,push") && scopes.count("repository:base/img:pull")) {
      combined = true;
      EXPECT_EQ(r["outcome"], "granted");
    }
  }
  EXPECT_TRUE(combined) << "one token request should carry every scope";
  // The Bearer token must not be re-fetched for every request.
  EXPECT_LE(registry_->token_issuer()->Requests().size(), 4u);
}

TEST_F(RegistryTest, TokenAuthWrongPasswordIsUnauthenticatedWithoutThePassword) {
  LocalRegistry::Options o;
  o.auth = LocalRegistry::Auth::kToken;
  StartRegistry(o);
  const std::string wrong = "wrong-token-password-77ab";
  auto creds = std::make_shared<StaticCredentials>();
  creds->Set(registry_->host(), Credential{o.user, wrong, "", ""});
  TestImage img = MakeImage(23, {1000});
  auto pushed = Client(TestOptions(), creds)->PushImage(Push(img, {Ref(R("app:1"))}));
  ASSERT_FALSE(pushed.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(pushed.status())) << pushed.status();
  EXPECT_THAT(std::string(pushed.status().message()), HasSubstr("UNAUTHORIZED"));
  EXPECT_THAT(std::string(pushed.status().message()), HasSubstr("token"));
  ExpectNoSecret(pushed.status(), wrong);
  // Anonymous users get no push rights: the registry's 401 after re-authenticating.
  auto anon = Client()->PushImage(Push(img, {Ref(R("app:1"))}));
  EXPECT_TRUE(absl::IsUnauthenticated(anon.status())) << anon.status();
}

TEST_F(RegistryTest, AcrStyleRefreshTokenIsExchangedAtTheRealm) {
  LocalRegistry::Options o;
  o.auth = LocalRegistry::Auth::kToken;
  o.refresh_tokens = {"acr-refresh-token-0123456789"};
  StartRegistry(o);
  auto creds = std::make_shared<StaticCredentials>();
  creds->Set(registry_->host(), Credential{kAcrRefreshTokenUser, o.refresh_tokens[0], "", ""});
  CallOptions call;
  call.credentials = creds;
  TestImage img = MakeImage(24, {2000});
  auto pushed = Client()->PushImage(Push(img, {Ref(R("app:1"))}), call);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  auto reqs = registry_->token_issuer()->Requests();
  ASSERT_FALSE(reqs.empty());
  for (const auto& r : reqs) {
    EXPECT_EQ(r["method"], "POST");
    EXPECT_EQ(r["grant"], "refresh_token");
    EXPECT_EQ(r["service"], "kiln-test-registry");
  }
  // A wrong refresh token: refused, and not echoed.
  auto bad = std::make_shared<StaticCredentials>();
  bad->Set(registry_->host(),
           Credential{kAcrRefreshTokenUser, "acr-bad-refresh-token-xyz", "", ""});
  call.credentials = bad;
  auto refused = Client()->PushImage(Push(img, {Ref(R("app:2"))}), call);
  EXPECT_TRUE(absl::IsUnauthenticated(refused.status())) << refused.status();
  ExpectNoSecret(refused.status(), "acr-bad-refresh-token-xyz");
}

TEST_F(RegistryTest, DockerConfigIdentityTokenAndCredentialHelper) {
  LocalRegistry::Options o;
  o.auth = LocalRegistry::Auth::kToken;
  o.refresh_tokens = {"identity-token-from-docker-login"};
  StartRegistry(o);
  TestImage img = MakeImage(25, {2000});
  {
    auto config =
        ParseDockerConfig(StrCat(R"({"auths": {")", registry_->host(), R"(": {"identitytoken": ")",
                                 o.refresh_tokens[0], R"("}}})"));
    ASSERT_TRUE(config.ok()) << config.status();
    auto creds = std::make_shared<DockerConfigCredentials>(*config, nullptr);
    auto pushed = Client(TestOptions(), creds)->PushImage(Push(img, {Ref(R("app:1"))}));
    ASSERT_TRUE(pushed.ok()) << pushed.status();
    EXPECT_EQ(registry_->token_issuer()->Requests().back()["grant"], "refresh_token");
  }
  {
    auto dir = TempDir::Create("kiln-helper-");
    ASSERT_TRUE(dir.ok());
    ASSERT_TRUE(WriteFileAtomic(StrCat(dir->path(), "/docker-credential-kilnint"),
                                StrCat("#!/bin/sh\nread server\n"
                                       "[ \"$server\" = \"",
                                       registry_->host(),
                                       "\" ] || exit 1\n"
                                       "echo '{\"Username\":\"",
                                       o.user, "\",\"Secret\":\"", o.password, "\"}'\n"),
                                0755)
                    .ok());
    auto config =
        ParseDockerConfig(StrCat(R"({"credHelpers": {")", registry_->host(), R"(": "kilnint"}})"));
    ASSERT_TRUE(config.ok());
    auto creds = std::make_shared<DockerConfigCredentials>(
        *config, std::shared_ptr<CredentialHelperRunner>(NewExecHelperRunner(dir->path())));
    auto pushed = Client(TestOptions(), creds)->PushImage(Push(img, {Ref(R("app:2"))}));
    ASSERT_TRUE(pushed.ok()) << pushed.status();
    auto last = registry_->token_issuer()->Requests().back();
    EXPECT_EQ(last["grant"], "basic");
    EXPECT_EQ(last["user"], o.user);
  }
}

// A provider whose reads move the (manual) clock on, so a long upload outlives its token.
class SlowProvider : public BlobProvider {
 public:
  SlowProvider(BlobProvider& inner, ManualClock& clock) : inner_(inner), clock_(clock) {}
  absl::StatusOr<std::unique_ptr<BlobReader>> Open(const oci::Descriptor& d,
                                                   uint64_t offset) override {
    KILN_ASSIGN_OR_RETURN(auto r, inner_.Open(d, offset));
    return std::unique_ptr<BlobReader>(new Reader(std::move(r), clock_));
  }

 private:
  class Reader : public BlobReader {
   public:
    Reader(std::unique_ptr<BlobReader> r, ManualClock& c) : r_(std::move(r)), c_(c) {}
    absl::StatusOr<size_t> Read(char* buf, size_t n) override {
      c_.Advance(absl::Seconds(10));
      return r_->Read(buf, n);
    }

   private:
    std::unique_ptr<BlobReader> r_;
    ManualClock& c_;
  };
  BlobProvider& inner_;
  ManualClock& clock_;
};

TEST_F(RegistryTest, TokenIsRefreshedBeforeExpiryDuringALongChunkedUpload) {
  LocalRegistry::Options o;
  o.auth = LocalRegistry::Auth::kToken;
  o.token_expires_in = 60;
  StartRegistry(o);
  RegistryOptions opts = TestOptions();
  opts.hosts[registry_->host()].chunk_size = 64 << 10;
  auto creds = std::make_shared<StaticCredentials>();
  creds->Set(registry_->host(), Credential{o.user, o.password, "", ""});
  auto client = Client(opts, creds);
  TestImage img = MakeImage(26, {1 << 20});  // 16 chunks, 10 s of (manual) time each
  SlowProvider slow(*img.blobs, clock_);
  PushRequest req = Push(img, {Ref(R("app:1"))});
  req.provider = &slow;
  auto pushed = client->PushImage(req);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  // 160 s of upload with 60 s tokens: refreshed ahead of time at least twice, never by a 401.
  EXPECT_GE(registry_->token_issuer()->Requests().size(), 3u);
  EXPECT_EQ(registry_->Count("PATCH", "/blobs/uploads/", 401), 0);
}

TEST_F(RegistryTest, A401MidUploadReauthenticatesOnce) {
  LocalRegistry::Options o;
  o.auth = LocalRegistry::Auth::kToken;
  StartRegistry(o);
  auto proxy = FaultProxy::Start(registry_->host(), {{.method = "PATCH",
                                                      .path = "/blobs/uploads/",
                                                      .nth = 2,
                                                      .action = "status",
                                                      .status = 401}});
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  RegistryOptions opts = TestOptions();
  opts.hosts[(*proxy)->host()].chunk_size = 64 << 10;
  auto creds = std::make_shared<StaticCredentials>();
  creds->Set((*proxy)->host(), Credential{o.user, o.password, "", ""});
  TestImage img = MakeImage(27, {256 << 10});
  auto pushed =
      Client(opts, creds)->PushImage(Push(img, {Ref(StrCat((*proxy)->host(), "/app:1"))}));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  // One fetch for the push, one more after the refused PATCH.
  EXPECT_EQ(registry_->token_issuer()->Requests().size(), 2u);
  EXPECT_EQ(CountProxy(**proxy, "PATCH", "/blobs/uploads/"), 4 + 1 + 1);  // layer, config, resend
}

// ---------------------------------------------------------------------------------------------
// Faults through the proxy.

class FaultTest : public RegistryTest {
 protected:
  // Pushes `img` through a proxy with `rules`; returns the push status.
  absl::StatusOr<PushResult> PushThrough(const TestImage& img,
                                         const std::vector<FaultProxy::Rule>& rules,
                                         uint64_t chunk_size = 0,
                                         RegistryOptions opts = TestOptions()) {
    auto proxy = FaultProxy::Start(registry_->host(), rules);
    if (!proxy.ok()) return proxy.status();
    proxy_ = std::move(*proxy);
    opts.hosts[proxy_->host()].chunk_size = chunk_size;
    client_ = Client(opts);
    return client_->PushImage(Push(img, {Ref(StrCat(proxy_->host(), "/app:1"))}));
  }

  // No manifest PUT before the last blob upload finished.
  void ExpectManifestAfterBlobs() {
    int last_blob = 0, first_manifest = 1 << 30;
    for (const auto& r : proxy_->Requests()) {
      if (absl::StrContains(r.path, "/manifests/") && r.method == "PUT") {
        first_manifest = std::min(first_manifest, r.n);
      } else if (absl::StrContains(r.path, "/blobs/")) {
        last_blob = std::max(last_blob, r.n);
      }
    }
    EXPECT_LT(last_blob, first_manifest);
  }

  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<Registry> client_;
};

TEST_F(FaultTest, DroppedConnectionDuringUploadCostsOneMoreUpload) {
  StartRegistry();
  TestImage img = MakeImage(30, {1 << 20});
  auto pushed = PushThrough(
      img, {{.method = "PUT", .path = "/blobs/uploads/", .nth = 1, .action = "drop_mid_body"}});
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(CountProxy(*proxy_, "PUT", "/blobs/uploads/"), 2 + 1);
  ExpectManifestAfterBlobs();
}

TEST_F(FaultTest, LostAnswerToTheFinalPutIsRecognized) {
  StartRegistry();
  TestImage img = MakeImage(31, {200 << 10});
  auto pushed = PushThrough(
      img, {{.method = "PUT", .path = "/blobs/uploads/", .nth = 1, .action = "drop_after"}});
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  // The registry had the blob: found by HEAD, no new upload session.  (libcurl itself may
  // resend the PUT once on a fresh connection, which the registry refuses: 404.)
  EXPECT_EQ(CountProxy(*proxy_, "POST", "/blobs/uploads/"), 2);
  EXPECT_LE(CountProxy(*proxy_, "PUT", "/blobs/uploads/"), 3);
}

TEST_F(FaultTest, ServerErrorsAndThrottlingAreRetriedWithRetryAfter) {
  StartRegistry();
  TestImage img = MakeImage(32, {100 << 10});
  auto pushed = PushThrough(
      img, {{.method = "POST",
             .path = "/blobs/uploads/",
             .nth = 1,
             .count = 2,
             .action = "status",
             .status = 500},
            {.method = "HEAD",
             .path = "/blobs/",
             .nth = 1,
             .action = "status",
             .status = 429,
             .retry_after = "1"},
            {.method = "PUT", .path = "/manifests/", .nth = 1, .action = "status", .status = 503}});
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  auto sleeps = clock_.sleeps();
  EXPECT_THAT(sleeps, ::testing::Contains(absl::Seconds(1)));  // Retry-After honoured
  EXPECT_GE(sleeps.size(), 4u);
  EXPECT_EQ(CountProxy(*proxy_, "PUT", "/manifests/"), 2);
  ExpectManifestAfterBlobs();
}

TEST_F(FaultTest, RangeErrorOnAChunkResumesFromTheUploadStatus) {
  StartRegistry();
  TestImage img = MakeImage(33, {1 << 20});
  auto pushed = PushThrough(
      img,
      {{.method = "PATCH", .path = "/blobs/uploads/", .nth = 3, .action = "status", .status = 416}},
      256 << 10);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  // 4 chunks of the layer + 1 of the config + the refused one sent again.
  EXPECT_EQ(CountProxy(*proxy_, "PATCH", "/blobs/uploads/"), 4 + 1 + 1);
  EXPECT_EQ(CountProxy(*proxy_, "GET", "/blobs/uploads/"), 1);  // the status query
  ExpectManifestAfterBlobs();
}

TEST_F(FaultTest, LostChunkAnswersCostAtMostOneMoreUpload) {
  StartRegistry();
  TestImage img = MakeImage(34, {1 << 20});
  auto pushed =
      PushThrough(img,
                  {{.method = "PATCH", .path = "/blobs/uploads/", .nth = 2, .action = "drop_after"},
                   {.method = "PATCH", .path = "/blobs/uploads/", .nth = 4, .action = "drop"}},
                  256 << 10);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  // A registry that applied a chunk whose answer got lost has moved on from the Location the
  // client holds; distribution then cancels the session when asked for its status, so the
  // blob starts over: one more upload, not more.
  EXPECT_LE(CountProxy(*proxy_, "POST", "/blobs/uploads/"), 2 + 1);
  EXPECT_LE(CountProxy(*proxy_, "PATCH", "/blobs/uploads/"), 2 * 4 + 1 + 2);
  StringBlobWriter w;
  ASSERT_TRUE(client_->PullBlob(Ref(StrCat(proxy_->host(), "/app")), img.layers[0], w).ok());
  EXPECT_TRUE(w.data() == img.layer_data[0]);
}

// libcurl judges speed over a window of a few seconds, so the stall is noticed after up to
// ~6 s plus low_speed_time; the test asserts the outcome, not the timing.
TEST_F(FaultTest, StalledRequestTimesOutAndIsRetried) {
  StartRegistry();
  TestImage img = MakeImage(35, {300 << 10});
  RegistryOptions opts = TestOptions();
  opts.connection.low_speed_time = absl::Seconds(1);
  opts.connection.low_speed_limit = 1;
  auto pushed = PushThrough(img,
                            {{.method = "PUT",
                              .path = "/blobs/uploads/",
                              .nth = 1,
                              .action = "stall",
                              .stall_seconds = 20}},
                            0, opts);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(CountProxy(*proxy_, "PUT", "/blobs/uploads/"), 2 + 1);
}

TEST_F(FaultTest, DeniedIsNotRetriedAndNoManifestGoesUp) {
  StartRegistry();
  TestImage img = MakeImage(36, {1000});
  auto pushed = PushThrough(img, {{.method = "POST",
                                   .path = "/blobs/uploads/",
                                   .nth = 1,
                                   .count = 100,
                                   .action = "status",
                                   .status = 403}});
  ASSERT_FALSE(pushed.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(pushed.status())) << pushed.status();
  EXPECT_THAT(std::string(pushed.status().message()), HasSubstr("POST"));
  EXPECT_EQ(CountProxy(*proxy_, "POST", "/blobs/uploads/"), 2);  // once per blob, no retries
  EXPECT_EQ(CountProxy(*proxy_, "PUT", "/manifests/"), 0);
}

TEST_F(FaultTest, PersistentFailureOfOneBlobKeepsTheManifestBack) {
  StartRegistry();
  TestImage img = MakeImage(37, {1000, 2000});
  auto pushed = PushThrough(img, {{.method = "HEAD",
                                   .path = img.layers[1].digest.str(),
                                   .nth = 1,
                                   .count = 1000,
                                   .action = "status",
                                   .status = 500}});
  ASSERT_FALSE(pushed.ok());
  EXPECT_TRUE(absl::IsUnavailable(pushed.status())) << pushed.status();
  EXPECT_EQ(CountProxy(*proxy_, "HEAD", img.layers[1].digest.str()), 5);  // max_attempts
  EXPECT_EQ(CountProxy(*proxy_, "PUT", "/manifests/"), 0);
}

TEST_F(FaultTest, CorruptedDownloadIsDataLossAndNotCommitted) {
  StartRegistry();
  TestImage img = MakeImage(38, {64 << 10});
  ASSERT_TRUE(Client()->PushImage(Push(img, {Ref(R("app:1"))})).ok());
  auto proxy = FaultProxy::Start(registry_->host(), {{.method = "GET",
                                                      .path = img.layers[0].digest.str(),
                                                      .nth = 1,
                                                      .count = 100,
                                                      .action = "corrupt"}});
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  StringBlobWriter w;
  absl::Status st = Client()->PullBlob(Ref(StrCat((*proxy)->host(), "/app")), img.layers[0], w);
  EXPECT_TRUE(absl::IsDataLoss(st)) << st;
  EXPECT_FALSE(w.committed());
  EXPECT_EQ(CountProxy(**proxy, "GET", img.layers[0].digest.str()), 1);  // not retried
}

TEST_F(FaultTest, TruncatedDownloadResumesWithARangeRequest) {
  StartRegistry();
  TestImage img = MakeImage(39, {2 << 20});
  ASSERT_TRUE(Client()->PushImage(Push(img, {Ref(R("app:1"))})).ok());
  auto proxy = FaultProxy::Start(
      registry_->host(),
      {{.method = "GET", .path = img.layers[0].digest.str(), .nth = 1, .action = "truncate"}});
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  StringBlobWriter w;
  absl::Status st = Client()->PullBlob(Ref(StrCat((*proxy)->host(), "/app")), img.layers[0], w);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(w.committed());
  EXPECT_TRUE(w.data() == img.layer_data[0]);
  EXPECT_EQ(CountProxy(**proxy, "GET", img.layers[0].digest.str()), 2);
  EXPECT_EQ(registry_->Count("GET", img.layers[0].digest.str(), 206), 1);
}

TEST_F(FaultTest, CorruptedManifestByDigestIsDataLoss) {
  StartRegistry();
  TestImage img = MakeImage(40, {1000});
  ASSERT_TRUE(Client()->PushImage(Push(img, {Ref(R("app:1"))})).ok());
  auto proxy = FaultProxy::Start(
      registry_->host(),
      {{.method = "GET", .path = "/manifests/", .nth = 1, .count = 100, .action = "corrupt"}});
  ASSERT_TRUE(proxy.ok());
  auto m = Client()->FetchManifest(Ref(StrCat((*proxy)->host(), "/app@", img.digest.str())));
  EXPECT_TRUE(absl::IsDataLoss(m.status())) << m.status();
}

// ---------------------------------------------------------------------------------------------
// Streams, deduplication, cancellation.

// Produces `data` in reads of varying size, like a compressor would.
class ChoppyReader : public BlobReader {
 public:
  explicit ChoppyReader(std::string_view data) : data_(data) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t take = std::min({n, data_.size(), static_cast<size_t>(1 + (step_++ * 7919) % 100000)});
    std::memcpy(buf, data_.data(), take);
    data_.remove_prefix(take);
    return take;
  }

 private:
  std::string_view data_;
  size_t step_ = 0;
};

TEST_F(FaultTest, StreamedUploadComputesTheDigestAndSurvivesADroppedChunk) {
  StartRegistry();
  const std::string data = RandomBytes((3 << 20) + 12345, 41);
  auto proxy = FaultProxy::Start(
      registry_->host(),
      {{.method = "PATCH", .path = "/blobs/uploads/", .nth = 2, .action = "drop_mid_body"}});
  ASSERT_TRUE(proxy.ok());
  RegistryOptions opts = TestOptions();
  opts.stream_chunk_size = 1 << 20;
  auto client = Client(opts);
  ChoppyReader producer(data);
  auto desc =
      client->PushStream(Ref(StrCat((*proxy)->host(), "/app")), producer, oci::kMediaTypeLayerGzip);
  ASSERT_TRUE(desc.ok()) << desc.status();
  EXPECT_EQ(desc->digest, Digest::Sha256Of(data));
  EXPECT_EQ(desc->size, static_cast<int64_t>(data.size()));
  EXPECT_EQ(desc->media_type, oci::kMediaTypeLayerGzip);
  EXPECT_EQ(CountProxy(**proxy, "PATCH", "/blobs/uploads/"), 4 + 1);
  auto fetched = client->FetchBlob(Ref(R("app")), *desc);
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_TRUE(*fetched == data);
  // The same stream again: the blob exists already, which is fine.
  ChoppyReader again(data);
  auto second = client->PushStream(Ref(R("app")), again, oci::kMediaTypeLayerGzip);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->digest, desc->digest);
  // Empty streams are blobs too.
  ChoppyReader empty("");
  auto nothing = client->PushStream(Ref(R("app")), empty, oci::kMediaTypeLayer);
  ASSERT_TRUE(nothing.ok()) << nothing.status();
  EXPECT_EQ(nothing->digest, Digest::Sha256Of(""));
}

TEST_F(RegistryTest, ConcurrentPushesShareALayerAndUploadItOnce) {
  StartRegistry();
  const std::string shared = RandomBytes(2 << 20, 50);
  TestImage a = MakeImage(51, {100 << 10}, "amd64", {shared});
  TestImage b = MakeImage(52, {100 << 10}, "amd64", {shared});
  auto client = Client();
  absl::StatusOr<PushResult> ra, rb;
  std::thread ta([&] { ra = client->PushImage(Push(a, {Ref(R("one:1"))})); });
  std::thread tb([&] { rb = client->PushImage(Push(b, {Ref(R("two:1"))})); });
  ta.join();
  tb.join();
  ASSERT_TRUE(ra.ok()) << ra.status();
  ASSERT_TRUE(rb.ok()) << rb.status();
  // 2 configs + 2 own layers + the shared layer once.
  EXPECT_EQ(registry_->Count("PUT", "/blobs/uploads/"), 5);
  EXPECT_EQ(ra->stats.uploaded + rb->stats.uploaded, 5);
  EXPECT_EQ(ra->stats.mounted + rb->stats.mounted + ra->stats.deduped + rb->stats.deduped, 1);
}

// A content store in memory: what the engine's content store does for a pull.
class MemoryStore : public BlobSink {
 public:
  absl::StatusOr<std::unique_ptr<BlobWriter>> Writer(const oci::Descriptor& desc) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (blobs_.count(desc.digest)) return nullptr;
    return std::unique_ptr<BlobWriter>(new Ingest(*this));
  }
  std::string Get(const Digest& d) {
    std::lock_guard<std::mutex> lock(mu_);
    return blobs_[d];
  }

 private:
  class Ingest : public StringBlobWriter {
   public:
    explicit Ingest(MemoryStore& store) : store_(store) {}
    absl::Status Commit(const oci::Descriptor& desc) override {
      std::lock_guard<std::mutex> lock(store_.mu_);
      store_.blobs_[desc.digest] = data();
      return absl::OkStatus();
    }

   private:
    MemoryStore& store_;
  };
  std::mutex mu_;
  std::map<Digest, std::string> blobs_;
};

TEST_F(RegistryTest, ConcurrentPullsOfOneBlobDownloadOnce) {
  StartRegistry();
  TestImage img = MakeImage(53, {4 << 20});
  auto client = Client();
  ASSERT_TRUE(client->PushImage(Push(img, {Ref(R("app:1"))})).ok());
  MemoryStore store;
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = client->PullBlob(Ref(R("app")), img.layers[0], store); });
  }
  for (auto& t : threads) t.join();
  for (const auto& st : results) EXPECT_TRUE(st.ok()) << st;
  EXPECT_TRUE(store.Get(img.layers[0].digest) == img.layer_data[0]);
  EXPECT_EQ(registry_->Count("GET", img.layers[0].digest.str()), 1);
}

TEST_F(FaultTest, CancellationInterruptsABackoffSleep) {
  StartRegistry();
  auto proxy = FaultProxy::Start(registry_->host(), {{.method = "POST",
                                                      .path = "/blobs/uploads/",
                                                      .nth = 1,
                                                      .count = 100,
                                                      .action = "status",
                                                      .status = 500}});
  ASSERT_TRUE(proxy.ok());
  RegistryOptions opts = TestOptions();
  opts.retry.initial_backoff = absl::Hours(1);  // only cancellation can end this wait
  opts.retry.max_backoff = absl::Hours(1);
  Registry client(opts, nullptr, nullptr, &RealClock());
  CancelSource cancel;
  std::thread canceller([&] {
    while (CountProxy(**proxy, "POST", "/blobs/uploads/") == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    cancel.Cancel("build cancelled by user");
  });
  CallOptions call;
  call.cancel = cancel.token();
  TestImage img = MakeImage(54, {1000});
  auto pushed = client.PushImage(Push(img, {Ref(StrCat((*proxy)->host(), "/app:1"))}), call);
  canceller.join();
  EXPECT_TRUE(absl::IsCancelled(pushed.status())) << pushed.status();
}

TEST_F(FaultTest, CancellationAbortsAStalledTransfer) {
  StartRegistry();
  TestImage img = MakeImage(55, {64 << 10});
  ASSERT_TRUE(Client()->PushImage(Push(img, {Ref(R("app:1"))})).ok());
  auto proxy = FaultProxy::Start(registry_->host(), {{.method = "GET",
                                                      .path = img.layers[0].digest.str(),
                                                      .nth = 1,
                                                      .action = "stall",
                                                      .stall_seconds = 60}});
  ASSERT_TRUE(proxy.ok());
  CancelSource cancel;
  std::thread canceller([&] {
    while (CountProxy(**proxy, "GET", img.layers[0].digest.str()) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    cancel.Cancel("stop");
  });
  CallOptions call;
  call.cancel = cancel.token();
  StringBlobWriter w;
  absl::Status st =
      Client()->PullBlob(Ref(StrCat((*proxy)->host(), "/app")), img.layers[0], w, call);
  canceller.join();
  EXPECT_TRUE(absl::IsCancelled(st)) << st;
  EXPECT_FALSE(w.committed());
}

}  // namespace
}  // namespace kiln::registry
