// See grad_reducer.h.
#include "grad_reducer.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>

namespace litlora::distributed {

// Runs on autograd's thread once the parameter's .grad holds this backward's whole contribution.
struct ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(GradReducer* reducer, size_t index) : reducer(reducer), index(index) {}
  void operator()(const torch::autograd::Variable&) override { reducer->ready(index); }
  GradReducer* reducer;
  size_t index;
};

GradReducer::GradReducer(std::shared_ptr<ProcessGroup> group, std::vector<at::Tensor> params, int64_t bucketBytes)
    : group_(std::move(group)), params_(std::move(params)), bucketOf_(params_.size()), final_(params_.size(), false) {
  std::vector<at::Tensor> reversed(params_.rbegin(), params_.rend());
  for (const auto& [first, last] : bucketRanges(reversed, bucketBytes)) {
    Bucket b;
    for (size_t k = first; k < last; ++k) {
      const size_t index = params_.size() - 1 - k;
      b.params.push_back(index);
      bucketOf_[index] = buckets_.size();
    }
    buckets_.push_back(std::move(b));
  }
  for (size_t i = 0; i < params_.size(); ++i)
    torch::autograd::impl::set_post_acc_grad_hooks(params_[i], std::make_unique<ReadyHook>(this, i));
  reset();
}

GradReducer::~GradReducer() {
  for (const at::Tensor& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradReducer::reset() {
  armed_ = false;
  next_ = 0;
  error_ = nullptr;
  std::fill(final_.begin(), final_.end(), false);
  for (Bucket& b : buckets_) {
    b.waiting = b.params.size();
    b.flat = at::Tensor();
    b.sum.reset();
    b.duringBackward = false;
  }
}

void GradReducer::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  reset();
  armed_ = true;
}

void GradReducer::disarm() {
  std::lock_guard<std::mutex> lock(mutex_);
  reset();
}

void GradReducer::ready(size_t param) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || final_[param]) return;
  final_[param] = true;
  buckets_[bucketOf_[param]].waiting--;
  startReady();
}

void GradReducer::startReady() {
  if (error_) return;
  try {
    while (next_ < buckets_.size() && buckets_[next_].waiting == 0) {
      Bucket& b = buckets_[next_];
      std::vector<at::Tensor> grads;
      for (size_t i : b.params) grads.push_back(params_[i].grad());
      b.flat = flattenBucket(grads);
      b.duringBackward = armed_;
      b.sum = group_->startSum(b.flat);
      ++next_;
    }
  } catch (...) {
    // A hook must not throw through autograd: the error is reported by finish(), on the training thread.
    error_ = std::current_exception();
  }
}

double GradReducer::finish(double flag) {
  const auto start = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  struct Reset {
    GradReducer* r;
    ~Reset() { r->reset(); }
  } resetAfter{this};
  armed_ = false;
  at::NoGradGuard noGrad;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (final_[i]) continue;
    // Every rank sends the same buckets: a parameter without a gradient this window contributes zeros.
    if (!params_[i].grad().defined()) params_[i].mutable_grad() = at::zeros_like(params_[i]);
    final_[i] = true;
    buckets_[bucketOf_[i]].waiting--;
  }
  startReady();
  if (error_) std::rethrow_exception(error_);
  at::Tensor flagSum = at::full({1}, flag, params_.empty() ? at::TensorOptions(at::kFloat) : params_.front().options());
  const std::shared_ptr<PendingSum> flagPending = group_->startSum(flagSum);
  Stats add;
  for (Bucket& b : buckets_) {
    group_->finishSum(b.sum);
    std::vector<at::Tensor> grads;
    for (size_t i : b.params) grads.push_back(params_[i].grad());
    unflattenMean(b.flat, grads, group_->worldSize());
    add.buckets++;
    add.overlappedBuckets += b.duringBackward ? 1 : 0;
    add.bytes += b.flat.numel() * b.flat.element_size();
  }
  group_->finishSum(flagPending);
  add.buckets++;  // the flag's sum, counted as allReduceMean counts it (there it rides in the last bucket)
  add.bytes += flagSum.numel() * flagSum.element_size();
  add.allReduceCalls = 1;
  add.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  add.lastWaitStart = std::chrono::duration<double>(start.time_since_epoch()).count();
  group_->addStats(add);
  return flagSum.item<double>() / group_->worldSize();
}

}  // namespace litlora::distributed
