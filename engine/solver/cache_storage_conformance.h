// Test-only: the CacheStorage conformance suite (DESIGN.md: one suite per interface, run against
// every implementation).  Include it from exactly one test file per implementation and
// instantiate it:
//
//   INSTANTIATE_TEST_SUITE_P(Memory, CacheStorageConformance,
//                            ::testing::Values(CacheStorageFactory{"memory", open, false}));
//
// `open(dir)` opens the storage kept in `dir` (a fresh temp dir per test); persistent
// implementations are reopened there to check that records survive a restart.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/fs.h"
#include "engine/solver/cache_storage.h"

namespace kiln::engine::testing {

struct CacheStorageFactory {
  std::string name;
  std::function<absl::StatusOr<std::unique_ptr<CacheStorage>>(const std::string& dir)> open;
  bool persistent = false;
};

// Readable test names in ctest instead of the parameter's bytes.
inline void PrintTo(const CacheStorageFactory& f, std::ostream* os) { *os << f.name; }

inline std::string PrintFactory(const ::testing::TestParamInfo<CacheStorageFactory>& info) {
  return info.param.name;
}

class CacheStorageConformance : public ::testing::TestWithParam<CacheStorageFactory> {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("kiln-cache-conf-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::move(*dir);
    Reopen();
  }

  void Reopen() {
    storage_.reset();
    auto s = GetParam().open(dir_.path());
    ASSERT_TRUE(s.ok()) << s.status();
    storage_ = std::move(*s);
  }

  static std::chrono::system_clock::time_point At(int seconds) {
    return std::chrono::system_clock::time_point(std::chrono::seconds(1700000000 + seconds));
  }

  std::set<std::string> Keys() {
    std::set<std::string> out;
    EXPECT_TRUE(storage_
                    ->Walk([&](const std::string& k) {
                      out.insert(k);
                      return absl::OkStatus();
                    })
                    .ok());
    return out;
  }

  std::vector<std::string> ResultIds(const std::string& key) {
    std::vector<std::string> out;
    EXPECT_TRUE(storage_
                    ->WalkResults(key,
                                  [&](const CacheResultRecord& r) {
                                    out.push_back(r.id);
                                    return absl::OkStatus();
                                  })
                    .ok());
    return out;
  }

  std::set<std::string> Targets(const std::string& from, const CacheLink& link) {
    std::set<std::string> out;
    EXPECT_TRUE(storage_
                    ->WalkLinks(from, link,
                                [&](const std::string& to) {
                                  out.insert(to);
                                  return absl::OkStatus();
                                })
                    .ok());
    return out;
  }

  bool Exists(const std::string& key) {
    auto e = storage_->Exists(key);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() && *e;
  }

