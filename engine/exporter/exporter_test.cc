// The exporters against real snapshots and real clients: umoci and skopeo read the OCI
// tarball and layout, skopeo and podman load the docker tarball, and the local/tar outputs
// hold the filesystem with its modes, owners, links and deletions.
#include "engine/exporter/exporter.h"

#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <archive.h>
#include <archive_entry.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "base/fs.h"
#include "engine/exporter/layers.h"
#include "engine/exporter/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "snapshotter/image_import.h"

namespace kiln::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;
using testing::Sh;

constexpr char kEmptyTarDiffId[] =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

struct TarEntry {
  std::string name;
  char type = '0';
  mode_t mode = 0;
  int64_t uid = 0, gid = 0, mtime = 0, size = 0;
  std::string link;
};

// Lists a tar file's entries in stream order.
std::vector<TarEntry> ListTar(const std::string& path) {
  std::vector<TarEntry> out;
  struct archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_support_filter_all(a);
  EXPECT_EQ(archive_read_open_filename(a, path.c_str(), 1 << 16), ARCHIVE_OK) << path;
  struct archive_entry* e;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    TarEntry t;
    t.name = archive_entry_pathname(e);
    mode_t ft = archive_entry_filetype(e);
    t.type = ft == AE_IFDIR ? '5' : ft == AE_IFLNK ? '2' : ft == AE_IFIFO ? '6' : '0';
    if (archive_entry_hardlink(e)) {
      t.type = '1';
      t.link = archive_entry_hardlink(e);
    }
    if (ft == AE_IFLNK) t.link = archive_entry_symlink(e);
    t.mode = archive_entry_perm(e) | (archive_entry_mode(e) & 07000);
    t.uid = archive_entry_uid(e);
    t.gid = archive_entry_gid(e);
    t.mtime = archive_entry_mtime(e);
    t.size = archive_entry_size(e);
    out.push_back(t);
  }
  archive_read_free(a);
  return out;
}

std::map<std::string, TarEntry> ByName(const std::vector<TarEntry>& v) {
  std::map<std::string, TarEntry> m;
  for (const auto& e : v) m[e.name] = e;
  return m;
}

class ExporterTest : public testing::ExporterFixture {
 protected:
  ExportInput Input(const ResultRef& result) {
    ExportInput in;
    in.result = result;
    in.image_config = testing::kFrontendConfig;
    in.platform = oci::Platform{"amd64", "linux"};
    return in;
  }

  absl::StatusOr<ExportResponse> Export(const std::string& type, const ExporterAttrs& attrs,
                                        const ResultRef& result, const ExportTarget& target = {}) {
    auto exp = NewExporter(type, attrs, {worker_.get(), nullptr});
    if (!exp.ok()) return exp.status();
    return (*exp)->Export(Input(result), target, CancelToken());
  }

