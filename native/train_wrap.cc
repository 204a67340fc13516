#include "train_wrap.h"

#include <cmath>

#include "addon_data.h"
#include "async.h"
#include "convert.h"
#include "core/error.h"
#include "distributed_wrap.h"
#include "errors.h"
#include "gpt_wrap.h"
#include "tensor_wrap.h"

namespace litlora {

namespace {




double numberField(const Napi::Object& o, const char* key, double fallback) {
  if (!o.Has(key)) return fallback;
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  LITLORA_CHECK(v.IsNumber(), "ERR_TYPE", key << ": expected a number");
  return v.As<Napi::Number>().DoubleValue();
}



}  // namespace

void TrainWrap::init(Napi::Env env, Napi::Object exports, Napi::Object internals) {
  Napi::Function cls = DefineClass(env, "NativeTrainer",
                                   {
                                       StaticMethod("create", &TrainWrap::create),
                                       StaticMethod("manualSeed", &TrainWrap::manualSeed),
                                       InstanceMethod("microStep", &TrainWrap::microStep),
                                       InstanceMethod("evaluate", &TrainWrap::evaluate),
                                       InstanceMethod("forward", &TrainWrap::forward),
                                       InstanceMethod("state", &TrainWrap::state),
                                       InstanceMethod("loadState", &TrainWrap::loadState),
                                       InstanceMethod("restoreDtype", &TrainWrap::restoreDtype),
                                       InstanceMethod("setProcessGroup", &TrainWrap::setProcessGroup),
                                       InstanceMethod("info", &TrainWrap::info),
                                       InstanceMethod("dispose", &TrainWrap::dispose),
                                   });
  addonData(env).trainer = Napi::Persistent(cls);
  exports.Set("NativeTrainer", cls);
  internals.Set("adamwSteps", Napi::Function::New(env, &TrainWrap::adamwSteps, "adamwSteps"));
}

TrainWrap::TrainWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainWrap>(info) {}

GptWrap* TrainWrap::gpt() const {
  LITLORA_CHECK(!gptRef_.IsEmpty(), "ERR_DISPOSED", "the trainer was disposed; it can no longer be used");
  return GptWrap::fromValue(gptRef_.Value(), "model");
}

std::shared_ptr<train::Trainer> TrainWrap::trainer(const std::string& what) const {
  LITLORA_CHECK(trainer_ != nullptr, "ERR_DISPOSED", what << ": the trainer was disposed; it can no longer be used");
  gpt()->model(what);  // ERR_DISPOSED when the model went away
  return trainer_;
}

// create(nativeGpt, {precision, beta1, beta2, eps, weightDecay, fused}) → NativeTrainer (sync: small allocations only)
Napi::Value TrainWrap::create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "creating the trainer", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 1, "ERR_TYPE", "NativeTrainer.create: expected (model, options)");
    GptWrap* gpt = GptWrap::fromValue(info[0], "model");
    Napi::Object o = optionsArg(info, 1);
    train::AdamWOptions options;
    options.beta1 = numberField(o, "beta1", options.beta1);
    options.beta2 = numberField(o, "beta2", options.beta2);
    options.eps = numberField(o, "eps", options.eps);
    options.weightDecay = numberField(o, "weightDecay", options.weightDecay);
    if (o.Has("fused") && o.Get("fused").IsBoolean()) options.fused = o.Get("fused").As<Napi::Boolean>().Value();
    const std::string precision = o.Has("precision") && o.Get("precision").IsString() ? o.Get("precision").As<Napi::String>().Utf8Value() : "32-true";
    auto model = gpt->model("NativeTrainer.create");
    auto lease = gpt->lease("NativeTrainer.create");
    auto trainer = std::make_shared<train::Trainer>(model, options, train::parsePrecision(precision));
    Napi::Object object = addonData(env).trainer.New({});
    TrainWrap* self = TrainWrap::Unwrap(object);
    self->trainer_ = trainer;
    self->gptRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    return object;
  });
}

// manualSeed(seed): seeds the default generators (dropout) as torch.manual_seed.
Napi::Value TrainWrap::manualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "seeding the random generators", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 1 && info[0].IsNumber(), "ERR_TYPE", "manualSeed: expected a number");
    const double seed = info[0].As<Napi::Number>().DoubleValue();
    LITLORA_CHECK(seed >= 0 && std::floor(seed) == seed, "ERR_RANGE", "seed: expected an integer ≥ 0, got " << seed);
    train::manualSeed(static_cast<uint64_t>(seed));
    return env.Undefined();
  });
}

