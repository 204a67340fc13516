#include "tensor_wrap.h"

#include <algorithm>

#include "addon_data.h"
#include "async.h"
#include "convert.h"
#include "core/error.h"
#include "core/tensorfile.h"
#include "errors.h"

namespace litlora {

namespace {

// Host bytes owned by a tensor, so that V8's GC feels the pressure of forgotten tensors. A tensor that maps a
// file is not counted: its pages are the page cache's, and telling V8 of them made every TensorFile.get of a
// large tensor set off a full mark-compact (bench:io: ~30 of them while getting a 1.6 GB checkpoint, 85 ms).
//
// Counted: the bytes the tensor actually holds. numel × element size is not that: a stride-0 view (an expanded
// tensor, or a crafted file) can claim 2^60 bytes over a 4-byte storage, and reporting that to V8 aborted the
// process inside napi_adjust_external_memory. A view counts at most its storage (several views of one storage
// each count their own share at most).
int64_t hostBytes(const at::Tensor& t) {
  if (!t.defined() || !t.device().is_cpu() || !t.has_storage() || tensorfile::isFileMapped(t)) return 0;
  const uint64_t logical = static_cast<uint64_t>(t.numel()) * static_cast<uint64_t>(t.element_size());
  return static_cast<int64_t>(std::min<uint64_t>(logical, t.storage().nbytes()));
}

}  // namespace

void TensorWrap::init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "NativeTensor",
                                   {
                                       StaticMethod("fromArray", &TensorWrap::fromArray),
                                       InstanceAccessor("shape", &TensorWrap::shape, nullptr),
                                       InstanceAccessor("dtype", &TensorWrap::dtype, nullptr),
                                       InstanceAccessor("device", &TensorWrap::device, nullptr),
                                       InstanceAccessor("disposed", &TensorWrap::disposed, nullptr),
                                       InstanceMethod("dispose", &TensorWrap::dispose),
                                       InstanceMethod("data", &TensorWrap::data),
                                       InstanceMethod("to", &TensorWrap::to),
                                   });
  addonData(env).tensor = Napi::Persistent(cls);
  exports.Set("NativeTensor", cls);
}

// Only native code creates tensors: JS `new NativeTensor()` makes an empty, disposed handle.
TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) { disposed_ = true; }

Napi::Object TensorWrap::wrap(Napi::Env env, at::Tensor tensor) {
  Napi::Object object = addonData(env).tensor.New({});
  TensorWrap* self = TensorWrap::Unwrap(object);
  self->tensor_ = std::move(tensor);
  self->disposed_ = false;
  self->accountedBytes_ = hostBytes(self->tensor_);
  if (self->accountedBytes_) Napi::MemoryManagement::AdjustExternalMemory(env, self->accountedBytes_);
  return object;
}

bool TensorWrap::isTensor(const Napi::Value& value) {
  return value.IsObject() && value.As<Napi::Object>().InstanceOf(addonData(value.Env()).tensor.Value());
}

at::Tensor TensorWrap::unwrap(const Napi::Value& value, const std::string& argName) {
  if (!isTensor(value)) throw Error("ERR_TYPE", argName + ": expected a Tensor");
  return TensorWrap::Unwrap(value.As<Napi::Object>())->checked(argName);
}

const at::Tensor& TensorWrap::checked(const std::string& what) const {
  LITLORA_CHECK(!disposed_, "ERR_DISPOSED", what << ": the tensor was disposed; it can no longer be used");
  tensorfile::checkMappingIntact(tensor_, what);
  return tensor_;
}

void TensorWrap::release(Napi::Env env) {
  if (accountedBytes_) Napi::MemoryManagement::AdjustExternalMemory(env, -accountedBytes_);
  accountedBytes_ = 0;
  tensor_ = at::Tensor();
  disposed_ = true;
}

void TensorWrap::Finalize(Napi::Env env) { release(env); }

Napi::Value TensorWrap::fromArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "creating a tensor from a typed array", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 4 && info[0].IsTypedArray(), "ERR_TYPE",
                  "Tensor.from: expected (typedArray, shape, dtype, device)");
    auto shape = parseShape(info[1], "shape");
    at::ScalarType dtype = parseDtype(info[2].As<Napi::String>().Utf8Value(), "dtype");
    at::Device device = parseDevice(info[3].As<Napi::String>().Utf8Value(), "device");
    at::Tensor t = tensorFromTypedArray(info[0].As<Napi::TypedArray>(), shape, dtype, "data");
    if (!device.is_cpu()) t = t.to(device);
    return wrap(env, std::move(t));
  });
}

Napi::Value TensorWrap::shape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "reading a tensor's shape", [&]() -> Napi::Value {
    const at::Tensor& t = checked("tensor.shape");
    Napi::Array out = Napi::Array::New(env, t.dim());
    for (int64_t i = 0; i < t.dim(); ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, t.size(i)));
    return out;
  });
}

Napi::Value TensorWrap::dtype(const Napi::CallbackInfo& info) {
  return guard(info.Env(), "reading a tensor's dtype", [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), dtypeName(checked("tensor.dtype").scalar_type()));
  });
}

Napi::Value TensorWrap::device(const Napi::CallbackInfo& info) {
  return guard(info.Env(), "reading a tensor's device", [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), deviceName(checked("tensor.device").device()));
  });
}

Napi::Value TensorWrap::disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), disposed_); }

Napi::Value TensorWrap::dispose(const Napi::CallbackInfo& info) {
  if (!disposed_) release(info.Env());
  return info.Env().Undefined();
}

// data(raw?: boolean) → Promise<TypedArray>; the device copy and the layout change happen off the main thread.
Napi::Value TensorWrap::data(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "copying a tensor's data to JavaScript", [&]() -> Napi::Value {
    at::Tensor t = checked("tensor.data()");
    tensorfile::checkMaterializable(t, "tensor.data()");
    bool raw = info.Length() > 0 && info[0].ToBoolean().Value();
    return TorchWorker<at::Tensor>::run(
        env, [t]() { return t.to(at::kCPU).contiguous(); },
        [raw](Napi::Env env, at::Tensor& cpu) { return typedArrayFromTensor(env, cpu, raw); });
  });
}

// to(dtype | null, device | null) → Promise<NativeTensor> (a new tensor; this one is unchanged).
Napi::Value TensorWrap::to(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "converting a tensor", [&]() -> Napi::Value {
    at::Tensor t = checked("tensor.to()");
    at::ScalarType dtype = t.scalar_type();
    at::Device device = t.device();
    if (info.Length() > 0 && info[0].IsString()) dtype = parseDtype(info[0].As<Napi::String>().Utf8Value(), "dtype");
    if (info.Length() > 1 && info[1].IsString()) device = parseDevice(info[1].As<Napi::String>().Utf8Value(), "device");
    tensorfile::checkMaterializable(t, "tensor.to()");
    return TorchWorker<at::Tensor>::run(
        env, [t, dtype, device]() { return t.to(device, dtype, /*non_blocking=*/false, /*copy=*/true); },
        [](Napi::Env env, at::Tensor& out) -> Napi::Value { return TensorWrap::wrap(env, std::move(out)); });
  });
}

}  // namespace litlora
