// N-API face of native/core/lora: loraForward, loraBackward, loraMerge, loraUnmerge (Promises; the work runs
// off the main thread) and a few @internal helpers for tests and benchmarks. Translation only, no math.
#pragma once

#include <napi.h>

namespace litlora {

void initLora(Napi::Env env, Napi::Object exports);

}  // namespace litlora
