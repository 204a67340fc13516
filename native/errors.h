// The addon's one exception boundary: every entry point runs inside `guard` (sync) or a TorchWorker (async),
// and every C++ exception becomes a JS Error with a stable `code`. Nothing thrown in C++ reaches Node.
#pragma once

#include <napi.h>

#include <exception>
#include <string>

namespace litlora {

struct ErrorInfo {
  std::string code;
  std::string message;
};

// Maps litlora::Error, c10::OutOfMemoryError, c10::Error, std::bad_alloc and std::exception to {code, message}.
ErrorInfo describeException(std::exception_ptr error);

Napi::Error makeJsError(Napi::Env env, const ErrorInfo& info);

// Runs fn and turns any C++ exception into a thrown JS error. Napi::Error passes through untouched.
template <typename Fn>
Napi::Value guard(Napi::Env env, Fn&& fn) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw makeJsError(env, describeException(std::current_exception()));
  }
}

}  // namespace litlora
