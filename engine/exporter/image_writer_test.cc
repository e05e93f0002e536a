// Pure parts of the exporters: config patching and history alignment as BuildKit's
// writer.go does them, Go-compatible JSON and times, attribute parsing, reference names.
#include "engine/exporter/image_writer.h"

#include "base/strings.h"
#include "engine/exporter/archive.h"
#include "engine/exporter/go_json.h"
#include "engine/exporter/options.h"
#include "engine/exporter/tree_tar.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kiln::engine {
namespace {

using ::testing::ElementsAre;
using Json = nlohmann::json;

snapshotter::Timestamp At(int64_t seconds, int64_t nanos = 0) {
  return snapshotter::Timestamp(std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos));
}

Digest D(char c) { return *Digest::Parse(StrCat("sha256:", std::string(64, c))); }

Json Patch(std::string_view config, std::vector<LayerHistoryMeta> layers,
           std::optional<int64_t> epoch = std::nullopt) {
  std::vector<Digest> ids;
  for (size_t i = 0; i < layers.size(); ++i) ids.push_back(D(static_cast<char>('a' + i)));
  auto out = PatchImageConfig(config, ids, layers, epoch);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? Json::parse(*out) : Json();
}

TEST(GoTime, RoundTripsLikeGo) {
  auto t = ParseGoTime("2024-05-01T12:00:00.500000000Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(FormatGoTime(*t), "2024-05-01T12:00:00.5Z");
  auto z = ParseGoTime("2024-05-01T14:00:00+02:00");
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->seconds, t->seconds);
  EXPECT_EQ(FormatGoTime(*z), "2024-05-01T14:00:00+02:00");  // the offset survives
  EXPECT_EQ(FormatRfc3339Utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339Utc(1700000000), "2023-11-14T22:13:20Z");
  EXPECT_FALSE(ParseGoTime("2024-05-01 12:00:00").ok());
  EXPECT_FALSE(ParseGoTime("2024-13-01T12:00:00Z").ok());
}

TEST(GoJson, EscapesLikeEncodingJson) {
  OrderedJson j = OrderedJson::object();
  j["b"] = "a<b>&c";
  j["a"] = 1;
  EXPECT_EQ(GoJsonCompact(j), R"({"b":"a\u003cb\u003e\u0026c","a":1})");
  EXPECT_EQ(GoJsonIndent(j), "{\n  \"b\": \"a\\u003cb\\u003e\\u0026c\",\n  \"a\": 1\n}");
}

TEST(PatchImageConfig, SortsTopLevelKeepsNestedOrderAndUnknownFields) {
  auto out = PatchImageConfig(
      R"({"os":"linux","architecture":"amd64","config":{"Env":["A=1"],"Cmd":["sh"]},"x-extra":{"z":1,"a":2},"moby.buildkit.buildinfo.v1":"e30="})",
      {D('a')}, {{"RUN x", At(100)}}, std::nullopt);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(
      *out,
      R"({"architecture":"amd64","config":{"Env":["A=1"],"Cmd":["sh"]},"created":"1970-01-01T00:01:40Z",)"
      R"("history":[{"created":"1970-01-01T00:01:40Z","created_by":"RUN x","comment":"buildkit.exporter.image.v0"}],)"
      R"("os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:)" +
          std::string(64, 'a') + R"("]},"x-extra":{"z":1,"a":2}})");
}

