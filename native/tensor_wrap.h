// TensorWrap: the N-API object behind ts/tensor.ts. It owns one at::Tensor; dispose() releases it now,
// the GC finalizer releases it otherwise. Other wraps read tensors only through TensorWrap::unwrap.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <string>

namespace litlora {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static void init(Napi::Env env, Napi::Object exports);
  // A new JS object that owns `tensor`.
  static Napi::Object wrap(Napi::Env env, at::Tensor tensor);
  // The tensor behind a JS Tensor handle; ERR_DISPOSED after dispose(), ERR_TYPE for anything else.
  static at::Tensor unwrap(const Napi::Value& value, const std::string& argName);
  static bool isTensor(const Napi::Value& value);

  explicit TensorWrap(const Napi::CallbackInfo& info);
  void Finalize(Napi::Env env) override;

 private:
  static Napi::Value fromArray(const Napi::CallbackInfo& info);
  Napi::Value shape(const Napi::CallbackInfo& info);
  Napi::Value dtype(const Napi::CallbackInfo& info);
  Napi::Value device(const Napi::CallbackInfo& info);
  Napi::Value disposed(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value data(const Napi::CallbackInfo& info);
  Napi::Value to(const Napi::CallbackInfo& info);

  const at::Tensor& checked(const std::string& what) const;
  void release(Napi::Env env);

  at::Tensor tensor_;
  int64_t accountedBytes_ = 0;
  bool disposed_ = false;
};

}  // namespace litlora
