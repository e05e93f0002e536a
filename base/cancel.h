// Cooperative cancellation.
//
// A CancelSource is owned by whoever may cancel (a build, a job); long operations receive a
// CancelToken and check it between chunks of work.  Callbacks let a blocked operation be woken:
// the executor registers one that kills its process tree.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kiln {

namespace internal {
struct CancelState {
  std::atomic<bool> cancelled{false};
  std::mutex mu;
  std::string reason;
  uint64_t next_id = 1;
  std::vector<std::pair<uint64_t, std::function<void()>>> callbacks;
};
}  // namespace internal

class CancelToken;

// Registration of a callback; unregisters when destroyed.
class CancelRegistration {
 public:
  CancelRegistration() = default;
  CancelRegistration(std::shared_ptr<internal::CancelState> state, uint64_t id)
      : state_(std::move(state)), id_(id) {}
  ~CancelRegistration();
  CancelRegistration(CancelRegistration&& o) noexcept
      : state_(std::move(o.state_)), id_(std::exchange(o.id_, 0)) {}
  CancelRegistration& operator=(CancelRegistration&& o) noexcept;
  CancelRegistration(const CancelRegistration&) = delete;
  CancelRegistration& operator=(const CancelRegistration&) = delete;

 private:
  std::shared_ptr<internal::CancelState> state_;
  uint64_t id_ = 0;
};

class CancelToken {
 public:
  // A token that is never cancelled.
  CancelToken() = default;

  bool cancelled() const { return state_ && state_->cancelled.load(std::memory_order_acquire); }

  // OK, or Cancelled with the reason given to Cancel().
  absl::Status Check() const;

  // Runs `fn` once when the token is cancelled (immediately, on this thread, if it already is).
  // `fn` must be quick and must not block.
  [[nodiscard]] CancelRegistration OnCancel(std::function<void()> fn) const;

 private:
  friend class CancelSource;
  explicit CancelToken(std::shared_ptr<internal::CancelState> s) : state_(std::move(s)) {}
  std::shared_ptr<internal::CancelState> state_;
};

class CancelSource {
 public:
  CancelSource();
  // A source that is cancelled whenever `parent` is.
  explicit CancelSource(const CancelToken& parent);
  ~CancelSource();
  CancelSource(const CancelSource&) = delete;
  CancelSource& operator=(const CancelSource&) = delete;

  CancelToken token() const { return CancelToken(state_); }
  void Cancel(std::string reason = "cancelled");
  bool cancelled() const { return state_->cancelled.load(); }

 private:
  std::shared_ptr<internal::CancelState> state_;
  CancelRegistration parent_registration_;
};

}  // namespace kiln
