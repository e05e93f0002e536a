// Time for the registry client: token expiry and retry sleeps.
//
// The client never calls sleep or reads the system clock directly; it goes through a Clock so
// tests can run retries and token expiry without waiting (ManualClock).  SleepFor must return
// early when the cancellation token fires.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/cancel.h"

namespace kiln::registry {

class Clock {
 public:
  virtual ~Clock() = default;
  Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;

  virtual absl::Time Now() = 0;
  // Waits `d`; Cancelled (with the token's reason) as soon as `cancel` fires.
  virtual absl::Status SleepFor(absl::Duration d, const CancelToken& cancel) = 0;
};

// The process's real clock; a static instance, never destroyed.
Clock& RealClock();

// A clock that only moves when told to: SleepFor records the request, advances the time by it
// and returns at once.  For tests.
class ManualClock : public Clock {
 public:
  explicit ManualClock(absl::Time start = absl::FromUnixSeconds(1700000000)) : now_(start) {}
  absl::Time Now() override;
  absl::Status SleepFor(absl::Duration d, const CancelToken& cancel) override;
  void Advance(absl::Duration d);
  std::vector<absl::Duration> sleeps() const;

 private:
  mutable std::mutex mu_;
  absl::Time now_;
  std::vector<absl::Duration> sleeps_;
};

}  // namespace kiln::registry
