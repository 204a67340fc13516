// litlora's native addon: its init registers every export (each wrap's init adds its own); ts/binding.ts types
// them all.
#include <ATen/Parallel.h>
#include <napi.h>

#include "addon_data.h"
#include "core/compat.h"
#include "core/error.h"
#include "core/mkl_vendor.h"
#include "distributed_wrap.h"
#include "errors.h"
#include "batch_decode_wrap.h"
#include "generate_wrap.h"
#include "gpt_wrap.h"
#include "merge_wrap.h"
#include "lora_wrap.h"
#include "tensor_plan_wrap.h"
#include "tensor_wrap.h"
#include "tensorfile_wrap.h"
#include "tokenizer_json_wrap.h"
#include "train_wrap.h"

namespace litlora {
namespace {

Napi::Value buildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("torchVersion", compat::torchVersion());
#ifdef LITLORA_TORCH_BUILD_VERSION
  out.Set("torchCmakeVersion", LITLORA_TORCH_BUILD_VERSION);
#endif
#ifdef LITLORA_WITH_CUDA
  out.Set("cuda", true);
#else
  out.Set("cuda", false);
#endif
  out.Set("cudaDeviceCount", compat::cudaDeviceCount());
  const MklVendorAnswer mkl = mklVendorAnswer();
  Napi::Object mklOut = Napi::Object::New(env);
  mklOut.Set("answersIntel", mkl.intel);
  mklOut.Set("queries", static_cast<double>(mkl.queries));
  out.Set("mklVendorCheck", mklOut);
  return out;
}

Napi::Value setNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "setting libtorch's thread count", [&]() -> Napi::Value {
    int n = info[0].As<Napi::Number>().Int32Value();
    if (n < 1) throw Error("ERR_RANGE", "setNumThreads: expected a positive integer, got " + std::to_string(n));
    at::set_num_threads(n);
    return env.Undefined();
  });
}

Napi::Value getNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), at::get_num_threads()); }

// setErrorClass(LitloraError): the class every native error is constructed from, with (code, message), so that
// errors from native code are the same type as ts/errors.ts's. ts/binding.ts calls it right after loading.
Napi::Value setErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "setting the error class", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 1 && info[0].IsFunction(), "ERR_TYPE",
                  "setErrorClass: expected a class constructed with (code, message), got " << (info.Length() ? "another value" : "nothing"));
    addonData(env).error = Napi::Persistent(info[0].As<Napi::Function>());
    return env.Undefined();
  });
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  // Per-environment state first: every class's init stores its constructor there. N-API deletes it (and so
  // releases the references) when this environment is torn down, e.g. when a worker_thread exits.
  env.SetInstanceData<AddonData>(new AddonData());
  exports.Set("buildInfo", Napi::Function::New(env, buildInfo));
  exports.Set("setNumThreads", Napi::Function::New(env, setNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, getNumThreads));
  exports.Set("setErrorClass", Napi::Function::New(env, setErrorClass));
  // Entry points for tests and benchmarks only, kept apart from the product API (ts/internals.ts wraps them).
  Napi::Object internals = Napi::Object::New(env);
  TensorWrap::init(env, exports);
  TensorFileWrap::init(env, exports, internals);
  initLora(env, exports, internals);
  GptWrap::init(env, exports);
  initGenerate(env, exports);
  initBatchDecode(env, exports);
  initMerge(env, exports);
  initTensorPlan(env, exports);
  initTokenizerJson(env, exports);
  TrainWrap::init(env, exports, internals);
  DistributedWrap::init(env, exports);
  exports.Set("internals", internals);
  return exports;
}

}  // namespace
}  // namespace litlora

static Napi::Object initAddon(Napi::Env env, Napi::Object exports) { return litlora::init(env, exports); }

NODE_API_MODULE(litlora, initAddon)