  // The filesystem checks every output must pass; `root` holds the exported tree.
  void ExpectTree(const std::string& root, bool check_owners = true) {
    struct stat st;
    ASSERT_EQ(::lstat((root + "/app/hello").c_str(), &st), 0) << root;
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    if (check_owners) {
      EXPECT_EQ(st.st_uid, 1000u);
      EXPECT_EQ(st.st_gid, 50u);
    }
    EXPECT_EQ(*ReadFileToString(root + "/app/hello"), "hello from kiln\n");
    struct stat hard;
    ASSERT_EQ(::lstat((root + "/app/hard").c_str(), &hard), 0);
    EXPECT_EQ(hard.st_ino, st.st_ino);  // still a hardlink
    char target[64] = {};
    ASSERT_GT(::readlink((root + "/app/link").c_str(), target, sizeof(target)), 0);
    EXPECT_STREQ(target, "hello");
    ASSERT_EQ(::lstat((root + "/app").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0750u);
    if (check_owners) {
      EXPECT_EQ(st.st_uid, 1000u);
    }
    ASSERT_EQ(::lstat((root + "/app/setuid").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 04755u);
    ASSERT_EQ(::lstat((root + "/app/fifo").c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_NE(::access((root + "/etc/group").c_str(), F_OK), 0) << "deleted file came back";
    EXPECT_NE(::access((root + "/app/gone").c_str(), F_OK), 0) << "deleted dir came back";
    EXPECT_EQ(*ReadFileToString(root + "/etc/motd"), "welcome\n");
    EXPECT_EQ(::access((root + "/bin/busybox").c_str(), X_OK), 0);
    ASSERT_EQ(::lstat((root + "/bin/sh").c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
  }

  // Image config checks: what the frontend said plus the patched rootfs/history.
  void ExpectConfig(const Json& c, size_t layers) {
    EXPECT_EQ(c["config"]["User"], "app");
    EXPECT_EQ(c["config"]["WorkingDir"], "/app");
    EXPECT_THAT(c["config"]["Cmd"].get<std::vector<std::string>>(),
                ElementsAre("/bin/sh", "-c", "cat /app/hello"));
    EXPECT_THAT(c["config"]["Env"].get<std::vector<std::string>>(),
                ::testing::Contains("GREETING=hi"));
    EXPECT_EQ(c["config"]["Labels"]["org.example.test"], "exporter");
    ASSERT_EQ(c["rootfs"]["diff_ids"].size(), layers);
    EXPECT_EQ(c["rootfs"]["diff_ids"].back(), kEmptyTarDiffId);  // WORKDIR changed nothing
    ASSERT_EQ(c["history"].size(), 6u);
    size_t non_empty = 0;
    for (const auto& h : c["history"]) {
      EXPECT_TRUE(h.contains("created")) << h.dump();
      if (!h.value("empty_layer", false)) ++non_empty;
    }
    EXPECT_EQ(non_empty, layers);
    EXPECT_EQ(c["history"][2]["created_by"], "RUN change");
  }
};

TEST_F(ExporterTest, OciTarballIsReadByUmociAndSkopeo) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::string tar = Path("image.tar");
  auto resp = Export("oci", {{"name", "kiln-test:v1"}}, result, {.path = tar});
  ASSERT_TRUE(resp.ok()) << resp.status();

  // The response as BuildKit's: the descriptor carries the created annotation and platform.
  std::string desc_json;
  ASSERT_TRUE(absl::Base64Unescape(resp->at(kExporterImageDescriptor), &desc_json));
  auto desc = oci::DecodeDescriptor(desc_json);
  ASSERT_TRUE(desc.ok()) << desc.status();
  EXPECT_EQ(desc->digest.str(), resp->at(kExporterImageDigest));
  EXPECT_EQ(desc->media_type, oci::kMediaTypeImageManifest);
  EXPECT_TRUE(desc->annotations.count("org.opencontainers.image.created"));
  ASSERT_TRUE(desc->platform.has_value());
  EXPECT_EQ(desc->platform->architecture, "amd64");
  EXPECT_EQ(resp->at(kExporterImageName), "docker.io/library/kiln-test:v1");

  // Layout entries in containerd's order and modes.
  auto entries = ListTar(tar);
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e.name);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(names[0], "blobs/");
  EXPECT_EQ(names[1], "blobs/sha256/");
  EXPECT_EQ(names.back(), "oci-layout");
  EXPECT_EQ(ByName(entries)["index.json"].mode, 0644u);
  EXPECT_EQ(ByName(entries)["oci-layout"].mode, 0444u);
  ASSERT_TRUE(ByName(entries).count("manifest.json"));  // containerd writes it for oci too
  // manifest + config + 4 layers
  EXPECT_EQ(
      std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.size() > 20; }),
      6);

  std::string layout = Path("layout");
  ASSERT_TRUE(MakeDirs(layout).ok());
  ASSERT_EQ(Sh(StrCat("tar -C ", layout, " -xf ", tar)).status, 0);
  auto index = Json::parse(*ReadFileToString(layout + "/index.json"));
  ASSERT_EQ(index["manifests"].size(), 1u);
  EXPECT_EQ(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "v1");
  EXPECT_EQ(index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "docker.io/library/kiln-test:v1");

  auto docker_manifests = Json::parse(*ReadFileToString(layout + "/manifest.json"));
  EXPECT_TRUE(docker_manifests[0]["RepoTags"].is_null());
  EXPECT_EQ(docker_manifests[0]["Layers"].size(), 4u);

  std::string bundle = Path("bundle");
  ASSERT_EQ(Sh(StrCat("umoci unpack --image ", layout, ":v1 ", bundle)).status, 0)
      << "see /tmp/kiln-exporter-test.log";
  ExpectTree(bundle + "/rootfs");

  auto config = Sh(StrCat("skopeo inspect --config oci-archive:", tar, ":v1"));
  ASSERT_EQ(config.status, 0);
  ExpectConfig(Json::parse(config.out), 4);
  auto inspect = Sh(StrCat("skopeo inspect oci-archive:", tar, ":v1"));
  ASSERT_EQ(inspect.status, 0);
  EXPECT_EQ(Json::parse(inspect.out)["Digest"], resp->at(kExporterImageDigest));
  EXPECT_EQ(Sh(StrCat("skopeo copy oci-archive:", tar, ":v1 oci:", Path("copy"), ":v1")).status, 0);
}

// The naive snapshotter has no upper directories: layers come from comparing whole trees.
class NaiveExporterTest : public ExporterTest {
 protected:
  void SetUp() override {
    naive_ = true;
    ExporterTest::SetUp();
  }
};

TEST_F(NaiveExporterTest, OciTarballFromTreeComparison) {
  ASSERT_FALSE(worker_->overlay());
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::string tar = Path("naive.tar");
  auto resp = Export("oci", {{"name", "kiln-naive:1"}}, result, {.path = tar});
  ASSERT_TRUE(resp.ok()) << resp.status();
  std::string layout = Path("layout");
  ASSERT_TRUE(MakeDirs(layout).ok());
  ASSERT_EQ(Sh(StrCat("tar -C ", layout, " -xf ", tar)).status, 0);
  ASSERT_EQ(Sh(StrCat("umoci unpack --image ", layout, ":1 ", Path("bundle"))).status, 0);
  ExpectTree(Path("bundle") + "/rootfs");
  auto config = Json::parse(Sh(StrCat("skopeo inspect --config oci:", layout, ":1")).out);
  ExpectConfig(config, 4);
}

TEST_F(ExporterTest, DockerTarballLoadsWithPodmanAndSkopeo) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::string tar = Path("docker.tar");
  auto resp = Export("docker", {{"name", "kiln-test:v2"}}, result, {.path = tar});
  ASSERT_TRUE(resp.ok()) << resp.status();

  // Docker media types by default, and docker-archive's manifest.json next to the layout.
  std::string layout = Path("layout");
  ASSERT_TRUE(MakeDirs(layout).ok());
  ASSERT_EQ(Sh(StrCat("tar -C ", layout, " -xf ", tar)).status, 0);
  auto manifests = Json::parse(*ReadFileToString(layout + "/manifest.json"));
  ASSERT_EQ(manifests.size(), 1u);
  EXPECT_EQ(manifests[0]["RepoTags"][0], "kiln-test:v2");
  EXPECT_EQ(manifests[0]["Layers"].size(), 4u);
  std::string digest = resp->at(kExporterImageDigest);
  auto manifest =
      Json::parse(*ReadFileToString(StrCat(layout, "/blobs/sha256/", digest.substr(7))));
  EXPECT_EQ(manifest["mediaType"], oci::kMediaTypeDockerManifest);
  EXPECT_EQ(manifest["layers"][0]["mediaType"], oci::kMediaTypeDockerLayerGzip);

  auto config = Sh(StrCat("skopeo inspect --config docker-archive:", tar));
  ASSERT_EQ(config.status, 0);
  ExpectConfig(Json::parse(config.out), 4);

  if (Sh("command -v podman").status != 0) GTEST_SKIP() << "podman not installed";
  std::string podman = StrCat("podman --root ", Path("podman"), " --runroot ", Path("podman-run"),
                              " --storage-driver vfs --cgroup-manager cgroupfs");
  auto loaded = Sh(StrCat(podman, " load -i ", tar));
  ASSERT_EQ(loaded.status, 0) << loaded.out;
  EXPECT_THAT(loaded.out, HasSubstr("kiln-test:v2"));
  auto mounted = Sh(StrCat(podman, " image mount docker.io/library/kiln-test:v2"));
  ASSERT_EQ(mounted.status, 0);
  std::string root = std::string(absl::StripTrailingAsciiWhitespace(mounted.out));
  ExpectTree(root);
  EXPECT_EQ(Sh(StrCat(podman, " image unmount docker.io/library/kiln-test:v2")).status, 0);
}

TEST_F(ExporterTest, OciLayoutDirectoryKeepsOtherTags) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::string dir = Path("oci-dir");
  auto first = Export("oci", {{"name", "kiln-test:a"}, {"tar", "false"}}, result, {.path = dir});
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = Export("oci",
                       {{"name", "kiln-test:b"},
                        {"tar", "false"},
                        {"compression", "zstd"},
                        {"force-compression", "true"}},
                       result, {.path = dir});
  ASSERT_TRUE(second.ok()) << second.status();
  auto again = Export("oci", {{"name", "kiln-test:a"}, {"tar", "false"}}, result, {.path = dir});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->at(kExporterImageDigest), first->at(kExporterImageDigest));

  auto index = Json::parse(*ReadFileToString(dir + "/index.json"));
  ASSERT_EQ(index["manifests"].size(), 2u);  // the re-export of :a replaced its entry
  std::set<std::string> tags;
  for (const auto& m : index["manifests"]) {
    tags.insert(m["annotations"]["org.opencontainers.image.ref.name"].get<std::string>());
  }
  EXPECT_THAT(tags, ElementsAre("docker.io/library/kiln-test:a", "docker.io/library/kiln-test:b"));
  EXPECT_TRUE(ReadFileToString(dir + "/oci-layout").ok());

  auto inspect = Sh(StrCat("skopeo inspect oci:", dir, ":docker.io/library/kiln-test:b"));
  ASSERT_EQ(inspect.status, 0);
  Json b = Json::parse(inspect.out);
  EXPECT_EQ(b["Digest"], second->at(kExporterImageDigest));
  auto raw = Sh(StrCat("skopeo inspect --raw oci:", dir, ":docker.io/library/kiln-test:b"));
  ASSERT_EQ(raw.status, 0);
  EXPECT_EQ(Json::parse(raw.out)["layers"][1]["mediaType"], oci::kMediaTypeLayerZstd);
  EXPECT_EQ(
      Sh(StrCat("skopeo copy oci:", dir, ":docker.io/library/kiln-test:a oci:", Path("copy"), ":a"))
          .status,
      0);
}

