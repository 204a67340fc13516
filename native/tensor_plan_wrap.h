// The N-API face of native/core/tensor_plan (ts/interop/): `writeTensorPlan(plan)` → Promise of {tensors,
// bytesWritten, seconds}, run on a worker thread. No math here.
#pragma once

#include <napi.h>

namespace litlora {

void initTensorPlan(Napi::Env env, Napi::Object exports);

}  // namespace litlora
