// The N-API face of native/core/batch_decode: `decodeSubmit(nativeGpt, promptIds, options, adapter, onEvent)` adds a
// request to the model's batched decoder (its DecodeHost, decode_host.h) and returns {cancel} at once; its tokens,
// then 'done' or 'error', arrive through onEvent as generate()'s do (generate_wrap.h).
#pragma once

#include <napi.h>

namespace litlora {

void initBatchDecode(Napi::Env env, Napi::Object exports);

}  // namespace litlora
