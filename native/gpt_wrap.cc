#include "gpt_wrap.h"

#include <cmath>

#include "addon_data.h"
#include "async.h"
#include "config_wrap.h"
#include "convert.h"
#include "decode_host.h"
#include "core/error.h"
#include "errors.h"
#include "tensor_wrap.h"

namespace litlora {

namespace {






}  // namespace

at::Tensor tokensArg(const Napi::Value& value, const std::vector<int64_t>& shape, const std::string& name) {
  LITLORA_CHECK(value.IsTypedArray(), "ERR_TYPE", name << ": expected an Int32Array or BigInt64Array");
  auto kind = value.As<Napi::TypedArray>().TypedArrayType();
  LITLORA_CHECK(kind == napi_int32_array || kind == napi_bigint64_array, "ERR_TYPE",
                name << ": expected an Int32Array or BigInt64Array");
  return tensorFromTypedArray(value.As<Napi::TypedArray>(), shape, at::kLong, name);
}

TokenBatch tokenBatchArgs(const Napi::CallbackInfo& info) {
  auto shape = parseShape(info[2], "shape");
  return {tokensArg(info[0], shape, "tokens"), tokensArg(info[1], shape, "targets")};
}
std::vector<gpt::NamedTensor> namedTensorsFromJs(const Napi::Value& value, const std::string& what) {
  LITLORA_CHECK(value.IsArray(), "ERR_TYPE", what << ": expected [[name, tensor], …]");
  Napi::Array items = value.As<Napi::Array>();
  std::vector<gpt::NamedTensor> out;
  for (uint32_t i = 0; i < items.Length(); ++i) {
    Napi::Value item = items.Get(i);
    LITLORA_CHECK(item.IsArray() && item.As<Napi::Array>().Length() == 2, "ERR_TYPE", what << ": entry " << i << " is not [name, tensor]");
    Napi::Array pair = item.As<Napi::Array>();
    LITLORA_CHECK(pair.Get(0u).IsString(), "ERR_TYPE", what << ": entry " << i << " has no name");
    std::string name = pair.Get(0u).As<Napi::String>().Utf8Value();
    out.push_back({name, TensorWrap::unwrap(pair.Get(1u), name)});
  }
  return out;
}
Napi::Array namedTensorsToJs(Napi::Env env, const std::vector<gpt::NamedTensor>& items) {
  Napi::Array out = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::String::New(env, items[i].name));
    pair.Set(1u, TensorWrap::wrap(env, items[i].tensor));
    out.Set(static_cast<uint32_t>(i), pair);
  }
  return out;
}
Napi::Object optionsArg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() > index && info[index].IsObject()) return info[index].As<Napi::Object>();
  return Napi::Object::New(info.Env());
}

Napi::Value lossResultToJs(Napi::Env env, const gpt::LossResult& r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", r.loss);
  out.Set("tokens", static_cast<double>(r.tokens));
  return out;
}

void GptWrap::init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "NativeGpt",
                                   {
                                       StaticMethod("create", &GptWrap::create),
                                       InstanceMethod("forward", &GptWrap::forward),
                                       InstanceMethod("loss", &GptWrap::loss),
                                       InstanceMethod("loadStateDict", &GptWrap::loadStateDict),
                                       InstanceMethod("stateDict", &GptWrap::stateDict),
                                       InstanceMethod("loraParameters", &GptWrap::loraParameters),
                                       InstanceMethod("zeroGrad", &GptWrap::zeroGrad),
                                       InstanceMethod("merge", &GptWrap::merge),
                                       InstanceMethod("unmerge", &GptWrap::unmerge),
                                       InstanceMethod("setKvCache", &GptWrap::setKvCache),
                                       InstanceMethod("clearKvCache", &GptWrap::clearKvCache),
                                       InstanceMethod("info", &GptWrap::info),
                                       InstanceMethod("addAdapter", &GptWrap::addAdapter),
                                       InstanceMethod("removeAdapter", &GptWrap::removeAdapter),
                                       InstanceMethod("adapterNames", &GptWrap::adapterNames),
                                       InstanceMethod("dispose", &GptWrap::dispose),
                                       InstanceAccessor("disposed", &GptWrap::disposed, nullptr),
                                   });
  addonData(env).gpt = Napi::Persistent(cls);
  exports.Set("NativeGpt", cls);
  exports.Set("gptQkvReassemble", Napi::Function::New(env, qkvReassemble));
}

