#include "distributed_wrap.h"

#include <cmath>

#include "addon_data.h"
#include "async.h"
#include "core/error.h"
#include "errors.h"
#include "gpt_wrap.h"
#include "tensor_wrap.h"

namespace litlora {

namespace {

int intField(const Napi::Object& o, const char* key, double fallback, double min, double max) {
  double v = fallback;
  if (o.Has(key) && !o.Get(key).IsUndefined() && !o.Get(key).IsNull()) {
    LITLORA_CHECK(o.Get(key).IsNumber(), "ERR_TYPE", "distributed." << key << ": expected a number");
    v = o.Get(key).As<Napi::Number>().DoubleValue();
  }
  LITLORA_CHECK(std::floor(v) == v && v >= min && v <= max, "ERR_RANGE",
                "distributed." << key << ": expected an integer in " << min << ".." << max << ", got " << v);
  return static_cast<int>(v);
}

}  // namespace

void DistributedWrap::init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "NativeProcessGroup",
                                   {
                                       StaticMethod("create", &DistributedWrap::create),
                                       StaticMethod("backends", &DistributedWrap::backends),
                                       InstanceMethod("allReduceSum", &DistributedWrap::allReduceSum),
                                       InstanceMethod("allReduceMean", &DistributedWrap::allReduceMean),
                                       InstanceMethod("barrier", &DistributedWrap::barrier),
                                       InstanceMethod("stats", &DistributedWrap::stats),
                                       InstanceMethod("dispose", &DistributedWrap::dispose),
                                   });
  addonData(env).processGroup = Napi::Persistent(cls);
  exports.Set("NativeProcessGroup", cls);
}

DistributedWrap::DistributedWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DistributedWrap>(info) {}

std::shared_ptr<distributed::ProcessGroup> DistributedWrap::group(const std::string& what) const {
  LITLORA_CHECK(group_ != nullptr, "ERR_DISPOSED", what << ": the process group was disposed; it can no longer be used");
  return group_;
}

std::shared_ptr<distributed::ProcessGroup> DistributedWrap::groupOf(const Napi::Value& value, const std::string& argName) {
  LITLORA_CHECK(value.IsObject() && value.As<Napi::Object>().InstanceOf(addonData(value.Env()).processGroup.Value()), "ERR_TYPE",
                argName << ": expected a NativeProcessGroup");
  return DistributedWrap::Unwrap(value.As<Napi::Object>())->group(argName);
}

// create({rank, worldSize, localRank, masterAddr, masterPort, timeoutMs, backend}) → Promise<NativeProcessGroup>
Napi::Value DistributedWrap::create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "joining the distributed process group", [&]() -> Napi::Value {
    Napi::Object o = optionsArg(info, 0);
    distributed::Options options;
    options.worldSize = intField(o, "worldSize", 1, 1, 1 << 20);
    options.rank = intField(o, "rank", 0, 0, 1 << 20);
    options.masterPort = intField(o, "masterPort", options.masterPort, 1, 65535);
    options.localRank = intField(o, "localRank", options.rank, 0, 1 << 20);
    const double timeout = o.Has("timeoutMs") && o.Get("timeoutMs").IsNumber() ? o.Get("timeoutMs").As<Napi::Number>().DoubleValue()
                                                                               : static_cast<double>(options.timeoutMs);
    LITLORA_CHECK(timeout >= 1 && std::floor(timeout) == timeout, "ERR_RANGE", "distributed.timeoutMs: expected an integer ≥ 1, got " << timeout);
    options.timeoutMs = static_cast<int64_t>(timeout);
    if (o.Has("masterAddr") && o.Get("masterAddr").IsString()) options.masterAddr = o.Get("masterAddr").As<Napi::String>().Utf8Value();
    if (o.Has("backend") && o.Get("backend").IsString()) options.backend = o.Get("backend").As<Napi::String>().Utf8Value();
    return TorchWorker<std::shared_ptr<distributed::ProcessGroup>>::run(
        env, [options]() { return std::make_shared<distributed::ProcessGroup>(options); },
        [](Napi::Env env, std::shared_ptr<distributed::ProcessGroup>& group) -> Napi::Value {
          Napi::Object object = addonData(env).processGroup.New({});
          DistributedWrap::Unwrap(object)->group_ = group;
          return object;
        });
  });
}

