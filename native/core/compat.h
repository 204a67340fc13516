// The one place for differences between libtorch versions (litlora supports libtorch >= 2.1).
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>

#include <string>

namespace litlora::compat {

// The libtorch version the addon was compiled against, e.g. "2.13.0".
inline std::string torchVersion() {
#ifdef TORCH_VERSION
  return TORCH_VERSION;
#else
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
#endif
}

// Number of CUDA devices libtorch can see; 0 when this libtorch has no CUDA or no GPU is present.
inline int cudaDeviceCount() {
  if (!at::globalContext().hasCUDA()) return 0;
  return static_cast<int>(at::detail::getCUDAHooks().deviceCount());
}

}  // namespace litlora::compat
