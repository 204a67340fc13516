// TrainWrap: the N-API object behind ts/train/trainer.ts (`NativeTrainer`): AdamW state and the one-call micro-step
// of native/core/train for a NativeGpt (and adamwSteps on the addon's `internals`, for tests). It holds a reference to the model's JS object, takes the model's
// lease for every operation (one operation per model in flight), runs the work on the model's serial thread
// (see core/serial_executor.h), and does no math.
#pragma once

#include <napi.h>

#include <memory>

#include "core/train.h"

namespace litlora {

class GptWrap;

class TrainWrap : public Napi::ObjectWrap<TrainWrap> {
 public:
  static void init(Napi::Env env, Napi::Object exports, Napi::Object internals);
  explicit TrainWrap(const Napi::CallbackInfo& info);

 private:
  static Napi::Value create(const Napi::CallbackInfo& info);
  static Napi::Value manualSeed(const Napi::CallbackInfo& info);
  static Napi::Value adamwSteps(const Napi::CallbackInfo& info);
  Napi::Value microStep(const Napi::CallbackInfo& info);
  Napi::Value evaluate(const Napi::CallbackInfo& info);
  Napi::Value forward(const Napi::CallbackInfo& info);
  Napi::Value state(const Napi::CallbackInfo& info);
  Napi::Value loadState(const Napi::CallbackInfo& info);
  Napi::Value restoreDtype(const Napi::CallbackInfo& info);
  Napi::Value setProcessGroup(const Napi::CallbackInfo& info);
  Napi::Value info(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);

  // The trainer, checked against disposal of itself and of its model.
  std::shared_ptr<train::Trainer> trainer(const std::string& what) const;
  GptWrap* gpt() const;

  std::shared_ptr<train::Trainer> trainer_;
  Napi::ObjectReference gptRef_;
};

}  // namespace litlora