TEST_F(ExporterTest, LocalDirectoryHoldsTheFilesystem) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::string dest = Path("out");
  ASSERT_TRUE(MakeDirs(dest).ok());
  testing::WriteFile(dest + "/keep.txt", "mine", 0600);
  // A symlink planted in the destination is replaced, never followed.
  ASSERT_EQ(::symlink(Path("outside").c_str(), (dest + "/app").c_str()), 0);
  auto resp = Export("local", {{"dest", dest}}, result);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_TRUE(resp->empty());
  ExpectTree(dest);
  EXPECT_EQ(*ReadFileToString(dest + "/keep.txt"), "mine");  // merged, as buildctl does
  EXPECT_NE(::access(Path("outside").c_str(), F_OK), 0);

  // With an epoch every file carries it.
  std::string dated = Path("dated");
  ASSERT_TRUE(Export("local", {{"source-date-epoch", "1000"}}, result, {.path = dated}).ok());
  struct stat st;
  for (const char* p : {"/app/hello", "/bin", "/etc/motd", "/app"}) {
    ASSERT_EQ(::lstat((dated + p).c_str(), &st), 0);
    EXPECT_EQ(st.st_mtime, 1000) << p;
  }
}

TEST_F(ExporterTest, LocalRefusesWhiteoutNames) {
  ResultRef result = Step(nullptr, "odd", [](const std::string& r) {
    testing::WriteFile(r + "/.wh..wh..opq", "", 0644);
  });
  std::string dest = Path("victim");
  ASSERT_TRUE(MakeDirs(dest).ok());
  testing::WriteFile(dest + "/precious", "data", 0644);
  auto resp = Export("local", {}, result, {.path = dest});
  ASSERT_FALSE(resp.ok());
  EXPECT_THAT(std::string(resp.status().message()), HasSubstr("whiteout"));
  EXPECT_EQ(*ReadFileToString(dest + "/precious"), "data");
}

