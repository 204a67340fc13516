// The one place for differences between libtorch versions (litlora supports libtorch >= 2.1): every version
// switch lives here, behind functions that work on all of them, so that no other file tests a version.
#pragma once

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <stdexcept>
#include <string>
#include <vector>

// True when compiling against libtorch major.minor or later.
#define LITLORA_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

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

// Autocast state of one device type (CPU or CUDA). libtorch 2.4 made the API device-generic; before, CUDA and
// CPU had functions of their own.
inline bool autocastEnabled(at::DeviceType device) {
#if LITLORA_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == at::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline at::ScalarType autocastDtype(at::DeviceType device) {
#if LITLORA_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == at::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void setAutocast(at::DeviceType device, bool enabled, at::ScalarType dtype) {
#if LITLORA_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == at::kCUDA) {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

// at::_fused_adamw_ has CPU and CUDA kernels from libtorch 2.4; before, the optimizer takes its per-tensor path.
inline constexpr bool kHasFusedAdamW = LITLORA_TORCH_AT_LEAST(2, 4);

// One fused AdamW step (amsgrad and maximize off) over tensors of one device and dtype; only where
// kHasFusedAdamW.
inline void fusedAdamW(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                       const std::vector<at::Tensor>& expAvgs, const std::vector<at::Tensor>& expAvgSqs,
                       const std::vector<at::Tensor>& steps, double lr, double beta1, double beta2, double weightDecay,
                       double eps) {
#if LITLORA_TORCH_AT_LEAST(2, 4)
  at::_fused_adamw_(params, grads, expAvgs, expAvgSqs, {}, steps, lr, beta1, beta2, weightDecay, eps, /*amsgrad=*/false,
                    /*maximize=*/false);
#else
  throw std::logic_error("fused AdamW needs libtorch 2.4 or later");
#endif
}

}  // namespace litlora::compat
