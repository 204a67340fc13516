// SerialExecutor: one long-lived thread that runs a model's operations one after another.
//
// Why not run them directly on libuv's pool: glibc gives every thread that allocates its own malloc arena
// and keeps freed blocks in it, so a training step that lands on a different pool thread each time leaves
// a full copy of its working set (hundreds of MB for a 50k-vocabulary model) in up to four arenas. Running
// all of a model's work on one thread keeps one arena that reuses its memory, as a Python loop would.
// `run` blocks the calling thread (a libuv worker) until the job is done and rethrows its exception.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <type_traits>

namespace litlora {

class SerialExecutor {
 public:
  SerialExecutor() : thread_([this] { loop(); }) {}
  ~SerialExecutor() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  SerialExecutor(const SerialExecutor&) = delete;
  SerialExecutor& operator=(const SerialExecutor&) = delete;

  template <typename Fn>
  auto run(Fn&& fn) -> std::invoke_result_t<Fn> {
    using Result = std::invoke_result_t<Fn>;
    std::packaged_task<Result()> task(std::forward<Fn>(fn));
    std::future<Result> done = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.emplace_back([&task] { task(); });
    }
    wake_.notify_one();
    return done.get();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace litlora
