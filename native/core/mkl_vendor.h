// MKL's vendor check, answered by the addon (see mkl_vendor.cc for why).
#pragma once

#include <cstdint>

namespace litlora {

struct MklVendorAnswer {
  bool intel = false;     // what the addon answers: "Intel" (MKL's AVX2/AVX-512 kernels by CPUID features)
  uint64_t queries = 0;   // how many times MKL has asked the addon (0 until the first MKL call, or if MKL never does)
};

MklVendorAnswer mklVendorAnswer();

}  // namespace litlora
