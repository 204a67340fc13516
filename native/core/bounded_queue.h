// BoundedQueue: a blocking FIFO of at most `capacity` items between threads, which either side can close.
//
// Used to hand work from a producer thread to a consumer thread with a fixed amount in flight (the streamed
// tensor writer of core/tensor_plan reads and checksums on one core while the other writes). Closing wakes
// every waiter: a consumer drains what is left and then sees the end (or the producer's error, rethrown), and a
// producer's push fails, so that either side can stop the other without a hang.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace litlora {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

  // Waits for room; false (and nothing queued) once the queue is closed.
  bool push(T value) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(value));
    changed_.notify_all();
    return true;
  }

  // Waits for an item. After close: the items still queued, then nullopt; a queue closed with an error rethrows
  // it at once (what is still queued would only be work for a run that has failed).
  std::optional<T> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (error_) std::rethrow_exception(error_);
    if (items_.empty()) return std::nullopt;
    T value = std::move(items_.front());
    items_.pop_front();
    changed_.notify_all();
    return value;
  }

  // Moves up to `most` of the items already queued into `out`, without waiting; how many it moved. A queue closed
  // with an error rethrows it, as pop does.
  size_t popQueued(std::vector<T>& out, size_t most) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (error_) std::rethrow_exception(error_);
    size_t n = 0;
    for (; n < most && !items_.empty(); n++) {
      out.push_back(std::move(items_.front()));
      items_.pop_front();
    }
    if (n) changed_.notify_all();
    return n;
  }

  void close(std::exception_ptr error = nullptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    if (error && !error_) error_ = error;
    changed_.notify_all();
  }

 private:
  const size_t capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<T> items_;
  bool closed_ = false;
  std::exception_ptr error_;
};

}  // namespace litlora
