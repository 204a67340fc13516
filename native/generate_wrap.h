// The N-API face of native/core/generate (ts/generate/generate.ts): `generate(nativeGpt, promptIds, options, onEvent)`
// runs the decode loop on a worker thread and streams every emitted token to JS through a thread-safe
// function, so the event loop stays free while the model works. No math here.
#pragma once

#include <napi.h>

#include "core/generate.h"

namespace litlora {

// The sampling options of a JS options object ({temperature, topK, topP, seed, maxNewTokens, vocabLimit,
// stopSequences}); the batched decoder (batch_decode_wrap.cc) reads requests the same way.
generate::SamplingOptions parseSamplingOptions(const Napi::Object& options);

void initGenerate(Napi::Env env, Napi::Object exports);

}  // namespace litlora