TEST_F(ExporterTest, TarStreamIsSortedAndComplete) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::string tar = Path("fs.tar");
  ASSERT_TRUE(Export("tar", {{"source-date-epoch", "77"}}, result, {.path = tar}).ok());
  auto entries = ListTar(tar);
  auto by = ByName(entries);
  ASSERT_TRUE(by.count("app/hello"));
  EXPECT_EQ(by["app/hello"].mode, 0640u);
  EXPECT_EQ(by["app/hello"].uid, 1000);
  EXPECT_EQ(by["app/hello"].gid, 50);
  EXPECT_EQ(by["app/hard"].type, '0');  // first in name order: the data
  EXPECT_EQ(by["app/hello"].type, '1');
  EXPECT_EQ(by["app/hello"].link, "app/hard");
  EXPECT_EQ(by["app/link"].link, "hello");
  EXPECT_EQ(by["app/setuid"].mode, 04755u);
  EXPECT_EQ(by["app/fifo"].type, '6');
  EXPECT_EQ(by["app/"].type, '5');
  EXPECT_FALSE(by.count("etc/group"));
  EXPECT_FALSE(by.count("app/gone/"));
  for (const auto& e : entries) {
    EXPECT_EQ(e.mtime, 77) << e.name;
    EXPECT_FALSE(e.name.starts_with("./") || e.name.starts_with("/")) << e.name;
  }
  // Depth first, sorted within each directory.
  auto pos = [&](const std::string& n) {
    return std::find_if(entries.begin(), entries.end(),
                        [&](const TarEntry& e) { return e.name == n; }) -
           entries.begin();
  };
  EXPECT_LT(pos("app/"), pos("app/fifo"));
  EXPECT_LT(pos("app/fifo"), pos("app/hard"));
  EXPECT_LT(pos("app/setuid"), pos("bin/"));

  std::string again = Path("fs2.tar");
  ASSERT_TRUE(Export("tar", {{"source-date-epoch", "77"}}, result, {.path = again}).ok());
  EXPECT_EQ(*ReadFileToString(tar), *ReadFileToString(again));
}

