// DistributedWrap: the N-API object behind ts/train/distributed.ts (`NativeProcessGroup`): a rendezvous and c10d
// process group of native/core/distributed, created off the main thread (joining blocks until every rank is
// there), and its collectives as Promises. NativeTrainer.setProcessGroup hands it to the training step.
#pragma once

#include <napi.h>

#include <memory>

#include "core/distributed.h"

namespace litlora {

class DistributedWrap : public Napi::ObjectWrap<DistributedWrap> {
 public:
  static void init(Napi::Env env, Napi::Object exports);
  explicit DistributedWrap(const Napi::CallbackInfo& info);
  // The group behind a NativeProcessGroup argument (ERR_TYPE otherwise, ERR_DISPOSED after dispose()).
  static std::shared_ptr<distributed::ProcessGroup> groupOf(const Napi::Value& value, const std::string& argName);

 private:
  static Napi::Value create(const Napi::CallbackInfo& info);
  static Napi::Value backends(const Napi::CallbackInfo& info);
  Napi::Value allReduceSum(const Napi::CallbackInfo& info);
  Napi::Value allReduceMean(const Napi::CallbackInfo& info);
  Napi::Value barrier(const Napi::CallbackInfo& info);
  Napi::Value stats(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<distributed::ProcessGroup> group(const std::string& what) const;
  std::shared_ptr<distributed::ProcessGroup> group_;
};

}  // namespace litlora