// backends() → string[]: the c10d backends this build has ([] when its libtorch has no c10d).
Napi::Value DistributedWrap::backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> names = distributed::availableBackends();
  Napi::Array out = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); ++i) out.Set(static_cast<uint32_t>(i), names[i]);
  return out;
}

// allReduceSum(numbers[]) → Promise<number[]>
Napi::Value DistributedWrap::allReduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "summing over the ranks", [&]() -> Napi::Value {
    auto group = this->group("allReduceSum");
    LITLORA_CHECK(info.Length() >= 1 && info[0].IsArray(), "ERR_TYPE", "allReduceSum: expected an array of numbers");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<double> values;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      LITLORA_CHECK(a.Get(i).IsNumber(), "ERR_TYPE", "allReduceSum: element " << i << " is not a number");
      values.push_back(a.Get(i).As<Napi::Number>().DoubleValue());
    }
    return TorchWorker<std::vector<double>>::run(
        env, [group, values]() { return group->allReduceSum(values); },
        [](Napi::Env env, std::vector<double>& sums) -> Napi::Value {
          Napi::Array out = Napi::Array::New(env, sums.size());
          for (size_t i = 0; i < sums.size(); ++i) out.Set(static_cast<uint32_t>(i), sums[i]);
          return out;
        });
  });
}

// allReduceMean(tensors[]) → Promise<void>: averages the tensors in place over the ranks (the gradient path).
Napi::Value DistributedWrap::allReduceMean(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "averaging tensors over the ranks", [&]() -> Napi::Value {
    auto group = this->group("allReduceMean");
    LITLORA_CHECK(info.Length() >= 1 && info[0].IsArray(), "ERR_TYPE", "allReduceMean: expected an array of NativeTensor");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<at::Tensor> tensors;
    for (uint32_t i = 0; i < a.Length(); ++i) tensors.push_back(TensorWrap::unwrap(a.Get(i), "tensors[" + std::to_string(i) + "]"));
    const int64_t bucketBytes = info.Length() >= 2 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int64Value() : (25 << 20);
    return TorchWorker<bool>::run(
        env, [group, tensors, bucketBytes]() { group->allReduceMean(tensors, bucketBytes); return true; },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value DistributedWrap::barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "waiting for every rank", [&]() -> Napi::Value {
    auto group = this->group("barrier");
    return TorchWorker<bool>::run(
        env, [group]() { group->barrier(); return true; }, [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

// stats() → {allReduceCalls, buckets, overlappedBuckets, bytes, seconds, lastWaitStart}: the gradient all-reduces so far (for bench:ddp).
Napi::Value DistributedWrap::stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "reading the process group's statistics", [&]() -> Napi::Value {
    distributed::Stats s = this->group("stats")->stats();
    Napi::Object out = Napi::Object::New(env);
    out.Set("allReduceCalls", static_cast<double>(s.allReduceCalls));
    out.Set("buckets", static_cast<double>(s.buckets));
    out.Set("overlappedBuckets", static_cast<double>(s.overlappedBuckets));
    out.Set("bytes", static_cast<double>(s.bytes));
    out.Set("seconds", s.seconds);
    out.Set("lastWaitStart", s.lastWaitStart);
    return out;
  });
}

Napi::Value DistributedWrap::dispose(const Napi::CallbackInfo& info) {
  group_.reset();  // a trainer or running work holds its own reference
  return info.Env().Undefined();
}

}  // namespace litlora