TEST_F(ExporterTest, FailedExportLeavesNoFile) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::string tar = Path("never.tar");
  CancelSource cancel;
  cancel.Cancel("stop");
  auto exp = NewExporter("oci", {}, {worker_.get(), nullptr});
  ASSERT_TRUE(exp.ok());
  auto resp = (*exp)->Export(Input(result), {.path = tar}, cancel.token());
  ASSERT_FALSE(resp.ok());
  EXPECT_TRUE(absl::IsCancelled(resp.status())) << resp.status();
  auto names = Sh(StrCat("ls -A ", dir_.path()));
  EXPECT_THAT(names.out, ::testing::Not(HasSubstr("never.tar")));
}

TEST_F(ExporterTest, RebuildIsByteIdenticalWithSourceDateEpochAndRewrite) {
  ExporterAttrs attrs{
      {"name", "kiln-test:repro"}, {"source-date-epoch", "1000000"}, {"rewrite-timestamp", "true"}};
  ResultRef first = BuildChain();
  ASSERT_TRUE(first);
  ASSERT_TRUE(Export("oci", attrs, first, {.path = Path("a.tar")}).ok());
  ::sleep(1);  // the second build's files and snapshots are younger
  ResultRef second = BuildChain();
  ASSERT_TRUE(second);
  ASSERT_NE(SnapshotKeyOf(first), SnapshotKeyOf(second));
  ASSERT_TRUE(Export("oci", attrs, second, {.path = Path("b.tar")}).ok());
  EXPECT_EQ(*ReadFileToString(Path("a.tar")), *ReadFileToString(Path("b.tar")));

  // Without the epoch the two builds differ (file times), so the check above is not vacuous.
  auto plain_a = Export("oci", {}, first, {.path = Path("c.tar")});
  auto plain_b = Export("oci", {}, second, {.path = Path("d.tar")});
  ASSERT_TRUE(plain_a.ok() && plain_b.ok());
  EXPECT_NE(plain_a->at(kExporterImageDigest), plain_b->at(kExporterImageDigest));

  // Layer times are clamped in the rewritten layers.
  std::string layout = Path("repro");
  ASSERT_TRUE(MakeDirs(layout).ok());
  ASSERT_EQ(Sh(StrCat("tar -C ", layout, " -xf ", Path("a.tar"))).status, 0);
  auto config = Json::parse(Sh(StrCat("skopeo inspect --config oci:", layout, ":repro")).out);
  EXPECT_EQ(config["created"], "1970-01-12T13:46:40Z");
  for (const auto& h : config["history"]) EXPECT_EQ(h["created"], "1970-01-12T13:46:40Z");
}

