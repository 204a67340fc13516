#include "lora_wrap.h"

#include "async.h"
#include "convert.h"
#include "core/error.h"
#include "core/lora.h"
#include "errors.h"
#include "tensor_wrap.h"

namespace litlora {

namespace {

at::Tensor optionalTensor(const Napi::Value& value, const std::string& argName) {
  if (value.IsUndefined() || value.IsNull()) return at::Tensor();
  return TensorWrap::unwrap(value, argName);
}

double numberField(const Napi::Object& o, const char* name, double fallback) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  LITLORA_CHECK(v.IsNumber(), "ERR_TYPE", "options." << name << ": expected a number");
  return v.As<Napi::Number>().DoubleValue();
}

// The options object ts/model/lora.ts builds (already validated there): {scaling, dropout, training, seed, qkv}.
lora::Options parseOptions(const Napi::Value& value) {
  lora::Options o;
  if (!value.IsObject()) return o;
  Napi::Object obj = value.As<Napi::Object>();
  o.scaling = numberField(obj, "scaling", 1.0);
  o.dropout = numberField(obj, "dropout", 0.0);
  o.training = obj.Get("training").ToBoolean().Value();
  Napi::Value seed = obj.Get("seed");
  if (seed.IsBigInt()) {
    bool lossless = true;
    o.seed = seed.As<Napi::BigInt>().Uint64Value(&lossless);
    LITLORA_CHECK(lossless, "ERR_RANGE", "options.seed: expected an integer in [0, 2^64)");
  } else if (seed.IsNumber()) {
    o.seed = static_cast<uint64_t>(seed.As<Napi::Number>().Int64Value());
  }
  Napi::Value qkv = obj.Get("qkv");
  if (qkv.IsObject()) {
    Napi::Object q = qkv.As<Napi::Object>();
    lora::QkvSpec spec;
    spec.nHead = static_cast<int64_t>(numberField(q, "nHead", 0));
    spec.nQueryGroups = static_cast<int64_t>(numberField(q, "nQueryGroups", 0));
    spec.headSize = static_cast<int64_t>(numberField(q, "headSize", 0));
    Napi::Value enable = q.Get("enable");
    LITLORA_CHECK(enable.IsArray() && enable.As<Napi::Array>().Length() == 3, "ERR_TYPE",
                  "options.qkv.enable: expected [q, k, v] booleans");
    for (uint32_t i = 0; i < 3; ++i) spec.enable[i] = enable.As<Napi::Array>().Get(i).ToBoolean().Value();
    spec.interleaved = q.Get("interleaved").ToBoolean().Value();
    o.qkv = spec;
  }
  return o;
}

Napi::Value wrapTensor(Napi::Env env, at::Tensor& t) { return TensorWrap::wrap(env, std::move(t)); }

// (x, weight, bias | null, loraA, loraB, options): the arguments of loraForward and loraLinearForward.
struct ForwardArgs {
  at::Tensor x, weight, bias, A, B;
  lora::Options o;
};

ForwardArgs forwardArgs(const Napi::CallbackInfo& info) {
  return {TensorWrap::unwrap(info[0], "x"),     TensorWrap::unwrap(info[1], "weight"),
          optionalTensor(info[2], "bias"),     TensorWrap::unwrap(info[3], "loraA"),
          TensorWrap::unwrap(info[4], "loraB"), parseOptions(info[5])};
}

// loraForward(x, weight, bias | null, loraA, loraB, options) → Promise<NativeTensor>
Napi::Value forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "running a LoRA forward", [&]() -> Napi::Value {
    const ForwardArgs a = forwardArgs(info);
    return TorchWorker<at::Tensor>::run(
        env, [a]() { return lora::forward(a.x, a.weight, a.bias, a.A, a.B, a.o); }, wrapTensor);
  });
}

// loraBackward(gradY, x, weight, loraA, loraB, options) → Promise<{gradX, gradA, gradB}>
Napi::Value backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "running a LoRA backward", [&]() -> Napi::Value {
    at::Tensor gradY = TensorWrap::unwrap(info[0], "gradY");
    at::Tensor x = TensorWrap::unwrap(info[1], "x");
    at::Tensor weight = TensorWrap::unwrap(info[2], "weight");
    at::Tensor A = TensorWrap::unwrap(info[3], "loraA");
    at::Tensor B = TensorWrap::unwrap(info[4], "loraB");
    lora::Options o = parseOptions(info[5]);
    return TorchWorker<lora::Grads>::run(
        env, [=]() { return lora::backward(gradY, x, weight, A, B, o); },
        [](Napi::Env env, lora::Grads& g) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("gradX", TensorWrap::wrap(env, std::move(g.gradX)));
          out.Set("gradA", TensorWrap::wrap(env, std::move(g.gradA)));
          out.Set("gradB", TensorWrap::wrap(env, std::move(g.gradB)));
          return out;
        });
  });
}

// loraMerge / loraUnmerge(weight, loraA, loraB, options, inPlace) → Promise<NativeTensor | undefined>
// (undefined when inPlace: the caller's weight handle already holds the result).
template <bool Merge>
Napi::Value mergeOrUnmerge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, Merge ? "merging a LoRA weight" : "unmerging a LoRA weight", [&]() -> Napi::Value {
    at::Tensor weight = TensorWrap::unwrap(info[0], "weight");
    at::Tensor A = TensorWrap::unwrap(info[1], "loraA");
    at::Tensor B = TensorWrap::unwrap(info[2], "loraB");
    lora::Options o = parseOptions(info[3]);
    bool inPlace = info[4].ToBoolean().Value();
    return TorchWorker<at::Tensor>::run(
        env,
        [=]() { return Merge ? lora::merge(weight, A, B, o, inPlace) : lora::unmerge(weight, A, B, o, inPlace); },
        [inPlace](Napi::Env env, at::Tensor& t) -> Napi::Value {
          if (inPlace) return env.Undefined();
          return TensorWrap::wrap(env, std::move(t));
        });
  });
}

