// ModelLease: held by an operation on a model (a NativeGpt) for its whole duration; making one while another
// lives is ERR_BUSY (GptWrap::lease). Its own header so that what holds one (decode_host.h) need not include the wrap.
#pragma once

#include <atomic>
#include <memory>

namespace litlora {

class ModelLease {
 public:
  explicit ModelLease(std::shared_ptr<std::atomic<bool>> busy) : busy_(std::move(busy)) {}
  ~ModelLease() { busy_->store(false); }
  ModelLease(const ModelLease&) = delete;
  ModelLease& operator=(const ModelLease&) = delete;

 private:
  std::shared_ptr<std::atomic<bool>> busy_;
};

}  // namespace litlora