// gptQkvReassemble(tensor, nHead, nQueryGroups, headSize) → Promise<NativeTensor>: litgpt's qkv_reassemble
// (interleaved per-group rows → [Q|K|V]) of a weight or bias, for migrating old files.
Napi::Value GptWrap::qkvReassemble(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "relayouting a fused qkv tensor", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 4 && info[1].IsNumber() && info[2].IsNumber() && info[3].IsNumber(), "ERR_TYPE",
                  "gptQkvReassemble: expected (tensor, nHead, nQueryGroups, headSize)");
    at::Tensor t = TensorWrap::unwrap(info[0], "tensor");
    const int64_t nHead = info[1].As<Napi::Number>().Int64Value(), nQueryGroups = info[2].As<Napi::Number>().Int64Value(),
                  headSize = info[3].As<Napi::Number>().Int64Value();
    LITLORA_CHECK(nHead > 0 && nQueryGroups > 0 && headSize > 0 && nHead % nQueryGroups == 0, "ERR_ARG",
                  "gptQkvReassemble: expected positive sizes with n_head divisible by n_query_groups");
    return TorchWorker<at::Tensor>::run(
        env, [t, nHead, nQueryGroups, headSize]() { return gpt::qkvReassemble(t, nHead, nQueryGroups, headSize).contiguous(); },
        [](Napi::Env env, at::Tensor& r) -> Napi::Value { return TensorWrap::wrap(env, r); });
  });
}

GptWrap::GptWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GptWrap>(info) {}

GptWrap* GptWrap::fromValue(const Napi::Value& value, const std::string& argName) {
  LITLORA_CHECK(value.IsObject() && value.As<Napi::Object>().InstanceOf(addonData(value.Env()).gpt.Value()), "ERR_TYPE",
                argName << ": expected a NativeGpt");
  return GptWrap::Unwrap(value.As<Napi::Object>());
}

std::shared_ptr<gpt::Gpt> GptWrap::model(const std::string& what) const {
  LITLORA_CHECK(gpt_ != nullptr, "ERR_DISPOSED", what << ": the model was disposed; it can no longer be used");
  return gpt_;
}

std::shared_ptr<GptWrap::Lease> GptWrap::lease(const std::string& what) {
  model(what);
  LITLORA_CHECK(!busy_->exchange(true), "ERR_BUSY",
                what << ": another operation on this model is still running; await it before starting the next");
  return std::make_shared<Lease>(busy_);
}

// create(config, {dtype, device, seed}) → Promise<NativeGpt>
Napi::Value GptWrap::create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "creating the model", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 1 && info[0].IsObject(), "ERR_TYPE", "NativeGpt.create: expected (config, options)");
    gpt::GptConfig parsed = gptConfigFromJs(info[0], "config");
    Napi::Object o = optionsArg(info, 1);
    gpt::GptOptions options;
    if (o.Has("dtype")) options.dtype = parseDtype(o.Get("dtype").As<Napi::String>().Utf8Value(), "dtype");
    if (o.Has("device")) options.device = parseDevice(o.Get("device").As<Napi::String>().Utf8Value(), "device");
    if (o.Has("seed") && o.Get("seed").IsNumber()) {
      double seed = o.Get("seed").As<Napi::Number>().DoubleValue();
      LITLORA_CHECK(seed >= 0 && std::floor(seed) == seed, "ERR_RANGE", "seed: expected a non-negative integer, got " << seed);
      options.seed = static_cast<uint64_t>(seed);
    }
    struct Created {
      std::shared_ptr<gpt::Gpt> model;
      std::shared_ptr<SerialExecutor> executor;
    };
    return TorchWorker<Created>::run(
        env,
        [parsed, options]() {
          auto executor = std::make_shared<SerialExecutor>();
          auto model = executor->run([&] { return std::make_shared<gpt::Gpt>(parsed, options); });
          return Created{model, executor};
        },
        [](Napi::Env env, Created& created) -> Napi::Value {
          Napi::Object object = addonData(env).gpt.New({});
          GptWrap* self = GptWrap::Unwrap(object);
          self->gpt_ = created.model;
          self->executor_ = created.executor;
          return object;
        });
  });
}

// forward(tokens, shape, {inputPos, lastOnly}) → Promise<NativeTensor> logits
Napi::Value GptWrap::forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "running the model's forward pass", [&]() -> Napi::Value {
    auto model = this->model("forward");
    auto ex = executor_;
    at::Tensor tokens = tokensArg(info[0], parseShape(info[1], "shape"), "tokens");
    Napi::Object o = optionsArg(info, 2);
    std::optional<int64_t> inputPos;
    if (o.Has("inputPos") && o.Get("inputPos").IsNumber()) inputPos = o.Get("inputPos").As<Napi::Number>().Int64Value();
    const bool lastOnly = o.Has("lastOnly") && o.Get("lastOnly").ToBoolean().Value();
    auto lease = this->lease("forward");
    return TorchWorker<at::Tensor>::run(
        env, [model, ex, lease, tokens, inputPos, lastOnly]() { return ex->run([&] { return model->forward(tokens, inputPos, lastOnly); }); },
        [](Napi::Env env, at::Tensor& t) -> Napi::Value { return TensorWrap::wrap(env, t); });
  });
}

