// The N-API face of native/core/merge (ts/model/merge.ts): `mergeLoraFiles(base, lora, out, config, {dtype})` →
// Promise of {tensors, mergedLayers, bytesWritten, seconds}, run on a worker thread. No math here.
#pragma once

#include <napi.h>

namespace litlora {

void initMerge(Napi::Env env, Napi::Object exports);

}  // namespace litlora
