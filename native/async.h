// TorchWorker: a Promise-returning AsyncWorker. `work` runs on a libuv thread and touches no JS (its
// inputs were captured on the main thread); `toJs` runs back on the main thread to build the result.
#pragma once

#include <napi.h>

#include <exception>
#include <functional>
#include <optional>
#include <string>

#include "core/error.h"
#include "core/mapped_guard.h"
#include "errors.h"

namespace litlora {

template <typename Result>
class TorchWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<Result()>;
  using ToJs = std::function<Napi::Value(Napi::Env, Result&)>;

  static Napi::Promise run(Napi::Env env, Work work, ToJs toJs) {
    auto* worker = new TorchWorker(env, std::move(work), std::move(toJs));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    try {
      const uint64_t faults = mapped_guard::faults();
      result_.emplace(work_());
      // A mapped tensor file shrank underneath this work: what it computed came partly from zero pages.
      mapped_guard::throwIfFaultedSince(faults, operation_.empty() ? "this operation" : operation_);
    } catch (...) {
      error_ = describeException(std::current_exception(), operation_);
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (error_) {
      deferred_.Reject(makeJsError(env, *error_).Value());
      return;
    }
    try {
      // toJs may read mapped pages too (tensor.data() copies them into an ArrayBuffer here).
      const uint64_t faults = mapped_guard::faults();
      Napi::Value value = toJs_(env, *result_);
      mapped_guard::throwIfFaultedSince(faults, operation_.empty() ? "this operation" : operation_);
      deferred_.Resolve(value);
    } catch (const Error& e) {
      deferred_.Reject(makeJsError(env, {e.code(), e.what()}).Value());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(makeJsError(env, describeException(std::current_exception(), operation_)).Value());
    }
  }

 private:
  TorchWorker(Napi::Env env, Work work, ToJs toJs)
      : Napi::AsyncWorker(env, "litlora"), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), toJs_(std::move(toJs)), operation_(currentOperation()) {}

  Napi::Promise::Deferred deferred_;
  Work work_;
  ToJs toJs_;
  std::optional<Result> result_;
  std::optional<ErrorInfo> error_;
  std::string operation_;  // the guard's, taken on the main thread: Execute runs on another
};

}  // namespace litlora
