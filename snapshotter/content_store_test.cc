#include <atomic>
#include <thread>

#include <dirent.h>
#include <sys/stat.h>

#include "base/fs.h"
#include "base/strings.h"
#include "gtest/gtest.h"
#include "snapshotter/local_content_store.h"

namespace kiln::snapshotter {
namespace {

class ContentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("kiln-cs-");
    ASSERT_TRUE(dir.ok());
    dir_ = std::move(*dir);
    Reopen();
  }
  void Reopen(LocalContentStoreOptions opts = {}) {
    store_.reset();
    auto s = LocalContentStore::Open(dir_.path(), opts);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  std::string IngestRoot() const { return dir_.path() + "/content/ingest"; }
  int CountEntries(const std::string& path) {
    int n = 0;
    for (auto& name : ListNames(path)) n += !name.empty();
    return n;
  }
  static std::vector<std::string> ListNames(const std::string& path) {
    std::vector<std::string> out;
    if (DIR* d = opendir(path.c_str())) {
      while (dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(n);
      }
      closedir(d);
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<LocalContentStore> store_;
};

TEST_F(ContentStoreTest, CommitVerifiesAndPublishes) {
  std::string data = "hello layer";
  Digest d = Digest::Sha256Of(data);
  auto w = store_->OpenWriter({.ref = "r1"});
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Write(data.data(), 5).ok());
  ASSERT_TRUE((*w)->Write(data.data() + 5, data.size() - 5).ok());
  EXPECT_EQ((*w)->offset(), static_cast<int64_t>(data.size()));
  EXPECT_EQ((*w)->digest(), d);
  ASSERT_TRUE((*w)->Commit(d, data.size(), {{"kiln.gc.root", "1"}}).ok());

  auto info = store_->Info(d);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, static_cast<int64_t>(data.size()));
  EXPECT_EQ(info->labels.at("kiln.gc.root"), "1");
  auto blob = ReadBlob(*store_, d);
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(*blob, data);

  auto r = store_->OpenReader(d);
  ASSERT_TRUE(r.ok());
  char buf[5];
  auto n = (*r)->ReadAt(buf, 5, 6);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::string(buf, *n), "layer");
  EXPECT_EQ(CountEntries(IngestRoot()), 0);
}

TEST_F(ContentStoreTest, DigestMismatchIsDataLossAndStoresNothing) {
  std::string data = "tampered";
  Digest wrong = Digest::Sha256Of("original");
  auto w = store_->OpenWriter({.ref = "bad"});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(data.data(), data.size()).ok());
  absl::Status s = (*w)->Commit(wrong, data.size());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_TRUE(absl::IsNotFound(store_->Info(wrong).status()));
  EXPECT_TRUE(absl::IsNotFound(store_->Info(Digest::Sha256Of(data)).status()));
  EXPECT_EQ(CountEntries(dir_.path() + "/content/blobs/sha256"), 0);
  EXPECT_EQ(CountEntries(IngestRoot()), 0);
  // The writer is finished.
  EXPECT_EQ((*w)->Write("x", 1).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ContentStoreTest, SizeMismatchIsDataLoss) {
  std::string data = "abc";
  auto w = store_->OpenWriter({.ref = "size"});
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(data.data(), data.size()).ok());
  EXPECT_EQ((*w)->Commit(Digest::Sha256Of(data), 4).code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::IsNotFound(store_->Info(Digest::Sha256Of(data)).status()));
}

TEST_F(ContentStoreTest, CopyToStoreRejectsOverlongStream) {
  std::string data = "0123456789";
  StringSource src(data);
  absl::Status s = CopyToStore(*store_, src, Digest::Sha256Of("01234"), 5);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_EQ(CountEntries(dir_.path() + "/content/blobs/sha256"), 0);
}

TEST_F(ContentStoreTest, ResumeAfterDroppedWriterAndRestart) {
  std::string data(3 << 20, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  Digest d = Digest::Sha256Of(data);
  {
    auto w = store_->OpenWriter({.ref = "resume"});
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write(data.data(), 1234567).ok());
  }          // dropped: an interrupted download
  Reopen();  // a daemon restart keeps the ingest
  auto ingests = store_->ListIngests();
  ASSERT_TRUE(ingests.ok());
  ASSERT_EQ(ingests->size(), 1u);
  EXPECT_EQ((*ingests)[0].ref, "resume");
  EXPECT_EQ((*ingests)[0].offset, 1234567);

  auto w = store_->OpenWriter({.ref = "resume"});
  ASSERT_TRUE(w.ok());
  ASSERT_EQ((*w)->offset(), 1234567);
  EXPECT_EQ((*w)->digest(), Digest::Sha256Of(std::string_view(data).substr(0, 1234567)));
  ASSERT_TRUE((*w)->Write(data.data() + 1234567, data.size() - 1234567).ok());
  ASSERT_TRUE((*w)->Commit(d, data.size()).ok());
  auto info = store_->Info(d);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, static_cast<int64_t>(data.size()));

  // Truncate restarts a resumed ingest.
  {
    auto w2 = store_->OpenWriter({.ref = "again"});
    ASSERT_TRUE((*w2)->Write("garbage", 7).ok());
  }
  auto w3 = store_->OpenWriter({.ref = "again"});
  ASSERT_TRUE(w3.ok());
  EXPECT_EQ((*w3)->offset(), 7);
  ASSERT_TRUE((*w3)->Truncate(0).ok());
  ASSERT_TRUE((*w3)->Write("good", 4).ok());
  EXPECT_TRUE((*w3)->Commit(Digest::Sha256Of("good"), 4).ok());
}

