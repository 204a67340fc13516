#include "merge_wrap.h"

#include "async.h"
#include "config_wrap.h"
#include "convert.h"
#include "core/error.h"
#include "core/merge.h"
#include "errors.h"

namespace litlora {

namespace {

// mergeLoraFiles(basePath, loraPath, outPath, config, {dtype?}) → Promise<stats>
Napi::Value mergeLoraFiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "merging a LoRA checkpoint into the base weights", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 4 && info[0].IsString() && info[1].IsString() && info[2].IsString() && info[3].IsObject(),
                  "ERR_TYPE", "mergeLoraFiles: expected (basePath, loraPath, outPath, config, options)");
    merge::MergeOptions o;
    o.basePath = info[0].As<Napi::String>().Utf8Value();
    o.loraPath = info[1].As<Napi::String>().Utf8Value();
    o.outPath = info[2].As<Napi::String>().Utf8Value();
    o.config = gptConfigFromJs(info[3], "config");
    if (info.Length() > 4 && info[4].IsObject()) {
      Napi::Object opts = info[4].As<Napi::Object>();
      if (opts.Has("dtype") && opts.Get("dtype").IsString()) o.outDtype = parseDtype(opts.Get("dtype").As<Napi::String>().Utf8Value(), "dtype");
    }
    return TorchWorker<merge::MergeStats>::run(
        env, [o]() { return merge::mergeLoraFiles(o); },
        [](Napi::Env env, merge::MergeStats& s) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("tensors", static_cast<double>(s.tensors));
          out.Set("mergedLayers", static_cast<double>(s.mergedLayers));
          out.Set("bytesWritten", static_cast<double>(s.bytesWritten));
          out.Set("seconds", s.seconds);
          return out;
        });
  });
}

}  // namespace

void initMerge(Napi::Env env, Napi::Object exports) {
  exports.Set("mergeLoraFiles", Napi::Function::New(env, mergeLoraFiles, "mergeLoraFiles"));
}

}  // namespace litlora
