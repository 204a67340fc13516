// The addon's one exception boundary: every entry point runs inside `guard` (sync) or a TorchWorker (async),
// and every C++ exception becomes a LitloraError (ts/errors.ts) with a stable `code`. Nothing thrown in C++
// reaches Node.
#pragma once

#include <napi.h>

#include <exception>
#include <string>
#include <utility>

namespace litlora {

struct ErrorInfo {
  std::string code;
  std::string message;
};

// Maps litlora::Error (as it is), out-of-memory failures (ERR_OOM on the host, with the byte count libtorch
// reports; ERR_CUDA_OOM on a GPU), c10::Error, std::bad_alloc and std::exception to {code, message}. Errors
// from libtorch get litlora's wording: what failed, as `operation` names it ("running the model's forward
// pass"; empty: a generic phrase), and what to do, then libtorch's own text, first line only (no C++ stack
// trace or "Exception raised from" lines).
ErrorInfo describeException(std::exception_ptr error, const std::string& operation = "");

// A JS error for `info`: an instance of the class setErrorClass handed over (ts/errors.ts's LitloraError),
// constructed with (code, message).
Napi::Error makeJsError(Napi::Env env, const ErrorInfo& info);

// The operation the innermost running `guard` on this thread names ("" outside one). A TorchWorker created
// inside the guard takes it along, so the errors of its work on another thread are worded the same way.
const std::string& currentOperation();

// Sets currentOperation() for its lifetime (restoring the previous one after).
class OperationScope {
 public:
  explicit OperationScope(const char* operation);
  ~OperationScope();
  OperationScope(const OperationScope&) = delete;
  OperationScope& operator=(const OperationScope&) = delete;

 private:
  std::string previous_;
};

// Runs fn and turns any C++ exception into a thrown JS error. Napi::Error passes through untouched.
// `operation` names, in litlora's terms, what the entry point does (see describeException).
template <typename Fn>
Napi::Value guard(Napi::Env env, const char* operation, Fn&& fn) {
  OperationScope scope(operation);
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw makeJsError(env, describeException(std::current_exception(), currentOperation()));
  }
}

template <typename Fn>
Napi::Value guard(Napi::Env env, Fn&& fn) {
  return guard(env, "", std::forward<Fn>(fn));
}

}  // namespace litlora