  TempDir dir_;
  std::unique_ptr<CacheStorage> storage_;
};

inline CacheLink L(int input, int output, const std::string& digest,
                   const std::string& selector = "") {
  return CacheLink{input, output, digest, selector};
}

TEST_P(CacheStorageConformance, EmptyStorage) {
  EXPECT_FALSE(Exists("k"));
  EXPECT_TRUE(Keys().empty());
  EXPECT_TRUE(ResultIds("k").empty());
  EXPECT_TRUE(Targets("k", L(0, 0, "d")).empty());
  EXPECT_TRUE(storage_->Release("unknown").ok());
  EXPECT_EQ(storage_->Load("k", "r").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(CacheStorageConformance, ResultsNewestFirstAndIdempotent) {
  ASSERT_TRUE(storage_->AddResult("k", {"old", At(1)}).ok());
  ASSERT_TRUE(storage_->AddResult("k", {"new", At(5)}).ok());
  ASSERT_TRUE(storage_->AddResult("k", {"mid", At(3)}).ok());
  ASSERT_TRUE(storage_->AddResult("k", {"mid", At(3)}).ok());
  EXPECT_EQ(ResultIds("k"), (std::vector<std::string>{"new", "mid", "old"}));
  EXPECT_TRUE(Exists("k"));
  auto rec = storage_->Load("k", "mid");
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->created, At(3));
  EXPECT_EQ(storage_->Load("k", "nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(storage_->Load("other", "mid").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(CacheStorageConformance, LinksAreFilteredByEveryField) {
  ASSERT_TRUE(storage_->AddLink("a", L(0, 0, "d1"), "t1").ok());
  ASSERT_TRUE(storage_->AddLink("a", L(0, 0, "d1"), "t2").ok());
  ASSERT_TRUE(storage_->AddLink("a", L(1, 0, "d1"), "t3").ok());
  ASSERT_TRUE(storage_->AddLink("a", L(0, 1, "d1"), "t4").ok());
  ASSERT_TRUE(storage_->AddLink("a", L(0, 0, "d2"), "t5").ok());
  ASSERT_TRUE(storage_->AddLink("a", L(0, 0, "d1", "sel"), "t6").ok());
  ASSERT_TRUE(storage_->AddLink("a", L(0, 0, "d1"), "t1").ok());  // again: no-op
  EXPECT_EQ(Targets("a", L(0, 0, "d1")), (std::set<std::string>{"t1", "t2"}));
  EXPECT_EQ(Targets("a", L(1, 0, "d1")), (std::set<std::string>{"t3"}));
  EXPECT_EQ(Targets("a", L(0, 1, "d1")), (std::set<std::string>{"t4"}));
  EXPECT_EQ(Targets("a", L(0, 0, "d2")), (std::set<std::string>{"t5"}));
  EXPECT_EQ(Targets("a", L(0, 0, "d1", "sel")), (std::set<std::string>{"t6"}));
  EXPECT_TRUE(Targets("b", L(0, 0, "d1")).empty());
  // A key that is a prefix of another must not see the other's links.
  ASSERT_TRUE(storage_->AddLink("ab", L(0, 0, "d1"), "t7").ok());
  EXPECT_EQ(Targets("a", L(0, 0, "d1")), (std::set<std::string>{"t1", "t2"}));

  auto has = storage_->HasLink("a", L(0, 0, "d1"), "t2");
  ASSERT_TRUE(has.ok());
  EXPECT_TRUE(*has);
  has = storage_->HasLink("a", L(0, 0, "d1"), "t3");
  ASSERT_TRUE(has.ok());
  EXPECT_FALSE(*has);

  EXPECT_TRUE(Exists("a"));
  EXPECT_TRUE(Exists("t1"));  // link targets exist too
  EXPECT_EQ(Keys(), (std::set<std::string>{"a", "ab", "t1", "t2", "t3", "t4", "t5", "t6", "t7"}));
}

TEST_P(CacheStorageConformance, Backlinks) {
  ASSERT_TRUE(storage_->AddLink("a", L(0, 0, "d"), "t").ok());
  ASSERT_TRUE(storage_->AddLink("b", L(1, 2, "d", "s"), "t").ok());
  std::set<std::pair<std::string, CacheLink>> back;
  ASSERT_TRUE(storage_
                  ->WalkBacklinks("t",
                                  [&](const std::string& from, const CacheLink& l) {
                                    back.insert({from, l});
                                    return absl::OkStatus();
                                  })
                  .ok());
  EXPECT_EQ(back, (std::set<std::pair<std::string, CacheLink>>{{"a", L(0, 0, "d")},
                                                               {"b", L(1, 2, "d", "s")}}));
}

TEST_P(CacheStorageConformance, KeysByResult) {
  CacheUpdate u;
  u.results.push_back({"k1", {"r", At(1)}});
  u.results.push_back({"k2", {"r", At(1)}});
  u.results.push_back({"k3", {"other", At(1)}});
  ASSERT_TRUE(storage_->Commit(u).ok());
  std::set<std::string> keys;
  ASSERT_TRUE(storage_
                  ->WalkKeysByResult("r",
                                     [&](const std::string& k) {
                                       keys.insert(k);
                                       return absl::OkStatus();
                                     })
                  .ok());
  EXPECT_EQ(keys, (std::set<std::string>{"k1", "k2"}));
}

TEST_P(CacheStorageConformance, CallbackErrorStopsWalk) {
  ASSERT_TRUE(storage_->AddResult("k1", {"r1", At(1)}).ok());
  ASSERT_TRUE(storage_->AddResult("k2", {"r2", At(1)}).ok());
  int calls = 0;
  absl::Status st = storage_->Walk([&](const std::string&) {
    ++calls;
    return absl::AbortedError("stop");
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(calls, 1);
}

TEST_P(CacheStorageConformance, CallbacksMayUseTheStorage) {
  ASSERT_TRUE(storage_->AddLink("a", L(0, 0, "d"), "b").ok());
  ASSERT_TRUE(storage_->AddResult("b", {"r", At(1)}).ok());
  absl::Status st = storage_->Walk([&](const std::string& k) {
    return storage_->AddResult(k + "-seen", {"x", At(2)});
  });
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_TRUE(Exists("a-seen"));
}

TEST_P(CacheStorageConformance, CommitIsAllOrNothing) {
  CacheUpdate bad;
  bad.results.push_back({"k", {"r", At(1)}});
  bad.links.push_back({"a", L(0, 0, "d"), "b"});
  bad.links.push_back({"a", L(0, 0, "d"), ""});  // empty target: invalid
  EXPECT_EQ(storage_->Commit(bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Keys().empty());

  CacheUpdate nul;
  nul.results.push_back({std::string("k\0x", 3), {"r", At(1)}});
  EXPECT_EQ(storage_->Commit(nul).code(), absl::StatusCode::kInvalidArgument);
  CacheUpdate empty_id;
  empty_id.results.push_back({"k", {"", At(1)}});
  EXPECT_EQ(storage_->Commit(empty_id).code(), absl::StatusCode::kInvalidArgument);
  CacheUpdate no_digest;
  no_digest.links.push_back({"a", L(0, 0, ""), "b"});
  EXPECT_EQ(storage_->Commit(no_digest).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Keys().empty());

  CacheUpdate good;
  good.results.push_back({"k", {"r", At(1)}});
  good.links.push_back({"a", L(0, 0, "d"), "k"});
  ASSERT_TRUE(storage_->Commit(good).ok());
  EXPECT_EQ(Keys(), (std::set<std::string>{"a", "k"}));
}

TEST_P(CacheStorageConformance, ReleaseRemovesResultFromEveryKey) {
  CacheUpdate u;
  u.results.push_back({"k1", {"r", At(1)}});
  u.results.push_back({"k1", {"keep", At(2)}});
  u.results.push_back({"k2", {"r", At(1)}});
  ASSERT_TRUE(storage_->Commit(u).ok());
  ASSERT_TRUE(storage_->Release("r").ok());
  EXPECT_EQ(ResultIds("k1"), (std::vector<std::string>{"keep"}));
  EXPECT_TRUE(ResultIds("k2").empty());
  EXPECT_FALSE(Exists("k2"));
  EXPECT_TRUE(Exists("k1"));
  EXPECT_TRUE(storage_->Release("r").ok());  // twice is fine
}

// root --> mid --> leaf, each with a result; pruning works from the leaves up.
TEST_P(CacheStorageConformance, ReleasePrunesEmptyBranchesUpwards) {
  CacheUpdate u;
  u.links.push_back({"root", L(0, 0, "dm"), "mid"});
  u.links.push_back({"mid", L(0, 0, "dl"), "leaf"});
  u.links.push_back({"other", L(1, 0, "dl"), "leaf"});
  u.results.push_back({"root", {"r-root", At(1)}});
  u.results.push_back({"mid", {"r-mid", At(2)}});
  u.results.push_back({"leaf", {"r-leaf", At(3)}});
  ASSERT_TRUE(storage_->Commit(u).ok());

  // The root's result goes, but it still leads to results: kept.
  ASSERT_TRUE(storage_->Release("r-root").ok());
  EXPECT_TRUE(Exists("root"));
  EXPECT_EQ(Targets("root", L(0, 0, "dm")), (std::set<std::string>{"mid"}));

  // The leaf goes with the links into it; "other" had nothing else and goes too; mid keeps its
  // own result.
  ASSERT_TRUE(storage_->Release("r-leaf").ok());
  EXPECT_FALSE(Exists("leaf"));
  EXPECT_FALSE(Exists("other"));
  EXPECT_TRUE(Targets("mid", L(0, 0, "dl")).empty());
  EXPECT_TRUE(Exists("mid"));

  // Now mid has no result and no outgoing link: it goes, and so does root.
  ASSERT_TRUE(storage_->Release("r-mid").ok());
  EXPECT_FALSE(Exists("mid"));
  EXPECT_FALSE(Exists("root"));
  EXPECT_TRUE(Keys().empty());
}

TEST_P(CacheStorageConformance, SurvivesReopen) {
  if (!GetParam().persistent) {
    GTEST_SKIP() << GetParam().name << " is not persistent";
  }
  CacheUpdate u;
  u.links.push_back({"a", L(0, 1, "d", "s"), "b"});
  u.results.push_back({"b", {"r", At(7)}});
  ASSERT_TRUE(storage_->Commit(u).ok());
  Reopen();
  EXPECT_EQ(Targets("a", L(0, 1, "d", "s")), (std::set<std::string>{"b"}));
  auto rec = storage_->Load("b", "r");
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->created, At(7));
  ASSERT_TRUE(storage_->Release("r").ok());
  Reopen();
  EXPECT_TRUE(Keys().empty());
}

TEST_P(CacheStorageConformance, ConcurrentCommits) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string key = "k" + std::to_string(t) + "-" + std::to_string(i);
        CacheUpdate u;
        u.links.push_back({"root", L(0, 0, "d"), key});
        u.results.push_back({key, {"r" + std::to_string(t), At(i)}});
        EXPECT_TRUE(storage_->Commit(u).ok());
        if (i % 10 == 9) {
          EXPECT_TRUE(storage_->Release("nothing").ok());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(Targets("root", L(0, 0, "d")).size(), static_cast<size_t>(kThreads * kPerThread));
  ASSERT_TRUE(storage_->Release("r0").ok());
  EXPECT_EQ(Targets("root", L(0, 0, "d")).size(), static_cast<size_t>((kThreads - 1) * kPerThread));
}

TEST_P(CacheStorageConformance, ListAndReleaseUnreferenced) {
  CacheUpdate u;
  u.results.push_back({"k1", {"r1", At(5)}});
  u.results.push_back({"k2", {"r1", At(4)}});
  u.results.push_back({"k3", {"r2", At(1)}});
  ASSERT_TRUE(storage_->Commit(u).ok());
  auto list = ListCachedResults(*storage_);
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "r2");  // oldest first
  EXPECT_EQ((*list)[1].id, "r1");
  EXPECT_EQ((*list)[1].created, At(4));
  EXPECT_EQ(std::set<std::string>((*list)[1].keys.begin(), (*list)[1].keys.end()),
            (std::set<std::string>{"k1", "k2"}));
  auto released = ReleaseUnreferenced(*storage_, [](const std::string& id) { return id == "r2"; });
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(*released, 1);
  EXPECT_EQ(Keys(), (std::set<std::string>{"k3"}));
}

}  // namespace kiln::engine::testing