TEST_F(ExporterTest, OnLayerSeesEachLayerOnceItsBlobIsStored) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::mutex mu;
  std::multiset<std::string> seen;
  bool all_stored = true;
  LayerExportOptions o;
  o.on_layer = [&](const ExportedLayer& l) {
    std::lock_guard<std::mutex> lock(mu);
    seen.insert(l.snapshot_key);
    all_stored = all_stored && worker_->content().Info(l.blob.digest).ok();
  };
  auto layers = ExportLayers(*worker_, result, o);
  ASSERT_TRUE(layers.ok()) << layers.status();
  ASSERT_EQ(seen.size(), layers->size());
  for (const auto& l : *layers) EXPECT_EQ(seen.count(l.snapshot_key), 1u) << l.snapshot_key;
  EXPECT_TRUE(all_stored);
}

TEST_F(ExporterTest, SecondExportReusesLayerBlobs) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  LayerExportOptions o;
  auto first = ExportLayers(*worker_, result, o);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 4u);
  for (const auto& l : *first) EXPECT_EQ(l.source, ExportedLayer::Source::kComputed);
  EXPECT_EQ((*first)[3].diff_id.str(), kEmptyTarDiffId);

  // The image exporter after that computes nothing new.
  ASSERT_TRUE(Export("image", {{"name", "kiln-test:reuse"}}, result).ok());
  auto second = ExportLayers(*worker_, result, o);
  ASSERT_TRUE(second.ok());
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*second)[i].source, ExportedLayer::Source::kReused);
    EXPECT_EQ((*second)[i].blob, (*first)[i].blob);
  }
  auto record = worker_->images().Get("docker.io/library/kiln-test:reuse");
  ASSERT_TRUE(record.ok()) << record.status();

  // Another compression without force: the gzip blobs are reused as they are.
  o.compression = snapshotter::Compression::kZstd;
  auto unforced = ExportLayers(*worker_, result, o);
  ASSERT_TRUE(unforced.ok());
  EXPECT_EQ((*unforced)[0].blob.media_type, oci::kMediaTypeLayerGzip);
  EXPECT_EQ((*unforced)[0].source, ExportedLayer::Source::kReused);
  // With force they are recompressed from the stored blobs: same diffIDs, zstd blobs.
  o.force = true;
  auto forced = ExportLayers(*worker_, result, o);
  ASSERT_TRUE(forced.ok()) << forced.status();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*forced)[i].source, ExportedLayer::Source::kConverted);
    EXPECT_EQ((*forced)[i].blob.media_type, oci::kMediaTypeLayerZstd);
    EXPECT_EQ((*forced)[i].diff_id, (*first)[i].diff_id);
  }
  auto zstd_again = ExportLayers(*worker_, result, o);
  ASSERT_TRUE(zstd_again.ok());
  EXPECT_EQ((*zstd_again)[2].source, ExportedLayer::Source::kReused);
}

