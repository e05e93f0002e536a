#include "engine/executor/user.h"

#include <gtest/gtest.h>

namespace kiln::engine::internal {
namespace {

constexpr char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "\n"
    "  dup:x:1000:7:second entry for 1000:/dup:/bin/sh  \n";
constexpr char kGroup[] =
    "root:x:0:root\n"
    "wheel:x:10:root,app\n"
    "staff:x:50:app\n"
    "app:x:1000:\n";

Identity Resolve(std::string_view user, std::string_view passwd = kPasswd,
                 std::string_view group = kGroup) {
  auto id = ResolveUser(user, passwd, group);
  EXPECT_TRUE(id.ok()) << user << ": " << id.status();
  return id.ok() ? *id : Identity{};
}

TEST(ResolveUser, DefaultIsRootWithItsGroups) {
  Identity id = Resolve("");
  EXPECT_EQ(id.uid, 0u);
  EXPECT_EQ(id.gid, 0u);
  // root is listed in its own group: BuildKit keeps the list as it is.
  EXPECT_EQ(id.groups, (std::vector<gid_t>{0, 10}));
  EXPECT_EQ(id.home, "/root");
  // Without any passwd file, the default is still root.
  Identity bare = Resolve("", "", "");
  EXPECT_EQ(bare.uid, 0u);
  EXPECT_EQ(bare.groups, (std::vector<gid_t>{0}));
  EXPECT_EQ(bare.home, "/");
}

TEST(ResolveUser, NameAndNumericUid) {
  for (std::string_view spec : {"app", "1000"}) {
    Identity id = Resolve(spec);
    EXPECT_EQ(id.uid, 1000u) << spec;
    EXPECT_EQ(id.gid, 1000u) << spec;
    EXPECT_EQ(id.groups, (std::vector<gid_t>{1000, 10, 50})) << spec;
    EXPECT_EQ(id.home, "/home/app") << spec;
  }
}

TEST(ResolveUser, NumericFastPathSkipsTheFiles) {
  Identity id = Resolve("1000:50");
  EXPECT_EQ(id.uid, 1000u);
  EXPECT_EQ(id.gid, 50u);
  EXPECT_EQ(id.groups, (std::vector<gid_t>{50}));
  EXPECT_EQ(id.home, "/home/app");  // HOME still comes from passwd, as runc does
  Identity rr = Resolve("root:root", "", "");
  EXPECT_EQ(rr.uid, 0u);
  EXPECT_EQ(rr.gid, 0u);
}

TEST(ResolveUser, ExplicitGroupByNameOrNumber) {
  Identity id = Resolve("app:staff");
  EXPECT_EQ(id.gid, 50u);
  EXPECT_EQ(id.groups, (std::vector<gid_t>{50}));
  Identity numeric = Resolve("app:4321");  // numeric gid needs no entry
  EXPECT_EQ(numeric.gid, 4321u);
  Identity by_uid_group = Resolve("1000:wheel");
  EXPECT_EQ(by_uid_group.uid, 1000u);
  EXPECT_EQ(by_uid_group.gid, 10u);
}

TEST(ResolveUser, NumericUidWithoutEntry) {
  Identity id = Resolve("4242");
  EXPECT_EQ(id.uid, 4242u);
  EXPECT_EQ(id.gid, 0u);
  EXPECT_EQ(id.groups, (std::vector<gid_t>{0}));
  EXPECT_EQ(id.home, "/");
}

TEST(ResolveUser, EmptyUserPartMeansUidZero) {
  Identity id = Resolve(":50");
  EXPECT_EQ(id.uid, 0u);
  EXPECT_EQ(id.gid, 50u);
}

TEST(ResolveUser, UnknownNamesFailWithBuildKitsWording) {
  auto u = ResolveUser("bogus", kPasswd, kGroup);
  EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(u.status().message(), "unable to find user bogus: no matching entries in passwd file");
  auto g = ResolveUser("app:bogus", kPasswd, kGroup);
  EXPECT_EQ(g.status().message(), "unable to find group bogus: no matching entries in group file");
  EXPECT_FALSE(ResolveUser("app", "", "").ok());  // no passwd file: names cannot resolve
}

TEST(ResolveUser, RangeIsChecked) {
  EXPECT_FALSE(ResolveUser("-1", kPasswd, kGroup).ok());
  EXPECT_FALSE(ResolveUser("4294967295:0", kPasswd, kGroup).ok());
  EXPECT_FALSE(ResolveUser("app:-5", kPasswd, kGroup).ok());
}

}  // namespace
}  // namespace kiln::engine::internal
