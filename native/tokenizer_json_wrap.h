// The N-API face of native/core/tokenizer_json (ts/gguf/tokenizer_json.ts): `scanBpeTokenizerJson(bytes)` → null or
// {rest, tokenBytes, start, length, maxId, merges, mergeCount}; `encodeGgufTokens(...)` → GGUF's tokens array. Both
// synchronous (a Qwen2-sized file takes ~10 ms).
#pragma once

#include <napi.h>

namespace litlora {

void initTokenizerJson(Napi::Env env, Napi::Object exports);

}  // namespace litlora
