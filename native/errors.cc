#include "errors.h"

#include <c10/util/Exception.h>

#include <new>

#include "core/error.h"

namespace litlora {

ErrorInfo describeException(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    return {e.code(), e.what()};
  } catch (const c10::OutOfMemoryError& e) {
    return {"ERR_CUDA_OOM", std::string("out of device memory: ") + e.what_without_backtrace() +
                                " — lower the batch size or sequence length, or use bf16"};
  } catch (const c10::Error& e) {
    return {"ERR_TORCH", std::string("libtorch: ") + e.what_without_backtrace()};
  } catch (const std::bad_alloc&) {
    return {"ERR_OOM", "out of host memory"};
  } catch (const std::exception& e) {
    return {"ERR_TORCH", e.what()};
  } catch (...) {
    return {"ERR_TORCH", "unknown native error"};
  }
}

Napi::Error makeJsError(Napi::Env env, const ErrorInfo& info) {
  Napi::Error error = Napi::Error::New(env, info.message);
  error.Set("code", Napi::String::New(env, info.code));
  return error;
}

}  // namespace litlora
