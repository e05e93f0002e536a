#include "snapshotter/compression.h"

#include "gtest/gtest.h"
#include "snapshotter/layer_test_util.h"

namespace kiln::snapshotter {
namespace {

std::string Decompress(const std::string& blob, size_t read_size, absl::Status* status) {
  StringSource src(blob);
  DecompressingSource d(src);
  std::string out(read_size, '\0'), all;
  for (;;) {
    auto n = d.Read(out.data(), out.size());
    if (!n.ok()) {
      *status = n.status();
      return all;
    }
    if (*n == 0) break;
    all.append(out.data(), *n);
  }
  EXPECT_EQ(d.compressed_digest(), Digest::Sha256Of(blob));
  EXPECT_EQ(d.compressed_size(), static_cast<int64_t>(blob.size()));
  return all;
}

TEST(CompressionTest, RoundTripsWithAnyReadSize) {
  std::string data;
  for (int i = 0; i < 300000; ++i) data.push_back(static_cast<char>((i * 31) % 251 + (i / 1000)));
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    std::string blob = c == Compression::kNone ? data : testing::Compress(data, c);
    EXPECT_EQ(DetectCompression(blob), c);
    for (size_t rs : {1, 7, 4096, 1 << 20}) {
      absl::Status s;
      std::string out = Decompress(blob, rs, &s);
      EXPECT_TRUE(s.ok()) << CompressionName(c) << " read size " << rs << ": " << s;
      EXPECT_EQ(out.size(), data.size()) << CompressionName(c) << " " << rs;
      EXPECT_TRUE(out == data) << CompressionName(c) << " " << rs;
    }
  }
}

TEST(CompressionTest, GzipOutputIsDeterministicWithFixedHeader) {
  std::string a = testing::Compress("same bytes", Compression::kGzip);
  std::string b = testing::Compress("same bytes", Compression::kGzip);
  EXPECT_EQ(a, b);
  ASSERT_GE(a.size(), 10u);
  EXPECT_EQ(a.substr(4, 4), std::string(4, '\0')) << "mtime must be 0";
  EXPECT_EQ(static_cast<uint8_t>(a[9]), 0xff) << "OS must be 'unknown'";
}

TEST(CompressionTest, MediaTypes) {
  EXPECT_EQ(*CompressionOfMediaType("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Compression::kGzip);
  EXPECT_EQ(*CompressionOfMediaType("application/vnd.oci.image.layer.v1.tar+zstd"),
            Compression::kZstd);
  EXPECT_FALSE(CompressionOfMediaType("application/vnd.oci.image.layer.v1.tar+bzip2").ok());
}

}  // namespace
}  // namespace kiln::snapshotter
