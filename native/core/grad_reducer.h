// The LoRA gradients averaged over the ranks while the backward still runs, as PyTorch DDP's Reducer does: the
// parameters are cut into buckets in reverse order (the order autograd finishes their gradients), a
// post-accumulate-grad hook on every parameter marks its gradient final, and a bucket whose gradients are all
// final starts its sum over the ranks at once (c10d's asynchronous allreduce) while autograd computes the earlier
// layers' gradients. After the backward, finish() starts what the backward did not reach (parameters without a
// gradient send zeros), waits for every sum, and divides by the world size.
//
// Only the backward of an accumulation window's last micro-batch is armed (earlier micro-batches only accumulate,
// as DDP's no_sync). Buckets start in bucket order on every rank (a finished bucket waits for the ones before
// it), so that the ranks' collectives pair up whatever order autograd's threads finish gradients in. The sums,
// the division and the copy back are the same operations as ProcessGroup::allReduceMean's, so the same buckets
// give bit-identical gradients; with two ranks every element's sum is one addition, so any buckets do.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include "distributed.h"

namespace litlora::distributed {

class GradReducer {
 public:
  // Installs a hook on every parameter (replacing any post-accumulate-grad hook it had); the destructor removes them.
  GradReducer(std::shared_ptr<ProcessGroup> group, std::vector<at::Tensor> params, int64_t bucketBytes);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // The next backward completes an accumulation window: its hooks start the buckets' sums.
  void arm();
  // After that backward: every gradient averaged over the ranks. flag travels in a sum of its own after the
  // gradients; returns its mean (the trainer's "a rank saw a non-finite loss" signal).
  double finish(double flag);
  // The armed backward failed: forget its buckets (the other ranks stop on the distributed timeout).
  void disarm();

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_, in bucket order (reverse parameter order)
    size_t waiting = 0;          // gradients not yet final in this window
    at::Tensor flat;
    std::shared_ptr<PendingSum> sum;
    bool duringBackward = false;
  };
  void ready(size_t param);
  void startReady();  // with mutex_ held
  void reset();       // with mutex_ held

  friend struct ReadyHook;
  std::shared_ptr<ProcessGroup> group_;
  std::vector<at::Tensor> params_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucketOf_;
  std::vector<bool> final_;
  std::mutex mutex_;
  bool armed_ = false;
  size_t next_ = 0;  // the first bucket not started
  std::exception_ptr error_;
};

}  // namespace litlora::distributed
