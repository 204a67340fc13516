#include "tensorfile_wrap.h"

#include <cmath>

#include "async.h"
#include "convert.h"
#include "core/error.h"
#include "core/pth.h"
#include "core/safetensors.h"
#include "errors.h"
#include "tensor_wrap.h"

namespace litlora {

namespace {

using Named = std::vector<std::pair<std::string, at::Tensor>>;

struct Conversion {
  std::optional<at::ScalarType> dtype;
  std::optional<at::Device> device;
};

// (dtype | null, device | null) arguments at `first`, parsed on the main thread.
Conversion parseConversion(const Napi::CallbackInfo& info, size_t first) {
  Conversion c;
  if (info.Length() > first && info[first].IsString()) c.dtype = parseDtype(info[first].As<Napi::String>().Utf8Value(), "dtype");
  if (info.Length() > first + 1 && info[first + 1].IsString())
    c.device = parseDevice(info[first + 1].As<Napi::String>().Utf8Value(), "device");
  return c;
}

// Converts only when asked for something else, so mapped tensors stay zero-copy by default.
at::Tensor convert(at::Tensor t, const Conversion& c) {
  at::ScalarType dtype = c.dtype.value_or(t.scalar_type());
  at::Device device = c.device.value_or(t.device());
  if (dtype == t.scalar_type() && device == t.device()) return t;
  return t.to(device, dtype);
}

Napi::Value plainValue(Napi::Env env, const tensorfile::PlainValue& v) {
  using K = tensorfile::PlainValue::Kind;
  switch (v.kind) {
    case K::None: return env.Null();
    case K::Bool: return Napi::Boolean::New(env, v.boolean);
    case K::Int:
      if (std::llabs(v.integer) <= (int64_t(1) << 53)) return Napi::Number::New(env, static_cast<double>(v.integer));
      return Napi::BigInt::New(env, v.integer);
    case K::Float: return Napi::Number::New(env, v.real);
    case K::Str: return Napi::String::New(env, v.text);
  }
  return env.Null();
}

Napi::Object describe(Napi::Env env, const tensorfile::Reader& r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("format", r.format() == tensorfile::Format::Pth ? "pth" : "safetensors");
  out.Set("wrapped", r.wrapped().empty() ? env.Null() : Napi::String::New(env, r.wrapped()));
  Napi::Array entries = Napi::Array::New(env, r.entries().size());
  for (size_t i = 0; i < r.entries().size(); ++i) {
    const auto& e = r.entries()[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", e.name);
    Napi::Array shape = Napi::Array::New(env, e.shape.size());
    for (size_t d = 0; d < e.shape.size(); ++d) shape.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(e.shape[d])));
    o.Set("shape", shape);
    o.Set("dtype", e.dtypeName);
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(e.bytes)));
    entries.Set(static_cast<uint32_t>(i), o);
  }
  out.Set("entries", entries);
  Napi::Object metadata = Napi::Object::New(env);
  for (const auto& [k, v] : r.metadata()) metadata.Set(k, v);
  out.Set("metadata", metadata);
  Napi::Object values = Napi::Object::New(env);
  for (const auto& [k, v] : r.values()) values.Set(k, plainValue(env, v));
  out.Set("values", values);
  return out;
}

// saveTensors(path, names[], tensors[], format, wrap | null, metadata {}) → Promise<void>
Napi::Value saveTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "saving tensors to a file", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 6 && info[0].IsString() && info[1].IsArray() && info[2].IsArray() && info[3].IsString(),
                  "ERR_ARG", "saveTensors: expected (path, names, tensors, format, wrap, metadata)");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    Napi::Array names = info[1].As<Napi::Array>(), tensors = info[2].As<Napi::Array>();
    LITLORA_CHECK(names.Length() == tensors.Length(), "ERR_ARG", "saveTensors: names and tensors differ in length");
    Named named;
    for (uint32_t i = 0; i < names.Length(); ++i) {
      const std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      named.emplace_back(name, TensorWrap::unwrap(tensors.Get(i), "tensors['" + name + "']"));
    }
    const std::string format = info[3].As<Napi::String>().Utf8Value();
    const std::string wrap = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "";
    std::vector<std::pair<std::string, std::string>> metadata;
    if (info[5].IsObject()) {
      Napi::Object m = info[5].As<Napi::Object>();
      Napi::Array keys = m.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
        metadata.emplace_back(k, m.Get(k).As<Napi::String>().Utf8Value());
      }
    }
    return TorchWorker<bool>::run(
        env,
        [path, named = std::move(named), format, wrap, metadata = std::move(metadata)]() {
          if (format == "safetensors") safetensors::save(path, named, metadata);
          else pth::save(path, named, wrap);
          return true;
        },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

// internals.tensorChecksum(tensor, exact = true) → Promise<number>: the sum of every element (reads every byte once).
Napi::Value tensorChecksum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "checksumming a tensor", [&]() -> Napi::Value {
    at::Tensor t = TensorWrap::unwrap(info[0], "tensor");
    const bool exact = info.Length() < 2 || info[1].ToBoolean().Value();
    return TorchWorker<double>::run(
        env, [t, exact]() { return tensorfile::checksum(t, exact); },
        [](Napi::Env env, double& sum) -> Napi::Value { return Napi::Number::New(env, sum); });
  });
}

}  // namespace

