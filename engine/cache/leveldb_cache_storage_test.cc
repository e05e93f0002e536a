#include "engine/cache/leveldb_cache_storage.h"

#include <leveldb/db.h>

#include "base/status.h"
#include "engine/solver/cache_storage_conformance.h"

namespace kiln::engine::testing {
namespace {

absl::StatusOr<std::unique_ptr<CacheStorage>> OpenLevelDb(const std::string& dir) {
  // Unsynced writes keep the suite fast; durability against process death does not depend on it.
  KILN_ASSIGN_OR_RETURN(auto s, LevelDbCacheStorage::Open(dir + "/cache", {.sync = false}));
  return std::unique_ptr<CacheStorage>(std::move(s));
}

absl::StatusOr<std::unique_ptr<CacheStorage>> OpenLevelDbSynced(const std::string& dir) {
  KILN_ASSIGN_OR_RETURN(auto s, LevelDbCacheStorage::Open(dir + "/cache"));
  return std::unique_ptr<CacheStorage>(std::move(s));
}

INSTANTIATE_TEST_SUITE_P(LevelDb, CacheStorageConformance,
                         ::testing::Values(CacheStorageFactory{"leveldb", OpenLevelDb, true},
                                           CacheStorageFactory{"leveldb_synced", OpenLevelDbSynced,
                                                               true}),
                         PrintFactory);

TEST(LevelDbCacheStorageTest, SecondOpenOfTheSameDatabaseIsUnavailable) {
  auto dir = TempDir::Create("kiln-leveldb-");
  ASSERT_TRUE(dir.ok());
  auto first = LevelDbCacheStorage::Open(dir->path());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = LevelDbCacheStorage::Open(dir->path());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
}

TEST(LevelDbCacheStorageTest, RefusesANewerFormat) {
  auto dir = TempDir::Create("kiln-leveldb-");
  ASSERT_TRUE(dir.ok());
  {
    leveldb::Options o;
    o.create_if_missing = true;
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(o, dir->path(), &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), "V", "99").ok());
  }
  auto s = LevelDbCacheStorage::Open(dir->path());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_NE(s.status().message().find("`99`"), std::string_view::npos);
}

TEST(LevelDbCacheStorageTest, MalformedRecordIsDataLoss) {
  auto dir = TempDir::Create("kiln-leveldb-");
  ASSERT_TRUE(dir.ok());
  {
    auto s = LevelDbCacheStorage::Open(dir->path());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->AddResult("k", {"r", std::chrono::system_clock::now()}).ok());
  }
  {
    leveldb::DB* raw = nullptr;
    ASSERT_TRUE(leveldb::DB::Open(leveldb::Options(), dir->path(), &raw).ok());
    std::unique_ptr<leveldb::DB> db(raw);
    ASSERT_TRUE(db->Put(leveldb::WriteOptions(), std::string("R\0k\0r", 5), "short").ok());
  }
  auto s = LevelDbCacheStorage::Open(dir->path());
  ASSERT_TRUE(s.ok());
  absl::Status st =
      (*s)->WalkResults("k", [](const CacheResultRecord&) { return absl::OkStatus(); });
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
}

}  // namespace
}  // namespace kiln::engine::testing
