#include "tokenizer_json_wrap.h"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tokenizer_json.h"
#include "errors.h"

namespace litlora {

namespace {

// A Buffer over the string's bytes, which it then owns (freed with it; copied where external buffers are not
// allowed): a vocabulary's few MB are not copied again on their way to JavaScript.
Napi::Buffer<char> ownedBuffer(Napi::Env env, std::string&& bytes) {
  auto* owner = new std::string(std::move(bytes));
  return Napi::Buffer<char>::NewOrCopy(
      env, owner->data(), owner->size(), [](Napi::Env, char*, std::string* o) { delete o; }, owner);
}

Napi::Int32Array int32Array(Napi::Env env, const std::vector<int32_t>& values) {
  Napi::Int32Array a = Napi::Int32Array::New(env, values.size());
  if (!values.empty()) std::memcpy(a.Data(), values.data(), values.size() * sizeof(int32_t));
  return a;
}

// scanBpeTokenizerJson(bytes: Uint8Array, valid UTF-8) → null (read it with JSON.parse) or the two parts and the rest.
Napi::Value scanBpeTokenizerJson(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "reading a tokenizer.json", [&]() -> Napi::Value {
    LITLORA_CHECK(info.Length() >= 1 && info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array,
                  "ERR_TYPE", "scanBpeTokenizerJson: expected (bytes: Uint8Array)");
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    auto scan = tokenizerjson::scanBpe(reinterpret_cast<const char*>(bytes.Data()), bytes.ByteLength());
    if (!scan) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("rest", Napi::String::New(env, scan->rest));
    o.Set("tokenBytes", ownedBuffer(env, std::move(scan->tokenBytes)));
    o.Set("start", int32Array(env, scan->start));
    o.Set("length", int32Array(env, scan->length));
    o.Set("maxId", Napi::Number::New(env, static_cast<double>(scan->maxId)));
    o.Set("merges", ownedBuffer(env, std::move(scan->merges)));
    o.Set("mergeCount", Napi::Number::New(env, static_cast<double>(scan->mergeCount)));
    return o;
  });
}

// encodeGgufTokens(tokenBytes, start, length, rows, overrideIds: Int32Array, overrideTexts: string[]) → Buffer of
// GGUF strings (core/tokenizer_json.h's encodeTokens).
Napi::Value encodeGgufTokens(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "encoding a vocabulary", [&]() -> Napi::Value {
    auto isInt32 = [](const Napi::Value& v) { return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array; };
    LITLORA_CHECK(info.Length() >= 6 && info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array &&
                      isInt32(info[1]) && isInt32(info[2]) && info[3].IsNumber() && isInt32(info[4]) && info[5].IsArray(),
                  "ERR_TYPE", "encodeGgufTokens: expected (tokenBytes, start, length, rows, overrideIds, overrideTexts)");
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    Napi::Int32Array start = info[1].As<Napi::Int32Array>(), length = info[2].As<Napi::Int32Array>(), ids = info[4].As<Napi::Int32Array>();
    Napi::Array texts = info[5].As<Napi::Array>();
    const int64_t rows = info[3].As<Napi::Number>().Int64Value();
    LITLORA_CHECK(start.ElementLength() == length.ElementLength() && ids.ElementLength() == texts.Length() && rows >= 0, "ERR_ARG",
                  "encodeGgufTokens: start and length, and the override ids and texts, must have the same lengths");
    for (size_t id = 0; id < start.ElementLength(); id++)
      LITLORA_CHECK(start[id] < 0 || (length[id] >= 0 && static_cast<uint64_t>(start[id]) + static_cast<uint64_t>(length[id]) <= bytes.ByteLength()),
                    "ERR_ARG", "encodeGgufTokens: token " << id << " lies outside tokenBytes");
    std::vector<std::pair<int64_t, std::string>> overrides;
    for (uint32_t i = 0; i < texts.Length(); i++) {
      Napi::Value t = texts.Get(i);
      LITLORA_CHECK(t.IsString(), "ERR_TYPE", "encodeGgufTokens: overrideTexts[" << i << "] is not a string");
      overrides.emplace_back(ids[i], t.As<Napi::String>().Utf8Value());
    }
    std::string out = tokenizerjson::encodeTokens(reinterpret_cast<const char*>(bytes.Data()), start.Data(), length.Data(),
                                                  start.ElementLength(), rows, overrides);
    return ownedBuffer(env, std::move(out));
  });
}

}  // namespace

void initTokenizerJson(Napi::Env env, Napi::Object exports) {
  exports.Set("scanBpeTokenizerJson", Napi::Function::New(env, scanBpeTokenizerJson, "scanBpeTokenizerJson"));
  exports.Set("encodeGgufTokens", Napi::Function::New(env, encodeGgufTokens, "encodeGgufTokens"));
}

}  // namespace litlora
