#include "tensor_plan_wrap.h"

#include <memory>
#include <utility>
#include <vector>

#include "async.h"
#include "convert.h"
#include "core/error.h"
#include "core/tensor_plan.h"
#include "errors.h"

namespace litlora {

namespace {

std::string stringField(const Napi::Object& o, const char* key, const std::string& what, bool required = true) {
  Napi::Value v = o.Get(key);
  if (!required && (v.IsUndefined() || v.IsNull())) return "";
  LITLORA_CHECK(v.IsString(), "ERR_TYPE", what << "." << key << ": expected a string");
  return v.As<Napi::String>().Utf8Value();
}

int64_t intField(const Napi::Object& o, const char* key, int64_t fallback, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  LITLORA_CHECK(v.IsNumber(), "ERR_TYPE", what << "." << key << ": expected a number");
  return v.As<Napi::Number>().Int64Value();
}

bool isUint8Array(const Napi::Value& v) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

// A Uint8Array (or Buffer) field as bytes, or an array of them one after the other; "" when absent.
std::string bytesField(const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return "";
  if (v.IsArray()) {
    Napi::Array parts = v.As<Napi::Array>();
    std::vector<Napi::Uint8Array> arrays;
    size_t size = 0;
    for (uint32_t i = 0; i < parts.Length(); i++) {
      Napi::Value part = parts.Get(i);
      LITLORA_CHECK(isUint8Array(part), "ERR_TYPE", what << "." << key << "[" << i << "]: expected a Uint8Array");
      arrays.push_back(part.As<Napi::Uint8Array>());
      size += arrays.back().ByteLength();
    }
    std::string bytes;
    bytes.reserve(size);
    for (const auto& a : arrays) bytes.append(reinterpret_cast<const char*>(a.Data()), a.ByteLength());
    return bytes;
  }
  LITLORA_CHECK(isUint8Array(v), "ERR_TYPE", what << "." << key << ": expected a Uint8Array or an array of them");
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  return std::string(reinterpret_cast<const char*>(a.Data()), a.ByteLength());
}

Napi::Array arrayField(const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  LITLORA_CHECK(v.IsArray(), "ERR_TYPE", what << "." << key << ": expected an array");
  return v.As<Napi::Array>();
}

tensorplan::Plan planFromJs(const Napi::Value& value) {
  LITLORA_CHECK(value.IsObject(), "ERR_TYPE", "writeTensorPlan: expected a plan object");
  Napi::Object o = value.As<Napi::Object>();
  tensorplan::Plan plan;
  plan.outPath = stringField(o, "outPath", "plan");
  plan.format = stringField(o, "format", "plan");
  plan.wrap = stringField(o, "wrap", "plan", false);
  plan.header = bytesField(o, "header", "plan");
  Napi::Array sources = arrayField(o, "sources", "plan");
  for (uint32_t i = 0; i < sources.Length(); ++i) {
    LITLORA_CHECK(sources.Get(i).IsString(), "ERR_TYPE", "plan.sources[" << i << "]: expected a path");
    plan.sources.push_back(sources.Get(i).As<Napi::String>().Utf8Value());
  }
  Napi::Value meta = o.Get("metadata");
  if (meta.IsObject()) {
    Napi::Object m = meta.As<Napi::Object>();
    Napi::Array keys = m.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
      plan.metadata.emplace_back(k, stringField(m, k.c_str(), "plan.metadata"));
    }
  }
  Napi::Array outputs = arrayField(o, "outputs", "plan");
  for (uint32_t i = 0; i < outputs.Length(); ++i) {
    const std::string what = "plan.outputs[" + std::to_string(i) + "]";
    LITLORA_CHECK(outputs.Get(i).IsObject(), "ERR_TYPE", what << ": expected an object");
    Napi::Object jo = outputs.Get(i).As<Napi::Object>();
    tensorplan::Output out;
    out.name = stringField(jo, "name", what);
    out.aliasOf = stringField(jo, "aliasOf", what, false);
    out.ggml = stringField(jo, "ggml", what, false);
    out.permuteHeads = intField(jo, "permuteHeads", 0, what);
    Napi::Value addend = jo.Get("addend");
    if (addend.IsNumber()) out.addend = addend.As<Napi::Number>().DoubleValue();
    out.data = bytesField(jo, "data", what);
    const std::string dtype = stringField(jo, "dtype", what, false);
    if (!dtype.empty()) out.dtype = parseDtype(dtype, what + ".dtype");
    Napi::Value shape = jo.Get("shape");
    if (shape.IsArray()) {
      std::vector<int64_t> dims;
      Napi::Array a = shape.As<Napi::Array>();
      for (uint32_t d = 0; d < a.Length(); ++d) dims.push_back(a.Get(d).As<Napi::Number>().Int64Value());
      out.shape = dims;
    }
    if (out.aliasOf.empty() && out.data.empty()) {
      Napi::Array pieces = arrayField(jo, "pieces", what);
      for (uint32_t k = 0; k < pieces.Length(); ++k) {
        const std::string pw = what + ".pieces[" + std::to_string(k) + "]";
        LITLORA_CHECK(pieces.Get(k).IsObject(), "ERR_TYPE", pw << ": expected an object");
        Napi::Object jp = pieces.Get(k).As<Napi::Object>();
        tensorplan::Piece piece;
        piece.source = static_cast<size_t>(intField(jp, "source", 0, pw));
        piece.name = stringField(jp, "name", pw);
        piece.rowStart = intField(jp, "rowStart", 0, pw);
        piece.rows = intField(jp, "rows", -1, pw);
        out.pieces.push_back(std::move(piece));
      }
    }
    plan.outputs.push_back(std::move(out));
  }
  return plan;
}

// Progress reports from the writer thread to an optional JS callback; released when the last copy goes.
struct ProgressChannel {
  Napi::ThreadSafeFunction fn;
  ~ProgressChannel() {
    if (fn) fn.Release();
  }
  void report(int64_t done, int64_t total) {
    auto* counts = new std::pair<int64_t, int64_t>(done, total);
    // Non-blocking: a slow JS side never holds the writer back; a report that cannot be queued is dropped.
    napi_status status = fn.NonBlockingCall(counts, [](Napi::Env env, Napi::Function cb, std::pair<int64_t, int64_t>* raw) {
      std::unique_ptr<std::pair<int64_t, int64_t>> c(raw);
      if (env != nullptr && !cb.IsEmpty()) cb.Call({Napi::Number::New(env, static_cast<double>(c->first)), Napi::Number::New(env, static_cast<double>(c->second))});
    });
    if (status != napi_ok) delete counts;
  }
};

// writeTensorPlan(plan, onProgress?(done, total)) → Promise<{tensors, bytesWritten, seconds}>
Napi::Value writeTensorPlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "rewriting tensor files", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 1, "ERR_TYPE", "writeTensorPlan: expected (plan, onProgress?)");
    tensorplan::Plan plan = planFromJs(info[0]);
    std::shared_ptr<ProgressChannel> channel;
    if (info.Length() > 1 && info[1].IsFunction()) {
      channel = std::make_shared<ProgressChannel>();
      channel->fn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "litlora.tensorPlan.progress", 64, 1);
      channel->fn.Unref(env);  // progress reports never keep Node alive on their own
    }
    return TorchWorker<tensorplan::Stats>::run(
        env, [plan = std::move(plan), channel]() {  // moved: a GGUF header holds megabytes of vocabulary
          if (!channel) return tensorplan::write(plan);
          return tensorplan::write(plan, [&channel](int64_t done, int64_t total) { channel->report(done, total); });
        },
        [](Napi::Env env, tensorplan::Stats& s) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("tensors", static_cast<double>(s.tensors));
          out.Set("bytesWritten", static_cast<double>(s.bytesWritten));
          out.Set("seconds", s.seconds);
          return out;
        });
  });
}

// tensorsEqual(path, a, b) → Promise<boolean>: same dtype, shape and bytes.
Napi::Value tensorsEqual(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "comparing two tensors of a file", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 3 && info[0].IsString() && info[1].IsString() && info[2].IsString(), "ERR_TYPE",
                  "tensorsEqual: expected (path, nameA, nameB)");
    std::string path = info[0].As<Napi::String>().Utf8Value(), a = info[1].As<Napi::String>().Utf8Value(),
                b = info[2].As<Napi::String>().Utf8Value();
    return TorchWorker<bool>::run(
        env, [path, a, b]() { return tensorplan::sameBytes(path, a, b); },
        [](Napi::Env env, bool& same) -> Napi::Value { return Napi::Boolean::New(env, same); });
  });
}

}  // namespace

void initTensorPlan(Napi::Env env, Napi::Object exports) {
  exports.Set("writeTensorPlan", Napi::Function::New(env, writeTensorPlan, "writeTensorPlan"));
  exports.Set("tensorsEqual", Napi::Function::New(env, tensorsEqual, "tensorsEqual"));
}

}  // namespace litlora
