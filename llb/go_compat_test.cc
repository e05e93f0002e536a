#include "llb/go_compat.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace kiln::llb {
namespace {

TEST(GoJsonQuote, MatchesEncodingJson) {
  EXPECT_EQ(GoJsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(GoJsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(GoJsonQuote("\n\r\t\b\f"), "\"\\n\\r\\t\\u0008\\u000c\"");
  EXPECT_EQ(GoJsonQuote("<&>"), "\"\\u003c\\u0026\\u003e\"");
  EXPECT_EQ(GoJsonQuote("\u2028\u2029"), "\"\\u2028\\u2029\"");
  EXPECT_EQ(GoJsonQuote("caf\u00e9 \U0001F600"), "\"caf\u00e9 \U0001F600\"");
  EXPECT_EQ(GoJsonQuote(std::string("a\xff"
                                    "b\xc3",
                                    4)),
            "\"a\\ufffdb\\ufffd\"");
  EXPECT_EQ(GoJsonQuote(std::string("\xed\xa0\x80", 3)), "\"\\ufffd\\ufffd\\ufffd\"");  // surrogate
  EXPECT_EQ(GoJsonQuote(std::string("\0\x7f", 2)), "\"\\u0000\x7f\"");
  EXPECT_EQ(GoJsonStringArray({"a", "b<"}), "[\"a\",\"b\\u003c\"]");
  EXPECT_EQ(GoJsonStringArray({}), "[]");
}

TEST(NormalizePlatform, MatchesContainerd) {
  auto norm = [](std::string os, std::string arch, std::string variant) {
    oci::Platform p;
    p.os = std::move(os);
    p.architecture = std::move(arch);
    p.variant = std::move(variant);
    p = llb::NormalizePlatform(p);
    return p.os + "/" + p.architecture + (p.variant.empty() ? "" : "/" + p.variant);
  };
  EXPECT_EQ(norm("", "x86_64", ""), "linux/amd64");
  EXPECT_EQ(norm("Linux", "AMD64", "v1"), "linux/amd64");
  EXPECT_EQ(norm("linux", "amd64", "v3"), "linux/amd64/v3");
  EXPECT_EQ(norm("linux", "aarch64", "v8"), "linux/arm64");
  EXPECT_EQ(norm("linux", "arm64", "8"), "linux/arm64");
  EXPECT_EQ(norm("linux", "armhf", ""), "linux/arm/v7");
  EXPECT_EQ(norm("linux", "armel", ""), "linux/arm/v6");
  EXPECT_EQ(norm("linux", "arm", ""), "linux/arm/v7");
  EXPECT_EQ(norm("linux", "arm", "5"), "linux/arm/v5");
  EXPECT_EQ(norm("linux", "i386", "x"), "linux/386");
  EXPECT_EQ(norm("macos", "arm64", ""), "darwin/arm64");
  EXPECT_EQ(norm("windows", "riscv64", ""), "windows/riscv64");
  EXPECT_EQ(DefaultPathEnv("linux"),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  EXPECT_EQ(DefaultPathEnv("windows"), "c:\\Windows\\System32;c:\\Windows");
}

TEST(NewRandomID, Has25Base36Characters) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string id = NewRandomID();
    ASSERT_EQ(id.size(), 25u) << id;
    for (char c : id) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace kiln::llb
