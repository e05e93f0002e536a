#include "registry/session.h"

#include <thread>

#include <gtest/gtest.h>

#include "registry/clock.h"
#include "registry/operations.h"

namespace kiln::registry {
namespace {

using internal::AddQuery;
using internal::ResolveLocation;

TEST(ResolveLocation, AbsoluteRelativeAndQueryKept) {
  const std::string req = "https://r.io/v2/app/blobs/uploads/?mount=x";
  EXPECT_EQ(ResolveLocation(req, "https://other.io/up/1?sig=abc"), "https://other.io/up/1?sig=abc");
  EXPECT_EQ(ResolveLocation(req, "/v2/app/blobs/uploads/u1?_state=s"),
            "https://r.io/v2/app/blobs/uploads/u1?_state=s");
  EXPECT_EQ(ResolveLocation(req, "u2?_state=t"), "https://r.io/v2/app/blobs/uploads/u2?_state=t");
  EXPECT_EQ(ResolveLocation("http://r:5000/v2/a/blobs/uploads/x", "//cdn.example/p"),
            "http://cdn.example/p");
}

TEST(AddQuery, AppendsWithTheRightSeparatorAndEncodes) {
  EXPECT_EQ(AddQuery("https://r/u", "digest", "sha256:ab"), "https://r/u?digest=sha256:ab");
  EXPECT_EQ(AddQuery("https://r/u?_state=x", "digest", "sha256:ab"),
            "https://r/u?_state=x&digest=sha256:ab");
  EXPECT_EQ(AddQuery("https://r/u", "from", "a b/c"), "https://r/u?from=a%20b%2Fc");
}

TEST(EffectiveChunkSize, GhcrChunksStayWithinFourMiB) {
  EXPECT_EQ(internal::EffectiveChunkSize("ghcr.io", 16 << 20), 4u << 20);
  EXPECT_EQ(internal::EffectiveChunkSize("ghcr.io", 1 << 20), 1u << 20);
  EXPECT_EQ(internal::EffectiveChunkSize("ghcr.io", 0), 0u);  // one streamed PUT is fine
  EXPECT_EQ(internal::EffectiveChunkSize("quay.io", 16 << 20), 16u << 20);
}

TEST(Semaphore, CapsAndWakesOnCancel) {
  internal::Semaphore sem(1);
  CancelSource cancel;
  ASSERT_TRUE(sem.Acquire(cancel.token()).ok());
  std::thread t([&] { cancel.Cancel("stop waiting"); });
  absl::Status st = sem.Acquire(cancel.token());  // blocks until the cancel
  t.join();
  EXPECT_TRUE(absl::IsCancelled(st));
  sem.Release();
  CancelSource fresh;
  EXPECT_TRUE(sem.Acquire(fresh.token()).ok());
}

TEST(RealClock, SleepIsInterruptedByCancellation) {
  CancelSource cancel;
  std::thread t([&] { cancel.Cancel("shutdown"); });
  // An hour-long backoff ends as soon as the token fires.
  absl::Status st = RealClock().SleepFor(absl::Hours(1), cancel.token());
  t.join();
  EXPECT_TRUE(absl::IsCancelled(st));
  EXPECT_EQ(st.message(), "shutdown");
}

TEST(ManualClock, RecordsSleepsAndAdvances) {
  ManualClock clock;
  absl::Time start = clock.Now();
  ASSERT_TRUE(clock.SleepFor(absl::Seconds(3), CancelToken()).ok());
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(clock.Now() - start, absl::Seconds(5));
  ASSERT_EQ(clock.sleeps().size(), 1u);
  EXPECT_EQ(clock.sleeps()[0], absl::Seconds(3));
}

}  // namespace
}  // namespace kiln::registry