TEST(PatchImageConfig, FillsLayerTimesAndPropagatesThemToMetadataEntries) {
  // A base image entry with a time, then the frontend's entries without times.
  Json c = Patch(R"({"history":[
      {"created":"2020-01-01T00:00:00Z","created_by":"base"},
      {"created_by":"ENV A=1","empty_layer":true},
      {"created_by":"RUN a"},
      {"created_by":"LABEL x=y","empty_layer":true},
      {"created_by":"RUN b"}]})",
                 {{"base layer", At(1000)}, {"run a", At(2000)}, {"run b", At(3000)}});
  ASSERT_EQ(c["history"].size(), 5u);
  EXPECT_EQ(c["history"][0]["created"], "2020-01-01T00:00:00Z");
  // The first new layer's time fills the metadata entry before it...
  EXPECT_EQ(c["history"][1]["created"], "1970-01-01T00:33:20Z");
  EXPECT_EQ(c["history"][2]["created"], "1970-01-01T00:33:20Z");
  // ...and later gaps take the previous time.
  EXPECT_EQ(c["history"][3]["created"], "1970-01-01T00:33:20Z");
  EXPECT_EQ(c["history"][4]["created"], "1970-01-01T00:50:00Z");
  EXPECT_TRUE(c["history"][1]["empty_layer"].get<bool>());
  EXPECT_EQ(c["created"], "1970-01-01T00:50:00Z");  // absent: the last history time
  EXPECT_EQ(c["rootfs"]["diff_ids"].size(), 3u);
}

TEST(PatchImageConfig, AddsEntriesForLayersWithoutHistory) {
  Json c =
      Patch(R"({"history":[{"created_by":"RUN a"}]})", {{"one", At(10)}, {"", At(20, 500000000)}});
  ASSERT_EQ(c["history"].size(), 2u);
  EXPECT_EQ(c["history"][1]["created_by"], "created by kiln");
  EXPECT_EQ(c["history"][1]["comment"], "buildkit.exporter.image.v0");
  EXPECT_EQ(c["history"][1]["created"], "1970-01-01T00:00:20.5Z");
}

TEST(PatchImageConfig, MarksSurplusLayerEntriesEmpty) {
  Json c = Patch(R"({"history":[{"created_by":"a"},{"created_by":"b"},{"created_by":"c"}]})",
                 {{"one", At(10)}});
  EXPECT_FALSE(c["history"][0].contains("empty_layer"));
  EXPECT_TRUE(c["history"][1]["empty_layer"].get<bool>());
  EXPECT_TRUE(c["history"][2]["empty_layer"].get<bool>());
}

TEST(PatchImageConfig, EpochClampsLaterTimesOnly) {
  Json c = Patch(R"({"created":"2030-01-01T00:00:00Z","history":[
      {"created":"1970-01-01T00:00:01Z","created_by":"old"},{"created_by":"new"}]})",
                 {{"a", At(10)}, {"b", At(2000000000)}}, 1000);
  EXPECT_EQ(c["created"], "1970-01-01T00:16:40Z");
  EXPECT_EQ(c["history"][0]["created"], "1970-01-01T00:00:01Z");
  EXPECT_EQ(c["history"][1]["created"], "1970-01-01T00:16:40Z");
  Json early = Patch(R"({"created":"1970-01-01T00:00:05Z"})", {}, 1000);
  EXPECT_EQ(early["created"], "1970-01-01T00:00:05Z");
}

TEST(PatchImageConfig, NoLayersNoHistory) {
  Json c = Patch(DefaultImageConfig({"amd64", "linux"}), {});
  EXPECT_TRUE(c["created"].is_null());
  EXPECT_EQ(c["config"]["WorkingDir"], "/");
  EXPECT_EQ(c["architecture"], "amd64");
  EXPECT_TRUE(c["rootfs"]["diff_ids"].empty());
}

TEST(PatchImageConfig, RejectsMalformedConfigs) {
  EXPECT_FALSE(PatchImageConfig("[]", {}, {}, std::nullopt).ok());
  EXPECT_FALSE(PatchImageConfig("{\"history\":{}}", {}, {}, std::nullopt).ok());
  EXPECT_FALSE(
      PatchImageConfig(R"({"history":[{"created":"yesterday"}]})", {}, {}, std::nullopt).ok());
}

