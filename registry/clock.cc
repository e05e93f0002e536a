#include "registry/clock.h"

#include <condition_variable>
#include <memory>

namespace kiln::registry {

namespace {

class SystemClock : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }

  absl::Status SleepFor(absl::Duration d, const CancelToken& cancel) override {
    // The waker state is shared with the cancel callback, which may outlive this frame.
    struct Waker {
      std::mutex mu;
      std::condition_variable cv;
      bool woken = false;
    };
    auto waker = std::make_shared<Waker>();
    CancelRegistration reg = cancel.OnCancel([waker] {
      std::lock_guard<std::mutex> lock(waker->mu);
      waker->woken = true;
      waker->cv.notify_all();
    });
    std::unique_lock<std::mutex> lock(waker->mu);
    waker->cv.wait_for(lock, absl::ToChronoNanoseconds(d), [&] { return waker->woken; });
    return cancel.Check();
  }
};

}  // namespace

Clock& RealClock() {
  static Clock* clock = new SystemClock();
  return *clock;
}

absl::Time ManualClock::Now() {
  std::lock_guard<std::mutex> lock(mu_);
  return now_;
}

absl::Status ManualClock::SleepFor(absl::Duration d, const CancelToken& cancel) {
  if (cancel.cancelled()) return cancel.Check();
  {
    std::lock_guard<std::mutex> lock(mu_);
    sleeps_.push_back(d);
    now_ += d;
  }
  return cancel.Check();
}

void ManualClock::Advance(absl::Duration d) {
  std::lock_guard<std::mutex> lock(mu_);
  now_ += d;
}

std::vector<absl::Duration> ManualClock::sleeps() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sleeps_;
}

}  // namespace kiln::registry