// internals.adamwSteps(params[], grads[][], lrs[], {beta1, beta2, eps, weightDecay, fused}) → NativeTensor[]: copies of
// params after one AdamW step per lrs entry with the given gradients. For checking the optimizer against
// torch.optim.AdamW.
Napi::Value TrainWrap::adamwSteps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "running AdamW steps", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 3 && info[0].IsArray() && info[1].IsArray() && info[2].IsArray(), "ERR_TYPE",
                  "adamwSteps: expected (params, gradsPerStep, lrs, options)");
    Napi::Array ps = info[0].As<Napi::Array>(), gs = info[1].As<Napi::Array>(), lrs = info[2].As<Napi::Array>();
    LITLORA_CHECK(gs.Length() == lrs.Length(), "ERR_ARG", "adamwSteps: one gradient list per learning rate");
    std::vector<gpt::NamedTensor> params;
    for (uint32_t i = 0; i < ps.Length(); ++i)
      params.push_back({"p" + std::to_string(i), TensorWrap::unwrap(ps.Get(i), "params[" + std::to_string(i) + "]").detach().clone()});
    Napi::Object o = optionsArg(info, 3);
    train::AdamWOptions options;
    options.beta1 = numberField(o, "beta1", options.beta1);
    options.beta2 = numberField(o, "beta2", options.beta2);
    options.eps = numberField(o, "eps", options.eps);
    options.weightDecay = numberField(o, "weightDecay", options.weightDecay);
    if (o.Has("fused") && o.Get("fused").IsBoolean()) options.fused = o.Get("fused").As<Napi::Boolean>().Value();
    train::AdamW adamw(params, options);
    for (uint32_t s = 0; s < gs.Length(); ++s) {
      Napi::Array grads = gs.Get(s).As<Napi::Array>();
      LITLORA_CHECK(grads.Length() == params.size(), "ERR_ARG", "adamwSteps: step " << s << " needs one gradient per parameter");
      for (uint32_t i = 0; i < grads.Length(); ++i)
        params[i].tensor.mutable_grad() = TensorWrap::unwrap(grads.Get(i), "grad").to(params[i].tensor.options()).clone();
      adamw.step(lrs.Get(s).As<Napi::Number>().DoubleValue());
    }
    Napi::Array out = Napi::Array::New(env, params.size());
    for (size_t i = 0; i < params.size(); ++i) out.Set(static_cast<uint32_t>(i), TensorWrap::wrap(env, params[i].tensor.detach()));
    return out;
  });
}

// microStep(tokens, targets, shape, {accumulate, step, lr, maxNorm}) → Promise<{loss, tokens, stepped, gradNorm}>
Napi::Value TrainWrap::microStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "running a training step", [&]() -> Napi::Value {
    auto trainer = this->trainer("microStep");
    auto [tokens, targets] = tokenBatchArgs(info);
    Napi::Object o = optionsArg(info, 3);
    train::MicroStepOptions options;
    const double accumulate = numberField(o, "accumulate", 1);
    LITLORA_CHECK(accumulate >= 1 && std::floor(accumulate) == accumulate, "ERR_RANGE",
                  "accumulate: expected an integer ≥ 1, got " << accumulate);
    options.accumulateCount = static_cast<int64_t>(accumulate);
    options.step = o.Has("step") && o.Get("step").ToBoolean().Value();
    options.lr = numberField(o, "lr", options.lr);
    options.maxNorm = numberField(o, "maxNorm", 0);
    auto ex = gpt()->executor();
    auto lease = gpt()->lease("microStep");
    return TorchWorker<train::MicroStepResult>::run(
        env, [trainer, lease, ex, tokens, targets, options]() { return ex->run([&] { return trainer->microStep(tokens, targets, options); }); },
        [](Napi::Env env, train::MicroStepResult& r) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("loss", r.loss);
          out.Set("tokens", static_cast<double>(r.tokens));
          out.Set("stepped", r.stepped);
          out.Set("gradNorm", r.gradNorm);
          return out;
        });
  });
}

// evaluate(tokens, targets, shape) → Promise<{loss, tokens}>
Napi::Value TrainWrap::evaluate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "computing the validation loss", [&]() -> Napi::Value {
    auto trainer = this->trainer("evaluate");
    auto [tokens, targets] = tokenBatchArgs(info);
    auto ex = gpt()->executor();
    auto lease = gpt()->lease("evaluate");
    return TorchWorker<gpt::LossResult>::run(
        env, [trainer, lease, ex, tokens, targets]() { return ex->run([&] { return trainer->evaluate(tokens, targets); }); },
        [](Napi::Env env, gpt::LossResult& r) { return lossResultToJs(env, r); });
  });
}