TEST(Options, ParsesBuildKitAttributes) {
  auto o = ParseImageExportOptions("image", {{"name", "a,b"},
                                             {"push", ""},
                                             {"compression", "zstd"},
                                             {"compression-level", "19"},
                                             {"force-compression", "true"},
                                             {"source-date-epoch", "42"},
                                             {"annotation.org.x", "1"},
                                             {"annotation-manifest-descriptor.d", "2"},
                                             {"unknown", "kept as metadata"}});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->name, "a,b");
  EXPECT_TRUE(o->push);
  EXPECT_EQ(o->compression, snapshotter::Compression::kZstd);
  EXPECT_EQ(o->level, 19);
  EXPECT_TRUE(o->force_compression);
  EXPECT_EQ(o->epoch, 42);
  EXPECT_EQ(o->annotations.all.manifest.at("org.x"), "1");
  EXPECT_EQ(o->annotations.all.manifest_descriptor.at("d"), "2");
  EXPECT_TRUE(o->oci_types);  // descriptor annotations need OCI types
  EXPECT_FALSE(ParseImageExportOptions("image", {}).value().oci_types);
  EXPECT_TRUE(ParseImageExportOptions("oci", {}).value().oci_types);
  EXPECT_FALSE(ParseImageExportOptions("docker", {}).value().oci_types);

  auto bad = ParseImageExportOptions("image", {{"push", "yes"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("non-bool value"));
  EXPECT_FALSE(ParseImageExportOptions("oci", {{"compression", "lz4"}}).ok());
  EXPECT_FALSE(ParseImageExportOptions("oci", {{"compression-level", "12"}}).ok());  // gzip 0-9
  EXPECT_FALSE(ParseImageExportOptions("oci", {{"annotation-foo.k", "v"}}).ok());
  EXPECT_EQ(*MapCompressionLevel(snapshotter::Compression::kGzip, 6), 2);
  EXPECT_EQ(*MapCompressionLevel(snapshotter::Compression::kGzip, 9), 3);
}

TEST(Archive, OciReferenceNameIsTheObject) {
  EXPECT_EQ(OciReferenceName("docker.io/library/busybox:latest"), "latest");
  EXPECT_EQ(OciReferenceName("127.0.0.1:5000/app:v1"), "v1");
  EXPECT_EQ(OciReferenceName("127.0.0.1:5000/app@sha256:abc"), "@sha256:abc");
}

TEST(Archive, TarHeadersMatchGoArchiveTar) {
  // The first block of a BuildKit v0.11.6 `type=oci` tarball ("blobs/", 0755, directory).
  std::string want(512, '\0');
  auto put = [&](size_t off, std::string_view v) { want.replace(off, v.size(), v); };
  put(0, "blobs/");
  put(100, std::string_view("0000755\0"
                            "0000000\0"
                            "0000000\0",
                            24));
  put(124, std::string_view("00000000000\0"
                            "00000000000\0",
                            24));
  put(148, std::string_view("010306\0 5", 9));
  put(257, std::string_view("ustar\0"
                            "00",
                            8));
  put(329, std::string_view("0000000\0"
                            "0000000\0",
                            16));
  snapshotter::TarHeader h;
  h.name = "blobs/";
  h.type = '5';
  h.mode = 0755;
  EXPECT_EQ(EncodeGoTarHeader(h), want);
}

TEST(LayerMediaType, DockerAndOciFlavours) {
  using snapshotter::Compression;
  EXPECT_EQ(LayerMediaType(Compression::kGzip, false),
            "application/vnd.docker.image.rootfs.diff.tar.gzip");
  EXPECT_EQ(LayerMediaType(Compression::kZstd, false),
            "application/vnd.docker.image.rootfs.diff.tar.zstd");
  EXPECT_EQ(LayerMediaType(Compression::kZstd, true),
            "application/vnd.oci.image.layer.v1.tar+zstd");
  EXPECT_EQ(LayerMediaType(Compression::kNone, true), "application/vnd.oci.image.layer.v1.tar");
}

}  // namespace
}  // namespace kiln::engine
