// AddonData: everything the addon keeps per JavaScript environment (the main thread and each worker_thread
// that loads litlora gets its own). A class constructor is a V8 handle that belongs to one isolate: kept in a
// process-wide static, a second environment used the first one's handle ("Entering the V8 API without proper
// locking") and, once that environment had exited, a dangling one (a segfault). So every constructor lives here,
// set once by the addon's init through Napi::Env::SetInstanceData, and is released with its environment. The
// same holds for the error class each environment's ts/binding.ts hands over (its own LitloraError).
#pragma once

#include <napi.h>

namespace litlora {

struct AddonData {
  Napi::FunctionReference tensor;   // NativeTensor (tensor_wrap.cc)
  Napi::FunctionReference gpt;      // NativeGpt (gpt_wrap.cc)
  Napi::FunctionReference trainer;  // NativeTrainer (train_wrap.cc)
  Napi::FunctionReference processGroup;  // NativeProcessGroup (distributed_wrap.cc)
  Napi::FunctionReference error;    // LitloraError (ts/errors.ts), from setErrorClass; errors.cc makes errors of it
};

// This environment's data; set by the addon's init before any class is defined.
inline AddonData& addonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace litlora