TEST_F(ContentStoreTest, SecondWriterForSameRefIsUnavailable) {
  auto w1 = store_->OpenWriter({.ref = "same"});
  ASSERT_TRUE(w1.ok());
  auto w2 = store_->OpenWriter({.ref = "same"});
  EXPECT_EQ(w2.status().code(), absl::StatusCode::kUnavailable) << w2.status();
  EXPECT_EQ(store_->AbortIngest("same").code(), absl::StatusCode::kUnavailable);
  w1->reset();
  auto w3 = store_->OpenWriter({.ref = "same"});
  EXPECT_TRUE(w3.ok());
  w3->reset();
  EXPECT_TRUE(store_->AbortIngest("same").ok());
  EXPECT_EQ(CountEntries(IngestRoot()), 0);
}

TEST_F(ContentStoreTest, OpenWriterWithRetryWaitsForTheRef) {
  auto w1 = store_->OpenWriter({.ref = "wait"});
  ASSERT_TRUE(w1.ok());
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    w1->reset();
  });
  auto w2 = OpenWriterWithRetry(*store_, {.ref = "wait"});
  releaser.join();
  EXPECT_TRUE(w2.ok()) << w2.status();
}

TEST_F(ContentStoreTest, ExpectedExistingIsAlreadyExists) {
  auto d = WriteBlob(*store_, "config");
  ASSERT_TRUE(d.ok());
  auto w = store_->OpenWriter({.ref = "x", .expected = *d});
  EXPECT_EQ(w.status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(ContentStoreTest, IdenticalConcurrentContentCommitsOnce) {
  std::string data(1 << 20, 'q');
  Digest d = Digest::Sha256Of(data);
  constexpr int kWriters = 8;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      auto w = store_->OpenWriter({.ref = StrCat("concurrent-", i)});
      if (!w.ok()) return;
      for (size_t off = 0; off < data.size(); off += 4096) {
        if (!(*w)->Write(data.data() + off, 4096).ok()) return;
      }
      if ((*w)->Commit(d, data.size(), {{StrCat("writer.", i), "1"}}).ok()) ok++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kWriters);
  int blobs = 0;
  ASSERT_TRUE(store_
                  ->Walk([&](const ContentInfo& info) {
                    EXPECT_EQ(info.digest, d);
                    EXPECT_EQ(info.labels.size(), static_cast<size_t>(kWriters));
                    ++blobs;
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(blobs, 1);
  EXPECT_EQ(CountEntries(IngestRoot()), 0);
}

TEST_F(ContentStoreTest, LabelsAreDurableAndDeleteRemovesEverything) {
  auto d = WriteBlob(*store_, "manifest", Digest(), {{"a", "1"}, {"b", "2"}});
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(store_->UpdateLabels(*d, {{"a", ""}, {"c", "3"}}).ok());
  Reopen();
  auto info = store_->Info(*d);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labels, (Labels{{"b", "2"}, {"c", "3"}}));
  ASSERT_TRUE(store_->Delete(*d).ok());
  EXPECT_TRUE(absl::IsNotFound(store_->Info(*d).status()));
  EXPECT_TRUE(absl::IsNotFound(store_->Delete(*d)));
  EXPECT_EQ(CountEntries(dir_.path() + "/content/labels/sha256"), 0);
}

TEST_F(ContentStoreTest, CrashLeftoversAreCleanedOnOpen) {
  // Simulate crashes: a half-created ingest (no ref file), a stale ingest, a label temp file and
  // labels whose blob never got renamed in.
  ASSERT_TRUE(MakeDirs(IngestRoot() + "/halfmade").ok());
  ASSERT_TRUE(WriteFileAtomic(IngestRoot() + "/halfmade/data", "partial").ok());
  {
    auto w = store_->OpenWriter({.ref = "old"});
    ASSERT_TRUE((*w)->Write("old", 3).ok());
  }
  std::string labels = dir_.path() + "/content/labels/sha256/";
  ASSERT_TRUE(WriteFileAtomic(labels + std::string(64, 'a') + ".json", "{}").ok());
  ASSERT_TRUE(WriteFileAtomic(labels + "x.json.tmp-123456", "{").ok());
  ASSERT_TRUE(WriteBlob(*store_, "kept", Digest(), {{"k", "v"}}).ok());

  LocalContentStoreOptions opts;
  opts.stale_ingest_age = std::chrono::seconds(3600);
  Reopen(opts);
  EXPECT_EQ(ListNames(IngestRoot()).size(), 1u);  // the recent "old" ingest is resumable
  opts.stale_ingest_age = std::chrono::seconds(-1);
  Reopen(opts);
  EXPECT_EQ(CountEntries(IngestRoot()), 0);
  EXPECT_EQ(ListNames(labels).size(), 1u);
  EXPECT_TRUE(store_->Info(Digest::Sha256Of("kept")).ok());
}

TEST_F(ContentStoreTest, SecondStoreOnSameRootIsRefused) {
  auto other = LocalContentStore::Open(dir_.path());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ContentStoreTest, ReadBlobRefusesHugeBlobs) {
  auto d = WriteBlob(*store_, std::string(1000, 'z'));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(ReadBlob(*store_, *d, 999).status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace kiln::snapshotter
