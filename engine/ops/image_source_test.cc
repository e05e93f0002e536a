// Image sources: import (umoci OCI layout, rootfs), resolution by name / digest / platform in
// each mode, unpack into chainID snapshots with layer records, and pulls from a real registry
// (docker-registry on loopback, pushed to with skopeo), including a corrupted pull.
#include "engine/ops/image_source.h"

#include <chrono>
#include <thread>

#include <sys/stat.h>

#include "engine/ops/image_resolver.h"
#include "engine/ops/source_op.h"
#include "engine/ops/source_op_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "llb/caps.h"
#include "registry/registry.h"
#include "snapshotter/image_import.h"

namespace kiln::engine {
namespace {

using source_testing::Child;
using source_testing::Read;
using source_testing::Sh;
using source_testing::Write;
using ::testing::HasSubstr;

std::string Arch() { return oci::HostPlatform().architecture; }

// A busybox OCI layout made by umoci: layer 1 the busybox rootfs, layer 2 adds /hello.
class BusyboxLayout {
 public:
  // One per test process, removed at exit.
  static BusyboxLayout* Get() {
    static BusyboxLayout layout;
    static const bool built = (layout.error = layout.Build(), true);
    (void)built;
    return &layout;
  }

  std::string dir;  // the layout
  std::string rootfs;
  std::string error;

 private:
  std::string Build() {
    if (Sh("command -v umoci && test -x /bin/busybox") != 0)
      return "needs umoci and busybox-static";
    auto tmp = TempDir::Create("kiln-image-layout-");
    if (!tmp.ok()) return tmp.status().ToString();
    base_ = std::move(*tmp);
    dir = base_.path() + "/layout";
    rootfs = base_.path() + "/rootfs";
    const std::string log = base_.path() + "/log";
    std::string cmd = StrCat(
        "set -e; mkdir -p ", rootfs, "/bin ", rootfs, "/etc ", rootfs, "/tmp; cp /bin/busybox ",
        rootfs, "/bin/busybox; ln -s busybox ", rootfs, "/bin/sh; ln -s busybox ", rootfs,
        "/bin/cat; echo 'root:x:0:0:root:/root:/bin/sh' > ", rootfs, "/etc/passwd; chmod 1777 ",
        rootfs, "/tmp; umoci init --layout ", dir, "; umoci new --image ", dir,
        ":latest; umoci insert --image ", dir, ":latest ", rootfs, " /; mkdir -p ", base_.path(),
        "/extra; echo hello > ", base_.path(), "/extra/hello; umoci insert --image ", dir,
        ":latest ", base_.path(), "/extra/hello /hello; umoci config --image ", dir,
        ":latest --config.cmd /bin/sh --config.env PATH=/bin --architecture ", Arch(),
        " --os linux");
    if (Sh(cmd, log) != 0) return "umoci failed: " + Read(log);
    return "";
  }
  TempDir base_;
};

class ImageSourceTest : public source_testing::WorkerTest {
 protected:
  void SetUp() override {
    WorkerTest::SetUp();
    if (IsSkipped()) return;
    layout_ = BusyboxLayout::Get();
    if (!layout_->error.empty()) GTEST_SKIP() << layout_->error;
  }

  ImportedImageInfo ImportBusybox(Worker& w, std::string_view name = "busybox:latest") {
    auto info = ImportOciLayoutImage(w, layout_->dir, name, "latest");
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : ImportedImageInfo();
  }

  std::unique_ptr<Op> NewOp(const std::string& ref, const std::map<std::string, std::string>& attrs,
                            registry::Registry* reg = nullptr) {
    auto op = NewSourceOp(source_testing::SourceOp("docker-image://" + ref, attrs), Env(reg));
    EXPECT_TRUE(op.ok()) << op.status();
    return op.ok() ? std::move(*op) : nullptr;
  }

  int CountSnapshots() {
    int n = 0;
    EXPECT_TRUE(worker_->snapshots()
                    .Walk([&](const snapshotter::SnapshotInfo&) {
                      ++n;
                      return absl::OkStatus();
                    })
                    .ok());
    return n;
  }

  BusyboxLayout* layout_ = nullptr;
};

TEST_F(ImageSourceTest, ImportNamesTheImageAndResolvesItLocally) {
  ImportedImageInfo info = ImportBusybox(*worker_);
  EXPECT_EQ(info.name, "docker.io/library/busybox:latest");
  auto record = worker_->images().Get("docker.io/library/busybox:latest");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->target.digest, info.image.manifest_digest);

