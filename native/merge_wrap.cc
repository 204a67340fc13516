#include "merge_wrap.h"

#include "async.h"
#include "convert.h"
#include "core/error.h"
#include "core/merge.h"
#include "errors.h"

namespace litlora {

namespace {

// A JS config object → the generic field map parseGptConfig reads (the same conversion NativeGpt.create does).
gpt::ConfigValue configValue(const Napi::Value& v, const std::string& path) {
  gpt::ConfigValue out;
  if (v.IsNull() || v.IsUndefined()) return out;
  if (v.IsBoolean()) {
    out.kind = gpt::ConfigValue::Kind::Bool;
    out.boolean = v.As<Napi::Boolean>().Value();
  } else if (v.IsNumber()) {
    out.kind = gpt::ConfigValue::Kind::Number;
    out.number = v.As<Napi::Number>().DoubleValue();
  } else if (v.IsString()) {
    out.kind = gpt::ConfigValue::Kind::String;
    out.string = v.As<Napi::String>().Utf8Value();
  } else if (v.IsArray()) {
    out.kind = gpt::ConfigValue::Kind::Array;
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) out.items.push_back(configValue(a.Get(i), path + "[" + std::to_string(i) + "]"));
  } else if (v.IsObject()) {
    out.kind = gpt::ConfigValue::Kind::Object;
    Napi::Object o = v.As<Napi::Object>();
    Napi::Array keys = o.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string key = keys.Get(i).As<Napi::String>().Utf8Value();
      out.fields.emplace_back(key, configValue(o.Get(key), path + "." + key));
    }
  } else {
    throw Error("ERR_CONFIG", "config field " + path + ": unsupported value type");
  }
  return out;
}

// mergeLoraFiles(basePath, loraPath, outPath, config, {dtype?}) → Promise<stats>
Napi::Value mergeLoraFiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 4 && info[0].IsString() && info[1].IsString() && info[2].IsString() && info[3].IsObject(),
                  "ERR_TYPE", "mergeLoraFiles: expected (basePath, loraPath, outPath, config, options)");
    merge::MergeOptions o;
    o.basePath = info[0].As<Napi::String>().Utf8Value();
    o.loraPath = info[1].As<Napi::String>().Utf8Value();
    o.outPath = info[2].As<Napi::String>().Utf8Value();
    o.config = gpt::parseGptConfig(configValue(info[3], "config").fields);
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
  exports.Set("mergeAvailable", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), merge::available());
  }, "mergeAvailable"));
}

}  // namespace litlora
