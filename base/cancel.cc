#include "base/cancel.h"

#include "absl/strings/str_cat.h"

namespace kiln {

CancelRegistration::~CancelRegistration() {
  if (!state_ || id_ == 0) return;
  std::lock_guard<std::mutex> lock(state_->mu);
  std::erase_if(state_->callbacks, [this](const auto& entry) { return entry.first == id_; });
}

CancelRegistration& CancelRegistration::operator=(CancelRegistration&& o) noexcept {
  if (this != &o) {
    CancelRegistration dying(std::move(*this));
    state_ = std::move(o.state_);
    id_ = std::exchange(o.id_, 0);
  }
  return *this;
}

absl::Status CancelToken::Check() const {
  if (!cancelled()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(state_->mu);
  return absl::CancelledError(state_->reason);
}

CancelRegistration CancelToken::OnCancel(std::function<void()> fn) const {
  if (!state_) return CancelRegistration();
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (!state_->cancelled.load()) {
      uint64_t id = state_->next_id++;
      state_->callbacks.emplace_back(id, std::move(fn));
      return CancelRegistration(state_, id);
    }
  }
  fn();
  return CancelRegistration();
}

CancelSource::CancelSource() : state_(std::make_shared<internal::CancelState>()) {}

namespace {

// Marks `state` cancelled and runs its callbacks outside the lock, so a callback may itself
// register or cancel without deadlocking.
void CancelState(internal::CancelState& state, std::string reason) {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard<std::mutex> lock(state.mu);
    if (state.cancelled.load()) return;
    state.reason = std::move(reason);
    state.cancelled.store(true, std::memory_order_release);
    for (auto& [id, fn] : state.callbacks) fns.push_back(std::move(fn));
    state.callbacks.clear();
  }
  for (auto& fn : fns) fn();
}

}  // namespace

CancelSource::CancelSource(const CancelToken& parent) : CancelSource() {
  std::weak_ptr<internal::CancelState> weak = state_;
  parent_registration_ = parent.OnCancel([weak, parent] {
    if (auto s = weak.lock()) CancelState(*s, std::string(parent.Check().message()));
  });
}

CancelSource::~CancelSource() = default;

void CancelSource::Cancel(std::string reason) { CancelState(*state_, std::move(reason)); }

}  // namespace kiln