  ImageResolver resolver(worker_.get(), nullptr);
  for (const char* text : {"busybox", "busybox:latest", "docker.io/library/busybox:latest"}) {
    auto r = resolver.Resolve(text, oci::HostPlatform(), ImageResolveMode::kLocal);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status();
    EXPECT_EQ(r->origin, ImageResolution::Origin::kImageStore);
    EXPECT_EQ(r->manifest_digest, info.image.manifest_digest);
    EXPECT_EQ(r->config_digest, info.image.config_digest);
    EXPECT_EQ(Digest::Sha256Of(r->config_bytes), r->config_digest);
    EXPECT_EQ(r->manifest.layers.size(), 2u);
    EXPECT_EQ(r->config.platform.architecture, Arch());
  }
  // `default` prefers the local name too, and needs no registry for it.
  auto d = resolver.Resolve("busybox", oci::HostPlatform(), ImageResolveMode::kDefault);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->origin, ImageResolution::Origin::kImageStore);
}

TEST_F(ImageSourceTest, DigestPinnedRefNeverNeedsTheRegistry) {
  ImportedImageInfo info = ImportBusybox(*worker_);
  ImageResolver resolver(worker_.get(), nullptr);
  // Another name, never imported, in pull mode and without any registry: content by digest.
  auto r = resolver.Resolve(StrCat("example.com/other/image@", info.image.manifest_digest.str()),
                            oci::HostPlatform(), ImageResolveMode::kPull);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->origin, ImageResolution::Origin::kContentStore);
  EXPECT_EQ(r->manifest_digest, info.image.manifest_digest);
}

TEST_F(ImageSourceTest, MissingImageIsNotFoundNamingRefAndMode) {
  ImageResolver resolver(worker_.get(), nullptr);
  auto local = resolver.Resolve("nothere:1", oci::HostPlatform(), ImageResolveMode::kLocal);
  EXPECT_TRUE(absl::IsNotFound(local.status())) << local.status();
  EXPECT_THAT(local.status().message(), HasSubstr("docker.io/library/nothere:1"));
  EXPECT_THAT(local.status().message(), HasSubstr("resolve mode local"));
  auto def = resolver.Resolve("nothere:1", oci::HostPlatform(), ImageResolveMode::kDefault);
  EXPECT_TRUE(absl::IsNotFound(def.status())) << def.status();
  EXPECT_THAT(def.status().message(), HasSubstr("resolve mode default"));
  EXPECT_THAT(def.status().message(), HasSubstr("no registry access"));
  auto pinned = resolver.Resolve(StrCat("nothere@sha256:", std::string(64, 'a')),
                                 oci::HostPlatform(), ImageResolveMode::kPull);
  EXPECT_TRUE(absl::IsNotFound(pinned.status())) << pinned.status();

  auto op = NewOp("docker.io/library/nothere:1", {{llb::kAttrImageResolveMode, "local"}});
  auto cm = op->GetCacheMap(OpContext());
  EXPECT_TRUE(absl::IsNotFound(cm.status())) << cm.status();
  EXPECT_THAT(cm.status().message(), HasSubstr("nothere:1"));
}

