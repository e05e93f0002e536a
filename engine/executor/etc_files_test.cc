#include "engine/executor/etc_files.h"

#include <gtest/gtest.h>

namespace kiln::engine::internal {
namespace {

constexpr char kGoogleDns[] =
    "\nnameserver 8.8.8.8\nnameserver 8.8.4.4\nnameserver 2001:4860:4860::8888\n"
    "nameserver 2001:4860:4860::8844";

TEST(HostsFile, LocalhostHostnameAndExtraHosts) {
  auto hosts = MakeHostsFile("buildkitsandbox", {});
  ASSERT_TRUE(hosts.ok());
  EXPECT_EQ(*hosts,
            "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n");

  hosts = MakeHostsFile("h", {{"db", "10.0.0.5"}, {"six", "2001:DB8:0::1"}});
  ASSERT_TRUE(hosts.ok());
  EXPECT_EQ(*hosts,
            "127.0.0.1\tlocalhost h\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "10.0.0.5\tdb\n2001:db8::1\tsix\n");
}

TEST(HostsFile, RejectsBadAddressesAndInjection) {
  EXPECT_EQ(MakeHostsFile("h", {{"db", "10.0.0"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeHostsFile("h", {{"db\n1.2.3.4 evil", "10.0.0.1"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeHostsFile("h", {{"", "10.0.0.1"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Hostname, Validation) {
  EXPECT_TRUE(ValidateHostname("buildkitsandbox").ok());
  EXPECT_TRUE(ValidateHostname("a-b.c_d").ok());
  EXPECT_FALSE(ValidateHostname("").ok());
  EXPECT_FALSE(ValidateHostname("a b").ok());
  EXPECT_FALSE(ValidateHostname(std::string(65, 'a')).ok());
}

TEST(ResolvConf, IsolatedNetworkDropsLocalhostNameservers) {
  EXPECT_EQ(FilterResolvConf("search x\nnameserver 127.0.0.53\nnameserver ::1\nnameserver "
                             "10.1.2.3\noptions ndots:2\n",
                             NetworkMode::kNone),
            "search x\nnameserver 10.1.2.3\noptions ndots:2\n");
}

TEST(ResolvConf, NoNameserverLeftAddsPublicResolvers) {
  // libnetwork's FilterResolvDNS output, byte for byte.
  EXPECT_EQ(FilterResolvConf("nameserver 127.0.0.1\n", NetworkMode::kNone),
            std::string("") + kGoogleDns);
  EXPECT_EQ(FilterResolvConf("search x\nnameserver 127.0.0.1\n", NetworkMode::kNone),
            std::string("search x\n") + kGoogleDns);
  EXPECT_EQ(FilterResolvConf("", NetworkMode::kNone), std::string("") + kGoogleDns);
}

TEST(ResolvConf, HostNetworkKeepsTheHostFile) {
  std::string host = "nameserver 127.0.0.53\noptions edns0\n";
  EXPECT_EQ(FilterResolvConf(host, NetworkMode::kHost), host);
  // ...unless it names no nameserver at all.
  EXPECT_EQ(FilterResolvConf("search x\n", NetworkMode::kHost),
            std::string("search x\n") + kGoogleDns);
}

TEST(ResolvConf, Nameservers) {
  EXPECT_EQ(ResolvConfNameservers("# nameserver 1.1.1.1\nnameserver 9.9.9.9 # q\n nameserver  "
                                  "fe80::1\nnameserverx 1.2.3.4\n"),
            (std::vector<std::string>{"9.9.9.9", "fe80::1"}));
}

}  // namespace
}  // namespace kiln::engine::internal