// forward(tokens, shape, {lastOnly}) → Promise<NativeTensor> float32 logits
Napi::Value TrainWrap::forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "running the trainer's forward pass", [&]() -> Napi::Value {
    auto trainer = this->trainer("forward");
    at::Tensor tokens = tokensArg(info[0], parseShape(info[1], "shape"), "tokens");
    Napi::Object o = optionsArg(info, 2);
    const bool lastOnly = o.Has("lastOnly") && o.Get("lastOnly").ToBoolean().Value();
    auto ex = gpt()->executor();
    auto lease = gpt()->lease("forward");
    return TorchWorker<at::Tensor>::run(
        env, [trainer, lease, ex, tokens, lastOnly]() { return ex->run([&] { return trainer->forward(tokens, lastOnly).to(at::kCPU); }); },
        [](Napi::Env env, at::Tensor& t) -> Napi::Value { return TensorWrap::wrap(env, t); });
  });
}

// state() → Promise<[[name, tensor], …]>: optimizer moments and step, random generator states (CPU copies).
Napi::Value TrainWrap::state(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "reading the training state", [&]() -> Napi::Value {
    auto trainer = this->trainer("state");
    auto ex = gpt()->executor();
    auto lease = gpt()->lease("state");
    return TorchWorker<std::vector<gpt::NamedTensor>>::run(
        env, [trainer, lease, ex]() { return ex->run([&] { return trainer->state(); }); },
        [](Napi::Env env, std::vector<gpt::NamedTensor>& items) -> Napi::Value { return namedTensorsToJs(env, items); });
  });
}

// loadState([[name, tensor], …]) → Promise<void>
Napi::Value TrainWrap::loadState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "restoring the training state", [&]() -> Napi::Value {
    auto trainer = this->trainer("loadState");
    auto entries = namedTensorsFromJs(info.Length() > 0 ? info[0] : env.Undefined(), "loadState");
    auto ex = gpt()->executor();
    auto lease = gpt()->lease("loadState");
    return TorchWorker<bool>::run(
        env, [trainer, lease, ex, entries]() { return ex->run([&] { trainer->loadState(entries); return true; }); },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value TrainWrap::restoreDtype(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "restoring the model's dtype after training", [&]() -> Napi::Value {
    auto trainer = this->trainer("restoreDtype");
    auto ex = gpt()->executor();
    auto lease = gpt()->lease("restoreDtype");
    return TorchWorker<bool>::run(
        env, [trainer, lease, ex]() { return ex->run([&] { trainer->restoreDtype(); return true; }); },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

// setProcessGroup(NativeProcessGroup | null, {overlap?, bucketBytes?}) → Promise<void>: broadcasts rank 0's LoRA
// weights to every rank, then averages the gradients over the ranks at each optimizer step (null: one process again).
Napi::Value TrainWrap::setProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "joining the trainer to the process group", [&]() -> Napi::Value {
    auto trainer = this->trainer("setProcessGroup");
    std::shared_ptr<distributed::ProcessGroup> group;
    if (info.Length() >= 1 && !info[0].IsNull() && !info[0].IsUndefined()) group = DistributedWrap::groupOf(info[0], "processGroup");
    train::GradientSync sync;
    if (info.Length() >= 2 && info[1].IsObject()) {
      Napi::Object o = info[1].As<Napi::Object>();
      if (o.Get("overlap").IsBoolean()) sync.overlap = o.Get("overlap").As<Napi::Boolean>().Value();
      if (o.Get("bucketBytes").IsNumber()) sync.bucketBytes = o.Get("bucketBytes").As<Napi::Number>().Int64Value();
    }
    auto ex = gpt()->executor();
    auto lease = gpt()->lease("setProcessGroup");
    return TorchWorker<bool>::run(
        env, [trainer, lease, ex, group, sync]() { return ex->run([&] { trainer->setProcessGroup(group, sync); return true; }); },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value TrainWrap::info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "reading the trainer's info", [&]() -> Napi::Value {
    auto trainer = this->trainer("info");
    Napi::Object out = Napi::Object::New(env);
    out.Set("optimizerSteps", static_cast<double>(trainer->optimizer().stepCount()));
    out.Set("fusedAdamW", trainer->optimizer().usesFused());
    out.Set("precision", train::precisionName(trainer->precision()));
    return out;
  });
}

Napi::Value TrainWrap::dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "disposing of the trainer", [&]() -> Napi::Value {
    trainer_.reset();  // running work holds its own reference
    if (!gptRef_.IsEmpty()) gptRef_.Reset();
    return env.Undefined();
  });
}

}  // namespace litlora