TEST_F(ImageSourceTest, IndexEntryIsPickedForThePlatform) {
  ImportedImageInfo info = ImportBusybox(*worker_);
  auto& store = worker_->content();
  // A second platform: an arm64 manifest with its own (layerless) config.
  oci::Image other_config;
  other_config.platform = {.architecture = Arch() == "arm64" ? "amd64" : "arm64", .os = "linux"};
  std::string other_arch = other_config.platform.architecture;
  std::string cfg = oci::EncodeImage(other_config);
  ASSERT_TRUE(snapshotter::WriteBlob(store, cfg).ok());
  oci::Manifest m;
  m.media_type = oci::kMediaTypeImageManifest;
  m.config = {.media_type = oci::kMediaTypeImageConfig,
              .digest = Digest::Sha256Of(cfg),
              .size = static_cast<int64_t>(cfg.size())};
  std::string other = oci::EncodeManifest(m);
  ASSERT_TRUE(snapshotter::WriteBlob(store, other).ok());
  oci::Index index;
  index.media_type = oci::kMediaTypeImageIndex;
  index.manifests.push_back({.media_type = oci::kMediaTypeImageManifest,
                             .digest = Digest::Sha256Of(other),
                             .size = static_cast<int64_t>(other.size()),
                             .platform = other_config.platform});
  index.manifests.push_back({.media_type = info.target.media_type,
                             .digest = info.target.digest,
                             .size = info.target.size,
                             .platform = oci::Platform{.architecture = Arch(), .os = "linux"}});
  std::string idx = oci::EncodeIndex(index);
  ASSERT_TRUE(snapshotter::WriteBlob(store, idx).ok());
  ASSERT_TRUE(worker_->images()
                  .Put("docker.io/library/multi:1", {.media_type = oci::kMediaTypeImageIndex,
                                                     .digest = Digest::Sha256Of(idx),
                                                     .size = static_cast<int64_t>(idx.size())})
                  .ok());

  ImageResolver resolver(worker_.get(), nullptr);
  auto host = resolver.Resolve("multi:1", oci::HostPlatform(), ImageResolveMode::kLocal);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->manifest_digest, info.image.manifest_digest);
  EXPECT_EQ(host->target.digest, Digest::Sha256Of(idx));
  auto arm = resolver.Resolve("multi:1", {.architecture = other_arch, .os = "linux"},
                              ImageResolveMode::kLocal);
  ASSERT_TRUE(arm.ok()) << arm.status();
  EXPECT_EQ(arm->manifest_digest, Digest::Sha256Of(other));
  EXPECT_EQ(arm->config.platform.architecture, other_arch);
  auto none = resolver.Resolve("multi:1", {.architecture = "s390x", .os = "linux"},
                               ImageResolveMode::kLocal);
  EXPECT_TRUE(absl::IsNotFound(none.status())) << none.status();
  EXPECT_THAT(none.status().message(), HasSubstr("linux/s390x"));

  // The op's key names the index (what the reference points at) and the platform.
  auto a = NewOp("docker.io/library/multi:1", {{llb::kAttrImageResolveMode, "local"}});
  auto cm = a->GetCacheMap(OpContext());
  ASSERT_TRUE(cm.ok()) << cm.status();
  auto b = NewSourceOp(source_testing::SourceOp("docker-image://docker.io/library/multi:1",
                                                {{llb::kAttrImageResolveMode, "local"}},
                                                {.architecture = other_arch, .os = "linux"}),
                       Env());
  ASSERT_TRUE(b.ok());
  auto cm2 = (*b)->GetCacheMap(OpContext());
  ASSERT_TRUE(cm2.ok()) << cm2.status();
  EXPECT_NE(cm->digest, cm2->digest);
  EXPECT_TRUE(cm2->alt_digests.empty());  // no layers, no chainID key
}

