// GptWrap: the N-API object behind ts/model/model.ts (`NativeGpt`). It owns a gpt::Gpt through a shared_ptr (async
// work keeps it alive), runs one operation at a time (a second one is ERR_BUSY), and does no math.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/gpt.h"
#include "core/serial_executor.h"
#include "model_lease.h"

namespace litlora {

struct DecodeHost;  // decode_host.h

// Argument conversions shared by the wraps that work on a model (gpt_wrap, train_wrap).
// Token ids from an Int32Array / BigInt64Array, as an int64 tensor of `shape`.
at::Tensor tokensArg(const Napi::Value& value, const std::vector<int64_t>& shape, const std::string& name);
// (tokens, targets, shape) in info[0..2], as loss / microStep / evaluate take them: two token tensors of one shape.
struct TokenBatch {
  at::Tensor tokens;
  at::Tensor targets;
};
TokenBatch tokenBatchArgs(const Napi::CallbackInfo& info);
// [[name, tensor], …] ⇄ named tensors.
std::vector<gpt::NamedTensor> namedTensorsFromJs(const Napi::Value& value, const std::string& what);
Napi::Array namedTensorsToJs(Napi::Env env, const std::vector<gpt::NamedTensor>& items);
// info[index] when it is an object, else an empty one.
Napi::Object optionsArg(const Napi::CallbackInfo& info, size_t index);

// {loss, tokens}: what loss() and the trainer's evaluate() resolve to.
Napi::Value lossResultToJs(Napi::Env env, const gpt::LossResult& result);

class GptWrap : public Napi::ObjectWrap<GptWrap> {
 public:
  static void init(Napi::Env env, Napi::Object exports);

  // Held by an operation for its whole duration; constructing one while another lives is ERR_BUSY.
  using Lease = ModelLease;

  // For other wraps (e.g. the trainer): the model behind a JS NativeGpt, and a lease on it.
  static GptWrap* fromValue(const Napi::Value& value, const std::string& argName);
  std::shared_ptr<gpt::Gpt> model(const std::string& what) const;
  std::shared_ptr<Lease> lease(const std::string& what);
  // The thread every operation on this model runs on (see serial_executor.h); call executor->run(...) from
  // an async worker.
  std::shared_ptr<SerialExecutor> executor() const { return executor_; }
  // The model's batched decoder (batch_decode_wrap.h), made on first use.
  std::shared_ptr<DecodeHost> decodeHost();

  explicit GptWrap(const Napi::CallbackInfo& info);

 private:
  static Napi::Value create(const Napi::CallbackInfo& info);
  static Napi::Value qkvReassemble(const Napi::CallbackInfo& info);
  Napi::Value forward(const Napi::CallbackInfo& info);
  Napi::Value loss(const Napi::CallbackInfo& info);
  Napi::Value loadStateDict(const Napi::CallbackInfo& info);
  Napi::Value stateDict(const Napi::CallbackInfo& info);
  Napi::Value loraParameters(const Napi::CallbackInfo& info);
  Napi::Value zeroGrad(const Napi::CallbackInfo& info);
  Napi::Value merge(const Napi::CallbackInfo& info);
  Napi::Value unmerge(const Napi::CallbackInfo& info);
  Napi::Value setKvCache(const Napi::CallbackInfo& info);
  Napi::Value clearKvCache(const Napi::CallbackInfo& info);
  Napi::Value info(const Napi::CallbackInfo& info);
  Napi::Value addAdapter(const Napi::CallbackInfo& info);
  Napi::Value removeAdapter(const Napi::CallbackInfo& info);
  Napi::Value adapterNames(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);

  std::shared_ptr<gpt::Gpt> gpt_;
  std::shared_ptr<SerialExecutor> executor_;
  std::shared_ptr<DecodeHost> decode_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace litlora