TEST_F(ExporterTest, ImageExporterStoresNamesAndResponse) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  auto resp = Export("image",
                     {{"name", "kiln-a:1,registry.example/x/kiln-b"},
                      {"name-canonical", "true"},
                      {"annotation.org.example.note", "n"}},
                     result);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(resp->at(kExporterImageName), "kiln-a:1,registry.example/x/kiln-b");
  Digest digest = *Digest::Parse(resp->at(kExporterImageDigest));
  for (const std::string& name :
       std::vector<std::string>{"docker.io/library/kiln-a:1", "registry.example/x/kiln-b:latest",
                                StrCat("docker.io/library/kiln-a:1@", digest.str())}) {
    auto rec = worker_->images().Get(name);
    ASSERT_TRUE(rec.ok()) << name << ": " << rec.status();
    EXPECT_EQ(rec->target.digest, digest);
    EXPECT_EQ(rec->target.media_type, oci::kMediaTypeDockerManifest);
  }
  auto manifest = snapshotter::ReadBlob(worker_->content(), digest);
  ASSERT_TRUE(manifest.ok());
  Json m = Json::parse(*manifest);
  EXPECT_EQ(m["annotations"]["org.example.note"], "n");
  EXPECT_EQ(m["config"]["digest"], resp->at(kExporterImageConfigDigest));
  EXPECT_EQ(manifest->substr(0, 14), "{\n  \"mediaType");  // BuildKit's MarshalIndent layout

  auto dangling = Export("image", {{"dangling-name-prefix", "kiln-dangling"}}, result);
  ASSERT_TRUE(dangling.ok()) << dangling.status();
  EXPECT_EQ(dangling->at(kExporterImageName),
            StrCat("kiln-dangling@", dangling->at(kExporterImageDigest)));

  EXPECT_FALSE(NewExporter("image", {{"push", "maybe"}}, {worker_.get(), nullptr}).ok());
  EXPECT_FALSE(NewExporter("floppy", {}, {worker_.get(), nullptr}).ok());
}

TEST_F(ExporterTest, ConvertedAndComputedZstdLayersAreIdentical) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  LayerExportOptions zstd;
  zstd.compression = snapshotter::Compression::kZstd;
  auto computed = ExportLayers(*worker_, result, zstd);
  ASSERT_TRUE(computed.ok());
  for (const auto& l : *computed) ASSERT_TRUE(worker_->images().DeleteLayers(l.snapshot_key).ok());
  ASSERT_TRUE(ExportLayers(*worker_, result, {}).ok());  // gzip records only
  zstd.force = true;
  auto converted = ExportLayers(*worker_, result, zstd);
  ASSERT_TRUE(converted.ok()) << converted.status();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*computed)[i].source, ExportedLayer::Source::kComputed);
    EXPECT_EQ((*converted)[i].source, ExportedLayer::Source::kConverted);
    EXPECT_EQ((*converted)[i].blob, (*computed)[i].blob) << i;
  }
}