// internals.loraDropoutMask(like, p, seed) → Promise<NativeTensor>: the scaled mask forward uses for that seed.
Napi::Value dropoutMask(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "making a LoRA dropout mask", [&]() -> Napi::Value {
    at::Tensor like = TensorWrap::unwrap(info[0], "like");
    lora::Options o = parseOptions(info[1]);
    return TorchWorker<at::Tensor>::run(
        env, [=]() { return lora::dropoutMask(like, o.dropout, o.seed); }, wrapTensor);
  });
}

// internals.loraReferenceGrads(gradY, x, weight, bias | null, loraA, loraB, options, viaLinear) → Promise<grads>
Napi::Value referenceGrads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "computing reference LoRA gradients", [&]() -> Napi::Value {
    at::Tensor gradY = TensorWrap::unwrap(info[0], "gradY");
    at::Tensor x = TensorWrap::unwrap(info[1], "x");
    at::Tensor weight = TensorWrap::unwrap(info[2], "weight");
    at::Tensor bias = optionalTensor(info[3], "bias");
    at::Tensor A = TensorWrap::unwrap(info[4], "loraA");
    at::Tensor B = TensorWrap::unwrap(info[5], "loraB");
    lora::Options o = parseOptions(info[6]);
    bool viaLinear = info[7].ToBoolean().Value();
    return TorchWorker<lora::Grads>::run(
        env, [=]() { return lora::referenceGrads(gradY, x, weight, bias, A, B, o, viaLinear); },
        [](Napi::Env env, lora::Grads& g) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("gradX", TensorWrap::wrap(env, std::move(g.gradX)));
          out.Set("gradA", TensorWrap::wrap(env, std::move(g.gradA)));
          out.Set("gradB", TensorWrap::wrap(env, std::move(g.gradB)));
          return out;
        });
  });
}

// internals.loraLinearForward(x, weight, bias | null, loraA, loraB, options) → Promise<NativeTensor>: the
// autograd Function's forward with the seed as given.
Napi::Value linearForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "running a LoRA linear forward", [&]() -> Napi::Value {
    const ForwardArgs a = forwardArgs(info);
    return TorchWorker<at::Tensor>::run(
        env, [a]() { return lora::linearWithSeed(a.x, a.weight, a.bias, a.A, a.B, a.o).detach(); }, wrapTensor);
  });
}

// internals.loraSynchronize(device) → Promise<undefined>: waits for queued device work (benchmarks).
Napi::Value synchronize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "waiting for the device", [&]() -> Napi::Value {
    at::Device device = parseDevice(info[0].As<Napi::String>().Utf8Value(), "device");
    return TorchWorker<bool>::run(
        env, [device]() { lora::synchronize(device); return true; },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

// internals.loraDenseFloor(x, weight, gradY) → Promise<undefined>: x·Wᵀ and gradY·W (benchmarks).
Napi::Value denseFloor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "running the dense benchmark products", [&]() -> Napi::Value {
    at::Tensor x = TensorWrap::unwrap(info[0], "x");
    at::Tensor weight = TensorWrap::unwrap(info[1], "weight");
    at::Tensor gradY = TensorWrap::unwrap(info[2], "gradY");
    return TorchWorker<bool>::run(
        env, [=]() { lora::denseFloor(x, weight, gradY); return true; },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

// internals.loraPath(tokens, in, out, r, parts, dtype, stage) → 'skinny' | 'merged': the path the cost model picks
// for the forward (stage 'forward') or for the backward's gradX (stage 'gradX').
Napi::Value path(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "choosing a LoRA kernel", [&]() -> Napi::Value {
    auto num = [&](int i) { return static_cast<int64_t>(info[i].As<Napi::Number>().Int64Value()); };
    at::ScalarType dtype = parseDtype(info[5].As<Napi::String>().Utf8Value(), "dtype");
    const bool gradX = info.Length() > 6 && info[6].IsString() && info[6].As<Napi::String>().Utf8Value() == "gradX";
    lora::Path p = (gradX ? lora::chooseGradXPath : lora::choosePath)(num(0), num(1), num(2), num(3), num(4), dtype, false);
    return Napi::String::New(env, p == lora::Path::Merged ? "merged" : "skinny");
  });
}

}  // namespace

void initLora(Napi::Env env, Napi::Object exports, Napi::Object internals) {
  exports.Set("loraForward", Napi::Function::New(env, forward));
  exports.Set("loraBackward", Napi::Function::New(env, backward));
  exports.Set("loraMerge", Napi::Function::New(env, mergeOrUnmerge<true>));
  exports.Set("loraUnmerge", Napi::Function::New(env, mergeOrUnmerge<false>));
  internals.Set("loraDropoutMask", Napi::Function::New(env, dropoutMask));
  internals.Set("loraReferenceGrads", Napi::Function::New(env, referenceGrads));
  internals.Set("loraLinearForward", Napi::Function::New(env, linearForward));
  internals.Set("loraSynchronize", Napi::Function::New(env, synchronize));
  internals.Set("loraDenseFloor", Napi::Function::New(env, denseFloor));
  internals.Set("loraPath", Napi::Function::New(env, path));
}

}  // namespace litlora