TEST_F(ImageSourceTest, ExecUnpacksLayersIntoChainSnapshotsWithLayerRecords) {
  ImportedImageInfo info = ImportBusybox(*worker_);
  auto op = NewOp("docker.io/library/busybox:latest", {});
  auto cm = op->GetCacheMap(OpContext());
  ASSERT_TRUE(cm.ok()) << cm.status();
  std::vector<Digest> chain = snapshotter::ChainIds(info.image.config.rootfs.diff_ids);
  ASSERT_EQ(chain.size(), 2u);
  ASSERT_EQ(cm->alt_digests.size(), 1u);
  EXPECT_EQ(cm->alt_digests[0], SourceCacheDigest(chain.back().str()));
  // Same image by digest: same key.
  auto pinned = NewOp(StrCat("docker.io/library/busybox@", info.image.manifest_digest.str()), {});
  auto cm_pinned = pinned->GetCacheMap(OpContext());
  ASSERT_TRUE(cm_pinned.ok());
  EXPECT_EQ(cm_pinned->digest, cm->digest);

  auto r = op->Exec(OpContext(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0]->ID(), chain.back().str());
  for (size_t i = 0; i < chain.size(); ++i) {
    auto st = worker_->snapshots().Stat(chain[i].str());
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(st->parent, i == 0 ? "" : chain[i - 1].str());
    auto layers = worker_->images().Layers(chain[i].str());
    ASSERT_TRUE(layers.ok());
    ASSERT_EQ(layers->size(), 1u);
    EXPECT_EQ((*layers)[0].blob.digest, info.image.manifest.layers[i].digest);
    EXPECT_EQ((*layers)[0].diff_id, info.image.config.rootfs.diff_ids[i]);
  }
  WithSnapshot((*r)[0], [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/hello"), "hello\n");
    struct stat st;
    EXPECT_EQ(::lstat((root + "/bin/busybox").c_str(), &st), 0);
    ASSERT_EQ(::lstat((root + "/bin/sh").c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
  });

  // Another op for the same image reuses the snapshots.
  int before = CountSnapshots();
  auto again = NewOp("busybox", {});
  ASSERT_TRUE(again->GetCacheMap(OpContext()).ok());
  auto r2 = again->Exec(OpContext(), {});
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ((*r2)[0]->ID(), chain.back().str());
  EXPECT_EQ(CountSnapshots(), before);
}

TEST_F(ImageSourceTest, LayerLimit) {
  ImportedImageInfo info = ImportBusybox(*worker_);
  auto op = NewOp("busybox", {{llb::kAttrImageLayerLimit, "1"}});
  auto cm = op->GetCacheMap(OpContext());
  ASSERT_TRUE(cm.ok()) << cm.status();
  auto full = NewOp("busybox", {});
  auto cm_full = full->GetCacheMap(OpContext());
  ASSERT_TRUE(cm_full.ok());
  EXPECT_NE(cm->digest, cm_full->digest);
  auto r = op->Exec(OpContext(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0]->ID(), info.image.config.rootfs.diff_ids[0].str());  // chainID of layer 0
  WithSnapshot((*r)[0], [&](const std::string& root) {
    struct stat st;
    EXPECT_NE(::lstat((root + "/hello").c_str(), &st), 0);
  });
  auto too_many = NewOp("busybox", {{llb::kAttrImageLayerLimit, "3"}});
  auto bad = too_many->GetCacheMap(OpContext());
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_THAT(bad.status().message(), HasSubstr("layer limit 3"));
}

TEST_F(ImageSourceTest, RootfsImportBecomesAnImage) {
  std::string rootfs = dir_.path() + "/myroot";
  Write(rootfs + "/etc/motd", "welcome\n");
  Write(rootfs + "/usr/bin/tool", "#!/bin/sh\n", 0755);
  snapshotter::RootfsImportOptions o;
  o.config.cmd = std::vector<std::string>{"/usr/bin/tool"};
  auto info = ImportRootfsImage(*worker_, rootfs, "example.com/me/root:1", o);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name, "example.com/me/root:1");
  auto op = NewOp("example.com/me/root:1", {{llb::kAttrImageResolveMode, "local"}});
  ASSERT_TRUE(op->GetCacheMap(OpContext()).ok());
  auto r = op->Exec(OpContext(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  WithSnapshot((*r)[0], [&](const std::string& root) {
    EXPECT_EQ(Read(root + "/etc/motd"), "welcome\n");
    struct stat st;
    ASSERT_EQ(::lstat((root + "/usr/bin/tool").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0755u);
  });
  ImageResolver resolver(worker_.get(), nullptr);
  auto res =
      resolver.Resolve("example.com/me/root:1", oci::HostPlatform(), ImageResolveMode::kLocal);
  ASSERT_TRUE(res.ok());
  ASSERT_TRUE(res->config.config.cmd.has_value());
  EXPECT_EQ(*res->config.config.cmd, std::vector<std::string>{"/usr/bin/tool"});
}

TEST_F(ImageSourceTest, BadAttrs) {
  for (const auto& attrs :
       std::vector<std::map<std::string, std::string>>{{{llb::kAttrImageResolveMode, "sometimes"}},
                                                       {{llb::kAttrImageRecordType, "weird"}},
                                                       {{llb::kAttrImageLayerLimit, "0"}},
                                                       {{llb::kAttrImageLayerLimit, "-2"}},
                                                       {{llb::kAttrImageLayerLimit, "many"}}}) {
    auto op = NewSourceOp(source_testing::SourceOp("docker-image://busybox", attrs), Env());
    EXPECT_TRUE(absl::IsInvalidArgument(op.status())) << attrs.begin()->second;
    EXPECT_THAT(op.status().message(), HasSubstr(attrs.begin()->first));
  }
  auto bad_ref = NewSourceOp(source_testing::SourceOp("docker-image://UPPER/case"), Env());
  EXPECT_TRUE(absl::IsInvalidArgument(bad_ref.status())) << bad_ref.status();
}

// ---- a real registry ---------------------------------------------------------------------

class RegistryProcess {
 public:
  static std::unique_ptr<RegistryProcess> Start(const std::string& dir) {
    auto r = std::unique_ptr<RegistryProcess>(new RegistryProcess());
    r->port = source_testing::FreePort();
    std::string config = StrCat(dir, "/registry.yml");
    Write(config, StrCat("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                         "    rootdirectory: ",
                         dir,
                         "/registry-data\n  delete:\n    enabled: true\nhttp:\n"
                         "  addr: 127.0.0.1:",
                         r->port, "\n"));
    r->child = Child::Start({"/usr/bin/docker-registry", "serve", config}, dir + "/registry.log");
    if (!r->child || !source_testing::WaitForPort(r->port, *r->child)) return nullptr;
    return r;
  }
  std::string host() const { return StrCat("127.0.0.1:", port); }
  int port = 0;
  std::unique_ptr<Child> child;
};

class ImagePullTest : public ImageSourceTest {
 protected:
  void SetUp() override {
    ImageSourceTest::SetUp();
    if (IsSkipped()) return;
    if (Sh("test -x /usr/bin/docker-registry && command -v skopeo") != 0) {
      GTEST_SKIP() << "needs docker-registry and skopeo";
    }
    registry_ = RegistryProcess::Start(dir_.path());
    ASSERT_NE(registry_, nullptr) << Read(dir_.path() + "/registry.log");
    const std::string log = dir_.path() + "/skopeo.log";
    ASSERT_EQ(Sh(StrCat("skopeo copy --dest-tls-verify=false oci:", layout_->dir,
                        ":latest docker://", registry_->host(), "/test/busybox:1"),
                 log),
              0)
        << Read(log);
    client_ = std::make_unique<registry::Registry>(registry::RegistryOptions{});
  }

  // Starts the harness's fault proxy in front of the registry with `rules` (JSON); its port.
  int StartProxy(const std::string& rules) {
    const std::string port_file = dir_.path() + "/proxy.port";
    proxy_ = Child::Start({source_testing::kPython,
                           source_testing::RepoRoot() + "/tests/registry_harness/fault_proxy.py",
                           "--upstream", registry_->host(), "--port-file", port_file, "--log",
                           dir_.path() + "/proxy.log", "--rules", rules},
                          dir_.path() + "/proxy.stderr");
    if (proxy_ == nullptr) return 0;
    int port = source_testing::WaitForPortFile(port_file, *proxy_);
    EXPECT_GT(port, 0) << Read(dir_.path() + "/proxy.stderr");
    return port;
  }

  // A fresh state directory (nothing of the image stored) and an op pulling `ref` through it.
  std::unique_ptr<Op> FreshStateOp(const std::string& ref) {
    worker_.reset();
    worker_ = OpenWorker(dir_.path() + "/state2");
    EXPECT_NE(worker_, nullptr);
    if (worker_ == nullptr) return nullptr;
    auto op = NewOp(ref, {}, client_.get());
    EXPECT_TRUE(op->GetCacheMap(OpContext()).ok());
    return op;
  }

  std::unique_ptr<RegistryProcess> registry_;
  std::unique_ptr<registry::Registry> client_;
  std::unique_ptr<Child> proxy_;
};

TEST_F(ImagePullTest, PullIntoAnEmptyStateThenUnpackLazily) {
  const std::string ref = StrCat(registry_->host(), "/test/busybox:1");
  auto op = NewOp(ref, {}, client_.get());
  auto cm = op->GetCacheMap(OpContext());
  ASSERT_TRUE(cm.ok()) << cm.status();
  ImageResolver resolver(worker_.get(), client_.get());
  // The manifest and config are stored now; layers are not (they come with Exec).
  auto res = resolver.Resolve(ref, oci::HostPlatform(), ImageResolveMode::kPull);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->origin, ImageResolution::Origin::kRegistry);
  EXPECT_TRUE(worker_->content().Info(res->manifest_digest).ok());
  EXPECT_TRUE(worker_->content().Info(res->config_digest).ok());
  for (const auto& l : res->manifest.layers) {
    EXPECT_TRUE(absl::IsNotFound(worker_->content().Info(l.digest).status()));
  }
  // Pulled images are not named.
  EXPECT_TRUE(absl::IsNotFound(worker_->images().Get(ref).status()));
  // Once pulled, the pinned reference resolves without the registry.
  ImageResolver offline(worker_.get(), nullptr);
  auto pinned =
      offline.Resolve(StrCat(registry_->host(), "/test/busybox@", res->manifest_digest.str()),
                      oci::HostPlatform(), ImageResolveMode::kDefault);
  ASSERT_TRUE(pinned.ok()) << pinned.status();

  auto r = op->Exec(OpContext(), {});
  ASSERT_TRUE(r.ok()) << r.status();
  for (const auto& l : res->manifest.layers) EXPECT_TRUE(worker_->content().Info(l.digest).ok());
  std::vector<Digest> chain = snapshotter::ChainIds(res->config.rootfs.diff_ids);
  EXPECT_EQ((*r)[0]->ID(), chain.back().str());
  auto layers = worker_->images().Layers(chain.back().str());
  ASSERT_TRUE(layers.ok() && layers->size() == 1);
  EXPECT_EQ((*layers)[0].blob.digest, res->manifest.layers.back().digest);
  WithSnapshot((*r)[0],
               [&](const std::string& root) { EXPECT_EQ(Read(root + "/hello"), "hello\n"); });
}

TEST_F(ImagePullTest, CorruptedLayerIsDataLossAndNothingIsStored) {
  ImageResolver probe(worker_.get(), client_.get());
  auto res = probe.Resolve(StrCat(registry_->host(), "/test/busybox:1"), oci::HostPlatform(),
                           ImageResolveMode::kPull);
  ASSERT_TRUE(res.ok()) << res.status();
  const Digest layer = res->manifest.layers[0].digest;
  int proxy_port = StartProxy(StrCat(R"([{"method": "GET", "path": "/blobs/)", layer.str(),
                                     R"(", "action": "corrupt", "count": 1000}])"));
  ASSERT_GT(proxy_port, 0);
  auto op = FreshStateOp(StrCat("127.0.0.1:", proxy_port, "/test/busybox:1"));
  ASSERT_NE(op, nullptr);
  auto r = op->Exec(OpContext(), {});
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_TRUE(absl::IsNotFound(worker_->content().Info(layer).status()));
  auto ingests = worker_->content().ListIngests();
  ASSERT_TRUE(ingests.ok());
  EXPECT_TRUE(ingests->empty());
  auto snap = worker_->snapshots().Stat(res->config.rootfs.diff_ids[0].str());
  EXPECT_TRUE(absl::IsNotFound(snap.status()));
}

TEST_F(ImagePullTest, LayersAreUnpackedAsTheyArrive) {
  ImageResolver probe(worker_.get(), client_.get());
  auto res = probe.Resolve(StrCat(registry_->host(), "/test/busybox:1"), oci::HostPlatform(),
                           ImageResolveMode::kPull);
  ASSERT_TRUE(res.ok()) << res.status();
  ASSERT_EQ(res->manifest.layers.size(), 2u);
  const Digest last = res->manifest.layers[1].digest;
  const std::vector<Digest> chain = snapshotter::ChainIds(res->config.rootfs.diff_ids);
  // The last layer's download hangs until the test ends it; the first must be unpacked anyway.
  int proxy_port = StartProxy(StrCat(R"([{"method": "GET", "path": "/blobs/)", last.str(),
                                     R"(", "action": "stall", "stall": 600, "count": 1000}])"));
  ASSERT_GT(proxy_port, 0);
  auto op = FreshStateOp(StrCat("127.0.0.1:", proxy_port, "/test/busybox:1"));
  ASSERT_NE(op, nullptr);
  CancelSource cancel;
  OpContext ctx;
  ctx.cancel = cancel.token();
  absl::StatusOr<std::vector<ResultRef>> result;
  std::thread exec([&] { result = op->Exec(ctx, {}); });
  auto committed = [&] {
    auto st = worker_->snapshots().Stat(chain[0].str());
    return st.ok() && st->kind == snapshotter::SnapshotKind::kCommitted;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!committed() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(committed()) << "layer 0 was not unpacked while layer 1 was still downloading";
  EXPECT_TRUE(absl::IsNotFound(worker_->content().Info(last).status()));
  // Cancelling ends the stalled download; the unpacked layer stays valid, nothing else is kept.
  cancel.Cancel("test is done");
  exec.join();
  EXPECT_TRUE(absl::IsCancelled(result.status())) << result.status();
  EXPECT_TRUE(absl::IsNotFound(worker_->content().Info(last).status()));
  EXPECT_TRUE(absl::IsNotFound(worker_->snapshots().Stat(chain[1].str()).status()));
  auto ingests = worker_->content().ListIngests();
  ASSERT_TRUE(ingests.ok());
  EXPECT_TRUE(ingests->empty());
}

}  // namespace
}  // namespace kiln::engine