TEST_F(ExporterTest, RewriteKeepsBaseImageLayers) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  auto raw = ExportLayers(*worker_, result, {});
  ASSERT_TRUE(raw.ok());
  LayerExportOptions o;
  o.rewrite_epoch = 1000;
  o.immutable_diff_ids = {(*raw)[0].diff_id};  // the base image's first layer
  auto rewritten = ExportLayers(*worker_, result, o);
  ASSERT_TRUE(rewritten.ok()) << rewritten.status();
  EXPECT_EQ((*rewritten)[0].blob, (*raw)[0].blob);
  EXPECT_EQ((*rewritten)[0].source, ExportedLayer::Source::kReused);
  EXPECT_EQ((*rewritten)[1].source, ExportedLayer::Source::kComputed);
  EXPECT_NE((*rewritten)[1].diff_id, (*raw)[1].diff_id);  // file times clamped
  // Recorded apart from the plain layers: a plain export still gets the unclamped blob.
  auto plain = ExportLayers(*worker_, result, {});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)[1].blob, (*raw)[1].blob);
  auto again = ExportLayers(*worker_, result, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[1].blob, (*rewritten)[1].blob);
  EXPECT_EQ((*again)[1].source, ExportedLayer::Source::kReused);
}

TEST_F(ExporterTest, ImageExporterUnpacksAndReportsProgress) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  std::vector<std::string> done;
  ExportInput in = Input(result);
  in.progress = [&](const StatusUpdate& u) {
    if (u.completed) done.push_back(u.name);
  };
  auto exp = NewExporter("image", {{"name", "kiln-unpack:1"}, {"unpack", "true"}},
                         {worker_.get(), nullptr});
  ASSERT_TRUE(exp.ok());
  EXPECT_EQ((*exp)->Name(), "exporting to image");
  auto resp = (*exp)->Export(in, {}, CancelToken());
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_THAT(done, ::testing::IsSupersetOf(
                        {std::string("exporting layers"), std::string("naming to kiln-unpack:1"),
                         std::string("unpacking to docker.io/library/kiln-unpack:1")}));
  // The layers now also exist as snapshots keyed by chainID, as an unpacked image's do.
  auto config = snapshotter::ReadBlob(worker_->content(),
                                      *Digest::Parse(resp->at(kExporterImageConfigDigest)));
  ASSERT_TRUE(config.ok());
  auto image = oci::DecodeImage(*config);
  ASSERT_TRUE(image.ok());
  auto chain = snapshotter::ChainIds(image->rootfs.diff_ids);
  auto top = worker_->snapshots().Stat(chain.back().str());
  ASSERT_TRUE(top.ok()) << top.status();
  EXPECT_EQ(top->kind, snapshotter::SnapshotKind::kCommitted);
}

TEST_F(ExporterTest, ConcurrentExportsComputeEachLayerOnce) {
  ResultRef result = BuildChain();
  ASSERT_TRUE(result);
  absl::StatusOr<std::vector<ExportedLayer>> a, b;
  std::thread t1([&] { a = ExportLayers(*worker_, result, {}); });
  std::thread t2([&] { b = ExportLayers(*worker_, result, {}); });
  t1.join();
  t2.join();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  int computed = 0;
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*a)[i].blob, (*b)[i].blob);
    computed += ((*a)[i].source == ExportedLayer::Source::kComputed) +
                ((*b)[i].source == ExportedLayer::Source::kComputed);
  }
  EXPECT_EQ(computed, 4);
}

TEST_F(ExporterTest, ScratchExportsAnImageWithoutLayers) {
  auto resp = Export("oci", {}, worker_->EmptyResult(), {.path = Path("scratch.tar")});
  ASSERT_TRUE(resp.ok()) << resp.status();
  auto config = Sh(StrCat("skopeo inspect --config oci-archive:", Path("scratch.tar")));
  ASSERT_EQ(config.status, 0);
  EXPECT_TRUE(Json::parse(config.out)["rootfs"]["diff_ids"].empty());
  std::string dest = Path("empty");
  ASSERT_TRUE(Export("local", {}, nullptr, {.path = dest}).ok());
  EXPECT_EQ(Sh(StrCat("ls -A ", dest)).out, "");
}

}  // namespace
}  // namespace kiln::engine