// loss(tokens, targets, shape, {backward, gradScale}) → Promise<{loss, tokens}>
Napi::Value GptWrap::loss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "computing the model's loss", [&]() -> Napi::Value {
    auto model = this->model("loss");
    auto ex = executor_;
    auto [tokens, targets] = tokenBatchArgs(info);
    Napi::Object o = optionsArg(info, 3);
    const bool backward = o.Has("backward") && o.Get("backward").ToBoolean().Value();
    const double gradScale = o.Has("gradScale") && o.Get("gradScale").IsNumber() ? o.Get("gradScale").As<Napi::Number>().DoubleValue() : 1.0;
    auto lease = this->lease("loss");
    return TorchWorker<gpt::LossResult>::run(
        env, [model, ex, lease, tokens, targets, backward, gradScale]() {
          return ex->run([&] { return model->loss(tokens, targets, backward, gradScale); });
        },
        [](Napi::Env env, gpt::LossResult& r) { return lossResultToJs(env, r); });
  });
}

// loadStateDict([[name, tensor], …], 'base' | 'adapter') → Promise<void>
Napi::Value GptWrap::loadStateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "loading weights into the model", [&]() -> Napi::Value {
    auto model = this->model("loadStateDict");
    auto ex = executor_;
    LITLORA_CHECK(info.Length() >= 2 && info[0].IsArray() && info[1].IsString(), "ERR_TYPE",
                  "loadStateDict: expected ([[name, tensor], …], 'base' | 'adapter')");
    std::vector<gpt::NamedTensor> entries = namedTensorsFromJs(info[0], "loadStateDict");
    const std::string kind = info[1].As<Napi::String>().Utf8Value();
    LITLORA_CHECK(kind == "base" || kind == "adapter", "ERR_ARG", "loadStateDict: kind must be 'base' or 'adapter', got '" << kind << "'");
    const gpt::LoadKind loadKind = kind == "base" ? gpt::LoadKind::Base : gpt::LoadKind::Adapter;
    auto lease = this->lease("loadStateDict");
    return TorchWorker<bool>::run(
        env, [model, ex, lease, entries, loadKind]() { return ex->run([&] { model->loadStateDict(entries, loadKind); return true; }); },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

// stateDict('base' | 'lora' | 'merged') → Promise<[[name, tensor], …]>
Napi::Value GptWrap::stateDict(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "reading the model's weights", [&]() -> Napi::Value {
    auto model = this->model("stateDict");
    auto ex = executor_;
    const std::string kind = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    LITLORA_CHECK(kind == "base" || kind == "lora" || kind == "merged" || kind == "grad", "ERR_ARG",
                  "stateDict: kind must be 'base', 'lora', 'merged' or 'grad', got '" << kind << "'");
    auto lease = this->lease("stateDict");
    return TorchWorker<std::vector<gpt::NamedTensor>>::run(
        env,
        [model, ex, lease, kind]() {
          return ex->run([&] {
            if (kind == "base") return model->baseStateDict();
            if (kind == "lora") return model->loraStateDict();
            if (kind == "grad") return model->loraGradients();
            return model->mergedStateDict();
          });
        },
        [](Napi::Env env, std::vector<gpt::NamedTensor>& items) -> Napi::Value { return namedTensorsToJs(env, items); });
  });
}

// loraParameters() → [[name, tensor], …]: the trainable tensors themselves (no copy).
Napi::Value GptWrap::loraParameters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "listing the model's LoRA parameters", [&]() -> Napi::Value { return namedTensorsToJs(env, model("loraParameters")->loraParameters()); });
}

Napi::Value GptWrap::zeroGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "zeroing the LoRA gradients", [&]() -> Napi::Value {
    auto model = this->model("zeroGrad");
    auto lease = this->lease("zeroGrad");
    model->zeroGrad();
    return env.Undefined();
  });
}