void TensorFileWrap::init(Napi::Env env, Napi::Object exports, Napi::Object internals) {
  Napi::Function cls = DefineClass(env, "NativeTensorFile",
                                   {
                                       InstanceMethod("open", &TensorFileWrap::open),
                                       InstanceMethod("get", &TensorFileWrap::get),
                                       InstanceMethod("getAll", &TensorFileWrap::getAll),
                                       InstanceMethod("close", &TensorFileWrap::close),
                                   });
  exports.Set("NativeTensorFile", cls);
  exports.Set("saveTensors", Napi::Function::New(env, saveTensors));
  internals.Set("tensorChecksum", Napi::Function::New(env, tensorChecksum));
}

TensorFileWrap::TensorFileWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorFileWrap>(info) {}

// open(path) → Promise<{format, wrapped, entries, metadata, values}>
Napi::Value TensorFileWrap::open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "opening a tensor file", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 1 && info[0].IsString(), "ERR_ARG", "TensorFile.open: expected a path string");
    LITLORA_CHECK(!reader_ && !closed_, "ERR_ARG", "TensorFile.open: already opened");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(info.This().As<Napi::Object>()));
    return TorchWorker<std::shared_ptr<tensorfile::Reader>>::run(
        env, [path]() { return tensorfile::open(path); },
        [self](Napi::Env env, std::shared_ptr<tensorfile::Reader>& reader) -> Napi::Value {
          TensorFileWrap* wrap = TensorFileWrap::Unwrap(self->Value());
          wrap->reader_ = reader;
          return describe(env, *reader);
        });
  });
}

// get(name, dtype | null, device | null) → Promise<NativeTensor>
Napi::Value TensorFileWrap::get(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "reading a tensor from a file", [&]() -> Napi::Value {
    LITLORA_CHECK(reader_, "ERR_DISPOSED", "TensorFile.get: the file is closed; open it again");
    LITLORA_CHECK(info.Length() >= 1 && info[0].IsString(), "ERR_ARG", "TensorFile.get: expected a tensor name");
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    Conversion conversion = parseConversion(info, 1);
    auto reader = reader_;
    return TorchWorker<at::Tensor>::run(
        env, [reader, name, conversion]() { return convert(reader->get(name), conversion); },
        [](Napi::Env env, at::Tensor& t) -> Napi::Value { return TensorWrap::wrap(env, std::move(t)); });
  });
}

// getAll(dtype | null, device | null) → Promise<[names[], NativeTensor[]]>
Napi::Value TensorFileWrap::getAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "reading the tensors of a file", [&]() -> Napi::Value {
    LITLORA_CHECK(reader_, "ERR_DISPOSED", "TensorFile.getAll: the file is closed; open it again");
    Conversion conversion = parseConversion(info, 0);
    auto reader = reader_;
    return TorchWorker<Named>::run(
        env,
        [reader, conversion]() {
          Named all = reader->getAll();
          for (auto& [name, t] : all) t = convert(t, conversion);
          return all;
        },
        [](Napi::Env env, Named& all) -> Napi::Value {
          Napi::Array names = Napi::Array::New(env, all.size()), tensors = Napi::Array::New(env, all.size());
          for (size_t i = 0; i < all.size(); ++i) {
            names.Set(static_cast<uint32_t>(i), all[i].first);
            tensors.Set(static_cast<uint32_t>(i), TensorWrap::wrap(env, std::move(all[i].second)));
          }
          Napi::Array out = Napi::Array::New(env, 2);
          out.Set(0u, names);
          out.Set(1u, tensors);
          return out;
        });
  });
}

// close() → Promise<void>; idempotent. Waits for reads in flight; tensors handed out stay valid.
Napi::Value TensorFileWrap::close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "closing a tensor file", [&]() -> Napi::Value {
    auto reader = std::move(reader_);
    reader_.reset();
    closed_ = true;
    return TorchWorker<bool>::run(
        env, [reader]() { if (reader) reader->close(); return true; },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

}  // namespace litlora
