// A fixed-size pool of worker threads running queued tasks in FIFO order.
//
// Kiln keeps CPU work (hashing, compression, diffs) on one pool sized to the cores and blocking
// I/O on another, bounded one; both are ThreadPools.  Submit() returns a std::future so callers
// can wait for a result; tasks must not block waiting on other tasks of the same pool (that can
// deadlock a full pool).
//
// Thread-safety: Submit() may be called from any thread, including from a task.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace kiln {

class ThreadPool {
 public:
  // `threads` == 0 means one per hardware core.
  explicit ThreadPool(size_t threads = 0);
  // Finishes every queued task, then joins the workers.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return workers_.size(); }

  template <typename F>
  auto Submit(F&& fn) -> std::future<std::invoke_result_t<F>> {
    using R = std::invoke_result_t<F>;
    auto task = std::make_shared<std::packaged_task<R()>>(std::forward<F>(fn));
    std::future<R> result = task->get_future();
    Enqueue([task] { (*task)(); });
    return result;
  }

 private:
  void Enqueue(std::function<void()> fn);
  void WorkerLoop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace kiln
