// NativeTensorFile: the N-API face of native/core/tensorfile (ts/io/tensorfile.ts wraps it), plus saveTensors
// (and tensorChecksum on the addon's `internals`, for tests and benchmarks).
// JS creates an empty object and awaits open(path); get/getAll/close then work on the opened reader. Every
// file access runs off the main thread.
#pragma once

#include <napi.h>

#include <memory>

#include "core/tensorfile.h"

namespace litlora {

class TensorFileWrap : public Napi::ObjectWrap<TensorFileWrap> {
 public:
  static void init(Napi::Env env, Napi::Object exports, Napi::Object internals);
  explicit TensorFileWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value open(const Napi::CallbackInfo& info);
  Napi::Value entries(const Napi::CallbackInfo& info);
  Napi::Value get(const Napi::CallbackInfo& info);
  Napi::Value getAll(const Napi::CallbackInfo& info);
  Napi::Value close(const Napi::CallbackInfo& info);

  std::shared_ptr<tensorfile::Reader> reader_;
  bool closed_ = false;
};

}  // namespace litlora