Napi::Value GptWrap::merge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "merging the LoRA weights into the model", [&]() -> Napi::Value {
    auto model = this->model("merge");
    auto ex = executor_;
    auto lease = this->lease("merge");
    return TorchWorker<bool>::run(
        env, [model, ex, lease]() { return ex->run([&] { model->merge(); return true; }); }, [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value GptWrap::unmerge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "taking the LoRA weights out of the model", [&]() -> Napi::Value {
    auto model = this->model("unmerge");
    auto ex = executor_;
    auto lease = this->lease("unmerge");
    return TorchWorker<bool>::run(
        env, [model, ex, lease]() { return ex->run([&] { model->unmerge(); return true; }); }, [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

// setKvCache(batch, maxLength) → Promise<void>
Napi::Value GptWrap::setKvCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "allocating the KV cache", [&]() -> Napi::Value {
    auto model = this->model("setKvCache");
    auto ex = executor_;
    LITLORA_CHECK(info.Length() >= 2 && info[0].IsNumber() && info[1].IsNumber(), "ERR_TYPE", "setKvCache: expected (batch, maxLength)");
    const int64_t batch = info[0].As<Napi::Number>().Int64Value(), maxLen = info[1].As<Napi::Number>().Int64Value();
    auto lease = this->lease("setKvCache");
    return TorchWorker<bool>::run(
        env, [model, ex, lease, batch, maxLen]() { return ex->run([&] { model->setKvCache(batch, maxLen); return true; }); },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value GptWrap::clearKvCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "freeing the KV cache", [&]() -> Napi::Value {
    auto model = this->model("clearKvCache");
    auto lease = this->lease("clearKvCache");
    model->clearKvCache();
    return env.Undefined();
  });
}

Napi::Value GptWrap::info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "reading the model's info", [&]() -> Napi::Value {
    auto model = this->model("info");
    Napi::Object out = Napi::Object::New(env);
    out.Set("parameterCount", static_cast<double>(model->parameterCount()));
    out.Set("loraParameterCount", static_cast<double>(model->loraParameterCount()));
    out.Set("merged", model->merged());
    out.Set("hasLora", model->hasLora());
    out.Set("legacyQkvAdapter", model->legacyQkvAdapter());
    out.Set("dtype", dtypeName(model->dtype()));
    out.Set("device", deviceName(model->device()));
    out.Set("busy", busy_->load());
    std::vector<int64_t> slots = model->kvCacheSlots();
    Napi::Array kvSlots = Napi::Array::New(env, slots.size());
    for (size_t i = 0; i < slots.size(); ++i) kvSlots.Set(static_cast<uint32_t>(i), static_cast<double>(slots[i]));
    out.Set("kvCacheSlots", kvSlots);
    return out;
  });
}

std::shared_ptr<DecodeHost> GptWrap::decodeHost() {
  if (!decode_) decode_ = std::make_shared<DecodeHost>();
  return decode_;
}

// addAdapter(name, config, [[name, tensor], …]) → Promise<void>: a runtime adapter with config.lora's settings
// (config is this model's NativeGptConfig with the adapter's lora fields).
Napi::Value GptWrap::addAdapter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "adding an adapter to the model", [&]() -> Napi::Value {
    auto model = this->model("adapters.add");
    auto ex = executor_;
    LITLORA_CHECK(info.Length() >= 3 && info[0].IsString() && info[1].IsObject() && info[2].IsArray(), "ERR_TYPE",
                  "addAdapter: expected (name, config, [[name, tensor], …])");
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    const gpt::LoraSettings lora = gptConfigFromJs(info[1], "config").lora;
    std::vector<gpt::NamedTensor> entries = namedTensorsFromJs(info[2], "addAdapter");
    auto lease = this->lease("adapters.add");
    return TorchWorker<bool>::run(
        env, [model, ex, lease, name, lora, entries]() { return ex->run([&] { model->addAdapter(name, lora, entries); return true; }); },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

// removeAdapter(name) → Promise<void>
Napi::Value GptWrap::removeAdapter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "removing an adapter from the model", [&]() -> Napi::Value {
    auto model = this->model("adapters.remove");
    auto ex = executor_;
    LITLORA_CHECK(info.Length() >= 1 && info[0].IsString(), "ERR_TYPE", "removeAdapter: expected (name)");
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    auto lease = this->lease("adapters.remove");
    return TorchWorker<bool>::run(
        env, [model, ex, lease, name]() { return ex->run([&] { model->removeAdapter(name); return true; }); },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value GptWrap::adapterNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "listing the model's adapters", [&]() -> Napi::Value {
    auto names = model("adapters.names")->adapterNames();
    Napi::Array out = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::String::New(env, names[i]));
    return out;
  });
}

Napi::Value GptWrap::dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "disposing of the model", [&]() -> Napi::Value {
    if (!gpt_) return env.Undefined();
    LITLORA_CHECK(!busy_->load(), "ERR_BUSY", "dispose: an operation on this model is still running; await it first");
    gpt_.reset();
    executor_.reset();
    return env.Undefined();
  });
}

Napi::Value GptWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), gpt_ == nullptr); }

}  // namespace litlora
