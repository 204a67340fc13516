// The N-API face of native/core/generate (ts/generate/generate.ts): `generate(nativeGpt, promptIds, options, onEvent)`
// runs the decode loop on a worker thread and streams every emitted token to JS through a thread-safe
// function, so the event loop stays free while the model works. No math here.
#pragma once

#include <napi.h>

namespace litlora {

void initGenerate(Napi::Env env, Napi::Object exports);

}  // namespace litlora
