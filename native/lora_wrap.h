// N-API face of native/core/lora: loraForward, loraBackward, loraMerge, loraUnmerge (Promises; the work runs
// off the main thread) on the exports, and helpers for tests and benchmarks on the addon's `internals`.
// Translation only, no math.
#pragma once

#include <napi.h>

namespace litlora {

void initLora(Napi::Env env, Napi::Object exports, Napi::Object internals);

}  // namespace litlora
